//! What the store can answer from an index: the `attr eq "value"` lookups a filter reduces to.

use super::{AttrPath, CompareOp, Filter, Literal};
use crate::scim::schema::{GROUP_URN, USER_URN};

/// One `attr eq "value"` lookup; `attr` is the attribute's name as the caller listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTerm {
    pub attr: String,
    pub value: String,
}

impl Filter {
    /// The lookups whose union is exactly the set this filter selects, when it is an `eq` on one of
    /// `attrs` or an `or` chain of such terms.
    pub fn exact_eq_terms(&self, attrs: &[&str]) -> Option<Vec<IndexTerm>> {
        match self {
            Filter::Or(operands) => collect_all(operands, |f| f.exact_eq_terms(attrs)),
            _ => self.eq_term(attrs).map(|term| vec![term]),
        }
    }

    /// Lookups whose union contains every match (a superset); the caller still evaluates the filter.
    /// An `and` contributes the smallest set among its operands that have one.
    pub fn index_terms(&self, attrs: &[&str]) -> Option<Vec<IndexTerm>> {
        match self {
            Filter::Or(operands) => collect_all(operands, |f| f.index_terms(attrs)),
            Filter::And(operands) => {
                operands.iter().filter_map(|f| f.index_terms(attrs)).min_by_key(|terms| terms.len())
            }
            _ => self.eq_term(attrs).map(|term| vec![term]),
        }
    }

    /// Does any part of the filter refer to the top-level attribute `attr` (case-insensitive)? Paths inside
    /// a value path's brackets are sub-attributes, not top-level attributes.
    pub fn mentions(&self, attr: &str) -> bool {
        match self {
            Filter::And(operands) | Filter::Or(operands) => operands.iter().any(|f| f.mentions(attr)),
            Filter::Not(inner) => inner.mentions(attr),
            Filter::Present(path) | Filter::Compare(path, _, _) | Filter::ValuePath(path, _) => {
                path.name.eq_ignore_ascii_case(attr)
            }
        }
    }

    /// `attr eq "string"` with `attr` one of `attrs`, optionally qualified by a core schema URN.
    fn eq_term(&self, attrs: &[&str]) -> Option<IndexTerm> {
        let Filter::Compare(path, CompareOp::Eq, Literal::String(value)) = self else {
            return None;
        };
        let attr = indexed_attr(path, attrs)?;
        Some(IndexTerm { attr: attr.to_owned(), value: value.clone() })
    }
}

fn indexed_attr<'a>(path: &AttrPath, attrs: &[&'a str]) -> Option<&'a str> {
    let core_urn = |urn: &str| urn.eq_ignore_ascii_case(USER_URN) || urn.eq_ignore_ascii_case(GROUP_URN);
    if path.sub.is_some() || path.urn.as_deref().is_some_and(|urn| !core_urn(urn)) {
        return None;
    }
    attrs.iter().find(|a| a.eq_ignore_ascii_case(&path.name)).copied()
}

/// The concatenation of every operand's terms, or `None` when any operand has none.
fn collect_all(
    operands: &[Filter],
    terms_of: impl Fn(&Filter) -> Option<Vec<IndexTerm>>,
) -> Option<Vec<IndexTerm>> {
    let mut all = Vec::new();
    for operand in operands {
        all.extend(terms_of(operand)?);
    }
    Some(all)
}
