//! A consistency check of the whole store: every index agrees with the records it indexes and every
//! membership has its reverse entry. Crash tests run it after a `kill -9`.

use super::keys::{SEP, account_of, kind};
use super::resources::{GROUPS, USERS};
use super::{Store, StoreResult};

impl Store {
    /// Everything that is inconsistent, in words; empty when the store is sound.
    pub fn verify(&self) -> StoreResult<Vec<String>> {
        let mut problems = Vec::new();
        for account in self.accounts()? {
            USERS.verify(self, account.id, &mut problems)?;
            GROUPS.verify(self, account.id, &mut problems)?;
        }
        for item in self.tree().scan_prefix([kind::MEMBER]) {
            let (key, _) = item?;
            let Some(acct) = account_of(&key) else { continue };
            let gid = String::from_utf8_lossy(&key[5..5 + super::keys::ID_LEN]).into_owned();
            let mid = String::from_utf8_lossy(&key[5 + super::keys::ID_LEN..]).into_owned();
            if !self.groups_of(acct, &mid)?.contains(&gid) {
                problems.push(format!("membership {gid} -> {mid} has no reverse entry"));
            }
            if self.group(acct, &gid)?.is_none() {
                problems.push(format!("membership {gid} -> {mid} belongs to a missing group"));
            }
        }
        for item in self.tree().scan_prefix([kind::MEMBER_OF]) {
            let (key, _) = item?;
            let Some(acct) = account_of(&key) else { continue };
            let Some(sep) = key.iter().rposition(|&b| b == SEP) else { continue };
            let mid = String::from_utf8_lossy(&key[5..sep]).into_owned();
            let gid = String::from_utf8_lossy(&key[sep + 1..]).into_owned();
            if self.members_among(acct, &gid, std::slice::from_ref(&mid))?.is_empty() {
                problems.push(format!("reverse membership {mid} -> {gid} has no membership"));
            }
        }
        Ok(problems)
    }
}
