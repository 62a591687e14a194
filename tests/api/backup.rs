//! Backups of a running server (the real binary) under concurrent SCIM writes, through the data
//! directory's socket and the `usersync backup` command; restored offline with `usersync restore`, the
//! copy passes `usersync verify` and holds every write acknowledged before the backup began. A truncated
//! or damaged file is refused with a clear error.

use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use usersync::clock::SystemClock;
use usersync::store::DurabilityMode;

use crate::cli::usersync;
use crate::crash::start_binary;
use crate::helpers::*;

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_backup_under_write_load_restores_to_a_sound_store_holding_every_write_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("live");
    let (mut server, addr) = start_binary(&data);
    let socket = data.join(usersync::socket::SOCKET_FILE);
    {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let meta = std::fs::metadata(&socket).expect("the server listens on its socket");
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    // (name, when its 201 arrived)
    let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, addr, acked, failures, stop) =
                (client.clone(), addr.clone(), acked.clone(), failures.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let name = format!("w{w}-{i}@example.com");
                    i += 1;
                    let res = client
                        .post(format!("http://{addr}/scim/v2/Users"))
                        .bearer_auth(SCIM_TOKEN)
                        .header("Content-Type", "application/scim+json")
                        .body(json!({"userName": name, "name": {"givenName": "W"}}).to_string())
                        .send();
                    match res {
                        Ok(r) if r.status().as_u16() == 201 => {
                            acked.lock().unwrap().push((name, Instant::now()))
                        }
                        Ok(r) => failures.lock().unwrap().push(format!("{name}: {}", r.status())),
                        Err(e) => failures.lock().unwrap().push(format!("{name}: {e}")),
                    }
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 400 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let file = dir.path().join("usersync.backup");
    let began = Instant::now();
    let out = usersync(&data, &["backup", "--to", file.to_str().unwrap()]);
    let ended = Instant::now();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("from the running server"), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(*failures.lock().unwrap(), Vec::<String>::new(), "every write went through during the backup");
    let acked = acked.lock().unwrap().clone();
    let before: Vec<&String> = acked.iter().filter(|(_, at)| *at < began).map(|(n, _)| n).collect();
    let during = acked.iter().filter(|(_, at)| *at >= began && *at <= ended).count();
    assert!(before.len() >= 400);
    eprintln!("{} writes acknowledged before the backup began, {during} while it was taken", before.len());
    assert!(
        !std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".partial"))
    );

    // restored offline into an empty directory; it passes verify and holds every acknowledged write
    let restored = dir.path().join("restored");
    let out = usersync(&restored, &["restore", "--from", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = usersync(&restored, &["verify"]);
    assert!(out.status.success() && text(&out).contains("is sound"), "{}", text(&out));
    let out = usersync(&restored, &["restore", "--from", file.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("not empty"), "{}", text(&out));
    {
        let store =
            usersync::app::open_store(&restored, DurabilityMode::Flush, Arc::new(SystemClock)).unwrap();
        let acct = store.account("default").unwrap().unwrap().id;
        let missing: Vec<&&String> =
            before.iter().filter(|n| store.resolve_user(acct, n).unwrap().is_none()).collect();
        assert!(missing.is_empty(), "acknowledged before the backup but not in it: {missing:?}");
        assert!(store.verify().unwrap().is_empty());
        store.shutdown();
    }

    // a truncated file and a damaged one are refused, with nothing restored
    let bytes = std::fs::read(&file).unwrap();
    let bad = dir.path().join("bad.backup");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let into = dir.path().join("from-truncated");
    let out = usersync(&into, &["restore", "--from", bad.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("truncated"), "{}", text(&out));
    assert!(!into.exists());
    let mut flipped = bytes.clone();
    let at = flipped.len() - 10;
    flipped[at] ^= 0x20;
    std::fs::write(&bad, &flipped).unwrap();
    let out = usersync(&into, &["restore", "--from", bad.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("damaged"), "{}", text(&out));
    assert!(!into.exists());

    // a stopped store is backed up directly
    server.kill().unwrap();
    server.wait().unwrap();
    let offline = dir.path().join("offline.backup");
    let out = usersync(&data, &["backup", "--to", offline.to_str().unwrap()]);
    assert!(out.status.success() && text(&out).contains("from the stopped store"), "{}", text(&out));
}
