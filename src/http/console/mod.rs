//! The admin console (`/console`): server-rendered pages from templates checked at compile time, every asset
//! served from the binary, enhanced by vendored htmx. Every page is a plain form that posts, redirects and
//! gets; a request htmx makes (`HX-Request`) gets the part of the page it swaps. Handlers call the same
//! store and rules functions as the admin API.

mod activity;
mod assets;
mod attributes;
mod failures;
mod home;
mod objects;
mod pages;
mod products;
mod rules;
mod session;
mod signin;
mod tokens;
mod users;
mod webhooks;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;

pub use session::shared as shared_sessions;

use crate::rules::{RetryError, SaveError};
use crate::store::StoreError;
use crate::store::sync::{EmailTemplate, SettingsTemplate, UserGroup};

/// Only the console's own scripts and styles, no inline script, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Why a console request did not get its page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Not signed in (or the session expired, or its token was revoked): go to the sign-in page, then
    /// back to the page given.
    #[error("sign in first")]
    SignIn { back: Option<String>, htmx: bool },
    /// A form without this session's CSRF token.
    #[error("the form did not carry this session's CSRF token")]
    Csrf,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error")]
    Internal,
}

pub type ConsoleResult<T> = Result<T, ConsoleError>;

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(e) => ConsoleError::BadRequest(e.detail),
            StoreError::NotFound(what) => ConsoleError::NotFound(format!("{what} not found")),
            StoreError::Conflict(m) | StoreError::Rejected(m) => ConsoleError::Conflict(m),
            StoreError::PreconditionFailed(_) => ConsoleError::Conflict(
                "the rules were changed meanwhile; reload the page and try again".into(),
            ),
            other => {
                log::error!("storage failure: {other}");
                ConsoleError::Internal
            }
        }
    }
}

impl From<SaveError> for ConsoleError {
    fn from(e: SaveError) -> Self {
        match e {
            SaveError::Rule(e) => ConsoleError::Conflict(e.to_string()),
            SaveError::Store(e) => e.into(),
        }
    }
}

impl From<RetryError> for ConsoleError {
    fn from(e: RetryError) -> Self {
        match e {
            RetryError::UnknownUsers(_) => ConsoleError::NotFound(e.to_string()),
            RetryError::Store(e) => e.into(),
        }
    }
}

impl From<actix_web::error::BlockingError> for ConsoleError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        log::error!("console task failed: {e}");
        ConsoleError::Internal
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignIn { .. } => StatusCode::SEE_OTHER,
            ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Conflict(_) => StatusCode::CONFLICT,
            ConsoleError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ConsoleError::SignIn { back, htmx } = self {
            let to = match back {
                Some(path) => format!("/console/signin?next={}", pages::query_escape(path)),
                None => "/console/signin".to_string(),
            };
            return go_to(*htmx, &to);
        }
        let (title, message) = match self {
            ConsoleError::Csrf => (
                "Form refused",
                "This form did not come from your current console session. Reload the page and try again."
                    .to_string(),
            ),
            ConsoleError::Internal => {
                ("Something went wrong", "The request failed; it has been logged.".into())
            }
            ConsoleError::NotFound(m) => ("Not found", m.clone()),
            other => ("The request was refused", other.to_string()),
        };
        let page = pages::ErrorPage { layout: pages::Layout::public(title), message };
        html(self.status_code(), &page)
    }
}

/// A redirect (303); for htmx, which would follow it and swap the whole page into a part of one, the
/// header that makes it load the page instead.
pub fn go_to(htmx: bool, to: &str) -> HttpResponse {
    if htmx {
        return HttpResponse::Ok().insert_header(("HX-Redirect", to.to_string())).finish();
    }
    HttpResponse::SeeOther().insert_header((header::LOCATION, to.to_string())).finish()
}

/// Whether htmx made this request (and wants the part of the page it swaps).
pub fn is_htmx(req: &HttpRequest) -> bool {
    req.headers().get("HX-Request").is_some_and(|v| v.as_bytes() == b"true")
}

/// A rendered template as an HTML answer.
pub fn html(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(body) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body),
        Err(e) => {
            log::error!("console template failed: {e}");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("internal error")
        }
    }
}

pub fn page(template: &impl Template) -> ConsoleResult<HttpResponse> {
    Ok(html(StatusCode::OK, template))
}

/// After a form post: go to `to`.
pub fn redirect(req: &HttpRequest, to: &str) -> ConsoleResult<HttpResponse> {
    Ok(go_to(is_htmx(req), to))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    let headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)))
        .add((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .add((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .add((header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .add((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    cfg.service(
        web::scope("/console")
            .wrap(headers)
            .configure(assets::routes)
            .route("/email-templates/chosen", web::get().to(objects::chosen))
            .configure(objects::routes_of::<UserGroup>)
            .configure(objects::routes_of::<SettingsTemplate>)
            .configure(objects::routes_of::<EmailTemplate>)
            .route("", web::get().to(home::show))
            .route("/status", web::get().to(home::status))
            .route("/sync", web::post().to(home::switch))
            .route("/hold", web::get().to(home::held))
            .route("/sync/release", web::post().to(home::release))
            .route("/sync/revert", web::post().to(home::revert))
            .route("/signin", web::get().to(signin::form))
            .route("/signin", web::post().to(signin::sign_in))
            .route("/signout", web::post().to(signin::sign_out))
            .route("/rules", web::get().to(rules::list))
            .route("/rules/new", web::get().to(rules::new_form))
            .route("/rules/new", web::post().to(rules::create))
            .route("/rules/order", web::post().to(rules::reorder))
            .route("/rules/check-filter", web::get().to(rules::check_filter))
            .route("/rules/{id}", web::get().to(rules::show))
            .route("/rules/{id}", web::post().to(rules::replace))
            .route("/rules/{id}/move", web::post().to(rules::move_rule))
            .route("/rules/{id}/delete", web::get().to(rules::confirm_delete))
            .route("/rules/{id}/delete", web::post().to(rules::delete))
            .route("/failures/{reason}", web::get().to(failures::details))
            .route("/failures/{reason}/retry", web::post().to(failures::retry))
            .route("/products", web::get().to(products::list))
            .route("/products/{id}/seats", web::post().to(products::set_seats))
            .route("/users", web::get().to(users::list))
            .route("/users/{id}", web::get().to(users::show))
            .route("/activity", web::get().to(activity::list))
            .route("/custom-attributes", web::get().to(attributes::list))
            .route("/custom-attributes", web::post().to(attributes::add))
            .route("/custom-attributes/{name}/remove", web::post().to(attributes::remove))
            .route("/email-templates/{id}/preview", web::get().to(objects::preview))
            .route("/webhooks", web::get().to(webhooks::list))
            .route("/webhooks", web::post().to(webhooks::create))
            .route("/webhooks/{id}", web::get().to(webhooks::show))
            .route("/webhooks/{id}", web::post().to(webhooks::replace))
            .route("/webhooks/{id}/resume", web::post().to(webhooks::resume))
            .route("/webhooks/{id}/delete", web::get().to(webhooks::confirm_delete))
            .route("/webhooks/{id}/delete", web::post().to(webhooks::delete))
            .route("/tokens", web::get().to(tokens::list))
            .route("/tokens", web::post().to(tokens::create))
            .route("/tokens/{id}/revoke", web::get().to(tokens::confirm_revoke))
            .route("/tokens/{id}/revoke", web::post().to(tokens::revoke))
            .default_service(web::to(not_found)),
    );
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    ConsoleError::NotFound(format!("There is no console page at {}.", req.path())).error_response()
}
