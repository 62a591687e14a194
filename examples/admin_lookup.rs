//! Measures admin API answers over HTTP against a server started in process, at the size the admin API's
//! targets are set for: USERS users (default 100,000) in the 50 groups and 50 rules of
//! `common/rules_layout.rs` (the layout of workload 4), among GROUPS directory groups (default 10,000), sync
//! on and drained. Timed, from one client: one user's explanation (`GET /users/{id}/entitlements`), the
//! directory look-up `GET /groups?search=`, and a preview of the reversed rule order as its summary
//! (`?view=summary`) and as the full preview (`?view=users&count=1000`).
//!
//! `cargo run --release --example admin_lookup -- [GROUPS] [USERS] [RUN]` prints one JSON line per
//! measurement in `loadgen`'s result format (workload `admin`; `value` is the p50 in milliseconds, `note`
//! gives the p90 and what was asked), which `bench/run.sh` adds to its results.
//!
//! The directory is written through the store of the running server (as `examples/reevaluate.rs` does),
//! since creating it over SCIM would take most of the run; everything measured goes over HTTP.

// A measurement tool: a failed step should stop it with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};
use usersync::app::{self, DEFAULT_ACCOUNT, Settings};
use usersync::scim::patch::parse_request;
use usersync::scim::resource::normalize;
use usersync::scim::schema::ResourceKind;
use usersync::store::sync::Product;
use usersync::store::{Actor, DurabilityMode};

#[path = "common/rules_layout.rs"]
mod rules_layout;

use rules_layout::{GROUPS as RULE_GROUPS, PRODUCTS};

/// The server's allocator, so that the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SCIM: &str = "bench-scim-token-0123456789abcdef0123";
const ADMIN: &str = "bench-admin-token-0123456789abcdef012";

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() * 9 / 10])
}

fn timed(runs: usize, mut f: impl FnMut(usize)) -> (f64, f64) {
    let ms: Vec<f64> = (0..runs)
        .map(|i| {
            let t0 = Instant::now();
            f(i);
            t0.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    percentiles(ms)
}

fn main() {
    let arg = |i: usize, default: usize| -> usize {
        std::env::args().nth(i).map_or(default, |n| n.parse().expect("a whole number"))
    };
    let (groups, users, run) = (arg(1, 10_000), arg(2, 100_000), arg(3, 1));
    assert!(groups >= RULE_GROUPS, "at least {RULE_GROUPS} groups");
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
            tx.send((running.addr, running.store.clone())).unwrap();
            running.server.await.unwrap();
        })
    });
    let (addr, store) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let client = Client::builder().timeout(Duration::from_secs(600)).build().unwrap();
    let admin = |method: reqwest::Method, path: &str, body: Option<&Value>| -> Value {
        let mut req = client.request(method, format!("http://{addr}/admin/v1{path}")).bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().unwrap()
    };

    // --- the directory, through the server's store --------------------------------------------------------
    let started = Instant::now();
    let acct = store.ensure_account(DEFAULT_ACCOUNT).unwrap().0.id;
    let actor = Actor::engine();
    let registry = store.registry(acct);
    let (user_schema, group_schema) =
        (registry.resource(ResourceKind::User), registry.resource(ResourceKind::Group));
    for p in PRODUCTS {
        let product = Product { id: p.into(), name: p.into(), seats: None, requires: vec![] };
        store.put_product(acct, &product, &actor).unwrap();
    }
    let group = |name: String| -> String {
        let input = normalize(group_schema, &json!({"displayName": name})).unwrap();
        store.create_group(acct, group_schema, &input, &actor).unwrap().0["id"].as_str().unwrap().to_string()
    };
    let rule_gids: Vec<String> = (0..RULE_GROUPS).map(|g| group(format!("Rule group {g}"))).collect();
    for g in RULE_GROUPS..groups {
        group(format!("Department {g:05} {}", ["Sales", "Engineering", "Support"][g % 3]));
    }
    let mut uids = Vec::with_capacity(users);
    for i in 0..users {
        let body = json!({"userName": format!("user{i}@example.com"), "title": rules_layout::title(i),
            "name": {"givenName": "User", "familyName": format!("{i}")},
            "emails": [{"value": format!("user{i}@example.com"), "primary": true}]});
        let input = normalize(user_schema, &body).unwrap();
        uids.push(
            store.create_user(acct, user_schema, &input, &actor).unwrap()["id"].as_str().unwrap().to_string(),
        );
    }
    let mut members: Vec<Vec<&String>> = vec![Vec::new(); RULE_GROUPS];
    for (i, uid) in uids.iter().enumerate() {
        for g in rules_layout::groups_of(i) {
            members[g].push(uid);
        }
    }
    for (g, list) in members.iter().enumerate() {
        for chunk in list.chunks(1000) {
            let value: Vec<Value> = chunk.iter().map(|u| json!({"value": u})).collect();
            let ops =
                parse_request(&json!({"Operations": [{"op": "add", "path": "members", "value": value}]}))
                    .unwrap();
            store.patch_group(acct, group_schema, &rule_gids[g], &ops, None, &actor).unwrap();
        }
    }
    // The rules over the admin API, then sync on and drained.
    let rule_doc = |g: usize| {
        json!({"group": rule_gids[g], "filter": rules_layout::filter(g), "products": rules_layout::bundle(g),
            "description": format!("benchmark rule of group {g}")})
    };
    let mut rule_ids = Vec::with_capacity(RULE_GROUPS);
    for g in 0..RULE_GROUPS {
        let saved = admin(reqwest::Method::POST, "/rules", Some(&rule_doc(g)));
        rule_ids.push(saved["id"].as_str().unwrap().to_string());
    }
    admin(reqwest::Method::PUT, "/sync", Some(&json!({"enabled": true})));
    while admin(reqwest::Method::GET, "/sync", None)["pending"].as_u64() != Some(0) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "admin_lookup: {users} users, {groups} groups, {RULE_GROUPS} rules ready in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let case = format!("users={users}, groups={groups}, rules={RULE_GROUPS}");
    let emit = |measure: &str, (p50, p90): (f64, f64), note: String| {
        let line = json!({"workload": "admin", "case": case, "target": "usersync", "run": run,
            "measure": measure, "unit": "ms", "value": (p50 * 1000.0).round() / 1000.0,
            "p50_ms": p50, "p90_ms": p90, "note": format!("p90 {p90:.2} ms; {note}")});
        println!("{line}");
    };

    // one user's explanation: every rule's outcome for a user, spread over the users
    let samples = 200;
    let step = (users / samples).max(1);
    let explained = timed(samples, |i| {
        let uid = &uids[(i * step + 7) % users];
        drop(admin(reqwest::Method::GET, &format!("/users/{uid}/entitlements"), None));
    });
    emit("one user's explanation, p50 (ms)", explained, format!("{samples} users, one request each"));

    // a search that matches a third of the groups, and one that matches a single group
    for search in ["sales", "00420%20sales"] {
        let path = format!("/groups?search={search}&count=50");
        let total = admin(reqwest::Method::GET, &path, None)["totalResults"].clone();
        let figures = timed(200, |_| drop(admin(reqwest::Method::GET, &path, None)));
        let shown = search.replace("%20", " ");
        emit(
            &format!("GET /groups?search={shown}, p50 (ms)"),
            figures,
            format!("{total} of {groups} groups match, a page of 50; 200 requests"),
        );
    }

    // a preview of the reversed order: its summary, and the full preview (a page of 1000 users)
    let mut reversed: Vec<Value> = (0..RULE_GROUPS)
        .map(|g| {
            let mut doc = rule_doc(g);
            doc["id"] = json!(rule_ids[g]);
            doc
        })
        .collect();
    reversed.reverse();
    let proposed = json!({"rules": reversed});
    let changing =
        admin(reqwest::Method::POST, "/rules/preview?view=summary", Some(&proposed))["changing"].clone();
    for (view, label) in
        [("summary", "preview summary"), ("users&count=1000", "full preview (1000 users a page)")]
    {
        let path = format!("/rules/preview?view={view}");
        let figures = timed(10, |_| drop(admin(reqwest::Method::POST, &path, Some(&proposed))));
        emit(
            &format!("{label}, p50 (ms)"),
            figures,
            format!(
                "the {RULE_GROUPS} rules reversed, {changing} of {users} users would change; 10 requests"
            ),
        );
    }
}
