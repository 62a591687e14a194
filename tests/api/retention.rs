//! Retention: the provisioning log and the activity history are pruned in the background once older
//! than each account's settings say (time from a clock the test moves), and the log also to its size cap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use usersync::clock::ManualClock;

use crate::helpers::*;

/// Polls `GET path` until `done` holds of its body (the pruner runs every 100 ms here).
#[track_caller]
fn until(app: &TestApp, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        app.store.flush_requests().unwrap();
        let body = app.admin_ok(Method::GET, path, None, StatusCode::OK);
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn total(body: &Value) -> u64 {
    body["totalResults"].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn the_log_and_the_activity_history_are_pruned_by_age_and_the_log_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-05-01T00:00:00Z").unwrap().to_utc();
    let clock = Arc::new(ManualClock::new(t0));
    let mut settings = test_settings(dir.path());
    settings.prune_every = Duration::from_millis(100);
    let app = spawn_with_clock(settings, clock.clone());

    let defaults = app.admin_ok(Method::GET, "/settings", None, StatusCode::OK);
    assert_eq!(
        defaults["retention"],
        json!({"activityDays": 400, "requestDays": 30, "requestMaxEntries": 100000})
    );
    app.create_user(&json!({"userName": "u1@example.com"}));
    app.create_user(&json!({"userName": "u2@example.com"}));
    let kept = json!({"retention": {"activityDays": 2, "requestDays": 1}});
    let now = app.admin_ok(Method::PATCH, "/settings", Some(&kept), StatusCode::OK);
    assert_eq!(now["retention"]["requestMaxEntries"], json!(100000), "what the patch left out stays");
    for (bad, field) in [
        (json!({"retention": {"activityDays": 0}}), "retention.activityDays"),
        (json!({"retention": {"requestMaxEntries": 0}}), "retention.requestMaxEntries"),
    ] {
        let e = app.admin_ok(Method::PATCH, "/settings", Some(&bad), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e["errors"][0]["field"], field, "{e}");
    }
    let e = app.admin_ok(
        Method::PATCH,
        "/settings",
        Some(&json!({"retention": {"days": 3}})),
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(e["errors"][0]["field"], "retention.days", "{e}");
    let activity_at_t0 = total(&app.admin_ok(Method::GET, "/activity", None, StatusCode::OK));
    assert!(activity_at_t0 >= 3, "two creations and the settings change");
    assert_eq!(total(&until(&app, "/requests", "two requests logged", |b| total(b) == 2)), 2);

    // 30 hours on: the log's first two entries are older than a day; the history is kept two days
    clock.advance(chrono::Duration::hours(30));
    app.create_user(&json!({"userName": "u3@example.com"}));
    let log = until(&app, "/requests", "the log pruned to a day", |b| total(b) == 1);
    assert_eq!(log["Resources"][0]["userName"], "u3@example.com");
    assert_eq!(total(&app.admin_ok(Method::GET, "/activity", None, StatusCode::OK)), activity_at_t0 + 1);

    // 60 hours on: what happened at the start is more than two days old
    clock.advance(chrono::Duration::hours(30));
    let history = until(&app, "/activity", "the history pruned to two days", |b| total(b) == 1);
    assert_eq!(history["Resources"][0]["type"], "user.created");
    assert_eq!(history["Resources"][0]["targetName"], "u3@example.com");
    until(&app, "/requests", "the log pruned again", |b| total(b) == 0);
    let by_type = app.admin_ok(Method::GET, "/activity?type=user.created", None, StatusCode::OK);
    assert_eq!(total(&by_type), 1, "the indexes were pruned with the entries: {by_type}");

    // a cap on the log's size
    let cap = json!({"retention": {"requestMaxEntries": 2}});
    app.admin_ok(Method::PATCH, "/settings", Some(&cap), StatusCode::OK);
    for i in 4..8 {
        app.create_user(&json!({"userName": format!("u{i}@example.com")}));
    }
    let log = until(&app, "/requests", "the log cut to its cap", |b| total(b) == 2);
    let names: Vec<&str> =
        log["Resources"].as_array().unwrap().iter().map(|e| e["userName"].as_str().unwrap()).collect();
    assert_eq!(names, ["u7@example.com", "u6@example.com"], "the newest are kept");
}
