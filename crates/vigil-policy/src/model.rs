//! The policy as written in TOML: the `[policy]` table and `[[rules]]`.
//! Every leaf is checked while it is read, so a typo is an error with the file,
//! the line and the key, never a rule that silently matches nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use vigil_sql::{Class, Kind};

use crate::Glob;

/// The `[policy]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Switches on the built-in guardrail pack (see `guardrails.toml`).
    #[serde(default)]
    pub guardrails: bool,
    /// The labels a database must carry for the pack to apply.
    #[serde(default = "production")]
    pub guardrail_labels: BTreeMap<String, String>,
    /// Who the pack does not apply to, e.g. `{ groups = ["dba"] }`.
    #[serde(default)]
    pub guardrails_exempt: Subjects,
    /// Files of further `[[rules]]`, relative to the config file.
    #[serde(default)]
    pub include: Vec<PathBuf>,
}

impl Default for PolicySettings {
    fn default() -> PolicySettings {
        PolicySettings {
            guardrails: false,
            guardrail_labels: production(),
            guardrails_exempt: Subjects::default(),
            include: Vec::new(),
        }
    }
}

fn production() -> BTreeMap<String, String> {
    BTreeMap::from([("environment".to_owned(), "production".to_owned())])
}

/// An included policy file: rules only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// One `[[rules]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub when: When,
    /// Who the rule does not apply to: any one match exempts.
    #[serde(default)]
    pub unless: Subjects,
    pub action: Action,
    /// Said to the client when the rule refuses a statement.
    #[serde(default)]
    pub message: Option<String>,
    /// How to proceed, sent as the error's HINT.
    #[serde(default)]
    pub hint: Option<String>,
    /// Who may approve a `review`: absent, `[approvals].approvers`.
    #[serde(default)]
    pub approvers: Option<Approvers>,
    /// What the client of a `review` experiences: `hold` (the session waits
    /// for the decision) or `refuse` (refused now, runnable once approved).
    /// Absent: `[approvals].mode`.
    #[serde(default)]
    pub approval: Option<ApprovalMode>,
    /// Columns (`schema.table.column`) masked in the sessions the rule
    /// applies to, whatever `[masking]` exempts. Only for `allow` rules whose
    /// `when` names who and where (identities, groups, kinds, databases,
    /// labels): masking is decided per session.
    #[serde(default)]
    pub mask: Vec<String>,
}

/// What a rule matches. Every key given must match; within a list, any entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    #[serde(default)]
    pub identities: Vec<Glob>,
    #[serde(default)]
    pub groups: Vec<Glob>,
    /// `person`, `service` or `agent`.
    #[serde(default)]
    pub identity_kinds: Vec<IdentityKindName>,
    #[serde(default)]
    pub databases: Vec<Glob>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub classes: Vec<ClassName>,
    /// Kinds by full name (`drop table`, `commit`) or verb (`drop`).
    #[serde(default)]
    pub kinds: Vec<KindName>,
    /// Globs on `schema.table`.
    #[serde(default)]
    pub relations: Vec<Glob>,
    /// Globs on function names, optionally schema-qualified.
    #[serde(default)]
    pub functions: Vec<Glob>,
    #[serde(default)]
    pub properties: PropertyMatch,
}

/// Statement properties a rule can require.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyMatch {
    /// `false`: an UPDATE or DELETE without WHERE runs.
    pub has_where: Option<bool>,
    pub data_modifying_cte: Option<bool>,
    pub select_into: Option<bool>,
    /// `COPY … TO/FROM PROGRAM`.
    pub copy_program: Option<bool>,
    /// `COPY` to or from a file on the database server.
    pub copy_server_file: Option<bool>,
    /// `"from"` (into the database) or `"to"` (out of it).
    pub copy_direction: Option<CopyDirectionName>,
    pub explain_analyze: Option<bool>,
}

impl When {
    /// Whether it asks anything of the statement (not only of the session).
    pub fn about_statements(&self) -> bool {
        !self.classes.is_empty()
            || !self.kinds.is_empty()
            || !self.relations.is_empty()
            || !self.functions.is_empty()
            || !self.properties.is_empty()
    }
}

impl PropertyMatch {
    pub fn is_empty(&self) -> bool {
        *self == PropertyMatch::default()
    }
}

/// A set of identities: by name, group or kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subjects {
    #[serde(default)]
    pub identities: Vec<Glob>,
    #[serde(default)]
    pub groups: Vec<Glob>,
    #[serde(default)]
    pub identity_kinds: Vec<IdentityKindName>,
}

impl Subjects {
    /// Whether `subject` is one of these: any one match is enough.
    pub fn includes(&self, subject: &crate::Subject<'_>) -> bool {
        self.identities.iter().any(|g| g.matches(subject.name))
            || self
                .groups
                .iter()
                .any(|g| subject.groups.iter().any(|group| g.matches(group)))
            || self
                .identity_kinds
                .iter()
                .any(|k| k.as_str() == subject.kind)
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.groups.is_empty() && self.identity_kinds.is_empty()
    }
}

/// Who may approve, and how many distinct approvals are needed. Empty
/// lists: anyone holding an approver token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approvers {
    #[serde(default)]
    pub identities: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default = "one")]
    pub count: u32,
}

impl Default for Approvers {
    fn default() -> Approvers {
        Approvers {
            identities: Vec::new(),
            groups: Vec::new(),
            count: 1,
        }
    }
}

impl Approvers {
    /// Whether `name` (a member of `groups`) is one of these approvers.
    pub fn admits(&self, name: &str, groups: &[String]) -> bool {
        (self.identities.is_empty() && self.groups.is_empty())
            || self.identities.iter().any(|i| i == name)
            || self.groups.iter().any(|g| groups.contains(g))
    }
}

/// How a statement that needs approval meets its client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// The session waits, told so by a notice, until the request is decided
    /// or expires; approved, the statement runs and answers as usual.
    #[default]
    Hold,
    /// Refused at once with the request's id; once approved, the same
    /// identity may run the byte-identical statement once, within a window.
    Refuse,
}

impl ApprovalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Hold => "hold",
            ApprovalMode::Refuse => "refuse",
        }
    }
}

fn one() -> u32 {
    1
}

/// What happens to a statement. Ordered by precedence: when several rules
/// match, the greatest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Review,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Review => "review",
            Action::Deny => "deny",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name checked against the analyzer's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindName(pub String);

impl<'de> Deserialize<'de> for KindName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<KindName, D::Error> {
        let name = String::deserialize(deserializer)?;
        if Kind::is_name(&name) {
            Ok(KindName(name))
        } else {
            Err(serde::de::Error::custom(format!(
                "unknown statement kind {name:?}; write kinds in lower case, e.g. \"drop\", \"drop table\", \"delete\", \"alter system\", \"set role\""
            )))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassName(pub Class);

impl<'de> Deserialize<'de> for ClassName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ClassName, D::Error> {
        let name = String::deserialize(deserializer)?;
        match Class::ALL.iter().find(|c| c.as_str() == name) {
            Some(class) => Ok(ClassName(*class)),
            None => Err(serde::de::Error::custom(format!(
                "unknown class {name:?}; expected one of read, write, ddl, dcl, admin, txn, session, unknown"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKindName {
    Person,
    Service,
    Agent,
}

impl IdentityKindName {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKindName::Person => "person",
            IdentityKindName::Service => "service",
            IdentityKindName::Agent => "agent",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyDirectionName {
    From,
    To,
}

impl CopyDirectionName {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyDirectionName::From => "from",
            CopyDirectionName::To => "to",
        }
    }
}
