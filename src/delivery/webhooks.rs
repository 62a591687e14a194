//! Webhook delivery: every change of the entitlement feed is POSTed to each webhook subscribed to its
//! type, signed as the Standard Webhooks specification says, one at a time per webhook in feed order (so
//! in order per user), at least once: a webhook's position moves on only after its receiver answered 2xx.
//! A failure is retried with exponential backoff and jitter; after `pause_after` failures in a row the
//! webhook pauses until an admin resumes it. The sender runs on a thread and runtime of its own and reads
//! the feed like any consumer, so a slow or broken receiver never holds up SCIM requests or the engine.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

use super::worker::{Shared, Worker};
use crate::store::feed::Change;
use crate::store::webhooks::{Attempt, Outcome, Webhook};
use crate::store::{AccountId, Store, StoreResult};

/// The prefix of a Standard Webhooks secret; the rest is the base64 of the signing key.
pub const SECRET_PREFIX: &str = "whsec_";
/// Shortest and longest signing key accepted, in bytes (the specification recommends 24 to 64).
pub const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// How the sender retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The wait after a first failure; it doubles with each failure in a row.
    pub retry_min: Duration,
    /// The longest wait between attempts.
    pub retry_max: Duration,
    /// Failures in a row after which a webhook pauses.
    pub pause_after: u32,
    /// How long a receiver has to answer.
    pub timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            pause_after: 20,
            timeout: Duration::from_secs(15),
        }
    }
}

/// The signing key of a `whsec_` secret, if it is one.
pub fn signing_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX)?;
    let key = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    KEY_BYTES.contains(&key.len()).then_some(key)
}

/// The `webhook-signature` header of a message: `v1,` and the base64 of the HMAC-SHA256 of
/// `{id}.{timestamp}.{body}` under the secret's key (`None` for a secret that is not `whsec_`).
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = signing_key(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    Some(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(tag)))
}

/// The body POSTed for a change: its type, time and the change itself.
pub fn payload(change: &Change) -> Vec<u8> {
    serde_json::to_vec(&json!({"type": change.kind, "timestamp": change.time, "data": change}))
        .unwrap_or_default()
}

/// The running sender; [`Webhooks::stop`] ends it.
#[derive(Clone)]
pub struct Webhooks {
    worker: Worker,
}

impl Webhooks {
    /// Starts the sender on a thread of its own.
    pub fn start(store: Store, config: WebhookConfig) -> std::io::Result<Webhooks> {
        let worker = Worker::spawn("usersync-webhooks", move |shared| async move {
            match client(&config) {
                Ok(client) => supervise(store, client, config, shared).await,
                Err(e) => log::error!("webhooks: no HTTP client ({e}); nothing will be delivered"),
            }
        })?;
        Ok(Webhooks { worker })
    }

    /// Stops sending (an attempt under way is dropped, and made again after a restart) and waits for
    /// the thread to end.
    pub fn stop(&self) {
        self.worker.stop();
    }

    /// Looks at the webhooks again now (one was created, changed or resumed).
    pub fn wake(&self) {
        self.worker.wake();
    }
}

/// The HTTP client: rustls, the system's trusted roots, no redirects followed (a receiver that moved
/// answers 3xx, which is a failure the log shows).
fn client(config: &WebhookConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("usersync/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Keeps one delivery task per webhook that is not paused.
async fn supervise(store: Store, client: reqwest::Client, config: WebhookConfig, shared: Arc<Shared>) {
    let mut running: HashMap<(AccountId, String), tokio::task::JoinHandle<()>> = HashMap::new();
    while !shared.stopping() {
        let woken = shared.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        running.retain(|_, task| !task.is_finished());
        match store.all_webhooks() {
            Ok(hooks) => {
                for (acct, hook) in hooks {
                    let key = (acct, hook.id.clone());
                    if running.contains_key(&key) {
                        continue;
                    }
                    let task =
                        deliver(store.clone(), client.clone(), config.clone(), shared.clone(), acct, hook.id);
                    running.insert(key, tokio::spawn(task));
                }
            }
            Err(e) => log::error!("webhooks: reading the webhooks failed: {e}"),
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), woken).await;
    }
    for task in running.into_values() {
        task.abort();
    }
}

/// Delivers one webhook's changes until it is deleted or paused, or the sender stops.
async fn deliver(
    store: Store,
    client: reqwest::Client,
    config: WebhookConfig,
    shared: Arc<Shared>,
    acct: AccountId,
    id: String,
) {
    while !shared.stopping() {
        match deliver_some(&store, &client, &config, &shared, acct, &id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                log::error!("webhook {id}: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// One round: waits for the next attempt to be due or for changes, and sends what there is until one
/// fails. `false` when the webhook is gone or paused.
async fn deliver_some(
    store: &Store,
    client: &reqwest::Client,
    config: &WebhookConfig,
    shared: &Shared,
    acct: AccountId,
    id: &str,
) -> StoreResult<bool> {
    let Some((hook, _, state)) = store.webhook(acct, id)? else { return Ok(false) };
    if state.paused {
        return Ok(false);
    }
    let now = store.now();
    if let Some(due) =
        state.next_attempt.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        && due > now
    {
        // Looked at again at least every second: an admin may have changed or deleted the webhook.
        let wait = (due.with_timezone(&chrono::Utc) - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
        return Ok(true);
    }
    let page = store.changes(acct, state.position, 100, Duration::from_secs(1)).await?;
    let mut skipped = None;
    let mut failures = state.failures;
    for change in page.changes {
        if shared.stopping() {
            break;
        }
        if !hook.events.contains(&change.kind) {
            skipped = Some(change.cursor);
            continue;
        }
        let attempt = send(client, &hook, &change, store.now()).await;
        let outcome = if attempt.error.is_none() {
            skipped = None;
            failures = 0;
            Outcome::Delivered { cursor: change.cursor, attempt: Some(attempt) }
        } else {
            log::warn!(
                "webhook {id}: delivering change {} failed: {}",
                change.cursor,
                attempt.error.as_deref().unwrap_or_default()
            );
            let wait = super::backoff(config.retry_min, config.retry_max, failures);
            let next_attempt = store.now() + chrono::Duration::from_std(wait).unwrap_or_default();
            Outcome::Failed { attempt, next_attempt, pause_after: config.pause_after }
        };
        let failed = matches!(outcome, Outcome::Failed { .. });
        if let Some(cursor) = skipped.take() {
            store.webhook_attempted(acct, id, &Outcome::Delivered { cursor, attempt: None })?;
        }
        if store.webhook_attempted(acct, id, &outcome)?.is_none() {
            return Ok(false);
        }
        if failed {
            return Ok(true);
        }
    }
    if let Some(cursor) = skipped {
        store.webhook_attempted(acct, id, &Outcome::Delivered { cursor, attempt: None })?;
    }
    Ok(true)
}

/// POSTs one change; the attempt as the log keeps it.
async fn send(
    client: &reqwest::Client,
    hook: &Webhook,
    change: &Change,
    now: chrono::DateTime<chrono::Utc>,
) -> Attempt {
    let body = payload(change);
    let timestamp = now.timestamp();
    let started = Instant::now();
    let mut attempt = Attempt {
        time: crate::clock::timestamp(now),
        cursor: change.cursor,
        message_id: change.id.clone(),
        status: None,
        latency_ms: 0,
        error: None,
    };
    let Some(signature) = signature(&hook.secret, &change.id, timestamp, &body) else {
        attempt.error = Some("the webhook's secret is not a whsec_ secret".into());
        return attempt;
    };
    let result = client
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("webhook-id", &change.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    attempt.latency_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    match result {
        Ok(res) => {
            let status = res.status();
            attempt.status = Some(status.as_u16());
            if !status.is_success() {
                attempt.error = Some(format!("the receiver answered {status}"));
            }
        }
        Err(e) => attempt.error = Some(error_text(&e)),
    }
    attempt
}

/// A send error in words, with its causes (reqwest's own text says only "error sending request").
fn error_text(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() { "timed out".to_string() } else { e.to_string() };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(signature("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 1, body).is_none(), "no whsec_ prefix");
        assert!(signing_key("whsec_c2hvcnQ=").is_none(), "a key of 5 bytes is too short");
    }
}
