//! Group commit: a write is acknowledged only after it is on disk, and concurrent writers share one flush.
//!
//! A writer takes a ticket after its transaction committed and waits until a flush that started after the
//! ticket was taken has finished. One flusher thread runs flushes back to back, each covering every ticket
//! taken before it started, so N concurrent writers cost about one flush, not N.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use tokio::sync::watch;

/// How far a write must have gone before it is acknowledged.
///
/// sled writes its log with `pwrite` and `sync_file_range`, which reaches the device but neither flushes its
/// volatile cache nor persists the file's size, and writes values too large for a log segment to files in
/// `blobs/` without syncing them. `Sync` therefore follows sled's flush with `fdatasync` of the log and of
/// every blob file (and the blob directory) written since the last flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityMode {
    /// sled's flush (`pwrite` + `sync_file_range`) followed by `fdatasync` of the log file: survives a
    /// process crash and a power loss.
    Sync,
    /// sled's flush only: survives a process crash (`kill -9`); a power loss may lose the last writes
    /// because `sync_file_range` neither flushes the drive's cache nor the file's metadata.
    Flush,
    /// No flush before acknowledging (sled's background flusher runs every 500 ms). For benchmarks only.
    Relaxed,
}

impl std::str::FromStr for DurabilityMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sync" => Ok(DurabilityMode::Sync),
            "flush" => Ok(DurabilityMode::Flush),
            "relaxed" => Ok(DurabilityMode::Relaxed),
            other => Err(format!("unknown durability mode '{other}' (sync, flush, relaxed)")),
        }
    }
}

struct Shared {
    db: sled::Db,
    log_file: Option<File>,
    blobs: Option<Mutex<BlobSync>>,
    requested: AtomicU64,
    wake: Mutex<bool>,
    wake_cv: Condvar,
    flushed: watch::Sender<u64>,
    stop: AtomicBool,
}

/// The group-commit service of one open store.
#[derive(Clone)]
pub struct Durability {
    mode: DurabilityMode,
    shared: Arc<Shared>,
}

impl Durability {
    /// Starts the flusher thread (none in relaxed mode).
    pub fn start(db: sled::Db, data_dir: &Path, mode: DurabilityMode) -> std::io::Result<Durability> {
        let log_file = match mode {
            DurabilityMode::Sync => Some(File::open(data_dir.join("db"))?),
            _ => None,
        };
        let blobs = (mode == DurabilityMode::Sync).then(|| Mutex::new(BlobSync::new(data_dir.join("blobs"))));
        let (flushed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            db,
            log_file,
            blobs,
            requested: AtomicU64::new(0),
            wake: Mutex::new(false),
            wake_cv: Condvar::new(),
            flushed,
            stop: AtomicBool::new(false),
        });
        if mode != DurabilityMode::Relaxed {
            let worker = shared.clone();
            thread::Builder::new().name("usersync-flush".into()).spawn(move || flush_loop(&worker))?;
        }
        Ok(Durability { mode, shared })
    }

    pub fn mode(&self) -> DurabilityMode {
        self.mode
    }

    /// Waits until every write committed before this call is durable.
    pub async fn wait(&self) {
        if self.mode == DurabilityMode::Relaxed {
            return;
        }
        let ticket = self.request();
        let mut rx = self.shared.flushed.subscribe();
        // The sender lives as long as `self`; an error would mean the store is gone.
        let _ = rx.wait_for(|&done| done >= ticket).await;
    }

    /// Blocking form of [`wait`](Self::wait) for code outside the async runtime.
    pub fn wait_blocking(&self) {
        if self.mode == DurabilityMode::Relaxed {
            return;
        }
        let ticket = self.request();
        let mut rx = self.shared.flushed.subscribe();
        while *rx.borrow_and_update() < ticket {
            // A short poll keeps this free of a runtime; only the CLI and the engine thread use it.
            thread::sleep(Duration::from_micros(200));
        }
    }

    fn request(&self) -> u64 {
        let ticket = self.shared.requested.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut pending) = self.shared.wake.lock() {
            *pending = true;
        }
        self.shared.wake_cv.notify_one();
        ticket
    }

    /// Stops the flusher after a last flush, as durable as the mode's acknowledged writes.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake_cv.notify_one();
        if let Err(e) = flush_once(&self.shared) {
            log::error!("final flush failed: {e}");
        }
    }
}

fn flush_loop(shared: &Shared) {
    loop {
        {
            let Ok(mut pending) = shared.wake.lock() else { return };
            while !*pending && !shared.stop.load(Ordering::SeqCst) {
                pending = match shared.wake_cv.wait(pending) {
                    Ok(p) => p,
                    Err(_) => return,
                };
            }
            *pending = false;
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        // Every ticket up to `target` belongs to a write that committed before this flush starts.
        let target = shared.requested.load(Ordering::SeqCst);
        while let Err(e) = flush_once(shared) {
            log::error!("flushing the store failed, retrying: {e}");
            thread::sleep(Duration::from_millis(100));
        }
        shared.flushed.send_replace(target);
    }
}

fn flush_once(shared: &Shared) -> std::io::Result<()> {
    shared.db.flush().map_err(std::io::Error::other)?;
    if let Some(file) = &shared.log_file {
        file.sync_data()?;
    }
    if let Some(blobs) = &shared.blobs {
        blobs.lock().map_err(|_| std::io::Error::other("blob sync state poisoned"))?.sync_new()?;
    }
    Ok(())
}

/// The blob files already known to be on disk.
struct BlobSync {
    dir: PathBuf,
    synced: HashSet<OsString>,
}

impl BlobSync {
    fn new(dir: PathBuf) -> BlobSync {
        BlobSync { dir, synced: HashSet::new() }
    }

    /// Syncs blob files that appeared since the last call, then the directory that names them.
    fn sync_new(&mut self) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut present = HashSet::new();
        let mut any_new = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !self.synced.contains(&name) {
                File::open(entry.path())?.sync_data()?;
                any_new = true;
            }
            present.insert(name);
        }
        if any_new {
            File::open(&self.dir)?.sync_all()?;
        }
        self.synced = present;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_waiters_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let d = Durability::start(db.clone(), dir.path(), DurabilityMode::Sync).unwrap();
        let mut waits = Vec::new();
        for i in 0..50u32 {
            db.insert(i.to_be_bytes(), &[1]).unwrap();
            waits.push(d.wait());
        }
        // a value too large for a log segment goes to a blob file, which is synced too
        db.insert(b"big", vec![7u8; 600_000]).unwrap();
        waits.push(d.wait());
        for w in waits {
            w.await;
        }
        assert!(!d.shared.blobs.as_ref().unwrap().lock().unwrap().synced.is_empty(), "the blob was synced");
        assert!(*d.shared.flushed.borrow() >= 51);
        d.wait_blocking();
        d.shutdown();
    }
}
