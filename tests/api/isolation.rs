//! Accounts: a token sees its own account's data and nothing else, not even whether an id exists elsewhere.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[test]
fn another_account_can_neither_read_change_nor_detect_data() {
    let app = spawn_app();
    let alice = app.create_user(&json!({"userName": "alice@example.com", "externalId": "a1"}));
    let uid = id(&alice);
    let gid = id(&app.create_group("Sales"));
    let add = json!({"Operations":[{"op":"add","path":"members","value":[{"value": uid}]}]});
    expect_status(app.patch(&format!("/Groups/{gid}"), &add), StatusCode::NO_CONTENT);

    let (other_token, _) = app.new_account("other");
    let other = app.as_token(&other_token);
    // reads: 404 for ids, empty lists and filters
    expect_error(other.get(&format!("/Users/{uid}")), StatusCode::NOT_FOUND);
    expect_error(other.get(&format!("/Groups/{gid}")), StatusCode::NOT_FOUND);
    assert_eq!(expect_status(other.get("/Users"), StatusCode::OK)["totalResults"], json!(0));
    assert_eq!(expect_status(other.get("/Groups"), StatusCode::OK)["totalResults"], json!(0));
    for filter in ["userName eq \"alice@example.com\"", "externalId eq \"a1\"", &format!("id eq \"{uid}\"")] {
        let res = other.get(&format!("/Users?filter={}", q(filter)));
        assert_eq!(expect_status(res, StatusCode::OK)["totalResults"], json!(0), "{filter}");
    }
    let search = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]});
    assert_eq!(expect_status(other.post("/.search", &search), StatusCode::OK)["totalResults"], json!(0));

    // writes: the same 404 a missing id gets
    let missing = "00000000-0000-7000-8000-000000000000";
    for target in [uid.as_str(), missing] {
        let path = format!("/Users/{target}");
        let a = expect_error(other.put(&path, &json!({"userName": "x"})), StatusCode::NOT_FOUND);
        let b = expect_error(
            other.patch(&path, &json!({"Operations":[{"op":"replace","path":"title","value":"x"}]})),
            StatusCode::NOT_FOUND,
        );
        let c = expect_error(other.delete(&path), StatusCode::NOT_FOUND);
        for body in [a, b, c] {
            assert_eq!(
                body["detail"],
                json!(format!("User {target} not found")),
                "no difference between foreign and missing ids"
            );
        }
    }
    expect_error(other.delete(&format!("/Groups/{gid}")), StatusCode::NOT_FOUND);

    // the same userName and group name are free in another account
    other.create_user(&json!({"userName": "ALICE@example.com"}));
    other.create_group("Sales");

    // nothing changed in the first account
    let again = expect_status(app.get(&format!("/Users/{uid}")), StatusCode::OK);
    assert_eq!(again["meta"]["version"], alice["meta"]["version"]);
    assert_eq!(app.member_ids(&gid), vec![uid.clone()]);
    assert_eq!(expect_status(app.get("/Users"), StatusCode::OK)["totalResults"], json!(1));
}

#[test]
fn tokens_are_checked_and_kinds_kept_apart() {
    let app = spawn_app();
    let res = app.client.get(app.url("/Users")).header("Authorization", "non-token").send().unwrap();
    assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    expect_error(res, StatusCode::UNAUTHORIZED);
    expect_error(app.client.get(app.url("/Users")).send().unwrap(), StatusCode::UNAUTHORIZED);
    expect_error(app.as_token("wrong").get("/Users"), StatusCode::UNAUTHORIZED);
    // an admin token cannot use /scim/v2
    let admin = app.as_token(ADMIN_TOKEN);
    expect_error(admin.get("/Users"), StatusCode::FORBIDDEN);
    let res = app
        .client
        .request(Method::GET, format!("http://{}/admin/v1/sync", app.addr))
        .bearer_auth(SCIM_TOKEN)
        .send()
        .unwrap();
    assert!(matches!(res.status(), StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED), "{}", res.status());
}
