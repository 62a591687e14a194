//! The key layout of the one sled tree everything lives in. Every account-scoped key starts with a one-byte
//! kind and the account's 4-byte id, so an account's data is a set of contiguous ranges and no key of one
//! account can ever be built from another account's request.

/// An account's numeric id, the prefix of every key it owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct AccountId(pub u32);

/// Resource ids are UUIDs in their 36-character hyphenated text form.
pub const ID_LEN: usize = 36;

/// Key kinds. Upper case: records; lower case: indexes.
pub mod kind {
    /// `A name` → account id (global)
    pub const ACCOUNT_BY_NAME: u8 = b'A';
    /// `a acct` → account record
    pub const ACCOUNT: u8 = b'a';
    /// `C name` → a global counter
    pub const COUNTER: u8 = b'C';
    /// `K sha256(secret)` → token record (global: a token finds its account)
    pub const TOKEN: u8 = b'K';
    /// `k acct token-id` → sha256(secret)
    pub const TOKEN_ID: u8 = b'k';
    /// `t acct token-id` → the minute the token was last used
    pub const TOKEN_USED: u8 = b't';
    /// `U acct uid` → user document
    pub const USER: u8 = b'U';
    /// `u acct fold(userName)` → uid
    pub const USER_NAME: u8 = b'u';
    /// `x acct externalId 0xFF uid` → ()
    pub const USER_EXTERNAL_ID: u8 = b'x';
    /// `D acct uid` → the user's display text (for group member lists)
    pub const USER_DISPLAY: u8 = b'D';
    /// `S acct uid` → salted password hash
    pub const USER_SECRET: u8 = b'S';
    /// `G acct gid` → group document (without members)
    pub const GROUP: u8 = b'G';
    /// `g acct fold(displayName)` → gid
    pub const GROUP_NAME: u8 = b'g';
    /// `y acct externalId 0xFF gid` → ()
    pub const GROUP_EXTERNAL_ID: u8 = b'y';
    /// `M acct gid member-id` → the sub-attributes the client sent for the member: one key per membership
    pub const MEMBER: u8 = b'M';
    /// `m acct member-id 0xFF gid` → () : the reverse index (member ids are any client-given text)
    pub const MEMBER_OF: u8 = b'm';
    /// `Z acct 'g' gid` / `Z acct 'u' uid` → () : a deleted group or user whose memberships are still
    /// being removed (resumed at start-up after a crash)
    pub const CLEANUP: u8 = b'Z';
    /// `P acct uid` → sequence number of the write that asked for the user's re-evaluation
    pub const PENDING: u8 = b'P';
    /// `Q acct` → a full re-evaluation of the account is owed (sync switched on, rules changed)
    pub const PENDING_ALL: u8 = b'Q';
    /// `R acct rule-id` → rule; `r acct` → rule order and settings of the account's engine
    pub const RULE: u8 = b'R';
    pub const ENGINE: u8 = b'r';
    /// `L acct product-id` → product; `l acct product-id` → seats used
    pub const PRODUCT: u8 = b'L';
    pub const PRODUCT_USED: u8 = b'l';
    /// `O acct kind id` → admin-defined objects (user groups, templates, custom attributes)
    pub const OBJECT: u8 = b'O';
    /// `E acct uid` → the user's applied entitlements
    pub const ENTITLEMENT: u8 = b'E';
    /// `F acct uid` → the user's sync failure
    pub const FAILURE: u8 = b'F';
    /// `H acct seq` → activity entry
    pub const ACTIVITY: u8 = b'H';
    /// `h acct ...` → the activity history's indexes (see `activity`)
    pub const ACTIVITY_INDEX: u8 = b'h';
    /// `W acct seq` → welcome message in the outbox; `w acct uid` → welcomed marker (its message's seq)
    pub const OUTBOX: u8 = b'W';
    pub const WELCOMED: u8 = b'w';
    /// `o acct seq` → () : a welcome message still owed (queued, deferred or failed), what the mail sender
    /// and the failure list read instead of the whole outbox
    pub const MAIL_OWED: u8 = b'o';
    /// `N acct seq` → an entitlement change: the change feed, numbered one by one at commit
    pub const FEED: u8 = b'N';
    /// `B acct webhook-id` → webhook; `b acct webhook-id` → its delivery position, log and state
    pub const WEBHOOK: u8 = b'B';
    pub const WEBHOOK_STATE: u8 = b'b';
    /// `j acct` → the account's request rate limit, when the operator set one
    pub const RATE_LIMIT: u8 = b'j';
    /// `X lower(login)` → (account, uid) holding the login server-wide
    pub const LOGIN: u8 = b'X';
    /// `V lower(login) acct uid` → () : a user waiting for a login held by another account
    pub const LOGIN_WAIT: u8 = b'V';
    /// `d acct domain` → the account's claim of a domain (challenge, verification)
    pub const DOMAIN: u8 = b'd';
    /// `e domain` → the account that verified the domain (global: one owner per domain)
    pub const DOMAIN_OWNER: u8 = b'e';
    /// `v what` → the version of a derived layout (global), for start-up migrations
    pub const LAYOUT: u8 = b'v';
    /// `T acct kind` → the minute a token of that kind (`scim`, `admin`) was last used in the account
    pub const ACCOUNT_USED: u8 = b'T';
    /// `J acct millis n` → provisioning log entry; `n acct ...` → its indexes (see `requests`)
    pub const REQUEST: u8 = b'J';
    pub const REQUEST_INDEX: u8 = b'n';
    /// `Y acct` → the account's retention settings (see `retention`)
    pub const RETENTION: u8 = b'Y';
}

/// The kinds whose keys are not `kind acct ...`. Every other kind is account-scoped, which is what lets an
/// account's deletion remove every key it owns without a list of kinds to keep up to date: a new global
/// kind must be added here.
pub const GLOBAL_KINDS: [u8; 7] = [
    kind::ACCOUNT_BY_NAME,
    kind::COUNTER,
    kind::TOKEN,
    kind::LOGIN,
    kind::LOGIN_WAIT,
    kind::LAYOUT,
    kind::DOMAIN_OWNER,
];

/// Whether keys of `kind` start with an account id.
pub fn is_account_scoped(kind: u8) -> bool {
    !GLOBAL_KINDS.contains(&kind)
}

/// Separates a variable-length part from a fixed-length id; never occurs in UTF-8 text.
pub const SEP: u8 = 0xFF;

/// A key of `kind` for account `acct`, followed by `parts`.
pub fn key(kind: u8, acct: AccountId, parts: &[&[u8]]) -> Vec<u8> {
    let len = 5 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut k = Vec::with_capacity(len);
    k.push(kind);
    k.extend_from_slice(&acct.0.to_be_bytes());
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// A global (account-less) key.
pub fn global(kind: u8, part: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + part.len());
    k.push(kind);
    k.extend_from_slice(part);
    k
}

/// The prefix of every key of `kind` in `acct`.
pub fn prefix(kind: u8, acct: AccountId) -> Vec<u8> {
    key(kind, acct, &[])
}

/// `parent`'s range of a two-level key such as `M acct gid uid`.
pub fn child_prefix(kind: u8, acct: AccountId, parent: &str) -> Vec<u8> {
    key(kind, acct, &[parent.as_bytes()])
}

/// The text after a key's 5-byte kind-and-account prefix and an optional fixed-length parent id.
pub fn suffix(key: &[u8], skip_parent: bool) -> &str {
    let start = 5 + if skip_parent { ID_LEN } else { 0 };
    key.get(start..).and_then(|s| std::str::from_utf8(s).ok()).unwrap_or("")
}

/// The trailing fixed-length id of an index key such as `x acct externalId 0xFF uid`.
pub fn trailing_id(key: &[u8]) -> &str {
    key.len()
        .checked_sub(ID_LEN)
        .and_then(|start| key.get(start..))
        .and_then(|s| std::str::from_utf8(s).ok())
        .unwrap_or("")
}

/// The account id inside an account-scoped key.
pub fn account_of(key: &[u8]) -> Option<AccountId> {
    let bytes: [u8; 4] = key.get(1..5)?.try_into().ok()?;
    Some(AccountId(u32::from_be_bytes(bytes)))
}

/// Unique names (userName, group displayName) are indexed by their comparison form (RFC 8265
/// UsernameCaseMapped, see [`crate::scim::identity`]).
pub fn fold(name: &str) -> String {
    crate::scim::identity::comparison_key(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of key has a letter of its own: two kinds sharing one would read each other's records
    /// (read from this file, so a kind added later is checked too).
    #[test]
    fn every_kind_has_its_own_letter() {
        let source = include_str!("keys.rs");
        let kinds = &source[source.find("pub mod kind").unwrap_or(0)..];
        let kinds = &kinds[..kinds.find("\n}").unwrap_or(kinds.len())];
        let mut seen = std::collections::HashMap::new();
        for line in kinds.lines().filter(|l| l.trim_start().starts_with("pub const")) {
            let letter = line.split_once("= b'").and_then(|(_, rest)| rest.chars().next());
            let name = line.split_whitespace().nth(2).unwrap_or_default();
            let letter = letter.unwrap_or_else(|| panic!("{name} has no b'x' letter"));
            if let Some(other) = seen.insert(letter, name) {
                panic!("{other} and {name} both use the letter {letter:?}");
            }
        }
        assert!(seen.len() > 30, "the kinds were read: {seen:?}");
    }

    #[test]
    fn account_keys_never_overlap() {
        let a = key(kind::USER, AccountId(1), &[b"x"]);
        let b = prefix(kind::USER, AccountId(256));
        assert!(!a.starts_with(&b) && !b.starts_with(&a[..5]));
        assert_eq!(account_of(&a), Some(AccountId(1)));
    }

    #[test]
    fn parts_are_recovered() {
        let gid = "e9e30dba-f08f-4109-8486-d5c6a331660a";
        let uid = "2819c223-7f76-453a-919d-413861904646";
        let k = key(kind::MEMBER, AccountId(7), &[gid.as_bytes(), uid.as_bytes()]);
        assert!(k.starts_with(&child_prefix(kind::MEMBER, AccountId(7), gid)));
        assert_eq!(suffix(&k, true), uid);
        assert_eq!(suffix(&key(kind::USER, AccountId(7), &[uid.as_bytes()]), false), uid);
        let x = key(kind::USER_EXTERNAL_ID, AccountId(7), &[b"ext", &[SEP], uid.as_bytes()]);
        assert_eq!(trailing_id(&x), uid);
        assert_eq!(fold("JOHN@X.COM"), "john@x.com");
    }
}
