//! Applying a PATCH to a realistic user: parsing the PatchOp body and applying it, as every user PATCH
//! request does once inside its transaction.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use usersync::scim::patch::{apply, parse_request};
use usersync::scim::resource::attrs_of;
use usersync::scim::schema::{Registry, ResourceKind};

/// Barbara Jensen (RFC 7643 §8.2) as the store keeps her; shared with the fuzz targets.
fn user() -> Value {
    serde_json::from_str(include_str!("../testdata/bjensen.json")).unwrap_or_else(|e| panic!("{e}"))
}

fn bench_patch(c: &mut Criterion) {
    let registry = Registry::standard();
    let schema = registry.resource(ResourceKind::User);
    let id = user()["id"].as_str().unwrap_or_default().to_string();
    let attrs = attrs_of(&user());
    let cases = [
        ("deactivate", json!({"Operations": [{"op": "replace", "value": {"active": false}}]})),
        (
            "entra-update",
            json!({"Operations": [
                {"op": "Replace", "path": "displayName", "value": "Pvlo"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "x@test.com"},
                {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "Eqpj"},
                {"op": "Add", "path": "nickName", "value": "Babs"}
            ]}),
        ),
    ];
    for (name, body) in cases {
        let ops = parse_request(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        c.bench_function(&format!("patch/{name}/parse+apply"), |b| {
            b.iter(|| {
                let ops = parse_request(black_box(&body)).unwrap_or_default();
                let mut target = attrs.clone();
                apply(schema, &id, &mut target, &ops).map(|o| o.changed.len())
            })
        });
        c.bench_function(&format!("patch/{name}/apply"), |b| {
            b.iter(|| {
                let mut target = attrs.clone();
                apply(schema, &id, black_box(&mut target), &ops).map(|o| o.changed.len())
            })
        });
    }
}

criterion_group!(benches, bench_patch);
criterion_main!(benches);
