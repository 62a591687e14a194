//! Explanations: one user's entitlements with every rule's outcome (`GET /users/{id or userName}/
//! entitlements`), and every user of the account with their state (`GET /entitlements`), failing and
//! never-evaluated users included.

use actix_web::{HttpRequest, HttpResponse, web};

use super::input::{NoQuery, PAGING_PARAMS, Paging, Query};
use super::users::{known_product, user_or_404};
use super::{AdminResult, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::{entitlement_view, explain_user, state_of};
use crate::store::sync::Scope;
use crate::store::{AccountId, Store, StoreResult};

/// `GET /users/{id or userName}/entitlements`.
pub async fn entitlements_of(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    key: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let (uid, user) = user_or_404(&state.store, acct, &key)?;
    Ok(ok(&explain_user(&state.store, acct, &uid, &user)?))
}

pub(super) use crate::rules::ENTITLEMENT_STATES as STATES;

/// `GET /entitlements?state=&product=&startIndex=&count=`: every user of the account in id order, with
/// their state and applied bundle, and the change feed's `cursor` the page is consistent with.
pub async fn entitlements(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let query = Query::parse(&req, &["state", "product", PAGING_PARAMS[0], PAGING_PARAMS[1]])?;
    let paging = Paging::from_query(&query)?;
    let names: Vec<&str> = STATES.iter().map(|(n, _)| *n).collect();
    let wanted_state =
        query.choice("state", &names)?.and_then(|s| STATES.iter().find(|(n, _)| *n == s).map(|(_, st)| *st));
    let product = known_product(&state.store, acct, &query)?;
    let product = product.as_deref();
    let store = &state.store;
    let config = store.sync_config(acct)?;
    // Read at one point of the change feed, answered as `cursor`: a consumer that starts from this
    // list reads the feed from there on.
    let read = || {
        let (mut total, mut page) = (0, Vec::new());
        for_each_user(store, acct, |uid, user| {
            let entitlement = store.entitlement(acct, uid)?;
            let failure = store.failure(acct, uid)?;
            let in_state =
                wanted_state.is_none_or(|w| state_of(entitlement.as_ref(), failure.as_ref(), user) == w);
            let holds = product.is_none_or(|p| {
                entitlement
                    .as_ref()
                    .and_then(|e| e.bundle.as_ref())
                    .is_some_and(|b| b.products.iter().any(|x| x == p))
            });
            if in_state && holds {
                total += 1;
                if total > paging.skip() && page.len() < paging.count {
                    page.push(entitlement_view(store, acct, &config, uid, user)?);
                }
            }
            Ok(())
        })?;
        Ok((total, page))
    };
    let ((total, page), cursor) = store.at_feed_cursor(acct, read)?;
    let mut body = serde_json::to_value(paging.of(total, page)).unwrap_or_default();
    body["cursor"] = cursor.into();
    Ok(ok(&body))
}

/// Calls `f` with every user of the account, in id order, a page at a time.
fn for_each_user(
    store: &Store,
    acct: AccountId,
    mut f: impl FnMut(&str, &serde_json::Value) -> StoreResult<()>,
) -> StoreResult<()> {
    let mut after: Option<String> = None;
    loop {
        let page = store.scope_users(acct, &Scope::All, after.as_deref(), 512)?;
        for uid in &page {
            if let Some(user) = store.user(acct, uid)? {
                f(uid, &user)?;
            }
        }
        if page.len() < 512 {
            return Ok(());
        }
        after = page.last().cloned();
    }
}
