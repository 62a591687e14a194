//! Property tests: printing round-trips through the parser, and evaluation agrees with a reference
//! evaluator written directly over a small typed user model.

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Timelike, Utc};
use proptest::prelude::*;
use serde_json::Number;

use super::*;

// ---- strategies for trees the parser can produce ------------------------------------------------------

pub(super) fn attr_name() -> impl Strategy<Value = String> {
    // `not` followed by whitespace is always the keyword, so it cannot name an attribute; `scim_v2` (see
    // the differential tests) reads `true`, `false` and `null` as literals where a name stands alone
    "[a-zA-Z][a-zA-Z0-9_-]{0,7}".prop_filter("a keyword", |n| {
        !n.eq_ignore_ascii_case("not") && !["true", "false", "null"].contains(&n.as_str())
    })
}

fn schema_urn() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(USER_URN.to_owned()),
        Just(ENTERPRISE_URN.to_owned()),
        "[a-zA-Z][a-zA-Z0-9.-]{0,5}:[a-zA-Z0-9_.:-]{0,12}",
    ]
}

pub(super) fn attr_path() -> impl Strategy<Value = AttrPath> {
    (prop::option::weighted(0.2, schema_urn()), attr_name(), prop::option::weighted(0.3, attr_name()))
        .prop_map(|(urn, name, sub)| AttrPath { urn, name, sub, at: None })
}

fn compare_op() -> impl Strategy<Value = CompareOp> {
    use CompareOp::*;
    prop::sample::select(vec![Eq, Ne, Co, Sw, Ew, Gt, Lt, Ge, Le])
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
        (-1000i32..1000, 0u8..4)
            .prop_filter_map("finite", |(m, e)| Number::from_f64(f64::from(m) / 10f64.powi(i32::from(e)))),
    ]
}

fn literal_with(text: impl Strategy<Value = String> + 'static) -> impl Strategy<Value = Literal> {
    prop_oneof![
        4 => text.prop_map(Literal::String),
        2 => number().prop_map(Literal::Number),
        1 => any::<bool>().prop_map(Literal::Bool),
        1 => Just(Literal::Null),
    ]
}

fn attr_expr_with(literal: BoxedStrategy<Literal>) -> impl Strategy<Value = Filter> {
    prop_oneof![
        1 => attr_path().prop_map(Filter::Present),
        4 => (attr_path(), compare_op(), literal).prop_map(|(p, op, v)| Filter::Compare(p, op, v)),
    ]
}

/// `and`/`or` chains of two or more, and `not`, over `leaf`.
fn logic(leaf: BoxedStrategy<Filter>, depth: u32) -> BoxedStrategy<Filter> {
    leaf.prop_recursive(depth, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
    .boxed()
}

/// Any tree the parser can produce from strict RFC syntax, string literals drawn from `text`.
pub(super) fn filter_tree_with(
    text: impl Strategy<Value = String> + Clone + 'static,
) -> BoxedStrategy<Filter> {
    let attr_expr = || attr_expr_with(literal_with(text.clone()).boxed()).boxed();
    let element_filter = logic(attr_expr(), 2);
    let value_path = (attr_path(), element_filter).prop_map(|(p, f)| Filter::ValuePath(p, Box::new(f)));
    logic(prop_oneof![4 => attr_expr(), 1 => value_path].boxed(), 3)
}

fn filter_tree() -> BoxedStrategy<Filter> {
    filter_tree_with(any::<String>())
}

pub(super) fn patch_path_with(
    text: impl Strategy<Value = String> + Clone + 'static,
) -> BoxedStrategy<PatchPath> {
    let element_filter = logic(attr_expr_with(literal_with(text).boxed()).boxed(), 2);
    prop_oneof![
        attr_path().prop_map(|p| PatchPath { urn: p.urn, name: p.name, filter: None, sub: p.sub }),
        (prop::option::of(schema_urn()), attr_name(), element_filter, prop::option::of(attr_name()))
            .prop_map(|(urn, name, filter, sub)| PatchPath { urn, name, filter: Some(filter), sub }),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn printed_trees_parse_back_to_themselves(tree in filter_tree()) {
        let printed = tree.to_string();
        prop_assert_eq!(parse_filter_strict(&printed), Ok(tree.clone()), "printed: {}", printed);
        prop_assert_eq!(parse_filter(&printed), Ok(tree));
    }

    #[test]
    fn printed_paths_parse_back_to_themselves(path in patch_path_with(any::<String>())) {
        let printed = path.to_string();
        prop_assert_eq!(parse_path_strict(&printed), Ok(path.clone()), "printed: {}", printed);
        prop_assert_eq!(parse_path(&printed), Ok(path));
    }

    /// Whatever the lenient parser accepts prints as strict syntax for the same tree.
    #[test]
    fn anything_accepted_prints_as_strict_syntax(input in "[a-zA-Z0-9 ()\\[\\]\".:_$-]{0,40}|[a-z]{1,6} (eq|co|gt|pr) [a-zA-Z0-9\".:-]{0,12}( (and|or) [a-z]{1,4} pr)?") {
        // `$ref`-style names are a tolerance of their own, so they need the lenient parser to read back
        let strict = !input.contains('$');
        if let Ok(tree) = parse_filter(&input) {
            prop_assert_eq!(parse_filter(&tree.to_string()), Ok(tree.clone()));
            if strict {
                prop_assert_eq!(parse_filter_strict(&tree.to_string()), Ok(tree));
            }
        }
        if let Ok(path) = parse_path(&input) {
            prop_assert_eq!(parse_path(&path.to_string()), Ok(path.clone()));
            if strict {
                prop_assert_eq!(parse_path_strict(&path.to_string()), Ok(path));
            }
        }
    }
}

// ---- reference evaluator ------------------------------------------------------------------------------

/// A user with a few attributes of each type, from which the JSON the store would hold is derived.
#[derive(Debug, Clone)]
struct Person {
    user_name: Option<String>,
    external_id: Option<String>,
    active: Option<bool>,
    login_count: Option<i64>,
    last_seen: Option<(DateTime<Utc>, FixedOffset, usize)>,
    emails: Vec<Email>,
}

#[derive(Debug, Clone)]
struct Email {
    value: Option<String>,
    kind: Option<String>,
    primary: Option<bool>,
}

/// Every string the test uses, so that equality and substring tests hit.
const WORDS: &[&str] =
    &["alice@x.org", "ALICE@X.ORG", "Alice", "bob", "b", "x.org", "work", "WORK", "home", ""];

fn instant(k: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2015, 10, 10, 21, 38, 21).single().unwrap() + Duration::milliseconds(k * 250)
}

fn offset() -> impl Strategy<Value = FixedOffset> {
    prop::sample::select(vec![0, 3600, -7 * 3600, 5 * 3600 + 1800, -(9 * 3600 + 30 * 60)])
        .prop_map(|secs| FixedOffset::east_opt(secs).unwrap())
}

fn format_time(t: DateTime<Utc>, offset: FixedOffset, fraction_digits: usize) -> String {
    let local = t.with_timezone(&offset);
    let fraction = match fraction_digits {
        0 => String::new(),
        3 => format!(".{:03}", local.nanosecond() / 1_000_000),
        _ => format!(".{:07}", local.nanosecond() / 100),
    };
    let zone = if offset.local_minus_utc() == 0 && fraction_digits != 3 {
        "Z".to_owned()
    } else {
        local.format("%:z").to_string()
    };
    format!("{}{fraction}{zone}", local.format("%Y-%m-%dT%H:%M:%S"))
}

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(WORDS).prop_map(str::to_owned)
}

fn person() -> impl Strategy<Value = Person> {
    let email = (prop::option::of(word()), prop::option::of(word()), prop::option::of(any::<bool>()))
        .prop_map(|(value, kind, primary)| Email { value, kind, primary });
    (
        prop::option::of(word()),
        prop::option::of(word()),
        prop::option::of(any::<bool>()),
        prop::option::of(-2i64..3),
        prop::option::of((0i64..4, offset(), prop::sample::select(vec![0usize, 3, 7]))),
        prop::collection::vec(email, 0..3),
    )
        .prop_map(|(user_name, external_id, active, login_count, seen, emails)| Person {
            user_name,
            external_id,
            active,
            login_count,
            // without fraction digits the stored text holds whole seconds
            last_seen: seen.map(|(k, offset, digits)| {
                let t = instant(k);
                (if digits == 0 { t.with_nanosecond(0).unwrap() } else { t }, offset, digits)
            }),
            emails,
        })
}

impl Person {
    fn to_json(&self) -> Value {
        let mut ext = serde_json::Map::new();
        if let Some(n) = self.login_count {
            ext.insert("loginCount".into(), n.into());
        }
        if let Some((t, offset, digits)) = self.last_seen {
            ext.insert("lastSeen".into(), format_time(t, offset, digits).into());
        }
        let emails: Vec<Value> = self
            .emails
            .iter()
            .map(|e| {
                let mut m = serde_json::Map::new();
                e.value.as_ref().map(|v| m.insert("value".into(), v.as_str().into()));
                e.kind.as_ref().map(|v| m.insert("type".into(), v.as_str().into()));
                e.primary.map(|v| m.insert("primary".into(), v.into()));
                Value::Object(m)
            })
            .collect();
        let mut user = serde_json::Map::new();
        user.insert("schemas".into(), json!([USER_URN, TEST_EXT_URN]));
        self.user_name.as_ref().map(|v| user.insert("userName".into(), v.as_str().into()));
        self.external_id.as_ref().map(|v| user.insert("externalId".into(), v.as_str().into()));
        self.active.map(|v| user.insert("active".into(), v.into()));
        if !emails.is_empty() {
            user.insert("emails".into(), emails.into());
        }
        user.insert(TEST_EXT_URN.into(), Value::Object(ext));
        Value::Object(user)
    }
}

/// One typed value as the reference sees it.
#[derive(Debug, Clone)]
enum Typed {
    Text { text: String, case_exact: bool },
    Bool(bool),
    Int(i64),
    Time(DateTime<Utc>),
}

fn text(s: &Option<String>, case_exact: bool) -> Option<Typed> {
    // RFC 7643 §2.5: an empty string is unassigned
    s.as_ref().filter(|s| !s.is_empty()).map(|s| Typed::Text { text: s.clone(), case_exact })
}

fn email_has_value(e: &Email) -> bool {
    text(&e.value, false).is_some() || text(&e.kind, false).is_some() || e.primary.is_some()
}

fn email_values(e: &Email, sub: &str) -> Vec<Typed> {
    match sub {
        "value" => text(&e.value, false).into_iter().collect(),
        "type" => text(&e.kind, false).into_iter().collect(),
        "primary" => e.primary.map(Typed::Bool).into_iter().collect(),
        _ => vec![],
    }
}

/// The values a path (as the strategies below spell them) selects from a person.
fn person_values(p: &Person, path: &AttrPath, presence: bool) -> Vec<Typed> {
    match (path.name.as_str(), path.sub.as_deref()) {
        ("userName", None) => text(&p.user_name, false).into_iter().collect(),
        ("externalId", None) => text(&p.external_id, true).into_iter().collect(),
        ("active", None) => p.active.map(Typed::Bool).into_iter().collect(),
        ("loginCount", None) => p.login_count.map(Typed::Int).into_iter().collect(),
        ("lastSeen", None) => p.last_seen.map(|(t, _, _)| Typed::Time(t)).into_iter().collect(),
        ("emails", None) if presence => {
            p.emails.iter().filter(|e| email_has_value(e)).map(|_| Typed::Bool(true)).collect()
        }
        ("emails", None) => p.emails.iter().flat_map(|e| email_values(e, "value")).collect(),
        ("emails", Some(sub)) => p.emails.iter().flat_map(|e| email_values(e, sub)).collect(),
        _ => unreachable!("the strategy made {path}"),
    }
}

fn reference(filter: &Filter, values: &dyn Fn(&AttrPath, bool) -> Vec<Typed>, emails: &[Email]) -> bool {
    match filter {
        Filter::And(fs) => fs.iter().all(|f| reference(f, values, emails)),
        Filter::Or(fs) => fs.iter().any(|f| reference(f, values, emails)),
        Filter::Not(f) => !reference(f, values, emails),
        Filter::Present(path) => !values(path, true).is_empty(),
        Filter::Compare(path, CompareOp::Eq, Literal::Null) => values(path, true).is_empty(),
        Filter::Compare(path, CompareOp::Ne, Literal::Null) => !values(path, true).is_empty(),
        Filter::Compare(path, op, literal) => {
            values(path, false).iter().any(|v| reference_compare(v, *op, literal))
        }
        Filter::ValuePath(_, inner) => emails.iter().any(|e| {
            let element_values = |path: &AttrPath, _: bool| email_values(e, &path.name);
            reference(inner, &element_values, &[])
        }),
    }
}

fn reference_compare(value: &Typed, op: CompareOp, literal: &Literal) -> bool {
    use std::cmp::Ordering;
    let ordered = |ord: Ordering| match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        _ => unreachable!(),
    };
    match (value, literal) {
        (Typed::Text { text, case_exact }, Literal::String(wanted)) => {
            let (a, b) = if *case_exact {
                (text.clone(), wanted.clone())
            } else {
                (text.to_lowercase(), wanted.to_lowercase())
            };
            match op {
                CompareOp::Co => a.contains(&b),
                CompareOp::Sw => a.starts_with(&b),
                CompareOp::Ew => a.ends_with(&b),
                _ => ordered(a.cmp(&b)),
            }
        }
        (Typed::Bool(b), Literal::Bool(wanted)) => ordered(b.cmp(wanted)),
        (Typed::Bool(b), Literal::String(wanted)) => ordered(b.cmp(&wanted.eq_ignore_ascii_case("true"))),
        (Typed::Int(i), Literal::Number(wanted)) => {
            ordered((*i as f64).partial_cmp(&wanted.as_f64().unwrap()).unwrap())
        }
        (Typed::Time(t), Literal::String(wanted)) => {
            ordered(t.cmp(&DateTime::parse_from_rfc3339(wanted).unwrap().with_timezone(&Utc)))
        }
        other => unreachable!("the strategy paired {other:?}"),
    }
}

// ---- filters over the model, type-correct so that they pass `check` -----------------------------------

fn ops(list: &[CompareOp]) -> impl Strategy<Value = CompareOp> + use<> {
    prop::sample::select(list.to_vec())
}

const ALL_OPS: &[CompareOp] = &[
    CompareOp::Eq,
    CompareOp::Ne,
    CompareOp::Co,
    CompareOp::Sw,
    CompareOp::Ew,
    CompareOp::Gt,
    CompareOp::Lt,
    CompareOp::Ge,
    CompareOp::Le,
];
const ORDER_OPS: &[CompareOp] =
    &[CompareOp::Eq, CompareOp::Ne, CompareOp::Gt, CompareOp::Lt, CompareOp::Ge, CompareOp::Le];

fn bool_literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<bool>().prop_map(Literal::Bool),
        prop::sample::select(vec!["True", "false", "TRUE", "False"]).prop_map(s),
    ]
}

fn time_literal() -> impl Strategy<Value = Literal> {
    (0i64..4, offset(), prop::sample::select(vec![0usize, 3, 7]))
        .prop_map(|(k, offset, digits)| s(&format_time(instant(k), offset, digits)))
}

/// Comparisons on one email's sub-attributes (the inside of `emails[...]`, or after `emails.`).
fn email_comparison(prefix: &'static str) -> impl Strategy<Value = Filter> {
    let path = move |sub: &str| if prefix.is_empty() { attr(sub) } else { attr(&format!("{prefix}.{sub}")) };
    prop_oneof![
        (prop::sample::select(vec!["value", "type"]), ops(ALL_OPS), word())
            .prop_map(move |(sub, op, w)| Filter::Compare(path(sub), op, s(&w))),
        (ops(&[CompareOp::Eq, CompareOp::Ne]), bool_literal()).prop_map(move |(op, v)| Filter::Compare(
            path("primary"),
            op,
            v
        )),
        prop::sample::select(vec!["value", "type", "primary"])
            .prop_map(move |sub| Filter::Present(path(sub))),
        (prop::sample::select(vec!["value", "type", "primary"]), ops(&[CompareOp::Eq, CompareOp::Ne]))
            .prop_map(move |(sub, op)| Filter::Compare(path(sub), op, Literal::Null)),
    ]
}

fn model_comparison() -> impl Strategy<Value = Filter> {
    let string_attr = prop::sample::select(vec!["userName", "externalId", "emails"]);
    let any_attr =
        prop::sample::select(vec!["userName", "externalId", "emails", "active", "loginCount", "lastSeen"]);
    prop_oneof![
        (string_attr, ops(ALL_OPS), word()).prop_map(|(a, op, w)| cmp(a, op, s(&w))),
        (ops(&[CompareOp::Eq, CompareOp::Ne]), bool_literal()).prop_map(|(op, v)| cmp("active", op, v)),
        (ops(ORDER_OPS), -3i64..4).prop_map(|(op, v)| cmp("loginCount", op, n(v))),
        (ops(ORDER_OPS), time_literal()).prop_map(|(op, v)| cmp("lastSeen", op, v)),
        any_attr.clone().prop_map(pr),
        (any_attr, ops(&[CompareOp::Eq, CompareOp::Ne])).prop_map(|(a, op)| cmp(a, op, Literal::Null)),
        email_comparison("emails"),
    ]
}

fn model_filter() -> BoxedStrategy<Filter> {
    let value_path = logic(email_comparison("").boxed(), 2).prop_map(|inner| vp("emails", inner));
    logic(prop_oneof![4 => model_comparison(), 1 => value_path].boxed(), 3)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn evaluation_agrees_with_the_reference(filter in model_filter(), person in person()) {
        let schema = user_schema();
        prop_assert_eq!(check(&filter, &schema), Ok(()), "{}", filter);
        let values = |path: &AttrPath, presence: bool| person_values(&person, path, presence);
        let expected = reference(&filter, &values, &person.emails);
        let json = person.to_json();
        prop_assert_eq!(matches(&filter, &json, &schema), expected, "{} on {}", filter, json);
    }
}
