//! Shell-style globs (`*`, `?`) over names, and how a pattern with or without a
//! schema meets a name with or without one.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer};
use vigil_sql::SettingValue;

/// A pattern such as `public.*`, `*.passwords` or `pg_read_*`.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("a pattern must not be empty".into());
        }
        if pattern.chars().any(char::is_control) {
            return Err(format!("{pattern:?} has a control character"));
        }
        Ok(Glob(pattern.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The whole of `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        wildcard(self.0.as_bytes(), name.as_bytes())
    }

    /// Whether an object name as a statement wrote it may be one the pattern
    /// names. A pattern without a schema (`users`, `pg_read_file`) meets the
    /// last part of any name. A name without a schema resolves through the
    /// session's `search_path`: it may be in any schema the path may hold.
    /// Deny and review rules ask this question: when in doubt, they apply.
    pub fn may_match_object(&self, name: &str, path: &SearchPath) -> bool {
        self.match_object(name, path, false)
    }

    /// Whether the name is certainly one the pattern names: an unqualified
    /// name only when every schema the path may hold matches. Allow rules ask
    /// this question: when in doubt, they do not apply.
    pub fn surely_matches_object(&self, name: &str, path: &SearchPath) -> bool {
        self.match_object(name, path, true)
    }

    fn match_object(&self, name: &str, path: &SearchPath, surely: bool) -> bool {
        let (pattern_schema, pattern_name) = split_last(&self.0);
        let (schema, object) = split_last(name);
        let schema_ok = match (pattern_schema, schema) {
            (None, _) => true,
            (Some(ps), Some(s)) => wildcard(ps.as_bytes(), s.as_bytes()),
            (Some(ps), None) => {
                let matches = |s: &str| wildcard(ps.as_bytes(), s.as_bytes());
                // pg_catalog is searched first whatever the path says; a
                // name of ours that is also a catalog's is not sure either way.
                match (&path.schemas, surely) {
                    (None, false) => true,
                    (None, true) => ps.bytes().all(|c| c == b'*'),
                    (Some(schemas), false) => {
                        matches("pg_catalog") || schemas.iter().any(|s| matches(s))
                    }
                    (Some(schemas), true) => schemas.iter().all(|s| matches(s)),
                }
            }
        };
        schema_ok && wildcard(pattern_name.as_bytes(), object.as_bytes())
    }
}

/// The schemas an unqualified name may resolve to in a session: every schema
/// its `search_path` has held (a rolled-back `SET` may or may not have
/// stuck), or any schema once it was set to something Vigil cannot read.
/// Sessions start with PostgreSQL's default, `"$user", public`; Vigil assumes
/// its service role has no schema of its own, as in a default installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPath {
    schemas: Option<BTreeSet<String>>,
}

impl Default for SearchPath {
    fn default() -> SearchPath {
        SearchPath {
            schemas: Some(BTreeSet::from(["public".to_owned()])),
        }
    }
}

impl SearchPath {
    /// Any schema at all.
    pub fn any() -> SearchPath {
        SearchPath { schemas: None }
    }

    /// Takes note of the `search_path` changes of a statement that ran.
    pub fn note(&mut self, statement: &vigil_sql::Statement) {
        for change in &statement.properties.settings {
            match (change.name.as_deref(), &change.value) {
                (Some("search_path"), SettingValue::Value(value)) => {
                    if let Some(schemas) = &mut self.schemas {
                        for schema in value.split(',') {
                            let schema = schema.trim();
                            let schema =
                                match schema.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                                    Some(quoted) => quoted.to_owned(),
                                    None => schema.to_ascii_lowercase(),
                                };
                            if schema != "$user" && !schema.is_empty() {
                                schemas.insert(schema);
                            }
                        }
                    }
                }
                (Some("search_path"), SettingValue::Default) => {}
                (Some("search_path" | "all") | None, SettingValue::Unknown) => self.schemas = None,
                _ => {}
            }
        }
    }
}

/// Splits `a.b.c` into (`a.b`, `c`). Quoted names with dots in them are rare
/// enough in policies that the last dot is taken as the separator.
fn split_last(name: &str) -> (Option<&str>, &str) {
    match name.rsplit_once('.') {
        Some((schema, object)) => (Some(schema), object),
        None => (None, name),
    }
}

/// Iterative wildcard match with one backtrack point: linear in practice,
/// never exponential.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Glob, D::Error> {
        let text = String::deserialize(deserializer)?;
        Glob::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str) -> Glob {
        Glob::new(p).unwrap()
    }

    #[test]
    fn wildcards() {
        assert!(glob("*").matches("anything"));
        assert!(glob("pg_read_*").matches("pg_read_binary_file"));
        assert!(glob("a?c").matches("abc"));
        assert!(!glob("a?c").matches("ac"));
        assert!(glob("*a*b*").matches("xxaxxbxx"));
        assert!(!glob("*a*b").matches("xxaxxbxx"));
        assert!(!glob("users").matches("users2"));
        // Pathological patterns stay fast.
        let long = "a".repeat(10_000);
        assert!(!glob("*a*a*a*a*a*a*a*b").matches(&long));
    }

    #[test]
    fn objects_with_and_without_schemas() {
        let default = SearchPath::default();
        let may = |p: &str, name: &str| glob(p).may_match_object(name, &default);
        let surely = |p: &str, name: &str| glob(p).surely_matches_object(name, &default);
        assert!(may("public.users", "public.users") && surely("public.users", "public.users"));
        assert!(may("public.users", "users") && surely("public.users", "users"));
        assert!(!may("public.users", "audit.users"));
        assert!(surely("users", "audit.users"));
        assert!(surely("*.secrets", "hr.secrets") && surely("*.secrets", "secrets"));
        assert!(!may("hr.*", "salaries"), "hr is not on the default path");
        assert!(
            may("pg_catalog.pg_authid", "pg_authid"),
            "pg_catalog is always searched"
        );
        assert!(surely("dblink*", "public.dblink_exec"));

        // SET search_path = hr, public: salaries may now be hr's.
        let mut path = SearchPath::default();
        let set = vigil_sql::analyze_uncached("SET search_path = hr, public").unwrap();
        path.note(&set.statements[0]);
        assert!(glob("hr.*").may_match_object("salaries", &path));
        assert!(!glob("public.*").surely_matches_object("salaries", &path));
        let mut path = SearchPath::default();
        let set = vigil_sql::analyze_uncached("SELECT set_config('search_path', s, false) FROM t")
            .unwrap();
        path.note(&set.statements[0]);
        assert_eq!(path, SearchPath::any());
        assert!(glob("hr.*").may_match_object("salaries", &path));
    }
}
