//! Writing SCIM answers: a stored resource completed for the client (`meta.location`, a user's `groups`,
//! a group's `members` with `$ref`) and projected, list responses, and the JSON response itself.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use serde_json::{Value, json};

use super::error::{ApiResult, SCIM_JSON};
use crate::scim::project::Projection;
use crate::scim::schema::{LIST_URN, ResourceKind, ResourceSchema};
use crate::store::{AccountId, Store, version_of};

/// A SCIM JSON response.
pub fn scim_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON)))
        .body(body.to_string())
}

/// A single resource with its ETag (and `Location` when just created).
pub fn resource_response(status: StatusCode, doc: &Value) -> HttpResponse {
    let mut res = scim_json(status, doc);
    set_resource_headers(&mut res, doc, status == StatusCode::CREATED);
    res
}

/// 204 No Content carrying the new ETag.
pub fn no_content(doc: &Value) -> HttpResponse {
    let mut res = HttpResponse::NoContent().finish();
    set_resource_headers(&mut res, doc, false);
    res
}

fn set_resource_headers(res: &mut HttpResponse, doc: &Value, created: bool) {
    if let Ok(v) = HeaderValue::from_str(version_of(doc)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    if created
        && let Some(Ok(v)) = doc.pointer("/meta/location").and_then(Value::as_str).map(HeaderValue::from_str)
    {
        res.headers_mut().insert(header::LOCATION, v);
    }
}

/// Everything needed to turn stored documents into what one request asked for.
pub struct Renderer<'a> {
    pub store: &'a Store,
    pub account: AccountId,
    pub schema: &'a ResourceSchema,
    pub base: &'a str,
    pub projection: &'a Projection,
}

impl Renderer<'_> {
    pub fn render(&self, doc: &Value) -> ApiResult<Value> {
        let mut doc = doc.clone();
        let id = doc.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let kind = self.schema.kind;
        if let Some(meta) = doc.get_mut("meta").and_then(Value::as_object_mut) {
            meta.insert("location".into(), Value::String(format!("{}/{}/{id}", self.base, kind.endpoint())));
        }
        match kind {
            ResourceKind::User if self.projection.wants(self.schema, "groups") => {
                let groups: Vec<Value> = self
                    .store
                    .user_groups(self.account, &id)?
                    .into_iter()
                    .map(|(gid, name)| {
                        json!({"value": gid, "$ref": format!("{}/Groups/{gid}", self.base), "display": name, "type": "direct"})
                    })
                    .collect();
                if !groups.is_empty() {
                    doc["groups"] = Value::Array(groups);
                }
            }
            ResourceKind::Group if self.projection.wants(self.schema, "members") => {
                let members: Vec<Value> =
                    self.store.members(self.account, &id)?.iter().map(|m| self.member_json(m)).collect();
                if !members.is_empty() {
                    doc["members"] = Value::Array(members);
                }
            }
            _ => {}
        }
        Ok(self.projection.apply(self.schema, &doc))
    }

    fn member_json(&self, member: &crate::store::Member) -> Value {
        let mut obj = member.to_json();
        if member.reference.is_none() {
            let endpoint = match member.kind.as_deref() {
                Some(k) if k.eq_ignore_ascii_case("Group") => Some("Groups"),
                Some(k) if k.eq_ignore_ascii_case("User") => Some("Users"),
                _ => None,
            };
            if let Some(endpoint) = endpoint {
                obj["$ref"] = Value::String(format!("{}/{endpoint}/{}", self.base, member.id));
            }
        }
        obj
    }
}

/// A ListResponse (RFC 7644 §3.4.2).
pub fn list_response(total: usize, start_index: usize, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_URN],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}
