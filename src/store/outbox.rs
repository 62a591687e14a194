//! The welcome outbox and its delivery state. The engine queues a message (`W acct seq`) in the
//! transaction that first grants the user products; the user's welcomed marker (`w acct uid`) holds the
//! message's seq, so deleting the user cancels it in the same transaction. The messages still owed
//! (queued, deferred or failed) are indexed (`o acct seq`), so that the mail sender, the queue status and
//! the failure list read those and never the messages sent long ago. Each account's sender name and
//! reply-to are an admin object (`O acct ms`).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::activity::record;
use super::codec::{decode, encode, get, tx_get};
use super::keys::{AccountId, global, key, kind, prefix};
use super::sync::{Bundle, Failure, FailureReason, MailStatus, OutboxMessage, check_version, object_version};
use super::tx::Tx;
use super::{Actor, Store, StoreResult, TxResult};
use crate::clock::timestamp;

/// What a delivery attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    /// Accepted: the server's reply, and the queue id it named.
    Sent { reply: String, queue_id: Option<String> },
    /// A temporary failure; tried again at `next_attempt`.
    Deferred { reply: String, next_attempt: chrono::DateTime<chrono::Utc> },
    /// A permanent failure.
    Failed { reply: String },
}

/// An account's sender name and reply-to for its welcome emails (the address they come from is the
/// server's `--smtp-from`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailSettings {
    #[serde(default)]
    pub sender_name: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// How an account's mail queue stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailQueue {
    /// Messages waiting to be sent (queued or deferred).
    pub waiting: usize,
    /// Of those, the deferred ones.
    pub deferred: usize,
    /// Messages refused for good, waiting for a retry.
    pub failed: usize,
    /// When the oldest waiting message was queued.
    pub oldest: Option<String>,
    /// The earliest next attempt of a deferred message.
    pub next_attempt: Option<String>,
}

fn message_key(acct: AccountId, seq: u64) -> Vec<u8> {
    key(kind::OUTBOX, acct, &[&seq.to_be_bytes()])
}

fn owed_key(acct: AccountId, seq: u64) -> Vec<u8> {
    key(kind::MAIL_OWED, acct, &[&seq.to_be_bytes()])
}

fn settings_key(acct: AccountId) -> Vec<u8> {
    key(kind::OBJECT, acct, &[b"ms"])
}

fn welcomed_key(acct: AccountId, uid: &str) -> Vec<u8> {
    key(kind::WELCOMED, acct, &[uid.as_bytes()])
}

/// The seq at the end of an outbox or owed-index key.
fn seq_of(k: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = k.get(5..13)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// The layout marker of the owed index: stores from before it get it built once at start.
const OWED_LAYOUT: &[u8] = b"mail-owed";

/// Queues `message` for the user (inside the engine's transaction) and marks the user welcomed.
pub(crate) fn queue_welcome(
    tx: &Tx<'_>,
    acct: AccountId,
    uid: &str,
    message: &OutboxMessage,
) -> TxResult<()> {
    let seq = tx.generate_id()?;
    tx.insert(message_key(acct, seq), encode(message))?;
    tx.insert(owed_key(acct, seq), &[])?;
    tx.insert(welcomed_key(acct, uid), &seq.to_be_bytes())?;
    Ok(())
}

/// Cancels the deleted user's welcome message if it is still owed, and forgets that the user was
/// welcomed (inside the engine's transaction).
pub(crate) fn cancel_welcome(tx: &Tx<'_>, acct: AccountId, uid: &str) -> TxResult<()> {
    let marker = welcomed_key(acct, uid);
    let seq = tx.get(&marker)?.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok()).map(u64::from_be_bytes);
    tx.remove(marker)?;
    let Some(seq) = seq else { return Ok(()) };
    let Some(mut message) = tx_get::<OutboxMessage>(tx, &message_key(acct, seq))? else { return Ok(()) };
    if message.status.owed() {
        message.status = MailStatus::Cancelled;
        message.next_attempt = None;
        tx.insert(message_key(acct, seq), encode(&message))?;
        tx.remove(owed_key(acct, seq))?;
    }
    Ok(())
}

impl Store {
    /// Has the user been sent a welcome message?
    pub fn welcomed(&self, acct: AccountId, uid: &str) -> StoreResult<bool> {
        Ok(self.tree().contains_key(welcomed_key(acct, uid))?)
    }

    /// The welcome messages queued so far, oldest first.
    pub fn outbox(&self, acct: AccountId) -> StoreResult<Vec<OutboxMessage>> {
        self.tree().scan_prefix(prefix(kind::OUTBOX, acct)).map(|item| decode(&item?.1)).collect()
    }

    /// The account's messages still owed (queued, deferred, failed), oldest first, each with its seq.
    pub fn mail_owed(&self, acct: AccountId) -> StoreResult<Vec<(u64, OutboxMessage)>> {
        let mut out = Vec::new();
        for item in self.tree().scan_prefix(prefix(kind::MAIL_OWED, acct)) {
            let (k, _) = item?;
            let Some(seq) = seq_of(&k) else { continue };
            if let Some(message) = get::<OutboxMessage>(self.tree(), &message_key(acct, seq))? {
                out.push((seq, message));
            }
        }
        Ok(out)
    }

    /// The accounts that have messages still owed (the mail sender's list).
    pub fn accounts_owed_mail(&self) -> StoreResult<Vec<AccountId>> {
        let mut out: Vec<AccountId> = Vec::new();
        for item in self.tree().scan_prefix([kind::MAIL_OWED]) {
            let (k, _) = item?;
            if let Some(acct) = super::keys::account_of(&k)
                && out.last() != Some(&acct)
            {
                out.push(acct);
            }
        }
        Ok(out)
    }

    /// One message of the outbox.
    pub fn mail_message(&self, acct: AccountId, seq: u64) -> StoreResult<Option<OutboxMessage>> {
        get(self.tree(), &message_key(acct, seq))
    }

    /// Records what an attempt to send the message did; `None` (nothing written) when the message is no
    /// longer waiting to be sent (the user was deleted meanwhile). A permanent failure is recorded in the
    /// activity history too.
    pub fn mail_attempted(
        &self,
        acct: AccountId,
        seq: u64,
        outcome: &MailOutcome,
    ) -> StoreResult<Option<OutboxMessage>> {
        let now = self.now();
        self.transact(|tx| {
            let Some(mut message) = tx_get::<OutboxMessage>(tx, &message_key(acct, seq))? else {
                return Ok(None);
            };
            if !matches!(message.status, MailStatus::Queued | MailStatus::Deferred) {
                return Ok(None);
            }
            message.attempts = message.attempts.saturating_add(1);
            message.last_attempt = Some(timestamp(now));
            message.next_attempt = None;
            match outcome {
                MailOutcome::Sent { reply, queue_id } => {
                    message.status = MailStatus::Sent;
                    message.reply = Some(reply.clone());
                    message.queue_id = queue_id.clone();
                    tx.remove(owed_key(acct, seq))?;
                }
                MailOutcome::Deferred { reply, next_attempt } => {
                    message.status = MailStatus::Deferred;
                    message.reply = Some(reply.clone());
                    message.next_attempt = Some(timestamp(*next_attempt));
                }
                MailOutcome::Failed { reply } => {
                    message.status = MailStatus::Failed;
                    message.reply = Some(reply.clone());
                    let detail = json!({"message": message.id, "to": message.to, "userName": message.user_name, "reply": reply,
                        "attempts": message.attempts});
                    record(tx, acct, now, &Actor::engine(), "welcome-email.failed", Some(&message.user), detail)?;
                }
            }
            tx.insert(message_key(acct, seq), encode(&message))?;
            Ok(Some(message))
        })
    }

    /// Cancels a message still owed (its user is gone); `false` if it was not owed.
    pub fn cancel_mail(&self, acct: AccountId, seq: u64, why: &str) -> StoreResult<bool> {
        self.transact(|tx| {
            let Some(mut message) = tx_get::<OutboxMessage>(tx, &message_key(acct, seq))? else {
                return Ok(false);
            };
            if !message.status.owed() {
                return Ok(false);
            }
            message.status = MailStatus::Cancelled;
            message.next_attempt = None;
            message.reply = Some(why.to_string());
            tx.insert(message_key(acct, seq), encode(&message))?;
            tx.remove(owed_key(acct, seq))?;
            Ok(true)
        })
    }

    /// The failed welcome messages as failures of reason `welcomeEmailFailed`, in user-id order (the
    /// newest failure of a user, should a user have several).
    pub fn mail_failures(&self, acct: AccountId) -> StoreResult<Vec<(String, Failure)>> {
        let mut by_user = std::collections::BTreeMap::new();
        for (_, m) in self.mail_owed(acct)? {
            if m.status != MailStatus::Failed {
                continue;
            }
            let failure = Failure {
                reason: FailureReason::WelcomeEmailFailed,
                detail: m.reply.clone().unwrap_or_default(),
                intended: Bundle::default(),
                rule: m.rule.clone().unwrap_or_default(),
                products: Vec::new(),
                user_name: m.user_name.clone().unwrap_or_else(|| m.to.clone()),
                since: m.last_attempt.clone().unwrap_or_else(|| m.created.clone()),
            };
            by_user.insert(m.user.clone(), failure);
        }
        Ok(by_user.into_iter().collect())
    }

    /// Queues again the failed welcome messages of `users` (ids; all failed ones with `None`), each for
    /// an attempt now; returns the ids of the users whose message was queued again.
    pub fn requeue_mail(&self, acct: AccountId, users: Option<&[String]>) -> StoreResult<Vec<String>> {
        let failed: Vec<(u64, String)> = self
            .mail_owed(acct)?
            .into_iter()
            .filter(|(_, m)| m.status == MailStatus::Failed)
            .filter(|(_, m)| users.is_none_or(|u| u.contains(&m.user)))
            .map(|(seq, m)| (seq, m.user))
            .collect();
        self.transact(|tx| {
            let mut requeued = Vec::new();
            for (seq, uid) in &failed {
                let Some(mut message) = tx_get::<OutboxMessage>(tx, &message_key(acct, *seq))? else {
                    continue;
                };
                if message.status != MailStatus::Failed {
                    continue;
                }
                message.status = MailStatus::Queued;
                message.next_attempt = None;
                tx.insert(message_key(acct, *seq), encode(&message))?;
                requeued.push(uid.clone());
            }
            Ok(requeued)
        })
    }

    /// How the account's mail queue stands.
    pub fn mail_queue(&self, acct: AccountId) -> StoreResult<MailQueue> {
        let mut queue = MailQueue::default();
        for (_, m) in self.mail_owed(acct)? {
            match m.status {
                MailStatus::Failed => queue.failed += 1,
                MailStatus::Queued | MailStatus::Deferred => {
                    queue.waiting += 1;
                    if queue.oldest.as_ref().is_none_or(|o| m.created < *o) {
                        queue.oldest = Some(m.created.clone());
                    }
                    if m.status == MailStatus::Deferred {
                        queue.deferred += 1;
                        if queue.next_attempt.as_ref().is_none_or(|n| m.next_attempt.as_ref() < Some(n)) {
                            queue.next_attempt = m.next_attempt.clone();
                        }
                    }
                }
                MailStatus::Sent | MailStatus::Cancelled => {}
            }
        }
        Ok(queue)
    }

    /// The account's sender name and reply-to, with their version (`""` while never set).
    pub fn mail_settings(&self, acct: AccountId) -> StoreResult<(MailSettings, String)> {
        match self.tree().get(settings_key(acct))? {
            Some(bytes) => Ok((decode(&bytes)?, object_version(&bytes))),
            None => Ok((MailSettings::default(), String::new())),
        }
    }

    /// Replaces the account's sender name and reply-to if they are still at version `if_match`
    /// (`""`: never set; 412 otherwise).
    pub fn put_mail_settings_if(
        &self,
        acct: AccountId,
        settings: &MailSettings,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<()> {
        let now = self.now();
        let bytes = encode(settings);
        self.transact(|tx| {
            let old = tx.get(settings_key(acct))?;
            check_version(old.as_deref(), if_match)?;
            let before: Option<MailSettings> = old.as_deref().and_then(|b| serde_json::from_slice(b).ok());
            tx.insert(settings_key(acct), bytes.clone())?;
            let detail = json!({"changes": super::sync::changes(before.as_ref(), settings)});
            record(tx, acct, now, actor, "mail-settings.updated", None, detail)
        })
    }

    /// The owed index against the outbox: every message still owed is indexed, and nothing else is
    /// (checked once the index exists).
    pub(crate) fn verify_mail_owed(&self, acct: AccountId, problems: &mut Vec<String>) -> StoreResult<()> {
        if !self.tree().contains_key(global(kind::LAYOUT, OWED_LAYOUT))? {
            return Ok(());
        }
        for item in self.tree().scan_prefix(prefix(kind::OUTBOX, acct)) {
            let (k, v) = item?;
            let (Some(seq), message) = (seq_of(&k), decode::<OutboxMessage>(&v)?) else { continue };
            let indexed = self.tree().contains_key(owed_key(acct, seq))?;
            if indexed != message.status.owed() {
                problems.push(format!(
                    "account {}: welcome message {} is {:?} but {} the owed index",
                    acct.0,
                    message.id,
                    message.status,
                    if indexed { "in" } else { "not in" }
                ));
            }
        }
        for item in self.tree().scan_prefix(prefix(kind::MAIL_OWED, acct)) {
            let (k, _) = item?;
            if let Some(seq) = seq_of(&k)
                && !self.tree().contains_key(message_key(acct, seq))?
            {
                problems.push(format!("account {}: the owed index names a missing message {seq}", acct.0));
            }
        }
        Ok(())
    }

    /// Builds the owed index of a store from before it: every message not sent is owed (without a mail
    /// server, none ever was). Runs once.
    pub fn migrate_mail_owed(&self) -> StoreResult<()> {
        let marker = global(kind::LAYOUT, OWED_LAYOUT);
        if self.tree().contains_key(&marker)? {
            return Ok(());
        }
        let mut owed = Vec::new();
        for item in self.tree().scan_prefix([kind::OUTBOX]) {
            let (k, v) = item?;
            let message: OutboxMessage = decode(&v)?;
            if let (Some(acct), Some(seq)) = (super::keys::account_of(&k), seq_of(&k))
                && message.status.owed()
            {
                owed.push(owed_key(acct, seq));
            }
        }
        self.transact(|tx| {
            for k in &owed {
                tx.insert(k.as_slice(), &[])?;
            }
            tx.insert(marker.as_slice(), &[])
        })?;
        self.durable_blocking()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::temp_store;

    fn message(id: &str, user: &str) -> OutboxMessage {
        OutboxMessage {
            id: id.into(),
            user: user.into(),
            to: format!("{user}@example.com"),
            template: "default".into(),
            language: "en_US".into(),
            subject: "Welcome".into(),
            body: "Hello".into(),
            created: "2026-01-01T00:00:00.000Z".into(),
            rule: Some("r1".into()),
            user_name: Some(user.into()),
            status: MailStatus::Queued,
            attempts: 0,
            last_attempt: None,
            next_attempt: None,
            queue_id: None,
            reply: None,
        }
    }

    #[test]
    fn a_message_is_owed_until_sent_or_cancelled() {
        let (store, _dir) = temp_store();
        store.migrate_mail_owed().unwrap();
        let acct = AccountId(1);
        store.transact(|tx| queue_welcome(tx, acct, "u1", &message("m1", "u1"))).unwrap();
        store.transact(|tx| queue_welcome(tx, acct, "u2", &message("m2", "u2"))).unwrap();
        assert!(store.welcomed(acct, "u1").unwrap());
        let owed = store.mail_owed(acct).unwrap();
        assert_eq!(owed.len(), 2);
        assert_eq!(store.accounts_owed_mail().unwrap(), [acct]);
        let (seq1, seq2) = (owed[0].0, owed[1].0);

        let later = chrono::Utc::now() + chrono::Duration::seconds(60);
        let deferred = MailOutcome::Deferred { reply: "451 busy".into(), next_attempt: later };
        let m = store.mail_attempted(acct, seq1, &deferred).unwrap().unwrap();
        assert_eq!((m.status, m.attempts), (MailStatus::Deferred, 1));
        assert_eq!(store.mail_queue(acct).unwrap().deferred, 1);
        let m = store.mail_attempted(acct, seq1, &MailOutcome::Failed { reply: "550 no".into() }).unwrap();
        assert_eq!(m.map(|m| m.status), Some(MailStatus::Failed));
        let failures = store.mail_failures(acct).unwrap();
        assert_eq!(failures.len(), 1);
        assert_eq!((failures[0].0.as_str(), failures[0].1.detail.as_str()), ("u1", "550 no"));
        assert_eq!(failures[0].1.reason, FailureReason::WelcomeEmailFailed);
        assert!(
            store.mail_attempted(acct, seq1, &deferred).unwrap().is_none(),
            "a failed message waits for a retry"
        );
        assert_eq!(store.requeue_mail(acct, None).unwrap(), ["u1"]);
        assert!(store.mail_failures(acct).unwrap().is_empty());

        let sent = MailOutcome::Sent { reply: "250 Ok: queued as X1".into(), queue_id: Some("X1".into()) };
        let m = store.mail_attempted(acct, seq1, &sent).unwrap().unwrap();
        assert_eq!((m.status, m.queue_id.as_deref(), m.attempts), (MailStatus::Sent, Some("X1"), 3));
        assert!(
            store.mail_attempted(acct, seq1, &sent).unwrap().is_none(),
            "a sent message is never sent again"
        );

        store.transact(|tx| cancel_welcome(tx, acct, "u2")).unwrap();
        assert!(!store.welcomed(acct, "u2").unwrap());
        assert_eq!(store.mail_message(acct, seq2).unwrap().map(|m| m.status), Some(MailStatus::Cancelled));
        store.transact(|tx| cancel_welcome(tx, acct, "u1")).unwrap();
        assert_eq!(
            store.mail_message(acct, seq1).unwrap().map(|m| m.status),
            Some(MailStatus::Sent),
            "sent stays sent"
        );
        assert!(store.mail_owed(acct).unwrap().is_empty());
        let mut problems = Vec::new();
        store.verify_mail_owed(acct, &mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(store.outbox(acct).unwrap().len(), 2);
    }
}
