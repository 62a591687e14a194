//! Measures two admin API answers over HTTP against a server started in process: the directory look-up
//! `GET /admin/v1/groups?search=` over GROUPS groups (default 10,000), and a rule preview's summary
//! (`?view=summary`) against the full list of changing users (`?view=users&count=1000`) over USERS users
//! (default 2,000) in 10 groups with 10 rules.
//!
//! `cargo run --release --example admin_lookup -- [GROUPS] [USERS]` prints one JSON line per measurement
//! with the p50 and p90 in milliseconds.

// A measurement tool: a failed step should stop it with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};
use usersync::app::{self, Settings};
use usersync::store::DurabilityMode;

/// The server's allocator, so that the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SCIM: &str = "bench-scim";
const ADMIN: &str = "bench-admin";
const RULE_GROUPS: usize = 10;

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() * 9 / 10])
}

fn timed(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    let ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    percentiles(ms)
}

fn main() {
    let groups: usize = std::env::args().nth(1).map_or(10_000, |n| n.parse().expect("a number of groups"));
    let users: usize = std::env::args().nth(2).map_or(2_000, |n| n.parse().expect("a number of users"));
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    settings.listen = "127.0.0.1:0".into();
    settings.durability = DurabilityMode::Relaxed;
    settings.scim_token = Some(SCIM.into());
    settings.admin_token = Some(ADMIN.into());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let running = app::start(&settings).expect("server starts");
            tx.send(running.addr).unwrap();
            running.server.await.unwrap();
        })
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let client = Client::builder().timeout(Duration::from_secs(600)).build().unwrap();
    let scim = |path: &str, body: Value| -> Value {
        let res =
            client.post(format!("http://{addr}/scim/v2{path}")).bearer_auth(SCIM).json(&body).send().unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().unwrap()
    };
    let admin = |method: reqwest::Method, path: &str, body: Option<&Value>| -> Value {
        let mut req = client.request(method, format!("http://{addr}/admin/v1{path}")).bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().unwrap()
    };

    let mut gids = Vec::with_capacity(groups);
    for g in 0..groups {
        let group = scim(
            "/Groups",
            json!({"displayName": format!("Department {g:05} {}", ["Sales", "Engineering", "Support"][g % 3])}),
        );
        gids.push(group["id"].as_str().unwrap().to_string());
    }
    let mut uids = Vec::with_capacity(users);
    for u in 0..users {
        let user = scim("/Users", json!({"userName": format!("user{u}@example.com")}));
        uids.push(user["id"].as_str().unwrap().to_string());
    }
    for (g, gid) in gids.iter().take(RULE_GROUPS).enumerate() {
        let members: Vec<Value> =
            uids.iter().skip(g).step_by(RULE_GROUPS).map(|u| json!({"value": u})).collect();
        let body = json!({"Operations": [{"op": "add", "path": "members", "value": members}]});
        let res = client
            .patch(format!("http://{addr}/scim/v2/Groups/{gid}"))
            .bearer_auth(SCIM)
            .json(&body)
            .send()
            .unwrap();
        assert!(res.status().is_success());
    }
    let product = json!({"name": "Meeting", "seats": null, "requires": []});
    admin(reqwest::Method::PUT, "/products/meeting", Some(&product));

    // a search that matches a third of the groups, and one that matches a single group
    for search in ["sales", "00042%20sales"] {
        let path = format!("/groups?search={search}&count=50");
        let total = admin(reqwest::Method::GET, &path, None)["totalResults"].clone();
        let (p50, p90) = timed(200, || drop(admin(reqwest::Method::GET, &path, None)));
        println!(
            "{}",
            json!({"measurement": "groups search", "groups": groups, "search": search, "matches": total, "p50Ms": p50, "p90Ms": p90})
        );
    }

    let rules: Vec<Value> =
        gids.iter().take(RULE_GROUPS).map(|g| json!({"group": g, "products": ["meeting"]})).collect();
    let proposed = json!({"rules": rules});
    for view in ["summary", "users&count=1000"] {
        let path = format!("/rules/preview?view={view}");
        let (p50, p90) = timed(20, || drop(admin(reqwest::Method::POST, &path, Some(&proposed))));
        println!(
            "{}",
            json!({"measurement": "preview", "view": view, "users": users, "p50Ms": p50, "p90Ms": p90})
        );
    }
}
