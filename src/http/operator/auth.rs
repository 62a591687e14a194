//! The operator token and the extractor every `/operator/v1` handler takes. The token is kept only as its
//! SHA-256 hash and compared in constant time. Without one configured, the operator API answers 404 saying
//! how to enable it: it does not exist on that server, and no token could be right.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::AppState;
use crate::http::admin::AdminError;
use crate::http::request::{LoggedCaller, bearer};
use crate::store::Actor;

/// The hash of the operator token.
#[derive(Clone)]
pub struct OperatorKey([u8; 32]);

impl OperatorKey {
    pub fn from_secret(secret: &str) -> OperatorKey {
        OperatorKey(Sha256::digest(secret.as_bytes()).into())
    }

    fn matches(&self, secret: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        bool::from(self.0.ct_eq(&presented))
    }
}

impl std::fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorKey(..)")
    }
}

/// A request that carries the operator token. Take it as an argument of any handler that is operator-only;
/// it refuses the request otherwise (in the admin API's error body).
pub struct OperatorAuth;

impl OperatorAuth {
    /// The actor the activity history records for the operator's changes.
    pub fn actor(&self) -> Actor {
        Actor("operator".into())
    }

    fn check(req: &HttpRequest) -> Result<OperatorAuth, AdminError> {
        let key = req.app_data::<web::Data<AppState>>().and_then(|s| s.config.operator_token.clone());
        let Some(key) = key else {
            return Err(AdminError::not_found(
                "the operator API is not enabled on this server: start it with USERSYNC_OPERATOR_TOKEN or \
                 --operator-token-file",
            ));
        };
        let Some(secret) = bearer(req) else {
            return Err(unauthorized("the operator token is required (Authorization: Bearer <token>)"));
        };
        if !key.matches(secret) {
            return Err(unauthorized("the bearer token is not the operator token"));
        }
        req.extensions_mut().insert(LoggedCaller("operator".into()));
        Ok(OperatorAuth)
    }
}

fn unauthorized(message: &str) -> AdminError {
    AdminError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

impl FromRequest for OperatorAuth {
    type Error = AdminError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(OperatorAuth::check(req))
    }
}
