//! Welcome email delivery (`/mail`): the account's sender name and reply-to, the mail server they go
//! through, and the queue status `GET /sync` shows of the outbox.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::input::{Fields, FromFields, NoQuery, if_match, with_etag};
use super::{AdminResult, Strict, ok};
use crate::delivery::mail::is_address;
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::store::outbox::MailSettings;
use crate::store::{AccountId, Store, StoreResult};

/// Longest sender name accepted.
const NAME_LEN: usize = 100;

impl FromFields for MailSettings {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let sender_name: Option<String> = f.optional("senderName");
        let reply_to: Option<String> = f.optional("replyTo");
        if let Some(name) = &sender_name {
            if name.chars().any(char::is_control) {
                f.problem("senderName", "must be one line without control characters");
            } else if name.trim().is_empty() || name.chars().count() > NAME_LEN {
                f.problem("senderName", format!("must be 1 to {NAME_LEN} characters (or null for none)"));
            }
        }
        if let Some(address) = &reply_to
            && !is_address(address)
        {
            f.problem("replyTo", format!("'{address}' is not an email address"));
        }
        Some(MailSettings { sender_name: sender_name.map(|n| n.trim().to_string()), reply_to })
    }
}

/// The ETag of the mail settings: `none` stands for settings never set.
fn settings_version(version: &str) -> &str {
    if version.is_empty() { "none" } else { version }
}

fn view(state: &AppState, settings: &MailSettings) -> Value {
    json!({"senderName": settings.sender_name, "replyTo": settings.reply_to,
        "configured": state.mail.is_some(), "server": state.mail.as_ref().map(|m| &m.server),
        "from": state.mail.as_ref().map(|m| &m.from)})
}

/// `GET /mail`: the account's sender name and reply-to, and the mail server (read-only, from the server's
/// configuration), with the settings' ETag.
pub async fn get(state: web::Data<AppState>, caller: AdminCaller, _: NoQuery) -> AdminResult<HttpResponse> {
    let (settings, version) = state.store.mail_settings(caller.0.account())?;
    Ok(with_etag(ok(&view(&state, &settings)), settings_version(&version)))
}

/// `PUT /mail`: `{"senderName", "replyTo"}` (each may be null or left out: none). `If-Match` makes it
/// conditional.
pub async fn put(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    body: Strict<MailSettings>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let wanted = if_match(&req)?.map(|v| if v == "none" { String::new() } else { v });
    state.store.put_mail_settings_if(acct, &body.0, wanted.as_deref(), &caller.0.actor())?;
    state.committed().await?;
    let (settings, version) = state.store.mail_settings(acct)?;
    Ok(with_etag(ok(&view(&state, &settings)), settings_version(&version)))
}

/// The outbox's queue for `GET /sync`: messages waiting (queued or deferred) and the age of the oldest in
/// seconds, the deferred ones and the earliest next attempt, and the failed ones.
pub fn queue_status(store: &Store, acct: AccountId, configured: bool) -> StoreResult<Value> {
    let queue = store.mail_queue(acct)?;
    let now = store.now();
    let age = queue.oldest.as_deref().and_then(|t| crate::clock::seconds_since(now, t));
    Ok(json!({"configured": configured, "waiting": queue.waiting, "oldestWaitingSeconds": age,
        "deferred": queue.deferred, "nextAttempt": queue.next_attempt, "failed": queue.failed}))
}
