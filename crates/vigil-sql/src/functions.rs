//! Which function calls the analyzer can vouch for: PostgreSQL's built-ins
//! (`pg_catalog`), except those that run SQL handed to them as text.
//!
//! `builtin_functions.txt` is the list of `pg_catalog` function names of
//! PostgreSQL 15 (`SELECT DISTINCT proname FROM pg_proc WHERE pronamespace =
//! 'pg_catalog'::regnamespace`). Built-ins added by later versions are
//! missing and so count as opaque: a refusal too many, never one too few.

use std::collections::HashSet;
use std::sync::OnceLock;

const BUILTINS: &str = include_str!("builtin_functions.txt");

/// Built-ins whose argument is a query they run, or a relation (by name or
/// OID) they read whole: what they read is not in the text.
const RUN_SQL: &[&str] = &[
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "ts_stat",
];

fn builtins() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| BUILTINS.lines().filter(|l| !l.is_empty()).collect())
}

/// Whether a call of `name` (as written: `f`, `pg_catalog.f`, `s.f`) runs
/// something the analyzer cannot see.
pub(crate) fn is_opaque(name: &str) -> bool {
    let bare = match name.split_once('.') {
        None => name,
        Some(("pg_catalog", bare)) => bare,
        Some(_) => return true,
    };
    !builtins().contains(bare) || RUN_SQL.contains(&bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_the_rest() {
        for name in [
            "lower",
            "pg_catalog.lower",
            "count",
            "now",
            "extract",
            "pg_read_file",
            "set_config",
            "btrim",
        ] {
            assert!(!is_opaque(name), "{name}");
        }
        for name in [
            "run_sql",
            "public.lower",
            "dblink",
            "query_to_xml",
            "table_to_xml",
            "pg_catalog.schema_to_xml",
            "pg_catalog.ts_stat",
            "a.b.c",
        ] {
            assert!(is_opaque(name), "{name}");
        }
    }
}
