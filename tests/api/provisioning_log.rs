//! The provisioning log: every SCIM request with its outcome, searched by status, user and time with
//! paging, in the admin API and the console; bodies redacted, passwords nowhere (neither in the log nor in
//! any file of the data directory).

use std::path::Path;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use usersync::clock::ManualClock;

use crate::console::http_session;
use crate::helpers::*;

const PASSWORD: &str = "Pw-5c2e9a17-never-stored";
const NEW_PASSWORD: &str = "Pw-b81f03d4-never-either";

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The files of the data directory that hold `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|f| std::fs::read(f).is_ok_and(|bytes| holds(&bytes, needle.as_bytes())))
        .map(|f| f.display().to_string())
        .collect()
}

fn requests(app: &TestApp, query: &str) -> Value {
    app.admin_ok(Method::GET, &format!("/requests{query}"), None, StatusCode::OK)
}

#[test]
fn a_password_sent_in_a_post_appears_nowhere_in_the_log_nor_in_the_data_directory() {
    let app = spawn_app();
    // values are kept: the strictest case, since everything but passwords is written down
    let settings = json!({"provisioningLog": {"recordValues": true}});
    let patched = app.admin_ok(Method::PATCH, "/settings", Some(&settings), StatusCode::OK);
    assert_eq!(patched["provisioningLog"]["recordValues"], json!(true));
    assert_eq!(patched["retention"]["requestDays"], json!(30), "the defaults: {patched}");
    let user = app.create_user(&json!({"userName": "pat@example.com", "password": PASSWORD,
        "emails": [{"value": "pat.mail@example.com", "primary": true}]}));
    let uid = id(&user);
    // a refused one (the userName is taken) and a PATCH writing a new password
    expect_error(
        app.post("/Users", &json!({"userName": "pat@example.com", "password": PASSWORD})),
        StatusCode::CONFLICT,
    );
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "password", "value": NEW_PASSWORD},
                       {"op": "replace", "value": {"password": NEW_PASSWORD, "displayName": "Pat"}}]});
    let res = app.patch(&format!("/Users/{uid}"), &patch);
    assert!(res.status().is_success(), "{}", res.status());
    app.store.flush_requests().unwrap();

    let log = requests(&app, "");
    assert_eq!(log["totalResults"], json!(3), "{log}");
    let text = log.to_string();
    for secret in [PASSWORD, NEW_PASSWORD, SCIM_TOKEN] {
        assert!(!text.contains(secret), "the log shows a secret: {log}");
    }
    let entries = log["Resources"].as_array().unwrap();
    let created = entries.iter().find(|e| e["status"] == json!(201)).unwrap();
    assert_eq!(created["body"]["userName"], "pat@example.com", "values kept as the account asked");
    assert_eq!(created["body"]["password"], "(secret)");
    assert_eq!(created["body"]["emails"][0]["value"], "pat.mail@example.com");
    let patched = entries.iter().find(|e| e["method"] == "PATCH").unwrap();
    assert_eq!(patched["body"]["Operations"][0]["value"], "(secret)");
    assert_eq!(patched["body"]["Operations"][1]["value"]["displayName"], "Pat");

    // nor anywhere on disk, once everything is flushed and the server stopped
    let data = app.data.clone();
    let dir = app.stop();
    assert!(!files(&data).is_empty());
    assert!(!files_holding(&data, "pat.mail@example.com").is_empty(), "the search does find what is stored");
    for secret in [PASSWORD, NEW_PASSWORD] {
        assert_eq!(files_holding(&data, secret), Vec::<String>::new(), "files holding the password");
    }
    drop(dir);
}

#[test]
fn without_the_opt_in_only_attribute_names_are_kept() {
    let app = spawn_app();
    app.create_user(
        &json!({"userName": "val@example.com", "password": PASSWORD, "name": {"givenName": "Val"}}),
    );
    app.store.flush_requests().unwrap();
    let log = requests(&app, "");
    let body = &log["Resources"][0]["body"];
    assert_eq!(body["userName"], "(hidden)", "{log}");
    assert_eq!(body["name"]["givenName"], "(hidden)");
    assert_eq!(body["password"], "(secret)");
    assert_eq!(log["Resources"][0]["userName"], "val@example.com", "the user affected is always named");
    assert!(!log.to_string().contains("Val\""), "{log}");
}

#[test]
fn the_log_is_searched_by_status_user_and_time_with_paging_in_the_api_and_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-01T08:00:00Z").unwrap().to_utc();
    let clock = Arc::new(ManualClock::new(start));
    let app = spawn_with_clock(test_settings(dir.path()), clock.clone());

    let alice = id(&app.create_user(&json!({"userName": "alice@example.com"})));
    expect_error(app.post("/Users", &json!({"userName": "ALICE@example.com"})), StatusCode::CONFLICT);
    expect_error(app.get("/Users/2819c223-7f76-453a-919d-413861904646"), StatusCode::NOT_FOUND);
    clock.advance(chrono::Duration::hours(2));
    let bob = id(&app.create_user(&json!({"userName": "bob@example.com"})));
    let patch = json!({"Operations": [{"op": "replace", "path": "displayName", "value": "Alice"}]});
    expect_status(app.patch(&format!("/Users/{alice}"), &patch), StatusCode::NO_CONTENT);
    expect_status(app.delete(&format!("/Users/{bob}")), StatusCode::NO_CONTENT);
    app.store.flush_requests().unwrap();

    let all = requests(&app, "");
    assert_eq!(all["totalResults"], json!(6), "{all}");
    let first = &all["Resources"][0];
    assert_eq!(
        (first["method"].as_str(), first["status"].as_u64()),
        (Some("DELETE"), Some(204)),
        "newest first"
    );
    assert_eq!(first["userName"], "bob@example.com", "a deleted user is named");
    assert_eq!(first["token"], "environment");
    assert!(first["latencyMs"].as_f64().is_some());
    assert!(
        first["activity"].as_array().unwrap().iter().any(|a| a["type"] == "user.deleted"),
        "the activity entry it caused: {first}"
    );

    let conflict = requests(&app, "?status=409");
    assert_eq!(conflict["totalResults"], json!(1));
    let entry = &conflict["Resources"][0];
    assert_eq!(entry["scimType"], "uniqueness");
    assert!(entry["detail"].as_str().unwrap().contains("userName"), "{entry}");
    assert_eq!(entry["userName"], "ALICE@example.com");
    assert_eq!(requests(&app, "?status=4xx")["totalResults"], json!(2));
    assert_eq!(requests(&app, "?status=2xx")["totalResults"], json!(4));

    // a user by userName (any case) or by id
    assert_eq!(
        requests(&app, "?user=Alice%40Example.com")["totalResults"],
        json!(3),
        "created, refused, patched"
    );
    let by_id = requests(&app, &format!("?user={alice}"));
    assert_eq!(by_id["totalResults"], json!(2), "{by_id}");
    assert!(by_id["Resources"].as_array().unwrap().iter().all(|e| e["resourceId"] == json!(alice)));

    let since = requests(&app, "?since=2026-03-01T09:00:00Z");
    assert_eq!(since["totalResults"], json!(3), "the requests after the clock moved");
    assert_eq!(requests(&app, "?since=2026-03-02")["totalResults"], json!(0));
    let both = requests(&app, "?since=2026-03-01T09:00:00Z&status=2xx&user=bob%40example.com");
    assert_eq!(both["totalResults"], json!(2));

    // paging: the total stays, the pages move
    let page1 = requests(&app, "?count=4");
    let page2 = requests(&app, "?count=4&startIndex=5");
    assert_eq!((page1["totalResults"].clone(), page1["itemsPerPage"].clone()), (json!(6), json!(4)));
    assert_eq!((page2["totalResults"].clone(), page2["itemsPerPage"].clone()), (json!(6), json!(2)));
    let ids =
        |p: &Value| p["Resources"].as_array().unwrap().iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    let mut seen = ids(&page1);
    seen.extend(ids(&page2));
    assert_eq!(seen, ids(&requests(&app, "")), "pages in order, none twice");

    // strict parameters
    for (query, field) in [
        ("?state=4xx", "?state"),
        ("?status=4x", "?status"),
        ("?since=yesterday", "?since"),
        ("?count=x", "?count"),
    ] {
        let body = app.admin_ok(Method::GET, &format!("/requests{query}"), None, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }

    // the console lists the same, in words; htmx gets the results alone
    let (client, session) = http_session(&app);
    let base = format!("http://{}", app.addr);
    let page =
        client.get(format!("{base}/console/requests?status=409")).header("Cookie", &session).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().unwrap();
    assert!(html.contains("<h1>Provisioning Log</h1>"), "{html}");
    assert!(html.contains("1 request, newest first"), "{html}");
    assert!(html.contains("409 Conflict (uniqueness)"), "{html}");
    assert!(
        html.contains("SCIM token &#39;environment&#39;") || html.contains("SCIM token 'environment'"),
        "{html}"
    );
    let part = client
        .get(format!("{base}/console/requests?user=alice%40example.com"))
        .header("Cookie", &session)
        .header("HX-Request", "true")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(part.trim_start().starts_with("<div id=\"request-results\""), "{part}");
    assert!(part.contains("3 requests"), "{part}");
    assert!(!part.contains("<h1>"), "only the results");
    let bad =
        client.get(format!("{base}/console/requests?status=abc")).header("Cookie", &session).send().unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
