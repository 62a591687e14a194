//! The command line: accounts and tokens managed on a stopped server's store, a clear refusal while a server
//! holds the store, and a graceful stop on SIGTERM.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use usersync::app;
use usersync::clock::SystemClock;
use usersync::store::DurabilityMode;

use crate::crash::start_binary;
use crate::helpers::*;

pub(crate) fn usersync(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_usersync"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn users(client: &reqwest::blocking::Client, addr: &str, token: &str) -> reqwest::blocking::Response {
    client.get(format!("http://{addr}/scim/v2/Users")).bearer_auth(token).send().unwrap()
}

#[test]
fn accounts_and_tokens_are_managed_on_a_stopped_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    assert!(stdout(&usersync(&data, &["account", "create", "acme"])).contains("created account 'acme'"));
    let created = stdout(&usersync(
        &data,
        &["token", "create", "--account", "acme", "--kind", "scim", "--name", "okta"],
    ));
    let secret = created.lines().last().unwrap().trim().to_string();
    let listed = stdout(&usersync(&data, &["token", "list", "--account", "acme"]));
    let row = listed.lines().find(|l| l.contains("\tacme\tscim\tokta\t")).expect("the token is listed");
    assert!(!listed.contains(&secret), "a listing never shows a secret");
    let token_id = row.split('\t').next().unwrap().to_string();

    let (mut server, addr) = start_binary(&data);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let res = client
        .post(format!("http://{addr}/scim/v2/Users"))
        .bearer_auth(&secret)
        .body(json!({"userName": "cli@acme.example"}).to_string())
        .send()
        .unwrap();
    expect_status(res, StatusCode::CREATED);
    let seen = expect_status(users(&client, &addr, SCIM_TOKEN), StatusCode::OK);
    assert_eq!(seen["totalResults"], json!(0), "the default account does not see acme's user");

    let refused = usersync(&data, &["token", "list"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("held by a running usersync server"), "{why}");

    // SIGTERM: requests in flight finish, the store is flushed and released, the exit is clean.
    let pid = server.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(server.wait().unwrap().success(), "a SIGTERM is a clean stop");

    let revoked = stdout(&usersync(&data, &["token", "revoke", "--account", "acme", &token_id]));
    assert!(revoked.contains("revoked scim token 'okta'"), "{revoked}");
    let another = stdout(&usersync(
        &data,
        &["token", "create", "--account", "acme", "--kind", "scim", "--name", "new"],
    ));
    let another = another.lines().last().unwrap().trim().to_string();

    let (mut server, addr) = start_binary(&data);
    expect_error(users(&client, &addr, &secret), StatusCode::UNAUTHORIZED);
    let kept = expect_status(users(&client, &addr, &another), StatusCode::OK);
    assert_eq!(kept["Resources"][0]["userName"], json!("cli@acme.example"), "the write survived the stop");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_first_start_after_account_create_still_prints_a_way_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    stdout(&usersync(&data, &["account", "create", "acme"]));
    let store =
        app::open_store(&data, DurabilityMode::Flush, std::sync::Arc::new(SystemClock)).expect("store opens");
    let created = app::bootstrap(&store, &app::Settings::new(&data)).unwrap();
    assert_eq!(created.len(), 2, "a SCIM and an admin token for account default");
    assert!(store.account(app::DEFAULT_ACCOUNT).unwrap().is_some());
    assert!(app::bootstrap(&store, &app::Settings::new(&data)).unwrap().is_empty(), "only once");
}
