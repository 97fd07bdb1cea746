//! `vigil policy test`: a file of cases, each a statement, who sends it,
//! where, and the decision expected, so users can test their policies in CI.

use serde::Deserialize;

use crate::Action;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    #[serde(default)]
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// A name to report; defaults to the SQL.
    #[serde(default)]
    pub name: Option<String>,
    pub sql: String,
    pub identity: String,
    pub database: String,
    pub expect: Action,
    /// The rule expected to decide, when it matters.
    #[serde(default)]
    pub rule: Option<String>,
}
