//! Welcome messages: the rule's email template (or the default one) rendered in the rule's language with the
//! user's name and login.

use serde_json::Value;

use crate::store::sync::{EmailTemplate, OutboxMessage, Rule};

/// The default template per language: (subject, body).
fn default_template(language: &str) -> (&'static str, &'static str) {
    match language {
        "fr_FR" => {
            ("Bienvenue, {{givenName}}", "Bonjour {{displayName}},\n\nVotre compte {{userName}} est prêt.")
        }
        "it_IT" => {
            ("Benvenuto, {{givenName}}", "Ciao {{displayName}},\n\nIl tuo account {{userName}} è pronto.")
        }
        "de_DE" => {
            ("Willkommen, {{givenName}}", "Hallo {{displayName}},\n\nIhr Konto {{userName}} ist bereit.")
        }
        "es_ES" => {
            ("Bienvenido, {{givenName}}", "Hola {{displayName}}:\n\nTu cuenta {{userName}} está lista.")
        }
        "pt_BR" => {
            ("Bem-vindo, {{givenName}}", "Olá {{displayName}},\n\nSua conta {{userName}} está pronta.")
        }
        "nl_NL" => ("Welkom, {{givenName}}", "Hallo {{displayName}},\n\nJe account {{userName}} is klaar."),
        _ => ("Welcome, {{givenName}}", "Hello {{displayName}},\n\nYour account {{userName}} is ready."),
    }
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 5] = ["displayName", "userName", "givenName", "familyName", "email"];

/// The built-in default welcome email of every account, in every language (what `default` means until the
/// account edits it).
pub fn builtin_template() -> EmailTemplate {
    let mut subject = std::collections::BTreeMap::new();
    let mut body = std::collections::BTreeMap::new();
    for language in super::LANGUAGES {
        let (s, b) = default_template(language);
        subject.insert(language.to_string(), s.to_string());
        body.insert(language.to_string(), b.to_string());
    }
    EmailTemplate {
        id: "default".into(),
        name: "Default welcome email".into(),
        subject,
        body,
        fallback_language: Some("en_US".into()),
    }
}

/// The placeholders in `text` that are not [`PLACEHOLDERS`], and whether a `{{` is left unclosed.
pub fn unknown_placeholders(text: &str) -> Result<Vec<String>, String> {
    let mut unknown = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!(
                "'{{{{' at '{}' is never closed with '}}}}'",
                after.chars().take(20).collect::<String>()
            ));
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            unknown.push(name.to_string());
        }
        rest = &after[close + 2..];
    }
    Ok(unknown)
}

/// The language a template writes a rule's message in: the rule's language if the template has both its
/// subject and body, else the template's fallback language (`None`: neither).
pub fn language_for<'a>(template: &'a EmailTemplate, language: &'a str) -> Option<&'a str> {
    let has = |l: &str| template.subject.contains_key(l) && template.body.contains_key(l);
    if has(language) {
        return Some(language);
    }
    template.fallback_language.as_deref().filter(|l| has(l))
}

/// Renders the welcome message for `user` under `rule`; `template` is the account's template of the rule's
/// `welcomeEmail` (its edited default included) when there is one, else the built-in default.
pub fn render_welcome(
    user: &Value,
    rule: &Rule,
    template: Option<&EmailTemplate>,
    id: String,
    created: String,
) -> OutboxMessage {
    let builtin;
    let template = match template {
        Some(t) => t,
        None => {
            builtin = builtin_template();
            &builtin
        }
    };
    let (language, subject, body) = render(user, template, &rule.bundle.language);
    let user_name = user.get("userName").and_then(Value::as_str).unwrap_or_default();
    OutboxMessage {
        id,
        user: user.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
        to: address_of(user).unwrap_or(user_name).to_string(),
        template: rule.bundle.welcome_email.clone(),
        language,
        subject,
        body,
        created,
        rule: Some(rule.id.clone()),
        user_name: Some(user_name.to_string()),
        status: Default::default(),
        attempts: 0,
        last_attempt: None,
        next_attempt: None,
        queue_id: None,
        reply: None,
    }
}

/// The language used and the subject and body of `template` for `user`, in `language` if the template
/// has it, else in its fallback, else in the built-in text of `language`.
pub fn render(user: &Value, template: &EmailTemplate, language: &str) -> (String, String, String) {
    let (builtin_subject, builtin_body) = default_template(language);
    let (language, subject, body) = match language_for(template, language) {
        Some(l) => (l, template.subject[l].as_str(), template.body[l].as_str()),
        None => (language, builtin_subject, builtin_body),
    };
    let text = |key: &str| user.get(key).and_then(Value::as_str).unwrap_or_default();
    let user_name = text("userName");
    let given = user.pointer("/name/givenName").and_then(Value::as_str).unwrap_or(user_name);
    let family = user.pointer("/name/familyName").and_then(Value::as_str).unwrap_or_default();
    let display = user.get("displayName").and_then(Value::as_str).unwrap_or(given);
    let email = address_of(user).unwrap_or(user_name);
    let fill = |s: &str| {
        s.replace("{{displayName}}", display)
            .replace("{{userName}}", user_name)
            .replace("{{givenName}}", given)
            .replace("{{familyName}}", family)
            .replace("{{email}}", email)
    };
    (language.to_string(), fill(subject), fill(body))
}

/// The primary email, else the first one.
pub fn address_of(user: &Value) -> Option<&str> {
    let emails = user.get("emails")?.as_array()?;
    let primary = emails.iter().find(|e| e.get("primary").and_then(Value::as_bool).unwrap_or(false));
    primary.or_else(|| emails.first())?.get("value")?.as_str()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::sync::Bundle;

    fn rule(language: &str, template: &str) -> Rule {
        Rule {
            id: "r".into(),
            number: 1,
            group: "g".into(),
            filter: None,
            description: String::new(),
            bundle: Bundle { language: language.into(), welcome_email: template.into(), ..Bundle::default() },
        }
    }

    #[test]
    fn default_template_in_the_rules_language() {
        let user = json!({"id": "u1", "userName": "jdoe", "displayName": "John Doe", "name": {"givenName": "John"},
            "emails": [{"value": "other@x.com"}, {"value": "john@x.com", "primary": true}]});
        let m = render_welcome(&user, &rule("fr_FR", "default"), None, "m1".into(), "t".into());
        assert_eq!((m.to.as_str(), m.language.as_str()), ("john@x.com", "fr_FR"));
        assert_eq!(m.subject, "Bienvenue, John");
        assert_eq!(m.body, "Bonjour John Doe,\n\nVotre compte jdoe est prêt.");
    }

    #[test]
    fn custom_template_in_its_fallback_language() {
        let template = EmailTemplate {
            id: "t".into(),
            name: "T".into(),
            subject: [("en_US".to_string(), "Hi {{userName}}".to_string())].into(),
            body: [("en_US".to_string(), "Hello {{email}}".to_string())].into(),
            fallback_language: Some("en_US".into()),
        };
        let user = json!({"id": "u1", "userName": "jdoe"});
        let m = render_welcome(&user, &rule("de_DE", "t"), Some(&template), "m".into(), "t".into());
        assert_eq!((m.subject.as_str(), m.body.as_str(), m.to.as_str()), ("Hi jdoe", "Hello jdoe", "jdoe"));
        assert_eq!((m.language.as_str(), m.template.as_str()), ("en_US", "t"));
        let without = EmailTemplate { fallback_language: None, ..template };
        assert_eq!(language_for(&without, "de_DE"), None);
    }

    #[test]
    fn placeholders_are_known_names_in_closed_braces() {
        assert_eq!(unknown_placeholders("Hi {{givenName}}, {{email}}").unwrap(), Vec::<String>::new());
        assert_eq!(unknown_placeholders("Hi {{frstName}}").unwrap(), ["frstName"]);
        assert!(unknown_placeholders("Hi {{givenName").is_err());
    }
}
