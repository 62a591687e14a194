//! The server's edge in production (issue 14, items 4, 5, 6 and 10): HTTPS with a certificate reloaded by
//! SIGHUP, `/livez` and `/readyz` (503 from the moment a graceful shutdown begins), `/metrics` parsed as
//! Prometheus text, per-account rate limits, request ids and JSON logs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};
use usersync::http::observe::MetricsAccess;
use usersync::store::{Actor, RateLimit};

use crate::helpers::*;

/// A server binary started with extra flags; its stdout lines after the listening line and every stderr
/// line are kept.
struct Binary {
    child: Child,
    /// `ADDR` of `usersync listening on SCHEME://ADDR`.
    addr: String,
    scheme: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    fn start(data: &Path, flags: &[&str], env: &[(&str, &str)]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_usersync"))
            .args(["serve", "--listen", "127.0.0.1:0", "--durability", "flush", "--data"])
            .arg(data)
            .args(flags)
            .env("USERSYNC_SCIM_TOKEN", SCIM_TOKEN)
            .env("USERSYNC_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = stderr.clone();
        std::thread::spawn(move || {
            err_lines.map_while(Result::ok).for_each(|l| kept.lock().unwrap().push(l))
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (scheme, addr) = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let rest = line.strip_prefix("usersync listening on ")?;
                let (scheme, rest) = rest.split_once("://")?;
                Some((scheme.to_string(), rest.split_whitespace().next()?.to_string()))
            })
            .unwrap_or_else(|| panic!("the server did not start: {:?}", stderr.lock().unwrap()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let kept = stdout.clone();
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| kept.lock().unwrap().push(l)));
        Binary { child, addr, scheme, stdout, stderr }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{name}"), &pid]).status().unwrap().success());
    }

    /// Waits for a stdout line starting with `prefix`.
    fn stdout_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self.stdout.lock().unwrap().iter().find(|l| l.starts_with(prefix)) {
                return l.clone();
            }
            assert!(Instant::now() < deadline, "no line '{prefix}' on stdout");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) {
        self.signal("TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "a SIGTERM is a clean stop: {status:?}");
    }
}

/// The DER of the first certificate in a PEM file.
fn der(pem: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(pem).unwrap();
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

/// The certificate a new connection is served, over TLS 1.2 or 1.3, trusting only the test's CA.
fn served_certificate(addr: &str, ca: &Path, tls12: bool) -> Vec<u8> {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut client = reqwest::blocking::Client::builder()
        .tls_certs_only([ca])
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10));
    if tls12 {
        client = client.tls_version_max(reqwest::tls::Version::TLS_1_2);
    }
    let res = client.build().unwrap().get(format!("https://{addr}/livez")).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let info = res.extensions().get::<reqwest::tls::TlsInfo>().expect("TLS info").clone();
    info.peer_certificate().expect("a certificate").to_vec()
}

#[test]
fn https_serves_the_given_certificate_and_sighup_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    if !make_test_leaf(&pki, "1001") {
        return;
    }
    let first = der(&pki.join("leaf.pem"));
    let (cert, key) = (pki.join("leaf.pem"), pki.join("leaf.key"));
    let server = Binary::start(
        &dir.path().join("store"),
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
        &[],
    );
    assert_eq!(server.scheme, "https", "the start-up line names the scheme served");
    let ca = pki.join("ca.pem");
    assert_eq!(served_certificate(&server.addr, &ca, false), first, "TLS 1.3");
    assert_eq!(served_certificate(&server.addr, &ca, true), first, "TLS 1.2");
    // Plain HTTP on the HTTPS port gets no answer.
    let plain = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    assert!(plain.get(format!("http://{}/livez", server.addr)).send().is_err());
    // The SCIM base URL the server builds says https.
    let client = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap()])
        .build()
        .unwrap();
    let res = client
        .post(format!("https://{}/scim/v2/Users", server.addr))
        .bearer_auth(SCIM_TOKEN)
        .body(json!({"userName": "tls@example.com"}).to_string())
        .send()
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&format!("https://{}/scim/v2/Users/", server.addr)), "{location}");

    assert!(make_test_leaf(&pki, "2002"));
    let second = der(&pki.join("leaf.pem"));
    assert_ne!(first, second);
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_certificate(&server.addr, &ca, false) != second {
        assert!(Instant::now() < deadline, "the new certificate is not served after SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(served_certificate(&server.addr, &ca, true), second);
    // A certificate that cannot be read keeps the current one.
    std::fs::write(&cert, "not a certificate").unwrap();
    server.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(served_certificate(&server.addr, &ca, false), second);
    server.stop();
}

/// One request on an open HTTP/1.1 connection; the status and body.
fn exchange(conn: &mut TcpStream, request: &str) -> (u16, String) {
    conn.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn health_answers_without_a_token_and_readyz_turns_503_when_shutdown_begins() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--min-body-rate", "0", "--body-timeout", "20", "--drain-seconds", "3"];
    let server = Binary::start(&dir.path().join("store"), &flags, &[]);
    let connect = || {
        let conn = TcpStream::connect(&server.addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        conn
    };
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: usersync\r\n\r\n");
    let mut probe = connect();
    for path in ["/livez", "/healthz"] {
        let (status, body) = exchange(&mut probe, &get(path));
        assert_eq!((status, body.as_str()), (200, r#"{"status":"alive"}"#), "{path}");
    }
    let (status, body) = exchange(&mut probe, &get("/readyz"));
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["checks"], json!({"store": "writable", "engine": "running", "server": "serving"}));

    // A request in flight (its body is slow to come) keeps the graceful shutdown going.
    let mut slow = connect();
    let user = json!({"userName": "slow@example.com"}).to_string();
    let (first, rest) = user.split_at(12);
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: usersync\r\nAuthorization: Bearer {SCIM_TOKEN}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{first}",
        user.len()
    );
    slow.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    server.signal("TERM");
    let body = loop {
        let (status, body) = exchange(&mut connect(), &get("/readyz"));
        if status == 503 {
            break body;
        }
        assert_eq!(status, 200);
        assert!(signalled.elapsed() < Duration::from_secs(2), "/readyz still answers 200 after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    let unready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(unready["status"], "unavailable");
    assert_eq!(unready["checks"]["server"], "shutting down");
    assert_eq!(unready["checks"]["store"], "writable");
    // While it drains, the server still answers, the load balancer's probes and everything else.
    assert_eq!(exchange(&mut connect(), &get("/livez")).0, 200);
    assert!(signalled.elapsed() < Duration::from_secs(3), "the test was too slow to see the drain");
    // The request in flight still finishes, after the drain.
    std::thread::sleep(
        Duration::from_secs(3).saturating_sub(signalled.elapsed()) + Duration::from_millis(300),
    );
    slow.write_all(rest.as_bytes()).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    BufReader::new(&slow).read_line(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    drop(probe);
    drop(slow);
    let mut child = server.child;
    assert!(child.wait().unwrap().success());
}

const METRICS_TOKEN: &str = "metrics-test-token-0123456789abcdef";

/// One sample of a scrape.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    value: f64,
}

/// A strict parser of the Prometheus text format (0.0.4): every line a `# HELP`, a `# TYPE` or a sample; every
/// sample of a family whose type was declared before it (a histogram's `_bucket`, `_sum` and `_count`);
/// label values quoted with their escapes; values as Prometheus reads them. Also checks each histogram:
/// buckets cumulative, ending in `+Inf`, which equals `_count`. Panics with the offending line.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut types: std::collections::HashMap<String, String> = Default::default();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "type: {line}"
                    );
                    assert!(
                        types.insert(name.to_string(), kind.to_string()).is_none(),
                        "declared twice: {line}"
                    );
                }
                (Some("HELP"), Some(_), _) => {}
                _ => panic!("a comment that is neither HELP nor TYPE: {line}"),
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value: {line}"));
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "metric name: {line}"
        );
        let mut labels = std::collections::BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            loop {
                let (start, c) = chars.next().unwrap_or_else(|| panic!("unclosed labels: {line}"));
                if c == '}' {
                    rest = &inner[start + 1..];
                    break;
                }
                let eq =
                    inner[start..].find('=').unwrap_or_else(|| panic!("label without '=': {line}")) + start;
                let key = &inner[start..eq];
                assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "label name: {line}");
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "unquoted label value: {line}");
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(c @ ('\\' | '"')) => value.push(c),
                            other => panic!("bad escape {other:?}: {line}"),
                        },
                        Some(c) => value.push(c),
                        None => panic!("unterminated label value: {line}"),
                    }
                }
                assert!(labels.insert(key.to_string(), value).is_none(), "label twice: {line}");
                match chars.peek().map(|(_, c)| *c) {
                    Some(',') => {
                        chars.next();
                    }
                    Some('}') => {}
                    other => panic!("expected ',' or '}}', found {other:?}: {line}"),
                }
            }
        }
        let mut fields = rest.split_whitespace();
        let value = match fields.next().unwrap_or_else(|| panic!("no value: {line}")) {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse::<f64>().unwrap_or_else(|e| panic!("value ({e}): {line}")),
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().unwrap_or_else(|e| panic!("timestamp ({e}): {line}"));
        }
        assert!(fields.next().is_none(), "trailing text: {line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|t| t == "histogram")))
            .unwrap_or(name);
        assert!(types.contains_key(family), "a sample before its TYPE: {line}");
        out.push(Sample { name: name.to_string(), labels, value });
    }
    // Histograms: cumulative buckets up to +Inf, which is the count.
    for count in out.iter().filter(|s| s.name.ends_with("_count")) {
        let family = count.name.trim_end_matches("_count");
        let mut buckets: Vec<(f64, f64)> = out
            .iter()
            .filter(|b| b.name == format!("{family}_bucket"))
            .filter(|b| {
                b.labels.iter().filter(|(k, _)| *k != "le").all(|(k, v)| count.labels.get(k) == Some(v))
            })
            .filter(|b| b.labels.len() == count.labels.len() + 1)
            .map(|b| (b.labels["le"].replace("+Inf", "inf").parse::<f64>().unwrap(), b.value))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{family}: buckets not cumulative");
        assert_eq!(buckets.last().map(|b| (b.0, b.1)), Some((f64::INFINITY, count.value)), "{family}");
    }
    out
}

/// The samples named `name` whose labels include all of `labels`.
fn samples<'a>(scrape: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .iter()
        .filter(|s| {
            s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include all of `labels`.
fn total(scrape: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, name, labels).iter().map(|s| s.value).sum()
}

fn scrape(app: &TestApp, token: Option<&str>) -> reqwest::blocking::Response {
    let mut req = app.client.get(format!("http://{}/metrics", app.addr));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().unwrap()
}

#[test]
fn metrics_are_prometheus_text_behind_their_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.http.metrics = MetricsAccess::with_token(METRICS_TOKEN);
    let server = spawn_with(settings);
    // Metrics are process-wide: an account of its own keeps this test's series apart from other tests'.
    let account = format!("metrics-{}", uuid::Uuid::new_v4().simple());
    let (scim, admin) = server.new_account(&account);
    let app = server.as_account(&scim, &admin);

    assert_eq!(scrape(&app, None).status(), StatusCode::UNAUTHORIZED);
    assert_eq!(scrape(&app, Some(SCIM_TOKEN)).status(), StatusCode::UNAUTHORIZED);

    let body = json!({"name": "Meeting", "seats": 5, "requires": []});
    assert!(app.admin(Method::PUT, "/products/meeting", Some(&body)).status().is_success());
    let g = id(&app.create_group("Metered"));
    app.admin_ok(
        Method::POST,
        "/rules",
        Some(&json!({"group": g, "products": ["meeting"]})),
        StatusCode::CREATED,
    );
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": true})), StatusCode::OK);
    // a webhook whose receiver is not there: the changes wait for it
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([3u8; 32]));
    let hook =
        json!({"url": format!("http://{closed}/hook"), "secret": secret, "events": ["entitlement.granted"]});
    app.admin_ok(Method::PUT, "/webhooks/product", Some(&hook), StatusCode::CREATED);
    let mut uids = Vec::new();
    for i in 0..3 {
        let uid = id(&app.create_user(&json!({"userName": format!("m{i}@metrics.example")})));
        uids.push(uid);
    }
    app.add_members(&g, &uids.iter().map(String::as_str).collect::<Vec<_>>());
    app.settle();
    for uid in &uids {
        assert_eq!(app.get(&format!("/Users/{uid}")).status(), StatusCode::OK);
    }
    assert_eq!(app.get("/Users/no-such-user").status(), StatusCode::NOT_FOUND);

    let res = scrape(&app, Some(METRICS_TOKEN));
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = res.text().unwrap();
    let scrape = parse_prometheus(&text);
    let acct = account.as_str();
    let by_id = [("route", "/scim/v2/Users/{id}"), ("method", "GET"), ("account", acct)];
    let ok = [by_id[0], by_id[1], by_id[2], ("status_class", "2xx")];
    assert_eq!(total(&scrape, "usersync_http_requests_total", &ok), 3.0, "{text}");
    let missing = [by_id[0], by_id[1], by_id[2], ("status_class", "4xx")];
    assert_eq!(total(&scrape, "usersync_http_requests_total", &missing), 1.0);
    assert_eq!(
        total(&scrape, "usersync_http_requests_total", &[("route", "/metrics"), ("account", "-")]),
        2.0
    );
    assert!(
        !text.contains(&uids[0]) && !text.contains("no-such-user"),
        "routes are templates, never paths with ids"
    );
    let latency = [by_id[0], by_id[1]];
    assert!(total(&scrape, "usersync_http_request_duration_seconds_count", &latency) >= 4.0, "{text}");
    assert!(
        total(&scrape, "usersync_http_request_duration_seconds_bucket", &[latency[0], ("le", "+Inf")]) >= 4.0
    );
    let product = [("account", acct), ("product", "meeting")];
    assert_eq!(total(&scrape, "usersync_seats_used", &product), 3.0);
    assert_eq!(total(&scrape, "usersync_seats_total", &product), 5.0);
    assert_eq!(samples(&scrape, "usersync_engine_pending_users", &[("account", acct)]).len(), 1);
    assert_eq!(total(&scrape, "usersync_engine_pending_users", &[("account", acct)]), 0.0);
    assert!(total(&scrape, "usersync_engine_evaluations_total", &[("account", acct)]) >= 3.0, "{text}");
    for reason in ["outOfLicenses", "existingAccount"] {
        let failing = samples(&scrape, "usersync_sync_failures", &[("account", acct), ("reason", reason)]);
        assert_eq!(failing.iter().map(|s| s.value).collect::<Vec<_>>(), [0.0], "{reason}");
    }
    // the delivery queues: the welcome emails wait (no mail server here), so do the webhook's changes
    assert_eq!(total(&scrape, "usersync_mail_waiting", &[("account", acct)]), 3.0, "{text}");
    assert_eq!(total(&scrape, "usersync_mail_failed", &[("account", acct)]), 0.0);
    let mail_failures = [("account", acct), ("reason", "welcomeEmailFailed")];
    assert_eq!(total(&scrape, "usersync_sync_failures", &mail_failures), 0.0);
    let webhook = [("account", acct), ("webhook", "product")];
    assert_eq!(total(&scrape, "usersync_webhook_waiting", &webhook), 3.0, "{text}");
    assert_eq!(total(&scrape, "usersync_webhook_paused", &webhook), 0.0);
    assert_eq!(samples(&scrape, "usersync_webhook_oldest_waiting_seconds", &webhook).len(), 1);
    assert_eq!(samples(&scrape, "usersync_mail_oldest_waiting_seconds", &[("account", acct)]).len(), 1);
    assert!(total(&scrape, "usersync_store_disk_bytes", &[]) > 0.0);
    assert!(
        total(&scrape, "usersync_store_flush_duration_seconds_count", &[]) >= 1.0,
        "flush latency: {text}"
    );
    server.stop();
}

/// Latencies of `n` sequential SCIM reads by `app`.
fn latencies(app: &TestApp, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let started = Instant::now();
            let res = app.get("/Users?count=1");
            assert_eq!(res.status(), StatusCode::OK, "the calm account is never limited");
            started.elapsed()
        })
        .collect()
}

#[test]
fn a_flooded_account_gets_429_while_another_keeps_its_latency() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.http.rate_limit = Some(RateLimit::DEFAULT);
    let server = spawn_with(settings);
    let (scim, admin) = server.new_account("flooded");
    let flooded = server.as_account(&scim, &admin);
    let calm = server.as_account(SCIM_TOKEN, ADMIN_TOKEN);
    // The calm account measures with more requests than the default lets through: a limit of its own.
    let default = server.store.account("default").unwrap().unwrap().id;
    let roomy = RateLimit { per_second: 10_000, burst: 10_000 };
    server.store.set_rate_limit(default, Some(roomy), &Actor("operator".into())).unwrap();
    latencies(&calm, 20);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refused = Arc::new(Mutex::new(None::<reqwest::blocking::Response>));
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let (client, url, token, stop, refused) = (
                flooded.client.clone(),
                flooded.url("/Users?count=1"),
                scim.clone(),
                stop.clone(),
                refused.clone(),
            );
            std::thread::spawn(move || {
                let (mut ok, mut limited) = (0, 0);
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let res = client.get(&url).bearer_auth(&token).send().unwrap();
                    match res.status() {
                        StatusCode::OK => ok += 1,
                        StatusCode::TOO_MANY_REQUESTS => {
                            limited += 1;
                            refused.lock().unwrap().get_or_insert(res);
                        }
                        other => panic!("unexpected {other}"),
                    }
                }
                (ok, limited)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut during = latencies(&calm, 300);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, limited) =
        flooders.into_iter().map(|f| f.join().unwrap()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(limited > 0, "the flood was limited ({ok} let through)");
    // The burst and about 50 a second of the flood's duration went through, no more.
    assert!((200..=200 + 50 * 30).contains(&ok), "{ok} let through");
    during.sort();
    let p99 = during[during.len() * 99 / 100];
    assert!(p99 < Duration::from_millis(50), "the calm account's p99 was {p99:?}");

    let res = refused.lock().unwrap().take().unwrap();
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/scim+json"));
    let error: Value = res.json().unwrap();
    assert_eq!(error["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]));
    assert_eq!(error["status"], "429");
    assert!(error["detail"].as_str().unwrap().contains("rate limit"), "{error}");

    // The admin API shares the account's bucket and answers in its own format.
    let acct = server.store.account("flooded").unwrap().unwrap().id;
    let limit = RateLimit { per_second: 1, burst: 2 };
    server.store.set_rate_limit(acct, Some(limit), &Actor("operator".into())).unwrap();
    let statuses: Vec<_> = (0..3).map(|_| flooded.admin(Method::GET, "/sync", None)).collect();
    let codes: Vec<_> = statuses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes, [200, 200, 429], "the account's own limit applies at once");
    let res = statuses.into_iter().last().unwrap();
    assert!(res.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let error: Value = res.json().unwrap();
    assert_eq!(error["error"], "rate_limited");
    latencies(&calm, 5);
    server.stop();
}

#[test]
fn request_ids_are_kept_when_well_formed_and_made_otherwise() {
    let app = spawn_app();
    let with = |id: Option<&str>| {
        let mut req = app.request(Method::GET, "/Users");
        if let Some(id) = id {
            req = req.header("X-Request-Id", id);
        }
        let res = req.send().unwrap();
        res.headers()["x-request-id"].to_str().unwrap().to_string()
    };
    for kept in ["abc-123", "4bf92f3577b34da6a3ce929d0e0e4736", "Root=1-5759e988-bd862e3fe1be46a994272793"] {
        assert_eq!(with(Some(kept)), kept);
    }
    for replaced in ["has space", "quote\"d", &"x".repeat(129), ""] {
        let id = with(Some(replaced));
        assert_ne!(id, replaced);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    }
    let made = with(None);
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    assert_ne!(with(None), made, "each request gets its own");
    // Errors carry one too.
    let res = app.client.get(format!("http://{}/scim/v2/Users", app.addr)).send().unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("x-request-id"));
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_fields_and_metrics_listen_serves_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = Binary::start(
        &dir.path().join("store"),
        &["--log-format", "json", "--metrics-listen", "127.0.0.1:0"],
        &[],
    );
    let client = reqwest::blocking::Client::new();
    let res = client
        .post(format!("http://{}/scim/v2/Users", server.addr))
        .bearer_auth(SCIM_TOKEN)
        .header("X-Request-Id", "trace-42")
        .body(json!({"userName": "logged@example.com"}).to_string())
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["x-request-id"], "trace-42");
    // Without a metrics token, /metrics on the main listener is not served; on --metrics-listen it is.
    let res = client.get(format!("http://{}/metrics", server.addr)).send().unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let line = server.stdout_line("usersync metrics on http://");
    let url = line.trim_start_matches("usersync metrics on ").to_string();
    let text = client.get(&url).send().unwrap().text().unwrap();
    let scrape = parse_prometheus(&text);
    let created = [("route", "/scim/v2/Users"), ("method", "POST"), ("account", "default")];
    assert_eq!(total(&scrape, "usersync_http_requests_total", &created), 1.0, "{text}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let entry = loop {
        let lines = server.stderr.lock().unwrap().clone();
        let parsed: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}")))
            .collect();
        if let Some(entry) = parsed.into_iter().find(|e| e["request_id"] == "trace-42") {
            break entry;
        }
        assert!(Instant::now() < deadline, "no log line for the request: {lines:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(entry["level"], "INFO");
    assert!(chrono::DateTime::parse_from_rfc3339(entry["time"].as_str().unwrap()).is_ok(), "{entry}");
    assert_eq!(entry["account"], "default");
    assert_eq!(entry["token"], "environment");
    assert_eq!(entry["method"], "POST");
    assert_eq!(entry["route"], "/scim/v2/Users");
    assert_eq!(entry["status"], 201);
    assert!(entry["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{entry}");
    server.stop();
}
