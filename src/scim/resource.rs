//! Resources as they are stored: normalisation of create and replace bodies (canonical names, unknown and
//! read-only input dropped, required attributes checked), group member lists, and the canonical layout of
//! a stored resource (`schemas`, `id`, attributes in schema order, extensions, `meta`).

use serde_json::{Map, Value};

use super::error::{ScimError, ScimResult, ScimType};
use super::identity::check_identity;
use super::schema::{AttrDef, Location, Mutability, Resolved, ResourceKind, ResourceSchema};
use super::value::coerce;

/// A create or replace body reduced to what is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    /// Canonical top-level attributes and extension objects (keyed by URN); never `id`, `meta`,
    /// `schemas`, `groups`, `members` or `password`.
    pub attrs: Map<String, Value>,
    /// Group members in the order given, without duplicates (`None` when the body has no `members`).
    pub members: Option<Vec<MemberEntry>>,
    /// The clear-text password, for the store to hash; it is never part of `attrs`.
    pub password: Option<String>,
}

/// Reduces a POST or PUT body to its stored form.
pub fn normalize(schema: &ResourceSchema, input: &Value) -> ScimResult<Normalized> {
    let Value::Object(body) = input else {
        return Err(ScimError::invalid_syntax("the request body must be a JSON object"));
    };
    let mut out = Normalized { attrs: Map::new(), members: None, password: None };
    for (key, value) in body {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(ext) = schema.extension(key) {
            normalize_extension(schema, &ext.id, value, &mut out)?;
            continue;
        }
        let (urn, name) = split_urn(key);
        match schema.resolve(urn, name) {
            Some(resolved) => put_attr(schema.kind, resolved, value, &mut out)?,
            None => log::debug!("dropping unknown attribute '{key}'"),
        }
    }
    check_identity_attr(schema, &mut out.attrs)?;
    check_required(schema, &out.attrs)?;
    Ok(out)
}

/// The attribute that names a resource uniquely: a user's `userName`, a group's `displayName`.
pub fn identity_attr(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::User => "userName",
        ResourceKind::Group => "displayName",
    }
}

/// Checks the resource's identity string (see [`crate::scim::identity`]) and stores it trimmed.
pub fn check_identity_attr(schema: &ResourceSchema, attrs: &mut Map<String, Value>) -> ScimResult<()> {
    let attr = identity_attr(schema.kind);
    if let Some(Value::String(name)) = attrs.get(attr) {
        let checked = check_identity(attr, name)?;
        if checked != *name {
            attrs.insert(attr.to_string(), Value::String(checked));
        }
    }
    Ok(())
}

fn normalize_extension(
    schema: &ResourceSchema,
    urn: &str,
    value: &Value,
    out: &mut Normalized,
) -> ScimResult<()> {
    let map = match value {
        Value::Object(map) => map,
        Value::Null => return Ok(()),
        other => {
            return Err(ScimError::invalid_value(format!(
                "extension '{urn}' must be an object of its attributes, got {}",
                json_kind(other)
            )));
        }
    };
    for (key, v) in map {
        match schema.resolve(Some(urn), key) {
            Some(resolved) => put_attr(schema.kind, resolved, v, out)?,
            None => log::debug!("dropping unknown attribute '{urn}:{key}'"),
        }
    }
    Ok(())
}

/// Splits `urn:...:User:userName` at the last colon; a plain name has no URN.
pub fn split_urn(key: &str) -> (Option<&str>, &str) {
    match key.rsplit_once(':') {
        Some((urn, name)) if urn.contains(':') => (Some(urn), name),
        _ => (None, key),
    }
}

fn put_attr(
    kind: ResourceKind,
    resolved: Resolved<'_>,
    value: &Value,
    out: &mut Normalized,
) -> ScimResult<()> {
    let def = resolved.def;
    if def.mutability == Mutability::ReadOnly {
        return Ok(());
    }
    if kind == ResourceKind::Group && def.name == "members" {
        out.members = Some(member_entries(value)?);
        return Ok(());
    }
    if kind == ResourceKind::User && def.name == "password" {
        out.password = match value {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::String(_) | Value::Null => None,
            other => {
                return Err(ScimError::invalid_value(format!(
                    "attribute 'password': expected a string, got {}",
                    json_kind(other)
                )));
            }
        };
        return Ok(());
    }
    let Some(v) = coerce(def, value, &def.name)? else { return Ok(()) };
    match resolved.location {
        Location::TopLevel => {
            out.attrs.insert(def.name.clone(), v);
        }
        Location::Extension(urn) => {
            let ext = out.attrs.entry(urn.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if let Some(ext) = ext.as_object_mut() {
                ext.insert(def.name.clone(), v);
            }
        }
    }
    Ok(())
}

/// The JSON type of a value, for error messages that must not echo a secret.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// No multi-valued attribute holds more than `max` values (400 `tooMany`).
pub fn check_value_counts(schema: &ResourceSchema, attrs: &Map<String, Value>, max: usize) -> ScimResult<()> {
    let core = schema.top_level_attrs().map(|def| (None, def));
    let extensions = schema
        .extensions
        .iter()
        .flat_map(|ext| ext.attributes.iter().map(move |def| (Some(ext.id.as_str()), def)));
    for (urn, def) in core.chain(extensions).filter(|(_, def)| def.multi_valued) {
        let count = attr_value(attrs, urn, &def.name).and_then(Value::as_array).map_or(0, Vec::len);
        if count > max {
            return Err(ScimError::new(
                ScimType::TooMany,
                format!("attribute '{}' may have at most {max} values; it would have {count}", def.name),
            ));
        }
    }
    Ok(())
}

/// Every required, writable attribute is present (`userName` for a User, `displayName` for a Group).
pub fn check_required(schema: &ResourceSchema, attrs: &Map<String, Value>) -> ScimResult<()> {
    for def in schema.top_level_attrs() {
        if def.required && def.mutability != Mutability::ReadOnly && !attrs.contains_key(&def.name) {
            return Err(ScimError::invalid_value(format!("attribute '{}' is required", def.name)));
        }
    }
    for ext in &schema.extensions {
        let Some(present) = attrs.get(&ext.id).and_then(Value::as_object) else { continue };
        if let Some(def) = ext.attributes.iter().find(|d| d.required && !present.contains_key(&d.name)) {
            return Err(ScimError::invalid_value(format!("attribute '{}:{}' is required", ext.id, def.name)));
        }
    }
    Ok(())
}

/// One element of a group's `members` as a client sent it. The store checks that the id names a user or a
/// group of the account; the sub-attributes a client sent are kept and echoed as sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberEntry {
    #[serde(skip)]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub display: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    #[serde(rename = "$ref", skip_serializing_if = "Option::is_none", default)]
    pub reference: Option<String>,
}

/// Longest member id accepted; ids are keys in the store.
pub const MAX_MEMBER_ID_LEN: usize = 256;

/// Members from a `members` value: objects with `value`, or bare id strings as some clients send;
/// a repeated id keeps its last sub-attributes at its first position.
pub fn member_entries(value: &Value) -> ScimResult<Vec<MemberEntry>> {
    let items: &[Value] = match value {
        Value::Null => &[],
        Value::Array(items) => items,
        single => std::slice::from_ref(single),
    };
    let mut entries: Vec<MemberEntry> = Vec::with_capacity(items.len());
    let mut index = std::collections::HashMap::with_capacity(items.len());
    for item in items {
        let entry = member_entry(item)?;
        match index.get(&entry.id) {
            Some(&i) => entries[i] = entry,
            None => {
                index.insert(entry.id.clone(), entries.len());
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}

fn member_entry(item: &Value) -> ScimResult<MemberEntry> {
    let field = |name: &str| match item {
        Value::Object(map) => map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v),
        _ => None,
    };
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let raw = if item.is_object() { field("value") } else { Some(item) };
    let id = match raw {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if id.is_empty() || id.len() > MAX_MEMBER_ID_LEN {
        return Err(ScimError::invalid_value(format!(
            "a member needs a 'value' of 1 to {MAX_MEMBER_ID_LEN} characters with the member's id, got {item}"
        )));
    }
    Ok(MemberEntry {
        id,
        // Entra's validator and Microsoft's reference tests call it `displayName`.
        display: text(field("display")).or_else(|| text(field("displayName"))),
        kind: text(field("type")),
        reference: text(field("$ref")),
    })
}

/// The `schemas` of a stored resource: its core schema and every extension it has data for.
pub fn schemas_of(schema: &ResourceSchema, attrs: &Map<String, Value>) -> Value {
    let mut urns = vec![Value::String(schema.core.id.clone())];
    urns.extend(
        schema.extensions.iter().filter(|e| attrs.contains_key(&e.id)).map(|e| Value::String(e.id.clone())),
    );
    Value::Array(urns)
}

/// The stored layout: `schemas`, `id`, `externalId`, core attributes in schema order, extension objects,
/// then `meta`. Anything in `attrs` the schema does not know is dropped.
pub fn assemble(schema: &ResourceSchema, id: &str, attrs: &Map<String, Value>, meta: Value) -> Value {
    let mut doc = Map::with_capacity(attrs.len() + 3);
    doc.insert("schemas".into(), schemas_of(schema, attrs));
    doc.insert("id".into(), Value::String(id.to_string()));
    for def in schema.top_level_attrs() {
        if let Some(v) = attrs.get(&def.name) {
            doc.insert(def.name.clone(), v.clone());
        }
    }
    for ext in &schema.extensions {
        if let Some(v) = attrs.get(&ext.id).filter(|v| v.as_object().is_some_and(|m| !m.is_empty())) {
            doc.insert(ext.id.clone(), v.clone());
        }
    }
    doc.insert("meta".into(), meta);
    Value::Object(doc)
}

/// The writable part of a stored resource: everything but `schemas`, `id` and `meta`.
pub fn attrs_of(doc: &Value) -> Map<String, Value> {
    let mut attrs = doc.as_object().cloned().unwrap_or_default();
    for key in ["schemas", "id", "meta"] {
        attrs.remove(key);
    }
    attrs
}

/// The top-level attributes (and extension URNs) whose values differ between two versions of a resource.
pub fn changed_attributes(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) -> std::collections::BTreeSet<String> {
    old.keys().chain(new.keys()).filter(|k| old.get(*k) != new.get(*k)).cloned().collect()
}

/// The attributes that differ between two versions of a resource, with their values before and after:
/// `{name: {"before", "after"}}` (a value absent on one side is `null`). An extension's attributes are
/// compared one by one and named `urn:...:name`. A password is never shown, not even as it was stored.
pub fn attribute_changes(old: &Map<String, Value>, new: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for name in changed_attributes(old, new) {
        if name.eq_ignore_ascii_case("password") {
            continue;
        }
        let (before, after) = (old.get(&name), new.get(&name));
        let object = |v: Option<&Value>| match v {
            Some(Value::Object(o)) => Some(o.clone()),
            None | Some(Value::Null) => Some(Map::new()),
            Some(_) => None,
        };
        match (name.starts_with("urn:"), object(before), object(after)) {
            // an extension, added, removed or changed: attribute by attribute
            (true, Some(b), Some(a)) => {
                for (sub, change) in attribute_changes(&b, &a) {
                    out.insert(format!("{name}:{sub}"), change);
                }
            }
            _ => {
                let shown = |v: Option<&Value>| v.cloned().unwrap_or(Value::Null);
                out.insert(name, serde_json::json!({"before": shown(before), "after": shown(after)}));
            }
        }
    }
    out
}

/// Refuses a change to an immutable attribute that has a value: RFC 7643 §7 lets it be given a value
/// once, when it has none, and never changed or removed after. Covers core, common and extension
/// attributes and the sub-attributes of single-valued complex ones. The elements of a multi-valued
/// attribute have no identity to pair old and new by, so their immutable sub-attributes are not checked
/// (group `members`, the only standard case, never reach this: membership is applied by the store).
pub fn check_immutable(
    schema: &ResourceSchema,
    current: &Map<String, Value>,
    next: &Map<String, Value>,
) -> ScimResult<()> {
    let core = schema.top_level_attrs().map(|def| (None, def));
    let extensions = schema
        .extensions
        .iter()
        .flat_map(|ext| ext.attributes.iter().map(move |def| (Some(ext.id.as_str()), def)));
    // Most attributes have nothing immutable: they are passed over without looking up their values.
    let guarded = |def: &AttrDef| {
        def.mutability == Mutability::Immutable
            || (def.is_complex()
                && !def.multi_valued
                && def.sub_attributes.iter().any(|s| s.mutability == Mutability::Immutable))
    };
    core.chain(extensions).filter(|(_, def)| guarded(def)).try_for_each(|(urn, def)| {
        let label = || match urn {
            Some(urn) => format!("{urn}:{}", def.name),
            None => def.name.clone(),
        };
        keeps_immutable(def, attr_value(current, urn, &def.name), attr_value(next, urn, &def.name), label)
    })
}

/// The immutable parts of one attribute's value: all of it, or its immutable sub-attributes.
fn keeps_immutable(
    def: &AttrDef,
    old: Option<&Value>,
    new: Option<&Value>,
    label: impl Fn() -> String,
) -> ScimResult<()> {
    if def.mutability == Mutability::Immutable {
        unchanged(old, new, &label)?;
    }
    if !def.is_complex() || def.multi_valued {
        return Ok(());
    }
    for sub in def.sub_attributes.iter().filter(|s| s.mutability == Mutability::Immutable) {
        let (old, new) = (old.and_then(|v| v.get(&sub.name)), new.and_then(|v| v.get(&sub.name)));
        unchanged(old, new, || format!("{}.{}", label(), sub.name))?;
    }
    Ok(())
}

fn attr_value<'a>(attrs: &'a Map<String, Value>, urn: Option<&str>, name: &str) -> Option<&'a Value> {
    match urn {
        None => attrs.get(name),
        Some(urn) => attrs.get(urn)?.get(name),
    }
}

fn unchanged(old: Option<&Value>, new: Option<&Value>, label: impl Fn() -> String) -> ScimResult<()> {
    match old {
        Some(old) if new != Some(old) => Err(ScimError::mutability(format!(
            "attribute '{}' is immutable: it has a value, which cannot be changed or removed",
            label()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::ScimType;
    use crate::scim::schema::{ENTERPRISE_URN, Registry};
    use crate::scim::testing::{BEHAVIOUR_URN, behaviour_users};

    fn users() -> ResourceSchema {
        Registry::standard().resource(ResourceKind::User).clone()
    }

    #[test]
    fn attribute_changes_show_before_and_after_by_attribute_and_never_a_password() {
        let old = json!({"userName": "a", "title": "Rep", "password": "old-secret",
            ENTERPRISE_URN: {"department": "Sales", "costCenter": "1"}});
        let new = json!({"userName": "a", "nickName": "Al", "password": "new-secret",
            ENTERPRISE_URN: {"department": "Support", "costCenter": "1"}});
        let changes = attribute_changes(old.as_object().unwrap(), new.as_object().unwrap());
        assert_eq!(
            Value::Object(changes),
            json!({
                "nickName": {"before": null, "after": "Al"},
                "title": {"before": "Rep", "after": null},
                format!("{ENTERPRISE_URN}:department"): {"before": "Sales", "after": "Support"},
            })
        );
    }

    fn groups() -> ResourceSchema {
        Registry::standard().resource(ResourceKind::Group).clone()
    }

    #[test]
    fn okta_create_body_keeps_what_is_stored_and_sets_aside_the_password() {
        let body = json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"test.user@okta.local",
            "name":{"givenName":"Test","familyName":"User"},"emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],
            "displayName":"Test User","locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7","groups":[],"password":"1mz050nq","active":true});
        let n = normalize(&users(), &body).unwrap();
        assert_eq!(n.password.as_deref(), Some("1mz050nq"));
        assert_eq!(
            Value::Object(n.attrs),
            json!({"userName":"test.user@okta.local","name":{"givenName":"Test","familyName":"User"},
                "emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],"displayName":"Test User",
                "locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7","active":true})
        );
    }

    #[test]
    fn entra_create_body_with_read_only_and_odd_input() {
        let body = json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_URN,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
            "id": "client-chosen", "meta":{"resourceType":"User"}, "roles": [], "Active": "True",
            "userName": "UserName123", "DisplayName": "", "nickName": null, "favouriteColour": "blue",
            ENTERPRISE_URN: {"Department": "Sales", "Manager": {"Value": "m-1"}, "bogus": 1},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0User": {"department": "typo"}});
        let n = normalize(&users(), &body).unwrap();
        assert_eq!(
            Value::Object(n.attrs),
            json!({"active": true, "userName": "UserName123",
                ENTERPRISE_URN: {"department": "Sales", "manager": {"value": "m-1"}}})
        );
    }

    #[test]
    fn onelogin_template_with_empty_strings_and_scim_1_urn() {
        let body = json!({"schemas":["urn:scim:schemas:core:1.0"], "userName": "jdoe@x.com",
            "name": {"givenName": "J", "familyName": "", "middleName": ""}, "title": "",
            "addresses": [{"streetAddress": "1 Main St", "locality": "", "country": "US"}],
            ENTERPRISE_URN: {"manager": {"value": "", "displayName": ""}}});
        let n = normalize(&users(), &body).unwrap();
        assert_eq!(
            Value::Object(n.attrs),
            json!({"userName": "jdoe@x.com", "name": {"givenName": "J"},
                "addresses": [{"streetAddress": "1 Main St", "country": "US"}]})
        );
    }

    #[test]
    fn onelogin_manager_with_display_name_keeps_the_id_only() {
        // a template-made PUT: the manager's displayName is readOnly (the server would compute it)
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_URN],
            "userName": "jdoe@x.com", "name": {"givenName": "John", "familyName": "Doe"}, "title": "",
            ENTERPRISE_URN: {"department": "Sales", "manager": {"value": "26118915-6090", "displayName": "Jane Boss"}}});
        let n = normalize(&users(), &body).unwrap();
        assert_eq!(
            Value::Object(n.attrs),
            json!({"userName": "jdoe@x.com", "name": {"givenName": "John", "familyName": "Doe"},
                ENTERPRISE_URN: {"department": "Sales", "manager": {"value": "26118915-6090"}}})
        );
    }

    #[test]
    fn required_attributes_are_checked() {
        let err = normalize(&users(), &json!({"displayName": "x"})).unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::InvalidValue));
        assert!(err.detail.contains("userName"));
        let err = normalize(&users(), &json!({"userName": ""})).unwrap_err();
        assert!(err.detail.contains("userName"));
        let err = normalize(&groups(), &json!({"members": []})).unwrap_err();
        assert!(err.detail.contains("displayName"));
        assert_eq!(normalize(&users(), &json!([1])).unwrap_err().scim_type, Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn group_members_are_set_aside_in_every_shape() {
        let body = json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group",
                "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "externalId":"8aa1", "displayName":"G", "meta":{"resourceType":"Group"},
            "members": [{"value": "u1", "display": "x"}, "u2", {"$ref": null, "Value": "u1"}]});
        let n = normalize(&groups(), &body).unwrap();
        let members = n.members.unwrap();
        assert_eq!(members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["u1", "u2"]);
        assert_eq!(members[0].display, None, "the later duplicate's sub-attributes win");
        assert_eq!(members[0].reference, None);
        assert_eq!(Value::Object(n.attrs), json!({"externalId": "8aa1", "displayName": "G"}));
        assert!(member_entries(&json!([{"display": "no id"}])).is_err());
        let entries = member_entries(
            &json!([{"displayName": "new User", "value": "id4", "type": "User"}, "string id 1"]),
        )
        .unwrap();
        assert_eq!(entries[0].display.as_deref(), Some("new User"));
        assert_eq!(entries[0].kind.as_deref(), Some("User"));
        assert_eq!(entries[1].id, "string id 1");
    }

    #[test]
    fn assembled_layout_is_canonical() {
        let n = normalize(
            &users(),
            &json!({ENTERPRISE_URN: {"department": "S"}, "title": "t", "userName": "u", "externalId": "e"}),
        )
        .unwrap();
        let doc = assemble(&users(), "id1", &n.attrs, json!({"resourceType": "User"}));
        let keys: Vec<_> = doc.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["schemas", "id", "externalId", "userName", "title", ENTERPRISE_URN, "meta"]);
        assert_eq!(doc["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_URN]));
        assert_eq!(attrs_of(&doc), n.attrs);
    }

    #[test]
    fn replacement_keeps_immutable_extension_values_and_sub_attributes() {
        let schema = behaviour_users();
        let with = |ext: Value| attrs_of(&json!({"userName": "u", BEHAVIOUR_URN: ext}));
        let current = with(json!({"badgeId": "B-1", "locker": {"number": "L-7", "site": "North"}}));
        let check = |next: Value| check_immutable(&schema, &current, &with(next));
        assert_eq!(check(json!({"badgeId": "B-1", "locker": {"number": "L-7", "site": "South"}})), Ok(()));
        for changed in [
            json!({"badgeId": "B-2", "locker": {"number": "L-7"}}),
            json!({"locker": {"number": "L-7"}}),
            json!({"badgeId": "B-1", "locker": {"number": "L-8"}}),
            json!({"badgeId": "B-1", "locker": {"site": "North"}}),
            json!({"badgeId": "B-1"}),
        ] {
            let err = check(changed.clone()).unwrap_err();
            assert_eq!(err.scim_type, Some(ScimType::Mutability), "{changed}");
        }
        // values that were not set yet may be given, once
        let empty = with(json!({"locker": {"site": "North"}}));
        let first = with(json!({"badgeId": "B-1", "locker": {"number": "L-7"}}));
        assert_eq!(check_immutable(&schema, &empty, &first), Ok(()));
        assert_eq!(check_immutable(&schema, &attrs_of(&json!({"userName": "u"})), &first), Ok(()));
    }

    #[test]
    fn urn_qualified_keys_resolve() {
        let n = normalize(&users(), &json!({"urn:ietf:params:scim:schemas:core:2.0:User:userName": "u"}))
            .unwrap();
        assert_eq!(n.attrs["userName"], json!("u"));
        assert_eq!(split_urn("name.givenName"), (None, "name.givenName"));
        assert_eq!(split_urn("urn:a:b:c"), (Some("urn:a:b"), "c"));
    }
}
