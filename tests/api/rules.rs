//! User Sync scenarios over HTTP: each semantic of the rule reference, driven through SCIM writes and the
//! admin API.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A product with `seats` (`None`: unlimited).
pub(crate) fn product(app: &TestApp, id: &str, seats: Option<u64>, requires: &[&str]) {
    let body = json!({"name": id, "seats": seats, "requires": requires});
    let res = app.admin(Method::PUT, &format!("/products/{id}"), Some(&body));
    assert!(res.status().is_success(), "{}", res.text().unwrap_or_default());
}

pub(crate) fn rule(app: &TestApp, body: Value) -> Value {
    app.admin_ok(Method::POST, "/rules", Some(&body), StatusCode::CREATED)
}

pub(crate) fn sync(app: &TestApp, enabled: bool) -> Value {
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": enabled})), StatusCode::OK)
}

pub(crate) fn user(app: &TestApp, name: &str, extra: Value) -> String {
    let mut body = json!({"userName": name, "name": {"givenName": name.split('@').next().unwrap()}, "emails": [{"value": name, "primary": true}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    id(&app.create_user(&body))
}

fn products_of(app: &TestApp, uid: &str) -> Vec<String> {
    serde_json::from_value(app.entitlements(uid)["products"].clone()).unwrap()
}

fn used(app: &TestApp, product: &str) -> u64 {
    app.admin_ok(Method::GET, &format!("/products/{product}"), None, StatusCode::OK)["used"].as_u64().unwrap()
}

#[test]
fn lowest_numbered_matching_rule_decides_the_whole_bundle() {
    let app = spawn_app();
    product(&app, "meeting", None, &[]);
    product(&app, "webinar", None, &["meeting"]);
    let sales = id(&app.create_group("Sales"));
    let staff = id(&app.create_group("Staff"));
    app.admin_ok(Method::PUT, "/user-groups/emea", Some(&json!({"name": "EMEA"})), StatusCode::CREATED);
    let r1 = rule(
        &app,
        json!({"group": sales, "products": ["webinar", "meeting"], "language": "fr_FR", "userGroup": "emea",
        "admin": {"access": "manager", "privileges": ["users.add"], "managedGroups": ["emea"]}}),
    );
    let r2 = rule(&app, json!({"group": staff, "products": ["meeting"], "admin": {"access": "full"}}));
    assert_eq!((r1["number"].clone(), r2["number"].clone()), (json!(1), json!(2)));
    assert_eq!(r1["groupName"], json!("Sales"));
    let both = user(&app, "both@example.com", json!({}));
    let staff_only = user(&app, "staff@example.com", json!({}));
    let nobody = user(&app, "nobody@example.com", json!({}));
    app.add_members(&sales, &[&both]);
    app.add_members(&staff, &[&both, &staff_only]);
    sync(&app, true);
    app.settle();

    let e = app.entitlements(&both);
    assert_eq!(e["state"], json!("entitled"));
    assert_eq!(e["rule"], json!({"id": r1["id"], "number": 1}));
    assert_eq!(
        e["matchedRules"],
        json!([{"id": r1["id"], "number": 1}, {"id": r2["id"], "number": 2}]),
        "rule 2 matched and lost"
    );
    assert_eq!(e["products"], json!(["meeting", "webinar"]));
    assert_eq!(
        e["admin"],
        json!({"access": "manager", "privileges": ["users.add"], "managedGroups": ["emea"]}),
        "the bundle of rule 1 only"
    );
    assert_eq!((e["language"].clone(), e["userGroup"].clone()), (json!("fr_FR"), json!("emea")));
    let e = app.entitlements(&staff_only);
    assert_eq!((e["products"].clone(), e["admin"].clone()), (json!(["meeting"]), json!({"access": "full"})));
    let e = app.entitlements(&nobody);
    assert_eq!(
        (e["state"].clone(), e["products"].clone(), e["admin"].clone()),
        (json!("none"), json!([]), Value::Null)
    );
    assert_eq!((used(&app, "meeting"), used(&app, "webinar")), (2, 1));

    // reorder flips the decision for users in both groups
    let order = json!({"order": [r2["id"], r1["id"]]});
    let rules = app.admin_ok(Method::PUT, "/rules/order", Some(&order), StatusCode::OK);
    assert_eq!(rules["Resources"][0]["id"], r2["id"]);
    app.settle();
    let e = app.entitlements(&both);
    assert_eq!(
        (e["rule"]["id"].clone(), e["products"].clone(), e["admin"].clone()),
        (r2["id"].clone(), json!(["meeting"]), json!({"access": "full"}))
    );
    assert_eq!((used(&app, "meeting"), used(&app, "webinar")), (2, 0));

    // membership changes re-evaluate the member: leaving Staff falls back to the Sales rule
    app.remove_member(&staff, &both);
    app.settle();
    assert_eq!(products_of(&app, &both), ["meeting", "webinar"]);
    // deleting a rule re-evaluates its group; deleting a group re-evaluates its members
    app.admin_ok(
        Method::DELETE,
        &format!("/rules/{}", r1["id"].as_str().unwrap()),
        None,
        StatusCode::NO_CONTENT,
    );
    app.settle();
    assert_eq!(app.entitlements(&both)["state"], json!("none"));
    assert_eq!(expect_status(app.delete(&format!("/Groups/{staff}")), StatusCode::NO_CONTENT), Value::Null);
    app.settle();
    assert_eq!(app.entitlements(&staff_only)["state"], json!("none"));
    assert_eq!(used(&app, "meeting"), 0);
}

#[test]
fn filters_choose_among_rules_for_the_same_group() {
    let app = spawn_app();
    product(&app, "meeting", None, &[]);
    product(&app, "webinar", None, &["meeting"]);
    let all = id(&app.create_group("Everyone"));
    rule(
        &app,
        json!({"group": all, "filter": format!("{ENT}:department eq \"Sales\""), "products": ["meeting", "webinar"]}),
    );
    rule(&app, json!({"group": all, "filter": "title sw \"eng\"", "products": ["meeting"]}));
    let seller = user(&app, "seller@example.com", json!({ENT: {"department": "sales"}}));
    let engineer = user(&app, "eng@example.com", json!({"title": "Engineer"}));
    let other = user(&app, "other@example.com", json!({"title": "Chef"}));
    app.add_members(&all, &[&seller, &engineer, &other]);
    sync(&app, true);
    app.settle();
    assert_eq!(products_of(&app, &seller), ["meeting", "webinar"]);
    assert_eq!(products_of(&app, &engineer), ["meeting"]);
    assert_eq!(app.entitlements(&other)["state"], json!("none"));
    // an attribute change re-evaluates the user
    let patch = json!({"Operations": [{"op": "replace", "path": "title", "value": "Engineering Manager"}]});
    expect_status(app.patch(&format!("/Users/{other}"), &patch), StatusCode::NO_CONTENT);
    app.settle();
    assert_eq!(products_of(&app, &other), ["meeting"]);
}

#[test]
fn inactive_users_lose_everything_and_free_seats_and_get_it_back() {
    let app = spawn_app();
    product(&app, "meeting", Some(1), &[]);
    let g = id(&app.create_group("G"));
    rule(&app, json!({"group": g, "products": ["meeting"], "admin": {"access": "full"}}));
    let a = user(&app, "a@example.com", json!({}));
    let b = user(&app, "b@example.com", json!({}));
    sync(&app, true);
    app.add_members(&g, &[&a]);
    app.settle();
    assert_eq!((products_of(&app, &a), used(&app, "meeting")), (vec!["meeting".to_string()], 1));

    let off = json!({"Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    expect_status(app.patch(&format!("/Users/{a}"), &off), StatusCode::NO_CONTENT);
    app.settle();
    let e = app.entitlements(&a);
    assert_eq!(
        (e["state"].clone(), e["products"].clone(), e["admin"].clone()),
        (json!("suspended"), json!([]), Value::Null)
    );
    assert_eq!(used(&app, "meeting"), 0, "the seat is freed at once");

    // the freed seat can go to someone else...
    app.add_members(&g, &[&b]);
    app.settle();
    assert_eq!(products_of(&app, &b), ["meeting"]);
    // ...so the reactivated user waits for a seat (nobody is evicted); removing b from the group frees it,
    // and it goes to a without a retry
    let on = json!({"Operations": [{"op": "replace", "value": {"active": true}}]});
    expect_status(app.patch(&format!("/Users/{a}"), &on), StatusCode::NO_CONTENT);
    app.settle();
    assert_eq!(app.entitlements(&a)["state"], json!("failed"));
    assert_eq!(products_of(&app, &b), ["meeting"], "nobody is evicted");
    app.remove_member(&g, &b);
    app.settle();
    let e = app.entitlements(&a);
    assert_eq!(
        (e["state"].clone(), e["products"].clone(), e["admin"].clone()),
        (json!("entitled"), json!(["meeting"]), json!({"access": "full"}))
    );
    // deletion frees the seat too
    expect_status(app.delete(&format!("/Users/{a}")), StatusCode::NO_CONTENT);
    app.settle();
    assert_eq!(used(&app, "meeting"), 0);
}

#[test]
fn running_out_of_seats_fails_exactly_the_overflow_and_more_seats_resolve_it() {
    let app = spawn_app();
    product(&app, "meeting", Some(3), &[]);
    product(&app, "webinar", Some(10), &["meeting"]);
    let g = id(&app.create_group("Webinar hosts"));
    rule(&app, json!({"group": g, "products": ["meeting", "webinar"]}));
    sync(&app, true);
    let users: Vec<String> = (0..5).map(|i| user(&app, &format!("u{i}@example.com"), json!({}))).collect();
    app.add_members(&g, &users.iter().map(String::as_str).collect::<Vec<_>>());
    app.settle();
    let states: Vec<Value> = users.iter().map(|u| app.entitlements(u)["state"].clone()).collect();
    assert_eq!(states.iter().filter(|s| **s == json!("entitled")).count(), 3);
    assert_eq!(states.iter().filter(|s| **s == json!("failed")).count(), 2);
    assert_eq!(
        (used(&app, "meeting"), used(&app, "webinar")),
        (3, 3),
        "all or nothing: no webinar seat for a user without a meeting seat"
    );
    let failures = app.admin_ok(Method::GET, "/failures", None, StatusCode::OK);
    assert_eq!(failures["totalResults"], json!(2));
    assert_eq!(failures["byReason"][0]["reason"], json!("outOfLicenses"));
    assert_eq!(failures["byReason"][0]["count"], json!(2));
    let failed = failures["Resources"][0]["id"].as_str().unwrap().to_string();
    let e = app.entitlements(&failed);
    assert_eq!(e["products"], json!([]), "a failed user keeps what they had: nothing");
    assert_eq!(e["failure"]["reason"], json!("outOfLicenses"));
    assert_eq!(e["failure"]["products"], json!(["meeting"]));
    assert_eq!(e["failure"]["intended"]["products"], json!(["meeting", "webinar"]));
    assert_eq!(app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["failures"], json!(2));

    // seats cannot drop below what is used
    let res = app.admin(Method::PATCH, "/products/meeting", Some(&json!({"seats": 2})));
    assert_eq!(expect_status(res, StatusCode::CONFLICT)["error"], json!("conflict"));
    // raising the seats resolves the failures without a manual retry
    product(&app, "meeting", Some(5), &[]);
    app.settle();
    assert!(users.iter().all(|u| app.entitlements(u)["state"] == json!("entitled")));
    assert_eq!((used(&app, "meeting"), used(&app, "webinar")), (5, 5));
    assert_eq!(app.admin_ok(Method::GET, "/failures", None, StatusCode::OK)["totalResults"], json!(0));
}

#[test]
fn a_login_held_in_another_account_fails_until_released() {
    let app = spawn_app();
    let (scim_b, admin_b) = app.new_account("b");
    let other = app.as_account(&scim_b, &admin_b);
    for account in [&app, &other] {
        product(account, "meeting", None, &[]);
        let g = id(&account.create_group("G"));
        rule(account, json!({"group": g, "products": ["meeting"]}));
        sync(account, true);
        let u = user(account, "shared@example.com", json!({}));
        account.add_members(&g, &[&u]);
        account.settle();
    }
    let first = id(&expect_status(
        app.get(&format!("/Users?filter={}", q("userName eq \"shared@example.com\""))),
        StatusCode::OK,
    )["Resources"][0]);
    let second = id(&expect_status(
        other.get(&format!("/Users?filter={}", q("userName eq \"SHARED@example.com\""))),
        StatusCode::OK,
    )["Resources"][0]);
    assert_eq!(app.entitlements(&first)["state"], json!("entitled"), "first come, first served");
    let e = other.entitlements(&second);
    assert_eq!(
        (e["state"].clone(), e["failure"]["reason"].clone()),
        (json!("failed"), json!("existingAccount"))
    );
    let failures = other.admin_ok(Method::GET, "/failures", None, StatusCode::OK);
    assert_eq!(failures["byReason"][0]["reason"], json!("existingAccount"));
    // a retry while the login is held still fails
    let retried = other.admin_ok(
        Method::POST,
        "/failures/retry",
        Some(&json!({"reason": "existingAccount"})),
        StatusCode::OK,
    );
    assert_eq!(
        retried,
        json!({"retried": 1, "resolved": 0, "stillFailing": 1, "notFailing": [], "welcomeEmailsQueued": 0})
    );
    // the first account releases the login: deactivating its user
    let off = json!({"Operations": [{"op": "replace", "path": "active", "value": false}]});
    expect_status(app.patch(&format!("/Users/{first}"), &off), StatusCode::NO_CONTENT);
    app.settle();
    other.settle();
    assert_eq!(
        other.entitlements(&second)["state"],
        json!("entitled"),
        "released logins go to whoever waits"
    );
    assert_eq!(other.admin_ok(Method::GET, "/failures", None, StatusCode::OK)["totalResults"], json!(0));
}

#[test]
fn sync_off_freezes_and_sync_on_evaluates_everyone() {
    let app = spawn_app();
    product(&app, "meeting", None, &[]);
    let g = id(&app.create_group("G"));
    rule(&app, json!({"group": g, "products": ["meeting"]}));
    let a = user(&app, "a@example.com", json!({}));
    app.add_members(&g, &[&a]);
    let mut status = app.admin_ok(Method::GET, "/sync", None, StatusCode::OK);
    assert_eq!(status["store"]["writable"], true, "the store's state is part of the answer");
    status.as_object_mut().unwrap().remove("store");
    assert_eq!(
        status,
        json!({"enabled": false, "pending": 1, "failures": 0, "brokenRules": 0, "state": "off", "hold": null,
            "delivery": {"feedCursor": 0, "webhooks": [], "mail": {"configured": false, "waiting": 0,
                "oldestWaitingSeconds": null, "deferred": 0, "nextAttempt": null, "failed": 0}}}),
        "one user owed an evaluation, marked by the create, the join and the rule's group"
    );
    assert_eq!(app.entitlements(&a)["state"], json!("none"), "nothing happens while sync is off");
    sync(&app, true);
    app.settle();
    assert_eq!(app.entitlements(&a)["state"], json!("entitled"));
    sync(&app, false);
    app.remove_member(&g, &a);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(app.entitlements(&a)["state"], json!("entitled"), "frozen");
    assert_eq!(app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["pending"], json!(1));
    let res = app.admin(Method::POST, "/failures/retry", Some(&json!({})));
    assert_eq!(expect_status(res, StatusCode::CONFLICT)["error"], json!("conflict"));
    sync(&app, true);
    app.settle();
    assert_eq!(app.entitlements(&a)["state"], json!("none"));
}

#[test]
fn welcome_message_once_in_the_rules_language() {
    let app = spawn_app();
    product(&app, "meeting", None, &[]);
    product(&app, "webinar", None, &["meeting"]);
    let template = json!({"name": "Bienvenue", "subject": {"fr_FR": "Bienvenue {{givenName}}"}, "body": {"fr_FR": "Compte {{userName}} pour {{displayName}}"}});
    app.admin_ok(Method::PUT, "/email-templates/fr", Some(&template), StatusCode::CREATED);
    let g = id(&app.create_group("G"));
    let r =
        rule(&app, json!({"group": g, "products": ["meeting"], "welcomeEmail": "fr", "language": "fr_FR"}));
    sync(&app, true);
    let a = user(&app, "amelie@example.com", json!({"displayName": "Amélie Poulain"}));
    app.add_members(&g, &[&a]);
    app.settle();
    let outbox = app.admin_ok(Method::GET, "/outbox", None, StatusCode::OK);
    assert_eq!(outbox["totalResults"], json!(1));
    let message = &outbox["Resources"][0];
    assert_eq!(message["to"], json!("amelie@example.com"));
    assert_eq!((&message["template"], &message["language"]), (&json!("fr"), &json!("fr_FR")));
    assert_eq!(message["subject"], json!("Bienvenue amelie"));
    assert_eq!(message["body"], json!("Compte amelie@example.com pour Amélie Poulain"));
    // a changed bundle, leaving and coming back: never a second message
    let update =
        json!({"group": g, "products": ["meeting", "webinar"], "welcomeEmail": "fr", "language": "fr_FR"});
    app.admin_ok(
        Method::PUT,
        &format!("/rules/{}", r["id"].as_str().unwrap()),
        Some(&update),
        StatusCode::OK,
    );
    app.settle();
    app.remove_member(&g, &a);
    app.settle();
    app.add_members(&g, &[&a]);
    app.settle();
    assert_eq!(products_of(&app, &a), ["meeting", "webinar"]);
    assert_eq!(app.admin_ok(Method::GET, "/outbox", None, StatusCode::OK)["totalResults"], json!(1));
    // the template cannot go while a rule uses it
    let res = app.admin(Method::DELETE, "/email-templates/fr", None);
    assert_eq!(expect_status(res, StatusCode::CONFLICT)["error"], json!("conflict"));
}

#[test]
fn activity_records_every_event_type_with_its_actor() {
    let app = spawn_app();
    product(&app, "meeting", Some(1), &[]);
    let g = id(&app.create_group("G"));
    let h = id(&app.create_group("H"));
    let r = rule(&app, json!({"group": g, "products": ["meeting"]}));
    let r2 = rule(&app, json!({"group": h, "products": ["meeting"]}));
    app.admin_ok(
        Method::PUT,
        &format!("/rules/{}", r["id"].as_str().unwrap()),
        Some(&json!({"group": g, "products": ["meeting"], "description": "x"})),
        StatusCode::OK,
    );
    app.admin_ok(Method::PUT, "/rules/order", Some(&json!({"order": [r2["id"], r["id"]]})), StatusCode::OK);
    sync(&app, true);
    let a = user(&app, "a@example.com", json!({}));
    let b = user(&app, "b@example.com", json!({}));
    app.add_members(&g, &[&a, &b]);
    app.settle();
    let patch = json!({"Operations": [{"op": "replace", "path": "displayName", "value": "A"}]});
    expect_status(app.patch(&format!("/Users/{a}"), &patch), StatusCode::NO_CONTENT);
    let rename = json!({"Operations": [{"op": "replace", "path": "displayName", "value": "G2"}]});
    expect_status(app.patch(&format!("/Groups/{g}"), &rename), StatusCode::NO_CONTENT);
    app.add_members(&h, &[&a]);
    app.settle();
    let off = json!({"Operations": [{"op": "replace", "path": "active", "value": false}]});
    expect_status(app.patch(&format!("/Users/{a}"), &off), StatusCode::NO_CONTENT);
    app.settle();
    app.admin_ok(Method::POST, "/failures/retry", Some(&json!({})), StatusCode::OK);
    expect_status(app.delete(&format!("/Users/{b}")), StatusCode::NO_CONTENT);
    expect_status(app.delete(&format!("/Groups/{h}")), StatusCode::NO_CONTENT);
    app.admin_ok(
        Method::DELETE,
        &format!("/rules/{}", r2["id"].as_str().unwrap()),
        None,
        StatusCode::NO_CONTENT,
    );
    let token = app.admin_ok(
        Method::POST,
        "/tokens",
        Some(&json!({"name": "okta", "kind": "scim"})),
        StatusCode::CREATED,
    );
    assert!(token["secret"].as_str().unwrap().starts_with("us_"));
    app.admin_ok(
        Method::DELETE,
        &format!("/tokens/{}", token["id"].as_str().unwrap()),
        None,
        StatusCode::NO_CONTENT,
    );
    // Everything above is applied before sync goes off; with sync off, nothing pending would drain.
    app.settle();
    sync(&app, false);
    app.settle();

    let mut entries = Vec::new();
    let mut cursor: Option<u64> = None;
    loop {
        let path = match cursor {
            Some(c) => format!("/activity?count=7&before={c}"),
            None => "/activity?count=7".into(),
        };
        let page = app.admin_ok(Method::GET, &path, None, StatusCode::OK);
        entries.extend(page["Resources"].as_array().unwrap().clone());
        match page["next"].as_u64() {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first, pages without overlap");
    let types: std::collections::HashSet<&str> =
        entries.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for t in [
        "rule.created",
        "rule.updated",
        "rule.deleted",
        "rules.reordered",
        "sync.enabled",
        "sync.disabled",
        "product.updated",
        "failures.retried",
        "token.created",
        "token.revoked",
        "entitlement.granted",
        "entitlement.changed",
        "entitlement.revoked",
        "sync.failed",
        "user.created",
        "user.updated",
        "user.deactivated",
        "user.deleted",
        "group.created",
        "group.updated",
        "group.deleted",
        "group.members.changed",
    ] {
        assert!(types.contains(t), "no {t} entry in {types:?}");
    }
    let actor = |t: &str| entries.iter().find(|e| e["type"] == json!(t)).unwrap()["actor"].clone();
    assert_eq!(actor("rule.created"), json!("admin:environment"));
    assert_eq!(actor("user.created"), json!("scim:environment"));
    assert_eq!(actor("entitlement.granted"), json!("usersync"));
    // filters by type and by user
    let only = app.admin_ok(Method::GET, "/activity?type=user.deactivated", None, StatusCode::OK);
    assert!(only["Resources"].as_array().unwrap().iter().all(|e| e["type"] == json!("user.deactivated")));
    assert_eq!(only["Resources"][0]["target"], json!(a));
    let about_b = app.admin_ok(Method::GET, &format!("/activity?user={b}&count=100"), None, StatusCode::OK);
    let b_types: Vec<&str> =
        about_b["Resources"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(
        b_types.contains(&"user.created")
            && b_types.contains(&"user.deleted")
            && b_types.contains(&"group.members.changed"),
        "{b_types:?}"
    );
}

/// What a preview says a user ends up with, checked against what the engine applied.
#[track_caller]
fn assert_applied_as_previewed(app: &TestApp, change: &Value) {
    let uid = change["id"].as_str().unwrap();
    let e = app.entitlements(uid);
    let fields = ["products", "admin", "language", "welcomeEmail", "userGroup", "settingsTemplate"];
    let (side, state) = match &change["wouldFail"] {
        Value::Null => (&change["to"], "entitled"),
        fail => {
            assert_eq!(e["failure"]["reason"], fail["reason"], "{uid}");
            assert_eq!(e["failure"]["products"], fail["products"], "{uid}");
            (&change["from"], "failed")
        }
    };
    assert_eq!(e["state"], json!(state), "{uid}: {e}");
    for field in fields {
        assert_eq!(e[field], side[field], "{uid}: {field}");
    }
}

#[test]
fn preview_predicts_what_applying_the_rules_does() {
    let app = spawn_app();
    product(&app, "meeting", Some(3), &[]);
    product(&app, "webinar", Some(1), &["meeting"]);
    app.admin_ok(Method::PUT, "/user-groups/emea", Some(&json!({"name": "EMEA"})), StatusCode::CREATED);
    app.admin_ok(
        Method::PUT,
        "/settings-templates/quiet",
        Some(&json!({"name": "Quiet", "settings": {"recording": false}})),
        StatusCode::CREATED,
    );
    let template =
        json!({"name": "Bienvenue", "subject": {"fr_FR": "Bienvenue"}, "body": {"fr_FR": "Salut"}});
    app.admin_ok(Method::PUT, "/email-templates/fr", Some(&template), StatusCode::CREATED);
    let sales = id(&app.create_group("Sales"));
    let eng = id(&app.create_group("Engineering"));
    let r_sales = rule(&app, json!({"group": sales, "products": ["meeting"]}));
    sync(&app, true);
    let users: Vec<String> = (0..4).map(|i| user(&app, &format!("p{i}@example.com"), json!({}))).collect();
    app.add_members(&sales, &[&users[0], &users[1]]);
    app.add_members(&eng, &[&users[1], &users[2]]);
    app.settle();
    let before: Vec<Value> = users.iter().map(|u| app.entitlements(u)).collect();

    // the Engineering rule comes first; the Sales rule keeps its products and changes everything else
    let eng_rule = json!({"group": eng, "products": ["meeting", "webinar"]});
    let sales_rule = json!({"group": sales, "products": ["meeting"], "language": "fr_FR", "userGroup": "emea",
        "settingsTemplate": "quiet", "welcomeEmail": "fr"});
    let mut proposed_sales = sales_rule.clone();
    proposed_sales["id"] = r_sales["id"].clone();
    let proposed = json!({"rules": [eng_rule, proposed_sales]});
    let preview = app.admin_ok(Method::POST, "/rules/preview", Some(&proposed), StatusCode::OK);
    // the members of Sales and Engineering, whose rules change; the fourth user is in neither group
    assert_eq!(preview["evaluated"], json!(3));
    let changes: std::collections::BTreeMap<String, Value> = preview["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["id"].as_str().unwrap().to_string(), u.clone()))
        .collect();
    assert_eq!(changes.len(), 3, "{preview}");
    assert_eq!(
        changes[&users[0]]["changes"],
        json!(["language", "welcomeEmail", "userGroup", "settingsTemplate"]),
        "same products, the rest of the bundle changes"
    );
    assert_eq!(changes[&users[1]]["gains"], json!(["webinar"]));
    assert_eq!(changes[&users[2]]["gains"], json!(["meeting", "webinar"]));
    // one webinar seat: the first of the two in id order gets it, the other keeps what they have
    let (first, second) = if users[1] < users[2] { (1, 2) } else { (2, 1) };
    assert_eq!(changes[&users[first]]["wouldFail"], Value::Null);
    assert_eq!(
        changes[&users[second]]["wouldFail"],
        json!({"reason": "outOfLicenses", "products": ["webinar"]})
    );
    assert_eq!(preview["wouldFail"], json!(1));
    let webinar =
        preview["products"].as_array().unwrap().iter().find(|p| p["id"] == json!("webinar")).unwrap().clone();
    assert_eq!(
        [&webinar["gaining"], &webinar["seatsNeeded"], &webinar["usedAfter"], &webinar["shortfall"]],
        [&json!(2), &json!(2), &json!(1), &json!(1)]
    );
    assert_eq!(preview["runOut"], json!(["webinar"]));
    // nothing was written
    assert_eq!(app.admin_ok(Method::GET, "/rules", None, StatusCode::OK)["totalResults"], json!(1));

    // applying the same rules does exactly what the preview said, out-of-seats failure included
    let mut eng_first = json!({"group": eng, "products": ["meeting", "webinar"]});
    eng_first["number"] = json!(1);
    rule(&app, eng_first);
    app.settle();
    let path = format!("/rules/{}", r_sales["id"].as_str().unwrap());
    app.admin_ok(Method::PUT, &path, Some(&sales_rule), StatusCode::OK);
    app.settle();
    changes.values().for_each(|change| assert_applied_as_previewed(&app, change));
    let unchanged = users.iter().zip(&before).filter(|(u, _)| !changes.contains_key(*u));
    for (uid, was) in unchanged {
        assert_eq!(app.entitlements(uid)["products"], was["products"], "{uid}");
    }
    assert_eq!(used(&app, "webinar"), 1);

    // more seats resolve the failure, after which the rules in force preview as no change at all
    product(&app, "webinar", Some(5), &["meeting"]);
    app.settle();
    assert_eq!(app.entitlements(&users[second])["state"], json!("entitled"));
    let preview = app.admin_ok(Method::POST, "/rules/preview", Some(&proposed), StatusCode::OK);
    assert_eq!((preview["users"].clone(), preview["runOut"].clone()), (json!([]), json!([])));
}

#[test]
fn custom_attributes_are_published_stored_filterable_and_usable_in_rules() {
    let app = spawn_app();
    let attrs = json!([{"name": "costCode", "type": "string", "multiValued": false, "description": "Finance cost code"},
        {"name": "badge", "type": "integer"}]);
    app.admin_ok(Method::PUT, "/custom-attributes", Some(&attrs), StatusCode::OK);
    let urn = "urn:ietf:params:scim:schemas:extension:usersync:2.0:User";
    let schema = expect_status(app.get(&format!("/Schemas/{urn}")), StatusCode::OK);
    assert_eq!(schema["attributes"][0]["name"], json!("costCode"));
    let types = expect_status(app.get("/ResourceTypes/User"), StatusCode::OK);
    assert!(types["schemaExtensions"].as_array().unwrap().iter().any(|e| e["schema"] == json!(urn)));
    let other = app.new_account("other");
    let theirs = app.as_token(&other.0);
    expect_error(theirs.get(&format!("/Schemas/{urn}")), StatusCode::NOT_FOUND);

    let u = app.create_user(
        &json!({"userName": "cc@example.com", urn: {"costCode": "CC-7", "badge": 42, "junk": 1}}),
    );
    assert_eq!(u[urn], json!({"costCode": "CC-7", "badge": 42}));
    assert_eq!(u["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User", urn]));
    let found =
        expect_status(app.get(&format!("/Users?filter={}", q("costCode eq \"cc-7\""))), StatusCode::OK);
    assert_eq!(found["totalResults"], json!(1));
    let found = expect_status(
        app.get(&format!("/Users?filter={}", q(&format!("{urn}:badge gt 40")))),
        StatusCode::OK,
    );
    assert_eq!(found["totalResults"], json!(1));

    product(&app, "meeting", None, &[]);
    let g = id(&app.create_group("G"));
    rule(&app, json!({"group": g, "filter": "costCode sw \"CC-\"", "products": ["meeting"]}));
    sync(&app, true);
    app.add_members(&g, &[&id(&u)]);
    app.settle();
    assert_eq!(products_of(&app, &id(&u)), ["meeting"]);
    let bad = json!([{"name": "title", "type": "string"}]);
    let res = app.admin(Method::PUT, "/custom-attributes", Some(&bad));
    assert!(
        expect_status(res, StatusCode::UNPROCESSABLE_ENTITY)["message"]
            .as_str()
            .unwrap()
            .contains("standard User attribute")
    );
}

#[test]
fn admin_api_validates_and_answers_in_its_own_error_format() {
    let app = spawn_app();
    let res = app.client.get(format!("http://{}/admin/v1/sync", app.addr)).send().unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().unwrap()["error"], json!("unauthorized"));
    let res =
        app.client.get(format!("http://{}/admin/v1/sync", app.addr)).bearer_auth(SCIM_TOKEN).send().unwrap();
    assert_eq!(expect_status(res, StatusCode::FORBIDDEN)["error"], json!("forbidden"));

    product(&app, "meeting", None, &[]);
    product(&app, "webinar", None, &["meeting"]);
    let res = app.admin(
        Method::PUT,
        "/products/fax",
        Some(&json!({"name": "Fax", "seats": null, "requires": ["nope"]})),
    );
    assert_eq!(
        expect_status(res, StatusCode::UNPROCESSABLE_ENTITY)["message"],
        json!("requires: unknown product 'nope'")
    );
    // a product another product requires cannot be deleted
    assert_eq!(
        expect_status(app.admin(Method::DELETE, "/products/meeting", None), StatusCode::CONFLICT)["message"],
        json!("product 'webinar' requires product 'meeting'")
    );
    let g = id(&app.create_group("G"));
    for (body, message) in [
        (json!({"group": "nope", "products": []}), "group: no directory group 'nope' in this account"),
        (
            json!({"group": g, "products": ["webinar"]}),
            "products: 'webinar' requires 'meeting', which the rule does not grant",
        ),
        (json!({"group": g, "products": ["fax"]}), "products[0]: unknown product 'fax'"),
        (
            json!({"group": g, "products": [], "welcomeEmail": "nope"}),
            "welcomeEmail: unknown email template 'nope'",
        ),
        (json!({"group": g, "products": [], "userGroup": "nope"}), "userGroup: unknown user group 'nope'"),
        (
            json!({"group": g, "products": [], "settingsTemplate": "nope"}),
            "settingsTemplate: unknown settings template 'nope'",
        ),
    ] {
        let res = app.admin(Method::POST, "/rules", Some(&body));
        assert_eq!(expect_status(res, StatusCode::UNPROCESSABLE_ENTITY)["message"], json!(message));
    }
    let res =
        app.admin(Method::POST, "/rules", Some(&json!({"group": g, "products": [], "filter": "title eq"})));
    assert!(
        expect_status(res, StatusCode::UNPROCESSABLE_ENTITY)["message"]
            .as_str()
            .unwrap()
            .starts_with("filter: invalid filter at byte")
    );
    let res = app.admin(Method::POST, "/rules", Some(&json!({"id": "mine", "group": g, "products": []})));
    assert_eq!(expect_status(res, StatusCode::BAD_REQUEST)["error"], json!("invalid_request"));
    let res = app
        .client
        .post(format!("http://{}/admin/v1/rules", app.addr))
        .bearer_auth(ADMIN_TOKEN)
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(expect_status(res, StatusCode::BAD_REQUEST)["error"], json!("invalid_request"));

    let r = rule(&app, json!({"group": g, "products": ["meeting"]}));
    let r2 = rule(&app, json!({"group": g, "products": ["meeting", "webinar"], "number": 1}));
    let rules = app.admin_ok(Method::GET, "/rules", None, StatusCode::OK);
    assert_eq!(
        rules["Resources"].as_array().unwrap().iter().map(|r| r["number"].clone()).collect::<Vec<_>>(),
        [json!(1), json!(2)]
    );
    assert_eq!(rules["Resources"][0]["id"], r2["id"]);
    let order = json!({"order": [r["id"], r["id"]]});
    assert_eq!(app.admin(Method::PUT, "/rules/order", Some(&order)).status(), StatusCode::BAD_REQUEST);
    let order = json!({"order": [r["id"]]});
    assert_eq!(app.admin(Method::PUT, "/rules/order", Some(&order)).status(), StatusCode::BAD_REQUEST);
    // a product a rule uses cannot be deleted
    assert_eq!(
        expect_status(app.admin(Method::DELETE, "/products/webinar", None), StatusCode::CONFLICT)["error"],
        json!("conflict")
    );
    // If-Match on the rules
    let res = app
        .client
        .get(format!("http://{}/admin/v1/rules", app.addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let stale = app
        .client
        .delete(format!("http://{}/admin/v1/rules/{}", app.addr, r2["id"].as_str().unwrap()))
        .bearer_auth(ADMIN_TOKEN)
        .header("If-Match", "W/\"1\"")
        .send()
        .unwrap();
    assert_eq!(expect_status(stale, StatusCode::PRECONDITION_FAILED)["error"], json!("precondition_failed"));
    let fresh = app
        .client
        .delete(format!("http://{}/admin/v1/rules/{}", app.addr, r2["id"].as_str().unwrap()))
        .bearer_auth(ADMIN_TOKEN)
        .header("If-Match", etag)
        .send()
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.admin_ok(Method::GET, "/privileges", None, StatusCode::OK)["totalResults"], json!(8));
    assert_eq!(app.admin(Method::GET, "/nothing", None).status(), StatusCode::NOT_FOUND);
    expect_status(
        app.admin(Method::GET, "/users/00000000-0000-7000-8000-000000000000/entitlements", None),
        StatusCode::NOT_FOUND,
    );
}

#[test]
fn concurrent_joins_never_oversubscribe_a_product() {
    let app = spawn_app();
    product(&app, "meeting", Some(7), &[]);
    let groups: Vec<String> = (0..3).map(|i| id(&app.create_group(&format!("Team {i}")))).collect();
    for g in &groups {
        rule(&app, json!({"group": g, "products": ["meeting"]}));
    }
    sync(&app, true);
    let users: Vec<String> = (0..30).map(|i| user(&app, &format!("c{i}@example.com"), json!({}))).collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut samples = Vec::new();
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                seen.push(used(&app, "meeting"));
            }
            seen
        });
        let writers: Vec<_> = (0..6)
            .map(|w| {
                let (app, users, groups) = (&app, &users, &groups);
                s.spawn(move || {
                    for (i, u) in users.iter().enumerate().filter(|(i, _)| i % 6 == w) {
                        app.add_members(&groups[i % 3], &[u]);
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        app.settle();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        samples = watcher.join().unwrap();
    });
    assert!(!samples.is_empty());
    assert!(samples.iter().all(|u| *u <= 7), "oversubscribed at some moment: {samples:?}");
    let problems = app.store.verify().unwrap();
    assert!(problems.is_empty(), "seat counters agree with the holders: {problems:#?}");
    assert_eq!(used(&app, "meeting"), 7, "used == min(seats, eligible)");
    let entitled = users.iter().filter(|u| app.entitlements(u)["state"] == json!("entitled")).count();
    assert_eq!(entitled, 7);
    assert_eq!(app.admin_ok(Method::GET, "/failures", None, StatusCode::OK)["totalResults"], json!(23));
}

#[test]
fn concurrent_rule_and_sync_writes_lose_nothing() {
    let app = spawn_app();
    product(&app, "meeting", None, &[]);
    let g = id(&app.create_group("G"));
    let descriptions = |app: &TestApp| -> Vec<(u64, String)> {
        let rules = app.admin_ok(Method::GET, "/rules", None, StatusCode::OK);
        let rules = rules["Resources"].as_array().unwrap();
        rules
            .iter()
            .map(|r| (r["number"].as_u64().unwrap(), r["description"].as_str().unwrap().to_string()))
            .collect()
    };
    std::thread::scope(|s| {
        for i in 0..8 {
            let (app, g) = (&app, &g);
            s.spawn(move || {
                rule(app, json!({"group": g, "products": ["meeting"], "description": format!("r{i}")}))
            });
        }
    });
    let rules = descriptions(&app);
    assert_eq!(rules.iter().map(|(n, _)| *n).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    let mut names: Vec<&str> = rules.iter().map(|(_, d)| d.as_str()).collect();
    names.sort();
    assert_eq!(names, ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"], "no create was lost");

    // the switch, edits of one rule and more creates, all at once: none of them undoes another
    let first = app.admin_ok(Method::GET, "/rules", None, StatusCode::OK)["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::scope(|s| {
        s.spawn(|| (0..=20).for_each(|k| drop(sync(&app, k % 2 == 0))));
        s.spawn(|| {
            for k in 0..20 {
                let body = json!({"group": g, "products": ["meeting"], "description": format!("edit {k}")});
                app.admin_ok(Method::PUT, &format!("/rules/{first}"), Some(&body), StatusCode::OK);
            }
        });
        s.spawn(|| {
            (0..10).for_each(|k| {
                drop(rule(&app, json!({"group": g, "products": [], "description": format!("late {k}")})))
            })
        });
    });
    assert_eq!(app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["enabled"], json!(true));
    let rules = descriptions(&app);
    assert_eq!(rules.iter().map(|(n, _)| *n).collect::<Vec<_>>(), (1..=18).collect::<Vec<_>>());
    assert_eq!(rules[0].1, "edit 19", "the last edit of rule 1 stands");
    assert_eq!(rules.iter().filter(|(_, d)| d.starts_with("late ")).count(), 10);
}

#[test]
fn a_retry_with_a_malformed_body_is_refused_and_retries_nothing() {
    let app = spawn_app();
    product(&app, "meeting", Some(0), &[]);
    let g = id(&app.create_group("G"));
    rule(&app, json!({"group": g, "products": ["meeting"]}));
    sync(&app, true);
    let a = user(&app, "a@example.com", json!({}));
    app.add_members(&g, &[&a]);
    app.settle();
    assert_eq!(app.entitlements(&a)["state"], json!("failed"));
    let retry = |body: &str| {
        app.client
            .post(format!("http://{}/admin/v1/failures/retry", app.addr))
            .bearer_auth(ADMIN_TOKEN)
            .body(body.to_string())
            .send()
            .unwrap()
    };
    for (body, status, says) in [
        (
            r#"{"reason": "typo"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason: 'typo' is not a failure reason (outOfLicenses, existingAccount, welcomeEmailFailed)",
        ),
        ("retry everything", StatusCode::BAD_REQUEST, "the request body is not valid JSON"),
        (r#"{"reasons": "outOfLicenses"}"#, StatusCode::BAD_REQUEST, "reasons: unknown field"),
        (
            r#"{"users": "a"}"#,
            StatusCode::BAD_REQUEST,
            "users: a string is not allowed here (invalid type: string \"a\", expected a sequence)",
        ),
        (
            r#"{"reason": "outOfLicenses", "users": []}"#,
            StatusCode::BAD_REQUEST,
            "users: give either \"reason\" or \"users\", not both",
        ),
    ] {
        let answer = expect_status(retry(body), status);
        assert!(answer["message"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
    // every problem of a retry body at once, each named
    let answer =
        expect_status(retry(r#"{"users": 3, "reasons": 1, "extra": true}"#), StatusCode::BAD_REQUEST);
    let fields: Vec<&str> =
        answer["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["users", "extra", "reasons"], "{answer}");
    let retried = app.admin_ok(Method::GET, "/activity?type=failures.retried", None, StatusCode::OK);
    assert_eq!(retried["Resources"], json!([]), "a refused retry retries nothing");
    // no body at all, like an empty object, retries every failure
    let answer = expect_status(retry(""), StatusCode::OK);
    assert_eq!(
        answer,
        json!({"retried": 1, "resolved": 0, "stillFailing": 1, "notFailing": [], "welcomeEmailsQueued": 0})
    );
    let answer = expect_status(retry(r#"{"reason": "outOfLicenses"}"#), StatusCode::OK);
    assert_eq!(answer["retried"], json!(1));
}

#[test]
fn a_product_cannot_come_to_require_what_a_rule_granting_it_leaves_out() {
    let app = spawn_app();
    product(&app, "meeting", None, &[]);
    product(&app, "webinar", None, &[]);
    let g = id(&app.create_group("G"));
    rule(&app, json!({"group": g, "products": ["meeting"]}));
    let r2 = rule(&app, json!({"group": g, "products": ["webinar"], "description": "webinar only"}));
    let res = app.admin(Method::PATCH, "/products/webinar", Some(&json!({"requires": ["meeting"]})));
    assert_eq!(
        expect_status(res, StatusCode::CONFLICT)["message"],
        json!("requires: rule 2 grants 'webinar' without 'meeting'; change the rule first")
    );
    let webinar = app.admin_ok(Method::GET, "/products/webinar", None, StatusCode::OK);
    assert_eq!(webinar["requires"], json!([]), "nothing was saved");
    // once the rule grants both, the product may require it
    let both = json!({"group": g, "products": ["meeting", "webinar"]});
    let path = format!("/rules/{}", r2["id"].as_str().unwrap());
    app.admin_ok(Method::PUT, &path, Some(&both), StatusCode::OK);
    let res = app.admin(Method::PATCH, "/products/webinar", Some(&json!({"requires": ["meeting"]})));
    assert_eq!(expect_status(res, StatusCode::OK)["requires"], json!(["meeting"]));
}

#[test]
fn pending_counts_each_user_owed_an_evaluation_once() {
    let app = spawn_app();
    product(&app, "meeting", None, &[]);
    product(&app, "webinar", None, &[]);
    let a = id(&app.create_group("A"));
    let b = id(&app.create_group("B"));
    let r1 = rule(&app, json!({"group": a, "products": ["meeting"]}));
    let r2 = rule(&app, json!({"group": b, "products": ["webinar"]}));
    let [x, y, z, _w] = ["x", "y", "z", "w"].map(|n| user(&app, &format!("{n}@example.com"), json!({})));
    app.add_members(&a, &[&x, &y]);
    app.add_members(&b, &[&x, &z]);
    sync(&app, true);
    app.settle();
    let pending = |app: &TestApp| app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["pending"].clone();
    // with sync off nothing drains, so what is owed stays visible
    sync(&app, false);
    let order = json!({"order": [r2["id"], r1["id"]]});
    app.admin_ok(Method::PUT, "/rules/order", Some(&order), StatusCode::OK);
    assert_eq!(pending(&app), json!(1), "only x's deciding rule moved");
    app.add_members(&b, &[&y]);
    assert_eq!(pending(&app), json!(2), "and y joined B");
    let edit = json!({"group": a, "products": ["meeting"], "description": "x and y"});
    app.admin_ok(Method::PUT, &format!("/rules/{}", r1["id"].as_str().unwrap()), Some(&edit), StatusCode::OK);
    assert_eq!(pending(&app), json!(2), "A's members are x and y, already counted");
    sync(&app, true);
    app.settle();
    assert_eq!(products_of(&app, &x), ["webinar"]);
    assert_eq!(products_of(&app, &y), ["webinar"]);
    assert_eq!(products_of(&app, &z), ["webinar"]);
}
