//! Okta's provisioning flow, replayed with the request bodies Okta sends.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

fn okta_user() -> serde_json::Value {
    json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"test.user@okta.local",
        "name":{"givenName":"Test","familyName":"User"},"emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],
        "displayName":"Test User","locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7","groups":[],"password":"1mz050nq","active":true})
}

#[test]
fn test_connection_then_create_link_deactivate_and_reactivate() {
    let app = spawn_app();
    // Test connection
    let users = expect_status(app.get("/Users?startIndex=1&count=2"), StatusCode::OK);
    assert_eq!(users["totalResults"], json!(0));
    assert_eq!(users["Resources"], json!([]));
    assert_eq!(users["startIndex"], json!(1));
    let groups = expect_status(app.get("/Groups?startIndex=1&count=100"), StatusCode::OK);
    assert_eq!(groups["totalResults"], json!(0));

    // Lookup before create: nothing
    let lookup =
        format!("/Users?filter={}&startIndex=1&count=100", q("userName eq \"test.user@okta.local\""));
    assert_eq!(expect_status(app.get(&lookup), StatusCode::OK)["totalResults"], json!(0));

    let created = app.create_user(&okta_user());
    let uid = id(&created);
    assert_eq!(created["userName"], json!("test.user@okta.local"));
    assert_eq!(created["active"], json!(true));
    assert_eq!(created["name"], json!({"givenName":"Test","familyName":"User"}));
    assert!(created.get("password").is_none(), "the password is never returned");
    assert_eq!(created["meta"]["resourceType"], json!("User"));
    assert_eq!(created["meta"]["location"], json!(format!("{}/Users/{uid}", app.base)));

    // Lookup now links, case-insensitively
    let found = expect_status(app.get(&lookup), StatusCode::OK);
    assert_eq!((found["totalResults"].clone(), found["Resources"][0]["id"].clone()), (json!(1), json!(uid)));
    let upper = format!("/Users?filter={}", q("userName eq \"TEST.USER@OKTA.LOCAL\""));
    assert_eq!(expect_status(app.get(&upper), StatusCode::OK)["totalResults"], json!(1));

    // Deactivate (Okta gets the user back), then reactivate
    let deactivate = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]});
    let res = app
        .request(reqwest::Method::PATCH, &format!("/Users/{uid}"))
        .header("User-Agent", "Okta SCIM Client 1.0.0")
        .header("Content-Type", "application/scim+json")
        .body(deactivate.to_string())
        .send()
        .unwrap();
    let user = expect_status(res, StatusCode::OK);
    assert_eq!(user["active"], json!(false));
    // inactive users stay visible to GET, list and filter
    assert_eq!(expect_status(app.get(&lookup), StatusCode::OK)["totalResults"], json!(1));
    let reactivate = json!({"Operations":[{"op":"replace","value":{"active":true}}]});
    expect_status(app.patch(&format!("/Users/{uid}"), &reactivate), StatusCode::NO_CONTENT);
    assert_eq!(expect_status(app.get(&format!("/Users/{uid}")), StatusCode::OK)["active"], json!(true));

    // Password sync: accepted, never returned
    let password = json!({"Operations":[{"op":"replace","value":{"password":"n3w-Secret!"}}]});
    expect_status(app.patch(&format!("/Users/{uid}"), &password), StatusCode::NO_CONTENT);
    let user = expect_status(app.get(&format!("/Users/{uid}")), StatusCode::OK);
    assert!(user.get("password").is_none());
    assert!(!user.to_string().contains("n3w-Secret"));
}

#[test]
fn duplicate_usernames_are_409_uniqueness_in_any_case() {
    let app = spawn_app();
    app.create_user(&okta_user());
    let body = expect_error(app.post("/Users", &okta_user()), StatusCode::CONFLICT);
    assert_eq!(body["scimType"], json!("uniqueness"));
    let mut shouting = okta_user();
    shouting["userName"] = json!("TEST.USER@okta.local");
    let body = expect_error(app.post("/Users", &shouting), StatusCode::CONFLICT);
    assert_eq!(body["scimType"], json!("uniqueness"));
}

#[test]
fn aiw_apps_update_with_get_then_put_of_the_whole_object() {
    let app = spawn_app();
    let uid = id(&app.create_user(&okta_user()));
    let mut user = expect_status(app.get(&format!("/Users/{uid}")), StatusCode::OK);
    user["name"]["familyName"] = json!("Userson");
    user["groups"] = json!([]);
    let put = expect_status(app.put(&format!("/Users/{uid}"), &user), StatusCode::OK);
    assert_eq!(put["name"]["familyName"], json!("Userson"));
    assert_eq!(put["id"], json!(uid));
    assert_eq!(put["meta"]["version"], json!("W/\"2\""));
    assert_eq!(put["meta"]["created"], user["meta"]["created"]);

    // a PUT that omits `active` must not deactivate
    let mut without_active = put.clone();
    without_active.as_object_mut().unwrap().remove("active");
    let put = expect_status(app.put(&format!("/Users/{uid}"), &without_active), StatusCode::OK);
    assert_eq!(put["active"], json!(true));

    // deactivation through PUT
    let mut inactive = put.clone();
    inactive["active"] = json!(false);
    assert_eq!(
        expect_status(app.put(&format!("/Users/{uid}"), &inactive), StatusCode::OK)["active"],
        json!(false)
    );
}

#[test]
fn push_groups_rename_and_change_membership() {
    let app = spawn_app();
    let alice = id(&app.create_user(&json!({"userName": "alice@okta.local", "displayName": "Alice"})));
    let bob = id(&app.create_user(&json!({"userName": "bob@okta.local"})));

    let lookup = format!("/Groups?filter={}&startIndex=1&count=100", q("displayName eq \"Sales\""));
    assert_eq!(expect_status(app.get(&lookup), StatusCode::OK)["totalResults"], json!(0));
    let group = expect_status(
        app.post("/Groups", &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Sales","members":[]})),
        StatusCode::CREATED,
    );
    let gid = id(&group);
    assert_eq!(expect_status(app.get(&lookup), StatusCode::OK)["Resources"][0]["id"], json!(gid));

    // membership: removes and adds in one request
    let body = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
        {"op":"remove","path":format!("members[value eq \"{bob}\"]")},
        {"op":"add","path":"members","value":[{"value":alice,"display":"alice@okta.local"},{"value":bob,"display":"bob@okta.local"}]}]});
    expect_status(app.patch(&format!("/Groups/{gid}"), &body), StatusCode::NO_CONTENT);
    let mut both = vec![alice.clone(), bob.clone()];
    both.sort();
    assert_eq!(app.member_ids(&gid), both);
    let body = json!({"Operations":[{"op":"remove","path":format!("members[value eq \"{bob}\"]")}]});
    expect_status(app.patch(&format!("/Groups/{gid}"), &body), StatusCode::NO_CONTENT);
    assert_eq!(app.member_ids(&gid), vec![alice.clone()]);

    // the rename Okta sends after every membership change carries the read-only id
    let rename = json!({"Operations":[{"op":"replace","value":{"id":gid,"displayName":"Sales"}}]});
    expect_status(app.patch(&format!("/Groups/{gid}"), &rename), StatusCode::NO_CONTENT);

    // full push
    let push = json!({"Operations":[{"op":"replace","path":"members","value":[{"value":bob,"display":"bob@okta.local"}]}]});
    expect_status(app.patch(&format!("/Groups/{gid}"), &push), StatusCode::NO_CONTENT);
    assert_eq!(app.member_ids(&gid), vec![bob.clone()]);
    let group = expect_status(app.get(&format!("/Groups/{gid}")), StatusCode::OK);
    assert_eq!(
        group["members"],
        json!([{"value": bob, "$ref": format!("{}/Users/{bob}", app.base), "type": "User", "display": "bob@okta.local"}])
    );

    // the user sees the group
    let user = expect_status(app.get(&format!("/Users/{bob}")), StatusCode::OK);
    assert_eq!(
        user["groups"],
        json!([{"value": gid, "$ref": format!("{}/Groups/{gid}", app.base), "display": "Sales", "type": "direct"}])
    );

    // duplicate displayName
    let dup = app.post("/Groups", &json!({"displayName": "SALES"}));
    assert_eq!(expect_error(dup, StatusCode::CONFLICT)["scimType"], json!("uniqueness"));

    // unlink with delete
    assert_eq!(app.delete(&format!("/Groups/{gid}")).status(), StatusCode::NO_CONTENT);
    expect_error(app.delete(&format!("/Groups/{gid}")), StatusCode::NOT_FOUND);
    let user = expect_status(app.get(&format!("/Users/{bob}")), StatusCode::OK);
    assert!(user.get("groups").is_none(), "a deleted group leaves no membership behind: {user}");
}

#[test]
fn import_pages_through_everything_in_a_stable_order() {
    let app = spawn_app();
    for i in 0..25 {
        app.create_user(&json!({"userName": format!("user{i:02}@okta.local")}));
    }
    let mut seen = Vec::new();
    for start in [1, 11, 21] {
        let page = expect_status(app.get(&format!("/Users?startIndex={start}&count=10")), StatusCode::OK);
        assert_eq!(page["totalResults"], json!(25));
        assert_eq!(page["startIndex"], json!(start));
        for r in page["Resources"].as_array().unwrap() {
            seen.push(r["userName"].as_str().unwrap().to_string());
        }
    }
    let want: Vec<String> = (0..25).map(|i| format!("user{i:02}@okta.local")).collect();
    assert_eq!(seen, want, "creation order, no duplicates, nothing missing");
    // count=0 gives only the total; startIndex below 1 counts from 1
    let page = expect_status(app.get("/Users?count=0"), StatusCode::OK);
    assert_eq!(
        (page["totalResults"].clone(), page["itemsPerPage"].clone(), page["Resources"].clone()),
        (json!(25), json!(0), json!([]))
    );
    let page = expect_status(app.get("/Users?startIndex=-4&count=1"), StatusCode::OK);
    assert_eq!(
        (page["startIndex"].clone(), page["Resources"][0]["userName"].clone()),
        (json!(1), json!("user00@okta.local"))
    );
}
