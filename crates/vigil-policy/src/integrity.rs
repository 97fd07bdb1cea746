//! The one check that is not a rule: statements that would make the server
//! read SQL text differently from the analyzer are refused for everyone.
//!
//! The analyzer reads text as UTF-8 with `standard_conforming_strings` on.
//! With it off, `'\'` no longer ends a string for the server, and with a
//! client encoding such as SJIS a backslash can hide inside a character;
//! either way a statement the analyzer saw as a harmless string literal could
//! run as SQL on the server. Setting them back to safe values is allowed.

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
            SettingValue::Unknown => {
                return matches!(
                    name,
                    "client_encoding" | "standard_conforming_strings" | "all"
                )
            }
        };
        match name {
            "client_encoding" => !matches!(value.as_str(), "utf8" | "utf-8" | "unicode"),
            "standard_conforming_strings" => !matches!(value.as_str(), "on" | "true" | "yes" | "1"),
            _ => false,
        }
    });
    unsafe_change.then(rule)
}

fn rule() -> Arc<Rule> {
    static RULE: OnceLock<Arc<Rule>> = OnceLock::new();
    RULE.get_or_init(|| {
        Arc::new(Rule {
            id: RULE_ID.into(),
            action: Action::Deny,
            message: "this statement would change how the server reads SQL text (client_encoding must stay UTF8 and standard_conforming_strings on), so Vigil could no longer see what later statements do".into(),
            hint: Some("Keep client_encoding = UTF8 and standard_conforming_strings = on; use E'…' strings for backslash escapes.".into()),
            description: None,
            origin: "built-in".into(),
            when: When::default(),
            unless: Subjects::default(),
        })
    })
    .clone()
}
