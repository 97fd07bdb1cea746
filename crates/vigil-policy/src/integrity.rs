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

use crate::Rule;

pub const RULE_ID: &str = "vigil.parser-integrity";

/// The integrity rule, when `statement` breaks it: worded for the setting
/// it would change.
pub(crate) fn check(statement: &Statement) -> Option<Arc<Rule>> {
    statement
        .properties
        .settings
        .iter()
        .find_map(|change| {
            let Some(name) = change.name.as_deref() else {
                // set_config with a computed name could name any of them.
                return Some(Broken::Unknown);
            };
            let broken = match name {
                "client_encoding" => Broken::Encoding,
                "standard_conforming_strings" => Broken::Strings,
                "search_path" => Broken::SearchPath,
                "all" => Broken::Unknown,
                _ => return None,
            };
            let value = match &change.value {
                SettingValue::Default => return None,
                SettingValue::Value(v) => v.to_ascii_lowercase(),
                // A value only known when it runs (a bind parameter, an
                // expression) could be any value.
                SettingValue::Unknown => return Some(broken),
            };
            let safe = match broken {
                Broken::SearchPath => pg_catalog_first(&value),
                Broken::Encoding => encoding_is_safe(&value),
                Broken::Strings => is_on(&value),
                Broken::Unknown => false,
            };
            (!safe).then_some(broken)
        })
        .map(rule)
}

/// Which of the settings the analyzer relies on a statement would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    Encoding,
    Strings,
    SearchPath,
    /// Not known until it runs: any of them.
    Unknown,
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
pub fn pg_catalog_first(search_path: &str) -> bool {
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

fn rule(broken: Broken) -> Arc<Rule> {
    static RULES: OnceLock<[Arc<Rule>; 4]> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        let make = |message: &str, hint: &str| Rule::built_in_deny(RULE_ID, message, hint);
        [
            make(
                "this client encoding is one PostgreSQL allows only on the client side (SJIS, BIG5, GBK, UHC, GB18030, JOHAB): its multibyte characters can contain ASCII bytes such as a backslash or a quote, so Vigil could not tell where the server sees strings end",
                "Use UTF8, or an encoding the server itself can use (LATIN1 to LATIN10, WIN125x, KOI8, EUC_JP, EUC_KR …): Vigil reads those as the server does.",
            ),
            make(
                "with standard_conforming_strings off the server reads a backslash in '…' as an escape, so Vigil could no longer see where strings end in later statements",
                "Keep standard_conforming_strings on; use E'…' strings for backslash escapes.",
            ),
            make(
                "a search_path that puts pg_catalog after another schema lets that schema's functions stand in for the built-ins Vigil vouches for",
                "Put pg_catalog first (SET search_path = pg_catalog, app, public), or leave it out: PostgreSQL then searches it first.",
            ),
            make(
                "this statement changes a setting it names only when it runs, which could be one that changes how the server reads SQL text (client_encoding, standard_conforming_strings, search_path)",
                "Name the setting and its value in the statement, or use SET with a literal value.",
            ),
        ]
    });
    let index = match broken {
        Broken::Encoding => 0,
        Broken::Strings => 1,
        Broken::SearchPath => 2,
        Broken::Unknown => 3,
    };
    Arc::clone(&rules[index])
}
