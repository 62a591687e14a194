//! The sled tree as the rest of the store sees it: every value carries a checksum of its key and value,
//! checked on every read, and every commit updates the store's integrity record (a commit number, the
//! number of records and an order-independent digest of all of them) in the same atomic batch. The open
//! database can be swapped for a fresh one while the server runs (after a full disk, see [`super::health`]).

use std::ops::RangeBounds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use sled::IVec;

/// The integrity record's key. Every other key starts with a letter, so it sorts before all of them and no
/// prefix scan ever meets it.
pub(crate) const META_KEY: &[u8] = b"\x00integrity";
/// The first key after the integrity record.
pub(crate) const FIRST_KEY: &[u8] = b"\x01";
/// Bytes of checksum after every stored value.
const TRAILER: usize = 4;
const META_MAGIC: &[u8; 4] = b"USI1";
const META_LEN: usize = 4 + 8 * 4 + 4;

/// What the integrity record says: the number of the last commit, how many records there are, the sum
/// of their digests and their size (keys and stored values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Integrity {
    pub seq: u64,
    pub count: u64,
    pub digest: u64,
    pub bytes: u64,
}

impl Integrity {
    pub(crate) fn add_sealed(&mut self, key: &[u8], sealed: &[u8]) {
        self.count = self.count.wrapping_add(1);
        self.digest = self.digest.wrapping_add(term(key, sealed));
        self.bytes = self.bytes.wrapping_add((key.len() + sealed.len()) as u64);
    }

    pub(crate) fn remove_sealed(&mut self, key: &[u8], sealed: &[u8]) {
        self.count = self.count.wrapping_sub(1);
        self.digest = self.digest.wrapping_sub(term(key, sealed));
        self.bytes = self.bytes.wrapping_sub((key.len() + sealed.len()) as u64);
    }

    pub(crate) fn encoded(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(META_LEN);
        out.extend_from_slice(META_MAGIC);
        for n in [self.seq, self.count, self.digest, self.bytes] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Integrity> {
        if bytes.len() != META_LEN || &bytes[..4] != META_MAGIC {
            return None;
        }
        let (body, crc) = bytes.split_at(META_LEN - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let n = |i: usize| u64::from_le_bytes(body[4 + 8 * i..12 + 8 * i].try_into().unwrap_or_default());
        Some(Integrity { seq: n(0), count: n(1), digest: n(2), bytes: n(3) })
    }
}

/// The checksum of a record: its key and value together, so a record found under another key fails too.
fn checksum(key: &[u8], value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(value);
    h.finalize()
}

/// `value` followed by its checksum, as stored.
pub(crate) fn seal(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + TRAILER);
    out.extend_from_slice(value);
    out.extend_from_slice(&checksum(key, value).to_le_bytes());
    out
}

/// The value inside a stored record, if its checksum holds.
pub(crate) fn unseal(key: &[u8], sealed: &IVec) -> Option<IVec> {
    let len = sealed.len().checked_sub(TRAILER)?;
    let (value, crc) = sealed.split_at(len);
    (checksum(key, value).to_le_bytes() == crc).then(|| sealed.subslice(0, len))
}

/// One record's share of the digest: mixed (splitmix64), so that the sum of many cannot cancel out the
/// way sums of CRCs can.
fn term(key: &[u8], sealed: &[u8]) -> u64 {
    let stored = sealed
        .len()
        .checked_sub(TRAILER)
        .map_or(0, |len| u32::from_le_bytes(sealed[len..].try_into().unwrap_or_default()));
    let mut z =
        (u64::from(crc32fast::hash(key)) << 32 | u64::from(stored)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a write gets while the disk is full: the same kind sled reports, so it is answered 507.
fn refused() -> sled::Error {
    sled::Error::Io(std::io::Error::new(
        std::io::ErrorKind::StorageFull,
        "the disk is full; writes are refused until there is space again",
    ))
}

fn reopening() -> sled::Error {
    sled::Error::Io(std::io::Error::other("the store is being reopened"))
}

/// The value of a record read, or the error that its checksum failed (logged and counted).
fn open_value(failures: &AtomicU64, key: &[u8], sealed: IVec) -> sled::Result<IVec> {
    unseal(key, &sealed).ok_or_else(|| {
        failures.fetch_add(1, Ordering::Relaxed);
        log::error!(
            "the record {} failed its checksum: the store is damaged; stop the server and run `usersync verify`",
            printable(key)
        );
        damaged(key)
    })
}

/// The error a read answers for a record whose checksum fails.
fn damaged(key: &[u8]) -> sled::Error {
    sled::Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the record {} failed its checksum", printable(key)),
    ))
}

/// A key in words for a log line: its kind letter, account and the rest as text where it is text.
pub(crate) fn printable(key: &[u8]) -> String {
    match key {
        [] => "(empty key)".into(),
        [kind, rest @ ..] if rest.len() >= 4 && kind.is_ascii_alphabetic() => {
            let acct = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            format!("{} account {acct} {}", *kind as char, String::from_utf8_lossy(&rest[4..]))
        }
        _ => format!("{}", String::from_utf8_lossy(key)),
    }
}

/// The open database and its one tree.
#[derive(Clone)]
pub(crate) struct Open {
    pub db: sled::Db,
    pub tree: sled::Tree,
}

/// The store's records: checksummed reads, integrity-keeping writes.
pub(crate) struct Records {
    /// `None` only while the database is being reopened.
    open: RwLock<Option<Open>>,
    /// The integrity record as of the last commit; changed only by the committer, which writes alone.
    state: Mutex<Integrity>,
    /// `state.seq`, readable without the lock (the flusher writes it to the watermark).
    committed: AtomicU64,
    /// Reads that found a record failing its checksum since start.
    checksum_failures: Arc<AtomicU64>,
    /// While a compaction copies the store: the copy, which receives every commit too.
    shadow: Mutex<Option<sled::Tree>>,
    /// A commit could not be written to the copy: the compaction must not use it.
    shadow_failed: std::sync::atomic::AtomicBool,
    /// The disk is full: every write is refused here, before sled sees it (see [`super::health`]).
    refusing: std::sync::atomic::AtomicBool,
}

impl Records {
    pub(crate) fn new(open: Open, state: Integrity) -> Records {
        Records {
            open: RwLock::new(Some(open)),
            committed: AtomicU64::new(state.seq),
            state: Mutex::new(state),
            checksum_failures: Arc::default(),
            shadow: Mutex::new(None),
            shadow_failed: Default::default(),
            refusing: Default::default(),
        }
    }

    /// Refuses every write from now on (`true`), or takes them again.
    pub(crate) fn refuse_writes(&self, refuse: bool) {
        self.refusing.store(refuse, Ordering::SeqCst);
    }

    /// The database currently open.
    pub(crate) fn current(&self) -> sled::Result<Open> {
        self.open.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or_else(reopening)
    }

    fn tree(&self) -> sled::Result<sled::Tree> {
        Ok(self.current()?.tree)
    }

    /// Closes the database (reads fail meanwhile), opens it again with `reopen` and puts it in place.
    /// Waits for the last user of the old database to let go: sled locks its files while open.
    /// The old database is `None` when an earlier reopen failed.
    pub(crate) fn reopen<E>(
        &self,
        reopen: impl FnOnce(Option<Open>) -> Result<(Open, Integrity), E>,
    ) -> Result<(), E> {
        let mut current = self.open.write().unwrap_or_else(|p| p.into_inner());
        let (open, state) = reopen(current.take())?;
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
        self.committed.store(state.seq, Ordering::SeqCst);
        *current = Some(open);
        Ok(())
    }

    /// Puts `open`, which holds exactly the same records (a compaction's complete copy), in place of the
    /// database; returns the one it replaces.
    pub(crate) fn replace(&self, open: Open) -> Option<Open> {
        self.open.write().unwrap_or_else(|p| p.into_inner()).replace(open)
    }

    /// The integrity record as of the last commit.
    pub(crate) fn state(&self) -> Integrity {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends every commit to `copy` too from now on (`None`: no more).
    pub(crate) fn set_shadow(&self, copy: Option<sled::Tree>) {
        self.shadow_failed.store(false, Ordering::SeqCst);
        *self.shadow.lock().unwrap_or_else(|p| p.into_inner()) = copy;
    }

    /// Whether every commit since [`set_shadow`](Self::set_shadow) reached the copy.
    pub(crate) fn shadow_complete(&self) -> bool {
        !self.shadow_failed.load(Ordering::SeqCst)
    }

    /// Copies up to `limit` stored entries (integrity record included, checksums as stored) from `from`
    /// on into `copy`; returns the key to go on from, `None` at the end. Called with the committer held.
    pub(crate) fn copy_chunk(
        &self,
        copy: &sled::Tree,
        from: &[u8],
        limit: usize,
    ) -> sled::Result<Option<Vec<u8>>> {
        let tree = self.tree()?;
        let mut batch = sled::Batch::default();
        let mut last = None;
        for item in tree.range(from..).take(limit) {
            let (k, v) = item?;
            batch.insert(k.clone(), v);
            last = Some(k);
        }
        copy.apply_batch(batch)?;
        Ok(last.map(|k| {
            let mut next = k.to_vec();
            next.push(0);
            next
        }))
    }

    /// The number of the last commit.
    pub(crate) fn committed_seq(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    pub(crate) fn checksum_failures(&self) -> u64 {
        self.checksum_failures.load(Ordering::Relaxed)
    }

    fn open_value(&self, key: &[u8], sealed: IVec) -> sled::Result<IVec> {
        open_value(&self.checksum_failures, key, sealed)
    }

    pub(crate) fn get<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<IVec>> {
        let key = key.as_ref();
        self.tree()?.get(key)?.map(|v| self.open_value(key, v)).transpose()
    }

    pub(crate) fn contains_key<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    pub(crate) fn get_gt<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<(IVec, IVec)>> {
        match self.tree()?.get_gt(key)? {
            Some((k, v)) => {
                let v = self.open_value(&k, v)?;
                Ok(Some((k, v)))
            }
            None => Ok(None),
        }
    }

    pub(crate) fn scan_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> Iter {
        Iter {
            inner: self.tree().map(|t| t.scan_prefix(prefix)).map_err(Some),
            failures: self.checksum_failures.clone(),
        }
    }

    pub(crate) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        Iter {
            inner: self.tree().map(|t| t.range(range)).map_err(Some),
            failures: self.checksum_failures.clone(),
        }
    }

    /// Every record (not the integrity record).
    pub(crate) fn iter(&self) -> Iter {
        self.range(FIRST_KEY..)
    }

    /// Writes everything at once, with the integrity record brought up to date: sled recovers a batch
    /// entirely or not at all. Only the committer calls this, one writer at a time.
    pub(crate) fn apply(&self, writes: impl Iterator<Item = (Vec<u8>, Option<IVec>)>) -> sled::Result<()> {
        let mut writes = writes.peekable();
        if writes.peek().is_none() {
            return Ok(());
        }
        if self.refusing.load(Ordering::SeqCst) {
            return Err(refused());
        }
        let tree = self.tree()?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = *state;
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            if let Some(old) = tree.get(&key)? {
                next.remove_sealed(&key, &old);
            }
            match value {
                Some(v) => {
                    let sealed = seal(&key, &v);
                    next.add_sealed(&key, &sealed);
                    batch.insert(key, sealed);
                }
                None => batch.remove(key),
            }
        }
        next.seq += 1;
        batch.insert(META_KEY, next.encoded());
        let shadow = self.shadow.lock().unwrap_or_else(|p| p.into_inner());
        let copy = shadow.as_ref().map(|copy| (copy, batch.clone()));
        tree.apply_batch(batch)?;
        if let Some((copy, batch)) = copy
            && let Err(e) = copy.apply_batch(batch)
        {
            log::error!("compaction: the copy missed a commit ({e}); it will be discarded");
            self.shadow_failed.store(true, Ordering::SeqCst);
        }
        *state = next;
        self.committed.store(next.seq, Ordering::SeqCst);
        Ok(())
    }

    /// Writes a record outside the committer, integrity record included (tests that plant bad data).
    #[cfg(test)]
    pub(crate) fn insert<K: AsRef<[u8]>, V: AsRef<[u8]>>(&self, key: K, value: V) -> sled::Result<()> {
        let value = IVec::from(value.as_ref());
        self.apply(std::iter::once((key.as_ref().to_vec(), Some(value))))
    }
}

/// Records in key order, checksums checked.
pub(crate) struct Iter {
    /// An error (the database being reopened) is answered once.
    inner: Result<sled::Iter, Option<sled::Error>>,
    failures: Arc<AtomicU64>,
}

impl Iter {
    fn open(&self, item: sled::Result<(IVec, IVec)>) -> sled::Result<(IVec, IVec)> {
        let (k, v) = item?;
        let v = open_value(&self.failures, &k, v)?;
        Ok((k, v))
    }

    fn failed(&mut self) -> Option<sled::Result<(IVec, IVec)>> {
        match &mut self.inner {
            Err(e) => e.take().map(Err),
            Ok(_) => None,
        }
    }

    pub(crate) fn keys(self) -> impl DoubleEndedIterator<Item = sled::Result<IVec>> {
        self.map(|r| r.map(|(k, _)| k))
    }

    pub(crate) fn values(self) -> impl DoubleEndedIterator<Item = sled::Result<IVec>> {
        self.map(|r| r.map(|(_, v)| v))
    }
}

impl Iterator for Iter {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = match &mut self.inner {
            Ok(iter) => iter.next()?,
            Err(_) => return self.failed(),
        };
        Some(self.open(item))
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        let item = match &mut self.inner {
            Ok(iter) => iter.next_back()?,
            Err(_) => return self.failed(),
        };
        Some(self.open(item))
    }
}

/// What a full pass over the tree found: the integrity record it holds, the one its records add up to,
/// and the keys whose checksum failed.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub recorded: Option<Integrity>,
    pub meta_unreadable: bool,
    pub found: Integrity,
    pub bad: Vec<IVec>,
}

impl Scan {
    /// Reads every record of `tree` once.
    pub(crate) fn of(tree: &sled::Tree) -> sled::Result<Scan> {
        let mut scan = Scan::default();
        if let Some(meta) = tree.get(META_KEY)? {
            scan.recorded = Integrity::decode(&meta);
            scan.meta_unreadable = scan.recorded.is_none();
        }
        for item in tree.range(FIRST_KEY..) {
            let (k, v) = item?;
            if unseal(&k, &v).is_none() {
                scan.bad.push(k.clone());
            }
            scan.found.add_sealed(&k, &v);
        }
        if let Some(recorded) = scan.recorded {
            scan.found.seq = recorded.seq;
        }
        Ok(scan)
    }

    /// The problems in words; empty when every record is sound and all of them are there.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.meta_unreadable {
            out.push("the integrity record is unreadable".to_string());
        }
        for key in self.bad.iter().take(20) {
            out.push(format!("the record {} failed its checksum", printable(key)));
        }
        if self.bad.len() > 20 {
            out.push(format!("... and {} more records failed their checksum", self.bad.len() - 20));
        }
        if let Some(recorded) = self.recorded {
            if recorded.count != self.found.count {
                out.push(format!(
                    "the store should hold {} records but holds {}",
                    recorded.count, self.found.count
                ));
            } else if recorded.digest != self.found.digest {
                out.push(format!(
                    "the {} records are not the ones last written (some were lost, replaced by older versions or changed)",
                    recorded.count
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> (Records, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = (*db).clone();
        (Records::new(Open { db, tree }, Integrity::default()), dir)
    }

    #[test]
    fn a_changed_value_or_a_moved_record_fails_its_checksum() {
        let sealed = IVec::from(seal(b"Ukey", b"{\"a\":1}"));
        assert_eq!(unseal(b"Ukey", &sealed).as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(unseal(b"Ukez", &sealed), None, "the same value under another key");
        let mut flipped = sealed.to_vec();
        flipped[2] ^= 0x10;
        assert_eq!(unseal(b"Ukey", &IVec::from(flipped)), None);
        assert_eq!(unseal(b"Ukey", &IVec::from(&b"ab"[..])), None, "shorter than a checksum");
    }

    #[test]
    fn the_integrity_record_follows_every_commit_and_a_scan_agrees() {
        let (records, _dir) = records();
        records.insert(b"Ua", b"1").unwrap();
        records.insert(b"Ub", b"2").unwrap();
        records
            .apply([(b"Ua".to_vec(), None), (b"Uc".to_vec(), Some(IVec::from(&b"3"[..])))].into_iter())
            .unwrap();
        records.insert(b"Ub", b"22").unwrap();
        let scan = Scan::of(&records.tree().unwrap()).unwrap();
        assert_eq!(scan.recorded, Some(scan.found));
        assert_eq!(scan.found.count, 2);
        assert_eq!(scan.found.seq, 4);
        assert!(scan.problems().is_empty(), "{:?}", scan.problems());
        assert_eq!(records.get(b"Ub").unwrap().as_deref(), Some(&b"22"[..]));
        assert_eq!(records.iter().count(), 2, "the integrity record is not a record");

        // a record written behind the store's back (an older version coming back) is noticed
        records.tree().unwrap().insert(b"Ub", seal(b"Ub", b"2")).unwrap();
        assert_eq!(Scan::of(&records.tree().unwrap()).unwrap().problems().len(), 1);
        records.tree().unwrap().remove(b"Ub").unwrap();
        assert!(
            Scan::of(&records.tree().unwrap()).unwrap().problems()[0]
                .contains("should hold 2 records but holds 1")
        );
        records.tree().unwrap().insert(b"Ub", &b"22xx"[..]).unwrap();
        assert!(Scan::of(&records.tree().unwrap()).unwrap().problems()[0].contains("failed its checksum"));
        assert!(records.get(b"Ub").is_err());
        assert_eq!(records.checksum_failures(), 1);
    }
}
