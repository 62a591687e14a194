//! HTTP: the actix-web application. Handlers are thin: they parse, call the store (or the rule engine),
//! and map errors in one place (`error`). Paths are matched case-insensitively with trailing slashes
//! tolerated, as Microsoft's clients need; every request is logged on one line without its token.

#[macro_use]
mod admin;
mod console;
mod discovery;
mod error;
mod framing;
pub mod health;
pub mod limits;
pub mod observe;
pub mod operator;
mod provisioning;
mod render;
mod request;
mod scim;
pub mod tls;

use std::net::TcpListener;

use actix_web::dev::{Server, Service, ServiceRequest, ServiceResponse};
use actix_web::http::Uri;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{App, Error, HttpServer, Route, web};

pub use error::{ApiError, ApiResult};
pub use framing::QuietFraming;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::rules::Engine;
use crate::scim::schema::ResourceKind;
use crate::store::{AccountId, RateLimit, Store};

/// Limits and defaults of the HTTP front end.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body accepted (413 above).
    pub max_body: usize,
    /// Largest page a list returns (`filter.maxResults`), and the page size when `count` is absent.
    pub max_results: usize,
    pub workers: usize,
    /// Peers whose `Forwarded` / `X-Forwarded-*` headers are believed (none by default).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Most operations in one PATCH (400 `tooMany` above).
    pub max_operations: usize,
    /// Most values of one multi-valued attribute of a user (400 `tooMany` above).
    pub max_values: usize,
    /// Time a request body has to arrive in full (408 after).
    pub body_timeout: std::time::Duration,
    /// Slowest average rate, in bytes per second, a request body may arrive at once its first two seconds
    /// are over (408 below).
    pub min_body_rate: usize,
    /// Memory all unfinished request bodies together may hold (503 beyond).
    pub max_body_memory: usize,
    /// Open connections per worker; more wait to be accepted.
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes (431 above).
    pub max_head: usize,
    /// The operator token (its hash): without one, the operator API is not served.
    pub operator_token: Option<operator::OperatorKey>,
    /// The rate limit of accounts without one of their own (`None`: unlimited).
    pub rate_limit: Option<RateLimit>,
    /// Who may read `/metrics` on this listener.
    pub metrics: observe::MetricsAccess,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body: 1 << 20,
            max_results: 1000,
            workers: 2,
            trusted_proxies: Vec::new(),
            max_operations: 1000,
            max_values: 1000,
            body_timeout: std::time::Duration::from_secs(30),
            min_body_rate: 1024,
            max_body_memory: 64 << 20,
            max_connections: 4096,
            max_head: 32 << 10,
            operator_token: None,
            // Unlimited for servers started from the library (tests); `usersync serve` limits by default.
            rate_limit: None,
            metrics: observe::MetricsAccess::default(),
        }
    }
}

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub config: HttpConfig,
    /// The rule engine, told about every durable write (absent in servers started without one).
    pub engine: Option<Engine>,
    pub large_writes: LargeWrites,
    /// Each account's token bucket.
    pub limits: limits::RateLimits,
    /// Set when a graceful shutdown begins (`/readyz` answers 503 from then on).
    pub readiness: Arc<health::Readiness>,
    /// Where domain verification looks its TXT records up.
    pub dns: Arc<crate::delivery::dns::TxtChecker>,
    /// The mail server welcome emails go to (`None`: not configured, messages stay queued).
    pub mail: Option<MailServer>,
}

/// The mail server as the admin API shows it (never its credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailServer {
    /// `smtp://host:587 (STARTTLS)`.
    pub server: String,
    /// The address welcome emails come from.
    pub from: String,
}

/// A body at least this large makes a write large (see [`LargeWrites`]): about a thousand members, or a
/// PATCH of a few hundred operations.
const LARGE_BODY: usize = 64 << 10;

/// Large writes of one account take turns: at most one is worked on at a time, the others wait for their
/// turn without holding a thread. One client sending the largest requests it may on many connections
/// then keeps at most one blocking thread and one core busy, and the other accounts' writes, and the
/// account's own small ones, go on beside it.
#[derive(Default)]
pub struct LargeWrites(std::sync::Mutex<std::collections::HashMap<AccountId, Arc<Semaphore>>>);

impl LargeWrites {
    /// Waits for the account's turn if a body of `bytes` makes the write large; the turn ends when the
    /// returned permit is dropped.
    pub async fn turn(&self, acct: AccountId, bytes: usize) -> Option<OwnedSemaphorePermit> {
        if bytes < LARGE_BODY {
            return None;
        }
        let turns = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(acct).or_insert_with(|| Arc::new(Semaphore::new(1))).clone()
        };
        turns.acquire_owned().await.ok()
    }
}

impl AppState {
    /// Waits until the request's writes are durable, then lets the engine act on them. Handlers call this
    /// before answering a write with 2xx; an error (507: the disk is full) is their answer instead.
    pub async fn committed(&self) -> crate::store::StoreResult<()> {
        self.store.durable().await?;
        if let Some(engine) = &self.engine {
            engine.notify();
        }
        Ok(())
    }
}

/// Threads per HTTP worker that run store writes.
const BLOCKING_THREADS: usize = 4;

/// Starts serving on `listener`: HTTPS with the resolver's certificate when one is given, plain HTTP
/// otherwise. Signals are left to the caller (see `app::watch_signals`), which marks the server as
/// shutting down before it stops.
pub fn server(
    listener: TcpListener,
    state: AppState,
    tls: Option<Arc<tls::CertResolver>>,
) -> Result<Server, Box<dyn std::error::Error>> {
    let workers = state.config.workers.max(1);
    let max_connections = state.config.max_connections;
    let max_head = state.config.max_head;
    let budget = web::Data::new(request::BodyBudget::new(state.config.max_body_memory));
    let data = web::Data::new(state);
    let sessions = console::shared_sessions();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(budget.clone())
            .app_data(sessions.clone())
            .configure(routes)
            .wrap_fn(move |mut req, srv| {
                canonicalize_path(&mut req);
                let started = observe::start(&req);
                let plain_json = prefers_plain_json(req.headers());
                let step = match head_too_large(&req, max_head) {
                    Some(e) => Step::Early(req.error_response(e)),
                    None => Step::Call(srv.call(req)),
                };
                async move {
                    let mut res = match step {
                        Step::Early(res) => res.map_into_right_body(),
                        Step::Call(call) => call.await?.map_into_left_body(),
                    };
                    if plain_json {
                        use_plain_json(&mut res);
                    }
                    add_security_headers(res.headers_mut());
                    observe::finish(&mut res, &started);
                    Ok::<ServiceResponse<_>, Error>(res)
                }
            })
    })
    .workers(workers)
    .max_connections(max_connections)
    // A client that closes its side of the connection has gone (as nginx takes it, answering 499): its
    // request is dropped, and a write of it stops before its commit (see `store::wanted`). Allowing
    // half-closed connections would keep working for a client that can no longer be told the outcome.
    .h1_allow_half_closed(false)
    // Store writes wait on the blocking pool for their group commit; a few threads per worker are enough
    // to fill a commit, and each thread keeps allocator memory of its own.
    .worker_max_blocking_threads(BLOCKING_THREADS)
    .shutdown_timeout(10)
    .disable_signals();
    let server = match tls {
        Some(resolver) => server.listen_rustls_0_23(listener, tls::server_config(resolver)?)?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
}

/// The `--metrics-listen` server: `/metrics` without a token, and `/livez`, on an address only the
/// operator's network reaches.
pub fn metrics_server(listener: TcpListener, store: Store) -> std::io::Result<Server> {
    let store = web::Data::new(store);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(store.clone())
            .route("/metrics", web::get().to(observe::metrics_open))
            .route("/livez", web::get().to(health::livez))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

/// A request answered before it reaches a handler, or the handler's answer to come.
enum Step<F> {
    Early(ServiceResponse),
    Call(F),
}

/// A request head (request line and headers) larger than `limit` bytes gets 431 with a SCIM Error body.
/// actix itself closes a connection whose head exceeds its own, larger, buffer.
fn head_too_large(req: &ServiceRequest, limit: usize) -> Option<ApiError> {
    let target = req.uri().path_and_query().map_or(1, |pq| pq.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    let headers: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    (line + headers > limit).then(|| {
        ApiError::Scim(crate::scim::ScimError::status(
            431,
            format!("the request head is larger than {limit} bytes"),
        ))
    })
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/scim/v2")
            // every request of an account goes to its provisioning log
            .wrap_fn(|req, srv| {
                let started = provisioning::start(&req);
                let call = srv.call(req);
                async move {
                    let res = call.await?;
                    provisioning::finish(&res, started);
                    Ok(res)
                }
            })
            .service(resource_scope("/Users", ResourceKind::User))
            .service(resource_scope("/Groups", ResourceKind::Group))
            .service(
                web::resource("/.search")
                    .route(web::post().to(scim::search_all))
                    .default_service(not_allowed()),
            )
            .service(read_only("/ServiceProviderConfig", web::get().to(discovery::service_provider_config)))
            .service(read_only("/serviceConfiguration", web::get().to(discovery::service_provider_config)))
            .service(read_only("/Schemas", web::get().to(discovery::schemas)))
            .service(read_only("/Schemas/{id}", web::get().to(discovery::schema)))
            .service(read_only("/ResourceTypes", web::get().to(discovery::resource_types)))
            .service(read_only("/ResourceTypes/{id}", web::get().to(discovery::resource_type)))
            .service(web::resource(["/Bulk", "/Bulk/{rest:.*}"]).to(discovery::bulk_not_supported))
            .service(web::resource(["/Me", "/Me/{rest:.*}"]).to(discovery::me_not_supported))
            .default_service(web::to(discovery::not_found)),
    )
    .configure(health::routes)
    .service(web::resource("/metrics").route(web::get().to(observe::metrics_with_token)))
    .configure(admin::routes)
    .configure(operator::routes)
    .configure(console::routes)
    .default_service(web::to(discovery::not_found));
}

fn resource_scope(path: &str, kind: ResourceKind) -> actix_web::Scope {
    web::scope(path)
        .app_data(web::Data::new(kind))
        .service(
            web::resource("")
                .route(web::get().to(scim::list))
                .route(web::post().to(scim::create))
                .default_service(not_allowed()),
        )
        .service(web::resource("/.search").route(web::post().to(scim::search)).default_service(not_allowed()))
        .service(
            web::resource("/{id}")
                .route(web::get().to(scim::get))
                .route(web::put().to(scim::replace))
                .route(web::patch().to(scim::patch))
                .route(web::delete().to(scim::delete))
                .default_service(not_allowed()),
        )
}

fn read_only(path: &str, get: Route) -> actix_web::Resource {
    web::resource(path).route(get).default_service(web::to(discovery::read_only))
}

fn not_allowed() -> Route {
    web::to(discovery::method_not_allowed)
}

/// Endpoint names in their canonical case; Microsoft's tests call `/users`.
const ENDPOINTS: [&str; 9] = [
    "Users",
    "Groups",
    "ServiceProviderConfig",
    "serviceConfiguration",
    "Schemas",
    "ResourceTypes",
    "Me",
    "Bulk",
    ".search",
];

/// The path with trailing slashes removed and SCIM endpoint names in canonical case, if that differs.
fn canonical_path(path: &str) -> Option<String> {
    if is_canonical(path) {
        return None;
    }
    let trimmed = path.trim_end_matches('/');
    let mut segments: Vec<&str> = trimmed.split('/').collect();
    let is_scim = segments.len() >= 3
        && segments[1].eq_ignore_ascii_case("scim")
        && segments[2].eq_ignore_ascii_case("v2");
    if is_scim {
        segments[1] = "scim";
        segments[2] = "v2";
        for i in [3, 4] {
            let canonical =
                segments.get(i).and_then(|s| ENDPOINTS.iter().find(|e| e.eq_ignore_ascii_case(s)));
            match canonical {
                // only `.search` may follow a resource endpoint by name; anything else there is an id
                Some(e) if i == 3 || *e == ".search" => segments[i] = e,
                _ => {}
            }
        }
    }
    let canonical = if segments.len() <= 1 { "/".to_string() } else { segments.join("/") };
    (canonical != path).then_some(canonical)
}

/// The common case, checked without allocating: `/scim/v2/<Endpoint>[/<id>]` as clients usually write it.
fn is_canonical(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/scim/v2/") else {
        let scim_in_any_case = path.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("/scim"));
        return !scim_in_any_case && !path.ends_with('/');
    };
    if rest.ends_with('/') {
        return false;
    }
    let mut parts = rest.splitn(3, '/');
    let endpoint = parts.next().unwrap_or_default();
    let second = parts.next();
    ENDPOINTS.contains(&endpoint)
        && second.is_none_or(|s| !s.eq_ignore_ascii_case(".search") || s == ".search")
}

fn canonicalize_path(req: &mut ServiceRequest) {
    let Some(path) = canonical_path(req.path()) else { return };
    let with_query = match req.query_string() {
        "" => path,
        q => format!("{path}?{q}"),
    };
    let Ok(pq) = with_query.parse() else { return };
    let mut parts = req.head().uri.clone().into_parts();
    parts.path_and_query = Some(pq);
    if let Ok(uri) = Uri::from_parts(parts) {
        req.match_info_mut().get_mut().update(&uri);
        req.head_mut().uri = uri;
    }
}

/// OneLogin asks for `application/json` only; everyone else gets `application/scim+json`.
fn prefers_plain_json(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    accept.contains("application/json") && !accept.contains("scim+json") && !accept.contains("*/*")
}

fn use_plain_json<B>(res: &mut ServiceResponse<B>) {
    let headers = res.headers_mut();
    if headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/scim+json")) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
}

/// Every answer: no content sniffing. Answers carry user data or secrets (a new token's secret included), so
/// none is kept by a cache unless its handler said otherwise.
fn add_security_headers(headers: &mut HeaderMap) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_canonicalised() {
        assert_eq!(canonical_path("/scim/v2/users").as_deref(), Some("/scim/v2/Users"));
        assert_eq!(canonical_path("/SCIM/v2/Users").as_deref(), Some("/scim/v2/Users"));
        assert_eq!(
            canonical_path("/scim/v2/Users/abc/.Search").as_deref(),
            None,
            "only right after an endpoint"
        );
        assert_eq!(canonical_path("/scim/v2/Users/abc"), None);
        assert_eq!(canonical_path("/scim/v2/Users/").as_deref(), Some("/scim/v2/Users"));
        assert_eq!(canonical_path("/scim/v2/Users"), None);
        assert_eq!(canonical_path("/SCIM/V2/groups/abc/").as_deref(), Some("/scim/v2/Groups/abc"));
        assert_eq!(canonical_path("/scim/v2/users/.SEARCH").as_deref(), Some("/scim/v2/Users/.search"));
        assert_eq!(canonical_path("/scim/v2/Users/users"), None, "an id is never rewritten");
        assert_eq!(
            canonical_path("/scim/v2/serviceconfiguration").as_deref(),
            Some("/scim/v2/serviceConfiguration")
        );
        assert_eq!(canonical_path("/"), None);
        assert_eq!(canonical_path("/admin/v1/rules/").as_deref(), Some("/admin/v1/rules"));
    }

    #[test]
    fn plain_json_only_when_asked_for_alone() {
        let mut h = HeaderMap::new();
        assert!(!prefers_plain_json(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(prefers_plain_json(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/scim+json, application/json"));
        assert!(!prefers_plain_json(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(!prefers_plain_json(&h));
    }
}
