//! Writing SCIM answers: a stored resource completed for the client (`meta.location`, a user's `groups`,
//! a group's `members` with `$ref`) and projected, list responses, and the JSON response itself.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, SCIM_JSON};
use crate::scim::project::Projection;
use crate::scim::schema::{LIST_URN, ResourceKind, ResourceSchema};
use crate::store::{AccountId, Store, version_of};

/// A SCIM JSON response.
pub fn scim_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON)))
        .body(serde_json::to_vec(body).unwrap_or_default())
}

/// A single resource already serialised, with its ETag.
pub fn stored_response(status: StatusCode, body: Vec<u8>, version: &str) -> HttpResponse {
    let mut res = HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON)))
        .body(body);
    if let Ok(v) = HeaderValue::from_str(version) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// A resource answer prepared off the event loop: the serialised body (none for 204), the ETag and, for
/// a created resource, the `Location`.
pub struct Encoded {
    body: Option<Vec<u8>>,
    version: String,
    location: Option<String>,
}

impl Encoded {
    /// The answer with `doc` as its body.
    pub fn of(doc: &Value, created: bool) -> Encoded {
        Encoded {
            body: Some(serde_json::to_vec(doc).unwrap_or_default()),
            ..Encoded::headers_of(doc, created)
        }
    }

    /// The headers an answer about `doc` carries, without a body.
    pub fn headers_of(doc: &Value, created: bool) -> Encoded {
        Encoded {
            body: None,
            version: version_of(doc).to_string(),
            location: doc
                .pointer("/meta/location")
                .and_then(Value::as_str)
                .filter(|_| created)
                .map(str::to_string),
        }
    }

    /// The response: `status` with the body, or 204 without one.
    pub fn response(self, status: StatusCode) -> HttpResponse {
        let mut res = match self.body {
            Some(body) => HttpResponse::build(status)
                .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON)))
                .body(body),
            None => HttpResponse::NoContent().finish(),
        };
        if let Ok(v) = HeaderValue::from_str(&self.version) {
            res.headers_mut().insert(header::ETAG, v);
        }
        if let Some(Ok(v)) = self.location.as_deref().map(HeaderValue::from_str) {
            res.headers_mut().insert(header::LOCATION, v);
        }
        res
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
    pub fn render(&self, doc: Value) -> ApiResult<Value> {
        self.render_with_relation(doc, true)
    }

    /// A resource just created. A new user belongs to no group yet (its id is unknown until this answer),
    /// so its groups are not looked up; a new group's members are.
    pub fn render_created(&self, doc: Value) -> ApiResult<Value> {
        self.render_with_relation(doc, self.schema.kind != ResourceKind::User)
    }

    fn render_with_relation(&self, mut doc: Value, relation: bool) -> ApiResult<Value> {
        let id = doc.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        if let Some(meta) = doc.get_mut("meta").and_then(Value::as_object_mut) {
            meta.insert("location".into(), Value::String(self.location(&id)));
        }
        if relation && let Some((name, value)) = self.relation(&id)? {
            doc[name] = value;
        }
        Ok(self.projection.apply(self.schema, doc))
    }

    /// The default representation straight from the stored bytes of resource `id`, for a schema whose
    /// default projection keeps everything stored: nothing but `meta` is parsed, everything else is copied
    /// as it is. Returns the body and the resource's version.
    pub fn render_stored(&self, id: &str, stored: &[u8]) -> ApiResult<(Vec<u8>, String)> {
        if let Some(spliced) = self.splice(id, stored)? {
            return Ok(spliced);
        }
        self.render_top_level(stored)
    }

    /// The common case: the store writes `meta` last and compact (see `assemble`), so the answer is the
    /// stored bytes up to `"meta":`, then the relation (a user's groups), then `meta` with its location.
    /// `None` when the stored bytes are not of that shape.
    fn splice(&self, id: &str, stored: &[u8]) -> ApiResult<Option<(Vec<u8>, String)>> {
        let Some(StoredTail { head, meta, version }) = StoredTail::of(stored) else { return Ok(None) };
        let mut out = Vec::with_capacity(stored.len() + 160);
        out.extend_from_slice(head);
        if let Some((name, value)) = self.relation(id)? {
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            serde_json::to_writer(&mut out, &value).map_err(corrupt)?;
            out.push(b',');
        }
        out.extend_from_slice(StoredTail::META);
        out.extend_from_slice(meta);
        out.extend_from_slice(b",\"location\":");
        serde_json::to_writer(&mut out, &self.location(id)).map_err(corrupt)?;
        out.extend_from_slice(b"}}");
        Ok(Some((out, version)))
    }

    /// Any stored document: its top level parsed, nested values copied as they are.
    fn render_top_level(&self, stored: &[u8]) -> ApiResult<(Vec<u8>, String)> {
        let TopLevel(mut entries) = serde_json::from_slice(stored).map_err(corrupt)?;
        let id = entries
            .iter()
            .find(|(k, _)| k == "id")
            .and_then(|(_, v)| serde_json::from_str::<String>(v.get()).ok())
            .unwrap_or_default();
        let mut version = String::new();
        if let Some((_, meta)) = entries.iter_mut().find(|(k, _)| k == "meta") {
            #[derive(Deserialize)]
            struct Version {
                version: Option<String>,
            }
            version =
                serde_json::from_str::<Version>(meta.get()).map_err(corrupt)?.version.unwrap_or_default();
            // `meta` is an object the store wrote without a location: the location goes before its `}`.
            let text = meta.get().trim_end();
            let open = text.strip_suffix('}').unwrap_or(text).trim_end();
            let comma = if open.ends_with('{') { "" } else { "," };
            let location = serde_json::to_string(&self.location(&id)).map_err(corrupt)?;
            *meta =
                RawValue::from_string(format!("{open}{comma}\"location\":{location}}}")).map_err(corrupt)?;
        }
        if let Some((name, value)) = self.relation(&id)? {
            let at = entries.iter().position(|(k, _)| k == "meta").unwrap_or(entries.len());
            entries.insert(at, (name.to_string(), serde_json::value::to_raw_value(&value).map_err(corrupt)?));
        }
        Ok((serde_json::to_vec(&TopLevel(entries)).map_err(corrupt)?, version))
    }

    fn location(&self, id: &str) -> String {
        format!("{}/{}/{id}", self.base, self.schema.kind.endpoint())
    }

    /// What the store keeps apart from the document: a user's groups, a group's members (when the request
    /// wants them and there are any).
    fn relation(&self, id: &str) -> ApiResult<Option<(&'static str, Value)>> {
        let list: Vec<Value> = match self.schema.kind {
            ResourceKind::User if self.projection.wants(self.schema, "groups") => self
                .store
                .user_groups(self.account, id)?
                .into_iter()
                .map(|(gid, name)| {
                    json!({"value": gid, "$ref": format!("{}/Groups/{gid}", self.base), "display": name, "type": "direct"})
                })
                .collect(),
            ResourceKind::Group if self.projection.wants(self.schema, "members") => {
                self.store.members(self.account, id)?.iter().map(|m| self.member_json(m)).collect()
            }
            _ => return Ok(None),
        };
        let name = if self.schema.kind == ResourceKind::User { "groups" } else { "members" };
        Ok((!list.is_empty()).then_some((name, Value::Array(list))))
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

fn corrupt(e: serde_json::Error) -> ApiError {
    ApiError::Store(crate::store::StoreError::Corrupt(e.to_string()))
}

/// A stored document cut before its `meta`, which the store writes last as
/// `"meta":{"resourceType":...,"version":"..."}`. Only the end of the document is looked at: `meta` is
/// short, and bytes of any other shape are simply not cut.
struct StoredTail<'a> {
    /// Everything before `"meta":`, ending with its comma.
    head: &'a [u8],
    /// `meta` without its closing brace.
    meta: &'a [u8],
    version: String,
}

impl<'a> StoredTail<'a> {
    const META: &'static [u8] = b"\"meta\":";
    const META_OPEN: &'static [u8] = b"\"meta\":{\"resourceType\":\"";
    const VERSION: &'static [u8] = b",\"version\":";
    /// Longer than any `meta` the store writes.
    const WINDOW: usize = 256;

    fn of(stored: &'a [u8]) -> Option<StoredTail<'a>> {
        let from = stored.len().saturating_sub(Self::WINDOW);
        let at = from + rfind(&stored[from..], Self::META_OPEN)?;
        let (head, tail) = stored.split_at(at);
        let meta = tail[Self::META.len()..].strip_suffix(b"}}")?;
        let version_at = rfind(meta, Self::VERSION)?;
        // The version is the last entry: what follows its key must be one JSON string and nothing else.
        let version = serde_json::from_slice::<String>(&meta[version_at + Self::VERSION.len()..]).ok()?;
        head.ends_with(b",").then_some(StoredTail { head, meta, version })
    }
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
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

/// A JSON object read only at its top level: nested values stay unparsed text, in their order.
struct TopLevel(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = TopLevel;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    entries.push(entry);
                }
                Ok(TopLevel(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}

impl Serialize for TopLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::patch::parse_request;
    use crate::scim::resource::normalize;
    use crate::scim::schema::Registry;
    use crate::store::Actor;
    use crate::store::testing::temp_store;

    /// Splicing the stored bytes must give exactly what parsing the top level gives.
    #[test]
    fn spliced_answers_equal_parsed_ones() {
        let (store, _dir) = temp_store();
        let (acct, _) = store.ensure_account("default").unwrap();
        let acct = acct.id;
        let registry = Registry::standard();
        let actor = Actor("test".into());
        let (users, groups) = (registry.resource(ResourceKind::User), registry.resource(ResourceKind::Group));
        let body = json!({
            "userName": "splice@example.com",
            "name": {"givenName": "Spl\"ice", "familyName": "}}"},
            "emails": [{"value": "splice@example.com", "type": "work", "primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "\"meta\":{"},
        });
        let user = store.create(acct, users, &normalize(users, &body).unwrap(), &actor).unwrap();
        let uid = user["id"].as_str().unwrap().to_string();
        let lonely = store.create(acct, users, &normalize(users, &json!({"userName": "x"})).unwrap(), &actor);
        let lonely = lonely.unwrap()["id"].as_str().unwrap().to_string();
        let group =
            store.create(acct, groups, &normalize(groups, &json!({"displayName": "G"})).unwrap(), &actor);
        let gid = group.unwrap()["id"].as_str().unwrap().to_string();
        let add = parse_request(
            &json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}),
        );
        store.patch(acct, groups, &gid, &add.unwrap(), None, &actor).unwrap();

        let projection = Projection::parse(None, None).unwrap();
        for (schema, id) in [(users, &uid), (users, &lonely), (groups, &gid)] {
            let renderer = Renderer {
                store: &store,
                account: acct,
                schema,
                base: "http://h/scim/v2",
                projection: &projection,
            };
            let stored = store.resource_bytes(acct, schema.kind, id).unwrap().unwrap();
            let (spliced, version) =
                renderer.splice(id, &stored).unwrap().expect("a stored document splices");
            let (parsed, parsed_version) = renderer.render_top_level(&stored).unwrap();
            let (spliced, parsed): (Value, Value) =
                (serde_json::from_slice(&spliced).unwrap(), serde_json::from_slice(&parsed).unwrap());
            assert_eq!(spliced, parsed);
            assert_eq!(version, parsed_version);
            assert_eq!(
                spliced["meta"]["location"],
                json!(format!("http://h/scim/v2/{}/{id}", schema.kind.endpoint()))
            );
        }
        let renderer = Renderer {
            store: &store,
            account: acct,
            schema: users,
            base: "http://h/scim/v2",
            projection: &projection,
        };
        let spliced: Value = serde_json::from_slice(
            &renderer
                .splice(&uid, &store.resource_bytes(acct, ResourceKind::User, &uid).unwrap().unwrap())
                .unwrap()
                .unwrap()
                .0,
        )
        .unwrap();
        assert_eq!(spliced["groups"][0]["value"], json!(gid), "a user's groups are spliced in");
        // Bytes of another shape are not spliced, whatever they contain.
        for odd in [&br#"{"id":"1","meta":{"version":"W/\"1\""},"x":1}"#[..], br#"{"a":{"meta":{}}}"#, b"{}"]
        {
            assert!(renderer.splice("1", odd).unwrap().is_none());
        }
    }
}
