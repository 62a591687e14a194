//! Details of one failure reason: the users who could not be synced for it (paged), with the rule behind
//! each failure and its detail, and Retry sync for all of them or the chosen ones.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::home::banner_text;
use super::pages::{Layout, page_number};
use super::session::{Signed, SignedForm};
use super::{ConsoleError, ConsoleResult, page, redirect};
use crate::http::AppState;
use crate::rules::{RetrySelection, retry_failures};
use crate::store::sync::FailureReason;

/// Users per page.
const PAGE: usize = 50;

fn reason_of(text: &str) -> ConsoleResult<FailureReason> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| ConsoleError::NotFound(format!("There is no failure reason '{text}'.")))
}

pub struct FailedUser {
    id: String,
    user_name: String,
    rule: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "failures.html")]
struct DetailsPage {
    layout: Layout,
    csrf: String,
    reason: &'static str,
    heading: String,
    users: Vec<FailedUser>,
    page: usize,
    pages: usize,
    notice: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailsQuery {
    page: Option<String>,
    retried: Option<usize>,
    resolved: Option<usize>,
}

pub async fn details(
    state: web::Data<AppState>,
    signed: Signed,
    reason: web::Path<String>,
    query: web::Query<DetailsQuery>,
) -> ConsoleResult<HttpResponse> {
    let reason = reason_of(&reason)?;
    let number = page_number(query.page.as_deref())?;
    let acct = signed.caller.account();
    let store = &state.store;
    let found = store.failure_page(acct, Some(reason), (number - 1) * PAGE, PAGE)?;
    let heading = if found.total == 0 {
        "No users are failing for this reason now.".to_string()
    } else {
        banner_text(store, acct, reason, found.total, &found.products)?
    };
    let config = store.sync_config(acct)?;
    let users = found
        .failures
        .iter()
        .map(|(uid, f)| FailedUser {
            id: uid.clone(),
            user_name: f.user_name.clone(),
            rule: match config.rules.iter().find(|r| r.id == f.rule) {
                Some(r) => format!("Rule {}", r.number),
                None => "A deleted rule".into(),
            },
            detail: f.detail.clone(),
        })
        .collect();
    let notice = match (query.retried, query.resolved) {
        (Some(retried), Some(resolved)) => format!(
            "Retried {retried}: {resolved} synced, {} still failing.",
            retried - resolved.min(retried)
        ),
        _ => String::new(),
    };
    page(&DetailsPage {
        layout: Layout::signed(&signed, "Details", "home"),
        csrf: signed.csrf.clone(),
        reason: reason.as_str(),
        heading,
        users,
        page: number,
        pages: found.total.div_ceil(PAGE).max(1),
        notice,
    })
}

/// `POST /failures/{reason}/retry`: every user failing for the reason, or the chosen `users`; back to the
/// home page (`return=home`) or the details.
pub async fn retry(
    req: HttpRequest,
    state: web::Data<AppState>,
    reason: web::Path<String>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&["users", "scope", "return"])?;
    let reason = reason_of(&reason)?;
    let selection = match form.fields.get("scope") {
        None | Some("all") => RetrySelection::Reason(reason),
        Some("chosen") => {
            let users = form.fields.all("users");
            if users.is_empty() {
                return Err(ConsoleError::BadRequest("Choose the users to retry first.".into()));
            }
            RetrySelection::Users(users)
        }
        Some(other) => {
            return Err(ConsoleError::BadRequest(format!("scope must be all or chosen, not '{other}'")));
        }
    };
    let back_home = match form.fields.get("return") {
        None | Some("details") => false,
        Some("home") => true,
        Some(other) => {
            return Err(ConsoleError::BadRequest(format!("return must be home or details, not '{other}'")));
        }
    };
    let engine = state
        .engine
        .clone()
        .ok_or_else(|| ConsoleError::Conflict("The rule engine is not running.".into()))?;
    let store = state.store.clone();
    let acct = form.signed.caller.account();
    let actor = form.signed.caller.actor();
    let outcome = web::block(move || retry_failures(&engine, &store, acct, &actor, &selection)).await??;
    state.store.durable().await?;
    if back_home {
        return redirect(&req, "/console/");
    }
    redirect(
        &req,
        &format!(
            "/console/failures/{}?retried={}&resolved={}",
            reason.as_str(),
            outcome.retried,
            outcome.resolved
        ),
    )
}
