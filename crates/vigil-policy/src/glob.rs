//! Shell-style globs (`*`, `?`) over names, and how a pattern with or without a
//! schema meets a name with or without one.

use std::fmt;

use serde::{Deserialize, Deserializer};

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
    /// last part of any name. A name without a schema may resolve through
    /// `search_path` to any schema, so a schema-qualified pattern meets it on
    /// the last part: `public.users` may be `users`. Deny and review rules ask
    /// this question: when in doubt, they apply.
    pub fn may_match_object(&self, name: &str) -> bool {
        self.match_object(name, false)
    }

    /// Whether the name is certainly one the pattern names: `public.users`
    /// is not certainly `users`, which `search_path` might resolve elsewhere.
    /// Allow rules ask this question: when in doubt, they do not apply.
    pub fn surely_matches_object(&self, name: &str) -> bool {
        self.match_object(name, true)
    }

    fn match_object(&self, name: &str, surely: bool) -> bool {
        let (pattern_schema, pattern_name) = split_last(&self.0);
        let (schema, object) = split_last(name);
        let schema_ok = match (pattern_schema, schema) {
            (None, _) => true,
            (Some(ps), Some(s)) => wildcard(ps.as_bytes(), s.as_bytes()),
            (Some(ps), None) => !surely || ps.bytes().all(|c| c == b'*'),
        };
        schema_ok && wildcard(pattern_name.as_bytes(), object.as_bytes())
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
        let may = |p: &str, name: &str| glob(p).may_match_object(name);
        let surely = |p: &str, name: &str| glob(p).surely_matches_object(name);
        assert!(may("public.users", "public.users") && surely("public.users", "public.users"));
        assert!(may("public.users", "users"), "search_path may resolve it");
        assert!(
            !surely("public.users", "users"),
            "but it may resolve elsewhere"
        );
        assert!(!may("public.users", "audit.users"));
        assert!(surely("users", "audit.users"));
        assert!(surely("*.secrets", "hr.secrets") && surely("*.secrets", "secrets"));
        assert!(may("hr.*", "salaries") && !surely("hr.*", "salaries"));
        assert!(may("pg_catalog.pg_read_file", "pg_read_file"));
        assert!(surely("dblink*", "public.dblink_exec"));
    }
}
