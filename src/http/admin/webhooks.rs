//! Webhooks (`/webhooks`, `/webhooks/{id}`, `/webhooks/{id}/resume`): subscriptions to the entitlement
//! change feed with their delivery state and log, and the queue status `GET /sync` shows of them.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::input::{
    Fields, FromFields, NoQuery, PAGING_PARAMS, Paging, Problems, Query, check_object_id, if_match, with_etag,
};
use super::{AdminError, AdminResult, Strict, created_or_ok, ok};
use crate::delivery::webhooks::{KEY_BYTES, SECRET_PREFIX, signing_key};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::store::feed::ChangeKind;
use crate::store::webhooks::{Webhook, WebhookState};
use crate::store::{AccountId, Store, StoreResult};

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

/// What is wrong with a webhook's URL: an absolute `http` or `https` URL with a host, no fragment.
fn url_problem(url: &str) -> Option<String> {
    match reqwest::Url::parse(url) {
        Err(e) => Some(format!("'{url}' is not a URL ({e})")),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => Some("must be an http or https URL".into()),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("must name a host".into()),
        Ok(u) if u.fragment().is_some() => Some("must not have a fragment".into()),
        Ok(_) => None,
    }
}

/// The state of a webhook in a word: `active`, `retrying` (the last attempt failed) or `paused`.
fn status_word(state: &WebhookState) -> &'static str {
    if state.paused {
        "paused"
    } else if state.failures > 0 {
        "retrying"
    } else {
        "active"
    }
}

/// How far behind a webhook is: changes after its position, and the time of the oldest of them.
fn backlog(
    store: &Store,
    acct: AccountId,
    head: u64,
    state: &WebhookState,
) -> StoreResult<(u64, Option<String>)> {
    let waiting = head.saturating_sub(state.position);
    let oldest = match waiting {
        0 => None,
        _ => store.change(acct, state.position + 1)?.map(|c| c.time),
    };
    Ok((waiting, oldest))
}

/// A webhook as the admin API shows it (never its secret).
fn view(store: &Store, acct: AccountId, hook: &Webhook, state: &WebhookState) -> StoreResult<Value> {
    let head = store.feed_head(acct)?;
    let (waiting, oldest) = backlog(store, acct, head, state)?;
    let events: Vec<&str> = hook.events.iter().map(|e| e.as_str()).collect();
    Ok(json!({
        "id": hook.id,
        "url": hook.url,
        "events": events,
        "status": status_word(state),
        "position": state.position,
        "waiting": waiting,
        "oldestWaiting": oldest,
        "failures": state.failures,
        "nextAttempt": state.next_attempt,
        "pausedSince": state.paused_since,
        "delivered": state.delivered,
        "log": state.log,
    }))
}

/// Every webhook's queue for `GET /sync`: changes waiting, the age of the oldest in seconds, failures in
/// a row and whether it is paused.
pub fn queue_status(store: &Store, acct: AccountId) -> StoreResult<Value> {
    let head = store.feed_head(acct)?;
    let now = store.now();
    let mut hooks = Vec::new();
    for (hook, _, state) in store.webhooks(acct)? {
        let (waiting, oldest) = backlog(store, acct, head, &state)?;
        let age = oldest
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0));
        hooks.push(json!({"id": hook.id, "status": status_word(&state), "waiting": waiting,
            "oldestWaitingSeconds": age, "failures": state.failures}));
    }
    Ok(json!({"feedCursor": head, "webhooks": hooks}))
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
        hooks.iter().map(|(h, _, s)| view(&state.store, acct, h, s)).collect::<StoreResult<Vec<_>>>()?;
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
    let mut problems = Problems::default();
    if let Some(why) = url_problem(&input.url) {
        problems.add("url", why);
    }
    let secret = match (&input.secret, &existing) {
        (Some(secret), _) => {
            if signing_key(secret).is_none() {
                problems.add(
                    "secret",
                    format!(
                        "must be '{SECRET_PREFIX}' followed by the base64 of a key of {} to {} bytes",
                        KEY_BYTES.start(),
                        KEY_BYTES.end()
                    ),
                );
            }
            secret.clone()
        }
        (None, Some((old, _, _))) => old.secret.clone(),
        (None, None) => {
            problems.add("secret", "is required to create a webhook");
            String::new()
        }
    };
    let mut events = Vec::new();
    for (i, name) in input.events.iter().enumerate() {
        match ChangeKind::parse(name) {
            Some(kind) if !events.contains(&kind) => events.push(kind),
            Some(_) => {}
            None => {
                let known: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
                problems.add(format!("events[{i}]"), format!("'{name}' is not one of {}", known.join(", ")));
            }
        }
    }
    if input.events.is_empty() {
        problems.add("events", "must name at least one event");
    }
    problems.values()?;
    let hook = Webhook { id: id.to_string(), url: input.url, secret, events };
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
