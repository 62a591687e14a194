//! Rules: list, create (optionally at a number), replace, delete, reorder, and preview a whole proposed
//! list. Every change is validated, renumbers the rules 1..n, and re-evaluates the members of the groups
//! it touches.

use std::collections::HashSet;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminError, AdminResult, Body};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::validate_rule;
use crate::scim::schema::ResourceKind;
use crate::store::sync::{BrokenRule, Bundle, References, Rule, RuleEdit, SyncConfig, renumber};
use crate::store::{AccountId, Store};

/// A rule as a client sends it: no id on create; everything else as in the answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleInput {
    id: Option<String>,
    number: Option<u32>,
    group: Option<String>,
    filter: Option<String>,
    description: Option<String>,
    #[serde(flatten)]
    bundle: Bundle,
}

impl RuleInput {
    fn into_rule(self, id: String) -> AdminResult<Rule> {
        let group = self
            .group
            .filter(|g| !g.is_empty())
            .ok_or_else(|| AdminError::unprocessable("group: a rule needs a directory group"))?;
        let mut bundle = self.bundle;
        bundle.products.sort();
        bundle.products.dedup();
        Ok(Rule {
            id,
            number: self.number.unwrap_or(0),
            group,
            filter: self.filter.filter(|f| !f.trim().is_empty()),
            description: self.description.unwrap_or_default(),
            bundle,
        })
    }
}

/// The rule as the API shows it, with its group's name; a rule whose group was deleted says so
/// (`broken: "groupDeleted"`, the group's last known name, and `suggestedGroup` when a group of that name
/// exists again).
fn view(store: &Store, acct: AccountId, rule: &Rule, broken: &[BrokenRule]) -> Value {
    let mut v = serde_json::to_value(rule).unwrap_or_default();
    let name = store.group(acct, &rule.group).ok().flatten().and_then(|g| g.get("displayName").cloned());
    let broken = broken.iter().find(|b| b.id == rule.id);
    if let Some(map) = v.as_object_mut() {
        let name = name.or_else(|| broken.and_then(|b| b.group_name.clone()).map(Value::String));
        map.insert("groupName".into(), name.unwrap_or(Value::Null));
        map.insert("broken".into(), json!(broken.map(|b| b.broken)));
        map.insert("suggestedGroup".into(), json!(broken.and_then(|b| b.suggested_group.clone())));
    }
    v
}

fn list_view(store: &Store, acct: AccountId, config: &SyncConfig) -> AdminResult<HttpResponse> {
    let broken = store.broken_rules(acct, config)?;
    let rules: Vec<Value> = config.rules.iter().map(|r| view(store, acct, r, &broken)).collect();
    Ok(with_etag(HttpResponse::Ok().json(rules), config.version))
}

fn with_etag(mut res: HttpResponse, version: u64) -> HttpResponse {
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{version}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// `If-Match` on the rule list (its version as a weak ETag).
fn expected_version(req: &HttpRequest) -> AdminResult<Option<u64>> {
    let Some(value) = req.headers().get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    if value.trim() == "*" {
        return Ok(None);
    }
    value
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| AdminError::bad_request(format!("If-Match '{value}' is not a version of the rules")))
}

/// Where rule `id` is in the list, or a 404.
fn position_of(config: &SyncConfig, id: &str) -> AdminResult<usize> {
    config
        .rules
        .iter()
        .position(|r| r.id == id)
        .ok_or_else(|| AdminError::not_found(format!("rule {id} not found")))
}

/// Saves an edit of the rules: the store reads, changes and checks them in one transaction.
async fn save(
    state: &AppState,
    caller: &AdminCaller,
    req: &HttpRequest,
    edit: RuleEdit,
) -> AdminResult<SyncConfig> {
    let acct = caller.0.account();
    let registry = state.store.registry(acct);
    let users = registry.resource(ResourceKind::User);
    let check = |rule: &Rule, refs: &References| validate_rule(rule, refs, users).map_err(|e| e.to_string());
    let saved = state.store.edit_rules(acct, &edit, expected_version(req)?, &caller.0.actor(), &check)?;
    state.committed().await;
    Ok(saved)
}

/// The saved rule `id` as the answer shows it.
fn saved_view(state: &AppState, acct: AccountId, saved: &SyncConfig, id: &str) -> AdminResult<Value> {
    let rule = &saved.rules[position_of(saved, id)?];
    Ok(view(&state.store, acct, rule, &state.store.broken_rules(acct, saved)?))
}

pub async fn list(state: web::Data<AppState>, caller: AdminCaller) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    list_view(&state.store, acct, &state.store.sync_config(acct)?)
}

pub async fn get(
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let config = state.store.sync_config(acct)?;
    let rule = &config.rules[position_of(&config, &id)?];
    let broken = state.store.broken_rules(acct, &config)?;
    Ok(with_etag(HttpResponse::Ok().json(view(&state.store, acct, rule, &broken)), config.version))
}

/// `POST /rules`: a new rule, at `number` (1 is the highest priority) or last.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: Body<RuleInput>,
) -> AdminResult<HttpResponse> {
    if body.0.id.is_some() {
        return Err(AdminError::bad_request("id: a new rule gets its id from the server"));
    }
    let number = body.0.number;
    let rule = body.0.into_rule(uuid::Uuid::now_v7().to_string())?;
    let id = rule.id.clone();
    let saved = save(&state, &caller, &req, RuleEdit::Create { rule, number }).await?;
    let view = saved_view(&state, caller.0.account(), &saved, &id)?;
    Ok(with_etag(HttpResponse::build(StatusCode::CREATED).json(view), saved.version))
}

/// `PUT /rules/{id}`: replaces the rule; its number is kept unless the body gives one.
pub async fn replace(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
    body: Body<RuleInput>,
) -> AdminResult<HttpResponse> {
    if body.0.id.as_deref().is_some_and(|b| b != *id) {
        return Err(AdminError::bad_request("id: the body's id differs from the path's"));
    }
    let number = body.0.number;
    let rule = body.0.into_rule(id.to_string())?;
    let saved = save(&state, &caller, &req, RuleEdit::Replace { rule, number }).await?;
    let view = saved_view(&state, caller.0.account(), &saved, &id)?;
    Ok(with_etag(HttpResponse::Ok().json(view), saved.version))
}

pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    save(&state, &caller, &req, RuleEdit::Delete { id: id.to_string() }).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct Order {
    order: Vec<String>,
}

/// `PUT /rules/order`: every rule once, highest priority first.
pub async fn reorder(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: Body<Order>,
) -> AdminResult<HttpResponse> {
    let saved = save(&state, &caller, &req, RuleEdit::Reorder { order: body.0.order }).await?;
    list_view(&state.store, caller.0.account(), &saved)
}

#[derive(Deserialize)]
pub struct ProposedRules {
    rules: Vec<RuleInput>,
}

/// `POST /rules/preview`: what a whole proposed rule list (in priority order) would change; nothing is
/// written.
pub async fn preview(
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: Body<ProposedRules>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let mut seen = HashSet::new();
    let mut rules = Vec::with_capacity(body.0.rules.len());
    for input in body.0.rules {
        let id = input.id.clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        if !seen.insert(id.clone()) {
            return Err(AdminError::bad_request(format!("rules: rule {id} is listed twice")));
        }
        rules.push(input.into_rule(id)?);
    }
    renumber(&mut rules);
    let mut refs = state.store.references(acct, &rules)?;
    let current = state.store.sync_config(acct)?;
    // A saved rule whose group was deleted, proposed unchanged in its group, is previewed as the broken
    // rule it is (matching nobody) instead of failing the whole preview.
    let broken = state.store.broken_rules(acct, &current)?;
    for rule in &rules {
        if broken.iter().any(|b| b.id == rule.id && b.group == rule.group) {
            refs.groups.insert(rule.group.clone());
        }
    }
    let registry = state.store.registry(acct);
    for (i, rule) in rules.iter().enumerate() {
        validate_rule(rule, &refs, registry.resource(ResourceKind::User))
            .map_err(|e| AdminError::unprocessable(format!("rules[{i}] (rule {}): {e}", rule.number)))?;
    }
    let proposed_broken: Vec<Value> = rules
        .iter()
        .filter_map(|r| {
            let b = broken.iter().find(|b| b.id == r.id && b.group == r.group)?;
            Some(json!({"id": r.id, "number": r.number, "group": r.group, "groupName": b.group_name,
                "broken": b.broken, "suggestedGroup": b.suggested_group}))
        })
        .collect();
    let store = state.store.clone();
    let preview = web::block(move || crate::rules::preview(&store, acct, &rules))
        .await
        .map_err(|e| AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    let mut answer = serde_json::to_value(&preview).unwrap_or_default();
    if let Some(map) = answer.as_object_mut() {
        map.insert("brokenRules".into(), Value::Array(proposed_broken));
    }
    Ok(HttpResponse::Ok().json(answer))
}
