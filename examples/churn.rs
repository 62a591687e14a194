//! The store's size under steady churn, at the scale of the store-integrity issue, over HTTP against a
//! server started in process: ROUNDS rounds (default 50), each replacing the whole member list of one
//! GROUP-member group (default 20,000) with other ids (two pools of GROUP users, used in turn) by a SCIM
//! PUT, then creating and deleting USERS users (default 5,000) from CLIENTS clients. The server compacts
//! its store by itself (its background check every 30 s); nothing here asks it to.
//!
//! `cargo run --release --example churn -- [--rounds 50] [--group 20000] [--users 5000] [--clients 8]
//! [--durability flush]` prints a JSON line per round (`GET /admin/v1/sync`'s `store.diskBytes` and
//! `store.liveBytes`) and a summary line: the data directory's size after round 1, its peak (sampled every
//! 200 ms), its size at the end, and whether the peak stayed under 3x the size after round 1. It exits
//! with 1 when it did not. `--max-seconds S` stops after the round that ends past S seconds of churn.

// A measurement tool: a failed step should stop it with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use usersync::app::{self, Settings};
use usersync::store::DurabilityMode;
use usersync::store::health::disk_bytes;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SCIM: &str = "bench-scim-token-0123456789abcdef0123";
const ADMIN: &str = "bench-admin-token-0123456789abcdef012";
/// The bound the issue sets: the data directory stays under this many times its size after round 1.
const BOUND: u64 = 3;

#[derive(Parser)]
#[command(name = "churn", about = "The store's size under group replacement and user churn")]
struct Cli {
    #[arg(long, default_value_t = 50)]
    rounds: usize,
    #[arg(long, default_value_t = 20_000)]
    group: usize,
    #[arg(long, default_value_t = 5_000)]
    users: usize,
    #[arg(long, default_value_t = 8)]
    clients: usize,
    #[arg(long, default_value = "flush")]
    durability: DurabilityMode,
    /// Stops after the round that ends past this many seconds of churn (the summary says how many rounds
    /// were run).
    #[arg(long)]
    max_seconds: Option<f64>,
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(600)).build().unwrap()
}

/// Sends, again when the connection was reset before an answer (a kept-alive connection the server had
/// just closed); a create sent again may find its user made (409), which the caller is told by `None`.
fn send_retrying(req: reqwest::blocking::RequestBuilder, what: &str) -> Option<Value> {
    let mut resent = false;
    for _ in 0..5 {
        match req.try_clone().expect("a body that can be sent again").send() {
            Ok(res) if resent && res.status() == reqwest::StatusCode::CONFLICT => return None,
            Ok(res) => return Some(answer(res, what)),
            Err(e) if e.is_request() || e.is_connect() => {
                eprintln!("churn: {what}: {e}; sending again");
                resent = true;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
    panic!("{what}: the connection failed five times");
}

fn send(req: reqwest::blocking::RequestBuilder, what: &str) -> Value {
    send_retrying(req, what).unwrap_or_else(|| panic!("{what}: 409 after sending again"))
}

fn answer(res: reqwest::blocking::Response, what: &str) -> Value {
    let status = res.status();
    let text = res.text().unwrap();
    assert!(status.is_success(), "{what}: {status} {text}");
    if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() }
}

fn create_user(c: &Client, addr: &str, name: &str) -> String {
    let req = c.post(format!("http://{addr}/scim/v2/Users")).bearer_auth(SCIM).json(&json!({
        "userName": name, "displayName": "Churned User", "emails": [{"value": name, "primary": true}]
    }));
    if let Some(made) = send_retrying(req, "create") {
        return made["id"].as_str().unwrap().to_string();
    }
    // sent again after a reset, and found made the first time
    let url = format!("http://{addr}/scim/v2/Users?filter=userName%20eq%20%22{name}%22");
    let found = send(c.get(url).bearer_auth(SCIM), "find");
    found["Resources"][0]["id"].as_str().unwrap().to_string()
}

/// Runs `f` over `0..n` from `clients` threads, each with its own connection.
fn parallel<T: Send>(n: usize, clients: usize, f: impl Fn(&Client, usize) -> T + Sync) -> Vec<T> {
    let per = n.div_ceil(clients.max(1));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let f = &f;
                s.spawn(move || {
                    let client = client();
                    (c * per..((c + 1) * per).min(n)).map(|i| f(&client, i)).collect::<Vec<T>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

fn main() {
    let cli = Cli::parse();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let mut settings = Settings::new(&data);
    settings.listen = "127.0.0.1:0".into();
    settings.durability = cli.durability;
    settings.scim_token = Some(SCIM.into());
    settings.admin_token = Some(ADMIN.into());
    // a PUT of 20,000 members is about 1 MB of JSON
    settings.http.max_body = 8 << 20;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let running = app::start(&settings).expect("server starts");
            tx.send(running.addr).unwrap();
            running.server.await.unwrap();
        })
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).unwrap().to_string();
    let admin = client();
    let store_state = || {
        send(admin.get(format!("http://{addr}/admin/v1/sync")).bearer_auth(ADMIN), "sync")["store"].clone()
    };

    let started = Instant::now();
    let pools: Vec<Vec<String>> = (0..2)
        .map(|p| {
            parallel(cli.group, cli.clients, |c, i| {
                create_user(c, &addr, &format!("pool{p}-{i}@churn.example"))
            })
        })
        .collect();
    let group_body = |pool: &[String]| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "churned",
               "members": pool.iter().map(|id| json!({"value": id})).collect::<Vec<_>>()})
    };
    let req =
        admin.post(format!("http://{addr}/scim/v2/Groups")).bearer_auth(SCIM).json(&group_body(&pools[1]));
    let gid = send(req, "group")["id"].as_str().unwrap().to_string();
    eprintln!("churn: {} pool users and the group made in {:?}", 2 * cli.group, started.elapsed());

    // the peak is sampled between the rounds' requests too: a compaction briefly holds two copies
    let peak = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let mut first = 0;
    let mut rounds = 0;
    let churn_started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(disk_bytes(&data), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        for round in 0..cli.rounds {
            let t0 = Instant::now();
            let req = admin
                .put(format!("http://{addr}/scim/v2/Groups/{gid}"))
                .bearer_auth(SCIM)
                .json(&group_body(&pools[round % 2]));
            send(req, "replace");
            let ids = parallel(cli.users, cli.clients, |c, i| {
                create_user(c, &addr, &format!("r{round}-{i}@churn.example"))
            });
            parallel(ids.len(), cli.clients, |c, i| {
                let req = c.delete(format!("http://{addr}/scim/v2/Users/{}", ids[i])).bearer_auth(SCIM);
                send(req, "delete");
            });
            let state = store_state();
            let disk = disk_bytes(&data);
            peak.fetch_max(disk, Ordering::SeqCst);
            if round == 0 {
                first = disk;
            }
            println!(
                "{}",
                json!({"round": round + 1, "seconds": t0.elapsed().as_secs_f64(), "diskBytes": disk,
                       "liveBytes": state["liveBytes"], "lastCompaction": state["lastCompaction"]})
            );
            rounds = round + 1;
            if cli.max_seconds.is_some_and(|max| churn_started.elapsed().as_secs_f64() > max) {
                break;
            }
        }
        done.store(true, Ordering::SeqCst);
    });
    let members = send(
        admin.get(format!("http://{addr}/scim/v2/Groups/{gid}?attributes=members")).bearer_auth(SCIM),
        "group",
    )["members"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(members, cli.group, "the group kept its members");
    let state = store_state();
    let last = disk_bytes(&data);
    let peak = peak.load(Ordering::SeqCst).max(last);
    let within = peak < BOUND * first;
    println!(
        "{}",
        json!({"summary": true, "rounds": rounds, "roundsAsked": cli.rounds, "group": cli.group, "users": cli.users,
               "durability": format!("{:?}", cli.durability).to_lowercase(),
               "seconds": started.elapsed().as_secs_f64(), "bytesAfterRound1": first, "peakBytes": peak,
               "finalBytes": last, "finalLiveBytes": state["liveBytes"], "bound": format!("{BOUND}x round 1"),
               "withinBound": within})
    );
    std::process::exit(if within { 0 } else { 1 });
}
