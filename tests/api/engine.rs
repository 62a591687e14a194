//! The engine's answers to an admin (issue 11, engine side): freed seats reassigned, complete explanations,
//! rules whose group was deleted, filters validated against the account's schema.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn product(app: &TestApp, id: &str, name: &str, seats: Option<u64>) {
    let body = json!({"name": name, "seats": seats, "requires": []});
    let res = app.admin(Method::PUT, &format!("/products/{id}"), Some(&body));
    assert!(res.status().is_success(), "{}", res.text().unwrap_or_default());
}

fn rule(app: &TestApp, body: Value) -> Value {
    app.admin_ok(Method::POST, "/rules", Some(&body), StatusCode::CREATED)
}

fn sync_on(app: &TestApp) {
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": true})), StatusCode::OK);
}

fn user(app: &TestApp, name: &str, extra: Value) -> String {
    let mut body = json!({"userName": name, "emails": [{"value": name, "primary": true}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    id(&app.create_user(&body))
}

fn state(app: &TestApp, uid: &str) -> Value {
    app.entitlements(uid)["state"].clone()
}

/// The failures' users, as `(userName, detail)`, by userName.
fn failing(app: &TestApp) -> Vec<(String, String)> {
    let failures = app.admin_ok(Method::GET, "/failures?count=1000", None, StatusCode::OK);
    let mut out = Vec::new();
    for u in failures["Resources"].as_array().unwrap() {
        out.push((u["userName"].as_str().unwrap().to_string(), u["detail"].as_str().unwrap().to_string()));
    }
    out.sort();
    out
}

fn deactivate(app: &TestApp, uid: &str) {
    let off = json!({"Operations": [{"op": "replace", "path": "active", "value": false}]});
    expect_status(app.patch(&format!("/Users/{uid}"), &off), StatusCode::NO_CONTENT);
}

#[test]
fn freed_seats_go_to_the_oldest_failure_without_a_retry() {
    let app = spawn_app();
    product(&app, "webinar", "Webinar", Some(2));
    let g = id(&app.create_group("Hosts"));
    rule(&app, json!({"group": g, "products": ["webinar"]}));
    sync_on(&app);
    let holders: Vec<String> =
        (0..2).map(|i| user(&app, &format!("holder{i}@example.com"), json!({}))).collect();
    app.add_members(&g, &holders.iter().map(String::as_str).collect::<Vec<_>>());
    app.settle();
    // the later user is created first, so id order and waiting order differ
    let later = user(&app, "later@example.com", json!({}));
    let first = user(&app, "first@example.com", json!({}));
    app.add_members(&g, &[&first]);
    app.settle();
    app.add_members(&g, &[&later]);
    app.settle();
    assert_eq!((state(&app, &first), state(&app, &later)), (json!("failed"), json!("failed")));
    assert_eq!(
        failing(&app),
        [
            ("first@example.com".to_string(), "Webinar: 2 of 2 seats in use".to_string()),
            ("later@example.com".to_string(), "Webinar: 2 of 2 seats in use".to_string())
        ]
    );

    // a preview hands out seats the same way: a seat freed by a rule change goes to the longest waiting
    // user, though the other comes first in id order
    let leads = id(&app.create_group("Leads"));
    app.add_members(&leads, &[&holders[0]]);
    product(&app, "meeting", "Meeting", None);
    let proposed = json!({"rules": [
        {"group": leads, "products": ["meeting"]},
        {"group": g, "products": ["webinar"]},
    ]});
    let preview = app.admin_ok(Method::POST, "/rules/preview", Some(&proposed), StatusCode::OK);
    let change = |uid: &str| {
        preview["users"].as_array().unwrap().iter().find(|u| u["id"] == json!(uid)).unwrap().clone()
    };
    assert_eq!(change(&holders[0])["loses"], json!(["webinar"]));
    assert_eq!(change(&first)["wouldFail"], Value::Null, "{preview}");
    assert_eq!(change(&later)["wouldFail"], json!({"reason": "outOfLicenses", "products": ["webinar"]}));
    app.remove_member(&leads, &holders[0]);

    // a deactivation frees a seat: it goes to the user who has waited longest, without an admin's retry
    deactivate(&app, &holders[0]);
    app.settle();
    assert_eq!((state(&app, &first), state(&app, &later)), (json!("entitled"), json!("failed")));
    assert_eq!(
        failing(&app),
        [("later@example.com".to_string(), "Webinar: 2 of 2 seats in use".to_string())]
    );
    // a deletion frees one too
    expect_status(app.delete(&format!("/Users/{}", holders[1])), StatusCode::NO_CONTENT);
    app.settle();
    assert_eq!(state(&app, &later), json!("entitled"));
    assert_eq!(failing(&app), []);
    let webinar = app.admin_ok(Method::GET, "/products/webinar", None, StatusCode::OK);
    assert_eq!((webinar["used"].clone(), webinar["seats"].clone()), (json!(2), json!(2)));

    // the reactivated holder waits (nobody is evicted); a user moving to a rule without the product frees it
    let on = json!({"Operations": [{"op": "replace", "path": "active", "value": true}]});
    expect_status(app.patch(&format!("/Users/{}", holders[0]), &on), StatusCode::NO_CONTENT);
    app.settle();
    assert_eq!(state(&app, &holders[0]), json!("failed"));
    let basic = id(&app.create_group("Basic"));
    rule(&app, json!({"group": basic, "products": ["meeting"], "number": 1}));
    app.add_members(&basic, &[&first]);
    app.settle();
    assert_eq!(app.entitlements(&first)["products"], json!(["meeting"]));
    assert_eq!(
        app.entitlements(&holders[0])["products"],
        json!(["webinar"]),
        "the freed seat went to the waiting user"
    );
}

#[test]
fn a_retry_names_unknown_users_and_leaves_users_who_are_not_failing_alone() {
    let app = spawn_app();
    product(&app, "webinar", "Webinar", Some(1));
    let g = id(&app.create_group("Hosts"));
    rule(&app, json!({"group": g, "products": ["webinar"]}));
    sync_on(&app);
    let holder = user(&app, "holder@example.com", json!({}));
    let waiting = user(&app, "waiting@example.com", json!({}));
    app.add_members(&g, &[&holder]);
    app.settle();
    app.add_members(&g, &[&waiting]);
    app.settle();
    let before = app.entitlements(&holder);

    // unknown users: 404 naming each, and nothing is retried
    let body = json!({"users": ["nope", "holder@example.com", "ghost@example.com"]});
    let res = expect_status(app.admin(Method::POST, "/failures/retry", Some(&body)), StatusCode::NOT_FOUND);
    assert_eq!(
        res["message"],
        json!("users: no user 'nope', 'ghost@example.com' in this account; nothing was retried")
    );
    let retried = app.admin_ok(Method::GET, "/activity?type=failures.retried", None, StatusCode::OK);
    assert_eq!(retried["Resources"], json!([]));

    // a user who is not failing is answered as such, by id or userName, and not re-evaluated
    let body = json!({"users": ["HOLDER@example.com", waiting]});
    let res = app.admin_ok(Method::POST, "/failures/retry", Some(&body), StatusCode::OK);
    assert_eq!(
        res,
        json!({"retried": 1, "resolved": 0, "stillFailing": 1,
            "notFailing": [{"id": holder, "userName": "holder@example.com"}], "welcomeEmailsQueued": 0})
    );
    assert_eq!(app.entitlements(&holder), before, "not re-evaluated");
    let body = json!({"users": [holder]});
    let res = app.admin_ok(Method::POST, "/failures/retry", Some(&body), StatusCode::OK);
    assert_eq!(res["resolved"], json!(0), "a user who is not failing is never counted as resolved");
}

#[test]
fn a_user_s_explanation_names_every_rule_and_what_it_did() {
    let app = spawn_app();
    product(&app, "meeting", "Meeting", None);
    product(&app, "webinar", "Webinar", Some(0));
    let sales = id(&app.create_group("Sales"));
    let staff = id(&app.create_group("Staff"));
    let eng = id(&app.create_group("Engineering"));
    let r1 = rule(&app, json!({"group": sales, "filter": "title eq \"Manager\"", "products": ["meeting"]}));
    let r2 = rule(&app, json!({"group": staff, "products": ["meeting"]}));
    let r3 = rule(&app, json!({"group": sales, "products": ["meeting"]}));
    let r4 = rule(&app, json!({"group": eng, "products": ["meeting"]}));
    let clerk = user(&app, "clerk@example.com", json!({"title": "Clerk"}));
    app.add_members(&sales, &[&clerk]);
    app.add_members(&staff, &[&clerk]);
    // before sync is on: nothing evaluated, and the explanation says so
    let e = app.entitlements("CLERK@example.com");
    assert_eq!(
        (e["user"].clone(), e["syncOff"].clone(), e["evaluated"].clone()),
        (json!(clerk), json!(true), json!(false))
    );
    sync_on(&app);
    app.settle();
    let e = app.entitlements("clerk@example.com");
    assert_eq!((e["syncOff"].clone(), e["userInactive"].clone()), (json!(false), json!(false)));
    assert_eq!(e["rule"], json!({"id": r2["id"], "number": 2}));
    let lines: Vec<Value> = e["rules"].as_array().unwrap().clone();
    assert_eq!(
        lines,
        [
            json!({"id": r1["id"], "number": 1, "group": sales, "groupName": "Sales", "outcome": "filterFailed",
                "clause": "title eq \"Manager\"", "value": "Clerk"}),
            json!({"id": r2["id"], "number": 2, "group": staff, "groupName": "Staff", "outcome": "decided"}),
            json!({"id": r3["id"], "number": 3, "group": sales, "groupName": "Sales", "outcome": "lostTo", "lostTo": 2}),
            json!({"id": r4["id"], "number": 4, "group": eng, "groupName": "Engineering", "outcome": "notMember"}),
        ]
    );
    let unknown = app.admin(Method::GET, "/users/nobody@example.com/entitlements", None);
    assert_eq!(
        expect_status(unknown, StatusCode::NOT_FOUND)["message"],
        json!("no user has the id or userName 'nobody@example.com'")
    );

    // a failing user (first evaluation failed): the deciding rule, its intended bundle, the matching rules
    let hosts = id(&app.create_group("Hosts"));
    let r5 = rule(&app, json!({"group": hosts, "products": ["meeting", "webinar"], "number": 1}));
    let host = user(&app, "host@example.com", json!({}));
    app.add_members(&hosts, &[&host]);
    app.settle();
    let e = app.entitlements(&host);
    assert_eq!(e["state"], json!("failed"));
    assert_eq!(e["rule"], json!({"id": r5["id"], "number": 1}), "not null for a failing user");
    assert_eq!(e["matchedRules"], json!([{"id": r5["id"], "number": 1}]));
    assert_eq!(e["intended"]["products"], json!(["meeting", "webinar"]));
    assert_eq!(e["failure"]["detail"], json!("Webinar: 0 of 0 seats in use"));
    assert_eq!(e["appliedRule"], Value::Null);
    // an inactive user
    deactivate(&app, &clerk);
    app.settle();
    let e = app.entitlements(&clerk);
    assert_eq!(
        (e["userInactive"].clone(), e["rules"][2]["outcome"].clone()),
        (json!(true), json!("userInactive"))
    );

    // every user of the account is listed, failing and never-evaluated ones included, by state and product
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": false})), StatusCode::OK);
    let fresh = user(&app, "fresh@example.com", json!({}));
    let all = app.admin_ok(Method::GET, "/entitlements", None, StatusCode::OK);
    assert_eq!(all["totalResults"], json!(3));
    let listed: Vec<&str> =
        all["Resources"].as_array().unwrap().iter().map(|u| u["user"].as_str().unwrap()).collect();
    assert!(listed.contains(&host.as_str()) && listed.contains(&fresh.as_str()), "{all}");
    let failed = app.admin_ok(Method::GET, "/entitlements?state=failed", None, StatusCode::OK);
    assert_eq!(
        (failed["totalResults"].clone(), failed["Resources"][0]["user"].clone()),
        (json!(1), json!(host))
    );
    let none = app.admin_ok(Method::GET, "/entitlements?state=none", None, StatusCode::OK);
    assert_eq!(
        (none["totalResults"].clone(), none["Resources"][0]["evaluated"].clone()),
        (json!(1), json!(false))
    );
    let suspended =
        app.admin_ok(Method::GET, "/entitlements?state=suspended&product=meeting", None, StatusCode::OK);
    assert_eq!(suspended["totalResults"], json!(0));
    let res = app.admin(Method::GET, "/entitlements?state=happy", None);
    assert_eq!(
        expect_status(res, StatusCode::UNPROCESSABLE_ENTITY)["message"],
        json!("?state: 'happy' is not one of entitled, none, failed, suspended")
    );
    let res = app.admin(Method::GET, "/entitlements?product=nope", None);
    assert_eq!(
        expect_status(res, StatusCode::UNPROCESSABLE_ENTITY)["message"],
        json!("?product: no product 'nope' in this account")
    );
}

#[test]
fn a_rule_whose_group_was_deleted_stays_broken_until_the_admin_points_it_elsewhere() {
    let app = spawn_app();
    product(&app, "meeting", "Meeting", None);
    let sales = id(&app.create_group("Sales"));
    let staff = id(&app.create_group("Staff"));
    let r1 = rule(&app, json!({"group": sales, "products": ["meeting"]}));
    rule(&app, json!({"group": staff, "products": ["meeting"]}));
    sync_on(&app);
    let seller = user(&app, "seller@example.com", json!({}));
    app.add_members(&sales, &[&seller]);
    app.settle();
    assert_eq!(state(&app, &seller), json!("entitled"));

    expect_status(app.delete(&format!("/Groups/{sales}")), StatusCode::NO_CONTENT);
    app.settle();
    let rules = app.admin_ok(Method::GET, "/rules", None, StatusCode::OK)["Resources"].clone();
    assert_eq!(rules.as_array().unwrap().len(), 2, "the rule stays");
    assert_eq!(
        (rules[0]["broken"].clone(), rules[0]["groupName"].clone(), rules[0]["suggestedGroup"].clone()),
        (json!("groupDeleted"), json!("Sales"), Value::Null)
    );
    assert_eq!(rules[1]["broken"], Value::Null);
    assert_eq!(app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["brokenRules"], json!(1));
    assert_eq!(state(&app, &seller), json!("none"), "a broken rule matches nobody");
    assert_eq!(app.entitlements(&seller)["rules"][0]["outcome"], json!("broken"));

    // the current rules preview without failing, and the preview says which rules are broken
    let current = json!({"rules": [
        {"id": r1["id"], "group": sales, "products": ["meeting"]},
        {"group": staff, "products": ["meeting"]},
    ]});
    let preview = app.admin_ok(Method::POST, "/rules/preview", Some(&current), StatusCode::OK);
    assert_eq!(
        preview["brokenRules"],
        json!([{"id": r1["id"], "number": 1, "group": sales, "groupName": "Sales", "broken": "groupDeleted",
            "suggestedGroup": null}])
    );
    // a proposed rule naming a group that does not exist is refused, naming the rule
    let bad = json!({"rules": [{"group": staff, "products": ["meeting"]}, {"group": "nope", "products": ["meeting"]}]});
    let res = app.admin(Method::POST, "/rules/preview", Some(&bad));
    assert_eq!(
        expect_status(res, StatusCode::UNPROCESSABLE_ENTITY)["message"],
        json!("rules[1].group: no directory group 'nope' in this account")
    );

    // the IdP pushes a group called Sales again: suggested, not re-bound
    let again = id(&app.create_group("Sales"));
    app.add_members(&again, &[&seller]);
    app.settle();
    let rules = app.admin_ok(Method::GET, "/rules", None, StatusCode::OK)["Resources"].clone();
    assert_eq!(rules[0]["broken"], json!("groupDeleted"));
    assert_eq!(rules[0]["suggestedGroup"], json!({"id": again, "displayName": "Sales"}));
    assert_eq!(state(&app, &seller), json!("none"), "nothing is re-bound without the admin");

    // the admin points the rule at it
    let path = format!("/rules/{}", r1["id"].as_str().unwrap());
    let saved = app.admin_ok(
        Method::PUT,
        &path,
        Some(&json!({"group": again, "products": ["meeting"]})),
        StatusCode::OK,
    );
    assert_eq!((saved["broken"].clone(), saved["groupName"].clone()), (Value::Null, json!("Sales")));
    app.settle();
    assert_eq!(state(&app, &seller), json!("entitled"));
    assert_eq!(app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["brokenRules"], json!(0));
}

fn rule_refused(app: &TestApp, body: Value) -> Value {
    let res = app.admin(Method::POST, "/rules", Some(&body));
    expect_status(res, StatusCode::UNPROCESSABLE_ENTITY)["message"].clone()
}

#[test]
fn filters_are_checked_against_the_account_s_schema_when_saved() {
    let app = spawn_app();
    product(&app, "meeting", "Meeting", None);
    let g = id(&app.create_group("G"));
    let with = |filter: &str| json!({"group": g, "filter": filter, "products": ["meeting"]});
    assert_eq!(
        rule_refused(&app, with("titel eq \"Manager\"")),
        json!("filter: unknown attribute 'titel'; the closest known one is 'title'")
    );
    assert_eq!(
        rule_refused(
            &app,
            with("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:departmnt eq \"x\"")
        ),
        json!("filter: unknown attribute 'departmnt'; the closest known one is 'department'")
    );
    assert_eq!(
        rule_refused(&app, with("emails.typ eq \"work\"")),
        json!("filter: unknown attribute 'emails.typ'; the closest known one is 'type'")
    );
    assert_eq!(
        rule_refused(&app, with("emails[tpye eq \"work\"]")),
        json!("filter: unknown attribute 'emails[tpye]'; the closest known one is 'type'")
    );
    let refused = rule_refused(&app, with("costCdoe eq \"7\""));
    assert!(
        refused.as_str().unwrap().starts_with("filter: unknown attribute 'costCdoe'; the closest"),
        "{refused}"
    );

    // custom attributes count once defined
    let attrs = json!([{"name": "costCode", "type": "string"}, {"name": "badge", "type": "integer"}]);
    app.admin_ok(Method::PUT, "/custom-attributes", Some(&attrs), StatusCode::OK);
    assert_eq!(
        rule_refused(&app, with("costCdoe eq \"7\"")),
        json!("filter: unknown attribute 'costCdoe'; the closest known one is 'costCode'")
    );
    rule(&app, with("costCode eq \"7\""));
    rule(&app, with("urn:ietf:params:scim:schemas:extension:usersync:2.0:User:costCode pr and title pr"));
    let u = user(
        &app,
        "cc@example.com",
        json!({"urn:ietf:params:scim:schemas:extension:usersync:2.0:User": {"costCode": "7"}}),
    );
    app.add_members(&g, &[&u]);
    sync_on(&app);
    app.settle();
    assert_eq!(app.entitlements(&u)["products"], json!(["meeting"]));
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": false})), StatusCode::OK);

    // a custom attribute a rule filter uses cannot be removed or change type: 409 naming the rules
    let removed = json!([{"name": "badge", "type": "integer"}]);
    let res = app.admin(Method::PUT, "/custom-attributes", Some(&removed));
    assert_eq!(
        expect_status(res, StatusCode::CONFLICT)["message"],
        json!("custom attribute 'costCode' cannot be removed: rules 1, 2 use it in a filter")
    );
    let retyped = json!([{"name": "costCode", "type": "integer"}, {"name": "badge", "type": "integer"}]);
    let res = app.admin(Method::PUT, "/custom-attributes", Some(&retyped));
    assert_eq!(
        expect_status(res, StatusCode::CONFLICT)["message"],
        json!("custom attribute 'costCode' cannot be given another type: rules 1, 2 use it in a filter")
    );
    let saved = app.admin_ok(Method::GET, "/custom-attributes", None, StatusCode::OK);
    assert_eq!(
        (saved[0]["type"].clone(), saved[1]["name"].clone()),
        (json!("string"), json!("badge")),
        "nothing saved"
    );

    // a change of an attribute no rule uses re-evaluates nobody; a change of a used one, the rules' users
    let pending = || app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["pending"].clone();
    assert_eq!(pending(), json!(0));
    let unused = json!([{"name": "costCode", "type": "string"}]);
    app.admin_ok(Method::PUT, "/custom-attributes", Some(&unused), StatusCode::OK);
    assert_eq!(pending(), json!(0));
    let described = json!([{"name": "costCode", "type": "string", "multiValued": true}]);
    app.admin_ok(Method::PUT, "/custom-attributes", Some(&described), StatusCode::OK);
    assert_eq!(pending(), json!(1), "the member of the group of the rules using costCode");
}

/// `n` users, all members of a new group `name`, created in one go.
fn members(app: &TestApp, name: &str, n: usize) -> (String, Vec<String>) {
    let g = id(&app.create_group(name));
    let users: Vec<String> =
        (0..n).map(|i| user(app, &format!("{name}-{i}@example.com"), json!({}))).collect();
    app.add_members(&g, &users.iter().map(String::as_str).collect::<Vec<_>>());
    (g, users)
}

fn used(app: &TestApp, product: &str) -> u64 {
    app.admin_ok(Method::GET, &format!("/products/{product}"), None, StatusCode::OK)["used"].as_u64().unwrap()
}

fn sync_state(app: &TestApp) -> Value {
    app.admin_ok(Method::GET, "/sync?count=5", None, StatusCode::OK)
}

#[test]
fn deleting_a_group_of_100_entitled_users_holds_their_revocations_until_released() {
    let app = spawn_app();
    product(&app, "meeting", "Meeting", Some(200));
    let (g, users) = members(&app, "Everyone", 100);
    rule(&app, json!({"group": g, "products": ["meeting"]}));
    let other = id(&app.create_group("Other"));
    rule(&app, json!({"group": other, "products": ["meeting"]}));
    sync_on(&app);
    app.settle();
    assert_eq!(used(&app, "meeting"), 100);

    expect_status(app.delete(&format!("/Groups/{g}")), StatusCode::NO_CONTENT);
    app.settle();
    let sync = sync_state(&app);
    assert_eq!(sync["state"], json!("held"), "{sync}");
    // the deletion is the cause, and the group is named
    assert_eq!(
        (sync["hold"]["cause"].clone(), sync["hold"]["count"].clone()),
        (json!("groupDeleted"), json!(100))
    );
    assert_eq!(sync["hold"]["groups"], json!([{"id": g, "displayName": "Everyone"}]));
    assert_eq!(sync["hold"]["users"].as_array().unwrap().len(), 5, "paged");
    assert_eq!(
        (
            sync["hold"]["totalResults"].clone(),
            sync["hold"]["startIndex"].clone(),
            sync["hold"]["itemsPerPage"].clone()
        ),
        (json!(100), json!(1), json!(5))
    );
    let held = app.admin_ok(Method::GET, "/activity?type=sync.held", None, StatusCode::OK);
    assert_eq!(held["Resources"][0]["detail"]["cause"], json!("groupDeleted"));
    assert_eq!(held["Resources"][0]["detail"]["groups"], json!([{"id": g, "displayName": "Everyone"}]));
    let res = app.admin(Method::POST, "/sync/revert", None);
    assert_eq!(
        expect_status(res, StatusCode::CONFLICT)["message"],
        json!(
            "the held revocations come from groupDeleted, not a rule change; release them or change the directory"
        )
    );
    assert_eq!(sync["hold"]["users"][0]["loses"], json!(["meeting"]));
    assert_eq!(used(&app, "meeting"), 100, "nobody lost a seat");
    assert_eq!(state(&app, &users[0]), json!("entitled"));
    // grants and unrelated users keep flowing
    let newcomer = user(&app, "newcomer@example.com", json!({}));
    app.add_members(&other, &[&newcomer]);
    app.settle();
    assert_eq!(state(&app, &newcomer), json!("entitled"));
    // the whole list of who would lose what, page by page, each user once
    let mut seen = std::collections::BTreeSet::new();
    for start in (1..=100).step_by(30) {
        let page =
            app.admin_ok(Method::GET, &format!("/sync?startIndex={start}&count=30"), None, StatusCode::OK);
        assert_eq!(page["hold"]["totalResults"], json!(100));
        for u in page["hold"]["users"].as_array().unwrap() {
            assert!(seen.insert(u["id"].as_str().unwrap().to_string()), "listed twice: {u}");
        }
    }
    assert_eq!(seen, users.iter().cloned().collect(), "every held user, and only them");
    let page = app.admin_ok(Method::GET, "/sync?startIndex=96&count=10", None, StatusCode::OK);
    assert_eq!(
        (page["hold"]["users"].as_array().unwrap().len(), page["hold"]["itemsPerPage"].clone()),
        (5, json!(5))
    );
    let res = app.admin(Method::GET, "/sync?count=5000", None);
    assert_eq!(
        expect_status(res, StatusCode::UNPROCESSABLE_ENTITY)["message"],
        json!("?count: 5000 is out of range: 0 to 1000")
    );

    let res = app.admin_ok(Method::POST, "/sync/release", None, StatusCode::OK);
    assert_eq!(res, json!({"released": 100}));
    app.settle();
    assert_eq!(sync_state(&app)["state"], json!("running"));
    assert_eq!(used(&app, "meeting"), 1, "the newcomer's");
    assert_eq!(state(&app, &users[0]), json!("none"));
    let res = app.admin(Method::POST, "/sync/release", None);
    assert_eq!(
        expect_status(res, StatusCode::CONFLICT)["message"],
        json!("nothing is held; there is nothing to release")
    );
}

#[test]
fn a_held_reorder_is_reverted_and_a_held_removal_undone_by_the_idp_empties_the_hold() {
    let app = spawn_app();
    product(&app, "meeting", "Meeting", None);
    product(&app, "webinar", "Webinar", None);
    let (hosts, users) = members(&app, "Hosts", 30);
    let staff = id(&app.create_group("Staff"));
    app.add_members(&staff, &users.iter().map(String::as_str).collect::<Vec<_>>());
    let r1 = rule(&app, json!({"group": hosts, "products": ["meeting", "webinar"]}));
    let r2 = rule(&app, json!({"group": staff, "products": ["meeting"]}));
    sync_on(&app);
    app.settle();
    assert_eq!(used(&app, "webinar"), 30);

    // a reorder would take webinar from all 30: held, and revert puts the rules back
    app.admin_ok(Method::PUT, "/rules/order", Some(&json!({"order": [r2["id"], r1["id"]]})), StatusCode::OK);
    app.settle();
    let sync = sync_state(&app);
    assert_eq!(
        (sync["state"].clone(), sync["hold"]["cause"].clone()),
        (json!("held"), json!("reorder")),
        "{sync}"
    );
    assert_eq!((sync["hold"]["count"].clone(), sync["hold"]["revertible"].clone()), (json!(30), json!(true)));
    assert_eq!(sync["hold"]["users"][0]["loses"], json!(["webinar"]));
    assert_eq!(used(&app, "webinar"), 30);
    app.admin_ok(Method::POST, "/sync/revert", None, StatusCode::OK);
    app.settle();
    let rules = app.admin_ok(Method::GET, "/rules", None, StatusCode::OK)["Resources"].clone();
    assert_eq!((rules[0]["id"].clone(), rules[1]["id"].clone()), (r1["id"].clone(), r2["id"].clone()));
    assert_eq!(sync_state(&app)["state"], json!("running"));
    assert_eq!(used(&app, "webinar"), 30);

    // the IdP empties the group by mistake: held; it puts the members back: the hold empties by itself
    let empty = json!({"Operations": [{"op": "replace", "path": "members", "value": []}]});
    expect_status(app.patch(&format!("/Groups/{hosts}"), &empty), StatusCode::NO_CONTENT);
    app.settle();
    let sync = sync_state(&app);
    assert_eq!(
        (sync["hold"]["cause"].clone(), sync["hold"]["count"].clone()),
        (json!("directoryWrites"), json!(30))
    );
    let res = app.admin(Method::POST, "/sync/revert", None);
    assert_eq!(
        expect_status(res, StatusCode::CONFLICT)["message"],
        json!(
            "the held revocations come from directoryWrites, not a rule change; release them or change the directory"
        )
    );
    app.add_members(&hosts, &users.iter().map(String::as_str).collect::<Vec<_>>());
    app.settle();
    assert_eq!(sync_state(&app)["state"], json!("running"), "nothing is held any more");
    assert_eq!(used(&app, "webinar"), 30, "nobody lost anything");
}

#[test]
fn the_threshold_is_set_per_account_and_a_revocation_under_it_applies() {
    let app = spawn_app();
    let settings = app.admin_ok(Method::GET, "/settings", None, StatusCode::OK);
    assert_eq!(settings["massRevocation"], json!({"percent": 10, "minUsers": 20}));
    let patched = json!({"massRevocation": {"minUsers": 50}});
    let after = app.admin_ok(Method::PATCH, "/settings", Some(&patched), StatusCode::OK);
    assert_eq!(after["massRevocation"], json!({"percent": 10, "minUsers": 50}));
    assert_eq!(after["retention"], settings["retention"], "the other settings stay");
    let res = app.admin(Method::PATCH, "/settings", Some(&json!({"massRevocation": {"percent": 150}})));
    assert_eq!(
        expect_status(res, StatusCode::UNPROCESSABLE_ENTITY)["message"],
        json!("massRevocation.percent: 150 is not a percentage (0 to 100)")
    );
    let res = app.admin(Method::PATCH, "/settings", Some(&json!({"massRevocation": {"percent": 150}})));
    assert_eq!(
        expect_status(res, StatusCode::UNPROCESSABLE_ENTITY)["errors"],
        json!([{"field": "massRevocation.percent", "message": "150 is not a percentage (0 to 100)"}])
    );
    // every shape problem of the body at once, each named
    let res = app.admin(Method::PATCH, "/settings", Some(&json!({"massRevocaton": {}})));
    assert_eq!(
        expect_status(res, StatusCode::BAD_REQUEST)["errors"],
        json!([{"field": "massRevocaton", "message": "unknown field"}])
    );
    let body = json!({"massRevocation": {"precent": 5, "minUsers": "ten"}, "extra": 1});
    let answer = expect_status(app.admin(Method::PATCH, "/settings", Some(&body)), StatusCode::BAD_REQUEST);
    let fields: Vec<&str> =
        answer["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["massRevocation.minUsers", "massRevocation.precent", "extra"], "{answer}");
    assert!(
        answer["errors"][0]["message"].as_str().unwrap().starts_with("a string is not allowed here"),
        "{answer}"
    );
    assert_eq!(answer["errors"][1]["message"], json!("unknown field"));
    let res = app.admin(Method::PATCH, "/settings", Some(&json!({"massRevocation": null})));
    assert_eq!(expect_status(res, StatusCode::BAD_REQUEST)["message"], json!("massRevocation: is required"));
    let res = app.admin(Method::PATCH, "/settings", Some(&json!({"massRevocation": {"percent": -1}})));
    assert_eq!(
        expect_status(res, StatusCode::BAD_REQUEST)["errors"][0]["field"],
        json!("massRevocation.percent")
    );
    let res = app.admin(Method::PATCH, "/settings", Some(&json!([1])));
    assert_eq!(
        expect_status(res, StatusCode::BAD_REQUEST)["message"],
        json!("body: a merge patch of an admin object is a JSON object")
    );
    assert_eq!(
        app.admin_ok(Method::GET, "/settings", None, StatusCode::OK),
        after,
        "refused patches changed nothing"
    );
    let updated = app.admin_ok(Method::GET, "/activity?type=settings.updated", None, StatusCode::OK);
    assert_eq!(updated["totalResults"], json!(1));
    assert_eq!(
        updated["Resources"][0]["detail"]["changes"],
        json!({"minUsers": {"before": 20, "after": 50}})
    );

    product(&app, "meeting", "Meeting", None);
    let (g, users) = members(&app, "Team", 30);
    rule(&app, json!({"group": g, "products": ["meeting"]}));
    sync_on(&app);
    app.settle();
    // 30 revocations of 30 entitled users, but fewer than the 50 this account holds at
    expect_status(app.delete(&format!("/Groups/{g}")), StatusCode::NO_CONTENT);
    app.settle();
    assert_eq!(sync_state(&app)["state"], json!("running"));
    assert_eq!((used(&app, "meeting"), state(&app, &users[0])), (0, json!("none")));
}

#[test]
fn kill_9_while_revocations_are_held_keeps_them_held_and_applies_nothing() {
    use crate::crash::{admin, start_binary, wait_until_drained};
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_binary(dir.path());
    let client =
        reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap();
    let scim = |method: Method, path: &str, body: Value| {
        client
            .request(method, format!("http://{addr}/scim/v2{path}"))
            .bearer_auth(SCIM_TOKEN)
            .body(body.to_string())
            .send()
            .unwrap()
    };
    admin(
        &client,
        &addr,
        Method::PUT,
        "/products/meeting",
        Some(json!({"name": "Meeting", "seats": 50, "requires": []})),
    );
    let g =
        id(&expect_status(scim(Method::POST, "/Groups", json!({"displayName": "All"})), StatusCode::CREATED));
    let users: Vec<String> = (0..40)
        .map(|i| {
            id(&expect_status(
                scim(Method::POST, "/Users", json!({"userName": format!("k{i}@example.com")})),
                StatusCode::CREATED,
            ))
        })
        .collect();
    let value: Vec<Value> = users.iter().map(|u| json!({"value": u})).collect();
    let add = json!({"Operations": [{"op": "add", "path": "members", "value": value}]});
    expect_status(scim(Method::PATCH, &format!("/Groups/{g}"), add), StatusCode::NO_CONTENT);
    admin(&client, &addr, Method::POST, "/rules", Some(json!({"group": g, "products": ["meeting"]})));
    admin(&client, &addr, Method::PUT, "/sync", Some(json!({"enabled": true})));
    wait_until_drained(&client, &addr);
    expect_status(scim(Method::DELETE, &format!("/Groups/{g}"), json!(null)), StatusCode::NO_CONTENT);
    wait_until_drained(&client, &addr);
    let sync = admin(&client, &addr, Method::GET, "/sync", None);
    assert_eq!((sync["state"].clone(), sync["hold"]["count"].clone()), (json!("held"), json!(40)), "{sync}");
    child.kill().expect("kill -9 while held");
    child.wait().unwrap();

    let (mut child, addr) = start_binary(dir.path());
    wait_until_drained(&client, &addr);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let sync = admin(&client, &addr, Method::GET, "/sync", None);
    assert_eq!(
        (sync["state"].clone(), sync["hold"]["count"].clone()),
        (json!("held"), json!(40)),
        "still held: {sync}"
    );
    let meeting = admin(&client, &addr, Method::GET, "/products/meeting", None);
    assert_eq!(meeting["used"], json!(40), "nothing applied");
    let e = admin(&client, &addr, Method::GET, &format!("/users/{}/entitlements", users[0]), None);
    assert_eq!(e["products"], json!(["meeting"]));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn users_deleted_one_request_at_a_time_are_held_once_the_last_minute_s_revocations_pass_the_threshold() {
    let app = spawn_app();
    product(&app, "meeting", "Meeting", None);
    let (g, users) = members(&app, "Everyone", 100);
    rule(&app, json!({"group": g, "products": ["meeting"]}));
    sync_on(&app);
    app.settle();
    for u in &users[..25] {
        expect_status(app.delete(&format!("/Users/{u}")), StatusCode::NO_CONTENT);
        app.settle();
    }
    let sync = sync_state(&app);
    assert_eq!(
        (sync["state"].clone(), sync["hold"]["cause"].clone()),
        (json!("held"), json!("directoryWrites"))
    );
    assert_eq!(
        sync["hold"]["count"],
        json!(6),
        "the 20th revocation of the minute and those after it: {sync}"
    );
    assert_eq!(used(&app, "meeting"), 81, "19 applied, 6 held");
    app.admin_ok(Method::POST, "/sync/release", None, StatusCode::OK);
    assert_eq!(used(&app, "meeting"), 75);
}

#[test]
fn the_last_minute_s_directory_revocations_are_counted_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path());
    product(&app, "meeting", "Meeting", None);
    let (g, users) = members(&app, "Everyone", 100);
    rule(&app, json!({"group": g, "products": ["meeting"]}));
    sync_on(&app);
    app.settle();
    for u in &users[..15] {
        expect_status(app.delete(&format!("/Users/{u}")), StatusCode::NO_CONTENT);
        app.settle();
    }
    assert_eq!(sync_state(&app)["state"], json!("running"), "15 revocations are under the 20 users held at");
    app.stop();

    // the identity provider goes on deleting after the restart: the minute's count goes on too
    let app = spawn_app_in(dir.path());
    app.settle();
    for u in &users[15..25] {
        expect_status(app.delete(&format!("/Users/{u}")), StatusCode::NO_CONTENT);
        app.settle();
    }
    let sync = sync_state(&app);
    assert_eq!(
        (sync["state"].clone(), sync["hold"]["cause"].clone(), sync["hold"]["count"].clone()),
        (json!("held"), json!("directoryWrites"), json!(6)),
        "the 20th revocation of the minute and those after it: {sync}"
    );
    assert_eq!(used(&app, "meeting"), 81, "19 applied, 6 held");
}
