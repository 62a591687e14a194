//! Webhooks (`/webhooks`, `/webhooks/{id}`, `/webhooks/{id}/resume`): subscriptions to the entitlement
//! change feed with their delivery state and log (checked and described by `delivery::subscriptions`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::input::{
    FieldError, Fields, FromFields, NoQuery, PAGING_PARAMS, Paging, Query, check_object_id, if_match,
    with_etag,
};
use super::{AdminError, AdminResult, Strict, created_or_ok, ok};
use crate::delivery::subscriptions::{WebhookDraft, WebhookView, check_webhook, webhook_view};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::store::webhooks::{Webhook, WebhookState};
use crate::store::{AccountId, Store};

/// A webhook as a PUT body gives it: `url` and `events` always, `secret` when creating (a replace
/// without one keeps the secret).
pub struct WebhookInput {
    id: Option<String>,
    url: String,
    secret: Option<String>,
    events: Vec<String>,
}

impl FromFields for WebhookInput {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let id = f.optional("id");
        let url = f.required("url");
        let secret = f.optional("secret");
        let events = f.required("events");
        Some(WebhookInput { id, url: url?, secret, events: events? })
    }
}

/// A webhook as the admin API shows it (never its secret).
fn view(store: &Store, acct: AccountId, hook: &Webhook, state: &WebhookState) -> AdminResult<WebhookView> {
    Ok(webhook_view(store, acct, hook, state)?)
}

fn webhook_or_404(store: &Store, acct: AccountId, id: &str) -> AdminResult<(Webhook, String, WebhookState)> {
    store.webhook(acct, id)?.ok_or_else(|| AdminError::not_found(format!("webhook {id} not found")))
}

/// `GET /webhooks?startIndex=&count=`.
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let paging = Paging::from_query(&Query::parse(&req, &PAGING_PARAMS)?)?;
    let hooks = state.store.webhooks(acct)?;
    let views =
        hooks.iter().map(|(h, _, s)| view(&state.store, acct, h, s)).collect::<AdminResult<Vec<_>>>()?;
    Ok(ok(&paging.page(views)))
}

pub async fn get(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let (hook, version, hook_state) = webhook_or_404(&state.store, acct, &id)?;
    Ok(with_etag(ok(&view(&state.store, acct, &hook, &hook_state)?), &version))
}

/// `PUT /webhooks/{id}`: creates or replaces a webhook. A new one gets the changes committed from then
/// on; a replaced one keeps its position, state and (without `secret`) its secret.
pub async fn put(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
    body: Strict<WebhookInput>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    check_object_id(&id)?;
    let input = body.0;
    if let Some(body_id) = input.id.as_deref().filter(|b| *b != id.as_str()) {
        return Err(super::input::one(
            StatusCode::BAD_REQUEST,
            "id",
            format!("the body's id '{body_id}' differs from the path's '{id}'"),
        ));
    }
    let wanted = if_match(&req)?;
    let existing = state.store.webhook(acct, &id)?;
    let draft = WebhookDraft { url: input.url, secret: input.secret, events: input.events };
    let hook = check_webhook(&id, draft, existing.as_ref().map(|(old, _, _)| old)).map_err(|found| {
        let errors = found.into_iter().map(|(field, message)| FieldError { field, message }).collect();
        AdminError::fields(StatusCode::UNPROCESSABLE_ENTITY, errors)
    })?;
    let created = state.store.put_webhook_if(acct, &hook, wanted.as_deref(), &caller.0.actor())?;
    state.committed().await?;
    let (hook, version, hook_state) = webhook_or_404(&state.store, acct, &id)?;
    Ok(with_etag(created_or_ok(created, &view(&state.store, acct, &hook, &hook_state)?), &version))
}

pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    state.store.delete_webhook_if(acct, &id, if_match(&req)?.as_deref(), &caller.0.actor())?;
    state.committed().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /webhooks/{id}/resume`: a paused webhook is tried again at once, from where it stopped.
pub async fn resume(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    state.store.resume_webhook(acct, &id, &caller.0.actor())?;
    state.committed().await?;
    let (hook, version, hook_state) = webhook_or_404(&state.store, acct, &id)?;
    Ok(with_etag(ok(&view(&state.store, acct, &hook, &hook_state)?), &version))
}
