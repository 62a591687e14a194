//! The activity history: every change with its time, actor and detail, written in the same transaction as
//! the change itself and read newest first, in pages whose total is counted from indexes (never by decoding
//! the entries): a numbered index of all entries and one per type (the k-th entry is one key away, the count
//! is the last number), and per id the entries that concern it (as target, or among the users it lists).

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use crate::store::tx::Tx;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codec::{decode, encode};
use super::keys::{AccountId, SEP, global, key, kind, prefix};
use super::requests::CausedActivity;
use super::resources::{GROUPS, USERS};
use super::sync::SyncConfig;
use super::tx::{IndexEntry, Sequenced};
use super::{Actor, Store, StoreResult, TxResult};
use crate::clock::timestamp;

/// One history entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub seq: u64,
    pub time: String,
    pub actor: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The id of the user, group, rule, product or token the entry is about.
    pub target: Option<String>,
    /// What an admin knows the target by (userName, displayName, `rule 2`, product name), as it was then.
    #[serde(default, rename = "targetName", skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
    pub detail: Value,
}

/// The marker of the history's indexes: absent in stores written before them.
const ACTIVITY_INDEX_LAYOUT: &[u8] = b"activity-index";
/// Index keys written per transaction while building them.
const MIGRATION_BATCH: usize = 5000;

/// Every activity type, for `?type=` to be checked against.
pub const ACTIVITY_TYPES: [&str; 49] = [
    "user.created",
    "user.updated",
    "user.deactivated",
    "user.deleted",
    "group.created",
    "group.updated",
    "group.deleted",
    "group.members.changed",
    "rule.created",
    "rule.updated",
    "rule.deleted",
    "rules.reordered",
    "sync.enabled",
    "sync.disabled",
    "sync.failed",
    "entitlement.granted",
    "entitlement.changed",
    "entitlement.revoked",
    "failures.retried",
    "welcome-email.failed",
    "mail-settings.updated",
    "product.updated",
    "product.deleted",
    "custom-attributes.updated",
    "user-group.updated",
    "user-group.deleted",
    "user-group.reset",
    "settings-template.updated",
    "settings-template.deleted",
    "settings-template.reset",
    "email-template.updated",
    "email-template.deleted",
    "email-template.reset",
    "token.created",
    "token.revoked",
    "settings.updated",
    "sync.held",
    "sync.released",
    "sync.reverted",
    "webhook.updated",
    "webhook.deleted",
    "webhook.resumed",
    "webhook.paused",
    "account.suspended",
    "account.resumed",
    "domain.claimed",
    "domain.verified",
    "domain.verified-elsewhere",
    "domain.removed",
];

/// A page request: newest first, optionally of one type or about one user, strictly older than `before`.
#[derive(Debug, Clone, Default)]
pub struct ActivityQuery {
    pub kind: Option<String>,
    pub user: Option<String>,
    /// Only entries about this id (their target).
    pub target: Option<String>,
    /// Only entries by this actor: as recorded (`admin:ci`, `usersync`) or a token's name alone (`ci`).
    pub actor: Option<String>,
    pub limit: usize,
    pub before: Option<u64>,
    /// Matching entries passed over before the page (`startIndex - 1`).
    pub skip: usize,
}

/// A page of the history: how many entries match, the page, and the cursor of the following page.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityPage {
    pub total: usize,
    pub entries: Vec<Activity>,
    /// The `before` of the following page (`None` at the end).
    pub next: Option<u64>,
}

/// `h acct 'a' n` → seq: every entry, numbered.
const ALL: u8 = b'a';
/// `h acct 't' type 0xFF n` → seq: the entries of one type, numbered.
const BY_TYPE: u8 = b't';
/// `h acct 'c' id 0xFF seq` → seq, 1 if the id is the entry's target (else 0), type: the entries that
/// concern an id.
const CONCERNING: u8 = b'c';
/// `h acct 'w' actor 0xFF seq` → seq, 0, type: the entries of one actor, by the name recorded and, for a
/// token, by its name alone (see [`actor_names`]).
const BY_ACTOR: u8 = b'w';

fn index_prefix(acct: AccountId, index: u8, part: Option<&str>) -> Vec<u8> {
    match part {
        Some(p) => key(kind::ACTIVITY_INDEX, acct, &[&[index], p.as_bytes(), &[SEP]]),
        None => key(kind::ACTIVITY_INDEX, acct, &[&[index]]),
    }
}

/// The ids an entry concerns: its target, and the users (or members) its detail lists.
fn concerned(target: Option<&str>, detail: &Value) -> Vec<String> {
    let mut ids: Vec<String> = target.map(str::to_string).into_iter().collect();
    for field in ["users", "added", "removed"] {
        for v in detail.get(field).and_then(Value::as_array).into_iter().flatten() {
            let id = v.as_str().or_else(|| v.get("value").and_then(Value::as_str));
            if let Some(id) = id
                && !ids.iter().any(|i| i == id)
            {
                ids.push(id.to_string());
            }
        }
    }
    ids
}

/// The names an actor is found by: as recorded (`admin:ci`) and, for a token, its name alone (`ci`).
fn actor_names(actor: &str) -> Vec<&str> {
    let mut names = vec![actor];
    names.extend(actor.split_once(':').map(|(_, name)| name));
    names
}

/// The index entries of an entry (see [`ALL`], [`BY_TYPE`], [`CONCERNING`], [`BY_ACTOR`]).
fn index_entries(
    acct: AccountId,
    kind_name: &str,
    actor: &str,
    target: Option<&str>,
    detail: &Value,
) -> Vec<IndexEntry> {
    let mut entries = vec![
        IndexEntry { prefix: index_prefix(acct, ALL, None), payload: Vec::new(), numbered: true },
        IndexEntry {
            prefix: index_prefix(acct, BY_TYPE, Some(kind_name)),
            payload: Vec::new(),
            numbered: true,
        },
    ];
    for id in concerned(target, detail) {
        let is_target = u8::from(target == Some(id.as_str()));
        let payload = [&[is_target][..], kind_name.as_bytes()].concat();
        entries.push(IndexEntry {
            prefix: index_prefix(acct, CONCERNING, Some(&id)),
            payload,
            numbered: false,
        });
    }
    for name in actor_names(actor) {
        entries.push(IndexEntry {
            prefix: index_prefix(acct, BY_ACTOR, Some(name)),
            payload: [&[0][..], kind_name.as_bytes()].concat(),
            numbered: false,
        });
    }
    entries
}

/// Appends an entry inside the caller's transaction.
pub(crate) fn record(
    tx: &Tx<'_>,
    acct: AccountId,
    now: chrono::DateTime<chrono::Utc>,
    actor: &Actor,
    kind_name: &str,
    target: Option<&str>,
    detail: Value,
) -> TxResult<()> {
    debug_assert!(ACTIVITY_TYPES.contains(&kind_name), "activity type {kind_name} is not in ACTIVITY_TYPES");
    let target_name = match target {
        Some(id) => name_of(tx, acct, kind_name, id, &detail)?,
        None => None,
    };
    let index = index_entries(acct, kind_name, &actor.0, target, &detail);
    let mut entry = Activity {
        seq: 0,
        time: timestamp(now),
        actor: actor.0.clone(),
        kind: kind_name.to_string(),
        target: target.map(str::to_string),
        target_name,
        detail,
    };
    let caused = CAUSED.with(|c| c.borrow().clone());
    // Numbered when the transaction commits: per account, one by one, going on after a restart.
    tx.insert_sequenced(Sequenced {
        prefix: prefix(kind::ACTIVITY, acct),
        value: Box::new(move |seq| {
            entry.seq = seq;
            if let Some(caused) = caused {
                let mut list = caused.lock().unwrap_or_else(|p| p.into_inner());
                list.push(CausedActivity { seq, kind: entry.kind.clone() });
            }
            encode(&entry)
        }),
        index,
    });
    Ok(())
}

/// The activity entries committed by one piece of work, filled in at commit (see [`collecting`]).
pub type Caused = Arc<Mutex<Vec<CausedActivity>>>;

thread_local! {
    static CAUSED: RefCell<Option<Caused>> = const { RefCell::new(None) };
}

/// Runs `work` on this thread with every activity entry it records noted in `into` once committed: how a
/// SCIM request's log entry learns which activity entries it caused.
pub fn collecting<T>(into: Caused, work: impl FnOnce() -> T) -> T {
    struct Restore(Option<Caused>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CAUSED.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(CAUSED.with(|c| c.replace(Some(into))));
    work()
}

/// The name of an entry's target as the transaction sees it (a deleted target by what its entry says).
fn name_of(
    tx: &Tx<'_>,
    acct: AccountId,
    kind_name: &str,
    id: &str,
    detail: &Value,
) -> TxResult<Option<String>> {
    let text = |v: &Value, field: &str| v.get(field).and_then(Value::as_str).map(str::to_string);
    let from_record = |record: Vec<u8>, field: &str| -> TxResult<Option<String>> {
        let doc: Option<Value> = tx.get(record)?.and_then(|b| serde_json::from_slice(&b).ok());
        Ok(doc.and_then(|d| text(&d, field)))
    };
    let noun = kind_name.split('.').next().unwrap_or_default();
    let found = match noun {
        "user" | "entitlement" => from_record(USERS.record_key(acct, id), "userName")?,
        "group" => from_record(GROUPS.record_key(acct, id), "displayName")?,
        "product" => from_record(key(kind::PRODUCT, acct, &[id.as_bytes()]), "name")?,
        "rule" => {
            let config: Option<SyncConfig> =
                tx.get(prefix(kind::ENGINE, acct))?.and_then(|b| serde_json::from_slice(&b).ok());
            config.and_then(|c| c.reference(id)).map(|r| format!("rule {}", r.number))
        }
        _ => None,
    };
    Ok(found
        .or_else(|| text(detail, "userName"))
        .or_else(|| text(detail, "displayName"))
        .or_else(|| text(detail, "name"))
        .or_else(|| detail.get("number").and_then(Value::as_u64).map(|n| format!("rule {n}"))))
}

/// The entries a query matches, oldest first: a range of a numbered index (read by position), or a list.
enum Matches {
    /// Positions `base + 1 ..= base + total` (the first `base` were pruned).
    Numbered {
        prefix: Vec<u8>,
        base: u64,
        total: u64,
    },
    Listed(Vec<u64>),
}

impl Store {
    /// A page of the account's history, newest first, and the cursor of the next page.
    pub fn activity(&self, acct: AccountId, q: &ActivityQuery) -> StoreResult<(Vec<Activity>, Option<u64>)> {
        let page = self.activity_page(acct, q)?;
        Ok((page.entries, page.next))
    }

    /// A page of `q.limit` entries of the account's history (newest first, `q.skip` matching entries passed
    /// over; a limit of 0 counts alone) with how many
    /// entries match in all; counted from the indexes, so the cost is the page's entries plus, for a user
    /// or target, one key per entry about them.
    pub fn activity_page(&self, acct: AccountId, q: &ActivityQuery) -> StoreResult<ActivityPage> {
        let limit = q.limit;
        let matches = self.matching(acct, q)?;
        let (base, total) = match &matches {
            Matches::Numbered { base, total, .. } => (*base, *total as usize),
            Matches::Listed(seqs) => (0, seqs.len()),
        };
        let mut entries = Vec::with_capacity(limit.min(total));
        // Positions newest first: total, total - 1, ... (1-based)
        let first = total.saturating_sub(q.skip);
        let last = first.saturating_sub(limit);
        for position in (last + 1..=first).rev() {
            let seq = match &matches {
                Matches::Numbered { prefix, .. } => self.indexed_seq(prefix, base + position as u64)?,
                Matches::Listed(seqs) => seqs.get(position - 1).copied(),
            };
            let Some(seq) = seq else { continue };
            if let Some(bytes) = self.tree().get(key(kind::ACTIVITY, acct, &[&seq.to_be_bytes()]))? {
                entries.push(decode::<Activity>(&bytes)?);
            }
        }
        let next = if last > 0 { entries.last().map(|e| e.seq) } else { None };
        Ok(ActivityPage { total, entries, next })
    }

    fn matching(&self, acct: AccountId, q: &ActivityQuery) -> StoreResult<Matches> {
        // The listed indexes a query names, its target first (whose entries must have it as their target).
        let lists: Vec<(u8, &str)> = [(CONCERNING, &q.target), (CONCERNING, &q.user), (BY_ACTOR, &q.actor)]
            .into_iter()
            .filter_map(|(index, id)| id.as_deref().map(|id| (index, id)))
            .collect();
        let Some(&(index, about)) = lists.first() else {
            let prefix = match &q.kind {
                Some(k) => index_prefix(acct, BY_TYPE, Some(k)),
                None => index_prefix(acct, ALL, None),
            };
            let (base, total) = self.older_than(&prefix, q.before)?;
            return Ok(Matches::Numbered { prefix, base, total });
        };
        // The other lists narrow the first one down.
        let also: Vec<std::collections::HashSet<u64>> = lists[1..]
            .iter()
            .map(|&(index, id)| Ok(self.listed(acct, index, id)?.into_iter().map(|(s, _, _)| s).collect()))
            .collect::<StoreResult<_>>()?;
        let seqs = self
            .listed(acct, index, about)?
            .into_iter()
            .filter(|(seq, is_target, kind_name)| {
                (q.target.is_none() || *is_target)
                    && q.kind.as_deref().is_none_or(|k| k == kind_name)
                    && q.before.is_none_or(|b| *seq < b)
                    && also.iter().all(|a| a.contains(seq))
            })
            .map(|(seq, _, _)| seq)
            .collect();
        Ok(Matches::Listed(seqs))
    }

    /// The entries a listed index holds for `id`, oldest first: (seq, is `id` their target, type).
    fn listed(&self, acct: AccountId, index: u8, id: &str) -> StoreResult<Vec<(u64, bool, String)>> {
        let mut out = Vec::new();
        for item in self.tree().scan_prefix(index_prefix(acct, index, Some(id))) {
            let (_, v) = item?;
            let (Some(seq), Some(&flag)) = (v.get(..8).and_then(|b| b.try_into().ok()), v.get(8)) else {
                continue;
            };
            let kind_name = String::from_utf8_lossy(v.get(9..).unwrap_or_default()).into_owned();
            out.push((u64::from_be_bytes(seq), flag == 1, kind_name));
        }
        Ok(out)
    }

    /// The activity number the `position`-th entry of a numbered index holds.
    fn indexed_seq(&self, prefix: &[u8], position: u64) -> StoreResult<Option<u64>> {
        let key = [prefix, &position.to_be_bytes()].concat();
        Ok(self
            .tree()
            .get(key)?
            .and_then(|v| v.get(..8).and_then(|b| b.try_into().ok()))
            .map(u64::from_be_bytes))
    }

    /// The positions a numbered index holds before the first one left (pruned ones), and how many entries
    /// of it are older than `before` (all of them without it): counted from its first and last numbers,
    /// or found by bisection, since positions and activity numbers rise together.
    fn older_than(&self, prefix: &[u8], before: Option<u64>) -> StoreResult<(u64, u64)> {
        let number =
            |k: &[u8]| k.get(prefix.len()..).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes);
        let Some((last, _)) = self.tree().scan_prefix(prefix).next_back().transpose()? else {
            return Ok((0, 0));
        };
        let last = number(&last);
        let first = self.tree().scan_prefix(prefix).next().transpose()?.map_or(last, |(k, _)| number(&k));
        let base = first.saturating_sub(1).min(last);
        let Some(before) = before else { return Ok((base, last - base)) };
        // the largest position whose entry is older than `before`
        let (mut lo, mut hi) = (base, last);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            match self.indexed_seq(prefix, mid)? {
                Some(seq) if seq < before => lo = mid,
                _ => hi = mid - 1,
            }
        }
        Ok((base, lo - base))
    }

    /// Removes the account's entries recorded before `cutoff`, oldest first, `batch` per transaction, with
    /// their index entries; the newest entry always stays, so numbering never starts over. Returns how many
    /// were removed. Writers only ever add at the end of the indexes, so nothing here conflicts with them.
    pub(crate) fn prune_activity(
        &self,
        acct: AccountId,
        cutoff: chrono::DateTime<chrono::Utc>,
        batch: usize,
    ) -> StoreResult<usize> {
        let cutoff = timestamp(cutoff);
        let all = index_prefix(acct, ALL, None);
        let entry_prefix = prefix(kind::ACTIVITY, acct);
        let seq_of = |v: &[u8]| v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
        let Some((newest, _)) = self.tree().scan_prefix(&entry_prefix).next_back().transpose()? else {
            return Ok(0);
        };
        let newest = newest.get(5..).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes);
        let mut removed = 0;
        loop {
            let mut victims: Vec<(sled::IVec, u64, Option<Activity>)> = Vec::new();
            for item in self.tree().scan_prefix(&all).take(batch) {
                let (k, v) = item?;
                let Some(seq) = seq_of(&v) else { continue };
                if seq >= newest {
                    break;
                }
                let entry = super::codec::get::<Activity>(
                    self.tree(),
                    &key(kind::ACTIVITY, acct, &[&seq.to_be_bytes()]),
                )?;
                if entry.as_ref().is_some_and(|e| e.time >= cutoff) {
                    break;
                }
                victims.push((k, seq, entry));
            }
            if victims.is_empty() {
                return Ok(removed);
            }
            let mut keys: Vec<Vec<u8>> = Vec::new();
            let mut of_type: std::collections::HashMap<String, std::collections::HashSet<u64>> =
                Default::default();
            for (index_key, seq, entry) in &victims {
                keys.push(index_key.to_vec());
                keys.push(key(kind::ACTIVITY, acct, &[&seq.to_be_bytes()]));
                let Some(e) = entry else { continue };
                of_type.entry(e.kind.clone()).or_default().insert(*seq);
                for index in index_entries(acct, &e.kind, &e.actor, e.target.as_deref(), &e.detail) {
                    if !index.numbered {
                        keys.push([index.prefix.as_slice(), &seq.to_be_bytes()].concat());
                    }
                }
            }
            // a type's numbered index holds its oldest entries first: the victims are where it starts
            for (kind_name, seqs) in &of_type {
                let newest_victim = seqs.iter().max().copied().unwrap_or(0);
                for item in self.tree().scan_prefix(index_prefix(acct, BY_TYPE, Some(kind_name))) {
                    let (k, v) = item?;
                    match seq_of(&v) {
                        Some(seq) if seq > newest_victim => break,
                        Some(seq) if seqs.contains(&seq) => keys.push(k.to_vec()),
                        _ => {}
                    }
                }
            }
            self.transact(|tx| keys.iter().try_for_each(|k| tx.remove(k)))?;
            removed += victims.len();
        }
    }

    /// Builds the history's indexes of a store written before they existed, once.
    pub(crate) fn migrate_activity_index(&self) -> StoreResult<()> {
        let marker = global(kind::LAYOUT, ACTIVITY_INDEX_LAYOUT);
        if self.tree().get(&marker)?.is_some() {
            return Ok(());
        }
        // An interrupted build is started over.
        let stale: Vec<sled::IVec> =
            self.tree().scan_prefix([kind::ACTIVITY_INDEX]).keys().collect::<Result<_, _>>()?;
        for chunk in stale.chunks(MIGRATION_BATCH) {
            self.transact(|tx| chunk.iter().try_for_each(|k| tx.remove(k)))?;
        }
        let mut numbers: std::collections::HashMap<Vec<u8>, u64> = Default::default();
        let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut indexed = 0usize;
        for item in self.tree().scan_prefix([kind::ACTIVITY]) {
            let (k, v) = item?;
            let Some(acct) = super::keys::account_of(&k) else { continue };
            let entry: Activity = decode(&v)?;
            for e in index_entries(acct, &entry.kind, &entry.actor, entry.target.as_deref(), &entry.detail) {
                let at = if e.numbered {
                    let n = numbers.entry(e.prefix.clone()).or_default();
                    *n += 1;
                    *n
                } else {
                    entry.seq
                };
                let value = [entry.seq.to_be_bytes().as_slice(), &e.payload].concat();
                batch.push(([e.prefix.as_slice(), &at.to_be_bytes()].concat(), value));
            }
            indexed += 1;
            if batch.len() >= MIGRATION_BATCH {
                self.transact(|tx| batch.iter().try_for_each(|(k, v)| tx.insert(k, v.clone())))?;
                batch.clear();
            }
        }
        self.transact(|tx| {
            batch.iter().try_for_each(|(k, v)| tx.insert(k, v.clone()))?;
            tx.insert(marker.as_slice(), &b"1"[..])
        })?;
        if indexed > 0 {
            log::info!("indexed {indexed} activity entries");
        }
        Ok(())
    }

    /// Records an entry on its own (for actions that write nothing else).
    pub fn record_activity(
        &self,
        acct: AccountId,
        actor: &Actor,
        kind_name: &str,
        target: Option<&str>,
        detail: Value,
    ) -> StoreResult<()> {
        let now = self.now();
        self.transact(|tx| record(tx, acct, now, actor, kind_name, target, detail.clone()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::testing::temp_store;

    /// Totals and page seqs of a set of queries; `b` is the account's last number before the test's entries.
    fn totals(store: &Store, acct: AccountId, b: u64) -> Vec<(usize, Vec<u64>)> {
        let queries = [
            ActivityQuery::default(),
            ActivityQuery { kind: Some("user.updated".into()), ..Default::default() },
            ActivityQuery { user: Some("u1".into()), ..Default::default() },
            ActivityQuery { target: Some("u1".into()), ..Default::default() },
            ActivityQuery { user: Some("u1".into()), target: Some("g1".into()), ..Default::default() },
            ActivityQuery { kind: Some("user.updated".into()), before: Some(b + 2), ..Default::default() },
            ActivityQuery { before: Some(b + 3), skip: 1, ..Default::default() },
        ];
        queries
            .into_iter()
            .map(|q| {
                let page = store.activity_page(acct, &ActivityQuery { limit: 2, ..q }).unwrap();
                (page.total, page.entries.iter().map(|e| e.seq).collect())
            })
            .collect()
    }

    #[test]
    fn totals_and_pages_come_from_the_indexes_and_a_store_without_them_builds_them_once() {
        let (store, _dir) = temp_store();
        let acct = store.ensure_account("a").unwrap().0.id;
        let other = store.ensure_account("b").unwrap().0.id;
        let actor = Actor::engine();
        let log = |acct, kind: &str, target: Option<&str>, detail: Value| {
            store.record_activity(acct, &actor, kind, target, detail).unwrap()
        };
        let before_any =
            store.activity_page(acct, &ActivityQuery { limit: 10, ..Default::default() }).unwrap();
        log(acct, "user.updated", Some("u1"), json!({}));
        log(acct, "group.members.changed", Some("g1"), json!({"added": [{"value": "u1"}, {"value": "u2"}]}));
        log(other, "user.updated", Some("u1"), json!({}));
        log(acct, "user.updated", Some("u2"), json!({}));
        log(acct, "failures.retried", None, json!({"users": ["u1"]}));
        log(acct, "group.members.changed", Some("g1"), json!({"removed": [{"value": "u2"}]}));
        let b = before_any.total as u64;
        let got = totals(&store, acct, b);
        let n = |k: u64| b as usize + k as usize;
        assert_eq!(
            got,
            vec![
                (n(5), vec![b + 5, b + 4]),
                (2, vec![b + 3, b + 1]),
                (3, vec![b + 4, b + 2]),
                (1, vec![b + 1]),
                (1, vec![b + 2]),
                (1, vec![b + 1]),
                (n(2), [b + 1, b].into_iter().filter(|s| *s > 0).collect()),
            ]
        );
        let second = store.activity_page(other, &ActivityQuery { limit: 10, ..Default::default() }).unwrap();
        assert!(second.entries.iter().all(|e| e.kind != "group.members.changed"), "accounts apart");

        // a store written before the indexes: they are built when it is opened, with the same answers
        let index: Vec<sled::IVec> =
            store.tree().scan_prefix([kind::ACTIVITY_INDEX]).keys().collect::<Result<_, _>>().unwrap();
        let marker = global(kind::LAYOUT, ACTIVITY_INDEX_LAYOUT);
        store
            .transact(|tx| {
                index.iter().try_for_each(|k| tx.remove(k))?;
                tx.remove(marker.as_slice())
            })
            .unwrap();
        assert_eq!(totals(&store, acct, b)[1].0, 0, "nothing indexed");
        store.migrate_activity_index().unwrap();
        assert_eq!(totals(&store, acct, b), got);
        log(acct, "user.updated", Some("u1"), json!({}));
        assert_eq!(totals(&store, acct, b)[1], (3, vec![b + 6, b + 3]), "numbering goes on after the build");
    }

    #[test]
    fn pruning_removes_old_entries_with_their_indexes_and_pages_count_what_is_left() {
        let (store, _dir) = temp_store();
        let acct = store.ensure_account("a").unwrap().0.id;
        let actor = Actor::engine();
        let log = |kind: &str, target: Option<&str>, detail: Value| {
            store.record_activity(acct, &actor, kind, target, detail).unwrap()
        };
        let b = store.activity_page(acct, &ActivityQuery::default()).unwrap().total as u64;
        log("user.updated", Some("u1"), json!({}));
        log("group.members.changed", Some("g1"), json!({"added": [{"value": "u1"}, {"value": "u2"}]}));
        log("user.updated", Some("u2"), json!({}));
        log("failures.retried", None, json!({"users": ["u1"]}));
        let now = store.now();
        assert_eq!(store.prune_activity(acct, now - chrono::Duration::days(1), 2).unwrap(), 0, "nothing old");
        let pruned = store.prune_activity(acct, now + chrono::Duration::days(1), 2).unwrap();
        assert_eq!(pruned as u64, b + 3, "all but the newest entry");
        let page = |q: ActivityQuery| {
            let p = store.activity_page(acct, &ActivityQuery { limit: 10, ..q }).unwrap();
            (p.total, p.entries.iter().map(|e| e.seq).collect::<Vec<_>>())
        };
        assert_eq!(page(ActivityQuery::default()), (1, vec![b + 4]));
        assert_eq!(
            page(ActivityQuery { kind: Some("user.updated".into()), ..Default::default() }),
            (0, vec![])
        );
        assert_eq!(page(ActivityQuery { user: Some("u1".into()), ..Default::default() }), (1, vec![b + 4]));
        log("user.updated", Some("u1"), json!({}));
        assert_eq!(page(ActivityQuery::default()), (2, vec![b + 5, b + 4]));
        assert_eq!(page(ActivityQuery { before: Some(b + 5), ..Default::default() }), (1, vec![b + 4]));
        assert_eq!(
            page(ActivityQuery { kind: Some("user.updated".into()), ..Default::default() }),
            (1, vec![b + 5])
        );
        // no index entry is left pointing at a removed entry
        for item in store.tree().scan_prefix(prefix(kind::ACTIVITY_INDEX, acct)) {
            let (_, v) = item.unwrap();
            let seq = u64::from_be_bytes(v[..8].try_into().unwrap());
            assert!(seq >= b + 4, "index entry of pruned entry {seq}");
        }
        assert_eq!(store.tree().scan_prefix(prefix(kind::ACTIVITY, acct)).count(), 2);
    }
}
