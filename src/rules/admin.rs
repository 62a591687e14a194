//! What the admin API and the console both do to an account's rules and failures: save an edit of the
//! rules, each saved rule validated in the store's transaction, and retry failing users now. Handlers of
//! either front end call these, so no check is written twice.

use std::cell::RefCell;

use serde_json::{Value, json};

use super::preview::Preview;
use super::{Engine, RuleError, preview, validate_rule};
use crate::scim::schema::ResourceKind;
use crate::store::sync::{Applied, Failure, FailureReason, References, Rule, RuleEdit, SyncConfig, renumber};
use crate::store::{AccountId, Actor, Store, StoreError};

/// Why an edit of the rules was not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The saved rule is invalid; the field says which part.
    #[error(transparent)]
    Rule(RuleError),
    #[error(transparent)]
    Store(StoreError),
}

/// Applies `edit` (if the rules are still at `expected_version`), validating the rule it saves against
/// what the same transaction reads. Does not wait for durability: the caller does.
pub fn save_rules(
    store: &Store,
    acct: AccountId,
    edit: &RuleEdit,
    expected_version: Option<u64>,
    actor: &Actor,
) -> Result<SyncConfig, SaveError> {
    let registry = store.registry(acct);
    let users = registry.resource(ResourceKind::User);
    let rejected = RefCell::new(None);
    let check = |rule: &Rule, refs: &References| {
        validate_rule(rule, refs, users).map_err(|e| {
            let message = e.to_string();
            *rejected.borrow_mut() = Some(e);
            message
        })
    };
    match store.edit_rules(acct, edit, expected_version, actor, &check) {
        Ok(saved) => Ok(saved),
        Err(StoreError::Rejected(m)) => match rejected.into_inner() {
            Some(e) => Err(SaveError::Rule(e)),
            None => Err(SaveError::Store(StoreError::Rejected(m))),
        },
        Err(e) => Err(SaveError::Store(e)),
    }
}

/// What a whole proposed rule list (in priority order) would change, each rule validated first; nothing is
/// written (blocking: run it off the async threads).
pub fn preview_rules(store: &Store, acct: AccountId, mut rules: Vec<Rule>) -> Result<Preview, SaveError> {
    renumber(&mut rules);
    let refs = store.references(acct, &rules).map_err(SaveError::Store)?;
    let registry = store.registry(acct);
    for rule in &rules {
        validate_rule(rule, &refs, registry.resource(ResourceKind::User)).map_err(SaveError::Rule)?;
    }
    preview(store, acct, &rules).map_err(SaveError::Store)
}

/// Which failing users to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetrySelection {
    All,
    Reason(FailureReason),
    Users(Vec<String>),
}

/// What a retry did.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryOutcome {
    pub users: Vec<String>,
    /// The users whose refused welcome email was queued again (counted as retried and resolved: it is
    /// no longer a failure unless the mail server refuses it again).
    pub requeued: Vec<String>,
    pub retried: usize,
    pub resolved: usize,
    pub still_failing: usize,
    /// Chosen users who were not failing: `{"id", "userName"}` each, left as they are.
    pub not_failing: Vec<Value>,
}

/// Why a retry did not run.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// Chosen ids or userNames that are no user of the account: nothing was retried.
    #[error(
        "users: no user {} in this account; nothing was retried",
        .0.iter().map(|u| format!("'{u}'")).collect::<Vec<_>>().join(", ")
    )]
    UnknownUsers(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Re-evaluates the chosen failing users now and records the retry in the activity history (blocking:
/// run it off the async threads). Refused while sync is off. Chosen users who are not failing are not
/// re-evaluated (a retry must not change what a healthy user holds) and never counted as resolved.
pub fn retry_failures(
    engine: &Engine,
    store: &Store,
    acct: AccountId,
    actor: &Actor,
    selection: &RetrySelection,
) -> Result<RetryOutcome, RetryError> {
    let mail_only = *selection == RetrySelection::Reason(FailureReason::WelcomeEmailFailed);
    if !mail_only && !store.sync_config(acct)?.enabled {
        return Err(StoreError::Conflict("sync is off; switch it on to apply rules".into()).into());
    }
    let failing = store.failures(acct)?;
    let mail_failing = store.mail_failures(acct)?;
    let users_of = |list: &[(String, Failure)], reason: Option<FailureReason>| -> Vec<String> {
        list.iter().filter(|(_, f)| reason.is_none_or(|r| f.reason == r)).map(|(u, _)| u.clone()).collect()
    };
    let (chosen, mail, not_failing) = match selection {
        RetrySelection::Users(users) => chosen_users(store, acct, users, &failing, &mail_failing)?,
        RetrySelection::Reason(FailureReason::WelcomeEmailFailed) => {
            (vec![], users_of(&mail_failing, None), vec![])
        }
        RetrySelection::Reason(reason) => (users_of(&failing, Some(*reason)), vec![], vec![]),
        RetrySelection::All => (users_of(&failing, None), users_of(&mail_failing, None), vec![]),
    };
    let results = if chosen.is_empty() { Vec::new() } else { engine.evaluate_now(acct, &chosen)? };
    let requeued = if mail.is_empty() { Vec::new() } else { store.requeue_mail(acct, Some(&mail))? };
    let still_failing = results.iter().filter(|(_, a)| matches!(a, Applied::Failed(_))).count();
    let resolved = results.len() - still_failing + requeued.len();
    let reason = match selection {
        RetrySelection::Reason(r) => Some(*r),
        _ => None,
    };
    let detail = json!({"users": chosen, "reason": reason, "resolved": resolved, "stillFailing": still_failing,
        "notFailing": not_failing, "welcomeEmailsQueued": requeued});
    store.record_activity(acct, actor, "failures.retried", None, detail)?;
    let retried = results.len() + requeued.len();
    Ok(RetryOutcome { users: chosen, requeued, retried, resolved, still_failing, not_failing })
}

/// Why held revocations were not released.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("nothing is held; there is nothing to release")]
    NothingHeld,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies the held revocations as the rules decide now and ends the hold (blocking: run it off the async
/// threads). Returns how many held users were re-evaluated.
pub fn release_hold(
    engine: &Engine,
    store: &Store,
    acct: AccountId,
    actor: &Actor,
) -> Result<usize, ReleaseError> {
    if store.hold(acct)?.is_none() {
        return Err(ReleaseError::NothingHeld);
    }
    Ok(engine.release(acct, actor)?)
}

/// The chosen users: ids to re-evaluate, ids whose welcome email to queue again, and those not failing.
type Chosen = (Vec<String>, Vec<String>, Vec<Value>);

/// The chosen users (ids or userNames) as ids: those failing in the engine, to re-evaluate, those whose
/// welcome email failed, to queue again, and those not failing, to answer as such; every one that is no
/// user of the account is named in the error.
fn chosen_users(
    store: &Store,
    acct: AccountId,
    users: &[String],
    failing: &[(String, Failure)],
    mail_failing: &[(String, Failure)],
) -> Result<Chosen, RetryError> {
    let (mut retry, mut mail, mut not_failing, mut unknown) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for key in users {
        let Some((uid, user)) = store.resolve_user(acct, key)? else {
            unknown.push(key.clone());
            continue;
        };
        let (engine, email) =
            (failing.iter().any(|(u, _)| *u == uid), mail_failing.iter().any(|(u, _)| *u == uid));
        if !engine && !email {
            not_failing.push(json!({"id": uid, "userName": user.get("userName")}));
        }
        if engine {
            retry.push(uid.clone());
        }
        if email {
            mail.push(uid);
        }
    }
    if !unknown.is_empty() {
        return Err(RetryError::UnknownUsers(unknown));
    }
    for list in [&mut retry, &mut mail] {
        list.sort();
        list.dedup();
    }
    Ok((retry, mail, not_failing))
}
