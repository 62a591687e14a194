//! Webhook subscriptions as an admin manages them: what makes one valid, how one is shown (its state in
//! a word, how far behind it is, its delivery log), and the queue status `GET /sync` reports. The admin
//! API and the console both call these, so a webhook is checked and described the same way in both.

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};

use super::webhooks::{KEY_BYTES, SECRET_PREFIX, signing_key};
use crate::store::feed::ChangeKind;
use crate::store::webhooks::{Attempt, Webhook, WebhookState};
use crate::store::{AccountId, Store, StoreResult};

/// One field's problem: (field, message).
pub type FieldProblem = (String, String);

/// A webhook as an admin sends it: `secret` may be left out when replacing (the old one is kept).
pub struct WebhookDraft {
    pub url: String,
    pub secret: Option<String>,
    pub events: Vec<String>,
}

/// What is wrong with a webhook's URL: an absolute `http` or `https` URL with a host, no fragment.
fn url_problem(url: &str) -> Option<String> {
    match reqwest::Url::parse(url) {
        Err(e) => Some(format!("'{url}' is not a URL ({e})")),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => Some("must be an http or https URL".into()),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("must name a host".into()),
        Ok(u) if u.fragment().is_some() => Some("must not have a fragment".into()),
        Ok(_) => None,
    }
}

/// The webhook `id` a draft describes, or every problem of it by field. `existing` is the webhook the
/// draft replaces, if any (its secret stays when the draft has none).
pub fn check_webhook(
    id: &str,
    draft: WebhookDraft,
    existing: Option<&Webhook>,
) -> Result<Webhook, Vec<FieldProblem>> {
    let mut problems: Vec<FieldProblem> = Vec::new();
    if let Some(why) = url_problem(&draft.url) {
        problems.push(("url".into(), why));
    }
    let secret = match (draft.secret, existing) {
        (Some(secret), _) => {
            if signing_key(&secret).is_none() {
                let why = format!(
                    "must be '{SECRET_PREFIX}' followed by the base64 of a key of {} to {} bytes",
                    KEY_BYTES.start(),
                    KEY_BYTES.end()
                );
                problems.push(("secret".into(), why));
            }
            secret
        }
        (None, Some(old)) => old.secret.clone(),
        (None, None) => {
            problems.push(("secret".into(), "is required to create a webhook".into()));
            String::new()
        }
    };
    let mut events = Vec::new();
    for (i, name) in draft.events.iter().enumerate() {
        match ChangeKind::parse(name) {
            Some(kind) if !events.contains(&kind) => events.push(kind),
            Some(_) => {}
            None => {
                let known: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
                problems
                    .push((format!("events[{i}]"), format!("'{name}' is not one of {}", known.join(", "))));
            }
        }
    }
    if draft.events.is_empty() {
        problems.push(("events".into(), "must name at least one event".into()));
    }
    match problems.is_empty() {
        true => Ok(Webhook { id: id.to_string(), url: draft.url, secret, events }),
        false => Err(problems),
    }
}

/// A fresh secret for an admin who has none yet: a 32-byte key holding 244 bits from the OS's generator
/// (two version-4 UUIDs, as the store's own token secrets).
pub fn new_secret() -> String {
    let key: Vec<u8> =
        [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()].iter().flat_map(|u| *u.as_bytes()).collect();
    format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(key))
}

/// The state of a webhook: `active`, `retrying` (the last attempt failed) or `paused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    Active,
    Retrying,
    Paused,
}

impl Status {
    fn of(state: &WebhookState) -> Status {
        if state.paused {
            Status::Paused
        } else if state.failures > 0 {
            Status::Retrying
        } else {
            Status::Active
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Retrying => "retrying",
            Status::Paused => "paused",
        }
    }
}

/// A webhook as an admin sees it (never its secret).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<&'static str>,
    pub status: Status,
    /// Every change up to this feed cursor was delivered.
    pub position: u64,
    /// Changes after the position, and the time of the oldest of them.
    pub waiting: u64,
    pub oldest_waiting: Option<String>,
    pub failures: u32,
    pub next_attempt: Option<String>,
    pub paused_since: Option<String>,
    pub delivered: u64,
    /// The last attempts, newest first.
    pub log: Vec<Attempt>,
}

/// How far behind a webhook is: changes after its position, and the time of the oldest of them.
fn backlog(
    store: &Store,
    acct: AccountId,
    head: u64,
    state: &WebhookState,
) -> StoreResult<(u64, Option<String>)> {
    let waiting = head.saturating_sub(state.position);
    let oldest = match waiting {
        0 => None,
        _ => store.change(acct, state.position + 1)?.map(|c| c.time),
    };
    Ok((waiting, oldest))
}

fn view_at(
    store: &Store,
    acct: AccountId,
    head: u64,
    hook: &Webhook,
    state: &WebhookState,
) -> StoreResult<WebhookView> {
    let (waiting, oldest_waiting) = backlog(store, acct, head, state)?;
    Ok(WebhookView {
        id: hook.id.clone(),
        url: hook.url.clone(),
        events: hook.events.iter().map(|e| e.as_str()).collect(),
        status: Status::of(state),
        position: state.position,
        waiting,
        oldest_waiting,
        failures: state.failures,
        next_attempt: state.next_attempt.clone(),
        paused_since: state.paused_since.clone(),
        delivered: state.delivered,
        log: state.log.clone(),
    })
}

/// One webhook as an admin sees it.
pub fn webhook_view(
    store: &Store,
    acct: AccountId,
    hook: &Webhook,
    state: &WebhookState,
) -> StoreResult<WebhookView> {
    view_at(store, acct, store.feed_head(acct)?, hook, state)
}

/// Every webhook of the account as an admin sees it, by id.
pub fn webhook_views(store: &Store, acct: AccountId) -> StoreResult<Vec<WebhookView>> {
    let head = store.feed_head(acct)?;
    store.webhooks(acct)?.iter().map(|(hook, _, state)| view_at(store, acct, head, hook, state)).collect()
}

/// Every webhook's queue for `GET /sync`: changes waiting, the age of the oldest in seconds, failures in
/// a row and whether it is paused.
pub fn queue_status(store: &Store, acct: AccountId) -> StoreResult<Value> {
    let now = store.now();
    let hooks: Vec<Value> = webhook_views(store, acct)?
        .into_iter()
        .map(|v| {
            let age = v.oldest_waiting.as_deref().and_then(|t| crate::clock::seconds_since(now, t));
            json!({"id": v.id, "status": v.status, "waiting": v.waiting,
                "oldestWaitingSeconds": age, "failures": v.failures})
        })
        .collect();
    Ok(json!({"feedCursor": store.feed_head(acct)?, "webhooks": hooks}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(url: &str, secret: Option<&str>, events: &[&str]) -> WebhookDraft {
        WebhookDraft {
            url: url.into(),
            secret: secret.map(str::to_string),
            events: events.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_fresh_secret_is_accepted_as_a_signing_secret() {
        let secret = new_secret();
        assert!(signing_key(&secret).is_some(), "{secret}");
        assert_ne!(secret, new_secret());
    }

    #[test]
    fn every_problem_of_a_draft_is_named_by_its_field() {
        let problems =
            check_webhook("h", draft("ftp://x", Some("nope"), &["entitlement.granted", "granted"]), None)
                .err()
                .unwrap_or_default();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["url", "secret", "events[1]"]);
    }

    #[test]
    fn a_replacement_without_a_secret_keeps_the_old_one_and_duplicates_collapse() {
        let old = Webhook { id: "h".into(), url: "http://a/".into(), secret: new_secret(), events: vec![] };
        let hook = check_webhook(
            "h",
            draft("https://b.example/hook", None, &["entitlement.revoked", "entitlement.revoked"]),
            Some(&old),
        )
        .ok();
        let hook = hook.unwrap_or_else(|| panic!("refused"));
        assert_eq!(hook.secret, old.secret);
        assert_eq!(hook.events, [ChangeKind::Revoked]);
        let missing =
            check_webhook("h", draft("https://b.example/", None, &[]), None).err().unwrap_or_default();
        assert_eq!(missing.len(), 2, "{missing:?}");
    }
}
