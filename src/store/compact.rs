//! Giving space back. sled 0.34 reclaims little of what was deleted or overwritten (its segment-cleaning
//! settings have been no-ops since 0.31, and its own cleaner keeps the dead pages of our write pattern),
//! so the store is rewritten into a fresh directory holding only its live records, which then takes the
//! old one's place: `usersync compact` on a stopped store, and [`Store::maybe_compact`] while the server
//! runs (the copy is made in chunks, each holding writers off for a moment, and receives every commit
//! meanwhile; writers and readers wait only while the new directory is put in place).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::health::disk_bytes;
use super::integrity::{OnDamage, WATERMARK_FILE, open_checked, open_sled, write_watermark};
use super::records::Open;
use super::{Store, StoreError, StoreResult};

/// Records copied per chunk while the server runs.
const CHUNK: usize = 2_000;
/// The store is rewritten when its directory is this many times what a rewrite would leave (estimated from
/// the last one: bytes on disk per byte of records), plus [`SLACK_BYTES`] (sled writes in 512 KiB
/// segments; a small store is mostly headroom).
pub const GROWTH_FACTOR: f64 = 1.5;
pub const SLACK_BYTES: u64 = 8 << 20;
/// Bytes on disk per byte of records in a freshly written store, until a compaction has measured it.
const FRESH_RATIO: f64 = 3.0;

/// Sizes before and after, in bytes on disk.
#[derive(Debug, Clone, Copy)]
pub struct Compacted {
    pub before: u64,
    pub after: u64,
    pub records: u64,
}

/// Compacts the store in `dir`, which no server may hold. The store must pass its start-up check.
pub fn compact(dir: &Path) -> StoreResult<Compacted> {
    let before = disk_bytes(dir);
    let (old, state, _) = open_checked(dir, OnDamage::Refuse)?;
    let fresh = sibling(dir, "compacting");
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)?;
    }
    {
        let db = sled::Config::new().path(&fresh).open()?;
        let mut batch = sled::Batch::default();
        let mut pending = 0usize;
        for item in old.tree.iter() {
            let (k, v) = item?;
            batch.insert(k, v);
            pending += 1;
            if pending == 10_000 {
                db.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        db.apply_batch(batch)?;
        carry_ids(&old.db, &db)?;
        db.flush()?;
    }
    drop(old);
    write_watermark(&fresh, state.seq)?;
    let retired = sibling(dir, "before-compact");
    std::fs::rename(dir, &retired)?;
    std::fs::rename(&fresh, dir).map_err(|e| {
        StoreError::Io(std::io::Error::other(format!(
            "{e}; the old store is in {} and the compacted one in {}: rename one of them to {}",
            retired.display(),
            fresh.display(),
            dir.display()
        )))
    })?;
    std::fs::remove_dir_all(&retired)?;
    debug_assert!(dir.join(WATERMARK_FILE).exists());
    Ok(Compacted { before, after: disk_bytes(dir), records: state.count })
}

/// The new database hands out ids above every id the old one handed out (activity sequence numbers).
fn carry_ids(old: &sled::Db, new: &sled::Db) -> sled::Result<()> {
    let next = old.generate_id()?;
    while new.generate_id()? < next {}
    Ok(())
}

impl Store {
    /// Rewrites the store while it runs when its directory has grown past [`GROWTH_FACTOR`] times its
    /// records (plus [`SLACK_BYTES`]); `None` when it has not.
    pub fn maybe_compact(&self) -> StoreResult<Option<Compacted>> {
        let live = self.inner.records.state().bytes as f64;
        let last = *self.inner.compacted.lock().unwrap_or_else(|p| p.into_inner());
        let ratio =
            last.filter(|&(_, live)| live > 0).map_or(FRESH_RATIO, |(disk, live)| disk as f64 / live as f64);
        let limit = (live * ratio.max(1.0) * GROWTH_FACTOR) as u64 + SLACK_BYTES;
        if disk_bytes(self.data_dir()) <= limit {
            return Ok(None);
        }
        self.compact().map(Some)
    }

    /// Rewrites the running store with only its live records and puts the copy in place.
    pub fn compact(&self) -> StoreResult<Compacted> {
        let dir = self.data_dir().to_path_buf();
        let before = disk_bytes(&dir);
        let fresh = sibling(&dir, "compacting");
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh)?;
        }
        let copy = open_sled(&fresh)?;
        let inner = &self.inner;
        let copied = self.copy_into(&copy);
        if let Err(e) = copied {
            inner.committer.alone(|| inner.records.set_shadow(None));
            drop(copy);
            let _ = std::fs::remove_dir_all(&fresh);
            return Err(e);
        }
        let retired = sibling(&dir, "before-compact");
        let records = inner.committer.alone(|| self.swap_in(copy, &fresh, &retired))?;
        if let Err(e) = std::fs::remove_dir_all(&retired) {
            log::warn!("could not remove the store's old directory {}: {e}", retired.display());
        }
        let done = Compacted { before, after: disk_bytes(&dir), records };
        *inner.compacted.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((done.after, inner.records.state().bytes));
        log::info!("compacted the store: {} bytes on disk before, {} after", done.before, done.after);
        Ok(done)
    }

    /// Copies every record into `copy`, which receives every commit from the first chunk on.
    fn copy_into(&self, copy: &Open) -> StoreResult<()> {
        let inner = &self.inner;
        inner.committer.alone(|| inner.records.set_shadow(Some(copy.tree.clone())));
        let mut from = Vec::new();
        while let Some(next) = inner.committer.alone(|| inner.records.copy_chunk(&copy.tree, &from, CHUNK))? {
            from = next;
        }
        Ok(())
    }

    /// With the committer held: the complete copy takes the place of the store's directory.
    fn swap_in(&self, copy: Open, fresh: &Path, retired: &Path) -> StoreResult<u64> {
        let inner = &self.inner;
        let dir = inner.data_dir.clone();
        inner.records.set_shadow(None);
        let state = inner.records.state();
        carry_ids(&inner.records.current()?.db, &copy.db)?;
        copy.db.flush()?;
        drop(copy);
        write_watermark(fresh, state.seq)?;
        inner.records.reopen(|old| -> StoreResult<_> {
            if let Some(old) = old {
                old.db.flush()?;
            }
            std::fs::rename(&dir, retired)?;
            if let Err(e) = std::fs::rename(fresh, &dir) {
                std::fs::rename(retired, &dir)?;
                log::error!("compaction: could not put the copy in place ({e}); the store stays as it was");
            }
            Ok((open_waiting(&dir)?, state))
        })?;
        inner.durability.reopen_files(&dir)?;
        Ok(state.count)
    }
}

/// Opens sled, waiting for the last user of a database just closed there to let go of its lock.
fn open_waiting(dir: &Path) -> StoreResult<Open> {
    let started = Instant::now();
    loop {
        match open_sled(dir) {
            Err(e @ StoreError::Locked(_)) if started.elapsed() > Duration::from_secs(10) => return Err(e),
            Err(StoreError::Locked(_)) => std::thread::sleep(Duration::from_millis(5)),
            other => return other,
        }
    }
}

/// Leftovers of a compaction that stopped half way (a crash): the old directory is still in place unless
/// it was renamed away, and then the complete copy is the store.
pub(crate) fn finish_interrupted(dir: &Path) -> std::io::Result<()> {
    let fresh = sibling(dir, "compacting");
    let retired = sibling(dir, "before-compact");
    if !dir.exists() && fresh.join(WATERMARK_FILE).exists() {
        log::warn!("finishing a compaction that was interrupted: {} becomes the store", fresh.display());
        std::fs::rename(&fresh, dir)?;
    }
    for leftover in [fresh, retired] {
        if leftover.exists() && dir.join("db").exists() {
            std::fs::remove_dir_all(&leftover)?;
        }
    }
    Ok(())
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "store".into());
    dir.with_file_name(format!("{name}.{suffix}"))
}
