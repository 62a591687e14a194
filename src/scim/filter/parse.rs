//! Parser for filters and PATCH paths. (stub: replaced by the real parser)

use super::{Filter, PatchPath};
use crate::scim::error::{ScimError, ScimResult};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 16 * 1024;
/// Deepest nesting of parentheses, `not` and value paths accepted.
pub const MAX_FILTER_DEPTH: usize = 32;

pub fn parse_filter(input: &str) -> ScimResult<Filter> {
    Err(ScimError::invalid_filter(format!("filter parsing not built yet: {input}")))
}

pub fn parse_path(input: &str) -> ScimResult<PatchPath> {
    Err(ScimError::invalid_path(format!("path parsing not built yet: {input}")))
}
