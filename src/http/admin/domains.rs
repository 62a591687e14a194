//! Verified domains (`/domains`, `/domains/{domain}`, `/domains/{domain}/verify`): the account claims a
//! domain, publishes the challenge as the `_usersync.<domain>` TXT record and asks for the check.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::input::{self, Fields, FromFields, NoQuery, PAGING_PARAMS, Paging, Query};
use super::{AdminError, AdminResult, Strict, created_or_ok, ok};
use crate::http::AppState;
use crate::http::request::AdminCaller;
use crate::rules::domains::{
    DomainError, challenge_name, claim_domain, domains_of, parse_domain, remove_domain, verify_with_dns,
};
use crate::store::domains::DomainClaim;

impl From<DomainError> for AdminError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(field, why) => input::one(StatusCode::UNPROCESSABLE_ENTITY, field, why),
            DomainError::NotProven(why) => {
                AdminError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_verified", why)
            }
            DomainError::Unresolved(why) => {
                AdminError::new(StatusCode::SERVICE_UNAVAILABLE, "dns_unavailable", why)
            }
            DomainError::Store(e) => e.into(),
        }
    }
}

/// A claim as the admin API shows it: the TXT record to publish while pending.
pub fn view(claim: &DomainClaim) -> Value {
    json!({
        "domain": claim.domain,
        "state": claim.state(),
        "record": {"name": challenge_name(&claim.domain), "type": "TXT", "value": claim.challenge},
        "created": claim.created,
        "verifiedAt": claim.verified_at,
        "how": claim.how,
        "verifiedBy": claim.verified_by,
    })
}

pub struct NewDomain {
    domain: String,
}

impl FromFields for NewDomain {
    fn from_fields(f: &mut Fields) -> Option<Self> {
        Some(NewDomain { domain: f.required("domain")? })
    }
}

/// `GET /domains?startIndex=&count=`: the account's claims in domain order.
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AdminCaller,
) -> AdminResult<HttpResponse> {
    let paging = Paging::from_query(&Query::parse(&req, &PAGING_PARAMS)?)?;
    let claims = domains_of(&state.store, caller.0.account())?;
    Ok(ok(&paging.page(claims.iter().map(view))))
}

/// `POST /domains {"domain"}`: 201 with the challenge (200 with the same one when claimed already).
pub async fn create(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    body: Strict<NewDomain>,
) -> AdminResult<HttpResponse> {
    let (claim, created) = claim_domain(&state.store, caller.0.account(), &body.0.domain, &caller.0.actor())?;
    state.committed().await?;
    Ok(created_or_ok(created, &view(&claim)))
}

fn path_domain(domain: &str) -> AdminResult<String> {
    Ok(parse_domain("domain", domain)?)
}

pub async fn get(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    domain: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let domain = path_domain(&domain)?;
    let claim = state.store.domain_claim(caller.0.account(), &domain)?;
    let claim = claim.ok_or_else(|| AdminError::not_found(format!("domain {domain} not found")))?;
    Ok(ok(&view(&claim)))
}

/// `POST /domains/{domain}/verify`: looks the TXT record up now; 200 with the verified claim, 422
/// `not_verified` saying what DNS holds instead, 503 when the resolver cannot answer.
pub async fn verify(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    domain: web::Path<String>,
) -> AdminResult<HttpResponse> {
    let acct = caller.0.account();
    let domain = path_domain(&domain)?;
    let pending = state.store.domain_claim(acct, &domain)?;
    let pending = pending.ok_or_else(|| AdminError::not_found(format!("domain {domain} not found")))?;
    if pending.verified_at.is_some() {
        return Ok(ok(&view(&pending)));
    }
    let answer = state.dns.txt(&challenge_name(&domain)).await.map_err(DomainError::Unresolved)?;
    let (store, actor) = (state.store.clone(), caller.0.actor());
    // The verification reads every user of the other accounts: off the request threads.
    let claim = web::block(move || verify_with_dns(&store, acct, &domain, &answer, &actor))
        .await
        .map_err(|e| AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    state.committed().await?;
    Ok(ok(&view(&claim)))
}

/// `DELETE /domains/{domain}`: 204; a verified domain stops being the account's at once.
pub async fn delete(
    state: web::Data<AppState>,
    caller: AdminCaller,
    _: NoQuery,
    domain: web::Path<String>,
) -> AdminResult<HttpResponse> {
    remove_domain(&state.store, caller.0.account(), &domain, &caller.0.actor())?;
    state.committed().await?;
    Ok(HttpResponse::NoContent().finish())
}
