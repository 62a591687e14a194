//! Accounts (tenants) and their bearer tokens. A token is stored only as its SHA-256 hash; it resolves to
//! exactly one account and kind, and may expire. An account can be suspended (its tokens refused, its data
//! kept) and deleted with every key it owns, while the server runs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::codec::{decode, encode, get, tx_get};
use super::keys::{AccountId, global, key, kind, prefix};
use super::{Actor, Store, StoreError, StoreResult, abort, activity};
use crate::clock::timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub created: String,
    /// Since when the operator has the account suspended: its tokens are refused with 403, its data kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
    /// Since when the account is being deleted (a deletion a crash interrupted is finished at start-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting: Option<String>,
}

/// An account's figures, as the operator lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountFigures {
    pub users: usize,
    pub groups: usize,
    pub entitled_users: usize,
    pub failures: usize,
    /// The minute a SCIM token of the account was last used, if ever.
    pub last_scim_request: Option<String>,
}

/// What a presented secret turned out to be.
#[derive(Debug, Clone)]
pub enum Authentication {
    Valid(Arc<TokenInfo>),
    /// No token has this secret.
    Unknown,
    /// The token's `expiresAt` has passed.
    Expired(Arc<TokenInfo>),
    /// The token's account is suspended (its name given).
    Suspended(Arc<TokenInfo>, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// May call `/scim/v2`.
    Scim,
    /// May call `/admin/v1`.
    Admin,
}

impl std::str::FromStr for TokenKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "scim" => Ok(TokenKind::Scim),
            "admin" => Ok(TokenKind::Admin),
            other => Err(format!("unknown token kind '{other}' (scim, admin)")),
        }
    }
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Scim => "scim",
            TokenKind::Admin => "admin",
        }
    }
}

/// A token as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub account: AccountId,
    pub kind: TokenKind,
    pub name: String,
    pub created: String,
    /// When the token stops working (a timestamp as `created`); `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// SHA-256 of the secret; never shown.
    #[serde(with = "hex_bytes")]
    pub(crate) hash: Vec<u8>,
}

/// Tokens authenticated since start, by the hash of their secret, the accounts they belong to, and how
/// many revocations and account changes there have been (a lookup that raced one does not fill the cache).
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: HashMap<Vec<u8>, Arc<TokenInfo>>,
    accounts: HashMap<AccountId, Arc<Account>>,
    /// Accounts being deleted or deleted since start: no transaction may write a record of theirs.
    removed: HashSet<AccountId>,
    revocations: u64,
    /// The minute each token was last written as used, so it is written at most once a minute.
    last_used: HashMap<String, String>,
}

/// `2026-12-02T04:58Z`: when a token was last used, to the minute.
fn minute(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%Y-%m-%dT%H:%MZ").to_string()
}

impl TokenInfo {
    /// The actor name activity entries record for this token.
    pub fn actor(&self) -> Actor {
        Actor(format!("{}:{}", self.kind.as_str(), self.name))
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        (0..text.len())
            .step_by(2)
            .map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| serde::de::Error::custom("bad hex"))
    }
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A new random secret: 244 bits from the OS's generator, prefixed so it is recognisable in a config file.
fn new_secret() -> String {
    format!("us_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

impl Store {
    pub fn account(&self, name: &str) -> StoreResult<Option<Account>> {
        let Some(id) = self.tree().get(global(kind::ACCOUNT_BY_NAME, name.as_bytes()))? else {
            return Ok(None);
        };
        let id = AccountId(u32::from_be_bytes(
            id.as_ref().try_into().map_err(|_| StoreError::Corrupt("account id".into()))?,
        ));
        self.account_by_id(id)
    }

    pub fn account_by_id(&self, id: AccountId) -> StoreResult<Option<Account>> {
        get(self.tree(), &prefix(kind::ACCOUNT, id))
    }

    pub fn accounts(&self) -> StoreResult<Vec<Account>> {
        self.tree().scan_prefix([kind::ACCOUNT]).map(|item| decode(&item?.1)).collect()
    }

    /// Creates the account `name`; 409 if it exists.
    pub fn create_account(&self, name: &str) -> StoreResult<Account> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(StoreError::Invalid(crate::scim::ScimError::invalid_value(
                "an account name has 1 to 64 characters",
            )));
        }
        let created = timestamp(self.now());
        let by_name = global(kind::ACCOUNT_BY_NAME, name.as_bytes());
        let counter = global(kind::COUNTER, b"accounts");
        let account = self.transact(|tx| {
            if tx.get(&by_name)?.is_some() {
                return abort(StoreError::Conflict(format!("account '{name}' already exists")));
            }
            let next: u32 = tx_get(tx, &counter)?.unwrap_or(0) + 1;
            tx.insert(counter.as_slice(), encode(&next))?;
            let account = Account {
                id: AccountId(next),
                name: name.to_string(),
                created: created.clone(),
                suspended: None,
                deleting: None,
            };
            tx.insert(by_name.as_slice(), &next.to_be_bytes())?;
            tx.insert(prefix(kind::ACCOUNT, account.id), encode(&account))?;
            Ok(account)
        })?;
        Ok(account)
    }

    /// The account `name`, created if missing; the flag says whether it was created now.
    pub fn ensure_account(&self, name: &str) -> StoreResult<(Account, bool)> {
        if let Some(a) = self.account(name)? {
            return Ok((a, false));
        }
        match self.create_account(name) {
            Ok(a) => Ok((a, true)),
            Err(StoreError::Conflict(_)) => {
                self.account(name)?.map(|a| (a, false)).ok_or_else(|| StoreError::NotFound(name.into()))
            }
            Err(e) => Err(e),
        }
    }

    /// Issues a new token named `name` (trimmed; a blank name is refused); the secret is returned this once
    /// and never stored. Names are unique per account and kind (409), so the actor `scim:<name>` names one
    /// token.
    pub fn create_token(
        &self,
        acct: AccountId,
        kind_: TokenKind,
        name: &str,
        actor: &Actor,
    ) -> StoreResult<(TokenInfo, String)> {
        self.create_token_expiring(acct, kind_, name, None, actor)
    }

    /// [`create_token`](Self::create_token) with an expiry: from `expires_at` on, the token is refused
    /// ("token expired"). An expiry that is not in the future is refused.
    pub fn create_token_expiring(
        &self,
        acct: AccountId,
        kind_: TokenKind,
        name: &str,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        actor: &Actor,
    ) -> StoreResult<(TokenInfo, String)> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid(crate::scim::ScimError::invalid_value("a token needs a name")));
        }
        if expires_at.is_some_and(|at| at <= self.now()) {
            return Err(StoreError::Rejected("expiresAt: the expiry must be in the future".into()));
        }
        if self.account_by_id(acct)?.is_none_or(|a| a.deleting.is_some()) {
            return Err(StoreError::NotFound(format!("account {}", acct.0)));
        }
        let secret = new_secret();
        let info = self.add_token(acct, kind_, name, &secret, expires_at.map(timestamp), actor, true)?;
        Ok((info, secret))
    }

    /// Registers a known secret (from the environment) as a token; registering it again changes nothing.
    pub fn register_token(
        &self,
        acct: AccountId,
        kind_: TokenKind,
        name: &str,
        secret: &str,
        actor: &Actor,
    ) -> StoreResult<TokenInfo> {
        self.add_token(acct, kind_, name, secret, None, actor, false)
    }

    #[allow(clippy::too_many_arguments)] // private; each caller names every argument
    fn add_token(
        &self,
        acct: AccountId,
        kind_: TokenKind,
        name: &str,
        secret: &str,
        expires_at: Option<String>,
        actor: &Actor,
        unique_name: bool,
    ) -> StoreResult<TokenInfo> {
        let hash = hash(secret);
        if let Some(existing) = self.token_by_hash(&hash)? {
            if existing.account == acct && existing.kind == kind_ {
                return Ok(existing);
            }
            return Err(StoreError::Conflict(
                "that secret is already registered for another account or kind".into(),
            ));
        }
        let info = TokenInfo {
            id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            account: acct,
            kind: kind_,
            name: name.to_string(),
            created: timestamp(self.now()),
            expires_at,
            hash: hash.clone(),
        };
        let now = self.now();
        // Exclusive, because the names in use come from a scan, which an optimistic transaction cannot
        // check when it commits.
        self.transact_exclusive(|tx| {
            if unique_name {
                let taken = match self.tokens(Some(acct)) {
                    Ok(tokens) => tokens.into_iter().any(|t| t.kind == kind_ && t.name == info.name),
                    Err(e) => return abort(e),
                };
                if taken {
                    return abort(StoreError::Conflict(format!(
                        "name: the account already has a {} token named '{}'",
                        kind_.as_str(),
                        info.name
                    )));
                }
            }
            tx.insert(global(kind::TOKEN, &hash), encode(&info))?;
            tx.insert(key(kind::TOKEN_ID, acct, &[info.id.as_bytes()]), hash.as_slice())?;
            activity::record(
                tx,
                acct,
                now,
                actor,
                "token.created",
                Some(&info.id),
                json!({"name": info.name, "kind": info.kind, "expiresAt": info.expires_at}),
            )
        })?;
        Ok(info)
    }

    fn token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<TokenInfo>> {
        get(self.tree(), &global(kind::TOKEN, hash))
    }

    /// The token a presented secret belongs to, if it may be used now (see [`Store::authenticate_why`]).
    pub fn authenticate(&self, secret: &str) -> StoreResult<Option<Arc<TokenInfo>>> {
        Ok(match self.authenticate_why(secret)? {
            Authentication::Valid(info) => Some(info),
            _ => None,
        })
    }

    /// What a presented secret is: a token that may be used now, none, an expired token, or a token of a
    /// suspended account. The secret is only ever hashed; the stored hash is then compared in constant
    /// time.
    pub fn authenticate_why(&self, secret: &str) -> StoreResult<Authentication> {
        let presented = hash(secret);
        let (cached, epoch) = match self.inner.tokens.read() {
            Ok(c) => (c.tokens.get(&presented).cloned(), c.revocations),
            Err(_) => (None, u64::MAX),
        };
        let info = match cached {
            Some(info) => info,
            None => {
                let Some(info) = self.token_by_hash(&presented)? else { return Ok(Authentication::Unknown) };
                let info = Arc::new(info);
                if let Ok(mut cache) = self.inner.tokens.write() {
                    // A revocation since the read above may concern this very token: then it is not cached.
                    if cache.revocations == epoch {
                        cache.tokens.insert(presented.clone(), info.clone());
                    }
                }
                info
            }
        };
        if !bool::from(info.hash.ct_eq(&presented)) {
            return Ok(Authentication::Unknown);
        }
        if info.expires_at.as_deref().is_some_and(|at| timestamp(self.now()).as_str() >= at) {
            return Ok(Authentication::Expired(info));
        }
        let Some(account) = self.account_cached(info.account)? else { return Ok(Authentication::Unknown) };
        if account.deleting.is_some() {
            return Ok(Authentication::Unknown);
        }
        if account.suspended.is_some() {
            return Ok(Authentication::Suspended(info, account.name.clone()));
        }
        self.note_use(&info);
        Ok(Authentication::Valid(info))
    }

    /// The account record, read once and then kept until the account changes.
    fn account_cached(&self, acct: AccountId) -> StoreResult<Option<Arc<Account>>> {
        let (cached, epoch) = match self.inner.tokens.read() {
            Ok(c) => (c.accounts.get(&acct).cloned(), c.revocations),
            Err(_) => (None, u64::MAX),
        };
        if cached.is_some() {
            return Ok(cached);
        }
        let Some(account) = self.account_by_id(acct)? else { return Ok(None) };
        let account = Arc::new(account);
        if let Ok(mut cache) = self.inner.tokens.write()
            && cache.revocations == epoch
        {
            cache.accounts.insert(acct, account.clone());
        }
        Ok(Some(account))
    }

    /// Marks the account as being deleted (or, when its deletion could not start, no longer).
    pub(crate) fn mark_removed(&self, acct: AccountId, removed: bool) {
        if let Ok(mut cache) = self.inner.tokens.write() {
            if removed {
                cache.removed.insert(acct);
            } else {
                cache.removed.remove(&acct);
            }
        }
    }

    /// Whether the account is being deleted or was deleted since start.
    pub(crate) fn is_removed(&self, acct: AccountId) -> bool {
        self.inner.tokens.read().map_or(true, |c| c.removed.contains(&acct))
    }

    /// Forgets the cached account record and every cached token of the account (after a committed change).
    pub(crate) fn forget_account(&self, acct: AccountId) {
        if let Ok(mut cache) = self.inner.tokens.write() {
            cache.revocations += 1;
            cache.accounts.remove(&acct);
            cache.tokens.retain(|_, t| t.account != acct);
        }
    }

    /// Forgets what the caches hold about the account and about the tokens with these hashes; after a
    /// committed change, so that no request can cache the old state again.
    fn forget(&self, acct: AccountId, hashes: &[&[u8]]) {
        if let Ok(mut cache) = self.inner.tokens.write() {
            cache.revocations += 1;
            cache.accounts.remove(&acct);
            for h in hashes {
                cache.tokens.remove(*h);
            }
        }
    }

    /// Remembers that `token` was used this minute: written once a minute per token, in a transaction of
    /// its own that nobody waits to be flushed (it becomes durable with the next write's flush).
    fn note_use(&self, token: &TokenInfo) {
        let now = minute(self.now());
        let fresh = match self.inner.tokens.read() {
            Ok(c) => c.last_used.get(&token.id) != Some(&now),
            Err(_) => false,
        };
        if !fresh {
            return;
        }
        if let Ok(mut cache) = self.inner.tokens.write() {
            cache.last_used.insert(token.id.clone(), now.clone());
        }
        let key = key(kind::TOKEN_USED, token.account, &[token.id.as_bytes()]);
        let of_kind = key_of_kind_used(token.account, token.kind);
        let value = encode(&now);
        let noted = self.transact(|tx| {
            tx.insert(&key, value.as_slice())?;
            tx.insert(&of_kind, value.as_slice())
        });
        match noted {
            // a full disk is said once, by the store itself
            Err(e @ super::StoreError::Full(_)) => {
                log::debug!("could not record the use of token {}: {e}", token.id)
            }
            Err(e) => log::warn!("could not record the use of token {}: {e}", token.id),
            Ok(()) => {}
        }
    }

    /// When the token was last used (to the minute), if ever.
    pub fn token_last_used(&self, acct: AccountId, id: &str) -> StoreResult<Option<String>> {
        get(self.tree(), &key(kind::TOKEN_USED, acct, &[id.as_bytes()]))
    }

    /// An account's name (names never change, so it is read once).
    pub fn account_name(&self, acct: AccountId) -> StoreResult<Option<String>> {
        if let Some(name) = self.inner.account_names.read().ok().and_then(|c| c.get(&acct).cloned()) {
            return Ok(Some(name));
        }
        let name = self.account_by_id(acct)?.map(|a| a.name);
        if let (Some(name), Ok(mut cache)) = (&name, self.inner.account_names.write()) {
            cache.insert(acct, name.clone());
        }
        Ok(name)
    }

    /// Tokens of one account, or of all accounts.
    pub fn tokens(&self, acct: Option<AccountId>) -> StoreResult<Vec<TokenInfo>> {
        let mut out = Vec::new();
        for item in self.tree().scan_prefix([kind::TOKEN]) {
            let info: TokenInfo = decode(&item?.1)?;
            if acct.is_none_or(|a| a == info.account) {
                out.push(info);
            }
        }
        out.sort_by(|a, b| (a.account, &a.created, &a.id).cmp(&(b.account, &b.created, &b.id)));
        Ok(out)
    }

    /// Revokes a token of the account; 404 if it has no such token.
    pub fn revoke_token(&self, acct: AccountId, id: &str, actor: &Actor) -> StoreResult<TokenInfo> {
        let id_key = key(kind::TOKEN_ID, acct, &[id.as_bytes()]);
        let now = self.now();
        let info = self.transact(|tx| {
            let Some(hash) = tx.get(&id_key)? else {
                return abort(StoreError::NotFound(format!("token {id}")));
            };
            let Some(info) = tx_get::<TokenInfo>(tx, &global(kind::TOKEN, &hash))? else {
                return abort(StoreError::NotFound(format!("token {id}")));
            };
            tx.remove(global(kind::TOKEN, &hash))?;
            tx.remove(id_key.as_slice())?;
            tx.remove(key(kind::TOKEN_USED, acct, &[id.as_bytes()]))?;
            activity::record(
                tx,
                acct,
                now,
                actor,
                "token.revoked",
                Some(id),
                json!({"name": info.name, "kind": info.kind}),
            )?;
            Ok(info)
        })?;
        // Evicted only once the removal has committed, so no request can cache the token again after this.
        self.forget(acct, &[&info.hash]);
        Ok(info)
    }
}

/// `T acct kind`: when a token of that kind was last used in the account.
fn key_of_kind_used(acct: AccountId, kind_: TokenKind) -> Vec<u8> {
    key(kind::ACCOUNT_USED, acct, &[kind_.as_str().as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::temp_store;

    #[test]
    fn tokens_resolve_to_their_account_and_kind_only() {
        let (store, _dir) = temp_store();
        let (a, created) = store.ensure_account("default").unwrap();
        assert!(created);
        assert!(!store.ensure_account("default").unwrap().1);
        let b = store.create_account("other").unwrap();
        assert_ne!(a.id, b.id);
        assert!(matches!(store.create_account("other"), Err(StoreError::Conflict(_))));

        let (info, secret) = store.create_token(a.id, TokenKind::Scim, "okta", &Actor::engine()).unwrap();
        assert!(secret.starts_with("us_") && secret.len() > 60);
        let found = store.authenticate(&secret).unwrap().unwrap();
        assert_eq!((found.account, found.kind, found.name.as_str()), (a.id, TokenKind::Scim, "okta"));
        assert!(store.authenticate("us_wrong").unwrap().is_none());
        assert_eq!(found.actor(), Actor("scim:okta".into()));
        assert!(matches!(
            store.create_token(a.id, TokenKind::Scim, "  ", &Actor::engine()),
            Err(StoreError::Invalid(_))
        ));
        let (trimmed, _) = store.create_token(a.id, TokenKind::Scim, " ci ", &Actor::engine()).unwrap();
        assert_eq!(trimmed.name, "ci");
        store.revoke_token(a.id, &trimmed.id, &Actor::engine()).unwrap();

        // the secret is not stored anywhere
        for item in store.tree().iter() {
            let (k, v) = item.unwrap();
            assert!(
                !String::from_utf8_lossy(&k).contains(&secret)
                    && !String::from_utf8_lossy(&v).contains(&secret)
            );
        }

        store.register_token(a.id, TokenKind::Admin, "env", "known-secret", &Actor::engine()).unwrap();
        store.register_token(a.id, TokenKind::Admin, "env", "known-secret", &Actor::engine()).unwrap();
        assert!(
            store.register_token(b.id, TokenKind::Admin, "env", "known-secret", &Actor::engine()).is_err()
        );
        assert_eq!(store.tokens(Some(a.id)).unwrap().len(), 2);
        assert_eq!(store.tokens(Some(b.id)).unwrap().len(), 0);

        assert!(matches!(store.revoke_token(b.id, &info.id, &Actor::engine()), Err(StoreError::NotFound(_))));
        store.revoke_token(a.id, &info.id, &Actor::engine()).unwrap();
        assert!(store.authenticate(&secret).unwrap().is_none());
        assert_eq!(store.account("other").unwrap().unwrap().id, b.id);
    }

    #[test]
    fn token_names_are_unique_per_account_and_kind_and_use_is_noted_to_the_minute() {
        let (store, _dir) = temp_store();
        let a = store.ensure_account("default").unwrap().0.id;
        let b = store.create_account("other").unwrap().id;
        let (info, secret) = store.create_token(a, TokenKind::Scim, "okta", &Actor::engine()).unwrap();
        let again = store.create_token(a, TokenKind::Scim, "okta", &Actor::engine());
        assert!(matches!(again, Err(StoreError::Conflict(m)) if m.contains("'okta'")));
        store.create_token(a, TokenKind::Admin, "okta", &Actor::engine()).unwrap();
        store.create_token(b, TokenKind::Scim, "okta", &Actor::engine()).unwrap();
        assert_eq!(store.token_last_used(a, &info.id).unwrap(), None);
        let before = minute(store.now());
        store.authenticate(&secret).unwrap().unwrap();
        let used = store.token_last_used(a, &info.id).unwrap().unwrap();
        assert!(used == before || used == minute(store.now()), "{used}");
        assert_eq!(used.len(), "2026-12-02T04:58Z".len());
    }
}
