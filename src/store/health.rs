//! The store's health as an admin sees it (writable, records that failed their checksum, disk use), and
//! surviving a full disk without a restart.
//!
//! sled keeps the first write error it meets and fails every later write with it, and it writes while it
//! reads too (a read that meets an oversized node splits it, through its log). So a store keeps a reserve
//! file of [`RESERVE_BYTES`] in its data directory, made at open when there is room (as a database keeps
//! reserved space). At the first write or flush that fails for want of space, writes are refused at once
//! above sled (507, sled never sees them), the reserve is deleted and the database closed and opened afresh:
//! what it recovers is exactly what is durable, its sticky error is gone, and the reads' splits have the
//! reserve's room. Writes are taken again only once the reserve can be made again with [`MARGIN_BYTES`]
//! more free, and a flush succeeds (the database is reopened once more if its error came back meanwhile).

use std::path::Path;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::integrity::{OnDamage, open_checked};
use super::{Inner, Store, StoreError, StoreResult};

/// How often the store checks whether it has grown enough to be rewritten (see [`super::compact`]).
const COMPACT_CHECK_EVERY: u32 = 60;
/// How often a store that cannot write looks for space again.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// The reserve file, kept in the data directory for the reads of a store whose disk is full.
pub const RESERVE_FILE: &str = ".reserve";
/// The reserve's size: sixteen of sled's 512 KiB segments.
pub const RESERVE_BYTES: usize = 8 << 20;
/// Free space besides the reserve before writes are taken again: a few of sled's segments.
const MARGIN_BYTES: usize = 4 << 20;
/// How long a reopen waits for the last reader of the old database to let go of sled's file lock.
const LOCK_PATIENCE: Duration = Duration::from_secs(10);

impl Store {
    /// Whether writes can be made durable now.
    pub fn writable(&self) -> bool {
        self.inner.durability.writable()
    }

    /// Records whose checksum failed when read, since start.
    pub fn checksum_failures(&self) -> u64 {
        self.inner.records.checksum_failures()
    }

    /// The size of the records themselves (keys and stored values).
    pub fn live_bytes(&self) -> u64 {
        self.inner.records.state().bytes
    }

    /// `{"writable", "checksumFailures", "diskBytes", "liveBytes", "reserveBytes", "lastCompaction"}` for
    /// `GET /admin/v1/sync`.
    pub fn health(&self) -> Value {
        json!({
            "writable": self.writable(),
            "checksumFailures": self.checksum_failures(),
            "diskBytes": disk_bytes(self.data_dir()),
            "liveBytes": self.live_bytes(),
            "reserveBytes": reserve_bytes(self.data_dir()),
            "lastCompaction": self.last_compaction(),
        })
    }

    /// After the first failure for want of space (writes are already refused): gives the reserve's room
    /// to sled and opens it afresh, so that reads, which may write, work while the disk is full.
    pub fn relieve(&self) -> StoreResult<()> {
        let inner = &self.inner;
        match std::fs::remove_file(inner.data_dir.join(RESERVE_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        self.reopen_database()
    }

    /// Takes writes again once there is room for the reserve and a margin besides, reopening the database
    /// if a flush still fails; `Ok` when writable again.
    pub fn recover(&self) -> StoreResult<()> {
        let dir = self.data_dir();
        probe_space(dir, RESERVE_BYTES + MARGIN_BYTES)?;
        make_reserve(dir)?;
        if self.inner.durability.retry().is_ok() {
            return Ok(());
        }
        self.reopen_database()?;
        self.inner.durability.retry()?;
        Ok(())
    }

    /// Closes the database and opens it again, with no commit meanwhile; readers wait for it.
    fn reopen_database(&self) -> StoreResult<()> {
        let inner = &self.inner;
        inner.committer.alone(|| {
            inner.durability.fail_waiting();
            inner.records.reopen(|old| {
                drop(old);
                reopen(&inner.data_dir)
            })?;
            self.count_resources()
        })?;
        self.forget_caches();
        Ok(())
    }

    fn forget_caches(&self) {
        if let Ok(mut tokens) = self.inner.tokens.write() {
            *tokens = Default::default();
        }
        if let Ok(mut names) = self.inner.account_names.write() {
            names.clear();
        }
        if let Ok(mut registries) = self.inner.registries.write() {
            registries.clear();
        }
    }
}

/// Opens the database again, waiting for the old one's last user to let go of its lock.
fn reopen(dir: &Path) -> StoreResult<(super::records::Open, super::records::Integrity)> {
    let started = Instant::now();
    loop {
        match open_checked(dir, OnDamage::Refuse) {
            Ok((open, state, _)) => return Ok((open, state)),
            Err(StoreError::Locked(_)) if started.elapsed() < LOCK_PATIENCE => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes `len` bytes to `path` and syncs them; nothing is left of a file that could not be written whole.
fn write_zeros(path: &Path, len: usize) -> std::io::Result<()> {
    use std::io::Write;
    let written = std::fs::File::create(path).and_then(|mut f| {
        f.write_all(&vec![0u8; len])?;
        f.sync_data()
    });
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// Fails unless `len` bytes can be written in the data directory (real blocks: a statvfs figure may
/// count space the filesystem will not give).
fn probe_space(dir: &Path, len: usize) -> StoreResult<()> {
    let path = dir.join(".space-probe");
    let written = write_zeros(&path, len);
    let _ = std::fs::remove_file(&path);
    Ok(written?)
}

/// Makes the reserve file unless it is there already.
pub(crate) fn make_reserve(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(RESERVE_FILE);
    if reserve_bytes(dir) >= RESERVE_BYTES as u64 {
        return Ok(());
    }
    write_zeros(&path, RESERVE_BYTES)
}

/// The size of the reserve file (0 when there is none: the disk is full, or was at start).
pub fn reserve_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(RESERVE_FILE)).map_or(0, |m| m.len())
}

/// Bytes the data directory occupies on disk, the reserve file left out.
pub fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|entry| entry.file_name() != RESERVE_FILE)
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&entry.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Starts the thread that recovers the store after a failed flush; it ends with the store.
pub(super) fn watch(store: &Store) {
    let weak: Weak<Inner> = Arc::downgrade(&store.inner);
    let trouble = store.inner.durability.trouble();
    let spawned = thread::Builder::new().name("usersync-health".into()).spawn(move || {
        let mut told = false;
        let mut relieved = false;
        let mut ticks = 0u32;
        loop {
            trouble.wait(RETRY_EVERY);
            let Some(inner) = weak.upgrade() else { return };
            if inner.durability.stopped() {
                return;
            }
            if inner.durability.writable() {
                told = false;
                relieved = false;
                ticks += 1;
                if ticks.is_multiple_of(COMPACT_CHECK_EVERY)
                    && let Err(e) = (Store { inner }).maybe_compact()
                {
                    log::error!("compacting the store failed: {e}");
                }
                continue;
            }
            let store = Store { inner };
            if !relieved {
                relieved = true;
                match store.relieve() {
                    Ok(()) => log::warn!(
                        "the store gave its {} MiB reserve to reads and was reopened; writes stay refused until there is space again",
                        RESERVE_BYTES >> 20
                    ),
                    Err(e) => log::error!("reopening the store on a full disk failed: {e}"),
                }
            }
            match store.recover() {
                Ok(()) => {
                    // (the flusher said it is writable again) the next failure may come before this thread sees the store writable
                    (told, relieved) = (false, false);
                }
                Err(e) if !told => {
                    log::warn!("the store is still not writable ({e}); retrying every {RETRY_EVERY:?}");
                    told = true;
                }
                Err(_) => {}
            }
        }
    });
    if let Err(e) = spawned {
        log::error!("could not start the store's health thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::scim::resource::normalize;
    use crate::scim::schema::ResourceKind;
    use crate::store::resources::USERS;
    use crate::store::testing::temp_store;
    use crate::store::{Actor, StoreError};

    #[test]
    fn a_record_failing_its_checksum_is_an_error_and_counted() {
        let (store, _dir) = temp_store();
        let (account, _) = store.ensure_account("acme").unwrap();
        let registry = store.registry(account.id);
        let schema = registry.resource(ResourceKind::User);
        let input = normalize(schema, &json!({"userName": "flip@example.com"})).unwrap();
        let id = store.create_user(account.id, schema, &input, &Actor::engine()).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let key = USERS.record_key(account.id, &id);
        let tree = store.inner.records.current().unwrap().tree;
        let mut stored = tree.get(&key).unwrap().unwrap().to_vec();
        stored[3] ^= 0x20;
        tree.insert(&key, stored).unwrap();
        assert!(store.user(account.id, &id).is_err(), "never the changed record");
        assert_eq!(store.health()["checksumFailures"], 1);
        assert_eq!(store.health()["writable"], true);
    }

    #[test]
    fn a_full_disk_is_its_own_error() {
        let enospc = std::io::Error::from_raw_os_error(28);
        assert!(matches!(StoreError::from(enospc), StoreError::Full(_)));
        // sled hands out copies of its sticky error: same kind, the original's text
        let copy = std::io::Error::new(std::io::ErrorKind::StorageFull, "Os { code: 28 }");
        assert!(matches!(StoreError::from(sled::Error::Io(copy)), StoreError::Full(_)));
        assert!(matches!(StoreError::from(std::io::Error::other("x")), StoreError::Io(_)));
    }
}
