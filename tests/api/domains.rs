//! Verified domains: a claim proved by a TXT record that a real DNS server (started here, on loopback
//! UDP) serves to the server's configured resolver, and what verification does to `existingAccount` in
//! both directions: the owner's users get their logins, the other accounts' users in the domain fail on
//! their next evaluation naming the owner, and outside the domain first come, first served stays.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{RData, Record, RecordType};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::crash::start_binary_with;
use crate::helpers::*;
use crate::rules::{product, rule, sync, user};

/// A tiny authoritative DNS server on loopback UDP: TXT records by name, NXDOMAIN for any other name.
struct DnsServer {
    addr: SocketAddr,
    records: Arc<Mutex<HashMap<String, Vec<String>>>>,
    stop: Arc<AtomicBool>,
}

impl DnsServer {
    fn start() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let addr = socket.local_addr().unwrap();
        let records: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (served, stopping) = (records.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stopping.load(Ordering::SeqCst) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else { continue };
                let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
                let answer = answer(&query, &served.lock().unwrap());
                let _ = socket.send_to(&answer.to_vec().unwrap(), peer);
            }
        });
        DnsServer { addr, records, stop }
    }

    /// Serves these TXT strings at `name` from now on (an empty list removes the name).
    fn publish(&self, name: &str, values: &[&str]) {
        let mut records = self.records.lock().unwrap();
        if values.is_empty() {
            records.remove(name);
        } else {
            records.insert(name.to_string(), values.iter().map(|v| v.to_string()).collect());
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn answer(query: &Message, records: &HashMap<String, Vec<String>>) -> Message {
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.message_type = MessageType::Response;
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_queries(query.queries.iter().cloned());
    let Some(q) = query.queries.first() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply;
    };
    let name = q.name().to_lowercase().to_ascii();
    match records.get(name.trim_end_matches('.')) {
        Some(values) if q.query_type() == RecordType::TXT => {
            for v in values {
                let txt = RData::TXT(TXT::new(vec![v.clone()]));
                reply.add_answer(Record::from_rdata(q.name().clone(), 0, txt));
            }
        }
        Some(_) => {}
        None => reply.metadata.response_code = ResponseCode::NXDomain,
    }
    reply
}

fn spawn_with_dns(dns: &DnsServer) -> TestApp {
    spawn_app_adjusted(|settings| settings.dns_resolver = Some(dns.addr))
}

/// Claims `domain` for the app's account and publishes its challenge; returns the claim.
fn claim_and_publish(app: &TestApp, dns: &DnsServer, domain: &str) -> Value {
    let claim = app.admin_ok(Method::POST, "/domains", Some(&json!({"domain": domain})), StatusCode::CREATED);
    let record = &claim["record"];
    dns.publish(record["name"].as_str().unwrap(), &[record["value"].as_str().unwrap()]);
    claim
}

#[test]
fn a_domain_is_verified_by_its_txt_record_through_the_configured_resolver() {
    let dns = DnsServer::start();
    let app = spawn_with_dns(&dns);

    // strict input: the field named, nothing guessed
    for (body, status, field) in [
        (json!({"domain": "not a domain"}), StatusCode::UNPROCESSABLE_ENTITY, "domain"),
        (json!({"domain": "ann@example.com"}), StatusCode::UNPROCESSABLE_ENTITY, "domain"),
        (json!({"domain": "com"}), StatusCode::UNPROCESSABLE_ENTITY, "domain"),
        (json!({"domain": 7}), StatusCode::BAD_REQUEST, "domain"),
        (json!({"domain": "example.com", "owner": "b"}), StatusCode::BAD_REQUEST, "owner"),
        (json!({}), StatusCode::BAD_REQUEST, "domain"),
    ] {
        let e = app.admin_ok(Method::POST, "/domains", Some(&body), status);
        assert_eq!(e["errors"][0]["field"], json!(field), "{body}: {e}");
    }

    // a claim, normalised; claiming again answers the same challenge
    let claim =
        app.admin_ok(Method::POST, "/domains", Some(&json!({"domain": "Example.COM."})), StatusCode::CREATED);
    assert_eq!((claim["domain"].clone(), claim["state"].clone()), (json!("example.com"), json!("pending")));
    assert_eq!(claim["record"]["name"], json!("_usersync.example.com"));
    assert_eq!(claim["record"]["type"], json!("TXT"));
    let challenge = claim["record"]["value"].as_str().unwrap().to_string();
    assert!(challenge.starts_with("usersync-verification="), "{claim}");
    assert_eq!(claim["verifiedAt"], Value::Null);
    let again =
        app.admin_ok(Method::POST, "/domains", Some(&json!({"domain": "example.com"})), StatusCode::OK);
    assert_eq!(again["record"]["value"], json!(challenge));
    let idn = app.admin_ok(
        Method::POST,
        "/domains",
        Some(&json!({"domain": "bücher.example"})),
        StatusCode::CREATED,
    );
    assert_eq!(idn["domain"], json!("xn--bcher-kva.example"));

    // no record at all
    let e = app.admin_ok(Method::POST, "/domains/example.com/verify", None, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["error"], json!("not_verified"));
    assert!(e["message"].as_str().unwrap().contains("no TXT record at _usersync.example.com"), "{e}");
    // a record with something else in it
    dns.publish("_usersync.example.com", &["v=spf1 -all", "usersync-verification=stale"]);
    let e = app.admin_ok(Method::POST, "/domains/example.com/verify", None, StatusCode::UNPROCESSABLE_ENTITY);
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("'usersync-verification=stale'") && message.contains(&challenge), "{e}");
    assert_eq!(
        app.admin_ok(Method::GET, "/domains/example.com", None, StatusCode::OK)["state"],
        json!("pending")
    );

    // the right record, among others: verified
    dns.publish("_usersync.example.com", &["v=spf1 -all", &challenge]);
    let verified = app.admin_ok(Method::POST, "/domains/EXAMPLE.com/verify", None, StatusCode::OK);
    assert_eq!((verified["state"].clone(), verified["how"].clone()), (json!("verified"), json!("dns")));
    assert!(verified["verifiedAt"].is_string());
    assert_eq!(verified["verifiedBy"], json!("admin:environment"));
    // the record may go: a verified domain stays verified
    dns.publish("_usersync.example.com", &[]);
    app.admin_ok(Method::POST, "/domains/example.com/verify", None, StatusCode::OK);

    // the list, paged, in domain order
    let list = app.admin_ok(Method::GET, "/domains?count=1", None, StatusCode::OK);
    assert_eq!((list["totalResults"].clone(), list["itemsPerPage"].clone()), (json!(2), json!(1)));
    assert_eq!(list["Resources"][0]["domain"], json!("example.com"));
    let second = app.admin_ok(Method::GET, "/domains?startIndex=2", None, StatusCode::OK);
    assert_eq!(second["Resources"][0]["state"], json!("pending"));
    let e = app.admin_ok(Method::GET, "/domains?state=x", None, StatusCode::BAD_REQUEST);
    assert_eq!(e["errors"][0]["field"], json!("?state"));

    // another account can neither claim nor verify it, nor a subdomain of it
    let (scim_b, admin_b) = app.new_account("b");
    let other = app.as_account(&scim_b, &admin_b);
    for domain in ["example.com", "eu.example.com"] {
        let e =
            other.admin_ok(Method::POST, "/domains", Some(&json!({"domain": domain})), StatusCode::CONFLICT);
        assert!(e["message"].as_str().unwrap().contains("is verified by account 'default'"), "{e}");
    }
    other.admin_ok(Method::POST, "/domains/example.com/verify", None, StatusCode::NOT_FOUND);
    assert_eq!(other.admin_ok(Method::GET, "/domains", None, StatusCode::OK)["totalResults"], json!(0));

    // deleting a claim
    app.admin_ok(Method::DELETE, "/domains/xn--bcher-kva.example", None, StatusCode::NO_CONTENT);
    app.admin_ok(Method::GET, "/domains/bücher.example", None, StatusCode::NOT_FOUND);
    app.admin_ok(Method::DELETE, "/domains/nothing.example", None, StatusCode::NOT_FOUND);
    let e = app.admin_ok(Method::DELETE, "/domains/bad_name", None, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["errors"][0]["field"], json!("domain"));

    let types: Vec<Value> =
        app.admin_ok(Method::GET, "/activity?count=20", None, StatusCode::OK)["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["type"].clone())
            .collect();
    for t in ["domain.claimed", "domain.verified", "domain.removed"] {
        assert!(types.contains(&json!(t)), "{t} in {types:?}");
    }
}

/// Sets an account up with product `meeting` (unlimited), a group and a rule granting it, sync on;
/// returns the group's id.
fn set_up(app: &TestApp) -> String {
    product(app, "meeting", None, &[]);
    let g = id(&app.create_group("Everyone"));
    rule(app, json!({"group": g, "products": ["meeting"]}));
    sync(app, true);
    g
}

fn joined(app: &TestApp, group: &str, name: &str, extra: Value) -> String {
    let uid = user(app, name, extra);
    app.add_members(group, &[&uid]);
    uid
}

fn state(app: &TestApp, uid: &str) -> (Value, Value) {
    let e = app.entitlements(uid);
    (e["state"].clone(), e["failure"]["reason"].clone())
}

#[test]
fn verifying_a_domain_moves_its_logins_to_the_owner_at_their_next_evaluation() {
    let dns = DnsServer::start();
    let owner = spawn_with_dns(&dns);
    let (scim_b, admin_b) = owner.new_account("b");
    let b = owner.as_account(&scim_b, &admin_b);
    let (ga, gb) = (set_up(&owner), set_up(&b));

    // b comes first: its users hold the logins
    let b_shared = joined(&b, &gb, "shared@example.com", json!({}));
    // a login in the domain by its primary email only
    let b_carol =
        joined(&b, &gb, "carol", json!({"emails": [{"value": "carol@EU.example.com", "primary": true}]}));
    let b_free = joined(&b, &gb, "free@other.org", json!({}));
    b.settle();
    for uid in [&b_shared, &b_carol, &b_free] {
        assert_eq!(state(&b, uid).0, json!("entitled"));
    }
    let a_shared = joined(&owner, &ga, "SHARED@example.com", json!({}));
    let a_free = joined(&owner, &ga, "free@other.org", json!({}));
    owner.settle();
    assert_eq!(
        state(&owner, &a_shared),
        (json!("failed"), json!("existingAccount")),
        "first come, first served"
    );
    assert_eq!(state(&owner, &a_free), (json!("failed"), json!("existingAccount")));

    // the owner verifies example.com
    claim_and_publish(&owner, &dns, "example.com");
    owner.admin_ok(Method::POST, "/domains/example.com/verify", None, StatusCode::OK);
    b.settle();
    owner.settle();

    // b's users in the domain failed at their next evaluation, naming the owner; outside it nothing moved
    for uid in [&b_shared, &b_carol] {
        let e = b.entitlements(uid);
        assert_eq!(
            (e["state"].clone(), e["failure"]["reason"].clone()),
            (json!("failed"), json!("existingAccount"))
        );
        let detail = e["failure"]["detail"].as_str().unwrap();
        assert!(
            detail.contains("verified by account 'default'") && detail.contains("example.com"),
            "{detail}"
        );
        assert_eq!(e["products"], json!([]), "{e}");
    }
    assert_eq!(state(&b, &b_free).0, json!("entitled"));
    // the owner's user got the login b held; outside the domain the first comer keeps it
    assert_eq!(state(&owner, &a_shared).0, json!("entitled"));
    assert_eq!(state(&owner, &a_free), (json!("failed"), json!("existingAccount")));
    let failures = b.admin_ok(Method::GET, "/failures?reason=existingAccount", None, StatusCode::OK);
    assert_eq!(failures["totalResults"], json!(2));

    // both accounts' activity says so
    let theirs = b.admin_ok(Method::GET, "/activity?type=domain.verified-elsewhere", None, StatusCode::OK);
    assert_eq!(theirs["totalResults"], json!(1), "{theirs}");
    let detail = &theirs["Resources"][0]["detail"];
    assert_eq!(
        (detail["domain"].clone(), detail["owner"].clone(), detail["users"].clone()),
        (json!("example.com"), json!("default"), json!(2))
    );
    let ours = owner.admin_ok(Method::GET, "/activity?type=domain.verified", None, StatusCode::OK);
    assert_eq!(ours["Resources"][0]["detail"]["otherAccounts"], json!([{"account": "b", "users": 2}]));
    let revoked = b.admin_ok(
        Method::GET,
        &format!("/activity?type=entitlement.revoked&user={b_shared}"),
        None,
        StatusCode::OK,
    );
    assert_eq!(revoked["totalResults"], json!(1));

    // a user b adds later in the domain fails too; the owner's new users are entitled
    let b_later = joined(&b, &gb, "later@example.com", json!({}));
    let a_new = joined(&owner, &ga, "new@mail.example.com", json!({}));
    b.settle();
    owner.settle();
    assert_eq!(state(&b, &b_later), (json!("failed"), json!("existingAccount")));
    assert_eq!(state(&owner, &a_new).0, json!("entitled"));

    // the owner gives the domain up: b's users are evaluated again, and first come, first served is back
    owner.admin_ok(Method::DELETE, "/domains/example.com", None, StatusCode::NO_CONTENT);
    b.settle();
    assert_eq!(state(&b, &b_carol).0, json!("entitled"));
    assert_eq!(state(&b, &b_later).0, json!("entitled"));
    assert_eq!(
        state(&b, &b_shared),
        (json!("failed"), json!("existingAccount")),
        "the owner's user holds it now"
    );
}

fn usersync(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_usersync"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

#[test]
fn the_command_line_marks_a_domain_verified_and_the_binary_asks_the_resolver_it_is_given() {
    let dns = DnsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    for name in ["acme", "beta"] {
        assert!(usersync(&data, &["account", "create", name]).status.success());
    }
    let out = usersync(&data, &["domain", "verify", "--account", "acme", "Acme.example."]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("domain 'acme.example' is verified for account 'acme'")
    );
    let refused = usersync(&data, &["domain", "verify", "--account", "beta", "eu.acme.example"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is verified by account 'acme'"));
    let bad = usersync(&data, &["domain", "verify", "--account", "beta", "not a domain"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("domain: 'not a domain' contains white space"));
    let listed = String::from_utf8_lossy(&usersync(&data, &["domain", "list"]).stdout).into_owned();
    assert!(listed.lines().any(|l| l.starts_with("acme\tacme.example\tverified\t")), "{listed}");

    // the binary's --dns-resolver: account default verifies another domain through the test's server
    let resolver = dns.addr.to_string();
    let (mut child, addr) = start_binary_with(&data, &["--dns-resolver", &resolver]);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let admin = |method: Method, path: &str, body: Option<Value>| {
        let mut req =
            client.request(method, format!("http://{addr}/admin/v1{path}")).bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body.to_string());
        }
        req.send().unwrap()
    };
    let claim = expect_status(
        admin(Method::POST, "/domains", Some(json!({"domain": "default.example"}))),
        StatusCode::CREATED,
    );
    dns.publish("_usersync.default.example", &[claim["record"]["value"].as_str().unwrap()]);
    let verified =
        expect_status(admin(Method::POST, "/domains/default.example/verify", None), StatusCode::OK);
    assert_eq!(verified["state"], json!("verified"));
    let e = expect_status(
        admin(Method::POST, "/domains", Some(json!({"domain": "acme.example"}))),
        StatusCode::CONFLICT,
    );
    assert!(e["message"].as_str().unwrap().contains("account 'acme'"), "{e}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_resolver_that_does_not_answer_is_a_503_and_the_claim_stays_pending() {
    // a port nobody listens on: the look-up is refused (or times out), it never counts as "no record"
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = spawn_app_adjusted(|settings| settings.dns_resolver = Some(silent));
    app.admin_ok(Method::POST, "/domains", Some(&json!({"domain": "example.com"})), StatusCode::CREATED);
    let e = app.admin_ok(Method::POST, "/domains/example.com/verify", None, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(e["error"], json!("dns_unavailable"), "{e}");
    assert!(e["message"].as_str().unwrap().contains("_usersync.example.com"), "{e}");
    assert_eq!(
        app.admin_ok(Method::GET, "/domains/example.com", None, StatusCode::OK)["state"],
        json!("pending")
    );
}

#[test]
fn the_operator_marks_a_domain_verified_for_an_account() {
    const OPERATOR_TOKEN: &str = "operator-test-token-0123456789abcdef";
    let app = spawn_app_adjusted(|settings| settings.operator_token = Some(OPERATOR_TOKEN.into()));
    let (scim_b, admin_b) = app.new_account("b");
    let b = app.as_account(&scim_b, &admin_b);
    let b_id = app.store.account("b").unwrap().unwrap().id.0;
    let op = |path: &str| {
        let url = format!("http://{}/operator/v1{path}", app.addr);
        app.client.post(url).bearer_auth(OPERATOR_TOKEN).send().unwrap()
    };
    let verified = expect_status(op(&format!("/accounts/{b_id}/domains/Example.com/verify")), StatusCode::OK);
    assert_eq!(
        (verified["domain"].clone(), verified["state"].clone()),
        (json!("example.com"), json!("verified"))
    );
    assert_eq!(
        (verified["how"].clone(), verified["verifiedBy"].clone()),
        (json!("operator"), json!("operator"))
    );
    assert_eq!(b.admin_ok(Method::GET, "/domains", None, StatusCode::OK)["totalResults"], json!(1));
    let e = expect_status(op("/accounts/1/domains/eu.example.com/verify"), StatusCode::CONFLICT);
    assert!(e["message"].as_str().unwrap().contains("verified by account 'b'"), "{e}");
    let e = expect_status(op("/accounts/1/domains/not_a_domain/verify"), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["errors"][0]["field"], json!("domain"));
    expect_status(op("/accounts/99/domains/example.org/verify"), StatusCode::NOT_FOUND);
    // the admin token of an account is not the operator's
    let res = app
        .client
        .post(format!("http://{}/operator/v1/accounts/1/domains/x.org/verify", app.addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert!(res.status().is_client_error());
}
