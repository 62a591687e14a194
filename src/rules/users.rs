//! Finding users as an admin does (the admin API's `GET /users` and the console's Users page): by part of
//! their userName, in userName order, optionally only those in one entitlement state, a page at a time.

use serde_json::Value;

use super::{address_of, state_of};
use crate::store::sync::EntitlementState;
use crate::store::{AccountId, Store, StoreResult, is_active};

/// The entitlement states by the names queries give them (`?state=`).
pub const ENTITLEMENT_STATES: [(&str, EntitlementState); 4] = [
    ("entitled", EntitlementState::Entitled),
    ("none", EntitlementState::None),
    ("failed", EntitlementState::Failed),
    ("suspended", EntitlementState::Suspended),
];

/// One user as a search lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundUser {
    pub id: String,
    pub user_name: Value,
    pub display_name: Value,
    pub email: Option<String>,
    pub active: bool,
    pub state: EntitlementState,
}

/// A page of a user search and how many users match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct UserPage {
    pub total: usize,
    pub users: Vec<FoundUser>,
}

/// Users whose userName contains `search` (case-insensitively; all without one), in userName order, in
/// `wanted` state if given: `count` of them after skipping `skip`. Without a state only the users of the
/// page are read.
pub fn find_users(
    store: &Store,
    acct: AccountId,
    search: Option<&str>,
    wanted: Option<EntitlementState>,
    skip: usize,
    count: usize,
) -> StoreResult<UserPage> {
    let found = store.find_users(acct, search)?;
    let mut total = 0;
    let mut users = Vec::new();
    for m in &found {
        let in_page = total >= skip && users.len() < count;
        if wanted.is_none() && !in_page {
            total += 1;
            continue;
        }
        let Some(user) = store.user(acct, &m.id)? else { continue };
        let state =
            state_of(store.entitlement(acct, &m.id)?.as_ref(), store.failure(acct, &m.id)?.as_ref(), &user);
        if wanted.is_some_and(|w| w != state) {
            continue;
        }
        if total >= skip && users.len() < count {
            users.push(FoundUser {
                id: m.id.clone(),
                user_name: user.get("userName").cloned().unwrap_or(Value::Null),
                display_name: user.get("displayName").cloned().unwrap_or(Value::Null),
                email: address_of(&user).map(str::to_string),
                active: is_active(&user),
                state,
            });
        }
        total += 1;
    }
    Ok(UserPage { total, users })
}
