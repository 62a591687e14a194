//! Store integrity with the real binary: a damaged copy of a stopped store is refused with words (or starts
//! with every record as written), a full disk is answered 507 and survived without a restart, and deleted
//! data gives its space back.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::crash::start_binary;
use crate::helpers::*;

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// What the clients were told is stored: users (id → userName) and groups (id → sorted member ids).
#[derive(Debug, PartialEq, Default)]
struct Contents {
    users: BTreeMap<String, String>,
    groups: BTreeMap<String, Vec<String>>,
    /// user id → sorted ids of the groups the user's `groups` attribute names.
    groups_of: BTreeMap<String, Vec<String>>,
}

fn post(client: &Client, addr: &str, path: &str, body: &Value) -> Value {
    let res = client
        .post(format!("http://{addr}/scim/v2{path}"))
        .bearer_auth(SCIM_TOKEN)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .unwrap();
    expect_status(res, StatusCode::CREATED)
}

/// Users, groups with members, a replaced member list and deletions: what a store holds after a while.
fn populate(client: &Client, addr: &str, users: usize) -> Contents {
    let mut want = Contents::default();
    let mut ids = Vec::new();
    for i in 0..users {
        let name = format!("user{i}@flip.example");
        let user =
            post(client, addr, "/Users", &json!({"userName": name, "displayName": format!("User {i}")}));
        let id = user["id"].as_str().unwrap().to_string();
        want.users.insert(id.clone(), name);
        want.groups_of.insert(id.clone(), Vec::new());
        ids.push(id);
    }
    for g in 0..3 {
        let members: Vec<String> = ids.iter().skip(g).step_by(g + 2).cloned().collect();
        let body = json!({"displayName": format!("group {g}"),
            "members": members.iter().map(|id| json!({"value": id})).collect::<Vec<_>>()});
        let gid = post(client, addr, "/Groups", &body)["id"].as_str().unwrap().to_string();
        want.groups.insert(gid, members);
    }
    // one group's members replaced, one user deleted
    let (gid, _) = want.groups.iter().next().map(|(g, m)| (g.clone(), m.clone())).unwrap();
    let replaced: Vec<String> = ids.iter().rev().take(users / 3).cloned().collect();
    let body = json!({"displayName": "group replaced",
        "members": replaced.iter().map(|id| json!({"value": id})).collect::<Vec<_>>()});
    let res = client
        .put(format!("http://{addr}/scim/v2/Groups/{gid}"))
        .bearer_auth(SCIM_TOKEN)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .unwrap();
    expect_status(res, StatusCode::OK);
    want.groups.insert(gid, replaced);
    let gone = ids[1].clone();
    let res =
        client.delete(format!("http://{addr}/scim/v2/Users/{gone}")).bearer_auth(SCIM_TOKEN).send().unwrap();
    expect_status(res, StatusCode::NO_CONTENT);
    want.users.remove(&gone);
    want.groups_of.remove(&gone);
    for members in want.groups.values_mut() {
        members.retain(|m| *m != gone);
        members.sort();
    }
    for (gid, members) in &want.groups {
        for m in members {
            want.groups_of.get_mut(m).unwrap().push(gid.clone());
        }
    }
    for groups in want.groups_of.values_mut() {
        groups.sort();
    }
    want
}

fn get(client: &Client, addr: &str, path: &str) -> Value {
    let res = client.get(format!("http://{addr}/scim/v2{path}")).bearer_auth(SCIM_TOKEN).send().unwrap();
    expect_status(res, StatusCode::OK)
}

/// What the server answers now.
fn observe(client: &Client, addr: &str) -> Contents {
    let mut seen = Contents::default();
    let users = get(client, addr, "/Users?count=1000");
    for u in users["Resources"].as_array().unwrap() {
        let id = u["id"].as_str().unwrap().to_string();
        seen.users.insert(id.clone(), u["userName"].as_str().unwrap_or("").to_string());
        let mut groups: Vec<String> = u["groups"]
            .as_array()
            .map(|g| g.iter().filter_map(|g| g["value"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        groups.sort();
        seen.groups_of.insert(id, groups);
    }
    let groups = get(client, addr, "/Groups?count=1000&excludedAttributes=members");
    for g in groups["Resources"].as_array().unwrap() {
        let gid = g["id"].as_str().unwrap().to_string();
        let full = get(client, addr, &format!("/Groups/{gid}"));
        let mut members: Vec<String> = full["members"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["value"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        members.sort();
        seen.groups.insert(gid, members);
    }
    seen
}

/// A server process, killed when dropped (a failed assertion leaves no server running).
struct Server(Option<Child>);

impl From<Child> for Server {
    fn from(child: Child) -> Server {
        Server(Some(child))
    }
}

impl Server {
    fn take(mut self) -> Child {
        self.0.take().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn terminate(server: impl Into<Server>) {
    let mut child = server.into().take();
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "a SIGTERM is a clean stop: {status:?}");
}

enum Start {
    Up(Server, String),
    Refused { code: Option<i32>, stderr: String },
}

/// Starts the binary on `data` (with or without extra arguments) and waits for it to listen or to exit.
fn try_start(data: &Path, extra: &[&str]) -> Start {
    let durability: &[&str] = if extra.contains(&"--durability") { &[] } else { &["--durability", "flush"] };
    let mut child = Command::new(env!("CARGO_BIN_EXE_usersync"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(durability)
        .args(extra)
        .env("USERSYNC_SCIM_TOKEN", SCIM_TOKEN)
        .env("USERSYNC_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("USERSYNC_RATE_LIMIT", "0") // loads beyond one account's production limit
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("usersync listening on http://") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let started = Instant::now();
    loop {
        if let Ok(addr) = rx.try_recv() {
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::stderr()));
            return Start::Up(child.into(), addr);
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
            return Start::Refused { code: status.code(), stderr: text };
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the binary neither started nor stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every file in the store, relative to it (not the reserve file, which holds no data: zeros kept for
/// a full disk).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == ".reserve" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            out.extend(files(&entry.path()).into_iter().map(|p| Path::new(&entry.file_name()).join(p)));
        } else {
            out.push(PathBuf::from(entry.file_name()));
        }
    }
    out.sort();
    out
}

/// Where the last non-zero byte of a file is: sled extends its log with zeros to a whole segment.
fn data_end(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p as u64 + 1)
}

/// The message of a refusal names the damage and what to do, in words and without a backtrace.
#[track_caller]
fn assert_clear_refusal(code: Option<i32>, stderr: &str, case: &str) {
    assert_eq!(code, Some(3), "{case}: exit code; stderr: {stderr}");
    assert!(stderr.contains("is damaged and was not opened"), "{case}: {stderr}");
    assert!(stderr.contains("What to do: restore the data directory from a backup"), "{case}: {stderr}");
    assert!(stderr.contains("--accept-data-loss"), "{case}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{case}: {stderr}");
}

/// Offsets to flip in a file of `len` bytes: its first bytes (headers) and `n` spread over the rest.
fn offsets(len: u64, n: u64) -> Vec<u64> {
    let mut out: Vec<u64> = (0..n.min(4)).map(|i| i * 3).filter(|&o| o < len).collect();
    out.extend((0..n).map(|i| (i * len) / n + (i * 7919) % (len / n).max(1)).filter(|&o| o < len));
    out.sort_unstable();
    out.dedup();
    out
}

/// The directory of the store's active generation: the one `CURRENT` names, else the store itself.
fn active_generation(store: &Path) -> PathBuf {
    match std::fs::read_to_string(store.join("CURRENT")) {
        Ok(name) => store.join(name.trim_end()),
        Err(_) => store.to_path_buf(),
    }
}

/// `usersync compact` of a stopped store.
fn compact_stopped(store: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_usersync"))
        .arg("--data")
        .arg(store)
        .arg("compact")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("compacted the store"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn damaged_copies_of_a_stopped_store_are_refused_or_start_with_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (child, addr) = start_binary(&store);
    let child = Server::from(child);
    let client = client();
    let want = populate(&client, &addr, 120);
    assert_eq!(observe(&client, &addr), want, "the server answers what was written");
    terminate(child);
    // started and stopped once more, sled also keeps a snapshot of its page table
    let (child, addr) = start_binary(&store);
    let child = Server::from(child);
    assert_eq!(observe(&client, &addr), want, "the server answers what was written after a restart");
    terminate(child);

    // compacted, and started once more: sled's files are in a generation that `CURRENT` names
    compact_stopped(&store);
    let (child, addr) = start_binary(&store);
    let child = Server::from(child);
    assert_eq!(observe(&client, &addr), want, "the server answers what was written after a compaction");
    terminate(child);

    let files = files(&store);
    let log = active_generation(&store).join("db");
    assert!(files.iter().any(|f| f.to_string_lossy().contains("snap.")), "{files:?}");
    let mut cases = Vec::new();
    for file in &files {
        let len = std::fs::metadata(store.join(file)).unwrap().len();
        let n = if store.join(file) == log { 64 } else { 6 };
        cases.extend(offsets(len, n).into_iter().map(|o| (file.clone(), o)));
    }
    assert!(cases.len() >= 64, "{} offsets over {files:?}", cases.len());
    assert!(files.iter().any(|f| f == Path::new("CURRENT")), "{files:?}");
    assert!(files.iter().any(|f| store.join(f) == log) && files.iter().any(|f| f.ends_with("conf")));

    let (mut refused, mut intact) = (0, 0);
    for (i, (file, offset)) in cases.iter().enumerate() {
        let copy = dir.path().join(format!("flip{i}"));
        copy_dir(&store, &copy);
        let path = copy.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[*offset as usize] ^= 1 << (i % 8);
        std::fs::write(&path, bytes).unwrap();
        let case = format!("byte {offset} of {} flipped", file.display());
        match try_start(&copy, &[]) {
            Start::Refused { code, stderr } => {
                assert_clear_refusal(code, &stderr, &case);
                refused += 1;
            }
            Start::Up(server, addr) => {
                let seen = observe(&client, &addr);
                eprintln!("{case}: started");
                drop(server);
                assert_eq!(seen, want, "{case}: started with other data");
                intact += 1;
            }
        }
        std::fs::remove_dir_all(&copy).unwrap();
    }
    eprintln!("{} flips: {refused} refused, {intact} started with every record intact", cases.len());

    // a truncated log is refused when the cut takes records; the last bytes may hold only sled's own
    // bookkeeping (node splits and snapshots written by background flushes, more of them on a loaded
    // machine), whose loss leaves every record: then the copy may start, with everything as written. Half
    // the log always holds records.
    let len = data_end(&log);
    let log = log.strip_prefix(&store).unwrap();
    for keep in [len / 2, len - len / 8, len - 10] {
        let copy = dir.path().join(format!("cut{keep}"));
        copy_dir(&store, &copy);
        std::fs::OpenOptions::new().write(true).open(copy.join(log)).unwrap().set_len(keep).unwrap();
        match try_start(&copy, &[]) {
            Start::Refused { code, stderr } => {
                assert_clear_refusal(code, &stderr, &format!("log cut to {keep}"))
            }
            Start::Up(server, addr) => {
                let seen = observe(&client, &addr);
                drop(server);
                assert!(keep != len / 2, "a log cut to {keep} of {len} bytes was opened");
                assert_eq!(seen, want, "a log cut to {keep} of {len} bytes started with other data");
            }
        }
    }
}

#[test]
fn a_refused_store_is_explained_by_verify_and_opened_only_after_accepting_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (child, addr) = start_binary(&store);
    let child = Server::from(child);
    let client = client();
    let want = populate(&client, &addr, 30);
    terminate(child);
    let verify = |data: &Path| {
        Command::new(env!("CARGO_BIN_EXE_usersync")).arg("--data").arg(data).arg("verify").output().unwrap()
    };
    let copy = dir.path().join("copy");
    copy_dir(&store, &copy);
    let sound = verify(&copy);
    assert!(sound.status.success(), "{}", String::from_utf8_lossy(&sound.stderr));
    assert!(String::from_utf8_lossy(&sound.stdout).contains("is sound"));

    // the last acknowledged commits are lost (the log cut): refused, not a first start
    let len = data_end(&store.join("db"));
    std::fs::OpenOptions::new().write(true).open(store.join("db")).unwrap().set_len(len / 2).unwrap();
    let Start::Refused { code, stderr } = try_start(&store, &[]) else { panic!("a cut log was opened") };
    assert_clear_refusal(code, &stderr, "cut log");
    assert!(stderr.contains("acknowledged"), "{stderr}");

    let report = verify(&store);
    assert_eq!(report.status.code(), Some(1), "verify fails on a damaged store");
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(text.contains("problems:") && text.contains("acknowledged"), "{text}");
    let Start::Refused { code, stderr } = try_start(&store, &[]) else { panic!("verify repaired nothing") };
    assert_clear_refusal(code, &stderr, "cut log after verify");

    let Start::Up(child, addr) = try_start(&store, &["--accept-data-loss"]) else {
        panic!("--accept-data-loss opens the store")
    };
    let seen = observe(&client, &addr);
    // what is left is an earlier state: users written then (the deleted one may be back), nothing else
    assert!(seen.users.len() <= want.users.len() + 1, "nothing appears that was not written");
    for (id, name) in &seen.users {
        assert!(
            want.users.get(id).is_none_or(|n| n == name) && name.ends_with("@flip.example"),
            "{id} {name}"
        );
    }
    terminate(child);
    // from now on it starts without the flag
    let Start::Up(child, addr) = try_start(&store, &[]) else { panic!("the accepted store opens again") };
    assert_eq!(observe(&client, &addr).users, seen.users);
    terminate(child);
}

/// A tmpfs of `mb` megabytes mounted for the test, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (with the reason printed) where mounting is not allowed; in CI that is a failure.
    fn mount(mb: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(&path)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(SmallDisk { path, _dir: dir }),
            failed => {
                let why = match failed {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must be able to mount a tmpfs (as root): {why}"
                );
                eprintln!("SKIPPED: the disk-full test needs to mount a tmpfs (run as root): {why}");
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the disk with a file until only about `leave` bytes are free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![1u8; 64 << 10];
    let mut written = 0u64;
    while f.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    drop(f);
    let _ =
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(written.saturating_sub(leave));
    path
}

fn create(client: &Client, addr: &str, name: &str) -> reqwest::blocking::Response {
    client
        .post(format!("http://{addr}/scim/v2/Users"))
        .bearer_auth(SCIM_TOKEN)
        .header("content-type", "application/scim+json")
        .body(json!({"userName": name, "displayName": "x".repeat(400)}).to_string())
        .send()
        .unwrap()
}

fn store_state(client: &Client, addr: &str) -> Value {
    let res = client.get(format!("http://{addr}/admin/v1/sync")).bearer_auth(ADMIN_TOKEN).send().unwrap();
    expect_status(res, StatusCode::OK)["store"].clone()
}

/// A read while the disk is full: its answer, or `None` for a 507 (which must say the disk is full).
fn read_on_full_disk(client: &Client, url: String, token: &str) -> Option<Value> {
    let res = client.get(url).bearer_auth(token).send().unwrap();
    if res.status() == StatusCode::INSUFFICIENT_STORAGE {
        let body = res.text().unwrap();
        assert!(body.contains("disk is full"), "a 507 says why: {body}");
        return None;
    }
    Some(expect_status(res, StatusCode::OK))
}

/// Reads while the disk is full, for a few seconds: they go on (the store's reserve gives sled room for the
/// node splits it makes while reading), and `GET /admin/v1/sync` says the store takes no writes. sled 0.34
/// still writes during some reads: a read whose path crosses a node the last writes left oversized can be
/// refused with a 507 until space is freed, so at most one read in ten may be; none may fail otherwise.
fn reads_are_all_served(client: &Client, addr: &str, names: &[String]) {
    let started = Instant::now();
    let (mut rounds, mut reads, mut refused) = (0, 0, 0);
    let mut read = |path: String, token: &str| {
        reads += 1;
        let answer = read_on_full_disk(client, format!("http://{addr}{path}"), token);
        refused += usize::from(answer.is_none());
        answer
    };
    while started.elapsed() < Duration::from_secs(3) {
        if let Some(sync) = read("/admin/v1/sync".into(), ADMIN_TOKEN) {
            assert_eq!(sync["store"]["writable"], false, "the store says it takes no writes");
        }
        let name = &names[rounds % names.len()];
        let filter = format!("/scim/v2/Users?filter=userName%20eq%20%22{name}%22");
        if let Some(found) = read(filter, SCIM_TOKEN) {
            assert_eq!(found["totalResults"], 1, "{name} is served: {found}");
            let id = found["Resources"][0]["id"].as_str().unwrap().to_string();
            if let Some(user) = read(format!("/scim/v2/Users/{id}"), SCIM_TOKEN) {
                assert_eq!(user["userName"], name.as_str());
            }
        }
        let page = format!("/scim/v2/Users?startIndex={}&count=20", 1 + rounds % names.len());
        if let Some(page) = read(page, SCIM_TOKEN) {
            assert!(page["totalResults"].as_u64().unwrap() >= names.len() as u64, "{page}");
        }
        read("/scim/v2/Groups?count=5".into(), SCIM_TOKEN);
        rounds += 1;
    }
    assert!(rounds > 3, "only {rounds} rounds of reads in 3 s");
    assert!(refused * 10 <= reads, "{refused} of {reads} reads were refused while the disk was full");
}

/// Creates users until one is refused; returns the acknowledged ones and the refusal.
fn create_until_refused(client: &Client, addr: &str, from: usize, acknowledged: &mut Vec<String>) -> Value {
    for i in from..from + 100_000 {
        let name = format!("full{i}@disk.example");
        let started = Instant::now();
        let res = create(client, addr, &name);
        let status = res.status();
        let elapsed = started.elapsed();
        if status == StatusCode::CREATED {
            acknowledged.push(name);
            continue;
        }
        assert_eq!(
            status,
            StatusCode::INSUFFICIENT_STORAGE,
            "a write on a full disk: {}",
            res.text().unwrap()
        );
        assert!(elapsed < Duration::from_secs(5), "the 507 came after {elapsed:?}");
        assert_eq!(res.headers()["content-type"], "application/scim+json");
        return res.json().unwrap();
    }
    panic!("the disk never filled");
}

#[test]
fn a_full_disk_is_answered_507_reads_go_on_and_writes_recover_without_a_restart() {
    let Some(disk) = SmallDisk::mount(24) else { return };
    let data = disk.path.join("store");
    let Start::Up(child, addr) = try_start(&data, &["--durability", "sync"]) else { panic!("starts") };
    let client = client();
    let mut acknowledged = Vec::new();
    assert_eq!(create(&client, &addr, "first@disk.example").status(), StatusCode::CREATED);
    acknowledged.push("first@disk.example".to_string());
    assert_eq!(store_state(&client, &addr)["writable"], true);
    assert_eq!(store_state(&client, &addr)["reserveBytes"], 8 << 20, "the reserve is made at start");
    let filler = fill(&disk.path, 1 << 20);

    let refusal = create_until_refused(&client, &addr, 0, &mut acknowledged);
    assert_eq!(refusal["status"], "507", "{refusal}");
    assert!(refusal["schemas"][0].as_str().unwrap().ends_with(":Error"), "{refusal}");
    assert!(refusal["detail"].as_str().unwrap().contains("disk is full"), "{refusal}");
    // the next writes are refused at once too, reads go on, the state says so
    let started = Instant::now();
    assert_eq!(create(&client, &addr, "again@disk.example").status(), StatusCode::INSUFFICIENT_STORAGE);
    assert!(started.elapsed() < Duration::from_secs(5));
    reads_are_all_served(&client, &addr, &acknowledged);
    let res = client
        .put(format!("http://{addr}/admin/v1/sync"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(json!({"enabled": true}).to_string())
        .send()
        .unwrap();
    let body = expect_status(res, StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(body["error"], "insufficient_storage", "the admin API's own body: {body}");

    // space again: writes recover without a restart
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    loop {
        let res = create(&client, &addr, "recovered@disk.example");
        if res.status() == StatusCode::CREATED {
            acknowledged.push("recovered@disk.example".into());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "writes did not recover: {}", res.status());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(store_state(&client, &addr)["writable"], true);
    assert_eq!(store_state(&client, &addr)["reserveBytes"], 8 << 20, "the reserve is made again first");

    // full again, then a stop: prompt, and nothing acknowledged is lost
    let filler = fill(&disk.path, 1 << 20);
    create_until_refused(&client, &addr, 100_000, &mut acknowledged);
    reads_are_all_served(&client, &addr, &acknowledged);
    let started = Instant::now();
    terminate_any(child);
    assert!(started.elapsed() < Duration::from_secs(10), "the stop took {:?}", started.elapsed());
    std::fs::remove_file(&filler).unwrap();
    let Start::Up(child, addr) = try_start(&data, &[]) else {
        panic!("the store opens after the disk filled")
    };
    let users = get(&client, &addr, "/Users?count=100000&attributes=userName");
    let stored: std::collections::BTreeSet<String> = users["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_string())
        .collect();
    for name in &acknowledged {
        assert!(stored.contains(name), "the acknowledged {name} was lost");
    }
    terminate(child);
}

/// SIGTERM; the exit may report the failed final flush.
fn terminate_any(server: Server) {
    let mut child = server.take();
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    child.wait().unwrap();
}

/// Rounds of the churn test, and its sizes: scaled down from the 50 rounds of a 20,000-member
/// group and 5,000 users so that a debug build runs it in well under a minute. The full scale, over HTTP,
/// is `examples/churn.rs` (`BENCH_CHURN=only bench/run.sh`; its figures are in docs/benchmarks.md).
const CHURN_ROUNDS: usize = 10;
const CHURN_GROUP: usize = 4_000;
const CHURN_USERS: usize = 1_000;

#[test]
fn under_steady_churn_the_store_stays_a_small_multiple_of_its_live_data() {
    use usersync::clock::SystemClock;
    use usersync::scim::resource::normalize;
    use usersync::scim::schema::ResourceKind;
    use usersync::store::health::disk_bytes;
    use usersync::store::{Actor, DurabilityMode, Store, StoreOptions};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let options = StoreOptions {
        path: data.clone(),
        durability: DurabilityMode::Relaxed,
        clock: Arc::new(SystemClock),
    };
    let store = Store::open(options).unwrap();
    let (account, _) = store.ensure_account("default").unwrap();
    let acct = account.id;
    let registry = store.registry(acct);
    let users = registry.resource(ResourceKind::User);
    let groups = registry.resource(ResourceKind::Group);
    let actor = Actor("scim:churn".into());
    let create = |name: String| {
        let input = normalize(users, &json!({"userName": name})).unwrap();
        store.create_user(acct, users, &input, &actor).unwrap()["id"].as_str().unwrap().to_string()
    };
    // two pools of members: each round the group's whole member list is replaced by the other pool
    let pools: Vec<Vec<String>> = (0..2)
        .map(|p| (0..CHURN_GROUP).map(|i| create(format!("pool{p}-{i}@churn.example"))).collect())
        .collect();
    let group_body = |pool: &[String]| json!({"displayName": "churned", "members": pool.iter().map(|id| json!({"value": id})).collect::<Vec<_>>()});
    let (group, _) = store
        .create_group(acct, groups, &normalize(groups, &group_body(&pools[1])).unwrap(), &actor)
        .unwrap();
    let gid = group["id"].as_str().unwrap().to_string();

    let started = Instant::now();
    let mut sizes = Vec::new();
    let mut compactions = 0;
    for round in 0..CHURN_ROUNDS {
        let input = normalize(groups, &group_body(&pools[round % 2])).unwrap();
        store.replace_group(acct, groups, &gid, &input, None, &actor).unwrap();
        let ids: Vec<String> =
            (0..CHURN_USERS).map(|i| create(format!("r{round}-{i}@churn.example"))).collect();
        for id in &ids {
            store.delete_user(acct, id, None, &actor).unwrap();
        }
        // what the store's background thread does every 30 s
        compactions += usize::from(store.maybe_compact().unwrap().is_some());
        sizes.push((disk_bytes(&data), store.live_bytes()));
    }
    assert_eq!(store.members(acct, &gid).unwrap().len(), CHURN_GROUP, "the group kept its members");
    assert_eq!(store.verify().unwrap(), Vec::<String>::new(), "the store is consistent after compactions");
    let first = sizes[0].0;
    let last = sizes.last().unwrap().0;
    let peak = sizes.iter().map(|s| s.0).max().unwrap();
    eprintln!(
        "churn: {CHURN_ROUNDS} rounds in {:?}, {compactions} compactions; bytes on disk after round 1 {first}, \
         peak {peak}, last {last}; (disk, live) {sizes:?}",
        started.elapsed()
    );
    // the history grows with every round (it is live data), so the bound is against what a rewrite of
    // the final data leaves, which is at least what it would have left at any earlier round
    let compacted = store.compact().unwrap().after;
    eprintln!("churn: compacted at the end: {compacted} bytes, live {}", store.live_bytes());
    assert!(compactions > 0, "the store was never rewritten");
    assert!(peak < 3 * compacted, "the data directory grew to {peak} bytes, 3x {compacted} compacted");
    assert!(peak < 3 * first, "the data directory grew to {peak} bytes, 3x {first} after the first round");
    store.shutdown();
    drop(store);

    // what was compacted opens with every record and the start-up check passes
    let options = StoreOptions {
        path: data.clone(),
        durability: DurabilityMode::Relaxed,
        clock: Arc::new(SystemClock),
    };
    let store = Store::open(options).unwrap();
    assert_eq!(store.members(acct, &gid).unwrap().len(), CHURN_GROUP);
    assert_eq!(store.count(acct, ResourceKind::User), 2 * CHURN_GROUP);
}

#[test]
fn compact_rewrites_a_stopped_store_with_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (child, addr) = start_binary(&store);
    let child = Server::from(child);
    let client = client();
    let want = populate(&client, &addr, 40);
    terminate(child);
    // the first compaction moves sled's files out of the data directory into a generation, the next
    // ones into the next generation; only the active one is left
    for generation in ["gen-1", "gen-2"] {
        compact_stopped(&store);
        assert_eq!(std::fs::read_to_string(store.join("CURRENT")).unwrap(), format!("{generation}\n"));
        let mut top: Vec<String> = std::fs::read_dir(&store)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f != ".reserve")
            .collect();
        top.sort();
        assert_eq!(top, ["CURRENT", generation], "only the active generation is left");
        let Start::Up(child, addr) = try_start(&store, &[]) else { panic!("the compacted store opens") };
        assert_eq!(observe(&client, &addr), want);
        terminate(child);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_usersync"))
        .arg("--data")
        .arg(&store)
        .arg("verify")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "verify follows the active generation: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_store_that_holds_users_is_never_a_first_start() {
    use usersync::app::{Settings, bootstrap, open_store};
    use usersync::clock::SystemClock;
    use usersync::scim::resource::normalize;
    use usersync::scim::schema::ResourceKind;
    use usersync::store::{Actor, DurabilityMode};

    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::new(dir.path());
    let store = open_store(dir.path(), DurabilityMode::Flush, Arc::new(SystemClock)).unwrap();
    let (account, _) = store.ensure_account("acme").unwrap();
    let registry = store.registry(account.id);
    let users = registry.resource(ResourceKind::User);
    let input = normalize(users, &json!({"userName": "kept@example.com"})).unwrap();
    store.create_user(account.id, users, &input, &Actor::engine()).unwrap();
    assert!(bootstrap(&store, &settings).unwrap().is_empty(), "no new tokens for a store with users");
    assert!(store.account("default").unwrap().is_none(), "no new default account");

    let empty = tempfile::tempdir().unwrap();
    let store = open_store(empty.path(), DurabilityMode::Flush, Arc::new(SystemClock)).unwrap();
    assert_eq!(
        bootstrap(&store, &Settings::new(empty.path())).unwrap().len(),
        2,
        "a first start gets its way in"
    );
}
