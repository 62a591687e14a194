//! Rules: list, create (optionally at a number), replace, delete, reorder, and preview a whole proposed
//! list. Every change is validated, renumbers the rules 1..n, and re-evaluates the members of the groups
//! it touches.

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminError, AdminResult, Body};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::{Catalog, validate_rule};
use crate::scim::schema::ResourceKind;
use crate::store::sync::{
    Bundle, ConfigChange, EmailTemplate, ObjectKind, Rule, Scope, SettingsTemplate, SyncConfig, UserGroup,
};
use crate::store::{AccountId, Actor, Store};

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

/// The rule as the API shows it, with its group's name.
fn view(store: &Store, acct: AccountId, rule: &Rule) -> Value {
    let mut v = serde_json::to_value(rule).unwrap_or_default();
    let name = store.group(acct, &rule.group).ok().flatten().and_then(|g| g.get("displayName").cloned());
    if let Some(map) = v.as_object_mut() {
        map.insert("groupName".into(), name.unwrap_or(Value::Null));
    }
    v
}

fn list_view(store: &Store, acct: AccountId, config: &SyncConfig) -> HttpResponse {
    let rules: Vec<Value> = config.rules.iter().map(|r| view(store, acct, r)).collect();
    with_etag(HttpResponse::Ok().json(rules), config.version)
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

fn catalog_check(store: &Store, acct: AccountId, rules: &[&Rule]) -> AdminResult<()> {
    let registry = store.registry(acct);
    let ids = |kind: ObjectKind| -> AdminResult<HashSet<String>> {
        Ok(match kind {
            ObjectKind::UserGroup => {
                store.objects::<UserGroup>(acct, kind)?.into_iter().map(|o| o.id).collect()
            }
            ObjectKind::SettingsTemplate => {
                store.objects::<SettingsTemplate>(acct, kind)?.into_iter().map(|o| o.id).collect()
            }
            ObjectKind::EmailTemplate => {
                store.objects::<EmailTemplate>(acct, kind)?.into_iter().map(|o| o.id).collect()
            }
        })
    };
    let group_exists = |gid: &str| store.group(acct, gid).ok().flatten().is_some();
    let catalog = Catalog {
        products: store
            .products(acct)?
            .into_iter()
            .map(|(p, _)| (p.id.clone(), p))
            .collect::<HashMap<_, _>>(),
        user_groups: ids(ObjectKind::UserGroup)?,
        settings_templates: ids(ObjectKind::SettingsTemplate)?,
        email_templates: ids(ObjectKind::EmailTemplate)?,
        group_exists: &group_exists,
        users: registry.resource(ResourceKind::User),
    };
    for rule in rules {
        validate_rule(rule, &catalog)?;
    }
    Ok(())
}

/// Where rule `id` is in the list, or a 404.
fn position_of(config: &SyncConfig, id: &str) -> AdminResult<usize> {
    config
        .rules
        .iter()
        .position(|r| r.id == id)
        .ok_or_else(|| AdminError::not_found(format!("rule {id} not found")))
}

/// Numbers 1..n in list order.
fn renumber(rules: &mut [Rule]) {
    for (i, r) in rules.iter_mut().enumerate() {
        r.number = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
}

fn group_scopes<'a>(groups: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
    let mut seen = HashSet::new();
    groups.into_iter().filter(|g| seen.insert(g.to_string())).map(|g| Scope::Group(g.to_string())).collect()
}

struct Save<'a> {
    event: &'a str,
    target: Option<&'a str>,
    detail: Value,
    scopes: Vec<Scope>,
}

async fn save(
    state: &AppState,
    acct: AccountId,
    actor: &Actor,
    req: &HttpRequest,
    config: SyncConfig,
    s: Save<'_>,
) -> AdminResult<SyncConfig> {
    let change = ConfigChange {
        config,
        expected_version: expected_version(req)?,
        scopes: s.scopes,
        actor,
        event: s.event,
        target: s.target,
        detail: s.detail,
    };
    let saved = state.store.save_sync_config(acct, change)?;
    state.committed().await;
    Ok(saved)
}

pub async fn list(state: web::Data<AppState>, caller: AdminCaller) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    Ok(list_view(&state.store, acct, &state.store.sync_config(acct)?))
}

pub async fn get(
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let config = state.store.sync_config(acct)?;
    let rule = &config.rules[position_of(&config, &id)?];
    Ok(with_etag(HttpResponse::Ok().json(view(&state.store, acct, rule)), config.version))
}

/// `POST /rules`: a new rule, at `number` (1 is the highest priority) or last.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: Body<RuleInput>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    if body.0.id.is_some() {
        return Err(AdminError::bad_request("id: a new rule gets its id from the server"));
    }
    let position = body.0.number;
    let rule = body.0.into_rule(uuid::Uuid::now_v7().to_string())?;
    catalog_check(&state.store, acct, &[&rule])?;
    let mut config = state.store.sync_config(acct)?;
    let at = position.map_or(config.rules.len(), |n| (n.max(1) as usize - 1).min(config.rules.len()));
    config.rules.insert(at, rule.clone());
    renumber(&mut config.rules);
    let detail = json!({"number": at + 1, "group": rule.group, "products": rule.bundle.products});
    let scopes = group_scopes([rule.group.as_str()]);
    let saved = save(
        &state,
        acct,
        &caller.0.actor(),
        &req,
        config,
        Save { event: "rule.created", target: Some(&rule.id), detail, scopes },
    )
    .await?;
    let created = saved.rules.iter().find(|r| r.id == rule.id).unwrap_or(&rule);
    Ok(with_etag(
        HttpResponse::build(StatusCode::CREATED).json(view(&state.store, acct, created)),
        saved.version,
    ))
}

/// `PUT /rules/{id}`: replaces the rule; its number is kept unless the body gives one.
pub async fn replace(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
    body: Body<RuleInput>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let mut config = state.store.sync_config(acct)?;
    let at = position_of(&config, &id)?;
    if body.0.id.as_deref().is_some_and(|b| b != *id) {
        return Err(AdminError::bad_request("id: the body's id differs from the path's"));
    }
    let position = body.0.number;
    let rule = body.0.into_rule(id.to_string())?;
    catalog_check(&state.store, acct, &[&rule])?;
    let old = config.rules.remove(at);
    let to = position.map_or(at, |n| (n.max(1) as usize - 1).min(config.rules.len()));
    config.rules.insert(to, rule.clone());
    renumber(&mut config.rules);
    let detail = json!({"number": to + 1, "group": rule.group, "previousGroup": old.group, "products": rule.bundle.products});
    let scopes = group_scopes([old.group.as_str(), rule.group.as_str()]);
    let saved = save(
        &state,
        acct,
        &caller.0.actor(),
        &req,
        config,
        Save { event: "rule.updated", target: Some(&id), detail, scopes },
    )
    .await?;
    let updated = saved.rules.iter().find(|r| r.id == *id).unwrap_or(&rule);
    Ok(with_etag(HttpResponse::Ok().json(view(&state.store, acct, updated)), saved.version))
}

pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let mut config = state.store.sync_config(acct)?;
    let at = position_of(&config, &id)?;
    let old = config.rules.remove(at);
    renumber(&mut config.rules);
    let detail = json!({"number": old.number, "group": old.group});
    let scopes = group_scopes([old.group.as_str()]);
    save(
        &state,
        acct,
        &caller.0.actor(),
        &req,
        config,
        Save { event: "rule.deleted", target: Some(&id), detail, scopes },
    )
    .await?;
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
    let acct = caller.0.account();
    let mut config = state.store.sync_config(acct)?;
    let order = body.0.order;
    let mut seen = HashSet::new();
    if let Some(dup) = order.iter().find(|id| !seen.insert(id.as_str())) {
        return Err(AdminError::bad_request(format!("order: rule {dup} is listed twice")));
    }
    if let Some(unknown) = order.iter().find(|id| !config.rules.iter().any(|r| r.id == **id)) {
        return Err(AdminError::unprocessable(format!("order: no rule {unknown}")));
    }
    if let Some(missing) = config.rules.iter().find(|r| !order.contains(&r.id)) {
        return Err(AdminError::bad_request(format!(
            "order: rule {} is missing; list every rule once",
            missing.id
        )));
    }
    let before: Vec<String> = config.rules.iter().map(|r| r.id.clone()).collect();
    let mut by_id: HashMap<String, Rule> = config.rules.drain(..).map(|r| (r.id.clone(), r)).collect();
    config.rules = order.iter().filter_map(|id| by_id.remove(id)).collect();
    renumber(&mut config.rules);
    let detail = json!({"from": before, "to": order});
    let scopes = vec![Scope::Reorder];
    let saved = save(
        &state,
        acct,
        &caller.0.actor(),
        &req,
        config,
        Save { event: "rules.reordered", target: None, detail, scopes },
    )
    .await?;
    Ok(list_view(&state.store, acct, &saved))
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
    catalog_check(&state.store, acct, &rules.iter().collect::<Vec<_>>())?;
    let store = state.store.clone();
    let preview = web::block(move || crate::rules::preview(&store, acct, &rules))
        .await
        .map_err(|e| AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    Ok(HttpResponse::Ok().json(preview))
}
