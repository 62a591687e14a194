//! The mass-revocation brake's state: per account its threshold, and the revocations it holds (who would
//! lose what, because of which cause) until an admin releases them or reverts the rule change behind them.
//! Held users keep what they have; their pending marks are consumed with the hold, so a restart neither
//! applies nor forgets them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::model::{Rule, SyncConfig};
use super::{config_key, queue};
use crate::store::activity::record;
use crate::store::codec::{encode, get, tx_get};
use crate::store::keys::{AccountId, key, kind};
use crate::store::members::cleanup_key;
use crate::store::{Actor, Store, StoreError, StoreResult, abort};

/// When revocations are held: more than `percent` of the account's entitled users and at least
/// `min_users` of them, from one cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrakeSettings {
    pub percent: u32,
    pub min_users: u64,
}

impl Default for BrakeSettings {
    fn default() -> Self {
        BrakeSettings { percent: 10, min_users: 20 }
    }
}

impl BrakeSettings {
    /// Would `revoking` of `entitled` users be held?
    pub fn holds(&self, revoking: u64, entitled: u64) -> bool {
        revoking >= self.min_users && revoking * 100 > entitled * u64::from(self.percent)
    }
}

/// A held revocation: the user keeps what they have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldUser {
    pub user_name: String,
    /// The products the user would lose.
    pub loses: Vec<String>,
}

/// A directory group whose deletion caused revocations: the brake names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedGroup {
    pub id: String,
    pub display_name: String,
}

/// The revocations held for an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// `ruleChange`, `reorder`, `syncSwitchedOn`, `customAttributes`, `groupDeleted` or `directoryWrites`.
    pub cause: String,
    pub since: String,
    /// For a rule change or reorder: the rules as they were before it, which `revert` restores.
    pub rules_before: Option<Vec<Rule>>,
    /// For `groupDeleted`: the groups whose deletion the held revocations come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<DeletedGroup>,
    pub users: BTreeMap<String, HeldUser>,
}

/// Deleted groups kept for the brake to name; a burst of deletions beyond this is named by its first ones.
const DELETED_GROUPS_KEPT: usize = 20;

/// How far back the revocations directory writes caused count together (see [`Store::count_revocations`]).
pub const DIRECTORY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

fn hold_key(acct: AccountId) -> Vec<u8> {
    key(kind::OBJECT, acct, &[b"hold"])
}

fn brake_key(acct: AccountId) -> Vec<u8> {
    key(kind::OBJECT, acct, &[b"brake"])
}

fn cause_key(acct: AccountId) -> Vec<u8> {
    key(kind::OBJECT, acct, &[b"cause"])
}

fn deleted_groups_key(acct: AccountId) -> Vec<u8> {
    key(kind::OBJECT, acct, &[b"deleted-groups"])
}

fn window_key(acct: AccountId) -> Vec<u8> {
    key(kind::OBJECT, acct, &[b"revocation-window"])
}

/// Records, with a group's deletion, that its members are re-evaluated because of it: the brake then
/// names the group as the cause of the revocations that follow, until its memberships are all removed
/// and a pass has settled them.
pub(crate) fn record_group_deleted(
    tx: &crate::store::tx::Tx<'_>,
    acct: AccountId,
    gid: &str,
    display_name: &str,
) -> crate::store::TxResult<()> {
    let mut groups: Vec<DeletedGroup> = tx_get(tx, &deleted_groups_key(acct))?.unwrap_or_default();
    if groups.len() < DELETED_GROUPS_KEPT && !groups.iter().any(|g| g.id == gid) {
        groups.push(DeletedGroup { id: gid.to_string(), display_name: display_name.to_string() });
        tx.insert(deleted_groups_key(acct), encode(&groups))?;
    }
    Ok(())
}

/// Records, with a change that puts scopes of users up for re-evaluation, what the change was
/// (`ruleChange`, `reorder`, `syncSwitchedOn`, `customAttributes`): what the brake names as the cause of
/// the revocations it holds, and whether they can be reverted.
pub(crate) fn record_cause(
    tx: &crate::store::tx::Tx<'_>,
    acct: AccountId,
    cause: &str,
) -> crate::store::TxResult<()> {
    tx.insert(cause_key(acct), encode(&cause))?;
    Ok(())
}

impl Store {
    pub fn brake_settings(&self, acct: AccountId) -> StoreResult<BrakeSettings> {
        Ok(get(self.tree(), &brake_key(acct))?.unwrap_or_default())
    }

    pub fn put_brake_settings(
        &self,
        acct: AccountId,
        settings: &BrakeSettings,
        actor: &Actor,
    ) -> StoreResult<()> {
        let now = self.now();
        self.transact(|tx| {
            let before: BrakeSettings = tx_get(tx, &brake_key(acct))?.unwrap_or_default();
            tx.insert(brake_key(acct), encode(settings))?;
            let detail = json!({"percent": settings.percent, "minUsers": settings.min_users,
                "changes": super::changes(Some(&before), settings)});
            record(tx, acct, now, actor, "settings.updated", None, detail)
        })
    }

    /// What the last change that put scopes up for re-evaluation was (see [`record_cause`]).
    pub fn scope_cause(&self, acct: AccountId) -> StoreResult<Option<String>> {
        get(self.tree(), &cause_key(acct))
    }

    /// The revocations held for the account, if any.
    pub fn hold(&self, acct: AccountId) -> StoreResult<Option<Hold>> {
        get(self.tree(), &hold_key(acct))
    }

    /// The deleted groups whose members are (or are being) re-evaluated, with whether the removal of their
    /// memberships has finished (every member is then marked for re-evaluation).
    pub fn deleted_groups(&self, acct: AccountId) -> StoreResult<Vec<(DeletedGroup, bool)>> {
        let groups: Vec<DeletedGroup> = get(self.tree(), &deleted_groups_key(acct))?.unwrap_or_default();
        groups
            .into_iter()
            .map(|g| {
                let cleaning = self.tree().get(cleanup_key(acct, b'g', &g.id))?.is_some();
                Ok((g, !cleaning))
            })
            .collect()
    }

    /// Forgets deleted groups whose members have all been re-evaluated.
    pub fn forget_deleted_groups(&self, acct: AccountId, ids: &[String]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.transact(|tx| {
            let mut groups: Vec<DeletedGroup> = tx_get(tx, &deleted_groups_key(acct))?.unwrap_or_default();
            groups.retain(|g| !ids.contains(&g.id));
            if groups.is_empty() {
                tx.remove(deleted_groups_key(acct))
            } else {
                tx.insert(deleted_groups_key(acct), encode(&groups))
            }
        })
    }

    /// Counts `revoking` revocations caused by directory writes now, and returns how many came before
    /// them within [`DIRECTORY_WINDOW`]. The window is stored (one small record per account), so a restart
    /// in the middle of an identity provider's burst of deletions does not start it over.
    pub fn count_revocations(&self, acct: AccountId, revoking: u64) -> StoreResult<u64> {
        let now = self.now();
        self.transact(|tx| {
            // (milliseconds since the epoch, revocations)
            let mut window: Vec<(i64, u64)> = tx_get(tx, &window_key(acct))?.unwrap_or_default();
            let since = (now - DIRECTORY_WINDOW).timestamp_millis();
            window.retain(|(t, _)| *t >= since);
            let before = window.iter().map(|(_, n)| n).sum();
            if revoking > 0 {
                window.push((now.timestamp_millis(), revoking));
            }
            if window.is_empty() {
                tx.remove(window_key(acct))?;
            } else {
                tx.insert(window_key(acct), encode(&window))?;
            }
            Ok(before)
        })
    }

    /// How many users hold products now.
    pub fn entitled_count(&self, acct: AccountId) -> StoreResult<u64> {
        let mut n = 0;
        for (_, e) in self.entitlements(acct)? {
            n += u64::from(e.bundle.is_some_and(|b| !b.products.is_empty()));
        }
        Ok(n)
    }

    /// Holds these revocations (user, pending mark answered, what they keep from losing), adding them to the
    /// account's hold or starting one for `cause`. A user marked pending again since is left to its newer
    /// evaluation.
    pub fn hold_revocations(
        &self,
        acct: AccountId,
        cause: &str,
        rules_before: Option<&[Rule]>,
        groups: &[DeletedGroup],
        held: &[(String, Option<u64>, HeldUser)],
    ) -> StoreResult<()> {
        let now = crate::clock::timestamp(self.now());
        self.transact(|tx| {
            let mut hold: Hold = tx_get(tx, &hold_key(acct))?.unwrap_or_else(|| Hold {
                cause: cause.to_string(),
                since: now.clone(),
                rules_before: rules_before.map(<[Rule]>::to_vec),
                groups: Vec::new(),
                users: BTreeMap::new(),
            });
            if hold.cause == cause {
                for g in groups {
                    if !hold.groups.contains(g) {
                        hold.groups.push(g.clone());
                    }
                }
            }
            let mut added = 0;
            for (uid, seq, user) in held {
                if !queue::answer_pending(tx, acct, uid, *seq)? {
                    continue;
                }
                added += usize::from(hold.users.insert(uid.clone(), user.clone()).is_none());
            }
            tx.insert(hold_key(acct), encode(&hold))?;
            if added > 0 {
                let mut detail = json!({"cause": hold.cause, "added": added, "held": hold.users.len()});
                if !hold.groups.is_empty() {
                    detail["groups"] = json!(hold.groups);
                }
                record(tx, acct, self.now(), &Actor::engine(), "sync.held", None, detail)?;
            }
            Ok(())
        })
    }

    /// Takes users out of the hold: their evaluation no longer takes products away, or was applied.
    pub fn unhold(&self, acct: AccountId, uids: &[String]) -> StoreResult<()> {
        self.transact(|tx| {
            let Some(mut hold) = tx_get::<Hold>(tx, &hold_key(acct))? else { return Ok(()) };
            let before = hold.users.len();
            uids.iter().for_each(|u| drop(hold.users.remove(u)));
            if hold.users.is_empty() {
                tx.remove(hold_key(acct))?;
            } else if hold.users.len() != before {
                tx.insert(hold_key(acct), encode(&hold))?;
            }
            Ok(())
        })
    }

    /// Ends the hold (released or reverted), recording who did it.
    pub fn end_hold(&self, acct: AccountId, event: &str, actor: &Actor) -> StoreResult<Option<Hold>> {
        let now = self.now();
        self.transact(|tx| {
            let hold: Option<Hold> = tx_get(tx, &hold_key(acct))?;
            if let Some(hold) = &hold {
                tx.remove(hold_key(acct))?;
                record(
                    tx,
                    acct,
                    now,
                    actor,
                    event,
                    None,
                    json!({"cause": hold.cause, "users": hold.users.len()}),
                )?;
            }
            Ok(hold)
        })
    }

    /// Restores the rules a held rule change replaced and ends the hold, in one transaction; every user is
    /// re-evaluated under the restored rules.
    pub fn revert_held_change(&self, acct: AccountId, actor: &Actor) -> StoreResult<SyncConfig> {
        let now = self.now();
        self.transact(|tx| {
            let Some(hold) = tx_get::<Hold>(tx, &hold_key(acct))? else {
                return abort(StoreError::Conflict("nothing is held".into()));
            };
            let Some(rules) = hold.rules_before.clone() else {
                return abort(StoreError::Conflict(format!(
                    "the held revocations come from {}, not a rule change; release them or change the directory",
                    hold.cause
                )));
            };
            let mut config: SyncConfig = tx_get(tx, &config_key(acct))?.unwrap_or_default();
            config.rules = rules;
            config.version += 1;
            config.previous_rules = None;
            tx.insert(config_key(acct), encode(&config))?;
            tx.remove(hold_key(acct))?;
            queue::mark_scope(tx, acct, &queue::Scope::All)?;
            record_cause(tx, acct, "ruleChange")?;
            record(tx, acct, now, actor, "sync.reverted", None, json!({"cause": hold.cause, "users": hold.users.len()}))?;
            Ok(config)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_are_held_beyond_the_share_and_from_the_minimum_count() {
        let brake = BrakeSettings::default();
        assert!(!brake.holds(19, 20), "fewer than 20 users are never held");
        assert!(brake.holds(20, 20));
        assert!(brake.holds(20, 199), "more than 10%");
        assert!(!brake.holds(20, 200), "exactly 10% is not more than 10%");
        let none = BrakeSettings { percent: 100, min_users: 1 };
        assert!(!none.holds(50, 50), "100% can never be exceeded");
    }
}
