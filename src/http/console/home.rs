//! The User Sync home: the switch, the mass-revocation hold (who would lose what, Release / Revert), rules
//! whose directory group was deleted, one banner per failure reason, and the users still to evaluate; the
//! status part refreshes itself (htmx polling) while the page is open.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::pages::{Layout, and_list, count_of, query_escape};
use super::session::{Signed, SignedForm};
use super::{ConsoleError, ConsoleResult, is_htmx, page, redirect};
use crate::delivery::subscriptions::{Status as WebhookStatus, webhook_views};
use crate::http::AppState;
use crate::rules::{ReleaseError, release_hold};
use crate::store::sync::{FailureReason, Hold};
use crate::store::{AccountId, Store};

/// One failure reason as a banner.
pub struct Banner {
    /// The reason as it appears in addresses (`outOfLicenses`).
    pub reason: &'static str,
    /// "8 users could not be synced: out of licenses for Webinar".
    pub text: String,
}

/// The banner sentence for `count` users failing for `reason`, who lack seats of `products`.
pub fn banner_text(
    store: &Store,
    acct: AccountId,
    reason: FailureReason,
    count: usize,
    products: &BTreeSet<String>,
) -> ConsoleResult<String> {
    let who = count_of(count, "user", "users");
    Ok(match reason {
        FailureReason::OutOfLicenses => {
            let names: BTreeMap<String, String> =
                store.products(acct)?.into_iter().map(|(p, _)| (p.id, p.name)).collect();
            let mut products: Vec<String> =
                products.iter().map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone())).collect();
            products.sort();
            format!("{who} could not be synced: out of licenses for {}", and_list(&products))
        }
        FailureReason::ExistingAccount if count == 1 => {
            format!("{who} could not be synced: the login belongs to an existing account elsewhere")
        }
        FailureReason::ExistingAccount => {
            format!("{who} could not be synced: their logins belong to existing accounts elsewhere")
        }
        FailureReason::WelcomeEmailFailed if count == 1 => {
            format!("{who} did not get the welcome email: the mail server refused it")
        }
        FailureReason::WelcomeEmailFailed => {
            format!("{who} did not get their welcome emails: the mail server refused them")
        }
    })
}

/// The banners of an account, one per reason that has failures, in a fixed order.
fn banners(store: &Store, acct: AccountId) -> ConsoleResult<Vec<Banner>> {
    let mut out = Vec::new();
    for (reason, summary) in store.failure_summary(acct)? {
        let text = banner_text(store, acct, reason, summary.total, &summary.products)?;
        out.push(Banner { reason: reason.as_str(), text });
    }
    Ok(out)
}

/// A banner per paused webhook: the products stop hearing of changes until an admin resumes it.
fn paused_webhooks(store: &Store, acct: AccountId) -> ConsoleResult<Vec<(String, String)>> {
    Ok(webhook_views(store, acct)?
        .into_iter()
        .filter(|v| v.status == WebhookStatus::Paused)
        .map(|v| {
            let waiting = count_of(v.waiting as usize, "change is", "changes are");
            let text = format!(
                "The webhook {} is paused after {} failed attempts: {waiting} waiting to reach {}.",
                v.id, v.failures, v.url
            );
            (v.id, text)
        })
        .collect())
}

/// How many held users the banner names; the rest are counted.
const HELD_SHOWN: usize = 10;

/// The mass-revocation hold as a banner.
pub struct HoldBanner {
    /// "User Sync is holding back 30 revocations, caused by a reorder of the rules."
    text: String,
    /// "jane@example.com would lose Webinar", the first [`HELD_SHOWN`].
    users: Vec<String>,
    /// "and 20 more users", or empty.
    more: String,
    /// Whether Revert can put the rules back (the hold comes from a rule change).
    revertible: bool,
}

/// The words for what caused a hold.
pub fn cause_words(cause: &str) -> &str {
    match cause {
        "ruleChange" => "a change of the rules",
        "reorder" => "a reorder of the rules",
        "syncSwitchedOn" => "switching User Sync on",
        "directoryWrites" => "changes from the company directory",
        "groupDeleted" => "the deletion of a directory group",
        "customAttributes" => "a change of the custom attributes",
        other => other,
    }
}

fn hold_banner(
    store: &Store,
    acct: AccountId,
    hold: &Hold,
    skip: usize,
    shown: usize,
) -> ConsoleResult<HoldBanner> {
    let names: BTreeMap<String, String> =
        store.products(acct)?.into_iter().map(|(p, _)| (p.id, p.name)).collect();
    let count = hold.users.len();
    let users = hold
        .users
        .values()
        .skip(skip)
        .take(shown)
        .map(|u| {
            let lost: Vec<String> =
                u.loses.iter().map(|p| names.get(p).cloned().unwrap_or_else(|| p.clone())).collect();
            format!("{} would lose {}", u.user_name, and_list(&lost))
        })
        .collect();
    let more = match count.saturating_sub(skip + shown) {
        0 => String::new(),
        1 => "and 1 more user".to_string(),
        n => format!("and {n} more users"),
    };
    Ok(HoldBanner {
        text: format!(
            "User Sync is holding back the revocations of {}, caused by {}, since {}. Release applies them; \
             Revert puts the rules back as they were.",
            count_of(count, "user", "users"),
            cause_words(&hold.cause),
            hold.since
        ),
        users,
        more,
        revertible: hold.rules_before.is_some(),
    })
}

/// Held users per page of the hold's own page.
const HELD_PAGE: usize = 50;

#[derive(Template)]
#[template(path = "hold.html")]
struct HoldPage {
    layout: Layout,
    csrf: String,
    hold: Option<HoldBanner>,
    page: usize,
    pages: usize,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldQuery {
    page: Option<String>,
}

/// `GET /hold?page=`: every held user and what they would lose, 50 a page, with Release / Revert.
pub async fn held(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<HoldQuery>,
) -> ConsoleResult<HttpResponse> {
    let number = super::pages::page_number(query.page.as_deref())?;
    let acct = signed.caller.account();
    let hold = state.store.hold(acct)?;
    let pages = hold.as_ref().map_or(1, |h| h.users.len().div_ceil(HELD_PAGE).max(1));
    let banner =
        hold.map(|h| hold_banner(&state.store, acct, &h, (number - 1) * HELD_PAGE, HELD_PAGE)).transpose()?;
    page(&HoldPage {
        layout: Layout::signed(&signed, "Held revocations", "home"),
        csrf: signed.csrf.clone(),
        hold: banner,
        page: number,
        pages,
    })
}

/// A rule whose directory group was deleted, as a banner line.
pub struct BrokenBanner {
    id: String,
    number: u32,
    text: String,
    /// The address of the rule's form pointed at the group now named as the deleted one was, and that
    /// group's name.
    suggested: Option<(String, String)>,
}

/// What the status part shows.
pub struct Status {
    csrf: String,
    enabled: bool,
    pending: usize,
    rules: usize,
    hold: Option<HoldBanner>,
    broken: Vec<BrokenBanner>,
    banners: Vec<Banner>,
    /// Paused webhooks: (id, "The webhook ... is paused ...").
    paused: Vec<(String, String)>,
}

impl Status {
    fn read(store: &Store, signed: &Signed) -> ConsoleResult<Status> {
        let acct = signed.caller.account();
        let config = store.sync_config(acct)?;
        Ok(Status {
            csrf: signed.csrf.clone(),
            enabled: config.enabled,
            pending: store.pending_count(acct)?,
            rules: config.rules.len(),
            hold: store.hold(acct)?.map(|h| hold_banner(store, acct, &h, 0, HELD_SHOWN)).transpose()?,
            broken: store
                .broken_rules(acct, &config)?
                .into_iter()
                .map(|b| {
                    let group = match &b.group_name {
                        Some(name) => format!("the directory group {name}"),
                        None => "a directory group".to_string(),
                    };
                    let again = match &b.suggested_group {
                        Some(g) => format!(" A group named {} exists now.", g.display_name),
                        None => String::new(),
                    };
                    let suggested = b.suggested_group.as_ref().map(|g| {
                        (
                            format!("/console/rules/{}?suggested={}", b.id, query_escape(&g.id)),
                            g.display_name.clone(),
                        )
                    });
                    BrokenBanner {
                        text: format!(
                            "Rule {} names {group}, which was deleted: it matches nobody until it is pointed \
                             at another group.{again}",
                            b.number
                        ),
                        id: b.id,
                        number: b.number,
                        suggested,
                    }
                })
                .collect(),
            banners: banners(store, acct)?,
            paused: paused_webhooks(store, acct)?,
        })
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    status: Status,
}

#[derive(Template)]
#[template(path = "home.html", block = "status")]
struct StatusPart {
    status: Status,
}

pub async fn show(state: web::Data<AppState>, signed: Signed) -> ConsoleResult<HttpResponse> {
    let status = Status::read(&state.store, &signed)?;
    page(&HomePage { layout: Layout::signed(&signed, "User Sync", "home"), status })
}

/// The status part alone (what htmx polls).
pub async fn status(state: web::Data<AppState>, signed: Signed) -> ConsoleResult<HttpResponse> {
    page(&StatusPart { status: Status::read(&state.store, &signed)? })
}

/// The switch: `enabled=true` switches User Sync on (everyone is evaluated), `false` off.
pub async fn switch(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&["enabled"])?;
    let enabled = match form.fields.get("enabled") {
        Some("true") => true,
        Some("false") => false,
        other => {
            return Err(ConsoleError::BadRequest(format!("enabled must be true or false, not {other:?}")));
        }
    };
    let signed = &form.signed;
    state.store.set_sync(signed.caller.account(), enabled, &signed.caller.actor())?;
    state.committed().await?;
    if is_htmx(&req) {
        return page(&StatusPart { status: Status::read(&state.store, signed)? });
    }
    redirect(&req, "/console/")
}

/// `POST /sync/release`: applies the held revocations (the same function as the admin API's release).
pub async fn release(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&[])?;
    let engine = state
        .engine
        .clone()
        .ok_or_else(|| ConsoleError::Conflict("The rule engine is not running.".into()))?;
    let (store, acct, actor) =
        (state.store.clone(), form.signed.caller.account(), form.signed.caller.actor());
    match web::block(move || release_hold(&engine, &store, acct, &actor)).await? {
        Ok(_) => {}
        Err(ReleaseError::NothingHeld) => {
            return Err(ConsoleError::Conflict("Nothing is held; there is nothing to release.".into()));
        }
        Err(ReleaseError::Store(e)) => return Err(e.into()),
    }
    state.committed().await?;
    redirect(&req, "/console/")
}

/// `POST /sync/revert`: puts the rules back as they were before the held change (as the admin API's
/// revert does).
pub async fn revert(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&[])?;
    let signed = &form.signed;
    state.store.revert_held_change(signed.caller.account(), &signed.caller.actor())?;
    state.committed().await?;
    redirect(&req, "/console/")
}
