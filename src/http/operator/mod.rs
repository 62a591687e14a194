//! The operator API, `/operator/v1`: what the operator of a server does for all its accounts while it runs.
//! Every handler takes [`OperatorAuth`]; errors use the admin API's error body. Later operator routes are
//! added to [`routes`].

mod accounts;
mod auth;
mod limits;

pub use auth::{OperatorAuth, OperatorKey};

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::http::admin::AdminError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/operator/v1")
            .service(resource!("/accounts", get => accounts::list, post => accounts::create))
            .service(resource!("/accounts/{id}", get => accounts::get, delete => accounts::delete))
            .service(resource!("/accounts/{id}/tokens", get => accounts::list_tokens,
                post => accounts::create_token))
            .service(resource!("/accounts/{id}/tokens/{token}", delete => accounts::revoke_token))
            .service(resource!("/accounts/{id}/rate-limit", get => limits::get, put => limits::put,
                delete => limits::delete))
            .service(resource!("/accounts/{id}/domains/{domain}/verify", post => accounts::verify_domain))
            // after `tokens` and `rate-limit`, which it would otherwise take: `suspend` and `resume`
            .service(resource!("/accounts/{id}/{action}", post => accounts::suspend_or_resume))
            .default_service(web::to(not_found)),
    );
}

/// Unknown paths: 404 only to the operator, so that the API's shape is not shown to anyone else.
async fn not_found(req: HttpRequest, _: OperatorAuth) -> HttpResponse {
    AdminError::not_found(format!("no such endpoint: {} {}", req.method(), req.path())).error_response()
}
