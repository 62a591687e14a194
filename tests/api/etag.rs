//! Versions: weak ETags, `If-Match` (412 on a stale version) and `If-None-Match` (304).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[test]
fn etags_guard_writes_and_save_reads() {
    let app = spawn_app();
    let res = app.post("/Users", &json!({"userName": "etag@example.com"}));
    assert_eq!(res.headers()["etag"], "W/\"1\"");
    let uid = id(&expect_status(res, StatusCode::CREATED));
    let path = format!("/Users/{uid}");

    let res = app.get(&path);
    assert_eq!(res.headers()["etag"], "W/\"1\"");
    let res = app.request(Method::GET, &path).header("If-None-Match", "W/\"1\"").send().unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    // If-None-Match compares weakly (RFC 9110 §13.1.2): the tag without `W/` matches too.
    let res = app.request(Method::GET, &path).header("If-None-Match", "\"0\", \"1\"").send().unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

    let put = app
        .request(Method::PUT, &path)
        .header("If-Match", "W/\"1\"")
        .body(json!({"userName": "etag@example.com", "title": "A"}).to_string())
        .send()
        .unwrap();
    assert_eq!(put.headers()["etag"], "W/\"2\"");
    assert_eq!(expect_status(put, StatusCode::OK)["meta"]["version"], json!("W/\"2\""));

    let stale = app
        .request(Method::PATCH, &path)
        .header("If-Match", "W/\"1\"")
        .body(json!({"Operations":[{"op":"replace","path":"title","value":"B"}]}).to_string())
        .send()
        .unwrap();
    expect_error(stale, StatusCode::PRECONDITION_FAILED);
    assert_eq!(expect_status(app.get(&path), StatusCode::OK)["title"], json!("A"), "a 412 changes nothing");

    let res = app.request(Method::GET, &path).header("If-None-Match", "W/\"1\"").send().unwrap();
    assert_eq!(res.status(), StatusCode::OK, "an old version is not a match");

    let fresh = app
        .request(Method::PATCH, &path)
        .header("If-Match", "*")
        .body(json!({"Operations":[{"op":"replace","path":"title","value":"B"}]}).to_string())
        .send()
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::NO_CONTENT);
    assert_eq!(fresh.headers()["etag"], "W/\"3\"");

    expect_error(
        app.request(Method::DELETE, &path).header("If-Match", "W/\"2\"").send().unwrap(),
        StatusCode::PRECONDITION_FAILED,
    );
    assert_eq!(
        app.request(Method::DELETE, &path).header("If-Match", "W/\"3\"").send().unwrap().status(),
        StatusCode::NO_CONTENT
    );
}

#[test]
fn a_patch_that_changes_nothing_keeps_the_version() {
    let app = spawn_app();
    let uid = id(&app.create_user(&json!({"userName": "same@example.com", "title": "T"})));
    let res = app.patch(
        &format!("/Users/{uid}"),
        &json!({"Operations":[{"op":"replace","path":"title","value":"T"}]}),
    );
    assert_eq!(res.headers()["etag"], "W/\"1\"");
}
