//! PATCH paths (RFC 7644 §3.5.2), including every shape Entra and Okta send.

use super::*;

fn p(input: &str) -> PatchPath {
    match parse_path(input) {
        Ok(path) => path,
        Err(e) => panic!("{input:?} should parse: {e}"),
    }
}

fn path(urn: Option<&str>, name: &str, filter: Option<Filter>, sub: Option<&str>) -> PatchPath {
    PatchPath { urn: urn.map(str::to_owned), name: name.to_owned(), filter, sub: sub.map(str::to_owned) }
}

#[test]
fn attribute_and_sub_attribute_paths() {
    assert_eq!(p("members"), path(None, "members", None, None));
    assert_eq!(p("displayName"), path(None, "displayName", None, None));
    assert_eq!(p("name.givenName"), path(None, "name", None, Some("givenName")));
    assert_eq!(p("  nickName  "), path(None, "nickName", None, None));
}

#[test]
fn urn_qualified_paths() {
    assert_eq!(
        p("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
        path(Some(ENTERPRISE_URN), "employeeNumber", None, None)
    );
    assert_eq!(
        p("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
        path(Some(ENTERPRISE_URN), "manager", None, Some("value"))
    );
    assert_eq!(
        p("urn:ietf:params:scim:schemas:core:2.0:User:name.familyName"),
        path(Some(USER_URN), "name", None, Some("familyName"))
    );
    // a bare schema URN: the caller resolves `urn:...:2.0` + `User` back into the extension
    assert_eq!(
        p("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
        path(Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0"), "User", None, None)
    );
}

#[test]
fn value_filter_paths() {
    assert_eq!(
        p(r#"members[value eq "89bb1940-b905-4575-9e7f-6f887cfb368e"]"#),
        path(None, "members", Some(eq("value", "89bb1940-b905-4575-9e7f-6f887cfb368e")), None)
    );
    assert_eq!(
        p(r#"emails[type eq "work"].value"#),
        path(None, "emails", Some(eq("type", "work")), Some("value"))
    );
    assert_eq!(
        p(r#"phoneNumbers[type eq "work"].value"#),
        path(None, "phoneNumbers", Some(eq("type", "work")), Some("value"))
    );
    assert_eq!(
        p(r#"roles[primary eq "True"].value"#),
        path(None, "roles", Some(eq("primary", "True")), Some("value"))
    );
    assert_eq!(
        p(r#"addresses[type eq "work" and (postalCode pr or locality pr)].streetAddress"#),
        path(
            None,
            "addresses",
            Some(Filter::And(vec![eq("type", "work"), Filter::Or(vec![pr("postalCode"), pr("locality")])])),
            Some("streetAddress")
        )
    );
    assert_eq!(
        p(r#"urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq "work"]"#),
        path(Some(USER_URN), "emails", Some(eq("type", "work")), None)
    );
    // the unquoted member id some clients send
    assert_eq!(p("members[value eq abc-123]"), path(None, "members", Some(eq("value", "abc-123")), None));
}

#[test]
fn malformed_paths_are_invalid_path_errors_naming_the_byte() {
    let cases: &[(&str, &str)] = &[
        ("", "at byte 0: expected an attribute name"),
        ("a.b.c", "at byte 3: expected at most one sub-attribute"),
        (
            "name.givenName[x eq 1]",
            "at byte 0: expected a value filter on an attribute, not on a sub-attribute",
        ),
        ("a[b[c eq 1]]", "at byte 3: expected a comparison operator (value paths cannot be nested)"),
        (r#"emails[type eq "work"].value.x"#, "at byte 28: expected no further"),
        (r#"emails[type eq "work"].urn:x:y"#, "at byte 26: expected no further"),
        (r#"emails[type eq "work"] x"#, "at byte 23: expected the end of the path, found `x`"),
        (r#"emails[type eq "work"] .value"#, "at byte 23: expected the end of the path"),
        (r#"emails [type eq "work"]"#, "at byte 7: expected the end of the path"),
        ("displayName x", "at byte 12: expected the end of the path"),
        (r#"emails[type eq "work""#, "at byte 21: expected `and`, `or` or `]`"),
        (r#"emails[type eq "work"]."#, "at byte 23: expected a sub-attribute name after `].`"),
        (r#"emails[type eq "work"].value eq "x""#, "at byte 29: expected the end of the path, found `eq`"),
        ("emails[]", "at byte 7: expected an attribute name"),
        ("urn:x", "at byte 0: expected an attribute name or a schema URN"),
        (r#""displayName""#, "at byte 0: expected an attribute name"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(input, expected)| match parse_path(input) {
            Err(e) if e.detail.contains(expected) && e.scim_type == Some(ScimType::InvalidPath) => {
                assert!(e.detail.starts_with("invalid path at byte "));
                None
            }
            other => Some(format!("{input:?}: got {other:?}, wanted {expected:?}")),
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn path_limits_match_the_filter_limits() {
    let deep = format!("emails[{}type pr{}]", "(".repeat(MAX_FILTER_DEPTH), ")".repeat(MAX_FILTER_DEPTH));
    assert_eq!(parse_path(&deep).unwrap_err().scim_type, Some(ScimType::InvalidPath));
    let long = format!("emails[value eq \"{}\"]", "x".repeat(MAX_FILTER_LEN));
    assert_eq!(parse_path(&long).unwrap_err().scim_type, Some(ScimType::InvalidPath));
    assert!(parse_path(&"emails[(".repeat(50_000)).is_err());
}

#[test]
fn paths_print_back_as_they_parse() {
    for input in [
        "members",
        "name.givenName",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        r#"emails[type eq "work"].value"#,
        r#"members[value eq "89bb1940"]"#,
        r#"addresses[type eq "work" and (postalCode pr or locality pr)].streetAddress"#,
    ] {
        assert_eq!(p(input).to_string(), input);
        assert_eq!(p(&p(input).to_string()), p(input));
    }
    assert_eq!(p("roles[primary eq True].value").to_string(), "roles[primary eq true].value");
    assert_eq!(
        parse_path_strict(r#"emails[type eq "work"].value"#),
        Ok(p(r#"emails[type eq "work"].value"#))
    );
    assert!(parse_path_strict("members[value eq abc]").is_err());
}
