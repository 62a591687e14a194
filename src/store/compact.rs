//! Giving space back. sled 0.34 reclaims little of what was deleted or overwritten (its segment-cleaning
//! settings have been no-ops since 0.31, and its own cleaner keeps the dead pages of our write pattern),
//! so the store is rewritten into a new generation (see [`super::layout`]) holding only its live records,
//! which then becomes the active one: `usersync compact` on a stopped store, and [`Store::maybe_compact`]
//! while the server runs. There the copy is made in chunks, each holding writers off for a moment, and is
//! an open database receiving every commit meanwhile; once it is complete and synced, writers are held off
//! only while the last commits are flushed to it, `CURRENT` is renamed to name it and the store switches
//! its handle over (no database is closed or opened under the hold). The old generation is closed and
//! removed after.

use std::path::Path;
use std::time::{Duration, Instant};

use super::durability::DurabilityMode;
use super::health::disk_bytes;
use super::integrity::{OnDamage, open_checked, open_sled, write_watermark};
use super::layout;
use super::records::Open;
use super::{Store, StoreError, StoreResult};

/// Records copied per chunk while the server runs.
const CHUNK: usize = 2_000;
/// The store is rewritten when its directory is this many times what a rewrite would leave (estimated from
/// the last one: bytes on disk per byte of records), plus [`SLACK_BYTES`] (sled writes in 512 KiB
/// segments; a small store is mostly headroom).
pub const GROWTH_FACTOR: f64 = 1.5;
pub const SLACK_BYTES: u64 = 8 << 20;
/// Bytes on disk per byte of records in a freshly written store, until a compaction has measured it (a
/// rewrite of 12 MB of records measured 2.7; estimating higher lets a store that was never rewritten grow
/// with its churn as fast as its threshold does).
const FRESH_RATIO: f64 = 2.5;

/// The last compaction of a running store, as `GET /admin/v1/sync` shows it.
#[derive(Debug, Clone, Copy)]
pub struct LastCompaction {
    pub at: chrono::DateTime<chrono::Utc>,
    /// How long writers (and readers) were held off while the copy was made the active generation.
    pub hold: Duration,
    pub before: u64,
    pub after: u64,
}

/// Sizes before and after, in bytes on disk.
#[derive(Debug, Clone, Copy)]
pub struct Compacted {
    pub before: u64,
    pub after: u64,
    pub records: u64,
}

/// Compacts the store in `dir`, which no server may hold. The store must pass its start-up check.
pub fn compact(dir: &Path) -> StoreResult<Compacted> {
    finish_interrupted(dir)?;
    let before = disk_bytes(dir);
    let (old, state, _) = open_checked(dir, OnDamage::Refuse)?;
    let next = layout::generation(dir)? + 1;
    let fresh = layout::dir_of(dir, next);
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)?;
    }
    let copy = open_sled(&fresh)?;
    let mut from = Vec::new();
    loop {
        let mut batch = sled::Batch::default();
        let mut last = None;
        for item in old.tree.range(from.as_slice()..).take(CHUNK) {
            let (k, v) = item?;
            batch.insert(k.clone(), v);
            last = Some(k);
        }
        copy.tree.apply_batch(batch)?;
        let Some(last) = last else { break };
        from = last.to_vec();
        from.push(0);
    }
    carry_ids(&old.db, &copy.db)?;
    copy.db.flush()?;
    drop(copy);
    old.db.flush()?;
    drop(old);
    write_watermark(&fresh, state.seq, true)?;
    layout::sync_generation(&fresh)?;
    layout::prepare_switch(dir, next)?;
    layout::commit_switch(dir)?;
    layout::sync_dir(dir)?;
    layout::clean(dir)?;
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

    /// Rewrites the running store with only its live records and makes the copy the active generation.
    pub fn compact(&self) -> StoreResult<Compacted> {
        let inner = &self.inner;
        let _alone = inner.compacting.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.data_dir().to_path_buf();
        let before = disk_bytes(&dir);
        let next = layout::generation(&dir)? + 1;
        let fresh = layout::dir_of(&dir, next);
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh)?;
        }
        let copy = open_sled(&fresh)?;
        // everything but the last commits is made durable in the copy, and the new CURRENT written,
        // before writers are held off
        let copied = self.copy_into(&copy).and_then(|()| {
            carry_ids(&inner.records.current()?.db, &copy.db)?;
            copy.db.flush()?;
            layout::sync_generation(&fresh)?;
            Ok(layout::prepare_switch(&dir, next)?)
        });
        if let Err(e) = copied {
            inner.committer.alone(|| inner.records.set_shadow(None));
            drop(copy);
            let _ = std::fs::remove_dir_all(&fresh);
            return Err(e);
        }
        let swap_started = Instant::now();
        let swapped = inner.committer.alone(|| self.switch_to(&copy, &fresh));
        let held = swap_started.elapsed();
        let (old, records) = match swapped {
            Ok(done) => done,
            Err(e) => {
                drop(copy);
                let _ = std::fs::remove_dir_all(&fresh);
                return Err(e);
            }
        };
        drop(copy);
        // the old generation is closed (its last reader done with it) and removed after the hold, once
        // the rename of CURRENT is durable
        drop(old);
        if let Err(e) = layout::sync_dir(&dir).map_err(StoreError::from).and_then(|()| layout::clean(&dir)) {
            log::warn!(
                "compaction: the old generation could not be removed yet ({e}); the next start removes it"
            );
        }
        let done = Compacted { before, after: disk_bytes(&dir), records };
        *inner.compacted.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((done.after, inner.records.state().bytes));
        *inner.last_compaction.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(LastCompaction { at: self.now(), hold: held, before: done.before, after: done.after });
        log::info!(
            "compacted the store: {} bytes on disk before, {} after; switching to the copy held reads and writes for {:.2} ms",
            done.before,
            done.after,
            held.as_secs_f64() * 1000.0
        );
        Ok(done)
    }

    /// `{"at", "holdMs", "bytesBefore", "bytesAfter"}` of the last compaction since start, or `null`.
    pub fn last_compaction(&self) -> serde_json::Value {
        let last = *self.inner.last_compaction.lock().unwrap_or_else(|p| p.into_inner());
        last.map_or(serde_json::Value::Null, |c| {
            serde_json::json!({
                "at": c.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "holdMs": c.hold.as_secs_f64() * 1000.0,
                "bytesBefore": c.before,
                "bytesAfter": c.after,
            })
        })
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

    /// With the committer held: the last commits are made durable in the complete copy, `CURRENT` names
    /// it, and the store's handle and files switch to it. Returns the old database and the record count.
    fn switch_to(&self, copy: &Open, fresh: &Path) -> StoreResult<(Option<Open>, u64)> {
        let inner = &self.inner;
        let complete = inner.records.shadow_complete();
        inner.records.set_shadow(None);
        if !complete {
            return Err(StoreError::Io(std::io::Error::other(
                "the copy missed a commit; compaction abandoned",
            )));
        }
        let state = inner.records.state();
        carry_ids(&inner.records.current()?.db, &copy.db)?;
        copy.db.flush()?;
        if inner.durability.mode() == DurabilityMode::Sync {
            layout::sync_generation(fresh)?;
        }
        let sync = inner.durability.mode() == DurabilityMode::Sync;
        write_watermark(fresh, state.seq, sync)?;
        layout::commit_switch(&inner.data_dir)?;
        // from here on the copy is the store, whatever fails
        let old = inner.records.replace(copy.clone());
        if let Err(e) = inner.durability.reopen_files(fresh) {
            log::error!(
                "compaction: the new generation is active, but its watermark could not be opened ({e}); \
                 restart the server soon"
            );
        }
        Ok((old, state.count))
    }
}

/// Leftovers of a compaction that stopped half way (a crash): what is not the active generation goes,
/// and a copy made by an older usersync (its compacting directory) is finished or removed.
pub(crate) fn finish_interrupted(dir: &Path) -> StoreResult<()> {
    older::finish_interrupted(dir)?;
    layout::clean(dir)
}

/// How usersync before generations compacted: the copy in `compacting/`, its files renamed over the old
/// ones. Only its leftovers are handled here.
mod older {
    use std::path::Path;

    const COPY_DIR: &str = "compacting";
    const OLD_DIR: &str = "before-compact";
    const COMPLETE: &str = ".complete";
    const MOVED_OUT: &str = ".old-moved-out";

    pub(super) fn finish_interrupted(dir: &Path) -> std::io::Result<()> {
        let fresh = dir.join(COPY_DIR);
        if fresh.join(COMPLETE).exists() {
            log::warn!("finishing a compaction that was interrupted: its copy becomes the store");
            return swap_files(dir);
        }
        for leftover in [fresh, dir.join(OLD_DIR)] {
            if leftover.exists() {
                std::fs::remove_dir_all(&leftover)?;
            }
        }
        Ok(())
    }

    fn swap_files(dir: &Path) -> std::io::Result<()> {
        let fresh = dir.join(COPY_DIR);
        let old = dir.join(OLD_DIR);
        if !fresh.join(MOVED_OUT).exists() {
            std::fs::create_dir_all(&old)?;
            for name in sled_files(dir)? {
                std::fs::rename(dir.join(&name), old.join(&name))?;
            }
            std::fs::File::create(fresh.join(MOVED_OUT))?.sync_all()?;
        }
        for name in sled_files(&fresh)? {
            std::fs::rename(fresh.join(&name), dir.join(&name))?;
        }
        std::fs::File::open(dir)?.sync_all()?;
        std::fs::remove_dir_all(&fresh)?;
        std::fs::remove_dir_all(&old)
    }

    /// sled's files and the watermark in `dir`.
    fn sled_files(dir: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let text = name.to_string_lossy();
            let ours = ["db", "conf", "blobs", super::super::integrity::WATERMARK_FILE];
            if ours.contains(&text.as_ref()) || text.starts_with("snap.") {
                out.push(name);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde_json::json;

    use crate::scim::resource::normalize;
    use crate::scim::schema::ResourceKind;
    use crate::store::testing::temp_store;
    use crate::store::{Actor, DurabilityMode, Store, StoreOptions};

    #[test]
    fn writes_during_a_compaction_are_all_kept() {
        let (store, dir) = temp_store();
        let (account, _) = store.ensure_account("acme").unwrap();
        let registry = store.registry(account.id);
        let schema = registry.resource(ResourceKind::User);
        let create = |name: String| {
            let input = normalize(schema, &json!({"userName": name})).unwrap();
            store.create_user(account.id, schema, &input, &Actor::engine()).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let mut ids: Vec<String> = (0..3_000).map(|i| create(format!("before{i}@example.com"))).collect();
        for id in ids.drain(..1_000) {
            store.delete_user(account.id, &id, None, &Actor::engine()).unwrap();
        }
        let done = AtomicBool::new(false);
        let written = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let mut written = Vec::new();
                let mut i = 0;
                while !done.load(Ordering::SeqCst) || written.len() < 200 {
                    written.push(create(format!("during{i}@example.com")));
                    i += 1;
                }
                written
            });
            for _ in 0..2 {
                let compacted = store.compact().unwrap();
                assert!(compacted.after > 0);
            }
            done.store(true, Ordering::SeqCst);
            writer.join().unwrap()
        });
        ids.extend(written);
        for id in &ids {
            assert!(store.user(account.id, id).unwrap().is_some(), "{id} was kept");
        }
        assert_eq!(store.count(account.id, ResourceKind::User), ids.len());
        assert_eq!(store.verify().unwrap(), Vec::<String>::new());
        store.shutdown();
        drop(store);
        let clock = std::sync::Arc::new(crate::clock::SystemClock);
        let options =
            StoreOptions { path: dir.path().to_path_buf(), durability: DurabilityMode::Flush, clock };
        let reopened = Store::open(options).expect("the compacted store passes the start-up check");
        assert_eq!(reopened.count(account.id, ResourceKind::User), ids.len());
    }
}
