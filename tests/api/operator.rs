//! The operator API against the real server: accounts created, listed, suspended, resumed and deleted
//! while two other accounts keep writing; token expiry and rotation without downtime; the CLI through
//! `--url`.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use reqwest::Method;
use reqwest::StatusCode;
use reqwest::blocking::Response;
use serde_json::{Value, json};

use usersync::app::Settings;
use usersync::clock::ManualClock;
use usersync::store::DurabilityMode;
use usersync::store::keys::{account_of, is_account_scoped, kind};

use crate::helpers::*;

const OPERATOR_TOKEN: &str = "operator-test-token-0123456789abcdef";

fn operated_settings(data: &std::path::Path) -> Settings {
    let mut settings = Settings::new(data);
    settings.listen = "127.0.0.1:0".into();
    settings.durability = DurabilityMode::Flush;
    settings.scim_token = Some(SCIM_TOKEN.into());
    settings.admin_token = Some(ADMIN_TOKEN.into());
    settings.operator_token = Some(OPERATOR_TOKEN.into());
    settings
}

/// A server with the operator API enabled, and its data directory.
fn spawn_operated() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (spawn_with(operated_settings(dir.path())), dir)
}

fn op(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> Response {
    let mut req = app
        .client
        .request(method, format!("http://{}/operator/v1{path}", app.addr))
        .bearer_auth(OPERATOR_TOKEN);
    if let Some(body) = body {
        req = req.header("Content-Type", "application/json").body(body.to_string());
    }
    req.send().unwrap()
}

#[track_caller]
fn op_ok(app: &TestApp, method: Method, path: &str, body: Option<&Value>, want: StatusCode) -> Value {
    expect_status(op(app, method, path, body), want)
}

/// Creates an account through the operator API: its id and the app seen with its tokens.
fn create(app: &TestApp, name: &str) -> (u64, TestApp) {
    let created = op_ok(app, Method::POST, "/accounts", Some(&json!({"name": name})), StatusCode::CREATED);
    assert_eq!(created["scimBaseUrl"], json!(app.base), "{created}");
    let scim = created["scimToken"]["secret"].as_str().unwrap();
    let admin = created["adminToken"]["secret"].as_str().unwrap();
    (created["id"].as_u64().unwrap(), app.as_account(scim, admin))
}

/// Threads creating users with the tokens until stopped; each returns what it wrote and every error.
struct Writers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<(usize, Vec<String>)>>,
}

impl Writers {
    /// Two threads per token; a token is read again before every request, so it can be rotated.
    fn start(app: &TestApp, tokens: &[Arc<Mutex<String>>]) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (t, token) in tokens.iter().enumerate() {
            for w in 0..2 {
                let (stop, token, client, base) =
                    (stop.clone(), token.clone(), app.client.clone(), app.base.clone());
                threads.push(std::thread::spawn(move || {
                    let (mut written, mut errors) = (0, Vec::new());
                    while !stop.load(Ordering::SeqCst) {
                        let secret = token.lock().unwrap().clone();
                        let body = json!({"userName": format!("w{t}-{w}-{written}@writers.example")});
                        match client
                            .post(format!("{base}/Users"))
                            .bearer_auth(&secret)
                            .body(body.to_string())
                            .send()
                        {
                            Ok(res) if res.status() == StatusCode::CREATED => written += 1,
                            Ok(res) => {
                                errors.push(format!("{}: {}", res.status(), res.text().unwrap_or_default()))
                            }
                            Err(e) => errors.push(e.to_string()),
                        }
                    }
                    (written, errors)
                }));
            }
        }
        Writers { stop, threads }
    }

    /// Stops them and returns how many users they wrote; fails on any error.
    fn finish(self) -> usize {
        let (total, errors) = self.finish_with_errors();
        assert!(errors.is_empty(), "writes failed: {errors:?}");
        total
    }

    /// Stops them; how many users they wrote, and the errors.
    fn finish_with_errors(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let (mut total, mut all) = (0, Vec::new());
        for t in self.threads {
            let (written, errors) = t.join().unwrap();
            assert!(written > 0, "every writer wrote");
            total += written;
            all.extend(errors);
        }
        (total, all)
    }
}

fn shared(token: &str) -> Arc<Mutex<String>> {
    Arc::new(Mutex::new(token.to_string()))
}

/// Gives the account a product, a group granting it, sync on, and a member `login`; its id.
fn entitle(app: &TestApp, login: &str) -> String {
    let product = json!({"name": "meeting", "seats": null, "requires": []});
    assert!(app.admin(Method::PUT, "/products/meeting", Some(&product)).status().is_success());
    let g = id(&app.create_group("Staff"));
    app.admin_ok(
        Method::POST,
        "/rules",
        Some(&json!({"group": g, "products": ["meeting"]})),
        StatusCode::CREATED,
    );
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": true})), StatusCode::OK);
    let uid = id(&app.create_user(&json!({"userName": login})));
    app.add_members(&g, &[&uid]);
    app.settle();
    uid
}

#[test]
fn accounts_are_created_listed_suspended_resumed_and_deleted_while_others_write() {
    let (app, _dir) = spawn_operated();
    let anonymous = app.client.get(format!("http://{}/operator/v1/accounts", app.addr)).send().unwrap();
    assert_eq!(expect_status(anonymous, StatusCode::UNAUTHORIZED)["error"], json!("unauthorized"));
    let wrong = app.client.get(format!("http://{}/operator/v1/accounts", app.addr)).bearer_auth(ADMIN_TOKEN);
    expect_status(wrong.send().unwrap(), StatusCode::UNAUTHORIZED);

    let (_, a) = create(&app, "a");
    let (_, b) = create(&app, "b");
    let writers = Writers::start(&app, &[shared(&a.token), shared(&b.token)]);

    let (c_id, c) = create(&app, "c");
    let held = entitle(&c, "shared@example.com");
    assert_eq!(c.entitlements(&held)["state"], json!("entitled"));
    let (d_id, d) = create(&app, "d");
    let waiting = entitle(&d, "SHARED@example.com");
    assert_eq!(d.entitlements(&waiting)["failure"]["reason"], json!("existingAccount"));

    let listed = op_ok(&app, Method::GET, "/accounts", None, StatusCode::OK);
    assert_eq!(listed["totalResults"], json!(5), "default, a, b, c and d: {listed}");
    let view = |list: &Value, id: u64| {
        list["Resources"].as_array().unwrap().iter().find(|r| r["id"] == id).cloned().unwrap()
    };
    let figures = view(&listed, c_id)["figures"].clone();
    assert_eq!(
        (&figures["users"], &figures["groups"], &figures["entitledUsers"], &figures["failures"]),
        (&json!(1), &json!(1), &json!(1), &json!(0)),
        "{figures}"
    );
    assert!(
        figures["lastScimRequest"].as_str().is_some_and(|t| t.len() == "2026-12-02T04:58Z".len()),
        "{figures}"
    );
    assert_eq!(view(&listed, d_id)["figures"]["failures"], json!(1));
    let page = op_ok(&app, Method::GET, "/accounts?startIndex=2&count=2", None, StatusCode::OK);
    assert_eq!((page["totalResults"].clone(), page["itemsPerPage"].clone()), (json!(5), json!(2)));
    let named = op_ok(&app, Method::GET, "/accounts?name=c", None, StatusCode::OK);
    assert_eq!(named["Resources"][0]["id"], json!(c_id));
    let one = op_ok(&app, Method::GET, &format!("/accounts/{c_id}"), None, StatusCode::OK);
    assert_eq!((one["name"].clone(), one["status"].clone()), (json!("c"), json!("active")));
    op_ok(&app, Method::GET, "/accounts/999", None, StatusCode::NOT_FOUND);
    let taken = op(&app, Method::POST, "/accounts", Some(&json!({"name": "c"})));
    expect_status(taken, StatusCode::CONFLICT);
    let unknown = op(&app, Method::POST, "/accounts", Some(&json!({"name": "e", "plan": "gold"})));
    assert!(expect_status(unknown, StatusCode::BAD_REQUEST)["message"].as_str().unwrap().contains("plan"));

    // suspended: SCIM and admin refuse with 403 in their own bodies; resumed: the data is all there
    let suspended = op_ok(&app, Method::POST, &format!("/accounts/{c_id}/suspend"), None, StatusCode::OK);
    assert_eq!(suspended["status"], json!("suspended"));
    let refused = expect_error(c.get("/Users"), StatusCode::FORBIDDEN);
    assert!(refused["detail"].as_str().unwrap().contains("'c' is suspended"), "{refused}");
    let refused = c.admin_ok(Method::GET, "/sync", None, StatusCode::FORBIDDEN);
    assert_eq!(refused["error"], json!("forbidden"));
    assert!(refused["message"].as_str().unwrap().contains("suspended"), "{refused}");
    expect_status(a.get("/Users?count=1"), StatusCode::OK);
    let resumed = op_ok(&app, Method::POST, &format!("/accounts/{c_id}/resume"), None, StatusCode::OK);
    assert_eq!((resumed["status"].clone(), resumed["suspendedAt"].clone()), (json!("active"), Value::Null));
    assert_eq!(expect_status(c.get("/Users"), StatusCode::OK)["totalResults"], json!(1));
    assert_eq!(c.entitlements(&held)["state"], json!("entitled"));

    // the operator manages the account's tokens
    let extra = op_ok(
        &app,
        Method::POST,
        &format!("/accounts/{c_id}/tokens"),
        Some(&json!({"name": "okta", "kind": "scim"})),
        StatusCode::CREATED,
    );
    let tokens = op_ok(&app, Method::GET, &format!("/accounts/{c_id}/tokens"), None, StatusCode::OK);
    assert_eq!(tokens["totalResults"], json!(3), "initial scim and admin, and okta: {tokens}");
    expect_status(c.as_token(extra["secret"].as_str().unwrap()).get("/Users"), StatusCode::OK);

    // deletion needs its confirmation
    for path in [format!("/accounts/{c_id}"), format!("/accounts/{c_id}?confirm={d_id}")] {
        let refused = expect_status(op(&app, Method::DELETE, &path, None), StatusCode::BAD_REQUEST);
        assert!(refused["message"].as_str().unwrap().contains("confirm"), "{refused}");
    }
    expect_status(c.get("/Users"), StatusCode::OK);
    op_ok(&app, Method::DELETE, &format!("/accounts/{c_id}?confirm={c_id}"), None, StatusCode::NO_CONTENT);
    expect_error(c.get("/Users"), StatusCode::UNAUTHORIZED);
    op_ok(&app, Method::GET, &format!("/accounts/{c_id}"), None, StatusCode::NOT_FOUND);
    assert_eq!(op_ok(&app, Method::GET, "/accounts", None, StatusCode::OK)["totalResults"], json!(4));

    // the engine hands the login the deleted account held to the user waiting for it
    d.settle();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while d.entitlements(&waiting)["state"] != json!("entitled") {
        assert!(std::time::Instant::now() < deadline, "{}", d.entitlements(&waiting));
        std::thread::sleep(Duration::from_millis(20));
    }

    let written = writers.finish();
    let users = |t: &TestApp| {
        expect_status(t.get("/Users?count=0"), StatusCode::OK)["totalResults"].as_u64().unwrap()
    };
    assert_eq!(users(&a) + users(&b), written as u64, "every acknowledged write is there");

    assert_eq!(app.store.verify().unwrap(), Vec::<String>::new(), "the store is consistent");
    // not one key of the deleted account is left, not even in the server-wide indexes
    let c_id = u32::try_from(c_id).unwrap();
    for (key, value) in app.store.scan_raw().unwrap() {
        if is_account_scoped(key[0]) {
            assert_ne!(account_of(&key).map(|a| a.0), Some(c_id), "a key of the deleted account: {key:?}");
        } else if [kind::TOKEN, kind::LOGIN].contains(&key[0]) {
            let record: Value = serde_json::from_slice(&value).unwrap();
            assert_ne!(record["account"], json!(c_id), "{record}");
            assert!(
                !record.to_string().contains(&format!("[{c_id},")),
                "a waiter of the deleted account: {record}"
            );
        } else if key[0] == kind::ACCOUNT_BY_NAME {
            assert_ne!(&key[1..], b"c");
        }
    }
}

#[test]
fn without_an_operator_token_the_operator_api_is_not_served() {
    let app = spawn_app();
    let res = app
        .client
        .get(format!("http://{}/operator/v1/accounts", app.addr))
        .bearer_auth("anything-at-all-0123456789abcdef01")
        .send()
        .unwrap();
    let body = expect_status(res, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("USERSYNC_OPERATOR_TOKEN"), "{body}");
}

#[test]
fn tokens_expire_and_rotate_without_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let start = chrono::Utc::now();
    let clock = Arc::new(ManualClock::new(start));
    let app = spawn_with_clock(operated_settings(dir.path()), clock.clone());
    let at = |d: chrono::Duration| usersync::clock::timestamp(start + d);

    // expiry, through the admin API's own token endpoints
    let body = json!({"name": "short", "kind": "scim", "expiresAt": at(chrono::Duration::hours(1))});
    let short = app.admin_ok(Method::POST, "/tokens", Some(&body), StatusCode::CREATED);
    assert_eq!(short["expiresAt"], json!(at(chrono::Duration::hours(1))));
    let short_app = app.as_token(short["secret"].as_str().unwrap());
    expect_status(short_app.get("/Users"), StatusCode::OK);
    let listed = app.admin_ok(Method::GET, "/tokens", None, StatusCode::OK);
    let row = listed["Resources"].as_array().unwrap().iter().find(|t| t["name"] == "short").unwrap().clone();
    assert_eq!(row["expiresAt"], short["expiresAt"]);
    clock.advance(chrono::Duration::hours(2));
    let expired = expect_error(short_app.get("/Users"), StatusCode::UNAUTHORIZED);
    assert_eq!(expired["detail"], json!("token expired"));
    expect_status(app.get("/Users"), StatusCode::OK);
    let past = json!({"name": "past", "kind": "scim", "expiresAt": at(chrono::Duration::minutes(30))});
    let refused = app.admin_ok(Method::POST, "/tokens", Some(&past), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused["errors"][0]["field"], json!("expiresAt"), "{refused}");
    let garbled = json!({"name": "x", "kind": "scim", "expiresAt": "tomorrow"});
    let refused = app.admin_ok(Method::POST, "/tokens", Some(&garbled), StatusCode::BAD_REQUEST);
    assert_eq!(refused["errors"][0]["field"], json!("expiresAt"), "{refused}");

    // and through the operator API, for an admin token
    let (id, acct) = create(&app, "rotating");
    let body = json!({"name": "temp", "kind": "admin", "expiresAt": at(chrono::Duration::hours(3))});
    let temp = op_ok(&app, Method::POST, &format!("/accounts/{id}/tokens"), Some(&body), StatusCode::CREATED);
    let temp_app = acct.as_account(&acct.token, temp["secret"].as_str().unwrap());
    temp_app.admin_ok(Method::GET, "/sync", None, StatusCode::OK);
    clock.advance(chrono::Duration::hours(2));
    let expired = temp_app.admin_ok(Method::GET, "/sync", None, StatusCode::UNAUTHORIZED);
    assert_eq!(expired["message"], json!("token expired"));

    // rotation: a new token works at once, the old one until it is revoked; the writers see no error
    let current = shared(&acct.token);
    let writers = Writers::start(&app, std::slice::from_ref(&current));
    std::thread::sleep(Duration::from_millis(200));
    let tokens = op_ok(&app, Method::GET, &format!("/accounts/{id}/tokens"), None, StatusCode::OK);
    let old_id =
        tokens["Resources"].as_array().unwrap().iter().find(|t| t["kind"] == "scim").unwrap()["id"].clone();
    let body = json!({"name": "next", "kind": "scim"});
    let next = op_ok(&app, Method::POST, &format!("/accounts/{id}/tokens"), Some(&body), StatusCode::CREATED);
    let next_secret = next["secret"].as_str().unwrap().to_string();
    expect_status(acct.as_token(&next_secret).get("/Users?count=1"), StatusCode::OK);
    *current.lock().unwrap() = next_secret.clone();
    std::thread::sleep(Duration::from_millis(200));
    expect_status(acct.get("/Users?count=1"), StatusCode::OK);
    let path = format!("/accounts/{id}/tokens/{}", old_id.as_str().unwrap());
    op_ok(&app, Method::DELETE, &path, None, StatusCode::NO_CONTENT);
    expect_error(acct.get("/Users"), StatusCode::UNAUTHORIZED);
    std::thread::sleep(Duration::from_millis(200));
    let written = writers.finish();
    let total = expect_status(acct.as_token(&next_secret).get("/Users?count=0"), StatusCode::OK);
    assert_eq!(total["totalResults"], json!(written));
}

fn cli(app: &TestApp, args: &[&str], token: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_usersync"));
    cmd.arg("--data").arg(&app.data).args(args).args(["--url", &format!("http://{}", app.addr)]);
    cmd.env_remove("USERSYNC_OPERATOR_TOKEN").env("RUST_LOG", "warn");
    if let Some(token) = token {
        cmd.env("USERSYNC_OPERATOR_TOKEN", token);
    }
    cmd.output().unwrap()
}

fn out(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_cli_manages_accounts_and_tokens_through_a_running_server() {
    let (app, _dir) = spawn_operated();
    let t = Some(OPERATOR_TOKEN);
    // the data directory is the running server's: with --url the CLI never opens it
    let created = out(&cli(&app, &["account", "create", "acme"], t));
    assert!(created.starts_with("created account 'acme' (id 2)"), "{created}");
    let scim = created.lines().find_map(|l| l.trim().strip_prefix("scim token: ")).unwrap().to_string();
    let acme = app.as_token(&scim);
    expect_status(acme.post("/Users", &json!({"userName": "cli@acme.example"})), StatusCode::CREATED);
    let listed = out(&cli(&app, &["account", "list"], t));
    assert!(listed.lines().any(|l| l.starts_with("2\tacme\t") && l.ends_with("\tactive")), "{listed}");

    let made = out(&cli(
        &app,
        &[
            "token",
            "create",
            "--account",
            "acme",
            "--kind",
            "scim",
            "--name",
            "ci",
            "--expires-at",
            "2099-01-01T00:00:00Z",
        ],
        t,
    ));
    let secret = made.lines().last().unwrap().trim().to_string();
    expect_status(app.as_token(&secret).get("/Users"), StatusCode::OK);
    let tokens = out(&cli(&app, &["token", "list", "--account", "acme"], t));
    let row = tokens.lines().find(|l| l.contains("\tacme\tscim\tci\t")).expect("listed");
    assert!(row.ends_with("\t2099-01-01T00:00:00.000Z"), "{row}");
    assert!(!tokens.contains(&secret));
    let token_id = row.split('\t').next().unwrap();
    let revoked = out(&cli(&app, &["token", "revoke", "--account", "acme", token_id], t));
    assert!(revoked.contains("revoked scim token 'ci'"), "{revoked}");
    expect_error(app.as_token(&secret).get("/Users"), StatusCode::UNAUTHORIZED);

    out(&cli(&app, &["account", "suspend", "acme"], t));
    expect_error(acme.get("/Users"), StatusCode::FORBIDDEN);
    out(&cli(&app, &["account", "resume", "acme"], t));
    assert_eq!(expect_status(acme.get("/Users"), StatusCode::OK)["totalResults"], json!(1));

    let unconfirmed = cli(&app, &["account", "delete", "acme", "--confirm", "other"], t);
    assert!(!unconfirmed.status.success());
    expect_status(acme.get("/Users"), StatusCode::OK);
    out(&cli(&app, &["account", "delete", "acme", "--confirm", "acme"], t));
    expect_error(acme.get("/Users"), StatusCode::UNAUTHORIZED);
    assert!(!out(&cli(&app, &["account", "list"], t)).contains("acme"));

    let anonymous = cli(&app, &["account", "list"], None);
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("USERSYNC_OPERATOR_TOKEN"));
    let wrong = cli(&app, &["account", "list"], Some("wrong-operator-token-0123456789abcdef"));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
}

/// A command on the stopped store (a server stopped in this process may still be releasing its lock).
fn offline(data: &std::path::Path, args: &[&str]) -> String {
    for _ in 0..100 {
        let output = Command::new(env!("CARGO_BIN_EXE_usersync"))
            .arg("--data")
            .arg(data)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        if !String::from_utf8_lossy(&output.stderr).contains("held by a running usersync server") {
            return out(&output);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the store stayed locked");
}

#[test]
fn suspend_resume_and_delete_also_work_on_a_stopped_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    offline(&data, &["account", "create", "acme"]);
    let made = offline(&data, &["token", "create", "--account", "acme", "--kind", "scim", "--name", "okta"]);
    let secret = made.lines().last().unwrap().trim().to_string();
    assert!(offline(&data, &["account", "suspend", "acme"]).contains("suspended account 'acme'"));
    assert!(
        offline(&data, &["account", "list"])
            .lines()
            .any(|l| l.starts_with("1\tacme\t") && l.ends_with("\tsuspended"))
    );
    {
        let app = spawn_app_in(&data);
        let refused = expect_error(app.as_token(&secret).get("/Users"), StatusCode::FORBIDDEN);
        assert!(refused["detail"].as_str().unwrap().contains("suspended"), "{refused}");
        app.stop();
    }
    offline(&data, &["account", "resume", "acme"]);
    {
        let app = spawn_app_in(&data);
        expect_status(
            app.as_token(&secret).post("/Users", &json!({"userName": "x@acme.example"})),
            StatusCode::CREATED,
        );
        app.stop();
    }
    assert!(
        offline(&data, &["account", "delete", "acme", "--confirm", "acme"])
            .contains("deleted account 'acme'")
    );
    assert!(!offline(&data, &["account", "list"]).contains("acme"));
    let app = spawn_app_in(&data);
    expect_error(app.as_token(&secret).get("/Users"), StatusCode::UNAUTHORIZED);
}

#[test]
fn the_operator_token_can_come_from_a_file_but_not_from_both_places() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("operator-token");
    std::fs::write(&file, format!("{OPERATOR_TOKEN}\n")).unwrap();
    let serve = |env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_usersync"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("store"))
            .arg("--operator-token-file")
            .arg(&file)
            .env_remove("USERSYNC_OPERATOR_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(token) = env {
            cmd.env("USERSYNC_OPERATOR_TOKEN", token);
        }
        cmd.spawn().unwrap()
    };
    let both = serve(Some(OPERATOR_TOKEN)).wait_with_output().unwrap();
    assert!(!both.status.success());
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("not both"),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );

    let mut server = serve(None);
    let lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let addr = lines
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("usersync listening on http://")
                .map(|r| r.split_whitespace().next().unwrap().to_string())
        })
        .expect("the server starts");
    let client = reqwest::blocking::Client::new();
    let listed =
        client.get(format!("http://{addr}/operator/v1/accounts")).bearer_auth(OPERATOR_TOKEN).send().unwrap();
    assert_eq!(expect_status(listed, StatusCode::OK)["totalResults"], json!(1));
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn an_account_deleted_under_its_own_writes_keeps_no_key() {
    let (app, _dir) = spawn_operated();
    let (id, doomed) = create(&app, "doomed");
    let (_, other) = create(&app, "other");
    let writers = Writers::start(&app, &[shared(&doomed.token)]);
    let bystanders = Writers::start(&app, &[shared(&other.token)]);
    std::thread::sleep(Duration::from_millis(300));
    op_ok(&app, Method::DELETE, &format!("/accounts/{id}?confirm={id}"), None, StatusCode::NO_CONTENT);
    std::thread::sleep(Duration::from_millis(100));
    let (_, errors) = writers.finish_with_errors();
    assert!(!errors.is_empty(), "the writers went on after the deletion");
    for e in &errors {
        assert!(e.starts_with("401") || e.starts_with("404"), "a write of the deleted account: {e}");
    }
    bystanders.finish();
    let id = u32::try_from(id).unwrap();
    let left = app
        .store
        .scan_raw()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| is_account_scoped(k[0]) && account_of(k).map(|a| a.0) == Some(id))
        .count();
    assert_eq!(left, 0, "keys written by requests that raced the deletion");
    assert_eq!(app.store.verify().unwrap(), Vec::<String>::new());
}

/// The console's sign-in answer for a token: (status, page).
fn console_sign_in(app: &TestApp, token: &str) -> (StatusCode, String) {
    let client =
        reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = crate::helpers::console_sign_in(&client, app, token);
    (res.status(), res.text().unwrap())
}

/// Signing in to the console with an expired token or one of a suspended account says which it is.
#[test]
fn the_console_says_why_an_expired_or_suspended_token_cannot_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let start = chrono::Utc::now();
    let clock = Arc::new(ManualClock::new(start));
    let app = spawn_with_clock(operated_settings(dir.path()), clock.clone());
    let at = usersync::clock::timestamp(start + chrono::Duration::hours(1));
    let body = json!({"name": "brief", "kind": "admin", "expiresAt": at});
    let brief = app.admin_ok(Method::POST, "/tokens", Some(&body), StatusCode::CREATED);
    let secret = brief["secret"].as_str().unwrap();
    assert_eq!(console_sign_in(&app, secret).0, StatusCode::SEE_OTHER, "signed in before it expires");
    clock.advance(chrono::Duration::hours(2));
    let (status, page) = console_sign_in(&app, secret);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains(&format!("This token expired at {at}; ask for a new one.")), "{page}");

    let (id, other) = create(&app, "northwind");
    op_ok(&app, Method::POST, &format!("/accounts/{id}/suspend"), None, StatusCode::OK);
    let (status, page) = console_sign_in(&app, &other.admin_token);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("The account northwind is suspended by the operator of this server"), "{page}");
    op_ok(&app, Method::POST, &format!("/accounts/{id}/resume"), None, StatusCode::OK);
    assert_eq!(console_sign_in(&app, &other.admin_token).0, StatusCode::SEE_OTHER, "resumed");
}

/// The operator sets an account's own rate limit while the server runs (bad values named), and removes it
/// again: the account is limited from its next request on, its neighbour never.
#[test]
fn the_operator_sets_and_removes_an_accounts_rate_limit() {
    let (app, _dir) = spawn_operated();
    let (id, limited) = create(&app, "flooded");
    let path = format!("/accounts/{id}/rate-limit");
    let shown = op_ok(&app, Method::GET, &path, None, StatusCode::OK);
    assert_eq!(shown["own"], json!(null), "{shown}");
    let zero = json!({"perSecond": 0, "burst": 1});
    let refused = op(&app, Method::PUT, &path, Some(&zero));
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused: Value = refused.json().unwrap();
    assert_eq!(refused["errors"][0]["field"], json!("perSecond"), "{refused}");
    let unknown = op(&app, Method::PUT, &path, Some(&json!({"perSecond": 1, "burst": 1, "brust": 2})));
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    let tight = json!({"perSecond": 1, "burst": 2});
    let set = op_ok(&app, Method::PUT, &path, Some(&tight), StatusCode::OK);
    assert_eq!(set["own"], tight, "{set}");
    let statuses: Vec<StatusCode> = (0..4).map(|_| limited.get("/Users").status()).collect();
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    for _ in 0..20 {
        expect_status(app.get("/Users"), StatusCode::OK);
    }
    op_ok(&app, Method::DELETE, &path, None, StatusCode::OK);
    for _ in 0..20 {
        expect_status(limited.get("/Users"), StatusCode::OK);
    }
}
