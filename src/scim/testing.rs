//! Test-only schema: a User extension with the mutability and `returned` characteristics that no standard
//! User attribute has, added the way an account's custom attributes are.

use serde_json::json;

use super::schema::{Registry, ResourceKind, ResourceSchema, Schema};

pub(crate) const BEHAVIOUR_URN: &str = "urn:example:params:scim:schemas:extension:behaviour:2.0:User";

/// `badgeId` is immutable, `locker.number` an immutable sub-attribute of a mutable attribute,
/// `clearance` and `locker.code` are returned only on request.
pub(crate) fn behaviour_registry() -> Registry {
    let ext = Schema::from_json(json!({
        "id": BEHAVIOUR_URN,
        "name": "BehaviourUser",
        "attributes": [
            {"name": "badgeId", "type": "string", "mutability": "immutable"},
            {"name": "clearance", "type": "string", "returned": "request"},
            {"name": "locker", "type": "complex", "subAttributes": [
                {"name": "number", "type": "string", "mutability": "immutable"},
                {"name": "site", "type": "string"},
                {"name": "code", "type": "string", "returned": "request"}
            ]}
        ]
    }))
    .expect("the behaviour extension is a valid schema");
    Registry::standard().with_user_extension(ext)
}

pub(crate) fn behaviour_users() -> ResourceSchema {
    behaviour_registry().resource(ResourceKind::User).clone()
}
