//! What a proposed rule list would do, computed without writing anything: per user the bundle they have now
//! and the one they would get, which parts of it change, and whether applying it would fail; per product
//! how many users would gain and lose it and who would find no free seat.
//!
//! Seats are simulated the way the engine applies decisions: users who are not waiting for a seat in
//! ascending id order (the order in which it walks the users of a rule change), then those waiting for one
//! (failing `outOfLicenses`) oldest failure first, each bundle all or nothing, and a free seat promised to
//! whoever has waited longest and could take their whole bundle with it; seats freed along the way are
//! offered to the waiting users again. A user whose bundle does not fit keeps what they have and would fail
//! `outOfLicenses`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::scim::ScimError;
use crate::scim::schema::{ResourceKind, ResourceSchema};
use crate::store::keys::fold;
use crate::store::sync::{AdminRole, Bundle, FailureReason, Rule, RuleRef, Scope, SyncConfig};
use crate::store::{AccountId, Store, StoreError, StoreResult};

use super::resolve::{CompiledRule, compile, resolve};

/// One side of a user's change: the bundle's parts, all empty when nothing is granted.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    pub rule: Option<RuleRef>,
    pub products: Vec<String>,
    pub admin: Option<AdminRole>,
    pub language: Option<String>,
    pub welcome_email: Option<String>,
    pub user_group: Option<String>,
    pub settings_template: Option<String>,
}

impl Side {
    fn new(rule: Option<RuleRef>, bundle: Option<&Bundle>) -> Side {
        Side {
            rule,
            products: bundle.map(|b| b.products.clone()).unwrap_or_default(),
            admin: bundle.and_then(|b| b.admin.clone()),
            language: bundle.map(|b| b.language.clone()),
            welcome_email: bundle.map(|b| b.welcome_email.clone()),
            user_group: bundle.and_then(|b| b.user_group.clone()),
            settings_template: bundle.map(|b| b.settings_template.clone()),
        }
    }

    /// The parts of the bundle that differ, by their names in the API.
    fn changes(&self, to: &Side) -> Vec<&'static str> {
        [
            ("products", self.products != to.products),
            ("admin", self.admin != to.admin),
            ("language", self.language != to.language),
            ("welcomeEmail", self.welcome_email != to.welcome_email),
            ("userGroup", self.user_group != to.user_group),
            ("settingsTemplate", self.settings_template != to.settings_template),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect()
    }
}

/// Why applying would fail for a user, who would then keep `from`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WouldFail {
    pub reason: FailureReason,
    /// For `outOfLicenses`: the products without a free seat.
    pub products: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserChange {
    pub id: String,
    pub user_name: String,
    pub from: Side,
    /// What the proposed rules decide.
    pub to: Side,
    /// The parts of the bundle that change (`products`, `admin`, `language`, ...).
    pub changes: Vec<&'static str>,
    pub gains: Vec<String>,
    pub loses: Vec<String>,
    pub would_fail: Option<WouldFail>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductImpact {
    pub id: String,
    pub name: String,
    pub seats: Option<u64>,
    pub used: u64,
    /// Users whose proposed bundle gains / loses the product.
    pub gaining: u64,
    pub losing: u64,
    /// Seats the proposed bundles need: used + gaining - losing.
    pub seats_needed: u64,
    /// Seats in use once the proposed rules are applied (users who would fail keep what they have).
    pub used_after: u64,
    /// Users who would fail with `outOfLicenses` naming this product (0 when everyone fits).
    pub shortfall: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub evaluated: usize,
    pub users: Vec<UserChange>,
    pub products: Vec<ProductImpact>,
    /// Products some user would find no free seat of.
    pub run_out: Vec<String>,
    /// Users for whom applying would fail.
    pub would_fail: usize,
}

/// When a user who starts waiting during the simulated application started: after everyone already waiting.
const NOW: &str = "~";

/// Seats of each product as the simulated application takes and frees them, and the users waiting for
/// seats: (since, user, products lacked).
struct Pools(HashMap<String, (Option<u64>, u64)>, Vec<(String, String, Vec<String>)>);

impl Pools {
    fn seats_left(&self, product: &str) -> u64 {
        match self.0.get(product) {
            None => 0,
            Some((None, _)) => u64::MAX,
            Some((Some(seats), used)) => seats.saturating_sub(*used),
        }
    }

    /// How many users waiting longer than `uid` (since `since`) the free seats of `product` are promised
    /// to: those lacking it who could take their whole bundle with it (as the store applies decisions).
    fn promised(&self, uid: &str, since: &str, product: &str) -> u64 {
        let older =
            |(s, u, _): &&(String, String, Vec<String>)| u != uid && (s.as_str(), u.as_str()) < (since, uid);
        self.1
            .iter()
            .filter(older)
            .filter(|(_, _, lacked)| lacked.iter().any(|p| p == product))
            .filter(|(_, _, lacked)| lacked.iter().all(|p| p == product || self.seats_left(p) > 0))
            .count() as u64
    }

    fn since(&self, uid: &str) -> String {
        self.1.iter().find(|(_, u, _)| u == uid).map_or_else(|| NOW.to_string(), |(s, _, _)| s.clone())
    }

    /// Moves a user from `held` to `wanted` if every product they do not hold yet has a seat free for
    /// them; otherwise changes nothing, records them as waiting and returns the products without one.
    fn take(&mut self, uid: &str, held: &[String], wanted: &[String]) -> Vec<String> {
        let since = self.since(uid);
        let lacking: Vec<String> = wanted
            .iter()
            .filter(|p| !held.contains(p))
            .filter(|p| {
                let left = self.seats_left(p);
                left == 0 || self.promised(uid, &since, p) >= left
            })
            .cloned()
            .collect();
        self.1.retain(|(_, u, _)| u != uid);
        if lacking.is_empty() {
            self.adjust(held.iter().filter(|p| !wanted.contains(p)), |u| u.saturating_sub(1));
            self.adjust(wanted.iter().filter(|p| !held.contains(p)), |u| u + 1);
        } else {
            self.1.push((since, uid.to_string(), lacking.clone()));
        }
        lacking
    }

    /// Is a seat free for this waiting user now (one they lacked, not promised to someone before them)?
    fn offered(&self, uid: &str) -> bool {
        let since = self.since(uid);
        self.1.iter().filter(|(_, u, _)| u == uid).flat_map(|(_, _, lacked)| lacked).any(|p| {
            let left = self.seats_left(p);
            left > 0 && self.promised(uid, &since, p) < left
        })
    }

    fn adjust<'a>(&mut self, products: impl Iterator<Item = &'a String>, f: impl Fn(u64) -> u64) {
        for p in products {
            if let Some((_, used)) = self.0.get_mut(p) {
                *used = f(*used);
            }
        }
    }
}

/// What every user is evaluated with.
struct Context<'a> {
    store: &'a Store,
    acct: AccountId,
    current: SyncConfig,
    rules: Vec<CompiledRule>,
    schema: &'a ResourceSchema,
    /// Every verified domain and its owner: a login in another account's domain would fail.
    verified: std::collections::BTreeMap<String, AccountId>,
}

/// Whom a proposed rule list is evaluated for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every user of the account.
    Everyone,
    /// The members of these groups and the failing users: everyone else holds what the current rules
    /// decide and would hold the same under the proposed ones.
    Groups(BTreeSet<String>),
}

/// Whom `proposed` can treat differently from the rules in force. When the engine has settled (sync on,
/// nothing pending, no hold), every user who is not failing holds what the current rules decide; a user
/// none of whose groups belongs to a rule added, removed, edited or moved past another is matched by the
/// same rules in the same order under both lists, so is decided by the same rule. Otherwise, or when the
/// proposed ids are not unique, everyone.
pub fn reach(store: &Store, acct: AccountId, current: &SyncConfig, proposed: &[Rule]) -> StoreResult<Reach> {
    let settled = current.enabled
        && store.hold(acct)?.is_none()
        && store.pending_scopes(acct)?.is_empty()
        && store.pending_users(acct, 1)?.is_empty();
    match settled {
        true => Ok(differing_groups(&current.rules, proposed).map_or(Reach::Everyone, Reach::Groups)),
        false => Ok(Reach::Everyone),
    }
}

/// The groups of the rules that differ between two rule lists: added, removed, edited (anything but the
/// number and description), or in the other order relative to another rule. `None` when an id repeats.
fn differing_groups(current: &[Rule], proposed: &[Rule]) -> Option<BTreeSet<String>> {
    let index = |rules: &[Rule]| -> Option<HashMap<String, usize>> {
        let map: HashMap<String, usize> = rules.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
        (map.len() == rules.len()).then_some(map)
    };
    let (before, after) = (index(current)?, index(proposed)?);
    let same = |a: &Rule, b: &Rule| a.group == b.group && a.filter == b.filter && a.bundle == b.bundle;
    let mut groups = BTreeSet::new();
    // (position in the current list, position in the proposed list) of the rules both keep unchanged
    let mut kept: Vec<(usize, usize)> = Vec::new();
    for (i, rule) in current.iter().enumerate() {
        match after.get(&rule.id).map(|j| (*j, &proposed[*j])) {
            Some((j, new)) if same(rule, new) => kept.push((i, j)),
            Some((_, new)) => {
                groups.insert(rule.group.clone());
                groups.insert(new.group.clone());
            }
            None => {
                groups.insert(rule.group.clone());
            }
        }
    }
    for rule in proposed.iter().filter(|r| !before.contains_key(&r.id)) {
        groups.insert(rule.group.clone());
    }
    for (x, &(i, j)) in kept.iter().enumerate() {
        for &(k, l) in &kept[x + 1..] {
            if (i < k) != (j < l) {
                groups.insert(current[i].group.clone());
                groups.insert(current[k].group.clone());
            }
        }
    }
    Some(groups)
}

/// Evaluates under `proposed` (a whole, ordered rule list) every user it can treat differently from the
/// current rules ([`reach`]); the answer is the one evaluating every user would give, `evaluated` aside.
pub fn preview(store: &Store, acct: AccountId, proposed: &[Rule]) -> StoreResult<Preview> {
    let current = store.sync_config(acct)?;
    let reach = reach(store, acct, &current, proposed)?;
    preview_for(store, acct, proposed, current, &reach)
}

/// The preview evaluating the users of `reach`.
pub(super) fn preview_for(
    store: &Store,
    acct: AccountId,
    proposed: &[Rule],
    current: SyncConfig,
    reach: &Reach,
) -> StoreResult<Preview> {
    let registry = store.registry(acct);
    let ctx = Context {
        store,
        acct,
        current,
        rules: compile(proposed).map_err(StoreError::Invalid)?,
        schema: registry.resource(ResourceKind::User),
        verified: store.verified_domains()?,
    };
    let failing = store.failures(acct)?;
    let waiting: Vec<(String, String, Vec<String>)> = failing
        .iter()
        .filter(|(_, f)| f.reason == FailureReason::OutOfLicenses)
        .map(|(u, f)| (f.since.clone(), u.clone(), f.products.clone()))
        .collect();
    let mut pools =
        Pools(store.products(acct)?.into_iter().map(|(p, used)| (p.id, (p.seats, used))).collect(), waiting);
    let scopes: Vec<Scope> = match reach {
        Reach::Everyone => vec![Scope::All],
        Reach::Groups(groups) => groups.iter().map(|g| Scope::Group(g.clone())).collect(),
    };
    // The failing users in id order (as `failures` answers them), merged into the walk of the scopes.
    let mut extra: std::iter::Peekable<std::vec::IntoIter<String>> = match reach {
        Reach::Everyone => Vec::new(),
        Reach::Groups(_) => failing.into_iter().map(|(u, _)| u).collect(),
    }
    .into_iter()
    .peekable();
    let (mut users, mut evaluated) = (Vec::new(), 0);
    let mut visit = |uid: &str, users: &mut Vec<UserChange>| -> StoreResult<()> {
        if let Some(user) = store.user(acct, uid)? {
            evaluated += 1;
            users.extend(ctx.change(uid, &user)?);
        }
        Ok(())
    };
    let mut walk = store.scopes_users(acct, &scopes.iter().collect::<Vec<_>>());
    loop {
        let page = if scopes.is_empty() { Vec::new() } else { walk.next_page(1024)? };
        if page.is_empty() {
            break;
        }
        for uid in &page {
            while let Some(before) = extra.next_if(|u| u.as_str() <= uid.as_str()) {
                if before != *uid {
                    visit(&before, &mut users)?;
                }
            }
            visit(uid, &mut users)?;
        }
    }
    for uid in extra {
        visit(&uid, &mut users)?;
    }
    hand_out_seats(&mut users, &mut pools);
    let products = impacts(store, acct, &users, &pools)?;
    let run_out = products.iter().filter(|p| p.shortfall > 0).map(|p| p.id.clone()).collect();
    let would_fail = users.iter().filter(|u| u.would_fail.is_some()).count();
    Ok(Preview { evaluated, users, products, run_out, would_fail })
}

impl Context<'_> {
    /// Is one of the user's logins in a domain another account verified?
    fn owned_elsewhere(&self, user: &Value) -> bool {
        super::domains::login_domains(user)
            .iter()
            .any(|d| super::domains::owner_of(d, &self.verified).is_some_and(|(_, owner)| owner != self.acct))
    }

    /// The user's change under the proposed rules, if their bundle would change (seats not yet handed out).
    fn change(&self, uid: &str, user: &Value) -> StoreResult<Option<UserChange>> {
        let groups: HashSet<String> = self.store.groups_of(self.acct, uid)?.into_iter().collect();
        let deciding = resolve(user, &groups, &self.rules, self.schema).deciding();
        let current = self.store.entitlement(self.acct, uid)?;
        let held = current.as_ref().and_then(|e| e.bundle.as_ref());
        let rule = current.as_ref().and_then(|e| e.rule.as_deref()).and_then(|id| self.current.reference(id));
        let from = Side::new(rule, held);
        let to = Side::new(deciding.map(|r| r.reference()), deciding.map(|r| &r.rule.bundle));
        let changes = from.changes(&to);
        if changes.is_empty() {
            return Ok(None);
        }
        let user_name = user.get("userName").and_then(Value::as_str).unwrap_or_default().to_string();
        let would_fail = match deciding {
            Some(_)
                if self.owned_elsewhere(user)
                    || self.store.login_held_elsewhere(self.acct, &fold(&user_name))? =>
            {
                Some(WouldFail { reason: FailureReason::ExistingAccount, products: Vec::new() })
            }
            _ => None,
        };
        let gains = to.products.iter().filter(|p| !from.products.contains(p)).cloned().collect();
        let loses = from.products.iter().filter(|p| !to.products.contains(p)).cloned().collect();
        Ok(Some(UserChange { id: uid.to_string(), user_name, from, to, changes, gains, loses, would_fail }))
    }
}

/// The most rounds of offering freed seats to waiting users (each round gives someone a bundle or stops).
const OFFER_ROUNDS: usize = 64;

/// Hands out seats as the engine would: users not waiting in id order, then waiting users oldest first,
/// then seats freed meanwhile offered to whoever still waits. Sets `wouldFail` for `outOfLicenses`.
fn hand_out_seats(users: &mut [UserChange], pools: &mut Pools) {
    let waits = |pools: &Pools, u: &UserChange| pools.1.iter().any(|(_, w, _)| *w == u.id);
    let seat_seekers = |u: &UserChange| u.would_fail.is_none();
    let mut order: Vec<usize> = (0..users.len()).filter(|i| seat_seekers(&users[*i])).collect();
    order.sort_by_key(|i| (waits(pools, &users[*i]), pools.since(&users[*i].id), users[*i].id.clone()));
    for i in order {
        take(&mut users[i], pools);
    }
    for _ in 0..OFFER_ROUNDS {
        let mut offered: Vec<usize> = (0..users.len())
            .filter(|i| {
                users[*i].would_fail.as_ref().is_some_and(|f| f.reason == FailureReason::OutOfLicenses)
            })
            .filter(|i| pools.offered(&users[*i].id))
            .collect();
        if offered.is_empty() {
            break;
        }
        offered.sort_by_key(|i| (pools.since(&users[*i].id), users[*i].id.clone()));
        for i in offered {
            take(&mut users[i], pools);
        }
    }
}

fn take(user: &mut UserChange, pools: &mut Pools) {
    let lacking = pools.take(&user.id, &user.from.products, &user.to.products);
    user.would_fail = (!lacking.is_empty())
        .then_some(WouldFail { reason: FailureReason::OutOfLicenses, products: lacking });
}

fn impacts(
    store: &Store,
    acct: AccountId,
    users: &[UserChange],
    pools: &Pools,
) -> StoreResult<Vec<ProductImpact>> {
    // (gaining, losing, failing for lack of it)
    let mut counts: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for u in users {
        u.gains.iter().for_each(|p| counts.entry(p).or_default().0 += 1);
        u.loses.iter().for_each(|p| counts.entry(p).or_default().1 += 1);
        for p in u.would_fail.iter().flat_map(|f| &f.products) {
            counts.entry(p).or_default().2 += 1;
        }
    }
    let mut out = Vec::new();
    for (product, used) in store.products(acct)? {
        let (gaining, losing, shortfall) = counts.get(product.id.as_str()).copied().unwrap_or_default();
        let used_after = pools.0.get(&product.id).map_or(used, |(_, after)| *after);
        out.push(ProductImpact {
            id: product.id,
            name: product.name,
            seats: product.seats,
            used,
            gaining,
            losing,
            seats_needed: (used + gaining).saturating_sub(losing),
            used_after,
            shortfall,
        });
    }
    if let Some(unknown) = counts.keys().find(|p| !out.iter().any(|o| o.id == **p)) {
        return Err(StoreError::Invalid(ScimError::invalid_value(format!("unknown product '{unknown}'"))));
    }
    Ok(out)
}
