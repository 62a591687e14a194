//! The Provisioning Log: the account's SCIM requests, newest first, filtered by status, user and time, a
//! page at a time, each in words ("POST /scim/v2/Users answered 409 Conflict: ..."). It reads the log
//! through the same query as `GET /admin/v1/requests`; a filter form sent by htmx gets the results alone.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::pages::{Layout, count_of, page_number, query_escape};
use super::session::Signed;
use super::{ConsoleError, ConsoleResult, is_htmx, page};
use crate::http::AppState;
use crate::store::{RequestEntry, RequestQuery};

/// Entries per page.
const PAGE: usize = 50;

pub struct Row {
    time: String,
    token: String,
    request: String,
    outcome: String,
    failed: bool,
    about: String,
    caused: String,
    latency: String,
}

/// "409 Conflict (uniqueness): userName 'x' is taken".
fn outcome(e: &RequestEntry) -> String {
    if e.status == 0 {
        return e.detail.clone().unwrap_or_default();
    }
    let reason = StatusCode::from_u16(e.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let mut line = format!("{} {reason}", e.status);
    if let Some(t) = &e.scim_type {
        line = format!("{line} ({t})");
    }
    if let Some(d) = &e.detail {
        line = format!("{line}: {d}");
    }
    line
}

fn row(e: RequestEntry) -> Row {
    let about = match (&e.resource_type, &e.user_name, &e.resource_id) {
        (Some(kind), Some(name), _) => format!("{kind} {name}"),
        (Some(kind), None, Some(id)) => format!("{kind} {id}"),
        _ => String::new(),
    };
    let caused: Vec<String> =
        e.activity.iter().map(|a| format!("{} (entry {})", a.kind.replace(['.', '-'], " "), a.seq)).collect();
    Row {
        time: e.time.clone(),
        token: if e.token.is_empty() { String::new() } else { format!("SCIM token '{}'", e.token) },
        request: format!("{} {}", e.method, e.path),
        failed: e.status >= 400 || e.status == 0,
        outcome: outcome(&e),
        about,
        caused: if caused.is_empty() { "nothing".into() } else { caused.join(", ") },
        latency: format!("{:.1} ms", e.latency_ms),
    }
}

pub struct Results {
    rows: Vec<Row>,
    caption: String,
    filtered: bool,
    previous: Option<String>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "requests.html")]
struct RequestsPage {
    layout: Layout,
    status: String,
    user: String,
    since: String,
    results: Results,
}

#[derive(Template)]
#[template(path = "requests.html", block = "results")]
struct ResultsPart {
    results: Results,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsParams {
    status: Option<String>,
    user: Option<String>,
    since: Option<String>,
    page: Option<String>,
}

pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    params: web::Query<RequestsParams>,
) -> ConsoleResult<HttpResponse> {
    let number = page_number(params.page.as_deref())?;
    let text = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or_default().to_string();
    let (status, user, since) = (text(&params.status), text(&params.user), text(&params.since));
    let query =
        RequestQuery::from_filters(Some(&status), Some(&user), Some(&since), (number - 1) * PAGE, PAGE)
            .map_err(|(field, message)| ConsoleError::BadRequest(format!("{field}: {message}")))?;
    let found = state.store.requests(signed.caller.account(), &query)?;
    let pages = found.total.div_ceil(PAGE).max(1);
    let address = |n: usize| {
        format!(
            "/console/requests?status={}&user={}&since={}&page={n}",
            query_escape(&status),
            query_escape(&user),
            query_escape(&since)
        )
    };
    let results = Results {
        caption: format!(
            "{}, newest first, page {number} of {pages}",
            count_of(found.total, "request", "requests")
        ),
        rows: found.entries.into_iter().map(row).collect(),
        filtered: !(status.is_empty() && user.is_empty() && since.is_empty()),
        previous: (number > 1).then(|| address(number - 1)),
        next: (number < pages).then(|| address(number + 1)),
    };
    if is_htmx(&req) {
        return page(&ResultsPart { results });
    }
    page(&RequestsPage {
        layout: Layout::signed(&signed, "Provisioning Log", "requests"),
        status,
        user,
        since,
        results,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn outcomes_read_as_words() {
        let mut e: crate::store::RequestEntry = serde_json::from_value(serde_json::json!({
            "time": "t", "token": "okta", "method": "POST", "path": "/scim/v2/Users", "status": 409,
            "latencyMs": 1.0, "scimType": "uniqueness", "detail": "userName 'x' is taken"}))
        .unwrap();
        assert_eq!(super::outcome(&e), "409 Conflict (uniqueness): userName 'x' is taken");
        e.status = 201;
        (e.scim_type, e.detail) = (None, None);
        assert_eq!(super::outcome(&e), "201 Created");
    }
}
