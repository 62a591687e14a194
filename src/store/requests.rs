//! The provisioning log: one entry per SCIM request of an account (time, token, method, path, status,
//! latency, the error's scimType and detail, the resource and user affected, a redacted body and the
//! activity entries the request caused). Entries are handed to [`Store::record_request`], which only
//! queues them: a writer thread of the store commits them in batches, off the requests' critical path.
//! When the queue is full an entry is not recorded, but never silently: the writer counts such entries
//! per account and records how many were missed as an entry of its own.
//!
//! Keys: `J acct millis n` → the entry (`n` from sled's id generator, so keys sort by time);
//! `n acct 'a' millis n` → status: every entry, in time order; `n acct 'u' term 0xFF millis n` → status:
//! the entries about a user, under its id and under its userName's comparison form. A query scans one of
//! these ranges from `since` on, newest first, and counts while it pages, never decoding an entry it
//! does not show.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codec::{decode, encode};
use super::keys::{AccountId, SEP, fold, key, kind};
use super::{Inner, Store, StoreResult};
use crate::clock::timestamp;

/// Entries waiting for the writer; beyond this, entries are counted as missed instead of queued.
const QUEUE: usize = 10_000;
/// Entries committed together.
const BATCH: usize = 500;

/// One SCIM request as the log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestEntry {
    /// Set when read back (the entry's key), empty when recording.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub time: String,
    /// The name of the SCIM token the request was made with.
    pub token: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub latency_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The request body, redacted (see [`crate::scim::redact`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// The activity entries the request's writes recorded.
    #[serde(default)]
    pub activity: Vec<CausedActivity>,
}

/// An activity entry a request caused: its number (`GET /activity` shows it) and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausedActivity {
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Which statuses a query wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Exact(u16),
    /// `4` for every 4xx.
    Class(u16),
}

impl StatusMatch {
    /// `409` (that status) or `4xx` (every status of the class), as `?status=` takes it.
    pub fn parse(text: &str) -> Result<StatusMatch, String> {
        let t = text.trim();
        let bad = || format!("'{text}' is not a status: give one such as 409, or a class such as 4xx");
        if let Some(class) = t.strip_suffix("xx").or_else(|| t.strip_suffix("XX")) {
            return match class.parse::<u16>() {
                Ok(c @ 1..=5) if class.len() == 1 => Ok(StatusMatch::Class(c)),
                _ => Err(bad()),
            };
        }
        match t.parse::<u16>() {
            Ok(s @ 100..=599) if t.len() == 3 => Ok(StatusMatch::Exact(s)),
            _ => Err(bad()),
        }
    }

    fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Exact(s) => s == status,
            StatusMatch::Class(c) => status / 100 == c,
        }
    }
}

/// A time as `?since=` takes it: an RFC 3339 timestamp or a date (its midnight, UTC).
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(t) {
        return Ok(time.to_utc());
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .ok_or_else(|| format!("'{text}' is not a time: give one such as 2026-01-02T03:04:05Z or 2026-01-02"))
}

/// A page request: newest first.
#[derive(Debug, Clone, Default)]
pub struct RequestQuery {
    pub status: Option<StatusMatch>,
    /// A user's id or userName.
    pub user: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Matching entries passed over before the page.
    pub skip: usize,
    pub limit: usize,
}

impl RequestQuery {
    /// The query the admin API's and the console's filters ask for (as text); a bad filter is the name of
    /// its parameter and what is wrong.
    pub fn from_filters(
        status: Option<&str>,
        user: Option<&str>,
        since: Option<&str>,
        skip: usize,
        limit: usize,
    ) -> Result<RequestQuery, (&'static str, String)> {
        fn given(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        Ok(RequestQuery {
            status: given(status).map(StatusMatch::parse).transpose().map_err(|m| ("status", m))?,
            user: given(user).map(str::to_string),
            since: given(since).map(parse_since).transpose().map_err(|m| ("since", m))?,
            skip,
            limit,
        })
    }
}

/// How many entries match, and the page.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPage {
    pub total: usize,
    pub entries: Vec<RequestEntry>,
}

const ALL: u8 = b'a';
const ABOUT: u8 = b'u';

fn index_prefix(acct: AccountId, index: u8, term: Option<&str>) -> Vec<u8> {
    match term {
        Some(t) => key(kind::REQUEST_INDEX, acct, &[&[index], t.as_bytes(), &[SEP]]),
        None => key(kind::REQUEST_INDEX, acct, &[&[index]]),
    }
}

/// The terms a user is found by: its id and its userName's comparison form.
fn terms(entry: &RequestEntry) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if entry.resource_type.as_deref() == Some("User")
        && let Some(id) = &entry.resource_id
    {
        out.push(id.clone());
    }
    if let Some(name) = &entry.user_name {
        let folded = fold(name);
        if !out.contains(&folded) {
            out.push(folded);
        }
    }
    out
}

/// `millis n` of an entry key, which ends every index key too.
fn position(key: &[u8]) -> Option<[u8; 16]> {
    key.len().checked_sub(16).and_then(|start| key.get(start..)).and_then(|b| b.try_into().ok())
}

fn millis_of(position: &[u8; 16]) -> i64 {
    i64::from_be_bytes(position[..8].try_into().unwrap_or_default())
}

fn status_of(value: &[u8]) -> u16 {
    value.get(..2).and_then(|b| b.try_into().ok()).map_or(0, u16::from_be_bytes)
}

fn entry_key(acct: AccountId, position: &[u8; 16]) -> Vec<u8> {
    key(kind::REQUEST, acct, &[position])
}

/// The id an entry is shown with: its key's time and number.
fn shown_id(position: &[u8; 16]) -> String {
    let n = u64::from_be_bytes(position[8..].try_into().unwrap_or_default());
    format!("{}-{n}", millis_of(position))
}

/// The queue to the writer thread and what it could not take.
#[derive(Default)]
pub(crate) struct Recorder {
    queue: Mutex<Option<SyncSender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Entries not queued (the queue was full), per account, until the writer records that.
    missed: Mutex<HashMap<AccountId, u64>>,
    missed_total: AtomicU64,
}

enum Job {
    Entry(AccountId, Box<RequestEntry>),
    /// Answered once everything queued before it is committed.
    Flush(std::sync::mpsc::Sender<()>),
}

impl Store {
    /// Queues a request's entry for the log (see the module documentation); never waits for a commit.
    pub fn record_request(&self, acct: AccountId, entry: RequestEntry) {
        let recorder = &self.inner.requests;
        let Some(queue) = self.request_queue() else { return };
        match queue.try_send(Job::Entry(acct, Box::new(entry))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let mut missed = recorder.missed.lock().unwrap_or_else(|p| p.into_inner());
                *missed.entry(acct).or_default() += 1;
                if recorder.missed_total.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
                    log::warn!("the provisioning log writer is behind: requests are counted, not recorded");
                }
            }
        }
    }

    /// The writer's queue, starting the writer the first time.
    fn request_queue(&self) -> Option<SyncSender<Job>> {
        let recorder = &self.inner.requests;
        let mut queue = recorder.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = queue.as_ref() {
            return Some(q.clone());
        }
        if self.inner.durability.stopped() {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let weak = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("usersync-requests".into())
            .spawn(move || write_loop(weak, rx))
            .map_err(|e| log::error!("could not start the provisioning log writer: {e}"))
            .ok()?;
        *recorder.writer.lock().unwrap_or_else(|p| p.into_inner()) = Some(spawned);
        *queue = Some(tx.clone());
        Some(tx)
    }

    /// Waits until every entry queued so far is committed and durable.
    pub fn flush_requests(&self) -> StoreResult<()> {
        let queue = self.inner.requests.queue.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(queue) = queue {
            let (tx, rx) = std::sync::mpsc::channel();
            if queue.send(Job::Flush(tx)).is_ok() {
                let _ = rx.recv();
            }
        }
        self.durable_blocking()
    }

    /// Stops the writer after it has committed what is queued (at shutdown).
    pub(crate) fn stop_request_writer(&self) {
        let queue = self.inner.requests.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(queue);
        let writer = self.inner.requests.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer
            && writer.thread().id() != std::thread::current().id()
        {
            let _ = writer.join();
        }
    }

    /// Commits entries (and a note of the entries missed meanwhile) in one transaction.
    fn write_requests(&self, entries: &[(AccountId, Box<RequestEntry>)]) -> StoreResult<()> {
        let missed: Vec<(AccountId, u64)> =
            std::mem::take(&mut *self.inner.requests.missed.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .collect();
        let now = self.now();
        let notes: Vec<(AccountId, RequestEntry)> = missed
            .iter()
            .map(|&(acct, n)| {
                let entry = RequestEntry {
                    id: String::new(),
                    time: timestamp(now),
                    token: String::new(),
                    method: "-".into(),
                    path: "-".into(),
                    status: 0,
                    latency_ms: 0.0,
                    scim_type: None,
                    detail: Some(format!(
                        "{n} requests were not recorded: the provisioning log writer had fallen behind, or \
                         the disk was full"
                    )),
                    resource_type: None,
                    resource_id: None,
                    user_name: None,
                    body: None,
                    activity: Vec::new(),
                };
                (acct, entry)
            })
            .collect();
        let all = entries.iter().map(|(a, e)| (*a, &**e)).chain(notes.iter().map(|(a, e)| (*a, e)));
        let all: Vec<(AccountId, &RequestEntry)> = all.collect();
        let result = self.transact(|tx| {
            for (acct, entry) in &all {
                let millis = DateTime::parse_from_rfc3339(&entry.time).map_or(0, |t| t.timestamp_millis());
                let n = tx.generate_id()?;
                let mut position = [0u8; 16];
                position[..8].copy_from_slice(&millis.to_be_bytes());
                position[8..].copy_from_slice(&n.to_be_bytes());
                let status = entry.status.to_be_bytes();
                tx.insert(entry_key(*acct, &position), encode(entry))?;
                tx.insert([index_prefix(*acct, ALL, None).as_slice(), &position].concat(), &status[..])?;
                for term in terms(entry) {
                    let k = [index_prefix(*acct, ABOUT, Some(&term)).as_slice(), &position].concat();
                    tx.insert(k, &status[..])?;
                }
            }
            Ok(())
        });
        if result.is_err() {
            // put the missed counts back: they are recorded with the next batch
            let mut back = self.inner.requests.missed.lock().unwrap_or_else(|p| p.into_inner());
            for (acct, n) in missed {
                *back.entry(acct).or_default() += n;
            }
        }
        result
    }

    /// A page of the account's log, newest first, with how many entries match.
    pub fn requests(&self, acct: AccountId, q: &RequestQuery) -> StoreResult<RequestPage> {
        let range = match &q.user {
            Some(user) => {
                let term = if uuid::Uuid::parse_str(user).is_ok() { user.clone() } else { fold(user) };
                index_prefix(acct, ABOUT, Some(&term))
            }
            None => index_prefix(acct, ALL, None),
        };
        let from = q.since.map_or(i64::MIN, |t| t.timestamp_millis());
        let mut total = 0usize;
        let mut shown = Vec::with_capacity(q.limit);
        for item in self.tree().scan_prefix(&range).rev() {
            let (k, v) = item?;
            let Some(position) = position(&k) else { continue };
            if millis_of(&position) < from {
                break;
            }
            if q.status.is_some_and(|s| !s.matches(status_of(&v))) {
                continue;
            }
            if total >= q.skip && shown.len() < q.limit {
                shown.push(position);
            }
            total += 1;
        }
        let mut entries = Vec::with_capacity(shown.len());
        for position in shown {
            if let Some(bytes) = self.tree().get(entry_key(acct, &position))? {
                let mut entry: RequestEntry = decode(&bytes)?;
                entry.id = shown_id(&position);
                entries.push(entry);
            }
        }
        Ok(RequestPage { total, entries })
    }

    /// Removes the account's entries older than `cutoff`, then the oldest beyond `max_entries`, in small
    /// transactions; returns how many were removed.
    pub(crate) fn prune_requests(
        &self,
        acct: AccountId,
        cutoff: DateTime<Utc>,
        max_entries: u64,
    ) -> StoreResult<usize> {
        let all = index_prefix(acct, ALL, None);
        let count = self.tree().scan_prefix(&all).count() as u64;
        let mut over = count.saturating_sub(max_entries);
        let cutoff = cutoff.timestamp_millis();
        let mut removed = 0;
        loop {
            let mut victims: Vec<[u8; 16]> = Vec::new();
            for item in self.tree().scan_prefix(&all).keys().take(BATCH) {
                let Some(position) = position(&item?) else { continue };
                if millis_of(&position) >= cutoff && over == 0 {
                    break;
                }
                over = over.saturating_sub(1);
                victims.push(position);
            }
            if victims.is_empty() {
                return Ok(removed);
            }
            let mut keys = Vec::with_capacity(victims.len() * 3);
            for position in &victims {
                let entry_key = entry_key(acct, position);
                if let Some(bytes) = self.tree().get(&entry_key)? {
                    let entry: RequestEntry = decode(&bytes)?;
                    for term in terms(&entry) {
                        keys.push([index_prefix(acct, ABOUT, Some(&term)).as_slice(), position].concat());
                    }
                }
                keys.push(entry_key);
                keys.push([all.as_slice(), position].concat());
            }
            self.transact(|tx| keys.iter().try_for_each(|k| tx.remove(k)))?;
            removed += victims.len();
        }
    }
}

/// The first key of the log at or after `millis` (for tests that look at the raw keys).
#[cfg(test)]
fn at(acct: AccountId, millis: i64) -> Vec<u8> {
    [super::keys::prefix(kind::REQUEST, acct).as_slice(), &millis.to_be_bytes()].concat()
}

/// Commits what arrives, a batch at a time, until the store is gone or the queue is closed.
fn write_loop(store: Weak<Inner>, jobs: Receiver<Job>) {
    loop {
        let first = match jobs.recv_timeout(Duration::from_secs(1)) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                if store.strong_count() == 0 {
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut entries = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Entry(acct, entry) => entries.push((acct, entry)),
                Job::Flush(done) => flushes.push(done),
            }
            if entries.len() < BATCH {
                next = jobs.try_recv().ok();
            }
        }
        let Some(inner) = store.upgrade() else { return };
        let store_now = Store { inner };
        if !entries.is_empty() && !store_now.writable() {
            // The disk is full: the entries are counted, and the count recorded once writes work again,
            // rather than spending the space the store keeps for its readers on attempts bound to fail.
            let mut missed = store_now.inner.requests.missed.lock().unwrap_or_else(|p| p.into_inner());
            for (acct, _) in &entries {
                *missed.entry(*acct).or_default() += 1;
            }
        } else if !entries.is_empty()
            && let Err(e) = store_now.write_requests(&entries)
        {
            log::error!("{} provisioning log entries could not be recorded: {e}", entries.len());
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
fn from_millis(millis: i64) -> Option<DateTime<Utc>> {
    use chrono::TimeZone;
    Utc.timestamp_millis_opt(millis).single()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::temp_store;

    fn entry(time: &str, status: u16, user: Option<&str>) -> RequestEntry {
        RequestEntry {
            id: String::new(),
            time: time.into(),
            token: "okta".into(),
            method: "POST".into(),
            path: "/scim/v2/Users".into(),
            status,
            latency_ms: 1.5,
            scim_type: (status == 409).then(|| "uniqueness".into()),
            detail: None,
            resource_type: Some("User".into()),
            resource_id: None,
            user_name: user.map(str::to_string),
            body: None,
            activity: Vec::new(),
        }
    }

    #[test]
    fn entries_are_found_by_status_user_and_time_newest_first_and_pruned() {
        let (store, _dir) = temp_store();
        let acct = store.ensure_account("a").unwrap().0.id;
        for (i, status) in [201u16, 409, 201, 404, 201].into_iter().enumerate() {
            let user = format!("User{}@x.com", i % 2);
            store.record_request(
                acct,
                entry(&format!("2026-01-0{}T00:00:00.000Z", i + 1), status, Some(&user)),
            );
        }
        store.flush_requests().unwrap();
        let page = |q: RequestQuery| store.requests(acct, &RequestQuery { limit: 10, ..q }).unwrap();
        let all = page(RequestQuery::default());
        assert_eq!(all.total, 5);
        assert_eq!(all.entries[0].time, "2026-01-05T00:00:00.000Z", "newest first");
        let errors = page(RequestQuery { status: Some(StatusMatch::Class(4)), ..Default::default() });
        assert_eq!(errors.entries.iter().map(|e| e.status).collect::<Vec<_>>(), [404, 409]);
        let user = page(RequestQuery { user: Some("user1@X.com".into()), ..Default::default() });
        assert_eq!(user.total, 2, "by userName in any case");
        let since = page(RequestQuery { since: from_millis(1_767_398_400_000), ..Default::default() });
        assert_eq!(since.total, 3, "from 2026-01-03 on");
        let second = store.requests(acct, &RequestQuery { skip: 1, limit: 2, ..Default::default() }).unwrap();
        assert_eq!((second.total, second.entries.len()), (5, 2));
        assert_eq!(second.entries[0].time, "2026-01-04T00:00:00.000Z");

        let cutoff = DateTime::parse_from_rfc3339("2026-01-03T00:00:00Z").unwrap().to_utc();
        assert_eq!(store.prune_requests(acct, cutoff, 100).unwrap(), 2);
        assert_eq!(store.prune_requests(acct, cutoff, 2).unwrap(), 1, "then the cap");
        assert_eq!(page(RequestQuery::default()).total, 2);
        assert_eq!(page(RequestQuery { user: Some("user0@x.com".into()), ..Default::default() }).total, 1);
        assert!(store.tree().range(at(acct, 0)..at(acct, 1_767_398_400_000)).next().is_none());
    }

    #[test]
    fn statuses_and_times_are_read_strictly() {
        assert_eq!(StatusMatch::parse("409"), Ok(StatusMatch::Exact(409)));
        assert_eq!(StatusMatch::parse("4xx"), Ok(StatusMatch::Class(4)));
        for bad in ["40", "4x", "6xx", "abc", "1000", "099"] {
            assert!(StatusMatch::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_since("2026-01-03").unwrap().timestamp_millis(), 1_767_398_400_000);
        assert!(parse_since("2026-01-03T00:00:00+01:00").is_ok());
        assert!(parse_since("yesterday").is_err());
    }
}
