//! Schema-aware filter evaluation over stored resources (RFC 7644 §3.4.2.2), and the check that rejects
//! filters which are well-formed but meaningless for a resource type.
//!
//! Semantics, where the RFC leaves room:
//! - An attribute the schema does not define, or one that is never returned (`password`), matches nothing:
//!   every comparison and `pr` on it is false, so `not (unknown eq 1)` is true.
//! - Null, `""`, `[]` and `{}` all mean "unassigned" (RFC 7643 §2.5). `pr` is true when the attribute has a
//!   value that is not unassigned; `attr eq null` is the same as `not (attr pr)` and `attr ne null` the same
//!   as `attr pr`. Every other comparison needs a value, so `title ne "x"` is false when `title` is absent
//!   (as in SQL, and as RFC 7644's "any value matches" reading of multi-valued attributes gives).
//! - A multi-valued attribute matches when any of its values does. Comparing a complex attribute without a
//!   sub-attribute compares its `value` sub-attribute (`emails co "x"`, `members eq "id"`, `manager eq "id"`).
//! - Strings compare case-insensitively unless the attribute is `caseExact`; `dateTime`s chronologically;
//!   numbers numerically. A boolean also equals the strings "true"/"false" in any case (Entra sends
//!   `roles[primary eq "True"]`), a number the string holding it, a string attribute the text of a number
//!   (`employeeNumber eq 42`). A comparison between values of unrelated types is false, `ne` included.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Display;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use serde_json::{Number, Value};

use super::{AttrPath, CompareOp, Filter, Literal};
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::identity::comparison_key;
use crate::scim::schema::{AttrDef, AttrType, Location, ResourceSchema, Returned, Uniqueness};

/// Does `resource` (a stored resource in its JSON representation) satisfy `filter`?
pub fn matches(filter: &Filter, resource: &Value, schema: &ResourceSchema) -> bool {
    eval(filter, Scope::Resource { schema, resource })
}

/// Does one element of the multi-valued attribute `parent` satisfy `filter` (the inside of `attr[...]`)?
pub fn matches_element(filter: &Filter, element: &Value, parent: &AttrDef) -> bool {
    eval(filter, Scope::Element { parent, element })
}

/// Rejects filters that are well-formed but meaningless for this resource type (e.g. `gt` on a boolean).
pub fn check(filter: &Filter, schema: &ResourceSchema) -> ScimResult<()> {
    check_in(filter, CheckScope::Resource(schema))
}

/// [`check`] for the inside of a value path or a PATCH path filter on `parent`.
pub fn check_element(filter: &Filter, parent: &AttrDef) -> ScimResult<()> {
    check_in(filter, CheckScope::Element(parent))
}

// ---- evaluation -----------------------------------------------------------------------------------------

/// What attribute paths are relative to: a whole resource, or one element of a multi-valued attribute.
#[derive(Clone, Copy)]
enum Scope<'s, 'v> {
    Resource { schema: &'s ResourceSchema, resource: &'v Value },
    Element { parent: &'s AttrDef, element: &'v Value },
}

/// Whether a path without a sub-attribute on a complex attribute means the attribute itself (for `pr`)
/// or its `value` sub-attribute (for comparisons).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Presence,
    Comparison,
}

fn eval(filter: &Filter, scope: Scope<'_, '_>) -> bool {
    match filter {
        Filter::And(operands) => operands.iter().all(|f| eval(f, scope)),
        Filter::Or(operands) => operands.iter().any(|f| eval(f, scope)),
        Filter::Not(inner) => !eval(inner, scope),
        Filter::Present(path) => is_present(path, scope),
        Filter::Compare(path, op, Literal::Null) => match op {
            CompareOp::Eq => is_known(path, scope) && !is_present(path, scope),
            CompareOp::Ne => is_present(path, scope),
            _ => false,
        },
        Filter::Compare(path, op, literal) => {
            // unassigned values ("" included, RFC 7643 §2.5) take part in no comparison
            any_value(path, scope, Use::Comparison, |def, value| {
                has_value(value, 0) && compare(def, value, *op, literal)
            })
        }
        Filter::ValuePath(path, inner) => eval_value_path(path, inner, scope),
    }
}

fn is_present(path: &AttrPath, scope: Scope<'_, '_>) -> bool {
    any_value(path, scope, Use::Presence, |_, value| has_value(value, 0))
}

fn is_known(path: &AttrPath, scope: Scope<'_, '_>) -> bool {
    lookup(path, scope).is_some_and(|(def, _)| select(def, path.sub.as_deref(), Use::Presence).is_some())
}

fn eval_value_path(path: &AttrPath, inner: &Filter, scope: Scope<'_, '_>) -> bool {
    let Scope::Resource { .. } = scope else {
        return false; // the parser never nests value paths
    };
    let Some((def, Some(value))) = lookup(path, scope) else {
        return false;
    };
    if path.sub.is_some() || !def.is_complex() {
        return false;
    }
    each_item(value, |element| eval(inner, Scope::Element { parent: def, element }))
}

/// The attribute `path` names in `scope` and its raw value (before sub-attribute selection), or `None`
/// when the schema does not define it or never returns it.
fn lookup<'s, 'v>(path: &AttrPath, scope: Scope<'s, 'v>) -> Option<(&'s AttrDef, Option<&'v Value>)> {
    let (def, value) = match scope {
        Scope::Resource { schema, resource } => {
            let resolved = schema.resolve(path.urn.as_deref(), &path.name)?;
            let container = match resolved.location {
                Location::TopLevel => Some(resource),
                Location::Extension(urn) => member(resource, urn),
            };
            (resolved.def, container.and_then(|c| member(c, &resolved.def.name)))
        }
        Scope::Element { parent, element } => {
            if path.urn.is_some() {
                return None;
            }
            let def = parent.sub(&path.name)?;
            (def, member(element, &def.name))
        }
    };
    (def.returned != Returned::Never).then_some((def, value))
}

/// Which values of an attribute a path looks at.
#[derive(Clone, Copy)]
enum Selection<'s> {
    /// The attribute's own values.
    Whole(&'s AttrDef),
    /// One sub-attribute of each (complex) value: the one named, or `value` when comparing a complex
    /// attribute named without one.
    Member(&'s AttrDef),
}

impl<'s> Selection<'s> {
    fn def(self) -> &'s AttrDef {
        match self {
            Selection::Whole(def) | Selection::Member(def) => def,
        }
    }
}

fn select<'s>(def: &'s AttrDef, sub: Option<&str>, usage: Use) -> Option<Selection<'s>> {
    match sub {
        Some(sub) => def.sub(sub).map(Selection::Member),
        None if usage == Use::Comparison && def.is_complex() => def.value_sub().map(Selection::Member),
        None => Some(Selection::Whole(def)),
    }
}

/// Calls `test` on every value `path` selects, with the definition those values follow, until it returns
/// true. Arrays are looked into one level, so multi-valued attributes match when any value does.
fn any_value(
    path: &AttrPath,
    scope: Scope<'_, '_>,
    usage: Use,
    mut test: impl FnMut(&AttrDef, &Value) -> bool,
) -> bool {
    let Some((def, Some(value))) = lookup(path, scope) else {
        return false;
    };
    match select(def, path.sub.as_deref(), usage) {
        None => false,
        Some(Selection::Whole(def)) => each_item(value, |item| test(def, item)),
        Some(Selection::Member(sub)) => {
            each_item(value, |item| member(item, &sub.name).is_some_and(|v| each_item(v, |x| test(sub, x))))
        }
    }
}

/// `test` on each element of an array, or on the value itself when it is not one.
fn each_item(value: &Value, mut test: impl FnMut(&Value) -> bool) -> bool {
    match value {
        Value::Array(items) => items.iter().any(test),
        other => test(other),
    }
}

/// An object's member: the canonical spelling first, then any case (stored names are canonical, but a
/// resource written by an older version or by hand may not be).
fn member<'v>(object: &'v Value, name: &str) -> Option<&'v Value> {
    let map = object.as_object()?;
    map.get(name).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// Not null, `""`, `[]`, `{}`, or a container holding only those. Looks a few levels deep at most: resource
/// values are shallow, and the bound keeps a hostile document from exhausting the stack.
fn has_value(value: &Value, depth: usize) -> bool {
    const DEEPEST: usize = 3;
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) if depth < DEEPEST => items.iter().any(|v| has_value(v, depth + 1)),
        Value::Object(map) if depth < DEEPEST => map.values().any(|v| has_value(v, depth + 1)),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

// ---- comparing one value ----------------------------------------------------------------------------

/// `stored op literal` for one stored value of an attribute defined by `def`.
fn compare(def: &AttrDef, stored: &Value, op: CompareOp, literal: &Literal) -> bool {
    match (def.kind, op) {
        (AttrType::Boolean, CompareOp::Eq) => bools(stored, literal).is_some_and(|(a, b)| a == b),
        (AttrType::Boolean, CompareOp::Ne) => bools(stored, literal).is_some_and(|(a, b)| a != b),
        (AttrType::Boolean, _) => false,
        (_, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) => compare_text(def, stored, op, literal),
        (AttrType::Integer | AttrType::Decimal, _) => {
            compare_numbers(stored, literal).is_some_and(|ord| ordering_matches(op, ord))
        }
        (AttrType::DateTime, _) => {
            compare_times(stored, literal).is_some_and(|ord| ordering_matches(op, ord))
        }
        (AttrType::Binary, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le) => false,
        _ => compare_text(def, stored, op, literal),
    }
}

fn ordering_matches(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord.is_eq(),
        CompareOp::Ne => ord.is_ne(),
        CompareOp::Gt => ord.is_gt(),
        CompareOp::Ge => ord.is_ge(),
        CompareOp::Lt => ord.is_lt(),
        CompareOp::Le => ord.is_le(),
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn bools(stored: &Value, literal: &Literal) -> Option<(bool, bool)> {
    let stored = match stored {
        Value::Bool(b) => *b,
        Value::String(s) => parse_bool(s)?,
        _ => return None,
    };
    Some((stored, literal_bool(literal)?))
}

fn literal_bool(literal: &Literal) -> Option<bool> {
    match literal {
        Literal::Bool(b) => Some(*b),
        Literal::String(s) => parse_bool(s),
        _ => None,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn compare_numbers(stored: &Value, literal: &Literal) -> Option<Ordering> {
    let stored = match stored {
        Value::Number(n) => Cow::Borrowed(n),
        Value::String(s) => Cow::Owned(parse_number(s)?),
        _ => return None,
    };
    cmp_numbers(&stored, &*literal_number(literal)?)
}

fn literal_number(literal: &Literal) -> Option<Cow<'_, Number>> {
    match literal {
        Literal::Number(n) => Some(Cow::Borrowed(n)),
        Literal::String(s) => parse_number(s).map(Cow::Owned),
        _ => None,
    }
}

fn parse_number(s: &str) -> Option<Number> {
    s.trim().parse().ok()
}

/// Integers compare exactly; anything involving a fraction compares as `f64`.
fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    match (a.as_i128(), b.as_i128()) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn compare_times(stored: &Value, literal: &Literal) -> Option<Ordering> {
    Some(parse_time(stored.as_str()?)?.cmp(&literal_time(literal)?))
}

fn literal_time(literal: &Literal) -> Option<DateTime<FixedOffset>> {
    match literal {
        Literal::String(s) => parse_time(s),
        _ => None,
    }
}

/// RFC 3339 (any number of fractional digits, any offset); leniently also a date-time without an offset
/// or a bare date, both read as UTC.
pub(crate) fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))?;
    Some(naive.and_utc().fixed_offset())
}

/// String comparison, case-insensitive unless the attribute is `caseExact`. Numbers and booleans on
/// either side compare by their JSON text.
fn compare_text(def: &AttrDef, stored: &Value, op: CompareOp, literal: &Literal) -> bool {
    let (Some(stored), Some(wanted)) = (value_text(stored), literal_text(literal)) else {
        return false;
    };
    let text = if def.case_exact { Text::Exact } else { Text::IgnoreCase };
    // A unique name (userName, group displayName) is the same name in every spelling that prepares alike.
    let identity = !def.case_exact && def.uniqueness != Uniqueness::None;
    match op {
        CompareOp::Eq | CompareOp::Ne if identity => {
            (comparison_key(&stored) == comparison_key(&wanted)) == (op == CompareOp::Eq)
        }
        CompareOp::Eq => text.eq(&stored, &wanted),
        CompareOp::Ne => !text.eq(&stored, &wanted),
        CompareOp::Co => text.contains(&stored, &wanted),
        CompareOp::Sw => text.starts_with(&stored, &wanted),
        CompareOp::Ew => text.ends_with(&stored, &wanted),
        _ => ordering_matches(op, text.cmp(&stored, &wanted)),
    }
}

fn value_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

fn literal_text(literal: &Literal) -> Option<Cow<'_, str>> {
    match literal {
        Literal::String(s) => Some(Cow::Borrowed(s)),
        Literal::Number(n) => Some(Cow::Owned(n.to_string())),
        Literal::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Literal::Null => None,
    }
}

/// How strings compare. Case-insensitive comparison works on bytes when both sides are ASCII (the usual
/// case, no allocation) and on lower-cased copies otherwise.
#[derive(Clone, Copy)]
enum Text {
    Exact,
    IgnoreCase,
}

impl Text {
    fn folded<'a>(self, a: &'a str, b: &'a str) -> Option<(Cow<'a, str>, Cow<'a, str>)> {
        match self {
            Text::IgnoreCase if !(a.is_ascii() && b.is_ascii()) => {
                Some((Cow::Owned(a.to_lowercase()), Cow::Owned(b.to_lowercase())))
            }
            _ => None,
        }
    }

    fn eq(self, a: &str, b: &str) -> bool {
        match (self, self.folded(a, b)) {
            (_, Some((a, b))) => a == b,
            (Text::Exact, None) => a == b,
            (Text::IgnoreCase, None) => a.eq_ignore_ascii_case(b),
        }
    }

    fn starts_with(self, a: &str, b: &str) -> bool {
        match (self, self.folded(a, b)) {
            (_, Some((a, b))) => a.starts_with(&*b),
            (Text::Exact, None) => a.starts_with(b),
            (Text::IgnoreCase, None) => {
                a.len() >= b.len() && a.as_bytes()[..b.len()].eq_ignore_ascii_case(b.as_bytes())
            }
        }
    }

    fn ends_with(self, a: &str, b: &str) -> bool {
        match (self, self.folded(a, b)) {
            (_, Some((a, b))) => a.ends_with(&*b),
            (Text::Exact, None) => a.ends_with(b),
            (Text::IgnoreCase, None) => {
                a.len() >= b.len() && a.as_bytes()[a.len() - b.len()..].eq_ignore_ascii_case(b.as_bytes())
            }
        }
    }

    fn contains(self, a: &str, b: &str) -> bool {
        match (self, self.folded(a, b)) {
            (_, Some((a, b))) => a.contains(&*b),
            (Text::Exact, None) => a.contains(b),
            (Text::IgnoreCase, None) => {
                b.is_empty() || a.as_bytes().windows(b.len()).any(|w| w.eq_ignore_ascii_case(b.as_bytes()))
            }
        }
    }

    fn cmp(self, a: &str, b: &str) -> Ordering {
        match (self, self.folded(a, b)) {
            (_, Some((a, b))) => a.cmp(&b),
            (Text::Exact, None) => a.cmp(b),
            (Text::IgnoreCase, None) => {
                a.bytes().map(|c| c.to_ascii_lowercase()).cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
            }
        }
    }
}

// ---- equality keys ------------------------------------------------------------------------------------

/// How `eq` compares the values of one sub-attribute, when it is a plain equality of keys: two values are
/// `eq` exactly when their keys (see [`element_eq_keys`], [`literal_eq_key`]) are equal. This is what
/// lets a PATCH find the elements `emails[type eq "work"]` selects by a hash look-up instead of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EqKey {
    /// Strings of a `caseExact` attribute, and the JSON text of numbers and booleans.
    Exact,
    /// Strings compared case-insensitively: lower-cased (which is what [`Text::eq`] compares).
    IgnoreCase,
    /// Booleans, and the strings "true" / "false" in any case.
    Boolean,
}

impl EqKey {
    /// The key kind of `def`, or `None` where `eq` is no key equality: numbers (`1` equals `1.0`), dates
    /// (any offset), unique names (RFC 8265 preparation), complex values, and attributes never returned.
    pub(crate) fn of(def: &AttrDef) -> Option<EqKey> {
        if def.returned == Returned::Never {
            return None;
        }
        match def.kind {
            AttrType::Boolean => Some(EqKey::Boolean),
            AttrType::String | AttrType::Reference | AttrType::Binary => {
                if def.case_exact {
                    Some(EqKey::Exact)
                } else if def.uniqueness != Uniqueness::None {
                    None
                } else {
                    Some(EqKey::IgnoreCase)
                }
            }
            AttrType::Decimal | AttrType::Integer | AttrType::DateTime | AttrType::Complex => None,
        }
    }

    fn of_text(self, text: &str) -> String {
        match self {
            EqKey::IgnoreCase => text.to_lowercase(),
            _ => text.to_string(),
        }
    }
}

/// The keys of the values the sub-attribute `name` holds in `element` (one per value; none when it has
/// no value `eq` could match).
pub(crate) fn element_eq_keys(kind: EqKey, name: &str, element: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(value) = member(element, name) {
        each_item(value, |x| {
            if has_value(x, 0) {
                let key = match kind {
                    EqKey::Boolean => match x {
                        Value::Bool(b) => Some(b.to_string()),
                        Value::String(s) => parse_bool(s).map(|b| b.to_string()),
                        _ => None,
                    },
                    _ => value_text(x).map(|t| kind.of_text(&t)),
                };
                keys.extend(key);
            }
            false
        });
    }
    keys
}

/// The key a value must have to be `eq` the literal; `None` when no value can be.
pub(crate) fn literal_eq_key(kind: EqKey, literal: &Literal) -> Option<String> {
    match kind {
        EqKey::Boolean => literal_bool(literal).map(|b| b.to_string()),
        _ => literal_text(literal).map(|t| kind.of_text(&t)),
    }
}

// ---- checking -----------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum CheckScope<'s> {
    Resource(&'s ResourceSchema),
    Element(&'s AttrDef),
}

fn check_in(filter: &Filter, scope: CheckScope<'_>) -> ScimResult<()> {
    match filter {
        Filter::And(operands) | Filter::Or(operands) => operands.iter().try_for_each(|f| check_in(f, scope)),
        Filter::Not(inner) => check_in(inner, scope),
        Filter::Present(path) => check_filterable(path, scope).map(|_| ()),
        Filter::Compare(path, op, literal) => check_compare(path, *op, literal, scope),
        Filter::ValuePath(path, inner) => {
            let Some(def) = check_filterable(path, scope)? else {
                return Ok(());
            };
            if path.sub.is_some() || !def.is_complex() || !def.multi_valued {
                let why = "a value filter applies only to a multi-valued complex attribute";
                return Err(check_error(path, format_args!("{path}[...]"), why));
            }
            check_in(inner, CheckScope::Element(def))
        }
    }
}

/// The definition of the attribute `path` names (`None` when unknown: unknown attributes match nothing,
/// they are not an error), refusing attributes that are never returned: filtering on them would leak
/// their values one query at a time.
fn check_filterable<'s>(path: &AttrPath, scope: CheckScope<'s>) -> ScimResult<Option<&'s AttrDef>> {
    let def = match scope {
        CheckScope::Resource(schema) => schema.resolve(path.urn.as_deref(), &path.name).map(|r| r.def),
        CheckScope::Element(parent) => parent.sub(&path.name).filter(|_| path.urn.is_none()),
    };
    match def {
        Some(def) if def.returned == Returned::Never => {
            Err(check_error(path, path, "the attribute is never returned, so it cannot be used in a filter"))
        }
        other => Ok(other),
    }
}

/// A filter that parses but cannot apply: where its offending expression starts (when the filter was
/// parsed from text), the expression in standard form, and why.
fn check_error(path: &AttrPath, expression: impl Display, why: &str) -> ScimError {
    let at = path.at.map(|at| format!(" at byte {at}")).unwrap_or_default();
    ScimError::invalid_filter(format!("invalid filter{at}: `{expression}`: {why}"))
}

fn check_compare(path: &AttrPath, op: CompareOp, literal: &Literal, scope: CheckScope<'_>) -> ScimResult<()> {
    let reject = |why: &str| Err(check_error(path, format_args!("{path} {op} {literal}"), why));
    if *literal == Literal::Null && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
        return reject("null can only be compared with eq or ne");
    }
    let Some(def) = check_filterable(path, scope)? else {
        return Ok(());
    };
    if *literal == Literal::Null {
        return Ok(()); // a presence test in disguise
    }
    let Some(leaf) = select(def, path.sub.as_deref(), Use::Comparison).map(Selection::def) else {
        if path.sub.is_none() {
            return reject("a complex attribute without a `value` needs a sub-attribute to compare");
        }
        return Ok(()); // an unknown sub-attribute matches nothing
    };
    let ordering = matches!(op, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le);
    let substring = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
    match leaf.kind {
        AttrType::Boolean if ordering || substring => reject("a boolean can only be compared with eq or ne"),
        AttrType::Boolean if literal_bool(literal).is_none() => {
            reject("a boolean can only be compared with true or false")
        }
        AttrType::Binary if ordering => reject("binary values cannot be ordered"),
        AttrType::Integer | AttrType::Decimal if !substring && literal_number(literal).is_none() => {
            reject("the attribute is a number")
        }
        AttrType::DateTime if !substring && literal_time(literal).is_none() => {
            reject("the attribute is a dateTime; compare it with an RFC 3339 timestamp")
        }
        _ => Ok(()),
    }
}
