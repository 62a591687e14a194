//! The store's health as an admin sees it (writable, records that failed their checksum, disk use), and
//! recovery from a full disk without a restart: sled keeps the first write error it meets and fails every
//! later write with it, so once there is space again the database is closed and opened afresh (what it
//! recovers is exactly what is durable), checked, and the flusher resumes.

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
/// Free space a reopened store needs before it is worth trying: a few of sled's 512 KiB segments.
const PROBE_BYTES: usize = 4 << 20;
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

    /// `{"writable", "checksumFailures", "diskBytes", "liveBytes"}` for `GET /admin/v1/sync`.
    pub fn health(&self) -> Value {
        json!({
            "writable": self.writable(),
            "checksumFailures": self.checksum_failures(),
            "diskBytes": disk_bytes(self.data_dir()),
            "liveBytes": self.live_bytes(),
        })
    }

    /// Closes and reopens the database after a failed flush, once there is space; `Ok` when writable again.
    pub fn recover(&self) -> StoreResult<()> {
        probe_space(self.data_dir())?;
        let inner = &self.inner;
        inner.committer.alone(|| {
            inner.records.reopen(|old| {
                drop(old);
                reopen(&inner.data_dir)
            })
        })?;
        self.forget_caches();
        self.count_resources()?;
        inner.durability.retry()?;
        Ok(())
    }

    fn forget_caches(&self) {
        if let Ok(mut counts) = self.inner.counts.write() {
            counts.clear();
        }
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

/// Fails unless a few megabytes can be written in the data directory.
fn probe_space(dir: &Path) -> StoreResult<()> {
    use std::io::Write;
    let path = dir.join(".space-probe");
    let written = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(&vec![0u8; PROBE_BYTES])?;
        f.sync_data()
    });
    let _ = std::fs::remove_file(&path);
    Ok(written?)
}

/// Bytes the data directory occupies on disk.
pub fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
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
    let spawned = thread::Builder::new().name("usersync-health".into()).spawn(move || {
        let mut told = false;
        let mut ticks = 0u32;
        loop {
            thread::sleep(RETRY_EVERY);
            let Some(inner) = weak.upgrade() else { return };
            if inner.durability.stopped() {
                return;
            }
            if inner.durability.writable() {
                told = false;
                ticks += 1;
                if ticks.is_multiple_of(COMPACT_CHECK_EVERY)
                    && let Err(e) = (Store { inner }).maybe_compact()
                {
                    log::error!("compacting the store failed: {e}");
                }
                continue;
            }
            match (Store { inner }).recover() {
                Ok(()) => log::warn!("the store was reopened and takes writes again"),
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
