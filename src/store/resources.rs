//! What users and groups share in storage: the record, the case-insensitive unique-name index and the
//! externalId index, kept in step with every write inside the writer's transaction.

use crate::store::tx::Tx;
use serde_json::Value;

use super::codec::{check_if_match, decode, encode, tx_get};
use super::keys::{AccountId, SEP, fold, key, kind, prefix, trailing_id};
use super::{Actor, Store, StoreError, StoreResult, TxResult, abort, not_found};
use crate::scim::patch::{Operation, PatchLimits};
use crate::scim::resource::Normalized;
use crate::scim::schema::ResourceKind;
use crate::scim::schema::ResourceSchema;

/// The storage layout of one resource type.
pub(crate) struct Family {
    pub kind: ResourceKind,
    record: u8,
    name_index: u8,
    ext_index: u8,
    /// The case-insensitive unique attribute.
    pub name_attr: &'static str,
}

pub(crate) const USERS: Family = Family {
    kind: ResourceKind::User,
    record: kind::USER,
    name_index: kind::USER_NAME,
    ext_index: kind::USER_EXTERNAL_ID,
    name_attr: "userName",
};

pub(crate) const GROUPS: Family = Family {
    kind: ResourceKind::Group,
    record: kind::GROUP,
    name_index: kind::GROUP_NAME,
    ext_index: kind::GROUP_EXTERNAL_ID,
    name_attr: "displayName",
};

pub(crate) fn family(kind: ResourceKind) -> &'static Family {
    match kind {
        ResourceKind::User => &USERS,
        ResourceKind::Group => &GROUPS,
    }
}

impl Family {
    pub fn record_key(&self, acct: AccountId, id: &str) -> Vec<u8> {
        key(self.record, acct, &[id.as_bytes()])
    }

    pub fn record_prefix(&self, acct: AccountId) -> Vec<u8> {
        prefix(self.record, acct)
    }

    fn name_key(&self, acct: AccountId, name: &str) -> Vec<u8> {
        key(self.name_index, acct, &[fold(name).as_bytes()])
    }

    fn ext_prefix(&self, acct: AccountId, external_id: &str) -> Vec<u8> {
        key(self.ext_index, acct, &[external_id.as_bytes(), &[SEP]])
    }

    fn name_of<'a>(&self, doc: &'a Value) -> Option<&'a str> {
        doc.get(self.name_attr).and_then(Value::as_str)
    }

    /// The stored document, or a 404 that aborts the transaction.
    pub fn load(&self, tx: &Tx<'_>, acct: AccountId, id: &str) -> TxResult<Value> {
        match tx_get(tx, &self.record_key(acct, id))? {
            Some(doc) => Ok(doc),
            None => abort(not_found(self.kind, id)),
        }
    }

    /// The stored document if `If-Match` allows a write to it; aborts with a 404 or a 412 otherwise.
    pub fn load_for_write(
        &self,
        tx: &Tx<'_>,
        acct: AccountId,
        id: &str,
        if_match: Option<&str>,
    ) -> TxResult<Value> {
        let doc = self.load(tx, acct, id)?;
        match check_if_match(&doc, if_match) {
            Ok(()) => Ok(doc),
            Err(e) => abort(e),
        }
    }

    pub fn get(&self, store: &Store, acct: AccountId, id: &str) -> StoreResult<Option<Value>> {
        store.tree().get(self.record_key(acct, id))?.map(|b| decode(&b)).transpose()
    }

    /// Writes `new` in place of `old` (either may be absent: create, delete) and moves the index entries.
    /// A unique name held by another resource aborts with a conflict.
    pub fn write(
        &self,
        tx: &Tx<'_>,
        acct: AccountId,
        id: &str,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> TxResult<()> {
        let (old_name, new_name) = (old.and_then(|d| self.name_of(d)), new.and_then(|d| self.name_of(d)));
        if old_name.map(fold) != new_name.map(fold) {
            if let Some(name) = old_name {
                tx.remove(self.name_key(acct, name))?;
            }
            if let Some(name) = new_name {
                let name_key = self.name_key(acct, name);
                if tx.get(&name_key)?.is_some_and(|owner| owner != id.as_bytes()) {
                    return abort(StoreError::Conflict(format!(
                        "{} '{name}' is already taken",
                        self.name_attr
                    )));
                }
                tx.insert(name_key, id.as_bytes())?;
            }
        }
        let external = |d: Option<&Value>| {
            d.and_then(|d| d.get("externalId")).and_then(Value::as_str).map(str::to_string)
        };
        let (old_ext, new_ext) = (external(old), external(new));
        if old_ext != new_ext {
            if let Some(e) = old_ext {
                tx.remove([self.ext_prefix(acct, &e), id.as_bytes().to_vec()].concat())?;
            }
            if let Some(e) = new_ext {
                tx.insert([self.ext_prefix(acct, &e), id.as_bytes().to_vec()].concat(), &[])?;
            }
        }
        let record = self.record_key(acct, id);
        match new {
            Some(doc) => tx.insert(record, encode(doc))?,
            None => tx.remove(record)?,
        };
        Ok(())
    }

    /// The id holding `name` (case-insensitively), if any.
    pub fn id_by_name(&self, store: &Store, acct: AccountId, name: &str) -> StoreResult<Option<String>> {
        let Some(id) = store.tree().get(self.name_key(acct, name))? else { return Ok(None) };
        String::from_utf8(id.to_vec()).map(Some).map_err(|_| StoreError::Corrupt("name index".into()))
    }

    /// The ids whose externalId is exactly `external_id` (externalId is caseExact and not unique).
    pub fn ids_by_external_id(
        &self,
        store: &Store,
        acct: AccountId,
        external_id: &str,
    ) -> StoreResult<Vec<String>> {
        store
            .tree()
            .scan_prefix(self.ext_prefix(acct, external_id))
            .map(|item| Ok(trailing_id(&item?.0).to_string()))
            .collect()
    }
}

impl Family {
    /// Problems between this family's records and its indexes in one account (empty when consistent).
    pub(crate) fn verify(
        &self,
        store: &Store,
        acct: AccountId,
        problems: &mut Vec<String>,
    ) -> StoreResult<usize> {
        let mut records = 0;
        for item in store.tree().scan_prefix(self.record_prefix(acct)) {
            let (key, bytes) = item?;
            let doc: Value = decode(&bytes)?;
            let id = super::keys::suffix(&key, false).to_string();
            records += 1;
            if doc.get("id").and_then(Value::as_str) != Some(id.as_str()) {
                problems.push(format!("{} {id}: the document's id differs", self.kind.name()));
            }
            if let Some(name) = self.name_of(&doc)
                && let holder = self.id_by_name(store, acct, name)?
                && holder.as_deref() != Some(id.as_str())
            {
                let held = match &holder {
                    Some(other) => self.get(store, acct, other)?,
                    None => None,
                };
                match (holder, held.as_ref().and_then(|d| self.name_of(d))) {
                    (Some(other), Some(held)) if fold(held) == fold(name) => problems.push(format!(
                        "{} {id}: {} '{name}' collides with '{held}' of {other} (equal once prepared, \
                         RFC 8265); rename one of them",
                        self.kind.name(),
                        self.name_attr
                    )),
                    _ => problems.push(format!(
                        "{} {id}: {} '{name}' is not indexed to it",
                        self.kind.name(),
                        self.name_attr
                    )),
                }
            }
            if let Some(ext) = doc.get("externalId").and_then(Value::as_str)
                && !self.ids_by_external_id(store, acct, ext)?.contains(&id)
            {
                problems.push(format!("{} {id}: externalId '{ext}' is not indexed", self.kind.name()));
            }
        }
        for item in store.tree().scan_prefix(prefix(self.name_index, acct)) {
            let (key, id) = item?;
            let id = String::from_utf8_lossy(&id).into_owned();
            let name = super::keys::suffix(&key, false);
            match self.get(store, acct, &id)? {
                Some(doc) if self.name_of(&doc).map(fold).as_deref() == Some(name) => {}
                _ => problems.push(format!(
                    "{} index entry '{name}' points to {id}, which does not hold it",
                    self.name_attr
                )),
            }
        }
        for item in store.tree().scan_prefix(prefix(self.ext_index, acct)) {
            let (key, _) = item?;
            let id = trailing_id(&key).to_string();
            if self.get(store, acct, &id)?.is_none() {
                problems.push(format!("externalId index entry points to missing {} {id}", self.kind.name()));
            }
        }
        if records != store.count(acct, self.kind) {
            problems.push(format!(
                "{} count {} but {records} records",
                self.kind.name(),
                store.count(acct, self.kind)
            ));
        }
        Ok(records)
    }
}

/// The marker of the unique-name indexes' key form: absent in stores written before names were compared in
/// their RFC 8265 form (lower-casing only).
const NAME_INDEX_LAYOUT: &[u8] = b"name-index";
const NAME_INDEX_FORM: &[u8] = b"rfc8265-username-case-mapped";

impl Store {
    /// Rebuilds the unique-name indexes of a store written with another comparison form, once. Names that
    /// compare equal in the new form are never merged: the oldest resource keeps the index entry, and each
    /// collision is logged (and reported by `usersync verify`) for an admin to rename one of them. Returns
    /// the collisions.
    pub fn migrate_name_indexes(&self) -> StoreResult<Vec<String>> {
        let marker = super::keys::global(kind::LAYOUT, NAME_INDEX_LAYOUT);
        if self.tree().get(&marker)?.as_deref() == Some(NAME_INDEX_FORM) {
            return Ok(Vec::new());
        }
        let mut collisions = Vec::new();
        for account in self.accounts()? {
            for family in [&USERS, &GROUPS] {
                collisions.extend(family.rebuild_name_index(self, account.id)?);
            }
        }
        for collision in &collisions {
            log::warn!("{collision}");
        }
        self.transact(|tx| tx.insert(marker.as_slice(), NAME_INDEX_FORM))?;
        self.durable_blocking()?;
        Ok(collisions)
    }
}

impl Family {
    /// Replaces the account's name index with one built from the records, in the current key form.
    fn rebuild_name_index(&self, store: &Store, acct: AccountId) -> StoreResult<Vec<String>> {
        // Records are in id order, and ids (UUIDv7) in creation order: the first holder is the oldest.
        let mut holders: std::collections::BTreeMap<String, (String, String)> = Default::default();
        let mut collisions = Vec::new();
        for item in store.tree().scan_prefix(self.record_prefix(acct)) {
            let doc: Value = decode(&item?.1)?;
            let (Some(id), Some(name)) = (doc.get("id").and_then(Value::as_str), self.name_of(&doc)) else {
                continue;
            };
            match holders.get(&fold(name)) {
                Some((holder, held)) => collisions.push(format!(
                    "{} {id}: {} '{name}' equals '{held}' of {holder} once prepared (RFC 8265); it is not \
                     indexed, rename one of them",
                    self.kind.name(),
                    self.name_attr
                )),
                None => {
                    holders.insert(fold(name), (id.to_string(), name.to_string()));
                }
            }
        }
        let stale: Vec<sled::IVec> =
            store.tree().scan_prefix(prefix(self.name_index, acct)).keys().collect::<Result<_, _>>()?;
        store.transact(|tx| {
            for key in &stale {
                tx.remove(key)?;
            }
            for (name, (id, _)) in &holders {
                tx.insert(key(self.name_index, acct, &[name.as_bytes()]), id.as_bytes())?;
            }
            Ok(())
        })?;
        Ok(collisions)
    }
}

/// The operations every resource type has, for callers that serve both alike.
impl Store {
    pub fn create(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        input: &Normalized,
        actor: &Actor,
    ) -> StoreResult<Value> {
        match schema.kind {
            ResourceKind::User => self.create_user(acct, schema, input, actor),
            ResourceKind::Group => Ok(self.create_group(acct, schema, input, actor)?.0),
        }
    }

    /// A resource's stored JSON, undecoded.
    pub fn resource_bytes(
        &self,
        acct: AccountId,
        kind: ResourceKind,
        id: &str,
    ) -> StoreResult<Option<sled::IVec>> {
        if super::check_id(kind, id).is_err() {
            return Ok(None);
        }
        Ok(self.tree().get(family(kind).record_key(acct, id))?)
    }

    pub fn resource(&self, acct: AccountId, kind: ResourceKind, id: &str) -> StoreResult<Option<Value>> {
        match kind {
            ResourceKind::User => self.user(acct, id),
            ResourceKind::Group => self.group(acct, id),
        }
    }

    pub fn replace(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        id: &str,
        input: &Normalized,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<Value> {
        match schema.kind {
            ResourceKind::User => self.replace_user(acct, schema, id, input, if_match, actor),
            ResourceKind::Group => Ok(self.replace_group(acct, schema, id, input, if_match, actor)?.0),
        }
    }

    pub fn patch(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        id: &str,
        ops: &[Operation],
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<Value> {
        self.patch_within(acct, schema, id, ops, PatchLimits::default(), if_match, actor)
    }

    /// [`Store::patch`] under `limits`.
    #[allow(clippy::too_many_arguments)]
    pub fn patch_within(
        &self,
        acct: AccountId,
        schema: &ResourceSchema,
        id: &str,
        ops: &[Operation],
        limits: PatchLimits,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<Value> {
        match schema.kind {
            ResourceKind::User => self.patch_user_within(acct, schema, id, ops, limits, if_match, actor),
            ResourceKind::Group => {
                Ok(self.patch_group_within(acct, schema, id, ops, limits, if_match, actor)?.0)
            }
        }
    }

    pub fn delete(
        &self,
        acct: AccountId,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<()> {
        match kind {
            ResourceKind::User => self.delete_user(acct, id, if_match, actor),
            ResourceKind::Group => self.delete_group(acct, id, if_match, actor),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::resource::normalize;
    use crate::scim::schema::Registry;
    use crate::store::testing::temp_store;

    /// Writes a user as a store of the lower-casing era held it: the record and a lower-cased index key.
    fn old_style_user(store: &Store, acct: AccountId, id: &str, user_name: &str) {
        let doc = json!({"schemas": [], "id": id, "userName": user_name, "meta": {}});
        store
            .transact(|tx| {
                tx.insert(USERS.record_key(acct, id), encode(&doc))?;
                tx.insert(key(kind::USER_NAME, acct, &[user_name.to_lowercase().as_bytes()]), id.as_bytes())
            })
            .unwrap();
    }

    #[test]
    fn an_old_store_s_name_index_is_rebuilt_and_collisions_are_reported_never_merged() {
        let (store, _dir) = temp_store();
        let acct = store.ensure_account("default").unwrap().0.id;
        let schema = Registry::standard().resource(ResourceKind::User).clone();
        let first = store
            .create_user(
                acct,
                &schema,
                &normalize(&schema, &json!({"userName": "jos\u{e9}"})).unwrap(),
                &Actor::engine(),
            )
            .unwrap();
        let twin = "ffffffff-0000-7000-8000-00000000000b";
        old_style_user(&store, acct, twin, "jose\u{301}");
        let full_width = "ffffffff-0000-7000-8000-00000000000c";
        old_style_user(&store, acct, full_width, "ＡＬＩＣＥ");
        let marker = super::super::keys::global(kind::LAYOUT, NAME_INDEX_LAYOUT);
        store.transact(|tx| tx.remove(marker.as_slice())).unwrap();

        let collisions = store.migrate_name_indexes().unwrap();
        assert_eq!(collisions.len(), 1, "{collisions:?}");
        assert!(collisions[0].contains(twin), "{}", collisions[0]);
        let first_id = first["id"].as_str().unwrap();
        assert_eq!(USERS.id_by_name(&store, acct, "JOSE\u{301}").unwrap().as_deref(), Some(first_id));
        assert_eq!(USERS.id_by_name(&store, acct, "alice").unwrap().as_deref(), Some(full_width));
        assert!(store.user(acct, twin).unwrap().is_some(), "the colliding user is kept as it was");
        let mut problems = Vec::new();
        USERS.verify(&store, acct, &mut problems).unwrap();
        assert!(problems.iter().any(|p| p.contains(twin) && p.contains("collides")), "{problems:?}");
        assert!(store.migrate_name_indexes().unwrap().is_empty(), "done once");
    }
}
