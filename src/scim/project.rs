//! Which attributes a response carries (`attributes` / `excludedAttributes` with each attribute's
//! `returned`, RFC 7644 §3.4.2.5 and §3.9) and the order of list results (`sortBy` / `sortOrder`, §3.4.2.3).

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use super::error::{ScimError, ScimResult};
use super::filter::{PatchPath, parse_path};
use super::schema::{AttrDef, AttrType, Location, Resolved, ResourceSchema, Returned};

/// One entry of an `attributes` or `excludedAttributes` list.
#[derive(Debug, Clone, PartialEq)]
struct Selector {
    urn: Option<String>,
    name: String,
    sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
enum Mode {
    #[default]
    Default,
    Only(Vec<Selector>),
    Except(Vec<Selector>),
}

/// The attribute selection of one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Projection {
    mode: Mode,
}

impl Projection {
    /// From the query parameters; `attributes` wins when both are given.
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> ScimResult<Projection> {
        let list = |s: Option<&str>| s.map(parse_list).transpose().map(Option::unwrap_or_default);
        let only = list(attributes)?;
        let except = list(excluded)?;
        let mode = match (only.is_empty(), except.is_empty()) {
            (false, _) => Mode::Only(only),
            (true, false) => Mode::Except(except),
            (true, true) => Mode::Default,
        };
        Ok(Projection { mode })
    }

    /// Will the top-level attribute `name` of `schema` appear in the response? The store asks before loading
    /// expensive attributes such as a group's `members`.
    pub fn wants(&self, schema: &ResourceSchema, name: &str) -> bool {
        let Some(resolved) = schema.resolve(None, name) else { return false };
        let urn = location_urn(schema, resolved.location);
        self.keep(schema, urn, resolved.def, &Value::Bool(true)).is_some()
    }

    /// The response form of a stored resource.
    pub fn apply(&self, schema: &ResourceSchema, doc: Value) -> Value {
        let Value::Object(mut map) = doc else { return doc };
        if self.mode == Mode::Default {
            // Most requests: keep the document, dropping only what is never or only on request returned.
            map.retain(|key, value| self.keep_in_place(schema, key, value));
            return Value::Object(map);
        }
        let mut out = Map::with_capacity(map.len());
        for (key, value) in &map {
            if key == "schemas" {
                out.insert(key.clone(), value.clone());
            } else if let Some(ext) = schema.extension(key) {
                if let Some(v) = self.keep_extension(schema, &ext.id, value) {
                    out.insert(key.clone(), v);
                }
            } else if let Some(resolved) = schema.resolve(Some(&schema.core.id), key)
                && let Some(v) = self.keep(schema, &schema.core.id, resolved.def, value)
            {
                out.insert(key.clone(), v);
            }
        }
        Value::Object(out)
    }

    /// Is this the selection of a request without `attributes` and `excludedAttributes`?
    pub fn is_default(&self) -> bool {
        self.mode == Mode::Default
    }

    /// The default projection of one top-level entry, changing it in place (no copy when it is kept whole).
    fn keep_in_place(&self, schema: &ResourceSchema, key: &str, value: &mut Value) -> bool {
        if key == "schemas" {
            return true;
        }
        if let Some(ext) = schema.extension(key) {
            return match self.keep_extension(schema, &ext.id, value) {
                Some(v) => {
                    *value = v;
                    true
                }
                None => false,
            };
        }
        let Some(resolved) = schema.resolve(Some(&schema.core.id), key) else { return false };
        let def = resolved.def;
        match def.returned {
            Returned::Never | Returned::Request => false,
            _ if hides_subs(def) => match keep_whole(def, value) {
                Some(v) => {
                    *value = v;
                    true
                }
                None => false,
            },
            _ => true,
        }
    }

    fn keep_extension(&self, schema: &ResourceSchema, urn: &str, value: &Value) -> Option<Value> {
        let Value::Object(map) = value else { return None };
        let ext = schema.extension(urn)?;
        let whole = self.selectors().iter().any(|s| is_schema_selector(s, urn));
        if whole && matches!(self.mode, Mode::Except(_)) {
            return None;
        }
        let mut out = Map::new();
        for (key, v) in map {
            let Some(def) = ext.attr(key) else { continue };
            if let Some(kept) = self.keep(schema, urn, def, v) {
                out.insert(key.clone(), kept);
            }
        }
        (!out.is_empty()).then_some(Value::Object(out))
    }

    fn selectors(&self) -> &[Selector] {
        match &self.mode {
            Mode::Default => &[],
            Mode::Only(s) | Mode::Except(s) => s,
        }
    }

    /// The part of `value` (of attribute `def` in schema `urn`) that the response carries.
    fn keep(&self, schema: &ResourceSchema, urn: &str, def: &AttrDef, value: &Value) -> Option<Value> {
        match (def.returned, &self.mode) {
            (Returned::Never, _) => None,
            (Returned::Always, _) => keep_whole(def, value),
            (Returned::Request, Mode::Default) => None,
            (_, Mode::Default) => keep_whole(def, value),
            (_, Mode::Only(list)) => keep_named(def, value, &hits(schema, list, urn, def)),
            (_, Mode::Except(list)) => keep_unexcluded(def, value, &hits(schema, list, urn, def)),
        }
    }
}

/// The selectors in `list` that name `def` (of schema `urn`). Naming an extension's schema names none of
/// its attributes, so it does not ask for those returned only on request.
fn hits<'l>(schema: &ResourceSchema, list: &'l [Selector], urn: &str, def: &AttrDef) -> Vec<&'l Selector> {
    let on_request = def.returned == Returned::Request;
    list.iter()
        .filter(|sel| selects(schema, sel, urn, def) && !(on_request && is_schema_selector(sel, urn)))
        .collect()
}

/// For `attributes`: what the selectors that name the attribute ask for.
fn keep_named(def: &AttrDef, value: &Value, hits: &[&Selector]) -> Option<Value> {
    let whole = hits.iter().any(|s| s.sub.is_none());
    let subs: Vec<&str> = hits.iter().filter_map(|s| s.sub.as_deref()).collect();
    match (whole, subs.is_empty()) {
        (false, true) => None,
        (true, true) => keep_whole(def, value),
        _ => keep_subs(def, value, |name, returned| {
            (whole && returned != Returned::Request) || names_sub(&subs, name)
        }),
    }
}

/// For `excludedAttributes`: what is returned by default and not excluded.
fn keep_unexcluded(def: &AttrDef, value: &Value, hits: &[&Selector]) -> Option<Value> {
    if def.returned == Returned::Request || hits.iter().any(|s| s.sub.is_none()) {
        return None;
    }
    let subs: Vec<&str> = hits.iter().filter_map(|s| s.sub.as_deref()).collect();
    keep_subs(def, value, |name, returned| returned != Returned::Request && !names_sub(&subs, name))
}

fn names_sub(subs: &[&str], name: &str) -> bool {
    subs.iter().any(|s| s.eq_ignore_ascii_case(name))
}

fn parse_list(list: &str) -> ScimResult<Vec<Selector>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let PatchPath { urn, name, filter, sub } = parse_path(item)?;
            if filter.is_some() {
                return Err(ScimError::invalid_value(format!(
                    "'{item}': attribute lists take attribute names only"
                )));
            }
            Ok(Selector { urn, name, sub })
        })
        .collect()
}

fn location_urn<'a>(schema: &'a ResourceSchema, location: Location<'a>) -> &'a str {
    match location {
        Location::TopLevel => &schema.core.id,
        Location::Extension(urn) => urn,
    }
}

/// `urn:...:enterprise:2.0:User` alone selects the whole extension.
fn is_schema_selector(sel: &Selector, urn: &str) -> bool {
    sel.sub.is_none()
        && sel.urn.as_deref().is_some_and(|u| format!("{u}:{}", sel.name).eq_ignore_ascii_case(urn))
}

fn selects(schema: &ResourceSchema, sel: &Selector, urn: &str, def: &AttrDef) -> bool {
    if is_schema_selector(sel, urn) {
        return true;
    }
    match schema.resolve(sel.urn.as_deref(), &sel.name) {
        Some(r) => location_urn(schema, r.location).eq_ignore_ascii_case(urn) && r.def.name == def.name,
        None => false,
    }
}

/// Does a complex attribute have sub-attributes that its whole value leaves out (returned never, or only
/// when named)?
fn hides_subs(def: &AttrDef) -> bool {
    def.is_complex()
        && def.sub_attributes.iter().any(|s| matches!(s.returned, Returned::Never | Returned::Request))
}

/// The whole value, minus sub-attributes returned never or only on request.
fn keep_whole(def: &AttrDef, value: &Value) -> Option<Value> {
    if hides_subs(def) {
        return keep_subs(def, value, |_, returned| returned != Returned::Request);
    }
    Some(value.clone())
}

/// The sub-attributes of a complex value (or of each element) that are always returned, or that `wanted`
/// picks by canonical name and `returned`; never those never returned.
fn keep_subs(def: &AttrDef, value: &Value, wanted: impl Fn(&str, Returned) -> bool) -> Option<Value> {
    let pick = |element: &Value| -> Option<Value> {
        let Value::Object(map) = element else { return Some(element.clone()) };
        let kept: Map<String, Value> = map
            .iter()
            .filter(|(k, _)| {
                let (name, returned) =
                    def.sub(k).map_or((k.as_str(), Returned::Default), |s| (&s.name, s.returned));
                match returned {
                    Returned::Always => true,
                    Returned::Never => false,
                    other => wanted(name, other),
                }
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (!kept.is_empty()).then_some(Value::Object(kept))
    };
    match value {
        Value::Array(items) => {
            let kept: Vec<Value> = items.iter().filter_map(pick).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        other => pick(other),
    }
}

/// A value to order resources by.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SortValue {
    Text(String),
    Number(f64),
    Bool(bool),
    Time(DateTime<FixedOffset>),
}

impl SortValue {
    fn cmp(&self, other: &SortValue) -> Ordering {
        match (self, other) {
            (SortValue::Text(a), SortValue::Text(b)) => a.cmp(b),
            (SortValue::Number(a), SortValue::Number(b)) => a.total_cmp(b),
            (SortValue::Bool(a), SortValue::Bool(b)) => a.cmp(b),
            (SortValue::Time(a), SortValue::Time(b)) => a.cmp(b),
            // Mixed types only arise from malformed data; keep the order deterministic.
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            SortValue::Bool(_) => 0,
            SortValue::Number(_) => 1,
            SortValue::Time(_) => 2,
            SortValue::Text(_) => 3,
        }
    }
}

/// The position of one resource in a sorted list.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey(Option<SortValue>);

/// A parsed `sortBy` / `sortOrder`: case-insensitive unless the attribute is caseExact, dateTimes
/// chronologically, a multi-valued attribute by its primary (else first) value, and resources without a
/// value last in either order.
pub struct SortSpec<'s> {
    resolved: Resolved<'s>,
    sub: Option<&'s AttrDef>,
    descending: bool,
}

impl<'s> SortSpec<'s> {
    /// `None` when the attribute is unknown: nothing has a value for it, so every resource ties.
    pub fn new(
        schema: &'s ResourceSchema,
        sort_by: &str,
        descending: bool,
    ) -> ScimResult<Option<SortSpec<'s>>> {
        let path = parse_path(sort_by)?;
        if path.filter.is_some() {
            return Err(ScimError::invalid_value("sortBy takes an attribute name, not a filter"));
        }
        let Some(resolved) = schema.resolve(path.urn.as_deref(), &path.name) else { return Ok(None) };
        let sub = match (&path.sub, resolved.def.is_complex()) {
            (Some(name), true) => resolved.def.sub(name),
            (None, true) => resolved.def.value_sub(),
            _ => None,
        };
        Ok(Some(SortSpec { resolved, sub, descending }))
    }

    pub fn key(&self, doc: &Value) -> SortKey {
        let leaf = self.sub.unwrap_or(self.resolved.def);
        let value = self.resolved.get(doc).and_then(|value| {
            let element = match value {
                Value::Array(items) => {
                    items.iter().find(|i| super::value::is_primary(i)).or_else(|| items.first())?
                }
                other => other,
            };
            match self.sub {
                Some(sub) => element.get(sub.name.as_str()),
                None => Some(element),
            }
        });
        SortKey(value.and_then(|v| sort_value(leaf, v)))
    }

    pub fn compare(&self, a: &SortKey, b: &SortKey) -> Ordering {
        match (&a.0, &b.0) {
            (Some(a), Some(b)) if self.descending => b.cmp(a),
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }
}

/// Sorts documents in place (stable: equal keys keep their order).
pub fn sort(
    docs: &mut Vec<Value>,
    schema: &ResourceSchema,
    sort_by: &str,
    descending: bool,
) -> ScimResult<()> {
    let Some(spec) = SortSpec::new(schema, sort_by, descending)? else { return Ok(()) };
    let mut keyed: Vec<(SortKey, Value)> = docs.drain(..).map(|d| (spec.key(&d), d)).collect();
    keyed.sort_by(|(a, _), (b, _)| spec.compare(a, b));
    docs.extend(keyed.into_iter().map(|(_, d)| d));
    Ok(())
}

fn sort_value(def: &AttrDef, value: &Value) -> Option<SortValue> {
    match (def.kind, value) {
        (AttrType::DateTime, Value::String(s)) => DateTime::parse_from_rfc3339(s).ok().map(SortValue::Time),
        (_, Value::String(s)) if def.case_exact => Some(SortValue::Text(s.clone())),
        (_, Value::String(s)) => Some(SortValue::Text(s.to_lowercase())),
        (_, Value::Number(n)) => n.as_f64().map(SortValue::Number),
        (_, Value::Bool(b)) => Some(SortValue::Bool(*b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::schema::{ENTERPRISE_URN, Registry, ResourceKind};
    use crate::scim::testing::{BEHAVIOUR_URN, behaviour_users};

    fn users() -> ResourceSchema {
        Registry::standard().resource(ResourceKind::User).clone()
    }

    fn doc() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_URN],
            "id": "u1", "externalId": "e1", "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "b@x.com", "type": "work"}],
            "password": "must never leak",
            ENTERPRISE_URN: {"department": "Sales", "costCenter": "42"},
            "meta": {"resourceType": "User"}
        })
    }

    fn project(attributes: Option<&str>, excluded: Option<&str>) -> Value {
        Projection::parse(attributes, excluded).unwrap().apply(&users(), doc())
    }

    #[test]
    fn default_projection_drops_never_returned_attributes() {
        let mut want = doc();
        want.as_object_mut().unwrap().remove("password");
        assert_eq!(project(None, None), want);
    }

    #[test]
    fn attributes_keeps_listed_and_always_returned() {
        assert_eq!(
            project(Some("userName,name.familyName"), None),
            json!({"schemas": doc()["schemas"], "id": "u1", "userName": "bjensen", "name": {"familyName": "Jensen"}})
        );
        assert_eq!(
            project(
                Some("emails.value, urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
                None
            ),
            json!({"schemas": doc()["schemas"], "id": "u1", "emails": [{"value": "b@x.com"}], ENTERPRISE_URN: {"department": "Sales"}})
        );
        assert_eq!(project(Some("id"), None), json!({"schemas": doc()["schemas"], "id": "u1"}));
        assert_eq!(project(Some("password"), None), json!({"schemas": doc()["schemas"], "id": "u1"}));
        assert_eq!(project(Some(ENTERPRISE_URN), None)[ENTERPRISE_URN], doc()[ENTERPRISE_URN]);
        assert_eq!(project(Some("USERNAME"), None)["userName"], json!("bjensen"));
    }

    #[test]
    fn excluded_attributes_drops_listed_but_never_id() {
        let got = project(None, Some("emails,name.givenName,id,department"));
        assert_eq!(got["id"], json!("u1"));
        assert!(got.get("emails").is_none());
        assert_eq!(got["name"], json!({"familyName": "Jensen"}));
        assert_eq!(got[ENTERPRISE_URN], json!({"costCenter": "42"}));
        assert!(got.get("password").is_none());
        let got = project(None, Some(ENTERPRISE_URN));
        assert!(got.get(ENTERPRISE_URN).is_none());
    }

    #[test]
    fn returned_on_request_only_when_named_in_attributes() {
        let doc = json!({"schemas": [BEHAVIOUR_URN], "id": "u1", "userName": "bjensen",
            BEHAVIOUR_URN: {"badgeId": "B-1", "clearance": "secret", "locker": {"number": "L-7", "code": "1234"}}});
        let ext = |attributes: Option<&str>, excluded: Option<&str>| {
            let projected =
                Projection::parse(attributes, excluded).unwrap().apply(&behaviour_users(), doc.clone());
            projected.get(BEHAVIOUR_URN).cloned().unwrap_or(Value::Null)
        };
        let by_default = json!({"badgeId": "B-1", "locker": {"number": "L-7"}});
        assert_eq!(ext(None, None), by_default);
        assert_eq!(ext(None, Some("userName")), by_default);
        assert_eq!(ext(Some(BEHAVIOUR_URN), None), by_default, "naming the schema names no attribute");
        assert_eq!(ext(Some("badgeId"), None), json!({"badgeId": "B-1"}));
        assert_eq!(ext(Some("locker"), None), json!({"locker": {"number": "L-7"}}));
        assert_eq!(ext(Some("clearance"), None), json!({"clearance": "secret"}));
        let qualified = format!("{BEHAVIOUR_URN}:clearance,locker.code");
        assert_eq!(ext(Some(&qualified), None), json!({"clearance": "secret", "locker": {"code": "1234"}}));
        let whole_and_code = format!("{BEHAVIOUR_URN},locker.code");
        assert_eq!(
            ext(Some(&whole_and_code), None),
            json!({"badgeId": "B-1", "locker": {"number": "L-7", "code": "1234"}})
        );
        // excluding never brings back what is returned only on request
        assert_eq!(ext(None, Some("locker.number")), json!({"badgeId": "B-1"}));
    }

    #[test]
    fn wants_tells_the_store_whether_to_load_members() {
        let groups = Registry::standard().resource(ResourceKind::Group).clone();
        let wants =
            |a: Option<&str>, e: Option<&str>| Projection::parse(a, e).unwrap().wants(&groups, "members");
        assert!(wants(None, None));
        assert!(!wants(None, Some("members")));
        assert!(!wants(Some("displayName"), None));
        assert!(wants(Some("members.value"), None));
        assert!(!wants(Some("id"), None));
    }

    #[test]
    fn sorting_is_case_aware_chronological_and_puts_missing_last() {
        let mut docs = vec![
            json!({"id": "1", "userName": "bob", "meta": {"created": "2020-01-01T10:00:00+02:00"}}),
            json!({"id": "2", "userName": "Alice", "meta": {"created": "2020-01-01T09:00:00Z"}}),
            json!({"id": "3"}),
            json!({"id": "4", "userName": "carol", "meta": {"created": "2019-12-31T23:00:00-05:00"}}),
        ];
        let ids =
            |docs: &[Value]| docs.iter().map(|d| d["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
        sort(&mut docs, &users(), "userName", false).unwrap();
        assert_eq!(ids(&docs), ["2", "1", "4", "3"]);
        sort(&mut docs, &users(), "userName", true).unwrap();
        assert_eq!(ids(&docs), ["4", "1", "2", "3"]);
        // 1 is 08:00Z, 2 is 09:00Z and 4 is 04:00Z, all on 2020-01-01
        sort(&mut docs, &users(), "meta.created", false).unwrap();
        assert_eq!(ids(&docs), ["4", "1", "2", "3"]);
        // externalId is caseExact: upper case sorts first
        let mut docs = vec![json!({"id": "a", "externalId": "b"}), json!({"id": "b", "externalId": "B"})];
        sort(&mut docs, &users(), "externalId", false).unwrap();
        assert_eq!(ids(&docs), ["b", "a"]);
    }

    #[test]
    fn multi_valued_sort_uses_the_primary_value() {
        let mut docs = vec![
            json!({"id": "1", "emails": [{"value": "z@x"}, {"value": "a@x", "primary": false}]}),
            json!({"id": "2", "emails": [{"value": "y@x"}, {"value": "b@x", "primary": true}]}),
        ];
        sort(&mut docs, &users(), "emails", false).unwrap();
        assert_eq!(docs[0]["id"], json!("2"));
    }
}
