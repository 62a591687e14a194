//! The engine against a brute-force reference: random groups, memberships, rules and seat limits, a random
//! sequence of directory changes, and after it the entitlements the final state alone implies.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::Engine;
use crate::scim::patch::parse_request;
use crate::scim::resource::normalize;
use crate::scim::schema::ResourceKind;
use crate::store::sync::{
    Bundle, EntitlementState, FailureReason, Product, References, Rule, RuleEdit, Scope,
};
use crate::store::testing::temp_store;
use crate::store::{AccountId, Actor, Store};

const USERS: usize = 7;
const GROUPS: usize = 4;
const PRODUCTS: [&str; 3] = ["p0", "p1", "p2"];
const TITLES: [&str; 3] = ["A", "B", "C"];

/// A rule condition the reference evaluates by hand.
#[derive(Debug, Clone, Copy)]
enum Cond {
    Any,
    TitleIs(usize),
    TitleIsNot(usize),
}

impl Cond {
    fn filter(self) -> Option<String> {
        match self {
            Cond::Any => None,
            Cond::TitleIs(t) => Some(format!("title eq \"{}\"", TITLES[t].to_lowercase())),
            Cond::TitleIsNot(t) => Some(format!("not (title eq \"{}\")", TITLES[t])),
        }
    }

    fn holds(self, title: usize) -> bool {
        match self {
            Cond::Any => true,
            Cond::TitleIs(t) => title == t,
            Cond::TitleIsNot(t) => title != t,
        }
    }
}

#[derive(Debug, Clone)]
struct RuleSpec {
    group: usize,
    cond: Cond,
    products: BTreeSet<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Join(usize, usize),
    Leave(usize, usize),
    Active(usize, bool),
    Title(usize, usize),
    /// Put the rules in another order (rotated by this much): the engine's reorder path.
    Rotate(usize),
}

#[derive(Debug, Clone)]
struct Scenario {
    rules: Vec<RuleSpec>,
    seats: [Option<u64>; 3],
    titles: [usize; USERS],
    steps: Vec<Step>,
}

fn scenario(limited: bool) -> impl Strategy<Value = Scenario> {
    let cond = prop_oneof![
        Just(Cond::Any),
        (0..3usize).prop_map(Cond::TitleIs),
        (0..3usize).prop_map(Cond::TitleIsNot)
    ];
    let rule = (0..GROUPS, cond, proptest::collection::btree_set(0..3usize, 0..=3))
        .prop_map(|(group, cond, products)| RuleSpec { group, cond, products });
    let seat = if limited { proptest::option::weighted(0.8, 0..4u64).boxed() } else { Just(None).boxed() };
    let step = prop_oneof![
        4 => (0..USERS, 0..GROUPS).prop_map(|(u, g)| Step::Join(u, g)),
        2 => (0..USERS, 0..GROUPS).prop_map(|(u, g)| Step::Leave(u, g)),
        1 => (0..USERS, any::<bool>()).prop_map(|(u, a)| Step::Active(u, a)),
        1 => (0..USERS, 0..3usize).prop_map(|(u, t)| Step::Title(u, t)),
        1 => (1..4usize).prop_map(Step::Rotate),
    ];
    (
        proptest::collection::vec(rule, 1..5),
        [seat.clone(), seat.clone(), seat],
        proptest::array::uniform7(0..3usize),
        proptest::collection::vec(step, 1..40),
    )
        .prop_map(|(rules, seats, titles, steps)| Scenario { rules, seats, titles, steps })
}

/// The scenarios' rules refer only to what exists.
fn accept(_: &Rule, _: &References) -> Result<(), String> {
    Ok(())
}

/// The directory and the rule order as the test models them.
struct Model {
    active: [bool; USERS],
    titles: [usize; USERS],
    members: BTreeSet<(usize, usize)>,
    /// Indexes into the scenario's rules, highest priority first.
    order: Vec<usize>,
}

impl Model {
    /// The products the rules give user `u` in this state, or `None` when no rule applies.
    fn reference(&self, rules: &[RuleSpec], u: usize) -> Option<BTreeSet<usize>> {
        if !self.active[u] {
            return None;
        }
        self.order
            .iter()
            .map(|&i| &rules[i])
            .find(|r| self.members.contains(&(r.group, u)) && r.cond.holds(self.titles[u]))
            .map(|r| r.products.clone())
    }
}

struct World {
    store: Store,
    engine: Engine,
    acct: AccountId,
    users: Vec<String>,
    groups: Vec<String>,
    _dir: tempfile::TempDir,
}

impl World {
    fn new(s: &Scenario) -> World {
        let (store, dir) = temp_store();
        let (account, _) = store.ensure_account("default").unwrap();
        let acct = account.id;
        let actor = Actor::engine();
        let registry = store.registry(acct);
        for (i, p) in PRODUCTS.iter().enumerate() {
            let product =
                Product { id: p.to_string(), name: p.to_string(), seats: s.seats[i], requires: vec![] };
            store.put_product(acct, &product, &actor).unwrap();
        }
        let groups: Vec<String> = (0..GROUPS)
            .map(|g| {
                let input = normalize(
                    registry.resource(ResourceKind::Group),
                    &json!({"displayName": format!("g{g}")}),
                )
                .unwrap();
                store
                        .create_group(acct, registry.resource(ResourceKind::Group), &input, &actor)
                        .unwrap()
                        .0["id"]
                        .as_str()
                        .unwrap()
                        .to_string()
            })
            .collect();
        let users: Vec<String> = (0..USERS)
            .map(|u| {
                let body = json!({"userName": format!("u{u}@example.com"), "title": TITLES[s.titles[u]]});
                let input = normalize(registry.resource(ResourceKind::User), &body).unwrap();
                store.create_user(acct, registry.resource(ResourceKind::User), &input, &actor).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let rules: Vec<Rule> = s
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| Rule {
                id: format!("r{i}"),
                number: i as u32 + 1,
                group: groups[r.group].clone(),
                filter: r.cond.filter(),
                description: String::new(),
                bundle: Bundle {
                    products: r.products.iter().map(|p| PRODUCTS[*p].to_string()).collect(),
                    ..Bundle::default()
                },
            })
            .collect();
        for rule in rules {
            store.edit_rules(acct, &RuleEdit::Create { rule, number: None }, None, &actor, &accept).unwrap();
        }
        store.set_sync(acct, true, &actor).unwrap();
        let engine = Engine::new(store.clone());
        World { store, engine, acct, users, groups, _dir: dir }
    }

    fn patch_group(&self, g: usize, op: Value) {
        let registry = self.store.registry(self.acct);
        let ops = parse_request(&json!({"Operations": [op]})).unwrap();
        self.store
            .patch_group(
                self.acct,
                registry.resource(ResourceKind::Group),
                &self.groups[g],
                &ops,
                None,
                &Actor::engine(),
            )
            .unwrap();
    }

    fn patch_user(&self, u: usize, op: Value) {
        let registry = self.store.registry(self.acct);
        let ops = parse_request(&json!({"Operations": [op]})).unwrap();
        self.store
            .patch_user(
                self.acct,
                registry.resource(ResourceKind::User),
                &self.users[u],
                &ops,
                None,
                &Actor::engine(),
            )
            .unwrap();
    }

    fn apply(&self, step: Step, model: &mut Model) {
        match step {
            Step::Join(u, g) => {
                self.patch_group(
                    g,
                    json!({"op": "add", "path": "members", "value": [{"value": self.users[u]}]}),
                );
                model.members.insert((g, u));
            }
            Step::Leave(u, g) => {
                self.patch_group(
                    g,
                    json!({"op": "remove", "path": format!("members[value eq \"{}\"]", self.users[u])}),
                );
                model.members.remove(&(g, u));
            }
            Step::Active(u, a) => {
                self.patch_user(u, json!({"op": "replace", "path": "active", "value": a}));
                model.active[u] = a;
            }
            Step::Title(u, t) => {
                self.patch_user(u, json!({"op": "replace", "path": "title", "value": TITLES[t]}));
                model.titles[u] = t;
            }
            Step::Rotate(k) => {
                let config = self.store.sync_config(self.acct).unwrap();
                let mut order: Vec<String> = config.rules.iter().map(|r| r.id.clone()).collect();
                let n = order.len();
                order.rotate_left(k % n);
                let edit = RuleEdit::Reorder { order };
                self.store.edit_rules(self.acct, &edit, None, &Actor::engine(), &accept).unwrap();
                model.order.rotate_left(k % n);
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
        Some(bundle.products.iter().map(|p| PRODUCTS.iter().position(|x| x == p).unwrap()).collect())
    }

    fn state(&self, u: usize) -> Option<EntitlementState> {
        self.store.entitlement(self.acct, &self.users[u]).unwrap().map(|e| e.state)
    }
}

fn run(s: &Scenario) -> (World, Model) {
    let world = World::new(s);
    let mut model = Model {
        active: [true; USERS],
        titles: s.titles,
        members: BTreeSet::new(),
        order: (0..s.rules.len()).collect(),
    };
    world.engine.run_pending().unwrap();
    world.assert_no_oversubscription();
    for step in &s.steps {
        world.apply(*step, &mut model);
        world.engine.run_pending().unwrap();
        world.assert_no_oversubscription();
    }
    (world, model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn with_unlimited_seats_entitlements_equal_the_reference(s in scenario(false)) {
        let (world, model) = run(&s);
        for u in 0..USERS {
            let want = model.reference(&s.rules, u);
            prop_assert_eq!(world.held(u), want.clone(), "user {}", u);
            let state = world.state(u).unwrap_or(EntitlementState::None);
            let expected = match (&want, model.active[u]) {
                (Some(_), _) => EntitlementState::Entitled,
                (None, false) => EntitlementState::Suspended,
                (None, true) => EntitlementState::None,
            };
            prop_assert_eq!(state, expected, "user {}", u);
            prop_assert!(world.store.failure(world.acct, &world.users[u]).unwrap().is_none());
        }
        let total: BTreeMap<String, u64> = world.seats().into_iter().map(|(p, (used, _))| (p, used)).collect();
        for (i, p) in PRODUCTS.iter().enumerate() {
            let holders = (0..USERS).filter(|u| model.reference(&s.rules, *u).is_some_and(|b| b.contains(&i))).count() as u64;
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
            let want = model.reference(&s.rules, u);
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
                    let intended: BTreeSet<usize> = f.intended.products.iter().map(|p| PRODUCTS.iter().position(|x| x == p).unwrap()).collect();
                    prop_assert_eq!(&intended, &bundle, "the failure records the reference bundle");
                    prop_assert!(f.products.iter().all(|p| !free(PRODUCTS.iter().position(|x| x == p).unwrap())), "named products have no free seat");
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
    let s =
        Scenario { rules: vec![only_p0], seats: [Some(0), None, None], titles: [0; USERS], steps: vec![] };
    for round in 0..150 {
        let world = World::new(&s);
        let mut model =
            Model { active: [true; USERS], titles: s.titles, members: BTreeSet::new(), order: vec![0] };
        world.apply(Step::Join(0, 0), &mut model);
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
    let s = Scenario { rules: vec![], seats: [None; 3], titles: [0; USERS], steps: vec![] };
    let world = World::new(&s);
    let mut model =
        Model { active: [true; USERS], titles: s.titles, members: BTreeSet::new(), order: vec![] };
    for (u, g) in [(4, 0), (0, 0), (2, 0), (3, 1), (2, 1), (1, 1), (6, 2)] {
        world.apply(Step::Join(u, g), &mut model);
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
