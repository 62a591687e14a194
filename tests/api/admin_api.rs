//! The admin API as an admin relies on it: directory look-up by name, safe updates (merge patch, full PUT,
//! If-Match), strict input with every problem named, paged lists, templates, readable history and tokens.
//! Each mistake an admin could make without a word before is now answered with a status and a message.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn product(app: &TestApp, id: &str, seats: Option<u64>, requires: &[&str]) -> Value {
    let body = json!({"name": id.to_uppercase(), "seats": seats, "requires": requires});
    let res = app.admin(Method::PUT, &format!("/products/{id}"), Some(&body));
    assert!(res.status().is_success(), "{}", res.text().unwrap_or_default());
    res.json().unwrap()
}

fn user(app: &TestApp, name: &str) -> String {
    let body = json!({"userName": name, "displayName": name.split('@').next().unwrap().to_uppercase(),
        "emails": [{"value": name, "primary": true}]});
    id(&app.create_user(&body))
}

/// The `errors` of an error answer as (field, message) pairs, after checking its status.
#[track_caller]
fn errors(res: reqwest::blocking::Response, status: StatusCode) -> Vec<(String, String)> {
    let body = expect_status(res, status);
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {body}"))
        .iter()
        .map(|e| (e["field"].as_str().unwrap().to_string(), e["message"].as_str().unwrap().to_string()))
        .collect()
}

fn pair(field: &str, message: &str) -> (String, String) {
    (field.to_string(), message.to_string())
}

#[test]
fn directory_groups_and_users_are_found_by_name_and_answers_carry_names() {
    let app = spawn_app();
    product(&app, "meeting", None, &[]);
    let sales = id(&app.create_group("Sales EMEA"));
    let _us = id(&app.create_group("Sales US"));
    let _eng = id(&app.create_group("Engineering"));
    let ann = user(&app, "ann@example.com");
    let bob = user(&app, "bob@example.com");
    app.add_members(&sales, &[&ann, &bob]);
    // a rule may name its group by displayName; the answer carries both
    let rule = app.admin_ok(
        Method::POST,
        "/rules",
        Some(&json!({"group": "sales emea", "products": ["meeting"]})),
        StatusCode::CREATED,
    );
    assert_eq!((&rule["group"], &rule["groupName"]), (&json!(sales), &json!("Sales EMEA")));

    let found = app.admin_ok(Method::GET, "/groups?search=SALES&count=1", None, StatusCode::OK);
    assert_eq!((&found["totalResults"], &found["itemsPerPage"]), (&json!(2), &json!(1)));
    let first = &found["Resources"][0];
    assert_eq!(
        (&first["id"], &first["displayName"], &first["memberCount"]),
        (&json!(sales), &json!("Sales EMEA"), &json!(2))
    );
    assert_eq!(first["rules"], json!([{"id": rule["id"], "number": 1}]));
    let second = app.admin_ok(Method::GET, "/groups?search=sales&startIndex=2&count=1", None, StatusCode::OK);
    assert_eq!(second["Resources"][0]["displayName"], json!("Sales US"));
    assert_eq!(
        app.admin_ok(Method::GET, "/groups?search=eer", None, StatusCode::OK)["totalResults"],
        json!(1)
    );
    let by_name = app.admin_ok(Method::GET, "/groups/Sales%20EMEA", None, StatusCode::OK);
    assert_eq!(by_name["id"], json!(sales));
    let missing = expect_status(app.admin(Method::GET, "/groups/Nope", None), StatusCode::NOT_FOUND);
    assert_eq!(missing["message"], json!("no directory group has the id or displayName 'Nope'"));

    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": true})), StatusCode::OK);
    app.settle();
    let users = app.admin_ok(Method::GET, "/users?search=example&state=entitled", None, StatusCode::OK);
    assert_eq!(users["totalResults"], json!(2));
    let u = &users["Resources"][0];
    assert_eq!(
        (&u["id"], &u["userName"], &u["displayName"], &u["email"], &u["active"], &u["state"]),
        (
            &json!(ann),
            &json!("ann@example.com"),
            &json!("ANN"),
            &json!("ann@example.com"),
            &json!(true),
            &json!("entitled")
        )
    );
    assert_eq!(
        app.admin_ok(Method::GET, "/users?state=none", None, StatusCode::OK)["totalResults"],
        json!(0)
    );
    let bad_state =
        errors(app.admin(Method::GET, "/users?state=happy", None), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_state, [pair("?state", "'happy' is not one of entitled, none, failed, suspended")]);

    // every place that takes a user id takes a userName
    let e = app.admin_ok(Method::GET, "/users/BOB@example.com/entitlements", None, StatusCode::OK);
    assert_eq!((&e["user"], &e["userName"]), (&json!(bob), &json!("bob@example.com")));
    let nobody =
        expect_status(app.admin(Method::GET, "/users/carol/entitlements", None), StatusCode::NOT_FOUND);
    assert_eq!(nobody["message"], json!("no user has the id or userName 'carol'"));
    let about_ann = app.admin_ok(Method::GET, "/activity?user=ann@example.com", None, StatusCode::OK);
    assert!(about_ann["Resources"].as_array().unwrap().iter().any(|e| e["type"] == json!("user.created")));
}

#[test]
fn merge_patch_changes_only_what_it_names_and_put_requires_every_field() {
    let app = spawn_app();
    product(&app, "meeting", None, &[]);
    product(&app, "webinar", Some(5), &["meeting"]);
    // PUT {"seats": 10} used to reset the name and drop `requires`: now a 400 naming what is missing
    let res = app.admin(Method::PUT, "/products/webinar", Some(&json!({"seats": 10})));
    assert_eq!(
        errors(res, StatusCode::BAD_REQUEST),
        [pair("name", "is required"), pair("requires", "is required")]
    );
    // PUT {"name": ...} used to turn a capped product into an unlimited one
    let res = app.admin(Method::PUT, "/products/webinar", Some(&json!({"name": "Webinar", "requires": []})));
    assert_eq!(
        errors(res, StatusCode::BAD_REQUEST),
        [pair("seats", "is required (a number of seats, or null for unlimited)")]
    );
    let unchanged = app.admin_ok(Method::GET, "/products/webinar", None, StatusCode::OK);
    assert_eq!((&unchanged["name"], &unchanged["seats"]), (&json!("WEBINAR"), &json!(5)));
    // buying more licences: PATCH the seats, nothing else moves
    let patched =
        app.admin_ok(Method::PATCH, "/products/webinar", Some(&json!({"seats": 10})), StatusCode::OK);
    assert_eq!(
        patched,
        json!({"id": "webinar", "name": "WEBINAR", "seats": 10, "used": 0, "requires": ["meeting"]})
    );
    // a patch is checked like a whole body: unknown fields and bad values are named
    let res = app.admin(Method::PATCH, "/products/webinar", Some(&json!({"seets": 3, "name": ""})));
    assert_eq!(errors(res, StatusCode::BAD_REQUEST), [pair("seets", "unknown field")]);
    let res = app.admin(Method::PATCH, "/products/webinar", Some(&json!({"name": " "})));
    assert_eq!(errors(res, StatusCode::UNPROCESSABLE_ENTITY), [pair("name", "must not be empty")]);
    // null removes: a required field removed is a 400, unlimited seats are explicit
    let res = app.admin(Method::PATCH, "/products/webinar", Some(&json!({"name": null})));
    assert_eq!(errors(res, StatusCode::BAD_REQUEST), [pair("name", "is required")]);

    // If-Match on every admin object: a stale version is a 412 and changes nothing
    let get = app.admin(Method::GET, "/products/webinar", None);
    let etag = get.headers()["etag"].to_str().unwrap().to_string();
    let fresh = app
        .client
        .patch(format!("http://{}/admin/v1/products/webinar", app.addr))
        .bearer_auth(&app.admin_token)
        .header("If-Match", &etag)
        .body(json!({"seats": 12}).to_string())
        .send()
        .unwrap();
    assert_ne!(fresh.headers()["etag"].to_str().unwrap(), etag, "a change makes a new version");
    expect_status(fresh, StatusCode::OK);
    let stale = app
        .client
        .patch(format!("http://{}/admin/v1/products/webinar", app.addr))
        .bearer_auth(&app.admin_token)
        .header("If-Match", &etag)
        .body(json!({"seats": 20}).to_string())
        .send()
        .unwrap();
    let body = expect_status(stale, StatusCode::PRECONDITION_FAILED);
    assert!(body["message"].as_str().unwrap().starts_with("product webinar has changed"), "{body}");
    assert_eq!(app.admin_ok(Method::GET, "/products/webinar", None, StatusCode::OK)["seats"], json!(12));

    // user groups, settings templates and email templates patch the same way
    app.admin_ok(Method::PUT, "/user-groups/emea", Some(&json!({"name": "EMEA"})), StatusCode::CREATED);
    let ug =
        app.admin_ok(Method::PATCH, "/user-groups/emea", Some(&json!({"name": "Europe"})), StatusCode::OK);
    assert_eq!(ug, json!({"id": "emea", "name": "Europe"}));
    let quiet = json!({"name": "Quiet", "settings": {"recording": false, "chat": true}});
    app.admin_ok(Method::PUT, "/settings-templates/quiet", Some(&quiet), StatusCode::CREATED);
    let st = app.admin_ok(
        Method::PATCH,
        "/settings-templates/quiet",
        Some(&json!({"settings": {"chat": null}})),
        StatusCode::OK,
    );
    assert_eq!(st["settings"], json!({"recording": false}));
    let res = app.admin(Method::PUT, "/settings-templates/loud", Some(&json!({"name": "Loud"})));
    assert_eq!(errors(res, StatusCode::BAD_REQUEST), [pair("settings", "is required")]);
}

#[test]
fn patch_moves_one_rule_and_numbers_beyond_the_end_are_refused() {
    let app = spawn_app();
    product(&app, "meeting", None, &[]);
    let g = id(&app.create_group("G"));
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let body = json!({"group": g, "products": ["meeting"], "description": format!("r{i}")});
            app.admin_ok(Method::POST, "/rules", Some(&body), StatusCode::CREATED)["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let moved = app.admin_ok(
        Method::PATCH,
        &format!("/rules/{}", ids[2]),
        Some(&json!({"number": 1})),
        StatusCode::OK,
    );
    assert_eq!(
        (&moved["number"], &moved["description"], &moved["products"]),
        (&json!(1), &json!("r2"), &json!(["meeting"]))
    );
    let list = app.admin_ok(Method::GET, "/rules", None, StatusCode::OK);
    let order: Vec<&str> =
        list["Resources"].as_array().unwrap().iter().map(|r| r["description"].as_str().unwrap()).collect();
    assert_eq!(order, ["r2", "r0", "r1"]);
    // a patch without a number keeps the place
    let edited = app.admin_ok(
        Method::PATCH,
        &format!("/rules/{}", ids[0]),
        Some(&json!({"description": "first sales"})),
        StatusCode::OK,
    );
    assert_eq!(edited["number"], json!(2));
    let res = app.admin(Method::PATCH, &format!("/rules/{}", ids[0]), Some(&json!({"number": 99})));
    assert_eq!(
        errors(res, StatusCode::UNPROCESSABLE_ENTITY),
        [pair("number", "99 is not a place in the list; this rule can be numbered 1 to 3")]
    );
    let res = app.admin(Method::POST, "/rules", Some(&json!({"group": g, "products": [], "number": 5})));
    assert_eq!(
        errors(res, StatusCode::UNPROCESSABLE_ENTITY),
        [pair("number", "5 is not a place in the list; this rule can be numbered 1 to 4")]
    );
    // the activity entry of an update lists what changed
    let updated = app.admin_ok(Method::GET, "/activity?type=rule.updated&count=1", None, StatusCode::OK);
    let entry = &updated["Resources"][0];
    assert_eq!(
        entry["detail"]["changes"],
        json!({"description": {"before": "r0", "after": "first sales"}}),
        "{entry}"
    );
    let moved = app.admin_ok(Method::GET, "/activity?type=rule.updated&count=2", None, StatusCode::OK);
    assert_eq!(moved["Resources"][1]["detail"]["changes"]["number"], json!({"before": 3, "after": 1}));
    assert_eq!(entry["targetName"], json!("rule 2"));
}

#[test]
fn unknown_fields_bad_values_and_wrong_methods_are_named() {
    let app = spawn_app();
    product(&app, "meeting", None, &[]);
    let g = id(&app.create_group("G"));
    // {"prodcts": [...]} used to make a rule that grants nothing
    let res = app.admin(Method::POST, "/rules", Some(&json!({"group": g, "prodcts": ["meeting"]})));
    assert_eq!(
        errors(res, StatusCode::BAD_REQUEST),
        [pair("products", "is required"), pair("prodcts", "unknown field")]
    );
    assert_eq!(app.admin_ok(Method::GET, "/rules", None, StatusCode::OK)["totalResults"], json!(0));
    // {"account": "acme"} used to put the token in the caller's account without a word
    let res =
        app.admin(Method::POST, "/tokens", Some(&json!({"account": "acme", "name": "okta", "kind": "scim"})));
    assert_eq!(errors(res, StatusCode::BAD_REQUEST), [pair("account", "unknown field")]);
    // every problem of a body at once, nested ones included
    let body = json!({"group": g, "products": "meeting", "language": 7,
        "admin": {"access": "manager", "privilege": ["users.add"]}});
    let found = errors(app.admin(Method::POST, "/rules", Some(&body)), StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        ["products", "admin.privileges", "admin.managedGroups", "admin.privilege", "language"]
    );
    // references that do not exist: a 422 listing each
    let body = json!({"group": g, "products": ["fax", "meeting", "phone"], "userGroup": "nope"});
    assert_eq!(
        errors(app.admin(Method::POST, "/rules", Some(&body)), StatusCode::UNPROCESSABLE_ENTITY),
        [
            pair("products[0]", "unknown product 'fax'"),
            pair("products[2]", "unknown product 'phone'"),
            pair("userGroup", "unknown user group 'nope'")
        ]
    );
    // unknown query parameters and bad values are refused, never ignored or clamped
    let res = app.admin(Method::GET, "/failures?reson=outOfLicenses", None);
    assert_eq!(
        errors(res, StatusCode::BAD_REQUEST),
        [pair("?reson", "unknown query parameter (this endpoint takes: reason, startIndex, count)")]
    );
    let res = app.admin(Method::GET, "/products/meeting?verbose=1", None);
    assert_eq!(
        errors(res, StatusCode::BAD_REQUEST),
        [pair("?verbose", "unknown query parameter (this endpoint takes: none)")]
    );
    let res = app.admin(Method::GET, "/entitlements?product=nope", None);
    assert_eq!(
        errors(res, StatusCode::UNPROCESSABLE_ENTITY),
        [pair("?product", "no product 'nope' in this account")]
    );
    let res = app.admin(Method::GET, "/activity?type=nope", None);
    let found = errors(res, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(found[0].1.starts_with("'nope' is not an activity type ("), "{found:?}");
    let res = app.admin(Method::GET, "/outbox?count=5000", None);
    assert_eq!(
        errors(res, StatusCode::UNPROCESSABLE_ENTITY),
        [pair("?count", "5000 is out of range: 0 to 1000")]
    );
    let res = app.admin(Method::GET, "/outbox?startIndex=0", None);
    assert_eq!(errors(res, StatusCode::UNPROCESSABLE_ENTITY)[0].0, "?startIndex");
    let res = app.admin(Method::GET, "/outbox?count=ten", None);
    assert_eq!(errors(res, StatusCode::BAD_REQUEST), [pair("?count", "'ten' is not a whole number")]);
    // admin object ids are plain
    let res = app.admin(
        Method::PUT,
        "/products/two%20words",
        Some(&json!({"name": "x", "seats": null, "requires": []})),
    );
    assert_eq!(
        errors(res, StatusCode::BAD_REQUEST),
        [pair("id", "'two words' is not an id: 1 to 64 of the characters A-Z a-z 0-9 _ . -")]
    );
    // a wrong method is a 405 that says which methods the path takes
    let res = app.admin(Method::POST, "/products/meeting", Some(&json!({})));
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET, PUT, PATCH, DELETE");
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"], json!("method_not_allowed"));
    let res = app.admin(Method::DELETE, "/rules/order", None);
    assert_eq!(
        (res.status(), res.headers()["allow"].to_str().unwrap()),
        (StatusCode::METHOD_NOT_ALLOWED, "PUT")
    );
    // a state that forbids it is a 409
    let res = app.admin(Method::DELETE, "/settings-templates/default", None);
    let body = expect_status(res, StatusCode::CONFLICT);
    assert_eq!(body["message"], json!("the settings-template 'default' is built in and cannot be deleted"));
}

#[test]
fn failures_outbox_and_previews_are_paged_and_summarised() {
    let app = spawn_app();
    product(&app, "meeting", Some(2), &[]);
    let g = id(&app.create_group("G"));
    let users: Vec<String> = (0..6).map(|i| user(&app, &format!("u{i}@example.com"))).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    app.add_members(&g, &refs);
    app.admin_ok(
        Method::POST,
        "/rules",
        Some(&json!({"group": g, "products": ["meeting"]})),
        StatusCode::CREATED,
    );
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": true})), StatusCode::OK);
    app.settle();

    let page = app.admin_ok(Method::GET, "/failures?reason=outOfLicenses&count=3", None, StatusCode::OK);
    assert_eq!((&page["totalResults"], &page["itemsPerPage"]), (&json!(4), &json!(3)));
    assert_eq!(page["byReason"], json!([{"reason": "outOfLicenses", "count": 4}]));
    assert!(page["Resources"][0]["userName"].as_str().unwrap().ends_with("@example.com"));
    let rest = app.admin_ok(Method::GET, "/failures?startIndex=4&count=3", None, StatusCode::OK);
    assert_eq!(rest["itemsPerPage"], json!(1));
    let none = app.admin_ok(Method::GET, "/failures?reason=existingAccount", None, StatusCode::OK);
    assert_eq!(none["totalResults"], json!(0));

    let outbox = app.admin_ok(Method::GET, "/outbox?count=1", None, StatusCode::OK);
    assert_eq!((&outbox["totalResults"], &outbox["itemsPerPage"]), (&json!(2), &json!(1)));
    let to = outbox["Resources"][0]["to"].as_str().unwrap().to_uppercase();
    let mine = app.admin_ok(Method::GET, &format!("/outbox?to={to}"), None, StatusCode::OK);
    assert_eq!(mine["totalResults"], json!(1));
    assert_eq!(
        mine["Resources"][0]["userName"].as_str().unwrap().to_uppercase(),
        to,
        "the outbox names the user"
    );
    assert_eq!(
        (&mine["Resources"][0]["template"], &mine["Resources"][0]["language"]),
        (&json!("default"), &json!("en_US"))
    );

    product(&app, "webinar", None, &["meeting"]);
    let proposed = json!({"rules": [{"group": g, "products": ["meeting", "webinar"]}]});
    let summary = app.admin_ok(Method::POST, "/rules/preview?view=summary", Some(&proposed), StatusCode::OK);
    assert!(summary.get("users").is_none(), "{summary}");
    assert_eq!(summary["evaluated"], json!(6));
    let changing = summary["changing"].as_u64().unwrap();
    assert!(changing >= 2, "{summary}");
    assert_eq!(
        summary["changes"]["gaining"]["webinar"],
        json!(changing),
        "everyone who changes gains webinar"
    );
    assert!(summary["products"].as_array().unwrap().iter().any(|p| p["id"] == json!("webinar")));
    let users_page = app.admin_ok(
        Method::POST,
        "/rules/preview?view=users&startIndex=2&count=1",
        Some(&proposed),
        StatusCode::OK,
    );
    assert_eq!((&users_page["totalResults"], &users_page["itemsPerPage"]), (&json!(changing), &json!(1)));
    let res = app.admin(Method::POST, "/rules/preview?view=all", Some(&proposed));
    assert_eq!(
        errors(res, StatusCode::UNPROCESSABLE_ENTITY),
        [pair("?view", "'all' is not one of summary, users")]
    );
}

#[test]
fn templates_default_preview_placeholders_and_languages() {
    let app = spawn_app();
    product(&app, "meeting", None, &[]);
    let g = id(&app.create_group("G"));
    // the default welcome email can be seen, edited, previewed and reset
    let default = app.admin_ok(Method::GET, "/email-templates/default", None, StatusCode::OK);
    assert_eq!(default["subject"]["fr_FR"], json!("Bienvenue, {{givenName}}"));
    let listed = app.admin_ok(Method::GET, "/email-templates", None, StatusCode::OK);
    assert_eq!(listed["Resources"][0]["id"], json!("default"));
    let edit = json!({"subject": {"en_US": "Hello {{givenName}}, welcome aboard"}});
    let edited = app.admin_ok(Method::PATCH, "/email-templates/default", Some(&edit), StatusCode::CREATED);
    assert_eq!(edited["subject"]["en_US"], json!("Hello {{givenName}}, welcome aboard"));
    assert_eq!(edited["subject"]["fr_FR"], json!("Bienvenue, {{givenName}}"), "the other languages stay");
    let ann = user(&app, "ann@example.com");
    let preview = app.admin_ok(
        Method::POST,
        "/email-templates/default/preview",
        Some(&json!({"user": "ann@example.com"})),
        StatusCode::OK,
    );
    assert_eq!(
        (&preview["subject"], &preview["language"]),
        (&json!("Hello ann@example.com, welcome aboard"), &json!("en_US"))
    );
    let sample = app.admin_ok(Method::POST, "/email-templates/default/preview", None, StatusCode::OK);
    assert_eq!(sample["subject"], json!("Hello Jane, welcome aboard"));
    let res = app.admin(Method::POST, "/email-templates/default/preview", Some(&json!({"user": "nobody"})));
    assert_eq!(
        errors(res, StatusCode::UNPROCESSABLE_ENTITY),
        [pair("user", "no user has the id or userName 'nobody'")]
    );
    expect_status(app.admin(Method::DELETE, "/email-templates/default", None), StatusCode::NO_CONTENT);
    let reset = app.admin_ok(Method::GET, "/email-templates/default", None, StatusCode::OK);
    assert_eq!(reset["subject"]["en_US"], json!("Welcome, {{givenName}}"));
    // settings-templates/default is readable
    let st = app.admin_ok(Method::GET, "/settings-templates/default", None, StatusCode::OK);
    assert_eq!(st, json!({"id": "default", "name": "Default settings", "settings": {}}));

    // placeholders are checked when saved
    let typo = json!({"name": "FR", "subject": {"fr_FR": "Bienvenue {{frstName}}"}, "body": {"fr_FR": "Compte {{userName}}"}});
    let res = app.admin(Method::PUT, "/email-templates/fr", Some(&typo));
    assert_eq!(
        errors(res, StatusCode::UNPROCESSABLE_ENTITY),
        [pair(
            "subject.fr_FR",
            "unknown placeholder {{frstName}} (known: displayName, userName, givenName, familyName, email)"
        )]
    );
    let fr = json!({"name": "FR", "subject": {"fr_FR": "Bienvenue {{givenName}}"}, "body": {"fr_FR": "Compte {{userName}}"}});
    app.admin_ok(Method::PUT, "/email-templates/fr", Some(&fr), StatusCode::CREATED);
    // a rule whose template lacks its language used to fall back silently: now a 422 ...
    let rule = json!({"group": g, "products": ["meeting"], "welcomeEmail": "fr", "language": "de_DE"});
    let res = app.admin(Method::POST, "/rules", Some(&rule));
    assert_eq!(
        errors(res, StatusCode::UNPROCESSABLE_ENTITY),
        [pair(
            "welcomeEmail",
            "email template 'fr' has no de_DE subject and body and names no fallbackLanguage; add the language or a fallbackLanguage to the template"
        )]
    );
    // ... unless the template names a fallback language, which the outbox then records
    app.admin_ok(
        Method::PATCH,
        "/email-templates/fr",
        Some(&json!({"fallbackLanguage": "fr_FR"})),
        StatusCode::OK,
    );
    app.admin_ok(Method::POST, "/rules", Some(&rule), StatusCode::CREATED);
    app.add_members(&g, &[&ann]);
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": true})), StatusCode::OK);
    app.settle();
    let outbox = app.admin_ok(Method::GET, "/outbox", None, StatusCode::OK);
    let m = &outbox["Resources"][0];
    assert_eq!(
        (&m["template"], &m["language"], &m["subject"]),
        (&json!("fr"), &json!("fr_FR"), &json!("Bienvenue ann@example.com"))
    );
    let res = app.admin(Method::PATCH, "/email-templates/fr", Some(&json!({"fallbackLanguage": "it_IT"})));
    assert_eq!(
        errors(res, StatusCode::UNPROCESSABLE_ENTITY),
        [pair("fallbackLanguage", "'it_IT' is not a language of this template's subject and body")]
    );
}

#[test]
fn history_names_targets_lists_changes_and_numbers_each_account_without_gaps() {
    let app = spawn_app();
    let (_, other_admin) = app.new_account("second");
    let other = app.as_account("unused", &other_admin);
    let ann = user(&app, "ann@example.com");
    let g = id(&app.create_group("Sales"));
    product(&app, "meeting", Some(5), &[]);
    app.admin_ok(Method::PATCH, "/products/meeting", Some(&json!({"seats": 8})), StatusCode::OK);
    other.admin_ok(Method::PUT, "/user-groups/x", Some(&json!({"name": "X"})), StatusCode::CREATED);

    let history = app.admin_ok(Method::GET, "/activity?count=100", None, StatusCode::OK);
    let entries = history["Resources"].as_array().unwrap();
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let want: Vec<u64> = (1..=seqs.len() as u64).rev().collect();
    assert_eq!(seqs, want, "one account's entries are numbered 1, 2, 3, ... with no gap");
    let of = |kind: &str| entries.iter().find(|e| e["type"] == json!(kind)).unwrap().clone();
    assert_eq!(
        (&of("user.created")["target"], &of("user.created")["targetName"]),
        (&json!(ann), &json!("ann@example.com"))
    );
    assert_eq!(of("group.created")["targetName"], json!("Sales"));
    let patch = entries
        .iter()
        .find(|e| e["type"] == json!("product.updated") && e["detail"]["created"] == json!(false))
        .unwrap();
    assert_eq!(patch["detail"]["changes"], json!({"seats": {"before": 5, "after": 8}}));
    assert_eq!(patch["targetName"], json!("MEETING"));
    let attrs = json!([{"name": "costCode", "type": "string"}]);
    app.admin_ok(Method::PUT, "/custom-attributes", Some(&attrs), StatusCode::OK);
    let etag =
        app.admin(Method::GET, "/custom-attributes", None).headers()["etag"].to_str().unwrap().to_string();
    let retyped = json!([{"name": "costCode", "type": "integer"}, {"name": "badge", "type": "string"}]);
    let put_if = |body: &Value| {
        app.client
            .put(format!("http://{}/admin/v1/custom-attributes", app.addr))
            .bearer_auth(&app.admin_token)
            .header("If-Match", &etag)
            .body(body.to_string())
            .send()
            .unwrap()
    };
    expect_status(put_if(&retyped), StatusCode::OK);
    expect_status(put_if(&attrs), StatusCode::PRECONDITION_FAILED);
    let latest =
        app.admin_ok(Method::GET, "/activity?type=custom-attributes.updated&count=1", None, StatusCode::OK);
    let changes = &latest["Resources"][0]["detail"]["changes"];
    assert_eq!(changes["costCode"]["before"]["type"], json!("string"));
    assert_eq!(changes["costCode"]["after"]["type"], json!("integer"));
    assert_eq!(
        (&changes["badge"]["before"], &changes["badge"]["after"]["name"]),
        (&Value::Null, &json!("badge"))
    );
    let res = app.admin(
        Method::PUT,
        "/custom-attributes",
        Some(&json!([{"name": "x", "type": "string", "nme": 1}])),
    );
    assert_eq!(errors(res, StatusCode::BAD_REQUEST), [pair("[0].nme", "unknown field")]);
    // by name as well as by id
    let about = app.admin_ok(Method::GET, "/activity?target=sales", None, StatusCode::OK);
    assert_eq!(about["Resources"][0]["target"], json!(g));
    // by who did it: as recorded, or by the token's name alone
    let actors = |actor: &str| -> Vec<String> {
        let by = app.admin_ok(Method::GET, &format!("/activity?actor={actor}"), None, StatusCode::OK);
        by["Resources"].as_array().unwrap().iter().map(|e| e["actor"].as_str().unwrap().to_string()).collect()
    };
    let admin = actors("admin:environment");
    assert!(!admin.is_empty() && admin.iter().all(|a| a == "admin:environment"), "{admin:?}");
    let named = actors("environment");
    assert!(named.len() >= admin.len() && named.iter().all(|a| a.ends_with(":environment")), "{named:?}");
    assert_eq!(actors("nobody"), Vec::<String>::new());
    let theirs = other.admin_ok(Method::GET, "/activity", None, StatusCode::OK);
    assert_eq!(
        theirs["Resources"][0]["seq"],
        json!(3),
        "the other account counts its own entries (2 tokens, 1 user group)"
    );

    // a restart goes on where the numbers ended
    let last = app.admin_ok(Method::GET, "/activity?count=1", None, StatusCode::OK)["Resources"][0]["seq"]
        .as_u64()
        .unwrap();
    drop(other);
    let dir = app.stop().expect("owns its directory");
    let app = spawn_app_in(dir.path());
    user(&app, "bob@example.com");
    let after = app.admin_ok(Method::GET, "/activity?count=1", None, StatusCode::OK);
    assert_eq!(after["Resources"][0]["seq"], json!(last + 1));
}

#[test]
fn token_names_are_unique_and_tokens_show_when_they_were_last_used() {
    let app = spawn_app();
    let created = app.admin_ok(
        Method::POST,
        "/tokens",
        Some(&json!({"name": "okta", "kind": "scim"})),
        StatusCode::CREATED,
    );
    assert!(created["secret"].as_str().unwrap().starts_with("us_"));
    let twice = app.admin(Method::POST, "/tokens", Some(&json!({"name": "okta", "kind": "scim"})));
    assert_eq!(
        expect_status(twice, StatusCode::CONFLICT)["message"],
        json!("name: the account already has a scim token named 'okta'")
    );
    app.admin_ok(
        Method::POST,
        "/tokens",
        Some(&json!({"name": "okta", "kind": "admin"})),
        StatusCode::CREATED,
    );
    let res = app.admin(Method::POST, "/tokens", Some(&json!({"name": "x", "kind": "root"})));
    assert_eq!(
        errors(res, StatusCode::BAD_REQUEST),
        [pair("kind", "unknown token kind 'root' (scim, admin)")]
    );
    // a use of the token shows, to the minute
    let okta = app.as_token(created["secret"].as_str().unwrap());
    expect_status(okta.get("/Users"), StatusCode::OK);
    let tokens = app.admin_ok(Method::GET, "/tokens", None, StatusCode::OK);
    let listed =
        tokens["Resources"].as_array().unwrap().iter().find(|t| t["id"] == created["id"]).unwrap().clone();
    let last_used = listed["lastUsed"].as_str().unwrap();
    assert_eq!(last_used.len(), "2026-12-02T04:58Z".len(), "{last_used}");
    assert!(listed["created"].as_str().is_some() && listed.get("secret").is_none());
}

#[test]
fn the_history_is_paged_like_every_list_and_counts_what_each_filter_matches() {
    let app = spawn_app();
    let ann = user(&app, "ann@example.com");
    let bob = user(&app, "bob@example.com");
    let g = id(&app.create_group("Sales"));
    app.add_members(&g, &[&ann, &bob]);
    app.remove_member(&g, &bob);
    let patch = json!({"Operations": [{"op": "replace", "value": {"title": "Lead"}}]});
    expect_status(app.patch(&format!("/Users/{ann}"), &patch), StatusCode::NO_CONTENT);
    // 2 users created, 1 group created, 2 membership changes, 1 user update
    let all = app.admin_ok(Method::GET, "/activity?count=2", None, StatusCode::OK);
    let total = all["totalResults"].as_u64().unwrap();
    assert_eq!((all["startIndex"].clone(), all["itemsPerPage"].clone()), (json!(1), json!(2)));
    assert_eq!(all["Resources"][0]["seq"], json!(total), "newest first");
    assert_eq!(all["Resources"][1]["seq"], json!(total - 1));
    assert_eq!(all["next"], json!(total - 1), "the cursor of the following page");
    let second = app.admin_ok(Method::GET, "/activity?startIndex=2&count=1", None, StatusCode::OK);
    assert_eq!(
        (second["totalResults"].clone(), second["Resources"][0]["seq"].clone()),
        (json!(total), json!(total - 1))
    );
    let past =
        app.admin_ok(Method::GET, &format!("/activity?startIndex={}", total + 1), None, StatusCode::OK);
    assert_eq!(
        (past["totalResults"].clone(), past["Resources"].clone(), past["next"].clone()),
        (json!(total), json!([]), Value::Null)
    );
    let counted = app.admin_ok(Method::GET, "/activity?count=0", None, StatusCode::OK);
    assert_eq!((counted["totalResults"].clone(), counted["Resources"].clone()), (json!(total), json!([])));
    // with the cursor, the count is of the entries older than it
    let older =
        app.admin_ok(Method::GET, &format!("/activity?before={}&count=1", total - 1), None, StatusCode::OK);
    assert_eq!(
        (older["totalResults"].clone(), older["Resources"][0]["seq"].clone()),
        (json!(total - 2), json!(total - 2))
    );

    let count = |query: &str| -> Value {
        app.admin_ok(Method::GET, &format!("/activity?{query}"), None, StatusCode::OK)["totalResults"].clone()
    };
    assert_eq!(count("type=user.created"), json!(2));
    assert_eq!(count("type=group.members.changed"), json!(2));
    assert_eq!(count("type=rule.created"), json!(0));
    assert_eq!(count("target=ann@example.com"), json!(2), "created and updated");
    assert_eq!(count("target=sales"), json!(3), "created and two membership changes");
    assert_eq!(count("user=bob@example.com"), json!(3), "created, added, removed");
    assert_eq!(count("type=group.members.changed&user=bob@example.com"), json!(2));
    assert_eq!(count("type=user.updated&target=ann@example.com"), json!(1));
    assert_eq!(count("user=bob@example.com&target=Sales"), json!(2), "the group's entries that list bob");
    assert_eq!(count("user=ann@example.com&target=Sales"), json!(1));
    assert_eq!(count(&format!("user={bob}&before={total}")), json!(3));
    let page = app.admin_ok(
        Method::GET,
        "/activity?user=bob@example.com&startIndex=2&count=1",
        None,
        StatusCode::OK,
    );
    assert_eq!(
        (page["totalResults"].clone(), page["Resources"][0]["type"].clone()),
        (json!(3), json!("group.members.changed"))
    );
    assert_eq!(
        page["Resources"][0]["detail"]["added"],
        json!([{"value": ann, "display": "ANN"}, {"value": bob, "display": "BOB"}])
    );

    // the old cursor parameter is refused, naming what the endpoint takes
    let res = app.admin(Method::GET, "/activity?limit=5", None);
    assert_eq!(
        errors(res, StatusCode::BAD_REQUEST),
        [pair(
            "?limit",
            "unknown query parameter (this endpoint takes: type, user, target, actor, before, startIndex, count)"
        )]
    );
    let res = app.admin(Method::GET, "/activity?count=5000", None);
    assert_eq!(
        errors(res, StatusCode::UNPROCESSABLE_ENTITY),
        [pair("?count", "5000 is out of range: 0 to 1000")]
    );
    let res = app.admin(Method::GET, "/activity?before=soon", None);
    assert_eq!(errors(res, StatusCode::BAD_REQUEST), [pair("?before", "must be a cursor from 'next'")]);
}

#[test]
fn directory_updates_say_what_changed_before_and_after_and_never_show_a_password() {
    let app = spawn_app();
    let ann = user(&app, "ann@example.com");
    let g = id(&app.create_group("Sales"));
    let secret = "Correct-Horse-Battery-9";
    let patch = json!({"Operations": [
        {"op": "replace", "value": {"title": "Lead", "password": secret}},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"},
    ]});
    expect_status(app.patch(&format!("/Users/{ann}"), &patch), StatusCode::NO_CONTENT);
    let updated = app.admin_ok(Method::GET, "/activity?type=user.updated", None, StatusCode::OK);
    assert_eq!(updated["totalResults"], json!(1));
    let detail = &updated["Resources"][0]["detail"];
    assert_eq!(
        detail["changes"],
        json!({
            "title": {"before": null, "after": "Lead"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": {"before": null, "after": "Sales"},
        }),
        "{detail}"
    );
    assert!(
        detail["changed"].as_array().unwrap().contains(&json!("password")),
        "a new password is said: {detail}"
    );
    // a password change alone is said, and never shown
    let patch = json!({"Operations": [{"op": "replace", "path": "password", "value": "Another-Secret-77"}]});
    expect_status(app.patch(&format!("/Users/{ann}"), &patch), StatusCode::NO_CONTENT);
    let history = app.admin(Method::GET, "/activity?count=1000", None).text().unwrap();
    for hidden in [secret, "Another-Secret-77", "sha256$"] {
        assert!(!history.contains(hidden), "{hidden} appears in the history");
    }
    let last = app.admin_ok(Method::GET, "/activity?type=user.updated&count=1", None, StatusCode::OK);
    assert_eq!(last["Resources"][0]["detail"]["changed"], json!(["password"]));
    assert_eq!(last["Resources"][0]["detail"]["changes"], json!({}));

    // a group's attributes, before and after; its members as who joined and left, bounded, with names
    let rename = json!({"Operations": [{"op": "replace", "value": {"displayName": "Sales EMEA"}}]});
    expect_status(app.patch(&format!("/Groups/{g}"), &rename), StatusCode::NO_CONTENT);
    let renamed = app.admin_ok(Method::GET, "/activity?type=group.updated", None, StatusCode::OK);
    assert_eq!(
        renamed["Resources"][0]["detail"]["changes"],
        json!({"displayName": {"before": "Sales", "after": "Sales EMEA"}})
    );
    let many: Vec<String> = (0..120).map(|i| user(&app, &format!("m{i}@example.com"))).collect();
    app.add_members(&g, &many.iter().map(String::as_str).collect::<Vec<_>>());
    let body = json!({"Operations": [{"op": "replace", "path": "members", "value": [{"value": ann}]}]});
    expect_status(app.patch(&format!("/Groups/{g}"), &body), StatusCode::NO_CONTENT);
    let changes = app.admin_ok(Method::GET, "/activity?type=group.members.changed", None, StatusCode::OK);
    assert_eq!(changes["totalResults"], json!(2));
    let replaced = &changes["Resources"][0]["detail"];
    assert_eq!((replaced["addedCount"].clone(), replaced["removedCount"].clone()), (json!(1), json!(120)));
    assert_eq!(replaced["added"], json!([{"value": ann, "display": "ANN"}]));
    assert_eq!(replaced["removed"].as_array().unwrap().len(), 100, "a bounded list");
    assert_eq!(replaced["removed"][0], json!({"value": many[0], "display": "M0"}));
    assert!(replaced.get("members").is_none(), "never the whole member list");
    assert_eq!(changes["Resources"][1]["detail"]["addedCount"], json!(120));
}
