//! What the admin API and the console both do to an account's rules and failures: save an edit of the
//! rules, each saved rule validated in the store's transaction, and retry failing users now. Handlers of
//! either front end call these, so no check is written twice.

use std::cell::RefCell;

use serde_json::json;

use super::preview::Preview;
use super::{Engine, RuleError, preview, validate_rule};
use crate::scim::schema::ResourceKind;
use crate::store::sync::{Applied, FailureReason, References, Rule, RuleEdit, SyncConfig, renumber};
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOutcome {
    pub users: Vec<String>,
    pub retried: usize,
    pub resolved: usize,
    pub still_failing: usize,
}

/// Re-evaluates the chosen failing users now and records the retry in the activity history (blocking:
/// run it off the async threads). Refused while sync is off.
pub fn retry_failures(
    engine: &Engine,
    store: &Store,
    acct: AccountId,
    actor: &Actor,
    selection: &RetrySelection,
) -> Result<RetryOutcome, StoreError> {
    if !store.sync_config(acct)?.enabled {
        return Err(StoreError::Conflict("sync is off; switch it on to apply rules".into()));
    }
    let chosen: Vec<String> = match selection {
        RetrySelection::Users(users) => users.clone(),
        RetrySelection::Reason(reason) => {
            store.failures(acct)?.into_iter().filter(|(_, f)| f.reason == *reason).map(|(u, _)| u).collect()
        }
        RetrySelection::All => store.failures(acct)?.into_iter().map(|(u, _)| u).collect(),
    };
    let results = engine.evaluate_now(acct, &chosen)?;
    let still_failing = results.iter().filter(|(_, a)| matches!(a, Applied::Failed(_))).count();
    let resolved = results.len() - still_failing;
    let reason = match selection {
        RetrySelection::Reason(r) => Some(*r),
        _ => None,
    };
    let detail =
        json!({"users": chosen, "reason": reason, "resolved": resolved, "stillFailing": still_failing});
    store.record_activity(acct, actor, "failures.retried", None, detail)?;
    Ok(RetryOutcome { users: chosen, retried: results.len(), resolved, still_failing })
}
