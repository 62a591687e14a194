//! The Administrative Activity History: newest first, a page at a time (`before` is the cursor the store
//! gives for the next page).

use actix_web::{HttpResponse, web};
use askama::Template;

use super::pages::{Layout, capitalised, query_escape};
use super::session::Signed;
use super::{ConsoleError, ConsoleResult, page};
use crate::http::AppState;
use crate::store::{Activity, ActivityQuery};

/// Entries per page.
const PAGE: usize = 50;

pub struct Entry {
    time: String,
    actor: String,
    what: String,
    target: String,
    detail: String,
}

/// "rule.created" → "Rule created".
fn words(kind: &str) -> String {
    capitalised(&kind.replace(['.', '_'], " "))
}

fn entry(a: Activity) -> Entry {
    let detail = match &a.detail {
        serde_json::Value::Object(m) if m.is_empty() => String::new(),
        other => other.to_string(),
    };
    Entry { time: a.time, actor: a.actor, what: words(&a.kind), target: a.target.unwrap_or_default(), detail }
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    layout: Layout,
    entries: Vec<Entry>,
    /// The address of the next (older) page, filters kept.
    older: Option<String>,
    kind: String,
    user: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityParams {
    before: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    user: Option<String>,
}

pub async fn list(
    state: web::Data<AppState>,
    signed: Signed,
    params: web::Query<ActivityParams>,
) -> ConsoleResult<HttpResponse> {
    let before = params
        .before
        .as_deref()
        .map(|b| {
            b.parse::<u64>()
                .map_err(|_| ConsoleError::BadRequest(format!("'{b}' is not a page of the history")))
        })
        .transpose()?;
    let filter =
        |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    let (kind, user) = (filter(&params.kind), filter(&params.user));
    let query =
        ActivityQuery { kind: kind.clone(), user: user.clone(), target: None, limit: PAGE, before, skip: 0 };
    let (entries, next) = state.store.activity(signed.caller.account(), &query)?;
    let kind = kind.unwrap_or_default();
    let user = user.unwrap_or_default();
    let older = next.map(|n| {
        format!("/console/activity?type={}&user={}&before={n}", query_escape(&kind), query_escape(&user))
    });
    page(&ActivityPage {
        layout: Layout::signed(&signed, "Administrative Activity History", "activity"),
        entries: entries.into_iter().map(entry).collect(),
        older,
        kind,
        user,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn kinds_read_as_words() {
        assert_eq!(super::words("rule.created"), "Rule created");
        assert_eq!(super::words("failures.retried"), "Failures retried");
    }
}
