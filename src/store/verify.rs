//! A consistency check of the whole store: every index agrees with the records it indexes, every
//! membership has its reverse entry, and every product's seat counter is the number of users holding it
//! and within its seats. Crash tests run it after a `kill -9`, the engine's tests after every step.

use std::collections::BTreeMap;

use super::keys::{AccountId, SEP, account_of, kind};
use super::resources::{GROUPS, USERS};
use super::{Store, StoreResult};

impl Store {
    /// Everything that is inconsistent, in words; empty when the store is sound.
    pub fn verify(&self) -> StoreResult<Vec<String>> {
        let mut problems = Vec::new();
        for account in self.accounts()? {
            USERS.verify(self, account.id, &mut problems)?;
            GROUPS.verify(self, account.id, &mut problems)?;
            self.verify_seats(account.id, &mut problems)?;
            self.verify_mail_owed(account.id, &mut problems)?;
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

    /// Counts, for every product, the users actually holding it, and compares with `used` and `seats`.
    fn verify_seats(&self, acct: AccountId, problems: &mut Vec<String>) -> StoreResult<()> {
        let mut holders: BTreeMap<String, u64> = BTreeMap::new();
        for (_, entitlement) in self.entitlements(acct)? {
            for p in entitlement.bundle.iter().flat_map(|b| &b.products) {
                *holders.entry(p.clone()).or_default() += 1;
            }
        }
        for (product, used) in self.products(acct)? {
            let held = holders.remove(&product.id).unwrap_or(0);
            let id = &product.id;
            if held != used {
                problems.push(format!(
                    "account {}: product {id} counts {used} used, {held} users hold it",
                    acct.0
                ));
            }
            if let Some(seats) = product.seats
                && held > seats
            {
                problems.push(format!(
                    "account {}: product {id} is held by {held} users, has {seats} seats",
                    acct.0
                ));
            }
        }
        for (id, held) in holders {
            problems
                .push(format!("account {}: {held} users hold product {id}, which does not exist", acct.0));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::codec::encode;
    use crate::store::keys::{key, kind};
    use crate::store::sync::{Bundle, Entitlement, EntitlementState, Product, used_key};
    use crate::store::testing::temp_store;
    use crate::store::{Actor, Store};

    fn hold(store: &Store, acct: crate::store::AccountId, uid: &str, products: &[&str]) {
        let bundle =
            Bundle { products: products.iter().map(|p| p.to_string()).collect(), ..Bundle::default() };
        let entitlement = Entitlement {
            state: EntitlementState::Entitled,
            rule: None,
            matched_rules: vec![],
            bundle: Some(bundle),
            login: None,
            user_name: None,
            updated: String::new(),
        };
        store.tree().insert(key(kind::ENTITLEMENT, acct, &[uid.as_bytes()]), encode(&entitlement)).unwrap();
    }

    #[test]
    fn seat_counters_are_checked_against_the_holders() {
        let (store, _dir) = temp_store();
        let acct = store.ensure_account("default").unwrap().0.id;
        let product =
            Product { id: "meeting".into(), name: "Meeting".into(), seats: Some(1), requires: vec![] };
        store.put_product(acct, &product, &Actor::engine()).unwrap();
        assert_eq!(store.verify().unwrap(), Vec::<String>::new());
        hold(&store, acct, "u1", &["meeting"]);
        store.tree().insert(used_key(acct, "meeting"), encode(&1u64)).unwrap();
        assert_eq!(store.verify().unwrap(), Vec::<String>::new(), "one holder, counted");
        hold(&store, acct, "u2", &["meeting", "fax"]);
        let n = acct.0;
        assert_eq!(
            store.verify().unwrap(),
            [
                format!("account {n}: product meeting counts 1 used, 2 users hold it"),
                format!("account {n}: product meeting is held by 2 users, has 1 seats"),
                format!("account {n}: 1 users hold product fax, which does not exist"),
            ]
        );
    }
}
