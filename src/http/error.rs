//! The one place errors become HTTP answers. Under `/scim/v2` every non-2xx answer is a SCIM Error body
//! (RFC 7644 §3.12); storage failures are logged and answered without their details.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::scim::{ScimError, ScimType};
use crate::store::StoreError;

pub const SCIM_JSON: &str = "application/scim+json";

/// What a client is told when a write cannot be made durable (507): the store says so once in the log.
pub const INSUFFICIENT_STORAGE: &str =
    "the server cannot store the change: its disk is full; the change was not made durably, retry later";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Scim(#[from] ScimError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The server is at a limit that frees up by itself (503 with `Retry-After`).
    #[error("{0}")]
    Unavailable(String),
    /// The account is over its rate limit (429 with `Retry-After`).
    #[error("{}", super::limits::refusal(*.0))]
    TooManyRequests(std::time::Duration),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The SCIM form of this error.
    pub fn to_scim(&self) -> ScimError {
        match self {
            ApiError::Scim(e) => e.clone(),
            ApiError::Store(e) => store_error(e),
            ApiError::Unauthorized(m) => ScimError::status(401, m.clone()),
            ApiError::Forbidden(m) => ScimError::status(403, m.clone()),
            ApiError::NotFound(m) => ScimError::status(404, m.clone()),
            ApiError::MethodNotAllowed(m) => ScimError::status(405, m.clone()),
            ApiError::NotImplemented(m) => ScimError::status(501, m.clone()),
            ApiError::PayloadTooLarge(_) => ScimError::status(413, self.to_string()),
            ApiError::Unavailable(m) => ScimError::status(503, m.clone()),
            ApiError::TooManyRequests(_) => ScimError::status(429, self.to_string()),
        }
    }
}

fn store_error(e: &StoreError) -> ScimError {
    match e {
        StoreError::Invalid(e) => e.clone(),
        StoreError::NotFound(what) => ScimError::not_found(format!("{what} not found")),
        StoreError::Conflict(m) => ScimError::new(ScimType::Uniqueness, m.clone()),
        StoreError::Rejected(m) => ScimError::invalid_value(m.clone()),
        StoreError::PreconditionFailed(current) => {
            ScimError::status(412, format!("the resource has changed; its current version is {current}"))
        }
        StoreError::Full(_) => {
            log::debug!("write refused: {e}");
            ScimError::status(507, INSUFFICIENT_STORAGE)
        }
        StoreError::Locked(_)
        | StoreError::Storage(_)
        | StoreError::Corrupt(_)
        | StoreError::Io(_)
        | StoreError::Damaged(_) => {
            log::error!("storage failure: {e}");
            ScimError::status(500, "the server could not complete the request; it has been logged")
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.to_scim().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = scim_error_response(&self.to_scim());
        if let ApiError::TooManyRequests(wait) = self {
            super::limits::set_retry_after(&mut res, *wait);
        }
        res
    }
}

/// A SCIM Error response; a 401 also tells the client how to authenticate.
pub fn scim_error_response(e: &ScimError) -> HttpResponse {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON)));
    if status == StatusCode::UNAUTHORIZED {
        res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"usersync\"")));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
    }
    res.body(e.to_body().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_cannot_be_made_durable_is_507_without_storage_details() {
        let e = ApiError::Store(StoreError::Full("No space left on device (os error 28)".into()));
        assert_eq!(e.status_code(), StatusCode::INSUFFICIENT_STORAGE);
        let body = e.to_scim().to_body();
        assert_eq!(body["status"], "507");
        assert!(!body.to_string().contains("os error"), "{body}");
        let damaged = ApiError::Store(StoreError::Damaged("the record U failed its checksum".into()));
        assert_eq!(damaged.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!damaged.to_scim().to_body().to_string().contains("checksum"));
    }
}
