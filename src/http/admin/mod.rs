//! The admin API (`/admin/v1`): sync switch, products, user groups, templates, rules, entitlements,
//! failures, activity, outbox, custom attributes and tokens of the caller's account. Errors are
//! `{"error": code, "message": ...}`.

mod catalog;
mod explain;
mod hold;
mod rules;
mod users;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::request::{AdminCaller, AuthError, BodyError, authenticate, parse_json, read_body};
use crate::rules::RuleError;
use crate::store::{StoreError, TokenKind};

/// An admin API error.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AdminError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub type AdminResult<T> = Result<T, AdminError>;

impl AdminError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AdminError { status, code, message: message.into() }
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
        res.json(json!({"error": self.code, "message": self.message}))
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(e) => AdminError::bad_request(e.detail),
            StoreError::NotFound(what) => AdminError::not_found(format!("{what} not found")),
            StoreError::Conflict(m) => AdminError::conflict(m),
            StoreError::Rejected(m) => AdminError::unprocessable(m),
            StoreError::PreconditionFailed(v) => AdminError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                format!("the rules have changed; their current version is \"{v}\""),
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

impl From<RuleError> for AdminError {
    fn from(e: RuleError) -> Self {
        AdminError::unprocessable(e.to_string())
    }
}

impl From<AuthError> for AdminError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized(m) => AdminError::new(StatusCode::UNAUTHORIZED, "unauthorized", m),
            AuthError::Forbidden(m) => AdminError::new(StatusCode::FORBIDDEN, "forbidden", m),
            AuthError::Store(e) => e.into(),
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

/// A JSON body deserialised into `T`, with admin-style errors.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move { parse_json(&body.await?).map(Body).map_err(AdminError::bad_request) })
    }
}

/// A JSON body that may be left out: `None` when the body is empty (or only whitespace). A body that is
/// there must parse into `T`, or the request fails with a 400 saying why.
pub struct OptionalBody<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalBody<T> {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move {
            let body = body.await?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalBody(None));
            }
            parse_json(&body).map(|v| OptionalBody(Some(v))).map_err(AdminError::bad_request)
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
            .route("/sync", web::get().to(catalog::get_sync))
            .route("/sync", web::put().to(catalog::put_sync))
            .route("/sync/release", web::post().to(hold::release))
            .route("/sync/revert", web::post().to(hold::revert))
            .route("/settings", web::get().to(hold::get_settings))
            .route("/settings", web::patch().to(hold::patch_settings))
            .route("/products", web::get().to(catalog::list_products))
            .route("/products/{id}", web::get().to(catalog::get_product))
            .route("/products/{id}", web::put().to(catalog::put_product))
            .route("/products/{id}", web::delete().to(catalog::delete_product))
            .configure(catalog::object_routes)
            .route("/privileges", web::get().to(catalog::privileges))
            .route("/custom-attributes", web::get().to(catalog::get_custom_attributes))
            .route("/custom-attributes", web::put().to(catalog::put_custom_attributes))
            .route("/tokens", web::get().to(catalog::list_tokens))
            .route("/tokens", web::post().to(catalog::create_token))
            .route("/tokens/{id}", web::delete().to(catalog::revoke_token))
            .route("/rules", web::get().to(rules::list))
            .route("/rules", web::post().to(rules::create))
            .route("/rules/order", web::put().to(rules::reorder))
            .route("/rules/preview", web::post().to(rules::preview))
            .route("/rules/{id}", web::get().to(rules::get))
            .route("/rules/{id}", web::put().to(rules::replace))
            .route("/rules/{id}", web::delete().to(rules::delete))
            .route("/users/{id}/entitlements", web::get().to(explain::entitlements_of))
            .route("/entitlements", web::get().to(explain::entitlements))
            .route("/failures", web::get().to(users::failures))
            .route("/failures/retry", web::post().to(users::retry))
            .route("/activity", web::get().to(users::activity))
            .route("/outbox", web::get().to(users::outbox))
            .default_service(web::to(not_found)),
    );
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    AdminError::not_found(format!("no such endpoint: {} {}", req.method(), req.path())).error_response()
}
