//! SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2): the syntax tree, parser, printer and
//! schema-aware evaluator.
//!
//! The tree is protocol-neutral enough for the store to plan index lookups from it and for the rule engine
//! to evaluate rule conditions with it.

mod eval;
mod parse;
mod plan;
mod print;
#[cfg(test)]
mod tests;

pub(crate) use eval::{EqKey, element_eq_keys, literal_eq_key};
pub use eval::{check, check_element, matches, matches_element};
pub use parse::{
    MAX_FILTER_DEPTH, MAX_FILTER_LEN, MAX_FILTER_TERMS, parse_filter, parse_filter_strict, parse_path,
    parse_path_strict,
};
pub use plan::IndexTerm;

/// `[urn ":"] name ["." sub]`. Names keep the case the client wrote; lookups are case-insensitive.
#[derive(Debug, Clone)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
    /// The byte offset the path starts at in the text it was parsed from, so that [`check`] can point
    /// at it; `None` for a path built in code. Where a path was written is no part of what it means, so
    /// equality ignores it.
    pub at: Option<usize>,
}

impl PartialEq for AttrPath {
    fn eq(&self, other: &Self) -> bool {
        (&self.urn, &self.name, &self.sub) == (&other.urn, &other.name, &other.sub)
    }
}

impl Eq for AttrPath {}

impl AttrPath {
    pub fn new(name: impl Into<String>) -> Self {
        AttrPath { urn: None, name: name.into(), sub: None, at: None }
    }

    pub fn with_sub(name: impl Into<String>, sub: impl Into<String>) -> Self {
        AttrPath { urn: None, name: name.into(), sub: Some(sub.into()), at: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Lt,
    Ge,
    Le,
}

/// A comparison value. Unquoted words that real clients send (`externalId eq jyoung`) parse as strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(serde_json::Number),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Two or more operands; a chain `a and b and c` is one node, a parenthesised group its own node.
    And(Vec<Filter>),
    /// Two or more operands, as for `And`.
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, CompareOp, Literal),
    /// `attr[filter]`: the inner filter's paths are relative to one element of `attr`. The non-standard
    /// `emails[type eq "work"].value eq "x"` that Entra sends parses as
    /// `emails[type eq "work" and value eq "x"]`, which means the same.
    ValuePath(AttrPath, Box<Filter>),
}

/// A PATCH operation's target (RFC 7644 §3.5.2): `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`,
/// each optionally prefixed by a schema URN.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub urn: Option<String>,
    pub name: String,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}
