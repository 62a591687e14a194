//! What every page shares: the layout's title, navigation and CSRF token; the error page; and small
//! helpers for the words and addresses pages show.

use askama::Template;

use super::session::Signed;

/// The main navigation: (key, label, address).
pub const NAVIGATION: [(&str, &str, &str); 11] = [
    ("home", "User Sync", "/console/"),
    ("rules", "Rules", "/console/rules"),
    ("users", "Users", "/console/users"),
    ("products", "Products", "/console/products"),
    ("user-groups", "User groups", "/console/user-groups"),
    ("settings-templates", "Settings templates", "/console/settings-templates"),
    ("email-templates", "Email templates", "/console/email-templates"),
    ("custom-attributes", "Custom attributes", "/console/custom-attributes"),
    ("webhooks", "Webhooks", "/console/webhooks"),
    ("activity", "Administrative Activity History", "/console/activity"),
    ("tokens", "Tokens", "/console/tokens"),
];

/// The base layout's part of a page.
pub struct Layout {
    pub title: String,
    /// The page's key in [`NAVIGATION`]; empty for pages outside it.
    pub current: &'static str,
    /// The session's CSRF token; `None` on pages for signed-out visitors (no navigation, no Sign out).
    pub csrf: Option<String>,
}

impl Layout {
    pub fn signed(signed: &Signed, title: impl Into<String>, current: &'static str) -> Layout {
        Layout { title: title.into(), current, csrf: Some(signed.csrf.clone()) }
    }

    pub fn public(title: impl Into<String>) -> Layout {
        Layout { title: title.into(), current: "", csrf: None }
    }

    pub fn navigation(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &NAVIGATION
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub message: String,
}

/// A question before a change that cannot be undone: the change is a form post, Cancel goes back.
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub layout: Layout,
    pub csrf: String,
    pub message: String,
    pub action: String,
    pub button: &'static str,
    pub cancel: String,
}

/// "a token needs a name" → "A token needs a name".
pub fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Percent-encodes a query-string value.
pub fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// "1 user", "8 users".
pub fn count_of(n: usize, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

/// "Meeting", "Meeting and Webinar", "Meeting, Training and Webinar".
pub fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The language names the rule form and the rules list show.
pub fn language_name(code: &str) -> &str {
    match code {
        "en_US" => "English",
        "fr_FR" => "Français",
        "it_IT" => "Italiano",
        "de_DE" => "Deutsch",
        "es_ES" => "Español",
        "pt_BR" => "Português",
        "nl_NL" => "Nederlands",
        other => other,
    }
}

/// A page number from the query (`page=`, 1 when absent); anything else is refused.
pub fn page_number(value: Option<&str>) -> Result<usize, super::ConsoleError> {
    match value {
        None => Ok(1),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| super::ConsoleError::BadRequest(format!("page '{v}' is not a page number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(count_of(1, "user", "users"), "1 user");
        assert_eq!(count_of(8, "user", "users"), "8 users");
        assert_eq!(and_list(&["Webinar".into()]), "Webinar");
        assert_eq!(and_list(&["A".into(), "B".into(), "C".into()]), "A, B and C");
        assert_eq!(query_escape("/console/rules?a=1&b"), "/console/rules%3Fa%3D1%26b");
        assert!(page_number(Some("0")).is_err());
        assert_eq!(page_number(Some("3")).unwrap(), 3);
    }
}
