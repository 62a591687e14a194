//! Previewing an email template: its subject and body rendered for a real user of the account or a sample
//! one, in a chosen language.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::input::{self, Fields, FromFields, NoQuery};
use super::{AdminError, AdminResult, OptionalStrict, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::{LANGUAGES, builtin_template, render};
use crate::store::sync::{EmailTemplate, ObjectKind};

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

/// The user a preview shows when none is named.
fn sample_user() -> Value {
    json!({"id": "sample", "userName": "jane.doe@example.com", "displayName": "Jane Doe",
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "emails": [{"value": "jane.doe@example.com", "primary": true}]})
}

/// `POST /email-templates/{id}/preview {"user": id or userName, "language": ...}`: nothing is sent.
pub async fn preview(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
    body: OptionalStrict<PreviewRequest>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let request = body.0.unwrap_or_default();
    let template = match state.store.object::<EmailTemplate>(acct, ObjectKind::EmailTemplate, &id)? {
        Some(t) => t,
        None if id.as_str() == "default" => builtin_template(),
        None => return Err(AdminError::not_found(format!("email-template {id} not found"))),
    };
    let language = request.language.unwrap_or_else(|| "en_US".into());
    if !LANGUAGES.contains(&language.as_str()) {
        let message = format!("'{language}' is not one of {}", LANGUAGES.join(", "));
        return Err(input::one(StatusCode::UNPROCESSABLE_ENTITY, "language", message));
    }
    let user = match &request.user {
        Some(u) => state.store.resolve_user(acct, u)?.map(|(_, user)| user).ok_or_else(|| {
            input::one(
                StatusCode::UNPROCESSABLE_ENTITY,
                "user",
                format!("no user has the id or userName '{u}'"),
            )
        })?,
        None => sample_user(),
    };
    let (used, subject, text) = render(&user, &template, &language);
    Ok(ok(&json!({"template": template.id, "language": used, "requestedLanguage": language,
        "user": {"id": user.get("id"), "userName": user.get("userName")}, "subject": subject, "body": text})))
}
