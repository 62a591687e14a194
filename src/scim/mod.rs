//! The SCIM 2.0 protocol (RFC 7643/7644) as pure functions over JSON: schemas, filters, PATCH paths and
//! operations, resource normalisation, projection and sorting. No I/O and no HTTP here.

pub mod error;
pub mod filter;
pub mod identity;
pub mod schema;

pub use error::{ScimError, ScimResult, ScimType};
pub mod patch;
pub mod project;
pub mod redact;
pub mod resource;
#[cfg(test)]
pub(crate) mod testing;
pub mod value;
