//! OneLogin: template-made bodies full of empty strings, full PUT updates, PATCH membership.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn template_user(manager: &str) -> serde_json::Value {
    json!({
        "schemas": ["urn:scim:schemas:core:1.0", "urn:ietf:params:scim:schemas:core:2.0:User", ENT],
        "userName": "jdoe@example.com",
        "name": {"givenName": "John", "familyName": "Doe", "middleName": "", "honorificPrefix": ""},
        "displayName": "John Doe",
        "title": "",
        "emails": [{"value": "jdoe@example.com", "primary": true}],
        "phoneNumbers": [{"value": "", "type": "work"}],
        "addresses": [{"streetAddress": "1 Main St", "locality": "Springfield", "region": "", "country": "US"}],
        ENT: {"department": "", "manager": {"value": manager, "displayName": "Jane Boss"}}
    })
}

#[test]
fn enable_create_update_suspend_and_delete() {
    let app = spawn_app();
    let json_only = |rb: reqwest::blocking::RequestBuilder| rb.header("Accept", "application/json");

    // Enable: an unknown user is an empty list, answered as plain JSON when that is all the client accepts
    let res = json_only(app.request(
        reqwest::Method::GET,
        &format!("/Users?filter={}", q("userName eq \"nobody@example.com\"")),
    ))
    .send()
    .unwrap();
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(expect_status(res, StatusCode::OK)["totalResults"], json!(0));

    let boss = id(&app.create_user(&json!({"userName": "boss@example.com", "displayName": "Jane Boss"})));
    let user = app.create_user(&template_user(&boss));
    let uid = id(&user);
    assert_eq!(user["name"], json!({"givenName": "John", "familyName": "Doe"}), "empty strings are absent");
    assert!(user.get("title").is_none() && user.get("phoneNumbers").is_none());
    assert_eq!(
        user["addresses"],
        json!([{"streetAddress": "1 Main St", "locality": "Springfield", "country": "US"}])
    );
    assert_eq!(user[ENT], json!({"manager": {"value": boss}}), "manager.displayName is read-only");
    assert_eq!(user["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENT]));

    // full PUT update, then suspend
    let mut update = template_user(&boss);
    update["title"] = json!("Engineer");
    let put = expect_status(app.put(&format!("/Users/{uid}"), &update), StatusCode::OK);
    assert_eq!(put["title"], json!("Engineer"));
    update["active"] = json!(false);
    let put = expect_status(app.put(&format!("/Users/{uid}"), &update), StatusCode::OK);
    assert_eq!(put["active"], json!(false));
    let listed = expect_status(
        app.get(&format!("/Users?filter={}", q("userName eq \"JDOE@example.com\""))),
        StatusCode::OK,
    );
    assert_eq!(listed["Resources"][0]["active"], json!(false), "suspended users stay visible");

    // membership by PATCH
    let gid = id(&app.create_group("Engineering"));
    let add = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":uid}]}]});
    expect_status(app.patch(&format!("/Groups/{gid}"), &add), StatusCode::NO_CONTENT);
    assert_eq!(app.member_ids(&gid), vec![uid.clone()]);
    let group = expect_status(app.get(&format!("/Groups/{gid}")), StatusCode::OK);
    assert_eq!(group["members"][0]["display"], json!("John Doe"), "display is filled from the user");
    let remove = json!({"Operations":[{"op":"remove","path":"members","value":[{"value":uid}]}]});
    expect_status(app.patch(&format!("/Groups/{gid}"), &remove), StatusCode::NO_CONTENT);
    assert!(app.member_ids(&gid).is_empty());

    // delete twice: 204 then 404
    assert_eq!(app.delete(&format!("/Users/{uid}")).status(), StatusCode::NO_CONTENT);
    expect_error(app.delete(&format!("/Users/{uid}")), StatusCode::NOT_FOUND);
    expect_error(app.get(&format!("/Users/{uid}")), StatusCode::NOT_FOUND);
}
