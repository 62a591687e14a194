//! Welcome emails over SMTP against a real mail server: Debian's aiosmtpd, started by the test with
//! STARTTLS required and AUTH, its certificate issued at test start by a CA the server is told to trust.
//! Faults are injected per recipient (a 451 or a 550 answered to RCPT). Without aiosmtpd or openssl the
//! tests say they were skipped and why; with `CI` set they fail instead.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use usersync::app::Settings;
use usersync::delivery::mail::MailConfig;
use usersync::store::DurabilityMode;

use crate::helpers::*;

const SMTP_USER: &str = "mailer";
const SMTP_PASSWORD: &str = "s3cret-pass";
const FROM: &str = "noreply@usersync.test";

/// The mail server: every accepted message is written as JSON (headers, text and HTML parts, whether
/// the session was TLS and authenticated) into the mail folder; `faults/<recipient>` holds replies to
/// give to RCPT instead of accepting, one line per attempt (`always <reply>` stays).
const SERVER: &str = r#"
import email, json, os, ssl, sys, time, uuid
from email import policy
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, certs, maildir, faults, user, password = sys.argv[1:7]
port = int(port)

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user.encode() and auth_data.password == password.encode()
    return AuthResult(success=ok, handled=False)

def fault(rcpt):
    path = os.path.join(faults, rcpt.lower())
    try:
        with open(path) as f:
            lines = [l.rstrip("\n") for l in f if l.strip()]
    except FileNotFoundError:
        return None
    if not lines:
        return None
    if lines[0].startswith("always "):
        return lines[0][len("always "):]
    with open(path, "w") as f:
        f.write("".join(l + "\n" for l in lines[1:]))
    return lines[0]

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = fault(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        qid = uuid.uuid4().hex[:12].upper()
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        parts = {}
        for part in msg.walk():
            if part.get_content_type() in ("text/plain", "text/html"):
                parts[part.get_content_type()] = part.get_content()
        sender = msg["From"].addresses[0] if msg["From"] else None
        record = {"queueId": qid, "mailFrom": envelope.mail_from, "rcptTos": envelope.rcpt_tos,
            "fromName": sender.display_name if sender else None, "fromAddress": sender.addr_spec if sender else None,
            "to": str(msg["To"]), "replyTo": str(msg["Reply-To"]) if msg["Reply-To"] else None,
            "subject": str(msg["Subject"]), "messageId": str(msg["Message-ID"]),
            "contentLanguage": str(msg["Content-Language"]) if msg["Content-Language"] else None,
            "contentType": msg.get_content_type(), "text": parts.get("text/plain"), "html": parts.get("text/html"),
            "tls": session.ssl is not None, "authenticated": bool(session.authenticated), "time": time.time()}
        tmp = os.path.join(maildir, qid + ".tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(maildir, qid + ".json"))
        return "250 2.0.0 Ok: queued as " + qid

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(os.path.join(certs, "leaf.pem"), os.path.join(certs, "leaf.key"))
controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=context,
    require_starttls=True, authenticator=authenticator, auth_require_tls=True)
controller.start()
print("ready", flush=True)
try:
    sys.stdin.read()
finally:
    controller.stop()
"#;

/// The python that has aiosmtpd: Debian's, else the first on the path.
fn python() -> Result<String, String> {
    for candidate in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(candidate.to_string());
        }
    }
    Err("no python3 with aiosmtpd (apt-get install python3-aiosmtpd)".into())
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The test's mail server.
struct MailServer {
    python: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl MailServer {
    /// Starts one, or says why it cannot (`None`; in CI that fails the test).
    fn start(test: &str) -> Option<MailServer> {
        match Self::try_start() {
            Ok(server) => Some(server),
            Err(why) if std::env::var_os("CI").is_some() => {
                panic!("{test}: the SMTP tests must run in CI, but no mail server could be started: {why}")
            }
            Err(why) => {
                eprintln!(
                    "{test}: skipped: {why}; install python3-aiosmtpd and openssl to run it (in CI it fails instead)"
                );
                None
            }
        }
    }

    fn try_start() -> Result<MailServer, String> {
        let python = python()?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        for sub in ["certs", "mail", "faults"] {
            std::fs::create_dir(dir.path().join(sub)).map_err(|e| e.to_string())?;
        }
        if !crate::helpers::make_test_leaf(&dir.path().join("certs"), "1") {
            return Err("the openssl command is not available".into());
        }
        std::fs::write(dir.path().join("server.py"), SERVER).map_err(|e| e.to_string())?;
        let mut server = MailServer { python, port: free_port(), dir, child: None };
        server.up()?;
        Ok(server)
    }

    /// Starts (again) on the same port.
    fn up(&mut self) -> Result<(), String> {
        let d = self.dir.path();
        let mut child = Command::new(&self.python)
            .arg(d.join("server.py"))
            .arg(self.port.to_string())
            .args([d.join("certs"), d.join("mail"), d.join("faults")])
            .args([SMTP_USER, SMTP_PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let ready = BufReader::new(stdout).lines().map_while(Result::ok).any(|l| l == "ready");
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            return Err("aiosmtpd did not start".into());
        }
        self.child = Some(child);
        Ok(())
    }

    /// Stops it (the port refuses connections until [`MailServer::up`]).
    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("certs").join("ca.pem")
    }

    fn url(&self) -> String {
        format!("smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// The server's configuration for usersync, retrying after `retry_min` up to `retry_max`.
    fn config(&self, retry_min: Duration, retry_max: Duration) -> MailConfig {
        let mut config = MailConfig::new(&self.url(), None, Some(FROM), Some(&self.ca())).unwrap();
        config.retry_min = retry_min;
        config.retry_max = retry_max;
        config.timeout = Duration::from_secs(5);
        config
    }

    /// Replies RCPT gives `recipient` instead of accepting, one per attempt (`always ...` stays).
    fn fault(&self, recipient: &str, replies: &[&str]) {
        let text: String = replies.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(self.dir.path().join("faults").join(recipient.to_lowercase()), text).unwrap();
    }

    fn clear_fault(&self, recipient: &str) {
        let _ = std::fs::remove_file(self.dir.path().join("faults").join(recipient.to_lowercase()));
    }

    /// Every message accepted so far, oldest first.
    fn messages(&self) -> Vec<Value> {
        let mut out: Vec<Value> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap())
            .collect();
        out.sort_by(|a: &Value, b: &Value| a["time"].as_f64().partial_cmp(&b["time"].as_f64()).unwrap());
        out
    }

    /// The messages accepted for `recipient`.
    fn messages_to(&self, recipient: &str) -> Vec<Value> {
        self.messages().into_iter().filter(|m| m["rcptTos"] == json!([recipient])).collect()
    }

    /// Waits until `n` messages in all were accepted.
    fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(Instant::now() < deadline, "{} of {n} messages arrived: {messages:?}", messages.len());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        self.down();
    }
}

/// A server sending to `mail`.
fn app_with(mail: &MailServer, retry_min: Duration, retry_max: Duration) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    settings.listen = "127.0.0.1:0".into();
    settings.durability = DurabilityMode::Flush;
    settings.scim_token = Some(SCIM_TOKEN.into());
    settings.admin_token = Some(ADMIN_TOKEN.into());
    settings.mail = Some(mail.config(retry_min, retry_max));
    (spawn_with(settings), dir)
}

/// Sync on, product `meeting`, a group and a rule granting it in `language`; the group's id.
fn setup(app: &TestApp, language: &str) -> String {
    let res = app.admin(
        Method::PUT,
        "/products/meeting",
        Some(&json!({"name": "Meeting", "seats": null, "requires": []})),
    );
    assert!(res.status().is_success(), "{}", res.text().unwrap_or_default());
    let g = id(&app.create_group("Staff"));
    let rule = json!({"group": g, "products": ["meeting"], "language": language});
    app.admin_ok(Method::POST, "/rules", Some(&rule), StatusCode::CREATED);
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": true})), StatusCode::OK);
    g
}

/// A user with a primary email, given name and display name; the user's id.
fn user(app: &TestApp, email: &str, given: &str) -> String {
    let body = json!({"userName": email, "displayName": format!("{given} Doe"), "name": {"givenName": given},
        "emails": [{"value": email, "primary": true}]});
    id(&app.create_user(&body))
}

/// The outbox entry of the message to `to`.
fn outbox_entry(app: &TestApp, to: &str) -> Value {
    let outbox = app.admin_ok(Method::GET, &format!("/outbox?to={}", q(to)), None, StatusCode::OK);
    assert_eq!(outbox["totalResults"], json!(1), "{outbox}");
    outbox["Resources"][0].clone()
}

/// Waits until the message to `to` is in `status`; its outbox entry.
fn wait_status(app: &TestApp, to: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let outbox = app.admin_ok(Method::GET, &format!("/outbox?to={}", q(to)), None, StatusCode::OK);
        let entry = outbox["Resources"][0].clone();
        if entry["status"] == json!(status) {
            assert_eq!(outbox["totalResults"], json!(1), "one message to {to}: {outbox}");
            return entry;
        }
        assert!(Instant::now() < deadline, "the message to {to} never became {status}: {entry}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_user_gaining_products_gets_one_welcome_email_in_the_rules_language() {
    let Some(mail) = MailServer::start("a_user_gaining_products_gets_one_welcome_email") else { return };
    let (app, _dir) = app_with(&mail, Duration::from_secs(60), Duration::from_secs(60));
    let settings = json!({"senderName": "Acme IT", "replyTo": "it-help@acme.test"});
    let got = app.admin_ok(Method::PUT, "/mail", Some(&settings), StatusCode::OK);
    assert_eq!(
        (&got["senderName"], &got["configured"], &got["from"]),
        (&json!("Acme IT"), &json!(true), &json!(FROM))
    );
    assert!(!got.to_string().contains(SMTP_PASSWORD), "the credentials are never shown: {got}");
    let bad = app.admin(Method::PUT, "/mail", Some(&json!({"replyTo": "not an address", "sender": "x"})));
    let bad = expect_status(bad, StatusCode::BAD_REQUEST).to_string();
    assert!(bad.contains("replyTo") && bad.contains("sender"), "both problems are named: {bad}");

    let g = setup(&app, "fr_FR");
    let jean = user(&app, "jean@example.com", "Jean");
    app.add_members(&g, &[&jean]);
    let messages = mail.wait_for(1, Duration::from_secs(20));
    let m = &messages[0];
    assert_eq!(m["rcptTos"], json!(["jean@example.com"]));
    assert_eq!((&m["fromName"], &m["fromAddress"]), (&json!("Acme IT"), &json!(FROM)), "{m}");
    assert_eq!(m["replyTo"], json!("it-help@acme.test"));
    assert_eq!(m["subject"], json!("Bienvenue, Jean"));
    assert_eq!(m["contentLanguage"], json!("fr-FR"));
    assert_eq!(m["contentType"], json!("multipart/alternative"));
    assert_eq!(
        m["text"].as_str().unwrap().replace("\r\n", "\n").trim_end(),
        "Bonjour Jean Doe,\n\nVotre compte jean@example.com est prêt."
    );
    let html = m["html"].as_str().unwrap();
    assert!(html.contains("lang=\"fr-FR\"") && html.contains("<p>Bonjour Jean Doe,</p>"), "{html}");
    assert_eq!((&m["tls"], &m["authenticated"]), (&json!(true), &json!(true)), "STARTTLS and AUTH were used");
    let entry = wait_status(&app, "jean@example.com", "sent", Duration::from_secs(5));
    assert_eq!(entry["queueId"], m["queueId"], "the outbox keeps the server's queue id: {entry}");
    assert_eq!(entry["attempts"], json!(1));
    assert!(entry["reply"].as_str().unwrap().starts_with("250"), "{entry}");

    // a changed bundle, leaving and coming back: never a second message
    app.remove_member(&g, &jean);
    app.settle();
    app.add_members(&g, &[&jean]);
    app.settle();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(mail.messages().len(), 1, "exactly one message");
    let status = app.admin_ok(Method::GET, "/sync", None, StatusCode::OK);
    assert_eq!(
        status["delivery"]["mail"],
        json!({"configured": true, "waiting": 0, "oldestWaitingSeconds": null, "deferred": 0,
            "nextAttempt": null, "failed": 0})
    );
}

#[test]
fn a_451_is_retried_and_delivered_once() {
    let Some(mail) = MailServer::start("a_451_is_retried_and_delivered_once") else { return };
    let (app, _dir) = app_with(&mail, Duration::from_millis(1500), Duration::from_secs(3));
    let g = setup(&app, "en_US");
    mail.fault("ann@example.com", &["451 4.3.0 Try again later"]);
    let ann = user(&app, "ann@example.com", "Ann");
    app.add_members(&g, &[&ann]);
    let deferred = wait_status(&app, "ann@example.com", "deferred", Duration::from_secs(20));
    assert!(deferred["reply"].as_str().unwrap().contains("451"), "{deferred}");
    assert!(deferred["nextAttempt"].is_string(), "{deferred}");
    let status = app.admin_ok(Method::GET, "/sync", None, StatusCode::OK);
    assert_eq!(
        (&status["delivery"]["mail"]["waiting"], &status["delivery"]["mail"]["deferred"]),
        (&json!(1), &json!(1))
    );
    let sent = wait_status(&app, "ann@example.com", "sent", Duration::from_secs(20));
    assert_eq!(sent["attempts"], json!(2), "{sent}");
    std::thread::sleep(Duration::from_millis(1000));
    let got = mail.messages_to("ann@example.com");
    assert_eq!(got.len(), 1, "delivered exactly once: {got:?}");
    assert_eq!(got[0]["subject"], json!("Welcome, Ann"));
    assert_eq!(sent["queueId"], got[0]["queueId"]);
}

#[test]
fn a_550_is_a_welcome_email_failure_until_retried_after_the_fix() {
    let Some(mail) = MailServer::start("a_550_is_a_welcome_email_failure") else { return };
    let (app, _dir) = app_with(&mail, Duration::from_secs(60), Duration::from_secs(60));
    let g = setup(&app, "de_DE");
    mail.fault("bo@example.com", &["always 550 5.1.1 No such user"]);
    let bo = user(&app, "bo@example.com", "Bo");
    app.add_members(&g, &[&bo]);
    let failed = wait_status(&app, "bo@example.com", "failed", Duration::from_secs(20));
    assert!(failed["reply"].as_str().unwrap().contains("550"), "{failed}");
    assert_eq!(failed["attempts"], json!(1), "a permanent failure is not retried: {failed}");

    let failures = app.admin_ok(Method::GET, "/failures", None, StatusCode::OK);
    assert_eq!(failures["totalResults"], json!(1), "{failures}");
    let f = &failures["Resources"][0];
    assert_eq!(
        (&f["id"], &f["userName"], &f["reason"]),
        (&json!(bo), &json!("bo@example.com"), &json!("welcomeEmailFailed"))
    );
    assert!(f["detail"].as_str().unwrap().contains("550 5.1.1 No such user"), "the server's reply: {f}");
    assert_eq!(failures["byReason"], json!([{"reason": "welcomeEmailFailed", "count": 1}]));
    let only = app.admin_ok(Method::GET, "/failures?reason=welcomeEmailFailed", None, StatusCode::OK);
    assert_eq!(only["totalResults"], json!(1));
    assert_eq!(
        app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["delivery"]["mail"]["failed"],
        json!(1)
    );
    let activity = app.admin_ok(Method::GET, "/activity?type=welcome-email.failed", None, StatusCode::OK);
    assert_eq!(activity["totalResults"], json!(1), "{activity}");
    std::thread::sleep(Duration::from_millis(1000));
    assert!(mail.messages().is_empty(), "nothing was delivered");
    assert_eq!(
        outbox_entry(&app, "bo@example.com")["attempts"],
        json!(1),
        "and nothing tried again by itself"
    );

    // the mailbox is fixed, the admin retries: delivered once, the failure gone
    mail.clear_fault("bo@example.com");
    let retried = app.admin_ok(
        Method::POST,
        "/failures/retry",
        Some(&json!({"reason": "welcomeEmailFailed"})),
        StatusCode::OK,
    );
    assert_eq!((&retried["retried"], &retried["welcomeEmailsQueued"]), (&json!(1), &json!(1)), "{retried}");
    let sent = wait_status(&app, "bo@example.com", "sent", Duration::from_secs(20));
    assert_eq!(sent["attempts"], json!(2));
    assert_eq!(mail.messages_to("bo@example.com").len(), 1);
    assert_eq!(mail.messages()[0]["subject"], json!("Willkommen, Bo"));
    assert_eq!(app.admin_ok(Method::GET, "/failures", None, StatusCode::OK)["totalResults"], json!(0));
}

#[test]
fn a_deleted_users_pending_message_is_cancelled() {
    let Some(mut mail) = MailServer::start("a_deleted_users_pending_message_is_cancelled") else { return };
    let (app, _dir) = app_with(&mail, Duration::from_secs(60), Duration::from_secs(60));
    let g = setup(&app, "en_US");
    mail.down();
    let cy = user(&app, "cy@example.com", "Cy");
    app.add_members(&g, &[&cy]);
    wait_status(&app, "cy@example.com", "deferred", Duration::from_secs(20));
    expect_status(app.delete(&format!("/Users/{cy}")), StatusCode::NO_CONTENT);
    app.settle();
    let entry = wait_status(&app, "cy@example.com", "cancelled", Duration::from_secs(10));
    assert_eq!(entry["userName"], json!("cy@example.com"), "the outbox still names the deleted user");
    mail.up().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(mail.messages().is_empty(), "a cancelled message is never sent");
}

#[test]
fn without_smtp_messages_stay_in_the_outbox_as_not_configured() {
    let app = spawn_app();
    let g = setup(&app, "en_US");
    let dee = user(&app, "dee@example.com", "Dee");
    app.add_members(&g, &[&dee]);
    app.settle();
    assert_eq!(outbox_entry(&app, "dee@example.com")["status"], json!("notConfigured"));
    let listed = app.admin_ok(Method::GET, "/outbox?status=notConfigured", None, StatusCode::OK);
    assert_eq!(listed["totalResults"], json!(1));
    let mail = app.admin_ok(Method::GET, "/mail", None, StatusCode::OK);
    assert_eq!((&mail["configured"], &mail["server"]), (&json!(false), &Value::Null));
    let status = app.admin_ok(Method::GET, "/sync", None, StatusCode::OK);
    assert_eq!(
        (&status["delivery"]["mail"]["configured"], &status["delivery"]["mail"]["waiting"]),
        (&json!(false), &json!(1))
    );
}

/// Starts the built binary sending to `mail`; its address.
fn start_with_mail(data: &Path, mail: &MailServer) -> (Child, String) {
    let ca = mail.ca();
    let port = mail.port.to_string();
    let args: Vec<String> = vec![
        "--smtp-url".into(),
        format!("smtp://{SMTP_USER}@127.0.0.1:{port}"),
        "--smtp-from".into(),
        FROM.into(),
        "--smtp-ca-file".into(),
        ca.display().to_string(),
        "--smtp-password-file".into(),
        mail.dir.path().join("password").display().to_string(),
        "--smtp-retry-min".into(),
        "500ms".into(),
        "--smtp-retry-max".into(),
        "1s".into(),
    ];
    std::fs::write(mail.dir.path().join("password"), format!("{SMTP_PASSWORD}\n")).unwrap();
    crate::crash::start_binary_with(data, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The built binary's HTTP API, spoken to from outside.
struct Remote {
    addr: String,
    client: reqwest::blocking::Client,
}

impl Remote {
    fn new(addr: &str) -> Remote {
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Remote { addr: addr.to_string(), client }
    }

    fn call(&self, method: Method, path: &str, body: &Value, want: StatusCode) -> Value {
        let (url, token) = match path.strip_prefix("/admin") {
            Some(rest) => (format!("http://{}/admin/v1{rest}", self.addr), ADMIN_TOKEN),
            None => (format!("http://{}/scim/v2{path}", self.addr), SCIM_TOKEN),
        };
        let mut req = self.client.request(method, url).bearer_auth(token);
        if !body.is_null() {
            req = req.header("Content-Type", "application/json").body(body.to_string());
        }
        expect_status(req.send().unwrap(), want)
    }
}

#[test]
fn kill_9_after_the_entitlement_is_acknowledged_delivers_after_restart() {
    let Some(mut mail) = MailServer::start("kill_9_after_the_entitlement_is_acknowledged") else { return };
    // The mail server is down while the entitlement is granted, so nothing can have been sent before
    // the kill: what is delivered after the restart was queued durably with the entitlement.
    mail.down();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_with_mail(dir.path(), &mail);
    let api = Remote::new(&addr);
    let product = json!({"name": "Meeting", "seats": null, "requires": []});
    api.call(Method::PUT, "/admin/products/meeting", &product, StatusCode::CREATED);
    let g = api.call(Method::POST, "/Groups", &json!({"displayName": "Staff"}), StatusCode::CREATED);
    let rule = json!({"group": g["id"], "products": ["meeting"], "language": "it_IT"});
    api.call(Method::POST, "/admin/rules", &rule, StatusCode::CREATED);
    api.call(Method::PUT, "/admin/sync", &json!({"enabled": true}), StatusCode::OK);
    let eva = json!({"userName": "eva@example.com", "name": {"givenName": "Eva"},
        "emails": [{"value": "eva@example.com", "primary": true}]});
    let eva = api.call(Method::POST, "/Users", &eva, StatusCode::CREATED)["id"].as_str().unwrap().to_string();
    let join = json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": eva}]}]});
    api.call(Method::PATCH, &format!("/Groups/{}", g["id"].as_str().unwrap()), &join, StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(20);
    let path = format!("/admin/users/{eva}/entitlements");
    while api.call(Method::GET, &path, &Value::Null, StatusCode::OK)["state"] != json!("entitled") {
        assert!(Instant::now() < deadline, "never entitled");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    mail.up().unwrap();
    let (mut child, addr) = start_with_mail(dir.path(), &mail);
    let messages = mail.wait_for(1, Duration::from_secs(30));
    assert_eq!(messages[0]["subject"], json!("Benvenuto, Eva"));
    let api = Remote::new(&addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let outbox = api.call(Method::GET, "/admin/outbox", &Value::Null, StatusCode::OK);
        if outbox["Resources"][0]["status"] == json!("sent") {
            assert_eq!(outbox["Resources"][0]["queueId"], messages[0]["queueId"]);
            break;
        }
        assert!(Instant::now() < deadline, "never recorded as sent: {outbox}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(mail.messages().len(), 1, "delivered once");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_mail_server_down_for_a_while_never_slows_scim_and_gets_everything_after() {
    let Some(mut mail) = MailServer::start("a_mail_server_down_for_a_while") else { return };
    let (app, _dir) = app_with(&mail, Duration::from_millis(300), Duration::from_secs(1));
    let g = setup(&app, "en_US");
    let timed = |name: &str| {
        let started = Instant::now();
        let uid = user(&app, name, "User");
        app.add_members(&g, &[&uid]);
        started.elapsed()
    };
    let up: Vec<Duration> = (0..10).map(|i| timed(&format!("up{i}@example.com"))).collect();
    mail.wait_for(10, Duration::from_secs(30));
    mail.down();
    let down: Vec<Duration> = (0..30).map(|i| timed(&format!("down{i}@example.com"))).collect();
    app.settle();
    let median = |d: &[Duration]| {
        let mut d = d.to_vec();
        d.sort();
        d[d.len() / 2]
    };
    let (up_median, down_median) = (median(&up), median(&down));
    let worst = down.iter().max().copied().unwrap_or_default();
    assert!(
        down_median <= up_median * 3 + Duration::from_millis(50) && worst < Duration::from_secs(2),
        "SCIM writes while the mail server is down: median {down_median:?} (up: {up_median:?}), worst {worst:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let status = app.admin_ok(Method::GET, "/sync", None, StatusCode::OK);
    assert_eq!(status["delivery"]["mail"]["waiting"], json!(30), "{status}");
    assert!(status["delivery"]["mail"]["oldestWaitingSeconds"].as_i64().unwrap() >= 1, "{status}");
    mail.up().unwrap();
    let messages = mail.wait_for(40, Duration::from_secs(60));
    let mut per_recipient: BTreeMap<String, usize> = BTreeMap::new();
    for m in &messages {
        *per_recipient.entry(m["rcptTos"][0].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), 40, "everyone got their message");
    assert!(per_recipient.values().all(|n| *n == 1), "nobody got two: {per_recipient:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["delivery"]["mail"]["waiting"] != json!(0)
    {
        assert!(Instant::now() < deadline, "the queue never emptied");
        std::thread::sleep(Duration::from_millis(50));
    }
}
