//! Per-account request rate limits: an operator's override of the server's default (`--rate-limit`,
//! `--rate-burst`), kept under the account's prefix and cached in memory, since it is read on every
//! authenticated request.

use serde::{Deserialize, Serialize};

use super::codec::{encode, get};
use super::keys::{AccountId, kind, prefix};
use super::{Actor, Store, StoreError, StoreResult};

/// A token bucket: `per_second` requests sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    /// The defaults of `usersync serve`: Entra needs at least 25 requests per second per tenant.
    pub const DEFAULT: RateLimit = RateLimit { per_second: 50, burst: 200 };

    /// Refuses a bucket that could never let a request through, naming the field.
    pub fn check(&self) -> StoreResult<()> {
        if self.per_second == 0 {
            return Err(StoreError::Rejected("perSecond: must be at least 1".into()));
        }
        if self.burst == 0 {
            return Err(StoreError::Rejected("burst: must be at least 1".into()));
        }
        Ok(())
    }
}

impl Store {
    /// The account's own rate limit, if one was set; `None`: the server's default applies.
    pub fn rate_limit(&self, acct: AccountId) -> StoreResult<Option<RateLimit>> {
        if let Some(cached) = self.inner.rate_limits.read().ok().and_then(|c| c.get(&acct).copied()) {
            return Ok(cached);
        }
        let limit: Option<RateLimit> = get(self.tree(), &prefix(kind::RATE_LIMIT, acct))?;
        if let Ok(mut cache) = self.inner.rate_limits.write() {
            cache.insert(acct, limit);
        }
        Ok(limit)
    }

    /// Sets the account's rate limit (`None`: back to the server's default). It applies from the account's
    /// next request on; nothing needs restarting. The caller makes it durable (`AppState::committed`).
    pub fn set_rate_limit(
        &self,
        acct: AccountId,
        limit: Option<RateLimit>,
        actor: &Actor,
    ) -> StoreResult<()> {
        if let Some(limit) = &limit {
            limit.check()?;
        }
        if self.account_by_id(acct)?.is_none() {
            return Err(StoreError::NotFound(format!("account {}", acct.0)));
        }
        let key = prefix(kind::RATE_LIMIT, acct);
        self.transact(|tx| match &limit {
            Some(l) => tx.insert(key.as_slice(), encode(l)),
            None => tx.remove(key.as_slice()),
        })?;
        log::info!("{} set the rate limit of account {} to {limit:?}", actor.0, acct.0);
        if let Ok(mut cache) = self.inner.rate_limits.write() {
            cache.insert(acct, limit);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_is_kept_and_cleared() {
        let (store, _dir) = crate::store::testing::temp_store();
        let acct = store.create_account("limited").unwrap().id;
        assert_eq!(store.rate_limit(acct).unwrap(), None);
        let limit = RateLimit { per_second: 5, burst: 7 };
        store.set_rate_limit(acct, Some(limit), &Actor::engine()).unwrap();
        assert_eq!(store.rate_limit(acct).unwrap(), Some(limit));
        let zero = RateLimit { per_second: 0, burst: 7 };
        let err = store.set_rate_limit(acct, Some(zero), &Actor::engine()).unwrap_err();
        assert!(err.to_string().contains("perSecond"), "{err}");
        store.set_rate_limit(acct, None, &Actor::engine()).unwrap();
        assert_eq!(store.rate_limit(acct).unwrap(), None);
        assert!(store.set_rate_limit(AccountId(999), None, &Actor::engine()).is_err());
    }
}
