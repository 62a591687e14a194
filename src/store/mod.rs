//! Storage: the only code that touches sled. Resources, unique indexes, per-member group membership with
//! its reverse index, accounts and tokens, and the rule engine's state, all in one sled tree whose writes
//! are transactions acknowledged only once durable (see [`durability`]).

mod accounts;
pub mod activity;
pub mod backup;
mod codec;
pub mod compact;
mod directory;
pub mod domains;
pub mod durability;
pub mod feed;
mod groups;
pub mod health;
pub mod integrity;
pub mod keys;
pub mod layout;
mod lifecycle;
mod limits;
mod list;
mod members;
pub mod outbox;
mod pending;
mod records;
pub mod requests;
mod resources;
pub mod retention;
pub mod sync;
mod tx;
mod users;
mod verify;
pub mod wanted;
pub mod webhooks;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use sled::transaction::{ConflictableTransactionError, TransactionError};

pub use accounts::{Account, AccountFigures, Authentication, TokenInfo, TokenKind};
pub use activity::{Activity, ActivityPage, ActivityQuery};
pub use codec::{display_of, version_of};
pub use directory::NameMatch;
pub use durability::{Durability, DurabilityMode};
pub use integrity::OnDamage;
pub use keys::AccountId;
pub use limits::RateLimit;
pub use list::{ListPage, ListQuery};
pub use members::{GroupPatch, GroupsCursor, Member};
pub use requests::{RequestEntry, RequestPage, RequestQuery, StatusMatch};
pub use retention::Retention;
pub use tx::take_longest_hold as take_longest_commit_hold;
pub use users::is_active;

use tx::Tx;

use crate::clock::Clock;
use crate::scim::ScimError;
use crate::scim::schema::{Registry, ResourceKind};

/// Everything that can go wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request itself is wrong (bad PATCH, missing attribute, ...).
    #[error(transparent)]
    Invalid(#[from] ScimError),
    #[error("{0} not found")]
    NotFound(String),
    /// A unique attribute is taken, or the change contradicts what other records say.
    #[error("{0}")]
    Conflict(String),
    /// The change refers to something that does not exist or does not fit (a rule naming an unknown
    /// product, ...).
    #[error("{0}")]
    Rejected(String),
    /// `If-Match` named a version that is no longer current.
    #[error("the resource has changed since version {0}")]
    PreconditionFailed(String),
    #[error("the data directory is in use by another usersync process: {0}")]
    Locked(String),
    #[error("storage failure: {0}")]
    Storage(sled::Error),
    #[error("unreadable record: {0}")]
    Corrupt(String),
    #[error("i/o failure: {0}")]
    Io(std::io::Error),
    /// The store's files hold less than was acknowledged, or records fail their checksums: the text says
    /// what was found and what to do.
    #[error("{0}")]
    Damaged(String),
    /// The write could not be made durable: the disk is full (or failing).
    #[error("the store cannot make writes durable: {0}")]
    Full(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) => StoreError::from(io),
            other => StoreError::Storage(other),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        if is_disk_full(&e) { StoreError::Full(e.to_string()) } else { StoreError::Io(e) }
    }
}

/// ENOSPC and EDQUOT, also in the copies sled makes of its sticky error (same kind, text of the original).
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
        || matches!(e.raw_os_error(), Some(28 | 122))
        || e.to_string().contains("StorageFull")
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Transaction closures return this; `abort` carries a [`StoreError`] out.
pub(crate) type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

pub(crate) fn abort<T>(e: impl Into<StoreError>) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e.into()))
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::from(e),
        }
    }
}

/// How to open a store.
pub struct StoreOptions {
    pub path: PathBuf,
    pub durability: DurabilityMode,
    pub clock: Arc<dyn Clock>,
}

/// Who made a change, as the activity history shows it (`scim:<token name>`, `admin:<name>`, `usersync`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    pub fn engine() -> Actor {
        Actor("usersync".into())
    }
}

/// The resources of one kind in one account: how many there are, and a generation that changes with every
/// create and delete, so that remembered list positions can tell they are out of date.
#[derive(Default)]
pub(crate) struct Population {
    count: AtomicI64,
    pub(crate) generation: std::sync::atomic::AtomicU64,
    /// Where pages of an unfiltered list start: position → key of the resource at that position.
    pub(crate) pages: Mutex<(u64, std::collections::BTreeMap<usize, sled::IVec>)>,
}

/// An open store. Cheap to clone; all clones share the same database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    records: Arc<records::Records>,
    committer: tx::Committer,
    durability: Durability,
    clock: Arc<dyn Clock>,
    /// Resources per account and kind, so unfiltered lists answer `totalResults` without a scan.
    counts: RwLock<HashMap<(AccountId, ResourceKind), Arc<Population>>>,
    /// Membership changes of one group are serialised, so a full-list replace that reads the current
    /// members and writes the difference cannot interleave with another change to the same group.
    group_locks: Vec<Mutex<()>>,
    standard: Arc<Registry>,
    /// Tokens seen since start, by the hash of their secret (revocation removes them at once).
    tokens: RwLock<accounts::TokenCache>,
    account_names: RwLock<HashMap<AccountId, String>>,
    /// Each account's rate limit override, read once (see [`limits`]).
    rate_limits: RwLock<HashMap<AccountId, Option<RateLimit>>>,
    /// Each account's schemas: the standard ones plus its custom attributes, built once.
    registries: RwLock<HashMap<AccountId, Arc<Registry>>>,
    /// Found once per reorder for `GET /sync` (see `count_owed_by_reorder`).
    reorder_owed: Mutex<sync::queue::ReorderOwed>,
    data_dir: PathBuf,
    /// Bytes on disk and bytes of records right after the last compaction (see [`compact`]).
    compacted: Mutex<Option<(u64, u64)>>,
    /// Held while a compaction runs: the background one and one asked for meanwhile take turns.
    compacting: Mutex<()>,
    /// What the last compaction while running did, for `GET /admin/v1/sync`.
    last_compaction: Mutex<Option<compact::LastCompaction>>,
    /// The provisioning log's queue and writer (see [`requests`]).
    requests: requests::Recorder,
}

const GROUP_LOCK_STRIPES: usize = 64;

impl Store {
    /// Opens the store, refusing it when it holds less than was acknowledged (see [`integrity`]).
    pub fn open(options: StoreOptions) -> StoreResult<Store> {
        Store::open_with(options, OnDamage::Refuse).map(|(store, _)| store)
    }

    /// Opens the store, doing `on_damage` with a damaged one; also returns what was found wrong.
    pub fn open_with(options: StoreOptions, on_damage: OnDamage) -> StoreResult<(Store, Vec<String>)> {
        let inspect = on_damage == OnDamage::Inspect;
        if !inspect {
            compact::finish_interrupted(&options.path)?;
        }
        std::fs::create_dir_all(&options.path)?;
        let (open, state, problems) = integrity::open_checked(&options.path, on_damage)?;
        let active = layout::active(&options.path)?;
        let records = Arc::new(records::Records::new(open, state));
        let durability = Durability::start(records.clone(), &active, options.durability, inspect)?;
        let store = Store {
            inner: Arc::new(Inner {
                records,
                committer: tx::Committer::default(),
                durability,
                clock: options.clock,
                counts: RwLock::new(HashMap::new()),
                group_locks: (0..GROUP_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
                standard: Arc::new(Registry::standard()),
                tokens: RwLock::default(),
                account_names: RwLock::new(HashMap::new()),
                rate_limits: RwLock::new(HashMap::new()),
                registries: RwLock::new(HashMap::new()),
                reorder_owed: Mutex::default(),
                data_dir: options.path,
                compacted: Mutex::new(None),
                compacting: Mutex::new(()),
                last_compaction: Mutex::new(None),
                requests: requests::Recorder::default(),
            }),
        };
        store.count_resources()?;
        if on_damage != OnDamage::Inspect {
            store.finish_cleanups()?;
            store.migrate_activity_index()?;
            if let Err(e) = health::make_reserve(store.data_dir()) {
                log::warn!(
                    "no room for the store's {} MiB reserve ({e}): reads may fail if the disk fills up",
                    health::RESERVE_BYTES >> 20
                );
            }
            health::watch(&store);
        }
        Ok((store, problems))
    }

    pub(crate) fn tree(&self) -> &records::Records {
        &self.inner.records
    }

    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Waits until every write committed so far is durable; [`StoreError::Full`] when it cannot be made so.
    pub async fn durable(&self) -> StoreResult<()> {
        self.inner.durability.wait().await
    }

    /// Blocking form of [`durable`](Self::durable).
    pub fn durable_blocking(&self) -> StoreResult<()> {
        self.inner.durability.wait_blocking()
    }

    pub fn durability_mode(&self) -> DurabilityMode {
        self.inner.durability.mode()
    }

    /// Commits the provisioning log entries still queued, flushes everything and stops the flusher; the
    /// store stays readable.
    pub fn shutdown(&self) {
        self.stop_request_writer();
        self.inner.durability.shutdown();
    }

    /// The schemas the account sees: the standard ones, plus its custom attributes as the
    /// `urn:ietf:params:scim:schemas:extension:usersync:2.0:User` extension when it has any.
    pub fn registry(&self, acct: AccountId) -> Arc<Registry> {
        if let Some(r) = self.inner.registries.read().ok().and_then(|m| m.get(&acct).cloned()) {
            return r;
        }
        let registry = match self.custom_attributes(acct).map(|attrs| sync::custom_schema(&attrs)) {
            Ok(Some(schema)) => Arc::new(self.inner.standard.with_user_extension(schema)),
            Ok(None) => self.inner.standard.clone(),
            Err(e) => {
                log::error!("reading custom attributes: {e}");
                return self.inner.standard.clone();
            }
        };
        if let Ok(mut map) = self.inner.registries.write() {
            map.insert(acct, registry.clone());
        }
        registry
    }

    pub(crate) fn reorder_owed(&self) -> std::sync::MutexGuard<'_, sync::queue::ReorderOwed> {
        self.inner.reorder_owed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget_registry(&self, acct: AccountId) {
        if let Ok(mut map) = self.inner.registries.write() {
            map.remove(&acct);
        }
    }

    /// Runs `f` as one serialisable transaction over the whole store, committed together with the
    /// transactions of concurrent writers (see [`tx`]).
    pub(crate) fn transact<T>(&self, f: impl Fn(&Tx<'_>) -> TxResult<T>) -> StoreResult<T> {
        let guarded = |tx: &Tx<'_>| {
            let value = f(tx)?;
            self.refuse_removed_accounts(tx)?;
            Ok(value)
        };
        self.noting_full_disk(self.inner.committer.run(&self.inner.records, guarded))
    }

    /// Runs `f` with every other writer held off meanwhile: for work that reads much and should not be
    /// retried.
    pub(crate) fn transact_exclusive<T>(&self, f: impl Fn(&Tx<'_>) -> TxResult<T>) -> StoreResult<T> {
        let guarded = |tx: &Tx<'_>| {
            let value = f(tx)?;
            self.refuse_removed_accounts(tx)?;
            Ok(value)
        };
        self.noting_full_disk(self.inner.committer.exclusive(&self.inner.records, guarded))
    }

    /// A write sled refused for want of space makes the store not writable until it is reopened.
    fn noting_full_disk<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        if let Err(StoreError::Full(why)) = &result {
            self.inner.durability.failed(why);
        }
        result
    }

    pub(crate) fn population(&self, acct: AccountId, kind: ResourceKind) -> Arc<Population> {
        if let Some(c) = self.inner.counts.read().ok().and_then(|m| m.get(&(acct, kind)).cloned()) {
            return c;
        }
        let Ok(mut map) = self.inner.counts.write() else { return Arc::new(Population::default()) };
        map.entry((acct, kind)).or_default().clone()
    }

    pub(crate) fn adjust_count(&self, acct: AccountId, kind: ResourceKind, delta: i64) {
        let population = self.population(acct, kind);
        population.count.fetch_add(delta, Ordering::Relaxed);
        population.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// How many resources of `kind` the account has.
    pub fn count(&self, acct: AccountId, kind: ResourceKind) -> usize {
        usize::try_from(self.population(acct, kind).count.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Every record as stored (key, and value without its checksum), in key order: for inspection tools
    /// and tests that must see the whole store.
    pub fn scan_raw(&self) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.tree()
            .iter()
            .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(StoreError::from))
            .collect()
    }

    /// Whether any account has a user or a group.
    pub fn holds_resources(&self) -> StoreResult<bool> {
        for prefix in [keys::kind::USER, keys::kind::GROUP] {
            if self.tree().scan_prefix([prefix]).next().transpose()?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Counts every account's users and groups: at start-up, and after the database was opened again
    /// (with no commit meanwhile), when what it recovered may be less than what was counted. Readers see
    /// the old counts until the new ones are all there.
    fn count_resources(&self) -> StoreResult<()> {
        let mut counted: HashMap<(AccountId, ResourceKind), i64> = HashMap::new();
        for (prefix, kind) in
            [(keys::kind::USER, ResourceKind::User), (keys::kind::GROUP, ResourceKind::Group)]
        {
            for item in self.tree().scan_prefix([prefix]) {
                let (key, _) = item?;
                if let Some(acct) = keys::account_of(&key) {
                    *counted.entry((acct, kind)).or_default() += 1;
                }
            }
        }
        let Ok(mut map) = self.inner.counts.write() else { return Ok(()) };
        for (at, population) in map.iter() {
            population.count.store(counted.remove(at).unwrap_or(0), Ordering::Relaxed);
            population.generation.fetch_add(1, Ordering::SeqCst);
        }
        for (at, count) in counted {
            let population = map.entry(at).or_default();
            population.count.store(count, Ordering::Relaxed);
        }
        Ok(())
    }

    fn group_lock(&self, acct: AccountId, gid: &str) -> std::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (acct, gid).hash(&mut h);
        let stripe = &self.inner.group_locks[(h.finish() as usize) % GROUP_LOCK_STRIPES];
        stripe.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(crate) fn locked_or(e: sled::Error, path: &Path) -> StoreError {
    match e {
        sled::Error::Io(io)
            if io.to_string().contains("lock") || io.kind() == std::io::ErrorKind::WouldBlock =>
        {
            StoreError::Locked(path.display().to_string())
        }
        other => StoreError::from(other),
    }
}

/// A resource id from a URL: only our own ids (UUIDs) can exist, so anything else is simply not found.
pub(crate) fn check_id(kind: ResourceKind, id: &str) -> StoreResult<()> {
    if id.len() == keys::ID_LEN && uuid::Uuid::parse_str(id).is_ok() {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!("{} {id}", kind.name())))
    }
}

pub(crate) fn not_found(kind: ResourceKind, id: &str) -> StoreError {
    StoreError::NotFound(format!("{} {id}", kind.name()))
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::clock::ManualClock;

    /// A store in a fresh temporary directory with a fixed clock.
    pub fn temp_store() -> (Store, tempfile::TempDir) {
        let (store, _, dir) = clocked_store("2026-01-02T03:04:05Z");
        (store, dir)
    }

    /// A store in a fresh temporary directory whose clock starts at `start` and moves when told to.
    pub fn clocked_store(start: &str) -> (Store, Arc<ManualClock>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(chrono::DateTime::parse_from_rfc3339(start).unwrap().into()));
        let store = Store::open(StoreOptions {
            path: dir.path().to_path_buf(),
            durability: DurabilityMode::Flush,
            clock: clock.clone(),
        })
        .unwrap();
        (store, clock, dir)
    }
}
