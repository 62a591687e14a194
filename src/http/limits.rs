//! Per-account request rate limits: one token bucket (governor) per account, holding the account's own
//! limit when the operator set one (`Store::set_rate_limit`) and the server's default otherwise. A request
//! beyond it is answered 429 with `Retry-After` before any work is done for it, so a flooding account
//! costs the others nothing but the refusals.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::store::{AccountId, RateLimit, Store};

/// The buckets of every account that made a request since start.
#[derive(Default)]
pub struct RateLimits {
    /// `None`: accounts without an override are not limited.
    default: Option<RateLimit>,
    buckets: RwLock<HashMap<AccountId, Bucket>>,
}

struct Bucket {
    limit: RateLimit,
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl RateLimits {
    pub fn new(default: Option<RateLimit>) -> RateLimits {
        RateLimits { default, buckets: RwLock::default() }
    }

    /// Takes one request from the account's bucket; `Err(wait)` when it is empty, `wait` being how long
    /// until the next request would be let through.
    pub fn take(&self, store: &Store, acct: AccountId) -> Result<(), Duration> {
        let limit = match store.rate_limit(acct) {
            Ok(own) => own.or(self.default),
            Err(e) => {
                // A limit that cannot be read does not lock the account out.
                log::error!("reading the rate limit of account {}: {e}", acct.0);
                self.default
            }
        };
        let Some(limit) = limit else { return Ok(()) };
        let limiter = self.limiter(acct, limit);
        limiter.check().map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// The account's bucket for `limit`: a new, full one when the limit changed.
    fn limiter(&self, acct: AccountId, limit: RateLimit) -> Arc<DefaultDirectRateLimiter> {
        if let Ok(buckets) = self.buckets.read()
            && let Some(b) = buckets.get(&acct).filter(|b| b.limit == limit)
        {
            return b.limiter.clone();
        }
        let mut buckets = self.buckets.write().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(acct).or_insert_with(|| Bucket { limit, limiter: bucket_for(limit) });
        if bucket.limit != limit {
            *bucket = Bucket { limit, limiter: bucket_for(limit) };
        }
        bucket.limiter.clone()
    }
}

fn bucket_for(limit: RateLimit) -> Arc<DefaultDirectRateLimiter> {
    let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)))
}

/// `Retry-After` in whole seconds: rounded up, and never 0 (a client told 0 would retry at once).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// What a refused request is told, in either API's error body.
pub fn refusal(wait: Duration) -> String {
    format!(
        "too many requests: this account is over its rate limit; retry after {} s",
        retry_after_secs(wait)
    )
}

/// Sets `Retry-After` on a 429 answer.
pub fn set_retry_after(res: &mut actix_web::HttpResponse, wait: Duration) {
    res.headers_mut().insert(actix_web::http::header::RETRY_AFTER, retry_after_secs(wait).into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(20)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }

    #[test]
    fn a_bucket_lets_its_burst_through_then_refuses_and_an_override_replaces_it() {
        let (store, _dir) = crate::store::testing::temp_store();
        let acct = store.create_account("burst").unwrap().id;
        let other = store.create_account("calm").unwrap().id;
        let limits = RateLimits::new(Some(RateLimit { per_second: 1, burst: 3 }));
        for _ in 0..3 {
            limits.take(&store, acct).unwrap();
        }
        let wait = limits.take(&store, acct).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        limits.take(&store, other).expect("another account has its own bucket");
        let own = RateLimit { per_second: 1, burst: 10 };
        store.set_rate_limit(acct, Some(own), &crate::store::Actor::engine()).unwrap();
        for _ in 0..10 {
            limits.take(&store, acct).expect("the override applies at once, with a full bucket");
        }
        assert!(limits.take(&store, acct).is_err());
    }
}
