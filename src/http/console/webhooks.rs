//! Webhooks: the subscriptions that carry entitlement changes to the products, each with its state in
//! words, how far behind it is and its last delivery attempts; adding or replacing one, resuming a paused
//! one, deleting one after a confirmation. Checked and described by `delivery::subscriptions`, as the
//! admin API's `/webhooks` is.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::pages::{ConfirmPage, Layout, capitalised, query_escape};
use super::session::{Signed, SignedForm};
use super::{ConsoleError, ConsoleResult, html, page, redirect};
use crate::delivery::subscriptions::{
    FieldProblem, Status, WebhookDraft, WebhookView, check_webhook, new_secret, webhook_view, webhook_views,
};
use crate::http::AppState;
use crate::rules::is_object_id;
use crate::store::feed::ChangeKind;

/// An event a webhook can subscribe to: its feed name and its words.
pub struct EventChoice {
    name: &'static str,
    words: &'static str,
    checked: bool,
}

fn event_words(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Granted => "A user gets products",
        ChangeKind::Changed => "A user's products change",
        ChangeKind::Revoked => "A user loses every product",
        ChangeKind::Failed => "A user's products cannot be applied",
    }
}

fn choices(checked: &[String]) -> Vec<EventChoice> {
    ChangeKind::ALL
        .iter()
        .map(|k| EventChoice {
            name: k.as_str(),
            words: event_words(*k),
            checked: checked.iter().any(|c| c == k.as_str()),
        })
        .collect()
}

/// A webhook's state in a sentence.
fn status_words(v: &WebhookView) -> String {
    match v.status {
        Status::Active if v.waiting == 0 => "Delivering: every change was delivered.".into(),
        Status::Active => format!("Delivering: {} changes waiting.", v.waiting),
        Status::Retrying => format!(
            "Retrying: the last {} attempts failed; the next is due {}.",
            v.failures,
            v.next_attempt.as_deref().unwrap_or("now")
        ),
        Status::Paused => format!(
            "Paused since {} after {} failed attempts; {} changes are waiting. Resume it once the receiver works.",
            v.paused_since.as_deref().unwrap_or("recently"),
            v.failures,
            v.waiting
        ),
    }
}

pub struct Row {
    view: WebhookView,
    status: String,
    paused: bool,
}

fn row(view: WebhookView) -> Row {
    Row { status: status_words(&view), paused: view.status == Status::Paused, view }
}

/// The form to add or replace a webhook, with what was typed and the problems by field.
pub struct WebhookForm {
    id: String,
    url: String,
    secret: String,
    events: Vec<EventChoice>,
    /// Replacing an existing webhook (its id is fixed, its secret may be left empty).
    replacing: bool,
    /// The version of the webhook the form was read from (a replace of a changed webhook is refused).
    version: String,
    problems: Vec<FieldProblem>,
}

impl WebhookForm {
    fn problem(&self, field: &str) -> String {
        self.problems
            .iter()
            .filter(|(f, _)| f == field || (field == "events" && f.starts_with("events[")))
            .map(|(_, m)| format!("{}.", capitalised(m)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    layout: Layout,
    csrf: String,
    rows: Vec<Row>,
    form: WebhookForm,
    notice: String,
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct WebhookPage {
    layout: Layout,
    csrf: String,
    row: Row,
    form: WebhookForm,
    notice: String,
}

fn blank_form() -> WebhookForm {
    let all: Vec<String> = ChangeKind::ALL.iter().map(|k| k.as_str().to_string()).collect();
    WebhookForm {
        id: String::new(),
        url: String::new(),
        secret: new_secret(),
        events: choices(&all),
        replacing: false,
        version: String::new(),
        problems: Vec::new(),
    }
}

fn list_page(
    state: &AppState,
    signed: &Signed,
    form: WebhookForm,
    notice: String,
) -> ConsoleResult<WebhooksPage> {
    let rows = webhook_views(&state.store, signed.caller.account())?.into_iter().map(row).collect();
    Ok(WebhooksPage {
        layout: Layout::signed(signed, "Webhooks", "webhooks"),
        csrf: signed.csrf.clone(),
        rows,
        form,
        notice,
    })
}

fn one_page(
    state: &AppState,
    signed: &Signed,
    id: &str,
    form: Option<WebhookForm>,
    notice: String,
) -> ConsoleResult<WebhookPage> {
    let acct = signed.caller.account();
    let (hook, version, hook_state) = state
        .store
        .webhook(acct, id)?
        .ok_or_else(|| ConsoleError::NotFound(format!("There is no webhook {id}.")))?;
    let view = webhook_view(&state.store, acct, &hook, &hook_state)?;
    let events: Vec<String> = view.events.iter().map(|e| e.to_string()).collect();
    let form = form.unwrap_or_else(|| WebhookForm {
        id: view.id.clone(),
        url: view.url.clone(),
        secret: String::new(),
        events: choices(&events),
        replacing: true,
        version,
        problems: Vec::new(),
    });
    Ok(WebhookPage {
        layout: Layout::signed(signed, format!("Webhook {id}"), "webhooks"),
        csrf: signed.csrf.clone(),
        row: row(view),
        form,
        notice,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    saved: Option<String>,
    deleted: Option<String>,
    resumed: Option<String>,
}

impl Notice {
    fn words(&self) -> String {
        match (&self.saved, &self.deleted, &self.resumed) {
            (Some(id), _, _) => format!("The webhook {id} was saved."),
            (_, Some(id), _) => format!("The webhook {id} was deleted."),
            (_, _, Some(id)) => format!("The webhook {id} was resumed: delivery starts again now."),
            _ => String::new(),
        }
    }
}

pub async fn list(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<Notice>,
) -> ConsoleResult<HttpResponse> {
    page(&list_page(&state, &signed, blank_form(), query.words())?)
}

pub async fn show(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    query: web::Query<Notice>,
) -> ConsoleResult<HttpResponse> {
    page(&one_page(&state, &signed, &id, None, query.words())?)
}

/// Saves the posted form as webhook `id`, or answers the form again with its problems.
async fn save(
    req: &HttpRequest,
    state: &AppState,
    form: SignedForm,
    id: String,
    replacing: bool,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&["id", "url", "secret", "events", "version"])?;
    let signed = &form.signed;
    let acct = signed.caller.account();
    let secret = form.fields.get("secret").unwrap_or_default().trim().to_string();
    let events = form.fields.all("events");
    let url = form.fields.get("url").unwrap_or_default().trim().to_string();
    let version = form.fields.get("version").unwrap_or_default().to_string();
    let existing = state.store.webhook(acct, &id)?;
    let refill = |problems: Vec<FieldProblem>| WebhookForm {
        id: id.clone(),
        url: url.clone(),
        secret: secret.clone(),
        events: choices(&events),
        replacing,
        version: version.clone(),
        problems,
    };
    let mut problems = Vec::new();
    if !is_object_id(&id) {
        problems.push(("id".to_string(), "must be 1 to 64 letters, digits, '_', '.' or '-'".to_string()));
    } else if existing.is_some() && !replacing {
        problems.push(("id".to_string(), format!("a webhook {id} exists already; open it to change it")));
    }
    let draft = WebhookDraft {
        url: url.clone(),
        secret: (!secret.is_empty()).then(|| secret.clone()),
        events: events.clone(),
    };
    let checked = check_webhook(&id, draft, existing.as_ref().map(|(old, _, _)| old));
    let hook = match checked {
        Ok(hook) if problems.is_empty() => hook,
        Ok(_) => return answer_again(state, signed, refill(problems), replacing),
        Err(found) => {
            problems.extend(found);
            return answer_again(state, signed, refill(problems), replacing);
        }
    };
    let wanted = replacing.then_some(version.as_str());
    state.store.put_webhook_if(acct, &hook, wanted, &signed.caller.actor())?;
    state.committed().await?;
    redirect(req, &format!("/console/webhooks/{}?saved={}", hook.id, query_escape(&hook.id)))
}

fn answer_again(
    state: &AppState,
    signed: &Signed,
    form: WebhookForm,
    replacing: bool,
) -> ConsoleResult<HttpResponse> {
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    match replacing {
        true => {
            let id = form.id.clone();
            Ok(html(status, &one_page(state, signed, &id, Some(form), String::new())?))
        }
        false => Ok(html(status, &list_page(state, signed, form, String::new())?)),
    }
}

/// `POST /webhooks`: adds a webhook.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    let id = form.fields.get("id").unwrap_or_default().trim().to_string();
    save(&req, &state, form, id, false).await
}

/// `POST /webhooks/{id}`: replaces a webhook (an empty secret keeps the old one).
pub async fn replace(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    if form.fields.get("id").is_some_and(|sent| sent != id.as_str()) {
        return Err(ConsoleError::BadRequest("a webhook's id cannot be changed".into()));
    }
    save(&req, &state, form, id.into_inner(), true).await
}

/// `POST /webhooks/{id}/resume`.
pub async fn resume(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&[])?;
    let signed = &form.signed;
    state.store.resume_webhook(signed.caller.account(), &id, &signed.caller.actor())?;
    state.committed().await?;
    redirect(&req, &format!("/console/webhooks/{id}?resumed={}", query_escape(&id)))
}

/// `GET /webhooks/{id}/delete`: asks first.
pub async fn confirm_delete(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
) -> ConsoleResult<HttpResponse> {
    let view = one_page(&state, &signed, &id, None, String::new())?.row.view;
    page(&ConfirmPage {
        layout: Layout::signed(&signed, format!("Delete the webhook {}?", view.id), "webhooks"),
        csrf: signed.csrf.clone(),
        message: format!(
            "{} receives no change from then on, including the {} still waiting.",
            view.url, view.waiting
        ),
        action: format!("/console/webhooks/{}/delete", view.id),
        button: "Delete webhook",
        cancel: format!("/console/webhooks/{}", view.id),
    })
}

/// `POST /webhooks/{id}/delete`.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&[])?;
    let signed = &form.signed;
    state.store.delete_webhook_if(signed.caller.account(), &id, None, &signed.caller.actor())?;
    state.committed().await?;
    redirect(&req, &format!("/console/webhooks?deleted={}", query_escape(&id)))
}
