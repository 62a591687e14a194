//! Microsoft Entra ID's provisioning flow, without and with the `aadOptscim062020` flag.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn entra_user(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
        "externalId": user_name.split('@').next().unwrap(),
        "userName": user_name,
        "active": true,
        "displayName": "Barbara Jensen",
        "emails": [{"primary": true, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Barbara Jensen", "familyName": "Jensen", "givenName": "Barbara"},
        "roles": [],
        ENT: {"department": "Tour Operations", "employeeNumber": "701984"}
    })
}

/// Entra appends its flag to the tenant URL, so it rides on every request.
fn flagged(path: &str) -> String {
    if path.contains('?') { format!("{path}&aadOptscim062020") } else { format!("{path}?aadOptscim062020") }
}

fn ops(list: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list})
}

#[test]
fn default_job_provisions_updates_disables_and_manages_groups() {
    let app = spawn_app();
    // Test Connection
    let probe = format!("/Users?filter={}", q("userName eq \"0a1b2c3d-4e5f-6789-abcd-ef0123456789\""));
    let empty = expect_status(app.get(&probe), StatusCode::OK);
    assert_eq!((empty["totalResults"].clone(), empty["Resources"].clone()), (json!(0), json!([])));

    // matching by externalId, unquoted as Microsoft's docs show it
    assert_eq!(
        expect_status(app.get("/Users?filter=externalId%20eq%20bjensen"), StatusCode::OK)["totalResults"],
        json!(0)
    );
    let user = app.create_user(&entra_user("bjensen@contoso.com"));
    let uid = id(&user);
    assert_eq!(user[ENT]["department"], json!("Tour Operations"));
    let by_ext = expect_status(app.get("/Users?filter=externalId%20eq%20bjensen"), StatusCode::OK);
    assert_eq!(by_ext["Resources"][0]["id"], json!(uid));
    let by_email =
        format!("/Users?filter={}", q("emails[type eq \"work\"].value eq \"bjensen@contoso.com\""));
    assert_eq!(expect_status(app.get(&by_email), StatusCode::OK)["totalResults"], json!(1));

    // update: capitalised ops
    let update = ops(json!([
        {"op":"Replace","path":"displayName","value":"Pvlo"},
        {"op":"Replace","path":"emails[type eq \"work\"].value","value":"x@test.com"},
        {"op":"Replace","path":"name.givenName","value":"Gtfd"},
        {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"Eqpj"},
        {"op":"Add","path":"nickName","value":"Babs"},
        {"op":"Replace","path":"phoneNumbers[type eq \"work\"].value","value":"555"},
        {"op":"Add","path":"roles","value":[{"value":"{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"25\",\"displayName\":\"Role1234\"}"}]}
    ]));
    expect_status(app.patch(&format!("/Users/{uid}"), &update), StatusCode::NO_CONTENT);
    let user = expect_status(app.get(&format!("/Users/{uid}")), StatusCode::OK);
    assert_eq!(user["displayName"], json!("Pvlo"));
    assert_eq!(user["emails"], json!([{"primary": true, "type": "work", "value": "x@test.com"}]));
    assert_eq!(user["name"]["givenName"], json!("Gtfd"));
    assert_eq!(user[ENT], json!({"department": "Tour Operations", "employeeNumber": "Eqpj"}));
    assert_eq!(user["nickName"], json!("Babs"));
    assert_eq!(user["phoneNumbers"], json!([{"type": "work", "value": "555"}]));
    assert_eq!(user["roles"], json!([{"value": "25", "display": "Role1234"}]));

    // manager, all shapes, then removal
    let manager = id(&app.create_user(&entra_user("boss@contoso.com")));
    for (path, value) in [
        ("manager", json!([{"$ref": format!("../Users/{manager}"), "value": manager}])),
        ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", json!(manager)),
        ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", json!({"value": manager})),
    ] {
        expect_status(
            app.patch(&format!("/Users/{uid}"), &ops(json!([{"op":"Add","path":path,"value":value}]))),
            StatusCode::NO_CONTENT,
        );
        let user = expect_status(app.get(&format!("/Users/{uid}")), StatusCode::OK);
        assert_eq!(user[ENT]["manager"]["value"], json!(manager), "{path}");
    }
    let remove = ops(
        json!([{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":""}]),
    );
    expect_status(app.patch(&format!("/Users/{uid}"), &remove), StatusCode::NO_CONTENT);
    assert!(expect_status(app.get(&format!("/Users/{uid}")), StatusCode::OK)[ENT].get("manager").is_none());

    // disable with a string boolean
    expect_status(
        app.patch(&format!("/Users/{uid}"), &ops(json!([{"op":"Replace","path":"active","value":"False"}]))),
        StatusCode::NO_CONTENT,
    );
    assert_eq!(expect_status(app.get(&format!("/Users/{uid}")), StatusCode::OK)["active"], json!(false));

    // groups: created empty, renamed, members added in batches, removed with a value
    let g = json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","displayName":"Contoso Sales","meta":{"resourceType":"Group"}});
    let gid = id(&expect_status(app.post("/Groups", &g), StatusCode::CREATED));
    let lookup =
        format!("/Groups?excludedAttributes=members&filter={}", q("displayName eq \"Contoso Sales\""));
    let found = expect_status(app.get(&lookup), StatusCode::OK);
    assert_eq!(found["Resources"][0]["id"], json!(gid));
    assert!(found["Resources"][0].get("members").is_none());
    expect_status(
        app.patch(
            &format!("/Groups/{gid}"),
            &ops(json!([{"op":"Replace","path":"displayName","value":"G2"}])),
        ),
        StatusCode::NO_CONTENT,
    );
    let add = ops(
        json!([{"op":"Add","path":"members","value":[{"$ref":null,"value":uid},{"$ref":null,"value":manager}]}]),
    );
    expect_status(app.patch(&format!("/Groups/{gid}"), &add), StatusCode::NO_CONTENT);
    let mut both = vec![uid.clone(), manager.clone()];
    both.sort();
    assert_eq!(app.member_ids(&gid), both);

    // membership check
    let check =
        format!("/Groups?filter={}&attributes=id", q(&format!("id eq \"{gid}\" and members eq \"{uid}\"")));
    let hit = expect_status(app.get(&check), StatusCode::OK);
    assert_eq!(
        (hit["totalResults"].clone(), hit["Resources"][0].clone()),
        (json!(1), json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id": gid}))
    );

    // remove with a value removes only that member, never all
    let remove = ops(json!([{"op":"Remove","path":"members","value":[{"value":uid}]}]));
    expect_status(app.patch(&format!("/Groups/{gid}"), &remove), StatusCode::NO_CONTENT);
    assert_eq!(app.member_ids(&gid), vec![manager.clone()]);
    let miss = expect_status(app.get(&check), StatusCode::OK);
    assert_eq!(miss["totalResults"], json!(0));
}

#[test]
fn aadoptscim062020_flag_pathless_dotted_replace_and_filtered_member_removal() {
    let app = spawn_app();
    let uid = id(&expect_status(
        app.post(&flagged("/Users"), &entra_user("adele@contoso.com")),
        StatusCode::CREATED,
    ));
    let update = ops(json!([{"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}]));
    expect_status(app.patch(&flagged(&format!("/Users/{uid}")), &update), StatusCode::NO_CONTENT);
    let user = expect_status(app.get(&flagged(&format!("/Users/{uid}"))), StatusCode::OK);
    assert_eq!(user["displayName"], json!("Bjfe"));
    assert_eq!(
        user["name"],
        json!({"formatted": "Barbara Jensen", "familyName": "Jensen", "givenName": "Kkom"})
    );
    assert_eq!(user[ENT]["employeeNumber"], json!("Aklq"));

    expect_status(
        app.patch(
            &flagged(&format!("/Users/{uid}")),
            &ops(json!([{"op":"replace","path":"active","value":false}])),
        ),
        StatusCode::NO_CONTENT,
    );
    assert_eq!(expect_status(app.get(&format!("/Users/{uid}")), StatusCode::OK)["active"], json!(false));

    let other = id(&app.create_user(&entra_user("other@contoso.com")));
    let gid = id(&app.create_group("Flagged"));
    let add = ops(json!([{"op":"add","path":"members","value":[{"value":uid},{"value":other}]}]));
    expect_status(app.patch(&flagged(&format!("/Groups/{gid}")), &add), StatusCode::NO_CONTENT);
    let remove = ops(json!([{"op":"remove","path":format!("members[value eq \"{uid}\"]")}]));
    expect_status(app.patch(&flagged(&format!("/Groups/{gid}")), &remove), StatusCode::NO_CONTENT);
    assert_eq!(app.member_ids(&gid), vec![other.clone()]);
    // the validator's "Add Member"
    let replace = ops(json!([{"op":"replace","path":"members","value":[{"value":uid}]}]));
    expect_status(app.patch(&flagged(&format!("/Groups/{gid}")), &replace), StatusCode::NO_CONTENT);
    assert_eq!(app.member_ids(&gid), vec![uid.clone()]);
}

#[test]
fn validator_create_with_string_primary_role() {
    let app = spawn_app();
    let mut body = entra_user("validator@contoso.com");
    body["roles"] = json!([{"primary":"True","type":"WindowsAzureActiveDirectoryRole","value":"Admin"}]);
    let user = app.create_user(&body);
    assert_eq!(
        user["roles"],
        json!([{"primary":true,"type":"WindowsAzureActiveDirectoryRole","value":"Admin"}])
    );
    let uid = id(&user);
    let replace = ops(json!([{"op":"Replace","path":"roles[primary eq \"True\"].value","value":"Owner"}]));
    expect_status(app.patch(&format!("/Users/{uid}"), &replace), StatusCode::NO_CONTENT);
    assert_eq!(
        expect_status(app.get(&format!("/Users/{uid}")), StatusCode::OK)["roles"][0]["value"],
        json!("Owner")
    );
}
