//! Client mistakes get a clear 4xx SCIM error, nothing is stored, and the server keeps serving.

use reqwest::{Method, StatusCode};
use serde_json::json;
use usersync::app::Settings;
use usersync::store::DurabilityMode;

use crate::helpers::*;

fn raw(app: &TestApp, method: Method, path: &str, body: Vec<u8>) -> reqwest::blocking::Response {
    app.request(method, path).header("Content-Type", "application/scim+json").body(body).send().unwrap()
}

#[test]
fn malformed_bodies_are_400_and_store_nothing() {
    let app = spawn_app();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\r\n    \"acve\": tre,\r\n    \"adadfdresses\": [".to_vec(), "invalidSyntax"),
        (b"".to_vec(), "invalidSyntax"),
        (b"[1, 2]".to_vec(), "invalidSyntax"),
        (b"{\"userName\": \"\xff\xfe\"}".to_vec(), "invalidSyntax"),
        (json!({"userName": "x", "active": "maybe"}).to_string().into_bytes(), "invalidValue"),
        (
            json!({"userName": "x", "emails": [{"value": {"an": "object"}}]}).to_string().into_bytes(),
            "invalidValue",
        ),
        (json!({"userName": ["two", "names"]}).to_string().into_bytes(), "invalidValue"),
        (json!({"displayName": "no userName"}).to_string().into_bytes(), "invalidValue"),
        (json!({"userName": {"nested": true}}).to_string().into_bytes(), "invalidValue"),
    ];
    for (body, scim_type) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let err = expect_error(raw(&app, Method::POST, "/Users", body), StatusCode::BAD_REQUEST);
        assert_eq!(err["scimType"], json!(scim_type), "{shown}: {err}");
    }
    assert_eq!(expect_status(app.get("/Users"), StatusCode::OK)["totalResults"], json!(0));

    let uid = id(&app.create_user(
        &json!({"userName": "ok@example.com", "unknownAttribute": 1, "urn:example:ext:1.0:User": {"x": 1}}),
    ));
    let bad_patches = [
        (json!({"Operations": [{"op": "replace", "path": "emails[type eq", "value": 1}]}), "invalidPath"),
        (json!({"Operations": [{"op": "jump", "path": "title"}]}), "invalidSyntax"),
        (json!({"Operations": "nope"}), "invalidSyntax"),
        (json!({"Operations": [{"op": "replace", "path": "id", "value": "other"}]}), "mutability"),
        (json!({"Operations": [{"op": "remove", "path": "userName"}]}), "invalidValue"),
        (json!({"Operations": [{"op": "remove"}]}), "noTarget"),
    ];
    for (body, scim_type) in bad_patches {
        let err = expect_error(app.patch(&format!("/Users/{uid}"), &body), StatusCode::BAD_REQUEST);
        assert_eq!(err["scimType"], json!(scim_type), "{body}: {err}");
    }
    let user = expect_status(app.get(&format!("/Users/{uid}")), StatusCode::OK);
    assert_eq!(user["meta"]["version"], json!("W/\"1\""), "failed PATCHes change nothing");
    assert!(user.get("unknownAttribute").is_none());
}

#[test]
fn bad_filters_and_parameters_are_400_invalid_filter() {
    let app = spawn_app();
    let deep = format!("{}userName pr{}", "(".repeat(5000), ")".repeat(5000));
    // over the filter length limit, within what the HTTP layer accepts as a request line
    let long = format!("userName eq \"{}\"", "x".repeat(20_000));
    for filter in [
        "userName eq",
        "userName xx \"a\"",
        "(userName eq \"a\"",
        "active gt true",
        deep.as_str(),
        long.as_str(),
    ] {
        let err = expect_error(app.get(&format!("/Users?filter={}", q(filter))), StatusCode::BAD_REQUEST);
        assert!(matches!(err["scimType"].as_str(), Some("invalidFilter") | Some("tooMany")), "{err}");
    }
    let err = expect_error(app.get("/Users?startIndex=abc"), StatusCode::BAD_REQUEST);
    assert_eq!(err["scimType"], json!("invalidValue"));
    let err = expect_error(
        app.get(&format!("/Users?attributes={}", q("emails[value eq \"emailName357\"]"))),
        StatusCode::BAD_REQUEST,
    );
    assert!(err["detail"].as_str().unwrap().contains("emailName357"), "the detail names the parameter");
    // A write with a bad `attributes` is refused before anything is stored, so a retry is not a 409.
    let bad = format!("?attributes={}", q("emails[value eq \"x\"]"));
    let user = json!({"userName": "bad.params@example.com"});
    expect_error(app.post(&format!("/Users{bad}"), &user), StatusCode::BAD_REQUEST);
    expect_status(app.post("/Users", &user), StatusCode::CREATED);
    let gid = id(&app.create_group("Bad params"));
    let add = json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": "x"}]}]});
    expect_error(app.patch(&format!("/Groups/{gid}{bad}"), &add), StatusCode::BAD_REQUEST);
    assert!(app.member_ids(&gid).is_empty(), "the refused PATCH changed nothing");
    // still serving
    assert_eq!(app.get("/Users").status(), StatusCode::OK);
}

#[test]
fn oversize_bodies_are_413() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    settings.listen = "127.0.0.1:0".into();
    settings.durability = DurabilityMode::Flush;
    settings.scim_token = Some(SCIM_TOKEN.into());
    settings.http.max_body = 4096;
    let app = spawn_with(settings);
    let big = json!({"userName": "big@example.com", "title": "x".repeat(10_000)});
    expect_error(app.post("/Users", &big), StatusCode::PAYLOAD_TOO_LARGE);
    // chunked, without a Content-Length
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..10).map(|_| Ok(vec![b' '; 1000])).collect();
    let body = reqwest::blocking::Body::new(std::io::Cursor::new(
        chunks.into_iter().flat_map(|c| c.unwrap()).collect::<Vec<u8>>(),
    ));
    let res = app.request(Method::POST, "/Users").body(body).send().unwrap();
    expect_error(res, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(expect_status(app.get("/Users"), StatusCode::OK)["totalResults"], json!(0));
    app.create_user(&json!({"userName": "small@example.com"}));
}

#[test]
fn unknown_ids_and_routes_are_404_with_scim_errors() {
    let app = spawn_app();
    expect_error(app.get("/Users/010101001010101011001010101011"), StatusCode::NOT_FOUND);
    expect_error(app.get("/Users/00919288221112222"), StatusCode::NOT_FOUND);
    expect_error(app.get("/Groups/not-a-uuid"), StatusCode::NOT_FOUND);
    expect_error(app.get("/Nothing"), StatusCode::NOT_FOUND);
    expect_error(
        app.client.get(format!("http://{}/elsewhere", app.addr)).send().unwrap(),
        StatusCode::NOT_FOUND,
    );
    expect_error(raw(&app, Method::POST, "/Users/some-id", b"{}".to_vec()), StatusCode::METHOD_NOT_ALLOWED);
}
