//! Users: a search by userName (the admin API's search, `rules::find_users`), a page at a time, and a
//! user's explanation (what they have and, for every rule in number order, why it decided, lost or did not
//! match), from the same functions as `GET /admin/v1/users/{id}/entitlements`.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use askama::Template;
use serde_json::Value;

use super::pages::{Layout, and_list, count_of, language_name, page_number, query_escape};
use super::rules::{admin_words, user_group_names};
use super::session::Signed;
use super::{ConsoleError, ConsoleResult, page};
use crate::http::AppState;
use crate::rules::{
    ENTITLEMENT_STATES, RuleLine, RuleOutcome, find_users, object_or_builtin, rule_lines, state_of,
};
use crate::store::sync::{EntitlementState, SettingsTemplate};

/// Users per page.
const PAGE: usize = 50;

fn state_words(state: EntitlementState) -> &'static str {
    match state {
        EntitlementState::Entitled => "Synced",
        EntitlementState::None => "No products",
        EntitlementState::Failed => "Could not be synced",
        EntitlementState::Suspended => "Inactive",
    }
}

fn text_of(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

pub struct UserRow {
    id: String,
    user_name: String,
    display_name: String,
    email: String,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    search: String,
    /// (value, words, chosen) of the state chooser; the first is "Any state".
    states: Vec<(&'static str, &'static str, bool)>,
    state: String,
    users: Vec<UserRow>,
    total: usize,
    page: usize,
    pages: usize,
    /// The search as it goes into a page's address.
    search_query: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersQuery {
    search: Option<String>,
    state: Option<String>,
    page: Option<String>,
}

/// `GET /users?search=&page=`.
pub async fn list(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<UsersQuery>,
) -> ConsoleResult<HttpResponse> {
    let number = page_number(query.page.as_deref())?;
    let search = query.search.as_deref().map(str::trim).unwrap_or_default().to_string();
    let chosen = query.state.as_deref().unwrap_or_default().to_string();
    let wanted = match chosen.as_str() {
        "" => None,
        name => Some(
            ENTITLEMENT_STATES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| *s)
                .ok_or_else(|| ConsoleError::BadRequest(format!("there is no state '{name}'")))?,
        ),
    };
    let acct = signed.caller.account();
    let found = find_users(
        &state.store,
        acct,
        Some(search.as_str()).filter(|s| !s.is_empty()),
        wanted,
        (number - 1) * PAGE,
        PAGE,
    )?;
    let mut states = vec![("", "Any state", chosen.is_empty())];
    states.extend(ENTITLEMENT_STATES.iter().map(|(n, s)| (*n, state_words(*s), *n == chosen)));
    let users = found
        .users
        .into_iter()
        .map(|u| UserRow {
            user_name: text_of(&u.user_name),
            display_name: text_of(&u.display_name),
            email: u.email.unwrap_or_default(),
            state: state_words(u.state),
            id: u.id,
        })
        .collect();
    page(&UsersPage {
        layout: Layout::signed(&signed, "Users", "users"),
        search_query: format!("{}&amp;state={}", query_escape(&search), query_escape(&chosen)),
        search,
        states,
        state: chosen,
        users,
        total: found.total,
        page: number,
        pages: found.total.div_ceil(PAGE).max(1),
    })
}

/// One rule's outcome for the user, in words.
fn line_words(line: &RuleLine) -> String {
    let rule = match &line.group_name {
        Some(group) => format!("Rule {} ({group})", line.number),
        None => format!("Rule {}", line.number),
    };
    match &line.outcome {
        RuleOutcome::Decided => format!("{rule} decided: its products, role and settings are the user's."),
        RuleOutcome::LostTo { lost_to } => {
            format!("{rule} matched, but rule {lost_to} comes first and decides.")
        }
        RuleOutcome::NotMember => format!(
            "{rule} did not match: the user is not a member of {}.",
            line.group_name.as_deref().unwrap_or("its directory group")
        ),
        RuleOutcome::FilterFailed { clause, value } => {
            let value = match value {
                Value::Null => "the user has no value".to_string(),
                other => format!("the user's value is {other}"),
            };
            format!("{rule} did not match: the user fails the filter {clause} ({value}).")
        }
        RuleOutcome::Broken { .. } => {
            format!(
                "{rule} names a directory group that was deleted: it matches nobody until it is re-pointed."
            )
        }
        RuleOutcome::UserInactive => {
            format!("{rule} would match, but the user is inactive: nothing applies.")
        }
    }
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    layout: Layout,
    user_name: String,
    /// (label, value) lines of what the user has.
    facts: Vec<(&'static str, String)>,
    lines: Vec<String>,
    sync_off: bool,
}

/// `GET /users/{id or userName}`.
pub async fn show(
    state: web::Data<AppState>,
    signed: Signed,
    key: web::Path<String>,
) -> ConsoleResult<HttpResponse> {
    let acct = signed.caller.account();
    let store = &state.store;
    let (uid, user) = store
        .resolve_user(acct, &key)?
        .ok_or_else(|| ConsoleError::NotFound(format!("There is no user {key}.")))?;
    let config = store.sync_config(acct)?;
    let lines = rule_lines(store, acct, &config, &uid, &user)?;
    let entitlement = store.entitlement(acct, &uid)?;
    let failure = store.failure(acct, &uid)?;
    let user_state = state_of(entitlement.as_ref(), failure.as_ref(), &user);
    let products: HashMap<String, String> =
        store.products(acct)?.into_iter().map(|(p, _)| (p.id, p.name)).collect();
    let user_groups: HashMap<String, String> = user_group_names(store, acct)?.into_iter().collect();
    let name_of = |ids: &[String]| -> String {
        let names: Vec<String> =
            ids.iter().map(|p| products.get(p).cloned().unwrap_or_else(|| p.clone())).collect();
        if names.is_empty() { "None".into() } else { and_list(&names) }
    };
    let mut facts = vec![("State", state_words(user_state).to_string())];
    match entitlement.as_ref() {
        Some(e) => {
            let rule = e.rule.as_deref().and_then(|id| config.reference(id));
            facts.push((
                "Decided by",
                rule.map_or_else(|| "No rule".to_string(), |r| format!("Rule {}", r.number)),
            ));
            let bundle = e.bundle.clone().unwrap_or_default();
            facts.push(("Products", name_of(&bundle.products)));
            if e.bundle.is_some() {
                facts.push(("Administrator role", admin_words(bundle.admin.as_ref(), &user_groups)));
                facts.push(("Language", language_name(&bundle.language).to_string()));
                let group =
                    bundle.user_group.as_ref().map(|g| user_groups.get(g).cloned().unwrap_or(g.clone()));
                facts.push(("User group", group.unwrap_or_else(|| "No Group".into())));
                let settings = object_or_builtin::<SettingsTemplate>(store, acct, &bundle.settings_template)?
                    .map_or_else(|| bundle.settings_template.clone(), |(t, _)| t.name);
                facts.push(("Settings template", settings));
            }
        }
        None if failure.is_none() => facts.push(("Evaluated", "Not yet".to_string())),
        None => {}
    }
    if let Some(f) = &failure {
        let rule = config
            .reference(&f.rule)
            .map_or_else(|| "a deleted rule".into(), |r| format!("rule {}", r.number));
        facts.push((
            "Could not be synced",
            format!("{} ({rule}; intended products: {})", f.detail, name_of(&f.products)),
        ));
    }
    let words: Vec<String> = lines.iter().map(line_words).collect();
    let user_name = user.get("userName").map(text_of).unwrap_or_default();
    page(&UserPage {
        layout: Layout::signed(&signed, user_name.clone(), "users"),
        user_name,
        facts,
        lines: if words.is_empty() {
            vec![count_of(0, "rule", "rules") + " yet: nothing applies."]
        } else {
            words
        },
        sync_off: !config.enabled,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn line(outcome: RuleOutcome) -> RuleLine {
        RuleLine { id: "r".into(), number: 2, group: "g".into(), group_name: Some("Sales".into()), outcome }
    }

    #[test]
    fn every_outcome_reads_as_a_sentence() {
        assert_eq!(
            line_words(&line(RuleOutcome::Decided)),
            "Rule 2 (Sales) decided: its products, role and settings are the user's."
        );
        assert_eq!(
            line_words(&line(RuleOutcome::LostTo { lost_to: 1 })),
            "Rule 2 (Sales) matched, but rule 1 comes first and decides."
        );
        assert_eq!(
            line_words(&line(RuleOutcome::FilterFailed {
                clause: "title eq \"Manager\"".into(),
                value: json!("Clerk")
            })),
            "Rule 2 (Sales) did not match: the user fails the filter title eq \"Manager\" (the user's value is \"Clerk\")."
        );
        assert_eq!(
            line_words(&line(RuleOutcome::NotMember)),
            "Rule 2 (Sales) did not match: the user is not a member of Sales."
        );
    }
}
