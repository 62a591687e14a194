//! Identity strings (a user's `userName`, a group's `displayName`): what is refused in them, and the form
//! they are compared in, so that look-alike spellings of one name are one name. Comparison follows the
//! PRECIS profile for usernames (RFC 8265 UsernameCaseMapped: width mapping, case mapping, NFC) from
//! precis-profiles, applied to the name with surrounding white space trimmed and inner Unicode spaces read
//! as ASCII spaces (RFC 8265 §3.1 allows space-separated parts; their comparison is the profile's).

use precis_profiles::UsernameCaseMapped;
use precis_profiles::precis_core::profile::Rules;
use precis_profiles::precis_core::{DerivedPropertyValue, FreeformClass, StringClass};

use super::error::{ScimError, ScimResult};

/// Longest identity string, in characters of its comparison form.
pub const MAX_IDENTITY_CHARS: usize = 256;

/// The form two identity strings are compared in: equal forms are the same name.
pub fn comparison_key(name: &str) -> String {
    let trimmed = name.trim();
    // For ASCII text, width mapping and NFC change nothing and case mapping is ASCII lower-casing.
    if trimmed.is_ascii() {
        return trimmed.to_ascii_lowercase();
    }
    let spaced: String = trimmed.chars().map(|c| if c.is_whitespace() { ' ' } else { c }).collect();
    let profile = UsernameCaseMapped::new();
    let width = profile.width_mapping_rule(spaced.as_str()).map(|s| s.into_owned()).unwrap_or(spaced);
    let lower = profile.case_mapping_rule(width.as_str()).map(|s| s.into_owned()).unwrap_or(width);
    profile.normalization_rule(lower.as_str()).map(|s| s.into_owned()).unwrap_or(lower)
}

/// Checks an identity string and returns what is stored: the value as sent, trimmed. Control, zero-width
/// and bidi-control characters (everything the PRECIS FreeformClass disallows, or allows only in a joining
/// context) are refused, as is a name longer than [`MAX_IDENTITY_CHARS`] once prepared.
pub fn check_identity(attr: &str, value: &str) -> ScimResult<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ScimError::invalid_value(format!("attribute '{attr}' must not be blank")));
    }
    if let Some((position, c)) = trimmed.chars().enumerate().find(|(_, c)| is_refused(*c)) {
        return Err(ScimError::invalid_value(format!(
            "attribute '{attr}' contains U+{:04X} at character {position}: control, zero-width and \
             bidi-control characters are not allowed",
            c as u32
        )));
    }
    let length = comparison_key(trimmed).chars().count();
    if length > MAX_IDENTITY_CHARS {
        return Err(ScimError::invalid_value(format!(
            "attribute '{attr}' is {length} characters long; at most {MAX_IDENTITY_CHARS} are allowed"
        )));
    }
    Ok(trimmed.to_string())
}

fn is_refused(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    matches!(
        FreeformClass::default().get_value_from_char(c),
        DerivedPropertyValue::Disallowed | DerivedPropertyValue::ContextJ
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_compare_equal() {
        let nfc = "jos\u{e9}";
        let nfd = "jose\u{301}";
        assert_ne!(nfc, nfd);
        assert_eq!(comparison_key(nfc), comparison_key(nfd));
        assert_eq!(comparison_key("frank "), comparison_key(" frank"));
        assert_eq!(comparison_key("JOHN@X.COM"), "john@x.com");
        assert_eq!(comparison_key("ＪＯＨＮ"), "john", "full-width letters are mapped");
        assert_eq!(comparison_key("Sales\u{a0}Team"), comparison_key("sales team"));
        assert_ne!(comparison_key("frank"), comparison_key("franc"));
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for bad in
            ["fr\u{200d}ank", "fr\u{ad}ank", "fr\u{200b}ank", "a\u{202e}b", "a\u{0}b", "a\u{7}b", "a\u{feff}"]
        {
            let err = check_identity("userName", bad).unwrap_err();
            assert!(err.detail.contains("'userName'"), "{bad:?}: {}", err.detail);
        }
        for good in ["Sales Team", "R&D — Europe", "jos\u{e9}", "Zoë O'Brien", "user+tag@example.com", "用户"]
        {
            assert_eq!(check_identity("displayName", good).unwrap(), good, "{good:?}");
        }
        assert_eq!(check_identity("userName", "  frank ").unwrap(), "frank");
        assert!(check_identity("userName", "   ").is_err());
    }

    #[test]
    fn length_is_counted_after_preparation() {
        assert!(check_identity("userName", &"a".repeat(256)).is_ok());
        let err = check_identity("userName", &"a".repeat(257)).unwrap_err();
        assert!(err.detail.contains("257"), "{}", err.detail);
        assert!(check_identity("userName", &"a".repeat(500_000)).is_err());
    }
}
