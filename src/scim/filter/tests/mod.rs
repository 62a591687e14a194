//! Tests of the filter module: grammar, printing, evaluation and planning, plus property tests (round trip,
//! a reference evaluator, and a differential against the `scim_v2` crate's parser).

mod differential;
mod eval;
mod parse;
mod path;
mod plan;
mod print;
mod props;

use serde_json::{Value, json};

use super::*;
use crate::scim::error::ScimType;
use crate::scim::schema::{
    ENTERPRISE_URN, GROUP_URN, Registry, ResourceKind, ResourceSchema, Schema, USER_URN,
};

pub(super) const TEST_EXT_URN: &str = "urn:example:params:scim:schemas:extension:test:2.0:User";

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
    AttrPath { urn, name: name.to_owned(), sub, at: None }
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

pub(super) fn user_schema() -> ResourceSchema {
    test_registry().resource(ResourceKind::User).clone()
}

pub(super) fn group_schema() -> ResourceSchema {
    test_registry().resource(ResourceKind::Group).clone()
}

/// The standard registry plus an extension with the attribute types the core schemas lack.
pub(super) fn test_registry() -> Registry {
    let ext = Schema::from_json(json!({
        "id": TEST_EXT_URN,
        "name": "TestUser",
        "attributes": [
            {"name": "loginCount", "type": "integer"},
            {"name": "score", "type": "decimal"},
            {"name": "lastSeen", "type": "dateTime"},
            {"name": "badge", "type": "string", "caseExact": true},
            {"name": "tags", "type": "string", "multiValued": true},
            {"name": "verified", "type": "boolean"}
        ]
    }))
    .unwrap();
    Registry::standard().with_user_extension(ext)
}

/// Barbara Jensen as RFC 7643 §8.2 describes her, as the store keeps her.
pub(super) fn bjensen() -> Value {
    json!({
        "schemas": [USER_URN, ENTERPRISE_URN, TEST_EXT_URN],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "jyoung",
        "userName": "bjensen@example.com",
        "name": {
            "formatted": "Ms. Barbara J Jensen, III",
            "familyName": "Jensen",
            "givenName": "Barbara",
            "honorificSuffix": "III"
        },
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "profileUrl": "https://login.example.com/bjensen",
        "title": "",
        "userType": "Employee",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "active": true,
        "password": "t1meMa$heen",
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
        "addresses": [{"streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "type": "work"}],
        "roles": [{"value": "Admin", "type": "WindowsAzureActiveDirectoryRole", "primary": "True"}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}],
        "groups": [],
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34.1234567-07:00",
            "version": "W/\"3694e05e9dff591\"",
            "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"
        },
        ENTERPRISE_URN: {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Universal Studios",
            "division": "Theme Park",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
        },
        TEST_EXT_URN: {
            "loginCount": 42,
            "score": 7.5,
            "lastSeen": "2024-03-01T12:00:00+01:00",
            "badge": "Gold",
            "tags": ["alpha", "Beta"],
            "verified": false
        }
    })
}

/// The user Microsoft's reference collection provisions and then looks up with its filters.
pub(super) fn entra_user() -> Value {
    json!({
        "schemas": [USER_URN, ENTERPRISE_URN],
        "id": "5171a35d82074e068ce2",
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
        "active": true,
        "displayName": "Test User",
        "name": {"formatted": "Test User", "familyName": "Employee", "givenName": "Test"},
        "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@testuser.example.org"}],
        "roles": [],
        "meta": {"resourceType": "User", "created": "2015-10-10T21:38:22Z", "lastModified": "2015-10-10T21:38:22Z"},
        ENTERPRISE_URN: {"department": "Sales", "manager": {"value": ""}}
    })
}

pub(super) fn sales_group() -> Value {
    json!({
        "schemas": [GROUP_URN],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "Sales",
        "members": [
            {"value": "2819c223-7f76-453a-919d-413861904646", "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646", "type": "User"},
            {"value": "902c246b-6245-4190-8e05-00816be7344a", "type": "User"}
        ],
        "meta": {"resourceType": "Group", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"}
    })
}
