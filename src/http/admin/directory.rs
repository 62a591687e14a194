//! The directory as an admin looks it up: groups (with member counts and the rules naming them) and users
//! (with their entitlement state), found by part of their name and paged.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::explain::STATES;
use super::input::{NoQuery, Paging, Query};
use super::{AdminError, AdminResult, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::find_users;
use crate::store::sync::SyncConfig;
use crate::store::{AccountId, Store};

/// A group as the directory look-up shows it.
fn group_view(
    store: &Store,
    acct: AccountId,
    config: &SyncConfig,
    gid: &str,
    group: &Value,
) -> AdminResult<Value> {
    let rules: Vec<Value> = config
        .rules
        .iter()
        .filter(|r| r.group == gid)
        .map(|r| json!({"id": r.id, "number": r.number}))
        .collect();
    Ok(json!({"id": gid, "displayName": group.get("displayName"), "externalId": group.get("externalId"),
        "memberCount": store.member_count(acct, gid)?, "rules": rules}))
}

/// `GET /groups?search=&startIndex=&count=`: groups whose displayName contains `search`
/// (case-insensitively), in name order.
pub async fn groups(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let query = Query::parse(&req, &["search", "startIndex", "count"])?;
    let paging = Paging::from_query(&query)?;
    let acct = caller.0.account();
    let found = state.store.find_groups(acct, query.get("search"))?;
    let config = state.store.sync_config(acct)?;
    let mut page = Vec::new();
    for m in found.iter().skip(paging.skip()).take(paging.count) {
        if let Some(group) = state.store.group(acct, &m.id)? {
            page.push(group_view(&state.store, acct, &config, &m.id, &group)?);
        }
    }
    Ok(ok(&paging.of(found.len(), page)))
}

/// `GET /groups/{id or displayName}`.
pub async fn group(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let gid = state.store.resolve_group(acct, &id)?.ok_or_else(|| {
        AdminError::not_found(format!("no directory group has the id or displayName '{id}'"))
    })?;
    let group = state
        .store
        .group(acct, &gid)?
        .ok_or_else(|| AdminError::not_found(format!("group {id} not found")))?;
    let config = state.store.sync_config(acct)?;
    Ok(ok(&group_view(&state.store, acct, &config, &gid, &group)?))
}

/// `GET /users?search=&state=&startIndex=&count=`: users whose userName contains `search`
/// (case-insensitively), in userName order, optionally only those in one entitlement state.
pub async fn users(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let query = Query::parse(&req, &["search", "state", "startIndex", "count"])?;
    let paging = Paging::from_query(&query)?;
    let names: Vec<&str> = STATES.iter().map(|(n, _)| *n).collect();
    let wanted =
        query.choice("state", &names)?.and_then(|s| STATES.iter().find(|(n, _)| *n == s).map(|(_, st)| *st));
    let acct = caller.0.account();
    let found = find_users(&state.store, acct, query.get("search"), wanted, paging.skip(), paging.count)?;
    let page: Vec<Value> = found
        .users
        .into_iter()
        .map(|u| {
            json!({"id": u.id, "userName": u.user_name, "displayName": u.display_name, "email": u.email,
                "active": u.active, "state": u.state})
        })
        .collect();
    Ok(ok(&paging.of(found.total, page)))
}
