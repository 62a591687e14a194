//! The `/Users` and `/Groups` endpoints and `/.search`: parse, call the store, answer.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::provisioning::Note;
use super::render::{Encoded, Renderer, list_response, scim_json, stored_response};
use super::request::{JsonBody, Params, RawBody, ScimCaller, base_url, if_match};
use crate::scim::ScimError;
use crate::scim::filter::{Filter, check, parse_filter};
use crate::scim::patch::{PatchLimits, parse_request_within};
use crate::scim::project::Projection;
use crate::scim::resource::{Normalized, check_value_counts, normalize};
use crate::scim::schema::ResourceSchema;
use crate::scim::schema::{Registry, ResourceKind};
use crate::store::{ListQuery, StoreError, StoreResult, version_of, wanted};

/// The list parameters of a GET query or a `.search` body.
#[derive(Debug, Default)]
struct Search {
    filter: Option<String>,
    attributes: Option<String>,
    excluded: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    sort_by: Option<String>,
    descending: bool,
}

impl Search {
    fn from_query(params: &Params) -> ApiResult<Search> {
        let number = |name: &str| -> ApiResult<Option<i64>> {
            params
                .get(name)
                .map(|v| v.trim().parse::<i64>())
                .transpose()
                .map_err(|_| ScimError::invalid_value(format!("'{name}' must be an integer")).into())
        };
        Ok(Search {
            filter: params.get("filter").map(str::to_string),
            attributes: params.get("attributes").map(str::to_string),
            excluded: params.get("excludedAttributes").map(str::to_string),
            start_index: number("startIndex")?,
            count: number("count")?,
            sort_by: params.get("sortBy").map(str::to_string),
            descending: params.get("sortOrder").is_some_and(|o| o.eq_ignore_ascii_case("descending")),
        })
    }

    /// A SearchRequest body (RFC 7644 §3.4.3); attribute lists may be arrays or comma-separated strings.
    fn from_body(body: &Value) -> ApiResult<Search> {
        let Value::Object(map) = body else {
            return Err(ScimError::invalid_syntax("a search request must be a JSON object").into());
        };
        let field = |name: &str| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        let text = |name: &str| -> Option<String> {
            match field(name)? {
                Value::String(s) => Some(s.clone()),
                Value::Array(items) => {
                    Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                }
                _ => None,
            }
        };
        let number = |name: &str| -> ApiResult<Option<i64>> {
            match field(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_i64()),
                Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad_number(name)),
                Some(_) => Err(bad_number(name)),
            }
        };
        Ok(Search {
            filter: text("filter"),
            attributes: text("attributes"),
            excluded: text("excludedAttributes"),
            start_index: number("startIndex")?,
            count: number("count")?,
            sort_by: text("sortBy"),
            descending: text("sortOrder").is_some_and(|o| o.eq_ignore_ascii_case("descending")),
        })
    }

    fn projection(&self) -> ApiResult<Projection> {
        Ok(Projection::parse(self.attributes.as_deref(), self.excluded.as_deref())?)
    }

    fn filter(&self) -> ApiResult<Option<Filter>> {
        Ok(self.filter.as_deref().filter(|f| !f.trim().is_empty()).map(parse_filter).transpose()?)
    }

    /// RFC 7644 §3.4.2.4: a start index below 1 means 1; a negative count means 0; the count is capped.
    fn window(&self, max_results: usize) -> (usize, usize) {
        let start = self.start_index.unwrap_or(1).max(1) as usize;
        let count = self.count.map_or(max_results, |c| (c.max(0) as usize).min(max_results));
        (start, count)
    }
}

fn bad_number(name: &str) -> ApiError {
    ScimError::invalid_value(format!("'{name}' must be an integer")).into()
}

/// Runs a store write on the blocking pool: it may wait for a group commit, and the more writers wait
/// together, the more of them one commit serves.
async fn blocking<T: Send + 'static>(
    write: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> ApiResult<T> {
    web::block(write).await.map_err(pool_gone)?.map_err(ApiError::from)
}

fn pool_gone(e: actix_web::error::BlockingError) -> ApiError {
    ApiError::Store(StoreError::Io(std::io::Error::other(e.to_string())))
}

/// A create or replace body in its stored form, with no multi-valued attribute of a user over the cap.
fn checked_input(schema: &ResourceSchema, body: &Value, max_values: usize) -> ApiResult<Normalized> {
    let input = normalize(schema, body)?;
    if schema.kind == ResourceKind::User {
        check_value_counts(schema, &input.attrs, max_values)?;
    }
    Ok(input)
}

/// Tells a write on the blocking pool that its client has gone: actix drops a handler's future when the
/// connection closes, which drops the watch (see [`ClientGone::check`]).
#[derive(Clone)]
struct ClientGone(std::sync::Arc<()>);

impl ClientGone {
    fn watch() -> ClientGone {
        ClientGone(std::sync::Arc::new(()))
    }

    /// Whether the handler holding the other copy is still there.
    fn wanted(&self) -> bool {
        std::sync::Arc::strong_count(&self.0) >= 2
    }
}

/// One SCIM write, everything it needs to run on the blocking pool: parsing the body, checking it,
/// writing, and preparing the answer all happen there, since for a body of a thousand operations or many
/// thousand members each of them takes long enough to hold up every other connection of the worker.
struct Write {
    store: crate::store::Store,
    acct: crate::store::AccountId,
    actor: crate::store::Actor,
    registry: std::sync::Arc<Registry>,
    kind: ResourceKind,
    base: String,
    answer: Answer,
    note: Option<Note>,
}

impl Write {
    fn new(req: &HttpRequest, state: &AppState, caller: &ScimCaller, kind: ResourceKind) -> ApiResult<Write> {
        Ok(Write {
            store: state.store.clone(),
            acct: caller.0.account(),
            actor: caller.0.actor(),
            registry: registry(state, caller),
            kind,
            base: base_url(req),
            answer: Answer::of(req, kind)?,
            note: Note::of(req),
        })
    }

    /// Tells the provisioning log the request's body.
    fn note_body(&self, body: &Value) {
        if let Some(note) = &self.note {
            note.body(&self.store, body);
        }
    }

    /// Tells the provisioning log the resource written.
    fn note_resource(&self, doc: &Value) {
        if let Some(note) = &self.note {
            note.resource(doc);
        }
    }

    fn schema(&self) -> &ResourceSchema {
        self.registry.resource(self.kind)
    }

    /// Runs `work` on the blocking pool, after waiting for the account's turn when the body is large (see
    /// [`super::LargeWrites`]). The store stops the work with nothing written when the client goes away
    /// meanwhile (see [`crate::store::wanted`]); a commit under way finishes.
    async fn run<T: Send + 'static>(
        self,
        state: &AppState,
        body_len: usize,
        work: impl FnOnce(&Write) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let turn = state.large_writes.turn(self.acct, body_len).await;
        let gone = ClientGone::watch();
        let seen = gone.clone();
        let result = web::block(move || {
            // The turn ends with the work, not with the handler: work whose client has gone runs on to
            // its next check, and the account's next large write waits until then.
            let _turn = turn;
            let note = self.note.clone();
            wanted::while_wanted(
                move || seen.wanted(),
                || {
                    wanted::still_wanted()?;
                    Note::noting(&note, || work(&self))
                },
            )
        })
        .await
        .map_err(pool_gone)?;
        drop(gone);
        result
    }

    /// The answer about `doc`: rendered as the request asked, or only its headers for a 204.
    fn encode(&self, doc: Value, created: bool, with_body: bool) -> ApiResult<Encoded> {
        let renderer = Renderer {
            store: &self.store,
            account: self.acct,
            schema: self.schema(),
            base: &self.base,
            projection: &self.answer.projection,
        };
        if !with_body {
            return Ok(Encoded::headers_of(&doc, false));
        }
        let rendered = if created { renderer.render_created(doc)? } else { renderer.render(doc)? };
        Ok(Encoded::of(&rendered, created))
    }
}

fn registry(state: &AppState, caller: &ScimCaller) -> std::sync::Arc<Registry> {
    state.store.registry(caller.0.account())
}

pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    caller: ScimCaller,
) -> ApiResult<HttpResponse> {
    let search = Search::from_query(&Params::parse(&req)?)?;
    run_search(&req, &state, &caller, &[**kind], &search)
}

pub async fn search(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    caller: ScimCaller,
    body: JsonBody,
) -> ApiResult<HttpResponse> {
    note_search(&req, &state, &body.0);
    run_search(&req, &state, &caller, &[**kind], &Search::from_body(&body.0)?)
}

/// `POST /.search`: every resource type, users first.
pub async fn search_all(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: ScimCaller,
    body: JsonBody,
) -> ApiResult<HttpResponse> {
    note_search(&req, &state, &body.0);
    run_search(
        &req,
        &state,
        &caller,
        &[ResourceKind::User, ResourceKind::Group],
        &Search::from_body(&body.0)?,
    )
}

/// Tells the provisioning log a search request's body.
fn note_search(req: &HttpRequest, state: &AppState, body: &Value) {
    if let Some(note) = Note::of(req) {
        note.body(&state.store, body);
    }
}

/// Lists over one or more resource types, paging across them as one sequence.
fn run_search(
    req: &HttpRequest,
    state: &AppState,
    caller: &ScimCaller,
    kinds: &[ResourceKind],
    search: &Search,
) -> ApiResult<HttpResponse> {
    let registry = registry(state, caller);
    let projection = search.projection()?;
    let filter = search.filter()?;
    let (start, count) = search.window(state.config.max_results);
    let base = base_url(req);
    let acct = caller.0.account();
    let (mut total, mut resources, mut skip) = (0, Vec::new(), start - 1);
    for &kind in kinds {
        let schema = registry.resource(kind);
        if let Some(f) = &filter
            && kinds.len() == 1
        {
            check(f, schema)?;
        }
        let want = count - resources.len();
        let q = ListQuery {
            filter: filter.as_ref(),
            start_index: skip + 1,
            count: want,
            sort_by: search.sort_by.as_deref(),
            descending: search.descending,
        };
        let page = state.store.list(acct, kind, schema, &q)?;
        skip = skip.saturating_sub(page.total);
        total += page.total;
        let renderer =
            Renderer { store: &state.store, account: acct, schema, base: &base, projection: &projection };
        for doc in page.resources {
            resources.push(renderer.render(doc)?);
        }
    }
    Ok(scim_json(StatusCode::OK, &list_response(total, start, resources)))
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    caller: ScimCaller,
    body: RawBody,
) -> ApiResult<HttpResponse> {
    let write = Write::new(&req, &state, &caller, **kind)?;
    let max_values = state.config.max_values;
    let encoded = write
        .run(&state, body.0.len(), move |w| {
            let json = body.json()?;
            w.note_body(&json);
            let input = checked_input(w.schema(), &json, max_values)?;
            wanted::still_wanted()?;
            let doc = w.store.create(w.acct, w.schema(), &input, &w.actor)?;
            w.note_resource(&doc);
            w.encode(doc, true, true)
        })
        .await?;
    state.committed().await?;
    Ok(encoded.response(StatusCode::CREATED))
}

pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    caller: ScimCaller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let acct = caller.0.account();
    let not_found = || ApiError::NotFound(format!("{} {id} not found", kind.name()));
    let params = Params::parse(&req)?;
    let projection = Projection::parse(params.get("attributes"), params.get("excludedAttributes"))?;
    let registry = registry(&state, &caller);
    let base = base_url(&req);
    let renderer = Renderer {
        store: &state.store,
        account: acct,
        schema: registry.resource(**kind),
        base: &base,
        projection: &projection,
    };
    // Most reads ask for the default representation, which is served from the stored bytes.
    let (body, version) = if projection.is_default() && renderer.schema.default_returns_stored() {
        let stored = state.store.resource_bytes(acct, **kind, &id)?.ok_or_else(not_found)?;
        renderer.render_stored(&id, &stored)?
    } else {
        let doc = state.store.resource(acct, **kind, &id)?.ok_or_else(not_found)?;
        let version = version_of(&doc).to_string();
        (serde_json::to_vec(&renderer.render(doc)?).unwrap_or_default(), version)
    };
    if let Some(tags) = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok())
        && tags.split(',').any(|t| t.trim() == "*" || weak_eq(t.trim(), &version))
    {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, version)).finish());
    }
    Ok(stored_response(StatusCode::OK, body, &version))
}

/// RFC 9110 §8.8.3.2 weak comparison, which `If-None-Match` uses: the opaque tags match, `W/` aside.
fn weak_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

/// How a write answers, read from the request before anything is written: a bad `attributes` is a 400
/// with nothing stored, never a 400 after the write went through.
struct Answer {
    projection: Projection,
    /// Whether a PATCH answers with the resource (see [`wants_representation`]).
    representation: bool,
}

impl Answer {
    fn of(req: &HttpRequest, kind: ResourceKind) -> ApiResult<Answer> {
        let params = Params::parse(req)?;
        let projection = Projection::parse(params.get("attributes"), params.get("excludedAttributes"))?;
        Ok(Answer { projection, representation: wants_representation(req, &params, kind) })
    }
}

pub async fn replace(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    caller: ScimCaller,
    id: web::Path<String>,
    body: RawBody,
) -> ApiResult<HttpResponse> {
    let write = Write::new(&req, &state, &caller, **kind)?;
    let (expected, max_values, id) = (if_match(&req), state.config.max_values, id.into_inner());
    let encoded = write
        .run(&state, body.0.len(), move |w| {
            let json = body.json()?;
            w.note_body(&json);
            let input = checked_input(w.schema(), &json, max_values)?;
            wanted::still_wanted()?;
            let doc = w.store.replace(w.acct, w.schema(), &id, &input, expected.as_deref(), &w.actor)?;
            w.note_resource(&doc);
            w.encode(doc, false, true)
        })
        .await?;
    state.committed().await?;
    Ok(encoded.response(StatusCode::OK))
}

pub async fn patch(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    caller: ScimCaller,
    id: web::Path<String>,
    body: RawBody,
) -> ApiResult<HttpResponse> {
    let write = Write::new(&req, &state, &caller, **kind)?;
    let (expected, max_operations, id) = (if_match(&req), state.config.max_operations, id.into_inner());
    let limits = PatchLimits { max_values: state.config.max_values };
    let encoded = write
        .run(&state, body.0.len(), move |w| {
            let json = body.json()?;
            w.note_body(&json);
            let ops = parse_request_within(&json, max_operations)?;
            wanted::still_wanted()?;
            let doc =
                w.store.patch_within(w.acct, w.schema(), &id, &ops, limits, expected.as_deref(), &w.actor)?;
            w.note_resource(&doc);
            w.encode(doc, false, w.answer.representation)
        })
        .await?;
    state.committed().await?;
    Ok(encoded.response(StatusCode::OK))
}

/// PATCH answers 204 (what Entra ID and Microsoft's validator expect, and what keeps a PATCH on a group of
/// 100,000 members cheap) unless the client asks for the resource: with `attributes` /
/// `excludedAttributes`, with `Prefer: return=representation`, or, for users, when it is Okta, whose
/// documentation answers user PATCHes with 200 and the user.
fn wants_representation(req: &HttpRequest, params: &Params, kind: ResourceKind) -> bool {
    let header =
        |name: header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    params.has("attributes")
        || params.has("excludedAttributes")
        || header(header::HeaderName::from_static("prefer")).contains("return=representation")
        || (kind == ResourceKind::User && header(header::USER_AGENT).to_ascii_lowercase().contains("okta"))
}

pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    caller: ScimCaller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (store, acct, actor, expected, kind_) =
        (state.store.clone(), caller.0.account(), caller.0.actor(), if_match(&req), **kind);
    let note = Note::of(&req);
    blocking(move || {
        if let (Some(note), ResourceKind::User) = (&note, kind_)
            && let Ok(Some(user)) = store.user(acct, &id)
        {
            note.resource(&user);
        }
        Note::noting(&note, || store.delete(acct, kind_, &id, expected.as_deref(), &actor))
    })
    .await?;
    state.committed().await?;
    Ok(HttpResponse::NoContent().finish())
}
