//! Which function calls the analyzer can vouch for, and what calling them
//! does: the allowlist in `functions.txt` (see its header for how it was
//! made and what each class means). Anything not on it is opaque: what it
//! runs is not in the text, so the statement is of unknown class.
//!
//! A name is looked up as written: `f` and `pg_catalog.f` are the built-in
//! (the session's own overloads of built-in names are the caller's to rule
//! out, see [`crate::Statement::functions`]); `s.f` for any other schema is a
//! function of the database's own, opaque.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::Class;

const ALLOWLIST: &str = include_str!("functions.txt");

/// One allowlisted built-in: its class, and the only argument count that is
/// safe, where only one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    class: Class,
    arity: Option<usize>,
}

fn allowlist() -> &'static HashMap<&'static str, Entry> {
    static LIST: OnceLock<HashMap<&'static str, Entry>> = OnceLock::new();
    LIST.get_or_init(|| {
        ALLOWLIST
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (name, class) = line.split_once(' ').expect("`name class` lines");
                let class = match class.trim() {
                    "read" => Class::Read,
                    "session" => Class::Session,
                    "write" => Class::Write,
                    "admin" => Class::Admin,
                    other => panic!("functions.txt: unknown class {other:?}"),
                };
                let (name, arity) = match name.split_once('/') {
                    Some((name, arity)) => (name, Some(arity.parse().expect("an arity"))),
                    None => (name, None),
                };
                (name, Entry { class, arity })
            })
            .collect()
    })
}

/// The class of what a call of `name` (as written: `f`, `pg_catalog.f`,
/// `s.f`) with `arguments` arguments does; `None` when it is opaque.
pub(crate) fn class_of(name: &str, arguments: usize) -> Option<Class> {
    let bare = match name.split_once('.') {
        None => name,
        Some(("pg_catalog", bare)) => bare,
        Some(_) => return None,
    };
    let entry = allowlist().get(bare)?;
    entry
        .arity
        .is_none_or(|arity| arity == arguments)
        .then_some(entry.class)
}

/// Whether `name` is a built-in Vigil vouches for in some form: the names a
/// database's own functions must not share for a call to be trusted.
pub fn is_allowlisted(name: &str) -> bool {
    allowlist().contains_key(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_and_the_rest() {
        for (name, arguments, class) in [
            ("lower", 1, Class::Read),
            ("pg_catalog.lower", 1, Class::Read),
            ("count", 1, Class::Read),
            ("now", 0, Class::Read),
            ("extract", 2, Class::Read),
            ("btrim", 1, Class::Read),
            ("set_config", 3, Class::Session),
            ("nextval", 1, Class::Write),
            ("lo_unlink", 1, Class::Write),
            ("pg_terminate_backend", 1, Class::Admin),
            ("pg_read_file", 1, Class::Admin),
            ("ts_rewrite", 3, Class::Read),
        ] {
            assert_eq!(class_of(name, arguments), Some(class), "{name}");
        }
        for (name, arguments) in [
            ("run_sql", 1),
            ("public.lower", 1),
            ("dblink", 2),
            ("query_to_xml", 4),
            ("table_to_xml", 4),
            ("pg_catalog.schema_to_xml", 4),
            ("pg_catalog.ts_stat", 1),
            ("ts_rewrite", 2),
            ("cursor_to_xml", 5),
            ("pg_stat_get_activity", 1),
            ("binary_upgrade_set_next_pg_type_oid", 1),
            ("a.b.c", 0),
        ] {
            assert_eq!(class_of(name, arguments), None, "{name}");
        }
    }

    /// The built-ins known to run SQL handed to them, or to read a whole
    /// relation or cursor named by a value, or another session's SQL text:
    /// none may be on the list in a form that does.
    #[test]
    fn nothing_on_the_list_runs_sql_it_is_given() {
        const RUN_SQL: &[(&str, usize)] = &[
            ("query_to_xml", 4),
            ("query_to_xmlschema", 4),
            ("query_to_xml_and_xmlschema", 4),
            ("table_to_xml", 4),
            ("table_to_xmlschema", 4),
            ("table_to_xml_and_xmlschema", 4),
            ("schema_to_xml", 4),
            ("schema_to_xmlschema", 4),
            ("schema_to_xml_and_xmlschema", 4),
            ("database_to_xml", 3),
            ("database_to_xmlschema", 3),
            ("database_to_xml_and_xmlschema", 3),
            ("cursor_to_xml", 5),
            ("cursor_to_xmlschema", 4),
            ("ts_stat", 1),
            ("ts_stat", 2),
            ("ts_rewrite", 2),
            ("pg_stat_get_activity", 1),
            ("pg_stat_get_backend_activity", 1),
            ("dblink", 2),
            ("dblink_exec", 2),
            ("plpgsql_inline_handler", 1),
            ("plpgsql_call_handler", 0),
        ];
        for (name, arguments) in RUN_SQL {
            assert_eq!(class_of(name, *arguments), None, "{name}/{arguments}");
        }
        // Everything that reaches other sessions, files or the server's
        // configuration is admin, never read.
        for name in [
            "pg_cancel_backend",
            "pg_reload_conf",
            "pg_create_logical_replication_slot",
            "pg_drop_replication_slot",
            "pg_logical_slot_get_changes",
            "pg_ls_dir",
            "pg_stat_file",
            "lo_import",
            "lo_export",
            "pg_hba_file_rules",
            "pg_show_all_file_settings",
        ] {
            assert_eq!(class_of(name, 1), Some(Class::Admin), "{name}");
        }
    }

    #[test]
    fn each_name_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for line in ALLOWLIST.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let name = line.split([' ', '/']).next().unwrap();
            assert!(seen.insert(name), "{name} is listed twice");
        }
        assert!(seen.len() > 2000, "the list is whole: {}", seen.len());
    }
}
