//! Fuzzes the filter and PATCH path parsers: anything accepted must print as syntax that parses back to
//! the same tree, and evaluating, checking and planning it must not panic.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use usersync::scim::filter::{
    check, check_element, matches, matches_element, parse_filter, parse_filter_strict, parse_path,
};
use usersync::scim::schema::{ENTERPRISE_URN, Registry, ResourceKind, USER_URN};

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::standard);

static USER: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "schemas": [USER_URN, ENTERPRISE_URN],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "jyoung",
        "userName": "bjensen@example.com",
        "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "title": "",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "roles": [{"value": "Admin", "primary": "True"}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJ"}],
        "groups": [],
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34.8617979-07:00"
        },
        ENTERPRISE_URN: {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
        }
    })
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
