//! The `[masking]` section: which columns are masked, how, and for whom; the
//! content detectors; and the policy switches for what lineage cannot tell.

use std::path::PathBuf;

use serde::Deserialize;
use vigil_policy::Subjects;

use crate::Secret;

/// `[masking]`. Absent: nothing is masked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Masking {
    /// The key of the `hash` and `preserve` strategies, from the environment
    /// or a file (never inline). Needed only when one of them is used.
    pub key_env: Option<String>,
    pub key_file: Option<PathBuf>,
    /// Who sees every configured column in clear, unless a column says
    /// otherwise with an `exempt` of its own.
    #[serde(default)]
    pub exempt: Subjects,
    /// What happens to a result column whose source Vigil cannot know (a
    /// function it cannot see into, a relation created since the catalog
    /// was read) for someone who sees masked columns.
    #[serde(default)]
    pub unknown_lineage: UnknownLineage,
    /// Refuse statements that filter, join, order or group on a column the
    /// identity sees masked, or copy its values elsewhere.
    #[serde(default = "yes")]
    pub inference_guard: bool,
    #[serde(default)]
    pub columns: Vec<ColumnMaskConfig>,
    #[serde(default)]
    pub detectors: Vec<DetectorConfig>,
    /// The resolved key, when one is configured.
    #[serde(skip)]
    pub key: Option<Secret>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownLineage {
    /// Every column without a known source is masked (`redact`).
    #[default]
    Mask,
    /// The statement is refused before it runs.
    Refuse,
}

/// One `[[masking.columns]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMaskConfig {
    /// `schema.table.column`, as PostgreSQL stores the names (lower case
    /// unless created quoted). A view's columns may be named too.
    pub column: String,
    /// What the column holds (`us_ssn`, `email` …): a label for people and
    /// the audit trail.
    #[serde(default, rename = "type")]
    pub data_type: Option<String>,
    #[serde(default)]
    pub strategy: StrategyName,
    /// For `keep_last`: how many trailing characters stay (default 4).
    pub keep: Option<u8>,
    /// Replaces `masking.exempt` for this column.
    pub exempt: Option<Subjects>,
    /// The Vigil databases (client-facing names) this applies to; all when absent.
    pub databases: Option<Vec<String>>,
    /// The parsed `column`.
    #[serde(skip)]
    pub name: Option<ColumnName>,
}

/// A column's full name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnName {
    pub schema: String,
    pub table: String,
    pub column: String,
}

impl std::fmt::Display for ColumnName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.schema, self.table, self.column)
    }
}

impl ColumnName {
    /// `schema.table.column`; names with dots in them are not supported.
    pub fn parse(text: &str) -> Option<ColumnName> {
        let mut parts = text.split('.');
        let (Some(schema), Some(table), Some(column), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let ok = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '"');
        (ok(schema) && ok(table) && ok(column)).then(|| ColumnName {
            schema: schema.to_owned(),
            table: table.to_owned(),
            column: column.to_owned(),
        })
    }
}

/// How a value is masked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    /// Replaced by a fixed value of the same type (`****` for text).
    #[default]
    Redact,
    /// All but the last `keep` characters become `*`.
    KeepLast,
    /// `****@example.com`.
    EmailDomain,
    /// Keyed HMAC-SHA256: stable across sessions, so joins and GROUP BY work.
    Hash,
    Null,
    /// Digits stay digits and letters letters, deterministic under the key.
    Preserve,
}

impl StrategyName {
    pub fn needs_key(self) -> bool {
        matches!(self, StrategyName::Hash | StrategyName::Preserve)
    }
}

/// One `[[masking.detectors]]` entry: values that look like `kind` are
/// masked wherever a column's source is unknown, and in error messages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// A built-in detector's name (`email`, `phone`, `payment_card`,
    /// `us_ssn`, `iban`, `ipv4`, `ipv6`, `jwt`, `aws_access_key`,
    /// `private_key`), or `regex`.
    pub kind: String,
    /// For `regex` detectors: a name for reports and the audit trail.
    pub name: Option<String>,
    /// For `regex` detectors.
    pub pattern: Option<String>,
    #[serde(default)]
    pub strategy: StrategyName,
    pub keep: Option<u8>,
    /// The built-in `kind` names; `None` for `regex`.
    #[serde(skip)]
    pub builtin: Option<vigil_mask::DetectorKind>,
}

impl Masking {
    /// The column masks that apply on `database`.
    pub fn columns_on<'a>(
        &'a self,
        database: &'a str,
    ) -> impl Iterator<Item = &'a ColumnMaskConfig> + 'a {
        self.columns.iter().filter(move |c| {
            c.databases
                .as_ref()
                .is_none_or(|dbs| dbs.iter().any(|d| d == database))
        })
    }
}
