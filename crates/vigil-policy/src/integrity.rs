//! The one check that is not a rule: statements that would make the server
//! read SQL text differently from the analyzer are refused for everyone.
//!
//! The analyzer reads text as UTF-8 with `standard_conforming_strings` on.
//! With it off, `'\'` no longer ends a string for the server, and with a
//! client encoding such as SJIS a backslash can hide inside a character;
//! either way a statement the analyzer saw as a harmless string literal could
//! run as SQL on the server. Setting them back to safe values is allowed.
//! Likewise a `search_path` that puts `pg_catalog` after another schema would
//! let a user's `lower()` stand in for the built-in the analyzer trusts.

use std::sync::{Arc, OnceLock};

use vigil_sql::{SettingValue, Statement};

use crate::model::{Subjects, When};
use crate::{Action, Rule};

pub const RULE_ID: &str = "vigil.parser-integrity";

/// The integrity rule, when `statement` breaks it.
pub(crate) fn check(statement: &Statement) -> Option<Arc<Rule>> {
    let settings = &statement.properties.settings;
    if settings.is_empty() {
        return None;
    }
    let unsafe_change = settings.iter().any(|change| {
        let Some(name) = change.name.as_deref() else {
            // set_config with a computed name could name either one.
            return true;
        };
        let value = match &change.value {
            SettingValue::Default => return false,
            SettingValue::Value(v) => v.to_ascii_lowercase(),
            // A value only known when it runs (a bind parameter, an
            // expression) could be any value.
            SettingValue::Unknown => {
                return matches!(
                    name,
                    "client_encoding" | "standard_conforming_strings" | "search_path" | "all"
                )
            }
        };
        match name {
            "search_path" => !pg_catalog_first(&value),
            "client_encoding" => !encoding_is_safe(&value),
            "standard_conforming_strings" => !is_on(&value),
            _ => false,
        }
    });
    unsafe_change.then(rule)
}

/// Whether the server, reading text in `encoding`, sees the same quotes and
/// backslashes as the analyzer does. The encodings PostgreSQL allows only on
/// the client side (SJIS, BIG5, GBK, UHC, GB18030, JOHAB and their aliases)
/// have multi-byte characters whose later bytes are ASCII, such as `\`; every
/// other encoding keeps ASCII bytes ASCII.
pub fn encoding_is_safe(encoding: &str) -> bool {
    let name: String = encoding
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    !matches!(
        name.as_str(),
        "sjis"
            | "shiftjis"
            | "mskanji"
            | "shiftjis2004"
            | "win932"
            | "windows932"
            | "cp932"
            | "big5"
            | "win950"
            | "windows950"
            | "cp950"
            | "gbk"
            | "win936"
            | "windows936"
            | "cp936"
            | "gb18030"
            | "uhc"
            | "win949"
            | "windows949"
            | "cp949"
            | "johab"
    ) && !name.is_empty()
}

/// Whether built-in functions still win over same-named ones in other
/// schemas: `pg_catalog` is searched first unless a search_path names it
/// later. The analyzer trusts unqualified calls of built-in names.
fn pg_catalog_first(search_path: &str) -> bool {
    let schemas: Vec<String> = search_path
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    match schemas.iter().position(|s| s == "pg_catalog") {
        None | Some(0) => true,
        Some(_) => false,
    }
}

/// Whether a value PostgreSQL reads as a boolean is certainly on.
pub fn is_on(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "on" | "true" | "yes" | "1"
    )
}

fn rule() -> Arc<Rule> {
    static RULE: OnceLock<Arc<Rule>> = OnceLock::new();
    RULE.get_or_init(|| {
        Arc::new(Rule {
            id: RULE_ID.into(),
            action: Action::Deny,
            message: "this statement would change how the server reads SQL text (client_encoding must keep ASCII bytes ASCII, as UTF8 does, and standard_conforming_strings must stay on), so Vigil could no longer see what later statements do".into(),
            hint: Some("Keep client_encoding = UTF8 and standard_conforming_strings = on; use E'…' strings for backslash escapes.".into()),
            description: None,
            origin: "built-in".into(),
            when: When::default(),
            unless: Subjects::default(),
            mask: Vec::new(),
            approvers: None,
            approval: None,
        })
    })
    .clone()
}
