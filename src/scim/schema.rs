//! The schema registry: which attributes a resource has and how each behaves (RFC 7643 §2, §7, §8.7).
//!
//! The standard schemas are the JSON files in `scim-schemas/`, embedded at compile time and served as they
//! are. Accounts add extension schemas at run time, so a registry is a value that is cheap to clone and
//! extend, never a global.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::error::{ScimError, ScimResult};

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const USERSYNC_URN: &str = "urn:ietf:params:scim:schemas:extension:usersync:2.0:User";
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
pub const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SERVICE_PROVIDER_CONFIG_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

const USER_JSON: &str = include_str!("../../scim-schemas/User.json");
const GROUP_JSON: &str = include_str!("../../scim-schemas/Group.json");
const ENTERPRISE_JSON: &str = include_str!("../../scim-schemas/EnterpriseUser.json");
const COMMON_JSON: &str = include_str!("../../scim-schemas/Common.json");
const RESOURCE_TYPES_JSON: &str = include_str!("../../scim-schemas/ResourceTypes.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    ReadOnly,
    #[default]
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    Always,
    Never,
    #[default]
    Default,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Uniqueness {
    #[default]
    None,
    Server,
    Global,
}

/// One attribute or sub-attribute definition (RFC 7643 §7).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttrDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: AttrType,
    #[serde(default)]
    pub multi_valued: bool,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub case_exact: bool,
    #[serde(default)]
    pub mutability: Mutability,
    #[serde(default)]
    pub returned: Returned,
    #[serde(default)]
    pub uniqueness: Uniqueness,
    #[serde(default)]
    pub canonical_values: Vec<String>,
    #[serde(default)]
    pub sub_attributes: Vec<AttrDef>,
}

impl AttrDef {
    /// The sub-attribute called `name`, compared case-insensitively as SCIM requires.
    pub fn sub(&self, name: &str) -> Option<&AttrDef> {
        find_attr(&self.sub_attributes, name)
    }

    pub fn is_complex(&self) -> bool {
        self.kind == AttrType::Complex
    }

    /// The sub-attribute a filter or comparison on a multi-valued attribute without a sub-attribute
    /// looks at (`emails co "x"` compares `emails.value`).
    pub fn value_sub(&self) -> Option<&AttrDef> {
        self.sub("value")
    }
}

fn find_attr<'a>(attrs: &'a [AttrDef], name: &str) -> Option<&'a AttrDef> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// A schema (RFC 7643 §7): its id, its attributes, and the JSON representation served by `/Schemas`.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub id: String,
    pub name: String,
    pub attributes: Vec<AttrDef>,
    pub json: Value,
}

#[derive(Deserialize)]
struct SchemaDoc {
    id: String,
    #[serde(default)]
    name: String,
    attributes: Vec<AttrDef>,
}

impl Schema {
    pub fn from_json(json: Value) -> ScimResult<Schema> {
        let doc: SchemaDoc = serde_json::from_value(json.clone())
            .map_err(|e| ScimError::invalid_value(format!("invalid schema definition: {e}")))?;
        Ok(Schema { id: doc.id, name: doc.name, attributes: doc.attributes, json })
    }

    fn embedded(text: &str) -> Schema {
        // The embedded files are part of the build; a malformed one is a programming error caught by
        // the unit tests below, not a run-time condition.
        #[allow(clippy::expect_used)]
        let json = serde_json::from_str(text).expect("embedded schema is valid JSON");
        #[allow(clippy::expect_used)]
        Schema::from_json(json).expect("embedded schema is a valid schema")
    }

    pub fn attr(&self, name: &str) -> Option<&AttrDef> {
        find_attr(&self.attributes, name)
    }
}

/// The two resource types this server hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    User,
    Group,
}

impl ResourceKind {
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }

    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "Users",
            ResourceKind::Group => "Groups",
        }
    }

    pub fn core_urn(self) -> &'static str {
        match self {
            ResourceKind::User => USER_URN,
            ResourceKind::Group => GROUP_URN,
        }
    }
}

/// Where a resolved attribute lives: top level of the resource (core and common attributes) or inside
/// the object keyed by its extension's URN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location<'a> {
    TopLevel,
    Extension(&'a str),
}

/// An attribute found by [`ResourceSchema::resolve`].
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    pub location: Location<'a>,
    pub def: &'a AttrDef,
}

impl Resolved<'_> {
    /// The attribute's value in a stored resource.
    pub fn get<'v>(&self, resource: &'v Value) -> Option<&'v Value> {
        let container = match self.location {
            Location::TopLevel => resource,
            Location::Extension(urn) => resource.get(urn)?,
        };
        container.get(self.def.name.as_str())
    }
}

/// The schemas that make up one resource type: common attributes, the core schema and its extensions.
#[derive(Debug, Clone)]
pub struct ResourceSchema {
    pub kind: ResourceKind,
    common: Arc<Schema>,
    pub core: Arc<Schema>,
    pub extensions: Vec<Arc<Schema>>,
}

impl ResourceSchema {
    /// Finds a top-level attribute by name, optionally qualified by a schema URN; names and URNs are
    /// case-insensitive. An unqualified name is looked up in the common attributes, the core schema, then
    /// each extension.
    pub fn resolve(&self, urn: Option<&str>, name: &str) -> Option<Resolved<'_>> {
        match urn {
            Some(urn) if urn.eq_ignore_ascii_case(&self.core.id) => self.top_level(name),
            Some(urn) => {
                let ext = self.extension(urn)?;
                ext.attr(name).map(|def| Resolved { location: Location::Extension(&ext.id), def })
            }
            None => self.top_level(name).or_else(|| {
                self.extensions.iter().find_map(|ext| {
                    ext.attr(name).map(|def| Resolved { location: Location::Extension(&ext.id), def })
                })
            }),
        }
    }

    fn top_level(&self, name: &str) -> Option<Resolved<'_>> {
        self.common
            .attr(name)
            .or_else(|| self.core.attr(name))
            .map(|def| Resolved { location: Location::TopLevel, def })
    }

    /// The extension schema whose id is `urn` (case-insensitive).
    pub fn extension(&self, urn: &str) -> Option<&Arc<Schema>> {
        self.extensions.iter().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// True when `urn` names the core schema or one of the extensions.
    pub fn knows_schema(&self, urn: &str) -> bool {
        self.core.id.eq_ignore_ascii_case(urn) || self.extension(urn).is_some()
    }

    /// Common attributes followed by the core schema's, in definition order.
    /// Whether the default projection answers a stored document as it is: no attribute, sub-attribute or
    /// extension attribute is returned only on request or never, the password aside, which normalisation
    /// sets apart and the store never keeps in the document.
    pub fn default_returns_stored(&self) -> bool {
        fn plain(defs: &[AttrDef]) -> bool {
            defs.iter().all(|d| {
                let shown =
                    matches!(d.returned, Returned::Default | Returned::Always) || d.name == "password";
                shown && plain(&d.sub_attributes)
            })
        }
        [&self.common, &self.core].into_iter().chain(&self.extensions).all(|s| plain(&s.attributes))
    }

    pub fn top_level_attrs(&self) -> impl Iterator<Item = &AttrDef> {
        self.common.attributes.iter().chain(self.core.attributes.iter())
    }
}

/// Every schema and resource type one account sees.
#[derive(Debug, Clone)]
pub struct Registry {
    user: ResourceSchema,
    group: ResourceSchema,
    resource_types: Vec<Value>,
}

impl Registry {
    /// The RFC 7643 schemas: User with the enterprise extension, and Group.
    pub fn standard() -> Registry {
        let common = Arc::new(Schema::embedded(COMMON_JSON));
        #[allow(clippy::expect_used)]
        let resource_types =
            serde_json::from_str(RESOURCE_TYPES_JSON).expect("embedded resource types are valid JSON");
        Registry {
            user: ResourceSchema {
                kind: ResourceKind::User,
                common: common.clone(),
                core: Arc::new(Schema::embedded(USER_JSON)),
                extensions: vec![Arc::new(Schema::embedded(ENTERPRISE_JSON))],
            },
            group: ResourceSchema {
                kind: ResourceKind::Group,
                common,
                core: Arc::new(Schema::embedded(GROUP_JSON)),
                extensions: Vec::new(),
            },
            resource_types,
        }
    }

    /// This registry with one more User extension schema (an account's custom attributes); an existing
    /// extension with the same id is replaced.
    pub fn with_user_extension(&self, schema: Schema) -> Registry {
        let mut next = self.clone();
        let id = schema.id.clone();
        next.user.extensions.retain(|s| !s.id.eq_ignore_ascii_case(&id));
        next.user.extensions.push(Arc::new(schema));
        for rt in &mut next.resource_types {
            if rt.get("name").and_then(Value::as_str) != Some("User") {
                continue;
            }
            if let Some(exts) = rt.get_mut("schemaExtensions").and_then(Value::as_array_mut) {
                exts.retain(|e| e.get("schema").and_then(Value::as_str) != Some(id.as_str()));
                exts.push(serde_json::json!({"schema": id, "required": false}));
            }
        }
        next
    }

    pub fn resource(&self, kind: ResourceKind) -> &ResourceSchema {
        match kind {
            ResourceKind::User => &self.user,
            ResourceKind::Group => &self.group,
        }
    }

    /// Every published schema, in the order `/Schemas` lists them.
    pub fn schemas(&self) -> impl Iterator<Item = &Arc<Schema>> {
        std::iter::once(&self.user.core)
            .chain(std::iter::once(&self.group.core))
            .chain(self.user.extensions.iter())
    }

    pub fn schema(&self, urn: &str) -> Option<&Arc<Schema>> {
        self.schemas().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// The `ResourceType` representations (RFC 7643 §6), without `meta`.
    pub fn resource_types(&self) -> &[Value] {
        &self.resource_types
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_load_with_their_rfc_ids() {
        let reg = Registry::standard();
        let ids: Vec<_> = reg.schemas().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, [USER_URN, GROUP_URN, ENTERPRISE_URN]);
        assert_eq!(reg.resource_types().len(), 2);
    }

    #[test]
    fn stored_documents_are_answered_as_they_are_only_without_request_or_never_attributes() {
        let reg = Registry::standard();
        assert!(reg.resource(ResourceKind::User).default_returns_stored(), "the password is never stored");
        assert!(reg.resource(ResourceKind::Group).default_returns_stored());
        // `clearance` and `locker.code` are returned only on request
        assert!(!crate::scim::testing::behaviour_users().default_returns_stored());
    }

    #[test]
    fn resolves_names_case_insensitively_with_and_without_urn() {
        let reg = Registry::standard();
        let user = reg.resource(ResourceKind::User);
        let r = user.resolve(None, "USERNAME").unwrap();
        assert_eq!(r.def.name, "userName");
        assert!(!r.def.case_exact);
        assert!(r.def.required);
        assert_eq!(r.def.uniqueness, Uniqueness::Server);
        assert_eq!(r.location, Location::TopLevel);

        let r = user.resolve(Some(USER_URN), "emails").unwrap();
        assert!(r.def.multi_valued);
        assert_eq!(r.def.sub("TYPE").unwrap().canonical_values, ["work", "home", "other"]);

        let r =
            user.resolve(Some("URN:ietf:params:scim:schemas:extension:enterprise:2.0:user"), "Department");
        let r = r.unwrap();
        assert_eq!(r.def.name, "department");
        assert_eq!(r.location, Location::Extension(ENTERPRISE_URN));

        // unqualified extension attributes are found too
        assert_eq!(
            user.resolve(None, "employeeNumber").unwrap().location,
            Location::Extension(ENTERPRISE_URN)
        );
        assert!(user.resolve(None, "nope").is_none());
        assert!(user.resolve(Some(GROUP_URN), "userName").is_none());
    }

    #[test]
    fn common_attributes_are_known_to_every_resource() {
        let reg = Registry::standard();
        for kind in [ResourceKind::User, ResourceKind::Group] {
            let rs = reg.resource(kind);
            let id = rs.resolve(None, "id").unwrap().def;
            assert_eq!((id.mutability, id.returned), (Mutability::ReadOnly, Returned::Always));
            let meta = rs.resolve(None, "meta").unwrap().def;
            assert_eq!(meta.sub("created").unwrap().kind, AttrType::DateTime);
            assert!(rs.resolve(None, "externalId").unwrap().def.case_exact);
        }
    }

    #[test]
    fn password_is_write_only_and_never_returned() {
        let reg = Registry::standard();
        let pw = reg.resource(ResourceKind::User).resolve(None, "password").unwrap().def;
        assert_eq!((pw.mutability, pw.returned), (Mutability::WriteOnly, Returned::Never));
    }

    #[test]
    fn extension_is_added_to_user_and_its_resource_type() {
        let ext = Schema::from_json(serde_json::json!({
            "id": USERSYNC_URN, "name": "UsersyncUser",
            "attributes": [{"name": "costCode", "type": "string"}]
        }))
        .unwrap();
        let reg = Registry::standard().with_user_extension(ext.clone()).with_user_extension(ext);
        let user = reg.resource(ResourceKind::User);
        assert_eq!(user.extensions.len(), 2);
        assert_eq!(user.resolve(None, "COSTCODE").unwrap().location, Location::Extension(USERSYNC_URN));
        let rt = &reg.resource_types()[0];
        assert_eq!(rt["schemaExtensions"].as_array().unwrap().len(), 2);
        assert!(reg.schema(USERSYNC_URN).is_some());
        // the original is untouched: registries are values
        assert!(Registry::standard().schema(USERSYNC_URN).is_none());
    }

    #[test]
    fn resolved_attribute_reads_from_the_right_place() {
        let reg = Registry::standard();
        let user = reg.resource(ResourceKind::User);
        let doc = serde_json::json!({"userName": "a", ENTERPRISE_URN: {"department": "Sales"}});
        assert_eq!(user.resolve(None, "department").unwrap().get(&doc), Some(&Value::from("Sales")));
        assert_eq!(user.resolve(None, "userName").unwrap().get(&doc), Some(&Value::from("a")));
    }
}
