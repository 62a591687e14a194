//! The engine against a brute-force reference: random groups, memberships, rules and seat limits, a random
//! sequence of directory changes (deactivations and deletions among them), rule creates, edits, deletes and
//! reorders and seat raises and cuts, and after it the entitlements the final state alone implies. With
//! seat limits, after every step: no seat is oversubscribed, no user waits for a seat that is free, and a
//! seat went to nobody who waited less than someone who needed only that seat.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::Engine;
use crate::clock::ManualClock;
use crate::scim::patch::parse_request;
use crate::scim::resource::normalize;
use crate::scim::schema::{ResourceKind, USERSYNC_URN};
use crate::store::sync::{
    Bundle, CustomAttribute, EntitlementState, Failure, FailureReason, Product, References, Rule, RuleEdit,
    Scope,
};
use crate::store::{AccountId, Actor, DurabilityMode, Store, StoreOptions};

const USERS: usize = 7;
const GROUPS: usize = 4;
const PRODUCTS: [&str; 3] = ["p0", "p1", "p2"];
const TITLES: [&str; 3] = ["A", "B", "C"];
/// Rules are created only while there are fewer (a reorder draws one key per possible rule).
const MAX_RULES: usize = 6;

/// A user's title: one of [`TITLES`], or none.
type Title = Option<usize>;

/// A rule condition the reference evaluates by hand.
#[derive(Debug, Clone, Copy)]
enum Cond {
    Any,
    TitleIs(usize),
    TitleIsNot(usize),
    /// `title pr`
    HasTitle,
    /// The custom boolean attribute `vip`.
    Vip(bool),
    TitleAndVip(usize, bool),
    EitherTitle(usize, usize),
}

impl Cond {
    fn filter(self) -> Option<String> {
        // Mixed case on purpose: string comparison is case-insensitive.
        let title = |t: usize| format!("title eq \"{}\"", TITLES[t].to_lowercase());
        match self {
            Cond::Any => None,
            Cond::TitleIs(t) => Some(title(t)),
            Cond::TitleIsNot(t) => Some(format!("not (title eq \"{}\")", TITLES[t])),
            Cond::HasTitle => Some("title pr".into()),
            Cond::Vip(v) => Some(format!("vip eq {v}")),
            Cond::TitleAndVip(t, v) => Some(format!("{} and {USERSYNC_URN}:vip eq {v}", title(t))),
            Cond::EitherTitle(a, b) => Some(format!("({}) or title eq \"{}\"", title(a), TITLES[b])),
        }
    }

    fn holds(self, title: Title, vip: bool) -> bool {
        match self {
            Cond::Any => true,
            Cond::TitleIs(t) => title == Some(t),
            Cond::TitleIsNot(t) => title != Some(t),
            Cond::HasTitle => title.is_some(),
            Cond::Vip(v) => vip == v,
            Cond::TitleAndVip(t, v) => title == Some(t) && vip == v,
            Cond::EitherTitle(a, b) => title == Some(a) || title == Some(b),
        }
    }
}

#[derive(Debug, Clone)]
struct RuleSpec {
    group: usize,
    cond: Cond,
    products: BTreeSet<usize>,
}

#[derive(Debug, Clone)]
enum Step {
    Join(usize, usize),
    Leave(usize, usize),
    Active(usize, bool),
    Title(usize, Title),
    Vip(usize, bool),
    /// Put the rules in the order of these keys (one per position): the engine's reorder path.
    Reorder(Vec<u8>),
    /// A new rule at this number (or last).
    Create(RuleSpec, Option<u32>),
    /// Replace the rule at this position (modulo the count), moving it to a number if one is given.
    Edit(usize, RuleSpec, Option<u32>),
    Delete(usize),
    /// Raise a product's seats by this much (unlimited stays unlimited).
    Raise(usize, u64),
    /// Cut a product's seats by this much, never below the seats in use.
    Cut(usize, u64),
    DeleteUser(usize),
}

#[derive(Debug, Clone)]
struct Scenario {
    rules: Vec<RuleSpec>,
    seats: [Option<u64>; 3],
    titles: [Title; USERS],
    vips: [bool; USERS],
    steps: Vec<Step>,
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    let t = || 0..3usize;
    let cond = prop_oneof![
        3 => Just(Cond::Any),
        2 => t().prop_map(Cond::TitleIs),
        1 => t().prop_map(Cond::TitleIsNot),
        1 => Just(Cond::HasTitle),
        1 => any::<bool>().prop_map(Cond::Vip),
        1 => (t(), any::<bool>()).prop_map(|(t, v)| Cond::TitleAndVip(t, v)),
        1 => (t(), t()).prop_map(|(a, b)| Cond::EitherTitle(a, b)),
    ];
    (0..GROUPS, cond, proptest::collection::btree_set(0..3usize, 0..=3))
        .prop_map(|(group, cond, products)| RuleSpec { group, cond, products })
}

fn step() -> impl Strategy<Value = Step> {
    let title = proptest::option::weighted(0.8, 0..3usize);
    let number = proptest::option::of(1..=(MAX_RULES as u32 + 1));
    prop_oneof![
        6 => (0..USERS, 0..GROUPS).prop_map(|(u, g)| Step::Join(u, g)),
        3 => (0..USERS, 0..GROUPS).prop_map(|(u, g)| Step::Leave(u, g)),
        3 => (0..USERS, any::<bool>()).prop_map(|(u, a)| Step::Active(u, a)),
        1 => (0..USERS).prop_map(Step::DeleteUser),
        1 => (0..3usize, 1..3u64).prop_map(|(p, k)| Step::Cut(p, k)),
        1 => (0..USERS, title).prop_map(|(u, t)| Step::Title(u, t)),
        1 => (0..USERS, any::<bool>()).prop_map(|(u, v)| Step::Vip(u, v)),
        1 => proptest::collection::vec(any::<u8>(), MAX_RULES).prop_map(Step::Reorder),
        1 => (rule_spec(), number.clone()).prop_map(|(r, n)| Step::Create(r, n)),
        1 => (0..MAX_RULES, rule_spec(), number).prop_map(|(i, r, n)| Step::Edit(i, r, n)),
        1 => (0..MAX_RULES).prop_map(Step::Delete),
        1 => (0..3usize, 1..3u64).prop_map(|(p, k)| Step::Raise(p, k)),
    ]
}

fn scenario(limited: bool) -> impl Strategy<Value = Scenario> {
    let seat = if limited { proptest::option::weighted(0.8, 0..4u64).boxed() } else { Just(None).boxed() };
    (
        proptest::collection::vec(rule_spec(), 1..5),
        [seat.clone(), seat.clone(), seat],
        proptest::array::uniform7(proptest::option::weighted(0.8, 0..3usize)),
        proptest::array::uniform7(any::<bool>()),
        proptest::collection::vec(step(), 1..40),
    )
        .prop_map(|(rules, seats, titles, vips, steps)| Scenario { rules, seats, titles, vips, steps })
}

/// The directory and the rule list as the test models them.
#[derive(Clone)]
struct Model {
    active: [bool; USERS],
    deleted: [bool; USERS],
    titles: [Title; USERS],
    vips: [bool; USERS],
    members: BTreeSet<(usize, usize)>,
    /// The rules by id, highest priority first.
    rules: Vec<(String, RuleSpec)>,
    next_id: usize,
}

impl Model {
    fn new(s: &Scenario) -> Model {
        let rules = s.rules.iter().enumerate().map(|(i, r)| (format!("r{i}"), r.clone())).collect();
        Model {
            active: [true; USERS],
            deleted: [false; USERS],
            titles: s.titles,
            vips: s.vips,
            members: BTreeSet::new(),
            rules,
            next_id: s.rules.len(),
        }
    }

    /// The rule that decides for user `u` in this state, if any applies.
    fn deciding(&self, u: usize) -> Option<&(String, RuleSpec)> {
        if !self.active[u] || self.deleted[u] {
            return None;
        }
        self.rules
            .iter()
            .find(|(_, r)| self.members.contains(&(r.group, u)) && r.cond.holds(self.titles[u], self.vips[u]))
    }

    /// The products the rules give user `u`, or `None` when no rule applies.
    fn reference(&self, u: usize) -> Option<BTreeSet<usize>> {
        self.deciding(u).map(|(_, r)| r.products.clone())
    }
}

/// Where a rule given `number` lands in a list of `len` rules (the store's rule).
fn slot(number: Option<u32>, len: usize) -> usize {
    number.map_or(len, |n| (n.max(1) as usize - 1).min(len))
}

struct World {
    store: Store,
    clock: Arc<ManualClock>,
    engine: Engine,
    acct: AccountId,
    users: Vec<String>,
    groups: Vec<String>,
    _dir: tempfile::TempDir,
}

/// Checks rules as the admin API does.
fn validate(rule: &Rule, refs: &References, store: &Store, acct: AccountId) -> Result<(), String> {
    let registry = store.registry(acct);
    super::validate_rule(rule, refs, registry.resource(ResourceKind::User)).map_err(|e| e.to_string())
}

impl World {
    fn new(s: &Scenario) -> World {
        let dir = tempfile::tempdir().unwrap();
        let start = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().into();
        let clock = Arc::new(ManualClock::new(start));
        let options = StoreOptions {
            path: dir.path().to_path_buf(),
            durability: DurabilityMode::Flush,
            clock: clock.clone(),
        };
        let store = Store::open(options).unwrap();
        let (account, _) = store.ensure_account("default").unwrap();
        let acct = account.id;
        let actor = Actor::engine();
        let vip = CustomAttribute {
            name: "vip".into(),
            kind: "boolean".into(),
            multi_valued: false,
            description: String::new(),
        };
        store.put_custom_attributes(acct, &[vip], &actor, &super::custom_attributes_used).unwrap();
        let registry = store.registry(acct);
        for (i, p) in PRODUCTS.iter().enumerate() {
            let product =
                Product { id: p.to_string(), name: p.to_string(), seats: s.seats[i], requires: vec![] };
            store.put_product(acct, &product, &actor).unwrap();
        }
        let groups: Vec<String> = (0..GROUPS)
            .map(|g| {
                let body = json!({"displayName": format!("g{g}")});
                let input = normalize(registry.resource(ResourceKind::Group), &body).unwrap();
                let group = store.create_group(acct, registry.resource(ResourceKind::Group), &input, &actor);
                group.unwrap().0["id"].as_str().unwrap().to_string()
            })
            .collect();
        let users: Vec<String> = (0..USERS)
            .map(|u| {
                let mut body =
                    json!({"userName": format!("u{u}@example.com"), USERSYNC_URN: {"vip": s.vips[u]}});
                if let Some(t) = s.titles[u] {
                    body["title"] = json!(TITLES[t]);
                }
                let input = normalize(registry.resource(ResourceKind::User), &body).unwrap();
                store.create_user(acct, registry.resource(ResourceKind::User), &input, &actor).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let engine = Engine::new(store.clone());
        let world = World { store, clock, engine, acct, users, groups, _dir: dir };
        for (id, spec) in &Model::new(s).rules {
            world.edit(RuleEdit::Create { rule: world.rule(id, spec), number: None });
        }
        world.store.set_sync(acct, true, &actor).unwrap();
        world
    }

    fn rule(&self, id: &str, spec: &RuleSpec) -> Rule {
        Rule {
            id: id.to_string(),
            number: 0,
            group: self.groups[spec.group].clone(),
            filter: spec.cond.filter(),
            description: String::new(),
            bundle: Bundle {
                products: spec.products.iter().map(|p| PRODUCTS[*p].to_string()).collect(),
                ..Bundle::default()
            },
        }
    }

    /// Edits the rules the way the admin API does.
    fn edit(&self, edit: RuleEdit) {
        let check = |rule: &Rule, refs: &References| validate(rule, refs, &self.store, self.acct);
        self.store.edit_rules(self.acct, &edit, None, &Actor::engine(), &check).unwrap();
    }

    fn patch(&self, kind: ResourceKind, id: &str, op: Value) {
        let registry = self.store.registry(self.acct);
        let ops = parse_request(&json!({"Operations": [op]})).unwrap();
        let (schema, actor) = (registry.resource(kind), Actor::engine());
        match kind {
            ResourceKind::Group => {
                self.store.patch_group(self.acct, schema, id, &ops, None, &actor).map(drop)
            }
            ResourceKind::User => self.store.patch_user(self.acct, schema, id, &ops, None, &actor).map(drop),
        }
        .unwrap();
    }

    fn patch_user(&self, u: usize, op: Value) {
        self.patch(ResourceKind::User, &self.users[u], op);
    }

    fn apply(&self, step: &Step, model: &mut Model) {
        // Each step a second later: failures recorded by different steps have different ages.
        self.clock.advance(chrono::Duration::seconds(1));
        let user_step = match step {
            Step::Join(u, _) | Step::Leave(u, _) | Step::Active(u, _) | Step::Title(u, _) => Some(*u),
            Step::Vip(u, _) | Step::DeleteUser(u) => Some(*u),
            _ => None,
        };
        if user_step.is_some_and(|u| model.deleted[u]) {
            return;
        }
        match step {
            Step::DeleteUser(u) => {
                self.store.delete_user(self.acct, &self.users[*u], None, &Actor::engine()).unwrap();
                model.deleted[*u] = true;
                model.members.retain(|(_, m)| m != u);
            }
            Step::Cut(p, k) => self.cut(*p, *k),
            Step::Join(u, g) => {
                let op = json!({"op": "add", "path": "members", "value": [{"value": self.users[*u]}]});
                self.patch(ResourceKind::Group, &self.groups[*g], op);
                model.members.insert((*g, *u));
            }
            Step::Leave(u, g) => {
                let op = json!({"op": "remove", "path": format!("members[value eq \"{}\"]", self.users[*u])});
                self.patch(ResourceKind::Group, &self.groups[*g], op);
                model.members.remove(&(*g, *u));
            }
            Step::Active(u, a) => {
                self.patch_user(*u, json!({"op": "replace", "path": "active", "value": a}));
                model.active[*u] = *a;
            }
            Step::Title(u, t) => {
                let op = match t {
                    Some(t) => json!({"op": "replace", "path": "title", "value": TITLES[*t]}),
                    None => json!({"op": "remove", "path": "title"}),
                };
                self.patch_user(*u, op);
                model.titles[*u] = *t;
            }
            Step::Vip(u, v) => {
                let path = format!("{USERSYNC_URN}:vip");
                self.patch_user(*u, json!({"op": "replace", "path": path, "value": v}));
                model.vips[*u] = *v;
            }
            Step::Raise(p, k) => self.raise(*p, *k),
            rule_step => self.apply_to_rules(rule_step, model),
        }
    }

    fn apply_to_rules(&self, step: &Step, model: &mut Model) {
        if let Some(edit) = self.rule_edit(step, model) {
            self.edit(edit);
        }
    }

    /// Applies a rule step to the model's rule list and answers the edit that does the same to the store.
    fn rule_edit(&self, step: &Step, model: &mut Model) -> Option<RuleEdit> {
        let n = model.rules.len();
        match step {
            Step::Reorder(keys) => {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by_key(|i| (keys[*i], *i));
                model.rules = order.iter().map(|i| model.rules[*i].clone()).collect();
                Some(RuleEdit::Reorder { order: model.rules.iter().map(|(id, _)| id.clone()).collect() })
            }
            Step::Create(spec, number) if n < MAX_RULES => {
                let id = format!("r{}", model.next_id);
                model.next_id += 1;
                model.rules.insert(slot(*number, n), (id.clone(), spec.clone()));
                Some(RuleEdit::Create { rule: self.rule(&id, spec), number: *number })
            }
            Step::Edit(i, spec, number) if n > 0 => {
                let (id, _) = model.rules.remove(i % n);
                let to = number.map_or(i % n, |_| slot(*number, n - 1));
                model.rules.insert(to, (id.clone(), spec.clone()));
                Some(RuleEdit::Replace { rule: self.rule(&id, spec), number: *number })
            }
            Step::Delete(i) if n > 0 => {
                let (id, _) = model.rules.remove(i % n);
                Some(RuleEdit::Delete { id })
            }
            _ => None,
        }
    }

    fn raise(&self, p: usize, k: u64) {
        let (mut product, _) = self.store.product(self.acct, PRODUCTS[p]).unwrap().unwrap();
        product.seats = product.seats.map(|s| s + k);
        self.store.put_product(self.acct, &product, &Actor::engine()).unwrap();
    }

    fn cut(&self, p: usize, k: u64) {
        let (mut product, used) = self.store.product(self.acct, PRODUCTS[p]).unwrap().unwrap();
        product.seats = product.seats.map(|s| s.saturating_sub(k).max(used));
        self.store.put_product(self.acct, &product, &Actor::engine()).unwrap();
    }

    /// The users waiting for seats: (since, user index, failure).
    fn waiting(&self) -> Vec<(String, usize, Failure)> {
        let mut waiting: Vec<(String, usize, Failure)> = self
            .store
            .failures(self.acct)
            .unwrap()
            .into_iter()
            .filter(|(_, f)| f.reason == FailureReason::OutOfLicenses)
            .map(|(uid, f)| (f.since.clone(), self.users.iter().position(|u| *u == uid).unwrap(), f))
            .collect();
        waiting.sort_by(|a, b| (&a.0, &self.users[a.1]).cmp(&(&b.0, &self.users[b.1])));
        waiting
    }

    /// Nobody waits for a seat that is free: every product a waiting user lacks is full.
    fn assert_no_free_seat_waited_for(&self) {
        let seats = self.seats();
        for (_, u, f) in self.waiting() {
            for p in &f.products {
                let (used, limit) = seats[p];
                assert!(
                    limit.is_some_and(|l| used >= l),
                    "user {u} waits for {p} ({used} of {limit:?} used): {f:?}"
                );
            }
        }
    }

    /// Of the users waiting before a step, none who waited less got a seat of a product that an older one,
    /// lacking only that product before and after, still waits for; nor did anyone who did not wait.
    fn assert_oldest_served_first(
        &self,
        before: &[(String, usize, Failure)],
        held_before: &[Option<BTreeSet<usize>>],
    ) {
        let after = self.waiting();
        for (i, (_, a, fa)) in before.iter().enumerate() {
            let Some((_, _, fa_now)) = after.iter().find(|(_, u, _)| u == a) else { continue };
            let [p] = fa.products.as_slice() else { continue };
            if fa_now.products != fa.products || fa_now.intended != fa.intended {
                continue;
            }
            // Everyone but those who waited longer than `a`: newer waiters and users who did not wait.
            let older: Vec<usize> = before[..=i].iter().map(|(_, u, _)| *u).collect();
            for b in (0..USERS).filter(|b| !older.contains(b)) {
                let gained = self.held(b).is_some_and(|h| {
                    h.contains(&product_index(p))
                        && !held_before[b].as_ref().is_some_and(|h| h.contains(&product_index(p)))
                });
                assert!(!gained, "user {b} got {p} while user {a}, waiting longer for it alone, still waits");
            }
        }
    }

    /// Seats used and seats of each product.
    fn seats(&self) -> HashMap<String, (u64, Option<u64>)> {
        self.store.products(self.acct).unwrap().into_iter().map(|(p, used)| (p.id, (used, p.seats))).collect()
    }

    /// `used <= seats`, and `used` is the number of users actually holding the product.
    fn assert_no_oversubscription(&self) {
        for (id, (used, seats)) in self.seats() {
            assert!(seats.is_none_or(|s| used <= s), "{id}: {used} used of {seats:?}");
        }
        let problems = self.store.verify().unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    fn held(&self, u: usize) -> Option<BTreeSet<usize>> {
        let e = self.store.entitlement(self.acct, &self.users[u]).unwrap()?;
        let bundle = e.bundle?;
        Some(bundle.products.iter().map(|p| product_index(p)).collect())
    }

    /// The id of the rule behind the user's applied bundle.
    fn deciding_rule(&self, u: usize) -> Option<String> {
        self.store.entitlement(self.acct, &self.users[u]).unwrap()?.rule
    }

    fn state(&self, u: usize) -> Option<EntitlementState> {
        self.store.entitlement(self.acct, &self.users[u]).unwrap().map(|e| e.state)
    }
}

fn product_index(p: &str) -> usize {
    PRODUCTS.iter().position(|x| *x == p).unwrap()
}

fn run(s: &Scenario) -> (World, Model) {
    let world = World::new(s);
    let mut model = Model::new(s);
    world.engine.run_pending().unwrap();
    world.assert_no_oversubscription();
    for step in &s.steps {
        let waiting = world.waiting();
        let held: Vec<Option<BTreeSet<usize>>> = (0..USERS).map(|u| world.held(u)).collect();
        world.apply(step, &mut model);
        world.engine.run_pending().unwrap();
        world.assert_no_oversubscription();
        world.assert_no_free_seat_waited_for();
        world.assert_oldest_served_first(&waiting, &held);
    }
    let ids: Vec<String> =
        world.store.sync_config(world.acct).unwrap().rules.into_iter().map(|r| r.id).collect();
    let modelled: Vec<String> = model.rules.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, modelled, "the store's rule order is the model's");
    (world, model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn with_unlimited_seats_entitlements_equal_the_reference(s in scenario(false)) {
        let (world, model) = run(&s);
        for u in 0..USERS {
            let want = model.reference(u);
            prop_assert_eq!(world.held(u), want.clone(), "user {}", u);
            prop_assert_eq!(world.deciding_rule(u), model.deciding(u).map(|(id, _)| id.clone()), "user {}", u);
            let state = world.state(u).unwrap_or(EntitlementState::None);
            let expected = match (&want, model.active[u] || model.deleted[u]) {
                (Some(_), _) => EntitlementState::Entitled,
                (None, false) => EntitlementState::Suspended,
                (None, true) => EntitlementState::None,
            };
            prop_assert_eq!(state, expected, "user {}", u);
            prop_assert!(world.store.failure(world.acct, &world.users[u]).unwrap().is_none());
        }
        let total: BTreeMap<String, u64> = world.seats().into_iter().map(|(p, (used, _))| (p, used)).collect();
        for (i, p) in PRODUCTS.iter().enumerate() {
            let holders = (0..USERS).filter(|u| model.reference(*u).is_some_and(|b| b.contains(&i))).count() as u64;
            prop_assert_eq!(total[*p], holders, "{}", p);
        }
    }

    #[test]
    fn with_seat_limits_nobody_gets_part_of_a_bundle_and_failures_are_real(s in scenario(true)) {
        let (world, model) = run(&s);
        // an explicit retry of every failure, as an admin would
        let failing: Vec<String> = world.store.failures(world.acct).unwrap().into_iter().map(|(u, _)| u).collect();
        world.engine.evaluate_now(world.acct, &failing).unwrap();
        world.assert_no_oversubscription();
        let seats = world.seats();
        let free = |p: usize| -> bool {
            let (used, limit) = seats[PRODUCTS[p]];
            limit.is_none_or(|l| used < l)
        };
        for u in 0..USERS {
            let want = model.reference(u);
            let state = world.state(u);
            let failure = world.store.failure(world.acct, &world.users[u]).unwrap();
            if state == Some(EntitlementState::Entitled) && failure.is_none() {
                prop_assert_eq!(world.held(u), want.clone(), "entitled user {} has exactly the reference bundle", u);
                continue;
            }
            match want {
                None => {
                    prop_assert!(failure.is_none(), "user {} matches no rule and has no failure", u);
                    prop_assert_eq!(world.held(u), None, "user {} holds nothing", u);
                }
                Some(bundle) => {
                    let f = failure.unwrap_or_else(|| panic!("eligible user {u} neither entitled nor failed"));
                    prop_assert_eq!(f.reason, FailureReason::OutOfLicenses);
                    let intended: BTreeSet<usize> = f.intended.products.iter().map(|p| product_index(p)).collect();
                    prop_assert_eq!(&intended, &bundle, "the failure records the reference bundle");
                    prop_assert!(f.products.iter().all(|p| !free(product_index(p))), "named products have no free seat");
                    let held = world.held(u).unwrap_or_default();
                    prop_assert!(bundle.iter().any(|p| !held.contains(p) && !free(*p)), "after a retry the whole bundle of user {} would not fit", u);
                }
            }
        }
    }
}

/// A failure recorded while the seats are being raised is retried: the seat raise reads the failures to
/// retry in its own transaction, so the engine cannot slip a failure in between.
#[test]
fn a_seat_raise_retries_a_failure_recorded_while_it_is_saved() {
    let only_p0 = RuleSpec { group: 0, cond: Cond::Any, products: BTreeSet::from([0]) };
    let s = Scenario {
        rules: vec![only_p0],
        seats: [Some(0), None, None],
        titles: [None; USERS],
        vips: [false; USERS],
        steps: vec![],
    };
    for round in 0..150 {
        let world = World::new(&s);
        let mut model = Model::new(&s);
        world.apply(&Step::Join(0, 0), &mut model);
        let more = Product { id: "p0".into(), name: "p0".into(), seats: Some(1), requires: vec![] };
        let start = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                start.wait();
                world.engine.run_pending().unwrap();
            });
            start.wait();
            world.store.put_product(world.acct, &more, &Actor::engine()).unwrap();
        });
        world.engine.run_pending().unwrap();
        assert_eq!(world.held(0), Some(BTreeSet::from([0])), "round {round}: the free seat went to the user");
    }
}

/// A change touching several groups walks their members as one ascending id order, each user once: the
/// order a preview assumes when it hands out seats.
#[test]
fn the_users_of_several_scopes_come_in_one_id_order_each_once() {
    let s = Scenario {
        rules: vec![],
        seats: [None; 3],
        titles: [None; USERS],
        vips: [false; USERS],
        steps: vec![],
    };
    let world = World::new(&s);
    let mut model = Model::new(&s);
    for (u, g) in [(4, 0), (0, 0), (2, 0), (3, 1), (2, 1), (1, 1), (6, 2)] {
        world.apply(&Step::Join(u, g), &mut model);
    }
    let mut sorted = world.users.clone();
    sorted.sort();
    let in_groups: Vec<String> = sorted.into_iter().filter(|u| world.users[..5].contains(u)).collect();
    let scopes = [Scope::Group(world.groups[1].clone()), Scope::Group(world.groups[0].clone())];
    let mut walk = world.store.scopes_users(world.acct, &scopes.iter().collect::<Vec<_>>());
    let mut seen = Vec::new();
    loop {
        let page = walk.next_page(2).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        seen.extend(page);
    }
    assert_eq!(seen, in_groups);
}

/// A seat freed in the same pass as a user who never waited asks for one goes to the user who has been
/// waiting for it, whatever the order of the two in the pass.
#[test]
fn a_freed_seat_goes_to_the_waiting_user_before_a_newcomer() {
    let p0 = |group| RuleSpec { group, cond: Cond::Any, products: BTreeSet::from([0]) };
    let s = Scenario {
        rules: vec![p0(0), p0(1)],
        seats: [Some(1), None, None],
        titles: [None; USERS],
        vips: [false; USERS],
        steps: vec![],
    };
    let world = World::new(&s);
    let mut model = Model::new(&s);
    world.apply(&Step::Join(0, 0), &mut model);
    world.engine.run_pending().unwrap();
    world.apply(&Step::Join(1, 1), &mut model);
    world.engine.run_pending().unwrap();
    assert_eq!(world.waiting().iter().map(|(_, u, _)| *u).collect::<Vec<_>>(), [1]);
    let failure = world.store.failure(world.acct, &world.users[1]).unwrap().unwrap();
    assert_eq!(failure.detail, "p0: 1 of 1 seats in use");
    // user 0 frees the seat and user 2 (after 0 in id order, never waiting) asks for one in the same pass
    world.apply(&Step::Leave(0, 0), &mut model);
    world.apply(&Step::Join(2, 1), &mut model);
    world.engine.run_pending().unwrap();
    assert_eq!(world.held(1), Some(BTreeSet::from([0])), "the waiting user got the seat");
    assert_eq!(world.held(2), None);
    assert_eq!(world.waiting().iter().map(|(_, u, _)| *u).collect::<Vec<_>>(), [2]);
}

fn rule_step() -> impl Strategy<Value = Step> {
    let number = proptest::option::of(1..=(MAX_RULES as u32 + 1));
    prop_oneof![
        proptest::collection::vec(any::<u8>(), MAX_RULES).prop_map(Step::Reorder),
        (rule_spec(), number.clone()).prop_map(|(r, n)| Step::Create(r, n)),
        (0..MAX_RULES, rule_spec(), number).prop_map(|(i, r, n)| Step::Edit(i, r, n)),
        (0..MAX_RULES).prop_map(Step::Delete),
    ]
}

impl World {
    /// The rule list the model's rules become after `changes`, numbered, nothing saved.
    fn proposed(&self, model: &Model, changes: &[Step]) -> Vec<Rule> {
        let mut proposal = model.clone();
        for change in changes {
            self.rule_edit(change, &mut proposal);
        }
        let mut rules: Vec<Rule> = proposal.rules.iter().map(|(id, spec)| self.rule(id, spec)).collect();
        rules.iter_mut().enumerate().for_each(|(i, r)| r.number = i as u32 + 1);
        rules
    }

    /// The preview evaluating everyone, and the one evaluating only whom the change can reach.
    fn both_previews(&self, proposed: &[Rule]) -> (super::Preview, super::Preview, super::preview::Reach) {
        use super::preview::{Reach, preview_for, reach};
        let current = self.store.sync_config(self.acct).unwrap();
        let reach = reach(&self.store, self.acct, &current, proposed).unwrap();
        let full = preview_for(&self.store, self.acct, proposed, current.clone(), &Reach::Everyone).unwrap();
        let part = preview_for(&self.store, self.acct, proposed, current, &reach).unwrap();
        (full, part, reach)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A preview that evaluates only the users a change can reach answers what evaluating everyone does:
    /// random directories, seats and rule lists, settled or with work still pending, and random proposed
    /// lists (rules created, edited, deleted and reordered).
    #[test]
    fn a_preview_of_whom_a_change_reaches_answers_as_one_of_everyone(
        s in scenario(true),
        changes in proptest::collection::vec(rule_step(), 0..5),
        settle in proptest::bool::weighted(0.8),
    ) {
        let world = World::new(&s);
        let mut model = Model::new(&s);
        for step in &s.steps {
            world.apply(step, &mut model);
        }
        if settle {
            world.engine.run_pending().unwrap();
        }
        let proposed = world.proposed(&model, &changes);
        let (full, part, _) = world.both_previews(&proposed);
        prop_assert!(part.evaluated <= full.evaluated);
        prop_assert_eq!(part.users, full.users);
        prop_assert_eq!(part.products, full.products);
        prop_assert_eq!(part.run_out, full.run_out);
        prop_assert_eq!(part.would_fail, full.would_fail);
    }
}

/// An edit of one rule is evaluated for the members of its group (and the failing users) only; unsaved
/// work or a switched-off engine makes the preview evaluate everyone.
#[test]
fn a_one_rule_edit_is_evaluated_for_its_group_alone() {
    let rule = |group| RuleSpec { group, cond: Cond::Any, products: BTreeSet::from([0]) };
    let s = Scenario {
        rules: vec![rule(0), rule(1)],
        seats: [None; 3],
        titles: [None; USERS],
        vips: [false; USERS],
        steps: vec![],
    };
    let world = World::new(&s);
    let mut model = Model::new(&s);
    for (u, g) in [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2)] {
        world.apply(&Step::Join(u, g), &mut model);
    }
    world.engine.run_pending().unwrap();
    let edit = [Step::Edit(1, RuleSpec { group: 1, cond: Cond::Any, products: BTreeSet::from([1]) }, None)];
    let proposed = world.proposed(&model, &edit);
    let (full, part, reach) = world.both_previews(&proposed);
    assert_eq!(reach, super::preview::Reach::Groups(BTreeSet::from([world.groups[1].clone()])));
    assert_eq!((full.evaluated, part.evaluated), (USERS, 2));
    assert_eq!(part.users, full.users);
    assert_eq!(part.users.len(), 2, "both members of g1 change products");
    world.apply(&Step::Join(5, 0), &mut model);
    let (_, unsettled, reach) = world.both_previews(&proposed);
    assert_eq!((reach, unsettled.evaluated), (super::preview::Reach::Everyone, USERS));
}
