//! Domain claims and their owners: `J acct domain` → the account's claim (its challenge, and when, how and
//! by whom it was verified), and `j domain` → the account that verified it, server-wide (one owner per
//! domain). The owner of a login's domain is the account that verified the domain or its closest parent;
//! the engine's transaction reads it (see `sync::apply`), so a verification takes effect at each user's
//! next evaluation and nowhere in the middle of one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::activity::record;
use super::codec::{decode, encode, get, tx_get};
use super::keys::{AccountId, global, key, kind, prefix, suffix};
use super::pending::mark_pending;
use super::sync::FailureReason;
use super::tx::Tx;
use super::{Actor, Store, StoreError, StoreResult, TxResult, abort};
use crate::clock::timestamp;

/// How a domain was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verification {
    /// The `_usersync.<domain>` TXT record held the challenge.
    Dns,
    /// The operator said so (operator API).
    Operator,
    /// `usersync domain verify` on a stopped store.
    Cli,
}

/// An account's claim of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainClaim {
    pub domain: String,
    /// What the `_usersync.<domain>` TXT record must hold.
    pub challenge: String,
    pub created: String,
    /// `None` while pending.
    pub verified_at: Option<String>,
    pub how: Option<Verification>,
    /// The actor who verified it (`admin:<token>`, `operator`, `cli`).
    pub verified_by: Option<String>,
}

impl DomainClaim {
    pub fn state(&self) -> &'static str {
        if self.verified_at.is_some() { "verified" } else { "pending" }
    }
}

/// `domain` and each of its parents with at least two labels, closest first: `a.b.example.com`,
/// `b.example.com`, `example.com`.
pub fn covering(domain: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(domain);
    std::iter::from_fn(move || {
        let current = next?;
        next = current.split_once('.').map(|(_, parent)| parent).filter(|p| p.contains('.'));
        Some(current)
    })
}

fn claim_key(acct: AccountId, domain: &str) -> Vec<u8> {
    key(kind::DOMAIN, acct, &[domain.as_bytes()])
}

fn owner_key(domain: &str) -> Vec<u8> {
    global(kind::DOMAIN_OWNER, domain.as_bytes())
}

/// A new challenge: 244 bits from the OS's generator.
fn new_challenge() -> String {
    format!("usersync-verification={}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The account that verified `domain` or its closest parent, and which of them it verified.
pub(crate) fn tx_owner(tx: &Tx<'_>, domain: &str) -> TxResult<Option<(String, AccountId)>> {
    for d in covering(domain) {
        if let Some(owner) = tx_get::<AccountId>(tx, &owner_key(d))? {
            return Ok(Some((d.to_string(), owner)));
        }
    }
    Ok(None)
}

impl Store {
    /// The 409 of a domain verified by another account, naming it.
    pub fn verified_elsewhere(&self, domain: &str, owner: AccountId) -> StoreError {
        let name = self.account_name(owner).ok().flatten().unwrap_or_else(|| format!("#{}", owner.0));
        StoreError::Conflict(format!("domain: '{domain}' is verified by account '{name}'"))
    }

    /// Claims `domain` (normalised by the caller); a claim the account already has is answered as it is
    /// (`false`). Refused when another account verified the domain or a parent of it.
    pub fn claim_domain(
        &self,
        acct: AccountId,
        domain: &str,
        actor: &Actor,
    ) -> StoreResult<(DomainClaim, bool)> {
        let now = self.now();
        let challenge = new_challenge();
        let ckey = claim_key(acct, domain);
        let result = self.transact(|tx| {
            if let Some(existing) = tx_get::<DomainClaim>(tx, &ckey)? {
                return Ok(Err((existing, false)));
            }
            if let Some((d, owner)) = tx_owner(tx, domain)?.filter(|(_, o)| *o != acct) {
                return Ok(Ok(Err((d, owner))));
            }
            let claim = DomainClaim {
                domain: domain.to_string(),
                challenge: challenge.clone(),
                created: timestamp(now),
                verified_at: None,
                how: None,
                verified_by: None,
            };
            tx.insert(&ckey, encode(&claim))?;
            record(tx, acct, now, actor, "domain.claimed", Some(domain), json!({"domain": domain}))?;
            Ok(Ok(Ok(claim)))
        })?;
        match result {
            Err(existing) => Ok(existing),
            Ok(Ok(claim)) => Ok((claim, true)),
            Ok(Err((d, owner))) => Err(self.verified_elsewhere(&d, owner)),
        }
    }

    pub fn domain_claim(&self, acct: AccountId, domain: &str) -> StoreResult<Option<DomainClaim>> {
        get(self.tree(), &claim_key(acct, domain))
    }

    /// The account's claims in domain order.
    pub fn domain_claims(&self, acct: AccountId) -> StoreResult<Vec<DomainClaim>> {
        self.tree().scan_prefix(prefix(kind::DOMAIN, acct)).map(|item| decode(&item?.1)).collect()
    }

    /// Every verified domain and the account that verified it.
    pub fn verified_domains(&self) -> StoreResult<BTreeMap<String, AccountId>> {
        let mut out = BTreeMap::new();
        for item in self.tree().scan_prefix([kind::DOMAIN_OWNER]) {
            let (k, v) = item?;
            let domain = String::from_utf8_lossy(k.get(1..).unwrap_or_default()).into_owned();
            out.insert(domain, decode(&v)?);
        }
        Ok(out)
    }

    /// Calls `f` with every user of every account.
    pub fn for_each_user(&self, mut f: impl FnMut(AccountId, &str, &serde_json::Value)) -> StoreResult<()> {
        for item in self.tree().scan_prefix([kind::USER]) {
            let (k, v) = item?;
            let Some(acct) = super::keys::account_of(&k) else { continue };
            let doc: serde_json::Value = decode(&v)?;
            f(acct, suffix(&k, false), &doc);
        }
        Ok(())
    }

    /// Marks `domain` verified by `acct` (claiming it if the account had not): the account owns it from
    /// this commit on. `affected` are the users of other accounts whose logins it now owns, found by the
    /// caller: each is marked for re-evaluation, and each of their accounts' activity gets a
    /// `domain.verified-elsewhere` entry, in the same transaction. Verifying again changes nothing; a
    /// domain (or parent) verified by another account is a 409 naming it.
    pub fn mark_domain_verified(
        &self,
        acct: AccountId,
        domain: &str,
        how: Verification,
        actor: &Actor,
        affected: &BTreeMap<AccountId, Vec<String>>,
    ) -> StoreResult<DomainClaim> {
        let now = self.now();
        let challenge = new_challenge();
        let ckey = claim_key(acct, domain);
        let mut names = BTreeMap::new();
        for other in affected.keys() {
            names.insert(*other, self.account_name(*other)?.unwrap_or_else(|| format!("#{}", other.0)));
        }
        let owner_name = self.account_name(acct)?.unwrap_or_default();
        let result = self.transact(|tx| {
            let claim = tx_get::<DomainClaim>(tx, &ckey)?;
            if let Some(claim) = claim.as_ref().filter(|c| c.verified_at.is_some()) {
                return Ok(Ok(claim.clone()));
            }
            if let Some((d, owner)) = tx_owner(tx, domain)?.filter(|(_, o)| *o != acct) {
                return Ok(Err((d, owner)));
            }
            let ts = timestamp(now);
            let claim = DomainClaim {
                verified_at: Some(ts.clone()),
                how: Some(how),
                verified_by: Some(actor.0.clone()),
                ..claim.unwrap_or_else(|| DomainClaim {
                    domain: domain.to_string(),
                    challenge: challenge.clone(),
                    created: ts.clone(),
                    verified_at: None,
                    how: None,
                    verified_by: None,
                })
            };
            tx.insert(&ckey, encode(&claim))?;
            tx.insert(owner_key(domain), encode(&acct))?;
            let mut elsewhere = Vec::new();
            for (other, users) in affected {
                for uid in users {
                    mark_pending(tx, *other, uid)?;
                }
                let name = names.get(other).cloned().unwrap_or_default();
                elsewhere.push(json!({"account": name, "users": users.len()}));
                let detail = json!({"domain": domain, "owner": owner_name, "users": users.len(),
                    "consequence": "these users fail existingAccount from their next evaluation on"});
                record(tx, *other, now, actor, "domain.verified-elsewhere", Some(domain), detail)?;
            }
            let detail = json!({"domain": domain, "how": how, "otherAccounts": elsewhere});
            record(tx, acct, now, actor, "domain.verified", Some(domain), detail)?;
            Ok(Ok(claim))
        })?;
        result.map_err(|(d, owner)| self.verified_elsewhere(&d, owner))
    }

    /// Frees the domains a deleted account verified (inside its exclusive deletion transaction, so the
    /// scans are current): the other accounts' users failing `existingAccount` are re-evaluated.
    pub(crate) fn drop_account_domains(&self, tx: &Tx<'_>, acct: AccountId) -> TxResult<()> {
        let owned: Vec<String> = match self.verified_domains() {
            Ok(all) => all.into_iter().filter(|(_, owner)| *owner == acct).map(|(d, _)| d).collect(),
            Err(e) => return abort(e),
        };
        if owned.is_empty() {
            return Ok(());
        }
        for domain in &owned {
            tx.remove(owner_key(domain))?;
        }
        let waiting = match self.waiting_for_domains(acct) {
            Ok(w) => w,
            Err(e) => return abort(e),
        };
        for (other, uid) in &waiting {
            mark_pending(tx, *other, uid)?;
        }
        Ok(())
    }

    /// The users of accounts other than `acct` failing `existingAccount`.
    fn waiting_for_domains(&self, acct: AccountId) -> StoreResult<Vec<(AccountId, String)>> {
        let mut waiting = Vec::new();
        for account in self.accounts()?.into_iter().filter(|a| a.id != acct) {
            for (uid, failure) in self.stored_failures(account.id)? {
                if failure.reason == FailureReason::ExistingAccount {
                    waiting.push((account.id, uid));
                }
            }
        }
        Ok(waiting)
    }

    /// Removes the account's claim of `domain` (404 without one). If the account had verified it, it
    /// owns it no more, and every user of another account failing `existingAccount` is re-evaluated.
    pub fn remove_domain(&self, acct: AccountId, domain: &str, actor: &Actor) -> StoreResult<()> {
        let waiting = self.waiting_for_domains(acct)?;
        let now = self.now();
        let ckey = claim_key(acct, domain);
        let okey = owner_key(domain);
        self.transact(|tx| {
            let Some(claim) = tx_get::<DomainClaim>(tx, &ckey)? else {
                return abort(StoreError::NotFound(format!("domain {domain}")));
            };
            tx.remove(&ckey)?;
            let owned = tx_get::<AccountId>(tx, &okey)? == Some(acct);
            if owned {
                tx.remove(&okey)?;
                for (other, uid) in &waiting {
                    mark_pending(tx, *other, uid)?;
                }
            }
            let detail = json!({"domain": domain, "wasVerified": claim.verified_at.is_some()});
            record(tx, acct, now, actor, "domain.removed", Some(domain), detail)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::temp_store;

    #[test]
    fn covering_walks_up_to_two_labels() {
        assert_eq!(
            covering("a.b.example.com").collect::<Vec<_>>(),
            ["a.b.example.com", "b.example.com", "example.com"]
        );
        assert_eq!(covering("example.com").collect::<Vec<_>>(), ["example.com"]);
    }

    #[test]
    fn one_account_owns_a_verified_domain_and_its_subdomains() {
        let (store, _dir) = temp_store();
        let a = store.ensure_account("a").unwrap().0.id;
        let b = store.create_account("b").unwrap().id;
        let actor = Actor("admin:test".into());
        let (claim, created) = store.claim_domain(a, "example.com", &actor).unwrap();
        assert!(created && claim.challenge.starts_with("usersync-verification="));
        assert_eq!(store.claim_domain(a, "example.com", &actor).unwrap(), (claim.clone(), false));
        store.claim_domain(b, "example.com", &actor).unwrap();
        let none = BTreeMap::new();
        let verified =
            store.mark_domain_verified(a, "example.com", Verification::Dns, &actor, &none).unwrap();
        assert_eq!((verified.state(), verified.challenge.as_str()), ("verified", claim.challenge.as_str()));
        for (acct, domain) in [(b, "example.com"), (b, "eu.example.com")] {
            let refused = store.mark_domain_verified(acct, domain, Verification::Operator, &actor, &none);
            assert!(matches!(refused, Err(StoreError::Conflict(m)) if m.contains("verified by account 'a'")));
        }
        assert!(matches!(store.claim_domain(b, "eu.example.com", &actor), Err(StoreError::Conflict(_))));
        assert_eq!(store.verified_domains().unwrap(), BTreeMap::from([("example.com".to_string(), a)]));
        store.remove_domain(a, "example.com", &actor).unwrap();
        assert!(store.verified_domains().unwrap().is_empty());
        store.mark_domain_verified(b, "example.com", Verification::Cli, &actor, &none).unwrap();
        assert!(matches!(store.remove_domain(a, "example.com", &actor), Err(StoreError::NotFound(_))));
        // a deleted account's domains are free again
        store.delete_account(b).unwrap();
        assert!(store.verified_domains().unwrap().is_empty());
        store.claim_domain(a, "example.com", &actor).unwrap();
    }
}
