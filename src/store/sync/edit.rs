//! Changes to an account's rule list and sync switch, each a read-modify-write of the engine's settings in
//! one transaction: two admins saving at once both get their change, and a rule saved while sync is
//! switched keeps the switch. A saved rule is checked against the products, objects and directory group it
//! names as the same transaction reads them, so none of them can change or go away in between.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::model::{AdminRole, EmailTemplate, Product, Rule, SyncConfig};
use super::queue::{Scope, mark_scope};
use super::{ObjectKind, config_key, object_key, product_key};
use crate::scim::ScimError;
use crate::store::activity::record;
use crate::store::codec::{encode, tx_get};
use crate::store::keys::AccountId;
use crate::store::resources::GROUPS;
use crate::store::tx::Tx;
use crate::store::{Actor, Store, StoreError, StoreResult, TxResult, abort};

/// A change to the rule list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleEdit {
    /// A new rule at `number` (1 is the highest priority), or last.
    Create {
        rule: Rule,
        number: Option<u32>,
    },
    /// Replaces the rule with `rule.id`, which moves to `number` if one is given.
    Replace {
        rule: Rule,
        number: Option<u32>,
    },
    Delete {
        id: String,
    },
    /// Every rule once, highest priority first.
    Reorder {
        order: Vec<String>,
    },
}

/// What the rules being saved refer to and exists, as the saving transaction reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    pub products: HashMap<String, Product>,
    pub user_groups: HashSet<String>,
    pub settings_templates: HashSet<String>,
    /// The email templates named, the account's edited default included when it has one.
    pub email_templates: HashMap<String, EmailTemplate>,
    /// Directory (SCIM) groups.
    pub groups: HashSet<String>,
}

/// Checks a rule against what it refers to; `Err` says why it is rejected.
pub type RuleCheck<'a> = &'a dyn Fn(&Rule, &References) -> Result<(), String>;

/// What an edit did: its activity entry, who it re-evaluates, and the rule to check before saving.
struct Effect {
    event: &'static str,
    target: Option<String>,
    detail: Value,
    scopes: Vec<Scope>,
    checked: Option<Rule>,
}

/// Numbers 1..n in list order.
pub fn renumber(rules: &mut [Rule]) {
    for (i, r) in rules.iter_mut().enumerate() {
        r.number = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
}

/// Where `number` puts a rule in a list of `len` (0 and past the end are clamped; the admin API refuses
/// them before, see `http::admin::rules`).
fn slot(number: Option<u32>, len: usize) -> usize {
    number.map_or(len, |n| (n.max(1) as usize - 1).min(len))
}

fn position(config: &SyncConfig, id: &str) -> StoreResult<usize> {
    config.rules.iter().position(|r| r.id == id).ok_or_else(|| StoreError::NotFound(format!("rule {id}")))
}

fn group_scopes<'a>(groups: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
    let mut seen = HashSet::new();
    groups.into_iter().filter(|g| seen.insert(*g)).map(|g| Scope::Group(g.to_string())).collect()
}

impl RuleEdit {
    /// Applies the edit to `config`, renumbering the rules 1..n.
    fn apply(&self, config: &mut SyncConfig) -> StoreResult<Effect> {
        let effect = match self {
            RuleEdit::Create { rule, number } => create(config, rule, *number)?,
            RuleEdit::Replace { rule, number } => replace(config, rule, *number)?,
            RuleEdit::Delete { id } => delete(config, id)?,
            RuleEdit::Reorder { order } => reorder(config, order)?,
        };
        renumber(&mut config.rules);
        Ok(effect)
    }
}

fn create(config: &mut SyncConfig, rule: &Rule, number: Option<u32>) -> StoreResult<Effect> {
    if config.rules.iter().any(|r| r.id == rule.id) {
        return Err(StoreError::Conflict(format!("a rule with id {} exists", rule.id)));
    }
    let at = slot(number, config.rules.len());
    config.rules.insert(at, rule.clone());
    Ok(Effect {
        event: "rule.created",
        target: Some(rule.id.clone()),
        detail: json!({"number": at + 1, "group": rule.group, "products": rule.bundle.products}),
        scopes: group_scopes([rule.group.as_str()]),
        checked: Some(rule.clone()),
    })
}

fn replace(config: &mut SyncConfig, rule: &Rule, number: Option<u32>) -> StoreResult<Effect> {
    let at = position(config, &rule.id)?;
    let old = config.rules.remove(at);
    let to = number.map_or(at, |_| slot(number, config.rules.len()));
    let mut new = rule.clone();
    new.number = u32::try_from(to + 1).unwrap_or(u32::MAX);
    config.rules.insert(to, new.clone());
    Ok(Effect {
        event: "rule.updated",
        target: Some(rule.id.clone()),
        detail: json!({"number": to + 1, "previousNumber": at + 1, "group": rule.group, "previousGroup": old.group,
            "products": rule.bundle.products, "changes": crate::store::sync::changes(Some(&old), &new)}),
        scopes: group_scopes([old.group.as_str(), rule.group.as_str()]),
        checked: Some(rule.clone()),
    })
}

fn delete(config: &mut SyncConfig, id: &str) -> StoreResult<Effect> {
    let old = config.rules.remove(position(config, id)?);
    Ok(Effect {
        event: "rule.deleted",
        target: Some(id.to_string()),
        detail: json!({"number": old.number, "group": old.group}),
        scopes: group_scopes([old.group.as_str()]),
        checked: None,
    })
}

fn reorder(config: &mut SyncConfig, order: &[String]) -> StoreResult<Effect> {
    let mut seen = HashSet::new();
    if let Some(dup) = order.iter().find(|id| !seen.insert(id.as_str())) {
        return Err(ScimError::invalid_value(format!("order: rule {dup} is listed twice")).into());
    }
    if let Some(unknown) = order.iter().find(|id| !config.rules.iter().any(|r| r.id == **id)) {
        return Err(StoreError::Rejected(format!("order: no rule {unknown}")));
    }
    if let Some(missing) = config.rules.iter().find(|r| !seen.contains(r.id.as_str())) {
        let message = format!("order: rule {} is missing; list every rule once", missing.id);
        return Err(ScimError::invalid_value(message).into());
    }
    let before: Vec<String> = config.rules.iter().map(|r| r.id.clone()).collect();
    let mut by_id: HashMap<String, Rule> = config.rules.drain(..).map(|r| (r.id.clone(), r)).collect();
    config.rules = order.iter().filter_map(|id| by_id.remove(id)).collect();
    Ok(Effect {
        event: "rules.reordered",
        target: None,
        detail: json!({"from": before, "to": order}),
        // The rules that match each user stay the same; only whose lowest-numbered match moved changes.
        scopes: vec![Scope::Reorder],
        checked: None,
    })
}

/// Records the displayName of every rule's group that exists, keeps the last one seen of groups that no
/// longer do, and forgets groups no rule names.
fn remember_group_names(tx: &Tx<'_>, acct: AccountId, config: &mut SyncConfig) -> TxResult<()> {
    let named: HashSet<&str> = config.rules.iter().map(|r| r.group.as_str()).collect();
    config.group_names.retain(|g, _| named.contains(g.as_str()));
    for gid in named {
        let group: Option<Value> = tx_get(tx, &GROUPS.record_key(acct, gid))?;
        if let Some(name) = group.as_ref().and_then(|g| g.get("displayName")).and_then(Value::as_str) {
            config.group_names.insert(gid.to_string(), name.to_string());
        }
    }
    Ok(())
}

/// Reads, inside `tx`, what `rules` refer to.
fn references(tx: &Tx<'_>, acct: AccountId, rules: &[Rule]) -> TxResult<References> {
    let mut refs = References::default();
    let object = |kind: ObjectKind, id: &str| tx.get(object_key(acct, kind, id)).map(|v| v.is_some());
    for rule in rules {
        if tx.get(GROUPS.record_key(acct, &rule.group))?.is_some() {
            refs.groups.insert(rule.group.clone());
        }
        for p in &rule.bundle.products {
            if let Some(product) = tx_get::<Product>(tx, &product_key(acct, p))? {
                refs.products.insert(p.clone(), product);
            }
        }
        let b = &rule.bundle;
        let managed = match &b.admin {
            Some(AdminRole::Manager { managed_groups, .. }) => managed_groups.as_slice(),
            _ => &[],
        };
        for g in managed.iter().chain(&b.user_group) {
            if object(ObjectKind::UserGroup, g)? {
                refs.user_groups.insert(g.clone());
            }
        }
        if b.settings_template != "default" && object(ObjectKind::SettingsTemplate, &b.settings_template)? {
            refs.settings_templates.insert(b.settings_template.clone());
        }
        let template = object_key(acct, ObjectKind::EmailTemplate, &b.welcome_email);
        if let Some(t) = tx_get::<EmailTemplate>(tx, &template)? {
            refs.email_templates.insert(b.welcome_email.clone(), t);
        }
    }
    Ok(refs)
}

impl Store {
    /// Applies `edit` to the current rules if their version is still `expected_version` (412 otherwise),
    /// checks the rule it saves with `check` (a rejection is [`StoreError::Rejected`]), and puts the users
    /// it can affect up for re-evaluation, all in one transaction.
    pub fn edit_rules(
        &self,
        acct: AccountId,
        edit: &RuleEdit,
        expected_version: Option<u64>,
        actor: &Actor,
        check: RuleCheck<'_>,
    ) -> StoreResult<SyncConfig> {
        let now = self.now();
        self.transact(|tx| {
            let mut config: SyncConfig = tx_get(tx, &config_key(acct))?.unwrap_or_default();
            let before = config.rules.clone();
            if let Some(v) = expected_version
                && v != config.version
            {
                return abort(StoreError::PreconditionFailed(config.version.to_string()));
            }
            let effect = match edit.apply(&mut config) {
                Ok(effect) => effect,
                Err(e) => return abort(e),
            };
            if let Some(rule) = &effect.checked {
                let refs = references(tx, acct, std::slice::from_ref(rule))?;
                if let Err(why) = check(rule, &refs) {
                    return abort(StoreError::Rejected(why));
                }
            }
            config.version += 1;
            config.previous_rules = Some(before.clone());
            remember_group_names(tx, acct, &mut config)?;
            tx.insert(config_key(acct), encode(&config))?;
            for scope in &effect.scopes {
                mark_scope(tx, acct, scope)?;
            }
            let cause = if matches!(edit, RuleEdit::Reorder { .. }) { "reorder" } else { "ruleChange" };
            super::hold::record_cause(tx, acct, cause)?;
            record(tx, acct, now, actor, effect.event, effect.target.as_deref(), effect.detail.clone())?;
            Ok(config)
        })
    }

    /// Switches sync on (everyone is evaluated) or off (entitlements freeze); the rules are left as they
    /// are, their version included.
    pub fn set_sync(&self, acct: AccountId, enabled: bool, actor: &Actor) -> StoreResult<SyncConfig> {
        let now = self.now();
        self.transact(|tx| {
            let mut config: SyncConfig = tx_get(tx, &config_key(acct))?.unwrap_or_default();
            if config.enabled == enabled {
                return Ok(config);
            }
            config.enabled = enabled;
            tx.insert(config_key(acct), encode(&config))?;
            let event = if enabled {
                mark_scope(tx, acct, &Scope::All)?;
                super::hold::record_cause(tx, acct, "syncSwitchedOn")?;
                "sync.enabled"
            } else {
                "sync.disabled"
            };
            record(tx, acct, now, actor, event, None, json!({}))?;
            Ok(config)
        })
    }

    /// What `rules` refer to, read together (for checking a proposed rule list that is not saved).
    pub fn references(&self, acct: AccountId, rules: &[Rule]) -> StoreResult<References> {
        self.transact(|tx| references(tx, acct, rules))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sync::Bundle;

    fn rule(id: &str) -> Rule {
        Rule {
            id: id.into(),
            number: 0,
            group: format!("g-{id}"),
            filter: None,
            description: String::new(),
            bundle: Bundle::default(),
        }
    }

    fn ids(config: &SyncConfig) -> Vec<(&str, u32)> {
        config.rules.iter().map(|r| (r.id.as_str(), r.number)).collect()
    }

    #[test]
    fn edits_keep_the_rules_numbered_one_to_n() {
        let mut config = SyncConfig::default();
        for (id, number) in [("a", None), ("b", Some(1)), ("c", Some(99)), ("d", Some(0))] {
            RuleEdit::Create { rule: rule(id), number }.apply(&mut config).unwrap();
        }
        assert_eq!(ids(&config), [("d", 1), ("b", 2), ("a", 3), ("c", 4)]);
        RuleEdit::Replace { rule: rule("c"), number: Some(2) }.apply(&mut config).unwrap();
        assert_eq!(ids(&config), [("d", 1), ("c", 2), ("b", 3), ("a", 4)]);
        let effect = RuleEdit::Delete { id: "d".into() }.apply(&mut config).unwrap();
        assert_eq!(effect.scopes, [Scope::Group("g-d".into())]);
        assert_eq!(ids(&config), [("c", 1), ("b", 2), ("a", 3)]);
        let order = vec!["a".to_string(), "c".into(), "b".into()];
        RuleEdit::Reorder { order }.apply(&mut config).unwrap();
        assert_eq!(ids(&config), [("a", 1), ("c", 2), ("b", 3)]);
    }

    #[test]
    fn a_reorder_names_every_rule_once() {
        let mut config = SyncConfig::default();
        for id in ["a", "b"] {
            RuleEdit::Create { rule: rule(id), number: None }.apply(&mut config).unwrap();
        }
        let attempt = |order: &[&str]| {
            let order = order.iter().map(|s| s.to_string()).collect();
            RuleEdit::Reorder { order }.apply(&mut config.clone()).err().map(|e| match e {
                StoreError::Invalid(e) => e.detail,
                other => other.to_string(),
            })
        };
        assert_eq!(attempt(&["a", "a"]).unwrap(), "order: rule a is listed twice");
        assert_eq!(attempt(&["a"]).unwrap(), "order: rule b is missing; list every rule once");
        assert_eq!(attempt(&["a", "b", "z"]).unwrap(), "order: no rule z");
        assert_eq!(attempt(&["b", "a"]), None);
    }
}
