//! Applying the engine's decisions: seat accounting that never exceeds a product's seats, all or nothing
//! per user, the server-wide login claims behind `existingAccount`, failures, welcome messages and activity
//! entries — each batch one transaction.

use std::cell::RefCell;

use crate::store::tx::Tx;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::*;
use super::{product_key, tx_used, used_key};
use crate::clock::timestamp;
use crate::store::activity::record;
use crate::store::codec::{encode, tx_get};
use crate::store::domains::tx_owner;
use crate::store::feed::{Change, ChangeKind, record_change};
use crate::store::keys::{AccountId, global, key, kind, prefix};
use crate::store::pending::mark_pending;
use crate::store::resources::USERS;
use crate::store::{Actor, Store, StoreResult, TxResult};

/// What the engine decided for one user.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub user: String,
    /// The sequence number of the pending mark this decision answers; if the user was marked again since,
    /// the decision is stale and skipped (the newer mark gets its own evaluation).
    pub pending_seq: Option<u64>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // built and consumed one at a time; boxing would only add allocations
pub enum Outcome {
    /// The user no longer exists.
    Deleted,
    /// Nothing is granted: no rule matches (`None`) or the user is inactive (`Suspended`).
    Nothing { state: EntitlementState, matched: Vec<RuleRef> },
    /// The deciding rule's bundle, whole.
    Entitle {
        rule: RuleRef,
        matched: Vec<RuleRef>,
        bundle: Bundle,
        /// The folded userName, held server-wide while entitled.
        login: String,
        user_name: String,
        /// The domains of the user's logins (userName and primary email): a login in a domain another
        /// account verified cannot be entitled here.
        domains: Vec<String>,
        /// The welcome message to queue if the user has never been welcomed.
        welcome: Option<OutboxMessage>,
    },
}

/// What applying a decision did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The user was marked pending again meanwhile; nothing written.
    Skipped,
    Unchanged,
    Granted,
    Changed,
    Revoked,
    Failed(FailureReason),
}

/// Who holds a login server-wide, and who waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LoginClaim {
    account: AccountId,
    user: String,
    #[serde(default)]
    waiters: Vec<(AccountId, String)>,
}

fn login_key(login: &str) -> Vec<u8> {
    global(kind::LOGIN, login.as_bytes())
}

fn user_key(k: u8, acct: AccountId, uid: &str) -> Vec<u8> {
    key(k, acct, &[uid.as_bytes()])
}

impl Store {
    /// Inside an exclusive transaction: gives up every login the account holds (each waiter of another
    /// account is evaluated again, and may now take it) and its place among the waiters of others' logins.
    pub(crate) fn drop_account_logins(&self, tx: &Tx<'_>, acct: AccountId) -> TxResult<()> {
        let claims: Vec<(sled::IVec, LoginClaim)> = match self
            .tree()
            .scan_prefix([kind::LOGIN])
            .map(|item| {
                let (k, v) = item?;
                Ok((k, crate::store::codec::decode(&v)?))
            })
            .collect::<StoreResult<_>>()
        {
            Ok(claims) => claims,
            Err(e) => return crate::store::abort(e),
        };
        for (k, mut claim) in claims {
            if claim.account == acct {
                tx.remove(&k)?;
                for (other, waiter) in claim.waiters.iter().filter(|(a, _)| *a != acct) {
                    mark_pending(tx, *other, waiter)?;
                }
            } else if claim.waiters.iter().any(|(a, _)| *a == acct) {
                claim.waiters.retain(|(a, _)| *a != acct);
                tx.insert(&k, encode(&claim))?;
            }
        }
        Ok(())
    }

    /// Is `login` (a folded userName) held by an entitled user of an account other than `acct`?
    pub fn login_held_elsewhere(&self, acct: AccountId, login: &str) -> StoreResult<bool> {
        let claim: Option<LoginClaim> = crate::store::codec::get(self.tree(), &login_key(login))?;
        Ok(claim.is_some_and(|c| c.account != acct))
    }

    /// Applies a batch of decisions in one transaction, in the order given. A free seat is promised to the
    /// users who have waited longest for it (see [`Ctx::promised`]): nobody who waits less, or does not
    /// wait, can take it from them, whatever order the engine evaluates users in.
    pub fn apply_decisions(&self, acct: AccountId, decisions: &[Decision]) -> StoreResult<Vec<Applied>> {
        let now = self.now();
        self.transact_exclusive(|tx| {
            // Exclusive, so a scan of the failures is as consistent as a read inside the transaction.
            let waiters = match self.stored_failures(acct) {
                Ok(failures) => failures.into_iter().filter_map(|(u, f)| Waiter::of(u, &f)).collect(),
                Err(e) => return crate::store::abort(e),
            };
            let ctx = Ctx { tx, acct, now: timestamp(now), clock: now, waiters: RefCell::new(waiters) };
            let applied = decisions.iter().map(|d| ctx.apply(d)).collect::<TxResult<Vec<_>>>()?;
            ctx.offer_free_seats()?;
            Ok(applied)
        })
    }
}

/// A user waiting for seats: since when, and the products they lacked when last evaluated.
#[derive(Debug, Clone)]
struct Waiter {
    since: String,
    user: String,
    products: Vec<String>,
}

impl Waiter {
    fn of(user: String, failure: &Failure) -> Option<Waiter> {
        (failure.reason == FailureReason::OutOfLicenses).then(|| Waiter {
            since: failure.since.clone(),
            user,
            products: failure.products.clone(),
        })
    }

    /// Does this user wait longer than a user waiting since `since` (`None`: not waiting)?
    fn before(&self, since: Option<&str>, user: &str) -> bool {
        since.is_none_or(|s| (self.since.as_str(), self.user.as_str()) < (s, user))
    }
}

struct Ctx<'a> {
    tx: &'a Tx<'a>,
    acct: AccountId,
    now: String,
    clock: chrono::DateTime<chrono::Utc>,
    /// The users of the account waiting for seats, kept up to date as the batch records and clears
    /// failures.
    waiters: RefCell<Vec<Waiter>>,
}

impl Ctx<'_> {
    fn apply(&self, d: &Decision) -> TxResult<Applied> {
        let uid = d.user.as_str();
        if !super::queue::answer_pending(self.tx, self.acct, uid, d.pending_seq)? {
            return Ok(Applied::Skipped);
        }
        let old: Option<Entitlement> = tx_get(self.tx, &user_key(kind::ENTITLEMENT, self.acct, uid))?;
        match &d.outcome {
            Outcome::Deleted => self.revoke(uid, old, None, "the user was deleted"),
            Outcome::Nothing { state, matched } => {
                let why = if *state == EntitlementState::Suspended {
                    "the user is inactive"
                } else {
                    "no rule matches"
                };
                self.revoke(uid, old, Some((*state, matched.clone())), why)
            }
            Outcome::Entitle { rule, matched, bundle, login, user_name, domains, welcome } => {
                if let Some((domain, owner)) = self.foreign_owner(domains)? {
                    return self.refuse_domain(uid, old, rule, matched, bundle, user_name, &domain, owner);
                }
                self.entitle(uid, old, rule, matched, bundle, login, user_name, welcome.as_ref())
            }
        }
    }

    /// Takes everything away (seats freed at once); `keep` is the state to record, `None` for a deleted user.
    fn revoke(
        &self,
        uid: &str,
        old: Option<Entitlement>,
        keep: Option<(EntitlementState, Vec<RuleRef>)>,
        why: &str,
    ) -> TxResult<Applied> {
        let held = old.as_ref().and_then(|e| e.bundle.clone());
        if let Some(bundle) = &held {
            self.move_seats(&bundle.products, &[])?;
        }
        if let Some(login) = old.as_ref().and_then(|e| e.login.as_deref()) {
            self.release_login(login, uid)?;
        }
        self.clear_failure(uid)?;
        let ekey = user_key(kind::ENTITLEMENT, self.acct, uid);
        match keep {
            None => {
                self.tx.remove(ekey)?;
                crate::store::outbox::cancel_welcome(self.tx, self.acct, uid)?;
            }
            Some((state, matched)) => {
                let next = Entitlement {
                    state,
                    rule: None,
                    matched_rules: matched.iter().map(|r| r.id.clone()).collect(),
                    bundle: None,
                    login: None,
                    user_name: None,
                    updated: self.now.clone(),
                };
                if old.as_ref().is_none_or(|o| !same_entitlement(o, &next)) {
                    self.tx.insert(ekey, encode(&next))?;
                }
            }
        }
        match held {
            Some(bundle) => {
                let detail = json!({"products": bundle.products, "admin": bundle.admin, "reason": why});
                self.activity("entitlement.revoked", uid, detail)?;
                let user_name = match self.user_name(uid)? {
                    Some(name) => Some(name),
                    None => old.as_ref().and_then(|e| e.user_name.clone().or_else(|| e.login.clone())),
                };
                let mut change = self.change(ChangeKind::Revoked, uid, user_name, Some(bundle), None);
                change.reason = Some(why.to_string());
                record_change(self.tx, self.acct, change);
                Ok(Applied::Revoked)
            }
            None => Ok(Applied::Unchanged),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn entitle(
        &self,
        uid: &str,
        old: Option<Entitlement>,
        rule: &RuleRef,
        matched: &[RuleRef],
        bundle: &Bundle,
        login: &str,
        user_name: &str,
        welcome: Option<&OutboxMessage>,
    ) -> TxResult<Applied> {
        let next = Entitlement {
            state: EntitlementState::Entitled,
            rule: Some(rule.id.clone()),
            matched_rules: matched.iter().map(|r| r.id.clone()).collect(),
            bundle: Some(bundle.clone()),
            login: Some(login.to_string()),
            user_name: Some(user_name.to_string()),
            updated: self.now.clone(),
        };
        let failure: Option<Failure> = tx_get(self.tx, &user_key(kind::FAILURE, self.acct, uid))?;
        let failed = failure.is_some();
        if !failed && old.as_ref().is_some_and(|o| same_entitlement(o, &next)) {
            return Ok(Applied::Unchanged);
        }
        let fail = |reason, detail: String, products: Vec<String>| Failure {
            reason,
            detail,
            intended: bundle.clone(),
            rule: rule.id.clone(),
            products,
            user_name: user_name.to_string(),
            since: self.now.clone(),
        };
        // An entitlement records a login only while its claim is this user's (it is claimed in the same
        // transaction and released only by this user), so keeping one needs no read of the claim.
        let old_login = old.as_ref().and_then(|e| e.login.as_deref());
        let holds_login = old_login == Some(login);
        if !holds_login
            && let Some(holder) = self.login_holder(login)?
            && holder.account != self.acct
        {
            self.wait_for_login(login, holder, uid)?;
            let detail = format!("the login '{user_name}' is held by an entitled user of another account");
            return self.fail(uid, old.as_ref(), fail(FailureReason::ExistingAccount, detail, Vec::new()));
        }
        let old_products: Vec<String> =
            old.as_ref().and_then(|e| e.bundle.as_ref()).map(|b| b.products.clone()).unwrap_or_default();
        let since =
            failure.as_ref().filter(|f| f.reason == FailureReason::OutOfLicenses).map(|f| f.since.as_str());
        let lacking = self.lacking_seats(uid, since, &old_products, &bundle.products)?;
        if !lacking.is_empty() {
            let detail = self.seats_detail(uid, since, &lacking)?;
            return self.fail(uid, old.as_ref(), fail(FailureReason::OutOfLicenses, detail, lacking));
        }
        self.move_seats(&old_products, &bundle.products)?;
        if !holds_login {
            if let Some(previous) = old_login {
                self.release_login(previous, uid)?;
            }
            self.claim_login(login, uid)?;
        }
        if failed {
            self.track_waiting(uid, None);
            self.tx.remove(user_key(kind::FAILURE, self.acct, uid))?;
        }
        self.tx.insert(user_key(kind::ENTITLEMENT, self.acct, uid), encode(&next))?;
        if let Some(message) = welcome {
            self.welcome(uid, bundle, message)?;
        }
        let previous = old.as_ref().and_then(|e| e.bundle.clone());
        let detail = json!({"rule": rule, "products": bundle.products, "admin": bundle.admin,
            "previousProducts": previous.as_ref().map(|b| b.products.clone())});
        let (kind, applied, event) = match previous {
            None => (ChangeKind::Granted, Applied::Granted, "entitlement.granted"),
            Some(_) => (ChangeKind::Changed, Applied::Changed, "entitlement.changed"),
        };
        self.activity(event, uid, detail)?;
        let mut change = self.change(kind, uid, Some(user_name.to_string()), previous, Some(bundle.clone()));
        change.rule = Some(rule.clone());
        record_change(self.tx, self.acct, change);
        Ok(applied)
    }

    /// The first of the user's login domains owned by another account: the domain verified and its owner.
    fn foreign_owner(&self, domains: &[String]) -> TxResult<Option<(String, AccountId)>> {
        for d in domains {
            if let Some(found) = tx_owner(self.tx, d)?.filter(|(_, owner)| *owner != self.acct) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// A user whose login is in a domain another account verified: whatever they hold is taken away (its
    /// seats and login freed, so that the owner's users waiting for the login get it) and they fail
    /// `existingAccount` naming the owner, until the domain is no longer the owner's.
    #[allow(clippy::too_many_arguments)]
    fn refuse_domain(
        &self,
        uid: &str,
        old: Option<Entitlement>,
        rule: &RuleRef,
        matched: &[RuleRef],
        bundle: &Bundle,
        user_name: &str,
        domain: &str,
        owner: AccountId,
    ) -> TxResult<Applied> {
        let holds = old.as_ref().is_some_and(|e| e.bundle.is_some() || e.login.is_some());
        if holds {
            let why = format!("the domain '{domain}' is verified by another account");
            self.revoke(uid, old, Some((EntitlementState::None, matched.to_vec())), &why)?;
        }
        let owner_name: Option<String> =
            tx_get::<crate::store::Account>(self.tx, &prefix(kind::ACCOUNT, owner))?.map(|a| a.name);
        let owner_name = owner_name.unwrap_or_else(|| format!("#{}", owner.0));
        let failure = Failure {
            reason: FailureReason::ExistingAccount,
            detail: format!(
                "the login '{user_name}' is in the domain '{domain}', verified by account '{owner_name}': \
                 only that account can entitle it"
            ),
            intended: bundle.clone(),
            rule: rule.id.clone(),
            products: Vec::new(),
            user_name: user_name.to_string(),
            since: self.now.clone(),
        };
        let current: Option<Entitlement> = tx_get(self.tx, &user_key(kind::ENTITLEMENT, self.acct, uid))?;
        self.fail(uid, current.as_ref(), failure)
    }

    /// Records a failure (the user keeps what they had). A failure already recorded unchanged is not
    /// recorded twice. A user failing again for the same reason keeps the time they first failed: who waits
    /// longest for a seat gets the next one.
    fn fail(
        &self,
        uid: &str,
        old_entitlement: Option<&Entitlement>,
        mut failure: Failure,
    ) -> TxResult<Applied> {
        let fkey = user_key(kind::FAILURE, self.acct, uid);
        let old: Option<Failure> = tx_get(self.tx, &fkey)?;
        if let Some(o) = old.as_ref().filter(|o| o.reason == failure.reason) {
            failure.since = o.since.clone();
        }
        let same = old.as_ref().is_some_and(|o| {
            o.reason == failure.reason
                && o.products == failure.products
                && o.intended == failure.intended
                && o.rule == failure.rule
        });
        if !same {
            self.track_waiting(uid, Some(&failure));
            self.tx.insert(fkey, encode(&failure))?;
            let detail =
                json!({"reason": failure.reason, "detail": failure.detail, "products": failure.products});
            self.activity("sync.failed", uid, detail)?;
            // The user keeps what they had: before and after are the same.
            let held = old_entitlement.and_then(|e| e.bundle.clone());
            let user_name = Some(failure.user_name.clone());
            let mut change = self.change(ChangeKind::Failed, uid, user_name, held.clone(), held);
            change.rule = tx_get::<SyncConfig>(self.tx, &super::config_key(self.acct))?
                .and_then(|c| c.reference(&failure.rule));
            change.reason = Some(failure.reason.as_str().to_string());
            change.detail = Some(failure.detail.clone());
            change.intended = Some(failure.intended.clone());
            record_change(self.tx, self.acct, change);
        }
        Ok(Applied::Failed(failure.reason))
    }

    /// Products of `wanted` not held before that have no free seat for this user: none is free, or the
    /// free ones are promised to users who have waited longer.
    fn lacking_seats(
        &self,
        uid: &str,
        since: Option<&str>,
        held: &[String],
        wanted: &[String],
    ) -> TxResult<Vec<String>> {
        let mut lacking = Vec::new();
        for p in wanted.iter().filter(|p| !held.contains(p)) {
            let seats_left = self.seats_left(p)?;
            if seats_left == 0 || self.promised(uid, since, p)? >= seats_left {
                lacking.push(p.clone());
            }
        }
        Ok(lacking)
    }

    /// The detail of an `outOfLicenses` failure for these products, as the seats stand now.
    fn seats_detail(&self, uid: &str, since: Option<&str>, lacking: &[String]) -> TxResult<String> {
        let mut parts = Vec::with_capacity(lacking.len());
        for p in lacking {
            let product: Option<Product> = tx_get(self.tx, &product_key(self.acct, p))?;
            let used = tx_used(self.tx, self.acct, p)?;
            let ahead = self.promised(uid, since, p)?;
            parts.push(seats_text(p, product.as_ref(), used, ahead));
        }
        Ok(parts.join("; "))
    }

    /// Frees the seats of products in `from` but not `to`, and takes those in `to` but not `from`.
    fn move_seats(&self, from: &[String], to: &[String]) -> TxResult<()> {
        for p in from.iter().filter(|p| !to.contains(p)) {
            let used = tx_used(self.tx, self.acct, p)?;
            self.tx.insert(used_key(self.acct, p), encode(&used.saturating_sub(1)))?;
        }
        for p in to.iter().filter(|p| !from.contains(p)) {
            let used = tx_used(self.tx, self.acct, p)?;
            self.tx.insert(used_key(self.acct, p), encode(&(used + 1)))?;
        }
        Ok(())
    }

    /// Removing a key costs a write even when it is absent, and most users have no failure to clear.
    fn clear_failure(&self, uid: &str) -> TxResult<()> {
        let fkey = user_key(kind::FAILURE, self.acct, uid);
        if let Some(old) = tx_get::<Failure>(self.tx, &fkey)? {
            drop(old);
            self.track_waiting(uid, None);
            self.tx.remove(fkey)?;
        }
        Ok(())
    }

    /// Keeps the waiting users in step with the user's failure replaced by `new` (`None`: cleared).
    fn track_waiting(&self, uid: &str, new: Option<&Failure>) {
        let mut waiters = self.waiters.borrow_mut();
        waiters.retain(|w| w.user != uid);
        waiters.extend(new.and_then(|f| Waiter::of(uid.to_string(), f)));
    }

    /// Marks for re-evaluation every waiting user who lacks a product with a seat free for them (not
    /// promised to someone who waited longer), in the transaction that freed it: the seat is offered
    /// without an admin's retry, and the offer survives a crash. A user just evaluated lacks only seats that
    /// were taken or promised then, so only a seat freed (or a promise dropped) later is offered again.
    fn offer_free_seats(&self) -> TxResult<()> {
        let waiters = self.waiters.borrow().clone();
        for w in &waiters {
            for p in &w.products {
                if self.seats_left(p)? > self.promised(&w.user, Some(&w.since), p)? {
                    mark_pending(self.tx, self.acct, &w.user)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Free seats of a product (`u64::MAX`: unlimited; 0 for a product that no longer exists).
    fn seats_left(&self, p: &str) -> TxResult<u64> {
        Ok(match tx_get::<Product>(self.tx, &product_key(self.acct, p))? {
            Some(Product { seats: Some(seats), .. }) => seats.saturating_sub(tx_used(self.tx, self.acct, p)?),
            Some(Product { seats: None, .. }) => u64::MAX,
            None => 0,
        })
    }

    /// How many users waiting longer than `uid` (waiting since `since`, `None`: not waiting) the free
    /// seats of `product` are promised to: those who lacked it and could take their whole bundle if they
    /// got it (everything else they lacked has a free seat now).
    fn promised(&self, uid: &str, since: Option<&str>, product: &str) -> TxResult<u64> {
        let waiters = self.waiters.borrow().clone();
        let mut ahead = 0;
        for w in waiters.iter().filter(|w| w.user != uid && w.before(since, uid)) {
            if !w.products.iter().any(|p| p == product) {
                continue;
            }
            let mut could_take = true;
            for p in w.products.iter().filter(|p| *p != product) {
                could_take &= self.has_free_seat(p)?;
            }
            ahead += u64::from(could_take);
        }
        Ok(ahead)
    }

    fn has_free_seat(&self, p: &str) -> TxResult<bool> {
        Ok(self.seats_left(p)? > 0)
    }

    fn login_holder(&self, login: &str) -> TxResult<Option<LoginClaim>> {
        tx_get(self.tx, &login_key(login))
    }

    fn claim_login(&self, login: &str, uid: &str) -> TxResult<()> {
        let waiters = match self.login_holder(login)? {
            Some(c) if c.account == self.acct && c.user == uid => return Ok(()),
            Some(c) => c.waiters,
            None => Vec::new(),
        };
        let claim = LoginClaim { account: self.acct, user: uid.to_string(), waiters };
        self.tx.insert(login_key(login), encode(&claim))?;
        Ok(())
    }

    /// Gives up a login this user holds; everyone waiting for it is re-evaluated.
    fn release_login(&self, login: &str, uid: &str) -> TxResult<()> {
        let Some(claim) = self.login_holder(login)? else { return Ok(()) };
        if claim.account != self.acct || claim.user != uid {
            return Ok(());
        }
        self.tx.remove(login_key(login))?;
        for (acct, waiter) in &claim.waiters {
            mark_pending(self.tx, *acct, waiter)?;
        }
        Ok(())
    }

    fn wait_for_login(&self, login: &str, mut holder: LoginClaim, uid: &str) -> TxResult<()> {
        let me = (self.acct, uid.to_string());
        if !holder.waiters.contains(&me) {
            holder.waiters.push(me);
            self.tx.insert(login_key(login), encode(&holder))?;
        }
        Ok(())
    }

    /// Queues the welcome message once per user, when the user first gets products.
    fn welcome(&self, uid: &str, bundle: &Bundle, message: &OutboxMessage) -> TxResult<()> {
        let marker = user_key(kind::WELCOMED, self.acct, uid);
        if bundle.products.is_empty() || self.tx.get(&marker)?.is_some() {
            return Ok(());
        }
        crate::store::outbox::queue_welcome(self.tx, self.acct, uid, message)
    }

    /// A feed record of this user's change (its cursor and id are given when it is recorded).
    fn change(
        &self,
        kind: ChangeKind,
        uid: &str,
        user_name: Option<String>,
        before: Option<Bundle>,
        after: Option<Bundle>,
    ) -> Change {
        Change {
            cursor: 0,
            id: String::new(),
            kind,
            time: self.now.clone(),
            user_id: uid.to_string(),
            user_name,
            before,
            after,
            rule: None,
            reason: None,
            detail: None,
            intended: None,
        }
    }

    /// The user's userName as the transaction sees it (`None` once the user is deleted).
    fn user_name(&self, uid: &str) -> TxResult<Option<String>> {
        let doc: Option<Value> = tx_get(self.tx, &USERS.record_key(self.acct, uid))?;
        Ok(doc.and_then(|d| d.get("userName").and_then(Value::as_str).map(str::to_string)))
    }

    fn activity(&self, event: &str, uid: &str, detail: Value) -> TxResult<()> {
        record(self.tx, self.acct, self.clock, &Actor::engine(), event, Some(uid), detail)
    }
}

/// One product's part of an `outOfLicenses` detail: `"Webinar: 11 of 11 seats in use"`, and when seats are
/// free but promised to users who wait (`ahead` of them), says so.
pub(crate) fn seats_text(id: &str, product: Option<&Product>, used: u64, ahead: u64) -> String {
    let Some(product) = product else { return format!("{id}: no such product") };
    let name = &product.name;
    let full = product.seats.is_some_and(|s| used >= s);
    let in_use = match product.seats {
        Some(seats) => format!("{name}: {used} of {seats} seats in use"),
        None => format!("{name}: {used} seats in use (unlimited)"),
    };
    if full || ahead == 0 { in_use } else { format!("{in_use}, promised to {ahead} users waiting longer") }
}

/// Equal but for the time of the last change and the order of the rules that also matched.
fn same_entitlement(a: &Entitlement, b: &Entitlement) -> bool {
    let sorted = |e: &Entitlement| {
        let mut ids = e.matched_rules.clone();
        ids.sort();
        ids
    };
    a.state == b.state
        && a.rule == b.rule
        && a.bundle == b.bundle
        && a.login == b.login
        && sorted(a) == sorted(b)
}
