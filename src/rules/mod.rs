//! The User Sync engine: which bundle each user's rules decide (pure), rule validation, welcome messages,
//! previews, and the worker that re-evaluates users as the directory and the rules change.

mod admin;
pub mod domains;
mod engine;
mod explain;
mod objects;
mod preview;
mod resolve;
mod users;
mod validate;
mod welcome;

pub use admin::{
    ReleaseError, RetryError, RetryOutcome, RetrySelection, SaveError, preview_rules, release_hold,
    retry_failures, save_rules,
};
pub use engine::Engine;
pub use explain::{
    RuleLine, RuleOutcome, entitlement_view, explain, explain_user, failed_clause, group_names, rule_lines,
    state_of, top_level_paths,
};
pub use objects::{
    FieldProblem, ObjectError, PreviewError, RuleObject, TemplatePreview, delete_object, is_object_id,
    list_objects, object_or_builtin, preview_template, save_custom_attributes, save_object,
};
pub use preview::{Preview, UserChange, preview};
pub use resolve::{CompiledRule, Resolution, compile, decide, resolve};
pub use users::{ENTITLEMENT_STATES, FoundUser, UserPage, find_users};
pub use validate::{
    CUSTOM_TYPES, RuleError, custom_attributes_used, filter_problem, rule_problems,
    validate_custom_attributes, validate_rule,
};
pub use welcome::{
    PLACEHOLDERS, address_of, builtin_template, language_for, render, render_welcome, unknown_placeholders,
};

/// The languages a rule can set.
pub const LANGUAGES: [&str; 7] = ["en_US", "fr_FR", "it_IT", "de_DE", "es_ES", "pt_BR", "nl_NL"];

/// The fixed list of privileges a manager role can carry: (id, description).
pub const PRIVILEGES: [(&str, &str); 8] = [
    ("users.add", "Add users to the managed groups"),
    ("users.edit", "Edit the details of users in the managed groups"),
    ("users.delete", "Delete users of the managed groups"),
    ("licenses.assign", "Assign and remove product licenses"),
    ("groups.manage", "Move users between the managed groups"),
    ("settings.edit", "Change the product settings of users in the managed groups"),
    ("reports.view", "View usage reports of the managed groups"),
    ("recordings.manage", "Manage the recordings of users in the managed groups"),
];

#[cfg(test)]
mod tests;
