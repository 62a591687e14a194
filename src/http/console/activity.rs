//! The Administrative Activity History: newest first, a page at a time (`before` is the cursor the store
//! gives for the next page), filtered by type, actor and user, each entry in words a person reads ("Rule 2
//! moved to 1 by admin token 'ci'").

use actix_web::{HttpResponse, web};
use askama::Template;

use std::collections::HashMap;

use serde_json::Value;

use super::home::cause_words;
use super::pages::{Layout, and_list, capitalised, count_of, query_escape};
use super::session::Signed;
use super::{ConsoleError, ConsoleResult, page};
use crate::http::AppState;
use crate::store::{Activity, ActivityQuery, Actor};

/// Entries per page.
const PAGE: usize = 50;

pub struct Entry {
    time: String,
    actor: String,
    what: String,
    target: String,
    detail: String,
}

/// "rule.created" → "Rule created", "email-template.deleted" → "Email template deleted".
fn words(kind: &str) -> String {
    capitalised(&kind.replace(['.', '_', '-'], " "))
}

/// Whether the changes of an `*.updated` entry are those of a creation (nothing was there before).
fn created(changes: Option<&Value>) -> bool {
    let Some(Value::Object(map)) = changes else { return false };
    !map.is_empty() && map.values().all(|c| c.get("before").is_none_or(Value::is_null))
}

/// "admin:ci" → "admin token 'ci'"; the engine by its name.
fn actor_words(actor: &str) -> String {
    match actor.split_once(':') {
        Some(("admin", name)) => format!("admin token '{name}'"),
        Some(("scim", name)) => format!("SCIM token '{name}'"),
        _ if actor == Actor::engine().0 => "User Sync".to_string(),
        _ => actor.to_string(),
    }
}

fn text(detail: &Value, field: &str) -> Option<String> {
    match detail.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A list of ids as names (products by name), "none" when empty.
fn names(detail: &Value, field: &str, products: &HashMap<String, String>) -> String {
    let list: Vec<String> = detail
        .get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|p| products.get(p).cloned().unwrap_or_else(|| p.to_string()))
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() { "none".into() } else { and_list(&list) }
}

/// `{"field": {"before", "after"}}` as "field: before → after; …".
fn change_words(changes: Option<&Value>) -> String {
    let Some(Value::Object(map)) = changes else { return String::new() };
    let value = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "none".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    map.iter()
        .map(|(k, c)| format!("{k}: {} → {}", value(c.get("before")), value(c.get("after"))))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the entry says happened, in a sentence, with who did it.
fn sentence(a: &Activity, products: &HashMap<String, String>) -> String {
    let d = &a.detail;
    let about = a.target_name.clone().or_else(|| a.target.clone()).unwrap_or_default();
    let number = |f: &str| d.get(f).and_then(Value::as_u64);
    let what = match a.kind.as_str() {
        "rule.created" => format!("Rule {} created", number("number").unwrap_or_default()),
        "rule.updated" => {
            let (to, from) = (number("number"), number("previousNumber"));
            let changes = change_words(d.get("changes"));
            match (from, to) {
                (Some(f), Some(t)) if f != t && changes.is_empty() => format!("Rule {f} moved to {t}"),
                (Some(f), Some(t)) if f != t => format!("Rule {f} moved to {t} and changed ({changes})"),
                _ if changes.is_empty() => format!("Rule {} saved unchanged", to.unwrap_or_default()),
                _ => format!("Rule {} changed ({changes})", to.unwrap_or_default()),
            }
        }
        "rule.deleted" => format!("Rule {} deleted", number("number").unwrap_or_default()),
        "rules.reordered" => {
            let ids = |f: &str| -> Vec<String> {
                d.get(f)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default()
            };
            let (from, to) = (ids("from"), ids("to"));
            let moves: Vec<String> = to
                .iter()
                .enumerate()
                .filter_map(|(i, id)| {
                    let was = from.iter().position(|f| f == id)?;
                    (was != i).then(|| format!("rule {} moved to {}", was + 1, i + 1))
                })
                .collect();
            capitalised(&moves.join(", "))
        }
        "sync.enabled" => "User Sync switched on".into(),
        "sync.disabled" => "User Sync switched off".into(),
        "sync.failed" => format!("{about} could not be synced: {}", text(d, "detail").unwrap_or_default()),
        "entitlement.granted" => format!("{about} was given {}", names(d, "products", products)),
        "entitlement.changed" => format!(
            "{about}'s products changed: {} → {}",
            names(d, "previousProducts", products),
            names(d, "products", products)
        ),
        "entitlement.revoked" => format!("{about} lost {}", names(d, "products", products)),
        "failures.retried" => format!(
            "Retry sync: {} synced, {} still failing",
            number("resolved").unwrap_or_default(),
            number("stillFailing").unwrap_or_default()
        ),
        "product.updated" => {
            let seats = |f: &str| text(d, f).unwrap_or_else(|| "unlimited".into());
            if d.get("created") == Some(&Value::Bool(true)) {
                format!("Product {about} created with {} seats", seats("seats"))
            } else if d.get("seats") != d.get("previousSeats") {
                format!("Product {about}: seats {} → {}", seats("previousSeats"), seats("seats"))
            } else {
                format!("Product {about} changed ({})", change_words(d.get("changes")))
            }
        }
        "token.created" | "token.revoked" => {
            let name = text(d, "name").unwrap_or(about);
            format!("Token '{name}' {}", if a.kind == "token.created" { "created" } else { "revoked" })
        }
        "sync.held" => format!(
            "Revocations of {} held (caused by {})",
            count_of(number("held").unwrap_or_default() as usize, "user", "users"),
            cause_words(&text(d, "cause").unwrap_or_default())
        ),
        "sync.released" => "Held revocations released".into(),
        "domain.verified-elsewhere" => format!(
            "Domain {} verified by account '{}': {} fail existingAccount from their next evaluation",
            text(d, "domain").unwrap_or_default(),
            text(d, "owner").unwrap_or_default(),
            count_of(number("users").unwrap_or_default() as usize, "user", "users")
        ),
        "sync.reverted" => "The held rule change reverted".into(),
        "custom-attributes.updated" => {
            let Some(Value::Object(changes)) = d.get("changes") else {
                return format!("Custom attributes updated by {}", actor_words(&a.actor));
            };
            let lines: Vec<String> = changes
                .iter()
                .map(|(name, c)| match (c.get("before"), c.get("after")) {
                    (None | Some(Value::Null), _) => format!("custom attribute {name} added"),
                    (_, None | Some(Value::Null)) => format!("custom attribute {name} removed"),
                    _ => format!("custom attribute {name} changed"),
                })
                .collect();
            capitalised(&lines.join(", "))
        }
        kind if kind.ends_with(".updated") && created(d.get("changes")) => {
            format!("{} {about} created", words(kind.trim_end_matches(".updated")))
        }
        kind => {
            let changes = change_words(d.get("changes"));
            let mut line = words(kind);
            if !about.is_empty() {
                line = format!("{line}: {about}");
            }
            if !changes.is_empty() {
                line = format!("{line} ({changes})");
            }
            line
        }
    };
    format!("{what} by {}", actor_words(&a.actor))
}

fn entry(a: Activity, products: &HashMap<String, String>) -> Entry {
    Entry {
        detail: sentence(&a, products),
        time: a.time.clone(),
        actor: actor_words(&a.actor),
        what: words(&a.kind),
        target: a.target_name.or(a.target).unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    layout: Layout,
    entries: Vec<Entry>,
    /// The address of the next (older) page, filters kept.
    older: Option<String>,
    kind: String,
    user: String,
    actor: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityParams {
    before: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    user: Option<String>,
    actor: Option<String>,
}

pub async fn list(
    state: web::Data<AppState>,
    signed: Signed,
    params: web::Query<ActivityParams>,
) -> ConsoleResult<HttpResponse> {
    let before = params
        .before
        .as_deref()
        .map(|b| {
            b.parse::<u64>()
                .map_err(|_| ConsoleError::BadRequest(format!("'{b}' is not a page of the history")))
        })
        .transpose()?;
    let filter =
        |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    let (kind, user, actor) = (filter(&params.kind), filter(&params.user), filter(&params.actor));
    let acct = signed.caller.account();
    // A user by id or userName (a deleted user's id is taken as it is), as the admin API does.
    let user_id = match &user {
        Some(u) => Some(state.store.resolve_user(acct, u)?.map_or_else(|| u.clone(), |(uid, _)| uid)),
        None => None,
    };
    let query = ActivityQuery {
        kind: kind.clone(),
        user: user_id,
        target: None,
        actor: actor.clone(),
        limit: PAGE,
        before,
        skip: 0,
    };
    let (entries, next) = state.store.activity(acct, &query)?;
    let products: HashMap<String, String> =
        state.store.products(acct)?.into_iter().map(|(p, _)| (p.id, p.name)).collect();
    let kind = kind.unwrap_or_default();
    let user = user.unwrap_or_default();
    let actor = actor.unwrap_or_default();
    let older = next.map(|n| {
        format!(
            "/console/activity?type={}&user={}&actor={}&before={n}",
            query_escape(&kind),
            query_escape(&user),
            query_escape(&actor)
        )
    });
    page(&ActivityPage {
        layout: Layout::signed(&signed, "Administrative Activity History", "activity"),
        entries: entries.into_iter().map(|a| entry(a, &products)).collect(),
        older,
        kind,
        user,
        actor,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn kinds_read_as_words() {
        assert_eq!(super::words("rule.created"), "Rule created");
        assert_eq!(super::words("failures.retried"), "Failures retried");
    }

    fn activity(kind: &str, actor: &str, detail: serde_json::Value) -> super::Activity {
        super::Activity {
            seq: 1,
            time: "t".into(),
            actor: actor.into(),
            kind: kind.into(),
            target: Some("x".into()),
            target_name: Some("jane@example.com".into()),
            detail,
        }
    }

    #[test]
    fn entries_read_as_sentences() {
        use serde_json::json;
        let products = [("webinar".to_string(), "Webinar".to_string())].into();
        let moved =
            activity("rule.updated", "admin:ci", json!({"number": 1, "previousNumber": 2, "changes": {}}));
        assert_eq!(super::sentence(&moved, &products), "Rule 2 moved to 1 by admin token 'ci'");
        let reorder =
            activity("rules.reordered", "admin:ci", json!({"from": ["a", "b", "c"], "to": ["a", "c", "b"]}));
        assert_eq!(
            super::sentence(&reorder, &products),
            "Rule 3 moved to 2, rule 2 moved to 3 by admin token 'ci'"
        );
        let granted = activity("entitlement.granted", "usersync", json!({"products": ["webinar"]}));
        assert_eq!(super::sentence(&granted, &products), "jane@example.com was given Webinar by User Sync");
        let seats = activity("product.updated", "admin:ops", json!({"seats": 5, "previousSeats": 2}));
        assert_eq!(
            super::sentence(&seats, &products),
            "Product jane@example.com: seats 2 → 5 by admin token 'ops'"
        );
    }
}
