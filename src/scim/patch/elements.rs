//! The index of one multi-valued attribute's elements that a PATCH builds once and keeps up to date while
//! its operations apply, so that an operation costs what it touches, never a scan of the attribute:
//! - by what [`same_element`](super::same_element) compares (`value`, `type`, or the whole element), for
//!   `add` (which merges a value given again) and `remove` with a value list;
//! - by the value of a sub-attribute, built the first time a filter compares it with `eq`, for
//!   `emails[type eq "work"].value`, `members[display eq "x"]` and the like.
//!
//! A filter is looked up when it is an `eq` term on a sub-attribute whose `eq` is a key equality (see
//! [`EqKey`]), an `and` with at least one such term, or an `or` of them. The elements found are then
//! checked against the whole filter, so the index only narrows the candidates and never changes a
//! result. Every other filter (`ne`, `co`, `sw`, `ew`, `gt`..., `pr`, `not`, `eq null`, numbers and
//! dates, whose `eq` is no key equality) scans the elements: a hash key cannot answer it.
//!
//! Removed elements leave a `null` in their place until the PATCH is over (or another kind of operation
//! needs the attribute), so positions stay valid and a removal costs no shift of the array.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use super::visited;
use crate::scim::filter::{
    CompareOp, EqKey, Filter, Literal, element_eq_keys, literal_eq_key, matches_element,
};
use crate::scim::schema::{AttrDef, Location};
use crate::scim::value::{is_primary, keep_one_primary};

type Positions = BTreeSet<usize>;

/// See the module documentation.
pub(crate) struct Elements {
    location: Option<String>,
    name: String,
    /// `value` (as JSON text) → positions of elements with that value and no `type`.
    untyped: HashMap<String, Positions>,
    /// (`value`, `type`) → positions.
    typed: HashMap<(String, String), Positions>,
    /// `value` → positions of every element with that value.
    any: HashMap<String, Positions>,
    /// Whole element (as JSON text) → positions, for elements without `value`.
    whole: HashMap<String, Positions>,
    /// Sub-attribute (canonical name) → key of its value → positions; built on first use.
    by_sub: HashMap<String, (EqKey, HashMap<String, Positions>)>,
    /// The one primary element, if any (there is never more than one while the index lives).
    primary: Option<usize>,
    /// Removed elements still holding a `null` place.
    holes: usize,
}

/// What [`same_element`](super::same_element) compares an element by.
enum ElementKey {
    Value(String, Option<String>),
    Whole(String),
}

fn element_key(item: &Value) -> ElementKey {
    match item.get("value") {
        Some(v) => ElementKey::Value(v.to_string(), item.get("type").map(Value::to_string)),
        None => ElementKey::Whole(item.to_string()),
    }
}

fn location_name(location: Location<'_>) -> Option<String> {
    match location {
        Location::TopLevel => None,
        Location::Extension(urn) => Some(urn.to_string()),
    }
}

impl Elements {
    /// Indexes `items`, first leaving at most one of them primary.
    pub(crate) fn build(location: Location<'_>, name: &str, items: &mut [Value]) -> Elements {
        keep_one_primary(items, None);
        visited(items.len());
        let mut index = Elements {
            location: location_name(location),
            name: name.to_string(),
            untyped: HashMap::new(),
            typed: HashMap::new(),
            any: HashMap::new(),
            whole: HashMap::new(),
            by_sub: HashMap::new(),
            primary: items.iter().position(is_primary),
            holes: 0,
        };
        for (i, item) in items.iter().enumerate() {
            index.insert(i, item);
        }
        index
    }

    pub(crate) fn is_for(&self, location: Location<'_>, name: &str) -> bool {
        self.name == name && self.location == location_name(location)
    }

    pub(crate) fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether removed elements still hold places that [`compact`] must drop.
    pub(crate) fn has_holes(&self) -> bool {
        self.holes > 0
    }

    fn insert(&mut self, i: usize, item: &Value) {
        if item.is_null() {
            return;
        }
        match element_key(item) {
            ElementKey::Whole(w) => {
                self.whole.entry(w).or_default().insert(i);
            }
            ElementKey::Value(v, None) => {
                self.any.entry(v.clone()).or_default().insert(i);
                self.untyped.entry(v).or_default().insert(i);
            }
            ElementKey::Value(v, Some(t)) => {
                self.any.entry(v.clone()).or_default().insert(i);
                self.typed.entry((v, t)).or_default().insert(i);
            }
        }
        for (name, (kind, map)) in &mut self.by_sub {
            for key in sub_keys(*kind, name, item) {
                map.entry(key).or_default().insert(i);
            }
        }
    }

    fn remove(&mut self, i: usize, item: &Value) {
        if item.is_null() {
            return;
        }
        fn drop<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Positions>, key: &K, i: usize) {
            if let Some(set) = map.get_mut(key) {
                set.remove(&i);
                if set.is_empty() {
                    map.remove(key);
                }
            }
        }
        match element_key(item) {
            ElementKey::Whole(w) => drop(&mut self.whole, &w, i),
            ElementKey::Value(v, t) => {
                drop(&mut self.any, &v, i);
                match t {
                    None => drop(&mut self.untyped, &v, i),
                    Some(t) => drop(&mut self.typed, &(v, t), i),
                }
            }
        }
        for (name, (kind, map)) in &mut self.by_sub {
            for key in sub_keys(*kind, name, item) {
                drop(map, &key, i);
            }
        }
    }

    /// Changes the element at `i` through `change`, keeping the index in step.
    pub(crate) fn modify(&mut self, items: &mut [Value], i: usize, change: impl FnOnce(&mut Value)) {
        visited(1);
        let old = std::mem::take(&mut items[i]);
        self.remove(i, &old);
        items[i] = old;
        change(&mut items[i]);
        self.insert(i, &items[i]);
        if self.primary == Some(i) && !is_primary(&items[i]) {
            self.primary = None;
        }
    }

    /// Appends `item` as a new element; returns its position.
    pub(crate) fn push(&mut self, items: &mut Vec<Value>, item: Value) -> usize {
        visited(1);
        items.push(item);
        let at = items.len() - 1;
        self.insert(at, &items[at]);
        at
    }

    /// Removes the element at `i`, leaving a hole.
    pub(crate) fn take_out(&mut self, items: &mut [Value], i: usize) {
        visited(1);
        let old = std::mem::take(&mut items[i]);
        self.remove(i, &old);
        if self.primary == Some(i) {
            self.primary = None;
        }
        self.holes += 1;
    }

    /// The first element [`same_element`](super::same_element) pairs with `item`, as a scan would find it.
    fn find(&self, item: &Value) -> Option<usize> {
        let first = |set: Option<&Positions>| set.and_then(|s| s.first().copied());
        match element_key(item) {
            ElementKey::Whole(w) => first(self.whole.get(&w)),
            ElementKey::Value(v, None) => first(self.any.get(&v)),
            ElementKey::Value(v, Some(t)) => {
                [first(self.typed.get(&(v.clone(), t))), first(self.untyped.get(&v))]
                    .into_iter()
                    .flatten()
                    .min()
            }
        }
    }

    /// Every element [`same_element`](super::same_element) pairs with `item`, in order.
    pub(crate) fn same_as(&self, items: &[Value], item: &Value) -> Vec<usize> {
        let mut out: Positions = Positions::new();
        let mut take = |set: Option<&Positions>| out.extend(set.into_iter().flatten().copied());
        match element_key(item) {
            ElementKey::Whole(w) => take(self.whole.get(&w)),
            ElementKey::Value(v, None) => take(self.any.get(&v)),
            ElementKey::Value(v, Some(t)) => {
                take(self.typed.get(&(v.clone(), t)));
                take(self.untyped.get(&v));
            }
        }
        out.into_iter().filter(|&i| super::same_element(&items[i], item)).collect()
    }

    /// Adds `item` unless the same value is there (then merges it in), keeping one primary: the element
    /// just written wins when it is primary. Returns the element's position.
    pub(crate) fn upsert(&mut self, items: &mut Vec<Value>, item: Value) -> usize {
        let at = match self.find(&item) {
            Some(i) => {
                self.modify(items, i, |old| match item {
                    Value::Object(extra) => super::merge_into(old, extra),
                    other => *old = other,
                });
                i
            }
            None => self.push(items, item),
        };
        self.one_primary(items, Some(at), &[at]);
        at
    }

    /// Keeps at most one primary element after the elements at `touched` changed (every other element
    /// was left alone, and at most one of them, [`Elements::primary`], is primary): `winner` keeps it
    /// when it is primary, otherwise the first primary element does, as
    /// [`keep_one_primary`] decides on the whole array.
    pub(crate) fn one_primary(&mut self, items: &mut [Value], winner: Option<usize>, touched: &[usize]) {
        let mut candidates: Positions = touched.iter().copied().collect();
        candidates.extend(self.primary);
        let primaries: Vec<usize> = candidates.into_iter().filter(|&i| is_primary(&items[i])).collect();
        let chosen = winner.filter(|&w| is_primary(&items[w])).or_else(|| primaries.first().copied());
        for &i in &primaries {
            if Some(i) != chosen {
                self.modify(items, i, |item| {
                    if let Some(map) = item.as_object_mut() {
                        map.insert("primary".into(), Value::Bool(false));
                    }
                });
            }
        }
        self.primary = chosen;
    }

    /// The positions of the elements `filter` selects, in order (see the module documentation for which
    /// filters are looked up and which scan).
    pub(crate) fn matching(&mut self, filter: &Filter, def: &AttrDef, items: &[Value]) -> Vec<usize> {
        self.prepare(filter, def, items);
        let candidates: Vec<usize> = match self.estimate(filter, def) {
            Some(_) => {
                let mut found = Positions::new();
                self.collect(filter, def, &mut found);
                found.into_iter().collect()
            }
            None => (0..items.len()).filter(|&i| !items[i].is_null()).collect(),
        };
        visited(candidates.len());
        candidates.into_iter().filter(|&i| matches_element(filter, &items[i], def)).collect()
    }

    /// Builds the sub-attribute indexes the filter's `eq` terms need.
    fn prepare(&mut self, filter: &Filter, def: &AttrDef, items: &[Value]) {
        match filter {
            Filter::And(operands) | Filter::Or(operands) => {
                operands.iter().for_each(|f| self.prepare(f, def, items))
            }
            Filter::Compare(..) => {
                let Some((sub, kind, _)) = eq_term(filter, def) else { return };
                if self.by_sub.contains_key(&sub.name) {
                    return;
                }
                visited(items.len());
                let mut map: HashMap<String, Positions> = HashMap::new();
                for (i, item) in items.iter().enumerate().filter(|(_, item)| !item.is_null()) {
                    for key in sub_keys(kind, &sub.name, item) {
                        map.entry(key).or_default().insert(i);
                    }
                }
                self.by_sub.insert(sub.name.clone(), (kind, map));
            }
            _ => {}
        }
    }

    /// How many candidates the index gives for `filter`, or `None` when it cannot answer it.
    fn estimate(&self, filter: &Filter, def: &AttrDef) -> Option<usize> {
        match filter {
            Filter::And(operands) => operands.iter().filter_map(|f| self.estimate(f, def)).min(),
            Filter::Or(operands) => operands.iter().map(|f| self.estimate(f, def)).sum(),
            Filter::Compare(..) => {
                let (sub, _, key) = eq_term(filter, def)?;
                let (_, map) = self.by_sub.get(&sub.name)?;
                Some(key.and_then(|k| map.get(&k)).map_or(0, BTreeSet::len))
            }
            _ => None,
        }
    }

    /// The candidates for a filter [`estimate`](Self::estimate) answers.
    fn collect(&self, filter: &Filter, def: &AttrDef, out: &mut Positions) {
        match filter {
            Filter::And(operands) => {
                if let Some(best) = operands
                    .iter()
                    .filter_map(|f| self.estimate(f, def).map(|n| (n, f)))
                    .min_by_key(|(n, _)| *n)
                {
                    self.collect(best.1, def, out);
                }
            }
            Filter::Or(operands) => operands.iter().for_each(|f| self.collect(f, def, out)),
            Filter::Compare(..) => {
                let Some((sub, _, Some(key))) = eq_term(filter, def) else { return };
                if let Some(set) = self.by_sub.get(&sub.name).and_then(|(_, map)| map.get(&key)) {
                    out.extend(set.iter().copied());
                }
            }
            _ => {}
        }
    }
}

/// An `eq` term on a sub-attribute whose `eq` is a key equality: the sub-attribute, its key kind, and
/// the key a matching value has (`None`: no value can match).
fn eq_term<'d>(filter: &Filter, def: &'d AttrDef) -> Option<(&'d AttrDef, EqKey, Option<String>)> {
    let Filter::Compare(path, CompareOp::Eq, literal) = filter else { return None };
    if path.urn.is_some() || path.sub.is_some() || matches!(literal, Literal::Null) {
        return None;
    }
    let sub = def.sub(&path.name)?;
    let kind = EqKey::of(sub)?;
    Some((sub, kind, literal_eq_key(kind, literal)))
}

/// The keys of sub-attribute `name`'s values in `item`.
fn sub_keys(kind: EqKey, name: &str, item: &Value) -> Vec<String> {
    element_eq_keys(kind, name, item)
}

/// Drops the holes removed elements left in `items`.
pub(crate) fn compact(items: &mut Vec<Value>) {
    items.retain(|item| !item.is_null());
}

/// An element with no sub-attribute left is no element.
pub(crate) fn is_empty_element(item: &Value) -> bool {
    item.as_object().is_some_and(Map::is_empty)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::scim::filter::parse_filter;
    use crate::scim::schema::{Registry, ResourceKind};

    fn emails_def() -> AttrDef {
        Registry::standard().resource(ResourceKind::User).core.attr("emails").unwrap().clone()
    }

    fn element() -> impl Strategy<Value = Value> {
        let text =
            prop::sample::select(vec!["a@x.org", "A@X.org", "b@x.org", "é@x.org", "É@X.ORG", "", "42"]);
        let kind = prop::sample::select(vec!["work", "Work", "home", "other"]);
        let primary = prop::sample::select(vec![json!(true), json!(false), json!("True"), json!("no")]);
        (text, prop::option::of(kind), prop::option::of(primary), any::<bool>()).prop_map(
            |(v, t, p, number)| {
                let mut e = json!({"value": if number && v == "42" { json!(42) } else { json!(v) }});
                if let Some(t) = t {
                    e["type"] = json!(t);
                }
                if let Some(p) = p {
                    e["primary"] = p;
                }
                e
            },
        )
    }

    fn filter() -> impl Strategy<Value = String> {
        let term = prop::sample::select(vec![
            "value eq \"a@x.org\"",
            "value eq \"É@x.org\"",
            "value eq \"\"",
            "value eq 42",
            "type eq \"work\"",
            "type eq \"WORK\"",
            "primary eq true",
            "primary eq \"True\"",
            "primary eq \"maybe\"",
            "display eq \"x\"",
            "value ne \"a@x.org\"",
            "value co \"x\"",
            "type pr",
            "value eq null",
        ]);
        prop::collection::vec(term, 1..4).prop_flat_map(|terms| {
            prop::sample::select(vec![" and ", " or "]).prop_map(move |op| terms.join(op))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// The index finds exactly what a scan of the elements finds, also after elements were changed,
        /// removed and added under it.
        #[test]
        fn the_index_finds_what_a_scan_finds(
            start in prop::collection::vec(element(), 0..12),
            later in prop::collection::vec(element(), 0..4),
            filters in prop::collection::vec(filter(), 1..4),
        ) {
            let def = emails_def();
            let mut items = start;
            let mut index = Elements::build(Location::TopLevel, "emails", &mut items);
            let scan = |items: &[Value], f: &Filter| -> Vec<usize> {
                (0..items.len()).filter(|&i| !items[i].is_null() && matches_element(f, &items[i], &def)).collect()
            };
            for (step, text) in filters.iter().enumerate() {
                let f = parse_filter(text).unwrap();
                prop_assert_eq!(index.matching(&f, &def, &items), scan(&items, &f), "{}", text);
                // change the index under the next look-up: drop one element, change another, add one
                if let Some(&i) = scan(&items, &f).first() {
                    index.take_out(&mut items, i);
                }
                if let Some(i) = (0..items.len()).find(|&i| !items[i].is_null()) {
                    index.modify(&mut items, i, |e| e["type"] = json!("Home"));
                }
                if let Some(e) = later.get(step) {
                    index.push(&mut items, e.clone());
                }
                prop_assert_eq!(index.matching(&f, &def, &items), scan(&items, &f), "{} after changes", text);
            }
        }
    }
}
