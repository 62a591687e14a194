//! Tokens of the account: the list (never a secret), creating one (its secret shown on that answer only),
//! revoking one after a confirmation. Revoking the token a session signed in with ends that session.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::pages::{ConfirmPage, Layout, capitalised};
use super::session::{Signed, SignedForm};
use super::{ConsoleError, ConsoleResult, html, page, redirect};
use crate::http::AppState;
use crate::store::{StoreError, TokenKind};

pub struct TokenRow {
    id: String,
    name: String,
    kind: &'static str,
    created: String,
    /// When the token was last used (to the minute), or "Never".
    last_used: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    layout: Layout,
    csrf: String,
    tokens: Vec<TokenRow>,
    /// The secret of the token just created, shown this once.
    secret: String,
    created_name: String,
    name: String,
    error: String,
    notice: String,
}

fn kind_words(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Scim => "SCIM (identity provider)",
        TokenKind::Admin => "Admin (admin API and console)",
    }
}

fn tokens_page(state: &AppState, signed: &Signed, title_notice: String) -> ConsoleResult<TokensPage> {
    let acct = signed.caller.account();
    let mut tokens = Vec::new();
    for t in state.store.tokens(Some(acct))? {
        let last_used = state.store.token_last_used(acct, &t.id)?.unwrap_or_else(|| "Never".into());
        tokens.push(TokenRow {
            kind: kind_words(t.kind),
            id: t.id,
            name: t.name,
            created: t.created,
            last_used,
        });
    }
    Ok(TokensPage {
        layout: Layout::signed(signed, "Tokens", "tokens"),
        csrf: signed.csrf.clone(),
        tokens,
        secret: String::new(),
        created_name: String::new(),
        name: String::new(),
        error: String::new(),
        notice: title_notice,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensQuery {
    revoked: Option<String>,
}

pub async fn list(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<TokensQuery>,
) -> ConsoleResult<HttpResponse> {
    let notice = match &query.revoked {
        Some(name) => format!("The token {name} was revoked."),
        None => String::new(),
    };
    page(&tokens_page(&state, &signed, notice)?)
}

/// `POST /tokens`: `name` and `kind` (`scim` or `admin`); the answer shows the secret once.
pub async fn create(state: web::Data<AppState>, form: SignedForm) -> ConsoleResult<HttpResponse> {
    form.fields.only(&["name", "kind"])?;
    let kind: TokenKind =
        form.fields.get("kind").unwrap_or_default().parse().map_err(ConsoleError::BadRequest)?;
    let name = form.fields.get("name").unwrap_or_default();
    let signed = &form.signed;
    match state.store.create_token(signed.caller.account(), kind, name, &signed.caller.actor()) {
        Ok((info, secret)) => {
            state.committed().await?;
            let mut view = tokens_page(&state, signed, String::new())?;
            view.secret = secret;
            view.created_name = info.name;
            Ok(html(StatusCode::CREATED, &view))
        }
        Err(StoreError::Invalid(e)) => {
            let mut view = tokens_page(&state, signed, String::new())?;
            view.name = name.to_string();
            view.error = format!("{}.", capitalised(&e.detail));
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &view))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /tokens/{id}/revoke`: asks first.
pub async fn confirm_revoke(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
) -> ConsoleResult<HttpResponse> {
    let token = state
        .store
        .tokens(Some(signed.caller.account()))?
        .into_iter()
        .find(|t| t.id == *id)
        .ok_or_else(|| ConsoleError::NotFound(format!("There is no token {id}.")))?;
    let own = if token.id == signed.caller.token.id {
        " You signed in with this token: revoking it signs you out."
    } else {
        ""
    };
    page(&ConfirmPage {
        layout: Layout::signed(&signed, format!("Revoke the token {}?", token.name), "tokens"),
        csrf: signed.csrf.clone(),
        message: format!("Whoever uses the token {} is refused from then on.{own}", token.name),
        action: format!("/console/tokens/{}/revoke", token.id),
        button: "Revoke token",
        cancel: "/console/tokens".into(),
    })
}

/// `POST /tokens/{id}/revoke`.
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&[])?;
    let signed = &form.signed;
    let info = state.store.revoke_token(signed.caller.account(), &id, &signed.caller.actor())?;
    state.committed().await?;
    redirect(&req, &format!("/console/tokens?revoked={}", super::pages::query_escape(&info.name)))
}
