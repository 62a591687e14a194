//! The activity history: every change with its time, actor and detail, written in the same transaction as
//! the change itself and read newest first.

use crate::store::tx::Tx;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codec::{decode, encode};
use super::keys::{AccountId, key, kind, prefix};
use super::resources::{GROUPS, USERS};
use super::sync::SyncConfig;
use super::tx::Sequenced;
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

/// Every activity type, for `?type=` to be checked against.
pub const ACTIVITY_TYPES: [&str; 41] = [
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
    let mut entry = Activity {
        seq: 0,
        time: timestamp(now),
        actor: actor.0.clone(),
        kind: kind_name.to_string(),
        target: target.map(str::to_string),
        target_name,
        detail,
    };
    // Numbered when the transaction commits: per account, one by one, going on after a restart.
    tx.insert_sequenced(Sequenced {
        prefix: prefix(kind::ACTIVITY, acct),
        value: Box::new(move |seq| {
            entry.seq = seq;
            encode(&entry)
        }),
    });
    Ok(())
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

impl Activity {
    fn by_actor(&self, actor: &str) -> bool {
        self.actor == actor || self.actor.split_once(':').is_some_and(|(_, name)| name == actor)
    }

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
            if q.target.as_deref().is_some_and(|t| entry.target.as_deref() != Some(t)) {
                continue;
            }
            if q.actor.as_deref().is_some_and(|a| !entry.by_actor(a)) {
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
