//! The entitlement change feed: every change of a user's applied entitlements (granted, changed, revoked,
//! failed) as a record written in the same transaction as the change, numbered at commit per account one
//! by one (the committer's sequenced records), so its cursor is gap-free and in commit order, and goes on
//! after a restart. Readers see only records that are durable, so a cursor once answered never names a
//! record a crash could take back.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::keys::{AccountId, key, kind, prefix};
use super::sync::{Bundle, RuleRef};
use super::tx::{Sequenced, Tx};
use super::{Store, StoreError, StoreResult};

/// What happened to a user's entitlements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeKind {
    /// The user got a bundle, holding none before.
    #[serde(rename = "entitlement.granted")]
    Granted,
    /// The user's bundle (or login) changed.
    #[serde(rename = "entitlement.changed")]
    Changed,
    /// The user lost everything: no rule matches, the user is inactive or was deleted.
    #[serde(rename = "entitlement.revoked")]
    Revoked,
    /// The intended bundle could not be applied; the user keeps what they had.
    #[serde(rename = "entitlement.failed")]
    Failed,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 4] =
        [ChangeKind::Granted, ChangeKind::Changed, ChangeKind::Revoked, ChangeKind::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Granted => "entitlement.granted",
            ChangeKind::Changed => "entitlement.changed",
            ChangeKind::Revoked => "entitlement.revoked",
            ChangeKind::Failed => "entitlement.failed",
        }
    }

    pub fn parse(text: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One entitlement change. `after` is what the user holds once the change is applied, so a consumer's
/// state is the `after` of each user's last change, and applying a change twice does no harm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The position in the account's feed: 1, 2, 3, ... in commit order.
    pub cursor: u64,
    /// Unique and stable: the `webhook-id` of its deliveries (a receiver drops what it has seen).
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    pub time: String,
    pub user_id: String,
    pub user_name: Option<String>,
    pub before: Option<Bundle>,
    pub after: Option<Bundle>,
    /// The deciding rule (granted, changed, failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleRef>,
    /// Why: for revoked, in words; for failed, the failure reason (`outOfLicenses`, `existingAccount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For failed: the failure's detail and the bundle the rule intended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended: Option<Bundle>,
}

fn feed_prefix(acct: AccountId) -> Vec<u8> {
    prefix(kind::FEED, acct)
}

fn feed_key(acct: AccountId, cursor: u64) -> Vec<u8> {
    key(kind::FEED, acct, &[&cursor.to_be_bytes()])
}

/// Appends a change to the account's feed inside the caller's transaction; its cursor is given at commit.
pub(crate) fn record_change(tx: &Tx<'_>, acct: AccountId, mut change: Change) {
    change.id = uuid::Uuid::now_v7().to_string();
    tx.insert_sequenced(Sequenced {
        prefix: feed_prefix(acct),
        value: Box::new(move |cursor| {
            change.cursor = cursor;
            encode(&change)
        }),
        index: Vec::new(),
    });
}

/// A page of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangesPage {
    pub changes: Vec<Change>,
    /// The cursor of the last change committed (and durable) when the page was read.
    pub head: u64,
}

impl Store {
    /// The cursor of the last change committed to the account's feed (0 before any). Every change up to
    /// it can be read; it may not be durable yet (see [`Store::changes`]).
    pub fn feed_head(&self, acct: AccountId) -> StoreResult<u64> {
        Ok(self.inner.committer.last_number(self.tree(), &feed_prefix(acct))?)
    }

    /// Up to `limit` changes after `after`, in cursor order, waiting up to `wait` for one when there is
    /// none. Only durable changes are answered. An `after` beyond the feed's end is refused: the store
    /// holds less than the caller has seen (it was restored from an older copy).
    pub async fn changes(
        &self,
        acct: AccountId,
        after: u64,
        limit: usize,
        wait: Duration,
    ) -> StoreResult<ChangesPage> {
        let deadline = tokio::time::Instant::now() + wait;
        let notify = self.inner.committer.watch(&feed_prefix(acct));
        loop {
            let woken = notify.notified();
            tokio::pin!(woken);
            // Registered before the head is read: a commit after the read wakes it.
            woken.as_mut().enable();
            let head = self.feed_head(acct)?;
            if after > head {
                return Err(StoreError::Rejected(format!(
                    "?after: the feed ends at {head}; cursor {after} is not one it gave out"
                )));
            }
            if head > after {
                self.durable().await?;
                let changes = self.changes_between(acct, after, head, limit)?;
                return Ok(ChangesPage { changes, head });
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return Ok(ChangesPage { changes: Vec::new(), head });
            }
        }
    }

    /// The changes after `after` up to `head` (at most `limit`), all of which must be there.
    fn changes_between(
        &self,
        acct: AccountId,
        after: u64,
        head: u64,
        limit: usize,
    ) -> StoreResult<Vec<Change>> {
        let end = head.min(after.saturating_add(limit as u64));
        let mut out = Vec::with_capacity((end - after) as usize);
        for item in self.tree().range(feed_key(acct, after + 1)..=feed_key(acct, end)) {
            let change: Change = decode(&item?.1)?;
            let expected = after + 1 + out.len() as u64;
            if change.cursor != expected {
                return Err(StoreError::Corrupt(format!("the change feed lacks change {expected}")));
            }
            out.push(change);
        }
        if out.len() as u64 != end - after {
            return Err(StoreError::Corrupt(format!("the change feed lacks changes up to {end}")));
        }
        Ok(out)
    }

    /// The change at `cursor`, if the feed has it.
    pub fn change(&self, acct: AccountId, cursor: u64) -> StoreResult<Option<Change>> {
        super::codec::get(self.tree(), &feed_key(acct, cursor))
    }

    /// Runs `read` on a view that no entitlement change overtook while it ran, and answers the cursor it
    /// is consistent with: every change up to the cursor is in it, none after. Optimistic (read, then
    /// check that the feed did not move); after a few tries it holds writers off while it reads.
    pub fn at_feed_cursor<T>(
        &self,
        acct: AccountId,
        mut read: impl FnMut() -> StoreResult<T>,
    ) -> StoreResult<(T, u64)> {
        for _ in 0..3 {
            let before = self.feed_head(acct)?;
            let value = read()?;
            if self.feed_head(acct)? == before {
                return Ok((value, before));
            }
        }
        self.inner.committer.alone(|| {
            let value = read()?;
            Ok((value, self.feed_head(acct)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::temp_store;

    fn change(user: &str) -> Change {
        Change {
            cursor: 0,
            id: String::new(),
            kind: ChangeKind::Granted,
            time: "2026-01-02T03:04:05Z".into(),
            user_id: user.into(),
            user_name: Some(format!("{user}@example.com")),
            before: None,
            after: Some(Bundle::default()),
            rule: None,
            reason: None,
            detail: None,
            intended: None,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
    }

    #[test]
    fn changes_are_numbered_per_account_without_gaps_and_read_in_order() {
        let (store, _dir) = temp_store();
        let (a, b) = (AccountId(1), AccountId(2));
        std::thread::scope(|s| {
            for t in 0..4 {
                let store = store.clone();
                s.spawn(move || {
                    for i in 0..25 {
                        let acct = if (t + i) % 2 == 0 { a } else { b };
                        store
                            .transact(|tx| {
                                record_change(tx, acct, change(&format!("u{t}-{i}")));
                                Ok(())
                            })
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!((store.feed_head(a).unwrap(), store.feed_head(b).unwrap()), (50, 50));
        let page = block_on(store.changes(a, 10, 15, Duration::ZERO)).unwrap();
        let cursors: Vec<u64> = page.changes.iter().map(|c| c.cursor).collect();
        assert_eq!(cursors, (11..=25).collect::<Vec<_>>());
        assert_eq!(page.head, 50);
        let ids: std::collections::HashSet<&str> = page.changes.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), 15, "every change has its own id");
        let rest = block_on(store.changes(a, 25, 100, Duration::ZERO)).unwrap();
        assert_eq!(rest.changes.len(), 25);
        let err = block_on(store.changes(a, 51, 10, Duration::ZERO)).unwrap_err();
        assert!(matches!(err, StoreError::Rejected(_)), "{err}");
    }

    #[test]
    fn a_waiting_reader_is_woken_by_the_commit() {
        let (store, _dir) = temp_store();
        let acct = AccountId(1);
        let writer = store.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            writer
                .transact(|tx| {
                    record_change(tx, acct, change("u"));
                    Ok(())
                })
                .unwrap();
        });
        let page = block_on(store.changes(acct, 0, 10, Duration::from_secs(30))).unwrap();
        t.join().unwrap();
        assert_eq!(page.changes.len(), 1);
        assert_eq!(page.changes[0].user_id, "u");
        let none = block_on(store.changes(acct, 1, 10, Duration::from_millis(20))).unwrap();
        assert!(none.changes.is_empty());
    }

    #[test]
    fn a_view_is_answered_with_the_cursor_it_is_consistent_with() {
        let (store, _dir) = temp_store();
        let acct = AccountId(1);
        let mut calls = 0;
        let (n, cursor) = store
            .at_feed_cursor(acct, || {
                calls += 1;
                if calls <= 3 {
                    // the feed moves while the view is read: it is read again
                    store.transact(|tx| {
                        record_change(tx, acct, change("u"));
                        Ok(())
                    })?;
                }
                Ok(calls)
            })
            .unwrap();
        assert_eq!(n, 4, "three optimistic tries, then one with writers held off");
        assert_eq!(cursor, 3);
    }
}
