//! Custom attributes: the account's own User attributes (the extension schema rules can filter on), added
//! and removed through the same shared save as the admin API's `PUT /custom-attributes`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::pages::{Layout, capitalised, query_escape};
use super::session::{Signed, SignedForm};
use super::{ConsoleError, ConsoleResult, html, page, redirect};
use crate::http::AppState;
use crate::rules::{CUSTOM_TYPES, SaveError, save_custom_attributes};
use crate::store::StoreError;
use crate::store::sync::CustomAttribute;

#[derive(Template)]
#[template(path = "attributes.html")]
struct AttributesPage {
    layout: Layout,
    csrf: String,
    attributes: Vec<CustomAttribute>,
    version: String,
    types: &'static [&'static str],
    notice: String,
    /// The add form as it was sent, and its problem.
    name: String,
    kind: String,
    description: String,
    multi_valued: bool,
    error: String,
}

fn attributes_page(state: &AppState, signed: &Signed, notice: String) -> ConsoleResult<AttributesPage> {
    let (attributes, version) = state.store.custom_attributes_with_version(signed.caller.account())?;
    Ok(AttributesPage {
        layout: Layout::signed(signed, "Custom attributes", "custom-attributes"),
        csrf: signed.csrf.clone(),
        attributes,
        version,
        types: &CUSTOM_TYPES,
        notice,
        name: String::new(),
        kind: "string".into(),
        description: String::new(),
        multi_valued: false,
        error: String::new(),
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributesQuery {
    added: Option<String>,
    removed: Option<String>,
}

pub async fn list(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<AttributesQuery>,
) -> ConsoleResult<HttpResponse> {
    let notice = match (&query.added, &query.removed) {
        (Some(n), _) => format!("The custom attribute {n} was added."),
        (_, Some(n)) => format!("The custom attribute {n} was removed."),
        _ => String::new(),
    };
    page(&attributes_page(&state, &signed, notice)?)
}

/// Why a save was refused, in words for the page.
fn refusal(e: SaveError) -> ConsoleResult<String> {
    match e {
        SaveError::Rule(e) => Ok(format!("{}.", capitalised(&e.message))),
        SaveError::Store(StoreError::Conflict(m) | StoreError::Rejected(m)) => {
            Ok(format!("{}.", capitalised(&m)))
        }
        SaveError::Store(StoreError::PreconditionFailed(_)) => {
            Ok("The custom attributes were changed meanwhile; reload the page and try again.".into())
        }
        SaveError::Store(e) => Err(e.into()),
    }
}

/// `POST /custom-attributes`: adds one (`name`, `type`, `multiValued`, `description`).
pub async fn add(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&["name", "type", "multiValued", "description", "version"])?;
    let signed = &form.signed;
    let acct = signed.caller.account();
    let text = |n: &str| form.fields.get(n).unwrap_or_default().trim().to_string();
    let attr = CustomAttribute {
        name: text("name"),
        kind: text("type"),
        multi_valued: form.fields.get("multiValued") == Some("true"),
        description: text("description"),
    };
    let (mut attrs, _) = state.store.custom_attributes_with_version(acct)?;
    attrs.push(attr.clone());
    let version = form.fields.get("version").unwrap_or_default();
    match save_custom_attributes(&state.store, acct, &attrs, Some(version), &signed.caller.actor()) {
        Ok(()) => {
            state.committed().await?;
            redirect(&req, &format!("/console/custom-attributes?added={}", query_escape(&attr.name)))
        }
        Err(e) => {
            let mut view = attributes_page(&state, signed, String::new())?;
            view.error = refusal(e)?;
            view.name = attr.name;
            view.kind = attr.kind;
            view.description = attr.description;
            view.multi_valued = attr.multi_valued;
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &view))
        }
    }
}

/// `POST /custom-attributes/{name}/remove`: refused while a rule's filter uses it.
pub async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&["version"])?;
    let signed = &form.signed;
    let acct = signed.caller.account();
    let (mut attrs, _) = state.store.custom_attributes_with_version(acct)?;
    let before = attrs.len();
    attrs.retain(|a| a.name != *name);
    if attrs.len() == before {
        return Err(ConsoleError::NotFound(format!("There is no custom attribute {name}.")));
    }
    let version = form.fields.get("version").unwrap_or_default();
    match save_custom_attributes(&state.store, acct, &attrs, Some(version), &signed.caller.actor()) {
        Ok(()) => {
            state.committed().await?;
            redirect(&req, &format!("/console/custom-attributes?removed={}", query_escape(&name)))
        }
        Err(e) => {
            let mut view = attributes_page(&state, signed, String::new())?;
            view.notice = String::new();
            view.error = refusal(e)?;
            Ok(html(StatusCode::CONFLICT, &view))
        }
    }
}
