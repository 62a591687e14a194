//! Fuzzes the filter and PATCH path parsers: anything accepted must print as syntax that parses back to
//! the same tree, and evaluating, checking and planning it must not panic.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use usersync::scim::filter::{
    check, check_element, matches, matches_element, parse_filter, parse_filter_strict, parse_path,
};
use usersync::scim::schema::{Registry, ResourceKind};

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::standard);

/// Barbara Jensen (RFC 7643 §8.2) as the store keeps her; shared with the benchmark.
static USER: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../testdata/bjensen.json")).unwrap_or_else(|e| panic!("{e}"))
});

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let schema = REGISTRY.resource(ResourceKind::User);
    if let Ok(filter) = parse_filter(input) {
        let printed = filter.to_string();
        assert_eq!(parse_filter(&printed).as_ref(), Ok(&filter), "{input:?} printed as {printed:?}");
        if !printed.contains('$') {
            assert_eq!(parse_filter_strict(&printed).as_ref(), Ok(&filter), "{printed:?} is not strict");
        }
        let _ = check(&filter, schema);
        let _ = matches(&filter, &USER, schema);
        let _ = filter.exact_eq_terms(&["userName", "externalId", "id"]);
        let _ = filter.index_terms(&["userName", "externalId", "id"]);
        let _ = filter.mentions("emails");
    }
    if let Ok(path) = parse_path(input) {
        let printed = path.to_string();
        assert_eq!(parse_path(&printed).as_ref(), Ok(&path), "{input:?} printed as {printed:?}");
        if let (Some(filter), Some(emails)) = (&path.filter, schema.resolve(None, "emails")) {
            let _ = check_element(filter, emails.def);
            for element in USER["emails"].as_array().into_iter().flatten() {
                let _ = matches_element(filter, element, emails.def);
            }
        }
    }
});
