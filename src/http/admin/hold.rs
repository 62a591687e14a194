//! The mass-revocation brake over HTTP: what is held (part of `GET /sync`, paged), releasing it, reverting
//! the rule change behind it, and the per-account threshold (`GET/PATCH /settings`).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::input::{Fields, FromFields, NoQuery, PAGING_PARAMS, Paging, Problems, Query, merge_patch};
use super::{AdminError, AdminResult, MergePatch, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::{ReleaseError, release_hold};
use crate::store::retention::{MAX_DAYS, MAX_REQUEST_ENTRIES};
use crate::store::sync::BrakeSettings;
use crate::store::{AccountId, Retention, Store};

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

fn settings_view(settings: &BrakeSettings, retention: &Retention) -> Value {
    json!({
        "massRevocation": {"percent": settings.percent, "minUsers": settings.min_users},
        "retention": {"activityDays": retention.activity_days, "requestDays": retention.request_days,
            "requestMaxEntries": retention.request_max_entries},
        "provisioningLog": {"recordValues": retention.record_values},
    })
}

/// The account's settings as they are now.
fn current(store: &Store, acct: AccountId) -> AdminResult<Value> {
    Ok(settings_view(&store.brake_settings(acct)?, &store.retention(acct)?))
}

/// `GET /settings`.
pub async fn get_settings(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
) -> AdminResult<HttpResponse> {
    Ok(ok(&current(&state.store, caller.0.account())?))
}

/// The account's settings as a body reads them: every field required (a PATCH merges into the current
/// settings first, so what it leaves out stays).
struct SettingsInput {
    percent: u32,
    min_users: u64,
    retention: Retention,
}

impl FromFields for SettingsInput {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let section = |f: &mut Fields, name: &str| {
            let found = f.object(name);
            if found.is_none() && !f.has(name) {
                f.problem(name, "is required");
            }
            found
        };
        let mut brake = section(f, "massRevocation");
        let mut kept = section(f, "retention");
        let mut log = section(f, "provisioningLog");
        let read = brake.as_mut().map(|b| (b.required::<u32>("percent"), b.required::<u64>("minUsers")));
        let days = kept.as_mut().map(|r| {
            (
                r.required::<u32>("activityDays"),
                r.required::<u32>("requestDays"),
                r.required::<u64>("requestMaxEntries"),
            )
        });
        let values = log.as_mut().map(|l| l.required::<bool>("recordValues"));
        for nested in [brake, kept, log].into_iter().flatten() {
            f.absorb(nested);
        }
        let (percent, min_users) = read?;
        let (activity_days, request_days, request_max_entries) = days?;
        let retention = Retention {
            activity_days: activity_days?,
            request_days: request_days?,
            request_max_entries: request_max_entries?,
            record_values: values??,
        };
        Some(SettingsInput { percent: percent?, min_users: min_users?, retention })
    }
}

/// `PATCH /settings {"massRevocation": {"percent", "minUsers"}, "retention": {"activityDays", "requestDays",
/// "requestMaxEntries"}, "provisioningLog": {"recordValues"}}`: a merge patch (what is left out stays);
/// every problem of the body is reported at once.
pub async fn patch_settings(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    patch: MergePatch,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let mut value = current(&state.store, acct)?;
    merge_patch(&mut value, &patch.0);
    let input = SettingsInput::from_value(value)?;
    let mut problems = Problems::default();
    if input.percent > 100 {
        problems.add("massRevocation.percent", format!("{} is not a percentage (0 to 100)", input.percent));
    }
    let r = &input.retention;
    for (field, days) in
        [("retention.activityDays", r.activity_days), ("retention.requestDays", r.request_days)]
    {
        if !(1..=MAX_DAYS).contains(&days) {
            problems.add(field, format!("{days} is out of range: 1 to {MAX_DAYS} days"));
        }
    }
    if !(1..=MAX_REQUEST_ENTRIES).contains(&r.request_max_entries) {
        problems.add(
            "retention.requestMaxEntries",
            format!("{} is out of range: 1 to {MAX_REQUEST_ENTRIES}", r.request_max_entries),
        );
    }
    problems.values()?;
    let settings = BrakeSettings { percent: input.percent, min_users: input.min_users };
    let actor = caller.0.actor();
    if patch.0.get("massRevocation").is_some() || settings != state.store.brake_settings(acct)? {
        state.store.put_brake_settings(acct, &settings, &actor)?;
    }
    state.store.put_retention(acct, &input.retention, &actor)?;
    state.committed().await?;
    Ok(ok(&settings_view(&settings, &input.retention)))
}
