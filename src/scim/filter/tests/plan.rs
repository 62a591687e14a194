//! Index planning: exact `eq` lookups, superset lookups, and attribute mentions.

use super::*;

const USER_INDEXED: &[&str] = &["userName", "externalId", "id"];

fn term(attr: &str, value: &str) -> IndexTerm {
    IndexTerm { attr: attr.to_owned(), value: value.to_owned() }
}

#[test]
fn exact_terms_for_eq_and_or_chains() {
    assert_eq!(
        f(r#"userName eq "bjensen""#).exact_eq_terms(USER_INDEXED),
        Some(vec![term("userName", "bjensen")])
    );
    // the caller's spelling comes back, whatever the client wrote
    assert_eq!(f(r#"USERNAME EQ "x""#).exact_eq_terms(USER_INDEXED), Some(vec![term("userName", "x")]));
    assert_eq!(
        f("externalId eq jyoung").exact_eq_terms(USER_INDEXED),
        Some(vec![term("externalId", "jyoung")])
    );
    assert_eq!(
        f(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#).exact_eq_terms(USER_INDEXED),
        Some(vec![term("userName", "x")])
    );
    assert_eq!(
        f(r#"id eq "a" or (externalId eq "b" or id eq "c")"#).exact_eq_terms(USER_INDEXED),
        Some(vec![term("id", "a"), term("externalId", "b"), term("id", "c")])
    );
    assert_eq!(
        f(r#"displayName eq "Sales""#).exact_eq_terms(&["displayName", "externalId"]),
        Some(vec![term("displayName", "Sales")])
    );
    assert_eq!(
        f(r#"urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "Sales""#)
            .exact_eq_terms(&["displayName"]),
        Some(vec![term("displayName", "Sales")])
    );
}

#[test]
fn anything_else_has_no_exact_terms() {
    for filter in [
        r#"userName ne "x""#,
        r#"userName co "x""#,
        "userName pr",
        "userName eq 1",
        "userName eq true",
        "userName eq null",
        r#"userName.sub eq "x""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName eq "x""#,
        r#"displayName eq "x""#,
        r#"userName eq "x" and id eq "y""#,
        r#"userName eq "x" or displayName eq "y""#,
        r#"not (userName eq "x")"#,
        r#"emails[value eq "x"]"#,
    ] {
        assert_eq!(f(filter).exact_eq_terms(USER_INDEXED), None, "{filter}");
    }
}

#[test]
fn index_terms_are_a_superset_plan() {
    assert_eq!(
        f(r#"id eq "g" and members eq "u""#).index_terms(&["id", "displayName"]),
        Some(vec![term("id", "g")])
    );
    assert_eq!(
        f(r#"active eq true and (userName eq "a" or userName eq "b") and externalId eq "c""#)
            .index_terms(USER_INDEXED),
        Some(vec![term("externalId", "c")]),
        "the operand with the fewest lookups wins"
    );
    assert_eq!(
        f(r#"(userName eq "a" and active eq true) or id eq "b""#).index_terms(USER_INDEXED),
        Some(vec![term("userName", "a"), term("id", "b")])
    );
    assert_eq!(f(r#"userName eq "a" or active eq true"#).index_terms(USER_INDEXED), None);
    assert_eq!(f(r#"active eq true and title pr"#).index_terms(USER_INDEXED), None);
    assert_eq!(f(r#"not (userName eq "a")"#).index_terms(USER_INDEXED), None);
    assert_eq!(f(r#"userName eq "a""#).index_terms(USER_INDEXED), Some(vec![term("userName", "a")]));
}

#[test]
fn mentions_top_level_attributes_only() {
    let filter = f(
        r#"not (members eq "u") and emails[type eq "work"] or urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value pr"#,
    );
    for attr in ["members", "MEMBERS", "emails", "manager"] {
        assert!(filter.mentions(attr), "{attr}");
    }
    for attr in ["type", "value", "userName", "urn"] {
        assert!(!filter.mentions(attr), "{attr}");
    }
}
