//! How records are encoded (JSON) and the `meta` bookkeeping every write does.

use crate::store::tx::Tx;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{StoreError, StoreResult, TxResult, abort};
use crate::clock::timestamp;
use crate::scim::schema::ResourceKind;

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own records (maps with string keys) cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Reads and decodes a record inside a transaction.
pub(crate) fn tx_get<T: DeserializeOwned>(tx: &Tx<'_>, key: &[u8]) -> TxResult<Option<T>> {
    match tx.get(key)? {
        Some(bytes) => match decode(&bytes) {
            Ok(v) => Ok(Some(v)),
            Err(e) => abort(e),
        },
        None => Ok(None),
    }
}

/// Reads and decodes a record outside a transaction.
pub(crate) fn get<T: DeserializeOwned>(tree: &super::records::Records, key: &[u8]) -> StoreResult<Option<T>> {
    tree.get(key)?.map(|bytes| decode(&bytes)).transpose()
}

/// `meta` of a resource created now.
pub(crate) fn new_meta(kind: ResourceKind, now: chrono::DateTime<chrono::Utc>) -> Value {
    let ts = timestamp(now);
    json!({"resourceType": kind.name(), "created": ts, "lastModified": ts, "version": version_tag(1)})
}

/// `meta` after a change: same `created`, new `lastModified`, next version.
pub(crate) fn bumped_meta(doc: &Value, kind: ResourceKind, now: chrono::DateTime<chrono::Utc>) -> Value {
    let mut meta = new_meta(kind, now);
    if let Some(created) = doc.pointer("/meta/created") {
        meta["created"] = created.clone();
    }
    meta["version"] = Value::String(version_tag(version_number(doc) + 1));
    meta
}

fn version_tag(n: u64) -> String {
    format!("W/\"{n}\"")
}

fn version_number(doc: &Value) -> u64 {
    version_of(doc).trim_start_matches("W/").trim_matches('"').parse().unwrap_or(0)
}

/// The resource's current version, as its ETag.
pub fn version_of(doc: &Value) -> &str {
    doc.pointer("/meta/version").and_then(Value::as_str).unwrap_or("")
}

/// Checks `If-Match`: `*` or any listed ETag equal to the current version (weak comparison).
pub(crate) fn check_if_match(doc: &Value, if_match: Option<&str>) -> Result<(), StoreError> {
    let Some(header) = if_match else { return Ok(()) };
    let current = version_of(doc);
    let strip = |t: &str| t.trim().trim_start_matches("W/").trim_matches('"').to_string();
    let ok = header.split(',').any(|tag| tag.trim() == "*" || strip(tag) == strip(current));
    if ok { Ok(()) } else { Err(StoreError::PreconditionFailed(current.to_string())) }
}

/// What a member list shows for a user: `displayName`, else `userName`.
pub fn display_of(user: &Value) -> &str {
    user.get("displayName").or_else(|| user.get("userName")).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_advance_and_if_match_compares_weakly() {
        let now = chrono::Utc::now();
        let doc = json!({"meta": new_meta(ResourceKind::User, now)});
        assert_eq!(version_of(&doc), "W/\"1\"");
        let next = json!({"meta": bumped_meta(&doc, ResourceKind::User, now)});
        assert_eq!(version_of(&next), "W/\"2\"");
        assert_eq!(next["meta"]["created"], doc["meta"]["created"]);
        assert!(check_if_match(&next, Some("W/\"2\"")).is_ok());
        assert!(check_if_match(&next, Some("\"2\"")).is_ok());
        assert!(check_if_match(&next, Some("*")).is_ok());
        assert!(check_if_match(&next, Some("W/\"1\", W/\"2\"")).is_ok());
        assert!(matches!(check_if_match(&next, Some("W/\"1\"")), Err(StoreError::PreconditionFailed(_))));
        assert!(check_if_match(&next, None).is_ok());
    }
}
