//! Discovery endpoints: honest configuration, the published schemas, 405 on writes, and what is not offered.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[test]
fn service_provider_config_states_what_the_server_does() {
    let app = spawn_app();
    for path in ["/ServiceProviderConfig", "/serviceConfiguration", "/serviceproviderconfig/"] {
        let spc = expect_status(app.get(path), StatusCode::OK);
        assert_eq!(spc["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]));
        assert_eq!(spc["patch"]["supported"], json!(true));
        assert_eq!(spc["bulk"]["supported"], json!(false));
        assert_eq!(spc["filter"], json!({"supported": true, "maxResults": 1000}));
        assert_eq!(spc["etag"]["supported"], json!(true));
        assert_eq!(spc["sort"]["supported"], json!(true));
        // a password given in PUT or PATCH is taken (and kept only as a salted hash)
        assert_eq!(spc["changePassword"]["supported"], json!(true));
    }
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        for path in ["/ServiceProviderConfig", "/Schemas", "/ResourceTypes", "/ResourceTypes/User"] {
            expect_error(app.request(method.clone(), path).send().unwrap(), StatusCode::METHOD_NOT_ALLOWED);
        }
    }
    expect_error(app.get("/Me"), StatusCode::NOT_IMPLEMENTED);
    expect_error(app.post("/Bulk", &json!({})), StatusCode::NOT_IMPLEMENTED);
}

#[test]
fn schemas_and_resource_types_are_published() {
    let app = spawn_app();
    let schemas = expect_status(app.get("/Schemas"), StatusCode::OK);
    let ids: Vec<&str> =
        schemas["Resources"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ]
    );
    assert!(schemas.to_string().contains("User Account"));
    let user = expect_status(app.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"), StatusCode::OK);
    assert_eq!(user["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"]));
    assert_eq!(
        user["meta"]["location"],
        json!(format!("{}/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", app.base))
    );
    let user_name = user["attributes"].as_array().unwrap().iter().find(|a| a["name"] == "userName").unwrap();
    assert_eq!(
        (user_name["caseExact"].clone(), user_name["uniqueness"].clone()),
        (json!(false), json!("server"))
    );
    expect_error(app.get("/Schemas/urn:nope"), StatusCode::NOT_FOUND);

    let types = expect_status(app.get("/ResourceTypes"), StatusCode::OK);
    assert_eq!(types["Resources"][0]["endpoint"], json!("/Users"));
    assert_eq!(
        types["Resources"][0]["schemaExtensions"],
        json!([{"schema": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "required": false}])
    );
    let group: Value = expect_status(app.get("/ResourceTypes/Group"), StatusCode::OK);
    assert_eq!(group["schema"], json!("urn:ietf:params:scim:schemas:core:2.0:Group"));
    expect_error(app.get("/ResourceTypes/Device"), StatusCode::NOT_FOUND);
}

#[test]
fn root_search_lists_every_resource_type_with_attribute_selection() {
    let app = spawn_app();
    app.create_user(&json!({"userName": "s@example.com", "externalId": "e-s", "name": {"givenName": "S"}}));
    app.create_group("Searchers");
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "attributes": ["externalId"]});
    let found = expect_status(app.post("/.search", &body), StatusCode::OK);
    assert_eq!(found["totalResults"], json!(2));
    assert_eq!(found["Resources"][0]["externalId"], json!("e-s"));
    assert!(found["Resources"][0].get("name").is_none());
    let body = json!({"excludedAttributes": ["name"], "startIndex": 2, "count": 5});
    let found = expect_status(app.post("/.search", &body), StatusCode::OK);
    assert_eq!(found["Resources"].as_array().unwrap().len(), 1);
    assert_eq!(found["Resources"][0]["displayName"], json!("Searchers"));
    let body = json!({"filter": "userName sw \"s\""});
    assert_eq!(expect_status(app.post("/Users/.search", &body), StatusCode::OK)["totalResults"], json!(1));
}

#[test]
fn pages_are_capped_at_the_advertised_max_results() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = usersync::app::Settings::new(dir.path());
    settings.listen = "127.0.0.1:0".into();
    settings.scim_token = Some(SCIM_TOKEN.into());
    settings.http.max_results = 2;
    let app = spawn_with(settings);
    let spc = expect_status(app.get("/ServiceProviderConfig"), StatusCode::OK);
    assert_eq!(spc["filter"]["maxResults"], json!(2));
    for i in 0..3 {
        app.create_user(&json!({"userName": format!("cap{i}@example.com")}));
    }
    for path in ["/Users?count=10", "/Users", "/Users/?startIndex=1&count=3"] {
        let page = expect_status(app.get(path), StatusCode::OK);
        assert_eq!(page["totalResults"], json!(3), "{path}");
        assert_eq!(page["itemsPerPage"], json!(2), "{path}");
        assert_eq!(page["Resources"].as_array().unwrap().len(), 2, "{path}");
    }
    // a trailing slash before the query, as Microsoft's tests send it
    let found = expect_status(
        app.get(&format!("/Users/?filter={}", q("userName eq \"CAP1@example.com\""))),
        StatusCode::OK,
    );
    assert_eq!(found["totalResults"], json!(1));
}

#[test]
fn locations_follow_the_host_and_a_trusted_proxy_s_forwarding_headers() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = usersync::app::Settings::new(dir.path());
    settings.listen = "127.0.0.1:0".into();
    settings.scim_token = Some(SCIM_TOKEN.into());
    settings.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let app = spawn_with(settings);
    let uid = id(&app.create_user(&json!({"userName": "where@example.com"})));
    let path = format!("/Users/{uid}");
    let direct = expect_status(app.get(&path), StatusCode::OK);
    assert_eq!(direct["meta"]["location"], json!(format!("{}{path}", app.base)));
    for headers in [
        vec![("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "idp.example")],
        vec![("Forwarded", "proto=https;host=idp.example")],
    ] {
        let mut req = app.request(Method::GET, &path);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let proxied = expect_status(req.send().unwrap(), StatusCode::OK);
        assert_eq!(proxied["meta"]["location"], json!(format!("https://idp.example/scim/v2{path}")));
    }
}
