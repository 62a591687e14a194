//! HTTP: the actix-web application. Handlers are thin: they parse, call the store (or the rule engine),
//! and map errors in one place (`error`). Paths are matched case-insensitively with trailing slashes
//! tolerated, as Microsoft's clients need; every request is logged on one line without its token.

mod admin;
mod console;
mod discovery;
mod error;
mod render;
mod request;
mod scim;

use std::net::TcpListener;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, Service, ServiceRequest, ServiceResponse};
use actix_web::http::Uri;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{App, Error, HttpMessage, HttpServer, Route, web};

pub use error::{ApiError, ApiResult};

use crate::rules::Engine;
use crate::scim::schema::ResourceKind;
use crate::store::Store;

/// Limits and defaults of the HTTP front end.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body accepted (413 above).
    pub max_body: usize,
    /// Largest page a list returns (`filter.maxResults`), and the page size when `count` is absent.
    pub max_results: usize,
    pub workers: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { max_body: 1 << 20, max_results: 1000, workers: 2 }
    }
}

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub config: HttpConfig,
    /// The rule engine, told about every durable write (absent in servers started without one).
    pub engine: Option<Engine>,
}

impl AppState {
    /// Waits until the request's writes are durable, then lets the engine act on them. Handlers call this
    /// before answering a write with 2xx.
    pub async fn committed(&self) {
        self.store.durable().await;
        if let Some(engine) = &self.engine {
            engine.notify();
        }
    }
}

/// Threads per HTTP worker that run store writes.
const BLOCKING_THREADS: usize = 4;

/// Starts serving on `listener`.
pub fn server(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    let workers = state.config.workers.max(1);
    let data = web::Data::new(state);
    let sessions = console::shared_sessions();
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).app_data(sessions.clone()).configure(routes).wrap_fn(
            |mut req, srv| {
                canonicalize_path(&mut req);
                let started = Instant::now();
                let method = req.method().clone();
                let path =
                    if log::log_enabled!(log::Level::Info) { req.path().to_string() } else { String::new() };
                let plain_json = prefers_plain_json(req.headers());
                let call = srv.call(req);
                async move {
                    let mut res = call.await?;
                    if plain_json {
                        use_plain_json(&mut res);
                    }
                    log_request(&res, &method, &path, started);
                    Ok::<ServiceResponse<_>, Error>(res)
                }
            },
        )
    })
    .workers(workers)
    // Store writes wait on the blocking pool for their group commit; a few threads per worker are enough
    // to fill a commit, and each thread keeps allocator memory of its own.
    .worker_max_blocking_threads(BLOCKING_THREADS)
    .shutdown_timeout(10)
    .listen(listener)?
    .run();
    Ok(server)
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/scim/v2")
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
    .configure(admin::routes)
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

fn log_request<B: MessageBody>(
    res: &ServiceResponse<B>,
    method: &actix_web::http::Method,
    path: &str,
    started: Instant,
) {
    if !log::log_enabled!(log::Level::Info) {
        return;
    }
    let caller = res.request().extensions().get::<request::LoggedCaller>().map(|c| c.0.clone());
    log::info!(
        "{method} {path} {} {:.1}ms {}",
        res.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0,
        caller.as_deref().unwrap_or("-")
    );
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
