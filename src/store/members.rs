//! Group membership, one key per membership plus a reverse index, so adding or removing one member never
//! reads or rewrites the rest of the group. Changes to one group's members are serialised by a lock stripe
//! so that whole-list operations (replace, remove all, remove by filter) see a stable member list. A member
//! added must be a user or a group of the same account.

use crate::store::tx::Tx;
use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::codec::{decode, encode};
use super::keys::{AccountId, SEP, child_prefix, key, kind};
use super::pending::mark_pending;
use super::resources::GROUPS;
use super::{Store, StoreResult, TxResult, abort, check_id};
use crate::scim::ScimError;
use crate::scim::filter::Filter;
use crate::scim::patch::{Elements, MemberChange};
use crate::scim::resource::MemberEntry;
use crate::scim::schema::{AttrDef, Location, ResourceKind, ResourceSchema};

/// A member as a group lists it: what the client sent, completed from the user record where it sent less.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub display: Option<String>,
    /// `User` when the id is a user of the account, or what the client sent.
    pub kind: Option<String>,
    /// The `$ref` the client sent, if any.
    pub reference: Option<String>,
}

impl Member {
    /// The member's JSON object (without `$ref` when none was sent; the HTTP layer adds one).
    pub fn to_json(&self) -> Value {
        let mut obj = json!({"value": self.id});
        for (k, v) in [("$ref", &self.reference), ("type", &self.kind), ("display", &self.display)] {
            if let Some(v) = v {
                obj[k] = Value::String(v.clone());
            }
        }
        obj
    }
}

/// See [`Store::groups_cursor`].
pub struct GroupsCursor {
    iter: std::iter::Peekable<super::records::Iter>,
    acct: AccountId,
}

impl GroupsCursor {
    /// The groups of `uid`, which must not sort before the user asked for last. User ids are UUIDs, all
    /// of one length, so no user's entries sort among another's.
    pub fn groups_of(&mut self, uid: &str) -> StoreResult<Vec<String>> {
        let prefix = member_of_prefix(self.acct, uid);
        let mut groups = Vec::new();
        loop {
            let key = match self.iter.peek() {
                None => break,
                Some(Ok((k, _))) => k.clone(),
                Some(Err(_)) => match self.iter.next() {
                    Some(Err(e)) => return Err(e.into()),
                    _ => continue,
                },
            };
            if key.starts_with(&prefix) {
                groups.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
            } else if key.as_ref() > prefix.as_slice() {
                break;
            }
            self.iter.next();
        }
        Ok(groups)
    }
}

/// What a membership change did, for activity entries and the rule engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPatch {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

pub(crate) fn member_key(acct: AccountId, gid: &str, mid: &str) -> Vec<u8> {
    key(kind::MEMBER, acct, &[gid.as_bytes(), mid.as_bytes()])
}

fn member_of_key(acct: AccountId, mid: &str, gid: &str) -> Vec<u8> {
    key(kind::MEMBER_OF, acct, &[mid.as_bytes(), &[SEP], gid.as_bytes()])
}

fn member_of_prefix(acct: AccountId, mid: &str) -> Vec<u8> {
    key(kind::MEMBER_OF, acct, &[mid.as_bytes(), &[SEP]])
}

pub(crate) fn cleanup_key(acct: AccountId, what: u8, id: &str) -> Vec<u8> {
    key(kind::CLEANUP, acct, &[&[what], id.as_bytes()])
}

/// A membership change with whole-list operations already turned into the ids they affect.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    Add(Vec<MemberEntry>),
    Remove(Vec<String>),
    /// Remove every member the group had when the change began, and any added earlier in the same request.
    Clear,
    /// Make the member list exactly these entries, writing only what differs: a full push of an unchanged
    /// list of thousands of members writes nothing.
    Replace(Vec<MemberEntry>),
}

impl Store {
    /// Every member of the group, in id order.
    pub fn members(&self, acct: AccountId, gid: &str) -> StoreResult<Vec<Member>> {
        let prefix = child_prefix(kind::MEMBER, acct, gid);
        let mut out = Vec::new();
        for item in self.tree().scan_prefix(&prefix) {
            let (k, v) = item?;
            let mid = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.push(self.complete_member(acct, mid, decode(&v)?)?);
        }
        Ok(out)
    }

    /// The listed ids that are members of the group (for filters such as `members eq "<id>"`).
    pub fn members_among(&self, acct: AccountId, gid: &str, ids: &[String]) -> StoreResult<Vec<Member>> {
        let mut out = Vec::new();
        for mid in ids {
            if let Some(v) = self.tree().get(member_key(acct, gid, mid))? {
                out.push(self.complete_member(acct, mid.clone(), decode(&v)?)?);
            }
        }
        Ok(out)
    }

    fn complete_member(&self, acct: AccountId, id: String, sent: MemberEntry) -> StoreResult<Member> {
        let user_display = match (&sent.display, &sent.kind) {
            (Some(_), Some(_)) => None,
            _ => self.user_display(acct, &id)?,
        };
        let is_user = user_display.is_some();
        Ok(Member {
            display: sent.display.or(user_display),
            kind: sent.kind.or_else(|| is_user.then(|| "User".to_string())),
            reference: sent.reference,
            id,
        })
    }

    /// The groups `mid` is a direct member of, from the reverse index.
    pub fn groups_of(&self, acct: AccountId, mid: &str) -> StoreResult<Vec<String>> {
        // Most users are in a handful of groups: stepping with `get_gt` spares setting up an iterator.
        let prefix = member_of_prefix(acct, mid);
        let mut groups = Vec::new();
        let mut at = sled::IVec::from(prefix.as_slice());
        while let Some((key, _)) = self.tree().get_gt(&at)? {
            if !key.starts_with(&prefix) {
                break;
            }
            groups.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
            at = key;
        }
        Ok(groups)
    }

    /// A reader of the reverse index for many users in ascending id order: one pass over the index
    /// instead of a prefix scan per user.
    pub fn groups_cursor(&self, acct: AccountId, from: &str) -> GroupsCursor {
        let start = member_of_prefix(acct, from);
        GroupsCursor { iter: self.tree().range(start..).peekable(), acct }
    }

    fn member_ids(&self, acct: AccountId, gid: &str) -> StoreResult<Vec<String>> {
        let prefix = child_prefix(kind::MEMBER, acct, gid);
        self.tree()
            .scan_prefix(&prefix)
            .map(|item| Ok(String::from_utf8_lossy(&item?.0[prefix.len()..]).into_owned()))
            .collect()
    }

    /// Turns PATCH member changes into [`Resolved`] ones, reading the current member list only when a change
    /// needs it. Call with the group's lock held.
    ///
    /// A removal by an arbitrary filter (`members[display eq "x"]`, [`MemberChange::RemoveWhere`]) is
    /// resolved against the members as the request's earlier changes leave them, through one index of the
    /// members built for the whole request (see [`Elements`]): a request of a thousand such removals reads
    /// the member list once, not once per removal.
    pub(crate) fn resolve_member_changes(
        &self,
        acct: AccountId,
        gid: &str,
        schema: &ResourceSchema,
        changes: &[MemberChange],
    ) -> StoreResult<(Vec<Resolved>, Vec<String>)> {
        let needs_list = changes.iter().any(|c| !matches!(c, MemberChange::Add(_) | MemberChange::Remove(_)));
        let current = if needs_list { self.member_ids(acct, gid)? } else { Vec::new() };
        let members_def = schema.core.attr("members");
        let mut view = match members_def {
            Some(_) if changes.iter().any(|c| matches!(c, MemberChange::RemoveWhere(_))) => {
                Some(MemberView::new(self.members(acct, gid)?.iter().map(Member::to_json).collect()))
            }
            _ => None,
        };
        let mut out = Vec::with_capacity(changes.len() + 1);
        for change in changes {
            match change {
                MemberChange::Add(entries) => {
                    if let Some(view) = &mut view {
                        for entry in entries {
                            view.add(self.complete_member(acct, entry.id.clone(), entry.clone())?.to_json());
                        }
                    }
                    out.push(Resolved::Add(entries.clone()))
                }
                MemberChange::Remove(ids) => {
                    if let Some(view) = &mut view {
                        ids.iter().for_each(|id| view.remove(id));
                    }
                    out.push(Resolved::Remove(ids.clone()))
                }
                MemberChange::RemoveAll => {
                    if let Some(view) = &mut view {
                        *view = MemberView::new(Vec::new());
                    }
                    out.push(Resolved::Clear)
                }
                MemberChange::ReplaceAll(entries) => {
                    if let Some(view) = &mut view {
                        let mut listed = Vec::with_capacity(entries.len());
                        for entry in entries {
                            listed
                                .push(self.complete_member(acct, entry.id.clone(), entry.clone())?.to_json());
                        }
                        *view = MemberView::new(listed);
                    }
                    out.push(Resolved::Replace(entries.clone()))
                }
                MemberChange::RemoveWhere(filter) => {
                    let (Some(def), Some(view)) = (members_def, &mut view) else { continue };
                    out.push(Resolved::Remove(view.remove_matching(filter, def)));
                }
            }
        }
        Ok((out, current))
    }
}

/// The members of a group as a PATCH's changes leave them, indexed (see [`Elements`]).
struct MemberView {
    items: Vec<Value>,
    index: Elements,
}

impl MemberView {
    fn new(mut items: Vec<Value>) -> MemberView {
        let index = Elements::build(Location::TopLevel, "members", &mut items);
        MemberView { items, index }
    }

    fn remove(&mut self, id: &str) {
        for i in self.index.same_as(&self.items, &json!({"value": id})) {
            self.index.take_out(&mut self.items, i);
        }
    }

    /// Adds (or, when the id is there, replaces) a member.
    fn add(&mut self, member: Value) {
        if let Some(id) = member.get("value").and_then(Value::as_str) {
            self.remove(id);
        }
        self.index.push(&mut self.items, member);
    }

    /// Removes the members `filter` selects; returns their ids.
    fn remove_matching(&mut self, filter: &Filter, def: &AttrDef) -> Vec<String> {
        let mut ids = Vec::new();
        for i in self.index.matching(filter, def, &self.items) {
            if let Some(id) = self.items[i].get("value").and_then(Value::as_str) {
                ids.push(id.to_string());
            }
            self.index.take_out(&mut self.items, i);
        }
        ids
    }
}

/// Applies resolved changes inside a transaction and returns the net effect. `current` is the member list
/// read before the transaction (needed only for `Clear`). Every user whose membership changed is marked
/// for re-evaluation.
pub(crate) fn apply_member_changes(
    tx: &Tx<'_>,
    acct: AccountId,
    gid: &str,
    changes: &[Resolved],
    current: &[String],
) -> TxResult<GroupPatch> {
    // Each touched id's membership before the change, to report the net effect of a sequence.
    let mut before: HashMap<String, bool> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut added_here: HashSet<String> = HashSet::new();
    let mut touch = |tx: &Tx<'_>, mid: &str, before: &mut HashMap<String, bool>| -> TxResult<()> {
        if !before.contains_key(mid) {
            let was = tx.get(member_key(acct, gid, mid))?.is_some();
            before.insert(mid.to_string(), was);
            order.push(mid.to_string());
        }
        Ok(())
    };
    for change in changes {
        match change {
            Resolved::Add(entries) => {
                check_members_exist(tx, acct, entries)?;
                for entry in entries {
                    touch(tx, &entry.id, &mut before)?;
                    tx.insert(member_key(acct, gid, &entry.id), encode(entry))?;
                    tx.insert(member_of_key(acct, &entry.id, gid), &[])?;
                    added_here.insert(entry.id.clone());
                }
            }
            Resolved::Remove(ids) => {
                for mid in ids {
                    touch(tx, mid, &mut before)?;
                    remove_membership(tx, acct, gid, mid)?;
                    added_here.remove(mid);
                }
            }
            Resolved::Clear => {
                let everyone: Vec<String> = current.iter().cloned().chain(added_here.drain()).collect();
                for mid in &everyone {
                    touch(tx, mid, &mut before)?;
                    remove_membership(tx, acct, gid, mid)?;
                }
            }
            Resolved::Replace(entries) => {
                // A member already listed as it is was checked when it was added (a deleted user's
                // memberships go with it), so a full push of an unchanged list reads one key per member.
                let mut unchanged = HashSet::new();
                for entry in entries {
                    if tx.get(member_key(acct, gid, &entry.id))?.as_deref() == Some(encode(entry).as_slice())
                    {
                        unchanged.insert(entry.id.as_str());
                    }
                }
                let new: Vec<MemberEntry> =
                    entries.iter().filter(|e| !unchanged.contains(e.id.as_str())).cloned().collect();
                check_members_exist(tx, acct, &new)?;
                let kept: HashSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
                let leaving: Vec<String> = current
                    .iter()
                    .chain(added_here.iter())
                    .filter(|mid| !kept.contains(mid.as_str()))
                    .cloned()
                    .collect();
                for mid in &leaving {
                    touch(tx, mid, &mut before)?;
                    remove_membership(tx, acct, gid, mid)?;
                }
                for entry in &new {
                    touch(tx, &entry.id, &mut before)?;
                    tx.insert(member_key(acct, gid, &entry.id), encode(entry))?;
                    tx.insert(member_of_key(acct, &entry.id, gid), &[])?;
                }
                added_here.extend(entries.iter().map(|e| e.id.clone()));
            }
        }
    }
    let mut patch = GroupPatch::default();
    for mid in order {
        let was = before.get(&mid).copied().unwrap_or(false);
        let is = tx.get(member_key(acct, gid, &mid))?.is_some();
        if was != is {
            mark_pending(tx, acct, &mid)?;
            if is { patch.added.push(mid) } else { patch.removed.push(mid) }
        }
    }
    Ok(patch)
}

/// Ids listed in the error about members that do not exist.
const MISSING_IDS_SHOWN: usize = 10;

/// Every member added must be a user or a group of the account when the write is applied; ids are assigned
/// by the server, so an unknown one can never become valid. Users are checked by their display record,
/// which changes only with the display text, so a user edited meanwhile does not make this write retry.
fn check_members_exist(tx: &Tx<'_>, acct: AccountId, entries: &[MemberEntry]) -> TxResult<()> {
    let mut missing = Vec::new();
    for entry in entries {
        let is_user = check_id(ResourceKind::User, &entry.id).is_ok()
            && tx.get(key(kind::USER_DISPLAY, acct, &[entry.id.as_bytes()]))?.is_some();
        if !is_user
            && (check_id(ResourceKind::Group, &entry.id).is_err()
                || tx.get(GROUPS.record_key(acct, &entry.id))?.is_none())
        {
            missing.push(entry.id.as_str());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut shown: Vec<String> = missing.iter().take(MISSING_IDS_SHOWN).map(|id| format!("'{id}'")).collect();
    if missing.len() > MISSING_IDS_SHOWN {
        shown.push(format!("and {} more", missing.len() - MISSING_IDS_SHOWN));
    }
    abort(ScimError::invalid_value(format!(
        "members must be users or groups of this account; no such resource: {}",
        shown.join(", ")
    )))
}

fn remove_membership(tx: &Tx<'_>, acct: AccountId, gid: &str, mid: &str) -> TxResult<()> {
    tx.remove(member_key(acct, gid, mid))?;
    tx.remove(member_of_key(acct, mid, gid))?;
    Ok(())
}

/// Memberships removed per transaction when a whole group or user goes.
const CLEANUP_BATCH: usize = 1000;

/// Removes every membership of a deleted group, in batches, marking each former member for re-evaluation,
/// then the group's cleanup marker.
pub(crate) fn remove_all_members_of(store: &Store, acct: AccountId, gid: &str) -> StoreResult<()> {
    loop {
        let batch: Vec<String> = store.member_ids(acct, gid)?.into_iter().take(CLEANUP_BATCH).collect();
        if batch.is_empty() {
            break;
        }
        store.transact(|tx| {
            for mid in &batch {
                remove_membership(tx, acct, gid, mid)?;
                mark_pending(tx, acct, mid)?;
            }
            Ok(())
        })?;
    }
    store.transact(|tx| tx.remove(cleanup_key(acct, b'g', gid)))
}

/// Removes every membership of a deleted user, then the user's cleanup marker.
pub(crate) fn remove_all_memberships_of(store: &Store, acct: AccountId, uid: &str) -> StoreResult<()> {
    loop {
        let batch: Vec<String> = store.groups_of(acct, uid)?.into_iter().take(CLEANUP_BATCH).collect();
        if batch.is_empty() {
            break;
        }
        store.transact(|tx| {
            for gid in &batch {
                remove_membership(tx, acct, gid, uid)?;
            }
            Ok(())
        })?;
    }
    store.transact(|tx| tx.remove(cleanup_key(acct, b'u', uid)))
}

impl Store {
    /// Finishes the membership cleanups a crash interrupted.
    pub(crate) fn finish_cleanups(&self) -> StoreResult<()> {
        let markers: Vec<sled::IVec> =
            self.tree().scan_prefix([kind::CLEANUP]).keys().collect::<Result<_, _>>()?;
        for marker in markers {
            let (Some(acct), Some(&what)) = (super::keys::account_of(&marker), marker.get(5)) else {
                continue;
            };
            let id = String::from_utf8_lossy(&marker[6..]).into_owned();
            match what {
                b'g' => remove_all_members_of(self, acct, &id)?,
                _ => remove_all_memberships_of(self, acct, &id)?,
            }
        }
        Ok(())
    }
}
