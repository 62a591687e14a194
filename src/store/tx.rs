//! Transactions, committed in groups. A sled transaction holds sled's global write lock while its closure
//! runs, which stops every other read and write of the store meanwhile, and it writes its log buffer twice
//! on commit. So usersync runs its own optimistic transactions: a closure reads the live tree (the reads are
//! recorded) and buffers its writes; it then joins the committer's queue, and whichever writer finds no
//! commit under way takes every queued job, checks that what each job read is still what it saw, and writes
//! the valid ones as one atomic sled batch. A job whose reads were overtaken runs again from the start, so
//! the whole stays serialisable. All writes pass through the committer, which is what makes checking the
//! reads with plain gets sound. Work that reads much and must not be retried (the rule engine's batches)
//! takes the committer for itself instead ([`Committer::exclusive`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use sled::IVec;
use sled::transaction::ConflictableTransactionError;

use super::records::Records;
use super::{StoreError, StoreResult, TxResult};

/// Keys with what they held when read, or what they are to hold (`None`: absent, removed).
type Entries = HashMap<Vec<u8>, Option<IVec>>;

/// A record numbered when its transaction commits: the next number of its key range (`prefix` followed
/// by the big-endian number), so the numbers of a range increase by one, commit by commit, and go on
/// where the stored ones end after a restart.
pub(crate) struct Sequenced {
    pub prefix: Vec<u8>,
    /// The record's value given its number.
    pub value: Box<dyn FnOnce(u64) -> Vec<u8> + Send>,
    /// Index entries written with it, each holding the record's number followed by its payload.
    pub index: Vec<IndexEntry>,
}

/// An index entry of a [`Sequenced`] record.
pub(crate) struct IndexEntry {
    pub prefix: Vec<u8>,
    pub payload: Vec<u8>,
    /// `true`: the entry's key is the next number of its own range (so the range's last number is how many
    /// entries it has, and the k-th is found by key); `false`: its key ends with the record's number.
    pub numbered: bool,
}

/// The last number given out per key range (read from the tree the first time a range is used).
#[derive(Default)]
struct Sequences(HashMap<Vec<u8>, u64>);

impl Sequences {
    /// Turns the sequenced records of committed jobs into writes, numbering them in order.
    fn number(&mut self, tree: &Records, records: Vec<Sequenced>, writes: &mut Entries) -> sled::Result<()> {
        for record in records {
            let n = self.next(tree, &record.prefix)?;
            let key = [record.prefix.as_slice(), &n.to_be_bytes()].concat();
            writes.insert(key, Some(IVec::from((record.value)(n))));
            for entry in record.index {
                let at = if entry.numbered { self.next(tree, &entry.prefix)? } else { n };
                let key = [entry.prefix.as_slice(), &at.to_be_bytes()].concat();
                let value = [n.to_be_bytes().as_slice(), &entry.payload].concat();
                writes.insert(key, Some(IVec::from(value)));
            }
        }
        Ok(())
    }

    /// The next number of the range `prefix`.
    fn next(&mut self, tree: &Records, prefix: &[u8]) -> sled::Result<u64> {
        let last = match self.0.get(prefix) {
            Some(n) => *n,
            None => last_number(tree, prefix)?,
        };
        self.0.insert(prefix.to_vec(), last + 1);
        Ok(last + 1)
    }
}

/// The distinct key ranges of sequenced records.
fn prefixes(records: &[Sequenced]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for r in records {
        if !out.contains(&r.prefix) {
            out.push(r.prefix.clone());
        }
    }
    out
}

/// The highest number stored under `prefix` (0 without any).
fn last_number(tree: &Records, prefix: &[u8]) -> sled::Result<u64> {
    let Some((key, _)) = tree.scan_prefix(prefix).next_back().transpose()? else { return Ok(0) };
    Ok(key.get(prefix.len()..).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0))
}

/// The view a transaction closure reads and writes through.
pub(crate) struct Tx<'a> {
    tree: &'a Records,
    /// What each key held when first read, kept only when the reads must be checked at commit.
    reads: Option<RefCell<Entries>>,
    writes: RefCell<Entries>,
    sequenced: RefCell<Vec<Sequenced>>,
}

impl<'a> Tx<'a> {
    fn new(tree: &'a Records, check_reads: bool) -> Tx<'a> {
        Tx {
            tree,
            reads: check_reads.then(RefCell::default),
            writes: RefCell::default(),
            sequenced: RefCell::default(),
        }
    }

    pub(crate) fn get<K: AsRef<[u8]>>(&self, key: K) -> TxResult<Option<IVec>> {
        let key = key.as_ref();
        if let Some(written) = self.writes.borrow().get(key) {
            return Ok(written.clone());
        }
        if let Some(seen) = self.reads.as_ref().and_then(|r| r.borrow().get(key).cloned()) {
            return Ok(seen);
        }
        let value = self.tree.get(key).map_err(ConflictableTransactionError::Storage)?;
        if let Some(reads) = &self.reads {
            reads.borrow_mut().insert(key.to_vec(), value.clone());
        }
        Ok(value)
    }

    pub(crate) fn insert<K: AsRef<[u8]>, V: Into<IVec>>(&self, key: K, value: V) -> TxResult<()> {
        self.writes.borrow_mut().insert(key.as_ref().to_vec(), Some(value.into()));
        Ok(())
    }

    pub(crate) fn remove<K: AsRef<[u8]>>(&self, key: K) -> TxResult<()> {
        self.writes.borrow_mut().insert(key.as_ref().to_vec(), None);
        Ok(())
    }

    /// Writes a record numbered at commit (see [`Sequenced`]).
    pub(crate) fn insert_sequenced(&self, record: Sequenced) {
        self.sequenced.borrow_mut().push(record);
    }

    /// A number no other call returns, increasing (sled's id generator).
    pub(crate) fn generate_id(&self) -> TxResult<u64> {
        self.tree
            .current()
            .and_then(|open| open.db.generate_id())
            .map_err(ConflictableTransactionError::Storage)
    }

    /// The accounts this transaction writes records of (removals aside), and whether it writes each
    /// account's own record.
    pub(crate) fn accounts_written(&self) -> Vec<(super::AccountId, bool)> {
        use super::keys::{account_of, is_account_scoped, kind};
        let mut out: Vec<(super::AccountId, bool)> = Vec::new();
        let mut note = |key: &[u8], own_record: bool| {
            let Some(acct) = key.first().filter(|k| is_account_scoped(**k)).and_then(|_| account_of(key))
            else {
                return;
            };
            match out.iter_mut().find(|(a, _)| *a == acct) {
                Some(entry) => entry.1 |= own_record,
                None => out.push((acct, own_record)),
            }
        };
        for (key, value) in self.writes.borrow().iter() {
            if value.is_some() {
                note(key, key.len() == 5 && key[0] == kind::ACCOUNT);
            }
        }
        for record in self.sequenced.borrow().iter() {
            note(&record.prefix, false);
            for entry in &record.index {
                note(&entry.prefix, false);
            }
        }
        out
    }

    fn into_job(self, id: u64) -> Job {
        Job {
            id,
            reads: self.reads.map(RefCell::into_inner).unwrap_or_default(),
            writes: self.writes.into_inner(),
            sequenced: self.sequenced.into_inner(),
        }
    }
}

/// One optimistic transaction waiting to be committed.
struct Job {
    id: u64,
    reads: Entries,
    writes: Entries,
    sequenced: Vec<Sequenced>,
}

/// `Ok(true)` committed, `Ok(false)` a read changed (retry), `Err` the storage failed.
type Outcome = Result<bool, sled::Error>;

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// Someone is committing (or holds the store exclusively): nobody else writes meanwhile.
    committing: bool,
    next_id: u64,
    done: HashMap<u64, Outcome>,
}

/// Commits queued optimistic transactions in groups.
#[derive(Default)]
pub(crate) struct Committer {
    queue: Mutex<Queue>,
    finished: Condvar,
    /// Used only by whoever holds the committer (and by [`Committer::last_number`], which so waits for a
    /// commit under way).
    sequences: Mutex<Sequences>,
    /// Woken after each commit that numbered records of their key range (see [`Committer::watch`]).
    watchers: Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Notify>>>,
}

impl Committer {
    /// Runs `f` as a serialisable transaction, retrying it while its reads are overtaken.
    ///
    /// An answer that rests on more than one read (an abort such as a 409 or a 404 included) is only
    /// given once those reads are confirmed to have held together, so it never comes from a torn view.
    pub(crate) fn run<T>(&self, tree: &Records, f: impl Fn(&Tx) -> TxResult<T>) -> StoreResult<T> {
        loop {
            let tx = Tx::new(tree, true);
            let result = f(&tx);
            if matches!(result, Err(ConflictableTransactionError::Conflict)) {
                continue;
            }
            let mut job = tx.into_job(0);
            if result.is_err() {
                job.writes.clear();
                job.sequenced.clear();
            }
            let read_only = job.writes.is_empty() && job.sequenced.is_empty();
            if !read_only {
                // The last moment a write whose client has gone can stop; once queued, it commits.
                super::wanted::still_wanted()?;
            }
            let settled = (read_only && job.reads.len() <= 1) || self.commit(tree, job)?;
            if !settled {
                continue;
            }
            return match result {
                Ok(value) => Ok(value),
                Err(ConflictableTransactionError::Abort(e)) => Err(e),
                Err(ConflictableTransactionError::Storage(e)) => Err(e.into()),
                Err(ConflictableTransactionError::Conflict) => continue,
            };
        }
    }

    /// Runs `f` with no other write in between, then writes what it wrote atomically.
    pub(crate) fn exclusive<T>(&self, tree: &Records, f: impl Fn(&Tx) -> TxResult<T>) -> StoreResult<T> {
        let queue = self.acquire(self.lock());
        drop(queue);
        let held = std::time::Instant::now();
        let tx = Tx::new(tree, false);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&tx)));
        let mut announce = Vec::new();
        let applied = match &result {
            Ok(Ok(_)) => {
                let job = tx.into_job(0);
                announce = prefixes(&job.sequenced);
                let mut writes = job.writes;
                let mut sequences = self.sequences();
                let mut numbered = Sequences(sequences.0.clone());
                numbered
                    .number(tree, job.sequenced, &mut writes)
                    .and_then(|()| tree.apply(writes.into_iter()))
                    .map(|()| {
                        *sequences = numbered;
                    })
            }
            _ => Ok(()),
        };
        self.release(self.lock(), HashMap::new());
        if applied.is_ok() {
            self.announce(&announce);
        }
        note_hold(held.elapsed());
        match result {
            Ok(Ok(value)) => applied.map(|()| value).map_err(StoreError::from),
            Ok(Err(ConflictableTransactionError::Abort(e))) => Err(e),
            Ok(Err(ConflictableTransactionError::Storage(e))) => Err(e.into()),
            Ok(Err(ConflictableTransactionError::Conflict)) => Err(StoreError::Storage(
                sled::Error::ReportableBug("an exclusive transaction cannot conflict".into()),
            )),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Runs `f` with no transaction committing meanwhile (reopening the database).
    pub(crate) fn alone<T>(&self, f: impl FnOnce() -> T) -> T {
        drop(self.acquire(self.lock()));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        self.release(self.lock(), HashMap::new());
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// The number of the last record committed under `prefix` (0 without any). Every record up to it
    /// is in the tree: the numbers of a commit become visible together, since this waits for a commit
    /// under way.
    pub(crate) fn last_number(&self, tree: &Records, prefix: &[u8]) -> sled::Result<u64> {
        let mut sequences = self.sequences();
        if let Some(n) = sequences.0.get(prefix) {
            return Ok(*n);
        }
        let n = last_number(tree, prefix)?;
        sequences.0.insert(prefix.to_vec(), n);
        Ok(n)
    }

    /// What is woken after every commit that numbers records under `prefix`.
    pub(crate) fn watch(&self, prefix: &[u8]) -> Arc<tokio::sync::Notify> {
        let mut watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        watchers.entry(prefix.to_vec()).or_default().clone()
    }

    /// Wakes the watchers of these key ranges (a commit that failed wakes them for nothing: they look
    /// again and wait again).
    fn announce(&self, prefixes: &[Vec<u8>]) {
        if prefixes.is_empty() {
            return;
        }
        let watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        if watchers.is_empty() {
            return;
        }
        for prefix in prefixes {
            if let Some(notify) = watchers.get(prefix) {
                notify.notify_waiters();
            }
        }
    }

    fn sequences(&self) -> MutexGuard<'_, Sequences> {
        self.sequences.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until nobody commits, then takes the committer.
    fn acquire<'q>(&self, mut queue: MutexGuard<'q, Queue>) -> MutexGuard<'q, Queue> {
        while queue.committing {
            queue = self.finished.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
        queue.committing = true;
        queue
    }

    fn release(&self, mut queue: MutexGuard<'_, Queue>, outcomes: HashMap<u64, Outcome>) {
        queue.committing = false;
        queue.done.extend(outcomes);
        self.finished.notify_all();
    }

    /// Queues a job and waits for the group commit that includes it: `Ok(false)` if its reads had changed.
    fn commit(&self, tree: &Records, mut job: Job) -> StoreResult<bool> {
        let mut queue = self.lock();
        let id = queue.next_id;
        queue.next_id += 1;
        job.id = id;
        queue.jobs.push(job);
        loop {
            if let Some(outcome) = queue.done.remove(&id) {
                return outcome.map_err(StoreError::from);
            }
            if !queue.committing {
                // Nobody is committing: this writer commits everything queued, its own job included.
                queue.committing = true;
                let jobs = std::mem::take(&mut queue.jobs);
                drop(queue);
                let ids: Vec<u64> = jobs.iter().map(|j| j.id).collect();
                let announce: Vec<Vec<u8>> = jobs.iter().flat_map(|j| prefixes(&j.sequenced)).collect();
                let held = std::time::Instant::now();
                // A panic inside sled must not leave `committing` set, or every writer would wait forever.
                let outcomes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    commit_group(tree, jobs, &mut self.sequences())
                }))
                .unwrap_or_else(|_| {
                    let panicked = || sled::Error::ReportableBug("the commit panicked".into());
                    ids.into_iter().map(|id| (id, Err(panicked()))).collect()
                });
                self.release(self.lock(), outcomes);
                self.announce(&announce);
                note_hold(held.elapsed());
                queue = self.lock();
                continue;
            }
            queue = self.finished.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The longest time, in nanoseconds, a commit (or an exclusive transaction) held every other writer off
/// since it was last taken (see [`take_longest_hold`]).
static LONGEST_HOLD: AtomicU64 = AtomicU64::new(0);

fn note_hold(held: std::time::Duration) {
    LONGEST_HOLD.fetch_max(u64::try_from(held.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// The longest time a commit held every other writer off since the last call: what the benchmarks and
/// `examples/commit_hold.rs` report for large writes.
pub fn take_longest_hold() -> std::time::Duration {
    std::time::Duration::from_nanos(LONGEST_HOLD.swap(0, Ordering::Relaxed))
}

/// Checks each job's reads against the tree as the jobs before it in the group leave it, and writes the
/// jobs that pass as one batch. The caller holds the committer, so nothing else writes meanwhile.
fn commit_group(tree: &Records, jobs: Vec<Job>, sequences: &mut Sequences) -> HashMap<u64, Outcome> {
    let mut pending: Entries = HashMap::new();
    let mut outcomes = HashMap::with_capacity(jobs.len());
    let mut accepted = Vec::with_capacity(jobs.len());
    let mut sequenced = Vec::new();
    for job in jobs {
        match reads_hold(tree, &pending, &job.reads) {
            Ok(true) => {
                pending.extend(job.writes);
                sequenced.extend(job.sequenced);
                accepted.push(job.id);
            }
            Ok(false) => {
                outcomes.insert(job.id, Ok(false));
            }
            Err(e) => {
                outcomes.insert(job.id, Err(e));
            }
        }
    }
    // Numbered on a copy, kept only once written, so a failed batch leaves no gap.
    let mut numbered = Sequences(sequences.0.clone());
    let result =
        numbered.number(tree, sequenced, &mut pending).and_then(|()| tree.apply(pending.into_iter()));
    if result.is_ok() {
        *sequences = numbered;
    }
    outcomes.extend(accepted.into_iter().map(|id| (id, result.clone().map(|()| true))));
    outcomes
}

fn reads_hold(tree: &Records, pending: &Entries, reads: &Entries) -> sled::Result<bool> {
    for (key, seen) in reads {
        let now = match pending.get(key) {
            Some(value) => value.clone(),
            None => tree.get(key)?,
        };
        if now != *seen {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::records::{Integrity, Open};

    fn records(dir: &tempfile::TempDir) -> Records {
        let db = sled::open(dir.path()).unwrap();
        let tree = (*db).clone();
        Records::new(Open { db, tree }, Integrity::default())
    }

    fn number(tx: &Tx, key: &[u8]) -> TxResult<u64> {
        Ok(tx.get(key)?.map_or(0, |v| u64::from_be_bytes(v.as_ref().try_into().unwrap())))
    }

    #[test]
    fn concurrent_increments_are_serialised() {
        let dir = tempfile::tempdir().unwrap();
        let tree = records(&dir);
        let committer = Arc::new(Committer::default());
        std::thread::scope(|s| {
            for t in 0..8 {
                let (tree, committer) = (&tree, committer.clone());
                s.spawn(move || {
                    for _ in 0..100 {
                        let increment = |tx: &Tx| {
                            let n = number(tx, b"n")?;
                            tx.insert(b"n", &(n + 1).to_be_bytes())?;
                            tx.insert(format!("k{n}").as_bytes(), &[])
                        };
                        // Half the threads take the committer for themselves: both kinds serialise.
                        if t % 2 == 0 {
                            committer.run(tree, increment).unwrap();
                        } else {
                            committer.exclusive(tree, increment).unwrap();
                        }
                    }
                });
            }
        });
        let n = u64::from_be_bytes(tree.get(b"n").unwrap().unwrap().as_ref().try_into().unwrap());
        assert_eq!(n, 800, "no increment was lost");
        assert_eq!(tree.scan_prefix(b"k").count(), 800, "every job wrote exactly once");
    }

    #[test]
    fn a_job_sees_the_writes_of_the_jobs_before_it_in_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let tree = records(&dir);
        let read_zero = Entries::from([(b"n".to_vec(), None)]);
        let jobs = vec![
            Job {
                id: 1,
                reads: read_zero.clone(),
                writes: Entries::from([(b"n".to_vec(), Some(IVec::from(&[1])))]),
                sequenced: Vec::new(),
            },
            Job {
                id: 2,
                reads: read_zero,
                writes: Entries::from([(b"n".to_vec(), Some(IVec::from(&[2])))]),
                sequenced: Vec::new(),
            },
        ];
        let outcomes = commit_group(&tree, jobs, &mut Sequences::default());
        assert_eq!(outcomes[&1], Ok(true));
        assert_eq!(outcomes[&2], Ok(false), "the second job read a value the first one changed");
        assert_eq!(tree.get(b"n").unwrap().as_deref(), Some(&[1u8][..]));
    }

    #[test]
    fn sequenced_records_are_numbered_one_by_one_per_range_and_go_on_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let tree = records(&dir);
        let record = |prefix: &'static [u8]| Sequenced {
            prefix: prefix.to_vec(),
            value: Box::new(|n: u64| n.to_be_bytes().to_vec()),
            index: vec![IndexEntry { prefix: [b"i/", prefix].concat(), payload: vec![7], numbered: true }],
        };
        let committer = Arc::new(Committer::default());
        std::thread::scope(|s| {
            for t in 0..4 {
                let (tree, committer) = (&tree, committer.clone());
                s.spawn(move || {
                    for i in 0..50 {
                        let write = |tx: &Tx| {
                            tx.insert_sequenced(record(if (t + i) % 2 == 0 { b"a/" } else { b"b/" }));
                            Ok(())
                        };
                        if t == 0 { committer.exclusive(tree, write) } else { committer.run(tree, write) }
                            .unwrap();
                    }
                });
            }
        });
        let numbers = |prefix: &[u8]| -> Vec<u64> {
            tree.scan_prefix(prefix)
                .map(|kv| u64::from_be_bytes(kv.unwrap().1.as_ref().try_into().unwrap()))
                .collect()
        };
        assert_eq!(numbers(b"a/"), (1..=100).collect::<Vec<_>>());
        // each record's index entry is numbered in its own range and holds the record's number
        let index: Vec<(u64, Vec<u8>)> = tree
            .scan_prefix(b"i/a/")
            .map(|kv| {
                let (k, v) = kv.unwrap();
                (u64::from_be_bytes(k[4..].try_into().unwrap()), v.to_vec())
            })
            .collect();
        assert_eq!(index.len(), 100);
        assert!(index.iter().enumerate().all(|(i, (k, v))| *k == i as u64 + 1 && v[8] == 7));
        assert_eq!(numbers(b"b/"), (1..=100).collect::<Vec<_>>());
        let restarted = Committer::default();
        restarted
            .run(&tree, |tx| {
                tx.insert_sequenced(record(b"a/"));
                Ok(())
            })
            .unwrap();
        assert_eq!(numbers(b"a/").last(), Some(&101), "a new committer goes on where the stored numbers end");
    }

    #[test]
    fn an_aborted_job_writes_nothing_and_others_commit() {
        let dir = tempfile::tempdir().unwrap();
        let tree = records(&dir);
        let committer = Committer::default();
        let r: StoreResult<()> = committer.run(&tree, |tx| {
            tx.insert(b"a", &[1])?;
            Err(ConflictableTransactionError::Abort(StoreError::Conflict("no".into())))
        });
        assert!(r.is_err());
        committer.run(&tree, |tx| tx.insert(b"b", &[2])).unwrap();
        assert_eq!(tree.get(b"a").unwrap(), None);
        assert_eq!(tree.get(b"b").unwrap().as_deref(), Some(&[2u8][..]));
    }
}
