//! Parsing and evaluating SCIM filters against a realistic user: the work every filtered list request
//! does once per request (parse) and once per candidate resource (evaluate).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use usersync::scim::filter::{matches, parse_filter};
use usersync::scim::schema::{Registry, ResourceKind};

const SIMPLE: &str = r#"userName eq "bjensen@example.com""#;
const COMPLEX: &str = concat!(
    "name.FamilyName eq Jensen and (emails.Value co example.com or emails.Value co example.org)",
    r#" and emails[type eq "work" and primary eq true]"#,
    " and meta.Created gt 2008-10-10T14:38:21.8617979-07:00",
);

/// Barbara Jensen (RFC 7643 §8.2) as the store keeps her; shared with the fuzz target.
fn user() -> Value {
    serde_json::from_str(include_str!("../testdata/bjensen.json")).unwrap_or_else(|e| panic!("{e}"))
}

fn bench_filters(c: &mut Criterion) {
    let registry = Registry::standard();
    let schema = registry.resource(ResourceKind::User);
    let user = user();
    for (name, text) in [("simple", SIMPLE), ("complex", COMPLEX)] {
        let parsed = parse_filter(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(matches(&parsed, &user, schema), "{name} should match the user");
        c.bench_function(&format!("{name}/parse+evaluate"), |b| {
            b.iter(|| parse_filter(black_box(text)).is_ok_and(|f| matches(&f, black_box(&user), schema)))
        });
        c.bench_function(&format!("{name}/parse"), |b| b.iter(|| parse_filter(black_box(text))));
        c.bench_function(&format!("{name}/evaluate"), |b| {
            b.iter(|| matches(black_box(&parsed), black_box(&user), schema))
        });
    }
}

criterion_group!(benches, bench_filters);
criterion_main!(benches);
