//! Webhook subscriptions and their delivery state. A webhook's settings (`B acct id`) are what the admin
//! edits, and what its ETag is of; its state (`b acct id`) is what the sender writes: the feed cursor
//! delivered up to, the consecutive failures, the paused flag and the log of the last attempts. Both are
//! ordinary records, so a webhook's position survives a restart.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::activity::record;
use super::codec::{decode, encode, get, tx_get};
use super::feed::ChangeKind;
use super::keys::{AccountId, key, kind};
use super::sync::{check_version, object_version};
use super::{Actor, Store, StoreError, StoreResult, abort};
use crate::clock::timestamp;

/// How many attempts a webhook's log keeps.
pub const LOG_LEN: usize = 20;

/// A subscription: every change of `events` is POSTed to `url`, signed with `secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// `whsec_` followed by the base64 of the signing key (Standard Webhooks).
    pub secret: String,
    pub events: Vec<ChangeKind>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub time: String,
    /// The feed cursor of the change sent.
    pub cursor: u64,
    /// The `webhook-id` sent.
    pub message_id: String,
    /// The receiver's HTTP status (`None`: no answer).
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// Why the attempt failed (`None`: delivered).
    pub error: Option<String>,
}

/// Where a webhook's delivery stands.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookState {
    /// Every change up to this feed cursor was delivered (or is of an event not subscribed to).
    pub position: u64,
    /// Failed attempts since the last delivery.
    pub failures: u32,
    /// Stopped after repeated failure until an admin resumes it.
    pub paused: bool,
    pub paused_since: Option<String>,
    /// When the next attempt is due after a failure (`None`: now).
    pub next_attempt: Option<String>,
    /// Changes delivered since the webhook was created.
    pub delivered: u64,
    /// The last attempts, newest first.
    pub log: Vec<Attempt>,
}

fn hook_key(acct: AccountId, id: &str) -> Vec<u8> {
    key(kind::WEBHOOK, acct, &[id.as_bytes()])
}

fn state_key(acct: AccountId, id: &str) -> Vec<u8> {
    key(kind::WEBHOOK_STATE, acct, &[id.as_bytes()])
}

/// What the sender does with a webhook's state after an attempt.
pub enum Outcome {
    /// The change at this cursor was delivered (or skipped: not subscribed to, `attempt` `None`).
    Delivered { cursor: u64, attempt: Option<Attempt> },
    /// The attempt failed; the next one is due at `next_attempt`, or the webhook pauses.
    Failed { attempt: Attempt, next_attempt: chrono::DateTime<chrono::Utc>, pause_after: u32 },
}

impl Store {
    /// The account's webhooks in id order, each with its version.
    pub fn webhooks(&self, acct: AccountId) -> StoreResult<Vec<(Webhook, String, WebhookState)>> {
        let mut out = Vec::new();
        for item in self.tree().scan_prefix(super::keys::prefix(kind::WEBHOOK, acct)) {
            let (_, bytes) = item?;
            let hook: Webhook = decode(&bytes)?;
            let state = self.webhook_state(acct, &hook.id)?;
            out.push((hook, object_version(&bytes), state));
        }
        Ok(out)
    }

    /// Every webhook of every account (the sender's list).
    pub fn all_webhooks(&self) -> StoreResult<Vec<(AccountId, Webhook)>> {
        let mut out = Vec::new();
        for item in self.tree().scan_prefix([kind::WEBHOOK]) {
            let (k, bytes) = item?;
            if let Some(acct) = super::keys::account_of(&k) {
                out.push((acct, decode(&bytes)?));
            }
        }
        Ok(out)
    }

    /// A webhook with its version and state.
    pub fn webhook(&self, acct: AccountId, id: &str) -> StoreResult<Option<(Webhook, String, WebhookState)>> {
        let Some(bytes) = self.tree().get(hook_key(acct, id))? else { return Ok(None) };
        Ok(Some((decode(&bytes)?, object_version(&bytes), self.webhook_state(acct, id)?)))
    }

    fn webhook_state(&self, acct: AccountId, id: &str) -> StoreResult<WebhookState> {
        Ok(get(self.tree(), &state_key(acct, id))?.unwrap_or_default())
    }

    /// Creates or replaces a webhook if it is still at version `if_match` (412 otherwise); returns whether
    /// it was created. A new webhook starts at the feed's end: it gets the changes committed from now on.
    pub fn put_webhook_if(
        &self,
        acct: AccountId,
        hook: &Webhook,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<bool> {
        let now = self.now();
        let head = self.feed_head(acct)?;
        let bytes = encode(hook);
        self.transact(|tx| {
            let old = tx.get(hook_key(acct, &hook.id))?;
            check_version(old.as_deref(), if_match)?;
            tx.insert(hook_key(acct, &hook.id), bytes.clone())?;
            if old.is_none() {
                tx.insert(
                    state_key(acct, &hook.id),
                    encode(&WebhookState { position: head, ..Default::default() }),
                )?;
            }
            let events: Vec<&str> = hook.events.iter().map(|e| e.as_str()).collect();
            let detail = json!({"created": old.is_none(), "url": hook.url, "events": events});
            record(tx, acct, now, actor, "webhook.updated", Some(&hook.id), detail)?;
            Ok(old.is_none())
        })
    }

    /// Deletes a webhook (and its state) if it is still at version `if_match`.
    pub fn delete_webhook_if(
        &self,
        acct: AccountId,
        id: &str,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<()> {
        let now = self.now();
        self.transact(|tx| {
            let Some(old) = tx.get(hook_key(acct, id))? else {
                return abort(StoreError::NotFound(format!("webhook {id}")));
            };
            check_version(Some(&old), if_match)?;
            tx.remove(hook_key(acct, id))?;
            tx.remove(state_key(acct, id))?;
            record(tx, acct, now, actor, "webhook.deleted", Some(id), json!({}))
        })
    }

    /// Resumes a paused webhook at once, from where it stopped; `false` if it was not paused.
    pub fn resume_webhook(&self, acct: AccountId, id: &str, actor: &Actor) -> StoreResult<bool> {
        let now = self.now();
        self.transact(|tx| {
            if tx.get(hook_key(acct, id))?.is_none() {
                return abort(StoreError::NotFound(format!("webhook {id}")));
            }
            let mut state: WebhookState = tx_get(tx, &state_key(acct, id))?.unwrap_or_default();
            if !state.paused {
                return Ok(false);
            }
            state.paused = false;
            state.paused_since = None;
            state.failures = 0;
            state.next_attempt = None;
            tx.insert(state_key(acct, id), encode(&state))?;
            let detail = json!({"position": state.position});
            record(tx, acct, now, actor, "webhook.resumed", Some(id), detail)?;
            Ok(true)
        })
    }

    /// Records what an attempt did; `None` when the webhook was deleted meanwhile. The position only
    /// moves forward, so a late write cannot send a webhook back.
    pub fn webhook_attempted(
        &self,
        acct: AccountId,
        id: &str,
        outcome: &Outcome,
    ) -> StoreResult<Option<WebhookState>> {
        let now = self.now();
        self.transact(|tx| {
            if tx.get(hook_key(acct, id))?.is_none() {
                return Ok(None);
            }
            let mut state: WebhookState = tx_get(tx, &state_key(acct, id))?.unwrap_or_default();
            let mut paused_now = false;
            match outcome {
                Outcome::Delivered { cursor, attempt } => {
                    state.position = state.position.max(*cursor);
                    if let Some(attempt) = attempt {
                        state.failures = 0;
                        state.next_attempt = None;
                        state.delivered += 1;
                        state.log.insert(0, attempt.clone());
                    }
                }
                Outcome::Failed { attempt, next_attempt, pause_after } => {
                    state.failures = state.failures.saturating_add(1);
                    state.log.insert(0, attempt.clone());
                    if state.failures >= *pause_after && !state.paused {
                        state.paused = true;
                        state.paused_since = Some(timestamp(now));
                        state.next_attempt = None;
                        paused_now = true;
                    } else {
                        state.next_attempt = Some(timestamp(*next_attempt));
                    }
                }
            }
            state.log.truncate(LOG_LEN);
            tx.insert(state_key(acct, id), encode(&state))?;
            if paused_now {
                let detail = json!({"failures": state.failures, "position": state.position,
                    "error": state.log.first().and_then(|a| a.error.clone())});
                record(tx, acct, now, &Actor::engine(), "webhook.paused", Some(id), detail)?;
            }
            Ok(Some(state))
        })
    }
}
