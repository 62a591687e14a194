//! Discovery (RFC 7644 §4): `/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes`, and the answers for
//! what this server does not do.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::render::{list_response, scim_json};
use super::request::{ScimCaller, base_url};
use crate::scim::schema::{RESOURCE_TYPE_URN, SCHEMA_URN, SERVICE_PROVIDER_CONFIG_URN};

/// The configuration states exactly what the server does: PATCH, filters up to `maxResults`, sorting and
/// ETags yes; bulk and password change no.
pub async fn service_provider_config(
    req: HttpRequest,
    state: web::Data<AppState>,
    _caller: ScimCaller,
) -> HttpResponse {
    let base = base_url(&req);
    let body = json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_URN],
        "documentationUri": "https://github.com/usersync/usersync#readme",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": state.config.max_results},
        "changePassword": {"supported": true},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token issued by usersync",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
    });
    scim_json(StatusCode::OK, &body)
}

/// A discovery document with its `schemas` first and an absolute `meta.location`.
fn published(doc: &Value, schema_urn: &str, resource_type: &str, location: String) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([schema_urn]));
    if let Value::Object(map) = doc {
        out.extend(
            map.iter().filter(|(k, _)| *k != "schemas" && *k != "meta").map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    out.insert("meta".into(), json!({"resourceType": resource_type, "location": location}));
    Value::Object(out)
}

fn schema_docs(req: &HttpRequest, state: &AppState, caller: &ScimCaller) -> Vec<(String, Value)> {
    let base = base_url(req);
    let registry = state.store.registry(caller.0.account());
    registry
        .schemas()
        .map(|s| (s.id.clone(), published(&s.json, SCHEMA_URN, "Schema", format!("{base}/Schemas/{}", s.id))))
        .collect()
}

fn resource_type_docs(req: &HttpRequest, state: &AppState, caller: &ScimCaller) -> Vec<(String, Value)> {
    let base = base_url(req);
    let registry = state.store.registry(caller.0.account());
    registry
        .resource_types()
        .iter()
        .map(|rt| {
            let id = rt.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            let doc = published(rt, RESOURCE_TYPE_URN, "ResourceType", format!("{base}/ResourceTypes/{id}"));
            (id, doc)
        })
        .collect()
}

fn list_of(docs: Vec<(String, Value)>) -> HttpResponse {
    let resources: Vec<Value> = docs.into_iter().map(|(_, d)| d).collect();
    scim_json(StatusCode::OK, &list_response(resources.len(), 1, resources))
}

fn one_of(docs: Vec<(String, Value)>, id: &str, what: &str) -> ApiResult<HttpResponse> {
    docs.into_iter()
        .find(|(doc_id, _)| doc_id.eq_ignore_ascii_case(id))
        .map(|(_, doc)| scim_json(StatusCode::OK, &doc))
        .ok_or_else(|| ApiError::NotFound(format!("{what} {id} not found")))
}

pub async fn schemas(req: HttpRequest, state: web::Data<AppState>, caller: ScimCaller) -> HttpResponse {
    list_of(schema_docs(&req, &state, &caller))
}

pub async fn schema(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: ScimCaller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    one_of(schema_docs(&req, &state, &caller), &id, "schema")
}

pub async fn resource_types(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: ScimCaller,
) -> HttpResponse {
    list_of(resource_type_docs(&req, &state, &caller))
}

pub async fn resource_type(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: ScimCaller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    one_of(resource_type_docs(&req, &state, &caller), &id, "resource type")
}

/// Writes to discovery endpoints.
pub async fn read_only(req: HttpRequest) -> HttpResponse {
    ApiError::MethodNotAllowed(format!("{} is read-only; {} is not allowed", req.path(), req.method()))
        .error_response()
}

/// A method a SCIM resource endpoint does not support.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    ApiError::MethodNotAllowed(format!("{} does not support {}", req.path(), req.method())).error_response()
}

pub async fn bulk_not_supported() -> HttpResponse {
    ApiError::NotImplemented("bulk operations are not supported (bulk.supported is false)".into())
        .error_response()
}

pub async fn me_not_supported() -> HttpResponse {
    ApiError::NotImplemented(
        "/Me is not supported: tokens belong to provisioning clients, not to users".into(),
    )
    .error_response()
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("no such endpoint: {} {}", req.method(), req.path())).error_response()
}
