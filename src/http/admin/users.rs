//! What the engine did for users: one user's entitlements with their provenance, every user's bundle,
//! failures by reason and their retry, the activity history and the welcome outbox.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminError, AdminResult, OptionalBody, ok};
use crate::http::AppState;
use crate::http::request::{AdminCaller, Params};
use crate::store::sync::{Applied, Entitlement, EntitlementState, Failure, FailureReason, SyncConfig};
use crate::store::{AccountId, ActivityQuery, Store, is_active};

fn state_of(entitlement: Option<&Entitlement>, failure: Option<&Failure>, user: &Value) -> EntitlementState {
    match (failure, entitlement) {
        (Some(_), _) => EntitlementState::Failed,
        (None, Some(e)) => e.state,
        (None, None) if !is_active(user) => EntitlementState::Suspended,
        (None, None) => EntitlementState::None,
    }
}

/// One user's entitlements in the reference's shape.
fn entitlement_view(
    store: &Store,
    acct: AccountId,
    config: &SyncConfig,
    uid: &str,
    user: &Value,
) -> AdminResult<Value> {
    let entitlement = store.entitlement(acct, uid)?;
    let failure = store.failure(acct, uid)?;
    let bundle = entitlement.as_ref().and_then(|e| e.bundle.clone()).unwrap_or_default();
    let granted = entitlement.as_ref().is_some_and(|e| e.bundle.is_some());
    Ok(json!({
        "user": uid,
        "userName": user.get("userName"),
        "state": state_of(entitlement.as_ref(), failure.as_ref(), user),
        "rule": entitlement.as_ref().and_then(|e| e.rule.as_deref()).and_then(|id| config.reference(id)),
        "matchedRules": entitlement.as_ref().map(|e| config.references(&e.matched_rules)).unwrap_or_default(),
        "products": bundle.products,
        "admin": bundle.admin,
        "language": granted.then_some(bundle.language),
        "welcomeEmail": granted.then_some(bundle.welcome_email),
        "userGroup": bundle.user_group,
        "settingsTemplate": granted.then_some(bundle.settings_template),
        "failure": failure.map(|f| json!({"reason": f.reason, "detail": f.detail, "intended": f.intended, "products": f.products, "since": f.since})),
        "updated": entitlement.as_ref().map(|e| e.updated.clone()),
    }))
}

/// `GET /users/{id}/entitlements`.
pub async fn entitlements_of(
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let user =
        state.store.user(acct, &id)?.ok_or_else(|| AdminError::not_found(format!("user {id} not found")))?;
    let config = state.store.sync_config(acct)?;
    Ok(ok(&entitlement_view(&state.store, acct, &config, &id, &user)?))
}

fn number(params: &Params, name: &str, default: usize) -> AdminResult<usize> {
    params
        .get(name)
        .map(|v| v.trim().parse::<i64>().map(|n| n.max(0) as usize))
        .transpose()
        .map(|v| v.unwrap_or(default))
        .map_err(|_| AdminError::bad_request(format!("'{name}' must be an integer")))
}

/// `GET /entitlements?product=&startIndex=&count=`: users and their bundles, in user order.
pub async fn entitlements(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let params = Params::parse(&req).map_err(|e| AdminError::bad_request(e.to_string()))?;
    let product = params.get("product");
    let start = number(&params, "startIndex", 1)?.max(1);
    let count = number(&params, "count", 100)?.min(1000);
    let all: Vec<(String, Entitlement)> = state
        .store
        .entitlements(acct)?
        .into_iter()
        .filter(|(_, e)| {
            product.is_none_or(|p| e.bundle.as_ref().is_some_and(|b| b.products.iter().any(|x| x == p)))
        })
        .collect();
    let config = state.store.sync_config(acct)?;
    let mut page = Vec::new();
    for (uid, _) in all.iter().skip(start - 1).take(count) {
        if let Some(user) = state.store.user(acct, uid)? {
            page.push(entitlement_view(&state.store, acct, &config, uid, &user)?);
        }
    }
    Ok(ok(
        &json!({"totalResults": all.len(), "startIndex": start, "itemsPerPage": page.len(), "Resources": page}),
    ))
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
