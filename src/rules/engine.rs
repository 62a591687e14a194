//! The worker that keeps entitlements in step: it drains the store's queue (pending users and scopes) of
//! every account whose sync is on, evaluates each user against the account's rules and applies the
//! decisions in batches. Evaluation is serialised (one batch at a time, worker or explicit retry), so a
//! decision can never overtake a newer one for the same user.

use std::collections::{HashMap, HashSet};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::timestamp;
use crate::scim::schema::{Registry, ResourceKind};
use crate::store::sync::{
    Applied, BrakeSettings, Decision, DeletedGroup, EmailTemplate, FailureReason, HeldUser, ObjectKind,
    Outcome, Scope, SyncConfig,
};
use crate::store::{AccountId, Actor, GroupsCursor, Store, StoreResult};

use super::resolve::{CompiledRule, compile, decide};
use super::welcome::render_welcome;

/// Users evaluated and applied per transaction.
const BATCH: usize = 512;

/// How long the worker lets writes gather once woken: a burst of directory writes then costs one pass
/// instead of one wake-up and one pass per write, for at most this delay in acting on the first.
const SETTLE: Duration = Duration::from_millis(2);

/// Adds the users the worker evaluated for an account to its `usersync_engine_evaluations_total`.
fn count_evaluations(store: &Store, acct: AccountId, evaluated: usize) {
    if evaluated == 0 {
        return;
    }
    let account = store.account_name(acct).ok().flatten().unwrap_or_else(|| acct.0.to_string());
    metrics::counter!("usersync_engine_evaluations_total", "account" => account).increment(evaluated as u64);
}

/// A handle on the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    wake: Mutex<bool>,
    wake_cv: Condvar,
    stop: AtomicBool,
    evaluating: Mutex<()>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Engine {
    /// An engine without a worker thread: work happens when [`run_pending`](Self::run_pending) is called.
    pub fn new(store: Store) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                store,
                wake: Mutex::new(true),
                wake_cv: Condvar::new(),
                stop: AtomicBool::new(false),
                evaluating: Mutex::new(()),
                worker: Mutex::new(None),
            }),
        }
    }

    /// An engine with its worker thread running (and draining whatever a previous run left pending).
    pub fn start(store: Store) -> std::io::Result<Engine> {
        let engine = Engine::new(store);
        let worker = engine.clone();
        let handle =
            std::thread::Builder::new().name("usersync-engine".into()).spawn(move || worker.work())?;
        if let Ok(mut slot) = engine.inner.worker.lock() {
            *slot = Some(handle);
        }
        Ok(engine)
    }

    /// Tells the worker there is new work.
    pub fn notify(&self) {
        if let Ok(mut wake) = self.inner.wake.lock() {
            *wake = true;
        }
        self.inner.wake_cv.notify_one();
    }

    /// Stops the worker after its current batch.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.notify();
        let handle = self.inner.worker.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// Whether the worker thread is alive and not told to stop.
    pub fn running(&self) -> bool {
        !self.inner.stop.load(Ordering::SeqCst)
            && self.inner.worker.lock().is_ok_and(|w| w.as_ref().is_some_and(|h| !h.is_finished()))
    }

    fn work(&self) {
        while !self.inner.stop.load(Ordering::SeqCst) {
            {
                let Ok(mut wake) = self.inner.wake.lock() else { return };
                if !*wake {
                    // A periodic pass also picks up work whose notification was missed.
                    wake = match self.inner.wake_cv.wait_timeout(wake, Duration::from_secs(1)) {
                        Ok((w, _)) => w,
                        Err(_) => return,
                    };
                }
                *wake = false;
            }
            std::thread::sleep(SETTLE);
            if self.inner.stop.load(Ordering::SeqCst) {
                return;
            }
            if let Err(e) = self.run_pending() {
                log::error!("rule evaluation failed, will retry: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    fn serialised(&self) -> MutexGuard<'_, ()> {
        self.inner.evaluating.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drains every account's queue once; returns how many users were evaluated.
    pub fn run_pending(&self) -> StoreResult<usize> {
        let store = &self.inner.store;
        let mut evaluated = 0;
        for acct in store.accounts_with_work()? {
            let config = store.sync_config(acct)?;
            if !config.enabled {
                continue;
            }
            let Some(mut evaluator) = Evaluator::new(store, acct, &config)? else { continue };
            let before = evaluated;
            let scopes = store.pending_scopes(acct)?;
            let mut cause = cause_of(&scopes, store.scope_cause(acct)?);
            // Directory writes that follow a group's deletion are named by the group.
            let deleted = store.deleted_groups(acct)?;
            let mut groups: Vec<DeletedGroup> = Vec::new();
            if cause == "directoryWrites" && !deleted.is_empty() {
                groups = deleted.iter().map(|(g, _)| g.clone()).collect();
                cause = "groupDeleted";
            }
            evaluator.brake = Some(Mutex::new(Brake::new(store, acct, cause, groups.clone())?));
            evaluated += self.drain_scopes(&evaluator, &scopes)?;
            // Last, because applying decisions marks the waiting users a freed seat is offered to.
            evaluated += self.drain_users(&evaluator)?;
            // Before the scopes are finished: a crash before this re-evaluates them. Revocations applied
            // now free seats, offered to waiting users by another round.
            let again = if cause == "groupDeleted" { cause } else { "directoryWrites" };
            while self.settle_revocations(&evaluator, &config)? {
                evaluator.brake = Some(Mutex::new(Brake::new(store, acct, again, groups.clone())?));
                evaluated += self.drain_users(&evaluator)?;
            }
            // A group whose memberships were all removed before this pass began has had its members
            // evaluated by it (every pass drains every pending user): later directory writes are no
            // longer its doing.
            let settled: Vec<String> =
                deleted.into_iter().filter(|(_, finished)| *finished).map(|(g, _)| g.id).collect();
            store.forget_deleted_groups(acct, &settled)?;
            for (scope, seq) in &scopes {
                store.finish_scope(acct, scope, *seq)?;
            }
            count_evaluations(store, acct, evaluated - before);
        }
        Ok(evaluated)
    }

    /// The revocations this pass put aside: held if there are more than the account's threshold (or the
    /// users are held already), applied otherwise. Returns whether any were applied.
    fn settle_revocations(&self, evaluator: &Evaluator<'_>, config: &SyncConfig) -> StoreResult<bool> {
        let (store, acct) = (&self.inner.store, evaluator.acct);
        let Some(brake) = evaluator.brake.as_ref() else { return Ok(false) };
        let brake = std::mem::replace(&mut *brake.lock().unwrap_or_else(|p| p.into_inner()), Brake::off());
        if brake.deferred.is_empty() {
            return Ok(false);
        }
        let (again, new): (Vec<_>, Vec<_>) =
            brake.deferred.into_iter().partition(|(d, _)| brake.held.contains(&d.user));
        let _one_at_a_time = self.serialised();
        // Directory writes of the last minute count together (a group's deletion among them); a rule
        // change or reorder is a cause alone.
        let revoking = new.len() as u64;
        let recent = match brake.cause {
            "directoryWrites" | "groupDeleted" => store.count_revocations(acct, revoking)?,
            _ => 0,
        };
        let together = recent + revoking;
        // Counting the entitled users reads every entitlement: only when the count could matter.
        let hold_new = revoking > 0
            && together >= brake.settings.min_users
            && brake.settings.holds(together, store.entitled_count(acct)? + recent);
        let applies = !hold_new && !new.is_empty();
        let rules_before = match brake.cause {
            "ruleChange" | "reorder" => config.previous_rules.as_deref(),
            _ => None,
        };
        let mut held: Vec<(String, Option<u64>, HeldUser)> =
            again.into_iter().map(|(d, h)| (d.user, d.pending_seq, h)).collect();
        if hold_new {
            held.extend(new.into_iter().map(|(d, h)| (d.user, d.pending_seq, h)));
        } else {
            let decisions: Vec<Decision> = new.into_iter().map(|(d, _)| d).collect();
            store.apply_decisions(acct, &decisions)?;
        }
        if !held.is_empty() {
            store.hold_revocations(acct, brake.cause, rules_before, &brake.groups, &held)?;
        }
        Ok(applies)
    }

    /// Applies the held revocations as the rules decide now (a user no longer implied to lose anything
    /// loses nothing) and ends the hold. Returns how many users were evaluated.
    pub fn release(&self, acct: AccountId, actor: &Actor) -> StoreResult<usize> {
        let store = &self.inner.store;
        let config = store.sync_config(acct)?;
        let Some(evaluator) = Evaluator::new(store, acct, &config)? else { return Ok(0) };
        let _one_at_a_time = self.serialised();
        let Some(hold) = store.hold(acct)? else { return Ok(0) };
        let users: Vec<(String, Option<u64>)> = hold.users.keys().map(|u| (u.clone(), None)).collect();
        for chunk in users.chunks(BATCH) {
            store.apply_decisions(acct, &evaluator.decisions(chunk)?)?;
        }
        store.end_hold(acct, "sync.released", actor)?;
        Ok(users.len())
    }

    fn drain_scopes(&self, evaluator: &Evaluator<'_>, scopes: &[(Scope, u64)]) -> StoreResult<usize> {
        let (store, acct) = (&self.inner.store, evaluator.acct);
        let has = |wanted: &Scope| scopes.iter().any(|(s, _)| s == wanted);
        // When the whole account is in scope, everyone is evaluated once and the other scopes go with it.
        let walk: Vec<&Scope> = match has(&Scope::All) {
            true => vec![&Scope::All],
            false => scopes.iter().map(|(s, _)| s).filter(|s| **s != Scope::Reorder).collect(),
        };
        let mut evaluated = 0;
        // One ascending id order across the scopes, each user once, so that seats go in the order a preview
        // of the change assumed.
        let mut users = store.scopes_users(acct, &walk);
        let mut done: HashSet<String> = HashSet::new();
        loop {
            let uids = users.next_page(BATCH)?;
            if uids.is_empty() {
                break;
            }
            evaluated += self.evaluate_batch(evaluator, &uids.iter().collect::<Vec<_>>())?;
            done.extend(uids);
        }
        if let Some((_, seq)) = scopes.iter().find(|(s, _)| *s == Scope::Reorder)
            && !has(&Scope::All)
        {
            evaluated += self.reorder_pass(evaluator, *seq, &done)?;
        }
        Ok(evaluated)
    }

    /// Evaluates and applies one batch of users (in ascending id order). A user evaluated here needs no
    /// separate evaluation for a pending mark set before now, so the mark goes with the decision.
    fn evaluate_batch(&self, evaluator: &Evaluator<'_>, uids: &[&String]) -> StoreResult<usize> {
        let (store, acct) = (&self.inner.store, evaluator.acct);
        let users = uids
            .iter()
            .map(|u| Ok(((*u).clone(), store.pending_seq(acct, u)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        self.apply_waiting_last(evaluator, users)
    }

    /// Evaluates users (given in ascending id order) and applies their decisions: first those who do not
    /// wait for a seat, in id order, then those who do, oldest failure first, so that seats the first ones
    /// free go to whoever has waited longest.
    fn apply_waiting_last(
        &self,
        evaluator: &Evaluator<'_>,
        users: Vec<(String, Option<u64>)>,
    ) -> StoreResult<usize> {
        let (store, acct) = (&self.inner.store, evaluator.acct);
        let count = users.len();
        let waiting = evaluator.waiting_since()?;
        let (mut waiters, others): (Vec<_>, Vec<_>) =
            users.into_iter().partition(|(u, _)| waiting.contains_key(u));
        waiters.sort_by(|(a, _), (b, _)| (&waiting[a], a).cmp(&(&waiting[b], b)));
        let _one_at_a_time = self.serialised();
        for decisions in [evaluator.decisions(&others)?, evaluator.decisions_as_listed(&waiters)?] {
            let decisions = evaluator.sift(decisions)?;
            if !decisions.is_empty() {
                store.apply_decisions(acct, &decisions)?;
                evaluator.unhold_applied(&decisions)?;
            }
        }
        Ok(count)
    }

    /// After a pure reorder, only users whose lowest-numbered matching rule changed (or who are failing or
    /// marked pending) need evaluating; everyone else keeps their bundle without a read of their record.
    fn reorder_pass(
        &self,
        evaluator: &Evaluator<'_>,
        seq: u64,
        done: &HashSet<String>,
    ) -> StoreResult<usize> {
        let (store, acct) = (&self.inner.store, evaluator.acct);
        let marked = store.pending_users(acct, usize::MAX)?.into_iter().map(|(u, _)| u);
        let mut owed: Vec<String> = store
            .find_owed_by_reorder(acct, seq)?
            .into_iter()
            .chain(marked)
            .filter(|u| !done.contains(u))
            .collect();
        // One ascending id order, as everywhere else the engine hands out seats.
        owed.sort_unstable();
        owed.dedup();
        let mut evaluated = 0;
        for chunk in owed.chunks(BATCH) {
            let batch: Vec<&String> = chunk.iter().collect();
            evaluated += self.evaluate_batch(evaluator, &batch)?;
            // A user whose revocation is put aside stays owed (and counted pending) until the pass has
            // held or applied it, so that `pending: 0` never shows before a hold does.
            let settled: Vec<&String> = batch.into_iter().filter(|u| !evaluator.put_aside(u)).collect();
            store.reorder_evaluated(acct, &settled);
        }
        Ok(evaluated)
    }

    fn drain_users(&self, evaluator: &Evaluator<'_>) -> StoreResult<usize> {
        let (store, acct) = (&self.inner.store, evaluator.acct);
        let mut evaluated = 0;
        // Sweeps in id order until one finds nobody to evaluate but users whose revocation is put aside
        // (their marks stay until the pass settles them).
        loop {
            let (mut after, mut swept) = (None::<String>, 0);
            loop {
                let page = store.pending_users_after(acct, after.as_deref(), BATCH)?;
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                let pending: Vec<(String, Option<u64>)> = page
                    .into_iter()
                    .filter(|(u, _)| !evaluator.put_aside(u))
                    .map(|(u, seq)| (u, Some(seq)))
                    .collect();
                swept += pending.len();
                evaluated += self.apply_waiting_last(evaluator, pending)?;
            }
            if swept == 0 {
                return Ok(evaluated);
            }
        }
    }

    /// Evaluates the given users now (an explicit retry) and returns what happened to each.
    pub fn evaluate_now(&self, acct: AccountId, uids: &[String]) -> StoreResult<Vec<(String, Applied)>> {
        let store = &self.inner.store;
        let config = store.sync_config(acct)?;
        let Some(evaluator) = Evaluator::new(store, acct, &config)? else { return Ok(Vec::new()) };
        // Oldest failure first, as seats are handed out everywhere else.
        let waiting = evaluator.waiting_since()?;
        let mut sorted = uids.to_vec();
        sorted.sort_by(|a, b| (waiting.get(a), a).cmp(&(waiting.get(b), b)));
        sorted.dedup();
        let mut out = Vec::with_capacity(sorted.len());
        for chunk in sorted.chunks(BATCH) {
            let _one_at_a_time = self.serialised();
            let batch: Vec<(String, Option<u64>)> = chunk.iter().map(|u| (u.clone(), None)).collect();
            let decisions = evaluator.decisions_as_listed(&batch)?;
            let applied = store.apply_decisions(acct, &decisions)?;
            out.extend(chunk.iter().cloned().zip(applied));
        }
        Ok(out)
    }
}

/// Everything needed to decide for the users of one account.
struct Evaluator<'s> {
    store: &'s Store,
    acct: AccountId,
    rules: Vec<CompiledRule>,
    registry: Arc<Registry>,
    templates: HashMap<String, EmailTemplate>,
    /// The mass-revocation brake of an engine pass (`None`: decisions are applied as they come).
    brake: Option<Mutex<Brake>>,
}

/// What the brake of one pass knows: the threshold, who is held already, and the revocations put aside
/// until the pass knows how many there are.
struct Brake {
    settings: BrakeSettings,
    cause: &'static str,
    /// For `groupDeleted`: the groups named.
    groups: Vec<DeletedGroup>,
    held: HashSet<String>,
    deferred: Vec<(Decision, HeldUser)>,
    /// The users of `deferred`.
    aside: HashSet<String>,
}

impl Brake {
    fn new(
        store: &Store,
        acct: AccountId,
        cause: &'static str,
        groups: Vec<DeletedGroup>,
    ) -> StoreResult<Brake> {
        let held = store.hold(acct)?.map(|h| h.users.into_keys().collect()).unwrap_or_default();
        let settings = store.brake_settings(acct)?;
        Ok(Brake { settings, cause, groups, held, deferred: Vec::new(), aside: HashSet::new() })
    }

    /// An emptied brake, left in place once a pass has settled its revocations.
    fn off() -> Brake {
        Brake {
            settings: BrakeSettings::default(),
            cause: "",
            groups: Vec::new(),
            held: HashSet::new(),
            deferred: Vec::new(),
            aside: HashSet::new(),
        }
    }
}

/// What a pass's revocations are held as: the change whose scopes it walks (as the change recorded it),
/// or else directory writes.
fn cause_of(scopes: &[(Scope, u64)], recorded: Option<String>) -> &'static str {
    if scopes.is_empty() {
        return "directoryWrites";
    }
    let known = ["ruleChange", "reorder", "syncSwitchedOn", "customAttributes"];
    if let Some(cause) = recorded.and_then(|r| known.into_iter().find(|k| *k == r)) {
        return cause;
    }
    let has = |f: fn(&Scope) -> bool| scopes.iter().any(|(s, _)| f(s));
    if has(|s| *s == Scope::All) {
        "syncSwitchedOn"
    } else if has(|s| matches!(s, Scope::Group(_))) {
        "ruleChange"
    } else if has(|s| *s == Scope::Reorder) {
        "reorder"
    } else {
        "directoryWrites"
    }
}

impl<'s> Evaluator<'s> {
    /// `None` (logged) if a stored rule no longer compiles.
    fn new(store: &'s Store, acct: AccountId, config: &SyncConfig) -> StoreResult<Option<Evaluator<'s>>> {
        let rules = match compile(&config.rules) {
            Ok(rules) => rules,
            Err(e) => {
                log::error!("account {}: a rule does not compile, sync is paused: {e}", acct.0);
                return Ok(None);
            }
        };
        let templates = store
            .objects::<EmailTemplate>(acct, ObjectKind::EmailTemplate)?
            .into_iter()
            .map(|t| (t.id.clone(), t))
            .collect();
        Ok(Some(Evaluator { store, acct, rules, registry: store.registry(acct), templates, brake: None }))
    }

    /// The decisions to apply now; those that take products away from a user are put aside for the brake.
    fn sift(&self, decisions: Vec<Decision>) -> StoreResult<Vec<Decision>> {
        let Some(brake) = &self.brake else { return Ok(decisions) };
        let mut brake = brake.lock().unwrap_or_else(|p| p.into_inner());
        let mut now = Vec::with_capacity(decisions.len());
        for d in decisions {
            match self.revocation(&d)? {
                Some(held) => {
                    brake.aside.insert(d.user.clone());
                    brake.deferred.push((d, held));
                }
                None => now.push(d),
            }
        }
        Ok(now)
    }

    /// Was this user's revocation put aside in this pass?
    fn put_aside(&self, uid: &str) -> bool {
        self.brake.as_ref().is_some_and(|b| b.lock().unwrap_or_else(|p| p.into_inner()).aside.contains(uid))
    }

    /// Users who were held and whose decision, applied now, takes nothing away leave the hold.
    fn unhold_applied(&self, decisions: &[Decision]) -> StoreResult<()> {
        let Some(brake) = &self.brake else { return Ok(()) };
        let mut brake = brake.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<String> =
            decisions.iter().filter(|d| brake.held.contains(&d.user)).map(|d| d.user.clone()).collect();
        if !gone.is_empty() {
            self.store.unhold(self.acct, &gone)?;
            for u in &gone {
                brake.held.remove(u);
            }
        }
        Ok(())
    }

    /// What the decision takes away from the user (`None`: nothing).
    fn revocation(&self, d: &Decision) -> StoreResult<Option<HeldUser>> {
        let Some(held) = self.store.entitlement(self.acct, &d.user)?.and_then(|e| e.bundle) else {
            return Ok(None);
        };
        let keeps: &[String] = match &d.outcome {
            Outcome::Entitle { bundle, .. } => &bundle.products,
            Outcome::Nothing { .. } | Outcome::Deleted => &[],
        };
        let loses: Vec<String> = held.products.iter().filter(|p| !keeps.contains(p)).cloned().collect();
        if loses.is_empty() {
            return Ok(None);
        }
        let user_name = match self.store.user(self.acct, &d.user)? {
            Some(u) => u.get("userName").and_then(serde_json::Value::as_str).unwrap_or_default().to_string(),
            None => match &d.outcome {
                Outcome::Entitle { user_name, .. } => user_name.clone(),
                _ => String::new(),
            },
        };
        Ok(Some(HeldUser { user_name, loses }))
    }

    /// Users waiting for a seat (failing `outOfLicenses`) and since when.
    fn waiting_since(&self) -> StoreResult<HashMap<String, String>> {
        Ok(self
            .store
            .stored_failures(self.acct)?
            .into_iter()
            .filter(|(_, f)| f.reason == FailureReason::OutOfLicenses)
            .map(|(u, f)| (u, f.since))
            .collect())
    }

    /// Decisions for users in any order, in that order (reading them in ascending id order).
    fn decisions_as_listed(&self, users: &[(String, Option<u64>)]) -> StoreResult<Vec<Decision>> {
        let mut by_id: Vec<(String, Option<u64>)> = users.to_vec();
        by_id.sort_by(|a, b| a.0.cmp(&b.0));
        let mut decided: HashMap<String, Decision> =
            self.decisions(&by_id)?.into_iter().map(|d| (d.user.clone(), d)).collect();
        Ok(users.iter().filter_map(|(u, _)| decided.remove(u)).collect())
    }

    /// Decisions for users in ascending id order, computed on every core: the work is all reads.
    fn decisions(&self, users: &[(String, Option<u64>)]) -> StoreResult<Vec<Decision>> {
        let threads =
            std::thread::available_parallelism().map_or(1, |n| n.get()).min(users.len().div_ceil(64)).max(1);
        let chunk = users.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let parts: Vec<_> =
                users.chunks(chunk).map(|part| s.spawn(move || self.decide_in_order(part))).collect();
            let mut out = Vec::with_capacity(users.len());
            for part in parts {
                out.extend(part.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?);
            }
            Ok(out)
        })
    }

    fn decide_in_order(&self, users: &[(String, Option<u64>)]) -> StoreResult<Vec<Decision>> {
        let Some((first, _)) = users.first() else { return Ok(Vec::new()) };
        let mut groups = self.store.groups_cursor(self.acct, first);
        users.iter().map(|(uid, seq)| self.decision(uid, *seq, &mut groups)).collect()
    }

    fn decision(
        &self,
        uid: &str,
        pending_seq: Option<u64>,
        cursor: &mut GroupsCursor,
    ) -> StoreResult<Decision> {
        let user = self.store.user(self.acct, uid)?;
        let groups: HashSet<String> = match &user {
            Some(_) => cursor.groups_of(uid)?.into_iter().collect(),
            None => HashSet::new(),
        };
        let schema = self.registry.resource(ResourceKind::User);
        let welcomed = user.is_none() || self.store.welcomed(self.acct, uid)?;
        let outcome = decide(user.as_ref(), &groups, &self.rules, schema, |user, rule| {
            let template = self.templates.get(&rule.bundle.welcome_email);
            let (id, now) = (uuid::Uuid::now_v7().to_string(), timestamp(self.store.now()));
            (!welcomed).then(|| render_welcome(user, rule, template, id, now))
        });
        Ok(Decision { user: uid.to_string(), pending_seq, outcome })
    }
}
