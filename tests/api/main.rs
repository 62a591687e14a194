//! The one integration test binary: the real server on port 0 with a temporary data directory, spoken to
//! over HTTP.

// A test binary: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod cli;
mod concurrency;
mod crash;
mod discovery;
mod engine;
mod entra;
mod etag;
mod helpers;
mod isolation;
mod okta;
mod onelogin;
mod persistence;
mod rules;
