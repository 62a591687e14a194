//! Products and their licence pools: seats used / total, and setting the total (raising it retries the
//! users who ran out, as the store does for the admin API).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::pages::Layout;
use super::session::{Signed, SignedForm};
use super::{ConsoleError, ConsoleResult, html, page, redirect};
use crate::http::AppState;
use crate::store::StoreError;

pub struct ProductRow {
    id: String,
    name: String,
    used: u64,
    seats: String,
    error: String,
}

#[derive(Template)]
#[template(path = "products.html")]
struct ProductsPage {
    layout: Layout,
    csrf: String,
    products: Vec<ProductRow>,
    notice: String,
}

fn products_page(
    state: &AppState,
    signed: &Signed,
    error: Option<(&str, String)>,
    notice: String,
) -> ConsoleResult<ProductsPage> {
    let products = state
        .store
        .products(signed.caller.account())?
        .into_iter()
        .map(|(p, used)| ProductRow {
            error: match &error {
                Some((id, message)) if *id == p.id => message.clone(),
                _ => String::new(),
            },
            seats: p.seats.map(|s| s.to_string()).unwrap_or_default(),
            id: p.id,
            name: p.name,
            used,
        })
        .collect();
    Ok(ProductsPage {
        layout: Layout::signed(signed, "Products", "products"),
        csrf: signed.csrf.clone(),
        products,
        notice,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductsQuery {
    saved: Option<String>,
}

pub async fn list(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<ProductsQuery>,
) -> ConsoleResult<HttpResponse> {
    let notice = match &query.saved {
        Some(id) => match state.store.product(signed.caller.account(), id)? {
            Some((p, _)) => format!("The seats of {} were saved.", p.name),
            None => String::new(),
        },
        None => String::new(),
    };
    page(&products_page(&state, &signed, None, notice)?)
}

/// `POST /products/{id}/seats`: `seats` is the new total (empty: unlimited).
pub async fn set_seats(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&["seats"])?;
    let signed = &form.signed;
    let acct = signed.caller.account();
    let (mut product, _) = state
        .store
        .product(acct, &id)?
        .ok_or_else(|| ConsoleError::NotFound(format!("There is no product {id}.")))?;
    let text = form.fields.get("seats").unwrap_or_default().trim();
    let refused = |message: String| -> ConsoleResult<HttpResponse> {
        let view = products_page(&state, signed, Some((id.as_str(), message)), String::new())?;
        Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &view))
    };
    product.seats = if text.is_empty() {
        None
    } else {
        match text.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return refused(format!("'{text}' is not a whole number of seats.")),
        }
    };
    match state.store.put_product(acct, &product, &signed.caller.actor()) {
        Ok(_) => {}
        Err(StoreError::Conflict(m)) => return refused(m),
        Err(e) => return Err(e.into()),
    }
    state.committed().await?;
    redirect(&req, &format!("/console/products?saved={}", super::pages::query_escape(&id)))
}
