//! How long a running store's compaction holds writers off while it puts its copy in place, at USERS
//! users (default 100,000): a store opened in process (`relaxed` durability) gets USERS users, a third of
//! them are deleted, and the store is compacted while one thread keeps creating users and times each
//! create.
//!
//! `cargo run --release --example compaction_hold -- [USERS] [ROUNDS]` prints one JSON line per compaction:
//! the hold the store measured (`holdMs`, also in `GET /admin/v1/sync` under `store.lastCompaction`), the
//! longest create the writer saw meanwhile, the whole compaction's time and the sizes before and after.

// A measurement tool: a failed step should stop it with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::json;
use usersync::clock::SystemClock;
use usersync::scim::resource::normalize;
use usersync::scim::schema::ResourceKind;
use usersync::store::{Actor, DurabilityMode, Store, StoreOptions};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let users: usize = std::env::args().nth(1).map_or(100_000, |n| n.parse().expect("a number of users"));
    let rounds: usize = std::env::args().nth(2).map_or(2, |n| n.parse().expect("a number of rounds"));
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        path: dir.path().join("store"),
        durability: DurabilityMode::Relaxed,
        clock: Arc::new(SystemClock),
    };
    let store = Store::open(options).unwrap();
    let (account, _) = store.ensure_account("default").unwrap();
    let acct = account.id;
    let registry = store.registry(acct);
    let schema = registry.resource(ResourceKind::User);
    let actor = Actor("scim:bench".into());
    let create = |name: String| {
        let body = json!({"userName": name, "displayName": "Bench User", "emails": [{"value": name}]});
        let input = normalize(schema, &body).unwrap();
        store.create_user(acct, schema, &input, &actor).unwrap()["id"].as_str().unwrap().to_string()
    };
    let started = Instant::now();
    let ids: Vec<String> = (0..users).map(|i| create(format!("user{i}@hold.example"))).collect();
    for id in ids.iter().step_by(3) {
        store.delete_user(acct, id, None, &actor).unwrap();
    }
    eprintln!("compaction_hold: {users} users made, a third deleted, in {:?}", started.elapsed());
    for round in 0..rounds {
        let done = AtomicBool::new(false);
        let (compacted, seconds, (writes, longest_ms)) = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let (mut writes, mut longest) = (0usize, 0f64);
                while !done.load(Ordering::SeqCst) {
                    let t0 = Instant::now();
                    create(format!("during{round}-{writes}@hold.example"));
                    longest = longest.max(t0.elapsed().as_secs_f64() * 1000.0);
                    writes += 1;
                }
                (writes, longest)
            });
            let t0 = Instant::now();
            let compacted = store.compact().unwrap();
            let seconds = t0.elapsed().as_secs_f64();
            done.store(true, Ordering::SeqCst);
            (compacted, seconds, writer.join().unwrap())
        });
        let last = store.last_compaction();
        println!(
            "{}",
            json!({
                "users": users, "round": round + 1, "records": compacted.records,
                "holdMs": last["holdMs"], "writerLongestMs": longest_ms, "writesDuring": writes,
                "compactionSeconds": seconds, "bytesBefore": compacted.before, "bytesAfter": compacted.after,
            })
        );
    }
    store.shutdown();
}
