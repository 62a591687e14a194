//! Measures the rule engine at scale, in process: N users (default 100,000) in 50 directory groups with 50
//! rules (the layout of `common/rules_layout.rs`, which workload 4 of `loadgen` builds over HTTP); the first
//! evaluation of everyone, a preview of a one-rule edit and of the reversed order, the re-evaluation after reversing the order, a
//! full re-evaluation of everyone, and, for scale, a plain in-memory loop that resolves the same users
//! against the same rules without touching the store.
//!
//! `cargo run --release --example reevaluate -- [USERS]` prints one JSON line per measurement. The reorder
//! evaluates only the users whose deciding rule moved, so its line gives both `evaluatedUsersPerSecond`
//! and `allUsersPerSecond`; `reorderRatio` is the reorder's time over the in-memory loop's.

// A measurement tool: a failed step should stop it with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use usersync::clock::SystemClock;
use usersync::rules::{Engine, compile, preview, resolve};
use usersync::scim::patch::parse_request;
use usersync::scim::resource::normalize;
use usersync::scim::schema::ResourceKind;
use usersync::store::sync::{BrakeSettings, Bundle, Product, References, Rule, RuleEdit};
use usersync::store::{Actor, DurabilityMode, Store, StoreOptions};

#[path = "common/rules_layout.rs"]
mod rules_layout;

/// The server's allocator, so that the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use rules_layout::{GROUPS, PRODUCTS};

fn main() {
    let users: usize = std::env::args().nth(1).map_or(100_000, |n| n.parse().expect("a number of users"));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions {
        path: dir.path().into(),
        durability: DurabilityMode::Relaxed,
        clock: Arc::new(SystemClock),
    })
    .unwrap();
    let (account, _) = store.ensure_account("bench").unwrap();
    let acct = account.id;
    let actor = Actor::engine();
    let registry = store.registry(acct);
    let (user_schema, group_schema) =
        (registry.resource(ResourceKind::User), registry.resource(ResourceKind::Group));

    for p in PRODUCTS {
        store
            .put_product(
                acct,
                &Product { id: p.into(), name: p.into(), seats: None, requires: vec![] },
                &actor,
            )
            .unwrap();
    }
    let started = Instant::now();
    let groups: Vec<String> = (0..GROUPS)
        .map(|g| {
            let input = normalize(group_schema, &json!({"displayName": format!("Group {g}")})).unwrap();
            store.create_group(acct, group_schema, &input, &actor).unwrap().0["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut ids = Vec::with_capacity(users);
    for i in 0..users {
        let body = json!({"userName": format!("user{i}@example.com"), "title": rules_layout::title(i),
            "name": {"givenName": "User", "familyName": format!("{i}")}, "emails": [{"value": format!("user{i}@example.com"), "primary": true}]});
        let input = normalize(user_schema, &body).unwrap();
        ids.push(
            store.create_user(acct, user_schema, &input, &actor).unwrap()["id"].as_str().unwrap().to_string(),
        );
    }
    let mut members: HashMap<usize, Vec<&String>> = HashMap::new();
    for (i, uid) in ids.iter().enumerate() {
        for g in rules_layout::groups_of(i) {
            members.entry(g).or_default().push(uid);
        }
    }
    for (g, list) in &members {
        for chunk in list.chunks(1000) {
            let value: Vec<_> = chunk.iter().map(|u| json!({"value": u})).collect();
            let ops =
                parse_request(&json!({"Operations": [{"op": "add", "path": "members", "value": value}]}))
                    .unwrap();
            store.patch_group(acct, group_schema, &groups[*g], &ops, None, &actor).unwrap();
        }
    }
    report("setup", users, started.elapsed().as_secs_f64());

    let rules: Vec<Rule> = (0..GROUPS)
        .map(|g| Rule {
            id: format!("rule-{g}"),
            number: g as u32 + 1,
            group: groups[g].clone(),
            filter: rules_layout::filter(g),
            description: String::new(),
            bundle: Bundle {
                products: rules_layout::bundle(g).iter().map(|p| p.to_string()).collect(),
                ..Bundle::default()
            },
        })
        .collect();
    let engine = Engine::new(store.clone());
    let accept = |_: &Rule, _: &References| Ok(());
    let edit = |edit: RuleEdit| store.edit_rules(acct, &edit, None, &actor, &accept).unwrap();
    for rule in &rules {
        edit(RuleEdit::Create { rule: rule.clone(), number: None });
    }
    // The reversed order takes products from many users; this measures applying it, so the mass-revocation
    // brake, which would hold those revocations instead, is out of reach.
    let no_brake = BrakeSettings { percent: 100, min_users: u64::MAX };
    store.put_brake_settings(acct, &no_brake, &actor).unwrap();
    store.set_sync(acct, true, &actor).unwrap();
    let t = Instant::now();
    let evaluated = engine.run_pending().unwrap();
    report("first evaluation (sync on)", evaluated, t.elapsed().as_secs_f64());

    // one rule's bundle edited: only the members of its group (and failing users) can be affected
    let mut one_edit = rules.clone();
    let middle = one_edit.len() / 2;
    if let Some(rule) = one_edit.get_mut(middle) {
        rule.bundle.products.retain(|p| p != rules_layout::PRODUCTS[0]);
    }
    let t = Instant::now();
    let p = preview(&store, acct, &one_edit).unwrap();
    report_with(
        "preview of a one-rule edit",
        p.evaluated,
        t.elapsed().as_secs_f64(),
        json!({"changed": p.users.len()}),
    );

    let mut reversed = rules.clone();
    reversed.reverse();
    for (i, r) in reversed.iter_mut().enumerate() {
        r.number = i as u32 + 1;
    }
    let t = Instant::now();
    let p = preview(&store, acct, &reversed).unwrap();
    report_with(
        "preview of the reversed order",
        p.evaluated,
        t.elapsed().as_secs_f64(),
        json!({"changed": p.users.len()}),
    );

    // what `PUT /admin/v1/rules/order` does: only users whose deciding rule moved are evaluated
    edit(RuleEdit::Reorder { order: reversed.iter().map(|r| r.id.clone()).collect() });
    let t = Instant::now();
    let evaluated = engine.run_pending().unwrap();
    let reorder_secs = t.elapsed().as_secs_f64();
    // Two rates, because only the users whose deciding rule moved are evaluated: per user evaluated, and
    // per user of the account (what the reorder costs spread over everyone it had to consider).
    report_rates(
        "re-evaluation after reversing the order",
        reorder_secs,
        &[("evaluatedUsers", evaluated), ("allUsers", users)],
        json!({}),
    );

    // everyone evaluated again from their records (what switching sync on does), for comparison
    store.set_sync(acct, false, &actor).unwrap();
    store.set_sync(acct, true, &actor).unwrap();
    let t = Instant::now();
    let evaluated = engine.run_pending().unwrap();
    report("full re-evaluation of everyone", evaluated, t.elapsed().as_secs_f64());

    // the same resolutions with everything already in memory: the floor for the work itself
    let compiled = compile(&reversed).unwrap();
    let docs: Vec<(serde_json::Value, HashSet<String>)> = ids
        .iter()
        .map(|u| {
            (store.user(acct, u).unwrap().unwrap(), store.groups_of(acct, u).unwrap().into_iter().collect())
        })
        .collect();
    let t = Instant::now();
    let decided = docs
        .iter()
        .filter(|(doc, groups)| resolve(doc, groups, &compiled, user_schema).deciding().is_some())
        .count();
    let floor = t.elapsed().as_secs_f64();
    report_with(
        "in-memory resolution loop",
        users,
        floor,
        json!({"decided": decided, "reorderRatio": reorder_secs / floor}),
    );
}

fn report(what: &str, n: usize, secs: f64) {
    report_with(what, n, secs, json!({}));
}

fn report_with(what: &str, n: usize, secs: f64, extra: serde_json::Value) {
    report_rates(what, secs, &[("users", n)], extra);
}

/// One JSON line: for each named count, the count and `<name>PerSecond`.
fn report_rates(what: &str, secs: f64, counts: &[(&str, usize)], extra: serde_json::Value) {
    let mut line = json!({"measurement": what, "seconds": (secs * 1000.0).round() / 1000.0});
    if let Some(l) = line.as_object_mut() {
        for (name, n) in counts {
            l.insert(name.to_string(), json!(n));
            l.insert(format!("{name}PerSecond"), json!((*n as f64 / secs).round()));
        }
        l.extend(extra.as_object().cloned().unwrap_or_default());
    }
    println!("{line}");
}
