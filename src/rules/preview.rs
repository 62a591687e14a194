//! What a proposed rule list would do, computed without writing anything: per user the bundle they have now
//! and the one they would get, per product how many users would gain and lose it, and which products would
//! run out of seats.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::scim::ScimError;
use crate::scim::schema::ResourceKind;
use crate::store::sync::{AdminRole, Bundle, Rule, RuleRef, Scope};
use crate::store::{AccountId, Store, StoreError, StoreResult};

use super::resolve::{compile, resolve};

/// One side of a user's change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub rule: Option<RuleRef>,
    pub products: Vec<String>,
    pub admin: Option<AdminRole>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserChange {
    pub id: String,
    #[serde(rename = "userName")]
    pub user_name: String,
    pub from: Side,
    pub to: Side,
    pub gains: Vec<String>,
    pub loses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductImpact {
    pub id: String,
    pub name: String,
    pub seats: Option<u64>,
    pub used: u64,
    pub gaining: u64,
    pub losing: u64,
    /// Seats the proposed rules need: used + gaining - losing.
    pub seats_needed: u64,
    /// Users who would fail with `outOfLicenses` for this product (0 when it fits).
    pub shortfall: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub evaluated: usize,
    pub users: Vec<UserChange>,
    pub products: Vec<ProductImpact>,
    /// Products whose seats would not suffice.
    pub run_out: Vec<String>,
}

/// Evaluates every user of the account under `proposed` (a whole, ordered rule list).
pub fn preview(store: &Store, acct: AccountId, proposed: &[Rule]) -> StoreResult<Preview> {
    let rules = compile(proposed).map_err(StoreError::Invalid)?;
    let current_rules = store.sync_config(acct)?;
    let registry = store.registry(acct);
    let schema = registry.resource(ResourceKind::User);
    let mut users = Vec::new();
    let mut evaluated = 0;
    let mut after: Option<String> = None;
    loop {
        let batch = store.scope_users(acct, &Scope::All, after.as_deref(), 1024)?;
        let Some(last) = batch.last().cloned() else { break };
        for uid in &batch {
            let Some(user) = store.user(acct, uid)? else { continue };
            evaluated += 1;
            let groups: HashSet<String> = store.groups_of(acct, uid)?.into_iter().collect();
            let resolution = resolve(&user, &groups, &rules, schema);
            let to = match resolution.deciding() {
                Some(r) => side(Some(r.reference()), Some(&r.rule.bundle)),
                None => side(None, None),
            };
            let current = store.entitlement(acct, uid)?;
            let from = side(
                current.as_ref().and_then(|e| e.rule.as_deref()).and_then(|id| current_rules.reference(id)),
                current.as_ref().and_then(|e| e.bundle.as_ref()),
            );
            if from.products == to.products && from.admin == to.admin {
                continue;
            }
            let gains = to.products.iter().filter(|p| !from.products.contains(p)).cloned().collect();
            let loses = from.products.iter().filter(|p| !to.products.contains(p)).cloned().collect();
            let user_name = user.get("userName").and_then(Value::as_str).unwrap_or_default().to_string();
            users.push(UserChange { id: uid.clone(), user_name, from, to, gains, loses });
        }
        after = Some(last);
    }
    let products = impacts(store, acct, &users)?;
    let run_out = products.iter().filter(|p| p.shortfall > 0).map(|p| p.id.clone()).collect();
    Ok(Preview { evaluated, users, products, run_out })
}

fn side(rule: Option<RuleRef>, bundle: Option<&Bundle>) -> Side {
    Side {
        rule,
        products: bundle.map(|b| b.products.clone()).unwrap_or_default(),
        admin: bundle.and_then(|b| b.admin.clone()),
    }
}

fn impacts(store: &Store, acct: AccountId, users: &[UserChange]) -> StoreResult<Vec<ProductImpact>> {
    let mut counts: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for u in users {
        u.gains.iter().for_each(|p| counts.entry(p).or_default().0 += 1);
        u.loses.iter().for_each(|p| counts.entry(p).or_default().1 += 1);
    }
    let mut out = Vec::new();
    for (product, used) in store.products(acct)? {
        let (gaining, losing) = counts.get(product.id.as_str()).copied().unwrap_or((0, 0));
        let seats_needed = (used + gaining).saturating_sub(losing);
        let shortfall = product.seats.map_or(0, |s| seats_needed.saturating_sub(s));
        out.push(ProductImpact {
            id: product.id,
            name: product.name,
            seats: product.seats,
            used,
            gaining,
            losing,
            seats_needed,
            shortfall,
        });
    }
    if let Some(unknown) = counts.keys().find(|p| !out.iter().any(|o| o.id == **p)) {
        return Err(StoreError::Invalid(ScimError::invalid_value(format!("unknown product '{unknown}'"))));
    }
    Ok(out)
}
