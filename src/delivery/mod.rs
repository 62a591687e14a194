//! Delivery: what leaves usersync for the outside world — entitlement changes to the products' webhooks,
//! the subscriptions admins manage, the DNS questions that verify a domain, and welcome emails to the users
//! over SMTP.

use std::time::Duration;

pub mod dns;
pub mod mail;
pub mod subscriptions;
pub mod webhooks;
pub mod worker;

/// The wait after `failures` failures in a row and one more: doubling from `min` up to `max`, less up
/// to a quarter at random so that deliveries failing together do not retry together.
pub fn backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    let full = min.saturating_mul(1u32 << failures.min(20)).min(max);
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    full.saturating_sub(full / 4 * jitter / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_longest_wait() {
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(60));
        for (failures, full) in [(0, 4), (1, 8), (2, 16), (3, 32), (4, 60), (40, 60)] {
            let wait = backoff(min, max, failures);
            let full = Duration::from_secs(full);
            assert!(wait <= full && wait >= full - full / 4, "{failures}: {wait:?}");
        }
    }
}
