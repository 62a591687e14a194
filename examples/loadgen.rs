//! Load generator of the benchmark suite: `bench/run.sh` drives it and `docs/benchmarks.md` is its report.
//!
//! It speaks HTTP/1.1 with keep-alive over plain TCP, one connection per client thread (std threads, no
//! runtime), to a SCIM base URL: usersync's `http://ADDR/scim/v2` or the reference server's
//! `http://ADDR/v2`. Every measurement is printed as one JSON line on stdout (`workload`, `case`,
//! `target`, `run`, `measure`, `unit`, `value`, and details such as `ops`, `seconds`, `p50_ms`, `p99_ms`);
//! `report` turns the collected lines into the markdown report.
//!
//! Workloads: `import` (1: Okta-style creates, `userName eq` lookups, a paged scan; with `--phases create`
//! alone it is workload 5, the durability cost), `groups` (2: Entra-style group sync; given the server's
//! pid and data directory it also measures workload 6, the footprint), `read` (3: `GET /Users/{id}`),
//! `rules` (4, usersync only: the directory and rules of `common/rules_layout.rs` built over SCIM and the
//! admin API `http://ADDR/admin/v1`, then the re-evaluation after reversing the rules' order, timed until
//! `GET /admin/v1/sync` reports nothing pending, `POST /admin/v1/rules/preview`, and the same resolutions
//! in a plain in-memory loop), `abuse` (7: the p99 of other clients' reads and creates while some clients
//! send the largest PATCH allowed in a loop).

use std::collections::HashSet;
use std::error::Error;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use http::{Conn, Response, Target};
use rules_layout::{GROUPS, PRODUCTS};

#[path = "common/rules_layout.rs"]
mod rules_layout;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// userName prefix of the users workload 1 creates.
const IMPORT_PREFIX: &str = "import";

#[derive(Parser)]
#[command(name = "loadgen", about = "Benchmark load generator for SCIM servers (see bench/run.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Workload 1 (and 5): create users with concurrent clients, look them up by userName, page through all.
    Import(ImportArgs),
    /// Workload 2 (and 6): one group grown in batches of 100, single-member PATCHes timed at given sizes,
    /// then concurrent batch writers on one group.
    Groups(GroupsArgs),
    /// Workload 3: `GET /Users/{id}` with keep-alive connections for a fixed time.
    Read(ReadArgs),
    /// Workload 4 (usersync only): users in 50 groups with 50 rules; the re-evaluation after reversing the
    /// rules' order, `POST /admin/v1/rules/preview`, and the same resolutions in a plain in-memory loop.
    Rules(RulesArgs),
    /// Workload 8 (hardening): other clients' reads and creates while some clients send the largest PATCH
    /// allowed (1,000 filtered operations on a user holding 1,000 values) in a loop.
    Abuse(AbuseArgs),
    /// Writes the markdown report from the JSON lines the other subcommands printed.
    Report(ReportArgs),
}

/// Where to send requests, and the labels every result line carries.
#[derive(Args, Clone)]
struct Labels {
    /// SCIM base URL: usersync's http://ADDR/scim/v2, scim2-server's http://ADDR/v2.
    #[arg(long)]
    base: String,
    /// Bearer token (none sent when empty).
    #[arg(long, env = "BENCH_TOKEN", default_value = "", hide_env_values = true)]
    token: String,
    /// Name of the server measured, as the report shows it.
    #[arg(long, default_value = "usersync")]
    target: String,
    /// Number of this repetition.
    #[arg(long, default_value_t = 1)]
    run: u32,
    /// Workload label (the subcommand's own by default).
    #[arg(long)]
    workload: Option<String>,
    /// Case label (the subcommand's size parameter by default).
    #[arg(long)]
    case: Option<String>,
}

impl Labels {
    fn emit(&self, workload: &str, case: &str, measure: &str, unit: &str, value: f64, details: Value) {
        let mut line = json!({
            "workload": self.workload.as_deref().unwrap_or(workload),
            "case": self.case.as_deref().unwrap_or(case),
            "target": self.target,
            "run": self.run,
            "measure": measure,
            "unit": unit,
            "value": round(value),
        });
        if let (Some(obj), Value::Object(extra)) = (line.as_object_mut(), details) {
            obj.extend(extra);
        }
        println!("{line}");
    }

    fn target(&self) -> Result<Target> {
        Target::parse(&self.base, &self.token)
    }
}

#[derive(Args)]
struct ImportArgs {
    #[command(flatten)]
    labels: Labels,
    /// Users to create.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Concurrent clients for creates and lookups (the paged scan is one client, as an IdP's import is).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Phases to run, comma-separated: create, lookup, scan.
    #[arg(long, default_value = "create,lookup,scan")]
    phases: String,
    /// Lookups to make (default: one per created user).
    #[arg(long)]
    lookups: Option<usize>,
    /// Page size of the scan.
    #[arg(long, default_value_t = 100)]
    page: usize,
    /// Stop a phase after this many seconds and report what it did (marked `capped`).
    #[arg(long, default_value_t = 3600.0)]
    max_seconds: f64,
}

#[derive(Args)]
struct GroupsArgs {
    #[command(flatten)]
    labels: Labels,
    /// Group sizes at which single-member add and remove PATCHes are timed; the group grows to the largest.
    #[arg(long, value_delimiter = ',', default_value = "10,10000,100000")]
    sizes: Vec<usize>,
    /// Members per batch PATCH.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Single-member add/remove pairs timed at each size.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Concurrent batch writers on one group in the last phase.
    #[arg(long, default_value_t = 5)]
    writers: usize,
    /// Concurrent clients creating the users.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// The server's pid: its peak RSS is reported once the group is at its largest size (workload 6).
    #[arg(long)]
    pid: Option<u32>,
    /// The server's data directory: its size is reported with the peak RSS.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct ReadArgs {
    #[command(flatten)]
    labels: Labels,
    /// Open keep-alive connections (one client thread each without `--wrk`).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds measured, after a warm-up of one second.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Path to read below the base URL; without it a benchmark user is created and read.
    #[arg(long)]
    path: Option<String>,
    /// Only create the benchmark user and print `{"path":..,"bytes":..}` (its body size) for the ceiling.
    #[arg(long)]
    setup_only: bool,
    /// Drive the measurement with wrk (one thread per core), which costs less CPU than client threads.
    #[arg(long)]
    wrk: bool,
}

#[derive(Args)]
struct RulesArgs {
    #[command(flatten)]
    labels: Labels,
    /// Admin token of the account (the server's USERSYNC_ADMIN_TOKEN); the admin API is the SCIM base's
    /// sibling, http://ADDR/admin/v1.
    #[arg(long, env = "BENCH_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// Users in the directory (a fresh server: the users, groups and rules are created).
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Concurrent clients creating the users and adding them to the groups.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Members per batch PATCH.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Previews timed.
    #[arg(long, default_value_t = 5)]
    previews: usize,
    /// Passes of the in-memory loop timed (the median is reported).
    #[arg(long, default_value_t = 5)]
    passes: usize,
    /// Milliseconds between `GET /admin/v1/sync` polls while waiting for `pending` to reach 0.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// Give up waiting for the engine after this many seconds.
    #[arg(long, default_value_t = 1800.0)]
    max_seconds: f64,
}

#[derive(Args)]
struct AbuseArgs {
    #[command(flatten)]
    labels: Labels,
    /// Clients sending the largest PATCH in a loop.
    #[arg(long, default_value_t = 4)]
    attackers: usize,
    /// Other clients, alternating `GET /Users/{id}` and `POST /Users`.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
}

#[derive(Args)]
struct ReportArgs {
    /// Files of result lines (lines that are not measurements are skipped).
    #[arg(required = true)]
    results: Vec<std::path::PathBuf>,
    /// Markdown file to write.
    #[arg(long)]
    out: std::path::PathBuf,
    /// "Label: text" lines for the report's header (machine, date, command...).
    #[arg(long)]
    meta: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Import(args) => import(&args),
        Command::Groups(args) => groups(&args),
        Command::Read(args) => read(&args),
        Command::Rules(args) => rules(&args),
        Command::Abuse(args) => abuse(&args),
        Command::Report(args) => report::write(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn round(v: f64) -> f64 {
    if v.abs() >= 100.0 { (v * 10.0).round() / 10.0 } else { (v * 1000.0).round() / 1000.0 }
}

// ---------------------------------------------------------------------------------------------------------
// Running clients and summarising what they measured.

/// How much a phase may do: at most `ops` operations and at most `seconds`.
#[derive(Clone, Copy)]
struct Budget {
    ops: usize,
    seconds: f64,
}

/// What a phase did: latencies in microseconds of the successful operations, and what came back.
#[derive(Default)]
struct Phase {
    latencies: Vec<u32>,
    errors: usize,
    seconds: f64,
    /// Stopped by the time budget before `ops` were done.
    capped: bool,
    /// `(operation index, value)` for every operation whose closure returned a value.
    values: Vec<(usize, String)>,
}

impl Phase {
    /// Records the latency of an operation that started at `t0` and has just succeeded.
    fn record(&mut self, t0: Instant) {
        self.latencies.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
    }

    fn ops(&self) -> usize {
        self.latencies.len()
    }

    fn rate(&self) -> f64 {
        if self.seconds > 0.0 { self.ops() as f64 / self.seconds } else { 0.0 }
    }

    /// Latency percentile in milliseconds.
    fn percentile(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        self.latencies.sort_unstable();
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        f64::from(self.latencies[rank.clamp(1, self.latencies.len()) - 1]) / 1000.0
    }

    fn details(&mut self) -> Value {
        json!({
            "ops": self.ops(),
            "errors": self.errors,
            "seconds": round(self.seconds),
            "p50_ms": round(self.percentile(50.0)),
            "p99_ms": round(self.percentile(99.0)),
            "capped": self.capped,
        })
    }
}

/// Runs operations `0..budget.ops` on `clients` threads, each with its own keep-alive connection, handing
/// out indexes in order. An operation returns an optional value to keep, or an error that is counted (the
/// first few are printed on stderr).
fn run_clients<F>(target: &Target, clients: usize, budget: Budget, op: F) -> Result<Phase>
where
    F: Fn(&mut Conn, usize) -> Result<Option<String>> + Sync,
{
    let next = AtomicUsize::new(0);
    let capped = AtomicBool::new(false);
    let printed = AtomicUsize::new(0);
    let started = Instant::now();
    let limit = Duration::try_from_secs_f64(budget.seconds).unwrap_or(Duration::MAX);
    let parts: Vec<Phase> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut conn = Conn::new(target);
                    let mut part = Phase::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= budget.ops {
                            break;
                        }
                        if started.elapsed() >= limit {
                            capped.store(budget.ops != usize::MAX, Ordering::Relaxed);
                            break;
                        }
                        let t0 = Instant::now();
                        match op(&mut conn, i) {
                            Ok(value) => {
                                part.record(t0);
                                if let Some(v) = value {
                                    part.values.push((i, v));
                                }
                            }
                            Err(e) => {
                                part.errors += 1;
                                if printed.fetch_add(1, Ordering::Relaxed) < 5 {
                                    eprintln!("loadgen: operation {i}: {e}");
                                }
                            }
                        }
                    }
                    part
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_default()).collect()
    });
    let mut phase = Phase { seconds: started.elapsed().as_secs_f64(), ..Phase::default() };
    phase.capped = capped.load(Ordering::Relaxed);
    for part in parts {
        phase.latencies.extend(part.latencies);
        phase.values.extend(part.values);
        phase.errors += part.errors;
    }
    phase.values.sort_unstable();
    Ok(phase)
}

/// Fails unless the response has the expected status.
fn expect(res: Response, status: u16, what: &str) -> Result<Response> {
    if res.status == status {
        Ok(res)
    } else {
        let body = String::from_utf8_lossy(&res.body);
        Err(format!(
            "{what}: status {} (wanted {status}): {}",
            res.status,
            body.chars().take(300).collect::<String>()
        )
        .into())
    }
}

fn string_field(res: &Response, field: &str) -> Result<String> {
    let doc: Value = serde_json::from_slice(&res.body)?;
    doc.get(field).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("no '{field}'").into())
}

// ---------------------------------------------------------------------------------------------------------
// The documents sent.

fn user_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:07}@example.com")
}

/// A user as an IdP provisions one: names, an email, an external id.
fn user_doc(prefix: &str, i: usize) -> Value {
    let name = user_name(prefix, i);
    json!({
        "schemas": [USER_URN],
        "userName": name,
        "externalId": format!("{prefix}-ext-{i:07}"),
        "name": {"givenName": format!("Given{i:07}"), "familyName": "Benchmark"},
        "displayName": format!("Given{i:07} Benchmark"),
        "emails": [{"value": name, "type": "work", "primary": true}],
        "active": true,
    })
}

fn user_body(prefix: &str, i: usize) -> Vec<u8> {
    user_doc(prefix, i).to_string().into_bytes()
}

fn group_body(name: &str) -> Vec<u8> {
    json!({"schemas": [GROUP_URN], "displayName": name}).to_string().into_bytes()
}

/// Creates an empty group; returns its id.
fn create_group(conn: &mut Conn, name: &str) -> Result<String> {
    string_field(&expect(conn.send("POST", "/Groups", Some(&group_body(name)))?, 201, "group")?, "id")
}

fn add_members_body(ids: &[String]) -> Vec<u8> {
    let value: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    json!({"schemas": [PATCH_URN], "Operations": [{"op": "add", "path": "members", "value": value}]})
        .to_string()
        .into_bytes()
}

fn remove_member_body(id: &str) -> Vec<u8> {
    let path = format!("members[value eq \"{id}\"]");
    json!({"schemas": [PATCH_URN], "Operations": [{"op": "remove", "path": path}]}).to_string().into_bytes()
}

/// Percent-encodes a query parameter value.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A small deterministic generator, so that every server gets the same lookups.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Creates users `0..n` (user `i` is `body(i)`) with `clients` concurrent clients; the phase's values are
/// their ids.
fn create_users<B>(target: &Target, n: usize, clients: usize, seconds: f64, body: B) -> Result<Phase>
where
    B: Fn(usize) -> Vec<u8> + Sync,
{
    run_clients(target, clients, Budget { ops: n, seconds }, |conn, i| {
        let res = expect(conn.send("POST", "/Users", Some(&body(i)))?, 201, "create user")?;
        Ok(Some(string_field(&res, "id")?))
    })
}

// ---------------------------------------------------------------------------------------------------------
// Workload 1 (and 5): import, lookups, paged scan.

fn import(args: &ImportArgs) -> Result<()> {
    let target = args.labels.target()?;
    let case = format!("N={}", args.users);
    let phases: Vec<&str> = args.phases.split(',').map(str::trim).collect();
    let emit = |measure: &str, unit: &str, value: f64, details: Value| {
        args.labels.emit("import", &case, measure, unit, value, details);
    };
    let mut created = args.users;
    if phases.contains(&"create") {
        let mut phase = create_users(&target, args.users, args.clients, args.max_seconds, |i| {
            user_body(IMPORT_PREFIX, i)
        })?;
        created = phase.ops();
        let mut details = phase.details();
        details["clients"] = json!(args.clients);
        details["planned"] = json!(args.users);
        emit("creates", "ops/s", phase.rate(), details);
        // Lookups and the scan only ask for the users that exist.
        if phase.capped || phase.errors > 0 {
            let names: Vec<usize> = phase.values.iter().map(|(i, _)| *i).collect();
            return lookups_and_scan(args, &target, &names, &phases, emit);
        }
    }
    let all: Vec<usize> = (0..created).collect();
    lookups_and_scan(args, &target, &all, &phases, emit)
}

fn lookups_and_scan(
    args: &ImportArgs,
    target: &Target,
    users: &[usize],
    phases: &[&str],
    emit: impl Fn(&str, &str, f64, Value),
) -> Result<()> {
    if phases.contains(&"lookup") && !users.is_empty() {
        let n = args.lookups.unwrap_or(users.len());
        // The same pseudo-random sequence of users on every server.
        let picks: Vec<usize> = {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
            (0..n).map(|_| users[(rng.next() % users.len() as u64) as usize]).collect()
        };
        let mut phase =
            run_clients(target, args.clients, Budget { ops: n, seconds: args.max_seconds }, |conn, i| {
                let filter = format!("userName eq \"{}\"", user_name(IMPORT_PREFIX, picks[i]));
                let res = conn.get(&format!("/Users?filter={}", encode(&filter)))?;
                let res = expect(res, 200, "lookup")?;
                let doc: Value = serde_json::from_slice(&res.body)?;
                match doc.get("totalResults").and_then(Value::as_u64) {
                    Some(1) => Ok(None),
                    other => Err(format!("lookup found {other:?} users, not 1").into()),
                }
            })?;
        let mut details = phase.details();
        details["clients"] = json!(args.clients);
        details["planned"] = json!(n);
        emit("lookups", "ops/s", phase.rate(), details);
    }
    if phases.contains(&"scan") {
        let mut conn = Conn::new(target);
        let started = Instant::now();
        let (mut seen, mut total, mut start, mut errors) = (0usize, usize::MAX, 1usize, 0usize);
        let mut phase = Phase::default();
        while start <= total {
            if started.elapsed().as_secs_f64() >= args.max_seconds {
                phase.capped = true;
                break;
            }
            let t0 = Instant::now();
            let res = conn.get(&format!("/Users?startIndex={start}&count={}", args.page))?;
            let res = expect(res, 200, "page")?;
            let doc: Value = serde_json::from_slice(&res.body)?;
            phase.record(t0);
            total = doc.get("totalResults").and_then(Value::as_u64).unwrap_or(0) as usize;
            let got = doc.get("Resources").and_then(Value::as_array).map_or(0, Vec::len);
            if got == 0 {
                break;
            }
            seen += got;
            start += got;
        }
        phase.seconds = started.elapsed().as_secs_f64();
        if !phase.capped && seen != users.len() {
            eprintln!("loadgen: the scan saw {seen} users of {}", users.len());
            errors += 1;
        }
        phase.errors = errors;
        let mut details = phase.details();
        details["users_seen"] = json!(seen);
        details["page"] = json!(args.page);
        let scan_seconds = phase.seconds;
        emit("pages", "pages/s", phase.rate(), details.clone());
        if !phase.capped {
            emit("full scan", "s", scan_seconds, details);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Workload 2 (and 6): group sync.

fn groups(args: &GroupsArgs) -> Result<()> {
    let target = args.labels.target()?;
    let largest = args.sizes.iter().copied().max().unwrap_or(0);
    let probes = 20;
    let case_all = format!("members={largest}");
    let emit = |case: &str, measure: &str, unit: &str, value: f64, details: Value| {
        args.labels.emit("groups", case, measure, unit, value, details);
    };

    // The users: `largest` to be members, and a few more for the single-member PATCHes.
    let mut phase =
        create_users(&target, largest + probes, args.clients, f64::INFINITY, |i| user_body("member", i))?;
    if phase.errors > 0 {
        return Err(format!("{} users could not be created", phase.errors).into());
    }
    let mut details = phase.details();
    details["clients"] = json!(args.clients);
    emit(&case_all, "user creates", "ops/s", phase.rate(), details);
    let ids: Vec<String> = phase.values.drain(..).map(|(_, id)| id).collect();
    let (members, extra) = ids.split_at(largest);

    // One group grown in batches, sequentially as one client; single-member PATCHes timed at each size.
    let mut conn = Conn::new(&target);
    let gid = create_group(&mut conn, "bench-a")?;
    let path = format!("/Groups/{gid}");
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    let mut build = Phase::default();
    let mut size = 0;
    for &checkpoint in &sizes {
        let started = Instant::now();
        while size < checkpoint {
            let end = (size + args.batch).min(checkpoint);
            let t0 = Instant::now();
            let res = conn.send("PATCH", &path, Some(&add_members_body(&members[size..end])))?;
            expect(res, 204, "batch add")?;
            build.record(t0);
            size = end;
        }
        build.seconds += started.elapsed().as_secs_f64();
        let (mut add, mut remove) = (Phase::default(), Phase::default());
        for k in 0..args.samples {
            let id = &extra[k % extra.len()];
            let t0 = Instant::now();
            expect(
                conn.send("PATCH", &path, Some(&add_members_body(std::slice::from_ref(id))))?,
                204,
                "add",
            )?;
            add.record(t0);
            let t0 = Instant::now();
            expect(conn.send("PATCH", &path, Some(&remove_member_body(id)))?, 204, "remove")?;
            remove.record(t0);
        }
        let case = format!("size={checkpoint}");
        emit(&case, "single add p50", "ms", add.percentile(50.0), add.details());
        emit(&case, "single remove p50", "ms", remove.percentile(50.0), remove.details());
    }
    let members_added = build.ops() as f64 * args.batch as f64;
    let rate = if build.seconds > 0.0 { size as f64 / build.seconds } else { 0.0 };
    let mut details = build.details();
    details["batch"] = json!(args.batch);
    details["members"] = json!(size);
    details["members_sent"] = json!(members_added);
    emit(&case_all, "batch add, 1 writer", "members/s", rate, details);

    // Workload 6: the footprint with `largest` users and as many memberships.
    if let Some(pid) = args.pid {
        let footprint = format!("users={largest}, memberships={largest}");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kb = |field: &str| -> f64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let (peak, now) = (kb("VmHWM:") * 1024.0 / 1e6, kb("VmRSS:") * 1024.0 / 1e6);
        args.labels.emit("footprint", &footprint, "peak RSS", "MB", peak, json!({"rss_mb": round(now)}));
        if let Some(dir) = &args.data {
            let bytes = dir_size(dir)?;
            args.labels.emit("footprint", &footprint, "data on disk", "MB", bytes as f64 / 1e6, json!({}));
        }
    }

    // Concurrent batch writers on a second group, each adding its own share of the users.
    let gid = create_group(&mut conn, "bench-b")?;
    let path = format!("/Groups/{gid}");
    let batches: Vec<&[String]> = members.chunks(args.batch).collect();
    let mut phase =
        run_clients(&target, args.writers, Budget { ops: batches.len(), seconds: f64::INFINITY }, |c, i| {
            expect(
                c.send("PATCH", &path, Some(&add_members_body(batches[i])))?,
                204,
                "concurrent batch add",
            )?;
            Ok(None)
        })?;
    let res = expect(conn.get(&format!("{path}?attributes=members"))?, 200, "group")?;
    let doc: Value = serde_json::from_slice(&res.body)?;
    let count = doc.get("members").and_then(Value::as_array).map_or(0, Vec::len);
    let mut details = phase.details();
    details["writers"] = json!(args.writers);
    details["final_members"] = json!(count);
    details["expected_members"] = json!(members.len());
    let rate = if phase.seconds > 0.0 { members.len() as f64 / phase.seconds } else { 0.0 };
    emit(&case_all, &format!("batch add, {} writers", args.writers), "members/s", rate, details);
    if count != members.len() {
        return Err(format!("the group has {count} members, not {}", members.len()).into());
    }
    Ok(())
}

/// Apparent size of the files below `dir`, as `du -sb` counts it.
fn dir_size(dir: &std::path::Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { dir_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------------------------
// Workload 3: read throughput.

fn read(args: &ReadArgs) -> Result<()> {
    let target = args.labels.target()?;
    let path = match &args.path {
        Some(p) => p.clone(),
        None => format!("/Users/{}", benchmark_user(&target)?),
    };
    if args.setup_only {
        let res = expect(Conn::new(&target).get(&path)?, 200, "read")?;
        println!("{}", json!({"path": path, "bytes": res.body.len()}));
        return Ok(());
    }
    let (rate, mut details) = if args.wrk {
        wrk(&target, &path, args.connections, 1.0)?;
        wrk(&target, &path, args.connections, args.seconds)?
    } else {
        let read_once = |conn: &mut Conn, _| -> Result<Option<String>> {
            expect(conn.get(&path)?, 200, "read")?;
            Ok(None)
        };
        run_clients(&target, args.connections, Budget { ops: usize::MAX, seconds: 1.0 }, read_once)?;
        let budget = Budget { ops: usize::MAX, seconds: args.seconds };
        let mut phase = run_clients(&target, args.connections, budget, read_once)?;
        let mut details = phase.details();
        details["driver"] = json!("loadgen");
        (phase.rate(), details)
    };
    details["clients"] = json!(args.connections);
    details["bytes"] = json!(Conn::new(&target).get(&path)?.body.len());
    args.labels.emit("read", "GET /Users/{id}", "reads", "req/s", rate, details);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Workload 8: other clients beside the largest requests.

fn abuse(args: &AbuseArgs) -> Result<()> {
    let target = args.labels.target()?;
    let mut conn = Conn::new(&target);
    let victim = string_field(
        &expect(conn.send("POST", "/Users", Some(&user_body("abused", 1)))?, 201, "create")?,
        "id",
    )?;
    let emails: Vec<Value> =
        (0..1000).map(|i| json!({"value": format!("e{i}@example.com"), "type": format!("t{i}")})).collect();
    let fill =
        json!({"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "emails", "value": emails}]});
    let path = format!("/Users/{victim}");
    let res = conn.send("PATCH", &path, Some(fill.to_string().as_bytes()))?;
    if !(200..300).contains(&res.status) {
        return Err(format!("filling the user: {}", res.status).into());
    }
    let ops: Vec<Value> = (0..1000)
        .map(|i| json!({"op": "replace", "path": format!("emails[type eq \"t{i}\"].display"), "value": format!("d{i}")}))
        .collect();
    let large = json!({"schemas": [PATCH_URN], "Operations": ops}).to_string().into_bytes();
    let reader = benchmark_user(&target)?;
    let stop = AtomicBool::new(false);
    let attacks = AtomicUsize::new(0);
    let (mut reads, mut creates) = std::thread::scope(|s| -> Result<(Phase, Phase)> {
        for _ in 0..args.attackers {
            s.spawn(|| {
                let mut conn = Conn::new(&target);
                while !stop.load(Ordering::Relaxed) {
                    if conn.send("PATCH", &path, Some(&large)).is_ok_and(|r| (200..300).contains(&r.status)) {
                        attacks.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        let budget = Budget { ops: usize::MAX, seconds: args.seconds };
        let read_path = format!("/Users/{reader}");
        let phases = std::thread::scope(|inner| {
            let reads = inner.spawn(|| {
                run_clients(&target, args.clients.div_ceil(2), budget, |conn, _| {
                    expect(conn.get(&read_path)?, 200, "read")?;
                    Ok(None)
                })
            });
            let creates = inner.spawn(|| {
                run_clients(&target, args.clients / 2, budget, |conn, i| {
                    expect(conn.send("POST", "/Users", Some(&user_body("abuse-victim", i)))?, 201, "create")?;
                    Ok(None)
                })
            });
            (reads.join(), creates.join())
        });
        stop.store(true, Ordering::Relaxed);
        match phases {
            (Ok(Ok(reads)), Ok(Ok(creates))) => Ok((reads, creates)),
            _ => Err("a client thread failed".into()),
        }
    })?;
    let attacks = attacks.load(Ordering::Relaxed) as f64 / args.seconds;
    let case = format!("{} clients sending 1,000-op PATCHes", args.attackers);
    for (what, phase) in [("reads beside", &mut reads), ("creates beside", &mut creates)] {
        let mut details = phase.details();
        details["large_patches_per_s"] = json!(round(attacks));
        let p99 = details["p99_ms"].as_f64().unwrap_or(0.0);
        args.labels.emit("abuse", &case, &format!("{what} p99 (ms)"), "ms", p99, details);
    }
    Ok(())
}

/// The benchmark user's id, created if it does not exist yet.
fn benchmark_user(target: &Target) -> Result<String> {
    let mut conn = Conn::new(target);
    let res = conn.send("POST", "/Users", Some(&user_body("read", 1)))?;
    if res.status == 409 {
        let filter = format!("userName eq \"{}\"", user_name("read", 1));
        let res = expect(conn.get(&format!("/Users?filter={}", encode(&filter)))?, 200, "lookup")?;
        let doc: Value = serde_json::from_slice(&res.body)?;
        let id = doc.pointer("/Resources/0/id").and_then(Value::as_str);
        return id.map(str::to_string).ok_or_else(|| "the benchmark user is not found".into());
    }
    string_field(&expect(res, 201, "create user")?, "id")
}

/// Runs wrk (one thread per core) for `seconds` on `path`; returns requests/s and the details of a phase.
fn wrk(target: &Target, path: &str, connections: usize, seconds: f64) -> Result<(f64, Value)> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(connections.max(1));
    let mut cmd = std::process::Command::new("wrk");
    cmd.args(["--latency", "-t", &threads.to_string(), "-c", &connections.to_string()]);
    cmd.args(["-d", &format!("{}s", seconds.round().max(1.0))]);
    if let Some(auth) = target.authorization() {
        cmd.args(["-H", &auth]);
    }
    let out = cmd.arg(target.url(path)).output().map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let words = |prefix: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|rest| rest.split([' ', ',']).filter(|w| !w.is_empty()).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let number = |w: Option<&String>| w.and_then(|w| w.parse::<f64>().ok()).unwrap_or(0.0);
    let rate = number(words("Requests/sec:").first());
    let (ops, elapsed) =
        text.lines().find_map(|l| l.trim().split_once(" requests in ")).map_or((0.0, 0.0), |(n, rest)| {
            (n.trim().parse().unwrap_or(0.0), wrk_ms(rest.split(',').next().unwrap_or("")) / 1000.0)
        });
    let socket = words("Socket errors:");
    let errors = number(words("Non-2xx or 3xx responses:").first())
        + socket.iter().filter_map(|w| w.parse::<f64>().ok()).sum::<f64>();
    let latency = |p: &str| wrk_ms(words(p).first().map_or("", String::as_str));
    let details = json!({
        "ops": ops,
        "errors": errors,
        "seconds": round(elapsed),
        "p50_ms": round(latency("50%")),
        "p99_ms": round(latency("99%")),
        "capped": false,
        "driver": "wrk",
    });
    Ok((rate, details))
}

/// A wrk duration (`870.00us`, `2.39ms`, `1.02s`, `1.50m`) in milliseconds.
fn wrk_ms(text: &str) -> f64 {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let value: f64 = text[..split].parse().unwrap_or(0.0);
    value
        * match &text[split..] {
            "us" => 0.001,
            "ms" => 1.0,
            "s" => 1000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            _ => 0.0,
        }
}

// ---------------------------------------------------------------------------------------------------------
// Workload 4: rules.

/// userName prefix of the users workload 4 creates.
const RULES_PREFIX: &str = "rules";
/// What the report's targets compare: the reorder's time and the in-memory loop's (the loop's "server").
const REORDER_TIME: &str = "reorder, time until pending 0";
const LOOP_TIME: &str = "every user resolved, time";
const IN_MEMORY: &str = "in-memory loop";

fn rules(args: &RulesArgs) -> Result<()> {
    let scim = args.labels.target()?;
    let admin_base = args
        .labels
        .base
        .strip_suffix("/scim/v2")
        .map(|root| format!("{root}/admin/v1"))
        .ok_or("rules: --base must be usersync's http://ADDR/scim/v2")?;
    let admin = Target::parse(&admin_base, &args.admin_token)?;
    let n = args.users;
    let case = format!("users={n}");
    let emit = |measure: &str, unit: &str, value: f64, details: Value| {
        args.labels.emit("rules", &case, measure, unit, value, details);
    };
    let poll = Duration::from_millis(args.poll_ms);
    let mut conn = Conn::new(&admin);

    // The directory and the rules, with sync off: products, groups, users, memberships in batches, one
    // rule per group (`rules_layout`).
    expect(conn.send("PUT", "/sync", Some(br#"{"enabled": false}"#))?, 200, "sync off")?;
    for p in PRODUCTS {
        let body = json!({"name": p, "seats": null, "requires": []}).to_string().into_bytes();
        expect(conn.send("PUT", &format!("/products/{p}"), Some(&body))?, 201, "product")?;
    }
    let budget = |ops| Budget { ops, seconds: f64::INFINITY };
    let phase = run_clients(&scim, args.clients, budget(GROUPS), |c, g| {
        create_group(c, &format!("rules-{g:02}")).map(Some)
    })?;
    let gids = all_values(phase, "group creates")?;
    let phase = create_users(&scim, n, args.clients, f64::INFINITY, |i| {
        let mut doc = user_doc(RULES_PREFIX, i);
        doc["title"] = json!(rules_layout::title(i));
        doc.to_string().into_bytes()
    })?;
    let uids = all_values(phase, "user creates")?;
    let mut members: Vec<Vec<String>> = vec![Vec::new(); GROUPS];
    for (i, uid) in uids.iter().enumerate() {
        for g in rules_layout::groups_of(i) {
            members[g].push(uid.clone());
        }
    }
    let batches: Vec<(usize, &[String])> =
        members.iter().enumerate().flat_map(|(g, m)| m.chunks(args.batch).map(move |c| (g, c))).collect();
    let phase = run_clients(&scim, args.clients, budget(batches.len()), |c, k| {
        let (g, chunk) = batches[k];
        let res = c.send("PATCH", &format!("/Groups/{}", gids[g]), Some(&add_members_body(chunk)))?;
        expect(res, 204, "batch add")?;
        Ok(None)
    })?;
    if phase.errors > 0 {
        return Err(format!("{} batch PATCHes failed", phase.errors).into());
    }
    let mut rule_ids = Vec::with_capacity(GROUPS);
    for (g, gid) in gids.iter().enumerate() {
        let body = rule_doc(None, g, gid).to_string().into_bytes();
        rule_ids.push(string_field(&expect(conn.send("POST", "/rules", Some(&body))?, 201, "rule")?, "id")?);
    }

    // Sync on: everyone evaluated.
    let started = Instant::now();
    expect(conn.send("PUT", "/sync", Some(br#"{"enabled": true}"#))?, 200, "sync on")?;
    let (seconds, polls) = wait_drained(&mut conn, started, poll, args.max_seconds)?;
    let details = json!({"seconds": round(seconds), "users": n, "polls": polls});
    emit("sync on, everyone evaluated", "users/s", n as f64 / seconds, details);

    // The same users and rules on plain data structures: who the reversal moves, and the loop's time.
    let plain = PlainDirectory::new(&uids, &gids, &rule_ids);
    let reversed = plain.rules((0..GROUPS).rev());
    let (moved, changed) = plain.moved_and_changed(&plain.rules(0..GROUPS), &reversed);

    // Previews of the reversed order (before it is applied): they evaluate everyone and predict the change.
    let proposed: Vec<Value> = (0..GROUPS).rev().map(|g| rule_doc(Some(&rule_ids[g]), g, &gids[g])).collect();
    let preview_body = json!({"rules": proposed}).to_string().into_bytes();
    let mut previews = Phase::default();
    for _ in 0..args.previews.max(1) {
        let t0 = Instant::now();
        let res = expect(conn.send("POST", "/rules/preview", Some(&preview_body))?, 200, "preview")?;
        previews.record(t0);
        previews.seconds += t0.elapsed().as_secs_f64();
        let (considered, changes) = preview_counts(&res)?;
        if (considered, changes) != (n, changed) {
            return Err(format!(
                "the preview considered {considered} users and changes {changes}; expected {n} and {changed}"
            )
            .into());
        }
    }

    // The reorder: from the request until `pending` is 0 again.
    let order = json!({"order": rule_ids.iter().rev().collect::<Vec<_>>()}).to_string().into_bytes();
    let started = Instant::now();
    expect(conn.send("PUT", "/rules/order", Some(&order))?, 200, "reorder")?;
    let acked = started.elapsed().as_secs_f64();
    let (seconds, polls) = wait_drained(&mut conn, started, poll, args.max_seconds)?;
    // Applied in full: a preview of the order now in force changes nobody.
    let (_, left) =
        preview_counts(&expect(conn.send("POST", "/rules/preview", Some(&preview_body))?, 200, "preview")?)?;
    let verified = if left == 0 {
        "verified: a preview of the applied order changes nobody".to_string()
    } else {
        format!("a preview of the applied order still changes {left} users: MISMATCH")
    };
    let timing =
        format!("acknowledged in {:.0} ms, polled every {} ms; {verified}", acked * 1000.0, args.poll_ms);
    let details = |note: String| {
        json!({"seconds": round(seconds), "ack_ms": round(acked * 1000.0), "polls": polls,
            "poll_ms": args.poll_ms, "users": n, "users_reevaluated": moved, "note": note})
    };
    let reevaluated = format!(
        "{moved} of {n} users: those whose deciding rule moved (counted in loadgen; the previews agree)"
    );
    emit(REORDER_TIME, "s", seconds, details(timing));
    emit("reorder, users re-evaluated", "users/s", moved as f64 / seconds, details(reevaluated));
    emit("reorder, all users", "users/s", n as f64 / seconds, details(format!("all {n} users, same time")));

    let preview_ms = previews.percentile(50.0);
    let mut details = previews.details();
    details["note"] = json!(format!("{n} users considered, {changed} would change"));
    emit("preview, latency", "ms", preview_ms, details.clone());
    emit("preview, users considered", "users/s", n as f64 / (preview_ms / 1000.0), details);

    // Reported as its own target: nothing here is a server.
    let in_memory = Labels { target: IN_MEMORY.into(), ..args.labels.clone() };
    let loop_ms = plain.time(&reversed, args.passes) * 1000.0;
    let note = format!("{n} users, {GROUPS} rules; plain sets of group ids, no store, no server");
    let details = json!({"passes": args.passes, "note": note});
    in_memory.emit("rules", &case, LOOP_TIME, "ms", loop_ms, details.clone());
    in_memory.emit("rules", &case, "every user resolved", "users/s", n as f64 / (loop_ms / 1000.0), details);
    if left != 0 {
        return Err(format!("after the reorder a preview still changes {left} users").into());
    }
    Ok(())
}

/// The ids a phase returned, in operation order; an error if any operation failed.
fn all_values(phase: Phase, what: &str) -> Result<Vec<String>> {
    if phase.errors > 0 {
        return Err(format!("{what}: {} failed", phase.errors).into());
    }
    Ok(phase.values.into_iter().map(|(_, v)| v).collect())
}

/// Group `g`'s rule as the admin API takes it (`POST /rules` without an id, a preview's list with one).
fn rule_doc(id: Option<&str>, g: usize, gid: &str) -> Value {
    json!({
        "id": id,
        "group": gid,
        "filter": rules_layout::filter(g),
        "products": rules_layout::bundle(g),
        "description": format!("benchmark rule of group {g}"),
    })
}

/// A preview's users considered and users whose bundle would change.
fn preview_counts(res: &Response) -> Result<(usize, usize)> {
    let doc: Value = serde_json::from_slice(&res.body)?;
    let evaluated = doc.get("evaluated").and_then(Value::as_u64).ok_or("preview: no 'evaluated'")?;
    // The users are paged; `changing` counts all of them.
    let changing = doc.get("changing").and_then(Value::as_u64).ok_or("preview: no 'changing'")?;
    Ok((usize::try_from(evaluated)?, usize::try_from(changing)?))
}

/// Polls `GET /sync` (admin API) every `poll` until no evaluation is pending; returns the seconds since
/// `started` and the polls made.
fn wait_drained(
    admin: &mut Conn,
    started: Instant,
    poll: Duration,
    max_seconds: f64,
) -> Result<(f64, usize)> {
    let mut polls = 0;
    loop {
        let res = expect(admin.get("/sync")?, 200, "sync status")?;
        polls += 1;
        let doc: Value = serde_json::from_slice(&res.body)?;
        match doc.get("pending").and_then(Value::as_u64) {
            Some(0) => return Ok((started.elapsed().as_secs_f64(), polls)),
            Some(_) if started.elapsed().as_secs_f64() < max_seconds => std::thread::sleep(poll),
            Some(pending) => {
                return Err(format!("{pending} evaluations still pending after {max_seconds} s").into());
            }
            None => return Err("GET /sync: no 'pending'".into()),
        }
    }
}

/// Workload 4's users and rules on plain data structures: the floor the reorder is compared with.
struct PlainDirectory {
    users: Vec<PlainUser>,
    gids: Vec<String>,
    rule_ids: Vec<String>,
}

struct PlainUser {
    title: &'static str,
    groups: HashSet<String>,
}

struct PlainRule {
    id: String,
    group: String,
    title: Option<&'static str>,
    products: &'static [&'static str],
}

impl PlainDirectory {
    fn new(uids: &[String], gids: &[String], rule_ids: &[String]) -> PlainDirectory {
        let users = (0..uids.len())
            .map(|i| PlainUser {
                title: rules_layout::title(i),
                groups: rules_layout::groups_of(i).map(|g| gids[g].clone()).collect(),
            })
            .collect();
        PlainDirectory { users, gids: gids.to_vec(), rule_ids: rule_ids.to_vec() }
    }

    /// The rules of the groups in `order`, highest priority first.
    fn rules(&self, order: impl Iterator<Item = usize>) -> Vec<PlainRule> {
        order
            .map(|g| PlainRule {
                id: self.rule_ids[g].clone(),
                group: self.gids[g].clone(),
                title: rules_layout::filter_title(g),
                products: rules_layout::bundle(g),
            })
            .collect()
    }

    /// The deciding rule: the first (lowest-numbered) whose group contains the user and whose filter matches.
    fn resolve<'r>(user: &PlainUser, rules: &'r [PlainRule]) -> Option<&'r PlainRule> {
        rules.iter().find(|r| {
            user.groups.contains(&r.group) && r.title.is_none_or(|t| user.title.eq_ignore_ascii_case(t))
        })
    }

    /// Users whose deciding rule differs between two rule lists, and users whose products differ.
    fn moved_and_changed(&self, before: &[PlainRule], after: &[PlainRule]) -> (usize, usize) {
        let (mut moved, mut changed) = (0, 0);
        for user in &self.users {
            let (a, b) = (Self::resolve(user, before), Self::resolve(user, after));
            moved += usize::from(a.map(|r| &r.id) != b.map(|r| &r.id));
            changed += usize::from(a.map(|r| &r.products) != b.map(|r| &r.products));
        }
        (moved, changed)
    }

    /// Median seconds of `passes` passes deciding every user's products under `rules`.
    fn time(&self, rules: &[PlainRule], passes: usize) -> f64 {
        let times: Vec<f64> = (0..passes.max(1))
            .map(|_| {
                let t0 = Instant::now();
                let decisions: Vec<Option<&[&str]>> =
                    self.users.iter().map(|u| Self::resolve(u, rules).map(|r| r.products)).collect();
                std::hint::black_box(decisions);
                t0.elapsed().as_secs_f64()
            })
            .collect();
        report::median(&times)
    }
}

// ---------------------------------------------------------------------------------------------------------

/// A minimal HTTP/1.1 client: one keep-alive connection, Content-Length and chunked bodies, reconnecting
/// when the server closed the connection (HTTP/1.0 servers close after every response).
mod http {
    use std::io::{self, BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
    use std::time::Duration;

    use super::Result;

    /// A base URL split for requests: where to connect, the Host header, the path prefix, the token.
    pub struct Target {
        addr: SocketAddr,
        host: String,
        prefix: String,
        token: String,
        auth: String,
    }

    impl Target {
        pub fn parse(base: &str, token: &str) -> Result<Target> {
            let rest = base.strip_prefix("http://").ok_or("the base URL must start with http://")?;
            let (host, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let addr = host.to_socket_addrs()?.next().ok_or_else(|| format!("cannot resolve {host}"))?;
            let auth =
                if token.is_empty() { String::new() } else { format!("Authorization: Bearer {token}\r\n") };
            let (host, prefix, token) =
                (host.to_string(), prefix.trim_end_matches('/').to_string(), token.into());
            Ok(Target { addr, host, prefix, token, auth })
        }

        pub fn url(&self, path: &str) -> String {
            format!("http://{}{}{path}", self.host, self.prefix)
        }

        /// The Authorization header line, if a token is set.
        pub fn authorization(&self) -> Option<String> {
            (!self.token.is_empty()).then(|| format!("Authorization: Bearer {}", self.token))
        }
    }

    pub struct Response {
        pub status: u16,
        pub body: Vec<u8>,
    }

    pub struct Conn<'a> {
        target: &'a Target,
        stream: Option<BufReader<TcpStream>>,
        request: Vec<u8>,
        line: Vec<u8>,
    }

    impl<'a> Conn<'a> {
        pub fn new(target: &'a Target) -> Conn<'a> {
            Conn { target, stream: None, request: Vec::with_capacity(4096), line: Vec::with_capacity(256) }
        }

        pub fn get(&mut self, path: &str) -> io::Result<Response> {
            self.send("GET", path, None)
        }

        pub fn send(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> io::Result<Response> {
            let t = self.target;
            self.request.clear();
            write!(
                self.request,
                "{method} {}{path} HTTP/1.1\r\nHost: {}\r\n{}Accept: application/scim+json\r\n",
                t.prefix, t.host, t.auth
            )?;
            if let Some(body) = body {
                write!(
                    self.request,
                    "Content-Type: application/scim+json\r\nContent-Length: {}\r\n",
                    body.len()
                )?;
            }
            self.request.extend_from_slice(b"\r\n");
            self.request.extend_from_slice(body.unwrap_or_default());
            let reused = self.stream.is_some();
            match self.exchange() {
                // A kept-alive connection the server has closed meanwhile: once more on a new one.
                Err(e) if reused && is_closed(&e) => self.exchange(),
                other => other,
            }
        }

        fn exchange(&mut self) -> io::Result<Response> {
            let stream = match &mut self.stream {
                Some(s) => s,
                None => {
                    let s = TcpStream::connect(self.target.addr)?;
                    s.set_nodelay(true)?;
                    s.set_read_timeout(Some(Duration::from_secs(300)))?;
                    self.stream.insert(BufReader::with_capacity(64 * 1024, s))
                }
            };
            let result = stream
                .get_mut()
                .write_all(&self.request)
                .and_then(|()| read_response(stream, &mut self.line));
            match result {
                Ok((res, true)) => Ok(res),
                Ok((res, false)) => {
                    self.stream = None;
                    Ok(res)
                }
                Err(e) => {
                    self.stream = None;
                    Err(e)
                }
            }
        }
    }

    fn is_closed(e: &io::Error) -> bool {
        use io::ErrorKind::*;
        matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof)
    }

    fn read_line(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> io::Result<()> {
        line.clear();
        if r.read_until(b'\n', line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        Ok(())
    }

    fn invalid(what: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, what.to_string())
    }

    /// Reads one response; the flag tells whether the connection stays open.
    fn read_response(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> io::Result<(Response, bool)> {
        read_line(r, line)?;
        let head = String::from_utf8_lossy(line).into_owned();
        let mut parts = head.split_whitespace();
        let version = parts.next().unwrap_or_default();
        let status: u16 =
            parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| invalid("bad status line"))?;
        let mut keep_alive = version == "HTTP/1.1";
        let (mut length, mut chunked) = (None, false);
        loop {
            read_line(r, line)?;
            let text = String::from_utf8_lossy(line);
            let text = text.trim_end();
            if text.is_empty() {
                break;
            }
            let Some((name, value)) = text.split_once(':') else { continue };
            let value = value.trim().to_ascii_lowercase();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.contains("chunked"),
                "connection" if value.contains("close") => keep_alive = false,
                "connection" if value.contains("keep-alive") => keep_alive = true,
                _ => {}
            }
        }
        let mut body = Vec::new();
        if status == 204 || status == 304 || status < 200 {
        } else if chunked {
            loop {
                read_line(r, line)?;
                let text = String::from_utf8_lossy(line);
                let size = text.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
                if size == 0 {
                    // trailers, up to the empty line
                    while {
                        read_line(r, line)?;
                        line.as_slice() != b"\r\n" && line.as_slice() != b"\n"
                    } {}
                    break;
                }
                let at = body.len();
                body.resize(at + size, 0);
                r.read_exact(&mut body[at..])?;
                read_line(r, line)?;
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        } else {
            keep_alive = false;
            r.read_to_end(&mut body)?;
        }
        Ok((Response { status, body }, keep_alive))
    }
}

// ---------------------------------------------------------------------------------------------------------

/// The markdown report: every measurement's median, min and max over its runs, then each target.
mod report {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    use serde_json::Value;

    use super::{IN_MEMORY, LOOP_TIME, REORDER_TIME, ReportArgs, Result};

    /// Workloads in report order, with their headings.
    const WORKLOADS: [(&str, &str); 8] = [
        ("import", "Workload 1: Okta-style import and lookup"),
        ("groups", "Workload 2: Entra-style group sync"),
        ("read", "Workload 3: read throughput"),
        ("rules", "Workload 4: rule re-evaluation"),
        ("durability", "Workload 5: durability cost"),
        ("footprint", "Workload 6: footprint"),
        ("admin", "Workload 7: admin API look-ups"),
        ("abuse", "Workload 8: other clients beside the largest requests (goal: p99 under 100 ms)"),
    ];

    const HOW_TO: &str = "\
# Benchmarks

The section down to the end marker below is written by `bench/run.sh` (everything below the list of options
is its last run); the script keeps the sections after the marker, which were measured by hand.

```sh
bench/run.sh                 # full run: N = 10,000 and 100,000, 3 runs per measurement (an hour or more)
BENCH_QUICK=1 bench/run.sh   # smoke run: small N, one run, same workloads and report (a few minutes)
```

Options (environment): `BENCH_QUICK=1` small sizes and one run; `BENCH_RUNS=K` runs per measurement;
`BENCH_RUNS_LARGE=K` runs at the large N; `BENCH_PEER_RUNS_LARGE=K` scim2-server's runs at the large N
(default 1); `BENCH_PEER_MAX_SECONDS=S` time cap of each scim2-server phase (default 120); `BENCH_HOME=DIR`
venv, data directories and raw results (default `~/.cache/usersync-bench`); `BENCH_OUT=FILE` this report
(default `docs/benchmarks.md`); `BENCH_CHURN=1` also runs the churn example (`examples/churn.rs`, the store's
size under 50 rounds of group replacement and user churn) and appends its figures after the marker;
`CARGO_TARGET_DIR` is honoured. Needs cargo, python3 (with venv and pip
reaching PyPI) and wrk (installed with apt-get when missing and run as root).

What it does: builds the release binary and the examples `loadgen` and `ceiling`, installs
`scim2-server` from PyPI into a venv if missing, starts every server on loopback with a fresh data
directory, runs each workload, and writes this file; the raw results (one JSON line per measurement) stay
in `$BENCH_HOME/results/`. `examples/loadgen.rs` drives every workload over HTTP/1.1 keep-alive
connections, one std thread per client; workload 3 is driven by wrk through `loadgen read --wrk`, which
needs less CPU than client threads. Client and server share the machine, so on a small machine the
client's CPU is part of the picture.

The servers: usersync with its defaults (`--durability sync`, one worker per core) and `RUST_LOG=warn`.
scim2-server is the reference server from PyPI: in memory, nothing on disk, a threaded WSGI server that
answers HTTP/1.0 and closes every connection. Its listen backlog is 5, so at 32 clients dropped SYNs
(1 s retransmits) cut its throughput several times; it is driven with 4 clients, at which it does best,
which makes the ×20 targets harder, not easier. Its phases stop at a time cap (marked `capped`, with how
much was done) when it is too slow for N. The ceiling (`examples/ceiling.rs`) is actix-web answering
every GET with a fixed JSON body as large as usersync's answer to the benchmark user's
`GET /Users/{id}`, with as many workers as usersync.

Workload 4 runs on usersync alone (scim2-server has no rule engine), started with an admin token, at the
large N: the layout of `examples/common/rules_layout.rs` (as `examples/reevaluate.rs` builds it in
process), 50 groups, every user in one and every fifth user in a second one, 50 rules (one per group,
every seventh with a `title` filter, unlimited seats), sync on and drained. Then `PUT /admin/v1/rules/order`
reverses the order and the time runs until `GET /admin/v1/sync` reports `pending` 0 (polled every 5 ms).
The engine re-evaluates only the users whose deciding rule moves (in two groups whose rules both match
them); everyone else keeps their bundle without being read. So the rows give both rates over the same
time: users re-evaluated per second (their count from a model of the same users, and the previews agree
with it) and all users per second. The previews (`POST /admin/v1/rules/preview` of the reversed list,
before it is applied) evaluate the users the change can reach: reversing the list moves every rule past
another, so that is every member of the 50 groups, here every user; a last preview after the reorder must
change nobody. A one-rule edit is previewed for its group's members alone (`examples/reevaluate.rs`). The
in-memory loop resolves the same users against the same rules in loadgen, on plain sets of group ids, no
store, no server: the floor the reorder's time is compared with.

Each row is the median over the runs, with min and max; the notes give the clients, the medians of the
runs' p50 and p99 latencies, errors, and caps.
";

    struct Row {
        workload: String,
        case: String,
        measure: String,
        target: String,
        unit: String,
        values: Vec<f64>,
        p50: Vec<f64>,
        p99: Vec<f64>,
        errors: u64,
        capped: Vec<String>,
        /// Client connections and what drove them (`wrk`), where it says.
        clients: Option<String>,
        extra: Vec<String>,
    }

    pub fn median(values: &[f64]) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    fn fmt(v: f64) -> String {
        if v.is_nan() {
            "–".into()
        } else if v >= 1000.0 {
            let s = format!("{:.0}", v);
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            out
        } else if v >= 100.0 {
            format!("{v:.0}")
        } else if v >= 10.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        }
    }

    pub fn write(args: &ReportArgs) -> Result<()> {
        let mut rows: Vec<Row> = Vec::new();
        for file in &args.results {
            for line in std::fs::read_to_string(file)?.lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
                let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                let n = |k: &str| v.get(k).and_then(Value::as_f64);
                let (Some(value), false) = (n("value"), s("measure").is_empty()) else { continue };
                let key = (s("workload"), s("case"), s("measure"), s("target"));
                let pos = rows.iter().position(|r| {
                    (&r.workload, &r.case, &r.measure, &r.target) == (&key.0, &key.1, &key.2, &key.3)
                });
                let row = match pos {
                    Some(p) => &mut rows[p],
                    None => {
                        rows.push(Row {
                            workload: key.0,
                            case: key.1,
                            measure: key.2,
                            target: key.3,
                            unit: s("unit"),
                            values: Vec::new(),
                            p50: Vec::new(),
                            p99: Vec::new(),
                            errors: 0,
                            capped: Vec::new(),
                            clients: None,
                            extra: Vec::new(),
                        });
                        let last = rows.len() - 1;
                        &mut rows[last]
                    }
                };
                row.values.push(value);
                row.p50.extend(n("p50_ms"));
                row.p99.extend(n("p99_ms"));
                row.errors += n("errors").unwrap_or(0.0) as u64;
                if let Some(c) = n("clients").or(n("writers")) {
                    let by = if s("driver") == "wrk" { " (wrk)" } else { "" };
                    row.clients = Some(format!("{c} clients{by}"));
                }
                if v.get("capped").and_then(Value::as_bool) == Some(true) {
                    let done = fmt(n("ops").unwrap_or(0.0));
                    let of = n("planned").map_or(String::new(), |p| format!(" of {}", fmt(p)));
                    row.capped.push(format!("{done}{of} in {} s", fmt(n("seconds").unwrap_or(0.0))));
                }
                if let (Some(got), Some(want)) = (n("final_members"), n("expected_members")) {
                    row.extra.push(if got == want {
                        format!("final count {got} verified")
                    } else {
                        format!("final count {got}, expected {want}: MISMATCH")
                    });
                }
                if !s("note").is_empty() {
                    row.extra.push(s("note"));
                }
            }
        }
        let mut md = String::from(HOW_TO);
        md.push('\n');
        for m in &args.meta {
            let _ = writeln!(md, "- {m}");
        }
        md.push_str("\n## Targets\n\n");
        md.push_str(&targets(&rows));
        for (workload, heading) in WORKLOADS {
            let _ = writeln!(md, "\n## {heading}\n");
            if !rows.iter().any(|r| r.workload == workload) {
                md.push_str("Not run.\n");
                continue;
            }
            md.push_str("| case | measure | server | median | min | max | runs | notes |\n");
            md.push_str("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |\n");
            for r in rows.iter().filter(|r| r.workload == workload) {
                let mut notes: Vec<String> = r.clients.iter().cloned().collect();
                if r.unit == "ms" && !r.p99.is_empty() {
                    notes.push(format!("p99 {} ms", fmt(median(&r.p99))));
                } else if !r.p50.is_empty() {
                    notes.push(format!("p50 {} ms, p99 {} ms", fmt(median(&r.p50)), fmt(median(&r.p99))));
                }
                if r.errors > 0 {
                    notes.push(format!("{} errors", r.errors));
                }
                if !r.capped.is_empty() {
                    notes.push(format!("capped: {}", r.capped.join("; ")));
                }
                let mut extra = r.extra.clone();
                extra.dedup();
                notes.extend(extra);
                let max = r.values.iter().copied().fold(f64::NAN, f64::max);
                let min = r.values.iter().copied().fold(f64::NAN, f64::min);
                let _ = writeln!(
                    md,
                    "| {} | {} ({}) | {} | {} | {} | {} | {} | {} |",
                    r.case,
                    r.measure,
                    r.unit,
                    r.target,
                    fmt(median(&r.values)),
                    fmt(min),
                    fmt(max),
                    r.values.len(),
                    notes.join("; ")
                );
            }
        }
        std::fs::write(&args.out, md)?;
        Ok(())
    }

    /// Median of one row, if it was measured.
    fn find(rows: &[Row], workload: &str, case: Option<&str>, measure: &str, target: &str) -> Option<f64> {
        rows.iter()
            .find(|r| {
                r.workload == workload
                    && case.is_none_or(|c| r.case == c)
                    && r.measure == measure
                    && r.target == target
            })
            .map(|r| median(&r.values))
    }

    /// A line of the targets table for a figure reported without a target.
    fn reported(md: &mut String, what: &str, value: f64) {
        let _ = writeln!(md, "| {what} | {} | none (reported) | – |", fmt(value));
    }

    /// One line of the targets table.
    fn verdict(md: &mut String, what: &str, ratio: f64, goal: &str, met: bool) {
        let _ =
            writeln!(md, "| {what} | {} | {goal} | {} |", fmt(ratio), if met { "met" } else { "**missed**" });
    }

    fn targets(rows: &[Row]) -> String {
        let mut md = String::from(
            "| ratio (of medians) | measured | target | verdict |\n| --- | ---: | --- | --- |\n",
        );
        // Read throughput against the ceiling and the peer.
        let read = |t: &str| find(rows, "read", None, "reads", t);
        if let (Some(u), Some(c)) = (read("usersync"), read("ceiling")) {
            verdict(&mut md, "read: usersync / ceiling", u / c, "≥ 0.5", u / c >= 0.5);
        }
        if let (Some(u), Some(p)) = (read("usersync"), read("scim2-server")) {
            verdict(&mut md, "read: usersync / scim2-server", u / p, "≥ 20", u / p >= 20.0);
        }
        // Every import measurement both servers ran.
        let mut cases: Vec<&str> = Vec::new();
        for r in rows.iter().filter(|r| r.workload == "import") {
            if !cases.contains(&r.case.as_str()) {
                cases.push(&r.case);
            }
        }
        for case in cases {
            for measure in ["creates", "lookups", "pages"] {
                let get = |t| find(rows, "import", Some(case), measure, t);
                if let (Some(u), Some(p)) = (get("usersync"), get("scim2-server")) {
                    let capped = rows.iter().any(|r| {
                        r.workload == "import"
                            && r.case == case
                            && r.target == "scim2-server"
                            && !r.capped.is_empty()
                    });
                    let note = if capped { " (scim2-server capped: see its rows)" } else { "" };
                    let what = format!("import {case}, {measure}: usersync / scim2-server{note}");
                    verdict(&mut md, &what, u / p, "≥ 20", u / p >= 20.0);
                }
            }
        }
        // Single-member PATCH latency at the largest size against the smallest.
        let mut sizes: BTreeMap<usize, &str> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.workload == "groups") {
            if let Some(n) = r.case.strip_prefix("size=").and_then(|n| n.parse().ok()) {
                sizes.insert(n, &r.case);
            }
        }
        if let (Some((small, s_case)), Some((large, l_case))) =
            (sizes.first_key_value(), sizes.last_key_value())
            && small != large
        {
            for measure in ["single add p50", "single remove p50"] {
                let get = |c| find(rows, "groups", Some(c), measure, "usersync");
                if let (Some(s), Some(l)) = (get(s_case), get(l_case)) {
                    let what = format!("{measure} latency: {large} members / {small} members");
                    verdict(&mut md, &what, l / s, "≤ 1.5", l / s <= 1.5);
                }
            }
        }
        // Durable creates against relaxed ones.
        let dur = |c| find(rows, "durability", Some(c), "creates", "usersync");
        if let (Some(s), Some(r)) = (dur("sync"), dur("relaxed")) {
            verdict(&mut md, "creates, 32 clients: sync / relaxed", s / r, "≥ 0.5", s / r >= 0.5);
        }
        // The reorder's re-evaluation (an absolute target, in seconds, at 100,000 users), and its ratio to
        // the plain in-memory loop over the same users.
        // Below 100,000 users (a smoke run) the time is only reported.
        for r in rows.iter().filter(|r| r.workload == "rules" && r.measure == REORDER_TIME) {
            let seconds = median(&r.values);
            let what = format!("reorder re-evaluation (s) at {}", r.case);
            let users: usize = r.case.strip_prefix("users=").and_then(|n| n.parse().ok()).unwrap_or(0);
            if users >= 100_000 {
                verdict(&mut md, &what, seconds, "< 2 s at 100,000 users", seconds < 2.0);
            } else {
                reported(&mut md, &format!("{what} (the < 2 s target is at 100,000)"), seconds);
            }
            if let Some(ms) = find(rows, "rules", Some(&r.case), LOOP_TIME, IN_MEMORY) {
                let what = format!("reorder time / in-memory loop time at {}", r.case);
                reported(&mut md, &what, seconds / (ms / 1000.0));
            }
        }
        // Peak RSS (an absolute target, in MB).
        if let Some(r) = rows.iter().find(|r| r.workload == "footprint" && r.measure == "peak RSS") {
            let peak = median(&r.values);
            let what = format!("peak RSS (MB) at {}", r.case);
            verdict(&mut md, &what, peak, "< 300 MB", peak < 300.0);
        }
        md
    }
}
