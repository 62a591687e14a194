//! What the store can answer from an index. (stub: replaced by the real planner)

use super::Filter;

/// One `attr eq "value"` lookup; `attr` is the attribute's name as the caller listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTerm {
    pub attr: String,
    pub value: String,
}

impl Filter {
    /// The lookups whose union is exactly the set this filter selects, when it is an `eq` on one of
    /// `attrs` or an `or` chain of such terms.
    pub fn exact_eq_terms(&self, _attrs: &[&str]) -> Option<Vec<IndexTerm>> {
        None
    }

    /// Lookups whose union contains every match (a superset); the caller still evaluates the filter.
    pub fn index_terms(&self, _attrs: &[&str]) -> Option<Vec<IndexTerm>> {
        None
    }

    /// Does any part of the filter refer to the top-level attribute `attr` (case-insensitive)?
    pub fn mentions(&self, _attr: &str) -> bool {
        false
    }
}
