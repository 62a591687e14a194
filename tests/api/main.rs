//! The one integration test binary: the real server on port 0 with a temporary data directory, spoken to
//! over HTTP.

// A test binary: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_api;
mod backup;
mod bad_input;
mod cli;
mod concurrency;
mod console;
mod crash;
mod discovery;
mod domains;
mod edge;
mod engine;
mod entra;
mod etag;
mod feed;
mod hardening;
mod helpers;
mod integrity;
mod isolation;
mod mail;
mod okta;
mod onelogin;
mod operator;
mod persistence;
mod provisioning_log;
mod retention;
mod rules;
