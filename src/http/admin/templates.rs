//! Previewing an email template: its subject and body rendered for a real user of the account or a sample
//! one, in a chosen language.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::input::{self, Fields, FromFields, NoQuery};
use super::{AdminError, AdminResult, OptionalStrict, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::{PreviewError, preview_template};

#[derive(Default)]
pub struct PreviewRequest {
    user: Option<String>,
    language: Option<String>,
}

impl FromFields for PreviewRequest {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        Some(PreviewRequest { user: f.optional("user"), language: f.optional("language") })
    }
}

/// `POST /email-templates/{id}/preview {"user": id or userName, "language": ...}`: nothing is sent.
pub async fn preview(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
    body: OptionalStrict<PreviewRequest>,
) -> AdminResult<HttpResponse> {
    let request = body.0.unwrap_or_default();
    let shown = preview_template(
        &state.store,
        caller.0.account(),
        &id,
        request.user.as_deref(),
        request.language.as_deref(),
    )
    .map_err(|e| match e {
        PreviewError::NoTemplate(_) => AdminError::not_found(e.to_string()),
        PreviewError::Field(field, message) => input::one(StatusCode::UNPROCESSABLE_ENTITY, field, message),
        PreviewError::Store(e) => e.into(),
    })?;
    Ok(ok(&json!({"template": shown.template, "language": shown.language,
        "requestedLanguage": shown.requested_language,
        "user": {"id": shown.user.get("id"), "userName": shown.user.get("userName")}, "subject": shown.subject,
        "body": shown.body})))
}
