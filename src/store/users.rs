//! Users: create, read, replace, patch, delete, with the user's display text and password hash kept beside
//! the record, a pending re-evaluation recorded for the rule engine in the same transaction as every change,
//! and the user's groups read from the membership reverse index.

use crate::store::tx::Tx;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::activity::record;
use super::codec::{bumped_meta, display_of, new_meta};
use super::keys::{AccountId, key, kind};
use super::members::{cleanup_key, remove_all_memberships_of};
use super::pending::mark_pending;
use super::resources::{GROUPS, USERS};
use super::{Actor, Store, StoreResult, TxResult, abort, check_id};
use crate::scim::patch::{Operation, PatchLimits, apply_within};
use crate::scim::resource::{
    Normalized, assemble, attribute_changes, attrs_of, changed_attributes, check_immutable,
};
use crate::scim::schema::{ResourceKind, ResourceSchema};

impl Store {
    pub fn create_user(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        input: &Normalized,
        actor: &Actor,
    ) -> StoreResult<Value> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = self.now();
        let doc = assemble(schema, &id, &input.attrs, new_meta(ResourceKind::User, now));
        let secret = input.password.as_deref().map(hash_password);
        self.transact(|tx| {
            USERS.write(tx, acct, &id, None, Some(&doc))?;
            write_side_records(tx, acct, &id, None, &doc, secret.as_deref())?;
            mark_pending(tx, acct, &id)?;
            let detail = json!({"userName": doc["userName"], "active": is_active(&doc)});
            record(tx, acct, now, actor, "user.created", Some(&id), detail)
        })?;
        self.adjust_count(acct, ResourceKind::User, 1);
        Ok(doc)
    }

    /// The stored user, without `groups`.
    pub fn user(&self, acct: AccountId, id: &str) -> StoreResult<Option<Value>> {
        if check_id(ResourceKind::User, id).is_err() {
            return Ok(None);
        }
        USERS.get(self, acct, id)
    }

    /// PUT: the body replaces every writable attribute. A body without `active` keeps the current value
    /// (Okta's AIW apps omit it and must not deactivate anyone), and a body without `password` keeps the
    /// current password.
    pub fn replace_user(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        id: &str,
        input: &Normalized,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<Value> {
        self.update_user(acct, schema, id, if_match, actor, |current| {
            let mut attrs = input.attrs.clone();
            if let Some(active) = current.get("active").filter(|_| !attrs.contains_key("active")) {
                attrs.insert("active".into(), active.clone());
            }
            check_immutable(schema, &attrs_of(current), &attrs)?;
            Ok((attrs, input.password.clone()))
        })
    }

    pub fn patch_user(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        id: &str,
        ops: &[Operation],
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<Value> {
        self.patch_user_within(acct, schema, id, ops, PatchLimits::default(), if_match, actor)
    }

    /// [`Store::patch_user`] under `limits`.
    #[allow(clippy::too_many_arguments)]
    pub fn patch_user_within(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        id: &str,
        ops: &[Operation],
        limits: PatchLimits,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<Value> {
        self.update_user(acct, schema, id, if_match, actor, |current| {
            let mut attrs = attrs_of(current);
            let outcome = apply_within(schema, id, &mut attrs, ops, limits)?;
            Ok((attrs, outcome.password))
        })
    }

    /// The shared body of PUT and PATCH: `change` computes the new attributes (and a new password) from the
    /// current document inside the transaction, so concurrent changes to one user never lose each other.
    fn update_user(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        id: &str,
        if_match: Option<&str>,
        actor: &Actor,
        change: impl Fn(&Value) -> StoreResult<(Map<String, Value>, Option<String>)>,
    ) -> StoreResult<Value> {
        check_id(ResourceKind::User, id)?;
        let now = self.now();
        self.transact(|tx| {
            let old = USERS.load_for_write(tx, acct, id, if_match)?;
            let (attrs, password) =
                match change(&old).and_then(|next| super::wanted::still_wanted().map(|()| next)) {
                    Ok(next) => next,
                    Err(e) => return abort(e),
                };
            let old_attrs = attrs_of(&old);
            if attrs == old_attrs && password.is_none() {
                return Ok(old);
            }
            let new = assemble(schema, id, &attrs, bumped_meta(&old, ResourceKind::User, now));
            USERS.write(tx, acct, id, Some(&old), Some(&new))?;
            write_side_records(
                tx,
                acct,
                id,
                Some(&old),
                &new,
                password.as_deref().map(hash_password).as_deref(),
            )?;
            mark_pending(tx, acct, id)?;
            let mut changed: Vec<String> = changed_attributes(&old_attrs, &attrs).into_iter().collect();
            // A new password is said, never shown (not even hashed).
            if password.is_some() && !changed.iter().any(|c| c == "password") {
                changed.push("password".into());
                changed.sort();
            }
            let changes = attribute_changes(&old_attrs, &attrs);
            let event = if is_active(&old) && !is_active(&new) { "user.deactivated" } else { "user.updated" };
            record(
                tx,
                acct,
                now,
                actor,
                event,
                Some(id),
                json!({"userName": new["userName"], "changed": changed, "changes": changes}),
            )?;
            Ok(new)
        })
    }

    /// Deletes the user and every membership it has.
    pub fn delete_user(
        &self,
        acct: AccountId,
        id: &str,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<()> {
        check_id(ResourceKind::User, id)?;
        let now = self.now();
        self.transact(|tx| {
            let old = USERS.load_for_write(tx, acct, id, if_match)?;
            USERS.write(tx, acct, id, Some(&old), None)?;
            tx.remove(key(kind::USER_DISPLAY, acct, &[id.as_bytes()]))?;
            tx.remove(key(kind::USER_SECRET, acct, &[id.as_bytes()]))?;
            tx.insert(cleanup_key(acct, b'u', id), &[])?;
            mark_pending(tx, acct, id)?;
            record(tx, acct, now, actor, "user.deleted", Some(id), json!({"userName": old["userName"]}))
        })?;
        self.adjust_count(acct, ResourceKind::User, -1);
        // No membership can be added for a user that no longer exists, so this sweep leaves none behind.
        remove_all_memberships_of(self, acct, id)
    }

    /// The groups the user is a direct member of, as (id, displayName), from the reverse index.
    pub fn user_groups(&self, acct: AccountId, uid: &str) -> StoreResult<Vec<(String, String)>> {
        let mut groups = Vec::new();
        for gid in self.groups_of(acct, uid)? {
            if let Some(doc) = GROUPS.get(self, acct, &gid)? {
                let name = doc.get("displayName").and_then(Value::as_str).unwrap_or_default().to_string();
                groups.push((gid, name));
            }
        }
        Ok(groups)
    }

    /// The display text of a user for member lists, if the user exists.
    pub(crate) fn user_display(&self, acct: AccountId, uid: &str) -> StoreResult<Option<String>> {
        Ok(self
            .tree()
            .get(key(kind::USER_DISPLAY, acct, &[uid.as_bytes()]))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}

/// `active` absent means active: only an explicit `false` suspends a user.
pub fn is_active(user: &Value) -> bool {
    user.get("active").and_then(Value::as_bool).unwrap_or(true)
}

/// Keeps the display text and the password hash in step with the document.
fn write_side_records(
    tx: &Tx<'_>,
    acct: AccountId,
    id: &str,
    old: Option<&Value>,
    new: &Value,
    secret: Option<&str>,
) -> TxResult<()> {
    if old.map(display_of) != Some(display_of(new)) {
        tx.insert(key(kind::USER_DISPLAY, acct, &[id.as_bytes()]), display_of(new).as_bytes())?;
    }
    if let Some(secret) = secret {
        tx.insert(key(kind::USER_SECRET, acct, &[id.as_bytes()]), secret.as_bytes())?;
    }
    Ok(())
}

/// Passwords are never stored in clear. usersync does not authenticate users with them, so a salted
/// SHA-256 is enough to keep a leaked store from revealing them.
fn hash_password(password: &str) -> String {
    let salt = uuid::Uuid::new_v4().simple().to_string();
    let digest = Sha256::digest(format!("{salt}{password}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256${salt}${hex}")
}
