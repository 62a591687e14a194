//! The rule engine's work queue: a user whose entitlements may have changed is marked pending in the same
//! transaction as the change, so an acknowledged write's consequences survive a crash.

use super::TxResult;
use super::keys::{AccountId, key, kind};
use crate::store::tx::Tx;

/// Marks `uid` for re-evaluation; the value is the marking write's sequence number, so the engine can
/// tell whether the user changed again while it was evaluating.
pub(crate) fn mark_pending(tx: &Tx<'_>, acct: AccountId, uid: &str) -> TxResult<()> {
    let seq = tx.generate_id()?;
    tx.insert(key(kind::PENDING, acct, &[uid.as_bytes()]), &seq.to_be_bytes())?;
    Ok(())
}
