//! Delivery: what leaves usersync for the outside world — entitlement changes to the products' webhooks.

pub mod webhooks;
