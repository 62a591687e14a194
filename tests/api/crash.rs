//! Crash safety: `kill -9` the real binary while it acknowledges writes; after a restart every acknowledged
//! write is there and every index agrees with the records.

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

/// Starts the built binary and returns it with its address, read from its start-up line.
pub fn start_binary(data: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_usersync"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("USERSYNC_SCIM_TOKEN", SCIM_TOKEN)
        .env("USERSYNC_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("a start-up line").expect("readable");
        if let Some(rest) = line.strip_prefix("usersync listening on http://") {
            break rest.split_whitespace().next().expect("address").to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
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
fn admin(
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

#[test]
fn kill_9_after_membership_changes_loses_no_entitlement_consequence() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_binary(dir.path());
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
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
    admin(
        &client,
        &addr,
        reqwest::Method::PUT,
        "/products/meeting",
        Some(json!({"name": "Meeting", "seats": null})),
    );
    let groups: Vec<String> =
        (0..2).map(|i| post("/Groups", json!({"displayName": format!("Crash {i}")}))).collect();
    admin(
        &client,
        &addr,
        reqwest::Method::POST,
        "/rules",
        Some(json!({"group": groups[0], "products": ["meeting"]})),
    );
    admin(&client, &addr, reqwest::Method::PUT, "/sync", Some(json!({"enabled": true})));
    let users: Vec<String> =
        (0..300).map(|i| post("/Users", json!({"userName": format!("k{i}@example.com")}))).collect();
    // a burst: everyone joins group 0 (half of it while sync is off, so the engine cannot have caught up),
    // every third user leaves again, sync goes back on, and the server is killed right after that answer
    let join = |chunk: &[String]| {
        let value: Vec<_> = chunk.iter().map(|u| json!({"value": u})).collect();
        let body = json!({"Operations": [{"op": "add", "path": "members", "value": value}]});
        let res = client
            .patch(format!("{base}/Groups/{}", groups[0]))
            .bearer_auth(SCIM_TOKEN)
            .body(body.to_string())
            .send()
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    };
    users[..150].chunks(50).for_each(join);
    admin(&client, &addr, reqwest::Method::PUT, "/sync", Some(json!({"enabled": false})));
    users[150..].chunks(50).for_each(join);
    let leavers: Vec<&String> = users.iter().step_by(3).collect();
    let body = json!({"Operations": [{"op": "remove", "path": "members", "value": leavers.iter().map(|u| json!({"value": u})).collect::<Vec<_>>()}]});
    let res = client
        .patch(format!("{base}/Groups/{}", groups[0]))
        .bearer_auth(SCIM_TOKEN)
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    admin(&client, &addr, reqwest::Method::PUT, "/sync", Some(json!({"enabled": true})));
    child.kill().expect("kill -9");
    child.wait().unwrap();

    let (mut child, addr) = start_binary(dir.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while admin(&client, &addr, reqwest::Method::GET, "/sync", None)["pending"] != json!(0) {
        assert!(std::time::Instant::now() < deadline, "pending never drained");
        std::thread::sleep(Duration::from_millis(20));
    }
    for (i, u) in users.iter().enumerate() {
        let e = admin(&client, &addr, reqwest::Method::GET, &format!("/users/{u}/entitlements"), None);
        let want = if i % 3 == 0 { json!("none") } else { json!("entitled") };
        assert_eq!(e["state"], want, "user {i}");
    }
    let product = admin(&client, &addr, reqwest::Method::GET, "/products/meeting", None);
    assert_eq!(product["used"], json!(200));
    child.kill().unwrap();
    child.wait().unwrap();
}
