//! Attribute values checked against their definitions: a value of another type is refused with
//! `invalidValue` naming the attribute. The only coercions are the ones a documented client needs (see the
//! IdP catalogue): `"True"` / `"False"` as booleans (Entra ID), a manager given as a bare id or a
//! one-element list (Entra ID), JSON inside an app role's value string (Entra ID), empty strings and nulls
//! as "not set" (OneLogin's templates); sub-attribute names are made canonical.

use serde_json::{Map, Number, Value};

use super::error::{ScimError, ScimResult};
use super::schema::{AttrDef, AttrType};

/// Coerces `value` for the attribute `def`; `None` means the value amounts to "no value" (null, `""`,
/// an empty array or an object with nothing in it). `label` names the attribute in error messages.
pub fn coerce(def: &AttrDef, value: &Value, label: &str) -> ScimResult<Option<Value>> {
    if def.multi_valued { coerce_multi(def, value, label) } else { coerce_single(def, value, label) }
}

fn coerce_multi(def: &AttrDef, value: &Value, label: &str) -> ScimResult<Option<Value>> {
    let items: Vec<Value> = match value {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(v) = coerce_single(def, item, label)? {
                    out.push(v);
                }
            }
            out
        }
        Value::Null => return Ok(None),
        Value::String(s) if s.is_empty() => return Ok(None),
        other => return Err(type_error(label, "an array", other)),
    };
    // An element whose `value` is empty (`[{"value": "", "type": "work"}]` from a OneLogin template) is an
    // unset field, not a phone number without a number.
    let mut items: Vec<Value> = match def.value_sub() {
        Some(_) => items.into_iter().filter(|i| !i.is_object() || i.get("value").is_some()).collect(),
        None => items,
    };
    if items.is_empty() {
        return Ok(None);
    }
    keep_one_primary(&mut items, None);
    Ok(Some(Value::Array(items)))
}

/// Coerces one value of `def` (an element, for a multi-valued attribute).
pub fn coerce_single(def: &AttrDef, value: &Value, label: &str) -> ScimResult<Option<Value>> {
    match value {
        Value::Null => return Ok(None),
        Value::String(s) if s.is_empty() => return Ok(None),
        _ => {}
    }
    match def.kind {
        AttrType::String | AttrType::Reference | AttrType::Binary => coerce_string(value, label),
        AttrType::Boolean => coerce_bool(value, label).map(|b| Some(Value::Bool(b))),
        AttrType::Integer => coerce_integer(value, label).map(|n| Some(Value::Number(n))),
        AttrType::Decimal => coerce_decimal(value, label).map(|n| Some(Value::Number(n))),
        AttrType::DateTime => coerce_datetime(value, label),
        AttrType::Complex => coerce_complex(def, value, label),
    }
}

fn type_error(label: &str, expected: &str, got: &Value) -> ScimError {
    let mut shown = got.to_string();
    if shown.len() > 80 {
        let cut = (0..=80).rev().find(|&i| shown.is_char_boundary(i)).unwrap_or(0);
        shown.truncate(cut);
        shown.push_str("...");
    }
    ScimError::invalid_value(format!("attribute '{label}': expected {expected}, got {shown}"))
}

fn coerce_string(value: &Value, label: &str) -> ScimResult<Option<Value>> {
    match value {
        Value::String(_) => Ok(Some(value.clone())),
        other => Err(type_error(label, "a string", other)),
    }
}

/// `true`, `false`, or the strings Entra ID sends for them: `{"op":"Replace","path":"active","value":"False"}`
/// and the Validator's `"roles":[{"primary":"True",...}]`.
pub fn coerce_bool(value: &Value, label: &str) -> ScimResult<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "True" || s == "true" => Ok(true),
        Value::String(s) if s == "False" || s == "false" => Ok(false),
        other => Err(type_error(label, "a boolean", other)),
    }
}

fn coerce_integer(value: &Value, label: &str) -> ScimResult<Number> {
    let parsed = match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.clone()),
        Value::Number(n) => {
            n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| Number::from(f as i64))
        }
        _ => None,
    };
    parsed.ok_or_else(|| type_error(label, "an integer", value))
}

fn coerce_decimal(value: &Value, label: &str) -> ScimResult<Number> {
    let parsed = match value {
        Value::Number(n) => Some(n.clone()),
        _ => None,
    };
    parsed.ok_or_else(|| type_error(label, "a decimal number", value))
}

fn coerce_datetime(value: &Value, label: &str) -> ScimResult<Option<Value>> {
    match value {
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => Ok(Some(value.clone())),
        other => Err(type_error(label, "an RFC 3339 dateTime", other)),
    }
}

fn coerce_complex(def: &AttrDef, value: &Value, label: &str) -> ScimResult<Option<Value>> {
    match value {
        Value::Object(map) => coerce_object(def, map, label),
        // Entra ID's manager: `"<id>"` on the extension path, `[{"$ref":"...","value":"<id>"}]` on `manager`.
        Value::String(_) if is_manager(def) => match def.value_sub() {
            Some(sub) => Ok(coerce_single(sub, value, label)?.map(|v| single_entry(&sub.name, v))),
            None => Err(type_error(label, "an object", value)),
        },
        Value::Array(items) if is_manager(def) && items.len() == 1 => coerce_complex(def, &items[0], label),
        other => Err(type_error(label, "an object", other)),
    }
}

/// The enterprise extension's `manager`, the one complex attribute clients send in other shapes.
fn is_manager(def: &AttrDef) -> bool {
    def.name == "manager" && !def.multi_valued
}

fn coerce_object(def: &AttrDef, map: &Map<String, Value>, label: &str) -> ScimResult<Option<Value>> {
    let mut out = Map::new();
    for (key, v) in map {
        let Some(sub) = def.sub(key) else {
            log::debug!("dropping unknown sub-attribute '{label}.{key}'");
            continue;
        };
        // Server-computed sub-attributes such as `manager.displayName` are not the client's to set.
        if sub.mutability == crate::scim::schema::Mutability::ReadOnly {
            continue;
        }
        let sub_label = format!("{label}.{}", sub.name);
        if sub.name == "value"
            && let Value::String(s) = v
            && is_app_role_json(def, s)
        {
            return expand_app_role(s, label);
        }
        if let Some(v) = coerce(sub, v, &sub_label)? {
            out.insert(sub.name.clone(), v);
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

fn single_entry(name: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(name.to_string(), value);
    Value::Object(map)
}

/// Entra ID sends an app-role assignment as JSON inside the role's value string:
/// `{"value":"{\"id\":\"06b0...\",\"value\":\"25\",\"displayName\":\"Role1234\"}"}`.
fn is_app_role_json(def: &AttrDef, s: &str) -> bool {
    def.name == "roles" && s.trim_start().starts_with('{')
}

fn expand_app_role(s: &str, label: &str) -> ScimResult<Option<Value>> {
    let inner: Value = match serde_json::from_str(s) {
        Ok(Value::Object(inner)) => Value::Object(inner),
        // Not JSON after all: keep the string as the role's value.
        _ => return Ok(Some(single_entry("value", Value::String(s.to_string())))),
    };
    let mut role = Map::new();
    if let Some(v) = inner.get("value") {
        role.insert("value".into(), Value::String(value_text(v)));
    }
    if let Some(v) = inner.get("displayName").or_else(|| inner.get("display")) {
        role.insert("display".into(), Value::String(value_text(v)));
    }
    if let Some(v) = inner.get("type") {
        role.insert("type".into(), Value::String(value_text(v)));
    }
    if role.is_empty() {
        return Err(type_error(label, "an app role with a value", &inner));
    }
    Ok(Some(Value::Object(role)))
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Is this element marked primary?
pub fn is_primary(item: &Value) -> bool {
    item.get("primary").and_then(Value::as_bool).unwrap_or(false)
}

/// RFC 7643 §2.4: `primary: true` appears at most once. The element at `winner` keeps it when it is
/// primary (a value just added wins over older ones); otherwise the first primary element does.
pub fn keep_one_primary(items: &mut [Value], winner: Option<usize>) {
    let chosen = winner
        .filter(|&i| items.get(i).is_some_and(is_primary))
        .or_else(|| items.iter().position(is_primary));
    let Some(chosen) = chosen else { return };
    for (i, item) in items.iter_mut().enumerate() {
        if i != chosen
            && is_primary(item)
            && let Some(map) = item.as_object_mut()
        {
            map.insert("primary".into(), Value::Bool(false));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::schema::{ENTERPRISE_URN, Registry, ResourceKind};

    fn user_attr(urn: Option<&str>, name: &str) -> AttrDef {
        Registry::standard().resource(ResourceKind::User).resolve(urn, name).unwrap().def.clone()
    }

    #[test]
    fn string_booleans_from_entra_become_booleans() {
        let active = user_attr(None, "active");
        assert_eq!(coerce(&active, &json!("False"), "active").unwrap(), Some(json!(false)));
        assert_eq!(coerce(&active, &json!("True"), "active").unwrap(), Some(json!(true)));
        assert!(coerce(&active, &json!("yes"), "active").is_err());
        assert!(coerce(&active, &json!(1), "active").is_err());
        assert_eq!(coerce(&active, &json!(true), "active").unwrap(), Some(json!(true)));
        let err = coerce(&active, &json!("maybe"), "active").unwrap_err();
        assert_eq!(err.scim_type, Some(crate::scim::ScimType::InvalidValue));
        assert!(err.detail.contains("'active'"), "{}", err.detail);
    }

    #[test]
    fn nulls_and_empty_strings_are_absent() {
        let title = user_attr(None, "title");
        assert_eq!(coerce(&title, &json!(null), "title").unwrap(), None);
        assert_eq!(coerce(&title, &json!(""), "title").unwrap(), None);
        let name = user_attr(None, "name");
        assert_eq!(coerce(&name, &json!({"givenName": "", "familyName": null}), "name").unwrap(), None);
        let emails = user_attr(None, "emails");
        assert_eq!(coerce(&emails, &json!([]), "emails").unwrap(), None);
        let phones = user_attr(None, "phoneNumbers");
        assert_eq!(coerce(&phones, &json!([{"value": "", "type": "work"}]), "phoneNumbers").unwrap(), None);
        let addresses = user_attr(None, "addresses");
        assert!(
            coerce(&addresses, &json!([{"type": "work", "country": "DE"}]), "addresses").unwrap().is_some()
        );
    }

    #[test]
    fn sub_attribute_names_become_canonical_and_unknown_ones_are_dropped() {
        let emails = user_attr(None, "emails");
        let got = coerce(
            &emails,
            &json!([{"Value": "a@x.com", "Primary": "True", "TYPE": "work", "junk": 1}]),
            "emails",
        );
        assert_eq!(got.unwrap(), Some(json!([{"value": "a@x.com", "primary": true, "type": "work"}])));
    }

    #[test]
    fn a_multi_valued_attribute_needs_an_array() {
        let emails = user_attr(None, "emails");
        for wrong in [json!("nope"), json!({"value": "a@x.com"}), json!(5), json!(true)] {
            let err = coerce(&emails, &wrong, "emails").unwrap_err();
            assert!(err.detail.contains("'emails'") && err.detail.contains("an array"), "{}", err.detail);
        }
        let err = coerce(&emails, &json!(["nope"]), "emails").unwrap_err();
        assert!(err.detail.contains("an object"), "{}", err.detail);
    }

    #[test]
    fn strings_are_strings() {
        let user_name = user_attr(None, "userName");
        for wrong in [json!(12345), json!(true), json!(["x"]), json!({"value": "x"})] {
            let err = coerce(&user_name, &wrong, "userName").unwrap_err();
            assert_eq!(err.scim_type, Some(crate::scim::ScimType::InvalidValue));
            assert!(err.detail.contains("'userName'"), "{}", err.detail);
        }
        let name = user_attr(None, "name");
        assert!(coerce(&name, &json!("Barbara Jensen"), "name").is_err(), "a string for a complex one");
        assert!(coerce(&name, &json!([{"givenName": "B"}]), "name").is_err());
    }

    #[test]
    fn manager_in_every_shape_entra_sends() {
        let manager = user_attr(Some(ENTERPRISE_URN), "manager");
        let want = Some(json!({"value": "m-1"}));
        assert_eq!(coerce(&manager, &json!("m-1"), "manager").unwrap(), want);
        assert_eq!(coerce(&manager, &json!({"value": "m-1"}), "manager").unwrap(), want);
        assert_eq!(coerce(&manager, &json!({"Value": "m-1"}), "manager").unwrap(), want);
        assert_eq!(
            coerce(&manager, &json!([{"$ref": "../Users/m-1", "value": "m-1"}]), "manager").unwrap(),
            Some(json!({"$ref": "../Users/m-1", "value": "m-1"}))
        );
        // removal
        assert_eq!(coerce(&manager, &json!(""), "manager").unwrap(), None);
        assert_eq!(coerce(&manager, &json!({"value": ""}), "manager").unwrap(), None);
    }

    #[test]
    fn app_roles_given_as_json_inside_a_string_are_expanded() {
        let roles = user_attr(None, "roles");
        let v = json!([{"value": "{\"id\":\"06b0\",\"value\":\"25\",\"displayName\":\"Role1234\"}"}]);
        assert_eq!(
            coerce(&roles, &v, "roles").unwrap(),
            Some(json!([{"value": "25", "display": "Role1234"}]))
        );
        // an ordinary role is untouched, string "True" primary coerced
        let v = json!([{"primary": "True", "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}]);
        assert_eq!(
            coerce(&roles, &v, "roles").unwrap(),
            Some(json!([{"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}]))
        );
    }

    #[test]
    fn at_most_one_primary_survives() {
        let emails = user_attr(None, "emails");
        let v = json!([{"value": "a", "primary": true}, {"value": "b", "primary": true}]);
        assert_eq!(
            coerce(&emails, &v, "emails").unwrap(),
            Some(json!([{"value": "a", "primary": true}, {"value": "b", "primary": false}]))
        );
        let mut items = vec![json!({"value": "a", "primary": true}), json!({"value": "b", "primary": true})];
        keep_one_primary(&mut items, Some(1));
        assert_eq!(
            items,
            vec![json!({"value": "a", "primary": false}), json!({"value": "b", "primary": true})]
        );
    }

    #[test]
    fn numbers_and_dates_are_checked() {
        let def: AttrDef = serde_json::from_value(json!({"name": "n", "type": "integer"})).unwrap();
        assert!(coerce(&def, &json!("42"), "n").is_err());
        assert_eq!(coerce(&def, &json!(42.0), "n").unwrap(), Some(json!(42)));
        assert!(coerce(&def, &json!(4.5), "n").is_err());
        let def: AttrDef = serde_json::from_value(json!({"name": "d", "type": "dateTime"})).unwrap();
        assert!(coerce(&def, &json!("2015-10-10T14:38:21.8617979-07:00"), "d").unwrap().is_some());
        assert!(coerce(&def, &json!("yesterday"), "d").is_err());
        let s = user_attr(None, "employeeNumber");
        assert!(coerce(&s, &json!(701984), "employeeNumber").is_err());
        assert!(coerce(&s, &json!({"a": 1}), "employeeNumber").is_err());
    }
}
