//! `/operator/v1/accounts`: accounts created with their first tokens, listed with their figures, suspended
//! and resumed, deleted with an explicit confirmation, their tokens managed and their domains marked
//! verified.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::OperatorAuth;
use crate::http::AppState;
use crate::http::admin::input::{self, Fields, FromFields, NoQuery, Paging, Query};
use crate::http::admin::tokens::{self, NewToken};
use crate::http::admin::{AdminError, AdminResult, Strict, ok};
use crate::http::request::base_url;
use crate::rules::domains::mark_domain_verified;
use crate::store::domains::Verification;
use crate::store::{Account, AccountFigures, AccountId, Store, TokenKind};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountView {
    id: u32,
    name: String,
    created: String,
    /// `active`, `suspended`, or `deleting` (a deletion a crash interrupted, finished at the next start).
    status: &'static str,
    suspended_at: Option<String>,
    figures: AccountFigures,
}

impl AccountView {
    fn of(store: &Store, a: Account) -> AdminResult<AccountView> {
        let status = match (&a.deleting, &a.suspended) {
            (Some(_), _) => "deleting",
            (None, Some(_)) => "suspended",
            (None, None) => "active",
        };
        Ok(AccountView {
            id: a.id.0,
            figures: store.account_figures(a.id)?,
            name: a.name,
            created: a.created,
            status,
            suspended_at: a.suspended,
        })
    }
}

/// The account named by the path's `{id}`, or 404.
pub(super) fn account(store: &Store, id: &str) -> AdminResult<Account> {
    id.parse::<u32>()
        .ok()
        .map(|n| store.account_by_id(AccountId(n)))
        .transpose()?
        .flatten()
        .filter(|a| a.deleting.is_none())
        .ok_or_else(|| AdminError::not_found(format!("account {id} not found")))
}

/// `GET /accounts?name=&startIndex=&count=`: in id order, each with its figures.
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    _: OperatorAuth,
) -> AdminResult<HttpResponse> {
    let query = Query::parse(&req, &["startIndex", "count", "name"])?;
    let paging = Paging::from_query(&query)?;
    let name = query.get("name");
    let accounts: Vec<Account> =
        state.store.accounts()?.into_iter().filter(|a| name.is_none_or(|n| a.name == n)).collect();
    let total = accounts.len();
    let page = accounts
        .into_iter()
        .skip(paging.skip())
        .take(paging.count)
        .map(|a| AccountView::of(&state.store, a))
        .collect::<AdminResult<Vec<_>>>()?;
    Ok(ok(&paging.of(total, page)))
}

/// `GET /accounts/{id}`
pub async fn get(
    state: web::Data<AppState>,
    _: OperatorAuth,
    _: NoQuery,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let account = account(&state.store, &id)?;
    Ok(ok(&AccountView::of(&state.store, account)?))
}

pub struct NewAccount {
    name: String,
}

impl FromFields for NewAccount {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        Some(NewAccount { name: f.required::<String>("name")? })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NewSecret {
    id: String,
    name: String,
    secret: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    #[serde(flatten)]
    account: AccountView,
    scim_base_url: String,
    scim_token: NewSecret,
    admin_token: NewSecret,
}

/// `POST /accounts {"name"}`: 201 with the account, the SCIM base URL and a SCIM and an admin token
/// (named `initial`), whose secrets are shown this once.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    op: OperatorAuth,
    _: NoQuery,
    body: Strict<NewAccount>,
) -> AdminResult<HttpResponse> {
    let store = &state.store;
    let account = store.create_account(&body.0.name)?;
    let mut secrets = Vec::new();
    for kind in [TokenKind::Scim, TokenKind::Admin] {
        let (info, secret) = store.create_token(account.id, kind, "initial", &op.actor())?;
        secrets.push(NewSecret { id: info.id, name: info.name, secret });
    }
    state.committed().await?;
    let (Some(admin_token), Some(scim_token)) = (secrets.pop(), secrets.pop()) else {
        return Err(AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "no tokens were created"));
    };
    let created = Created {
        account: AccountView::of(store, account)?,
        scim_base_url: base_url(&req),
        scim_token,
        admin_token,
    };
    Ok(HttpResponse::build(StatusCode::CREATED).json(created))
}

/// `POST /accounts/{id}/suspend`: SCIM and admin requests of the account get 403 from now on; its data is
/// kept. `POST /accounts/{id}/resume` ends that.
pub async fn suspend_or_resume(
    state: web::Data<AppState>,
    op: OperatorAuth,
    _: NoQuery,
    path: web::Path<(String, String)>,
) -> AdminResult<HttpResponse> {
    let (id, action) = path.into_inner();
    let acct = account(&state.store, &id)?.id;
    let account = match action.as_str() {
        "suspend" => state.store.suspend_account(acct, &op.actor())?,
        "resume" => state.store.resume_account(acct, &op.actor())?,
        _ => {
            return Err(AdminError::not_found(format!(
                "no such endpoint: POST /operator/v1/accounts/{id}/{action}"
            )));
        }
    };
    state.committed().await?;
    Ok(ok(&AccountView::of(&state.store, account)?))
}

/// `DELETE /accounts/{id}?confirm={id}`: 204 once every key of the account is gone. Without the
/// confirmation naming the same account, nothing is deleted.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    _: OperatorAuth,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let query = Query::parse(&req, &["confirm"])?;
    let acct = account(&state.store, &id)?.id;
    if query.get("confirm") != Some(id.as_str()) {
        return Err(input::one(
            StatusCode::BAD_REQUEST,
            "?confirm",
            format!(
                "deleting an account removes all its data for good: repeat its id to confirm \
                 (DELETE /operator/v1/accounts/{id}?confirm={id})"
            ),
        ));
    }
    let store = state.store.clone();
    // Long for a large account: off the worker, which other requests share.
    web::block(move || store.delete_account(acct)).await.map_err(|_| {
        AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the deletion stopped")
    })??;
    state.committed().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /accounts/{id}/tokens?startIndex=&count=`
pub async fn list_tokens(
    req: HttpRequest,
    state: web::Data<AppState>,
    _: OperatorAuth,
    id: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = account(&state.store, &id)?.id;
    tokens::list(&req, &state, acct)
}

/// `POST /accounts/{id}/tokens {"name", "kind", "expiresAt"?}`
pub async fn create_token(
    state: web::Data<AppState>,
    op: OperatorAuth,
    _: NoQuery,
    id: web::Path<String>,
    body: Strict<NewToken>,
) -> AdminResult<HttpResponse> {
    let acct = account(&state.store, &id)?.id;
    tokens::create(&state, acct, body.0, &op.actor()).await
}

/// `DELETE /accounts/{id}/tokens/{token}`
pub async fn revoke_token(
    state: web::Data<AppState>,
    op: OperatorAuth,
    _: NoQuery,
    path: web::Path<(String, String)>,
) -> AdminResult<HttpResponse> {
    let (id, token) = path.into_inner();
    let acct = account(&state.store, &id)?.id;
    tokens::revoke(&state, acct, &token, &op.actor()).await
}

/// `POST /accounts/{id}/domains/{domain}/verify`: the operator's word that the account owns the domain,
/// without a DNS check (claimed on the way if the account had not); 409 when another account verified it.
pub async fn verify_domain(
    state: web::Data<AppState>,
    op: OperatorAuth,
    _: NoQuery,
    path: web::Path<(String, String)>,
) -> AdminResult<HttpResponse> {
    let (id, domain) = path.into_inner();
    let acct = account(&state.store, &id)?.id;
    let (store, actor) = (state.store.clone(), op.actor());
    // Reads every user of the other accounts: off the worker.
    let claim =
        web::block(move || mark_domain_verified(&store, acct, &domain, Verification::Operator, &actor))
            .await
            .map_err(|_| {
                AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the verification stopped")
            })??;
    state.committed().await?;
    Ok(ok(&crate::http::admin::domains::view(&claim)))
}
