//! Delivery: what leaves usersync for the outside world — entitlement changes to the products' webhooks,
//! and the subscriptions admins manage.

pub mod subscriptions;
pub mod webhooks;
