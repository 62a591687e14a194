//! Checking a rule (and the account's custom attributes) before it is saved, with messages that say which
//! field is wrong and why.

use std::collections::HashSet;

use crate::scim::filter::{AttrPath, Filter, check, parse_filter};
use crate::scim::schema::{AttrDef, ResourceSchema, USERSYNC_URN};
use crate::store::sync::{AdminRole, CustomAttribute, References, Rule};

use super::welcome::{builtin_template, language_for};
use super::{LANGUAGES, PRIVILEGES};

/// A rejected rule or attribute list: the field (`products[1]`, `admin.managedGroups[0]`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    pub field: String,
    pub message: String,
}

fn err<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError { field: field.into(), message: message.into() })
}

/// Checks `rule` against what it refers to (`refs`: those of its references that exist) and the account's
/// User schema (for its filter); the first problem found.
pub fn validate_rule(rule: &Rule, refs: &References, users: &ResourceSchema) -> Result<(), RuleError> {
    match rule_problems(rule, refs, users).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Every problem of `rule`, field by field, in the order of its fields.
pub fn rule_problems(rule: &Rule, refs: &References, users: &ResourceSchema) -> Vec<RuleError> {
    let mut out = Vec::new();
    let mut err = |field: String, message: String| out.push(RuleError { field, message });
    if rule.group.is_empty() || !refs.groups.contains(&rule.group) {
        err("group".into(), format!("no directory group '{}' in this account", rule.group));
    }
    if let Some(message) = rule.filter.as_deref().and_then(|f| filter_problem(f, users)) {
        err("filter".into(), message);
    }
    let b = &rule.bundle;
    for (i, p) in b.products.iter().enumerate() {
        let Some(product) = refs.products.get(p) else {
            err(format!("products[{i}]"), format!("unknown product '{p}'"));
            continue;
        };
        if let Some(missing) = product.requires.iter().find(|r| !b.products.contains(r)) {
            err("products".into(), format!("'{p}' requires '{missing}', which the rule does not grant"));
        }
    }
    if let Some(AdminRole::Manager { privileges, managed_groups }) = &b.admin {
        if privileges.is_empty() {
            err("admin.privileges".into(), "a manager needs at least one privilege".into());
        }
        for (i, p) in
            privileges.iter().enumerate().filter(|(_, p)| !PRIVILEGES.iter().any(|(id, _)| id == *p))
        {
            err(format!("admin.privileges[{i}]"), format!("unknown privilege '{p}'"));
        }
        if managed_groups.is_empty() {
            err("admin.managedGroups".into(), "a manager manages at least one user group".into());
        }
        for (i, g) in managed_groups.iter().enumerate().filter(|(_, g)| !refs.user_groups.contains(*g)) {
            err(format!("admin.managedGroups[{i}]"), format!("unknown user group '{g}'"));
        }
    }
    let language_known = LANGUAGES.contains(&b.language.as_str());
    let builtin = builtin_template();
    let template = match refs.email_templates.get(&b.welcome_email) {
        Some(t) => Some(t),
        None if b.welcome_email == "default" => Some(&builtin),
        None => {
            err("welcomeEmail".into(), format!("unknown email template '{}'", b.welcome_email));
            None
        }
    };
    if let Some(t) = template.filter(|t| language_known && language_for(t, &b.language).is_none()) {
        err(
            "welcomeEmail".into(),
            format!(
                "email template '{}' has no {} subject and body and names no fallbackLanguage; add the language or a fallbackLanguage to the template",
                t.id, b.language
            ),
        );
    }
    if !language_known {
        err("language".into(), format!("'{}' is not one of {}", b.language, LANGUAGES.join(", ")));
    }
    if let Some(g) = b.user_group.as_ref().filter(|g| !refs.user_groups.contains(*g)) {
        err("userGroup".into(), format!("unknown user group '{g}'"));
    }
    if b.settings_template != "default" && !refs.settings_templates.contains(&b.settings_template) {
        err("settingsTemplate".into(), format!("unknown settings template '{}'", b.settings_template));
    }
    out
}

/// What is wrong with a rule's filter (`None` when it is empty or fine): its syntax, a value of the wrong
/// type, or an attribute the account's User schema does not have. The check saving a rule makes; the
/// console also asks it while the filter is typed.
pub fn filter_problem(text: &str, users: &ResourceSchema) -> Option<String> {
    if text.trim().is_empty() {
        return None;
    }
    match parse_filter(text) {
        Err(e) => Some(e.detail),
        Ok(filter) => match check(&filter, users) {
            Err(e) => Some(e.detail),
            Ok(_) => known_attributes(&filter, users).err(),
        },
    }
}

/// Every attribute a filter names must exist in the account's User schema (core, enterprise or custom
/// attributes): a misspelt one would be saved and never match. The message names it and the closest
/// known name.
fn known_attributes(filter: &Filter, users: &ResourceSchema) -> Result<(), String> {
    match filter {
        Filter::And(operands) | Filter::Or(operands) => {
            operands.iter().try_for_each(|f| known_attributes(f, users))
        }
        Filter::Not(inner) => known_attributes(inner, users),
        Filter::Present(path) | Filter::Compare(path, _, _) => known_path(path, users).map(drop),
        Filter::ValuePath(path, inner) => {
            let def = known_path(path, users)?;
            known_sub_attributes(inner, path, def)
        }
    }
}

/// The inside of `attr[...]`: names of `parent`'s sub-attributes.
fn known_sub_attributes(filter: &Filter, parent_path: &AttrPath, parent: &AttrDef) -> Result<(), String> {
    match filter {
        Filter::And(operands) | Filter::Or(operands) => {
            operands.iter().try_for_each(|f| known_sub_attributes(f, parent_path, parent))
        }
        Filter::Not(inner) => known_sub_attributes(inner, parent_path, parent),
        Filter::Present(path) | Filter::Compare(path, _, _) | Filter::ValuePath(path, _) => {
            known_sub(parent, &format!("{parent_path}[{}]", path.name), &path.name).map(drop)
        }
    }
}

fn known_path<'s>(path: &AttrPath, users: &'s ResourceSchema) -> Result<&'s AttrDef, String> {
    if let Some(urn) = path.urn.as_deref()
        && !users.knows_schema(urn)
    {
        let schemas: Vec<&str> = std::iter::once(users.core.id.as_str())
            .chain(users.extensions.iter().map(|e| e.id.as_str()))
            .collect();
        return Err(unknown("schema", urn, &schemas));
    }
    let Some(resolved) = users.resolve(path.urn.as_deref(), &path.name) else {
        let names: Vec<&str> = match path.urn.as_deref().and_then(|u| users.extension(u)) {
            Some(ext) => ext.attributes.iter().map(|a| a.name.as_str()).collect(),
            None => users
                .top_level_attrs()
                .chain(users.extensions.iter().flat_map(|e| e.attributes.iter()))
                .map(|a| a.name.as_str())
                .collect(),
        };
        return Err(unknown("attribute", &path.name, &names));
    };
    match path.sub.as_deref() {
        None => Ok(resolved.def),
        Some(sub) => known_sub(resolved.def, &format!("{}.{sub}", path.name), sub),
    }
}

fn known_sub<'s>(parent: &'s AttrDef, written: &str, sub: &str) -> Result<&'s AttrDef, String> {
    if parent.sub_attributes.is_empty() {
        return Err(format!("unknown attribute '{written}': '{}' has no sub-attributes", parent.name));
    }
    parent.sub(sub).ok_or_else(|| {
        let names: Vec<&str> = parent.sub_attributes.iter().map(|a| a.name.as_str()).collect();
        unknown("attribute", written, &names)
    })
}

/// `unknown attribute 'titel'; the closest known one is 'title'`.
fn unknown(what: &str, name: &str, known: &[&str]) -> String {
    let last = name.rsplit(['.', '[']).next().unwrap_or(name);
    let closest = known.iter().min_by_key(|k| distance(&last.to_lowercase(), &k.to_lowercase()));
    match closest {
        Some(c) => format!("unknown {what} '{name}'; the closest known one is '{c}'"),
        None => format!("unknown {what} '{name}'"),
    }
}

/// Levenshtein distance between two strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The custom attributes (lower case) a rule's filter names, qualified by the account's extension URN or
/// not: what a change of the custom attributes must not break and must re-evaluate.
pub fn custom_attributes_used(rule: &Rule, custom: &[CustomAttribute]) -> Vec<String> {
    let Some(filter) = rule.filter.as_deref().and_then(|f| parse_filter(f).ok()) else { return Vec::new() };
    let mut used: Vec<String> = super::top_level_paths(&filter)
        .into_iter()
        .filter(|p| match p.urn.as_deref() {
            Some(urn) => urn.eq_ignore_ascii_case(USERSYNC_URN),
            // Unqualified: custom names never clash with standard ones, and a rule saved before the
            // attribute existed names it this way too.
            None => custom.iter().any(|a| a.name.eq_ignore_ascii_case(&p.name)),
        })
        .map(|p| p.name.to_lowercase())
        .collect();
    used.sort();
    used.dedup();
    used
}

/// Attribute types a custom attribute may have.
pub const CUSTOM_TYPES: [&str; 6] = ["string", "boolean", "integer", "decimal", "dateTime", "reference"];

/// Custom attributes need SCIM attribute names, unique case-insensitively, that no standard User attribute
/// already uses (so that an unqualified filter such as `costCenter eq "x"` means one thing).
pub fn validate_custom_attributes(
    attrs: &[CustomAttribute],
    standard: &ResourceSchema,
) -> Result<(), RuleError> {
    let mut seen = HashSet::new();
    for (i, a) in attrs.iter().enumerate() {
        let field = format!("[{i}]");
        let mut chars = a.name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return err(
                format!("{field}.name"),
                format!("'{}' is not an attribute name (a letter, then letters, digits, '-' or '_')", a.name),
            );
        }
        if !seen.insert(a.name.to_ascii_lowercase()) {
            return err(format!("{field}.name"), format!("'{}' is defined twice", a.name));
        }
        if standard.resolve(None, &a.name).is_some() {
            return err(format!("{field}.name"), format!("'{}' is a standard User attribute", a.name));
        }
        if !CUSTOM_TYPES.contains(&a.kind.as_str()) {
            return err(
                format!("{field}.type"),
                format!("'{}' is not one of {}", a.kind, CUSTOM_TYPES.join(", ")),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{Registry, ResourceKind};
    use crate::store::sync::{Bundle, Product};

    fn references() -> References {
        let product = |id: &str, requires: &[&str]| {
            (
                id.to_string(),
                Product {
                    id: id.into(),
                    name: id.into(),
                    seats: None,
                    requires: requires.iter().map(|r| r.to_string()).collect(),
                },
            )
        };
        References {
            products: [product("meeting", &[]), product("webinar", &["meeting"])].into(),
            user_groups: ["sales-team".to_string()].into(),
            settings_templates: ["no-recording".to_string()].into(),
            email_templates: [(
                "welcome-fr".to_string(),
                crate::store::sync::EmailTemplate {
                    id: "welcome-fr".into(),
                    name: "FR".into(),
                    subject: [("fr_FR".to_string(), "Bienvenue".to_string())].into(),
                    body: [("fr_FR".to_string(), "Bonjour".to_string())].into(),
                    fallback_language: None,
                },
            )]
            .into(),
            groups: ["g1".to_string()].into(),
        }
    }

    fn rule(bundle: Bundle) -> Rule {
        Rule {
            id: "r".into(),
            number: 1,
            group: "g1".into(),
            filter: None,
            description: String::new(),
            bundle,
        }
    }

    #[test]
    fn every_reference_is_checked_with_a_precise_message() {
        let registry = Registry::standard();
        let users = registry.resource(ResourceKind::User);
        let refs = references();
        let ok = Bundle { products: vec!["meeting".into(), "webinar".into()], ..Bundle::default() };
        assert_eq!(validate_rule(&rule(ok.clone()), &refs, users), Ok(()));

        let field = |r: Rule| validate_rule(&r, &refs, users).unwrap_err().to_string();
        assert_eq!(
            field(Rule { group: "nope".into(), ..rule(ok.clone()) }),
            "group: no directory group 'nope' in this account"
        );
        assert!(
            field(Rule { filter: Some("title eq".into()), ..rule(ok.clone()) })
                .starts_with("filter: invalid filter at byte")
        );
        assert!(
            field(Rule { filter: Some("active gt true".into()), ..rule(ok.clone()) }).starts_with("filter:")
        );
        assert_eq!(
            field(rule(Bundle { products: vec!["webinar".into()], ..ok.clone() })),
            "products: 'webinar' requires 'meeting', which the rule does not grant"
        );
        assert_eq!(
            field(rule(Bundle { products: vec!["meeting".into(), "fax".into()], ..ok.clone() })),
            "products[1]: unknown product 'fax'"
        );
        assert_eq!(
            field(rule(Bundle { language: "xx_XX".into(), ..ok.clone() })).split(':').next(),
            Some("language")
        );
        assert_eq!(
            field(rule(Bundle { welcome_email: "nope".into(), ..ok.clone() })),
            "welcomeEmail: unknown email template 'nope'"
        );
        assert_eq!(
            field(rule(Bundle { settings_template: "nope".into(), ..ok.clone() })),
            "settingsTemplate: unknown settings template 'nope'"
        );
        assert_eq!(
            field(rule(Bundle { user_group: Some("nope".into()), ..ok.clone() })),
            "userGroup: unknown user group 'nope'"
        );
        let manager = |privileges: &[&str], groups: &[&str]| {
            Some(AdminRole::Manager {
                privileges: privileges.iter().map(|s| s.to_string()).collect(),
                managed_groups: groups.iter().map(|s| s.to_string()).collect(),
            })
        };
        assert_eq!(
            field(rule(Bundle { admin: manager(&["users.add", "fly"], &["sales-team"]), ..ok.clone() })),
            "admin.privileges[1]: unknown privilege 'fly'"
        );
        assert_eq!(
            field(rule(Bundle { admin: manager(&["users.add"], &["nope"]), ..ok.clone() })),
            "admin.managedGroups[0]: unknown user group 'nope'"
        );
        assert_eq!(
            validate_rule(
                &rule(Bundle { admin: manager(&["users.add"], &["sales-team"]), ..ok.clone() }),
                &refs,
                users
            ),
            Ok(())
        );
        assert_eq!(validate_rule(&rule(Bundle { admin: Some(AdminRole::Full), ..ok }), &refs, users), Ok(()));
    }

    #[test]
    fn custom_attributes_need_fresh_valid_names_and_known_types() {
        let registry = Registry::standard();
        let users = registry.resource(ResourceKind::User);
        let attr = |name: &str, kind: &str| CustomAttribute {
            name: name.into(),
            kind: kind.into(),
            multi_valued: false,
            description: String::new(),
        };
        assert_eq!(
            validate_custom_attributes(&[attr("costCode", "string"), attr("badge", "integer")], users),
            Ok(())
        );
        for (attrs, field) in [
            (vec![attr("1x", "string")], "[0].name"),
            (vec![attr("a", "string"), attr("A", "string")], "[1].name"),
            (vec![attr("title", "string")], "[0].name"),
            (vec![attr("department", "string")], "[0].name"),
            (vec![attr("x", "complex")], "[0].type"),
        ] {
            assert_eq!(validate_custom_attributes(&attrs, users).unwrap_err().field, field);
        }
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;
    use crate::scim::schema::{Registry, ResourceKind};

    #[test]
    fn an_unknown_attribute_is_named_with_the_closest_known_one() {
        let registry = Registry::standard();
        let users = registry.resource(ResourceKind::User);
        let check = |f: &str| known_attributes(&parse_filter(f).unwrap(), users);
        assert_eq!(check("userName sw \"a\" and not (title pr) and emails[type eq \"work\"]"), Ok(()));
        assert_eq!(
            check("usrName eq \"a\""),
            Err("unknown attribute 'usrName'; the closest known one is 'userName'".into())
        );
        assert_eq!(
            check("name.famlyName eq \"a\""),
            Err("unknown attribute 'name.famlyName'; the closest known one is 'familyName'".into())
        );
        assert_eq!(
            check("title.x eq \"a\""),
            Err("unknown attribute 'title.x': 'title' has no sub-attributes".into())
        );
        assert!(
            check("urn:example:nope:title eq \"a\"")
                .unwrap_err()
                .starts_with("unknown schema 'urn:example:nope'")
        );
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
