//! The filter grammar: every construct, precedence, tolerances, errors and limits.

use crate::scim::filter::parse::parse_filter_counting;

use super::*;
use CompareOp::*;

#[test]
fn comparison_with_each_operator_in_any_case() {
    let ops = [
        ("eq", Eq),
        ("ne", Ne),
        ("co", Co),
        ("sw", Sw),
        ("ew", Ew),
        ("gt", Gt),
        ("lt", Lt),
        ("ge", Ge),
        ("le", Le),
    ];
    for (word, op) in ops {
        for spelled in
            [word.to_owned(), word.to_uppercase(), format!("{}{}", &word[..1].to_uppercase(), &word[1..])]
        {
            assert_eq!(f(&format!("userName {spelled} \"bjensen\"")), cmp("userName", op, s("bjensen")));
        }
    }
    assert_eq!(f("title pr"), pr("title"));
    assert_eq!(f("title PR"), pr("title"));
}

#[test]
fn sub_attributes_and_schema_urns() {
    assert_eq!(f(r#"name.familyName co "O'Malley""#), cmp("name.familyName", Co, s("O'Malley")));
    let core = f(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#);
    assert_eq!(core, cmp("urn:ietf:params:scim:schemas:core:2.0:User:userName", Sw, s("J")));
    let manager =
        f(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#);
    let Filter::Compare(path, _, _) = manager else { panic!() };
    assert_eq!(path.urn.as_deref(), Some(ENTERPRISE_URN));
    assert_eq!((path.name.as_str(), path.sub.as_deref()), ("manager", Some("value")));
    // a bare URN is a URN and a name; the caller decides what that means
    let Filter::Present(path) = f("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User pr") else {
        panic!()
    };
    assert_eq!(path.urn.as_deref(), Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0"));
    assert_eq!(path.name, "User");
    // names keep the case the client wrote
    assert_eq!(f("Name.FamilyName pr"), pr("Name.FamilyName"));
}

#[test]
fn and_binds_tighter_than_or() {
    assert_eq!(f("a pr or b pr and c pr"), Filter::Or(vec![pr("a"), Filter::And(vec![pr("b"), pr("c")])]));
    assert_eq!(f("a pr and b pr or c pr"), Filter::Or(vec![Filter::And(vec![pr("a"), pr("b")]), pr("c")]));
    assert_eq!(
        f("a pr or b pr and c pr or d pr"),
        Filter::Or(vec![pr("a"), Filter::And(vec![pr("b"), pr("c")]), pr("d")])
    );
}

#[test]
fn chains_are_one_node_and_groups_their_own() {
    assert_eq!(f("a pr and b pr and c pr"), Filter::And(vec![pr("a"), pr("b"), pr("c")]));
    assert_eq!(f("a pr or b pr or c pr"), Filter::Or(vec![pr("a"), pr("b"), pr("c")]));
    assert_eq!(
        f("(a pr and b pr) and c pr"),
        Filter::And(vec![Filter::And(vec![pr("a"), pr("b")]), pr("c")])
    );
    assert_eq!(f("a pr and (b pr or c pr)"), Filter::And(vec![pr("a"), Filter::Or(vec![pr("b"), pr("c")])]));
    assert_eq!(f("(a pr or b pr) or c pr"), Filter::Or(vec![Filter::Or(vec![pr("a"), pr("b")]), pr("c")]));
    assert_eq!(f("((a pr))"), pr("a"));
    assert_eq!(f("(a pr)"), pr("a"));
}

#[test]
fn not_with_and_without_space_in_any_case() {
    let expected = not(eq("userType", "Employee"));
    for input in [
        r#"not (userType eq "Employee")"#,
        r#"not(userType eq "Employee")"#,
        r#"NOT (userType eq "Employee")"#,
        r#"Not  ( userType eq "Employee" )"#,
    ] {
        assert_eq!(f(input), expected, "{input}");
    }
    assert_eq!(f("not (not (a pr))"), not(not(pr("a"))));
    assert_eq!(
        f(r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#),
        Filter::And(vec![
            cmp("userType", Ne, s("Employee")),
            not(Filter::Or(vec![
                cmp("emails", Co, s("example.com")),
                cmp("emails.value", Co, s("example.org"))
            ]))
        ])
    );
}

#[test]
fn value_paths_with_nested_logic() {
    assert_eq!(
        f(r#"emails[type eq "work" and value co "@example.com"]"#),
        vp("emails", Filter::And(vec![eq("type", "work"), cmp("value", Co, s("@example.com"))]))
    );
    assert_eq!(
        f(r#"emails[not (type eq "work") or (primary eq true and value pr)]"#),
        vp(
            "emails",
            Filter::Or(vec![
                not(eq("type", "work")),
                Filter::And(vec![cmp("primary", Eq, Literal::Bool(true)), pr("value")])
            ])
        )
    );
    assert_eq!(
        f(
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp"]"#
        ),
        Filter::Or(vec![
            Filter::And(vec![
                eq("userType", "Employee"),
                vp("emails", Filter::And(vec![eq("type", "work"), cmp("value", Co, s("@example.com"))]))
            ]),
            vp("ims", eq("type", "xmpp"))
        ])
    );
    assert_eq!(f("members[$ref pr]"), vp("members", pr("$ref")));
}

#[test]
fn json_literals() {
    let value = |input: &str| match f(&format!("a eq {input}")) {
        Filter::Compare(_, _, v) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(value(r#""a\"b\\c\/d\u00e9\n\t\r\b\f""#), s("a\"b\\c/dé\n\t\r\u{8}\u{c}"));
    assert_eq!(value(r#""\ud83d\ude00 \u4E2D""#), s("😀 中"));
    assert_eq!(value(r#""""#), s(""));
    assert_eq!(value(r#""raw é 中 😀""#), s("raw é 中 😀"));
    assert_eq!(value("42"), n(42));
    assert_eq!(value("-7"), n(-7));
    assert_eq!(value("0"), n(0));
    assert_eq!(value("1.5"), Literal::Number(serde_json::Number::from_f64(1.5).unwrap()));
    assert_eq!(value("-2.5E-3"), Literal::Number(serde_json::Number::from_f64(-0.0025).unwrap()));
    assert_eq!(value("1e3"), Literal::Number(serde_json::Number::from_f64(1000.0).unwrap()));
    assert_eq!(value("18446744073709551615"), Literal::Number(u64::MAX.into()));
    assert_eq!(value("true"), Literal::Bool(true));
    assert_eq!(value("false"), Literal::Bool(false));
    assert_eq!(value("null"), Literal::Null);
}

#[test]
fn upper_and_mixed_case_logical_keywords_keep_their_precedence() {
    let expected = Filter::Or(vec![pr("a"), Filter::And(vec![pr("b"), not(pr("c"))])]);
    for input in ["a pr OR b pr AND NOT (c pr)", "a pr Or b pr aNd nOt(c pr)", "a pr or b pr and not (c pr)"]
    {
        assert_eq!(f(input), expected, "{input}");
        assert_eq!(parse_filter_strict(input).ok(), Some(expected.clone()), "{input}");
    }
    assert_eq!(
        f(r#"emails[type eq "work" AND value co "@x" OR NOT (primary pr)]"#),
        vp(
            "emails",
            Filter::Or(vec![
                Filter::And(vec![eq("type", "work"), cmp("value", Co, s("@x"))]),
                not(pr("primary"))
            ])
        )
    );
    // the keywords still need whitespace after them to be keywords
    assert_eq!(
        f("ANDy pr AND ORder pr OR NOTes pr"),
        Filter::Or(vec![Filter::And(vec![pr("ANDy"), pr("ORder")]), pr("NOTes")])
    );
}

#[test]
fn attribute_names_that_start_with_a_keyword() {
    assert_eq!(f("notes pr"), pr("notes"));
    assert_eq!(f("orders eq 1"), cmp("orders", Eq, n(1)));
    assert_eq!(f("andy pr and prefix pr"), Filter::And(vec![pr("andy"), pr("prefix")]));
    assert_eq!(f("or pr or and pr"), Filter::Or(vec![pr("or"), pr("and")]));
    assert_eq!(f("eq eq 1"), cmp("eq", Eq, n(1)));
    assert_eq!(f("not.x pr"), pr("not.x"));
    assert_eq!(f("nothing pr and notable pr"), Filter::And(vec![pr("nothing"), pr("notable")]));
}

#[test]
fn unquoted_values_real_clients_send() {
    assert_eq!(f("externalId eq jyoung"), eq("externalId", "jyoung"));
    assert_eq!(f("emails.Value co example.com"), cmp("emails.Value", Co, s("example.com")));
    assert_eq!(
        f("meta.Created gt 2015-10-10T14:38:21.8617979-07:00"),
        cmp("meta.Created", Gt, s("2015-10-10T14:38:21.8617979-07:00"))
    );
    assert_eq!(f("employeeNumber eq 701984"), cmp("employeeNumber", Eq, n(701984)));
    assert_eq!(f("x eq 1.5.6"), eq("x", "1.5.6"));
    assert_eq!(f("x eq 01"), eq("x", "01"));
    assert_eq!(f("x eq 1x"), eq("x", "1x"));
    assert_eq!(f("active eq True"), cmp("active", Eq, Literal::Bool(true)));
    assert_eq!(f("active eq FALSE"), cmp("active", Eq, Literal::Bool(false)));
    assert_eq!(f("title eq NULL"), cmp("title", Eq, Literal::Null));
    assert_eq!(f("(externalId eq jyoung)"), eq("externalId", "jyoung"));
    assert_eq!(f("emails[value eq a@b.c]"), vp("emails", eq("value", "a@b.c")));
    assert_eq!(f(r#"x eq ab"c"#), eq("x", "ab\"c"));
    assert_eq!(
        f("name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)"),
        Filter::And(vec![
            eq("name.FamilyName", "Employee"),
            Filter::Or(vec![
                cmp("emails.Value", Co, s("example.com")),
                cmp("emails.Value", Co, s("example.org"))
            ])
        ])
    );
}

#[test]
fn extra_whitespace_anywhere_whitespace_is_allowed() {
    let expected = Filter::And(vec![eq("userName", "x"), Filter::Or(vec![pr("a"), pr("b")])]);
    for input in [
        r#"userName eq "x" and (a pr or b pr)"#,
        r#"   userName   eq   "x"   and   (  a  pr   or   b pr  )   "#,
        "\tuserName\teq\t\"x\"\nand\r\n( a pr or b pr )\n",
    ] {
        assert_eq!(f(input), expected, "{input:?}");
    }
    assert_eq!(f(r#"emails[ type eq "work" ]"#), vp("emails", eq("type", "work")));
}

#[test]
fn entra_value_path_with_a_trailing_comparison() {
    assert_eq!(
        f(r#"emails[type eq "work"].value eq "x@y.com""#),
        vp("emails", Filter::And(vec![eq("type", "work"), eq("value", "x@y.com")]))
    );
    // it means the same as the RFC form, so it is the same tree
    assert_eq!(
        f(r#"emails[type eq "work" and primary eq true].value pr"#),
        f(r#"emails[type eq "work" and primary eq true and value pr]"#)
    );
    assert_eq!(
        f(r#"emails[type eq "work" or type eq "home"].value co "@x""#),
        vp(
            "emails",
            Filter::And(vec![
                Filter::Or(vec![eq("type", "work"), eq("type", "home")]),
                cmp("value", Co, s("@x"))
            ])
        )
    );
    assert_eq!(
        f(r#"id pr and emails[type eq "work"].value eq x or a pr"#),
        Filter::Or(vec![
            Filter::And(vec![
                pr("id"),
                vp("emails", Filter::And(vec![eq("type", "work"), eq("value", "x")]))
            ]),
            pr("a")
        ])
    );
    assert!(parse_filter_strict(r#"emails[type eq "work"].value eq "x""#).is_err());
}

#[test]
fn strict_dialect_refuses_the_tolerances() {
    for input in ["externalId eq jyoung", "active eq True", "title eq NULL", "members[$ref pr]"] {
        assert!(parse_filter(input).is_ok(), "{input}");
        let err = parse_filter_strict(input).unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::InvalidFilter), "{input}");
    }
    assert!(parse_filter_strict(r#"userName eq "x" and not (a eq 1.5e3 or b eq null)"#).is_ok());
}

#[test]
fn errors_name_the_byte_and_what_was_expected() {
    let cases: &[(&str, &str)] = &[
        ("", "at byte 0: expected an attribute name, found the end of the input"),
        ("   ", "at byte 3: expected an attribute name"),
        ("userName", "at byte 8: expected a comparison operator (eq, ne, co, sw, ew, gt, lt, ge, le, pr)"),
        (
            r#"userName xx "x""#,
            "at byte 9: expected a comparison operator (eq, ne, co, sw, ew, gt, lt, ge, le, pr), found `xx`",
        ),
        (r#"userName eq"x""#, "at byte 11: expected whitespace and a value after the operator"),
        ("userName eq", "at byte 11: expected whitespace and a value"),
        ("userName eq ", "at byte 12: expected a comparison value"),
        (r#"userName eq "x"#, "at byte 12: expected a closing `\"` for the string that starts here"),
        (r#"userName eq "x"y"#, "at byte 15: expected whitespace, `)`, `]` or the end after the value"),
        (r#"userName eq "x" and"#, "at byte 16: expected `and`, `or` or the end of the filter"),
        (r#"userName eq "x" and "#, "at byte 20: expected an attribute name"),
        (
            r#"userName eq "x" userName eq "y""#,
            "at byte 16: expected `and`, `or` or the end of the filter, found `userName`",
        ),
        ("(userName pr", "at byte 12: expected `and`, `or` or `)`"),
        ("userName pr)", "at byte 11: expected `and`, `or` or the end of the filter, found `)`"),
        ("a pr and(b pr)", "at byte 5: expected `and`, `or` or the end of the filter"),
        ("a pr andb pr", "at byte 5: expected `and`, `or`"),
        ("a[b[c eq 1]]", "at byte 3: expected a comparison operator (value paths cannot be nested)"),
        ("a.b.c pr", "at byte 3: expected at most one sub-attribute"),
        ("1abc pr", "at byte 0: expected an attribute name"),
        ("a.1 pr", "at byte 2: expected an attribute name"),
        ("a-b.c$ pr", "at byte 5: expected a letter, digit"),
        (r#""x" eq 1"#, "at byte 0: expected an attribute name"),
        (r#"a eq "\q""#, "at byte 6: expected an escape"),
        (r#"a eq "\u12""#, "at byte 6: expected four hex digits"),
        (r#"a eq "\ud800""#, "at byte 6: expected a low surrogate"),
        (r#"a eq "\udc00""#, "at byte 6: expected a high surrogate"),
        ("a eq \"x\ny\"", "at byte 7: expected a control character in a string to be escaped"),
        ("not a pr", "at byte 4: expected `(` after `not`"),
        ("not (a pr", "at byte 9: expected `and`, `or` or `)`"),
        ("a eq 1e400", "at byte 5: expected a number within the range"),
        ("urn:x pr", "at byte 0: expected an attribute name or a schema URN"),
        ("urn:x: pr", "at byte 6: expected an attribute name"),
        ("a_b:c:d pr", "at byte 0: expected an attribute name or a schema URN"),
        (r#"emails[type eq "work"]]"#, "at byte 22: expected `and`, `or` or the end of the filter"),
        ("emails[]", "at byte 7: expected an attribute name"),
        ("()", "at byte 1: expected an attribute name"),
        ("a eq (b)", "at byte 5: expected a comparison value"),
        (r#"emails [type eq "work"]"#, "at byte 7: expected a comparison operator"),
        (r#"emails[type eq "work"].value"#, "at byte 28: expected a comparison operator"),
        (r#"emails[type eq "work"].value.x eq 1"#, "at byte 28: expected no further"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(input, expected)| match parse_filter(input) {
            Err(e) if e.detail.contains(expected) && e.scim_type == Some(ScimType::InvalidFilter) => None,
            other => Some(format!("{input:?}: got {other:?}, wanted {expected:?}")),
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn quotes_in_error_messages_are_short_and_never_split_a_character() {
    let input = format!("a xx{}", "é".repeat(100));
    let detail = filter_error(&input);
    assert!(detail.len() < 200, "{detail}");
    assert!(detail.contains("found `xxééééééééééééééééééééééé`") || detail.contains("found `xx"), "{detail}");
}

#[test]
fn nesting_up_to_the_limit_parses_and_beyond_it_fails() {
    let nest =
        |depth: usize, open: &str, close: &str| format!("{}a pr{}", open.repeat(depth), close.repeat(depth));
    assert!(parse_filter(&nest(MAX_FILTER_DEPTH, "(", ")")).is_ok());
    assert!(parse_filter(&nest(MAX_FILTER_DEPTH, "not (", ")")).is_ok());
    let detail = filter_error(&nest(MAX_FILTER_DEPTH + 1, "(", ")"));
    assert!(detail.contains(&format!("at byte {MAX_FILTER_DEPTH}: expected at most 32 levels")), "{detail}");
    filter_error(&nest(MAX_FILTER_DEPTH + 1, "not (", ")"));
    // a value path is one more level
    let deep_vp =
        format!("{}emails[type pr]{}", "(".repeat(MAX_FILTER_DEPTH - 1), ")".repeat(MAX_FILTER_DEPTH - 1));
    assert!(parse_filter(&deep_vp).is_ok());
    let too_deep_vp =
        format!("{}emails[type pr]{}", "(".repeat(MAX_FILTER_DEPTH), ")".repeat(MAX_FILTER_DEPTH));
    filter_error(&too_deep_vp);
}

#[test]
fn pathological_nesting_fails_fast_without_overflowing_the_stack() {
    for open in ["(", "not(", "not (", "a[", "(not ("] {
        let input = open.repeat(100_000);
        let (result, looked_at) = parse_filter_counting(&input);
        assert_eq!(result.unwrap_err().scim_type, Some(ScimType::InvalidFilter));
        assert_eq!(looked_at, 0, "over the length limit, nothing is parsed");
        // the same under the length limit reaches the depth limit
        let short = open.repeat(MAX_FILTER_LEN / open.len() / 2);
        let detail = parse_filter(&short).unwrap_err().detail;
        assert!(
            detail.contains("expected at most") || detail.contains("cannot be nested"),
            "{open}: {detail}"
        );
    }
}

#[test]
fn oversized_input_is_rejected_before_parsing() {
    let at_limit = format!("userName eq \"{}\"", "x".repeat(MAX_FILTER_LEN - 14));
    assert_eq!(at_limit.len(), MAX_FILTER_LEN);
    assert!(parse_filter(&at_limit).is_ok());
    let over = format!("userName eq \"{}\"", "x".repeat(MAX_FILTER_LEN - 13));
    let detail = filter_error(&over);
    assert!(detail.contains("expected at most 16384 bytes"), "{detail}");

    let megabyte = format!("userName eq \"{}\"", "x".repeat(1 << 20));
    let (result, looked_at) = parse_filter_counting(&megabyte);
    assert!(result.is_err());
    assert_eq!(looked_at, 0, "the length is checked before a byte is parsed");
}

#[test]
fn attribute_expression_count_is_limited() {
    let chain = |terms: usize| vec!["a pr"; terms].join(" or ");
    assert!(parse_filter(&chain(MAX_FILTER_TERMS)).is_ok());
    let detail = filter_error(&chain(MAX_FILTER_TERMS + 1));
    assert!(detail.contains("expected at most 1024 attribute expressions"), "{detail}");
    // terms inside value paths count too
    let vps = vec!["emails[type pr and value pr]"; MAX_FILTER_TERMS / 2 + 1].join(" or ");
    filter_error(&vps);
}

#[test]
fn parsing_work_is_linear() {
    // Counted in bytes looked at, not timed: 8x the input takes about 8x the work unless something is
    // quadratic, and no machine's load changes the count.
    let work = |terms: usize| {
        let input = vec![r#"emails[type eq "work" and value co "x"]"#; terms].join(" or ");
        let (result, looked_at) = parse_filter_counting(&input);
        assert!(result.is_ok());
        looked_at
    };
    let (small, large) = (work(40), work(320));
    assert!(large <= small * 8 + 64, "{small} vs {large}");
    // and the work per byte of input is a small constant
    let input = vec![r#"emails[type eq "work" and value co "x"]"#; 320].join(" or ");
    assert!(large <= input.len() * 3, "{large} for {} bytes", input.len());
}

/// Found by the fuzz target: raw control characters in an unquoted value printed as six-byte `\u0000`
/// escapes, so a filter under the length limit printed as one over it that no longer parsed.
#[test]
fn unquoted_values_cannot_hold_control_characters() {
    let input = format!("ee co ee{} or emails.Value co example.com", "\0".repeat(3000));
    let detail = filter_error(&input);
    assert!(detail.contains("at byte 8: expected a printable character"), "{detail}");
    assert!(filter_error("a eq x\u{1}y").contains("at byte 6"));
    // tabs and newlines are whitespace, so they end the value instead
    assert_eq!(f("a eq x\tor b pr"), Filter::Or(vec![eq("a", "x"), pr("b")]));
}

#[test]
fn the_length_limit_holds_for_the_standard_form_too() {
    // `1e15` prints as `1000000000000000.0`: 1000 of them fit the limit as written, not as printed
    let chain = |value: &str, terms: usize| vec![format!("a eq {value}"); terms].join(" or ");
    let expanding = chain("1e15", 1000);
    assert!(expanding.len() <= MAX_FILTER_LEN);
    let detail = filter_error(&expanding);
    assert!(detail.contains("expected at most 16384 bytes in standard form (this is 26996)"), "{detail}");
    let short = chain("1e15", 500);
    assert_eq!(parse_filter(&f(&short).to_string()), Ok(f(&short)));
    let stable = chain("1", 1020);
    assert!(stable.len() > MAX_FILTER_LEN / 2);
    assert_eq!(parse_filter(&f(&stable).to_string()), Ok(f(&stable)));
    // the same for paths
    let path = format!("emails[{}]", vec!["v eq 1e15"; 1000].join(" or "));
    assert!(path.len() <= MAX_FILTER_LEN);
    assert_eq!(parse_path(&path).unwrap_err().scim_type, Some(ScimType::InvalidPath));
}
