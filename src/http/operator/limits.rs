//! An account's own rate limit (`/accounts/{id}/rate-limit`): read, set, or removed so that the server's
//! default applies again. It applies from the account's next request on.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::OperatorAuth;
use super::accounts::account;
use crate::http::AppState;
use crate::http::admin::input::{Fields, FromFields, NoQuery};
use crate::http::admin::{AdminResult, Strict, ok};
use crate::store::RateLimit;

impl FromFields for RateLimit {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let per_second = f.required::<u32>("perSecond");
        let burst = f.required::<u32>("burst");
        Some(RateLimit { per_second: per_second?, burst: burst? })
    }
}

/// The account's limit as the operator API shows it: its own, or `null` with the server's default.
fn view(state: &AppState, own: Option<RateLimit>) -> serde_json::Value {
    json!({"own": own, "default": state.config.rate_limit})
}

/// `GET /accounts/{id}/rate-limit`.
pub async fn get(
    state: web::Data<AppState>,
    _: OperatorAuth,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = account(&state.store, &id)?.id;
    Ok(ok(&view(&state, state.store.rate_limit(acct)?)))
}

/// `PUT /accounts/{id}/rate-limit {"perSecond", "burst"}`.
pub async fn put(
    state: web::Data<AppState>,
    op: OperatorAuth,
    _: NoQuery,
    id: web::Path<String>,
    body: Strict<RateLimit>,
) -> AdminResult<HttpResponse> {
    let acct = account(&state.store, &id)?.id;
    state.store.set_rate_limit(acct, Some(body.0), &op.actor())?;
    state.committed().await?;
    Ok(ok(&view(&state, state.store.rate_limit(acct)?)))
}

/// `DELETE /accounts/{id}/rate-limit`: the server's default applies again.
pub async fn delete(
    state: web::Data<AppState>,
    op: OperatorAuth,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = account(&state.store, &id)?.id;
    state.store.set_rate_limit(acct, None, &op.actor())?;
    state.committed().await?;
    Ok(ok(&view(&state, None)))
}
