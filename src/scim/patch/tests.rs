//! Every PATCH shape in the IdP reference, applied to realistic resources with the result asserted.

use serde_json::{Map, Value, json};

use super::*;
use crate::scim::ScimType;
use crate::scim::resource::attrs_of;
use crate::scim::schema::{ENTERPRISE_URN, Registry};
use crate::scim::testing::{BEHAVIOUR_URN, behaviour_users};

const USER_ID: &str = "2819c223-7f76-453a-919d-413861904646";
const GROUP_ID: &str = "e9e30dba-f08f-4109-8486-d5c6a331660a";

fn user_schema() -> ResourceSchema {
    Registry::standard().resource(ResourceKind::User).clone()
}

fn group_schema() -> ResourceSchema {
    Registry::standard().resource(ResourceKind::Group).clone()
}

fn bjensen() -> Map<String, Value> {
    attrs_of(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_URN],
        "id": USER_ID,
        "externalId": "bjensen",
        "userName": "bjensen@example.com",
        "name": {"formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        ENTERPRISE_URN: {"employeeNumber": "701984", "department": "Tour Operations"},
        "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z", "version": "W/\"3\""}
    }))
}

fn sales_group() -> Map<String, Value> {
    attrs_of(
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": GROUP_ID, "displayName": "Sales"}),
    )
}

fn patch_user(attrs: &mut Map<String, Value>, body: Value) -> ScimResult<PatchOutcome> {
    apply(&user_schema(), USER_ID, attrs, &parse_request(&body)?)
}

fn patch_group(attrs: &mut Map<String, Value>, body: Value) -> ScimResult<PatchOutcome> {
    apply(&group_schema(), GROUP_ID, attrs, &parse_request(&body)?)
}

fn ops(list: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list})
}

/// The member changes as (operation, ids) pairs.
fn members(outcome: &PatchOutcome) -> Vec<(&'static str, Vec<String>)> {
    let ids = |entries: &[crate::scim::resource::MemberEntry]| entries.iter().map(|m| m.id.clone()).collect();
    outcome
        .members
        .iter()
        .map(|c| match c {
            MemberChange::Add(e) => ("add", ids(e)),
            MemberChange::Remove(i) => ("remove", i.clone()),
            MemberChange::RemoveAll => ("remove all", vec![]),
            MemberChange::RemoveWhere(f) => ("remove where", vec![format!("{f:?}")]),
            MemberChange::ReplaceAll(e) => ("replace all", ids(e)),
        })
        .collect()
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn changed(outcome: &PatchOutcome) -> Vec<&str> {
    outcome.changed.iter().map(String::as_str).collect()
}

// ---- Okta ----

#[test]
fn okta_deactivate_is_a_pathless_replace() {
    let mut u = bjensen();
    let out = patch_user(&mut u, ops(json!([{"op": "replace", "value": {"active": false}}]))).unwrap();
    assert_eq!(u["active"], json!(false));
    assert_eq!(changed(&out), ["active"]);
    let out = patch_user(&mut u, ops(json!([{"op": "replace", "value": {"active": true}}]))).unwrap();
    assert_eq!((u["active"].clone(), changed(&out)), (json!(true), vec!["active"]));
}

#[test]
fn okta_password_sync_hands_the_password_over_without_storing_it() {
    let mut u = bjensen();
    let before = u.clone();
    let out =
        patch_user(&mut u, ops(json!([{"op": "replace", "value": {"password": "n3w-Secret"}}]))).unwrap();
    assert_eq!(out.password.as_deref(), Some("n3w-Secret"));
    assert_eq!(u, before);
    assert_eq!(changed(&out), ["password"]);
}

#[test]
fn okta_rename_echoing_the_read_only_id_is_accepted() {
    let mut g = sales_group();
    let body = ops(json!([{"op": "replace", "value": {"id": GROUP_ID, "displayName": "Sales EMEA"}}]));
    let out = patch_group(&mut g, body).unwrap();
    assert_eq!(g["displayName"], json!("Sales EMEA"));
    assert_eq!(changed(&out), ["displayName"]);

    // the same rename again changes nothing
    let body = ops(json!([{"op": "replace", "value": {"id": GROUP_ID, "displayName": "Sales EMEA"}}]));
    assert!(patch_group(&mut g, body).unwrap().is_empty());

    let body = ops(json!([{"op": "replace", "value": {"id": "another", "displayName": "X"}}]));
    let err = patch_group(&mut g, body).unwrap_err();
    assert_eq!(err.scim_type, Some(ScimType::Mutability));
    assert_eq!(g["displayName"], json!("Sales EMEA"), "a failed PATCH changes nothing");
}

#[test]
fn okta_membership_removes_and_adds_in_one_request() {
    let mut g = sales_group();
    let body = ops(json!([
        {"op": "remove", "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"},
        {"op": "add", "path": "members", "value": [{"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"}]}
    ]));
    let out = patch_group(&mut g, body).unwrap();
    assert_eq!(
        members(&out),
        [
            ("remove", owned(&["89bb1940-b905-4575-9e7f-6f887cfb368e"])),
            ("add", owned(&["23a35c27-23d3-4c03-b4c5-6443c09e7173"])),
        ]
    );
    let MemberChange::Add(added) = &out.members[1] else { unreachable!() };
    assert_eq!(
        added[0].display.as_deref(),
        Some("test.user@okta.local"),
        "the display a client sends is kept"
    );
    assert_eq!(changed(&out), ["members"]);
    assert!(!g.contains_key("members"), "membership is never written into the group document");
}

#[test]
fn okta_full_push_replaces_all_members() {
    let mut g = sales_group();
    let body =
        ops(json!([{"op": "replace", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}]));
    let out = patch_group(&mut g, body).unwrap();
    assert_eq!(members(&out), [("replace all", owned(&["u1", "u2"]))]);
}

// ---- Entra ID ----

#[test]
fn entra_default_job_update_with_capitalised_ops() {
    let mut u = bjensen();
    let body = ops(json!([
        {"op": "Replace", "path": "displayName", "value": "Pvlo"},
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "x@test.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
        {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "Eqpj"},
        {"op": "Add", "path": "nickName", "value": "Babs"}
    ]));
    let out = patch_user(&mut u, body).unwrap();
    assert_eq!(u["displayName"], json!("Pvlo"));
    assert_eq!(
        u["emails"],
        json!([{"value": "x@test.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}])
    );
    assert_eq!(
        u["name"],
        json!({"formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen", "givenName": "Gtfd"})
    );
    assert_eq!(u[ENTERPRISE_URN], json!({"employeeNumber": "Eqpj", "department": "Tour Operations"}));
    assert_eq!(u["nickName"], json!("Babs"));
    assert_eq!(changed(&out), ["displayName", "emails", "name", "nickName", ENTERPRISE_URN]);
}

#[test]
fn entra_aadoptscim062020_pathless_replace_with_dotted_and_urn_keys() {
    let mut u = bjensen();
    let body = ops(json!([{"op": "replace", "value": {
        "displayName": "Bjfe", "name.givenName": "Kkom",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"}}]));
    patch_user(&mut u, body).unwrap();
    assert_eq!(u["displayName"], json!("Bjfe"));
    assert_eq!(u["name"]["givenName"], json!("Kkom"));
    assert_eq!(u["name"]["familyName"], json!("Jensen"), "other sub-attributes stay");
    assert_eq!(u[ENTERPRISE_URN]["employeeNumber"], json!("Aklq"));
}

#[test]
fn entra_filtered_replace_that_matches_nothing_creates_the_element() {
    let mut u = bjensen();
    let body =
        ops(json!([{"op": "Replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "555"}]));
    let out = patch_user(&mut u, body).unwrap();
    assert_eq!(u["phoneNumbers"], json!([{"type": "work", "value": "555"}]));
    assert_eq!(changed(&out), ["phoneNumbers"]);
    // a second replace updates the element it created
    let body =
        ops(json!([{"op": "Replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "556"}]));
    patch_user(&mut u, body).unwrap();
    assert_eq!(u["phoneNumbers"], json!([{"type": "work", "value": "556"}]));
}

#[test]
fn filtered_add_that_matches_nothing_creates_the_element() {
    let mut u = bjensen();
    u.insert("phoneNumbers".into(), json!([{"type": "home", "value": "555-0100"}]));
    let body =
        ops(json!([{"op": "add", "path": "phoneNumbers[type eq \"work\"].value", "value": "555-0199"}]));
    let out = patch_user(&mut u, body).unwrap();
    assert_eq!(
        u["phoneNumbers"],
        json!([{"type": "home", "value": "555-0100"}, {"type": "work", "value": "555-0199"}])
    );
    assert_eq!(changed(&out), ["phoneNumbers"]);
    // and with no phone numbers at all
    let mut u = bjensen();
    let body =
        ops(json!([{"op": "add", "path": "phoneNumbers[type eq \"work\"].value", "value": "555-0199"}]));
    patch_user(&mut u, body).unwrap();
    assert_eq!(u["phoneNumbers"], json!([{"type": "work", "value": "555-0199"}]));
}

#[test]
fn entra_disables_with_a_string_boolean() {
    let mut u = bjensen();
    patch_user(&mut u, ops(json!([{"op": "Replace", "path": "active", "value": "False"}]))).unwrap();
    assert_eq!(u["active"], json!(false));
    patch_user(&mut u, ops(json!([{"op": "replace", "path": "active", "value": true}]))).unwrap();
    assert_eq!(u["active"], json!(true));
}

#[test]
fn entra_manager_in_every_shape_and_its_removal() {
    let want = json!({"value": "m-26118915"});
    for (path, value) in [
        ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", json!("m-26118915")),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            json!({"value": "m-26118915"}),
        ),
        ("manager", json!([{"value": "m-26118915"}])),
    ] {
        let mut u = bjensen();
        patch_user(&mut u, ops(json!([{"op": "Add", "path": path, "value": value}]))).unwrap();
        assert_eq!(u[ENTERPRISE_URN]["manager"], want, "{path} {value}");
    }
    let mut u = bjensen();
    let body =
        ops(json!([{"op": "Add", "path": "manager", "value": [{"$ref": "../Users/m-1", "value": "m-1"}]}]));
    patch_user(&mut u, body).unwrap();
    assert_eq!(u[ENTERPRISE_URN]["manager"], json!({"$ref": "../Users/m-1", "value": "m-1"}));

    for removal in [json!(""), json!({"value": ""})] {
        let mut u = bjensen();
        u.get_mut(ENTERPRISE_URN).unwrap()["manager"] = json!({"value": "m-1"});
        let path = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager";
        patch_user(&mut u, ops(json!([{"op": "Replace", "path": path, "value": removal}]))).unwrap();
        assert!(u[ENTERPRISE_URN].get("manager").is_none(), "{removal}");
    }
}

#[test]
fn entra_app_roles_as_json_inside_a_string() {
    let mut u = bjensen();
    let role =
        "{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"25\",\"displayName\":\"Role1234\"}";
    patch_user(&mut u, ops(json!([{"op": "Add", "path": "roles", "value": [{"value": role}]}]))).unwrap();
    assert_eq!(u["roles"], json!([{"value": "25", "display": "Role1234"}]));
}

#[test]
fn entra_roles_selected_by_a_string_primary() {
    let mut u = bjensen();
    u.insert(
        "roles".into(),
        json!([{"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}, {"value": "Reader"}]),
    );
    let body = ops(json!([{"op": "Replace", "path": "roles[primary eq \"True\"].value", "value": "Owner"}]));
    patch_user(&mut u, body).unwrap();
    assert_eq!(
        u["roles"],
        json!([{"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "Owner"}, {"value": "Reader"}])
    );
}

#[test]
fn entra_group_member_batches_and_removals() {
    let mut g = sales_group();
    let add = ops(
        json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "id1"}, {"$ref": null, "value": "id2"}]}]),
    );
    assert_eq!(members(&patch_group(&mut g, add).unwrap()), [("add", owned(&["id1", "id2"]))]);

    // default job: a remove with a value removes only those members, never all of them
    let remove = ops(json!([{"op": "Remove", "path": "members", "value": [{"value": "id1"}]}]));
    assert_eq!(members(&patch_group(&mut g, remove).unwrap()), [("remove", owned(&["id1"]))]);

    // aadOptscim062020
    let remove = ops(json!([{"op": "remove", "path": "members[value eq \"id2\"]"}]));
    assert_eq!(members(&patch_group(&mut g, remove).unwrap()), [("remove", owned(&["id2"]))]);

    // validator "Add Member"
    let replace = ops(json!([{"op": "replace", "path": "members", "value": [{"value": "id3"}]}]));
    assert_eq!(members(&patch_group(&mut g, replace).unwrap()), [("replace all", owned(&["id3"]))]);

    let rename = ops(json!([{"op": "Replace", "path": "displayName", "value": "G2"}]));
    let out = patch_group(&mut g, rename).unwrap();
    assert_eq!((g["displayName"].clone(), out.members.len()), (json!("G2"), 0));
}

#[test]
fn member_removal_by_or_chain_and_by_other_filters() {
    let mut g = sales_group();
    let body = ops(json!([{"op": "remove", "path": "members[value eq \"a\" or value eq \"b\"]"}]));
    assert_eq!(members(&patch_group(&mut g, body).unwrap()), [("remove", owned(&["a", "b"]))]);
    let body = ops(json!([{"op": "remove", "path": "members[type eq \"Group\"]"}]));
    assert!(matches!(patch_group(&mut g, body).unwrap().members[..], [MemberChange::RemoveWhere(_)]));
    let body = ops(json!([{"op": "remove", "path": "members"}]));
    assert_eq!(members(&patch_group(&mut g, body).unwrap()), [("remove all", vec![])]);
    // members given as bare strings
    let body = ops(json!([{"op": "add", "path": "members", "value": ["u1", "u2", "u1"]}]));
    assert_eq!(members(&patch_group(&mut g, body).unwrap()), [("add", owned(&["u1", "u2"]))]);
    let body = ops(json!([{"op": "add", "value": {"members": [{"value": "u9"}]}}]));
    assert_eq!(members(&patch_group(&mut g, body).unwrap()), [("add", owned(&["u9"]))]);
    // Microsoft's reference tests: an unknown operation member, `displayName` on a member, a bare string
    let body = json!({"id": GROUP_ID, "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"name": "addMember", "op": "add", "path": "members", "value": [{"displayName": "new User", "value": "id4"}]},
        {"op": "add", "path": "members", "value": "string id 1"}]});
    let out = patch_group(&mut g, body).unwrap();
    assert_eq!(members(&out), [("add", owned(&["id4"])), ("add", owned(&["string id 1"]))]);
    let MemberChange::Add(added) = &out.members[0] else { unreachable!() };
    assert_eq!(added[0].display.as_deref(), Some("new User"));
}

// ---- RFC semantics ----

#[test]
fn remove_with_a_filter_that_matches_nothing_is_a_no_op() {
    let mut u = bjensen();
    let before = u.clone();
    let out =
        patch_user(&mut u, ops(json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]))).unwrap();
    assert!(out.is_empty());
    assert_eq!(u, before);
}

#[test]
fn remove_by_filter_and_sub_attribute() {
    let mut u = bjensen();
    patch_user(&mut u, ops(json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]))).unwrap();
    assert_eq!(u["emails"], json!([{"value": "bjensen@example.com", "type": "work", "primary": true}]));
    patch_user(&mut u, ops(json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]))).unwrap();
    assert_eq!(u["emails"], json!([{"value": "bjensen@example.com", "type": "work"}]));
    patch_user(&mut u, ops(json!([{"op": "remove", "path": "name.formatted"}]))).unwrap();
    assert_eq!(u["name"], json!({"familyName": "Jensen", "givenName": "Barbara"}));
    patch_user(&mut u, ops(json!([{"op": "remove", "path": "emails"}]))).unwrap();
    assert!(!u.contains_key("emails"));
    let body =
        ops(json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}]));
    patch_user(&mut u, body).unwrap();
    assert!(!u.contains_key(ENTERPRISE_URN));
}

#[test]
fn remove_with_a_value_list_on_a_multi_valued_attribute() {
    let mut u = bjensen();
    let body = ops(
        json!([{"op": "remove", "path": "emails", "value": [{"value": "babs@jensen.org", "type": "home"}]}]),
    );
    patch_user(&mut u, body).unwrap();
    assert_eq!(u["emails"], json!([{"value": "bjensen@example.com", "type": "work", "primary": true}]));
}

#[test]
fn add_to_a_multi_valued_attribute_appends_and_keeps_one_primary() {
    let mut u = bjensen();
    let body = ops(
        json!([{"op": "add", "path": "emails", "value": [{"value": "new@x.com", "type": "other", "primary": true}]}]),
    );
    patch_user(&mut u, body).unwrap();
    assert_eq!(
        u["emails"],
        json!([
            {"value": "bjensen@example.com", "type": "work", "primary": false},
            {"value": "babs@jensen.org", "type": "home"},
            {"value": "new@x.com", "type": "other", "primary": true}
        ])
    );
    // adding the same value again does not duplicate it
    let body =
        ops(json!([{"op": "add", "path": "emails", "value": [{"value": "new@x.com", "type": "other"}]}]));
    patch_user(&mut u, body).unwrap();
    assert_eq!(u["emails"].as_array().unwrap().len(), 3);
    // a lone object is not an array of values
    let body =
        ops(json!([{"op": "add", "path": "emails", "value": {"value": "new@x.com", "type": "other"}}]));
    assert!(patch_user(&mut u, body).is_err());
}

fn primaries(value: &Value) -> usize {
    value.as_array().map_or(0, |items| items.iter().filter(|i| i["primary"] == json!(true)).count())
}

#[test]
fn no_patch_shape_leaves_two_primary_values() {
    for body in [
        json!([{"op": "replace", "path": "emails.primary", "value": true}]),
        json!([{"op": "add", "path": "emails.primary", "value": "True"}]),
        json!([{"op": "replace", "value": {"emails.primary": true}}]),
        json!([{"op": "replace", "path": "emails[type eq \"work\" or type eq \"home\"].primary", "value": true}]),
    ] {
        let mut u = bjensen();
        patch_user(&mut u, ops(body.clone())).unwrap();
        assert_eq!(primaries(&u["emails"]), 1, "{body}: {}", u["emails"]);
    }
    // the element that was primary before stays the primary one, wherever it stands
    let mut u = bjensen();
    u["emails"].as_array_mut().unwrap().reverse();
    patch_user(&mut u, ops(json!([{"op": "replace", "path": "emails.primary", "value": true}]))).unwrap();
    assert_eq!(
        u["emails"],
        json!([
            {"value": "babs@jensen.org", "type": "home", "primary": false},
            {"value": "bjensen@example.com", "type": "work", "primary": true}
        ])
    );
}

#[test]
fn replace_of_a_multi_valued_attribute_replaces_all_values() {
    let mut u = bjensen();
    let body =
        ops(json!([{"op": "replace", "path": "emails", "value": [{"value": "only@x.com", "type": "work"}]}]));
    patch_user(&mut u, body).unwrap();
    assert_eq!(u["emails"], json!([{"value": "only@x.com", "type": "work"}]));
}

#[test]
fn replace_of_a_complex_attribute_merges_sub_attributes() {
    let mut u = bjensen();
    patch_user(&mut u, ops(json!([{"op": "replace", "path": "name", "value": {"givenName": "Barb"}}])))
        .unwrap();
    assert_eq!(
        u["name"],
        json!({"formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen", "givenName": "Barb"})
    );
}

#[test]
fn add_of_a_whole_extension_object() {
    let mut u = bjensen();
    let body = ops(
        json!([{"op": "add", "path": ENTERPRISE_URN, "value": {"costCenter": "4130", "Department": "R&D"}}]),
    );
    patch_user(&mut u, body).unwrap();
    assert_eq!(
        u[ENTERPRISE_URN],
        json!({"employeeNumber": "701984", "department": "R&D", "costCenter": "4130"})
    );
    let mut u = bjensen();
    u.remove(ENTERPRISE_URN);
    let body = ops(json!([{"op": "add", "value": {ENTERPRISE_URN: {"division": "North"}}}]));
    patch_user(&mut u, body).unwrap();
    assert_eq!(u[ENTERPRISE_URN], json!({"division": "North"}));
}

#[test]
fn mutability_and_required_attributes_are_enforced() {
    let mut u = bjensen();
    for (body, want) in [
        (json!([{"op": "replace", "path": "id", "value": "x"}]), ScimType::Mutability),
        (
            json!([{"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}]),
            ScimType::Mutability,
        ),
        (json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]), ScimType::Mutability),
        (json!([{"op": "remove", "path": "userName"}]), ScimType::InvalidValue),
        (json!([{"op": "replace", "path": "userName", "value": ""}]), ScimType::InvalidValue),
        (json!([{"op": "remove"}]), ScimType::NoTarget),
        (json!([{"op": "replace", "path": "active", "value": "maybe"}]), ScimType::InvalidValue),
        (
            json!([{"op": "replace", "path": "displayName[value eq \"x\"]", "value": "y"}]),
            ScimType::InvalidPath,
        ),
        (json!([{"op": "replace", "path": "userName.first", "value": "y"}]), ScimType::InvalidPath),
    ] {
        let err = patch_user(&mut u, ops(body.clone())).unwrap_err();
        assert_eq!(err.scim_type, Some(want), "{body}: {err}");
    }
    assert_eq!(u, bjensen());
}

// ---- immutable attributes (RFC 7643 §7: a first value may be given, then it never changes) ----

fn patch_behaviour(attrs: &mut Map<String, Value>, body: Value) -> ScimResult<PatchOutcome> {
    apply(&behaviour_users(), USER_ID, attrs, &parse_request(&body)?)
}

fn assert_refused(attrs: &mut Map<String, Value>, bodies: &[Value]) {
    let before = attrs.clone();
    for body in bodies {
        let err = patch_behaviour(attrs, ops(body.clone())).unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::Mutability), "{body}: {err}");
        assert_eq!(*attrs, before, "{body}: a refused PATCH changes nothing");
    }
}

#[test]
fn an_immutable_attribute_takes_a_first_value_and_then_keeps_it() {
    let badge = format!("{BEHAVIOUR_URN}:badgeId");
    let mut u = bjensen();
    patch_behaviour(&mut u, ops(json!([{"op": "add", "path": badge, "value": "B-1"}]))).unwrap();
    assert_eq!(u[BEHAVIOUR_URN], json!({"badgeId": "B-1"}));
    // the same value again is no change, so no error (a retried request)
    let again = ops(json!([{"op": "add", "path": "badgeId", "value": "B-1"}]));
    assert!(patch_behaviour(&mut u, again).unwrap().is_empty());
    assert_refused(
        &mut u,
        &[
            json!([{"op": "add", "path": badge, "value": "B-2"}]),
            json!([{"op": "replace", "path": "badgeId", "value": "B-2"}]),
            json!([{"op": "remove", "path": badge}]),
            json!([{"op": "replace", "value": {"badgeId": "B-2"}}]),
            json!([{"op": "replace", "value": {BEHAVIOUR_URN: {"badgeId": "B-2"}}}]),
            json!([{"op": "remove", "path": BEHAVIOUR_URN}]),
        ],
    );
    // a replace that finds no value is an add (RFC 7644 §3.5.2.3), so it may give the first value
    let mut fresh = bjensen();
    patch_behaviour(&mut fresh, ops(json!([{"op": "replace", "path": badge, "value": "B-3"}]))).unwrap();
    assert_eq!(fresh[BEHAVIOUR_URN]["badgeId"], json!("B-3"));
}

#[test]
fn an_immutable_sub_attribute_takes_a_first_value_and_then_keeps_it() {
    let mut u = bjensen();
    patch_behaviour(&mut u, ops(json!([{"op": "add", "path": "locker.number", "value": "L-7"}]))).unwrap();
    // its mutable siblings still change, and a merge that leaves it alone is fine
    let body = ops(json!([{"op": "replace", "path": "locker", "value": {"site": "North", "number": "L-7"}}]));
    patch_behaviour(&mut u, body).unwrap();
    patch_behaviour(&mut u, ops(json!([{"op": "replace", "path": "locker.site", "value": "South"}])))
        .unwrap();
    assert_eq!(u[BEHAVIOUR_URN], json!({"locker": {"number": "L-7", "site": "South"}}));
    assert_refused(
        &mut u,
        &[
            json!([{"op": "replace", "path": "locker.number", "value": "L-8"}]),
            json!([{"op": "add", "path": "locker", "value": {"number": "L-8"}}]),
            json!([{"op": "replace", "value": {"locker.number": "L-8"}}]),
            json!([{"op": "remove", "path": "locker.number"}]),
            json!([{"op": "remove", "path": "locker"}]),
        ],
    );
}

#[test]
fn immutable_sub_attributes_of_members_cannot_be_patched() {
    let mut g = sales_group();
    let body = ops(json!([{"op": "replace", "path": "members[value eq \"u1\"].type", "value": "Group"}]));
    assert_eq!(patch_group(&mut g, body).unwrap_err().scim_type, Some(ScimType::Mutability));
}

#[test]
fn unknown_attributes_are_ignored_like_on_create() {
    let mut u = bjensen();
    let body = ops(json!([
        {"op": "add", "path": "favouriteColour", "value": "blue"},
        {"op": "replace", "value": {"shoeSize": 44, "schemas": ["x"], "meta": {"version": "1"}}}
    ]));
    assert!(patch_user(&mut u, body).unwrap().is_empty());
    assert_eq!(u, bjensen());
}

#[test]
fn request_parsing_is_tolerant_of_case_and_strict_about_shape() {
    let body = json!({"operations": [{"OP": "ADD", "Path": "title", "Value": "Boss"}]});
    let parsed = parse_request(&body).unwrap();
    assert_eq!(parsed[0].kind, OpKind::Add);
    assert_eq!(parsed[0].value, Some(json!("Boss")));
    for (body, want) in [
        (json!([]), ScimType::InvalidSyntax),
        (json!({"Operations": []}), ScimType::InvalidSyntax),
        (json!({"Operations": [{"op": "move", "path": "x"}]}), ScimType::InvalidSyntax),
        (json!({"Operations": [{"op": "add", "path": "title"}]}), ScimType::InvalidValue),
        (json!({"Operations": [{"op": "add", "path": "emails[type eq", "value": 1}]}), ScimType::InvalidPath),
    ] {
        assert_eq!(parse_request(&body).unwrap_err().scim_type, Some(want), "{body}");
    }
}

// ---- cost ----

/// Element visits of `work`; other tests running meanwhile add a few, never thousands.
fn visits_of(work: impl FnOnce()) -> u64 {
    let before = element_visits();
    work();
    element_visits() - before
}

#[test]
fn filtered_operations_cost_linear_work() {
    const N: usize = 1000;
    let mut u = bjensen();
    let emails: Vec<Value> =
        (0..N).map(|i| json!({"value": format!("u{i}@example.com"), "type": format!("t{i}")})).collect();
    u.insert("emails".into(), Value::Array(emails));
    // Entra's shape: replace a value selected by its type, once per element
    let replaces: Vec<Value> = (0..N)
        .map(|i| json!({"op": "replace", "path": format!("emails[type eq \"t{i}\"].value"), "value": format!("new{i}@example.com")}))
        .collect();
    let visits = visits_of(|| {
        patch_user(&mut u, ops(Value::Array(replaces))).unwrap();
    });
    assert_eq!(u["emails"][N - 1]["value"], json!(format!("new{}@example.com", N - 1)));
    // A scan per operation visits N * N = 1,000,000 elements.
    assert!(visits <= 10 * N as u64, "{N} filtered replaces visited {visits} elements");

    let removes: Vec<Value> = (0..N)
        .map(|i| json!({"op": "remove", "path": format!("emails[value eq \"NEW{i}@example.com\"]")}))
        .collect();
    let visits = visits_of(|| {
        patch_user(&mut u, ops(Value::Array(removes))).unwrap();
    });
    assert!(u.get("emails").is_none(), "every element removed (value compares case-insensitively)");
    assert!(visits <= 10 * N as u64, "{N} filtered removes visited {visits} elements");
}

#[test]
fn filters_that_cannot_be_looked_up_still_select_the_same_elements() {
    let mut u = bjensen();
    let body = ops(json!([
        {"op": "remove", "path": "emails[value co \"jensen.org\"]"},
        {"op": "replace", "path": "emails[type eq \"work\" and value sw \"bjensen\"].display", "value": "Work"},
        {"op": "add", "path": "emails", "value": [{"value": "third@example.com", "type": "other"}]},
        {"op": "remove", "path": "emails[type eq \"other\" or value eq \"nobody\"]"}
    ]));
    patch_user(&mut u, body).unwrap();
    assert_eq!(
        u["emails"],
        json!([{"value": "bjensen@example.com", "type": "work", "primary": true, "display": "Work"}])
    );
}
