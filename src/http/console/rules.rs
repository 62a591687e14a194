//! Rules: the list in number order with Move up / Move down on every row and drag and drop, and the
//! "Add rule" form. Every change goes through `rules::save_rules`, as the admin API's do.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::pages::{ConfirmPage, Layout, capitalised, count_of, language_name};
use super::session::{Fields, Signed, SignedForm};
use super::{ConsoleError, ConsoleResult, html, is_htmx, page, redirect};
use crate::http::AppState;
use crate::rules::{
    LANGUAGES, PRIVILEGES, Preview, SaveError, filter_problem, list_objects, preview_rules, save_rules,
};
use crate::scim::filter::parse_filter;
use crate::scim::schema::ResourceKind;
use crate::store::sync::{
    AdminRole, Bundle, EmailTemplate, ObjectKind, Rule, RuleEdit, SettingsTemplate, SyncConfig, UserGroup,
};
use crate::store::{AccountId, ListQuery, Store};

/// One row of the rules table.
pub struct RuleRow {
    id: String,
    number: u32,
    group: String,
    description: String,
    products: String,
    admin: String,
    language: String,
    first: bool,
    last: bool,
}

/// The rules table and what the live region says.
pub struct RulesView {
    csrf: String,
    version: u64,
    rows: Vec<RuleRow>,
    announce: String,
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesPage {
    layout: Layout,
    view: RulesView,
}

#[derive(Template)]
#[template(path = "rules.html", block = "table")]
struct RulesPart {
    view: RulesView,
}

#[derive(Template)]
#[template(path = "announce.html")]
struct Announce<'a> {
    text: &'a str,
}

/// A directory group's display name (its id if it has none or is gone).
fn group_name(store: &Store, acct: AccountId, gid: &str) -> String {
    let group = store.group(acct, gid).ok().flatten();
    group
        .as_ref()
        .and_then(|g| g.get("displayName"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| gid.to_string())
}

/// Names of the account's objects of one kind, by id.
fn object_names<T: serde::de::DeserializeOwned>(
    store: &Store,
    acct: AccountId,
    kind: ObjectKind,
    name: fn(&T) -> (String, String),
) -> ConsoleResult<Vec<(String, String)>> {
    Ok(store.objects::<T>(acct, kind)?.iter().map(name).collect())
}

pub(super) fn user_group_names(store: &Store, acct: AccountId) -> ConsoleResult<Vec<(String, String)>> {
    object_names::<UserGroup>(store, acct, ObjectKind::UserGroup, |g| (g.id.clone(), g.name.clone()))
}

pub(super) fn admin_words(admin: Option<&AdminRole>, user_groups: &HashMap<String, String>) -> String {
    match admin {
        None => "None".into(),
        Some(AdminRole::Full) => "Full access".into(),
        Some(AdminRole::Manager { managed_groups, .. }) => {
            let names: Vec<String> = managed_groups
                .iter()
                .map(|g| user_groups.get(g).cloned().unwrap_or_else(|| g.clone()))
                .collect();
            format!("Manager of {}", names.join(", "))
        }
    }
}

fn rows(store: &Store, acct: AccountId, config: &SyncConfig) -> ConsoleResult<Vec<RuleRow>> {
    let products: HashMap<String, String> =
        store.products(acct)?.into_iter().map(|(p, _)| (p.id, p.name)).collect();
    let user_groups: HashMap<String, String> = user_group_names(store, acct)?.into_iter().collect();
    let n = config.rules.len();
    Ok(config
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let names: Vec<String> = r
                .bundle
                .products
                .iter()
                .map(|p| products.get(p).cloned().unwrap_or_else(|| p.clone()))
                .collect();
            RuleRow {
                id: r.id.clone(),
                number: r.number,
                group: group_name(store, acct, &r.group),
                description: r.description.clone(),
                products: if names.is_empty() { "None".into() } else { names.join(", ") },
                admin: admin_words(r.bundle.admin.as_ref(), &user_groups),
                language: language_name(&r.bundle.language).to_string(),
                first: i == 0,
                last: i + 1 == n,
            }
        })
        .collect())
}

fn view(store: &Store, signed: &Signed, config: &SyncConfig, announce: String) -> ConsoleResult<RulesView> {
    let acct = signed.caller.account();
    Ok(RulesView {
        csrf: signed.csrf.clone(),
        version: config.version,
        rows: rows(store, acct, config)?,
        announce,
    })
}

/// Where rule `id` is in the list, or a 404.
fn position_of(config: &SyncConfig, id: &str) -> ConsoleResult<usize> {
    config
        .rules
        .iter()
        .position(|r| r.id == id)
        .ok_or_else(|| ConsoleError::NotFound(format!("There is no rule {id}.")))
}

/// What the live region says about rule `id` after a change.
fn position_words(store: &Store, acct: AccountId, config: &SyncConfig, id: &str, verb: &str) -> String {
    match config.rules.iter().find(|r| r.id == id) {
        Some(r) => format!(
            "The rule for {} {verb} number {} of {}.",
            group_name(store, acct, &r.group),
            r.number,
            config.rules.len()
        ),
        None => String::new(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQueryParams {
    moved: Option<String>,
    saved: Option<String>,
    deleted: Option<String>,
}

pub async fn list(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<ListQueryParams>,
) -> ConsoleResult<HttpResponse> {
    let acct = signed.caller.account();
    let config = state.store.sync_config(acct)?;
    let announce = match (&query.moved, &query.saved, &query.deleted) {
        (Some(id), _, _) => position_words(&state.store, acct, &config, id, "is now"),
        (None, Some(id), _) => position_words(&state.store, acct, &config, id, "was saved as"),
        (None, None, Some(_)) => "The rule was deleted.".into(),
        (None, None, None) => String::new(),
    };
    let view = view(&state.store, &signed, &config, announce)?;
    page(&RulesPage { layout: Layout::signed(&signed, "Rules", "rules"), view })
}

/// The rules version a form was made from: a change is refused if the rules changed since.
fn version_of(fields: &Fields) -> ConsoleResult<Option<u64>> {
    fields
        .get("version")
        .map(|v| v.parse().map_err(|_| ConsoleError::BadRequest(format!("version '{v}' is not a number"))))
        .transpose()
}

/// Saves a new order and answers: the table and the announcement (htmx), or the page again (303).
async fn save_order(
    req: &HttpRequest,
    state: &AppState,
    signed: &Signed,
    order: Vec<String>,
    version: Option<u64>,
    moved: &str,
) -> ConsoleResult<HttpResponse> {
    let acct = signed.caller.account();
    let saved =
        save_rules(&state.store, acct, &RuleEdit::Reorder { order }, version, &signed.caller.actor())?;
    state.committed().await?;
    if !is_htmx(req) {
        return redirect(req, &format!("/console/rules?moved={}", super::pages::query_escape(moved)));
    }
    let text = position_words(&state.store, acct, &saved, moved, "is now");
    let table = RulesPart { view: view(&state.store, signed, &saved, text.clone())? };
    let body = format!(
        "{}{}",
        table.render().map_err(|_| ConsoleError::Internal)?,
        Announce { text: &text }.render().map_err(|_| ConsoleError::Internal)?
    );
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

/// `POST /rules/{id}/move`: `direction=up|down` by one place; at either end the rule stays.
pub async fn move_rule(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&["direction", "version"])?;
    let config = state.store.sync_config(form.signed.caller.account())?;
    let at = position_of(&config, &id)?;
    let to = match form.fields.get("direction") {
        Some("up") => at.saturating_sub(1),
        Some("down") => (at + 1).min(config.rules.len() - 1),
        other => {
            return Err(ConsoleError::BadRequest(format!("direction must be up or down, not {other:?}")));
        }
    };
    let mut order: Vec<String> = config.rules.iter().map(|r| r.id.clone()).collect();
    order.swap(at, to);
    save_order(&req, &state, &form.signed, order, version_of(&form.fields)?, &id).await
}

/// `POST /rules/order`: the whole order (what drag and drop sends), `moved` naming the dragged rule.
pub async fn reorder(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&["order", "version", "moved"])?;
    let order = form.fields.all("order");
    let moved = form.fields.get("moved").unwrap_or_default().to_string();
    save_order(&req, &state, &form.signed, order, version_of(&form.fields)?, &moved).await
}

/// A choice of a select, radio group or checkbox list.
pub struct Choice {
    value: String,
    label: String,
    selected: bool,
}

fn choices(options: Vec<(String, String)>, selected: &[String]) -> Vec<Choice> {
    options
        .into_iter()
        .map(|(value, label)| Choice { selected: selected.contains(&value), value, label })
        .collect()
}

/// A product's checkbox with its seats.
pub struct ProductChoice {
    id: String,
    name: String,
    seats: String,
    checked: bool,
}

/// The form's values as sent (or empty), and the errors by field.
#[derive(Default)]
pub struct RuleFormValues {
    q: String,
    group: String,
    description: String,
    products: Vec<String>,
    admin: bool,
    manager: bool,
    privileges: Vec<String>,
    managed_groups: Vec<String>,
    welcome_email: String,
    language: String,
    user_group: String,
    settings_template: String,
    filter: String,
}

/// The fields the rule form has.
const RULE_FIELDS: [&str; 15] = [
    "q",
    "group",
    "description",
    "products",
    "admin",
    "access",
    "privileges",
    "managedGroups",
    "welcomeEmail",
    "language",
    "userGroup",
    "settingsTemplate",
    "filter",
    "then",
    "saved",
];

impl RuleFormValues {
    fn from_fields(fields: &Fields) -> ConsoleResult<RuleFormValues> {
        fields.only(&RULE_FIELDS)?;
        let text = |name: &str| fields.get(name).unwrap_or_default().trim().to_string();
        let manager = match fields.get("access") {
            None | Some("full") => false,
            Some("manager") => true,
            Some(other) => {
                return Err(ConsoleError::BadRequest(format!(
                    "access must be full or manager, not '{other}'"
                )));
            }
        };
        Ok(RuleFormValues {
            q: text("q"),
            group: text("group"),
            description: text("description"),
            products: fields.all("products"),
            admin: match fields.get("admin") {
                None => false,
                Some("on") => true,
                Some(other) => {
                    return Err(ConsoleError::BadRequest(format!("admin must be on, not '{other}'")));
                }
            },
            manager,
            privileges: fields.all("privileges"),
            managed_groups: fields.all("managedGroups"),
            welcome_email: fields.get("welcomeEmail").unwrap_or("default").to_string(),
            language: fields.get("language").unwrap_or("en_US").to_string(),
            user_group: text("userGroup"),
            settings_template: fields.get("settingsTemplate").unwrap_or("default").to_string(),
            filter: text("filter"),
        })
    }

    /// The values of a saved rule.
    fn of_rule(rule: &Rule) -> RuleFormValues {
        let b = &rule.bundle;
        let (privileges, managed_groups) = match &b.admin {
            Some(AdminRole::Manager { privileges, managed_groups }) => {
                (privileges.clone(), managed_groups.clone())
            }
            _ => (Vec::new(), Vec::new()),
        };
        RuleFormValues {
            q: String::new(),
            group: rule.group.clone(),
            description: rule.description.clone(),
            products: b.products.clone(),
            admin: b.admin.is_some(),
            manager: matches!(b.admin, Some(AdminRole::Manager { .. })),
            privileges,
            managed_groups,
            welcome_email: b.welcome_email.clone(),
            language: b.language.clone(),
            user_group: b.user_group.clone().unwrap_or_default(),
            settings_template: b.settings_template.clone(),
            filter: rule.filter.clone().unwrap_or_default(),
        }
    }

    /// The rule these values describe; a missing group is the form's own error.
    fn rule(&self, id: String) -> Result<Rule, (String, String)> {
        if self.group.is_empty() {
            return Err(("group".into(), "Choose a directory group.".into()));
        }
        let admin = self.admin.then(|| match self.manager {
            false => AdminRole::Full,
            true => AdminRole::Manager {
                privileges: self.privileges.clone(),
                managed_groups: self.managed_groups.clone(),
            },
        });
        let mut products = self.products.clone();
        products.sort();
        products.dedup();
        Ok(Rule {
            id,
            number: 0,
            group: self.group.clone(),
            filter: (!self.filter.is_empty()).then(|| self.filter.clone()),
            description: self.description.clone(),
            bundle: Bundle {
                products,
                admin,
                welcome_email: self.welcome_email.clone(),
                language: self.language.clone(),
                user_group: (!self.user_group.is_empty()).then(|| self.user_group.clone()),
                settings_template: self.settings_template.clone(),
            },
        })
    }
}

/// A preview in words: per product who gains and loses it and the seats short, then the first users.
pub struct Impact {
    products: Vec<String>,
    users: Vec<String>,
    more: usize,
}

/// How many users an impact lists by name.
const IMPACT_USERS: usize = 20;

fn impact_of(store: &Store, acct: AccountId, preview: &Preview) -> ConsoleResult<Impact> {
    let names: HashMap<String, String> =
        store.products(acct)?.into_iter().map(|(p, _)| (p.id, p.name)).collect();
    let name = |id: &String| names.get(id).cloned().unwrap_or_else(|| id.clone());
    let products = preview
        .products
        .iter()
        .filter(|p| p.gaining > 0 || p.losing > 0)
        .map(|p| {
            let short = match p.shortfall {
                0 => "enough seats".to_string(),
                n => format!("{n} seats short"),
            };
            format!(
                "{}: {} gain it, {} lose it; {short}",
                p.name,
                count_of(p.gaining as usize, "user", "users"),
                count_of(p.losing as usize, "user", "users")
            )
        })
        .collect();
    let users = preview
        .users
        .iter()
        .take(IMPACT_USERS)
        .map(|u| {
            let mut parts = Vec::new();
            if !u.gains.is_empty() {
                parts.push(format!("gains {}", u.gains.iter().map(name).collect::<Vec<_>>().join(", ")));
            }
            if !u.loses.is_empty() {
                parts.push(format!("loses {}", u.loses.iter().map(name).collect::<Vec<_>>().join(", ")));
            }
            if let Some(fail) = &u.would_fail {
                let lacking: Vec<String> = fail.products.iter().map(name).collect();
                parts.push(format!("would fail: out of licenses for {}", lacking.join(", ")));
            }
            if parts.is_empty() {
                parts.push(format!("changes {}", u.changes.join(", ")));
            }
            format!("{}: {}", u.user_name, parts.join("; "))
        })
        .collect();
    Ok(Impact { products, users, more: preview.users.len().saturating_sub(IMPACT_USERS) })
}

/// The rule form page.
pub struct RuleFormView {
    csrf: String,
    first: bool,
    /// Where the form posts: `/console/rules/new`, or the rule's own address when it is edited.
    action: String,
    /// The number of the rule edited (`None`: a new rule).
    editing: Option<u32>,
    /// What saving would change, when the admin asked for it.
    impact: Option<Impact>,
    saved: String,
    values: RuleFormValues,
    groups: Vec<Choice>,
    groups_shown: usize,
    groups_total: usize,
    products: Vec<ProductChoice>,
    privileges: Vec<Choice>,
    managed_groups: Vec<Choice>,
    welcome_emails: Vec<Choice>,
    languages: Vec<Choice>,
    user_groups: Vec<Choice>,
    settings_templates: Vec<Choice>,
    /// (form field, message)
    errors: Vec<(String, String)>,
}

impl RuleFormView {
    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }
}

#[derive(Template)]
#[template(path = "rule_form.html")]
struct RuleFormPage {
    layout: Layout,
    form: RuleFormView,
}

/// The group chooser alone: what the search swaps in as it is typed.
#[derive(Template)]
#[template(path = "rule_form.html", block = "group_choice")]
struct GroupChoicePart {
    form: RuleFormView,
}

/// The form page, or for htmx's search the group chooser only.
fn form_answer(req: &HttpRequest, signed: &Signed, form: RuleFormView) -> ConsoleResult<HttpResponse> {
    if is_htmx(req) {
        return page(&GroupChoicePart { form });
    }
    page(&form_page(signed, form))
}

/// How many directory groups the chooser lists at once; the search narrows them.
const GROUP_CHOICES: usize = 50;

/// Directory groups whose name contains `q` (all when empty), by name, at most [`GROUP_CHOICES`], and
/// how many match in all. The chosen group is always among them.
fn group_choices(
    store: &Store,
    acct: AccountId,
    q: &str,
    chosen: &str,
) -> ConsoleResult<(Vec<Choice>, usize)> {
    let filter = if q.is_empty() {
        None
    } else {
        let literal = q.replace('\\', "\\\\").replace('"', "\\\"");
        Some(
            parse_filter(&format!("displayName co \"{literal}\""))
                .map_err(|e| ConsoleError::BadRequest(e.detail))?,
        )
    };
    let registry = store.registry(acct);
    let schema = registry.resource(ResourceKind::Group);
    let query = ListQuery {
        filter: filter.as_ref(),
        start_index: 1,
        count: GROUP_CHOICES,
        sort_by: Some("displayName"),
        descending: false,
    };
    let page = store.list(acct, ResourceKind::Group, schema, &query)?;
    let mut options: Vec<(String, String)> = page
        .resources
        .iter()
        .filter_map(|g| {
            let id = g.get("id")?.as_str()?.to_string();
            let name = g.get("displayName").and_then(|n| n.as_str()).unwrap_or(&id).to_string();
            Some((id, name))
        })
        .collect();
    if !chosen.is_empty()
        && !options.iter().any(|(id, _)| id == chosen)
        && store.group(acct, chosen)?.is_some()
    {
        options.insert(0, (chosen.to_string(), group_name(store, acct, chosen)));
    }
    Ok((choices(options, &[chosen.to_string()]), page.total))
}

fn form_view(
    store: &Store,
    signed: &Signed,
    values: RuleFormValues,
    errors: Vec<(String, String)>,
    saved: String,
) -> ConsoleResult<RuleFormView> {
    let acct = signed.caller.account();
    let (groups, groups_total) = group_choices(store, acct, &values.q, &values.group)?;
    let products = store
        .products(acct)?
        .into_iter()
        .map(|(p, used)| ProductChoice {
            checked: values.products.contains(&p.id),
            seats: match p.seats {
                Some(total) => format!("{used} of {total} seats used"),
                None => format!("{used} seats used, unlimited"),
            },
            id: p.id,
            name: p.name,
        })
        .collect();
    let privileges = PRIVILEGES.iter().map(|(id, d)| (id.to_string(), d.to_string())).collect();
    let user_groups = user_group_names(store, acct)?;
    // The built-in default first, or the account's edited version of it.
    let welcome: Vec<(String, String)> =
        list_objects::<EmailTemplate>(store, acct)?.into_iter().map(|t| (t.id, t.name)).collect();
    let mut settings = vec![("default".to_string(), "Default".to_string())];
    settings.extend(object_names::<SettingsTemplate>(store, acct, ObjectKind::SettingsTemplate, |t| {
        (t.id.clone(), t.name.clone())
    })?);
    let mut no_group = vec![(String::new(), "No Group".to_string())];
    no_group.extend(user_groups.iter().cloned());
    let languages = LANGUAGES.iter().map(|l| (l.to_string(), language_name(l).to_string())).collect();
    Ok(RuleFormView {
        csrf: signed.csrf.clone(),
        first: store.sync_config(acct)?.rules.is_empty(),
        action: "/console/rules/new".into(),
        editing: None,
        impact: None,
        saved,
        groups_shown: groups.len(),
        groups,
        groups_total,
        products,
        privileges: choices(privileges, &values.privileges),
        managed_groups: choices(user_groups, &values.managed_groups),
        welcome_emails: choices(welcome, std::slice::from_ref(&values.welcome_email)),
        languages: choices(languages, std::slice::from_ref(&values.language)),
        user_groups: choices(no_group, std::slice::from_ref(&values.user_group)),
        settings_templates: choices(settings, std::slice::from_ref(&values.settings_template)),
        values,
        errors,
    })
}

fn form_page(signed: &Signed, form: RuleFormView) -> RuleFormPage {
    let title = match form.editing {
        Some(number) => format!("Rule {number}"),
        None if form.first => "Create your first rule".into(),
        None => "Add rule".into(),
    };
    RuleFormPage { layout: Layout::signed(signed, title, "rules"), form }
}

/// A new rule, or an edit of the rule with this id.
enum Target {
    New,
    Edit(String),
}

/// The form for `target`: an edit posts to the rule's address and is titled with its number.
fn targeted(
    store: &Store,
    acct: AccountId,
    mut view: RuleFormView,
    target: &Target,
) -> ConsoleResult<RuleFormView> {
    if let Target::Edit(id) = target {
        let config = store.sync_config(acct)?;
        let rule = &config.rules[position_of(&config, id)?];
        view.action = format!("/console/rules/{}", super::pages::query_escape(id));
        view.editing = Some(rule.number);
    }
    Ok(view)
}

/// The query as form fields (the group search sends the whole form with GET, so nothing typed is lost).
fn query_fields(req: &HttpRequest) -> ConsoleResult<Fields> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ConsoleError::BadRequest(e.to_string()))?
        .into_inner();
    Ok(Fields(pairs))
}

/// `GET /rules/new`: the empty form, or the form as sent back by its group search (the values travel
/// in the query, so nothing typed is lost).
pub async fn new_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
) -> ConsoleResult<HttpResponse> {
    let fields = query_fields(&req)?;
    let values = RuleFormValues::from_fields(&fields)?;
    let saved = match fields.get("saved") {
        Some(number) => format!("Rule {number} was saved. Add another rule."),
        None => String::new(),
    };
    let form = form_view(&state.store, &signed, values, Vec::new(), saved)?;
    form_answer(&req, &signed, form)
}

/// Which form field a rule error is about (`products[1]` → `products`, `admin.managedGroups[0]` →
/// `managedGroups`).
fn form_field(field: &str) -> String {
    let base = field.split('[').next().unwrap_or(field);
    base.strip_prefix("admin.").unwrap_or(base).to_string()
}

/// `POST /rules/new`: saves the rule last; Save goes to the list, "Save & add another" to a new form.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    save_form(&req, &state, form, Target::New).await
}

/// `POST /rules/{id}`: replaces the rule, which keeps its number.
pub async fn replace(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    save_form(&req, &state, form, Target::Edit(id.into_inner())).await
}

async fn save_form(
    req: &HttpRequest,
    state: &AppState,
    form: SignedForm,
    target: Target,
) -> ConsoleResult<HttpResponse> {
    let values = RuleFormValues::from_fields(&form.fields)?;
    let (another, preview_only) = match (form.fields.get("then"), &target) {
        (None | Some("list"), _) => (false, false),
        (Some("new"), Target::New) => (true, false),
        (Some("preview"), _) => (false, true),
        (Some(other), _) => {
            return Err(ConsoleError::BadRequest(format!("then must be list or new, not '{other}'")));
        }
    };
    let signed = &form.signed;
    let acct = signed.caller.account();
    let refused = |values, field: String, message: String| -> ConsoleResult<HttpResponse> {
        let view = form_view(&state.store, signed, values, vec![(field, message)], String::new())?;
        let view = targeted(&state.store, acct, view, &target)?;
        Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &form_page(signed, view)))
    };
    let id = match &target {
        Target::New => uuid::Uuid::now_v7().to_string(),
        Target::Edit(id) => id.clone(),
    };
    let rule = match values.rule(id.clone()) {
        Ok(rule) => rule,
        Err((field, message)) => return refused(values, field, message),
    };
    if preview_only {
        let mut proposed = state.store.sync_config(acct)?.rules;
        match proposed.iter_mut().find(|r| r.id == id) {
            Some(current) => *current = rule,
            None => proposed.push(rule),
        }
        let store = state.store.clone();
        let preview = match web::block(move || preview_rules(&store, acct, proposed)).await? {
            Ok(preview) => preview,
            Err(SaveError::Rule(e)) => return refused(values, form_field(&e.field), e.message),
            Err(e) => return Err(e.into()),
        };
        let impact = impact_of(&state.store, acct, &preview)?;
        let mut view = form_view(&state.store, signed, values, Vec::new(), String::new())?;
        view.impact = Some(impact);
        let view = targeted(&state.store, acct, view, &target)?;
        return page(&form_page(signed, view));
    }
    let edit = match target {
        Target::New => RuleEdit::Create { rule, number: None },
        Target::Edit(_) => RuleEdit::Replace { rule, number: None },
    };
    let saved = match save_rules(&state.store, acct, &edit, None, &signed.caller.actor()) {
        Ok(saved) => saved,
        Err(SaveError::Rule(e)) => return refused(values, form_field(&e.field), e.message),
        Err(e) => return Err(e.into()),
    };
    state.committed().await?;
    let number = saved.reference(&id).map(|r| r.number).unwrap_or_default();
    if another {
        return redirect(req, &format!("/console/rules/new?saved={number}"));
    }
    redirect(req, &format!("/console/rules?saved={}", super::pages::query_escape(&id)))
}

/// `GET /rules/{id}`: the rule in its form, or (after the group search) the form as it was sent.
pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
) -> ConsoleResult<HttpResponse> {
    let acct = signed.caller.account();
    let config = state.store.sync_config(acct)?;
    let rule = &config.rules[position_of(&config, &id)?];
    let fields = query_fields(&req)?;
    let values = match fields.0.as_slice() {
        [] => RuleFormValues::of_rule(rule),
        // From a broken rule's banner: the rule as saved, pointed at the group suggested for it.
        [(key, group)] if key == "suggested" => {
            let mut values = RuleFormValues::of_rule(rule);
            values.group = group.clone();
            values
        }
        _ => RuleFormValues::from_fields(&fields)?,
    };
    let view = form_view(&state.store, &signed, values, Vec::new(), String::new())?;
    let view = targeted(&state.store, acct, view, &Target::Edit(id.into_inner()))?;
    form_answer(&req, &signed, view)
}

/// `GET /rules/{id}/delete`: asks before deleting.
pub async fn confirm_delete(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
) -> ConsoleResult<HttpResponse> {
    let acct = signed.caller.account();
    let config = state.store.sync_config(acct)?;
    let rule = &config.rules[position_of(&config, &id)?];
    let group = group_name(&state.store, acct, &rule.group);
    page(&ConfirmPage {
        layout: Layout::signed(&signed, format!("Delete rule {}?", rule.number), "rules"),
        csrf: signed.csrf.clone(),
        message: format!(
            "The rule for {group} will be deleted. Its users are evaluated again against the rules that \
             remain: they may lose what it gave them."
        ),
        action: format!("/console/rules/{}/delete", super::pages::query_escape(&id)),
        button: "Delete rule",
        cancel: format!("/console/rules/{}", super::pages::query_escape(&id)),
    })
}

/// `POST /rules/{id}/delete`.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&[])?;
    let signed = &form.signed;
    let edit = RuleEdit::Delete { id: id.into_inner() };
    save_rules(&state.store, signed.caller.account(), &edit, None, &signed.caller.actor())?;
    state.committed().await?;
    redirect(&req, "/console/rules?deleted=1")
}

#[derive(Template)]
#[template(path = "filter_check.html")]
struct FilterCheck {
    problem: Option<String>,
    empty: bool,
}

#[derive(serde::Deserialize)]
pub struct FilterQuery {
    #[serde(default)]
    filter: String,
}

/// `GET /rules/check-filter?filter=`: what saving would say about the filter, as it is typed (htmx swaps
/// the answer in beside the field; the check is the one saving makes, `rules::filter_problem`).
pub async fn check_filter(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<FilterQuery>,
) -> ConsoleResult<HttpResponse> {
    let registry = state.store.registry(signed.caller.account());
    let problem = filter_problem(&query.filter, registry.resource(ResourceKind::User))
        .map(|m| format!("{}.", capitalised(&m)));
    page(&FilterCheck { problem, empty: query.filter.trim().is_empty() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_errors_point_at_form_fields() {
        assert_eq!(form_field("products[1]"), "products");
        assert_eq!(form_field("admin.managedGroups[0]"), "managedGroups");
        assert_eq!(form_field("admin.privileges"), "privileges");
        assert_eq!(form_field("group"), "group");
    }

    #[test]
    fn the_form_builds_each_admin_role() {
        let fields = |extra: &[(&str, &str)]| {
            let mut f = vec![("group".to_string(), "g1".to_string())];
            f.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            RuleFormValues::from_fields(&Fields(f)).unwrap().rule("r".into()).unwrap()
        };
        assert_eq!(fields(&[]).bundle.admin, None);
        assert_eq!(fields(&[("admin", "on"), ("access", "full")]).bundle.admin, Some(AdminRole::Full));
        let manager = fields(&[
            ("admin", "on"),
            ("access", "manager"),
            ("privileges", "users.add"),
            ("managedGroups", "ug"),
        ]);
        assert_eq!(
            manager.bundle.admin,
            Some(AdminRole::Manager {
                privileges: vec!["users.add".into()],
                managed_groups: vec!["ug".into()]
            })
        );
        assert_eq!(fields(&[("access", "manager")]).bundle.admin, None, "the role only with the box ticked");
        let unknown = RuleFormValues::from_fields(&Fields(vec![("colour".into(), "red".into())]));
        assert!(matches!(unknown, Err(ConsoleError::BadRequest(_))));
    }
}
