//! The activity history: every change with its time, actor and detail, written in the same transaction as
//! the change itself and read newest first.

use crate::store::tx::Tx;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codec::{decode, encode};
use super::keys::{AccountId, key, kind, prefix};
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
    pub detail: Value,
}

/// A page request: newest first, optionally of one type or about one user, strictly older than `before`.
#[derive(Debug, Clone, Default)]
pub struct ActivityQuery {
    pub kind: Option<String>,
    pub user: Option<String>,
    pub limit: usize,
    pub before: Option<u64>,
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
    let seq = tx.generate_id()?;
    let entry = Activity {
        seq,
        time: timestamp(now),
        actor: actor.0.clone(),
        kind: kind_name.to_string(),
        target: target.map(str::to_string),
        detail,
    };
    tx.insert(key(kind::ACTIVITY, acct, &[&seq.to_be_bytes()]), encode(&entry))?;
    Ok(())
}

impl Activity {
    fn concerns_user(&self, user: &str) -> bool {
        self.target.as_deref() == Some(user)
            || self.detail.get("users").and_then(Value::as_array).is_some_and(|u| u.iter().any(|v| v == user))
            || ["added", "removed"].iter().any(|k| {
                self.detail.get(k).and_then(Value::as_array).is_some_and(|u| u.iter().any(|v| v == user))
            })
    }
}

impl Store {
    /// A page of the account's history, newest first, and the cursor of the next page.
    pub fn activity(&self, acct: AccountId, q: &ActivityQuery) -> StoreResult<(Vec<Activity>, Option<u64>)> {
        let start = prefix(kind::ACTIVITY, acct);
        let end = match q.before {
            Some(seq) => key(kind::ACTIVITY, acct, &[&seq.to_be_bytes()]),
            None => prefix(kind::ACTIVITY, AccountId(acct.0 + 1)),
        };
        let limit = q.limit.max(1);
        let mut page = Vec::with_capacity(limit);
        for item in self.tree().range(start..end).rev() {
            let (_, bytes) = item?;
            let entry: Activity = decode(&bytes)?;
            if q.kind.as_deref().is_some_and(|k| k != entry.kind) {
                continue;
            }
            if q.user.as_deref().is_some_and(|u| !entry.concerns_user(u)) {
                continue;
            }
            if page.len() == limit {
                let next = page.last().map(|e: &Activity| e.seq);
                return Ok((page, next));
            }
            page.push(entry);
        }
        Ok((page, None))
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
