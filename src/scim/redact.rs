//! Request bodies as the provisioning log keeps them: the shape and attribute names always, values only
//! when the account opts in, and a password never (nor anything a PATCH operation writes to one).

use serde_json::{Map, Value};

/// What stands in for a value the log does not keep.
pub const HIDDEN: &str = "(hidden)";
/// What stands in for a password, always.
pub const SECRET: &str = "(secret)";

/// Attributes whose values are never kept: a user's password, whatever the case or URN prefix.
fn is_secret(name: &str) -> bool {
    let last = name.rsplit(':').next().unwrap_or(name);
    let attr = last.split(['.', '[']).next().unwrap_or(last);
    attr.eq_ignore_ascii_case("password")
}

/// Keys whose values are structure rather than data, kept as they are.
fn is_structural(name: &str) -> bool {
    ["schemas", "op"].iter().any(|k| k.eq_ignore_ascii_case(name))
}

/// The body redacted: with `values`, everything but secrets is kept; without it, every value is hidden
/// and only keys, `schemas`, PATCH `op`s and the attribute part of PATCH `path`s remain.
pub fn redact(body: &Value, values: bool) -> Value {
    walk(body, values, false)
}

fn walk(v: &Value, values: bool, secret: bool) -> Value {
    match v {
        _ if secret => Value::String(SECRET.into()),
        Value::Object(map) => Value::Object(object(map, values)),
        Value::Array(items) => Value::Array(items.iter().map(|i| walk(i, values, false)).collect()),
        Value::Null => Value::Null,
        _ if values => v.clone(),
        _ => Value::String(HIDDEN.into()),
    }
}

fn object(map: &Map<String, Value>, values: bool) -> Map<String, Value> {
    // a PATCH operation: its path says what its value is
    let path = map.iter().find(|(k, _)| k.eq_ignore_ascii_case("path")).and_then(|(_, v)| v.as_str());
    let writes_secret = path.is_some_and(is_secret);
    map.iter()
        .map(|(k, v)| {
            let kept = if is_structural(k) {
                v.clone()
            } else if k.eq_ignore_ascii_case("path") && v.is_string() {
                Value::String(path_shown(v.as_str().unwrap_or_default(), values))
            } else if k.eq_ignore_ascii_case("value") && writes_secret {
                Value::String(SECRET.into())
            } else {
                walk(v, values, is_secret(k))
            };
            (k.clone(), kept)
        })
        .collect()
}

/// A PATCH path: its attributes kept, the values inside a filter only with `values`.
fn path_shown(path: &str, values: bool) -> String {
    if values {
        return path.to_string();
    }
    let mut out = String::new();
    let mut in_quotes = false;
    for c in path.chars() {
        match c {
            '"' if !in_quotes => {
                in_quotes = true;
                out.push_str("\"(hidden)");
            }
            '"' => {
                in_quotes = false;
                out.push('"');
            }
            _ if in_quotes => {}
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn passwords_never_values_only_when_asked() {
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "jane",
            "Password": "s3cret", "emails": [{"value": "j@x.com", "primary": true}], "active": true});
        assert_eq!(
            redact(&body, false),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": HIDDEN,
                "Password": SECRET, "emails": [{"value": HIDDEN, "primary": HIDDEN}], "active": HIDDEN})
        );
        let kept = redact(&body, true);
        assert_eq!(kept["userName"], "jane");
        assert_eq!(kept["Password"], SECRET);
        assert!(!kept.to_string().contains("s3cret"));
    }

    #[test]
    fn patch_operations_writing_a_password_hide_it() {
        let body = json!({"Operations": [
            {"op": "replace", "path": "password", "value": "s3cret"},
            {"op": "replace", "value": {"password": "s3cret", "displayName": "J"}},
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:password", "value": "s3cret"},
            {"op": "remove", "path": "emails[value eq \"j@x.com\"]"}]});
        for values in [false, true] {
            let shown = redact(&body, values);
            assert!(!shown.to_string().contains("s3cret"), "{shown}");
            assert_eq!(shown["Operations"][0]["op"], "replace");
        }
        assert_eq!(redact(&body, false)["Operations"][3]["path"], "emails[value eq \"(hidden)\"]");
        assert_eq!(redact(&body, true)["Operations"][3]["path"], "emails[value eq \"j@x.com\"]");
        assert_eq!(redact(&body, true)["Operations"][1]["value"]["displayName"], "J");
    }
}
