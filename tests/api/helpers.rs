//! Starts the real server on port 0 with a temporary data directory and talks to it over HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use usersync::app::{self, Settings};
use usersync::clock::{Clock, SystemClock};
use usersync::store::{Actor, DurabilityMode, Store, TokenKind};

pub const SCIM_TOKEN: &str = "scim-test-token-0123456789abcdef0123";
pub const ADMIN_TOKEN: &str = "admin-test-token-0123456789abcdef012";

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// The SCIM base URL, `http://127.0.0.1:PORT/scim/v2`.
    pub base: String,
    pub token: String,
    pub admin_token: String,
    pub store: Store,
    pub client: Client,
    pub data: PathBuf,
    handle: Option<ServerHandle>,
    thread: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

pub fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut app = spawn_app_in(dir.path());
    app._dir = Some(dir);
    app
}

/// Starts a server on an existing data directory (for restart tests).
pub fn spawn_app_in(data: &Path) -> TestApp {
    spawn_with(test_settings(data))
}

/// What test servers run with: port 0, flushed writes, the test tokens.
pub fn test_settings(data: &Path) -> Settings {
    let mut settings = Settings::new(data);
    settings.listen = "127.0.0.1:0".into();
    settings.durability = DurabilityMode::Flush;
    settings.scim_token = Some(SCIM_TOKEN.into());
    settings.admin_token = Some(ADMIN_TOKEN.into());
    settings
}

/// Starts a server in a fresh temporary directory, its settings changed by `adjust`.
pub fn spawn_app_adjusted(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(dir.path());
    adjust(&mut settings);
    let mut app = spawn_with(settings);
    app._dir = Some(dir);
    app
}

pub fn spawn_with(settings: Settings) -> TestApp {
    spawn_with_clock(settings, Arc::new(SystemClock))
}

/// Starts a server whose store reads time from `clock` (for expiry tests).
pub fn spawn_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> TestApp {
    let data = settings.data.clone();
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            // A server stopped in this process may still be releasing the store's file lock.
            let mut tries = 0;
            let running = loop {
                match app::start_with_clock(&settings, clock.clone()) {
                    Ok(running) => break running,
                    Err(e) if e.to_string().contains("in use") && tries < 200 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => panic!("server does not start: {e}"),
                }
            };
            tx.send((running.addr, running.server.handle(), running.store.clone())).expect("test is waiting");
            running.server.await.expect("server runs");
            running.engine.stop();
            running.webhooks.stop();
            if let Some(socket) = running.socket {
                socket.stop();
            }
            running.mail.stop();
            running.store.shutdown();
        })
    });
    let (addr, handle, store) = rx.recv_timeout(Duration::from_secs(30)).expect("server started");
    TestApp {
        addr,
        base: format!("http://{addr}/scim/v2"),
        token: SCIM_TOKEN.into(),
        admin_token: ADMIN_TOKEN.into(),
        store,
        client: Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
        data,
        handle: Some(handle),
        thread: Some(thread),
        _dir: None,
    }
}

impl TestApp {
    /// Stops the server and waits until its store is closed; the data directory stays.
    pub fn stop(mut self) -> Option<tempfile::TempDir> {
        self.shutdown();
        self._dir.take()
    }

    fn shutdown(&mut self) {
        if let Some(handle) = self.handle.take() {
            actix_web::rt::System::new().block_on(handle.stop(true));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base) }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(&self.token)
    }

    pub fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().expect("GET")
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        self.send(Method::POST, path, body)
    }

    pub fn put(&self, path: &str, body: &Value) -> Response {
        self.send(Method::PUT, path, body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> Response {
        self.send(Method::PATCH, path, body)
    }

    pub fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path).send().expect("DELETE")
    }

    pub fn send(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
            .send()
            .expect("request")
    }

    /// Creates a user from a body and returns the created resource.
    pub fn create_user(&self, body: &Value) -> Value {
        let res = self.post("/Users", body);
        expect_status(res, StatusCode::CREATED)
    }

    pub fn create_group(&self, name: &str) -> Value {
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name});
        expect_status(self.post("/Groups", &body), StatusCode::CREATED)
    }

    /// A second account with its own tokens.
    pub fn new_account(&self, name: &str) -> (String, String) {
        let account = self.store.create_account(name).expect("account");
        let (_, scim) =
            self.store.create_token(account.id, TokenKind::Scim, "test", &Actor::engine()).expect("token");
        let (_, admin) =
            self.store.create_token(account.id, TokenKind::Admin, "test", &Actor::engine()).expect("token");
        (scim, admin)
    }

    /// The same server, seen with another SCIM token.
    pub fn as_token(&self, token: &str) -> TestApp {
        self.as_account(token, &self.admin_token)
    }

    /// The same server, seen with another account's SCIM and admin tokens.
    pub fn as_account(&self, scim: &str, admin: &str) -> TestApp {
        TestApp {
            addr: self.addr,
            base: self.base.clone(),
            token: scim.to_string(),
            admin_token: admin.to_string(),
            store: self.store.clone(),
            client: self.client.clone(),
            data: self.data.clone(),
            handle: None,
            thread: None,
            _dir: None,
        }
    }

    /// Ids of the members of a group, sorted.
    pub fn member_ids(&self, gid: &str) -> Vec<String> {
        let group = expect_status(self.get(&format!("/Groups/{gid}")), StatusCode::OK);
        let mut ids: Vec<String> = group["members"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["value"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }
}

impl TestApp {
    /// An admin API request with this app's admin token.
    pub fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        let mut req = self
            .client
            .request(method, format!("http://{}/admin/v1{path}", self.addr))
            .bearer_auth(&self.admin_token);
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body.to_string());
        }
        req.send().expect("admin request")
    }

    /// An admin API request that must answer `want`; its JSON body.
    #[track_caller]
    pub fn admin_ok(&self, method: Method, path: &str, body: Option<&Value>, want: StatusCode) -> Value {
        expect_status(self.admin(method, path, body), want)
    }

    /// Waits until the engine has evaluated everything pending.
    pub fn settle(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let sync = self.admin_ok(Method::GET, "/sync", None, StatusCode::OK);
            if sync["pending"] == json!(0) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the engine did not settle: {sync}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Adds users to a group over SCIM.
    pub fn add_members(&self, gid: &str, uids: &[&str]) {
        let value: Vec<Value> = uids.iter().map(|u| json!({"value": u})).collect();
        let body = json!({"Operations": [{"op": "add", "path": "members", "value": value}]});
        expect_status(self.patch(&format!("/Groups/{gid}"), &body), StatusCode::NO_CONTENT);
    }

    pub fn remove_member(&self, gid: &str, uid: &str) {
        let body = json!({"Operations": [{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]});
        expect_status(self.patch(&format!("/Groups/{gid}"), &body), StatusCode::NO_CONTENT);
    }

    /// The user's entitlements as the admin API explains them.
    pub fn entitlements(&self, uid: &str) -> Value {
        self.admin_ok(Method::GET, &format!("/users/{uid}/entitlements"), None, StatusCode::OK)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Asserts the status and returns the JSON body (Null when empty).
#[track_caller]
pub fn expect_status(res: Response, want: StatusCode) -> Value {
    let status = res.status();
    let text = res.text().unwrap_or_default();
    assert_eq!(status, want, "unexpected status; body: {text}");
    if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") }
}

/// Asserts an error status with a SCIM Error body and returns it.
#[track_caller]
pub fn expect_error(res: Response, want: StatusCode) -> Value {
    let body = expect_status(res, want);
    assert_eq!(body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]), "{body}");
    assert_eq!(body["status"], json!(want.as_u16().to_string()), "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    body
}

pub fn id(resource: &Value) -> String {
    resource["id"].as_str().expect("resource has an id").to_string()
}

/// URL-encodes a filter for a query string.
pub fn q(filter: &str) -> String {
    let mut out = String::new();
    for b in filter.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Posts the console's sign-in form with `token` (the form's CSRF token and cookie read first), with a
/// client that follows no redirect; the answer is the sign-in's.
pub fn console_sign_in(client: &Client, app: &TestApp, token: &str) -> Response {
    let base = format!("http://{}", app.addr);
    let res = client.get(format!("{base}/console/signin")).send().unwrap();
    let jar = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let body = res.text().unwrap();
    let csrf = body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    client
        .post(format!("{base}/console/signin"))
        .header("Cookie", &jar)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}&token={}&next=%2Fconsole%2F", q(&csrf), q(token)))
        .send()
        .unwrap()
}

/// Runs `openssl` with `args` in `dir`; its absence fails the test in CI and skips it elsewhere.
pub fn openssl(dir: &Path, args: &[&str]) -> bool {
    match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) => {
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            true
        }
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "openssl is needed in CI: {e}");
            eprintln!("skipped: the openssl command is not available ({e})");
            false
        }
    }
}

/// Makes `leaf.pem` / `leaf.key` in `dir`: a new key and a certificate for 127.0.0.1 signed by the CA
/// `ca.pem` (made first if missing), which is not itself the server's certificate (rustls refuses a CA
/// used as the server's own). `false` when there is no openssl command outside CI (the test is skipped).
pub fn make_test_leaf(dir: &Path, serial: &str) -> bool {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    if !dir.join("ca.pem").exists() {
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=usersync test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        if !openssl(dir, &args) {
            return false;
        }
    }
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend(["-keyout", "new.key", "-out", "new.csr", "-subj", "/CN=127.0.0.1"]);
    let made = openssl(dir, &args)
        && openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "new.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                serial,
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
                "-out",
                "new.pem",
            ],
        );
    // Replaced as an operator would: each file renamed into place whole.
    std::fs::rename(dir.join("new.pem"), dir.join("leaf.pem")).unwrap();
    std::fs::rename(dir.join("new.key"), dir.join("leaf.key")).unwrap();
    made
}
