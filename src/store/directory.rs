//! The directory as an admin looks it up: a user by id or userName (the one resolver every admin endpoint
//! that takes a user uses), and groups and users found by name through their case-insensitive name indexes,
//! without reading the records of those that do not match.

use serde_json::Value;

use super::keys::{AccountId, child_prefix, fold, kind, prefix};
use super::resources::{GROUPS, USERS};
use super::{Store, StoreError, StoreResult};

/// A directory entry found by name: its id and its name as the index holds it (folded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameMatch {
    pub id: String,
    pub folded_name: String,
}

impl Store {
    /// The user `id_or_name` names: a user id first, else a userName (case-insensitively). Returns the
    /// user's id and record.
    pub fn resolve_user(&self, acct: AccountId, id_or_name: &str) -> StoreResult<Option<(String, Value)>> {
        if let Some(user) = self.user(acct, id_or_name)? {
            return Ok(Some((id_or_name.to_string(), user)));
        }
        let Some(uid) = USERS.id_by_name(self, acct, id_or_name)? else { return Ok(None) };
        Ok(self.user(acct, &uid)?.map(|user| (uid, user)))
    }

    /// The id of the group `id_or_name` names: a group id first, else a displayName (case-insensitively).
    pub fn resolve_group(&self, acct: AccountId, id_or_name: &str) -> StoreResult<Option<String>> {
        if self.group(acct, id_or_name)?.is_some() {
            return Ok(Some(id_or_name.to_string()));
        }
        GROUPS.id_by_name(self, acct, id_or_name)
    }

    /// Groups whose displayName contains `search` (case-insensitively; all without one), in name order.
    pub fn find_groups(&self, acct: AccountId, search: Option<&str>) -> StoreResult<Vec<NameMatch>> {
        self.find_by_name(prefix(kind::GROUP_NAME, acct), search)
    }

    /// Users whose userName contains `search` (case-insensitively; all without one), in name order.
    pub fn find_users(&self, acct: AccountId, search: Option<&str>) -> StoreResult<Vec<NameMatch>> {
        self.find_by_name(prefix(kind::USER_NAME, acct), search)
    }

    fn find_by_name(&self, index: Vec<u8>, search: Option<&str>) -> StoreResult<Vec<NameMatch>> {
        let needle = search.map(fold);
        let mut found = Vec::new();
        for item in self.tree().scan_prefix(&index) {
            let (k, v) = item?;
            let name = std::str::from_utf8(&k[index.len()..])
                .map_err(|_| StoreError::Corrupt("name index".into()))?;
            if needle.as_deref().is_some_and(|n| !name.contains(n)) {
                continue;
            }
            let id = String::from_utf8(v.to_vec()).map_err(|_| StoreError::Corrupt("name index".into()))?;
            found.push(NameMatch { id, folded_name: name.to_string() });
        }
        Ok(found)
    }

    /// How many members the group has (one key per membership).
    pub fn member_count(&self, acct: AccountId, gid: &str) -> StoreResult<usize> {
        let start = child_prefix(kind::MEMBER, acct, gid);
        let mut n = 0;
        for item in self.tree().scan_prefix(&start) {
            item?;
            n += 1;
        }
        Ok(n)
    }
}
