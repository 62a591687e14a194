//! The entitlement change feed and its webhooks (issue 13): changes from concurrent SCIM writes and rule
//! changes read with a cursor across a restart, none missing or out of order, the state rebuilt from them
//! equal to `GET /entitlements`; signed webhook deliveries to a receiver that fails and goes down.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use usersync::app::Settings;
use usersync::delivery::webhooks::WebhookConfig;
use usersync::store::DurabilityMode;

use crate::helpers::*;

fn product(app: &TestApp, id: &str, seats: Option<u64>) {
    let body = json!({"name": id, "seats": seats, "requires": []});
    let res = app.admin(Method::PUT, &format!("/products/{id}"), Some(&body));
    assert!(res.status().is_success(), "{}", res.text().unwrap_or_default());
}

fn rule(app: &TestApp, group: &str, products: &[&str]) -> String {
    let body = json!({"group": group, "products": products});
    app.admin_ok(Method::POST, "/rules", Some(&body), StatusCode::CREATED)["id"].as_str().unwrap().to_string()
}

/// Sync on, and no mass revocation held: these tests revoke many users on purpose.
fn sync_on(app: &TestApp) {
    let brake = json!({"massRevocation": {"percent": 100, "minUsers": 1_000_000}});
    app.admin_ok(Method::PATCH, "/settings", Some(&brake), StatusCode::OK);
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": true})), StatusCode::OK);
}

fn user(app: &TestApp, name: &str) -> String {
    id(&app.create_user(&json!({"userName": name, "emails": [{"value": name, "primary": true}]})))
}

fn set_active(app: &TestApp, uid: &str, active: bool) {
    let body = json!({"Operations": [{"op": "replace", "path": "active", "value": active}]});
    expect_status(app.patch(&format!("/Users/{uid}"), &body), StatusCode::NO_CONTENT);
}

fn feed_cursor(app: &TestApp) -> u64 {
    app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["delivery"]["feedCursor"].as_u64().unwrap()
}

/// The feed's changes after `after`, page by page, up to `until`.
fn read_feed(app: &TestApp, mut after: u64, until: u64) -> Vec<Value> {
    let mut out = Vec::new();
    while after < until {
        let page = app.admin_ok(
            Method::GET,
            &format!("/entitlements/changes?after={after}&limit=1000"),
            None,
            StatusCode::OK,
        );
        let changes = page["Resources"].as_array().unwrap();
        assert!(!changes.is_empty(), "the feed has changes up to {until} but answered none after {after}");
        out.extend(changes.iter().cloned());
        after = page["cursor"].as_u64().unwrap();
    }
    // the last page may hold changes committed since
    out.retain(|c| c["cursor"].as_u64().unwrap() <= until);
    out
}

/// Each user's products after the changes, as a consumer of the feed rebuilds them; checks on the way
/// that cursors follow one another and each change of a user starts where the user's last one ended.
fn rebuild(changes: &[Value], from: u64) -> BTreeMap<String, Value> {
    let mut held: BTreeMap<String, Value> = BTreeMap::new();
    for (i, c) in changes.iter().enumerate() {
        assert_eq!(c["cursor"].as_u64().unwrap(), from + 1 + i as u64, "cursors follow one another: {c}");
        let uid = c["userId"].as_str().unwrap().to_string();
        let before = held.get(&uid).cloned().unwrap_or(Value::Null);
        assert_eq!(
            c["before"], before,
            "change {} of {uid} starts where the user's previous one ended",
            c["cursor"]
        );
        held.insert(uid, c["after"].clone());
    }
    held
}

/// The products of a bundle (`[]` without one).
fn products_of(bundle: &Value) -> Value {
    if bundle.is_null() { json!([]) } else { bundle["products"].clone() }
}

/// `GET /entitlements` as user → products, with its cursor.
fn entitlements(app: &TestApp) -> (BTreeMap<String, Value>, u64) {
    let page = app.admin_ok(Method::GET, "/entitlements?count=1000", None, StatusCode::OK);
    assert!(page["totalResults"].as_u64().unwrap() <= 1000, "one page holds them all");
    let users = page["Resources"].as_array().unwrap();
    let map =
        users.iter().map(|u| (u["user"].as_str().unwrap().to_string(), u["products"].clone())).collect();
    (map, page["cursor"].as_u64().unwrap())
}

/// The rebuilt state agrees with a snapshot of `GET /entitlements`. Once settled (`settled`), a user the
/// list no longer has holds nothing; before, a deleted user may still await the engine's revocation.
fn assert_same_state(rebuilt: &BTreeMap<String, Value>, snapshot: &BTreeMap<String, Value>, settled: bool) {
    for (uid, products) in snapshot {
        let from_feed = rebuilt.get(uid).map_or(json!([]), products_of);
        assert_eq!(&from_feed, products, "user {uid}: the feed and GET /entitlements disagree");
    }
    for (uid, bundle) in rebuilt {
        if settled && !snapshot.contains_key(uid) {
            assert!(bundle.is_null(), "user {uid} is gone but the feed says they hold {bundle}");
        }
    }
}

/// SCIM writers and a rule toggler run until the feed holds `target` changes; a snapshot of
/// `GET /entitlements` is taken meanwhile.
fn churn(
    app: &TestApp,
    users: &[String],
    group: &str,
    rule_id: &str,
    target: u64,
) -> (BTreeMap<String, Value>, u64) {
    let stop = AtomicBool::new(false);
    let snapshot = Mutex::new(None);
    std::thread::scope(|s| {
        for part in users.chunks(users.len().div_ceil(2)) {
            let stop = &stop;
            s.spawn(move || {
                // each round a third of the users leave or rejoin the group, and every other round they
                // are also deactivated or reactivated
                let mut state: HashMap<&str, (bool, bool)> =
                    part.iter().map(|u| (u.as_str(), (true, true))).collect();
                let mut round = 0;
                while !stop.load(Ordering::SeqCst) {
                    for uid in part.iter().skip(round % 3).step_by(3) {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let (member, active) = state.get_mut(uid.as_str()).unwrap();
                        *member = !*member;
                        if *member {
                            app.add_members(group, &[uid])
                        } else {
                            app.remove_member(group, uid)
                        }
                        if round % 2 == 1 {
                            *active = !*active;
                            set_active(app, uid, *active);
                        }
                    }
                    round += 1;
                }
                // leave everyone active and in the group
                for (uid, (member, active)) in state {
                    if !active {
                        set_active(app, uid, true);
                    }
                    if !member {
                        app.add_members(group, &[uid]);
                    }
                }
            });
        }
        // users created, entitled and deleted
        s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let uid = user(app, &format!("passing{n}-{target}@example.com"));
                app.add_members(group, &[&uid]);
                std::thread::sleep(Duration::from_millis(40));
                if n % 2 == 0 {
                    expect_status(app.delete(&format!("/Users/{uid}")), StatusCode::NO_CONTENT);
                }
                n += 1;
            }
        });
        s.spawn(|| {
            let mut wide = false;
            while !stop.load(Ordering::SeqCst) {
                wide = !wide;
                let products: &[&str] = if wide { &["meeting", "webinar", "phone"] } else { &["meeting"] };
                let body = json!({"products": products});
                app.admin_ok(Method::PATCH, &format!("/rules/{rule_id}"), Some(&body), StatusCode::OK);
                std::thread::sleep(Duration::from_millis(40));
                if snapshot.lock().unwrap().is_none() && feed_cursor(app) > target / 2 {
                    *snapshot.lock().unwrap() = Some(entitlements(app));
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        while feed_cursor(app) < target {
            assert!(Instant::now() < deadline, "the feed did not reach {target} changes");
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::SeqCst);
    });
    app.settle();
    let taken = snapshot.into_inner().unwrap();
    taken.unwrap_or_else(|| entitlements(app))
}

#[test]
fn ten_thousand_changes_read_across_a_restart_are_complete_in_order_and_rebuild_the_state() {
    let app = spawn_app();
    for (id, seats) in [("meeting", None), ("webinar", None), ("phone", Some(150))] {
        product(&app, id, seats);
    }
    let staff = id(&app.create_group("Staff"));
    let rule_id = rule(&app, &staff, &["meeting"]);
    sync_on(&app);
    let users: Vec<String> = (0..200).map(|i| user(&app, &format!("u{i}@example.com"))).collect();
    app.add_members(&staff, &users.iter().map(String::as_str).collect::<Vec<_>>());

    // a reader long-polls the feed while the changes are made
    let seen = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let (snapshot1, cursor1) = std::thread::scope(|s| {
        s.spawn(|| {
            let mut after = 0;
            loop {
                let page = app.admin_ok(
                    Method::GET,
                    &format!("/entitlements/changes?after={after}&limit=500&wait=1"),
                    None,
                    StatusCode::OK,
                );
                let changes = page["Resources"].as_array().unwrap().clone();
                if changes.is_empty() && done.load(Ordering::SeqCst) {
                    return;
                }
                after = page["cursor"].as_u64().unwrap();
                seen.lock().unwrap().extend(changes);
            }
        });
        let snapshot = churn(&app, &users, &staff, &rule_id, 5_000);
        // the reader catches up with everything committed, then stops at its next empty page
        let head = feed_cursor(&app);
        while seen.lock().unwrap().last().and_then(|c| c["cursor"].as_u64()).unwrap_or(0) < head {
            std::thread::sleep(Duration::from_millis(20));
        }
        done.store(true, Ordering::SeqCst);
        snapshot
    });
    let before_restart = seen.into_inner().unwrap();
    let cursor = before_restart.last().unwrap()["cursor"].as_u64().unwrap();
    rebuild(&before_restart, 0);
    assert_same_state(&rebuild(&read_feed(&app, 0, cursor1), 0), &snapshot1, false);

    let data = app.stop().expect("temporary data directory");
    let app = spawn_app_in(data.path());
    assert_eq!(feed_cursor(&app), cursor, "the feed ends where it ended before the restart");
    assert_eq!(
        read_feed(&app, 0, cursor),
        before_restart,
        "the changes read before the restart are still the same"
    );
    let (snapshot2, cursor2) = churn(&app, &users, &staff, &rule_id, 10_000);
    let head = feed_cursor(&app);
    assert!(head >= 10_000, "{head} changes");
    let after_restart = read_feed(&app, cursor, head);
    let all: Vec<Value> = before_restart.into_iter().chain(after_restart).collect();
    let rebuilt = rebuild(&all, 0);

    let kinds: std::collections::HashSet<&str> = all.iter().filter_map(|c| c["type"].as_str()).collect();
    for kind in ["entitlement.granted", "entitlement.changed", "entitlement.revoked", "entitlement.failed"] {
        assert!(kinds.contains(kind), "no {kind} among the changes: {kinds:?}");
    }
    let deleted = all
        .iter()
        .find(|c| c["reason"] == json!("the user was deleted"))
        .expect("a deleted user's revocation");
    assert!(deleted["userName"].as_str().is_some_and(|n| n.starts_with("passing")), "{deleted}");

    // a snapshot taken while the changes were made is the state at its cursor
    let upto = |c: u64| rebuild(&all[..c as usize], 0);
    assert_same_state(&upto(cursor2), &snapshot2, false);
    // and the settled state is the state at the end
    let (last, last_cursor) = entitlements(&app);
    assert_eq!(last_cursor, head, "after settling, GET /entitlements is at the feed's end");
    assert_same_state(&rebuilt, &last, true);

    // strict queries
    for bad in
        ["/entitlements/changes?afer=1", "/entitlements/changes?after=x", "/entitlements/changes?wait=61"]
    {
        let res = app.admin(Method::GET, bad, None);
        assert!(
            res.status() == StatusCode::BAD_REQUEST || res.status() == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
    let beyond = app.admin(Method::GET, &format!("/entitlements/changes?after={}", head + 1), None);
    let body = expect_status(beyond, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], json!("?after"), "{body}");
}

/// One request the receiver accepted.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A webhook receiver on a port of its own: answers 500 to three requests in ten per path (never two in
/// a row),
/// and can be taken down (its port closed, its connections dropped) and brought back.
struct Receiver {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<Received>>>,
    requests: Arc<Mutex<HashMap<String, u64>>>,
    down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Receiver {
            addr,
            accepted: Arc::default(),
            requests: Arc::default(),
            down: Arc::default(),
            stop: Arc::default(),
        };
        let (accepted, requests, down, stop) = (
            receiver.accepted.clone(),
            receiver.requests.clone(),
            receiver.down.clone(),
            receiver.stop.clone(),
        );
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            while !stop.load(Ordering::SeqCst) {
                if down.load(Ordering::SeqCst) {
                    listener = None;
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                let l = listener.get_or_insert_with(|| TcpListener::bind(addr).expect("the port again"));
                l.set_nonblocking(true).unwrap();
                match l.accept() {
                    Ok((stream, _)) => {
                        let (accepted, requests, down) = (accepted.clone(), requests.clone(), down.clone());
                        std::thread::spawn(move || serve(stream, &accepted, &requests, &down));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        receiver
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn accepted(&self) -> Vec<Received> {
        self.accepted.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Serves one connection's requests (keep-alive) until the client closes it or the receiver goes down.
fn serve(
    stream: TcpStream,
    accepted: &Mutex<Vec<Received>>,
    requests: &Mutex<HashMap<String, u64>>,
    down: &AtomicBool,
) {
    stream.set_nonblocking(false).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() || down.load(Ordering::SeqCst) {
            return;
        }
        let n = {
            let mut counts = requests.lock().unwrap();
            let n = counts.entry(path.clone()).or_default();
            *n += 1;
            *n - 1
        };
        let status = if [1, 4, 7].contains(&(n % 10)) {
            "500 Internal Server Error"
        } else {
            accepted.lock().unwrap().push(Received { path, headers, body });
            "200 OK"
        };
        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Verifies a delivery as a receiver would, with the Standard Webhooks scheme written out here: HMAC-SHA256
/// of `id.timestamp.body` under the base64 key after `whsec_`, compared with each `v1,` signature.
fn verify(secret: &str, r: &Received) -> bool {
    let Ok(key) = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_"))
    else {
        return false;
    };
    let (Some(id), Some(ts), Some(sigs)) =
        (r.headers.get("webhook-id"), r.headers.get("webhook-timestamp"), r.headers.get("webhook-signature"))
    else {
        return false;
    };
    let Ok(ts_value) = ts.parse::<i64>() else { return false };
    if (chrono::Utc::now().timestamp() - ts_value).abs() > 300 {
        return false;
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    sigs.split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first delivery of each change, by `webhook-id`, in the order received, as (path, payload).
fn distinct(received: &[Received]) -> Vec<(String, Value)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for r in received {
        if seen.insert((r.path.clone(), r.headers["webhook-id"].clone())) {
            out.push((r.path.clone(), serde_json::from_slice(&r.body).unwrap()));
        }
    }
    out
}

#[test]
fn webhooks_get_every_change_in_order_signed_through_failures_and_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    settings.listen = "127.0.0.1:0".into();
    settings.durability = DurabilityMode::Flush;
    settings.scim_token = Some(SCIM_TOKEN.into());
    settings.admin_token = Some(ADMIN_TOKEN.into());
    settings.webhooks = WebhookConfig {
        retry_min: Duration::from_millis(10),
        retry_max: Duration::from_millis(100),
        pause_after: 8,
        timeout: Duration::from_secs(5),
    };
    let app = spawn_with(settings.clone());
    let receiver = Receiver::start();
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
    let all = json!({"url": receiver.url("/all"), "secret": secret,
        "events": ["entitlement.granted", "entitlement.changed", "entitlement.revoked", "entitlement.failed"]});
    let created = app.admin(Method::PUT, "/webhooks/all", Some(&all));
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(created.headers().get("etag").is_some());
    let view: Value = created.json().unwrap();
    assert!(view.get("secret").is_none(), "the secret is never shown: {view}");
    let revoked =
        json!({"url": receiver.url("/revoked"), "secret": secret, "events": ["entitlement.revoked"]});
    app.admin_ok(Method::PUT, "/webhooks/revoked", Some(&revoked), StatusCode::CREATED);

    // strict input: every problem at once
    let bad = json!({"url": "ftp://x", "secret": "nope", "events": ["entitlement.granted", "user.created"], "colour": 1});
    let res = expect_status(app.admin(Method::PUT, "/webhooks/bad", Some(&bad)), StatusCode::BAD_REQUEST);
    assert_eq!(res["errors"][0]["field"], json!("colour"), "{res}");
    let bad = json!({"url": "ftp://x", "secret": "nope", "events": ["entitlement.granted", "user.created"]});
    let res =
        expect_status(app.admin(Method::PUT, "/webhooks/bad", Some(&bad)), StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> =
        res["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["url", "secret", "events[1]"], "{res}");

    product(&app, "meeting", None);
    product(&app, "webinar", None);
    let staff = id(&app.create_group("Staff"));
    let rule_id = rule(&app, &staff, &["meeting"]);
    sync_on(&app);
    let users: Vec<String> = (0..40).map(|i| user(&app, &format!("w{i}@example.com"))).collect();
    app.add_members(&staff, &users.iter().map(String::as_str).collect::<Vec<_>>());
    app.settle();
    app.admin_ok(
        Method::PATCH,
        &format!("/rules/{rule_id}"),
        Some(&json!({"products": ["meeting", "webinar"]})),
        StatusCode::OK,
    );
    app.settle();
    let delivered =
        |hook: &str| app.admin_ok(Method::GET, &format!("/webhooks/{hook}"), None, StatusCode::OK);
    wait_until("the first changes are delivered", || {
        delivered("all")["position"].as_u64() == Some(feed_cursor(&app))
    });

    // the receiver goes down while users lose their products: the webhook pauses
    receiver.down.store(true, Ordering::SeqCst);
    for uid in &users[..15] {
        app.remove_member(&staff, uid);
    }
    app.settle();
    wait_until("the webhook pauses", || delivered("all")["status"] == json!("paused"));
    let sync = app.admin_ok(Method::GET, "/sync", None, StatusCode::OK);
    let queue = sync["delivery"]["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == json!("all"))
        .unwrap()
        .clone();
    assert!(queue["waiting"].as_u64().unwrap() > 0 && queue["failures"].as_u64().unwrap() >= 8, "{queue}");
    assert!(queue["oldestWaitingSeconds"].as_i64().is_some(), "{queue}");
    let log = delivered("all")["log"].clone();
    assert!(log[0]["error"].as_str().is_some() && log[0]["status"].is_null(), "{log}");

    // back up: nothing is sent until the admin resumes the webhook
    receiver.down.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(delivered("all")["status"], json!("paused"));
    for hook in ["all", "revoked"] {
        let resumed = app.admin_ok(Method::POST, &format!("/webhooks/{hook}/resume"), None, StatusCode::OK);
        assert_ne!(resumed["status"], json!("paused"), "{resumed}");
    }
    for uid in &users[15..20] {
        set_active(&app, uid, false);
    }
    app.settle();
    let head = feed_cursor(&app);
    wait_until("everything is delivered", || {
        delivered("all")["position"].as_u64() == Some(head)
            && delivered("revoked")["position"].as_u64() == Some(head)
    });

    let received = receiver.accepted();
    let requests: u64 = receiver.requests.lock().unwrap().values().sum();
    assert!(requests as usize > received.len(), "some requests failed");
    for r in &received {
        assert!(verify(&secret, r), "a delivery fails verification: {r:?}");
        let wrong = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([8u8; 32]));
        assert!(!verify(&wrong, r), "a delivery verifies with the wrong secret");
        let mut tampered = r.clone();
        tampered.body.push(b' ');
        assert!(!verify(&secret, &tampered), "a changed body still verifies");
    }
    let feed = read_feed(&app, 0, head);
    let got = distinct(&received);
    let to_all: Vec<Value> = got.iter().filter(|(p, _)| p == "/all").map(|(_, b)| b.clone()).collect();
    let to_revoked: Vec<Value> =
        got.iter().filter(|(p, _)| p == "/revoked").map(|(_, b)| b.clone()).collect();
    // every change, each once in order (first deliveries), the whole change as `data`
    let data: Vec<Value> = to_all.iter().map(|b| b["data"].clone()).collect();
    assert_eq!(data, feed, "the webhook got every change of the feed in order");
    for b in &to_all {
        assert_eq!(b["type"], b["data"]["type"]);
    }
    let revocations: Vec<Value> =
        feed.iter().filter(|c| c["type"] == json!("entitlement.revoked")).cloned().collect();
    assert_eq!(revocations.len(), 20);
    assert_eq!(to_revoked.iter().map(|b| b["data"].clone()).collect::<Vec<_>>(), revocations);
    // in order per user, duplicates included: a user's changes never arrive out of order
    let mut last: HashMap<String, u64> = HashMap::new();
    for r in received.iter().filter(|r| r.path == "/all") {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let (uid, cursor) =
            (body["data"]["userId"].as_str().unwrap().to_string(), body["data"]["cursor"].as_u64().unwrap());
        assert!(last.get(&uid).is_none_or(|c| *c <= cursor), "user {uid}: change {cursor} after a later one");
        last.insert(uid, cursor);
    }
    let hook = delivered("all");
    assert_eq!((hook["status"].clone(), hook["waiting"].clone()), (json!("active"), json!(0)), "{hook}");
    assert!(
        hook["log"].as_array().unwrap().iter().any(|a| a["status"] == json!(200) && a["latencyMs"].is_u64())
    );

    // a replace keeps the secret and position; delete ends it
    let etag = app.admin(Method::GET, "/webhooks/all", None).headers()["etag"].to_str().unwrap().to_string();
    let replace = json!({"url": receiver.url("/all"), "events": ["entitlement.granted"]});
    let res = app
        .client
        .put(format!("http://{}/admin/v1/webhooks/all", app.addr))
        .bearer_auth(&app.admin_token)
        .header("If-Match", "W/\"stale\"")
        .json(&replace)
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let res = app
        .client
        .put(format!("http://{}/admin/v1/webhooks/all", app.addr))
        .bearer_auth(&app.admin_token)
        .header("If-Match", etag)
        .json(&replace)
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let replaced: Value = res.json().unwrap();
    assert_eq!(
        (replaced["position"].as_u64(), replaced["events"].clone()),
        (Some(head), json!(["entitlement.granted"]))
    );
    let list = app.admin_ok(Method::GET, "/webhooks", None, StatusCode::OK);
    assert_eq!(list["totalResults"], json!(2));

    // positions are stored: after a restart nothing delivered is sent again, and what comes next is
    drop(app);
    let app = spawn_with(settings);
    let delivered =
        |hook: &str| app.admin_ok(Method::GET, &format!("/webhooks/{hook}"), None, StatusCode::OK);
    assert_eq!(delivered("revoked")["position"].as_u64(), Some(head));
    set_active(&app, &users[20], false);
    app.settle();
    wait_until("the change after the restart is delivered", || {
        delivered("revoked")["position"].as_u64() == Some(head + 1)
    });
    let after_restart = distinct(&receiver.accepted()[received.len()..]);
    assert_eq!(after_restart.len(), 1, "only the new change is sent: {after_restart:?}");
    assert_eq!(after_restart[0].1["data"]["userId"], json!(users[20]));
    app.admin_ok(Method::DELETE, "/webhooks/all", None, StatusCode::NO_CONTENT);
    app.admin_ok(Method::GET, "/webhooks/all", None, StatusCode::NOT_FOUND);
}

#[test]
fn a_receiver_that_never_answers_holds_up_neither_scim_nor_the_engine() {
    // accepts connections and never answers them
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    settings.listen = "127.0.0.1:0".into();
    settings.durability = DurabilityMode::Flush;
    settings.scim_token = Some(SCIM_TOKEN.into());
    settings.admin_token = Some(ADMIN_TOKEN.into());
    // far longer than the engine may take to settle (30 s in `settle`)
    settings.webhooks = WebhookConfig { timeout: Duration::from_secs(600), ..WebhookConfig::default() };
    let app = spawn_with(settings);
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([1u8; 24]));
    let hook =
        json!({"url": format!("http://{addr}/hook"), "secret": secret, "events": ["entitlement.granted"]});
    app.admin_ok(Method::PUT, "/webhooks/stuck", Some(&hook), StatusCode::CREATED);
    product(&app, "meeting", None);
    let staff = id(&app.create_group("Staff"));
    rule(&app, &staff, &["meeting"]);
    sync_on(&app);
    for round in 0..3 {
        let users: Vec<String> = (0..10).map(|i| user(&app, &format!("s{round}-{i}@example.com"))).collect();
        app.add_members(&staff, &users.iter().map(String::as_str).collect::<Vec<_>>());
        app.settle();
        for uid in &users {
            assert_eq!(app.entitlements(uid)["state"], json!("entitled"));
        }
    }
    let view = app.admin_ok(Method::GET, "/webhooks/stuck", None, StatusCode::OK);
    assert_eq!((view["position"].clone(), view["waiting"].clone()), (json!(0), json!(30)), "{view}");
    let page = app.admin_ok(Method::GET, "/entitlements/changes?after=0&limit=1000", None, StatusCode::OK);
    assert_eq!(page["totalResults"], json!(30), "the feed is read as usual meanwhile");
}

/// An admin request to a server started as a process.
fn admin_at(
    client: &reqwest::blocking::Client,
    addr: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = client.request(method, format!("http://{addr}/admin/v1{path}")).bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.header("Content-Type", "application/json").body(body.to_string());
    }
    let res = req.send().expect("admin request");
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().unwrap_or(Value::Null)
}

#[test]
fn kill_9_takes_back_no_change_the_feed_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = crate::crash::start_binary(dir.path());
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let admin = |addr: &str, method: Method, path: &str, body: Option<Value>| {
        admin_at(&client, addr, method, path, body)
    };
    admin(
        &addr,
        Method::PUT,
        "/products/meeting",
        Some(json!({"name": "Meeting", "seats": null, "requires": []})),
    );
    let scim = |addr: &str, method: Method, path: &str, body: Value| {
        client
            .request(method, format!("http://{addr}/scim/v2{path}"))
            .bearer_auth(SCIM_TOKEN)
            .body(body.to_string())
            .send()
    };
    let group: Value =
        scim(&addr, Method::POST, "/Groups", json!({"displayName": "Staff"})).unwrap().json().unwrap();
    let gid = group["id"].as_str().unwrap().to_string();
    admin(&addr, Method::POST, "/rules", Some(json!({"group": gid, "products": ["meeting"]})));
    admin(&addr, Method::PUT, "/sync", Some(json!({"enabled": true})));

    // users join while a reader follows the feed; the server is killed mid-stream
    let seen = Mutex::new(Vec::<Value>::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut after = 0;
            while !stop.load(Ordering::SeqCst) {
                let url = format!("http://{addr}/admin/v1/entitlements/changes?after={after}&wait=1");
                let Ok(res) = client.get(url).bearer_auth(ADMIN_TOKEN).send() else { return };
                let Ok(page) = res.json::<Value>() else { return };
                after = page["cursor"].as_u64().unwrap_or(after);
                seen.lock().unwrap().extend(page["Resources"].as_array().cloned().unwrap_or_default());
            }
        });
        for w in 0..2 {
            let (stop, scim, gid, addr) = (&stop, &scim, &gid, &addr);
            s.spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let name = format!("k{w}-{i}@example.com");
                    let Ok(res) = scim(addr, Method::POST, "/Users", json!({"userName": name})) else {
                        return;
                    };
                    let Ok(user) = res.json::<Value>() else { return };
                    let Some(uid) = user["id"].as_str() else { return };
                    let add =
                        json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]});
                    if scim(addr, Method::PATCH, &format!("/Groups/{gid}"), add).is_err() {
                        return;
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.lock().unwrap().len() < 100 {
            assert!(Instant::now() < deadline, "the feed did not grow");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("kill -9");
        child.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
    });
    let seen = seen.into_inner().unwrap();
    rebuild(&seen, 0);

    let (mut child, addr) = crate::crash::start_binary(dir.path());
    let settle = |addr: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while admin(addr, Method::GET, "/sync", None)["pending"] != json!(0) {
            assert!(Instant::now() < deadline, "the engine did not settle");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    settle(&addr);
    let read_all = |addr: &str| {
        let mut out: Vec<Value> = Vec::new();
        loop {
            let after = out.last().map_or(0, |c| c["cursor"].as_u64().unwrap());
            let page =
                admin(addr, Method::GET, &format!("/entitlements/changes?after={after}&limit=1000"), None);
            let changes = page["Resources"].as_array().unwrap();
            if changes.is_empty() {
                return out;
            }
            out.extend(changes.iter().cloned());
        }
    };
    let after_restart = read_all(&addr);
    assert!(
        after_restart.len() >= seen.len(),
        "{} changes after the restart, {} read before",
        after_restart.len(),
        seen.len()
    );
    assert_eq!(
        after_restart[..seen.len()],
        seen[..],
        "every change read before the crash is there, the same"
    );
    let rebuilt = rebuild(&after_restart, 0);
    let listed = admin(&addr, Method::GET, "/entitlements?count=1000", None);
    assert_eq!(listed["cursor"].as_u64(), Some(after_restart.len() as u64));
    for u in listed["Resources"].as_array().unwrap() {
        let from_feed = rebuilt.get(u["user"].as_str().unwrap()).map_or(json!([]), products_of);
        assert_eq!(from_feed, u["products"], "{u}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
