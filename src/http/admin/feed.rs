//! The entitlement change feed (`GET /entitlements/changes?after=&limit=&wait=`): the account's changes
//! after a cursor, in commit order, long-polling up to `wait` seconds when there is none yet.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::input::{MAX_PAGE, Query};
use super::{AdminResult, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;

/// The page size without `limit`.
const DEFAULT_LIMIT: usize = 100;
/// The longest `wait`, in seconds.
pub const MAX_WAIT: usize = 60;

/// `GET /entitlements/changes`: `Resources` are the changes after `after` (0: from the start), at most
/// `limit`; `cursor` is what to pass as `after` next; `totalResults` counts every change after `after`.
pub async fn changes(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let query = Query::parse(&req, &["after", "limit", "wait"])?;
    let after = query.number("after", 0, usize::MAX)?.unwrap_or(0) as u64;
    let limit = query.number("limit", 1, MAX_PAGE)?.unwrap_or(DEFAULT_LIMIT);
    let wait = query.number("wait", 0, MAX_WAIT)?.unwrap_or(0) as u64;
    let page = state.store.changes(acct, after, limit, Duration::from_secs(wait)).await?;
    let cursor = page.changes.last().map_or(after, |c| c.cursor);
    Ok(ok(&json!({
        "totalResults": page.head - after,
        "itemsPerPage": page.changes.len(),
        "cursor": cursor,
        "Resources": page.changes,
    })))
}
