//! What the server tells its operator about requests: the request id (taken from `X-Request-Id` when well
//! formed, made otherwise, echoed in the answer), the one log line per request, and the Prometheus metrics
//! served on `/metrics` (behind the metrics token, or on `--metrics-listen`).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use subtle::ConstantTimeEq;

use super::request::LoggedCaller;
use crate::store::Store;
use crate::store::sync::FailureReason;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// The request's id, in its extensions for handlers that record it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A client's id is kept when it has 1 to 128 characters, each an ASCII letter, digit or one of `-_.:=+/`
/// (UUIDs, W3C trace ids, AWS trace headers, base64); anything else is replaced, so that no client can put
/// spaces, quotes or control characters into the log.
pub fn well_formed(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:=+/".contains(&b))
}

/// What is known of a request before its handler runs.
pub struct Started {
    id: String,
    method: Method,
    path: String,
    at: Instant,
}

/// Gives the request its id (the client's, or a new UUIDv7).
pub fn start(req: &ServiceRequest) -> Started {
    let given = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).filter(|id| well_formed(id));
    let id = given.map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_string);
    req.extensions_mut().insert(RequestId(id.clone()));
    Started { id, method: req.method().clone(), path: req.path().to_string(), at: Instant::now() }
}

/// Echoes the id, logs the request on one line and counts it.
pub fn finish<B: MessageBody>(res: &mut ServiceResponse<B>, started: &Started) {
    if let Ok(value) = HeaderValue::from_str(&started.id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let elapsed = started.at.elapsed();
    let status = res.status();
    // The route template, not the path: ids in paths would make a series per resource.
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
    let caller = res.request().extensions().get::<LoggedCaller>().cloned();
    let (account, token) = caller.map_or(("-".into(), "-".into()), |c| (c.account, c.token));
    count(&route, &started.method, status, &account, elapsed);
    if log::log_enabled!(log::Level::Info) {
        let latency_ms = (elapsed.as_secs_f64() * 1e4).round() / 10.0;
        log::info!(
            target: "usersync::request",
            request_id = started.id.as_str(),
            account = account.as_str(),
            token = token.as_str(),
            method = started.method.as_str(),
            route = route.as_str(),
            path = started.path.as_str(),
            status = status.as_u16(),
            latency_ms = latency_ms;
            "{} {} {} {latency_ms:.1}ms {account}/{token} {}",
            started.method,
            started.path,
            status.as_u16(),
            started.id
        );
    }
}

fn count(route: &str, method: &Method, status: StatusCode, account: &str, elapsed: Duration) {
    let class = match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    };
    let labels = [
        ("route", route.to_string()),
        ("method", method.as_str().to_string()),
        ("status_class", class.to_string()),
        ("account", account.to_string()),
    ];
    metrics::counter!("usersync_http_requests_total", &labels).increment(1);
    if status == StatusCode::TOO_MANY_REQUESTS {
        metrics::counter!("usersync_rate_limited_total", "account" => account.to_string()).increment(1);
    }
    let labels = [("route", route.to_string()), ("method", method.as_str().to_string())];
    metrics::histogram!("usersync_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// Latency buckets in seconds, from a cached read to a large write waiting for its group commit.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The process's recorder, installed on first use (metrics are process-wide; every server of the process
/// records into it).
pub fn recorder() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .map_err(|e| log::error!("metrics buckets: {e}"))
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|e| log::error!("metrics recorder: {e}")).ok()?;
            // Histograms keep their samples until drained: drain them even when nobody scrapes.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new().name("usersync-metrics".into()).spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
            if let Err(e) = spawned {
                log::error!("metrics upkeep thread: {e}");
            }
            Some(handle)
        })
        .as_ref()
}

/// Who may read `/metrics` on the main listener: the SHA-256 of the metrics token.
#[derive(Clone, Default)]
pub struct MetricsAccess {
    pub token_hash: Option<[u8; 32]>,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.token_hash.is_some() { "MetricsAccess(token)" } else { "MetricsAccess(none)" })
    }
}

impl MetricsAccess {
    pub fn with_token(token: &str) -> MetricsAccess {
        MetricsAccess { token_hash: Some(digest(token)) }
    }

    /// `None` when the request holds the metrics token; the refusal otherwise.
    fn refusal(&self, req: &HttpRequest) -> Option<HttpResponse> {
        let Some(expected) = &self.token_hash else {
            return Some(HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body(
                "metrics are not served here: set USERSYNC_METRICS_TOKEN (or --metrics-token-file), or \
                 use --metrics-listen\n",
            ));
        };
        let hash = super::request::bearer(req).map(digest);
        if hash.is_some_and(|h| bool::from(h[..].ct_eq(&expected[..]))) {
            return None;
        }
        Some(
            HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"usersync-metrics\""))
                .content_type("text/plain; charset=utf-8")
                .body("the metrics token is required (Authorization: Bearer <metrics token>)\n"),
        )
    }
}

fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// `/metrics` on the main listener, behind the metrics token.
pub async fn metrics_with_token(req: HttpRequest, state: web::Data<super::AppState>) -> HttpResponse {
    if let Some(refused) = state.config.metrics.refusal(&req) {
        return refused;
    }
    render(state.store.clone()).await
}

/// `/metrics` on `--metrics-listen`, which only the operator's network reaches.
pub async fn metrics_open(store: web::Data<Store>) -> HttpResponse {
    render(store.get_ref().clone()).await
}

async fn render(store: Store) -> HttpResponse {
    let Some(handle) = recorder() else {
        return HttpResponse::ServiceUnavailable().body("the metrics recorder could not be installed\n");
    };
    // Reading the figures scans failures and seats: on the blocking pool.
    match web::block(move || store_figures(&store)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::error!("reading the store's figures for /metrics: {e}"),
        Err(e) => log::error!("reading the store's figures for /metrics: {e}"),
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(handle.render())
}

/// The delivery queues of an account: welcome emails waiting, deferred and refused for good, and per webhook the changes waiting, the age of the oldest,
/// the failures in a row and whether it is paused.
fn delivery_figures(
    store: &Store,
    acct: crate::store::AccountId,
    name: &str,
) -> crate::store::StoreResult<()> {
    let now = store.now();
    let mail = store.mail_queue(acct)?;
    let account = [("account", name.to_string())];
    metrics::gauge!("usersync_mail_waiting", &account).set(mail.waiting as f64);
    metrics::gauge!("usersync_mail_deferred", &account).set(mail.deferred as f64);
    metrics::gauge!("usersync_mail_failed", &account).set(mail.failed as f64);
    let age = mail.oldest.as_deref().and_then(|t| crate::clock::seconds_since(now, t)).unwrap_or(0);
    metrics::gauge!("usersync_mail_oldest_waiting_seconds", &account).set(age as f64);
    for hook in crate::delivery::subscriptions::webhook_views(store, acct)? {
        let labels = [("account", name.to_string()), ("webhook", hook.id.clone())];
        metrics::gauge!("usersync_webhook_waiting", &labels).set(hook.waiting as f64);
        let age =
            hook.oldest_waiting.as_deref().and_then(|t| crate::clock::seconds_since(now, t)).unwrap_or(0);
        metrics::gauge!("usersync_webhook_oldest_waiting_seconds", &labels).set(age as f64);
        metrics::gauge!("usersync_webhook_failures", &labels).set(f64::from(hook.failures));
        let paused = hook.status == crate::delivery::subscriptions::Status::Paused;
        metrics::gauge!("usersync_webhook_paused", &labels).set(f64::from(u8::from(paused)));
    }
    Ok(())
}

/// Sets the gauges read from the store at scrape time: per account its pending users, failures by reason
/// and seats per product; the store's size on disk.
fn store_figures(store: &Store) -> crate::store::StoreResult<()> {
    metrics::gauge!("usersync_store_disk_bytes")
        .set(crate::store::health::disk_bytes(store.data_dir()) as f64);
    metrics::gauge!("usersync_store_live_bytes").set(store.live_bytes() as f64);
    metrics::gauge!("usersync_store_writable").set(f64::from(u8::from(store.writable())));
    for account in store.accounts()? {
        let name = account.name;
        let pending = store.pending_count(account.id)?;
        metrics::gauge!("usersync_engine_pending_users", "account" => name.clone()).set(pending as f64);
        let failing = store.failure_summary(account.id)?;
        for reason in
            [FailureReason::OutOfLicenses, FailureReason::ExistingAccount, FailureReason::WelcomeEmailFailed]
        {
            let count = failing.get(&reason).map_or(0, |f| f.total);
            let labels = [("account", name.clone()), ("reason", reason.as_str().to_string())];
            metrics::gauge!("usersync_sync_failures", &labels).set(count as f64);
        }
        delivery_figures(store, account.id, &name)?;
        for (product, used) in store.products(account.id)? {
            let labels = [("account", name.clone()), ("product", product.id.clone())];
            metrics::gauge!("usersync_seats_used", &labels).set(used as f64);
            if let Some(total) = product.seats {
                metrics::gauge!("usersync_seats_total", &labels).set(total as f64);
            }
        }
    }
    Ok(())
}
