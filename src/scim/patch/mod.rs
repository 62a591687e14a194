//! PATCH (RFC 7644 §3.5.2): parsing a PatchOp request and applying its operations to a stored resource,
//! with the shapes Okta, Entra ID and OneLogin really send. Group membership is never applied here: it is
//! reported as [`MemberChange`]s so that storage can apply it as deltas without loading a large group.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

use super::error::{ScimError, ScimResult, ScimType};
use super::filter::{CompareOp, Filter, Literal, PatchPath, parse_path};
use super::resource::{
    MemberEntry, changed_attributes, check_identity_attr, check_immutable, check_required,
    check_value_counts, member_entries,
};
use super::schema::{AttrDef, Location, Mutability, ResourceKind, ResourceSchema, Schema};
use super::value::{coerce, coerce_single, is_primary, keep_one_primary};

mod elements;
pub(crate) use elements::Elements;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Remove,
    Replace,
}

/// One entry of `Operations`.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub kind: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// A change to a group's member list, in request order. PATCH never sees who the members are, so a
/// change says what the request said, and only two kinds carry ids:
/// - `Add` and `Remove` hold the exact ids the request named: `add` with a `members` value; `remove` with
///   a `value` list, or with a filter that is a `value eq "<id>"` term or an `or` chain of them. They are
///   the ids to write, not yet the net change: an added id may already be a member, a removed one may
///   not be.
/// - `RemoveAll`, `ReplaceAll` and `RemoveWhere` depend on the current members, so the ids they remove
///   (and, for `ReplaceAll`, which of its entries are new) are computed by the store from the member
///   list it reads, or from the members the `RemoveWhere` filter selects.
///
/// The store applies a request's changes in order and reports the net ids added and removed.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    Add(Vec<MemberEntry>),
    Remove(Vec<String>),
    RemoveAll,
    /// Remove the members an arbitrary filter selects (anything other than `value eq` terms).
    RemoveWhere(Filter),
    ReplaceAll(Vec<MemberEntry>),
}

/// What a PATCH changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PatchOutcome {
    /// Top-level attributes (and extension URNs) whose stored value changed, plus `members` and
    /// `password` when those were written.
    pub changed: BTreeSet<String>,
    pub members: Vec<MemberChange>,
    /// A new clear-text password, for the store to hash.
    pub password: Option<String>,
}

impl PatchOutcome {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }
}

/// Reads a PatchOp body: `Operations` (any case) with `op` names in any case.
pub fn parse_request(body: &Value) -> ScimResult<Vec<Operation>> {
    parse_request_within(body, usize::MAX)
}

/// [`parse_request`], refusing more than `max_operations` operations (400 `tooMany`) before reading any.
pub fn parse_request_within(body: &Value, max_operations: usize) -> ScimResult<Vec<Operation>> {
    let Value::Object(map) = body else {
        return Err(ScimError::invalid_syntax("a PATCH body must be a JSON object"));
    };
    let ops = map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .map(|(_, v)| v)
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH body needs 'Operations'"))?;
    let Value::Array(ops) = ops else {
        return Err(ScimError::invalid_syntax("'Operations' must be an array"));
    };
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("'Operations' is empty"));
    }
    if ops.len() > max_operations {
        return Err(ScimError::new(
            ScimType::TooMany,
            format!("a PATCH may have at most {max_operations} operations; this one has {}", ops.len()),
        ));
    }
    ops.iter().enumerate().map(|(i, op)| parse_operation(i, op)).collect()
}

fn parse_operation(index: usize, op: &Value) -> ScimResult<Operation> {
    let Value::Object(map) = op else {
        return Err(ScimError::invalid_syntax(format!("operation {index} must be an object")));
    };
    let field = |name: &str| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
    let kind = match field("op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        Some("add") => OpKind::Add,
        Some("remove") => OpKind::Remove,
        Some("replace") => OpKind::Replace,
        _ => {
            return Err(ScimError::invalid_syntax(format!(
                "operation {index}: 'op' must be 'add', 'remove' or 'replace'"
            )));
        }
    };
    let path = match field("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(parse_path(s)?),
        Some(_) => {
            return Err(ScimError::invalid_path(format!("operation {index}: 'path' must be a string")));
        }
    };
    let value = field("value").cloned();
    if kind != OpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_value(format!("operation {index}: '{kind:?}' needs a 'value'")));
    }
    Ok(Operation { kind, path, value })
}

/// Limits a PATCH is applied under.
#[derive(Debug, Clone, Copy)]
pub struct PatchLimits {
    /// Most values of one multi-valued attribute of a user (400 `tooMany` above).
    pub max_values: usize,
}

impl Default for PatchLimits {
    fn default() -> Self {
        PatchLimits { max_values: 1000 }
    }
}

/// Elements of multi-valued attributes visited by PATCHes since start: a measure of their work that tests
/// read to show it grows linearly with the request and the resource, never with their product.
static ELEMENT_VISITS: AtomicU64 = AtomicU64::new(0);

/// See [`ELEMENT_VISITS`].
pub fn element_visits() -> u64 {
    ELEMENT_VISITS.load(Ordering::Relaxed)
}

fn visited(n: usize) {
    ELEMENT_VISITS.fetch_add(n as u64, Ordering::Relaxed);
}

/// Applies `ops` in order to `attrs` (a stored resource without `schemas`, `id` and `meta`); `id` is the
/// resource's own id. On error nothing the caller holds has changed.
pub fn apply(
    schema: &ResourceSchema,
    id: &str,
    attrs: &mut Map<String, Value>,
    ops: &[Operation],
) -> ScimResult<PatchOutcome> {
    apply_within(schema, id, attrs, ops, PatchLimits::default())
}

/// [`apply`] under `limits`.
pub fn apply_within(
    schema: &ResourceSchema,
    id: &str,
    attrs: &mut Map<String, Value>,
    ops: &[Operation],
    limits: PatchLimits,
) -> ScimResult<PatchOutcome> {
    let mut work =
        Patcher { schema, id, attrs: attrs.clone(), outcome: PatchOutcome::default(), index: None };
    for op in ops {
        work.apply_op(op)?;
    }
    work.settle();
    work.attrs.retain(|_, v| !v.as_object().is_some_and(Map::is_empty));
    // Judged on the result, not per operation: a sub-attribute or a merged complex value can change an
    // immutable value as surely as a path naming it, and a value given again unchanged is no change.
    check_immutable(schema, attrs, &work.attrs)?;
    check_identity_attr(schema, &mut work.attrs)?;
    check_required(schema, &work.attrs)?;
    if schema.kind == ResourceKind::User {
        check_value_counts(schema, &work.attrs, limits.max_values)?;
    }
    let mut outcome = work.outcome;
    outcome.changed.extend(changed_attributes(attrs, &work.attrs));
    *attrs = work.attrs;
    Ok(outcome)
}

/// Where an operation lands once its path is resolved against the schema.
enum Target<'s, 'f> {
    /// A bare extension URN: the whole extension object.
    Extension(&'s Schema),
    Attr(AttrTarget<'s, 'f>),
    /// An attribute this server does not know: tolerated and left alone, as on create.
    Unknown,
}

struct AttrTarget<'s, 'f> {
    location: Location<'s>,
    def: &'s AttrDef,
    filter: Option<&'f Filter>,
    sub: Option<&'s AttrDef>,
}

struct Patcher<'s> {
    schema: &'s ResourceSchema,
    id: &'s str,
    attrs: Map<String, Value>,
    outcome: PatchOutcome,
    /// The index of the multi-valued attribute the last operations wrote to (see [`Elements`]); an
    /// operation of another kind, or on another attribute, settles and drops it. A run of `add`s and
    /// filtered operations on one attribute (what a large PATCH is made of) then costs one step per value
    /// touched, not a scan of the attribute per operation.
    index: Option<Elements>,
}

impl<'s> Patcher<'s> {
    fn apply_op(&mut self, op: &Operation) -> ScimResult<()> {
        match (&op.path, op.kind) {
            (None, OpKind::Remove) => Err(ScimError::no_target("a 'remove' operation needs a 'path'")),
            (None, kind) => self.apply_pathless(kind, op.value.as_ref().unwrap_or(&Value::Null)),
            (Some(path), kind) => {
                let target = resolve(self.schema, path)?;
                self.apply_target(kind, target, op.value.as_ref())
            }
        }
    }

    /// A path-less add or replace: every key of the object value is a path of its own (plain, dotted,
    /// URN-qualified, or an extension URN).
    fn apply_pathless(&mut self, kind: OpKind, value: &Value) -> ScimResult<()> {
        let Value::Object(map) = value else {
            return Err(ScimError::invalid_value("an operation without 'path' needs an object 'value'"));
        };
        for (key, v) in map {
            if key.eq_ignore_ascii_case("schemas") || key.eq_ignore_ascii_case("meta") {
                continue;
            }
            if key.eq_ignore_ascii_case("id") {
                // Okta echoes the read-only id in its rename; only a different id is an attempt to change it.
                if v.as_str() == Some(self.id) {
                    continue;
                }
                return Err(ScimError::mutability("attribute 'id' is read-only"));
            }
            let target = match self.schema.extension(key) {
                Some(ext) => Target::Extension(ext),
                None => resolve_key(self.schema, key)?,
            };
            self.apply_target(kind, target, Some(v))?;
        }
        Ok(())
    }

    fn apply_target(
        &mut self,
        kind: OpKind,
        target: Target<'s, '_>,
        value: Option<&Value>,
    ) -> ScimResult<()> {
        match target {
            Target::Unknown => Ok(()),
            Target::Extension(ext) => self.apply_extension(kind, ext, value),
            Target::Attr(t) if self.is_members(&t) => self.apply_members(kind, &t, value),
            Target::Attr(t) if t.def.name == "password" && t.location == Location::TopLevel => {
                if kind != OpKind::Remove {
                    self.outcome.password = value.and_then(Value::as_str).map(str::to_string);
                    self.outcome.changed.insert("password".into());
                }
                Ok(())
            }
            Target::Attr(t) => {
                check_writable(&t)?;
                match kind {
                    OpKind::Add => self.add(&t, value.unwrap_or(&Value::Null)),
                    OpKind::Replace => self.replace(&t, value.unwrap_or(&Value::Null)),
                    OpKind::Remove => self.remove(&t, value),
                }
            }
        }
    }

    fn apply_extension(&mut self, kind: OpKind, ext: &'s Schema, value: Option<&Value>) -> ScimResult<()> {
        if kind == OpKind::Remove {
            self.settle();
            self.attrs.remove(&ext.id);
            return Ok(());
        }
        let Some(Value::Object(map)) = value else {
            return Err(ScimError::invalid_value(format!("'{}' needs an object value", ext.id)));
        };
        for (key, v) in map {
            let target = match ext.attr(key) {
                Some(def) => Target::Attr(AttrTarget {
                    location: Location::Extension(&ext.id),
                    def,
                    filter: None,
                    sub: None,
                }),
                None => Target::Unknown,
            };
            self.apply_target(kind, target, Some(v))?;
        }
        Ok(())
    }

    fn is_members(&self, t: &AttrTarget<'_, '_>) -> bool {
        self.schema.kind == ResourceKind::Group && t.location == Location::TopLevel && t.def.name == "members"
    }

    fn apply_members(
        &mut self,
        kind: OpKind,
        t: &AttrTarget<'_, '_>,
        value: Option<&Value>,
    ) -> ScimResult<()> {
        if t.sub.is_some() {
            return Err(ScimError::mutability("the sub-attributes of a member are immutable"));
        }
        let value = value.filter(|v| !v.is_null());
        let change = match (kind, t.filter) {
            (OpKind::Add, None) => MemberChange::Add(member_entries(value.unwrap_or(&Value::Null))?),
            (OpKind::Replace, None) => {
                MemberChange::ReplaceAll(member_entries(value.unwrap_or(&Value::Null))?)
            }
            // Entra's default job removes with a value list: only those members go, never all of them.
            (OpKind::Remove, None) => match value {
                Some(v) => MemberChange::Remove(member_entries(v)?.into_iter().map(|m| m.id).collect()),
                None => MemberChange::RemoveAll,
            },
            (OpKind::Remove, Some(filter)) => match filter.exact_eq_terms(&["value"]) {
                Some(terms) => MemberChange::Remove(terms.into_iter().map(|t| t.value).collect()),
                None => MemberChange::RemoveWhere(filter.clone()),
            },
            (_, Some(_)) => {
                return Err(ScimError::invalid_path("members can be added or replaced only as a whole list"));
            }
        };
        self.outcome.members.push(change);
        self.outcome.changed.insert("members".into());
        Ok(())
    }

    fn current(&self, t: &AttrTarget<'_, '_>) -> Option<&Value> {
        container(&self.attrs, t.location)?.get(&t.def.name)
    }

    fn set(&mut self, t: &AttrTarget<'_, '_>, value: Option<Value>) {
        self.settle();
        self.put(t, value);
    }

    /// Drops the element index, first removing the holes it left in its attribute.
    fn settle(&mut self) {
        let Some(index) = self.index.take() else { return };
        if !index.has_holes() {
            return;
        }
        let map = match index.location() {
            None => Some(&mut self.attrs),
            Some(urn) => self.attrs.get_mut(urn).and_then(Value::as_object_mut),
        };
        let Some(map) = map else { return };
        if let Some(Value::Array(items)) = map.get_mut(index.name()) {
            elements::compact(items);
            if items.is_empty() {
                map.remove(index.name());
            }
        }
    }

    /// Writes the attribute's value, leaving the element index alone.
    fn put(&mut self, t: &AttrTarget<'_, '_>, value: Option<Value>) {
        let map = match t.location {
            Location::TopLevel => &mut self.attrs,
            Location::Extension(urn) => {
                let ext = self.attrs.entry(urn.to_string()).or_insert_with(|| Value::Object(Map::new()));
                if !ext.is_object() {
                    *ext = Value::Object(Map::new());
                }
                let Some(map) = ext.as_object_mut() else { return };
                map
            }
        };
        match value {
            Some(v) => {
                map.insert(t.def.name.clone(), v);
            }
            None => {
                map.remove(&t.def.name);
            }
        }
    }

    fn add(&mut self, t: &AttrTarget<'_, '_>, value: &Value) -> ScimResult<()> {
        match (t.filter, t.sub) {
            (None, None) if t.def.multi_valued => {
                let Some(Value::Array(new)) = coerce(t.def, value, &t.def.name)? else { return Ok(()) };
                self.append(t, new);
                Ok(())
            }
            (None, None) => self.merge_or_set(t, value),
            (None, Some(sub)) => self.set_sub_everywhere(t, sub, value),
            (Some(filter), sub) => self.write_filtered(t, filter, sub, value, false),
        }
    }

    fn replace(&mut self, t: &AttrTarget<'_, '_>, value: &Value) -> ScimResult<()> {
        match (t.filter, t.sub) {
            (None, None) if t.def.multi_valued => {
                let v = coerce(t.def, value, &t.def.name)?;
                self.set(t, v);
                Ok(())
            }
            (None, None) => self.merge_or_set(t, value),
            (None, Some(sub)) => self.set_sub_everywhere(t, sub, value),
            (Some(filter), sub) => self.write_filtered(t, filter, sub, value, true),
        }
    }

    /// A single-valued attribute: a complex value merges into what is there (sub-attributes not given are
    /// left unchanged, RFC 7644 §3.5.2.3); a simple value is set; "no value" removes it.
    fn merge_or_set(&mut self, t: &AttrTarget<'_, '_>, value: &Value) -> ScimResult<()> {
        let coerced = coerce(t.def, value, &t.def.name)?;
        let merged = match (coerced, self.current(t)) {
            (Some(Value::Object(new)), Some(Value::Object(old))) if t.def.is_complex() => {
                let mut old = old.clone();
                old.extend(new);
                Some(Value::Object(old))
            }
            (other, _) => other,
        };
        self.set(t, merged);
        Ok(())
    }

    /// `name.givenName` on a complex attribute, or `emails.value` on every element of a multi-valued one.
    fn set_sub_everywhere(&mut self, t: &AttrTarget<'_, '_>, sub: &AttrDef, value: &Value) -> ScimResult<()> {
        let label = format!("{}.{}", t.def.name, sub.name);
        let v = coerce(sub, value, &label)?;
        if t.def.multi_valued {
            let mut items = self.items(t);
            if items.is_empty() {
                items.push(Value::Object(Map::new()));
            }
            // `emails.primary` set to true on every element: the element that was primary stays so.
            let was_primary = items.iter().position(is_primary);
            for item in &mut items {
                set_key(item, &sub.name, v.clone());
            }
            keep_one_primary(&mut items, was_primary);
            items.retain(|i| i.as_object().is_some_and(|m| !m.is_empty()));
            self.set(t, (!items.is_empty()).then_some(Value::Array(items)));
        } else {
            let mut obj = self
                .current(t)
                .cloned()
                .filter(Value::is_object)
                .unwrap_or_else(|| Value::Object(Map::new()));
            set_key(&mut obj, &sub.name, v);
            self.set(t, obj.as_object().is_some_and(|m| !m.is_empty()).then_some(obj));
        }
        Ok(())
    }

    /// `emails[type eq "work"]` or `emails[type eq "work"].value` with add or replace. When nothing matches
    /// the element is created from the filter's `eq` terms, as Entra ID expects.
    fn write_filtered(
        &mut self,
        t: &AttrTarget<'_, '_>,
        filter: &Filter,
        sub: Option<&AttrDef>,
        value: &Value,
        replace: bool,
    ) -> ScimResult<()> {
        let new_value = match sub {
            Some(sub) => coerce(sub, value, &format!("{}.{}", t.def.name, sub.name))?,
            None => coerce_single(t.def, value, &t.def.name)?,
        };
        let (mut items, mut index) = self.open(t);
        let matched = index.matching(filter, t.def, &items);
        let mut winner = None;
        if matched.is_empty() {
            // An error leaves the attribute taken out, but a failed PATCH keeps none of its work.
            let mut element = element_from_filter(t.def, filter)?;
            match (sub, &new_value) {
                (Some(sub), v) => set_key(&mut element, &sub.name, v.clone()),
                (None, Some(Value::Object(v))) => merge_into(&mut element, v.clone()),
                (None, _) => {}
            }
            if !elements::is_empty_element(&element) {
                winner = Some(index.push(&mut items, element));
            }
        }
        for &i in &matched {
            index.modify(&mut items, i, |item| match (sub, &new_value) {
                (Some(sub), v) => set_key(item, &sub.name, v.clone()),
                (None, Some(Value::Object(v))) if !replace => merge_into(item, v.clone()),
                (None, Some(v)) => *item = v.clone(),
                (None, None) => {}
            });
            winner = Some(i);
        }
        let touched: Vec<usize> = matched.iter().copied().chain(winner).collect();
        index.one_primary(&mut items, winner, &touched);
        self.close(t, items, index);
        Ok(())
    }

    fn remove(&mut self, t: &AttrTarget<'_, '_>, value: Option<&Value>) -> ScimResult<()> {
        match (t.filter, t.sub) {
            (None, None) => match value.filter(|v| !v.is_null()) {
                // A remove with a value list on a multi-valued attribute removes only those values.
                Some(v) if t.def.multi_valued => self.remove_listed(t, v),
                _ => {
                    self.set(t, None);
                    Ok(())
                }
            },
            (None, Some(sub)) if t.def.multi_valued => {
                let mut items = self.items(t);
                items.iter_mut().for_each(|item| set_key(item, &sub.name, None));
                items.retain(|i| i.as_object().is_some_and(|m| !m.is_empty()));
                self.set(t, (!items.is_empty()).then_some(Value::Array(items)));
                Ok(())
            }
            (None, Some(sub)) => {
                let Some(mut obj) = self.current(t).cloned() else { return Ok(()) };
                set_key(&mut obj, &sub.name, None);
                self.set(t, obj.as_object().is_some_and(|m| !m.is_empty()).then_some(obj));
                Ok(())
            }
            (Some(filter), sub) => {
                let (mut items, mut index) = self.open(t);
                for i in index.matching(filter, t.def, &items) {
                    if let Some(sub) = sub {
                        index.modify(&mut items, i, |item| set_key(item, &sub.name, None));
                    }
                    if sub.is_none() || elements::is_empty_element(&items[i]) {
                        index.take_out(&mut items, i);
                    }
                }
                self.close(t, items, index);
                Ok(())
            }
        }
    }

    fn remove_listed(&mut self, t: &AttrTarget<'_, '_>, value: &Value) -> ScimResult<()> {
        let Some(Value::Array(gone)) = coerce(t.def, value, &t.def.name)? else { return Ok(()) };
        let (mut items, mut index) = self.open(t);
        for g in &gone {
            for i in index.same_as(&items, g) {
                index.take_out(&mut items, i);
            }
        }
        self.close(t, items, index);
        Ok(())
    }

    /// `add` of values to a multi-valued attribute, through the element index.
    fn append(&mut self, t: &AttrTarget<'_, '_>, new: Vec<Value>) {
        let (mut items, mut index) = self.open(t);
        for item in new {
            index.upsert(&mut items, item);
        }
        self.close(t, items, index);
    }

    /// The attribute's elements, moved out of the resource, with their index: the one kept from the
    /// operations before when it is this attribute's, else a new one (the other attribute's is settled).
    fn open(&mut self, t: &AttrTarget<'_, '_>) -> (Vec<Value>, Elements) {
        let kept = match self.index.take() {
            Some(index) if index.is_for(t.location, &t.def.name) => Some(index),
            other => {
                self.index = other;
                self.settle();
                None
            }
        };
        let mut items = self.take_items(t);
        let index = kept.unwrap_or_else(|| Elements::build(t.location, &t.def.name, &mut items));
        (items, index)
    }

    /// Puts back what [`open`](Self::open) took out.
    fn close(&mut self, t: &AttrTarget<'_, '_>, items: Vec<Value>, index: Elements) {
        self.put(t, (!items.is_empty()).then_some(Value::Array(items)));
        self.index = Some(index);
    }

    /// The attribute's elements, moved out of the resource (the caller puts them back).
    fn take_items(&mut self, t: &AttrTarget<'_, '_>) -> Vec<Value> {
        let map = match t.location {
            Location::TopLevel => Some(&mut self.attrs),
            Location::Extension(urn) => self.attrs.get_mut(urn).and_then(Value::as_object_mut),
        };
        match map.and_then(|m| m.get_mut(&t.def.name)).map(std::mem::take) {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(),
            Some(other) => vec![other],
        }
    }

    fn items(&mut self, t: &AttrTarget<'_, '_>) -> Vec<Value> {
        self.settle();
        let items = match self.current(t) {
            Some(Value::Array(items)) => items.clone(),
            Some(other) => vec![other.clone()],
            None => Vec::new(),
        };
        visited(items.len());
        items
    }
}

/// Read-only attributes are refused whatever the operation; immutable ones are judged on the result, in
/// [`apply`].
fn check_writable(t: &AttrTarget<'_, '_>) -> ScimResult<()> {
    let read_only = |d: &AttrDef| d.mutability == Mutability::ReadOnly;
    if read_only(t.def) || t.sub.is_some_and(read_only) {
        return Err(ScimError::mutability(format!("attribute '{}' is read-only", t.def.name)));
    }
    Ok(())
}

fn container<'a>(attrs: &'a Map<String, Value>, location: Location<'_>) -> Option<&'a Map<String, Value>> {
    match location {
        Location::TopLevel => Some(attrs),
        Location::Extension(urn) => attrs.get(urn)?.as_object(),
    }
}

fn resolve<'s, 'f>(schema: &'s ResourceSchema, path: &'f PatchPath) -> ScimResult<Target<'s, 'f>> {
    if let (Some(urn), None, None) = (&path.urn, &path.filter, &path.sub)
        && let Some(ext) = schema.extension(&format!("{urn}:{}", path.name))
    {
        return Ok(Target::Extension(ext));
    }
    let Some(resolved) = schema.resolve(path.urn.as_deref(), &path.name) else {
        log::debug!("ignoring PATCH of unknown attribute '{}'", path.name);
        return Ok(Target::Unknown);
    };
    let def = resolved.def;
    if path.filter.is_some() && !(def.multi_valued && def.is_complex()) {
        return Err(ScimError::invalid_path(format!(
            "'{}' is not a multi-valued complex attribute; a value filter cannot select from it",
            def.name
        )));
    }
    let sub = match &path.sub {
        None => None,
        Some(_) if !def.is_complex() => {
            return Err(ScimError::invalid_path(format!("'{}' has no sub-attributes", def.name)));
        }
        Some(name) => match def.sub(name) {
            Some(sub) => Some(sub),
            None => {
                log::debug!("ignoring PATCH of unknown sub-attribute '{}.{name}'", def.name);
                return Ok(Target::Unknown);
            }
        },
    };
    Ok(Target::Attr(AttrTarget { location: resolved.location, def, filter: path.filter.as_ref(), sub }))
}

/// A key of a path-less value (`displayName`, `name.givenName`, `urn:...:User:employeeNumber`).
fn resolve_key<'s>(schema: &'s ResourceSchema, key: &str) -> ScimResult<Target<'s, 'static>> {
    let path = parse_path(key)?;
    if path.filter.is_some() {
        return Err(ScimError::invalid_path(format!(
            "'{key}': a value filter cannot be a key of a path-less value"
        )));
    }
    Ok(match resolve(schema, &path)? {
        Target::Unknown => Target::Unknown,
        Target::Extension(ext) => Target::Extension(ext),
        Target::Attr(t) => {
            Target::Attr(AttrTarget { location: t.location, def: t.def, filter: None, sub: t.sub })
        }
    })
}

/// The element `filter` describes: its `eq` terms on sub-attributes (`type eq "work"` gives
/// `{"type": "work"}`), coerced to the sub-attributes' types.
fn element_from_filter(def: &AttrDef, filter: &Filter) -> ScimResult<Value> {
    let mut element = Map::new();
    let mut terms = Vec::new();
    collect_eq_terms(filter, &mut terms);
    for (name, literal) in terms {
        let Some(sub) = def.sub(name) else { continue };
        let raw = match literal {
            Literal::String(s) => Value::String(s.clone()),
            Literal::Number(n) => Value::Number(n.clone()),
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Null => continue,
        };
        if let Some(v) = coerce(sub, &raw, &format!("{}.{}", def.name, sub.name))? {
            element.insert(sub.name.clone(), v);
        }
    }
    Ok(Value::Object(element))
}

fn collect_eq_terms<'f>(filter: &'f Filter, out: &mut Vec<(&'f str, &'f Literal)>) {
    match filter {
        Filter::Compare(path, CompareOp::Eq, literal) if path.sub.is_none() => {
            out.push((&path.name, literal))
        }
        Filter::And(operands) => operands.iter().for_each(|f| collect_eq_terms(f, out)),
        _ => {}
    }
}

fn set_key(obj: &mut Value, key: &str, value: Option<Value>) {
    if let Value::Object(map) = obj {
        match value {
            Some(v) => {
                map.insert(key.to_string(), v);
            }
            None => {
                map.remove(key);
            }
        }
    }
}

pub(crate) fn merge_into(obj: &mut Value, extra: Map<String, Value>) {
    if let Value::Object(map) = obj {
        map.extend(extra);
    }
}

/// Two elements of a multi-valued attribute are the same value when their `value` (and `type`, when both
/// have one) agree; elements without `value` are compared whole.
pub(crate) fn same_element(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => {
            x == y
                && match (a.get("type"), b.get("type")) {
                    (Some(s), Some(t)) => s == t,
                    _ => true,
                }
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests;
