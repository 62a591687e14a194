//! Signing in with an admin token (which opens a session) and signing out. The sign-in form's CSRF token
//! travels in a cookie of its own, since there is no session yet.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::pages::Layout;
use super::session::{
    CSRF_FIELD, Fields, SESSION_COOKIE, SIGNIN_COOKIE, Sessions, SignedForm, cookie, random_token, removal,
    safe_return, same_secret,
};
use super::{ConsoleError, ConsoleResult, html};
use crate::http::AppState;
use crate::store::{Authentication, TokenKind};

#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignInPage {
    layout: Layout,
    csrf: String,
    next: String,
    notice: Option<&'static str>,
    error: Option<String>,
}

fn next_of(value: Option<&str>) -> String {
    value.filter(|n| safe_return(n)).unwrap_or("/console/").to_string()
}

/// The form, with a fresh CSRF token in its cookie.
fn answer(
    req: &HttpRequest,
    status: StatusCode,
    next: String,
    notice: Option<&'static str>,
    error: Option<&str>,
) -> HttpResponse {
    let csrf = random_token();
    let page = SignInPage {
        layout: Layout::public("Sign in"),
        csrf: csrf.clone(),
        next,
        notice,
        error: error.map(str::to_string),
    };
    let mut res = html(status, &page);
    if let Err(e) = res.add_cookie(&cookie(req, SIGNIN_COOKIE, csrf)) {
        log::error!("console cookie: {e}");
    }
    res
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInQuery {
    next: Option<String>,
    #[serde(rename = "signedOut")]
    signed_out: Option<String>,
}

pub async fn form(req: HttpRequest, query: web::Query<SignInQuery>) -> HttpResponse {
    let notice = query.signed_out.as_ref().map(|_| "You have signed out.");
    answer(&req, StatusCode::OK, next_of(query.next.as_deref()), notice, None)
}

pub async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    sessions: web::Data<Sessions>,
    form: web::Form<Vec<(String, String)>>,
) -> ConsoleResult<HttpResponse> {
    let fields = Fields(form.into_inner());
    fields.only(&["token", "next"])?;
    let expected = req.cookie(SIGNIN_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    let sent = fields.get(CSRF_FIELD).unwrap_or_default();
    if expected.is_empty() || !same_secret(sent, &expected) {
        return Err(ConsoleError::Csrf);
    }
    let next = next_of(fields.get("next"));
    let secret = fields.get("token").unwrap_or_default().trim();
    if secret.is_empty() {
        return Ok(answer(&req, StatusCode::UNPROCESSABLE_ENTITY, next, None, Some("Enter an admin token.")));
    }
    let refused = match state.store.authenticate_why(secret)? {
        Authentication::Valid(t) if t.kind == TokenKind::Admin => Ok(t),
        Authentication::Valid(_) => {
            Err("This is a SCIM token; the console needs an admin token.".to_string())
        }
        Authentication::Unknown => Err("This token is not a valid admin token.".to_string()),
        Authentication::Expired(t) => Err(format!(
            "This token expired at {}; ask for a new one.",
            t.expires_at.as_deref().unwrap_or("its expiry")
        )),
        Authentication::Suspended(_, name) => Err(format!(
            "The account {name} is suspended by the operator of this server; its data is kept, and you can \
             sign in again once it is resumed."
        )),
    };
    let token = match refused {
        Ok(token) => token,
        Err(why) => return Ok(answer(&req, StatusCode::UNPROCESSABLE_ENTITY, next, None, Some(&why))),
    };
    let session = sessions.open(secret, state.store.clock().now());
    log::info!("console: {} signed in", token.actor().0);
    let mut res = HttpResponse::SeeOther().insert_header(("Location", next)).finish();
    let cookies = [cookie(&req, SESSION_COOKIE, session), removal(&req, SIGNIN_COOKIE)];
    for c in &cookies {
        res.add_cookie(c).map_err(|_| ConsoleError::Internal)?;
    }
    Ok(res)
}

pub async fn sign_out(
    req: HttpRequest,
    sessions: web::Data<Sessions>,
    form: SignedForm,
) -> ConsoleResult<HttpResponse> {
    form.fields.only(&[])?;
    sessions.close(&form.signed.session);
    let mut res = super::go_to(super::is_htmx(&req), "/console/signin?signedOut=1");
    res.add_cookie(&removal(&req, SESSION_COOKIE)).map_err(|_| ConsoleError::Internal)?;
    Ok(res)
}
