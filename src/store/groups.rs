//! Groups: create, read, replace, patch, delete. The group document never holds its members; member changes
//! are applied as per-member keys (see `members`), under the group's lock.

use crate::store::tx::Tx;
use serde_json::{Map, Value, json};

use super::activity::record;
use super::codec::{bumped_meta, check_if_match, new_meta};
use super::keys::{AccountId, child_prefix, key, kind};
use super::members::{GroupPatch, Resolved, apply_member_changes, cleanup_key, remove_all_members_of};
use super::resources::GROUPS;
use super::{Actor, Store, StoreResult, TxResult, check_id, not_found};
use crate::scim::patch::{MemberChange, Operation, PatchLimits, apply_within};
use crate::scim::resource::{
    Normalized, assemble, attribute_changes, attrs_of, changed_attributes, check_immutable,
};
use crate::scim::schema::{ResourceKind, ResourceSchema};

/// Ids listed in one activity entry; larger changes are summarised by their counts.
const ACTIVITY_ID_LIMIT: usize = 100;

impl Store {
    pub fn create_group(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        input: &Normalized,
        actor: &Actor,
    ) -> StoreResult<(Value, GroupPatch)> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = self.now();
        let doc = assemble(schema, &id, &input.attrs, new_meta(ResourceKind::Group, now));
        let changes: Vec<Resolved> = input.members.iter().map(|m| Resolved::Add(m.clone())).collect();
        let patch = self.transact(|tx| {
            GROUPS.write(tx, acct, &id, None, Some(&doc))?;
            let patch = apply_member_changes(tx, acct, &id, &changes, &[])?;
            record(
                tx,
                acct,
                now,
                actor,
                "group.created",
                Some(&id),
                json!({"displayName": doc["displayName"]}),
            )?;
            record_member_changes(tx, acct, now, actor, &id, &patch)?;
            Ok(patch)
        })?;
        self.adjust_count(acct, ResourceKind::Group, 1);
        Ok((doc, patch))
    }

    /// The stored group, without members.
    pub fn group(&self, acct: AccountId, id: &str) -> StoreResult<Option<Value>> {
        if check_id(ResourceKind::Group, id).is_err() {
            return Ok(None);
        }
        GROUPS.get(self, acct, id)
    }

    /// PUT: attributes and the member list are replaced (a body without `members` empties the group).
    pub fn replace_group(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        id: &str,
        input: &Normalized,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<(Value, GroupPatch)> {
        self.update_group(acct, schema, id, if_match, actor, |current| {
            check_immutable(schema, &attrs_of(current), &input.attrs)?;
            Ok((
                input.attrs.clone(),
                vec![MemberChange::ReplaceAll(input.members.clone().unwrap_or_default())],
            ))
        })
    }

    pub fn patch_group(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        id: &str,
        ops: &[Operation],
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<(Value, GroupPatch)> {
        self.patch_group_within(acct, schema, id, ops, PatchLimits::default(), if_match, actor)
    }

    /// [`Store::patch_group`] under `limits`.
    #[allow(clippy::too_many_arguments)]
    pub fn patch_group_within(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        id: &str,
        ops: &[Operation],
        limits: PatchLimits,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<(Value, GroupPatch)> {
        self.update_group(acct, schema, id, if_match, actor, |current| {
            let mut attrs = attrs_of(current);
            let outcome = apply_within(schema, id, &mut attrs, ops, limits)?;
            Ok((attrs, outcome.members))
        })
    }

    /// The shared body of PUT and PATCH. Every write to a group document holds the group's lock, so the
    /// document read here is the one the transaction changes, and `change` can run once, outside it: its
    /// member changes must be resolved against the current member list before the transaction starts.
    fn update_group(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        id: &str,
        if_match: Option<&str>,
        actor: &Actor,
        change: impl FnOnce(&Value) -> StoreResult<(Map<String, Value>, Vec<MemberChange>)>,
    ) -> StoreResult<(Value, GroupPatch)> {
        check_id(ResourceKind::Group, id)?;
        let _serialised = self.group_lock(acct, id);
        let old = GROUPS.get(self, acct, id)?.ok_or_else(|| not_found(ResourceKind::Group, id))?;
        check_if_match(&old, if_match)?;
        let (attrs, members) = change(&old)?;
        super::wanted::still_wanted()?;
        let (resolved, current) = self.resolve_member_changes(acct, id, schema, &members)?;
        super::wanted::still_wanted()?;
        let old_attrs = attrs_of(&old);
        let now = self.now();
        self.transact(|tx| {
            let patch = apply_member_changes(tx, acct, id, &resolved, &current)?;
            if attrs == old_attrs && patch == GroupPatch::default() {
                return Ok((old.clone(), patch));
            }
            let new = assemble(schema, id, &attrs, bumped_meta(&old, ResourceKind::Group, now));
            GROUPS.write(tx, acct, id, Some(&old), Some(&new))?;
            if attrs != old_attrs {
                let changed = changed_attributes(&old_attrs, &attrs);
                let changes = attribute_changes(&old_attrs, &attrs);
                let detail =
                    json!({"displayName": new["displayName"], "changed": changed, "changes": changes});
                record(tx, acct, now, actor, "group.updated", Some(id), detail)?;
            }
            record_member_changes(tx, acct, now, actor, id, &patch)?;
            Ok((new, patch))
        })
    }

    /// Deletes the group and all its memberships; each former member is re-evaluated.
    pub fn delete_group(
        &self,
        acct: AccountId,
        id: &str,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<()> {
        check_id(ResourceKind::Group, id)?;
        let _serialised = self.group_lock(acct, id);
        let now = self.now();
        // Only a group with members can cause revocations for the brake to name.
        let has_members = self.tree().scan_prefix(child_prefix(kind::MEMBER, acct, id)).next().is_some();
        self.transact(|tx| {
            let old = GROUPS.load_for_write(tx, acct, id, if_match)?;
            GROUPS.write(tx, acct, id, Some(&old), None)?;
            tx.insert(cleanup_key(acct, b'g', id), &[])?;
            if has_members {
                let name = old["displayName"].as_str().unwrap_or_default();
                super::sync::record_group_deleted(tx, acct, id, name)?;
            }
            record(
                tx,
                acct,
                now,
                actor,
                "group.deleted",
                Some(id),
                json!({"displayName": old["displayName"]}),
            )
        })?;
        self.adjust_count(acct, ResourceKind::Group, -1);
        remove_all_members_of(self, acct, id)
    }
}

fn record_member_changes(
    tx: &Tx<'_>,
    acct: AccountId,
    now: chrono::DateTime<chrono::Utc>,
    actor: &Actor,
    gid: &str,
    patch: &GroupPatch,
) -> TxResult<()> {
    if patch.added.is_empty() && patch.removed.is_empty() {
        return Ok(());
    }
    // The first members of each list, with the name an admin knows them by; the counts say how many.
    let named = |ids: &[String]| -> TxResult<Vec<Value>> {
        ids.iter()
            .take(ACTIVITY_ID_LIMIT)
            .map(|mid| Ok(json!({"value": mid, "display": member_name(tx, acct, mid)?})))
            .collect()
    };
    let detail = json!({
        "added": named(&patch.added)?, "removed": named(&patch.removed)?,
        "addedCount": patch.added.len(), "removedCount": patch.removed.len(),
    });
    record(tx, acct, now, actor, "group.members.changed", Some(gid), detail)
}

/// A member's display text (a user's displayName or userName, a group's displayName), read from the
/// user's display record so that a user edited meanwhile does not make the membership change retry.
fn member_name(tx: &Tx<'_>, acct: AccountId, mid: &str) -> TxResult<Option<String>> {
    if let Some(text) = tx.get(key(kind::USER_DISPLAY, acct, &[mid.as_bytes()]))? {
        return Ok(Some(String::from_utf8_lossy(&text).into_owned()));
    }
    let group: Option<Value> =
        tx.get(GROUPS.record_key(acct, mid))?.and_then(|b| serde_json::from_slice(&b).ok());
    Ok(group.and_then(|g| g.get("displayName").and_then(Value::as_str).map(str::to_string)))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use serde_json::json;

    use super::*;
    use crate::scim::patch::parse_request;
    use crate::scim::resource::normalize;
    use crate::scim::schema::Registry;
    use crate::store::StoreError;
    use crate::store::testing::temp_store;
    use crate::store::wanted::while_wanted;

    /// A check that says "wanted" `times` times, then "gone".
    fn gone_after(times: usize) -> impl Fn() -> bool + 'static {
        let calls = Rc::new(Cell::new(0));
        move || {
            calls.set(calls.get() + 1);
            calls.get() <= times
        }
    }

    #[test]
    fn a_write_whose_client_has_gone_stops_with_nothing_written_at_every_phase() {
        let (store, _dir) = temp_store();
        let acct = store.ensure_account("default").unwrap().0.id;
        let registry = Registry::standard();
        let (users, groups) = (registry.resource(ResourceKind::User), registry.resource(ResourceKind::Group));
        let uid = |name: &str| {
            let doc = store.create_user(
                acct,
                users,
                &normalize(users, &json!({"userName": name})).unwrap(),
                &Actor::engine(),
            );
            doc.unwrap()["id"].as_str().unwrap().to_string()
        };
        let (a, b, c) = (uid("a"), uid("b"), uid("c"));
        let body = json!({"displayName": "G", "members": [{"value": a, "display": "A"}, {"value": b}]});
        let (group, _) =
            store.create_group(acct, groups, &normalize(groups, &body).unwrap(), &Actor::engine()).unwrap();
        let gid = group["id"].as_str().unwrap().to_string();
        let members = || store.members(acct, &gid).unwrap().into_iter().map(|m| m.id).collect::<Vec<_>>();
        let before = members();
        let ops = parse_request(&json!({"Operations": [
            {"op": "remove", "path": "members[display eq \"A\"]"},
            {"op": "add", "path": "members", "value": [{"value": c}]},
            {"op": "replace", "path": "displayName", "value": "H"}
        ]}))
        .unwrap();
        let mut checks = 0;
        loop {
            let result = while_wanted(gone_after(checks), || {
                store.patch_group(acct, groups, &gid, &ops, None, &Actor::engine())
            });
            match result {
                Err(StoreError::Rejected(_)) => {
                    assert_eq!(members(), before, "stopped after {checks} checks: nothing written");
                    assert_eq!(store.group(acct, &gid).unwrap().unwrap()["displayName"], json!("G"));
                    checks += 1;
                }
                Ok(_) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(checks, 3, "checked after the change, after reading the members, and before the commit");
        let mut after = members();
        after.sort();
        let mut expected = vec![b, c];
        expected.sort();
        assert_eq!(after, expected);
        assert_eq!(store.group(acct, &gid).unwrap().unwrap()["displayName"], json!("H"));
    }
}
