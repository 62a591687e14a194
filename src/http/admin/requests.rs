//! The provisioning log over HTTP: `GET /requests?status=&user=&since=&startIndex=&count=`, newest first.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::input::{self, Paging, Query};
use super::{AdminResult, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::store::RequestQuery;

/// `GET /requests`: `status` is a status (`409`) or a class (`4xx`); `user` a user's id or userName;
/// `since` an RFC 3339 time or a date. Paged like every list, `totalResults` counting every match.
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let query = Query::parse(&req, &["status", "user", "since", "startIndex", "count"])?;
    let paging = Paging::from_query(&query)?;
    let q = RequestQuery::from_filters(
        query.get("status"),
        query.get("user"),
        query.get("since"),
        paging.skip(),
        paging.count,
    )
    .map_err(|(field, message)| input::one(StatusCode::BAD_REQUEST, format!("?{field}"), message))?;
    let page = state.store.requests(caller.0.account(), &q)?;
    Ok(ok(&paging.of(page.total, page.entries)))
}
