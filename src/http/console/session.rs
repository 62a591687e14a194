//! Console sessions and CSRF tokens. A session is opened by signing in with an admin token and lives in
//! this process's memory only (a restart signs everyone out): its id is the cookie, and it keeps the token's
//! secret so that every request authenticates the token again with the same store function the admin API
//! uses, which is how a revoked token ends its sessions. Sessions expire after 12 hours without a request,
//! by the store's clock.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::{DateTime, Duration, Utc};
use subtle::ConstantTimeEq;

use super::ConsoleError;
use crate::http::AppState;
use crate::http::request::Caller;
use crate::store::TokenKind;

/// The session cookie.
pub const SESSION_COOKIE: &str = "usersync_console";
/// The cookie that carries the sign-in form's CSRF token before there is a session.
pub const SIGNIN_COOKIE: &str = "usersync_signin";
/// The hidden form field every console form carries.
pub const CSRF_FIELD: &str = "csrf";
/// A session ends after this long without a request.
pub const IDLE_EXPIRY: Duration = Duration::hours(12);

struct Session {
    secret: String,
    csrf: String,
    last_seen: DateTime<Utc>,
}

/// The open sessions of this process, shared by all HTTP workers.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

/// A random value for session ids and CSRF tokens: 244 bits from the OS's generator.
pub fn random_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Equal strings, compared in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    /// Opens a session for an admin token's secret; returns its id. Expired sessions are dropped here, so
    /// the map holds only sessions used in the last 12 hours.
    pub fn open(&self, secret: &str, now: DateTime<Utc>) -> String {
        let id = random_token();
        if let Ok(mut open) = self.open.lock() {
            open.retain(|_, s| now - s.last_seen < IDLE_EXPIRY);
            open.insert(
                id.clone(),
                Session { secret: secret.to_string(), csrf: random_token(), last_seen: now },
            );
        }
        id
    }

    /// The secret and CSRF token of a live session, which counts as used now; an expired one is removed.
    fn touch(&self, id: &str, now: DateTime<Utc>) -> Option<(String, String)> {
        let mut open = self.open.lock().ok()?;
        let session = open.get_mut(id)?;
        if now - session.last_seen >= IDLE_EXPIRY {
            open.remove(id);
            return None;
        }
        session.last_seen = now;
        Some((session.secret.clone(), session.csrf.clone()))
    }

    pub fn close(&self, id: &str) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(id);
        }
    }
}

/// A signed-in admin: the token (authenticated again on this request), the session and its CSRF token.
pub struct Signed {
    pub caller: Caller,
    pub session: String,
    pub csrf: String,
}

impl Signed {
    fn from_request_sync(req: &HttpRequest) -> Result<Signed, ConsoleError> {
        let state = req.app_data::<web::Data<AppState>>().ok_or(ConsoleError::Internal)?;
        let sessions = req.app_data::<web::Data<Sessions>>().ok_or(ConsoleError::Internal)?;
        let sign_in = || ConsoleError::SignIn { back: return_path(req), htmx: super::is_htmx(req) };
        let id = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string()).ok_or_else(sign_in)?;
        let (secret, csrf) = sessions.touch(&id, state.store.clock().now()).ok_or_else(sign_in)?;
        let token = state.store.authenticate(&secret)?.filter(|t| t.kind == TokenKind::Admin);
        let Some(token) = token else {
            sessions.close(&id);
            return Err(sign_in());
        };
        Ok(Signed { caller: Caller { token }, session: id, csrf })
    }
}

impl FromRequest for Signed {
    type Error = ConsoleError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Signed::from_request_sync(req))
    }
}

/// The fields of a posted form, in order (a checkbox list repeats its name).
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// Refuses a field the form does not have: nothing sent is silently ignored.
    pub fn only(&self, known: &[&str]) -> Result<(), ConsoleError> {
        match self.0.iter().find(|(k, _)| k != CSRF_FIELD && !known.contains(&k.as_str())) {
            Some((k, _)) => Err(ConsoleError::BadRequest(format!("the form has no field '{k}'"))),
            None => Ok(()),
        }
    }
}

/// A form posted by a signed-in admin, whose CSRF token matched the session's.
pub struct SignedForm {
    pub signed: Signed,
    pub fields: Fields,
}

impl FromRequest for SignedForm {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let signed = Signed::from_request_sync(req);
        let form = web::Form::<Vec<(String, String)>>::from_request(req, payload);
        Box::pin(async move {
            let signed = signed?;
            let fields =
                Fields(form.await.map_err(|e| ConsoleError::BadRequest(e.to_string()))?.into_inner());
            let sent = fields.get(CSRF_FIELD).unwrap_or_default();
            if !same_secret(sent, &signed.csrf) {
                return Err(ConsoleError::Csrf);
            }
            Ok(SignedForm { signed, fields })
        })
    }
}

/// Where to come back to after signing in: this page, if it is a console page that is read with GET.
fn return_path(req: &HttpRequest) -> Option<String> {
    if req.method() != actix_web::http::Method::GET {
        return None;
    }
    let path = match req.query_string() {
        "" => req.path().to_string(),
        q => format!("{}?{q}", req.path()),
    };
    safe_return(&path).then_some(path)
}

/// A return path may only lead to a console page of this server (never `//elsewhere`).
pub fn safe_return(path: &str) -> bool {
    path.starts_with("/console") && !path.starts_with("/console/signin") && !path.contains("//")
}

/// A cookie of the console: HttpOnly, SameSite=Strict, Secure when the request came over TLS.
pub fn cookie(req: &HttpRequest, name: &'static str, value: String) -> Cookie<'static> {
    let mut c =
        Cookie::build(name, value).path("/console").http_only(true).same_site(SameSite::Strict).finish();
    c.set_secure(req.connection_info().scheme() == "https");
    c
}

/// A cookie that removes `name`.
pub fn removal(req: &HttpRequest, name: &'static str) -> Cookie<'static> {
    let mut c = cookie(req, name, String::new());
    c.make_removal();
    c
}

/// The sessions an HTTP server shares between its workers.
pub fn shared() -> web::Data<Sessions> {
    web::Data::from(Arc::new(Sessions::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64, minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::hours(hours) + Duration::minutes(minutes)
    }

    #[test]
    fn a_session_expires_after_twelve_idle_hours_and_each_use_extends_it() {
        let sessions = Sessions::default();
        let id = sessions.open("secret", at(0, 0));
        assert_eq!(sessions.touch(&id, at(11, 59)).map(|s| s.0).as_deref(), Some("secret"));
        assert!(sessions.touch(&id, at(23, 58)).is_some(), "the use at 11:59 counts");
        assert!(sessions.touch(&id, at(35, 58)).is_none(), "12 hours after the last use");
        assert!(sessions.touch(&id, at(35, 58)).is_none(), "and it stays closed");
    }

    #[test]
    fn sessions_are_separate_and_closing_one_leaves_the_other() {
        let sessions = Sessions::default();
        let a = sessions.open("a", at(0, 0));
        let b = sessions.open("b", at(0, 0));
        assert_ne!(a, b);
        let (_, csrf_a) = sessions.touch(&a, at(0, 1)).unwrap();
        let (_, csrf_b) = sessions.touch(&b, at(0, 1)).unwrap();
        assert_ne!(csrf_a, csrf_b);
        sessions.close(&a);
        assert!(sessions.touch(&a, at(0, 2)).is_none());
        assert!(sessions.touch(&b, at(0, 2)).is_some());
        assert!(sessions.touch("unknown", at(0, 2)).is_none());
    }

    #[test]
    fn opening_a_session_drops_the_expired_ones() {
        let sessions = Sessions::default();
        sessions.open("old", at(0, 0));
        sessions.open("new", at(13, 0));
        assert_eq!(sessions.open.lock().unwrap().len(), 1);
    }

    #[test]
    fn return_paths_stay_on_the_console() {
        assert!(safe_return("/console/rules?x=1"));
        assert!(!safe_return("//evil.example/console"));
        assert!(!safe_return("/console//evil.example"));
        assert!(!safe_return("/admin/v1/rules"));
        assert!(!safe_return("/console/signin"));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }
}
