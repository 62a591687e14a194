//! The protocol layer's error: an HTTP status, an RFC 7644 §3.12 `scimType` and a detail for the client.

use std::fmt;

/// RFC 7644 §3.12 `scimType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }

    /// The status RFC 7644 §3.12 pairs with this type.
    fn status(self) -> u16 {
        match self {
            ScimType::Uniqueness => 409,
            ScimType::Sensitive => 403,
            _ => 400,
        }
    }
}

/// A failed SCIM operation, carrying everything an Error response needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<ScimType>,
    pub detail: String,
}

impl fmt::Display for ScimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scim_type {
            Some(t) => write!(f, "{} ({}): {}", self.status, t.as_str(), self.detail),
            None => write!(f, "{}: {}", self.status, self.detail),
        }
    }
}

impl ScimError {
    pub fn new(scim_type: ScimType, detail: impl Into<String>) -> Self {
        ScimError { status: scim_type.status(), scim_type: Some(scim_type), detail: detail.into() }
    }

    /// An error with a status but no `scimType` (404, 412, 413, 501, ...).
    pub fn status(status: u16, detail: impl Into<String>) -> Self {
        ScimError { status, scim_type: None, detail: detail.into() }
    }

    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(ScimType::InvalidFilter, detail)
    }

    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(ScimType::InvalidPath, detail)
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(ScimType::InvalidValue, detail)
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(ScimType::InvalidSyntax, detail)
    }

    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::new(ScimType::Mutability, detail)
    }

    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::new(ScimType::NoTarget, detail)
    }

    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(ScimType::Uniqueness, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::status(404, detail)
    }

    /// The RFC 7644 §3.12 Error message body.
    pub fn to_body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "schemas": [crate::scim::schema::ERROR_URN],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(map)) = (self.scim_type, body.as_object_mut()) {
            map.insert("scimType".into(), t.as_str().into());
        }
        body
    }
}

pub type ScimResult<T> = Result<T, ScimError>;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::schema::ERROR_URN;

    /// RFC 7644 §3.12, Table 9: each `scimType`, its spelling and the status it goes with.
    const TABLE_9: [(ScimType, &str, u16); 10] = [
        (ScimType::InvalidFilter, "invalidFilter", 400),
        (ScimType::TooMany, "tooMany", 400),
        (ScimType::Uniqueness, "uniqueness", 409),
        (ScimType::Mutability, "mutability", 400),
        (ScimType::InvalidSyntax, "invalidSyntax", 400),
        (ScimType::InvalidPath, "invalidPath", 400),
        (ScimType::NoTarget, "noTarget", 400),
        (ScimType::InvalidValue, "invalidValue", 400),
        (ScimType::InvalidVers, "invalidVers", 400),
        (ScimType::Sensitive, "sensitive", 403),
    ];

    #[test]
    fn every_scim_type_has_the_rfc_spelling_and_status() {
        for (scim_type, spelling, status) in TABLE_9 {
            assert_eq!(scim_type.as_str(), spelling);
            let err = ScimError::new(scim_type, "x");
            assert_eq!((err.status, err.scim_type), (status, Some(scim_type)), "{spelling}");
        }
    }

    #[test]
    fn constructors_pick_their_scim_type() {
        for (err, want) in [
            (ScimError::invalid_filter("d"), ScimType::InvalidFilter),
            (ScimError::invalid_path("d"), ScimType::InvalidPath),
            (ScimError::invalid_value("d"), ScimType::InvalidValue),
            (ScimError::invalid_syntax("d"), ScimType::InvalidSyntax),
            (ScimError::mutability("d"), ScimType::Mutability),
            (ScimError::no_target("d"), ScimType::NoTarget),
            (ScimError::uniqueness("d"), ScimType::Uniqueness),
        ] {
            assert_eq!(err, ScimError::new(want, "d"));
        }
        assert_eq!(ScimError::not_found("d"), ScimError { status: 404, scim_type: None, detail: "d".into() });
    }

    #[test]
    fn body_is_the_rfc_error_message_with_the_status_as_a_string() {
        let body = ScimError::uniqueness("userName 'bjensen' is taken").to_body();
        assert_eq!(
            body,
            json!({"schemas": [ERROR_URN], "status": "409", "scimType": "uniqueness",
                "detail": "userName 'bjensen' is taken"})
        );
        // Okta's SPEC test compares `status` with a string ("401", "404"); without a scimType, no key
        let body = ScimError::not_found("no such user").to_body();
        assert_eq!(body, json!({"schemas": [ERROR_URN], "status": "404", "detail": "no such user"}));
    }

    #[test]
    fn display_names_status_type_and_detail() {
        assert_eq!(ScimError::invalid_filter("at byte 3").to_string(), "400 (invalidFilter): at byte 3");
        assert_eq!(ScimError::status(501, "bulk").to_string(), "501: bulk");
    }
}
