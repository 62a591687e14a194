//! Crash safety: `kill -9` the real binary while it acknowledges writes; after a restart every acknowledged
//! write is there and every index agrees with the records.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use usersync::app;
use usersync::clock::SystemClock;
use usersync::store::DurabilityMode;

use crate::helpers::*;

/// Starts the built binary and returns it with its address, read from its start-up line. A store this
/// process just closed may still be releasing its file lock; the start is then tried again.
pub fn start_binary(data: &std::path::Path) -> (Child, String) {
    start_binary_with(data, &[])
}

/// [`start_binary`] with more arguments for `serve`.
pub fn start_binary_with(data: &std::path::Path, extra: &[String]) -> (Child, String) {
    for _ in 0..100 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_usersync"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .env("USERSYNC_SCIM_TOKEN", SCIM_TOKEN)
            .env("USERSYNC_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut stderr = child.stderr.take().expect("stderr");
        let addr = lines.by_ref().map_while(Result::ok).find_map(|line| {
            let rest = line.strip_prefix("usersync listening on http://")?;
            rest.split_whitespace().next().map(str::to_string)
        });
        if let Some(addr) = addr {
            std::thread::spawn(move || for _ in lines {});
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::stderr()));
            return (child, addr);
        }
        child.wait().unwrap();
        let mut message = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut message).unwrap();
        assert!(message.contains("in use"), "the binary did not start: {message}");
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the data directory stayed locked");
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_binary(dir.path());
    let base = format!("http://{addr}/scim/v2");
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let gid = {
        let res = client
            .post(format!("{base}/Groups"))
            .bearer_auth(SCIM_TOKEN)
            .body(json!({"displayName": "Crash"}).to_string())
            .send()
            .unwrap();
        expect_status(res, StatusCode::CREATED)["id"].as_str().unwrap().to_string()
    };
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, base, acknowledged, stop, gid) =
                (client.clone(), base.clone(), acknowledged.clone(), stop.clone(), gid.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let name = format!("crash-{w}-{i}@example.com");
                    let body = json!({"userName": name, "externalId": format!("x{w}-{i}")});
                    let Ok(res) = client
                        .post(format!("{base}/Users"))
                        .bearer_auth(SCIM_TOKEN)
                        .body(body.to_string())
                        .send()
                    else {
                        break;
                    };
                    if res.status() != StatusCode::CREATED {
                        break;
                    }
                    let Ok(user) = res.json::<serde_json::Value>() else { break };
                    let uid = user["id"].as_str().unwrap().to_string();
                    let add =
                        json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]});
                    let ok = client
                        .patch(format!("{base}/Groups/{gid}"))
                        .bearer_auth(SCIM_TOKEN)
                        .body(add.to_string())
                        .send()
                        .is_ok_and(|r| r.status() == StatusCode::NO_CONTENT);
                    acknowledged.lock().unwrap().push((uid, if ok { "member".into() } else { name }));
                    if !ok {
                        break;
                    }
                }
            })
        })
        .collect();
    // let the writers get going, then kill the server mid-stream
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 150 && !writers.iter().all(|w| w.is_finished()) {
        assert!(std::time::Instant::now() < deadline, "the writers made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill -9");
    child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    // every index agrees with the records
    {
        let store = app::open_store(dir.path(), DurabilityMode::Flush, Arc::new(SystemClock)).unwrap();
        let problems = store.verify().unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
        store.shutdown();
    }
    // every acknowledged user and membership is there
    let (mut child, addr) = start_binary(dir.path());
    let base = format!("http://{addr}/scim/v2");
    let group = client
        .get(format!("{base}/Groups/{gid}"))
        .bearer_auth(SCIM_TOKEN)
        .send()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap();
    let members: Vec<&str> = group["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["value"].as_str()).collect())
        .unwrap_or_default();
    for (uid, what) in &acknowledged {
        let res = client.get(format!("{base}/Users/{uid}")).bearer_auth(SCIM_TOKEN).send().unwrap();
        assert_eq!(res.status(), StatusCode::OK, "acknowledged user {uid} is missing");
        if what == "member" {
            assert!(members.contains(&uid.as_str()), "acknowledged membership of {uid} is missing");
        }
    }
    assert!(acknowledged.len() >= 150);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// An admin call on a server started from the binary.
pub fn admin(
    client: &reqwest::blocking::Client,
    addr: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut req = client.request(method, format!("http://{addr}/admin/v1{path}")).bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.body(body.to_string());
    }
    let res = req.send().unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().unwrap_or(serde_json::Value::Null)
}

/// The rules of the membership crash test, highest priority first: (group, only for leads, products,
/// language).
const CRASH_RULES: [(usize, bool, &[&str], &str); 4] = [
    (0, true, &["meeting", "webinar"], "fr_FR"),
    (1, false, &["meeting"], "en_US"),
    (0, false, &["training"], "en_US"),
    (2, false, &["meeting", "training"], "en_US"),
];

/// What the rules give a user in `groups`: the deciding rule's number, products and language.
fn expected_bundle(
    lead: bool,
    groups: &BTreeSet<usize>,
) -> Option<(usize, &'static [&'static str], &'static str)> {
    CRASH_RULES
        .iter()
        .enumerate()
        .find(|(_, (g, leads_only, _, _))| groups.contains(g) && (lead || !leads_only))
        .map(|(i, (_, _, products, language))| (i + 1, *products, *language))
}

/// One user's membership change in each round of the burst: (group, join?), across the groups.
fn burst_for(i: usize) -> [(usize, bool); 4] {
    [0, 1, 2, 3].map(|k| ((i + k * 2) % 3, !(i / 3 + k).is_multiple_of(3)))
}

#[test]
fn kill_9_after_membership_changes_loses_no_entitlement_consequence() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_binary(dir.path());
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let base = format!("http://{addr}/scim/v2");
    let post = |path: &str, body: serde_json::Value| {
        let res = client
            .post(format!("{base}{path}"))
            .bearer_auth(SCIM_TOKEN)
            .body(body.to_string())
            .send()
            .unwrap();
        expect_status(res, StatusCode::CREATED)["id"].as_str().unwrap().to_string()
    };
    for p in ["meeting", "webinar", "training"] {
        admin(
            &client,
            &addr,
            reqwest::Method::PUT,
            &format!("/products/{p}"),
            Some(json!({"name": p, "seats": null, "requires": []})),
        );
    }
    let groups: Vec<String> =
        (0..3).map(|i| post("/Groups", json!({"displayName": format!("Crash {i}")}))).collect();
    for (g, leads_only, products, language) in CRASH_RULES {
        let filter = leads_only.then_some("title eq \"lead\"");
        let body = json!({"group": groups[g], "filter": filter, "products": products, "language": language});
        admin(&client, &addr, reqwest::Method::POST, "/rules", Some(body));
    }
    let leads: Vec<bool> = (0..240).map(|i| i % 4 == 0).collect();
    let users: Vec<String> = (0..240)
        .map(|i| {
            let title = if leads[i] { "lead" } else { "member" };
            post("/Users", json!({"userName": format!("k{i}@example.com"), "title": title}))
        })
        .collect();
    let members = Arc::new(Mutex::new(BTreeSet::<(usize, usize)>::new()));
    let patch = |client: &reqwest::blocking::Client, g: usize, op: &str, uids: &[&String]| {
        let value: Vec<_> = uids.iter().map(|u| json!({"value": u})).collect();
        let body = json!({"Operations": [{"op": op, "path": "members", "value": value}]});
        let res = client
            .patch(format!("{base}/Groups/{}", groups[g]))
            .bearer_auth(SCIM_TOKEN)
            .body(body.to_string())
            .send()
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    };
    // everyone starts in one group, sync goes on and the engine catches up before the burst
    for g in 0..3 {
        let chunk: Vec<&String> =
            users.iter().enumerate().filter(|(i, _)| i % 3 == g).map(|(_, u)| u).collect();
        patch(&client, g, "add", &chunk);
        members.lock().unwrap().extend((0..users.len()).filter(|i| i % 3 == g).map(|i| (g, i)));
    }
    // The burst takes products from many users at once, which the mass-revocation brake would hold; this
    // test is about every consequence being applied, so the brake is set out of reach.
    let brake = json!({"massRevocation": {"minUsers": 1_000_000}});
    admin(&client, &addr, reqwest::Method::PATCH, "/settings", Some(brake));
    admin(&client, &addr, reqwest::Method::PUT, "/sync", Some(json!({"enabled": true})));
    wait_until_drained(&client, &addr);

    // the burst: four clients, each changing only its own users' memberships, in PATCHes of several
    // members and one round after another, so that the final directory is exactly what was acknowledged;
    // it ends with one large PATCH, whose consequences the engine cannot have applied by the kill
    std::thread::scope(|s| {
        for t in 0..4 {
            let (client, users, members) = (client.clone(), &users, members.clone());
            let patch = &patch;
            s.spawn(move || {
                let mine: Vec<usize> = (0..users.len()).filter(|i| i % 4 == t).collect();
                for round in 0..4 {
                    for (g, join) in [0, 1, 2].into_iter().flat_map(|g| [(g, true), (g, false)]) {
                        let chosen: Vec<usize> =
                            mine.iter().copied().filter(|i| burst_for(*i)[round] == (g, join)).collect();
                        if chosen.is_empty() {
                            continue;
                        }
                        let uids: Vec<&String> = chosen.iter().map(|i| &users[*i]).collect();
                        patch(&client, g, if join { "add" } else { "remove" }, &uids);
                        let mut members = members.lock().unwrap();
                        for i in chosen {
                            if join {
                                members.insert((g, i))
                            } else {
                                members.remove(&(g, i))
                            };
                        }
                    }
                }
            });
        }
    });
    let everyone: Vec<&String> = users.iter().collect();
    patch(&client, 2, "add", &everyone);
    members.lock().unwrap().extend((0..users.len()).map(|i| (2, i)));
    child.kill().expect("kill -9 right after the last acknowledged PATCH");
    child.wait().unwrap();

    // the kill left evaluations owed, and the store is consistent (seat counters included)
    {
        let store = app::open_store(dir.path(), DurabilityMode::Flush, Arc::new(SystemClock)).unwrap();
        let problems = store.verify().unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
        let acct = store.accounts().unwrap().into_iter().find(|a| a.name == "default").unwrap().id;
        assert!(store.pending_count(acct).unwrap() > 0, "the engine had caught up: the kill shows nothing");
        store.shutdown();
    }
    let (mut child, addr) = start_binary(dir.path());
    wait_until_drained(&client, &addr);
    let members = members.lock().unwrap().clone();
    let mut holders: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, uid) in users.iter().enumerate() {
        let groups: BTreeSet<usize> = members.iter().filter(|(_, u)| *u == i).map(|(g, _)| *g).collect();
        let e = admin(&client, &addr, reqwest::Method::GET, &format!("/users/{uid}/entitlements"), None);
        let got =
            (e["state"].clone(), e["rule"]["number"].clone(), e["products"].clone(), e["language"].clone());
        let want = match expected_bundle(leads[i], &groups) {
            Some((number, products, language)) => {
                products.iter().for_each(|p| *holders.entry(p).or_default() += 1);
                (json!("entitled"), json!(number), json!(products), json!(language))
            }
            None => (json!("none"), json!(null), json!([]), json!(null)),
        };
        assert_eq!(got, want, "user {i} in groups {groups:?}");
    }
    for p in ["meeting", "webinar", "training"] {
        let product = admin(&client, &addr, reqwest::Method::GET, &format!("/products/{p}"), None);
        assert_eq!(product["used"], json!(holders.get(p).copied().unwrap_or(0)), "{p}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Waits until the server's engine owes no evaluation.
pub fn wait_until_drained(client: &reqwest::blocking::Client, addr: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while admin(client, addr, reqwest::Method::GET, "/sync", None)["pending"] != json!(0) {
        assert!(std::time::Instant::now() < deadline, "pending never drained");
        std::thread::sleep(Duration::from_millis(20));
    }
}
