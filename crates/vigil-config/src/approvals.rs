//! `[approvals]` (how statements that need approval are held, who approves,
//! webhooks, just-in-time grants) and `[admin]` (the tokens of the admin API).

use serde::Deserialize;
use vigil_policy::{ApprovalMode, Approvers, Glob, Subjects};

/// `[approvals]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    /// A request not decided within this long expires; a held session then
    /// gets an error and carries on.
    #[serde(default = "defaults::timeout_secs")]
    pub timeout_secs: u64,
    /// In `refuse` mode: how long after approval the statement may be run.
    #[serde(default = "defaults::window_secs")]
    pub window_secs: u64,
    /// The client experience of review rules that name none, and of a
    /// database whose `default_action` is `review`.
    #[serde(default)]
    pub mode: ApprovalMode,
    /// Who approves where a rule names no approvers. Empty: anyone with an
    /// approver token.
    #[serde(default)]
    pub approvers: Approvers,
    /// Requests waiting at once, over every session; more are refused.
    #[serde(default = "defaults::max_pending")]
    pub max_pending: usize,
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// Groups identities may ask to join for a while.
    #[serde(default)]
    pub grants: Vec<GrantRule>,
}

impl Default for Approvals {
    fn default() -> Approvals {
        toml::from_str("").expect("every approvals key has a default")
    }
}

/// `[[approvals.webhooks]]`: told when a request is created and decided.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `http://host:port/path`.
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Attempts per notification before it is dropped (and logged).
    #[serde(default = "defaults::attempts")]
    pub attempts: u32,
    /// Per attempt.
    #[serde(default = "defaults::webhook_timeout_ms")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Vigil's own JSON: the event and the request.
    #[default]
    Json,
    /// `{"text": …}`, as Slack's incoming webhooks take it.
    Slack,
}

/// `[[approvals.grants]]`: a group identities may ask to join on some
/// databases for a while, once approved.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRule {
    pub group: String,
    /// Database names (globs) the membership may be asked for on.
    pub databases: Vec<Glob>,
    /// The longest membership that may be asked for.
    #[serde(default = "defaults::max_grant_secs")]
    pub max_secs: u64,
    /// Who may ask. Empty: any identity.
    #[serde(default)]
    pub requesters: Subjects,
    #[serde(default)]
    pub approvers: Approvers,
}

/// `[admin]`: who may use the admin API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    #[serde(default)]
    pub tokens: Vec<AdminToken>,
}

/// `[[admin.tokens]]`: a bearer token, stored as its SHA-256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminToken {
    /// For logs and the audit trail.
    pub name: String,
    /// The identity that acts with this token: approvals are theirs, and
    /// their groups decide what they may approve.
    pub identity: String,
    pub role: Role,
    /// Hex SHA-256 of the token (`vigil token` makes both).
    pub sha256: String,
}

/// What a token may do. Each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read: requests, grants, sessions, the audit trail.
    Viewer,
    /// Also approve and deny.
    Approver,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

mod defaults {
    pub fn timeout_secs() -> u64 {
        900
    }
    pub fn window_secs() -> u64 {
        600
    }
    pub fn max_pending() -> usize {
        1_000
    }
    pub fn attempts() -> u32 {
        5
    }
    pub fn webhook_timeout_ms() -> u64 {
        5_000
    }
    pub fn max_grant_secs() -> u64 {
        3_600
    }
}

/// Whether `url` is one a webhook can be sent to: `http://host:port/path`.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!(
            "{url:?}: only http:// webhooks are sent (put a TLS-terminating relay in front of https endpoints)"
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{url:?} has no host (or has credentials in it)"));
    }
    Ok(())
}
