//! The sync switch, products, the objects rules refer to (user groups, settings and email templates),
//! privileges, custom attributes and tokens.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{AdminError, AdminResult, Body, created_or_ok, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::{LANGUAGES, PRIVILEGES, custom_attributes_used, validate_custom_attributes};
use crate::scim::schema::{Registry, ResourceKind};
use crate::store::sync::{CustomAttribute, EmailTemplate, ObjectKind, Product, SettingsTemplate, UserGroup};
use crate::store::{AccountId, Store, TokenKind};

/// `GET /sync?startIndex=&count=`: `{"enabled", "pending", "failures", "brokenRules", "state", "hold"}`, the
/// held users paged.
pub async fn get_sync(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    Ok(ok(&sync_status(&state.store, caller.0.account(), super::hold::page(&req)?)?))
}

fn sync_status(store: &Store, acct: AccountId, (start, count): (usize, usize)) -> AdminResult<Value> {
    let config = store.sync_config(acct)?;
    let mut status = json!({"enabled": config.enabled, "pending": store.pending_count(acct)?,
        "failures": store.failures(acct)?.len(), "brokenRules": store.broken_rules(acct, &config)?.len()});
    let brake = super::hold::hold_status(store, acct, config.enabled, start, count)?;
    if let (Some(status), Some(brake)) = (status.as_object_mut(), brake.as_object()) {
        status.extend(brake.clone());
    }
    Ok(status)
}

#[derive(Deserialize)]
pub struct SyncSwitch {
    enabled: bool,
}

/// `PUT /sync`: switching sync on evaluates everyone; switching it off freezes entitlements.
pub async fn put_sync(
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: Body<SyncSwitch>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    state.store.set_sync(acct, body.0.enabled, &caller.0.actor())?;
    state.committed().await;
    Ok(ok(&sync_status(&state.store, acct, (1, 50))?))
}

#[derive(Serialize)]
struct ProductView {
    id: String,
    name: String,
    seats: Option<u64>,
    used: u64,
    requires: Vec<String>,
}

fn product_view((p, used): (Product, u64)) -> ProductView {
    ProductView { id: p.id, name: p.name, seats: p.seats, used, requires: p.requires }
}

pub async fn list_products(state: web::Data<AppState>, caller: AdminCaller) -> AdminResult<HttpResponse> {
    let products: Vec<ProductView> =
        state.store.products(caller.0.account())?.into_iter().map(product_view).collect();
    Ok(ok(&products))
}

pub async fn get_product(
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let product = state
        .store
        .product(caller.0.account(), &id)?
        .ok_or_else(|| AdminError::not_found(format!("product {id} not found")))?;
    Ok(ok(&product_view(product)))
}

#[derive(Deserialize)]
pub struct ProductInput {
    id: Option<String>,
    name: Option<String>,
    seats: Option<u64>,
    #[serde(default)]
    requires: Vec<String>,
}

/// `PUT /products/{id}`: creates or updates; raising the seats retries the users who ran out of them. The
/// store checks `requires` against the products and rules.
pub async fn put_product(
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
    body: Body<ProductInput>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let input = body.0;
    check_id(&id, input.id.as_deref())?;
    let mut requires = input.requires;
    requires.sort();
    requires.dedup();
    if requires.contains(&id) {
        return Err(AdminError::unprocessable(format!("requires: product '{id}' cannot require itself")));
    }
    let product = Product {
        id: id.to_string(),
        name: input.name.unwrap_or_else(|| id.to_string()),
        seats: input.seats,
        requires,
    };
    let (product, used, created) = state.store.put_product(acct, &product, &caller.0.actor())?;
    state.committed().await;
    Ok(created_or_ok(created, &product_view((product, used))))
}

pub async fn delete_product(
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    state.store.delete_product(caller.0.account(), &id, &caller.0.actor())?;
    state.committed().await;
    Ok(HttpResponse::NoContent().finish())
}

fn check_id(path_id: &str, body_id: Option<&str>) -> AdminResult<()> {
    if path_id.is_empty() || path_id.len() > 128 || path_id.chars().any(|c| c.is_control() || c == '/') {
        return Err(AdminError::bad_request("an id has 1 to 128 printable characters and no '/'"));
    }
    match body_id {
        Some(b) if b != path_id => {
            Err(AdminError::bad_request(format!("the body's id '{b}' differs from the path's '{path_id}'")))
        }
        _ => Ok(()),
    }
}

/// An admin-defined object type: its path, store kind and how a PUT body is checked.
trait AdminObject: Serialize + DeserializeOwned + 'static {
    const KIND: ObjectKind;
    fn id_mut(&mut self) -> &mut String;
    fn check(&self) -> AdminResult<()> {
        Ok(())
    }
}

impl AdminObject for UserGroup {
    const KIND: ObjectKind = ObjectKind::UserGroup;
    fn id_mut(&mut self) -> &mut String {
        &mut self.id
    }
}

impl AdminObject for SettingsTemplate {
    const KIND: ObjectKind = ObjectKind::SettingsTemplate;
    fn id_mut(&mut self) -> &mut String {
        &mut self.id
    }
}

impl AdminObject for EmailTemplate {
    const KIND: ObjectKind = ObjectKind::EmailTemplate;
    fn id_mut(&mut self) -> &mut String {
        &mut self.id
    }
    fn check(&self) -> AdminResult<()> {
        let unknown = self.subject.keys().chain(self.body.keys()).find(|l| !LANGUAGES.contains(&l.as_str()));
        match unknown {
            Some(l) => {
                Err(AdminError::unprocessable(format!("'{l}' is not one of {}", LANGUAGES.join(", "))))
            }
            None => Ok(()),
        }
    }
}

pub fn object_routes(cfg: &mut web::ServiceConfig) {
    object_resource::<UserGroup>(cfg, "/user-groups");
    object_resource::<SettingsTemplate>(cfg, "/settings-templates");
    object_resource::<EmailTemplate>(cfg, "/email-templates");
}

fn object_resource<T: AdminObject>(cfg: &mut web::ServiceConfig, path: &str) {
    cfg.route(path, web::get().to(list_objects::<T>))
        .route(&format!("{path}/{{id}}"), web::get().to(get_object::<T>))
        .route(&format!("{path}/{{id}}"), web::put().to(put_object::<T>))
        .route(&format!("{path}/{{id}}"), web::delete().to(delete_object::<T>));
}

async fn list_objects<T: AdminObject>(
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    Ok(ok(&state.store.objects::<T>(caller.0.account(), T::KIND)?))
}

async fn get_object<T: AdminObject>(
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let object = state
        .store
        .object::<T>(caller.0.account(), T::KIND, &id)?
        .ok_or_else(|| AdminError::not_found(format!("{} {id} not found", T::KIND.noun())))?;
    Ok(ok(&object))
}

/// The body of an object PUT: the object with its id taken from the path when absent.
async fn put_object<T: AdminObject>(
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
    body: Body<Value>,
) -> AdminResult<HttpResponse> {
    let mut value = body.0;
    check_id(&id, value.get("id").and_then(Value::as_str))?;
    if let Some(map) = value.as_object_mut() {
        map.insert("id".into(), Value::String(id.to_string()));
    }
    let mut object: T = serde_json::from_value(value)
        .map_err(|e| AdminError::bad_request(format!("invalid {}: {e}", T::KIND.noun())))?;
    *object.id_mut() = id.to_string();
    object.check()?;
    let created = state.store.put_object(caller.0.account(), T::KIND, &id, &object, &caller.0.actor())?;
    state.committed().await;
    Ok(created_or_ok(created, &object))
}

async fn delete_object<T: AdminObject>(
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    state.store.delete_object(caller.0.account(), T::KIND, &id, &caller.0.actor())?;
    state.committed().await;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn privileges(_caller: AdminCaller) -> HttpResponse {
    let list: Vec<Value> =
        PRIVILEGES.iter().map(|(id, description)| json!({"id": id, "description": description})).collect();
    ok(&list)
}

pub async fn get_custom_attributes(
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    Ok(ok(&state.store.custom_attributes(caller.0.account())?))
}

/// `PUT /custom-attributes`: the whole list; it becomes the account's User extension schema.
pub async fn put_custom_attributes(
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: Body<Vec<CustomAttribute>>,
) -> AdminResult<HttpResponse> {
    let standard = Registry::standard();
    validate_custom_attributes(&body.0, standard.resource(ResourceKind::User))?;
    state.store.put_custom_attributes(
        caller.0.account(),
        &body.0,
        &caller.0.actor(),
        &custom_attributes_used,
    )?;
    state.committed().await;
    Ok(ok(&body.0))
}

#[derive(Serialize)]
struct TokenView {
    id: String,
    name: String,
    kind: TokenKind,
    created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

pub async fn list_tokens(state: web::Data<AppState>, caller: AdminCaller) -> AdminResult<HttpResponse> {
    let tokens: Vec<TokenView> = state
        .store
        .tokens(Some(caller.0.account()))?
        .into_iter()
        .map(|t| TokenView { id: t.id, name: t.name, kind: t.kind, created: t.created, secret: None })
        .collect();
    Ok(ok(&tokens))
}

#[derive(Deserialize)]
pub struct NewToken {
    name: String,
    kind: TokenKind,
}

/// `POST /tokens`: the secret appears in this answer only.
pub async fn create_token(
    state: web::Data<AppState>,
    caller: AdminCaller,
    body: Body<NewToken>,
) -> AdminResult<HttpResponse> {
    if body.0.name.trim().is_empty() {
        return Err(AdminError::bad_request("a token needs a name"));
    }
    let (info, secret) =
        state.store.create_token(caller.0.account(), body.0.kind, body.0.name.trim(), &caller.0.actor())?;
    state.committed().await;
    let view = TokenView {
        id: info.id,
        name: info.name,
        kind: info.kind,
        created: info.created,
        secret: Some(secret),
    };
    Ok(HttpResponse::build(StatusCode::CREATED).json(view))
}

pub async fn revoke_token(
    state: web::Data<AppState>,
    caller: AdminCaller,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    state.store.revoke_token(caller.0.account(), &id, &caller.0.actor())?;
    state.committed().await;
    Ok(HttpResponse::NoContent().finish())
}
