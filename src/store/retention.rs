//! How long an account's history is kept, and the pruning that keeps it so: the activity history (400 days
//! by default) and the provisioning log (30 days and at most 100,000 entries by default), plus whether the
//! log keeps attribute values of request bodies. Pruning removes a few hundred entries per transaction,
//! so writers wait at most for one small commit; time comes from the store's clock, so tests move it.

use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::activity::record;
use super::codec::{encode, get, tx_get};
use super::keys::{AccountId, kind, prefix};
use super::{Actor, Inner, Store, StoreResult};

/// An account's retention settings (`GET/PATCH /admin/v1/settings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    pub activity_days: u32,
    pub request_days: u32,
    pub request_max_entries: u64,
    /// Whether the provisioning log keeps the values of request bodies (passwords never).
    pub record_values: bool,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { activity_days: 400, request_days: 30, request_max_entries: 100_000, record_values: false }
    }
}

/// The longest retention an admin may set, in days (ten years).
pub const MAX_DAYS: u32 = 3650;
/// The most provisioning log entries an account may keep.
pub const MAX_REQUEST_ENTRIES: u64 = 10_000_000;

/// Activity entries removed per transaction.
const ACTIVITY_BATCH: usize = 200;

fn settings_key(acct: AccountId) -> Vec<u8> {
    prefix(kind::RETENTION, acct)
}

/// What one pruning pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub activity: usize,
    pub requests: usize,
}

impl Store {
    pub fn retention(&self, acct: AccountId) -> StoreResult<Retention> {
        Ok(get(self.tree(), &settings_key(acct))?.unwrap_or_default())
    }

    /// Changes the account's retention settings (recorded in its activity as `settings.updated`).
    pub fn put_retention(&self, acct: AccountId, settings: &Retention, actor: &Actor) -> StoreResult<()> {
        let now = self.now();
        self.transact(|tx| {
            let before: Retention = tx_get(tx, &settings_key(acct))?.unwrap_or_default();
            tx.insert(settings_key(acct), encode(settings))?;
            if before == *settings {
                return Ok(());
            }
            let detail =
                json!({"retention": settings, "changes": super::sync::changes(Some(&before), settings)});
            record(tx, acct, now, actor, "settings.updated", None, detail)
        })
    }

    /// One pass over every account: what is older than its retention goes.
    pub fn prune(&self) -> StoreResult<Pruned> {
        let now = self.now();
        let mut pruned = Pruned::default();
        for account in self.accounts()? {
            let settings = self.retention(account.id)?;
            let days = |d: u32| chrono::Duration::days(i64::from(d));
            pruned.activity +=
                self.prune_activity(account.id, now - days(settings.activity_days), ACTIVITY_BATCH)?;
            pruned.requests += self.prune_requests(
                account.id,
                now - days(settings.request_days),
                settings.request_max_entries,
            )?;
        }
        if pruned != Pruned::default() {
            log::info!(
                "retention: removed {} activity entries and {} provisioning log entries",
                pruned.activity,
                pruned.requests
            );
        }
        Ok(pruned)
    }
}

/// Starts the thread that prunes every `every`; it ends with the store.
pub fn watch(store: &Store, every: Duration) {
    let weak: Weak<Inner> = Arc::downgrade(&store.inner);
    let spawned = thread::Builder::new().name("usersync-retention".into()).spawn(move || {
        loop {
            // sleep in short steps, so a store that is gone lets the thread end soon
            let mut waited = Duration::ZERO;
            while waited < every {
                let step = (every - waited).min(Duration::from_millis(200));
                thread::sleep(step);
                waited += step;
                if weak.strong_count() == 0 {
                    return;
                }
            }
            let Some(inner) = weak.upgrade() else { return };
            if inner.durability.stopped() {
                return;
            }
            if !inner.durability.writable() {
                continue;
            }
            if let Err(e) = (Store { inner }).prune() {
                log::error!("retention: pruning failed: {e}");
            }
        }
    });
    if let Err(e) = spawned {
        log::error!("could not start the retention thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::RequestEntry;
    use crate::store::keys::{kind, prefix};

    #[test]
    fn under_steady_churn_what_is_kept_stays_bounded() {
        let (store, clock, _dir) = crate::store::testing::clocked_store("2026-01-01T00:00:00Z");
        let acct = store.ensure_account("a").unwrap().0.id;
        let settings = Retention {
            activity_days: 1,
            request_days: 1,
            request_max_entries: 1_000,
            ..Retention::default()
        };
        store.put_retention(acct, &settings, &Actor::engine()).unwrap();
        let mut live = Vec::new();
        for round in 0..12 {
            for i in 0..150 {
                let detail = json!({"round": round, "i": i});
                store.record_activity(acct, &Actor::engine(), "user.updated", Some("u1"), detail).unwrap();
                let entry: RequestEntry = serde_json::from_value(json!({"time": crate::clock::timestamp(store.now()),
                    "token": "t", "method": "GET", "path": "/scim/v2/Users", "status": 200, "latencyMs": 1.0}))
                .unwrap();
                store.record_request(acct, entry);
            }
            store.flush_requests().unwrap();
            clock.advance(chrono::Duration::hours(8));
            store.prune().unwrap();
            live.push(store.tree().state().bytes);
            let kept = store.tree().scan_prefix(prefix(kind::ACTIVITY, acct)).count();
            assert!(kept <= 4 * 150, "round {round}: {kept} activity entries kept");
            let logged = store.requests(acct, &crate::store::RequestQuery::default()).unwrap().total;
            assert!(logged <= 4 * 150, "round {round}: {logged} log entries kept");
        }
        // once the retention window is full, the records' size no longer grows
        let settled = &live[4..];
        let (low, high) = (settled.iter().min().unwrap(), settled.iter().max().unwrap());
        assert!(*high < low + low / 5, "live bytes per round: {live:?}");
    }
}
