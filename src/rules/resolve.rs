//! Rule resolution, a pure function: for one user, the rules whose group contains the user and whose filter
//! matches, in number order; the lowest-numbered one decides the whole bundle, the others lose.

use std::collections::HashSet;

use serde_json::Value;

use crate::scim::ScimResult;
use crate::scim::filter::{Filter, matches, parse_filter};
use crate::scim::schema::ResourceSchema;
use crate::store::is_active;
use crate::store::keys::fold;
use crate::store::sync::{EntitlementState, OutboxMessage, Outcome, Rule, RuleRef};

/// A rule with its filter parsed once.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub rule: Rule,
    pub filter: Option<Filter>,
}

impl CompiledRule {
    pub fn reference(&self) -> RuleRef {
        RuleRef { id: self.rule.id.clone(), number: self.rule.number }
    }
}

/// Parses every rule's filter; the rules come out in number order.
pub fn compile(rules: &[Rule]) -> ScimResult<Vec<CompiledRule>> {
    let mut compiled = rules
        .iter()
        .map(|rule| {
            let filter =
                rule.filter.as_deref().filter(|f| !f.trim().is_empty()).map(parse_filter).transpose()?;
            Ok(CompiledRule { rule: rule.clone(), filter })
        })
        .collect::<ScimResult<Vec<_>>>()?;
    compiled.sort_by_key(|c| c.rule.number);
    Ok(compiled)
}

/// Why a user gets what they get.
#[derive(Debug, Clone)]
pub struct Resolution<'r> {
    pub active: bool,
    /// Every matching rule, lowest number first; the first decides.
    pub matched: Vec<&'r CompiledRule>,
}

impl<'r> Resolution<'r> {
    pub fn deciding(&self) -> Option<&'r CompiledRule> {
        self.matched.first().copied()
    }

    pub fn matched_refs(&self) -> Vec<RuleRef> {
        self.matched.iter().map(|r| r.reference()).collect()
    }
}

/// The rules that match `user`, a member of `groups`. An inactive user matches nothing.
pub fn resolve<'r>(
    user: &Value,
    groups: &HashSet<String>,
    rules: &'r [CompiledRule],
    schema: &ResourceSchema,
) -> Resolution<'r> {
    let active = is_active(user);
    let matched = if active {
        rules
            .iter()
            .filter(|r| {
                groups.contains(&r.rule.group) && r.filter.as_ref().is_none_or(|f| matches(f, user, schema))
            })
            .collect()
    } else {
        Vec::new()
    };
    Resolution { active, matched }
}

/// The outcome to apply for a user (`None`: the user no longer exists). `welcome` renders the welcome
/// message of the deciding rule for this user.
pub fn decide(
    user: Option<&Value>,
    groups: &HashSet<String>,
    rules: &[CompiledRule],
    schema: &ResourceSchema,
    welcome: impl Fn(&Value, &Rule) -> Option<OutboxMessage>,
) -> Outcome {
    let Some(user) = user else { return Outcome::Deleted };
    let resolution = resolve(user, groups, rules, schema);
    if !resolution.active {
        return Outcome::Nothing { state: EntitlementState::Suspended, matched: Vec::new() };
    }
    let Some(deciding) = resolution.deciding() else {
        return Outcome::Nothing { state: EntitlementState::None, matched: Vec::new() };
    };
    let user_name = user.get("userName").and_then(Value::as_str).unwrap_or_default().to_string();
    Outcome::Entitle {
        rule: deciding.reference(),
        matched: resolution.matched_refs(),
        bundle: deciding.rule.bundle.clone(),
        login: fold(&user_name),
        user_name,
        domains: super::domains::login_domains(user),
        welcome: welcome(user, &deciding.rule),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::schema::{Registry, ResourceKind};
    use crate::store::sync::Bundle;

    /// A rule for tests: products only, the rest of the bundle by default.
    pub(in crate::rules) fn rule(
        id: &str,
        number: u32,
        group: &str,
        filter: Option<&str>,
        products: &[&str],
    ) -> Rule {
        Rule {
            id: id.into(),
            number,
            group: group.into(),
            filter: filter.map(str::to_string),
            description: String::new(),
            bundle: Bundle {
                products: products.iter().map(|p| p.to_string()).collect(),
                ..Bundle::default()
            },
        }
    }

    fn groups(list: &[&str]) -> HashSet<String> {
        list.iter().map(|g| g.to_string()).collect()
    }

    #[test]
    fn the_lowest_numbered_matching_rule_decides_and_the_others_lose() {
        let registry = Registry::standard();
        let schema = registry.resource(ResourceKind::User);
        let rules = compile(&[
            rule("r3", 3, "g-all", None, &["meeting"]),
            rule("r1", 1, "g-sales", Some("title eq \"Manager\""), &["meeting", "webinar"]),
            rule("r2", 2, "g-sales", None, &["meeting"]),
        ])
        .unwrap();
        let manager = json!({"userName": "m", "title": "manager"});
        let r = resolve(&manager, &groups(&["g-sales", "g-all"]), &rules, schema);
        assert_eq!(r.deciding().unwrap().rule.id, "r1");
        assert_eq!(r.matched_refs().iter().map(|m| m.number).collect::<Vec<_>>(), [1, 2, 3]);
        let clerk = json!({"userName": "c", "title": "clerk"});
        let r = resolve(&clerk, &groups(&["g-sales", "g-all"]), &rules, schema);
        assert_eq!(r.deciding().unwrap().rule.id, "r2");
        let outsider = json!({"userName": "o"});
        assert!(resolve(&outsider, &groups(&["g-other"]), &rules, schema).deciding().is_none());
    }

    #[test]
    fn inactive_users_match_nothing_and_missing_users_are_deleted() {
        let registry = Registry::standard();
        let schema = registry.resource(ResourceKind::User);
        let rules = compile(&[rule("r1", 1, "g", None, &["meeting"])]).unwrap();
        let inactive = json!({"userName": "i", "active": false});
        let outcome = decide(Some(&inactive), &groups(&["g"]), &rules, schema, |_, _| None);
        assert_eq!(outcome, Outcome::Nothing { state: EntitlementState::Suspended, matched: vec![] });
        assert_eq!(decide(None, &groups(&["g"]), &rules, schema, |_, _| None), Outcome::Deleted);
        let active = json!({"userName": "A@x.com"});
        let Outcome::Entitle { bundle, login, .. } =
            decide(Some(&active), &groups(&["g"]), &rules, schema, |_, _| None)
        else {
            panic!("entitled")
        };
        assert_eq!((bundle.products, login), (vec!["meeting".to_string()], "a@x.com".to_string()));
    }
}
