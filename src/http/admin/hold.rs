//! The mass-revocation brake over HTTP: what is held (part of `GET /sync`, paged), releasing it, reverting
//! the rule change behind it, and the per-account threshold (`GET/PATCH /settings`).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::input::{NoQuery, PAGING_PARAMS, Paging, Query};
use super::{AdminError, AdminResult, MergePatch, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::{ReleaseError, release_hold};
use crate::store::sync::BrakeSettings;
use crate::store::{AccountId, Store};

/// The brake's part of `GET /sync`: `state` (`off`, `held` or `running`) and, while held, the cause, the
/// count and a page (`startIndex`, `count`, 50 by default) of who would lose what.
pub fn hold_status(
    store: &Store,
    acct: AccountId,
    enabled: bool,
    start: usize,
    count: usize,
) -> AdminResult<Value> {
    let Some(hold) = store.hold(acct)? else {
        return Ok(json!({"state": if enabled { "running" } else { "off" }, "hold": null}));
    };
    let users: Vec<Value> = hold
        .users
        .iter()
        .skip(start.max(1) - 1)
        .take(count)
        .map(|(id, u)| json!({"id": id, "userName": u.user_name, "loses": u.loses}))
        .collect();
    Ok(json!({"state": "held", "hold": {
        "cause": hold.cause, "since": hold.since, "count": hold.users.len(),
        "revertible": hold.rules_before.is_some(),
        "startIndex": start.max(1), "itemsPerPage": users.len(), "users": users,
    }}))
}

/// The page of held users a `GET /sync` asks for.
pub fn page(req: &HttpRequest) -> AdminResult<(usize, usize)> {
    let paging = Paging::from_query(&Query::parse(req, &PAGING_PARAMS)?)?;
    Ok((paging.start_index, paging.count))
}

/// `POST /sync/release`: applies the held revocations, as the rules decide now.
pub async fn release(state: web::Data<AppState>, caller: AdminCaller) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let Some(engine) = state.engine.clone() else {
        return Err(AdminError::conflict("the rule engine is not running"));
    };
    let (store, actor) = (state.store.clone(), caller.0.actor());
    let released = web::block(move || release_hold(&engine, &store, acct, &actor)).await.map_err(|e| {
        AdminError::new(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })?;
    let released = match released {
        Ok(n) => n,
        Err(ReleaseError::NothingHeld) => {
            return Err(AdminError::conflict(ReleaseError::NothingHeld.to_string()));
        }
        Err(ReleaseError::Store(e)) => return Err(e.into()),
    };
    state.committed().await?;
    Ok(ok(&json!({"released": released})))
}

/// `POST /sync/revert`: restores the rules as they were before the held rule change; the hold ends and
/// everyone is re-evaluated under the restored rules.
pub async fn revert(state: web::Data<AppState>, caller: AdminCaller) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let config = state.store.revert_held_change(acct, &caller.0.actor())?;
    state.committed().await?;
    Ok(ok(&json!({"reverted": true, "rules": config.rules.len(), "version": config.version})))
}

fn settings_view(settings: &BrakeSettings) -> Value {
    json!({"massRevocation": {"percent": settings.percent, "minUsers": settings.min_users}})
}

/// `GET /settings`.
pub async fn get_settings(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
) -> AdminResult<HttpResponse> {
    Ok(ok(&settings_view(&state.store.brake_settings(caller.0.account())?)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsPatch {
    mass_revocation: Option<BrakePatch>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrakePatch {
    percent: Option<u32>,
    min_users: Option<u64>,
}

/// `PATCH /settings {"massRevocation": {"percent", "minUsers"}}` (a merge patch: what is left out stays).
pub async fn patch_settings(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    patch: MergePatch,
) -> AdminResult<HttpResponse> {
    let body: SettingsPatch = serde_json::from_value(patch.0)
        .map_err(|e| super::input::one(actix_web::http::StatusCode::BAD_REQUEST, "body", e.to_string()))?;
    let acct = caller.0.account();
    let mut settings = state.store.brake_settings(acct)?;
    if let Some(brake) = body.mass_revocation {
        if let Some(percent) = brake.percent {
            if percent > 100 {
                return Err(AdminError::unprocessable(format!(
                    "massRevocation.percent: {percent} is not a percentage (0 to 100)"
                )));
            }
            settings.percent = percent;
        }
        settings.min_users = brake.min_users.unwrap_or(settings.min_users);
    }
    state.store.put_brake_settings(acct, &settings, &caller.0.actor())?;
    state.committed().await?;
    Ok(ok(&settings_view(&settings)))
}
