//! Tokens as the admin API and the operator API both show and change them: listed without secrets,
//! created with an optional expiry (the secret shown once), revoked at once. An account's admins call these
//! for their own account, the operator for any account.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::input::{self, Fields, FromFields, NoQuery, PAGING_PARAMS, Paging, Query};
use super::{AdminResult, Strict, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::store::{AccountId, Actor, TokenInfo, TokenKind};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    id: String,
    name: String,
    kind: TokenKind,
    created: String,
    expires_at: Option<String>,
    last_used: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl TokenView {
    fn of(t: TokenInfo, last_used: Option<String>, secret: Option<String>) -> TokenView {
        TokenView {
            id: t.id,
            name: t.name,
            kind: t.kind,
            created: t.created,
            expires_at: t.expires_at,
            last_used,
            secret,
        }
    }
}

/// A token to create: `{"name", "kind", "expiresAt"?}`.
pub struct NewToken {
    pub name: String,
    pub kind: TokenKind,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl FromFields for NewToken {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        let name = f.required::<String>("name");
        let kind = f.required::<String>("kind");
        let kind = match kind.as_deref().map(str::parse::<TokenKind>) {
            Some(Ok(k)) => Some(k),
            Some(Err(why)) => {
                f.problem("kind", why);
                None
            }
            None => None,
        };
        let expires_at = match f.optional::<String>("expiresAt") {
            None => Some(None),
            Some(text) => match chrono::DateTime::parse_from_rfc3339(&text) {
                Ok(at) => Some(Some(at.with_timezone(&chrono::Utc))),
                Err(_) => {
                    f.problem("expiresAt", format!("'{text}' is not an RFC 3339 date-time"));
                    None
                }
            },
        };
        Some(NewToken { name: name?, kind: kind?, expires_at: expires_at? })
    }
}

/// The account's tokens, paged, with when each was created, expires and was last used (to the minute).
pub fn list(req: &HttpRequest, state: &AppState, acct: AccountId) -> AdminResult<HttpResponse> {
    let paging = Paging::from_query(&Query::parse(req, &PAGING_PARAMS)?)?;
    let mut views = Vec::new();
    for t in state.store.tokens(Some(acct))? {
        let last_used = state.store.token_last_used(acct, &t.id)?;
        views.push(TokenView::of(t, last_used, None));
    }
    Ok(ok(&paging.page(views)))
}

/// Creates a token (201 with its secret, shown this once); names are unique per kind in the account.
pub async fn create(
    state: &AppState,
    acct: AccountId,
    body: NewToken,
    actor: &Actor,
) -> AdminResult<HttpResponse> {
    let name = body.name.trim().to_string();
    if name.is_empty() || name.len() > 64 {
        return Err(input::one(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
            "a token's name has 1 to 64 characters",
        ));
    }
    let (info, secret) = state.store.create_token_expiring(acct, body.kind, &name, body.expires_at, actor)?;
    state.committed().await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(TokenView::of(info, None, Some(secret))))
}

/// Revokes a token (204); it stops working at once.
pub async fn revoke(state: &AppState, acct: AccountId, id: &str, actor: &Actor) -> AdminResult<HttpResponse> {
    state.store.revoke_token(acct, id, actor)?;
    state.committed().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /tokens?startIndex=&count=`
pub async fn list_tokens(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    list(&req, &state, caller.0.account())
}

/// `POST /tokens`
pub async fn create_token(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    body: Strict<NewToken>,
) -> AdminResult<HttpResponse> {
    create(&state, caller.0.account(), body.0, &caller.0.actor()).await
}

/// `DELETE /tokens/{id}`
pub async fn revoke_token(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    revoke(&state, caller.0.account(), &id, &caller.0.actor()).await
}
