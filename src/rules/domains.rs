//! Verified domains: what a domain is (normalised, strict), which domains a user's logins are in, and the
//! claim → challenge → verification flow an account (DNS TXT) or the operator goes through. Verifying a
//! domain marks the users of other accounts whose logins it now owns for re-evaluation: they fail
//! `existingAccount` on their next evaluation, decided in the same transaction that would entitle them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::welcome::address_of;
use crate::store::domains::{DomainClaim, Verification, covering};
use crate::store::{AccountId, Actor, Store, StoreError, StoreResult};

/// The longest domain name DNS carries, without its trailing dot.
const MAX_DOMAIN: usize = 253;

/// The name of the TXT record that proves a domain: `_usersync.<domain>`.
pub fn challenge_name(domain: &str) -> String {
    format!("_usersync.{domain}")
}

/// `domain` in the one form usersync stores and compares: lower case, internationalised labels in
/// punycode (`bücher.example` → `xn--bcher-kva.example`), no trailing dot. Anything that is not a
/// registrable host name of at least two labels is refused, saying why.
pub fn normalise_domain(input: &str) -> Result<String, String> {
    if input.is_empty() {
        return Err("must not be empty".into());
    }
    if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("'{input}' contains white space"));
    }
    if input.contains(['@', '/', ':', '*']) {
        return Err(format!("'{input}' is not a domain name (a bare name such as example.com)"));
    }
    let bare = input.strip_suffix('.').unwrap_or(input);
    let ascii =
        idna::domain_to_ascii_strict(bare).map_err(|_| format!("'{input}' is not a valid domain name"))?;
    if ascii.len() > MAX_DOMAIN {
        return Err(format!("'{input}' is longer than {MAX_DOMAIN} characters"));
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err(format!("'{input}' needs at least two labels (example.com, not com)"));
    }
    for label in &labels {
        let ldh = label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if label.is_empty() || label.len() > 63 || !ldh || label.starts_with('-') || label.ends_with('-') {
            return Err(format!("'{input}' has an invalid label '{label}'"));
        }
    }
    if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!("'{input}' is an address, not a domain name"));
    }
    Ok(ascii)
}

/// The domains a user's logins are in: the part after the last `@` of the userName and of the primary
/// email (the one marked primary, else the first, as welcome messages use), normalised, each once.
/// Logins without a valid domain contribute none.
pub fn login_domains(user: &Value) -> Vec<String> {
    let user_name = user.get("userName").and_then(Value::as_str);
    let mut domains: Vec<String> = [user_name, address_of(user)]
        .into_iter()
        .flatten()
        .filter_map(|login| login.rsplit_once('@'))
        .filter_map(|(_, domain)| normalise_domain(domain).ok())
        .collect();
    domains.dedup();
    domains
}

/// The account that owns `domain` given the verified domains: the one that verified it or its closest
/// parent, with the domain it verified.
pub fn owner_of<'d>(domain: &'d str, verified: &BTreeMap<String, AccountId>) -> Option<(&'d str, AccountId)> {
    covering(domain).find_map(|d| verified.get(d).map(|owner| (d, *owner)))
}

/// Why a domain operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The domain given is not a domain name: the field and why.
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    /// The DNS record does not prove the claim (absent, or without the challenge): what was found.
    #[error("{0}")]
    NotProven(String),
    /// The resolver could not answer (timeout, server failure, no resolver configured).
    #[error("{0}")]
    Unresolved(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The domain of a request, normalised, or the field error naming `field`.
pub fn parse_domain(field: &'static str, input: &str) -> Result<String, DomainError> {
    normalise_domain(input).map_err(|why| DomainError::Invalid(field, why))
}

/// Claims `domain` for the account (idempotent: a second claim answers the first, with its challenge);
/// `true` when the claim is new.
pub fn claim_domain(
    store: &Store,
    acct: AccountId,
    domain: &str,
    actor: &Actor,
) -> Result<(DomainClaim, bool), DomainError> {
    let domain = parse_domain("domain", domain)?;
    Ok(store.claim_domain(acct, &domain, actor)?)
}

/// What a TXT look-up of `_usersync.<domain>` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxtAnswer {
    /// The strings of every TXT record at the name (each record's strings joined, as RFC 7208 does).
    Records(Vec<String>),
    /// The name does not exist or holds no TXT record.
    NoRecord,
}

/// Checks the claim's challenge against what DNS answered; marks the domain verified when one of the TXT
/// records holds it exactly.
pub fn verify_with_dns(
    store: &Store,
    acct: AccountId,
    domain: &str,
    answer: &TxtAnswer,
    actor: &Actor,
) -> Result<DomainClaim, DomainError> {
    let domain = parse_domain("domain", domain)?;
    let claim = store.domain_claim(acct, &domain)?.ok_or_else(|| {
        StoreError::NotFound(format!("a claim of the domain '{domain}' (POST /domains first)"))
    })?;
    if claim.verified_at.is_some() {
        return Ok(claim);
    }
    let name = challenge_name(&domain);
    match answer {
        TxtAnswer::NoRecord => {
            return Err(DomainError::NotProven(format!(
                "there is no TXT record at {name}; publish one holding '{}'",
                claim.challenge
            )));
        }
        TxtAnswer::Records(found) if !found.iter().any(|t| t.trim() == claim.challenge) => {
            let shown: Vec<String> = found.iter().take(5).map(|t| format!("'{t}'")).collect();
            return Err(DomainError::NotProven(format!(
                "the TXT records at {name} ({}) do not hold the challenge '{}'",
                shown.join(", "),
                claim.challenge
            )));
        }
        TxtAnswer::Records(_) => {}
    }
    mark_domain_verified(store, acct, &domain, Verification::Dns, actor)
}

/// Marks `domain` verified for the account without a DNS check (the operator's word, or the command
/// line on a stopped store); claims it first if the account had not. Refused (409) when another account
/// verified the domain or a parent of it. The users of other accounts whose logins the account now owns
/// are marked for re-evaluation in the same transaction, and both sides' activity says so.
pub fn mark_domain_verified(
    store: &Store,
    acct: AccountId,
    domain: &str,
    how: Verification,
    actor: &Actor,
) -> Result<DomainClaim, DomainError> {
    let domain = parse_domain("domain", domain)?;
    let mut verified = store.verified_domains()?;
    if let Some((held, owner)) = owner_of(&domain, &verified).filter(|(_, o)| *o != acct) {
        return Err(DomainError::Store(store.verified_elsewhere(held, owner)));
    }
    verified.insert(domain.clone(), acct);
    // Read outside the transaction (a scan cannot be checked at commit): a user written meanwhile is
    // marked pending by its own write, and the transaction that would entitle them reads the owner.
    let mut affected: BTreeMap<AccountId, Vec<String>> = BTreeMap::new();
    store.for_each_user(|user_acct, uid, user| {
        if user_acct == acct {
            return;
        }
        let owned = login_domains(user).iter().any(|d| {
            owner_of(d, &verified).is_some_and(|(_, o)| o == acct)
                && covering(d).any(|c| c == domain.as_str())
        });
        if owned {
            affected.entry(user_acct).or_default().push(uid.to_string());
        }
    })?;
    Ok(store.mark_domain_verified(acct, &domain, how, actor, &affected)?)
}

/// Removes the account's claim of `domain`. A verified domain stops being the account's: the users of
/// other accounts failing `existingAccount` are re-evaluated.
pub fn remove_domain(store: &Store, acct: AccountId, domain: &str, actor: &Actor) -> Result<(), DomainError> {
    let domain = parse_domain("domain", domain)?;
    store.remove_domain(acct, &domain, actor)?;
    Ok(())
}

/// Removes every claim of the account (for an account being deleted: its verified domains are free
/// again, and the other accounts' users waiting for them are re-evaluated).
pub fn remove_all_domains(store: &Store, acct: AccountId, actor: &Actor) -> StoreResult<usize> {
    let claims = store.domain_claims(acct)?;
    for claim in &claims {
        store.remove_domain(acct, &claim.domain, actor)?;
    }
    Ok(claims.len())
}

/// Every domain claim of the account, in domain order.
pub fn domains_of(store: &Store, acct: AccountId) -> StoreResult<Vec<DomainClaim>> {
    store.domain_claims(acct)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn domains_are_normalised_or_refused_saying_why() {
        assert_eq!(normalise_domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(normalise_domain("bücher.example").unwrap(), "xn--bcher-kva.example");
        assert_eq!(normalise_domain("eu.mail.example.com").unwrap(), "eu.mail.example.com");
        for bad in [
            "",
            "com",
            "exa mple.com",
            "user@example.com",
            "https://example.com",
            "*.example.com",
            "-a.example.com",
            "a..example.com",
            "10.0.0.1",
            "ex_ample.com",
            "example.com..",
        ] {
            assert!(normalise_domain(bad).is_err(), "{bad:?} is refused");
        }
        let long = normalise_domain(&format!("{}.com", "a".repeat(64))).unwrap_err();
        assert!(long.contains("is not a valid domain name"), "{long}");
    }

    #[test]
    fn a_users_login_domains_come_from_the_user_name_and_the_primary_email() {
        let user = json!({"userName": "Ann@Example.com",
            "emails": [{"value": "ann@other.org"}, {"value": "ann@Mail.Example.com", "primary": true}]});
        assert_eq!(login_domains(&user), ["example.com", "mail.example.com"]);
        let same = json!({"userName": "bob@example.com", "emails": [{"value": "BOB@EXAMPLE.COM"}]});
        assert_eq!(login_domains(&same), ["example.com"]);
        assert!(login_domains(&json!({"userName": "carol"})).is_empty());
        assert!(login_domains(&json!({"userName": "x@not a domain"})).is_empty());
    }

    #[test]
    fn the_closest_verified_parent_owns_a_domain() {
        let verified = BTreeMap::from([
            ("example.com".to_string(), AccountId(1)),
            ("eu.example.com".to_string(), AccountId(2)),
        ]);
        assert_eq!(owner_of("example.com", &verified), Some(("example.com", AccountId(1))));
        assert_eq!(owner_of("us.example.com", &verified), Some(("example.com", AccountId(1))));
        assert_eq!(owner_of("mail.eu.example.com", &verified), Some(("eu.example.com", AccountId(2))));
        assert_eq!(owner_of("example.org", &verified), None);
        assert_eq!(owner_of("notexample.com", &verified), None);
    }
}
