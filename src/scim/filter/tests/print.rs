//! Printing: strict RFC syntax with exactly the parentheses the tree needs.

use super::*;
use CompareOp::*;

#[test]
fn operators_lower_case_and_values_json() {
    assert_eq!(f(r#"userName EQ "bjensen""#).to_string(), r#"userName eq "bjensen""#);
    assert_eq!(f("title PR").to_string(), "title pr");
    assert_eq!(f("externalId eq jyoung").to_string(), r#"externalId eq "jyoung""#);
    assert_eq!(f("a eq TRUE or b ne Null").to_string(), "a eq true or b ne null");
    assert_eq!(f("a ge -1.5e3").to_string(), "a ge -1500.0");
    assert_eq!(f("a lt 18446744073709551615").to_string(), "a lt 18446744073709551615");
    for op in [Eq, Ne, Co, Sw, Ew, Gt, Lt, Ge, Le] {
        assert_eq!(op.to_string(), op.as_str());
        assert_eq!(cmp("a", op, n(1)).to_string(), format!("a {} 1", op.as_str()));
    }
}

#[test]
fn strings_are_escaped_as_json() {
    let literal = s("quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} del \u{7f} é 😀");
    let printed = literal.to_string();
    let expected =
        "\"quote \\\" backslash \\\\ newline \\n tab \\t nul \\u0000 bell \\u0007 del \u{7f} é 😀\"";
    assert_eq!(printed, expected);
    assert_eq!(
        serde_json::from_str::<String>(&printed).unwrap(),
        "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} del \u{7f} é 😀"
    );
}

#[test]
fn parentheses_exactly_where_the_tree_needs_them() {
    let (a, b, c) = (pr("a"), pr("b"), pr("c"));
    let cases = [
        (Filter::Or(vec![a.clone(), Filter::And(vec![b.clone(), c.clone()])]), "a pr or b pr and c pr"),
        (Filter::And(vec![Filter::Or(vec![a.clone(), b.clone()]), c.clone()]), "(a pr or b pr) and c pr"),
        (Filter::And(vec![Filter::And(vec![a.clone(), b.clone()]), c.clone()]), "(a pr and b pr) and c pr"),
        (Filter::Or(vec![Filter::Or(vec![a.clone(), b.clone()]), c.clone()]), "(a pr or b pr) or c pr"),
        (Filter::Or(vec![Filter::And(vec![a.clone(), b.clone()]), c.clone()]), "a pr and b pr or c pr"),
        (Filter::And(vec![not(a.clone()), b.clone()]), "not (a pr) and b pr"),
        (not(Filter::Or(vec![a.clone(), b.clone()])), "not (a pr or b pr)"),
        (not(not(a.clone())), "not (not (a pr))"),
        (
            Filter::And(vec![
                a.clone(),
                vp("emails", Filter::Or(vec![eq("type", "work"), eq("type", "home")])),
            ]),
            r#"a pr and emails[type eq "work" or type eq "home"]"#,
        ),
    ];
    for (tree, text) in cases {
        assert_eq!(tree.to_string(), text);
        assert_eq!(f(text), tree, "{text}");
    }
}

#[test]
fn entra_value_path_prints_in_rfc_form() {
    let tree = f(r#"emails[type eq "work"].value eq "x@y.com""#);
    assert_eq!(tree.to_string(), r#"emails[type eq "work" and value eq "x@y.com"]"#);
    assert_eq!(parse_filter_strict(&tree.to_string()), Ok(tree));
}

#[test]
fn microsoft_reference_filters_round_trip() {
    for input in [
        "name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)",
        "meta.Created gt 2015-10-10T14:38:21.8617979-07:00",
        r#"userName eq "x""#,
        "externalId eq jyoung",
        r#"emails[type eq "work"].value eq "x@y.com""#,
        r#"id eq "g" and members eq "u""#,
        r#"displayName eq "Sales""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#,
    ] {
        let tree = f(input);
        let printed = tree.to_string();
        assert_eq!(parse_filter_strict(&printed), Ok(tree), "{input} printed as {printed}");
    }
    assert_eq!(
        f("name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)")
            .to_string(),
        r#"name.FamilyName eq "Employee" and (emails.Value co "example.com" or emails.Value co "example.org")"#
    );
}
