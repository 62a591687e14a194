//! usersync: a SCIM 2.0 provisioning endpoint with a rule engine that turns directory-group membership
//! into product entitlements.
//!
//! Layers, each depending only on those above it: [`scim`] (protocol, pure), `store` (sled),
//! `rules` (entitlement engine), `delivery` (outbound webhooks), `http` (actix handlers).

pub mod app;
pub mod clock;
pub mod delivery;
pub mod http;
pub mod rules;
pub mod scim;
pub mod socket;
pub mod store;
