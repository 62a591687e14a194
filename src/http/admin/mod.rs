//! The admin API (`/admin/v1`): sync switch, products, user groups, templates, rules, entitlements and
//! their change feed, webhooks, failures, activity, outbox, custom attributes and tokens of the caller's
//! account, and the domains it verifies. Errors are
//! `{"error": code, "message": ..., "errors": [{"field", "message"}]}`; a wrong method is a 405 with `Allow`.

/// A resource with its handlers by method; any other method is a 405 whose `Allow` lists these.
macro_rules! resource {
    ($path:expr, $($method:ident => $handler:expr),+ $(,)?) => {{
        let allow: String = [$(stringify!($method)),+].map(str::to_ascii_uppercase).join(", ");
        actix_web::web::resource($path)
            $(.route(actix_web::web::$method().to($handler)))+
            .default_service(actix_web::web::to(move |req: actix_web::HttpRequest| {
                let allow = allow.clone();
                async move { $crate::http::admin::method_not_allowed(&req, allow) }
            }))
    }};
}

mod catalog;
mod directory;
pub mod domains;
mod explain;
mod feed;
mod hold;
pub mod input;
mod mail;
mod requests;
mod rules;
mod templates;
pub mod tokens;
mod users;
mod webhooks;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;
use serde_json::json;

use input::{FieldError, FromBody};

use super::request::{AdminCaller, AuthError, BodyError, authenticate, parse_json, read_body};
use crate::rules::{RetryError, RuleError, SaveError};
use crate::store::{StoreError, TokenKind};

/// An admin API error.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AdminError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Every problem of the request by field (empty when the error is not about fields).
    pub errors: Vec<FieldError>,
    /// For a 405: the methods the path takes.
    pub allow: Option<String>,
    /// For a 429: how long until the account's next request is let through.
    pub retry_after: Option<std::time::Duration>,
}

pub type AdminResult<T> = Result<T, AdminError>;

impl AdminError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AdminError {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
            allow: None,
            retry_after: None,
        }
    }

    /// An error of `status` listing problems by field; its message joins them.
    pub fn fields(status: StatusCode, errors: Vec<FieldError>) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "invalid_request",
            StatusCode::CONFLICT => "conflict",
            StatusCode::NOT_FOUND => "not_found",
            _ => "invalid_value",
        };
        let message =
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        AdminError { status, code, message, errors, allow: None, retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_reference", message)
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"usersync\""),
            ));
        }
        if let Some(allow) = self.allow.as_deref().and_then(|a| HeaderValue::from_str(a).ok()) {
            res.insert_header((header::ALLOW, allow));
        }
        let mut res = res.json(json!({"error": self.code, "message": self.message, "errors": self.errors}));
        if let Some(wait) = self.retry_after {
            crate::http::limits::set_retry_after(&mut res, wait);
        }
        res
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(e) => AdminError::bad_request(e.detail),
            StoreError::NotFound(what) => AdminError::not_found(format!("{what} not found")),
            StoreError::Conflict(m) => AdminError::conflict(m),
            StoreError::Rejected(m) => rejected(m),
            StoreError::PreconditionFailed(v) => AdminError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                format!("it has changed since that version; its current version is {}", input::etag(&v)),
            ),
            StoreError::Full(_) => AdminError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                crate::http::error::INSUFFICIENT_STORAGE,
            ),
            other => {
                log::error!("storage failure: {other}");
                AdminError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the request failed; it has been logged",
                )
            }
        }
    }
}

/// A store rejection: `field: message` when the store named the field.
fn rejected(m: String) -> AdminError {
    match m.split_once(": ") {
        Some((field, message)) if !field.contains(' ') => {
            input::one(StatusCode::UNPROCESSABLE_ENTITY, field, message)
        }
        _ => AdminError::unprocessable(m),
    }
}

impl From<RuleError> for AdminError {
    fn from(e: RuleError) -> Self {
        input::one(StatusCode::UNPROCESSABLE_ENTITY, e.field, e.message)
    }
}

impl From<RetryError> for AdminError {
    fn from(e: RetryError) -> Self {
        match e {
            RetryError::UnknownUsers(_) => AdminError::not_found(e.to_string()),
            RetryError::Store(e) => e.into(),
        }
    }
}

impl From<SaveError> for AdminError {
    fn from(e: SaveError) -> Self {
        match e {
            SaveError::Rule(e) => e.into(),
            SaveError::Store(e) => e.into(),
        }
    }
}

impl From<AuthError> for AdminError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized(m) => AdminError::new(StatusCode::UNAUTHORIZED, "unauthorized", m),
            AuthError::Forbidden(m) => AdminError::new(StatusCode::FORBIDDEN, "forbidden", m),
            AuthError::Store(e) => e.into(),
            AuthError::RateLimited(wait) => AdminError {
                retry_after: Some(wait),
                ..AdminError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    crate::http::limits::refusal(wait),
                )
            },
        }
    }
}

impl From<BodyError> for AdminError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(limit) => AdminError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body is larger than {limit} bytes"),
            ),
            BodyError::Unreadable(m) => AdminError::bad_request(m),
            BodyError::TooSlow(m) => AdminError::new(StatusCode::REQUEST_TIMEOUT, "timeout", m),
            BodyError::Busy(m) => AdminError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", m),
        }
    }
}

impl FromRequest for AdminCaller {
    type Error = AdminError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authenticate(req, TokenKind::Admin).map(AdminCaller).map_err(AdminError::from))
    }
}

/// A body read strictly into `T` (see [`input::FromFields`]): unknown fields and every shape problem
/// are one 400.
pub struct Strict<T>(pub T);

impl<T: FromBody + 'static> FromRequest for Strict<T> {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move {
            let value: serde_json::Value = parse_json(&body.await?).map_err(AdminError::bad_request)?;
            T::from_json(value).map(Strict)
        })
    }
}

/// A JSON merge patch body (RFC 7396); for an admin object it must be an object.
pub struct MergePatch(pub serde_json::Value);

impl FromRequest for MergePatch {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move {
            let value: serde_json::Value = parse_json(&body.await?).map_err(AdminError::bad_request)?;
            if !value.is_object() {
                return Err(input::one(
                    StatusCode::BAD_REQUEST,
                    "body",
                    "a merge patch of an admin object is a JSON object",
                ));
            }
            Ok(MergePatch(value))
        })
    }
}

/// A body read strictly into `T` that may be left out (`None` when empty).
pub struct OptionalStrict<T>(pub Option<T>);

impl<T: FromBody + 'static> FromRequest for OptionalStrict<T> {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move {
            let body = body.await?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalStrict(None));
            }
            let value: serde_json::Value = parse_json(&body).map_err(AdminError::bad_request)?;
            T::from_json(value).map(|v| OptionalStrict(Some(v)))
        })
    }
}

pub fn ok<T: Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

pub fn created_or_ok<T: Serialize>(created: bool, value: &T) -> HttpResponse {
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    HttpResponse::build(status).json(value)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/v1")
            .service(resource!("/sync", get => catalog::get_sync, put => catalog::put_sync))
            .service(resource!("/sync/release", post => hold::release))
            .service(resource!("/sync/revert", post => hold::revert))
            .service(resource!("/settings", get => hold::get_settings, patch => hold::patch_settings))
            .service(resource!("/products", get => catalog::list_products))
            .service(resource!("/products/{id}", get => catalog::get_product, put => catalog::put_product,
                patch => catalog::patch_product, delete => catalog::delete_product))
            .configure(catalog::object_routes)
            .service(resource!("/privileges", get => catalog::privileges))
            .service(resource!("/custom-attributes", get => catalog::get_custom_attributes,
                put => catalog::put_custom_attributes))
            .service(resource!("/tokens", get => tokens::list_tokens, post => tokens::create_token))
            .service(resource!("/tokens/{id}", delete => tokens::revoke_token))
            .service(resource!("/domains", get => domains::list, post => domains::create))
            .service(resource!("/domains/{domain}", get => domains::get, delete => domains::delete))
            .service(resource!("/domains/{domain}/verify", post => domains::verify))
            .service(resource!("/groups", get => directory::groups))
            .service(resource!("/groups/{id}", get => directory::group))
            .service(resource!("/users", get => directory::users))
            .service(resource!("/rules", get => rules::list, post => rules::create))
            .service(resource!("/rules/order", put => rules::reorder))
            .service(resource!("/rules/preview", post => rules::preview))
            .service(
                resource!("/rules/{id}", get => rules::get, put => rules::replace, patch => rules::patch,
                delete => rules::delete),
            )
            .service(resource!("/users/{id}/entitlements", get => explain::entitlements_of))
            .service(resource!("/entitlements", get => explain::entitlements))
            .service(resource!("/entitlements/changes", get => feed::changes))
            .service(resource!("/webhooks", get => webhooks::list))
            .service(resource!("/webhooks/{id}", get => webhooks::get, put => webhooks::put,
                delete => webhooks::delete))
            .service(resource!("/webhooks/{id}/resume", post => webhooks::resume))
            .service(resource!("/failures", get => users::failures))
            .service(resource!("/failures/retry", post => users::retry))
            .service(resource!("/activity", get => users::activity))
            .service(resource!("/requests", get => requests::list))
            .service(resource!("/outbox", get => users::outbox))
            .service(resource!("/mail", get => mail::get, put => mail::put))
            .default_service(web::to(not_found)),
    );
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    AdminError::not_found(format!("no such endpoint: {} {}", req.method(), req.path())).error_response()
}

/// The 405 of a method the path does not take.
pub fn method_not_allowed(req: &HttpRequest, allow: String) -> HttpResponse {
    let message = format!("{} is not allowed on {}; allowed: {allow}", req.method(), req.path());
    let mut e = AdminError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message);
    e.allow = Some(allow);
    e.error_response()
}
