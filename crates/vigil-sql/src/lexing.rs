//! What in a text depends on how the server is set to read it, found with
//! PostgreSQL's own scanner.
//!
//! The analyzer reads text as PostgreSQL does with `standard_conforming_strings`
//! on. Only plain string literals (`'…'`, also after `N`) read differently with
//! it off: a backslash in them becomes an escape, so `'a\'` no longer ends
//! where it did, and everything after it can change between literal and code.
//! Escape strings (`E'…'`), dollar quotes, identifiers and comments read the
//! same either way, and `U&'…'` strings are an error with it off. So a text
//! with no backslash inside a plain string literal has the same tokens in both
//! modes; a text with one has to be read knowing the mode.

use pg_query::protobuf::{ScanToken, Token};

/// PostgreSQL's scanner over `sql`. A text with no tokens at all (empty,
/// or only whitespace) is answered here: pg_query 18.1 builds its token
/// slice from the null pointer libpg_query returns for one, which is
/// undefined behaviour (found by the `analyzer` fuzz target).
pub(crate) fn scan(sql: &str) -> Result<Vec<ScanToken>, pg_query::Error> {
    if sql
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c'))
    {
        return Ok(Vec::new());
    }
    pg_query::scan_tokens(sql)
}

/// Whether `sql` would be read differently with `standard_conforming_strings`
/// off: a backslash stands inside a plain string literal. A text the
/// scanner rejects counts as differing (nothing vouches for it).
pub fn reads_differently_without_standard_strings(sql: &str) -> bool {
    if !sql.contains('\\') {
        return false;
    }
    let Ok(tokens) = scan(sql) else {
        return true;
    };
    tokens.iter().any(|token| {
        token.token == Token::Sconst as i32
            && usize::try_from(token.start)
                .ok()
                .zip(usize::try_from(token.end).ok())
                .and_then(|(start, end)| sql.get(start..end))
                .is_none_or(|literal| literal.starts_with('\'') && literal.contains('\\'))
    })
}

/// The statement a `PREPARE name [(types)] AS statement` text prepares: the
/// text after its first `AS` token (no type name contains that keyword).
/// `None` when `prepare` is not of that form.
pub fn prepared_statement_text(prepare: &str) -> Option<&str> {
    let tokens = scan(prepare).ok()?;
    let first = tokens.first()?;
    let keyword =
        prepare.get(usize::try_from(first.start).ok()?..usize::try_from(first.end).ok()?)?;
    if !keyword.eq_ignore_ascii_case("prepare") {
        return None;
    }
    let as_token = tokens.iter().find(|t| t.token == Token::As as i32)?;
    let rest = prepare.get(usize::try_from(as_token.end).ok()?..)?.trim();
    let rest = rest.trim_end_matches(';').trim_end();
    (!rest.is_empty()).then_some(rest)
}

/// `sql` with each bind parameter (`$1` …) replaced by its value as a
/// literal (`None`: NULL), to analyze what a statement does once bound.
/// `None` when the text cannot be scanned or names a parameter not given.
pub fn with_parameters(sql: &str, values: &[Option<&str>]) -> Option<String> {
    let tokens = scan(sql).ok()?;
    let mut out = String::with_capacity(sql.len() + 16);
    let mut copied = 0;
    for token in tokens.iter().filter(|t| t.token == Token::Param as i32) {
        let (start, end) = (
            usize::try_from(token.start).ok()?,
            usize::try_from(token.end).ok()?,
        );
        let number: usize = sql.get(start + 1..end)?.parse().ok()?;
        let value = values.get(number.checked_sub(1)?)?;
        out.push_str(sql.get(copied..start)?);
        match value {
            None => out.push_str("NULL"),
            Some(value) => {
                out.push('\'');
                out.push_str(&value.replace('\'', "''"));
                out.push('\'');
            }
        }
        copied = end;
    }
    out.push_str(sql.get(copied..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_backslashes_in_plain_strings_depend_on_the_mode() {
        for differs in [
            r"SELECT 'a\'; DROP TABLE t; --'",
            r"SELECT 'C:\temp'",
            r"SELECT N'a\b'",
            r"SELECT 'x' || 'a\'",
            r"SELECT 'a\' AS x, ' AS x, (SELECT secret FROM secrets) AS y, ' --'",
        ] {
            assert!(
                reads_differently_without_standard_strings(differs),
                "{differs}"
            );
        }
        for same in [
            "SELECT 1",
            r"SELECT E'a\'b'",
            r"SELECT e'\n'",
            r"SELECT $$a\b$$",
            r#"SELECT 1 AS "a\b""#,
            r"SELECT 1 -- a\'",
            r"SELECT 1 /* a\' */",
            r"SELECT $1 ~ '[a-z]'",
        ] {
            assert!(!reads_differently_without_standard_strings(same), "{same}");
        }
    }

    #[test]
    fn texts_without_tokens_scan_to_nothing() {
        for empty in ["", " ", "\n\t \r", "\x0b\x0c"] {
            assert_eq!(scan(empty).unwrap(), Vec::new(), "{empty:?}");
            assert_eq!(prepared_statement_text(empty), None);
            assert_eq!(with_parameters(empty, &[]).as_deref(), Some(empty));
        }
        assert!(!scan("/* only a comment */").unwrap().is_empty());
    }

    #[test]
    fn parameters_become_literals() {
        assert_eq!(
            with_parameters(
                "SELECT set_config($1, $2::text, false), '$1', $10",
                &[
                    Some("client_encoding"),
                    Some("it's"),
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None
                ]
            )
            .as_deref(),
            Some("SELECT set_config('client_encoding', 'it''s'::text, false), '$1', NULL")
        );
        assert_eq!(with_parameters("SELECT $2", &[Some("x")]), None);
    }

    #[test]
    fn a_prepare_names_its_statement() {
        assert_eq!(
            prepared_statement_text("PREPARE s AS UPDATE t SET a = 1 WHERE id = $1"),
            Some("UPDATE t SET a = 1 WHERE id = $1")
        );
        assert_eq!(
            prepared_statement_text("prepare s (int, character varying(3)) as select $1, $2;"),
            Some("select $1, $2")
        );
        assert_eq!(
            prepared_statement_text("PREPARE \"as\" AS SELECT 'AS'"),
            Some("SELECT 'AS'")
        );
        assert_eq!(prepared_statement_text("SELECT 1 AS x"), None);
    }
}
