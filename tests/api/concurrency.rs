//! Concurrent writers never lose each other's work.

use std::sync::{Arc, Barrier};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[test]
fn five_clients_patching_one_group_lose_no_member() {
    let app = spawn_app();
    let gid = id(&app.create_group("Initial sync"));
    let users: Vec<String> = (0..1000)
        .map(|i| id(&app.create_user(&json!({"userName": format!("sync{i}@example.com")}))))
        .collect();
    let barrier = Arc::new(Barrier::new(5));
    std::thread::scope(|s| {
        for client in 0..5 {
            let (app, users, barrier, gid) = (&app, &users, barrier.clone(), gid.clone());
            s.spawn(move || {
                barrier.wait();
                for batch in users[client * 200..(client + 1) * 200].chunks(20) {
                    let value: Vec<_> = batch.iter().map(|u| json!({"$ref": null, "value": u})).collect();
                    let body = json!({"Operations": [{"op": "Add", "path": "members", "value": value}]});
                    expect_status(app.patch(&format!("/Groups/{gid}"), &body), StatusCode::NO_CONTENT);
                }
            });
        }
    });
    let mut want = users.clone();
    want.sort();
    assert_eq!(app.member_ids(&gid), want);
}

#[test]
fn concurrent_creates_of_one_username_yield_exactly_one_201() {
    let app = spawn_app();
    let barrier = Arc::new(Barrier::new(8));
    let statuses: Vec<StatusCode> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (app, barrier) = (&app, barrier.clone());
                s.spawn(move || {
                    barrier.wait();
                    let name = if i % 2 == 0 { "race@example.com" } else { "RACE@example.com" };
                    app.post("/Users", &json!({"userName": name})).status()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 7, "{statuses:?}");
    assert_eq!(expect_status(app.get("/Users"), StatusCode::OK)["totalResults"], json!(1));
}

#[test]
fn concurrent_patches_of_one_user_are_all_applied() {
    let app = spawn_app();
    let uid = id(&app.create_user(&json!({"userName": "busy@example.com"})));
    std::thread::scope(|s| {
        for i in 0..8 {
            let (app, uid) = (&app, &uid);
            s.spawn(move || {
                let body = json!({"Operations": [{"op": "add", "path": "emails", "value": [{"value": format!("e{i}@example.com")}]}]});
                expect_status(app.patch(&format!("/Users/{uid}"), &body), StatusCode::NO_CONTENT);
            });
        }
    });
    let user = expect_status(app.get(&format!("/Users/{uid}")), StatusCode::OK);
    assert_eq!(user["emails"].as_array().unwrap().len(), 8);
    assert_eq!(user["meta"]["version"], json!("W/\"9\""));
}
