//! The User Sync records as they are stored and as the admin API shows them: products, rules and their
//! bundles, the admin-defined objects rules refer to, and each user's applied entitlements and failure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A product with a license pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    /// `None`: unlimited.
    pub seats: Option<u64>,
    /// Products a rule granting this one must grant too (Webinar requires Meeting).
    #[serde(default)]
    pub requires: Vec<String>,
}

/// The admin role a rule grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "access", rename_all = "camelCase")]
pub enum AdminRole {
    Full,
    #[serde(rename_all = "camelCase")]
    Manager {
        privileges: Vec<String>,
        managed_groups: Vec<String>,
    },
}

/// What the deciding rule gives a user, whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// Sorted, without duplicates.
    #[serde(default)]
    pub products: Vec<String>,
    #[serde(default)]
    pub admin: Option<AdminRole>,
    /// `"default"` or an email-template id.
    #[serde(default = "default_ref")]
    pub welcome_email: String,
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default)]
    pub user_group: Option<String>,
    /// `"default"` or a settings-template id.
    #[serde(default = "default_ref")]
    pub settings_template: String,
}

pub fn default_ref() -> String {
    "default".into()
}

pub fn default_language() -> String {
    "en_US".into()
}

impl Default for Bundle {
    fn default() -> Self {
        Bundle {
            products: Vec::new(),
            admin: None,
            welcome_email: default_ref(),
            language: default_language(),
            user_group: None,
            settings_template: default_ref(),
        }
    }
}

/// A numbered rule: directory group, optional filter, bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub id: String,
    pub number: u32,
    /// A SCIM Group id of the same account.
    pub group: String,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(flatten)]
    pub bundle: Bundle,
}

/// A rule as provenance names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    pub id: String,
    pub number: u32,
}

/// An account's engine settings: whether sync runs and the rules in number order (1, 2, ... without gaps).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncConfig {
    pub enabled: bool,
    pub rules: Vec<Rule>,
    /// Changes with every rule change; the rules' ETag.
    #[serde(default)]
    pub version: u64,
    /// The displayName of each rule's directory group as last seen when the rules were saved: what a rule
    /// whose group was deleted still shows, and how a group pushed again under that name is recognised.
    #[serde(default)]
    pub group_names: BTreeMap<String, String>,
    /// The rules before the last change of them: what reverting a held rule change restores.
    #[serde(default)]
    pub previous_rules: Option<Vec<Rule>>,
}

/// A rule whose directory group no longer exists: it matches nobody until it is pointed at a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokenRule {
    pub id: String,
    pub number: u32,
    pub group: String,
    /// The deleted group's displayName as last seen.
    pub group_name: Option<String>,
    /// Always `"groupDeleted"`.
    pub broken: &'static str,
    /// A group that exists now under the deleted group's displayName; the rule is not re-bound to it
    /// unless an admin points it there.
    pub suggested_group: Option<SuggestedGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuggestedGroup {
    pub id: String,
    pub display_name: String,
}

impl SyncConfig {
    /// The rule `id` with its current number (`None` once deleted).
    pub fn reference(&self, id: &str) -> Option<RuleRef> {
        self.rules.iter().find(|r| r.id == id).map(|r| RuleRef { id: r.id.clone(), number: r.number })
    }

    /// Rule ids as references in their current order; deleted rules are left out.
    pub fn references(&self, ids: &[String]) -> Vec<RuleRef> {
        let mut refs: Vec<RuleRef> = ids.iter().filter_map(|id| self.reference(id)).collect();
        refs.sort_by_key(|r| r.number);
        refs
    }

    /// Would these rules, in their current order, pick another deciding rule among those that matched when
    /// `applied` was? After a pure reorder the matching rules stay the same, so only such users change.
    pub fn deciding_rule_moved(&self, applied: &Provenance) -> bool {
        let first = self.references(&applied.matched_rules).into_iter().next().map(|r| r.id);
        first != applied.rule
    }
}

/// The state of one user's entitlements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntitlementState {
    Entitled,
    None,
    Failed,
    Suspended,
}

/// What a user has been granted, and why. Rules are named by id: their numbers change with every reorder,
/// which must not rewrite every user whose bundle stays the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entitlement {
    pub state: EntitlementState,
    /// The id of the deciding rule of the applied bundle.
    pub rule: Option<String>,
    /// The ids of every rule that matched when the bundle was applied, deciding rule first.
    #[serde(default)]
    pub matched_rules: Vec<String>,
    /// The applied bundle (`None`: nothing granted).
    pub bundle: Option<Bundle>,
    /// The login (folded userName) this user holds server-wide while entitled.
    #[serde(default)]
    pub login: Option<String>,
    /// The userName while entitled, as the change feed names a user revoked after being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    pub updated: String,
}

/// The rules behind a stored [`Entitlement`], read without the rest of it: what a reorder pass needs of
/// every user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub rule: Option<String>,
    #[serde(default)]
    pub matched_rules: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureReason {
    /// A product of the intended bundle has no free seat.
    OutOfLicenses,
    /// The login is held by an entitled user of another account.
    ExistingAccount,
    /// The mail server refused the user's welcome email for good (the failure's detail is its reply);
    /// kept with the message in the outbox, not by the engine.
    WelcomeEmailFailed,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::OutOfLicenses => "outOfLicenses",
            FailureReason::ExistingAccount => "existingAccount",
            FailureReason::WelcomeEmailFailed => "welcomeEmailFailed",
        }
    }
}

/// Why a user's bundle could not be applied; the user keeps what they had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub reason: FailureReason,
    pub detail: String,
    /// The bundle the deciding rule intended.
    pub intended: Bundle,
    /// The id of the deciding rule.
    pub rule: String,
    /// For `outOfLicenses`: the products without a free seat.
    #[serde(default)]
    pub products: Vec<String>,
    pub user_name: String,
    pub since: String,
}

/// A queued welcome message and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxMessage {
    pub id: String,
    pub user: String,
    pub to: String,
    /// The email template used (`default`: the account's default one).
    #[serde(default = "default_ref")]
    pub template: String,
    /// The language the message was written in (the rule's, or the template's fallback).
    pub language: String,
    pub subject: String,
    pub body: String,
    pub created: String,
    /// The id of the rule whose first grant queued it (`None` in messages queued before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The user's userName when it was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default)]
    pub status: MailStatus,
    /// Attempts to hand it to the mail server so far.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<String>,
    /// When a deferred message is tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<String>,
    /// The mail server's queue id of an accepted message, as its reply named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    /// The mail server's last reply (or why there was none): its acceptance, its refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

/// Where a welcome message's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MailStatus {
    /// Waiting for its first attempt.
    #[default]
    Queued,
    /// A temporary failure (4xx, no connection, timeout): tried again at `next_attempt`.
    Deferred,
    /// The mail server accepted it; it is never sent again.
    Sent,
    /// The mail server refused it for good (5xx): a `welcomeEmailFailed` failure until retried.
    Failed,
    /// The user was deleted before it was sent.
    Cancelled,
}

impl MailStatus {
    /// Still owed: waiting to be sent, or failed and waiting for a retry.
    pub fn owed(self) -> bool {
        matches!(self, MailStatus::Queued | MailStatus::Deferred | MailStatus::Failed)
    }
}

/// A user group of the product (what a manager manages), not a directory group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserGroup {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsTemplate {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub settings: Value,
}

/// A welcome email in several languages, with `{{displayName}}`, `{{userName}}`, `{{givenName}}`,
/// `{{familyName}}` and `{{email}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailTemplate {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub subject: BTreeMap<String, String>,
    #[serde(default)]
    pub body: BTreeMap<String, String>,
    /// The language used for a rule whose language the template lacks; without one, such a rule cannot
    /// be saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_language: Option<String>,
}

/// An attribute of the account's User extension schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomAttribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub multi_valued: bool,
    #[serde(default)]
    pub description: String,
}
