//! The objects rules refer to (user groups, settings templates, email templates): what makes one valid,
//! the built-in one that stands in until an account stores its own, and listing, saving and deleting
//! them; and previewing an email template. The admin API and the console both call these.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    LANGUAGES, PLACEHOLDERS, SaveError, builtin_template, custom_attributes_used, render,
    unknown_placeholders, validate_custom_attributes,
};
use crate::scim::schema::{Registry, ResourceKind};
use crate::store::sync::{CustomAttribute, EmailTemplate, ObjectKind, SettingsTemplate, UserGroup};
use crate::store::{AccountId, Actor, Store, StoreError, StoreResult};

/// One field's problem: (field, message).
pub type FieldProblem = (String, String);

/// Admin object ids (products, user groups, templates): 1 to 64 of `A-Z a-z 0-9 _ . -`.
pub fn is_object_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// An admin-defined object kind.
pub trait RuleObject: Serialize + DeserializeOwned + Clone + 'static {
    const KIND: ObjectKind;
    /// Can the account store its own version of the built-in object?
    const BUILTIN_EDITABLE: bool = false;
    fn id(&self) -> &str;
    fn id_mut(&mut self) -> &mut String;
    fn name(&self) -> &str;
    /// Values that do not fit, each with its field.
    fn problems(&self, problems: &mut Vec<FieldProblem>) {
        if self.name().trim().is_empty() {
            problems.push(("name".into(), "must not be empty".into()));
        }
    }
    /// The built-in object `id` stands for until the account stores its own, if any.
    fn builtin(_id: &str) -> Option<Self> {
        None
    }
}

/// The accessors of an object with `id` and `name` fields.
macro_rules! id_and_name {
    () => {
        fn id(&self) -> &str {
            &self.id
        }
        fn id_mut(&mut self) -> &mut String {
            &mut self.id
        }
        fn name(&self) -> &str {
            &self.name
        }
    };
}

impl RuleObject for UserGroup {
    const KIND: ObjectKind = ObjectKind::UserGroup;
    id_and_name!();
}

impl RuleObject for SettingsTemplate {
    const KIND: ObjectKind = ObjectKind::SettingsTemplate;
    id_and_name!();
    fn builtin(id: &str) -> Option<Self> {
        (id == "default").then(|| SettingsTemplate {
            id: "default".into(),
            name: "Default settings".into(),
            settings: json!({}),
        })
    }
}

impl RuleObject for EmailTemplate {
    const KIND: ObjectKind = ObjectKind::EmailTemplate;
    const BUILTIN_EDITABLE: bool = true;
    id_and_name!();
    fn problems(&self, problems: &mut Vec<FieldProblem>) {
        let mut add = |field: String, message: String| problems.push((field, message));
        if self.name.trim().is_empty() {
            add("name".into(), "must not be empty".into());
        }
        for (part, texts) in [("subject", &self.subject), ("body", &self.body)] {
            if texts.is_empty() {
                add(part.into(), "needs the text of at least one language".into());
            }
            for (language, text) in texts {
                let field = format!("{part}.{language}");
                if !LANGUAGES.contains(&language.as_str()) {
                    add(field.clone(), format!("'{language}' is not one of {}", LANGUAGES.join(", ")));
                }
                match unknown_placeholders(text) {
                    Err(why) => add(field.clone(), why),
                    Ok(unknown) => {
                        for name in unknown {
                            add(
                                field.clone(),
                                format!(
                                    "unknown placeholder {{{{{name}}}}} (known: {})",
                                    PLACEHOLDERS.join(", ")
                                ),
                            );
                        }
                    }
                }
            }
        }
        for language in self.subject.keys().filter(|l| !self.body.contains_key(*l)) {
            add(format!("body.{language}"), "the subject has this language; the body needs it too".into());
        }
        if let Some(l) = &self.fallback_language
            && !(self.subject.contains_key(l) && self.body.contains_key(l))
        {
            add(
                "fallbackLanguage".into(),
                format!("'{l}' is not a language of this template's subject and body"),
            );
        }
    }
    fn builtin(id: &str) -> Option<Self> {
        (id == "default").then(builtin_template)
    }
}

/// Why an object was not saved or deleted.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// Values that do not fit, every one of them.
    #[error("{}", .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldProblem>),
    /// A built-in object that cannot be changed or deleted.
    #[error("{0}")]
    BuiltIn(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The stored object `id` with its version, else the built-in one (version `builtin`).
pub fn object_or_builtin<T: RuleObject>(
    store: &Store,
    acct: AccountId,
    id: &str,
) -> StoreResult<Option<(T, String)>> {
    if let Some(found) = store.object_with_version::<T>(acct, T::KIND, id)? {
        return Ok(Some(found));
    }
    Ok(T::builtin(id).map(|b| (b, "builtin".to_string())))
}

/// Every object of the kind in id order, the built-in default first where the kind has one and the
/// account has not stored its own.
pub fn list_objects<T: RuleObject>(store: &Store, acct: AccountId) -> StoreResult<Vec<T>> {
    let mut objects: Vec<T> = store.objects::<T>(acct, T::KIND)?;
    let stored_default = objects.iter().any(|o| o.id() == "default");
    if let Some(builtin) = T::builtin("default").filter(|_| !stored_default) {
        objects.insert(0, builtin);
    }
    Ok(objects)
}

/// Checks and saves `object` as `id` (only if still at version `if_match`, when given); `true` when it
/// was created. Does not wait for durability: the caller does.
pub fn save_object<T: RuleObject>(
    store: &Store,
    acct: AccountId,
    id: &str,
    mut object: T,
    if_match: Option<&str>,
    actor: &Actor,
) -> Result<bool, ObjectError> {
    if T::builtin(id).is_some() && !T::BUILTIN_EDITABLE {
        return Err(ObjectError::BuiltIn(format!(
            "the {} '{id}' is built in and cannot be changed",
            T::KIND.noun()
        )));
    }
    *object.id_mut() = id.to_string();
    let mut problems = Vec::new();
    object.problems(&mut problems);
    if !problems.is_empty() {
        return Err(ObjectError::Invalid(problems));
    }
    // The built-in version stands for "not stored yet".
    let if_match = if_match.filter(|v| *v != "builtin");
    Ok(store.put_object_if(acct, T::KIND, id, &object, if_match, actor)?)
}

/// Deletes the object `id` if no rule refers to it; an edited built-in default goes back to the built-in
/// one. Does not wait for durability: the caller does.
pub fn delete_object<T: RuleObject>(
    store: &Store,
    acct: AccountId,
    id: &str,
    actor: &Actor,
) -> Result<(), ObjectError> {
    if T::builtin(id).is_some() {
        if !T::BUILTIN_EDITABLE {
            return Err(ObjectError::BuiltIn(format!(
                "the {} '{id}' is built in and cannot be deleted",
                T::KIND.noun()
            )));
        }
        store.reset_object(acct, T::KIND, id, actor)?;
    } else {
        store.delete_object(acct, T::KIND, id, actor)?;
    }
    Ok(())
}

/// Replaces the account's custom attributes (only if the list is still at version `if_match`, when
/// given; empty for a list never set), each checked against the standard User schema; an attribute a
/// rule's filter uses cannot be removed or retyped. Does not wait for durability: the caller does.
pub fn save_custom_attributes(
    store: &Store,
    acct: AccountId,
    attrs: &[CustomAttribute],
    if_match: Option<&str>,
    actor: &Actor,
) -> Result<(), SaveError> {
    let standard = Registry::standard();
    validate_custom_attributes(attrs, standard.resource(ResourceKind::User)).map_err(SaveError::Rule)?;
    store
        .put_custom_attributes_if(acct, attrs, if_match, actor, &custom_attributes_used)
        .map_err(SaveError::Store)
}

/// The user a preview shows when none is named.
fn sample_user() -> Value {
    json!({"id": "sample", "userName": "jane.doe@example.com", "displayName": "Jane Doe",
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "emails": [{"value": "jane.doe@example.com", "primary": true}]})
}

/// An email template rendered for one user: nothing is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePreview {
    pub template: String,
    /// The language rendered (the template's fallback when it lacks the one asked for).
    pub language: String,
    pub requested_language: String,
    pub user: Value,
    pub subject: String,
    pub body: String,
}

/// Why a preview was not rendered.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("email-template {0} not found")]
    NoTemplate(String),
    /// (field, message).
    #[error("{0}: {1}")]
    Field(&'static str, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The template `id` rendered for the user `user` names (id or userName; a sample user without one) in
/// `language` (`en_US` without one).
pub fn preview_template(
    store: &Store,
    acct: AccountId,
    id: &str,
    user: Option<&str>,
    language: Option<&str>,
) -> Result<TemplatePreview, PreviewError> {
    let Some((template, _)) = object_or_builtin::<EmailTemplate>(store, acct, id)? else {
        return Err(PreviewError::NoTemplate(id.to_string()));
    };
    let language = language.unwrap_or("en_US").to_string();
    if !LANGUAGES.contains(&language.as_str()) {
        return Err(PreviewError::Field(
            "language",
            format!("'{language}' is not one of {}", LANGUAGES.join(", ")),
        ));
    }
    let user = match user {
        Some(u) => store
            .resolve_user(acct, u)?
            .map(|(_, user)| user)
            .ok_or_else(|| PreviewError::Field("user", format!("no user has the id or userName '{u}'")))?,
        None => sample_user(),
    };
    let (used, subject, body) = render(&user, &template, &language);
    Ok(TemplatePreview {
        template: template.id,
        language: used,
        requested_language: language,
        user,
        subject,
        body,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn object_ids_and_template_problems() {
        assert!(is_object_id("sales-team_1.x"));
        assert!(!is_object_id("") && !is_object_id("a b") && !is_object_id(&"x".repeat(65)));
        let template = EmailTemplate {
            id: "t".into(),
            name: " ".into(),
            subject: BTreeMap::from([("en_US".to_string(), "Hi {{frstName}}".to_string())]),
            body: BTreeMap::new(),
            fallback_language: Some("de_DE".into()),
        };
        let mut problems = Vec::new();
        template.problems(&mut problems);
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["name", "subject.en_US", "body", "body.en_US", "fallbackLanguage"]);
    }
}
