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

/// Renders the welcome message for `user` under `rule`; `template` is the rule's email template when it
/// names one. A template without the rule's language falls back to `en_US`, then to the default text.
pub fn render_welcome(
    user: &Value,
    rule: &Rule,
    template: Option<&EmailTemplate>,
    id: String,
    created: String,
) -> OutboxMessage {
    let language = rule.bundle.language.as_str();
    let (default_subject, default_body) = default_template(language);
    let pick = |texts: Option<&std::collections::BTreeMap<String, String>>, default: &str| -> String {
        texts
            .and_then(|t| t.get(language).or_else(|| t.get("en_US")))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let subject = pick(template.map(|t| &t.subject), default_subject);
    let body = pick(template.map(|t| &t.body), default_body);
    let text = |key: &str| user.get(key).and_then(Value::as_str).unwrap_or_default();
    let user_name = text("userName");
    let given = user.pointer("/name/givenName").and_then(Value::as_str).unwrap_or(user_name);
    let display = user.get("displayName").and_then(Value::as_str).unwrap_or(given);
    let fill = |s: &str| {
        s.replace("{{displayName}}", display)
            .replace("{{userName}}", user_name)
            .replace("{{givenName}}", given)
    };
    OutboxMessage {
        id,
        user: text("id").to_string(),
        to: address_of(user).unwrap_or(user_name).to_string(),
        language: language.to_string(),
        subject: fill(&subject),
        body: fill(&body),
        created,
    }
}

/// The primary email, else the first one.
fn address_of(user: &Value) -> Option<&str> {
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
    fn custom_template_with_fallback_to_english() {
        let template = EmailTemplate {
            id: "t".into(),
            name: "T".into(),
            subject: [("en_US".to_string(), "Hi {{userName}}".to_string())].into(),
            body: [("de_DE".to_string(), "Hallo {{displayName}}".to_string())].into(),
        };
        let user = json!({"id": "u1", "userName": "jdoe"});
        let m = render_welcome(&user, &rule("de_DE", "t"), Some(&template), "m".into(), "t".into());
        assert_eq!((m.subject.as_str(), m.body.as_str(), m.to.as_str()), ("Hi jdoe", "Hallo jdoe", "jdoe"));
    }
}
