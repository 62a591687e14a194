//! Group commit: a write is acknowledged only after it is on disk, and concurrent writers share one flush.
//!
//! A writer takes a ticket after its transaction committed and waits until a flush that started after the
//! ticket was taken has finished. One flusher thread runs flushes back to back, each covering every ticket
//! taken before it started, so N concurrent writers cost about one flush, not N.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use tokio::sync::watch;

/// How far a write must have gone before it is acknowledged.
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
        let (flushed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            db,
            log_file,
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

    /// Stops the flusher after a last flush.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake_cv.notify_one();
        if let Err(e) = self.shared.db.flush() {
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
    Ok(())
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
        for w in waits {
            w.await;
        }
        assert!(*d.shared.flushed.borrow() >= 50);
        d.wait_blocking();
        d.shutdown();
    }
}
