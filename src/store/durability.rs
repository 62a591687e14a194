//! Group commit: a write is acknowledged only after it is on disk, and concurrent writers share one flush.
//!
//! A writer takes a ticket after its transaction committed and waits until a flush that started after the
//! ticket was taken has finished. One flusher thread runs flushes back to back, each covering every ticket
//! taken before it started, so N concurrent writers cost about one flush, not N. After each flush the
//! number of the last commit it covered goes to the watermark file (see [`super::integrity`]).
//!
//! A flush that fails (a full disk) fails the writers waiting for it at once, with
//! [`StoreError::Full`]; the store then refuses every write (before sled sees it) until [`super::health`]
//! has found space again.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use tokio::sync::watch;

use super::integrity::Watermark;
use super::records::Records;
use super::{StoreError, StoreResult};

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

/// How far flushing has come: tickets up to `flushed` are durable, tickets up to `failed` were covered
/// by a flush that failed.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    flushed: u64,
    failed: u64,
}

struct Shared {
    records: Arc<Records>,
    /// The log file and the watermark, opened again when the store's directory is replaced (compaction).
    files: Mutex<Files>,
    blobs: Option<Mutex<BlobSync>>,
    /// The commit the watermark file names.
    marked: AtomicU64,
    requested: AtomicU64,
    wake: Mutex<bool>,
    wake_cv: Condvar,
    progress: watch::Sender<Progress>,
    stop: AtomicBool,
    /// A write or a flush failed for want of space; cleared once the store has recovered.
    failing: AtomicBool,
    /// Wakes the health thread at once when the store stops being writable.
    trouble: Arc<Signal>,
}

/// A wake-up for a thread that otherwise polls; it holds nothing else of the store, so the store's
/// files are let go of as soon as the store is dropped.
#[derive(Default)]
pub(crate) struct Signal {
    raised: Mutex<bool>,
    cv: Condvar,
}

impl Signal {
    fn raise(&self) {
        if let Ok(mut raised) = self.raised.lock() {
            *raised = true;
        }
        self.cv.notify_all();
    }

    /// Waits up to `timeout` for the signal, and lowers it.
    pub(crate) fn wait(&self, timeout: Duration) {
        let Ok(raised) = self.raised.lock() else { return };
        if let Ok((mut raised, _)) = self.cv.wait_timeout_while(raised, timeout, |r| !*r) {
            *raised = false;
        }
    }
}

struct Files {
    log_file: Option<File>,
    /// `None` while the store is only inspected.
    watermark: Option<Watermark>,
}

impl Files {
    fn open(data_dir: &Path, mode: DurabilityMode, initial: Option<u64>) -> std::io::Result<Files> {
        let log_file = match mode {
            DurabilityMode::Sync => Some(File::open(data_dir.join("db"))?),
            _ => None,
        };
        let sync = mode == DurabilityMode::Sync;
        let watermark = initial.map(|seq| Watermark::open(data_dir, sync, seq)).transpose()?;
        Ok(Files { log_file, watermark })
    }
}

/// The group-commit service of one open store.
#[derive(Clone)]
pub struct Durability {
    mode: DurabilityMode,
    shared: Arc<Shared>,
}

impl Durability {
    /// Starts the flusher thread (none in relaxed mode). `inspect`: the store is only looked at
    /// (`usersync verify`), and the watermark is never written.
    pub(crate) fn start(
        records: Arc<Records>,
        data_dir: &Path,
        mode: DurabilityMode,
        inspect: bool,
    ) -> std::io::Result<Durability> {
        let blobs = (mode == DurabilityMode::Sync).then(|| Mutex::new(BlobSync::new(data_dir.join("blobs"))));
        let (progress, _) = watch::channel(Progress::default());
        let marked = if inspect { u64::MAX } else { Watermark::read(data_dir).ok().flatten().unwrap_or(0) };
        let files = Mutex::new(Files::open(data_dir, mode, (!inspect).then(|| records.committed_seq()))?);
        let shared = Arc::new(Shared {
            records,
            files,
            blobs,
            marked: AtomicU64::new(marked),
            requested: AtomicU64::new(0),
            wake: Mutex::new(false),
            wake_cv: Condvar::new(),
            progress,
            stop: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            trouble: Arc::default(),
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
    pub async fn wait(&self) -> StoreResult<()> {
        if self.mode == DurabilityMode::Relaxed {
            return Ok(());
        }
        let ticket = self.request();
        let mut rx = self.shared.progress.subscribe();
        // The sender lives as long as `self`; an error would mean the store is gone.
        let progress = match rx.wait_for(|p| p.flushed >= ticket || p.failed >= ticket).await {
            Ok(p) => *p,
            Err(_) => return Err(not_durable()),
        };
        outcome(progress, ticket)
    }

    /// Blocking form of [`wait`](Self::wait) for code outside the async runtime.
    pub fn wait_blocking(&self) -> StoreResult<()> {
        if self.mode == DurabilityMode::Relaxed {
            return Ok(());
        }
        let ticket = self.request();
        let mut rx = self.shared.progress.subscribe();
        loop {
            let progress = *rx.borrow_and_update();
            if progress.flushed >= ticket || progress.failed >= ticket {
                return outcome(progress, ticket);
            }
            // A short poll keeps this free of a runtime; only the CLI and the engine thread use it.
            thread::sleep(Duration::from_micros(200));
        }
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// Whether writes are taken (no write nor flush has failed since the store last recovered).
    pub fn writable(&self) -> bool {
        !self.shared.failing.load(Ordering::SeqCst)
    }

    /// Flushes now (after the store was reopened): `Ok` once writes are durable again.
    pub(crate) fn retry(&self) -> std::io::Result<()> {
        flush_once(&self.shared)?;
        self.recovered();
        Ok(())
    }

    /// Opens the log file and the watermark of the generation in `dir`, which just became the active
    /// one (a compaction wrote its watermark); its blob files are all synced again at the next flush.
    pub(crate) fn reopen_files(&self, dir: &Path) -> std::io::Result<()> {
        let seq = self.shared.records.committed_seq();
        let files = Files::open(dir, self.mode, Some(seq))?;
        *self.shared.files.lock().unwrap_or_else(|p| p.into_inner()) = files;
        self.shared.marked.store(seq, Ordering::SeqCst);
        if let Some(blobs) = &self.shared.blobs {
            *blobs.lock().unwrap_or_else(|p| p.into_inner()) = BlobSync::new(dir.join("blobs"));
        }
        Ok(())
    }

    /// A write failed for want of space: not writable until the store has recovered.
    pub(crate) fn failed(&self, why: &str) {
        note_failure(&self.shared, why);
    }

    /// Every write waiting for a flush now fails (their commits were dropped with the database closed).
    pub(crate) fn fail_waiting(&self) {
        let requested = self.shared.requested.load(Ordering::SeqCst);
        self.shared.progress.send_modify(|p| p.failed = p.failed.max(requested));
    }

    /// Raised when the store stops being writable, and at shutdown.
    pub(crate) fn trouble(&self) -> Arc<Signal> {
        self.shared.trouble.clone()
    }

    fn recovered(&self) {
        self.shared.records.refuse_writes(false);
        if self.shared.failing.swap(false, Ordering::SeqCst) {
            log::warn!("the store is writable again");
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

    /// Stops the flusher after a last flush, as durable as the mode's acknowledged writes. When that
    /// flush fails, says how many commits (none of them acknowledged) are lost.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake_cv.notify_one();
        self.shared.trouble.raise();
        let committed = self.shared.records.committed_seq();
        if let Err(e) = flush_once(&self.shared) {
            let marked = self.shared.marked.load(Ordering::SeqCst);
            log::error!(
                "the final flush failed ({e}): {} commits made after the last durable one (number {marked}) \
                 could not be written; none of them was acknowledged to a client",
                committed.saturating_sub(marked)
            );
        }
    }
}

fn outcome(progress: Progress, ticket: u64) -> StoreResult<()> {
    if progress.flushed >= ticket { Ok(()) } else { Err(not_durable()) }
}

fn not_durable() -> StoreError {
    StoreError::Full("the disk is full or failing; the write was not stored durably".into())
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
        if shared.failing.load(Ordering::SeqCst) {
            // nothing committed before the failure can be made durable any more (the database is
            // reopened without it), and nothing is committed until the store has recovered
            shared.progress.send_modify(|p| p.failed = p.failed.max(target));
            continue;
        }
        let started = std::time::Instant::now();
        let flushed = flush_once(shared);
        metrics::histogram!("usersync_store_flush_duration_seconds").record(started.elapsed().as_secs_f64());
        match flushed {
            Ok(()) => {
                shared.progress.send_modify(|p| p.flushed = p.flushed.max(target));
            }
            Err(e) => {
                note_failure(shared, &e.to_string());
                shared.progress.send_modify(|p| p.failed = p.failed.max(target));
            }
        }
    }
}

/// Refuses writes from now on, says so once when the state changes, and wakes the health thread.
fn note_failure(shared: &Shared, why: &str) {
    shared.records.refuse_writes(true);
    if !shared.failing.swap(true, Ordering::SeqCst) {
        log::error!(
            "the store cannot make writes durable ({why}); writes are answered 507 until there is space again"
        );
        shared.trouble.raise();
    }
}

/// Flushes sled (and, in `Sync` mode, the files it does not sync), then records the last commit covered.
fn flush_once(shared: &Shared) -> std::io::Result<()> {
    let seq = shared.records.committed_seq();
    let open = shared.records.current().map_err(std::io::Error::other)?;
    open.db.flush().map_err(|e| match e {
        sled::Error::Io(io) => io,
        other => std::io::Error::other(other),
    })?;
    drop(open);
    let files = shared.files.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(file) = &files.log_file {
        file.sync_data()?;
    }
    if let Some(blobs) = &shared.blobs {
        blobs.lock().map_err(|_| std::io::Error::other("blob sync state poisoned"))?.sync_new()?;
    }
    if shared.marked.load(Ordering::SeqCst) < seq {
        if let Some(watermark) = &files.watermark {
            watermark.write(seq)?;
        }
        shared.marked.store(seq, Ordering::SeqCst);
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
    use crate::store::records::{Integrity, Open};

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_waiters_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = (*db).clone();
        let records = Arc::new(Records::new(Open { db, tree }, Integrity::default()));
        let d = Durability::start(records.clone(), dir.path(), DurabilityMode::Sync, false).unwrap();
        let mut waits = Vec::new();
        for i in 0..50u32 {
            records.insert(i.to_be_bytes(), [1]).unwrap();
            waits.push(d.wait());
        }
        // a value too large for a log segment goes to a blob file, which is synced too
        records.insert(b"big", vec![7u8; 600_000]).unwrap();
        waits.push(d.wait());
        for w in waits {
            w.await.unwrap();
        }
        assert!(!d.shared.blobs.as_ref().unwrap().lock().unwrap().synced.is_empty(), "the blob was synced");
        assert!(d.shared.progress.borrow().flushed >= 51);
        d.wait_blocking().unwrap();
        assert_eq!(Watermark::read(dir.path()), Ok(Some(51)), "the watermark names the last commit");
        d.shutdown();
    }
}
