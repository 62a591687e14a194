//! What the provisioning log learns about a SCIM request while it is served: a [`Note`] is put in the
//! request's extensions when it arrives; authentication fills in the account and token, the handler the
//! redacted body and the resource it touched, the store the activity entries its writes recorded; once the
//! answer is ready, [`finish`] adds the status, the error and the latency and hands the entry to the store,
//! which records it off the request's path.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{HttpMessage, HttpRequest, web};
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use crate::clock::timestamp;
use crate::scim::redact::{SECRET, redact};
use crate::store::activity::{Caused, collecting};
use crate::store::{AccountId, RequestEntry};

/// What is known so far about one request.
#[derive(Default)]
pub struct Noted {
    account: Option<AccountId>,
    token: String,
    resource_id: Option<String>,
    user_name: Option<String>,
    body: Option<Value>,
    /// Password values the body held, kept out of the error detail too.
    secrets: Vec<String>,
    caused: Caused,
}

/// Shared between the request's handler, its work on the blocking pool and [`finish`].
#[derive(Clone, Default)]
pub struct Note(Arc<Mutex<Noted>>);

impl Note {
    fn with<T>(&self, f: impl FnOnce(&mut Noted) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The request's note, if it is logged.
    pub fn of(req: &HttpRequest) -> Option<Note> {
        req.extensions().get::<Note>().cloned()
    }

    /// Who is calling (after authentication).
    pub fn caller(&self, account: AccountId, token: &str) {
        self.with(|n| {
            n.account = Some(account);
            n.token = token.to_string();
        });
    }

    /// The request body, redacted as the account's settings say.
    pub fn body(&self, state_store: &crate::store::Store, body: &Value) {
        let Some(acct) = self.with(|n| n.account) else { return };
        let values = state_store.retention(acct).map(|r| r.record_values).unwrap_or(false);
        let mut secrets = Vec::new();
        collect_secrets(body, false, &mut secrets);
        let shown = redact(body, values);
        let user_name = body.get("userName").and_then(Value::as_str).map(str::to_string);
        self.with(|n| {
            n.body = Some(shown);
            n.secrets = secrets;
            if n.user_name.is_none() {
                n.user_name = user_name;
            }
        });
    }

    /// The resource the request touched, as the store answered it.
    pub fn resource(&self, doc: &Value) {
        let id = doc.get("id").and_then(Value::as_str).map(str::to_string);
        let user_name = doc.get("userName").and_then(Value::as_str).map(str::to_string);
        self.with(|n| {
            n.resource_id = id.or(n.resource_id.take());
            n.user_name = user_name.or(n.user_name.take());
        });
    }

    /// Runs `work` with the activity entries it records noted.
    pub fn noting<T>(note: &Option<Note>, work: impl FnOnce() -> T) -> T {
        match note {
            Some(n) => collecting(n.with(|n| n.caused.clone()), work),
            None => work(),
        }
    }
}

/// Every string value of a password attribute (or of a PATCH operation writing one) in the body.
fn collect_secrets(v: &Value, secret: bool, out: &mut Vec<String>) {
    match v {
        Value::String(s) if secret && !s.is_empty() => out.push(s.clone()),
        Value::Object(map) => {
            let path = map.get("path").and_then(Value::as_str).unwrap_or("");
            let writes = path.to_ascii_lowercase().contains("password");
            for (k, item) in map {
                let is = k.eq_ignore_ascii_case("password")
                    || k.to_ascii_lowercase().ends_with(":password")
                    || (writes && k.eq_ignore_ascii_case("value"));
                collect_secrets(item, secret || is, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_secrets(i, secret, out)),
        _ => {}
    }
}

/// When the request arrived, by the store's clock and by the monotonic one.
pub struct Started {
    note: Note,
    time: String,
    at: Instant,
}

/// Puts a note in the request.
pub fn start(req: &ServiceRequest) -> Started {
    let note = Note::default();
    req.extensions_mut().insert(note.clone());
    let time = req
        .app_data::<web::Data<AppState>>()
        .map(|s| timestamp(s.store.now()))
        .unwrap_or_else(|| timestamp(chrono::Utc::now()));
    Started { note, time, at: Instant::now() }
}

/// Records the request, once answered, if it was authenticated for an account.
pub fn finish<B>(res: &ServiceResponse<B>, started: Started) {
    let Started { note, time, at } = started;
    let latency_ms = at.elapsed().as_secs_f64() * 1000.0;
    let req = res.request();
    let Some(state) = req.app_data::<web::Data<AppState>>() else { return };
    let status = res.status().as_u16();
    let error = (status >= 400)
        .then(|| res.response().error().and_then(|e| e.as_error::<ApiError>()).map(ApiError::to_scim))
        .flatten();
    let path = req.path().to_string();
    let resource_type = resource_type(&path);
    let id_in_path = req.match_info().get("id").map(str::to_string);
    let entry = note.with(|n| {
        let acct = n.account?;
        let caused = std::mem::take(&mut *n.caused.lock().unwrap_or_else(|p| p.into_inner()));
        let mut detail = error.as_ref().map(|e| e.detail.clone());
        for secret in &n.secrets {
            detail = detail.map(|d| d.replace(secret.as_str(), SECRET));
        }
        let entry = RequestEntry {
            id: String::new(),
            time,
            token: std::mem::take(&mut n.token),
            method: req.method().to_string(),
            path,
            status,
            latency_ms: (latency_ms * 1000.0).round() / 1000.0,
            scim_type: error.as_ref().and_then(|e| e.scim_type).map(|t| t.as_str().to_string()),
            detail,
            resource_type: resource_type.map(str::to_string),
            resource_id: n.resource_id.take().or(id_in_path),
            user_name: if resource_type == Some("User") { n.user_name.take() } else { None },
            body: n.body.take(),
            activity: caused,
        };
        Some((acct, entry))
    });
    if let Some((acct, entry)) = entry {
        state.store.record_request(acct, entry);
    }
}

/// `User` or `Group` for a path under `/Users` or `/Groups`.
fn resource_type(path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/scim/v2/")?;
    match rest.split('/').next()? {
        "Users" => Some("User"),
        "Groups" => Some("Group"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn secrets_are_found_wherever_a_password_is_written() {
        let mut out = Vec::new();
        let body = json!({"password": "a1", "Operations": [{"op": "replace", "path": "Password", "value": "b2"},
            {"op": "add", "value": {"urn:ietf:params:scim:schemas:core:2.0:User:password": "c3"}}],
            "userName": "not-a-secret"});
        super::collect_secrets(&body, false, &mut out);
        out.sort();
        assert_eq!(out, ["a1", "b2", "c3"]);
    }
}
