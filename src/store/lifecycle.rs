//! An account's life while the server runs: suspension and its end, deletion of every key the account
//! owns, and the figures the operator lists. A deleted account's records can never come back: from the
//! moment its deletion starts, no transaction may write one (see [`Store::refuse_removed_accounts`]).

use serde_json::json;

use super::accounts::Account;
use super::codec::{decode, encode, get, tx_get};
use super::keys::{AccountId, global, is_account_scoped, kind, prefix};
use super::sync::{Entitlement, EntitlementState};
use super::tx::Tx;
use super::{AccountFigures, Actor, Store, StoreError, StoreResult, TokenKind, TxResult, abort, activity};
use crate::clock::timestamp;
use crate::scim::schema::ResourceKind;

/// Keys removed per transaction while an account is deleted: small enough that other accounts' writes
/// wait only a few milliseconds for each.
const SWEEP_BATCH: usize = 2000;

impl Store {
    /// The account, or 404.
    fn existing(&self, acct: AccountId) -> StoreResult<Account> {
        self.account_by_id(acct)?
            .filter(|a| a.deleting.is_none())
            .ok_or_else(|| StoreError::NotFound(format!("account {}", acct.0)))
    }

    /// Writes the account record changed by `change`, with an activity entry of `what`, and makes the
    /// caches forget the old record.
    fn change_account(
        &self,
        acct: AccountId,
        actor: &Actor,
        what: &str,
        change: impl Fn(&mut Account),
    ) -> StoreResult<Account> {
        let record = prefix(kind::ACCOUNT, acct);
        let now = self.now();
        let account = self.transact(|tx| {
            let Some(mut account) = tx_get::<Account>(tx, &record)?.filter(|a| a.deleting.is_none()) else {
                return abort(StoreError::NotFound(format!("account {}", acct.0)));
            };
            change(&mut account);
            tx.insert(record.as_slice(), encode(&account))?;
            activity::record(tx, acct, now, actor, what, None, json!({"account": account.name}))?;
            Ok(account)
        })?;
        self.forget_account(acct);
        Ok(account)
    }

    /// Suspends the account: its SCIM and admin tokens are answered 403 until it is resumed; nothing of
    /// its data changes. Suspending a suspended account changes nothing.
    pub fn suspend_account(&self, acct: AccountId, actor: &Actor) -> StoreResult<Account> {
        let account = self.existing(acct)?;
        if account.suspended.is_some() {
            return Ok(account);
        }
        let since = timestamp(self.now());
        self.change_account(acct, actor, "account.suspended", |a| a.suspended = Some(since.clone()))
    }

    /// Ends a suspension; resuming an active account changes nothing.
    pub fn resume_account(&self, acct: AccountId, actor: &Actor) -> StoreResult<Account> {
        let account = self.existing(acct)?;
        if account.suspended.is_none() {
            return Ok(account);
        }
        self.change_account(acct, actor, "account.resumed", |a| a.suspended = None)
    }

    /// Deletes the account and every key it owns. First its tokens go and the account is marked as being
    /// deleted, in one transaction; from then on no transaction may write a record of it (one already
    /// running fails), so what is left can be removed in batches that never hold other writers long. Its
    /// logins are given up last, to users of other accounts waiting for them.
    pub fn delete_account(&self, acct: AccountId) -> StoreResult<Account> {
        let mut account =
            self.account_by_id(acct)?.ok_or_else(|| StoreError::NotFound(format!("account {}", acct.0)))?;
        self.mark_removed(acct, true);
        if account.deleting.is_none() {
            account.deleting = Some(timestamp(self.now()));
            let record = prefix(kind::ACCOUNT, acct);
            let marked = self.transact_exclusive(|tx| {
                tx.insert(record.as_slice(), encode(&account))?;
                self.remove_tokens(tx, acct)
            });
            if let Err(e) = marked {
                self.mark_removed(acct, false);
                return Err(e);
            }
        }
        self.forget_account(acct);
        self.finish_deletion(&account)?;
        Ok(account)
    }

    /// Finishes the deletions a stop interrupted (at start-up).
    pub fn finish_deletions(&self) -> StoreResult<()> {
        for account in self.accounts()?.into_iter().filter(|a| a.deleting.is_some()) {
            log::info!("finishing the deletion of account '{}' ({})", account.name, account.id.0);
            self.mark_removed(account.id, true);
            self.finish_deletion(&account)?;
        }
        Ok(())
    }

    fn finish_deletion(&self, account: &Account) -> StoreResult<()> {
        let acct = account.id;
        let record = prefix(kind::ACCOUNT, acct);
        while self.transact_exclusive(|tx| self.sweep(tx, acct, &record))? == SWEEP_BATCH {}
        let name = global(kind::ACCOUNT_BY_NAME, account.name.as_bytes());
        self.transact_exclusive(|tx| {
            self.drop_account_logins(tx, acct)?;
            self.drop_account_domains(tx, acct)?;
            if self.sweep(tx, acct, &record)? > 0 {
                return abort(StoreError::Conflict("the account gained records while being deleted".into()));
            }
            tx.remove(name.as_slice())?;
            tx.remove(record.as_slice())
        })?;
        self.forget_account(acct);
        self.forget_population(acct);
        log::info!("deleted account '{}' ({}) with all its records", account.name, acct.0);
        Ok(())
    }

    /// Removes up to [`SWEEP_BATCH`] keys of the account, its record aside; how many it removed.
    fn sweep(&self, tx: &Tx<'_>, acct: AccountId, record: &[u8]) -> TxResult<usize> {
        let mut removed = 0;
        for k in (0..=u8::MAX).filter(|k| is_account_scoped(*k)) {
            for item in self.tree().scan_prefix(prefix(k, acct)) {
                if removed == SWEEP_BATCH {
                    return Ok(removed);
                }
                let key = match item {
                    Ok((key, _)) => key,
                    Err(e) => return abort(StoreError::from(e)),
                };
                if key.as_ref() != record {
                    tx.remove(&key)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Removes every token of the account (inside an exclusive transaction: the scan is then current).
    fn remove_tokens(&self, tx: &Tx<'_>, acct: AccountId) -> TxResult<()> {
        let tokens = match self.tokens(Some(acct)) {
            Ok(t) => t,
            Err(e) => return abort(e),
        };
        for t in tokens {
            tx.remove(global(kind::TOKEN, &t.hash))?;
        }
        Ok(())
    }

    /// An account's users, groups, entitled users, failures and last SCIM request.
    pub fn account_figures(&self, acct: AccountId) -> StoreResult<AccountFigures> {
        let mut entitled_users = 0;
        for item in self.tree().scan_prefix(prefix(kind::ENTITLEMENT, acct)) {
            let e: Entitlement = decode(&item?.1)?;
            if e.state == EntitlementState::Entitled {
                entitled_users += 1;
            }
        }
        let failures = self.tree().scan_prefix(prefix(kind::FAILURE, acct)).count();
        let last = super::keys::key(kind::ACCOUNT_USED, acct, &[TokenKind::Scim.as_str().as_bytes()]);
        Ok(AccountFigures {
            users: self.count(acct, ResourceKind::User),
            groups: self.count(acct, ResourceKind::Group),
            entitled_users,
            failures,
            last_scim_request: get(self.tree(), &last)?,
        })
    }

    /// Every transaction runs this last: a record of an account being deleted or deleted must not be
    /// written (removals are harmless). The account's record is read so that a transaction that ran
    /// before the deletion started, and commits after, is run again and then refused.
    pub(crate) fn refuse_removed_accounts(&self, tx: &Tx<'_>) -> TxResult<()> {
        for (acct, own_record) in tx.accounts_written() {
            if own_record {
                continue;
            }
            tx.get(prefix(kind::ACCOUNT, acct))?;
            if self.is_removed(acct) {
                return abort(StoreError::NotFound(format!("account {} (it is being deleted)", acct.0)));
            }
        }
        Ok(())
    }

    fn forget_population(&self, acct: AccountId) {
        if let Ok(mut map) = self.inner.counts.write() {
            map.retain(|(a, _), _| *a != acct);
        }
        if let Ok(mut map) = self.inner.registries.write() {
            map.remove(&acct);
        }
        if let Ok(mut map) = self.inner.account_names.write() {
            map.remove(&acct);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Authentication;
    use crate::store::keys::{account_of, key};
    use crate::store::testing::temp_store;

    #[test]
    fn a_deleted_account_keeps_no_key_and_takes_no_write_while_others_go_on() {
        let (store, _dir) = temp_store();
        let keep = store.create_account("keep").unwrap().id;
        let gone = store.create_account("gone").unwrap();
        let (_, secret) = store.create_token(gone.id, TokenKind::Scim, "t", &Actor::engine()).unwrap();
        // more than one sweep's worth
        store
            .transact(|tx| {
                for i in 0..SWEEP_BATCH + 10 {
                    tx.insert(key(kind::OBJECT, gone.id, &[format!("{i:05}").as_bytes()]), b"x".as_slice())?;
                }
                Ok(())
            })
            .unwrap();
        store.suspend_account(gone.id, &Actor::engine()).unwrap();
        assert!(matches!(store.authenticate_why(&secret).unwrap(), Authentication::Suspended(..)));
        store.delete_account(gone.id).unwrap();

        assert!(matches!(store.authenticate_why(&secret).unwrap(), Authentication::Unknown));
        let left: Vec<_> = store
            .scan_raw()
            .unwrap()
            .into_iter()
            .filter(|(k, _)| is_account_scoped(k[0]) && account_of(k) == Some(gone.id))
            .collect();
        assert!(left.is_empty(), "{} keys left", left.len());
        let refused = store.record_activity(gone.id, &Actor::engine(), "user.created", None, json!({}));
        assert!(matches!(refused, Err(StoreError::NotFound(_))), "{refused:?}");
        store.record_activity(keep, &Actor::engine(), "user.created", None, json!({})).unwrap();
        assert!(store.account("gone").unwrap().is_none());
        assert_ne!(store.create_account("gone").unwrap().id, gone.id, "an id is never given out again");
        assert!(store.verify().unwrap().is_empty());
    }
}
