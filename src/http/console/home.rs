//! The User Sync home: the switch, one banner per failure reason, and the users still to evaluate; the
//! status part refreshes itself (htmx polling) while the page is open.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::pages::{Layout, and_list, count_of};
use super::session::{Signed, SignedForm};
use super::{ConsoleError, ConsoleResult, is_htmx, page, redirect};
use crate::http::AppState;
use crate::store::sync::{Failure, FailureReason};
use crate::store::{AccountId, Store};

/// One failure reason as a banner.
pub struct Banner {
    /// The reason as it appears in addresses (`outOfLicenses`).
    pub reason: &'static str,
    /// "8 users could not be synced: out of licenses for Webinar".
    pub text: String,
}

/// The banner sentence for `users` failing for `reason`.
pub fn banner_text(
    store: &Store,
    acct: AccountId,
    reason: FailureReason,
    users: &[&Failure],
) -> ConsoleResult<String> {
    let who = count_of(users.len(), "user", "users");
    Ok(match reason {
        FailureReason::OutOfLicenses => {
            let ids: BTreeSet<&String> = users.iter().flat_map(|f| &f.products).collect();
            let names: BTreeMap<String, String> =
                store.products(acct)?.into_iter().map(|(p, _)| (p.id, p.name)).collect();
            let mut products: Vec<String> =
                ids.into_iter().map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone())).collect();
            products.sort();
            format!("{who} could not be synced: out of licenses for {}", and_list(&products))
        }
        FailureReason::ExistingAccount if users.len() == 1 => {
            format!("{who} could not be synced: the login belongs to an existing account elsewhere")
        }
        FailureReason::ExistingAccount => {
            format!("{who} could not be synced: their logins belong to existing accounts elsewhere")
        }
    })
}

/// The banners of an account, one per reason, in a fixed order.
fn banners(store: &Store, acct: AccountId) -> ConsoleResult<Vec<Banner>> {
    let failures = store.failures(acct)?;
    let mut by_reason: BTreeMap<FailureReason, Vec<&Failure>> = BTreeMap::new();
    for (_, f) in &failures {
        by_reason.entry(f.reason).or_default().push(f);
    }
    by_reason
        .into_iter()
        .map(|(reason, users)| {
            Ok(Banner { reason: reason.as_str(), text: banner_text(store, acct, reason, &users)? })
        })
        .collect()
}

/// What the status part shows.
pub struct Status {
    csrf: String,
    enabled: bool,
    pending: usize,
    rules: usize,
    banners: Vec<Banner>,
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
            banners: banners(store, acct)?,
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
