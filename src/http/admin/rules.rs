//! Rules: list, create (optionally at a number), replace, delete, reorder, and preview a whole proposed
//! list. Every change is validated, renumbers the rules 1..n, and re-evaluates the members of the groups
//! it touches.

use std::collections::{BTreeMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::input::{
    self, Fields, FromFields, MAX_PAGE, NoQuery, PAGING_PARAMS, Paging, Problems, Query, if_match,
    merge_patch,
};
use super::{AdminError, AdminResult, MergePatch, Strict};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::{rule_problems, save_rules};
use crate::scim::schema::ResourceKind;
use crate::store::sync::{AdminRole, BrokenRule, Bundle, References, Rule, RuleEdit, SyncConfig, renumber};
use crate::store::{AccountId, Store};

/// A rule as a client sends it: no id on create; `group` and `products` required; `group` may be the
/// directory group's id or displayName.
#[derive(Debug)]
pub struct RuleInput {
    id: Option<String>,
    number: Option<u32>,
    group: String,
    filter: Option<String>,
    description: Option<String>,
    bundle: Bundle,
}

/// `admin`: `{"access": "full"}` or `{"access": "manager", "privileges": [...], "managedGroups": [...]}`.
fn read_admin(mut f: Fields) -> (Option<AdminRole>, Fields) {
    let access: Option<String> = f.required("access");
    let role = match access.as_deref() {
        Some("full") => Some(AdminRole::Full),
        Some("manager") => {
            let privileges = f.required("privileges");
            let managed_groups = f.required("managedGroups");
            Some(AdminRole::Manager {
                privileges: privileges.unwrap_or_default(),
                managed_groups: managed_groups.unwrap_or_default(),
            })
        }
        Some(other) => {
            f.problem("access", format!("'{other}' is not one of full, manager"));
            None
        }
        None => None,
    };
    (role, f)
}

impl FromFields for RuleInput {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let id = f.optional("id");
        let number = f.optional("number");
        let group: Option<String> = f.required("group");
        let filter = f.optional("filter");
        let description = f.optional("description");
        let products: Option<Vec<String>> = f.required("products");
        let admin = match f.object("admin") {
            Some(nested) => {
                let (role, nested) = read_admin(nested);
                f.absorb(nested);
                role
            }
            None => None,
        };
        let defaults = Bundle::default();
        let bundle = Bundle {
            products: products.clone().unwrap_or_default(),
            admin,
            welcome_email: f.optional("welcomeEmail").unwrap_or(defaults.welcome_email),
            language: f.optional("language").unwrap_or(defaults.language),
            user_group: f.optional("userGroup"),
            settings_template: f.optional("settingsTemplate").unwrap_or(defaults.settings_template),
        };
        // Read-only fields of the answer, which a client may send back unchanged.
        let _: Option<Value> = f.optional("groupName");
        products?;
        Some(RuleInput { id, number, group: group?, filter, description, bundle })
    }
}

impl RuleInput {
    /// The rule, its group named by id (a displayName is looked up).
    fn into_rule(self, store: &Store, acct: AccountId, id: String) -> AdminResult<Rule> {
        let group = store.resolve_group(acct, &self.group)?.unwrap_or(self.group);
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

/// A rule's `number` must be a place in the list: 1 to `last` (a 422 otherwise, never clamped).
fn check_number(number: Option<u32>, last: usize) -> AdminResult<()> {
    match number {
        Some(n) if n == 0 || n as usize > last => Err(input::one(
            StatusCode::UNPROCESSABLE_ENTITY,
            "number",
            format!("{n} is not a place in the list; this rule can be numbered 1 to {last}"),
        )),
        _ => Ok(()),
    }
}

/// Every problem of `rules` against what they refer to, at once (a 422), before anything is saved.
fn check_rules(state: &AppState, acct: AccountId, rules: &[Rule], prefix: &str) -> AdminResult<()> {
    check_rules_against(state, acct, rules, &state.store.references(acct, rules)?, prefix)
}

/// [`check_rules`] against references the caller read.
fn check_rules_against(
    state: &AppState,
    acct: AccountId,
    rules: &[Rule],
    refs: &References,
    prefix: &str,
) -> AdminResult<()> {
    let registry = state.store.registry(acct);
    let mut problems = Problems::default();
    for (i, rule) in rules.iter().enumerate() {
        for e in rule_problems(rule, refs, registry.resource(ResourceKind::User)) {
            let field = if prefix.is_empty() { e.field } else { format!("{prefix}[{i}].{}", e.field) };
            problems.add(field, e.message);
        }
    }
    problems.values()
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

fn list_view(
    store: &Store,
    acct: AccountId,
    config: &SyncConfig,
    paging: Paging,
) -> AdminResult<HttpResponse> {
    let broken = store.broken_rules(acct, config)?;
    let page = paging.page(config.rules.iter()).map(|r| view(store, acct, r, &broken));
    Ok(with_etag(HttpResponse::Ok().json(page), config.version))
}

fn with_etag(res: HttpResponse, version: u64) -> HttpResponse {
    input::with_etag(res, &version.to_string())
}

/// `If-Match` on the rules (the version of the rule list as a weak ETag; every rule carries it).
fn expected_version(req: &HttpRequest) -> AdminResult<Option<u64>> {
    let Some(value) = if_match(req)? else { return Ok(None) };
    value.parse().map(Some).map_err(|_| {
        input::one(StatusCode::BAD_REQUEST, "If-Match", format!("'{value}' is not a version of the rules"))
    })
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
    let saved = save_rules(&state.store, acct, &edit, expected_version(req)?, &caller.0.actor())?;
    state.committed().await?;
    Ok(saved)
}

/// The saved rule `id` as the answer shows it.
fn saved_view(state: &AppState, acct: AccountId, saved: &SyncConfig, id: &str) -> AdminResult<Value> {
    let rule = &saved.rules[position_of(saved, id)?];
    Ok(view(&state.store, acct, rule, &state.store.broken_rules(acct, saved)?))
}

/// `GET /rules?startIndex=&count=`: in number order.
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let paging = Paging::from_query(&Query::parse(&req, &PAGING_PARAMS)?)?;
    let acct = caller.0.account();
    list_view(&state.store, acct, &state.store.sync_config(acct)?, paging)
}

pub async fn get(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let config = state.store.sync_config(acct)?;
    let rule = &config.rules[position_of(&config, &id)?];
    let broken = state.store.broken_rules(acct, &config)?;
    Ok(with_etag(HttpResponse::Ok().json(view(&state.store, acct, rule, &broken)), config.version))
}

/// `POST /rules`: a new rule, at `number` (1 is the highest priority; at most one past the last) or last.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    body: Strict<RuleInput>,
) -> AdminResult<HttpResponse> {
    if body.0.id.is_some() {
        return Err(input::one(StatusCode::BAD_REQUEST, "id", "a new rule gets its id from the server"));
    }
    let acct = caller.0.account();
    let number = body.0.number;
    check_number(number, state.store.sync_config(acct)?.rules.len() + 1)?;
    let rule = body.0.into_rule(&state.store, acct, uuid::Uuid::now_v7().to_string())?;
    check_rules(&state, acct, std::slice::from_ref(&rule), "")?;
    let id = rule.id.clone();
    let saved = save(&state, &caller, &req, RuleEdit::Create { rule, number }).await?;
    let view = saved_view(&state, acct, &saved, &id)?;
    Ok(with_etag(HttpResponse::build(StatusCode::CREATED).json(view), saved.version))
}

/// Replaces rule `id` with `input` (moved to its `number` if it gives one).
async fn replace_with(
    state: &AppState,
    caller: &AdminCaller,
    req: &HttpRequest,
    id: &str,
    input: RuleInput,
) -> AdminResult<HttpResponse> {
    if input.id.as_deref().is_some_and(|b| b != id) {
        return Err(input::one(StatusCode::BAD_REQUEST, "id", "the body's id differs from the path's"));
    }
    let acct = caller.0.account();
    let number = input.number;
    check_number(number, state.store.sync_config(acct)?.rules.len())?;
    let rule = input.into_rule(&state.store, acct, id.to_string())?;
    check_rules(state, acct, std::slice::from_ref(&rule), "")?;
    let saved = save(state, caller, req, RuleEdit::Replace { rule, number }).await?;
    let view = saved_view(state, acct, &saved, id)?;
    Ok(with_etag(HttpResponse::Ok().json(view), saved.version))
}

/// `PUT /rules/{id}`: replaces the whole rule (`group` and `products` required); its number is kept
/// unless the body gives one.
pub async fn replace(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
    body: Strict<RuleInput>,
) -> AdminResult<HttpResponse> {
    replace_with(&state, &caller, &req, &id, body.0).await
}

/// `PATCH /rules/{id}`: a JSON merge patch of the rule; `{"number": 1}` moves it and changes nothing else.
pub async fn patch(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
    patch: MergePatch,
) -> AdminResult<HttpResponse> {
    let config = state.store.sync_config(caller.0.account())?;
    let rule = &config.rules[position_of(&config, &id)?];
    let mut value = serde_json::to_value(rule).unwrap_or_default();
    let moves = patch.0.get("number").is_some_and(|n| !n.is_null());
    merge_patch(&mut value, &patch.0);
    if !moves && let Some(map) = value.as_object_mut() {
        // Without a new number the rule keeps its place.
        map.remove("number");
    }
    let input = RuleInput::from_value(value)?;
    replace_with(&state, &caller, &req, &id, input).await
}

pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    save(&state, &caller, &req, RuleEdit::Delete { id: id.to_string() }).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub struct Order {
    order: Vec<String>,
}

impl FromFields for Order {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        Some(Order { order: f.required("order")? })
    }
}

/// `PUT /rules/order`: every rule once, highest priority first.
pub async fn reorder(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    body: Strict<Order>,
) -> AdminResult<HttpResponse> {
    let saved = save(&state, &caller, &req, RuleEdit::Reorder { order: body.0.order }).await?;
    list_view(&state.store, caller.0.account(), &saved, Paging { start_index: 1, count: MAX_PAGE })
}

pub struct ProposedRules {
    rules: Vec<RuleInput>,
}

impl FromFields for ProposedRules {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let items: Vec<Value> = f.required("rules")?;
        let mut rules = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match Fields::nested(item, &format!("rules[{i}]")) {
                Ok(mut nested) => {
                    let rule = RuleInput::from_fields(&mut nested);
                    f.absorb(nested);
                    rules.extend(rule);
                }
                Err(e) => {
                    for fe in e.errors {
                        f.problem_at(fe.field, fe.message);
                    }
                }
            }
        }
        Some(ProposedRules { rules })
    }
}

/// `POST /rules/preview?view=summary|users&startIndex=&count=`: what a whole proposed rule list (in
/// priority order) would change; nothing is written. `summary`: the counts only; `users`: a page of the
/// users who would change; without `view`: both.
pub async fn preview(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: Strict<ProposedRules>,
) -> AdminResult<HttpResponse> {
    let query = Query::parse(&req, &["view", "startIndex", "count"])?;
    let view = query.choice("view", &["summary", "users"])?;
    let paging = Paging::from_query(&query)?;
    let acct = caller.0.account();
    let mut seen = HashSet::new();
    let mut rules = Vec::with_capacity(body.0.rules.len());
    for (i, input) in body.0.rules.into_iter().enumerate() {
        let id = input.id.clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        if !seen.insert(id.clone()) {
            return Err(input::one(
                StatusCode::BAD_REQUEST,
                format!("rules[{i}].id"),
                format!("rule {id} is listed twice"),
            ));
        }
        rules.push(input.into_rule(&state.store, acct, id)?);
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
    check_rules_against(&state, acct, &rules, &refs, "rules")?;
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
    let mut summary = json!({"evaluated": preview.evaluated, "changing": preview.users.len(),
        "products": preview.products, "runOut": preview.run_out, "wouldFail": preview.would_fail,
        "changes": change_counts(&preview.users), "brokenRules": proposed_broken});
    let page = paging.page(preview.users);
    let body = match view {
        Some("summary") => summary,
        Some(_) => serde_json::to_value(page).unwrap_or_default(),
        None => {
            // Both: the summary, and the page of users under `users` with the list's counts beside it.
            if let Some(map) = summary.as_object_mut() {
                map.insert("totalResults".into(), json!(page.total_results));
                map.insert("startIndex".into(), json!(page.start_index));
                map.insert("itemsPerPage".into(), json!(page.items_per_page));
                map.insert("users".into(), json!(page.resources));
            }
            summary
        }
    };
    Ok(HttpResponse::Ok().json(body))
}

/// How many users each kind of change touches (`products`, `admin`, `language`, ...), and how many would
/// gain or lose each product.
fn change_counts(users: &[crate::rules::UserChange]) -> Value {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut gains: BTreeMap<&str, usize> = BTreeMap::new();
    let mut losses: BTreeMap<&str, usize> = BTreeMap::new();
    for u in users {
        for c in &u.changes {
            *kinds.entry(c).or_default() += 1;
        }
        for p in &u.gains {
            *gains.entry(p).or_default() += 1;
        }
        for p in &u.loses {
            *losses.entry(p).or_default() += 1;
        }
    }
    json!({"byKind": kinds, "gaining": gains, "losing": losses})
}
