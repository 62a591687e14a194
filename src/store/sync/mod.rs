//! The User Sync engine's state: the account's rules and sync switch, products with their seat counters,
//! the admin-defined objects rules refer to, and per user the applied entitlements, failure and welcome
//! message. Every change that can alter entitlements records in the same transaction which users (or which
//! scope of users) must be re-evaluated.

mod apply;
mod edit;
mod hold;
pub mod model;
pub(crate) mod queue;

use crate::store::tx::Tx;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use apply::{Applied, Decision, Outcome};
pub use edit::{References, RuleCheck, RuleEdit, renumber};
pub(crate) use hold::record_group_deleted;
pub use hold::{BrakeSettings, DIRECTORY_WINDOW, DeletedGroup, HeldUser, Hold};
pub use model::*;
pub use queue::{Scope, ScopesUsers};

/// A page of failures (see [`Store::failure_page`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailurePage {
    /// How many users fail (for the reason asked) in all.
    pub total: usize,
    /// The products those users lack a seat of.
    pub products: std::collections::BTreeSet<String>,
    /// The page: user id and failure.
    pub failures: Vec<(String, Failure)>,
}

use super::activity::record;
use super::codec::{decode, encode, get, tx_get};
use super::keys::{AccountId, key, kind, prefix};
use super::pending::mark_pending;
use super::{Actor, Store, StoreError, StoreResult, TxResult, abort};

/// The kinds of admin-defined objects, each in its own key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    UserGroup,
    SettingsTemplate,
    EmailTemplate,
}

impl ObjectKind {
    fn tag(self) -> &'static [u8] {
        match self {
            ObjectKind::UserGroup => b"ug",
            ObjectKind::SettingsTemplate => b"st",
            ObjectKind::EmailTemplate => b"et",
        }
    }

    /// The activity name of the object kind (`user-group.updated`, ...).
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::UserGroup => "user-group",
            ObjectKind::SettingsTemplate => "settings-template",
            ObjectKind::EmailTemplate => "email-template",
        }
    }

    /// Does `rule` refer to the object `id` of this kind?
    fn used_by(self, rule: &Rule, id: &str) -> bool {
        let b = &rule.bundle;
        match self {
            ObjectKind::UserGroup => {
                b.user_group.as_deref() == Some(id)
                    || matches!(&b.admin, Some(AdminRole::Manager { managed_groups, .. }) if managed_groups.iter().any(|g| g == id))
            }
            ObjectKind::SettingsTemplate => b.settings_template == id,
            ObjectKind::EmailTemplate => b.welcome_email == id,
        }
    }
}

fn object_key(acct: AccountId, kind_: ObjectKind, id: &str) -> Vec<u8> {
    key(kind::OBJECT, acct, &[kind_.tag(), b"/", id.as_bytes()])
}

fn config_key(acct: AccountId) -> Vec<u8> {
    prefix(kind::ENGINE, acct)
}

fn product_key(acct: AccountId, id: &str) -> Vec<u8> {
    key(kind::PRODUCT, acct, &[id.as_bytes()])
}

pub(crate) fn used_key(acct: AccountId, id: &str) -> Vec<u8> {
    key(kind::PRODUCT_USED, acct, &[id.as_bytes()])
}

fn custom_attributes_key(acct: AccountId) -> Vec<u8> {
    key(kind::OBJECT, acct, &[b"ca"])
}

pub(crate) fn tx_used(tx: &Tx<'_>, acct: AccountId, id: &str) -> TxResult<u64> {
    Ok(tx_get(tx, &used_key(acct, id))?.unwrap_or(0))
}

/// Does the update give the product seats it did not have before?
fn more_seats(old: Option<&Product>, new: &Product) -> bool {
    match (old.and_then(|p| p.seats), new.seats) {
        (Some(before), Some(after)) => after > before,
        (Some(_), None) => true,
        _ => false,
    }
}

/// What `product` requires exists, and every rule granting it grants that too: a rule granting a product
/// without what it requires is refused when saved, and must stay refused when the requirement comes later.
fn check_requires(tx: &Tx<'_>, acct: AccountId, product: &Product) -> TxResult<()> {
    for required in &product.requires {
        if tx.get(product_key(acct, required))?.is_none() {
            return abort(StoreError::Rejected(format!("requires: unknown product '{required}'")));
        }
    }
    let config: SyncConfig = tx_get(tx, &config_key(acct))?.unwrap_or_default();
    for rule in &config.rules {
        let grants = &rule.bundle.products;
        if grants.contains(&product.id)
            && let Some(missing) = product.requires.iter().find(|r| !grants.contains(r))
        {
            return abort(StoreError::Conflict(format!(
                "requires: rule {} grants '{}' without '{missing}'; change the rule first",
                rule.number, product.id
            )));
        }
    }
    Ok(())
}

/// The version of a stored admin object (its ETag): a digest of its stored form, so it changes exactly
/// when the object does.
pub fn object_version(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The 412 of an `If-Match` naming a version other than that of `stored` (a missing object has none).
pub(crate) fn check_version(stored: Option<&[u8]>, if_match: Option<&str>) -> TxResult<()> {
    let Some(wanted) = if_match else { return Ok(()) };
    let current = stored.map(object_version).unwrap_or_default();
    if wanted != current {
        return abort(StoreError::PreconditionFailed(current));
    }
    Ok(())
}

/// The top-level fields that differ between `before` and `after`: `{field: {"before", "after"}}`.
pub fn changes<T: Serialize>(before: Option<&T>, after: &T) -> Value {
    let before = before.and_then(|b| serde_json::to_value(b).ok()).unwrap_or_else(|| json!({}));
    let after = serde_json::to_value(after).unwrap_or_else(|_| json!({}));
    let empty = serde_json::Map::new();
    let (b, a) = (before.as_object().unwrap_or(&empty), after.as_object().unwrap_or(&empty));
    let mut out = serde_json::Map::new();
    for name in b.keys().chain(a.keys().filter(|k| !b.contains_key(*k))) {
        let (old, new) = (b.get(name), a.get(name));
        if old != new {
            out.insert(name.clone(), json!({"before": old, "after": new}));
        }
    }
    Value::Object(out)
}

/// The custom attributes that were added, removed or changed, by name: `{name: {"before", "after"}}`.
fn attribute_changes(before: &[CustomAttribute], after: &[CustomAttribute]) -> Value {
    let by_name = |attrs: &[CustomAttribute]| -> serde_json::Map<String, Value> {
        attrs.iter().map(|a| (a.name.clone(), serde_json::to_value(a).unwrap_or_default())).collect()
    };
    changes(Some(&Value::Object(by_name(before))), &Value::Object(by_name(after)))
}

/// `rule 2 uses it`, `rules 2, 5 use it`: the rules whose filters use the custom attribute `name`.
fn rules_using(
    config: &SyncConfig,
    custom: &[CustomAttribute],
    name: &str,
    used_by: &dyn Fn(&Rule, &[CustomAttribute]) -> Vec<String>,
) -> String {
    let numbers: Vec<String> = config
        .rules
        .iter()
        .filter(|r| used_by(r, custom).iter().any(|u| u.eq_ignore_ascii_case(name)))
        .map(|r| r.number.to_string())
        .collect();
    match numbers.as_slice() {
        [one] => format!("rule {one} uses it"),
        many => format!("rules {} use it", many.join(", ")),
    }
}

/// The account's User extension schema from its custom attributes (`None` without any).
pub fn custom_schema(attrs: &[CustomAttribute]) -> Option<crate::scim::schema::Schema> {
    if attrs.is_empty() {
        return None;
    }
    let attributes: Vec<Value> = attrs
        .iter()
        .map(|a| {
            json!({"name": a.name, "type": a.kind, "multiValued": a.multi_valued, "description": a.description,
                "required": false, "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none"})
        })
        .collect();
    let json = json!({"id": crate::scim::schema::USERSYNC_URN, "name": "UsersyncUser",
        "description": "Custom attributes of this account", "attributes": attributes});
    crate::scim::schema::Schema::from_json(json).ok()
}

impl Store {
    pub fn sync_config(&self, acct: AccountId) -> StoreResult<SyncConfig> {
        Ok(get(self.tree(), &config_key(acct))?.unwrap_or_default())
    }

    pub fn products(&self, acct: AccountId) -> StoreResult<Vec<(Product, u64)>> {
        let mut out = Vec::new();
        for item in self.tree().scan_prefix(prefix(kind::PRODUCT, acct)) {
            let product: Product = decode(&item?.1)?;
            let used = self.used(acct, &product.id)?;
            out.push((product, used));
        }
        Ok(out)
    }

    pub fn product(&self, acct: AccountId, id: &str) -> StoreResult<Option<(Product, u64)>> {
        let Some(product) = get::<Product>(self.tree(), &product_key(acct, id))? else { return Ok(None) };
        let used = self.used(acct, id)?;
        Ok(Some((product, used)))
    }

    fn used(&self, acct: AccountId, id: &str) -> StoreResult<u64> {
        Ok(get(self.tree(), &used_key(acct, id))?.unwrap_or(0))
    }

    /// Creates or updates a product. Seats can never drop below the seats in use (nobody is evicted); more
    /// seats re-evaluate the users who failed for lack of this product. What it requires must exist, and no
    /// rule may grant it without what it requires. Returns the product, its seats in use and whether it was
    /// created.
    pub fn put_product(
        &self,
        acct: AccountId,
        product: &Product,
        actor: &Actor,
    ) -> StoreResult<(Product, u64, bool)> {
        self.put_product_if(acct, product, None, actor)
    }

    /// [`Store::put_product`] if the product is still at version `if_match` (see [`object_version`]; 412
    /// otherwise).
    pub fn put_product_if(
        &self,
        acct: AccountId,
        product: &Product,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<(Product, u64, bool)> {
        let now = self.now();
        // Exclusive, because the users to retry come from a scan of the failures, which an optimistic
        // transaction cannot check when it commits. With every other writer held off, a failure for lack
        // of this product is either recorded before the scan (and retried) or after the new seats are in
        // place (and sees them).
        self.transact_exclusive(|tx| {
            let old_bytes = tx.get(product_key(acct, &product.id))?;
            check_version(old_bytes.as_deref(), if_match)?;
            let old: Option<Product> = tx_get(tx, &product_key(acct, &product.id))?;
            let used = tx_used(tx, acct, &product.id)?;
            if let Some(seats) = product.seats
                && seats < used
            {
                return abort(StoreError::Conflict(format!(
                    "{used} seats of '{}' are in use; seats cannot go below that (nobody is evicted)",
                    product.id
                )));
            }
            check_requires(tx, acct, product)?;
            tx.insert(product_key(acct, &product.id), encode(product))?;
            if more_seats(old.as_ref(), product) {
                let waiting = match self.users_failing_for(acct, &product.id) {
                    Ok(waiting) => waiting,
                    Err(e) => return abort(e),
                };
                for uid in &waiting {
                    mark_pending(tx, acct, uid)?;
                }
            }
            let detail = json!({"name": product.name, "seats": product.seats, "requires": product.requires,
                "previousSeats": old.as_ref().and_then(|p| p.seats), "created": old.is_none(),
                "changes": changes(old.as_ref(), product)});
            record(tx, acct, now, actor, "product.updated", Some(&product.id), detail)?;
            Ok((product.clone(), used, old.is_none()))
        })
    }

    /// Users with an `outOfLicenses` failure that names `product`.
    fn users_failing_for(&self, acct: AccountId, product: &str) -> StoreResult<Vec<String>> {
        Ok(self
            .stored_failures(acct)?
            .into_iter()
            .filter(|(_, f)| {
                f.reason == FailureReason::OutOfLicenses && f.products.iter().any(|p| p == product)
            })
            .map(|(uid, _)| uid)
            .collect())
    }

    /// Deletes a product no rule grants, no other product requires and nobody holds (409 otherwise).
    pub fn delete_product(&self, acct: AccountId, id: &str, actor: &Actor) -> StoreResult<()> {
        let now = self.now();
        // Exclusive, because the products that might require this one come from a scan, which an optimistic
        // transaction cannot check when it commits.
        self.transact_exclusive(|tx| {
            if tx_get::<Product>(tx, &product_key(acct, id))?.is_none() {
                return abort(StoreError::NotFound(format!("product {id}")));
            }
            let config: SyncConfig = tx_get(tx, &config_key(acct))?.unwrap_or_default();
            if let Some(rule) = config.rules.iter().find(|r| r.bundle.products.iter().any(|p| p == id)) {
                return abort(StoreError::Conflict(format!("rule {} grants product '{id}'", rule.number)));
            }
            let products = match self.products(acct) {
                Ok(products) => products,
                Err(e) => return abort(e),
            };
            if let Some((dependent, _)) = products.iter().find(|(p, _)| p.requires.iter().any(|r| r == id)) {
                return abort(StoreError::Conflict(format!(
                    "product '{}' requires product '{id}'",
                    dependent.id
                )));
            }
            let used = tx_used(tx, acct, id)?;
            if used > 0 {
                return abort(StoreError::Conflict(format!("{used} users still hold product '{id}'")));
            }
            tx.remove(product_key(acct, id))?;
            tx.remove(used_key(acct, id))?;
            record(tx, acct, now, actor, "product.deleted", Some(id), json!({}))
        })
    }

    pub fn objects<T: DeserializeOwned>(&self, acct: AccountId, kind_: ObjectKind) -> StoreResult<Vec<T>> {
        let range = key(kind::OBJECT, acct, &[kind_.tag(), b"/"]);
        self.tree().scan_prefix(range).map(|item| decode(&item?.1)).collect()
    }

    pub fn object<T: DeserializeOwned>(
        &self,
        acct: AccountId,
        kind_: ObjectKind,
        id: &str,
    ) -> StoreResult<Option<T>> {
        get(self.tree(), &object_key(acct, kind_, id))
    }

    /// Creates or replaces an object; returns whether it was created.
    pub fn put_object<T: Serialize>(
        &self,
        acct: AccountId,
        kind_: ObjectKind,
        id: &str,
        value: &T,
        actor: &Actor,
    ) -> StoreResult<bool> {
        self.put_object_if(acct, kind_, id, value, None, actor)
    }

    /// [`Store::put_object`] if the object is still at version `if_match` (412 otherwise). The activity
    /// entry lists the changed fields with their values before and after.
    pub fn put_object_if<T: Serialize>(
        &self,
        acct: AccountId,
        kind_: ObjectKind,
        id: &str,
        value: &T,
        if_match: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<bool> {
        let now = self.now();
        let bytes = encode(value);
        let after = serde_json::to_value(value).unwrap_or_default();
        self.transact(|tx| {
            let old = tx.get(object_key(acct, kind_, id))?;
            check_version(old.as_deref(), if_match)?;
            let before: Option<Value> = old.as_deref().and_then(|b| serde_json::from_slice(b).ok());
            tx.insert(object_key(acct, kind_, id), bytes.clone())?;
            let event = format!("{}.updated", kind_.noun());
            let detail = json!({"created": old.is_none(), "name": after.get("name"),
                "changes": changes(before.as_ref(), &after)});
            record(tx, acct, now, actor, &event, Some(id), detail)?;
            Ok(old.is_none())
        })
    }

    /// An object with its version (`None` when absent).
    pub fn object_with_version<T: DeserializeOwned>(
        &self,
        acct: AccountId,
        kind_: ObjectKind,
        id: &str,
    ) -> StoreResult<Option<(T, String)>> {
        let Some(bytes) = self.tree().get(object_key(acct, kind_, id))? else { return Ok(None) };
        Ok(Some((decode(&bytes)?, object_version(&bytes))))
    }

    /// A product with its seats in use and its version.
    pub fn product_with_version(
        &self,
        acct: AccountId,
        id: &str,
    ) -> StoreResult<Option<(Product, u64, String)>> {
        let Some(bytes) = self.tree().get(product_key(acct, id))? else { return Ok(None) };
        Ok(Some((decode(&bytes)?, self.used(acct, id)?, object_version(&bytes))))
    }

    /// Removes an object whatever refers to it (the account's edited default template, which rules
    /// naming `default` fall back from to the built-in one); `false` if there was none.
    pub fn reset_object(
        &self,
        acct: AccountId,
        kind_: ObjectKind,
        id: &str,
        actor: &Actor,
    ) -> StoreResult<bool> {
        let now = self.now();
        self.transact(|tx| {
            if tx.get(object_key(acct, kind_, id))?.is_none() {
                return Ok(false);
            }
            tx.remove(object_key(acct, kind_, id))?;
            record(tx, acct, now, actor, &format!("{}.reset", kind_.noun()), Some(id), json!({}))?;
            Ok(true)
        })
    }

    /// Deletes an object no rule refers to (409 otherwise).
    pub fn delete_object(
        &self,
        acct: AccountId,
        kind_: ObjectKind,
        id: &str,
        actor: &Actor,
    ) -> StoreResult<()> {
        let now = self.now();
        self.transact(|tx| {
            let config: SyncConfig = tx_get(tx, &config_key(acct))?.unwrap_or_default();
            if let Some(rule) = config.rules.iter().find(|r| kind_.used_by(r, id)) {
                return abort(StoreError::Conflict(format!(
                    "rule {} refers to {} '{id}'",
                    rule.number,
                    kind_.noun()
                )));
            }
            if tx.get(object_key(acct, kind_, id))?.is_none() {
                return abort(StoreError::NotFound(format!("{} {id}", kind_.noun())));
            }
            tx.remove(object_key(acct, kind_, id))?;
            record(tx, acct, now, actor, &format!("{}.deleted", kind_.noun()), Some(id), json!({}))
        })
    }

    /// The custom attributes with the list's version (`""` while the account has never set any).
    pub fn custom_attributes_with_version(
        &self,
        acct: AccountId,
    ) -> StoreResult<(Vec<CustomAttribute>, String)> {
        match self.tree().get(custom_attributes_key(acct))? {
            Some(bytes) => Ok((decode(&bytes)?, object_version(&bytes))),
            None => Ok((Vec::new(), String::new())),
        }
    }

    pub fn custom_attributes(&self, acct: AccountId) -> StoreResult<Vec<CustomAttribute>> {
        Ok(get(self.tree(), &custom_attributes_key(acct))?.unwrap_or_default())
    }

    /// Replaces the account's custom attributes; its schemas change with them. `used_by` names the custom
    /// attributes (lower case) a rule's filter uses: one that a rule uses cannot be removed or change type
    /// (409 naming the rules), and the members of the groups of rules using a changed one are
    /// re-evaluated, in the same transaction.
    pub fn put_custom_attributes(
        &self,
        acct: AccountId,
        attrs: &[CustomAttribute],
        actor: &Actor,
        used_by: &dyn Fn(&Rule, &[CustomAttribute]) -> Vec<String>,
    ) -> StoreResult<()> {
        self.put_custom_attributes_if(acct, attrs, None, actor, used_by)
    }

    /// [`Store::put_custom_attributes`] if the list is still at version `if_match` (412 otherwise).
    pub fn put_custom_attributes_if(
        &self,
        acct: AccountId,
        attrs: &[CustomAttribute],
        if_match: Option<&str>,
        actor: &Actor,
        used_by: &dyn Fn(&Rule, &[CustomAttribute]) -> Vec<String>,
    ) -> StoreResult<()> {
        let now = self.now();
        let names: Vec<&str> = attrs.iter().map(|a| a.name.as_str()).collect();
        self.transact(|tx| {
            check_version(tx.get(custom_attributes_key(acct))?.as_deref(), if_match)?;
            let old: Vec<CustomAttribute> = tx_get(tx, &custom_attributes_key(acct))?.unwrap_or_default();
            let config: SyncConfig = tx_get(tx, &config_key(acct))?.unwrap_or_default();
            let find = |list: &[CustomAttribute], name: &str| {
                list.iter().find(|a| a.name.eq_ignore_ascii_case(name)).cloned()
            };
            let both: Vec<CustomAttribute> = old.iter().chain(attrs).cloned().collect();
            let mut changed_groups = Vec::new();
            for rule in &config.rules {
                for name in used_by(rule, &both) {
                    let (before, after) = (find(&old, &name), find(attrs, &name));
                    if let (Some(b), a) = (&before, &after)
                        && a.as_ref().is_none_or(|a| a.kind != b.kind)
                    {
                        let what = if a.is_none() { "removed" } else { "given another type" };
                        return abort(StoreError::Conflict(format!(
                            "custom attribute '{}' cannot be {what}: {} in a filter",
                            b.name,
                            rules_using(&config, &old, &b.name, used_by)
                        )));
                    }
                    if before != after && !changed_groups.contains(&rule.group) {
                        changed_groups.push(rule.group.clone());
                    }
                }
            }
            tx.insert(custom_attributes_key(acct), encode(&attrs))?;
            if !changed_groups.is_empty() {
                hold::record_cause(tx, acct, "customAttributes")?;
            }
            for group in changed_groups {
                queue::mark_scope(tx, acct, &Scope::Group(group))?;
            }
            let detail = json!({"names": names, "changes": attribute_changes(&old, attrs)});
            record(tx, acct, now, actor, "custom-attributes.updated", None, detail)
        })?;
        self.forget_registry(acct);
        Ok(())
    }

    pub fn entitlement(&self, acct: AccountId, uid: &str) -> StoreResult<Option<Entitlement>> {
        get(self.tree(), &key(kind::ENTITLEMENT, acct, &[uid.as_bytes()]))
    }

    /// Every user's applied entitlements, in user-id order.
    pub fn entitlements(&self, acct: AccountId) -> StoreResult<Vec<(String, Entitlement)>> {
        self.scan_by_user(acct, kind::ENTITLEMENT)
    }

    /// The user's failure, its detail as the seats stand now.
    pub fn failure(&self, acct: AccountId, uid: &str) -> StoreResult<Option<Failure>> {
        let Some(failure) = get(self.tree(), &key(kind::FAILURE, acct, &[uid.as_bytes()]))? else {
            return Ok(None);
        };
        let mut one = [(uid.to_string(), failure)];
        self.refresh_details(acct, &mut one)?;
        let [(_, failure)] = one;
        Ok(Some(failure))
    }

    /// Every failure in user-id order, their details as the seats stand now.
    pub fn failures(&self, acct: AccountId) -> StoreResult<Vec<(String, Failure)>> {
        let mut failures = self.stored_failures(acct)?;
        self.refresh_details(acct, &mut failures)?;
        Ok(failures)
    }

    /// A page of the failures for `reason` (all reasons without one), in user-id order: `count` of them
    /// after skipping `skip`, their details as the seats stand now, with how many fail in all and the
    /// products they lack. Only the page is kept in memory.
    pub fn failure_page(
        &self,
        acct: AccountId,
        reason: Option<FailureReason>,
        skip: usize,
        count: usize,
    ) -> StoreResult<FailurePage> {
        let mut page = FailurePage::default();
        if reason == Some(FailureReason::WelcomeEmailFailed) {
            let failures = self.mail_failures(acct)?;
            page.total = failures.len();
            page.failures = failures.into_iter().skip(skip).take(count).collect();
            return Ok(page);
        }
        for item in self.tree().scan_prefix(prefix(kind::FAILURE, acct)) {
            let (k, v) = item?;
            let failure: Failure = decode(&v)?;
            if reason.is_some_and(|r| r != failure.reason) {
                continue;
            }
            page.total += 1;
            page.products.extend(failure.products.iter().cloned());
            if page.total > skip && page.failures.len() < count {
                page.failures.push((super::keys::suffix(&k, false).to_string(), failure));
            }
        }
        self.refresh_details(acct, &mut page.failures)?;
        Ok(page)
    }

    /// Per reason that has failing users, in reason order: how many fail and the products they lack a seat
    /// of. One pass over the failures, where a [`Store::failure_page`] per reason would take one each: the
    /// console's banners and `/metrics` read this on every poll and scrape.
    pub fn failure_summary(
        &self,
        acct: AccountId,
    ) -> StoreResult<std::collections::BTreeMap<FailureReason, FailurePage>> {
        let mut summary: std::collections::BTreeMap<FailureReason, FailurePage> = Default::default();
        for item in self.tree().scan_prefix(prefix(kind::FAILURE, acct)) {
            let failure: Failure = decode(&item?.1)?;
            let entry = summary.entry(failure.reason).or_default();
            entry.total += 1;
            entry.products.extend(failure.products);
        }
        let mail = self.mail_failures(acct)?.len();
        if mail > 0 {
            summary.entry(FailureReason::WelcomeEmailFailed).or_default().total = mail;
        }
        Ok(summary)
    }

    /// The failures as recorded, details as they were when recorded.
    pub(crate) fn stored_failures(&self, acct: AccountId) -> StoreResult<Vec<(String, Failure)>> {
        self.scan_by_user(acct, kind::FAILURE)
    }

    /// Rewrites the detail of `outOfLicenses` failures from the seats as they are now: the detail stays
    /// true while seats are taken, freed and bought.
    fn refresh_details(&self, acct: AccountId, failures: &mut [(String, Failure)]) -> StoreResult<()> {
        let waits = |f: &Failure| f.reason == FailureReason::OutOfLicenses;
        if !failures.iter().any(|(_, f)| waits(f)) {
            return Ok(());
        }
        let products: std::collections::HashMap<String, (Product, u64)> =
            self.products(acct)?.into_iter().map(|(p, used)| (p.id.clone(), (p, used))).collect();
        // Per product of these failures, when each of its waiting users started waiting, oldest first (read
        // one failure at a time: a page of failures does not load them all).
        let mut since: std::collections::HashMap<String, Vec<String>> = failures
            .iter()
            .filter(|(_, f)| waits(f))
            .flat_map(|(_, f)| f.products.iter().map(|p| (p.clone(), Vec::new())))
            .collect();
        for item in self.tree().scan_prefix(prefix(kind::FAILURE, acct)) {
            let f: Failure = decode(&item?.1)?;
            if !waits(&f) {
                continue;
            }
            for p in &f.products {
                if let Some(times) = since.get_mut(p) {
                    times.push(f.since.clone());
                }
            }
        }
        since.values_mut().for_each(|times| times.sort_unstable());
        for (_, failure) in failures.iter_mut().filter(|(_, f)| waits(f)) {
            let parts: Vec<String> = failure
                .products
                .iter()
                .map(|p| {
                    let times = since.get(p.as_str()).map_or(&[][..], Vec::as_slice);
                    // Those who started waiting before this user (ties count, this user aside).
                    let ahead =
                        times.partition_point(|t| t.as_str() <= failure.since.as_str()).saturating_sub(1);
                    let (product, used) = products.get(p).map_or((None, 0), |(p, u)| (Some(p), *u));
                    apply::seats_text(p, product, used, ahead as u64)
                })
                .collect();
            failure.detail = parts.join("; ");
        }
        Ok(())
    }

    fn scan_by_user<T: DeserializeOwned>(&self, acct: AccountId, kind_: u8) -> StoreResult<Vec<(String, T)>> {
        self.tree()
            .scan_prefix(prefix(kind_, acct))
            .map(|item| {
                let (k, v) = item?;
                Ok((super::keys::suffix(&k, false).to_string(), decode(&v)?))
            })
            .collect()
    }

    /// The rules whose directory group was deleted, in number order, each with the group's last known
    /// displayName and a group that exists now under that name, if any.
    pub fn broken_rules(&self, acct: AccountId, config: &SyncConfig) -> StoreResult<Vec<BrokenRule>> {
        let mut broken = Vec::new();
        for rule in &config.rules {
            if self.tree().contains_key(super::resources::GROUPS.record_key(acct, &rule.group))? {
                continue;
            }
            let group_name = config.group_names.get(&rule.group).cloned();
            let mut suggested_group = None;
            if let Some(name) = &group_name
                && let Some(gid) = super::resources::GROUPS.id_by_name(self, acct, name)?
                && let Some(group) = self.group(acct, &gid)?
            {
                let display_name =
                    group.get("displayName").and_then(Value::as_str).unwrap_or(name).to_string();
                suggested_group = Some(SuggestedGroup { id: gid, display_name });
            }
            broken.push(BrokenRule {
                id: rule.id.clone(),
                number: rule.number,
                group: rule.group.clone(),
                group_name,
                broken: "groupDeleted",
                suggested_group,
            });
        }
        Ok(broken)
    }
}
