//! Reading requests: bearer-token authentication, bounded JSON bodies, case-insensitive query parameters,
//! and the base URL that `meta.location` and `$ref` are built from.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::StreamExt;
use serde_json::Value;

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::scim::ScimError;
use crate::store::{AccountId, Actor, Authentication, StoreError, TokenInfo, TokenKind};

/// An authenticated caller: its token and the account the token belongs to.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: std::sync::Arc<TokenInfo>,
}

impl Caller {
    pub fn account(&self) -> AccountId {
        self.token.account
    }

    pub fn actor(&self) -> Actor {
        self.token.actor()
    }
}

/// What the request log shows about the caller (never the token).
#[derive(Debug, Clone)]
pub struct LoggedCaller(pub String);

/// A caller holding a SCIM token.
pub struct ScimCaller(pub Caller);

/// A caller holding an admin token.
pub struct AdminCaller(pub Caller);

/// Why a request is not authenticated for what it asks; each API renders it in its own error format.
#[derive(Debug)]
pub enum AuthError {
    Unauthorized(String),
    Forbidden(String),
    Store(StoreError),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized(m) => ApiError::Unauthorized(m),
            AuthError::Forbidden(m) => ApiError::Forbidden(m),
            AuthError::Store(e) => ApiError::Store(e),
        }
    }
}

/// The bearer token of the request, if it carries one.
pub(crate) fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}

pub(crate) fn authenticate(req: &HttpRequest, kind: TokenKind) -> Result<Caller, AuthError> {
    let state =
        req.app_data::<web::Data<AppState>>().ok_or_else(|| AuthError::Unauthorized("no state".into()))?;
    let secret = bearer(req).ok_or_else(|| {
        AuthError::Unauthorized("a bearer token is required (Authorization: Bearer <token>)".into())
    })?;
    let token = match state.store.authenticate_why(secret).map_err(AuthError::Store)? {
        Authentication::Valid(token) => token,
        Authentication::Unknown => {
            return Err(AuthError::Unauthorized("the bearer token is not valid".into()));
        }
        Authentication::Expired(_) => return Err(AuthError::Unauthorized("token expired".into())),
        Authentication::Suspended(_, name) => {
            return Err(AuthError::Forbidden(format!(
                "the account '{name}' is suspended by the operator of this server; its data is kept, and \
                 requests are accepted again once it is resumed"
            )));
        }
    };
    if token.kind != kind {
        return Err(AuthError::Forbidden(format!("a {} token cannot be used here", token.kind.as_str())));
    }
    if log::log_enabled!(log::Level::Info) {
        let label = state
            .store
            .account_name(token.account)
            .map_err(AuthError::Store)?
            .map(|name| format!("{name}/{}", token.actor().0))
            .unwrap_or_else(|| token.actor().0);
        req.extensions_mut().insert(LoggedCaller(label));
    }
    Ok(Caller { token })
}

impl FromRequest for ScimCaller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authenticate(req, TokenKind::Scim).map(ScimCaller).map_err(ApiError::from))
    }
}

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    TooLarge(usize),
    Unreadable(String),
    /// The body did not arrive in time, or arrived too slowly (408).
    TooSlow(String),
    /// Unfinished bodies already hold all the memory they may (503).
    Busy(String),
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(limit) => ApiError::PayloadTooLarge(limit),
            BodyError::Unreadable(m) => ScimError::invalid_syntax(m).into(),
            BodyError::TooSlow(m) => ScimError::status(408, m).into(),
            BodyError::Busy(m) => ApiError::Unavailable(m),
        }
    }
}

/// The memory all unfinished request bodies hold together, capped server-wide: without a cap, many clients
/// each sending most of a body and then stalling make the server hold all of them.
#[derive(Debug)]
pub struct BodyBudget {
    held: AtomicUsize,
    limit: usize,
}

impl BodyBudget {
    pub fn new(limit: usize) -> BodyBudget {
        BodyBudget { held: AtomicUsize::new(0), limit }
    }

    fn try_take(&self, n: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }
}

/// What one body holds of the budget; given back when the body is read or abandoned.
struct BudgetShare {
    budget: Option<web::Data<BodyBudget>>,
    bytes: usize,
}

impl BudgetShare {
    fn take(&mut self, n: usize) -> bool {
        let Some(budget) = &self.budget else { return true };
        let ok = budget.try_take(n);
        if ok {
            self.bytes += n;
        }
        ok
    }
}

impl Drop for BudgetShare {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

/// Limits a body is read under.
#[derive(Debug, Clone, Copy)]
struct BodyLimits {
    max: usize,
    timeout: Duration,
    min_rate: usize,
}

impl BodyLimits {
    /// Grace before the minimum rate applies: a client's first packets may take a round trip or two.
    const GRACE: Duration = Duration::from_secs(2);

    /// When the body is late if nothing more arrives: at the time limit, or once the bytes received fall
    /// below the minimum rate (after the grace).
    fn deadline(&self, started: Instant, received: usize) -> Instant {
        let by_rate = match self.min_rate {
            0 => self.timeout,
            rate => Self::GRACE + Duration::from_secs_f64(received as f64 / rate as f64),
        };
        started + by_rate.min(self.timeout)
    }
}

/// Reads the whole body, refusing more than the configured limit before reading it when the length is
/// declared and as soon as it is exceeded otherwise; a body that does not arrive within the time limit, or
/// arrives slower than the minimum rate, gets 408; beyond the server-wide memory for unfinished bodies, 503.
pub(crate) fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<web::Bytes, BodyError>> + use<> {
    let defaults = super::HttpConfig::default();
    let config = req.app_data::<web::Data<AppState>>().map(|s| &s.config).unwrap_or(&defaults);
    let limits =
        BodyLimits { max: config.max_body, timeout: config.body_timeout, min_rate: config.min_body_rate };
    let budget = req.app_data::<web::Data<BodyBudget>>().cloned();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload.take();
    async move {
        if declared.is_some_and(|n| n > limits.max) {
            return Err(BodyError::TooLarge(limits.max));
        }
        let started = Instant::now();
        let mut share = BudgetShare { budget, bytes: 0 };
        // A declared length is reserved whole before anything is read: a body that cannot have its memory
        // is refused at once, and one that can is never copied into a larger buffer.
        let reserved = declared.unwrap_or(0);
        if !share.take(reserved) {
            return Err(busy());
        }
        let mut body = web::BytesMut::with_capacity(reserved);
        loop {
            let deadline = limits.deadline(started, body.len());
            let wait = deadline.saturating_duration_since(Instant::now());
            let next = actix_web::rt::time::timeout(wait, payload.next()).await;
            let chunk = match next {
                Err(_) => return Err(too_slow(&limits, body.len())),
                Ok(None) => break,
                Ok(Some(chunk)) => chunk
                    .map_err(|e| BodyError::Unreadable(format!("could not read the request body: {e}")))?,
            };
            if body.len() + chunk.len() > limits.max {
                return Err(BodyError::TooLarge(limits.max));
            }
            let beyond = (body.len() + chunk.len()).saturating_sub(share.bytes);
            if !share.take(beyond) {
                return Err(busy());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

fn busy() -> BodyError {
    BodyError::Busy("the server is reading too many request bodies at once; try again shortly".into())
}

fn too_slow(limits: &BodyLimits, received: usize) -> BodyError {
    BodyError::TooSlow(format!(
        "the request body did not arrive in time ({received} bytes received; a body must arrive within {} s \
         and at {} bytes per second or more)",
        limits.timeout.as_secs(),
        limits.min_rate
    ))
}

/// A request body read up to the configured limit and parsed as JSON. Any content type is accepted:
/// clients send `application/scim+json`, `application/json`, with or without a charset, or nothing.
pub struct JsonBody(pub Value);

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move {
            parse_json(&body.await?).map(JsonBody).map_err(|e| ScimError::invalid_syntax(e).into())
        })
    }
}

/// A request body read in full (under the same limits as [`JsonBody`]) but not yet parsed: writes parse it
/// on the blocking pool, since parsing a large body would hold up every connection of the worker.
pub struct RawBody(pub web::Bytes);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move { Ok(RawBody(body.await?)) })
    }
}

impl RawBody {
    /// The body as JSON (a 400 `invalidSyntax` saying what is wrong otherwise).
    pub fn json(&self) -> ApiResult<Value> {
        parse_json(&self.0).map_err(|e| ScimError::invalid_syntax(e).into())
    }
}

/// The body as JSON, or what is wrong with it.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the request needs a JSON body".into());
    }
    if std::str::from_utf8(body).is_err() {
        return Err("the request body is not valid UTF-8".into());
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => format!("invalid request body: {e}"),
        _ => format!("the request body is not valid JSON: {e}"),
    })
}

/// Query parameters by case-insensitive name (`startIndex`, `startindex`, ...), `+` decoded as a space.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(req: &HttpRequest) -> ApiResult<Params> {
        if req.query_string().is_empty() {
            return Ok(Params(Vec::new()));
        }
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| Params(q.into_inner()))
            .map_err(|e| ScimError::invalid_syntax(format!("malformed query string: {e}")).into())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// The SCIM base URL as the client addressed this server, e.g. `https://idp.example/scim/v2`. Forwarding
/// headers (`Forwarded`, `X-Forwarded-Host`, `X-Forwarded-Proto`) are believed only from a trusted proxy
/// (`--trusted-proxy`); from anyone else they would let a client put any host into `Location`.
pub fn base_url(req: &HttpRequest) -> String {
    const PROXY_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-host", "x-forwarded-proto"];
    let headers = req.headers();
    let forwarded = PROXY_HEADERS.iter().any(|h| headers.contains_key(*h)) && from_trusted_proxy(req);
    // Without a proxy's headers the answer is the Host header over plain HTTP (the server speaks no TLS);
    // actix's connection info, which weighs every forwarding header, is only used behind a trusted proxy.
    if !forwarded {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let host = host.map_or_else(|| req.app_config().host().to_string(), str::to_string);
        return format!("http://{host}/scim/v2");
    }
    let info = req.connection_info();
    format!("{}://{}/scim/v2", info.scheme(), info.host())
}

/// Whether the request's peer is one of the configured trusted proxies.
fn from_trusted_proxy(req: &HttpRequest) -> bool {
    let Some(state) = req.app_data::<web::Data<AppState>>() else { return false };
    req.peer_addr().is_some_and(|peer| state.config.trusted_proxies.contains(&peer.ip()))
}

/// The `If-Match` header, if any.
pub fn if_match(req: &HttpRequest) -> Option<String> {
    req.headers().get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string)
}
