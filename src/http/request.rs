//! Reading requests: bearer-token authentication, bounded JSON bodies, case-insensitive query parameters,
//! and the base URL that `meta.location` and `$ref` are built from.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::StreamExt;
use serde_json::Value;

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::scim::ScimError;
use crate::store::{AccountId, Actor, StoreError, TokenInfo, TokenKind};

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

pub(crate) fn authenticate(req: &HttpRequest, kind: TokenKind) -> Result<Caller, AuthError> {
    let state =
        req.app_data::<web::Data<AppState>>().ok_or_else(|| AuthError::Unauthorized("no state".into()))?;
    let secret = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AuthError::Unauthorized("a bearer token is required (Authorization: Bearer <token>)".into())
        })?;
    let token = state
        .store
        .authenticate(secret)
        .map_err(AuthError::Store)?
        .ok_or_else(|| AuthError::Unauthorized("the bearer token is not valid".into()))?;
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
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(limit) => ApiError::PayloadTooLarge(limit),
            BodyError::Unreadable(m) => ScimError::invalid_syntax(m).into(),
        }
    }
}

/// Reads the whole body, refusing more than the configured limit before reading it when the length is
/// declared and as soon as it is exceeded otherwise.
pub(crate) fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<web::Bytes, BodyError>> + use<> {
    let limit = req.app_data::<web::Data<AppState>>().map(|s| s.config.max_body).unwrap_or(1 << 20);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload.take();
    async move {
        if declared.is_some_and(|n| n > limit) {
            return Err(BodyError::TooLarge(limit));
        }
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| BodyError::Unreadable(format!("could not read the request body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
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

/// The SCIM base URL as the client addressed this server, e.g. `https://idp.example/scim/v2`.
pub fn base_url(req: &HttpRequest) -> String {
    const PROXY_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-host", "x-forwarded-proto"];
    let headers = req.headers();
    let forwarded = PROXY_HEADERS.iter().any(|h| headers.contains_key(*h));
    // Without a proxy's headers the answer is the Host header over plain HTTP (the server speaks no TLS);
    // actix's connection info, which weighs every forwarding header, is only needed behind a proxy.
    if !forwarded && let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        return format!("http://{host}/scim/v2");
    }
    let info = req.connection_info();
    format!("{}://{}/scim/v2", info.scheme(), info.host())
}

/// The `If-Match` header, if any.
pub fn if_match(req: &HttpRequest) -> Option<String> {
    req.headers().get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string)
}
