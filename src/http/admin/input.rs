//! Strict admin input: bodies read field by field (every unknown field and every bad field reported at
//! once), JSON merge patch (RFC 7396), query parameters checked against what an endpoint takes, paging,
//! admin object ids, and ETags with `If-Match`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{AdminError, AdminResult};

/// One problem of a request, named by its field (`products[1]`, `admin.privileges`, `?count`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Problems collected while reading or checking a request; [`Problems::into_result`] fails with all of
/// them at once.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    pub fn extend(&mut self, errors: Vec<FieldError>) {
        self.0.extend(errors);
    }

    /// `Ok` without problems; otherwise an error of `status` listing every problem.
    pub fn into_result(self, status: StatusCode) -> AdminResult<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        Err(AdminError::fields(status, self.0))
    }

    /// Shape problems (unknown, missing or mistyped fields): a 400.
    pub fn shape(self) -> AdminResult<()> {
        self.into_result(StatusCode::BAD_REQUEST)
    }

    /// Values or references that do not fit: a 422.
    pub fn values(self) -> AdminResult<()> {
        self.into_result(StatusCode::UNPROCESSABLE_ENTITY)
    }
}

/// An error of `status` about one field.
pub fn one(status: StatusCode, field: impl Into<String>, message: impl Into<String>) -> AdminError {
    AdminError::fields(status, vec![FieldError { field: field.into(), message: message.into() }])
}

/// A JSON object read field by field. Each field is taken at most once; [`Fields::finish`] then reports
/// the fields nobody took as unknown, together with every field that was missing or of the wrong type.
pub struct Fields {
    map: Map<String, Value>,
    prefix: String,
    problems: Problems,
}

/// The JSON type a value has, as messages name it.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Why `value` is not a `T`, in words (serde's message without its position).
fn type_problem<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    let shown = json_type(&value);
    serde_json::from_value(value).map_err(|e| {
        let text = e.to_string();
        if text.starts_with("invalid type") { format!("{shown} is not allowed here ({text})") } else { text }
    })
}

impl Fields {
    /// The fields of `value`, which must be an object (a 400 otherwise).
    pub fn of(value: Value) -> AdminResult<Fields> {
        Self::nested(value, "")
    }

    /// The fields of an object found at `prefix` (`admin`) inside a body.
    pub fn nested(value: Value, prefix: &str) -> AdminResult<Fields> {
        match value {
            Value::Object(map) => {
                Ok(Fields { map, prefix: prefix.to_string(), problems: Problems::default() })
            }
            other => {
                let field = if prefix.is_empty() { "body" } else { prefix };
                Err(one(
                    StatusCode::BAD_REQUEST,
                    field,
                    format!("must be a JSON object, not {}", json_type(&other)),
                ))
            }
        }
    }

    fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) }
    }

    /// A field that must be there and not null.
    pub fn required<T: DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        match self.map.remove(name) {
            None | Some(Value::Null) => {
                let path = self.path(name);
                self.problems.add(path, "is required");
                None
            }
            Some(v) => self.convert(name, v),
        }
    }

    /// A field that may be absent or null (`None` then).
    pub fn optional<T: DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(v) => self.convert(name, v),
        }
    }

    /// Is `name` in the object (null included)?
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// A field that holds an object, read with its own [`Fields`] (whose problems join these).
    pub fn object(&mut self, name: &str) -> Option<Fields> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => {
                Some(Fields { map, prefix: self.path(name), problems: Problems::default() })
            }
            Some(other) => {
                let path = self.path(name);
                self.problems.add(path, format!("must be an object, not {}", json_type(&other)));
                None
            }
        }
    }

    /// Takes over the problems of a nested object read with [`Fields::object`], unknown fields included.
    pub fn absorb(&mut self, nested: Fields) {
        let Fields { map, prefix, problems } = nested;
        self.problems.0.extend(problems.0);
        for name in map.keys() {
            self.problems.add(format!("{prefix}.{name}"), "unknown field");
        }
    }

    /// Records a problem of a field named in full (not under this object's prefix).
    pub fn problem_at(&mut self, field: String, message: String) {
        self.problems.add(field, message);
    }

    /// Records a problem of the field `name` found by the caller.
    pub fn problem(&mut self, name: &str, message: impl Into<String>) {
        let path = self.path(name);
        self.problems.add(path, message);
    }

    fn convert<T: DeserializeOwned>(&mut self, name: &str, value: Value) -> Option<T> {
        match type_problem(value) {
            Ok(v) => Some(v),
            Err(message) => {
                let path = self.path(name);
                self.problems.add(path, message);
                None
            }
        }
    }

    /// Fails with a 400 listing every unknown field and every field that was missing or mistyped.
    pub fn finish(self) -> AdminResult<()> {
        let Fields { map, prefix, mut problems } = self;
        for name in map.keys() {
            let field = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            problems.add(field, "unknown field");
        }
        problems.shape()
    }
}

/// A strictly read body type: every admin body that has fields implements this, and PUT, PATCH and POST
/// of the type all go through it.
pub trait FromFields: Sized {
    /// Reads the fields it knows; problems stay in `fields` for [`Fields::finish`].
    fn from_fields(fields: &mut Fields) -> Option<Self>;

    /// Reads a whole body: unknown fields and every shape problem fail together with a 400.
    fn from_value(value: Value) -> AdminResult<Self> {
        let mut fields = Fields::of(value)?;
        let parsed = Self::from_fields(&mut fields);
        fields.finish()?;
        parsed.ok_or_else(|| AdminError::bad_request("the body could not be read"))
    }
}

/// A body type read from its JSON value with admin errors.
pub trait FromBody: Sized {
    fn from_json(value: Value) -> AdminResult<Self>;
}

impl<T: FromFields> FromBody for T {
    fn from_json(value: Value) -> AdminResult<Self> {
        T::from_value(value)
    }
}

/// Applies a JSON merge patch (RFC 7396) to `target`: objects merge member by member, `null` removes a
/// member, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (name, change) in changes {
            if change.is_null() {
                map.remove(name);
            } else {
                merge_patch(map.entry(name.clone()).or_insert(Value::Null), change);
            }
        }
    }
}

/// Admin object ids (products, user groups, templates): 1 to 64 of `A-Z a-z 0-9 _ . -`.
pub fn check_object_id(id: &str) -> AdminResult<()> {
    if crate::rules::is_object_id(id) {
        return Ok(());
    }
    Err(one(
        StatusCode::BAD_REQUEST,
        "id",
        format!("'{id}' is not an id: 1 to 64 of the characters A-Z a-z 0-9 _ . -"),
    ))
}

/// Query parameters an endpoint takes (names case-insensitive): any other is a 400 naming it.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(req: &HttpRequest, allowed: &[&str]) -> AdminResult<Query> {
        let params = if req.query_string().is_empty() {
            Vec::new()
        } else {
            web::Query::<Vec<(String, String)>>::from_query(req.query_string())
                .map_err(|e| AdminError::bad_request(format!("malformed query string: {e}")))?
                .into_inner()
        };
        let mut p = Problems::default();
        for (name, _) in &params {
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
                let known = if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") };
                p.add(format!("?{name}"), format!("unknown query parameter (this endpoint takes: {known})"));
            }
        }
        p.shape()?;
        Ok(Query(params))
    }

    /// A parameter's value (the last one given); an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// A whole number parameter within `min..=max`: not a number is a 400, out of range a 422.
    pub fn number(&self, name: &str, min: usize, max: usize) -> AdminResult<Option<usize>> {
        let Some(text) = self.get(name) else { return Ok(None) };
        let Ok(n) = text.trim().parse::<i128>() else {
            return Err(one(
                StatusCode::BAD_REQUEST,
                format!("?{name}"),
                format!("'{text}' is not a whole number"),
            ));
        };
        match usize::try_from(n) {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(one(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("?{name}"),
                format!("{n} is out of range: {min} to {max}"),
            )),
        }
    }

    /// One of `choices`, or a 422 naming them.
    pub fn choice<'a>(&'a self, name: &str, choices: &[&str]) -> AdminResult<Option<&'a str>> {
        let Some(value) = self.get(name) else { return Ok(None) };
        if choices.contains(&value) {
            return Ok(Some(value));
        }
        Err(one(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("?{name}"),
            format!("'{value}' is not one of {}", choices.join(", ")),
        ))
    }
}

/// An extractor for endpoints that take no query parameters: any is a 400 naming it.
pub struct NoQuery;

impl actix_web::FromRequest for NoQuery {
    type Error = AdminError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Query::parse(req, &[]).map(|_| NoQuery))
    }
}

/// The default page size of every admin list.
pub const DEFAULT_PAGE: usize = 50;
/// The largest page an admin list returns; a larger `count` is refused, not clamped.
pub const MAX_PAGE: usize = 1000;

/// `startIndex` (1-based) and `count` of a list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub start_index: usize,
    pub count: usize,
}

/// A page of a list: SCIM's list shape, which every admin list answers with.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub total_results: usize,
    pub start_index: usize,
    pub items_per_page: usize,
    #[serde(rename = "Resources")]
    pub resources: Vec<T>,
}

/// The query parameters [`Paging::from_query`] reads, for [`Query::parse`]'s list.
pub const PAGING_PARAMS: [&str; 2] = ["startIndex", "count"];

impl Paging {
    pub fn from_query(query: &Query) -> AdminResult<Paging> {
        let start_index = query.number("startIndex", 1, u32::MAX as usize)?.unwrap_or(1);
        let count = query.number("count", 0, MAX_PAGE)?.unwrap_or(DEFAULT_PAGE);
        Ok(Paging { start_index, count })
    }

    /// Where the page starts in a 0-based list.
    pub fn skip(&self) -> usize {
        self.start_index - 1
    }

    /// The page of `items` (all of the list, in order).
    pub fn page<T>(&self, items: impl IntoIterator<Item = T>) -> Page<T> {
        let mut total = 0;
        let mut resources = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            total += 1;
            if i >= self.skip() && resources.len() < self.count {
                resources.push(item);
            }
        }
        self.of(total, resources)
    }

    /// A page the caller cut itself, out of `total`.
    pub fn of<T>(&self, total: usize, resources: Vec<T>) -> Page<T> {
        Page {
            total_results: total,
            start_index: self.start_index,
            items_per_page: resources.len(),
            resources,
        }
    }
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            total_results: self.total_results,
            start_index: self.start_index,
            items_per_page: self.items_per_page,
            resources: self.resources.into_iter().map(f).collect(),
        }
    }
}

/// A weak ETag from a version string.
pub fn etag(version: &str) -> String {
    format!("W/\"{version}\"")
}

/// Adds `ETag` to an answer.
pub fn with_etag(mut res: HttpResponse, version: &str) -> HttpResponse {
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// The version `If-Match` asks for (`None` without the header or for `*`), quotes and `W/` taken off.
pub fn if_match(req: &HttpRequest) -> AdminResult<Option<String>> {
    let Some(raw) = req.headers().get(header::IF_MATCH) else { return Ok(None) };
    let value = raw.to_str().map_err(|_| AdminError::bad_request("If-Match is not readable text"))?.trim();
    if value == "*" {
        return Ok(None);
    }
    let version = value.trim_start_matches("W/").trim_matches('"');
    if version.is_empty() {
        return Err(AdminError::bad_request(format!("If-Match '{value}' names no version")));
    }
    Ok(Some(version.to_string()))
}

/// The 412 of an `If-Match` that names a version other than `current`.
pub fn check_if_match(wanted: Option<&str>, current: &str, what: &str) -> AdminResult<()> {
    match wanted {
        Some(w) if w != current => Err(AdminError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            format!("{what} has changed; its current version is {}", etag(current)),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_problem_of_a_body_is_reported_at_once() {
        let mut f = Fields::of(json!({"name": 3, "prodcts": [], "admin": {"acess": "full"}})).unwrap();
        let name: Option<String> = f.required("name");
        let seats: Option<u64> = f.required("seats");
        let admin = f.object("admin").unwrap();
        f.absorb(admin);
        assert_eq!((name, seats), (None, None));
        let err = f.finish().unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "seats", "admin.acess", "prodcts"]);
        assert_eq!(err.errors[1].message, "is required");
        assert_eq!(err.errors[3].message, "unknown field");
        assert!(
            err.errors[0].message.starts_with("a number is not allowed here"),
            "{}",
            err.errors[0].message
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_a_400() {
        assert_eq!(Fields::of(json!([1])).err().unwrap().errors[0].field, "body");
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // The examples of RFC 7396, appendix A.
        for (target, patch, result) in [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
        ] {
            let mut t = target.clone();
            merge_patch(&mut t, &patch);
            assert_eq!(t, result, "{target} + {patch}");
        }
    }

    #[test]
    fn object_ids_are_short_and_plain() {
        for good in ["meeting", "a", "A-b_c.9", &"x".repeat(64)] {
            assert!(check_object_id(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "é", "a/b", &"x".repeat(65), "x?"] {
            assert_eq!(check_object_id(bad).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn pages_count_everything_and_return_a_slice() {
        let paging = Paging { start_index: 3, count: 2 };
        let page = paging.page(1..=10);
        assert_eq!((page.total_results, page.items_per_page, page.resources), (10, 2, vec![3, 4]));
        let past = Paging { start_index: 20, count: 5 }.page(1..=10);
        assert_eq!((past.total_results, past.resources.len()), (10, 0));
    }
}
