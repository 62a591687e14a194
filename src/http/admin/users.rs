//! What the engine did for users: failures by reason and their retry, the activity history and the
//! welcome outbox (explanations of entitlements are in `explain`).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use actix_web::http::StatusCode;

use super::input::{self, NoQuery, Paging, Query};
use super::input::{Fields, FromFields};
use super::{AdminError, AdminResult, OptionalStrict, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::{RetrySelection, retry_failures};
use crate::store::activity::ACTIVITY_TYPES;
use crate::store::sync::{FailureReason, MailStatus, OutboxMessage};
use crate::store::{AccountId, ActivityQuery, Store};

/// The user an admin path names by id or userName, or a 404 saying so.
pub(super) fn user_or_404(store: &Store, acct: AccountId, id_or_name: &str) -> AdminResult<(String, Value)> {
    store
        .resolve_user(acct, id_or_name)?
        .ok_or_else(|| AdminError::not_found(format!("no user has the id or userName '{id_or_name}'")))
}

/// A `?product=` that must name a product of the account (a 422 otherwise).
pub(super) fn known_product(store: &Store, acct: AccountId, query: &Query) -> AdminResult<Option<String>> {
    let Some(p) = query.get("product") else { return Ok(None) };
    if store.product(acct, p)?.is_none() {
        return Err(input::one(
            StatusCode::UNPROCESSABLE_ENTITY,
            "?product",
            format!("no product '{p}' in this account"),
        ));
    }
    Ok(Some(p.to_string()))
}

const REASONS: [&str; 3] = ["outOfLicenses", "existingAccount", "welcomeEmailFailed"];

/// A failure reason a body names, or a 422 naming the reasons there are.
fn failure_reason(reason: &str) -> AdminResult<FailureReason> {
    serde_json::from_value(Value::String(reason.to_string())).map_err(|_| {
        input::one(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason",
            format!("'{reason}' is not a failure reason ({})", REASONS.join(", ")),
        )
    })
}

/// `GET /failures?reason=&startIndex=&count=`: failing users (oldest failure first), a page of them, and
/// how many fail for each reason.
pub async fn failures(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let query = Query::parse(&req, &["reason", "startIndex", "count"])?;
    let paging = Paging::from_query(&query)?;
    let reason = query.choice("reason", &REASONS)?;
    let acct = caller.0.account();
    let mut failures = state.store.failures(acct)?;
    failures.extend(state.store.mail_failures(acct)?);
    failures.sort_by(|(a, fa), (b, fb)| (&fa.since, a).cmp(&(&fb.since, b)));
    let mut by_reason: BTreeMap<FailureReason, usize> = BTreeMap::new();
    for (_, f) in &failures {
        *by_reason.entry(f.reason).or_default() += 1;
    }
    let chosen = failures.iter().filter(|(_, f)| reason.is_none_or(|r| r == f.reason.as_str()));
    let page = paging.page(chosen.map(|(uid, f)| {
        json!({"id": uid, "userName": f.user_name, "reason": f.reason, "detail": f.detail, "products": f.products,
            "rule": f.rule, "since": f.since})
    }));
    let counts: Vec<Value> = by_reason.into_iter().map(|(r, n)| json!({"reason": r, "count": n})).collect();
    let mut body = serde_json::to_value(&page).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        map.insert("byReason".into(), Value::Array(counts));
    }
    Ok(ok(&body))
}

/// Which failures to retry: `{"reason": ...}`, `{"users": [...]}`, or all of them (`{}` or no body).
#[derive(Default)]
pub struct RetryRequest {
    reason: Option<String>,
    users: Option<Vec<String>>,
}

impl FromFields for RetryRequest {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let reason: Option<String> = f.optional("reason");
        let users: Option<Vec<String>> = f.optional("users");
        if reason.is_some() && users.is_some() {
            f.problem("users", "give either \"reason\" or \"users\", not both");
        }
        Some(RetryRequest { reason, users })
    }
}

/// `POST /failures/retry`: re-evaluates all failing users, those of one reason, or chosen users (ids or
/// userNames), now. Chosen users who are not failing are answered as `notFailing` and left alone; unknown
/// ones fail the whole request (404 listing them) before anything is retried.
pub async fn retry(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    body: OptionalStrict<RetryRequest>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let request = body.0.unwrap_or_default();
    let selection = match (request.users, request.reason) {
        (Some(users), _) => RetrySelection::Users(users),
        (None, Some(reason)) => RetrySelection::Reason(failure_reason(&reason)?),
        (None, None) => RetrySelection::All,
    };
    let Some(engine) = state.engine.clone() else {
        return Err(AdminError::conflict("the rule engine is not running"));
    };
    let store = state.store.clone();
    let actor = caller.0.actor();
    let outcome = web::block(move || retry_failures(&engine, &store, acct, &actor, &selection))
        .await
        .map_err(|e| {
            AdminError::new(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    state.store.durable().await?;
    Ok(ok(&json!({"retried": outcome.retried, "resolved": outcome.resolved,
        "stillFailing": outcome.still_failing, "notFailing": outcome.not_failing,
        "welcomeEmailsQueued": outcome.requeued.len()})))
}

/// `GET /activity?type=&user=&target=&actor=&before=&startIndex=&count=`: newest first, paged like every
/// list (`totalResults` counts the entries that match); `next` is a cursor: with `before=next` the following
/// page stays where it is while new entries arrive. `user` and `target` take an id or a name (userName, group
/// displayName); `actor` a recorded actor or a token's name.
pub async fn activity(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let query = Query::parse(&req, &["type", "user", "target", "actor", "before", "startIndex", "count"])?;
    let paging = Paging::from_query(&query)?;
    let acct = caller.0.account();
    let before = query
        .get("before")
        .map(|b| b.parse::<u64>())
        .transpose()
        .map_err(|_| input::one(StatusCode::BAD_REQUEST, "?before", "must be a cursor from 'next'"))?;
    let kind = query.get("type").map(str::to_string);
    if let Some(k) = &kind
        && !ACTIVITY_TYPES.contains(&k.as_str())
    {
        let message = format!("'{k}' is not an activity type ({})", ACTIVITY_TYPES.join(", "));
        return Err(input::one(StatusCode::UNPROCESSABLE_ENTITY, "?type", message));
    }
    // A deleted user is still in the history: an id that resolves to no one is taken as it is.
    let user = match query.get("user") {
        Some(u) => Some(state.store.resolve_user(acct, u)?.map_or_else(|| u.to_string(), |(uid, _)| uid)),
        None => None,
    };
    let target = match query.get("target") {
        Some(t) => Some(resolve_target(&state.store, acct, t)?),
        None => None,
    };
    let actor = query.get("actor").map(str::to_string);
    let q = ActivityQuery { kind, user, target, actor, limit: paging.count, before, skip: paging.skip() };
    let found = state.store.activity_page(acct, &q)?;
    let page = paging.of(found.total, found.entries);
    let mut body = serde_json::to_value(&page).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        map.insert("next".into(), json!(found.next));
    }
    Ok(ok(&body))
}

/// The id a `?target=` names: a user (id or userName), a directory group (id or displayName), else the
/// text itself (a rule, product, object or token id).
fn resolve_target(store: &Store, acct: AccountId, target: &str) -> AdminResult<String> {
    if let Some((uid, _)) = store.resolve_user(acct, target)? {
        return Ok(uid);
    }
    Ok(store.resolve_group(acct, target)?.unwrap_or_else(|| target.to_string()))
}

/// The outbox states a `?status=` may name.
const MAIL_STATES: [&str; 6] = ["queued", "deferred", "sent", "failed", "cancelled", "notConfigured"];

/// A message's state as the outbox shows it: `notConfigured` for a message waiting while no mail
/// server is configured.
fn mail_state(state: &AppState, m: &OutboxMessage) -> Value {
    match m.status {
        MailStatus::Queued | MailStatus::Deferred if state.mail.is_none() => json!("notConfigured"),
        status => json!(status),
    }
}

/// `GET /outbox?to=&status=&startIndex=&count=`: welcome messages, oldest first, each with where its
/// delivery stands.
pub async fn outbox(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let query = Query::parse(&req, &["to", "status", "startIndex", "count"])?;
    let paging = Paging::from_query(&query)?;
    let to = query.get("to").map(str::to_lowercase);
    let status = query.choice("status", &MAIL_STATES)?.map(|s| json!(s));
    let acct = caller.0.account();
    let messages = state.store.outbox(acct)?;
    let chosen = messages
        .into_iter()
        .filter(|m| to.as_deref().is_none_or(|t| m.to.to_lowercase() == t))
        .filter(|m| status.as_ref().is_none_or(|s| *s == mail_state(&state, m)));
    let page = paging.page(chosen);
    let mut resources = Vec::with_capacity(page.resources.len());
    for m in &page.resources {
        let user_name = match state.store.user(acct, &m.user)? {
            Some(u) => u.get("userName").cloned(),
            None => m.user_name.clone().map(Value::String),
        };
        resources.push(json!({"id": m.id, "user": m.user, "userName": user_name, "to": m.to,
            "template": m.template, "language": m.language, "subject": m.subject, "body": m.body,
            "created": m.created, "status": mail_state(&state, m), "attempts": m.attempts,
            "lastAttempt": m.last_attempt, "nextAttempt": m.next_attempt, "queueId": m.queue_id,
            "reply": m.reply}));
    }
    Ok(ok(&paging.of(page.total_results, resources)))
}
