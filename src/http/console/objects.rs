//! The objects rules refer to: User groups, Settings templates and Email templates (list, Create, Edit,
//! Delete, and an email template's Preview). Every check, save, deletion and preview is the shared one in
//! `rules::objects`, as for the admin API.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde_json::Value;

use super::pages::{ConfirmPage, Layout, capitalised, language_name, query_escape};
use super::session::{Fields, Signed, SignedForm};
use super::{ConsoleError, ConsoleResult, html, page, redirect};
use crate::http::AppState;
use crate::rules::{
    FieldProblem, LANGUAGES, ObjectError, PreviewError, RuleObject, delete_object, is_object_id,
    list_objects, object_or_builtin, preview_template, save_object,
};
use crate::store::AccountId;
use crate::store::Store;
use crate::store::sync::{EmailTemplate, SettingsTemplate, UserGroup};

/// One field of an object's form.
pub struct FormField {
    /// The form field's name, which is also the field a problem names (`subject.en_US`).
    pub name: String,
    pub label: String,
    pub multiline: bool,
    pub value: String,
    pub hint: String,
    pub error: String,
}

impl FormField {
    fn new(name: impl Into<String>, label: impl Into<String>, value: impl Into<String>) -> FormField {
        FormField {
            name: name.into(),
            label: label.into(),
            multiline: false,
            value: value.into(),
            hint: String::new(),
            error: String::new(),
        }
    }

    fn multiline(mut self) -> FormField {
        self.multiline = true;
        self
    }

    fn hint(mut self, hint: impl Into<String>) -> FormField {
        self.hint = hint.into();
        self
    }

    /// The element id (no dots, so that it is a plain CSS id).
    pub fn id(&self) -> String {
        self.name.replace('.', "-")
    }
}

/// One kind of object as the console lists and edits it.
pub trait ConsoleObject: RuleObject {
    /// The address under `/console/`.
    const PATH: &'static str;
    const TITLE: &'static str;
    /// "user group".
    const ONE: &'static str;
    const CREATE: &'static str;
    /// The text of the list's second column.
    fn summary(&self) -> String;
    fn blank() -> Self;
    fn form_fields(&self) -> Vec<FormField>;
    /// The object a posted form describes; shape problems (JSON that does not parse) by field.
    fn from_form(fields: &Fields) -> Result<Self, Vec<FieldProblem>>;
    fn field_names() -> Vec<String>;
}

fn text(fields: &Fields, name: &str) -> String {
    fields.get(name).unwrap_or_default().to_string()
}

impl ConsoleObject for UserGroup {
    const PATH: &'static str = "user-groups";
    const TITLE: &'static str = "User groups";
    const ONE: &'static str = "user group";
    const CREATE: &'static str = "Create user group";
    fn summary(&self) -> String {
        self.id.clone()
    }
    fn blank() -> Self {
        UserGroup { id: String::new(), name: String::new() }
    }
    fn form_fields(&self) -> Vec<FormField> {
        vec![FormField::new("name", "Name", &self.name)]
    }
    fn from_form(fields: &Fields) -> Result<Self, Vec<FieldProblem>> {
        Ok(UserGroup { id: String::new(), name: text(fields, "name").trim().to_string() })
    }
    fn field_names() -> Vec<String> {
        vec!["name".into()]
    }
}

impl ConsoleObject for SettingsTemplate {
    const PATH: &'static str = "settings-templates";
    const TITLE: &'static str = "Settings templates";
    const ONE: &'static str = "settings template";
    const CREATE: &'static str = "Create settings template";
    fn summary(&self) -> String {
        match self.settings.as_object() {
            Some(m) if !m.is_empty() => m.keys().cloned().collect::<Vec<_>>().join(", "),
            _ => "No settings".into(),
        }
    }
    fn blank() -> Self {
        SettingsTemplate {
            id: String::new(),
            name: String::new(),
            settings: Value::Object(Default::default()),
        }
    }
    fn form_fields(&self) -> Vec<FormField> {
        let settings = serde_json::to_string_pretty(&self.settings).unwrap_or_else(|_| "{}".into());
        vec![
            FormField::new("name", "Name", &self.name),
            FormField::new("settings", "Settings", settings).multiline().hint(
                "A JSON object, for example {\"recording\": \"cloud\", \"timezone\": \"Europe/Paris\"}",
            ),
        ]
    }
    fn from_form(fields: &Fields) -> Result<Self, Vec<FieldProblem>> {
        let raw = text(fields, "settings");
        let raw = if raw.trim().is_empty() { "{}" } else { raw.as_str() };
        match serde_json::from_str::<Value>(raw) {
            Ok(settings @ Value::Object(_)) => Ok(SettingsTemplate {
                id: String::new(),
                name: text(fields, "name").trim().to_string(),
                settings,
            }),
            Ok(_) => Err(vec![("settings".into(), "must be a JSON object".into())]),
            Err(e) => Err(vec![("settings".into(), format!("is not JSON: {e}"))]),
        }
    }
    fn field_names() -> Vec<String> {
        vec!["name".into(), "settings".into()]
    }
}

impl ConsoleObject for EmailTemplate {
    const PATH: &'static str = "email-templates";
    const TITLE: &'static str = "Email templates";
    const ONE: &'static str = "email template";
    const CREATE: &'static str = "Create New Template";
    fn summary(&self) -> String {
        let names: Vec<&str> = self.subject.keys().map(|l| language_name(l)).collect();
        names.join(", ")
    }
    fn blank() -> Self {
        EmailTemplate {
            id: String::new(),
            name: String::new(),
            subject: BTreeMap::new(),
            body: BTreeMap::new(),
            fallback_language: None,
        }
    }
    fn form_fields(&self) -> Vec<FormField> {
        let mut out = vec![FormField::new("name", "Name", &self.name)];
        for l in LANGUAGES {
            let language = language_name(l);
            let subject = self.subject.get(l).cloned().unwrap_or_default();
            let body = self.body.get(l).cloned().unwrap_or_default();
            out.push(FormField::new(format!("subject.{l}"), format!("Subject ({language})"), subject));
            out.push(FormField::new(format!("body.{l}"), format!("Body ({language})"), body).multiline());
        }
        if let Some(first) = out.get_mut(1) {
            first.hint = "Leave a language empty to leave it out. Placeholders: {{displayName}}, \
                {{userName}}, {{givenName}}, {{familyName}}, {{email}}"
                .into();
        }
        out.push(
            FormField::new("fallbackLanguage", "Fallback language", self.fallback_language.clone().unwrap_or_default())
                .hint("A language code of this template (for example en_US), used for a rule whose language it lacks"),
        );
        out
    }
    fn from_form(fields: &Fields) -> Result<Self, Vec<FieldProblem>> {
        let mut template = EmailTemplate::blank();
        template.name = text(fields, "name").trim().to_string();
        for l in LANGUAGES {
            for (part, map) in [("subject", &mut template.subject), ("body", &mut template.body)] {
                let value = text(fields, &format!("{part}.{l}"));
                if !value.trim().is_empty() {
                    map.insert(l.to_string(), value.replace("\r\n", "\n"));
                }
            }
        }
        let fallback = text(fields, "fallbackLanguage");
        template.fallback_language = Some(fallback.trim().to_string()).filter(|f| !f.is_empty());
        Ok(template)
    }
    fn field_names() -> Vec<String> {
        let mut names = vec!["name".to_string(), "fallbackLanguage".into()];
        for l in LANGUAGES {
            names.push(format!("subject.{l}"));
            names.push(format!("body.{l}"));
        }
        names
    }
}

pub struct ObjectRow {
    id: String,
    name: String,
    summary: String,
}

#[derive(Template)]
#[template(path = "objects.html")]
struct ListPage {
    layout: Layout,
    path: &'static str,
    create: &'static str,
    rows: Vec<ObjectRow>,
    notice: String,
    previewable: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    saved: Option<String>,
    deleted: Option<String>,
}

pub async fn list<T: ConsoleObject>(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<ListQuery>,
) -> ConsoleResult<HttpResponse> {
    let rows = list_objects::<T>(&state.store, signed.caller.account())?
        .into_iter()
        .map(|o| ObjectRow { id: o.id().to_string(), name: o.name().to_string(), summary: o.summary() })
        .collect();
    let notice = match (&query.saved, &query.deleted) {
        (Some(name), _) => format!("The {} {name} was saved.", T::ONE),
        (_, Some(name)) => format!("The {} {name} was deleted.", T::ONE),
        _ => String::new(),
    };
    page(&ListPage {
        layout: Layout::signed(&signed, T::TITLE, T::PATH),
        path: T::PATH,
        create: T::CREATE,
        rows,
        notice,
        previewable: T::PATH == EmailTemplate::PATH,
    })
}

#[derive(Template)]
#[template(path = "object_form.html")]
struct FormPage {
    layout: Layout,
    csrf: String,
    action: String,
    path: &'static str,
    fields: Vec<FormField>,
    /// Problems that name no field of the form.
    errors: Vec<String>,
    version: String,
    delete: Option<String>,
}

fn form_page<T: ConsoleObject>(
    signed: &Signed,
    object: &T,
    editing: Option<(&str, &str)>,
    problems: Vec<FieldProblem>,
) -> FormPage {
    let mut fields = object.form_fields();
    let mut errors = Vec::new();
    for (field, message) in problems {
        let message = format!("{}.", capitalised(&message));
        match fields.iter_mut().find(|f| f.name == field) {
            Some(f) if f.error.is_empty() => f.error = message,
            Some(f) => f.error = format!("{} {message}", f.error),
            None => errors.push(format!("{}: {message}", capitalised(&field))),
        }
    }
    let (title, action, version, delete) = match editing {
        Some((id, version)) => (
            format!("Edit the {} {}", T::ONE, object.name()),
            format!("/console/{}/{id}", T::PATH),
            version.to_string(),
            Some(format!("/console/{}/{id}/delete", T::PATH)),
        ),
        None => (T::CREATE.to_string(), format!("/console/{}/new", T::PATH), String::new(), None),
    };
    FormPage {
        layout: Layout::signed(signed, title, T::PATH),
        csrf: signed.csrf.clone(),
        action,
        path: T::PATH,
        fields,
        errors,
        version,
        delete,
    }
}

/// `GET /{objects}/new`.
pub async fn new_form<T: ConsoleObject>(signed: Signed) -> ConsoleResult<HttpResponse> {
    page(&form_page(&signed, &T::blank(), None, vec![]))
}

fn object_of<T: ConsoleObject>(store: &Store, acct: AccountId, id: &str) -> ConsoleResult<(T, String)> {
    object_or_builtin::<T>(store, acct, id)?
        .ok_or_else(|| ConsoleError::NotFound(format!("There is no {} {id}.", T::ONE)))
}

/// `GET /{objects}/{id}`: the object in its form.
pub async fn edit_form<T: ConsoleObject>(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
) -> ConsoleResult<HttpResponse> {
    let (object, version) = object_of::<T>(&state.store, signed.caller.account(), &id)?;
    page(&form_page(&signed, &object, Some((&id, &version)), vec![]))
}

/// A new object's id: its name in lower case with `-` between words, made unique in the account.
fn new_id<T: ConsoleObject>(store: &Store, acct: AccountId, name: &str) -> ConsoleResult<String> {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let mut base: String = slug.trim_end_matches('-').chars().take(48).collect();
    if base.is_empty() || base == "new" || base == "default" {
        base = format!("{}-{base}", T::PATH.trim_end_matches('s')).trim_end_matches('-').to_string();
    }
    let mut id = base.clone();
    let mut n = 1;
    while object_or_builtin::<T>(store, acct, &id)?.is_some() {
        n += 1;
        id = format!("{base}-{n}");
    }
    debug_assert!(is_object_id(&id));
    Ok(id)
}

/// Saves a posted form as `id` (a new one when `None`), or shows it again with its problems.
async fn save_form<T: ConsoleObject>(
    req: &HttpRequest,
    state: &AppState,
    form: SignedForm,
    id: Option<String>,
) -> ConsoleResult<HttpResponse> {
    let mut known = T::field_names();
    known.push("version".into());
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    form.fields.only(&known)?;
    let signed = &form.signed;
    let acct = signed.caller.account();
    let version = form.fields.get("version").filter(|v| !v.is_empty()).map(str::to_string);
    let object = match T::from_form(&form.fields) {
        Ok(o) => o,
        Err(problems) => {
            return Ok(html(
                StatusCode::UNPROCESSABLE_ENTITY,
                &refill::<T>(signed, &T::blank(), &form.fields, id.as_deref(), version.as_deref(), problems),
            ));
        }
    };
    let target = match &id {
        Some(id) => id.clone(),
        None => new_id::<T>(&state.store, acct, object.name())?,
    };
    let expected = if id.is_some() { version.as_deref() } else { None };
    match save_object(&state.store, acct, &target, object.clone(), expected, &signed.caller.actor()) {
        Ok(_) => {
            state.committed().await?;
            redirect(req, &format!("/console/{}?saved={}", T::PATH, query_escape(object.name())))
        }
        Err(ObjectError::Invalid(problems)) => Ok(html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &refill::<T>(signed, &object, &form.fields, id.as_deref(), version.as_deref(), problems),
        )),
        Err(ObjectError::BuiltIn(m)) => Err(ConsoleError::Conflict(format!("{}.", capitalised(&m)))),
        Err(ObjectError::Store(e)) => Err(e.into()),
    }
}

/// The form again as it was sent (nothing typed is lost), with the problems next to their fields.
fn refill<T: ConsoleObject>(
    signed: &Signed,
    object: &T,
    sent: &Fields,
    id: Option<&str>,
    version: Option<&str>,
    problems: Vec<FieldProblem>,
) -> FormPage {
    let mut view = form_page(signed, object, id.map(|i| (i, version.unwrap_or_default())), problems);
    for f in &mut view.fields {
        if let Some(v) = sent.get(&f.name) {
            f.value = v.to_string();
        }
    }
    view
}

/// `POST /{objects}/new`.
pub async fn create<T: ConsoleObject>(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    save_form::<T>(&req, &state, form, None).await
}

/// `POST /{objects}/{id}`.
pub async fn replace<T: ConsoleObject>(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    object_of::<T>(&state.store, form.signed.caller.account(), &id)?;
    save_form::<T>(&req, &state, form, Some(id.into_inner())).await
}

/// `GET /{objects}/{id}/delete`: asks first.
pub async fn confirm_delete<T: ConsoleObject>(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
) -> ConsoleResult<HttpResponse> {
    let (object, _) = object_of::<T>(&state.store, signed.caller.account(), &id)?;
    let message = if T::builtin(&id).is_some() {
        format!("The {} {} goes back to the built-in one.", T::ONE, object.name())
    } else {
        format!(
            "The {} {} will be deleted. A rule that uses it must be changed first.",
            T::ONE,
            object.name()
        )
    };
    page(&ConfirmPage {
        layout: Layout::signed(&signed, format!("Delete the {} {}?", T::ONE, object.name()), T::PATH),
        csrf: signed.csrf.clone(),
        message,
        action: format!("/console/{}/{id}/delete", T::PATH),
        button: "Delete",
        cancel: format!("/console/{}", T::PATH),
    })
}

/// `POST /{objects}/{id}/delete`.
pub async fn delete<T: ConsoleObject>(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&[])?;
    let signed = &form.signed;
    let acct = signed.caller.account();
    let (object, _) = object_of::<T>(&state.store, acct, &id)?;
    match delete_object::<T>(&state.store, acct, &id, &signed.caller.actor()) {
        Ok(()) => {}
        Err(ObjectError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(ConsoleError::Conflict(format!("{}.", capitalised(&e.to_string())))),
    }
    state.committed().await?;
    redirect(&req, &format!("/console/{}?deleted={}", T::PATH, query_escape(object.name())))
}

#[derive(Template)]
#[template(path = "template_preview.html")]
struct PreviewPage {
    layout: Layout,
    id: String,
    languages: Vec<(&'static str, &'static str, bool)>,
    user: String,
    error: String,
    /// The language rendered, when it is not the one asked for.
    fallback: String,
    subject: String,
    body: String,
    shown_user: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    language: Option<String>,
    user: Option<String>,
}

/// `GET /email-templates/{id}/preview?language=&user=`: the template rendered (the admin API's preview);
/// nothing is sent.
pub async fn preview(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    query: web::Query<PreviewQuery>,
) -> ConsoleResult<HttpResponse> {
    let acct = signed.caller.account();
    let (template, _) = object_of::<EmailTemplate>(&state.store, acct, &id)?;
    let language = query.language.clone().filter(|l| !l.is_empty()).unwrap_or_else(|| "en_US".into());
    let user = query.user.as_deref().map(str::trim).unwrap_or_default().to_string();
    let mut view = PreviewPage {
        layout: Layout::signed(&signed, format!("Preview of {}", template.name), EmailTemplate::PATH),
        id: id.to_string(),
        languages: LANGUAGES.iter().map(|l| (*l, language_name(l), *l == language)).collect(),
        user: user.clone(),
        error: String::new(),
        fallback: String::new(),
        subject: String::new(),
        body: String::new(),
        shown_user: String::new(),
    };
    let shown = preview_template(
        &state.store,
        acct,
        &id,
        Some(user.as_str()).filter(|u| !u.is_empty()),
        Some(&language),
    );
    match shown {
        Ok(p) => {
            if p.language != p.requested_language {
                view.fallback = format!(
                    "This template has no {} text; a user with that language gets the {} one.",
                    language_name(&p.requested_language),
                    language_name(&p.language)
                );
            }
            view.shown_user = p.user.get("userName").and_then(Value::as_str).unwrap_or_default().to_string();
            view.subject = p.subject;
            view.body = p.body;
            page(&view)
        }
        Err(PreviewError::Field(_, message)) => {
            view.error = format!("{}.", capitalised(&message));
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &view))
        }
        Err(PreviewError::NoTemplate(_)) => {
            Err(ConsoleError::NotFound(format!("There is no email template {id}.")))
        }
        Err(PreviewError::Store(e)) => Err(e.into()),
    }
}

/// `GET /email-templates/chosen?welcomeEmail=&go=preview|edit|delete`: what the rule form's Preview, Edit
/// and Delete buttons send (the whole rule form, in a new tab, so that the unsaved rule stays open): the
/// page of the chosen template.
pub async fn chosen(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<Vec<(String, String)>>,
) -> ConsoleResult<HttpResponse> {
    let value = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let id = value("welcomeEmail").filter(|v| !v.is_empty()).unwrap_or("default");
    object_of::<EmailTemplate>(&state.store, signed.caller.account(), id)?;
    let to = match value("go") {
        Some("preview") => format!("/console/email-templates/{id}/preview"),
        Some("edit") => format!("/console/email-templates/{id}"),
        Some("delete") => format!("/console/email-templates/{id}/delete"),
        other => {
            return Err(ConsoleError::BadRequest(format!(
                "go must be preview, edit or delete, not {other:?}"
            )));
        }
    };
    Ok(HttpResponse::SeeOther().insert_header((actix_web::http::header::LOCATION, to)).finish())
}

/// The pages of one kind of object.
pub fn routes_of<T: ConsoleObject>(cfg: &mut web::ServiceConfig) {
    let path = T::PATH;
    cfg.route(&format!("/{path}"), web::get().to(list::<T>))
        .route(&format!("/{path}/new"), web::get().to(new_form::<T>))
        .route(&format!("/{path}/new"), web::post().to(create::<T>))
        .route(&format!("/{path}/{{id}}"), web::get().to(edit_form::<T>))
        .route(&format!("/{path}/{{id}}"), web::post().to(replace::<T>))
        .route(&format!("/{path}/{{id}}/delete"), web::get().to(confirm_delete::<T>))
        .route(&format!("/{path}/{{id}}/delete"), web::post().to(delete::<T>));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_template_form_round_trips() {
        let fields = Fields(vec![
            ("name".into(), " Welcome ".into()),
            ("subject.en_US".into(), "Hi {{givenName}}".into()),
            ("body.en_US".into(), "Line one\r\nLine two".into()),
            ("subject.de_DE".into(), "".into()),
            ("fallbackLanguage".into(), "en_US".into()),
        ]);
        let t = EmailTemplate::from_form(&fields).unwrap();
        assert_eq!(t.name, "Welcome");
        assert_eq!(t.subject.keys().collect::<Vec<_>>(), ["en_US"]);
        assert_eq!(t.body["en_US"], "Line one\nLine two");
        assert_eq!(t.fallback_language.as_deref(), Some("en_US"));
        let bad = Fields(vec![("name".into(), "x".into()), ("settings".into(), "[1]".into())]);
        assert_eq!(SettingsTemplate::from_form(&bad).unwrap_err()[0].0, "settings");
    }
}
