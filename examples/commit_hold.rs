//! How long a large member write holds every other writer off: the longest commit of a group created with
//! N members, of a PUT that replaces all N of them, and of a PATCH adding 1,000 members, for each N given
//! (`commit_hold --members 10000,100000`). Each write goes through the store as the SCIM endpoints call
//! it; the hold is the time the committer is taken (`store::take_longest_commit_hold`), during which no
//! other write commits. Prints one JSON line per measurement and the hold per thousand members.

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use serde_json::{Value, json};
use usersync::clock::SystemClock;
use usersync::scim::patch::parse_request;
use usersync::scim::resource::normalize;
use usersync::scim::schema::{Registry, ResourceKind};
use usersync::store::{Actor, DurabilityMode, Store, StoreOptions, take_longest_commit_hold};

#[derive(Parser)]
#[command(name = "commit_hold", about = "Commit hold of large member writes")]
struct Cli {
    /// Group sizes, comma-separated.
    #[arg(long, default_value = "10000,100000", value_delimiter = ',')]
    members: Vec<usize>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreOptions {
        path: dir.path().to_path_buf(),
        durability: DurabilityMode::Relaxed,
        clock: Arc::new(SystemClock),
    })?;
    let acct = store.ensure_account("default")?.0.id;
    let registry = Registry::standard();
    let (users, groups) = (registry.resource(ResourceKind::User), registry.resource(ResourceKind::Group));
    let actor = Actor::engine();
    let most = cli.members.iter().copied().max().unwrap_or(0);
    let mut ids = Vec::with_capacity(2 * most + 1000);
    for i in 0..2 * most + 1000 {
        let input = normalize(users, &json!({"userName": format!("u{i}")}))?;
        ids.push(
            store.create_user(acct, users, &input, &actor)?["id"].as_str().unwrap_or_default().to_string(),
        );
    }
    let listed = |from: usize, n: usize| -> Vec<Value> {
        ids[from..from + n].iter().map(|id| json!({"value": id})).collect()
    };
    let report = |what: &str, n: usize, started: Instant| {
        let hold = take_longest_commit_hold();
        let ms = hold.as_secs_f64() * 1000.0;
        println!(
            "{}",
            json!({"write": what, "members": n, "hold_ms": (ms * 100.0).round() / 100.0,
                   "hold_ms_per_1000": (ms * 1000.0 / n as f64 * 100.0).round() / 100.0,
                   "total_ms": (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0})
        );
    };
    for &n in &cli.members {
        take_longest_commit_hold();
        let started = Instant::now();
        let body = json!({"displayName": format!("g{n}"), "members": listed(0, n)});
        let (group, _) = store.create_group(acct, groups, &normalize(groups, &body)?, &actor)?;
        report("POST /Groups", n, started);
        let gid = group["id"].as_str().unwrap_or_default().to_string();

        let started = Instant::now();
        let body = json!({"displayName": format!("g{n}"), "members": listed(n, n)});
        store.replace_group(acct, groups, &gid, &normalize(groups, &body)?, None, &actor)?;
        report("PUT /Groups/{id} (every member replaced)", 2 * n, started);

        let started = Instant::now();
        let ops = parse_request(
            &json!({"Operations": [{"op": "add", "path": "members", "value": listed(2 * most, 1000)}]}),
        )?;
        store.patch_group(acct, groups, &gid, &ops, None, &actor)?;
        report("PATCH /Groups/{id} (1,000 members added)", 1000, started);
        store.delete_group(acct, &gid, None, &actor)?;
    }
    store.shutdown();
    Ok(())
}
