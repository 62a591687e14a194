//! Why a user gets what they get, rule by rule (a pure function): for every rule in number order, whether
//! it decided, lost to a lower-numbered rule, names a group the user is not in, has a filter the user
//! fails (which clause, and the user's value), or names a directory group that no longer exists.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::scim::filter::{AttrPath, Filter, matches};
use crate::scim::schema::{ResourceKind, ResourceSchema};
use crate::store::sync::{Entitlement, EntitlementState, Failure, Rule, RuleRef, SyncConfig};
use crate::store::{AccountId, Store, StoreError, StoreResult, is_active};

use super::resolve::{CompiledRule, compile};

/// What one rule does for one user.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum RuleOutcome {
    /// The lowest-numbered matching rule: its bundle is the user's.
    Decided,
    /// Matched, but the rule numbered `lost_to` decides.
    #[serde(rename_all = "camelCase")]
    LostTo { lost_to: u32 },
    /// The user is not a member of the rule's directory group.
    NotMember,
    /// The user is in the group but fails the filter: the clause that failed, in standard form, and the
    /// user's value of the attribute it tests (an object by attribute when it tests several).
    FilterFailed { clause: String, value: Value },
    /// The rule's directory group was deleted: it matches nobody until it is pointed at another group.
    Broken { broken: &'static str },
    /// The rule would match, but the user is inactive: nothing applies.
    UserInactive,
}

/// One rule's line of the explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleLine {
    pub id: String,
    pub number: u32,
    pub group: String,
    /// The group's displayName (`None` once deleted).
    pub group_name: Option<String>,
    #[serde(flatten)]
    pub outcome: RuleOutcome,
}

/// Every rule's outcome for `user`, a member of `groups`, in number order. `names` holds the displayName
/// of each rule's directory group that exists; the others were deleted.
pub fn explain(
    user: &Value,
    groups: &HashSet<String>,
    rules: &[CompiledRule],
    schema: &ResourceSchema,
    names: &HashMap<String, String>,
) -> Vec<RuleLine> {
    let active = is_active(user);
    let mut deciding: Option<u32> = None;
    rules
        .iter()
        .map(|r| {
            let outcome = if !names.contains_key(&r.rule.group) {
                RuleOutcome::Broken { broken: "groupDeleted" }
            } else if !groups.contains(&r.rule.group) {
                RuleOutcome::NotMember
            } else if let Some(clause) = r.filter.as_ref().and_then(|f| failed_clause(f, user, schema)) {
                RuleOutcome::FilterFailed {
                    clause: clause.to_string(),
                    value: values_tested(clause, user, schema),
                }
            } else if !active {
                RuleOutcome::UserInactive
            } else if let Some(number) = deciding {
                RuleOutcome::LostTo { lost_to: number }
            } else {
                deciding = Some(r.rule.number);
                RuleOutcome::Decided
            };
            RuleLine {
                id: r.rule.id.clone(),
                number: r.rule.number,
                group: r.rule.group.clone(),
                group_name: names.get(&r.rule.group).cloned(),
                outcome,
            }
        })
        .collect()
}

/// The displayName of every rule's directory group that still exists.
pub fn group_names(store: &Store, acct: AccountId, rules: &[Rule]) -> StoreResult<HashMap<String, String>> {
    let mut names = HashMap::new();
    for rule in rules {
        if names.contains_key(&rule.group) {
            continue;
        }
        if let Some(group) = store.group(acct, &rule.group)? {
            let name = group.get("displayName").and_then(Value::as_str).unwrap_or_default();
            names.insert(rule.group.clone(), name.to_string());
        }
    }
    Ok(names)
}

/// A user's complete explanation: state, what is applied and why, what failed and what the deciding
/// rule intended, and every rule's outcome.
pub fn explain_user(store: &Store, acct: AccountId, uid: &str, user: &Value) -> StoreResult<Value> {
    let config = store.sync_config(acct)?;
    let lines = rule_lines(store, acct, &config, uid, user)?;
    let mut view = entitlement_view(store, acct, &config, uid, user)?;
    let failure = store.failure(acct, uid)?;
    let applied = store.entitlement(acct, uid)?.and_then(|e| e.rule).and_then(|id| config.reference(&id));
    let now_matched: Vec<RuleRef> = lines
        .iter()
        .filter(|l| matches!(l.outcome, RuleOutcome::Decided | RuleOutcome::LostTo { .. }))
        .map(|l| RuleRef { id: l.id.clone(), number: l.number })
        .collect();
    if let Some(map) = view.as_object_mut() {
        if let Some(f) = &failure {
            // The rule that decided and could not be applied, and what it intended.
            map.insert("rule".into(), json!(config.reference(&f.rule)));
            map.insert("matchedRules".into(), json!(now_matched));
            map.insert("intended".into(), json!(f.intended));
        }
        map.insert("appliedRule".into(), json!(applied));
        map.insert("userInactive".into(), json!(!is_active(user)));
        map.insert("syncOff".into(), json!(!config.enabled));
        map.insert("rules".into(), json!(lines));
    }
    Ok(view)
}

/// Every rule's outcome for the stored user `uid`, in number order (what [`explain_user`] lists).
pub fn rule_lines(
    store: &Store,
    acct: AccountId,
    config: &SyncConfig,
    uid: &str,
    user: &Value,
) -> StoreResult<Vec<RuleLine>> {
    let rules = compile(&config.rules).map_err(StoreError::Invalid)?;
    let registry = store.registry(acct);
    let names = group_names(store, acct, &config.rules)?;
    let groups: HashSet<String> = store.groups_of(acct, uid)?.into_iter().collect();
    Ok(explain(user, &groups, &rules, registry.resource(ResourceKind::User), &names))
}

/// A user's state: failing, as applied, or (never evaluated) inactive or without entitlements.
pub fn state_of(
    entitlement: Option<&Entitlement>,
    failure: Option<&Failure>,
    user: &Value,
) -> EntitlementState {
    match (failure, entitlement) {
        (Some(_), _) => EntitlementState::Failed,
        (None, Some(e)) => e.state,
        (None, None) if !is_active(user) => EntitlementState::Suspended,
        (None, None) => EntitlementState::None,
    }
}

/// One user's entitlements as the admin API lists them: state, the applied bundle and its rules, the
/// failure, and whether the engine has evaluated the user yet.
pub fn entitlement_view(
    store: &Store,
    acct: AccountId,
    config: &SyncConfig,
    uid: &str,
    user: &Value,
) -> StoreResult<Value> {
    let entitlement = store.entitlement(acct, uid)?;
    let failure = store.failure(acct, uid)?;
    let bundle = entitlement.as_ref().and_then(|e| e.bundle.clone()).unwrap_or_default();
    let granted = entitlement.as_ref().is_some_and(|e| e.bundle.is_some());
    let evaluated = entitlement.is_some() || failure.is_some();
    Ok(json!({
        "user": uid,
        "userName": user.get("userName"),
        "state": state_of(entitlement.as_ref(), failure.as_ref(), user),
        "evaluated": evaluated,
        "rule": entitlement.as_ref().and_then(|e| e.rule.as_deref()).and_then(|id| config.reference(id)),
        "matchedRules": entitlement.as_ref().map(|e| config.references(&e.matched_rules)).unwrap_or_default(),
        "products": bundle.products,
        "admin": bundle.admin,
        "language": granted.then_some(bundle.language),
        "welcomeEmail": granted.then_some(bundle.welcome_email),
        "userGroup": bundle.user_group,
        "settingsTemplate": granted.then_some(bundle.settings_template),
        "failure": failure.map(|f| json!({"reason": f.reason, "detail": f.detail, "rule": config.reference(&f.rule),
            "intended": f.intended, "products": f.products, "since": f.since})),
        "updated": entitlement.as_ref().map(|e| e.updated.clone()),
    }))
}

/// The smallest part of `filter` that `user` fails, `None` when the user passes it: the first failing
/// operand of an `and` (looked into), an `or` or `not` whole, a single comparison itself.
pub fn failed_clause<'f>(filter: &'f Filter, user: &Value, schema: &ResourceSchema) -> Option<&'f Filter> {
    if matches(filter, user, schema) {
        return None;
    }
    match filter {
        Filter::And(operands) => {
            operands.iter().find_map(|f| failed_clause(f, user, schema)).or(Some(filter))
        }
        _ => Some(filter),
    }
}

/// The attribute paths a filter tests at the top level of a resource (a value path's inner paths are
/// relative to its elements and left out; the value path's own attribute is in).
pub fn top_level_paths(filter: &Filter) -> Vec<&AttrPath> {
    let mut out = Vec::new();
    collect_paths(filter, &mut out);
    out
}

fn collect_paths<'f>(filter: &'f Filter, out: &mut Vec<&'f AttrPath>) {
    match filter {
        Filter::And(operands) | Filter::Or(operands) => operands.iter().for_each(|f| collect_paths(f, out)),
        Filter::Not(inner) => collect_paths(inner, out),
        Filter::Present(path) | Filter::Compare(path, _, _) | Filter::ValuePath(path, _) => {
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
}

/// The user's value of the attribute the clause tests (`null` when the user has none), or an object of
/// them by attribute when it tests several.
fn values_tested(clause: &Filter, user: &Value, schema: &ResourceSchema) -> Value {
    let paths = top_level_paths(clause);
    if let [path] = paths.as_slice() {
        return value_of(path, user, schema);
    }
    let map: Map<String, Value> = paths.iter().map(|p| (p.to_string(), value_of(p, user, schema))).collect();
    Value::Object(map)
}

/// The user's value at `path` (`attr`, `attr.sub`, `urn:attr`), `null` when absent.
fn value_of(path: &AttrPath, user: &Value, schema: &ResourceSchema) -> Value {
    let Some(resolved) = schema.resolve(path.urn.as_deref(), &path.name) else { return Value::Null };
    let Some(value) = resolved.get(user) else { return Value::Null };
    match path.sub.as_deref() {
        None => value.clone(),
        Some(sub) => match value {
            Value::Array(items) => {
                let subs: Vec<Value> = items.iter().filter_map(|i| member(i, sub)).cloned().collect();
                Value::Array(subs)
            }
            other => member(other, sub).cloned().unwrap_or(Value::Null),
        },
    }
}

fn member<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    value.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rules::compile;
    use crate::scim::schema::{Registry, ResourceKind};
    use crate::store::sync::Rule;

    fn rule(id: &str, number: u32, group: &str, filter: Option<&str>) -> Rule {
        crate::rules::resolve::tests::rule(id, number, group, filter, &[])
    }

    #[test]
    fn every_rule_says_what_it_did_for_the_user() {
        let registry = Registry::standard();
        let schema = registry.resource(ResourceKind::User);
        let rules = compile(&[
            rule("r1", 1, "sales", Some("title eq \"Manager\" and emails.type eq \"work\"")),
            rule("r2", 2, "staff", None),
            rule("r3", 3, "gone", None),
            rule("r4", 4, "sales", None),
            rule("r5", 5, "eng", None),
            rule("r6", 6, "sales", Some("title eq \"Engineer\" or title eq \"Manager\"")),
        ])
        .unwrap();
        let user = json!({"userName": "u", "title": "Clerk", "emails": [{"value": "u@x", "type": "work"}]});
        let groups: HashSet<String> = ["sales".to_string(), "staff".into()].into();
        let names: HashMap<String, String> =
            ["sales", "staff", "eng"].iter().map(|g| (g.to_string(), g.to_uppercase())).collect();
        let lines = explain(&user, &groups, &rules, schema, &names);
        let outcomes: Vec<Value> = lines.iter().map(|l| serde_json::to_value(l).unwrap()).collect();
        assert_eq!(
            outcomes,
            [
                json!({"id": "r1", "number": 1, "group": "sales", "groupName": "SALES", "outcome": "filterFailed",
                    "clause": "title eq \"Manager\"", "value": "Clerk"}),
                json!({"id": "r2", "number": 2, "group": "staff", "groupName": "STAFF", "outcome": "decided"}),
                json!({"id": "r3", "number": 3, "group": "gone", "groupName": null, "outcome": "broken", "broken": "groupDeleted"}),
                json!({"id": "r4", "number": 4, "group": "sales", "groupName": "SALES", "outcome": "lostTo", "lostTo": 2}),
                json!({"id": "r5", "number": 5, "group": "eng", "groupName": "ENG", "outcome": "notMember"}),
                json!({"id": "r6", "number": 6, "group": "sales", "groupName": "SALES", "outcome": "filterFailed",
                    "clause": "title eq \"Engineer\" or title eq \"Manager\"", "value": "Clerk"}),
            ]
        );
        let inactive = json!({"userName": "u", "active": false});
        let lines = explain(&inactive, &groups, &rules, schema, &names);
        assert_eq!(lines[1].outcome, RuleOutcome::UserInactive);
        let absent = json!({"userName": "u"});
        let lines = explain(&absent, &groups, &rules, schema, &names);
        assert_eq!(
            lines[0].outcome,
            RuleOutcome::FilterFailed { clause: "title eq \"Manager\"".into(), value: Value::Null }
        );
    }
}
