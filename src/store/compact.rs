//! `usersync compact`: rewrites a stopped store into a fresh directory holding only its live records, then
//! puts it in place of the old one. sled 0.34 reclaims little of what was deleted or overwritten (its
//! segment-cleaning settings are no-ops since 0.31), so this is how a store gives its space back.

use std::path::{Path, PathBuf};

use super::health::disk_bytes;
use super::integrity::{OnDamage, WATERMARK_FILE, open_checked, write_watermark};
use super::{StoreError, StoreResult};

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

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "store".into());
    dir.with_file_name(format!("{name}.{suffix}"))
}
