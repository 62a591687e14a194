//! Differential test against the `scim_v2` crate's LALRPOP parser: on strict RFC filters and paths, and
//! on random mutations of them, both parsers accept and reject the same inputs.
//!
//! We compare our strict dialect ([`parse_filter_strict`], [`parse_path_strict`]); the lenient one accepts
//! unquoted values, any-case `True`/`NULL`, `$ref` names and Entra's `emails[...].value eq "x"` by design.
//! The deliberate differences that remain, each excluded below where it can arise:
//! - `not(` without a space: RFC 7644's ABNF (`"not" "(" valFilter ")"`) allows it, `scim_v2` does not.
//! - Whitespace between tokens the RFC writes adjacent (`emails [type eq "x"]`, `emails[type pr] .value`):
//!   `scim_v2`'s lexer skips whitespace everywhere, we follow the grammar.
//! - An attribute or sub-attribute named `true`, `false` or `null` (lower case) standing as a token of its
//!   own: see [`names_a_literal_word`].
//! - A PATCH path with a filter after a sub-attribute (`name.givenName[x pr]`): the ABNF's `attrPath`
//!   allows a sub-attribute there, but a filter over a single-valued sub-attribute has no meaning in
//!   PATCH, so we reject it; `scim_v2` accepts it.
//! - Limits: `scim_v2` allows 64 levels and 1024 terms, we allow 32 levels. The generated inputs stay far
//!   below both, so they never decide the outcome here.

use std::str::FromStr;

use proptest::prelude::*;

use super::props::{filter_tree_with, patch_path_with};
use super::*;

/// String literal contents: printable ASCII (quotes and backslashes included, printed escaped) and a few
/// non-ASCII letters. No Unicode whitespace, whose classification differs between the two lexers only in
/// ways irrelevant to SCIM.
fn literal_text() -> impl Strategy<Value = String> + Clone {
    "[ -~éß中😀]{0,8}"
}

/// Characters mutations insert: everything that means something to either grammar, plus letters.
const INSERTABLE: &[char] = &[
    ' ', '(', ')', '[', ']', '"', '\\', '.', ':', '-', '_', '$', '0', '1', 'e', 'E', '+', 'a', 'n', 'd', 'o',
    'r', 't', 'q', 'p', 'u', 'x', 'N', 'O', 'T', '/', ',', '\'', '\t',
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Insert(usize, char),
    Swap(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), prop::sample::select(INSERTABLE)).prop_map(|(i, c)| Mutation::Insert(i, c)),
        any::<usize>().prop_map(Mutation::Swap),
    ]
}

fn mutate(input: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = input.chars().collect();
    for m in mutations {
        let len = chars.len();
        match *m {
            Mutation::Delete(i) if len > 0 => {
                chars.remove(i % len);
            }
            Mutation::Insert(i, c) => chars.insert(i % (len + 1), c),
            Mutation::Swap(i) if len > 1 => chars.swap(i % (len - 1), i % (len - 1) + 1),
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// `not(` (any case) where `not` starts a word: accepted by the RFC's grammar and by us, not by `scim_v2`.
fn has_not_paren(input: &str) -> bool {
    let lower = input.to_ascii_lowercase();
    lower.match_indices("not(").any(|(i, _)| {
        !lower[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '$'))
    })
}

/// Whitespace just before `[`, or around a `.` that follows `]`.
fn has_space_at_brackets(input: &str) -> bool {
    let compact: String = input.chars().filter(|c| !matches!(c, ' ' | '\t')).collect();
    let spaced_bracket =
        input.chars().zip(input.chars().skip(1)).any(|(a, b)| matches!(a, ' ' | '\t') && b == '[');
    spaced_bracket
        || (compact.contains("].") && !input.contains("]."))
        || input.contains(". ")
        || input.contains(".\t")
}

fn is_literal_word(name: &str) -> bool {
    ["true", "false", "null"].contains(&name)
}

/// `scim_v2`'s lexer reserves `true`, `false` and `null` (lower case, as the JSON literals) as tokens, so
/// it rejects an attribute named exactly that where the name is a token of its own: `true pr`,
/// `emails[null pr]`, `false[type pr]`. RFC 7644's ATTRNAME reserves no word. Inside a dotted or
/// URN-qualified path (`true.value pr`, `urn:x:null pr`) its longest-match rule reads one longer name
/// token, which it accepts like we do, so those are not excused.
fn names_a_literal_word(filter: &Filter) -> bool {
    let literal = |p: &AttrPath| p.urn.is_none() && p.sub.is_none() && is_literal_word(&p.name);
    match filter {
        Filter::And(fs) | Filter::Or(fs) => fs.iter().any(names_a_literal_word),
        Filter::Not(f) => names_a_literal_word(f),
        Filter::Present(p) | Filter::Compare(p, _, _) => literal(p),
        Filter::ValuePath(p, f) => literal(p) || names_a_literal_word(f),
    }
}

/// [`names_a_literal_word`] for a PATCH path, whose sub-attribute after `].` is a token of its own too
/// (`emails[type pr].null`), while the one in `name.givenName` is part of the path token.
fn path_names_a_literal_word(path: &PatchPath) -> bool {
    let filtered = path.filter.is_some();
    let lone_name = path.urn.is_none() && (filtered || path.sub.is_none()) && is_literal_word(&path.name);
    let lone_sub = filtered && path.sub.as_deref().is_some_and(is_literal_word);
    lone_name || lone_sub || path.filter.as_ref().is_some_and(names_a_literal_word)
}

/// `Some(verdict)` when both parsers must agree on `input`, `None` for a documented difference.
fn filter_verdicts(input: &str) -> Option<(bool, bool)> {
    let ours = parse_filter_strict(input);
    let theirs = scim_v2::filter::Filter::from_str(input).is_ok();
    if has_not_paren(input) || has_space_at_brackets(input) {
        return None;
    }
    if !theirs && ours.as_ref().is_ok_and(names_a_literal_word) {
        return None;
    }
    Some((ours.is_ok(), theirs))
}

fn path_verdicts(input: &str) -> Option<(bool, bool)> {
    let ours = parse_path_strict(input);
    let theirs = scim_v2::filter::PatchPath::from_str(input);
    if has_not_paren(input) || has_space_at_brackets(input) {
        return None;
    }
    if let Ok(scim_v2::filter::PatchPath::Value(vp)) = &theirs
        && vp.attr.sub_attr.is_some()
    {
        return None;
    }
    if theirs.is_err() && ours.as_ref().is_ok_and(path_names_a_literal_word) {
        return None;
    }
    Some((ours.is_ok(), theirs.is_ok()))
}

fn assert_agree(input: &str, verdicts: Option<(bool, bool)>) -> Result<(), TestCaseError> {
    if let Some((ours, theirs)) = verdicts {
        prop_assert_eq!(ours, theirs, "we {} {:?}", if ours { "accept" } else { "reject" }, input);
    }
    Ok(())
}

/// Every filter in RFC 7644 §3.4.2.2's examples, and the two it gives for case-insensitive names and
/// operators.
const RFC_EXAMPLES: &[&str] = &[
    r#"userName Eq "john""#,
    r#"Username eq "john""#,
    r#"userName eq "bjensen""#,
    r#"name.familyName co "O'Malley""#,
    r#"userName sw "J""#,
    r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
    "title pr",
    r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
    r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
    r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
    r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
    r#"title pr and userType eq "Employee""#,
    r#"title pr or userType eq "Intern""#,
    r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
    r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
    r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
    r#"userType eq "Employee" and (emails.type eq "work")"#,
    r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
    r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
];

/// Filters that break one rule of RFC 7644's ABNF each.
const MALFORMED: &[&str] = &[
    "",
    "   ",
    r#"userName eq"#,
    r#"userName "bjensen""#,
    r#"userName xx "bjensen""#,
    r#"userName eq "bjensen"#,
    r#"userName eq 'bjensen'"#,
    r#"userName eq bjensen"#,
    r#"userName eq "\x""#,
    r#"userName eq 01"#,
    r#"userName eq 1."#,
    r#"userName eq tru"#,
    r#"1userName eq "x""#,
    r#"user@Name eq "x""#,
    "title pr pr",
    r#"(userName eq "x""#,
    r#"userName eq "x")"#,
    r#"userName eq "x" and"#,
    r#"and userName eq "x""#,
    r#"userName eq "x" or or title pr"#,
    r#"userName eq "x" title pr"#,
    r#"not userName eq "x""#,
    r#"not ()"#,
    "()",
    r#"emails[type eq "work""#,
    r#"emails[type eq "work"]]"#,
    "emails[]",
    r#"emails[type[value pr]]"#,
    r#"emails[type eq "work"].value eq "x""#,
    r#"emails[type eq "work"][value pr]"#,
    r#"name.familyName.x eq "x""#,
];

#[test]
fn rfc_examples_are_accepted_by_both() {
    for example in RFC_EXAMPLES {
        assert_eq!(filter_verdicts(example), Some((true, true)), "{example}");
    }
}

#[test]
fn malformed_filters_are_rejected_by_both() {
    for malformed in MALFORMED {
        assert_eq!(filter_verdicts(malformed), Some((false, false)), "{malformed}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn strict_filters_are_accepted_by_both(tree in filter_tree_with(literal_text())) {
        let input = tree.to_string();
        prop_assert!(parse_filter_strict(&input).is_ok());
        prop_assert!(scim_v2::filter::Filter::from_str(&input).is_ok(), "scim_v2 rejects {:?}", input);
    }

    #[test]
    fn mutated_filters_get_the_same_verdict(
        tree in filter_tree_with(literal_text()),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let input = mutate(&tree.to_string(), &mutations);
        assert_agree(&input, filter_verdicts(&input))?;
    }

    #[test]
    fn strict_paths_are_accepted_by_both(path in patch_path_with(literal_text())) {
        let input = path.to_string();
        prop_assert!(parse_path_strict(&input).is_ok());
        prop_assert!(scim_v2::filter::PatchPath::from_str(&input).is_ok(), "scim_v2 rejects {:?}", input);
    }

    #[test]
    fn mutated_paths_get_the_same_verdict(
        path in patch_path_with(literal_text()),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let input = mutate(&path.to_string(), &mutations);
        assert_agree(&input, path_verdicts(&input))?;
    }
}

#[test]
fn known_differences_are_what_the_module_doc_says() {
    let theirs = |s: &str| scim_v2::filter::Filter::from_str(s).is_ok();
    assert!(parse_filter_strict("not(a pr)").is_ok() && !theirs("not(a pr)"));
    assert!(parse_filter_strict(r#"emails [type eq "x"]"#).is_err() && theirs(r#"emails [type eq "x"]"#));
    for excused in ["true pr", "emails[null pr]", r#"false[type eq "x"]"#, r#"a eq 1 and (null eq "x")"#] {
        assert!(parse_filter_strict(excused).is_ok() && !theirs(excused), "{excused}");
        assert_eq!(filter_verdicts(excused), None, "{excused}");
    }
    // the same words inside a longer path token are names to both parsers
    for agreed in ["true.value pr", "urn:x:y:null pr", "nullable pr", "a.false eq true", "True pr"] {
        assert_eq!(filter_verdicts(agreed), Some((true, true)), "{agreed}");
    }
    for excused in ["true", "null[type pr]", "emails[type pr].false", "emails[true pr].value"] {
        assert!(scim_v2::filter::PatchPath::from_str(excused).is_err(), "{excused}");
        assert_eq!(path_verdicts(excused).map(|(ours, _)| ours), None, "{excused}");
    }
    assert_eq!(path_verdicts("true.value"), Some((true, true)));
    assert!(parse_path_strict("name.givenName[x pr]").is_err());
    assert!(scim_v2::filter::PatchPath::from_str("name.givenName[x pr]").is_ok());
    // and the tolerances the lenient parser adds on top
    for tolerated in ["externalId eq jyoung", "active eq True", r#"emails[type eq "work"].value eq "x""#] {
        assert!(parse_filter(tolerated).is_ok() && !theirs(tolerated), "{tolerated}");
    }
}
