//! Delivery: what leaves usersync for the outside world — entitlement changes to the products' webhooks,
//! the subscriptions admins manage, and the DNS questions that verify a domain.

pub mod dns;
pub mod subscriptions;
pub mod webhooks;
