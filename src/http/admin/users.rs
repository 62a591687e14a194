//! What the engine did for users: failures by reason and their retry, the activity history and the
//! welcome outbox (explanations of entitlements are in `explain`).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminError, AdminResult, OptionalBody, ok};
use crate::http::AppState;
use crate::http::request::{AdminCaller, Params};
use crate::store::sync::{Applied, Failure, FailureReason};
use crate::store::{AccountId, ActivityQuery, Store};

pub(super) fn number(params: &Params, name: &str, default: usize) -> AdminResult<usize> {
    params
        .get(name)
        .map(|v| v.trim().parse::<i64>().map(|n| n.max(0) as usize))
        .transpose()
        .map(|v| v.unwrap_or(default))
        .map_err(|_| AdminError::bad_request(format!("'{name}' must be an integer")))
}

/// `GET /failures`: by reason, with the users and a detail each.
pub async fn failures(state: web::Data<AppState>, caller: AdminCaller) -> AdminResult<HttpResponse> {
    let failures = state.store.failures(caller.0.account())?;
    let mut by_reason: BTreeMap<FailureReason, Vec<Value>> = BTreeMap::new();
    for (uid, f) in &failures {
        by_reason
            .entry(f.reason)
            .or_default()
            .push(json!({"id": uid, "userName": f.user_name, "detail": f.detail, "products": f.products}));
    }
    let groups: Vec<Value> = by_reason
        .into_iter()
        .map(|(reason, users)| json!({"reason": reason, "count": users.len(), "users": users}))
        .collect();
    Ok(ok(&json!({"total": failures.len(), "byReason": groups})))
}

/// Which failures to retry: `{"reason": ...}`, `{"users": [...]}`, or all of them (`{}` or no body).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    reason: Option<FailureReason>,
    users: Option<Vec<String>>,
}

/// `POST /failures/retry`: re-evaluates all failing users, those of one reason, or chosen users (ids or
/// userNames), now. Chosen users who are not failing are answered as `notFailing` and left alone; unknown
/// ones fail the whole request (404 listing them) before anything is retried.
pub async fn retry(
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: OptionalBody<RetryRequest>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let request = body.0.unwrap_or_default();
    if request.reason.is_some() && request.users.is_some() {
        return Err(AdminError::bad_request("give either \"reason\" or \"users\", not both"));
    }
    if !state.store.sync_config(acct)?.enabled {
        return Err(AdminError::conflict("sync is off; switch it on to apply rules"));
    }
    let failing = state.store.failures(acct)?;
    let (chosen, not_failing) = match (&request.users, request.reason) {
        (Some(users), _) => chosen_users(&state.store, acct, users, &failing)?,
        (None, Some(reason)) => {
            (failing.iter().filter(|(_, f)| f.reason == reason).map(|(u, _)| u.clone()).collect(), vec![])
        }
        (None, None) => (failing.iter().map(|(u, _)| u.clone()).collect(), vec![]),
    };
    let Some(engine) = state.engine.clone() else {
        return Err(AdminError::conflict("the rule engine is not running"));
    };
    let uids = chosen.clone();
    let results = web::block(move || engine.evaluate_now(acct, &uids)).await.map_err(|e| {
        AdminError::new(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })??;
    state.store.durable().await;
    let still = results.iter().filter(|(_, a)| matches!(a, Applied::Failed(_))).count();
    let resolved = results.len() - still;
    let detail = json!({"users": chosen, "reason": request.reason, "resolved": resolved, "stillFailing": still, "notFailing": not_failing});
    state.store.record_activity(acct, &caller.0.actor(), "failures.retried", None, detail)?;
    state.store.durable().await;
    Ok(ok(
        &json!({"retried": results.len(), "resolved": resolved, "stillFailing": still, "notFailing": not_failing}),
    ))
}

/// The chosen users (ids or userNames) as ids: those failing, to retry, and those not failing, to answer
/// as such; a 404 lists every one that is no user of the account.
fn chosen_users(
    store: &Store,
    acct: AccountId,
    users: &[String],
    failing: &[(String, Failure)],
) -> AdminResult<(Vec<String>, Vec<Value>)> {
    let (mut retry, mut not_failing, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    for key in users {
        match store.user_by_id_or_name(acct, key)? {
            None => unknown.push(key.as_str()),
            Some((uid, _)) if failing.iter().any(|(u, _)| *u == uid) => retry.push(uid),
            Some((uid, user)) => not_failing.push(json!({"id": uid, "userName": user.get("userName")})),
        }
    }
    if !unknown.is_empty() {
        return Err(AdminError::not_found(format!(
            "users: no user {} in this account; nothing was retried",
            unknown.iter().map(|u| format!("'{u}'")).collect::<Vec<_>>().join(", ")
        )));
    }
    retry.sort();
    retry.dedup();
    Ok((retry, not_failing))
}

/// `GET /activity?type=&user=&limit=&before=`: newest first, `next` is the cursor of the following page.
pub async fn activity(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let params = Params::parse(&req).map_err(|e| AdminError::bad_request(e.to_string()))?;
    let before = params
        .get("before")
        .map(|b| b.parse::<u64>())
        .transpose()
        .map_err(|_| AdminError::bad_request("'before' must be a cursor from 'next'"))?;
    let query = ActivityQuery {
        kind: params.get("type").map(str::to_string),
        user: params.get("user").map(str::to_string),
        limit: number(&params, "limit", 50)?.clamp(1, 1000),
        before,
    };
    let (entries, next) = state.store.activity(caller.0.account(), &query)?;
    Ok(ok(&json!({"entries": entries, "next": next})))
}

/// `GET /outbox`: queued welcome messages, oldest first.
pub async fn outbox(state: web::Data<AppState>, caller: AdminCaller) -> AdminResult<HttpResponse> {
    let messages: Vec<Value> = state
        .store
        .outbox(caller.0.account())?
        .into_iter()
        .map(|m| json!({"id": m.id, "user": m.user, "to": m.to, "language": m.language, "subject": m.subject, "body": m.body, "created": m.created}))
        .collect();
    Ok(ok(&messages))
}
