//! The mass-revocation brake over HTTP: what is held (part of `GET /sync`, paged), releasing it, reverting
//! the rule change behind it, and the per-account threshold (`GET/PATCH /settings`).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::input::{Fields, FromFields, NoQuery, PAGING_PARAMS, Paging, Problems, Query, merge_patch};
use super::{AdminError, AdminResult, MergePatch, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::{ReleaseError, release_hold};
use crate::store::sync::BrakeSettings;
use crate::store::{AccountId, Store};

/// The brake's part of `GET /sync`: `state` (`off`, `held` or `running`) and, while held, the cause, the
/// count, the groups a `groupDeleted` cause names, and a page (`startIndex`, `count`, 50 by default, with
/// `totalResults`) of who would lose what.
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
    let mut view = json!({
        "cause": hold.cause, "since": hold.since, "count": hold.users.len(),
        "revertible": hold.rules_before.is_some(),
        "totalResults": hold.users.len(), "startIndex": start.max(1), "itemsPerPage": users.len(), "users": users,
    });
    if !hold.groups.is_empty() {
        view["groups"] = json!(hold.groups);
    }
    Ok(json!({"state": "held", "hold": view}))
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

/// The account's settings as a body reads them: every field required (a PATCH merges into the current
/// settings first, so what it leaves out stays).
struct SettingsInput {
    percent: u32,
    min_users: u64,
}

impl FromFields for SettingsInput {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let mut brake = f.object("massRevocation");
        if brake.is_none() && !f.has("massRevocation") {
            f.problem("massRevocation", "is required");
        }
        let read = brake.as_mut().map(|b| (b.required::<u32>("percent"), b.required::<u64>("minUsers")));
        if let Some(b) = brake {
            f.absorb(b);
        }
        let (percent, min_users) = read?;
        Some(SettingsInput { percent: percent?, min_users: min_users? })
    }
}

/// `PATCH /settings {"massRevocation": {"percent", "minUsers"}}`: a merge patch (what is left out stays);
/// every problem of the body is reported at once.
pub async fn patch_settings(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    patch: MergePatch,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let mut value = settings_view(&state.store.brake_settings(acct)?);
    merge_patch(&mut value, &patch.0);
    let input = SettingsInput::from_value(value)?;
    let mut problems = Problems::default();
    if input.percent > 100 {
        problems.add("massRevocation.percent", format!("{} is not a percentage (0 to 100)", input.percent));
    }
    problems.values()?;
    let settings = BrakeSettings { percent: input.percent, min_users: input.min_users };
    state.store.put_brake_settings(acct, &settings, &caller.0.actor())?;
    state.committed().await?;
    Ok(ok(&settings_view(&settings)))
}
