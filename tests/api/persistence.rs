//! What was acknowledged is there after a restart: records, indexes, memberships, counts and tokens.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[test]
fn everything_survives_a_restart() {
    let app = spawn_app();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(id(&app.create_user(
            &json!({"userName": format!("p{i}@example.com"), "externalId": format!("ext{i}")}),
        )));
    }
    let gid = id(&app.create_group("Persisted"));
    let add = json!({"Operations":[{"op":"add","path":"members","value": ids.iter().take(5).map(|u| json!({"value": u})).collect::<Vec<_>>()}]});
    expect_status(app.patch(&format!("/Groups/{gid}"), &add), StatusCode::NO_CONTENT);
    expect_status(app.delete(&format!("/Users/{}", ids[0])), StatusCode::NO_CONTENT);
    let (other_token, _) = app.new_account("second");

    let dir = app.stop().expect("owns its directory");
    let app = spawn_app_in(dir.path());
    assert_eq!(expect_status(app.get("/Users"), StatusCode::OK)["totalResults"], json!(19));
    assert_eq!(expect_status(app.get("/Groups"), StatusCode::OK)["totalResults"], json!(1));
    let mut want: Vec<String> = ids[1..5].to_vec();
    want.sort();
    assert_eq!(app.member_ids(&gid), want);
    expect_error(app.get(&format!("/Users/{}", ids[0])), StatusCode::NOT_FOUND);
    let found = expect_status(
        app.get(&format!("/Users?filter={}", q("userName eq \"P7@EXAMPLE.COM\""))),
        StatusCode::OK,
    );
    assert_eq!(found["Resources"][0]["id"], json!(ids[7]));
    let found =
        expect_status(app.get(&format!("/Users?filter={}", q("externalId eq \"ext9\""))), StatusCode::OK);
    assert_eq!(found["Resources"][0]["id"], json!(ids[9]));
    // a token created before the restart still works
    assert_eq!(
        expect_status(app.as_token(&other_token).get("/Users"), StatusCode::OK)["totalResults"],
        json!(0)
    );
    assert!(app.store.verify().expect("verify").is_empty());
}
