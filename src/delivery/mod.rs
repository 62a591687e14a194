//! Delivery: what leaves usersync for the outside world — entitlement changes to the products' webhooks,
//! and the DNS questions that verify a domain.

pub mod dns;
pub mod webhooks;
