//! The sync switch, products, the objects rules refer to (user groups, settings and email templates),
//! privileges and custom attributes.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::{Value, json};

use super::input::{
    self, Fields, FromBody, FromFields, NoQuery, PAGING_PARAMS, Paging, Problems, Query, check_if_match,
    check_object_id, if_match, merge_patch, with_etag,
};
use super::{AdminError, AdminResult, MergePatch, Strict, created_or_ok, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::{ObjectError, PRIVILEGES, RuleObject, object_or_builtin, save_custom_attributes};
use crate::store::AccountId;
use crate::store::sync::{CustomAttribute, EmailTemplate, ObjectKind, Product, SettingsTemplate, UserGroup};

/// `GET /sync?startIndex=&count=`: `{"enabled", "pending", "failures", "brokenRules", "state", "hold"}`, the
/// held users paged.
pub async fn get_sync(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    Ok(ok(&sync_status(&state, caller.0.account(), super::hold::page(&req)?)?))
}

fn sync_status(state: &AppState, acct: AccountId, (start, count): (usize, usize)) -> AdminResult<Value> {
    let store = &state.store;
    let config = store.sync_config(acct)?;
    // counted in one pass over the failures (no details refreshed): clients poll this
    let failures: usize = store.failure_summary(acct)?.values().map(|f| f.total).sum();
    let mut status = json!({"enabled": config.enabled, "pending": store.pending_count(acct)?,
        "failures": failures, "brokenRules": store.broken_rules(acct, &config)?.len(),
        "store": store.health()});
    status["delivery"] = crate::delivery::subscriptions::queue_status(store, acct)?;
    status["delivery"]["mail"] = super::mail::queue_status(store, acct, state.mail.is_some())?;
    let brake = super::hold::hold_status(store, acct, config.enabled, start, count)?;
    if let (Some(status), Some(brake)) = (status.as_object_mut(), brake.as_object()) {
        status.extend(brake.clone());
    }
    Ok(status)
}

pub struct SyncSwitch {
    enabled: bool,
}

impl FromFields for SyncSwitch {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        Some(SyncSwitch { enabled: f.required("enabled")? })
    }
}

/// `PUT /sync`: switching sync on evaluates everyone; switching it off freezes entitlements.
pub async fn put_sync(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    body: Strict<SyncSwitch>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    state.store.set_sync(acct, body.0.enabled, &caller.0.actor())?;
    state.committed().await?;
    Ok(ok(&sync_status(&state, acct, (1, input::DEFAULT_PAGE))?))
}

#[derive(Serialize)]
struct ProductView {
    id: String,
    name: String,
    seats: Option<u64>,
    used: u64,
    requires: Vec<String>,
}

fn product_view(p: Product, used: u64) -> ProductView {
    ProductView { id: p.id, name: p.name, seats: p.seats, used, requires: p.requires }
}

/// `GET /products?startIndex=&count=`.
pub async fn list_products(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let paging = Paging::from_query(&Query::parse(&req, &PAGING_PARAMS)?)?;
    let products = state.store.products(caller.0.account())?;
    Ok(ok(&paging.page(products.into_iter().map(|(p, used)| product_view(p, used)))))
}

fn product_or_404(state: &AppState, acct: AccountId, id: &str) -> AdminResult<(Product, u64, String)> {
    state
        .store
        .product_with_version(acct, id)?
        .ok_or_else(|| AdminError::not_found(format!("product {id} not found")))
}

pub async fn get_product(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let (product, used, version) = product_or_404(&state, caller.0.account(), &id)?;
    Ok(with_etag(ok(&product_view(product, used)), &version))
}

/// A product as a PUT body (or a PATCH after merging) must give it: every field but `id`.
pub struct ProductInput {
    id: Option<String>,
    name: String,
    seats: Option<u64>,
    requires: Vec<String>,
}

impl FromFields for ProductInput {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let id = f.optional("id");
        let name = f.required("name");
        if !f.has("seats") {
            f.problem("seats", "is required (a number of seats, or null for unlimited)");
        }
        let seats = f.optional("seats");
        let requires = f.required("requires");
        Some(ProductInput { id, name: name?, seats, requires: requires? })
    }
}

/// The id in a path must be an admin object id, and an id in the body must be the same.
fn check_ids(path_id: &str, body_id: Option<&str>) -> AdminResult<()> {
    check_object_id(path_id)?;
    match body_id {
        Some(b) if b != path_id => Err(input::one(
            StatusCode::BAD_REQUEST,
            "id",
            format!("the body's id '{b}' differs from the path's '{path_id}'"),
        )),
        _ => Ok(()),
    }
}

/// Saves a checked product body; the answer carries the product's new ETag.
async fn save_product(
    state: &AppState,
    caller: &AdminCaller,
    id: &str,
    input: ProductInput,
    if_match: Option<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    check_ids(id, input.id.as_deref())?;
    let mut requires = input.requires;
    requires.sort();
    requires.dedup();
    let mut problems = Problems::default();
    if input.name.trim().is_empty() {
        problems.add("name", "must not be empty");
    }
    if requires.iter().any(|r| r == id) {
        problems.add("requires", format!("product '{id}' cannot require itself"));
    }
    problems.values()?;
    let product =
        Product { id: id.to_string(), name: input.name.trim().to_string(), seats: input.seats, requires };
    let (_, _, created) =
        state.store.put_product_if(acct, &product, if_match.as_deref(), &caller.0.actor())?;
    state.committed().await?;
    let (product, used, version) = product_or_404(state, acct, id)?;
    Ok(with_etag(created_or_ok(created, &product_view(product, used)), &version))
}

/// `PUT /products/{id}`: creates or replaces the whole product (`name`, `seats`, `requires` all
/// required); raising the seats retries the users who ran out of them.
pub async fn put_product(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
    body: Strict<ProductInput>,
) -> AdminResult<HttpResponse> {
    save_product(&state, &caller, &id, body.0, if_match(&req)?).await
}

/// `PATCH /products/{id}`: a JSON merge patch of the product (`{"seats": 30}` changes only the seats).
pub async fn patch_product(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
    patch: MergePatch,
) -> AdminResult<HttpResponse> {
    let (product, _, version) = product_or_404(&state, caller.0.account(), &id)?;
    let wanted = if_match(&req)?;
    check_if_match(wanted.as_deref(), &version, &format!("product {id}"))?;
    let mut value = serde_json::to_value(&product).unwrap_or_default();
    merge_patch(&mut value, &patch.0);
    let input = ProductInput::from_value(value)?;
    save_product(&state, &caller, &id, input, Some(version)).await
}

pub async fn delete_product(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    if let Some(wanted) = if_match(&req)? {
        let (_, _, version) = product_or_404(&state, acct, &id)?;
        check_if_match(Some(&wanted), &version, &format!("product {id}"))?;
    }
    state.store.delete_product(acct, &id, &caller.0.actor())?;
    state.committed().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An admin-defined object type: how a body is read (its checks, built-in version and saving are the
/// shared [`RuleObject`]'s).
pub trait AdminObject: FromFields + RuleObject {}

impl<T: FromFields + RuleObject> AdminObject for T {}

/// `name`: required.
fn read_name(f: &mut Fields) -> Option<String> {
    f.required("name")
}

impl FromFields for UserGroup {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let id = f.optional("id").unwrap_or_default();
        Some(UserGroup { id, name: read_name(f)? })
    }
}

impl FromFields for SettingsTemplate {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let id = f.optional("id").unwrap_or_default();
        let name = read_name(f);
        let settings = f.required::<Value>("settings");
        if settings.as_ref().is_some_and(|s| !s.is_object()) {
            f.problem("settings", "must be an object");
        }
        Some(SettingsTemplate { id, name: name?, settings: settings? })
    }
}

impl FromFields for EmailTemplate {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let id = f.optional("id").unwrap_or_default();
        let name = read_name(f);
        let subject = f.required("subject");
        let body = f.required("body");
        let fallback_language = f.optional("fallbackLanguage");
        Some(EmailTemplate { id, name: name?, subject: subject?, body: body?, fallback_language })
    }
}

pub fn object_routes(cfg: &mut web::ServiceConfig) {
    object_resource::<UserGroup>(cfg, "/user-groups");
    object_resource::<SettingsTemplate>(cfg, "/settings-templates");
    object_resource::<EmailTemplate>(cfg, "/email-templates");
}

fn object_resource<T: AdminObject>(cfg: &mut web::ServiceConfig, path: &str) {
    cfg.service(resource!(path, get => list_objects::<T>));
    if T::KIND == ObjectKind::EmailTemplate {
        cfg.service(resource!(format!("{path}/{{id}}/preview"), post => super::templates::preview));
    }
    cfg.service(resource!(format!("{path}/{{id}}"),
        get => get_object::<T>, put => put_object::<T>, patch => patch_object::<T>, delete => delete_object::<T>));
}

/// The stored object `id` with its version, else the built-in one (versioned `builtin`), else 404.
fn object_or_404<T: AdminObject>(state: &AppState, acct: AccountId, id: &str) -> AdminResult<(T, String)> {
    object_or_builtin::<T>(&state.store, acct, id)?
        .ok_or_else(|| AdminError::not_found(format!("{} {id} not found", T::KIND.noun())))
}

/// `GET /{objects}?startIndex=&count=`: the built-in default first where the kind has one.
async fn list_objects<T: AdminObject>(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let paging = Paging::from_query(&Query::parse(&req, &PAGING_PARAMS)?)?;
    Ok(ok(&paging.page(crate::rules::list_objects::<T>(&state.store, caller.0.account())?)))
}

async fn get_object<T: AdminObject>(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let (object, version) = object_or_404::<T>(&state, caller.0.account(), &id)?;
    Ok(with_etag(ok(&object), &version))
}

/// Checks and saves an object read from a body; the answer carries its new ETag.
async fn save_object<T: AdminObject>(
    state: &AppState,
    caller: &AdminCaller,
    id: &str,
    object: T,
    if_match: Option<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    check_ids(id, Some(object.id()).filter(|b| !b.is_empty()))?;
    let created =
        crate::rules::save_object(&state.store, acct, id, object, if_match.as_deref(), &caller.0.actor())
            .map_err(object_error)?;
    state.committed().await?;
    let (object, version) = object_or_404::<T>(state, acct, id)?;
    Ok(with_etag(created_or_ok(created, &object), &version))
}

/// A shared object error as the admin API answers it: every value problem at once (422), a built-in
/// object (409), or the store's error.
fn object_error(e: ObjectError) -> AdminError {
    match e {
        ObjectError::Invalid(list) => {
            let mut problems = Problems::default();
            for (field, message) in list {
                problems.add(field, message);
            }
            problems.values().err().unwrap_or_else(|| AdminError::unprocessable("invalid"))
        }
        ObjectError::BuiltIn(m) => AdminError::conflict(m),
        ObjectError::Store(e) => e.into(),
    }
}

/// `PUT /{objects}/{id}`: creates or replaces the whole object; every field but `id` is required.
async fn put_object<T: AdminObject>(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
    body: Strict<T>,
) -> AdminResult<HttpResponse> {
    save_object(&state, &caller, &id, body.0, if_match(&req)?).await
}

/// `PATCH /{objects}/{id}`: a JSON merge patch of the object (of the built-in default where it is
/// editable).
async fn patch_object<T: AdminObject>(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
    patch: MergePatch,
) -> AdminResult<HttpResponse> {
    let (object, version) = object_or_404::<T>(&state, caller.0.account(), &id)?;
    let wanted = if_match(&req)?;
    check_if_match(wanted.as_deref(), &version, &format!("{} {id}", T::KIND.noun()))?;
    let mut value = serde_json::to_value(&object).unwrap_or_default();
    merge_patch(&mut value, &patch.0);
    let object = T::from_value(value)?;
    let expected = if version == "builtin" { None } else { Some(version) };
    save_object(&state, &caller, &id, object, expected).await
}

/// `DELETE /{objects}/{id}`: deletes an object no rule refers to; on an edited built-in default it
/// brings the built-in one back.
async fn delete_object<T: AdminObject>(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let (_, version) = object_or_404::<T>(&state, acct, &id)?;
    check_if_match(if_match(&req)?.as_deref(), &version, &format!("{} {id}", T::KIND.noun()))?;
    crate::rules::delete_object::<T>(&state.store, acct, &id, &caller.0.actor()).map_err(object_error)?;
    state.committed().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /privileges?startIndex=&count=`: the fixed list a manager role chooses from.
pub async fn privileges(req: HttpRequest, _caller: AdminCaller) -> AdminResult<HttpResponse> {
    let paging = Paging::from_query(&Query::parse(&req, &PAGING_PARAMS)?)?;
    Ok(ok(&paging
        .page(PRIVILEGES.iter().map(|(id, description)| json!({"id": id, "description": description})))))
}

/// `GET /custom-attributes`: the whole list, with the list's ETag (`W/"none"` before any was set).
pub async fn get_custom_attributes(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
) -> AdminResult<HttpResponse> {
    let (attrs, version) = state.store.custom_attributes_with_version(caller.0.account())?;
    Ok(with_etag(ok(&attrs), attributes_version(&version)))
}

/// The ETag of the custom attributes: `none` stands for a list never set.
fn attributes_version(version: &str) -> &str {
    if version.is_empty() { "none" } else { version }
}

impl FromFields for CustomAttribute {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let name = f.required("name");
        let kind = f.required("type");
        let multi_valued = f.optional("multiValued").unwrap_or(false);
        let description = f.optional("description").unwrap_or_default();
        Some(CustomAttribute { name: name?, kind: kind?, multi_valued, description })
    }
}

/// The whole list of custom attributes, each read strictly.
pub struct CustomAttributes(Vec<CustomAttribute>);

impl FromBody for CustomAttributes {
    fn from_json(value: Value) -> AdminResult<Self> {
        let Value::Array(items) = value else {
            return Err(input::one(StatusCode::BAD_REQUEST, "body", "must be an array of custom attributes"));
        };
        let mut problems = Problems::default();
        let mut attrs = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match Fields::nested(item, &format!("[{i}]")) {
                Err(e) => problems.extend(e.errors),
                Ok(mut f) => {
                    let attr = CustomAttribute::from_fields(&mut f);
                    if let Err(e) = f.finish() {
                        problems.extend(e.errors);
                    }
                    attrs.extend(attr);
                }
            }
        }
        problems.shape()?;
        Ok(CustomAttributes(attrs))
    }
}

/// `PUT /custom-attributes`: the whole list; it becomes the account's User extension schema. `If-Match`
/// with the list's ETag makes it conditional.
pub async fn put_custom_attributes(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    body: Strict<CustomAttributes>,
) -> AdminResult<HttpResponse> {
    let attrs = body.0.0;
    let acct = caller.0.account();
    let wanted = if_match(&req)?.map(|v| if v == "none" { String::new() } else { v });
    save_custom_attributes(&state.store, acct, &attrs, wanted.as_deref(), &caller.0.actor())?;
    state.committed().await?;
    let (attrs, version) = state.store.custom_attributes_with_version(acct)?;
    Ok(with_etag(ok(&attrs), attributes_version(&version)))
}
