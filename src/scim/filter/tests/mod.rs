//! Tests of the filter module: grammar and printing.

mod parse;
mod path;
mod print;

use super::*;
use crate::scim::error::ScimType;
use crate::scim::schema::{ENTERPRISE_URN, USER_URN};

/// Parses `input`, failing the test with the error when it does not.
pub(super) fn f(input: &str) -> Filter {
    match parse_filter(input) {
        Ok(filter) => filter,
        Err(e) => panic!("{input:?} should parse: {e}"),
    }
}

/// Parses `input` expecting an invalidFilter error that names a byte position; returns its detail.
pub(super) fn filter_error(input: &str) -> String {
    let err = parse_filter(input).expect_err(input);
    assert_eq!(err.scim_type, Some(ScimType::InvalidFilter), "{input:?}: {err}");
    assert_eq!(err.status, 400);
    assert!(err.detail.starts_with("invalid filter at byte "), "{input:?}: {}", err.detail);
    err.detail
}

pub(super) fn attr(spec: &str) -> AttrPath {
    let (urn, rest) = match spec.rsplit_once(':') {
        Some((urn, rest)) => (Some(urn.to_owned()), rest),
        None => (None, spec),
    };
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some(sub.to_owned())),
        None => (rest, None),
    };
    AttrPath { urn, name: name.to_owned(), sub }
}

pub(super) fn s(text: &str) -> Literal {
    Literal::String(text.to_owned())
}

pub(super) fn n(value: i64) -> Literal {
    Literal::Number(value.into())
}

pub(super) fn cmp(path: &str, op: CompareOp, value: Literal) -> Filter {
    Filter::Compare(attr(path), op, value)
}

pub(super) fn eq(path: &str, value: &str) -> Filter {
    cmp(path, CompareOp::Eq, s(value))
}

pub(super) fn pr(path: &str) -> Filter {
    Filter::Present(attr(path))
}

pub(super) fn not(inner: Filter) -> Filter {
    Filter::Not(Box::new(inner))
}

pub(super) fn vp(path: &str, inner: Filter) -> Filter {
    Filter::ValuePath(attr(path), Box::new(inner))
}
