//! Schema-aware filter evaluation. (stub: replaced by the real evaluator)

use serde_json::Value;

use super::Filter;
use crate::scim::error::ScimResult;
use crate::scim::schema::{AttrDef, ResourceSchema};

/// Rejects filters that are well-formed but meaningless for this resource type (e.g. `gt` on a boolean).
pub fn check(_filter: &Filter, _schema: &ResourceSchema) -> ScimResult<()> {
    Ok(())
}

/// Does `resource` (a stored resource in its JSON representation) satisfy `filter`?
pub fn matches(_filter: &Filter, _resource: &Value, _schema: &ResourceSchema) -> bool {
    false
}

/// Does one element of the multi-valued attribute `parent` satisfy `filter` (the inside of `attr[...]`)?
pub fn matches_element(_filter: &Filter, _element: &Value, _parent: &AttrDef) -> bool {
    false
}
