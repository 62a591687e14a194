//! PATCH application on arbitrary input: never a panic, and every PATCH that succeeds leaves a resource
//! that normalises to itself (valid, canonical, nothing read-only or unknown smuggled in).
//!
//! Input layout: the first byte picks the operation, bytes up to the first 0x00 are the path (empty: no
//! path), the rest is the value (JSON if it parses, otherwise a JSON string). A whole PatchOp body given
//! as JSON is tried as well.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use usersync::scim::patch::{apply, parse_request};
use usersync::scim::resource::{assemble, normalize};
use usersync::scim::schema::{Registry, ResourceKind};

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::standard);

/// Barbara Jensen (RFC 7643 §8.2) as the store keeps her; shared with the benchmarks.
static USER: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../testdata/bjensen.json")).unwrap_or_else(|e| panic!("{e}"))
});

fn body_from(data: &[u8]) -> Option<Value> {
    let (&op, rest) = data.split_first()?;
    let op = ["add", "remove", "replace", "Replace"][op as usize % 4];
    let (path, value) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let path = String::from_utf8_lossy(path).into_owned();
    let value: Value = serde_json::from_slice(value).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(value).into_owned()));
    let mut operation = json!({"op": op, "value": value});
    if !path.is_empty() {
        operation["path"] = Value::String(path);
    }
    Some(json!({"Operations": [operation]}))
}

fuzz_target!(|data: &[u8]| {
    let mut bodies: Vec<Value> = body_from(data).into_iter().collect();
    if let Ok(whole) = serde_json::from_slice::<Value>(data) {
        bodies.push(whole);
    }
    for body in bodies {
        let Ok(ops) = parse_request(&body) else { continue };
        for kind in [ResourceKind::User, ResourceKind::Group] {
            let schema = REGISTRY.resource(kind);
            let doc = match kind {
                ResourceKind::User => USER.clone(),
                ResourceKind::Group => json!({"schemas": [schema.core.id], "id": "g", "displayName": "Sales"}),
            };
            let id = doc["id"].as_str().unwrap_or_default().to_string();
            // start from the stored (normalised) form, as the store does
            let mut attrs = normalize(schema, &doc).expect("the test resources are valid").attrs;
            let Ok(_) = apply(schema, &id, &mut attrs, &ops) else { continue };
            let patched = assemble(schema, &id, &attrs, json!({}));
            let again = normalize(schema, &patched).expect("a patched resource is a valid resource");
            assert_eq!(again.attrs, attrs, "a patched resource is already canonical: {body}");
        }
    }
});
