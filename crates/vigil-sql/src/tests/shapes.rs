//! Sharing analyses between texts of one shape is only safe if the shape
//! lexer blanks exactly what PostgreSQL's scanner reads as constants and
//! comments. These tests hold it to `pg_query::scan` on token soups built to
//! confuse it, and hold shared analyses to fresh ones.

use std::ops::Range;

use pg_query::protobuf::Token;
use proptest::prelude::*;

use crate::shape::shape;
use crate::{analyze_uncached, Analyzer};

/// Pieces that change the scanner's state or sit on its edges.
#[rustfmt::skip]
const PIECES: &[&str] = &[
    "'", "''", "'a'", "'x''y'", "'-- no'", "'/* no'", "\"", "\"q\"", "\"'\"", "--", "/*", "*/",
    "\n", "\r", "\t", " ", "E", "e", "U&", "u&", "&", "$", "$1", "$$", "1", "12", "0", ".", "e5",
    "x", "b", "X", "n", "a", "_", ";", "\\", "(", ")", "+", "-", "*", "/", "é", "SELECT", "FROM",
    "t", ",", "=", "::", "UESCAPE", "1.5", ".5", "1e", "1..2",
];

/// Spans of the tokens of these kinds, by PostgreSQL's scanner.
fn pg_spans(tokens: &[pg_query::protobuf::ScanToken], kinds: &[Token]) -> Vec<Range<usize>> {
    tokens
        .iter()
        .filter(|t| kinds.iter().any(|k| *k as i32 == t.token))
        .map(|t| t.start as usize..t.end as usize)
        .collect()
}

/// The token kinds and the text of every token but constants, by PostgreSQL.
fn pg_structure(sql: &str) -> Option<Vec<(i32, String)>> {
    let tokens = pg_query::scan(sql).ok()?.tokens;
    Some(
        tokens
            .iter()
            .map(|t| {
                let constant = [Token::Sconst, Token::Iconst, Token::Fconst]
                    .iter()
                    .any(|k| *k as i32 == t.token);
                let comment = [Token::CComment, Token::SqlComment]
                    .iter()
                    .any(|k| *k as i32 == t.token);
                let text = if constant || comment {
                    String::new()
                } else {
                    sql[t.start as usize..t.end as usize].to_owned()
                };
                (t.token, text)
            })
            .collect(),
    )
}

/// `sql` with every constant and comment of its shape given other contents.
fn other_constants(sql: &str, salt: u32) -> String {
    let shape = shape(sql).expect("shaped");
    let mut spans: Vec<(Range<usize>, String)> = shape
        .constants
        .iter()
        .map(|c| {
            let replacement = if sql.as_bytes()[c.start] == b'\'' {
                format!("'v{salt}''s /* -- \"'")
            } else {
                format!("{}", 7 + salt)
            };
            (c.clone(), replacement)
        })
        .collect();
    spans.extend(
        shape
            .block_comments
            .iter()
            .map(|c| (c.clone(), format!("/* '{salt} \" -- */"))),
    );
    spans.sort_by_key(|(r, _)| r.start);
    let mut out = String::new();
    let mut at = 0;
    for (range, replacement) in spans {
        out.push_str(&sql[at..range.start]);
        out.push_str(&replacement);
        at = range.end;
    }
    out.push_str(&sql[at..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// What the shape lexer blanks, PostgreSQL's scanner reads as constants
    /// and comments; texts of one shape have the same tokens but for those.
    #[test]
    fn the_shape_lexer_agrees_with_postgresql(
        pieces in prop::collection::vec(prop::sample::select(PIECES), 0..24),
        salt in 0u32..1000,
    ) {
        let sql = pieces.concat();
        let Some(shape) = shape(&sql) else { return Ok(()) };
        let Ok(tokens) = pg_query::scan(&sql).map(|r| r.tokens) else {
            // Nothing PostgreSQL cannot scan gets as far as a shared analysis.
            return Ok(());
        };
        let constants = pg_spans(&tokens, &[Token::Sconst, Token::Iconst, Token::Fconst]);
        for mine in &shape.constants {
            prop_assert!(
                constants.iter().any(|pg| pg.start <= mine.start && mine.end <= pg.end),
                "{sql:?}: {mine:?} is not inside a constant of {constants:?}"
            );
        }
        let block_comments = pg_spans(&tokens, &[Token::CComment]);
        prop_assert_eq!(&shape.block_comments, &block_comments, "{:?}", sql);

        let other = other_constants(&sql, salt);
        let other_shape = crate::shape::shape(&other);
        prop_assert_eq!(other_shape.map(|s| s.key), Some(shape.key.clone()), "{:?}", other);
        prop_assert_eq!(pg_structure(&other), pg_structure(&sql), "{:?} / {:?}", sql, other);
    }
}

/// Texts whose analyses are shared between constants, each with other
/// constants: a shared analysis must equal a fresh one in everything.
const SHARED: &[(&str, &str)] = &[
    (
        "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 99999;",
    ),
    (
        "WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d",
        "WITH d AS (DELETE FROM t WHERE id = 2 RETURNING *) SELECT * FROM d",
    ),
    (
        "SELECT 1; DELETE FROM users WHERE name = 'a'",
        "SELECT 2; DELETE FROM users WHERE name = 'DROP TABLE users; --'",
    ),
    (
        "UPDATE t SET a = 'x' /*ticket='OPS-1'*/",
        "UPDATE t SET a = 'y' /*ticket='OPS-2',traceparent='00-ab-cd-01'*/",
    ),
    (
        "SELECT pg_read_file('/tmp/a') -- note\n",
        "SELECT pg_read_file('/etc/passwd') -- other note\n",
    ),
    (
        "SELECT run_sql('SELECT 1')",
        "SELECT run_sql('DROP TABLE t')",
    ),
    (
        "INSERT INTO s.t (a, \"B\") VALUES (1, 'a'), (2, 'b') RETURNING *",
        "INSERT INTO s.t (a, \"B\") VALUES (3, 'c''d'), (4, '') RETURNING *",
    ),
    (
        "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
        "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
    ),
];

#[test]
fn a_shared_analysis_equals_a_fresh_one() {
    let analyzer = Analyzer::new(64);
    for (first, second) in SHARED {
        assert_eq!(shape(first).map(|s| s.key), shape(second).map(|s| s.key));
        analyzer.analyze(first).unwrap();
        let before = analyzer.cached();
        let shared = analyzer.analyze(second).unwrap();
        assert_eq!(*shared, analyze_uncached(second).unwrap(), "{second}");
        if first != second {
            // Served by shape, and not kept by text.
            assert_eq!(analyzer.cached(), before, "{second}");
        }
    }
    assert_eq!(analyzer.cached_shapes(), SHARED.len());
}

#[test]
fn analyses_that_depend_on_constants_are_not_shared() {
    let analyzer = Analyzer::new(64);
    for (first, second) in [
        (
            "SET search_path = 'public'",
            "SET search_path = 'evil, pg_catalog'",
        ),
        (
            "SET standard_conforming_strings = 'on'",
            "SET standard_conforming_strings = 'off'",
        ),
        (
            "SELECT set_config('application_name', 'a', false)",
            "SELECT set_config('search_path', 'evil', false)",
        ),
        (
            "EXPLAIN (ANALYZE 0) DELETE FROM t",
            "EXPLAIN (ANALYZE 1) DELETE FROM t",
        ),
        ("COPY t TO '/tmp/a'", "COPY t TO '/tmp/b'"),
        ("CREATE ROLE r PASSWORD 'a'", "CREATE ROLE r PASSWORD 'b'"),
    ] {
        assert_eq!(shape(first).map(|s| s.key), shape(second).map(|s| s.key));
        let a = analyzer.analyze(first).unwrap();
        let b = analyzer.analyze(second).unwrap();
        assert_eq!(*b, analyze_uncached(second).unwrap(), "{second}");
        assert_ne!(a.statements[0].text, b.statements[0].text);
    }
    assert_eq!(analyzer.cached_shapes(), 0);
    // The analysis that changes the session's search path reads the value.
    let evil = analyzer
        .analyze("SELECT set_config('search_path', 'evil', false)")
        .unwrap();
    assert_eq!(evil.statements[0].properties.settings.len(), 1);
}

#[test]
fn escape_strings_cannot_pose_as_a_cached_shape() {
    let analyzer = Analyzer::new(64);
    analyzer
        .analyze("SELECT * FROM t WHERE a = 'x' OR b = 'y'")
        .unwrap();
    // With E'…', `\'` does not close the string: the same bytes between the
    // outer quotes hold a different statement. It has no shape, so it parses.
    let hidden = r"SELECT * FROM t WHERE a = E'\' OR b = ' ; DROP TABLE t; --'";
    assert!(shape(hidden).is_none());
    let analysis = analyzer.analyze(hidden).unwrap();
    assert_eq!(analysis.statements.len(), 2);
    assert_eq!(
        analysis.statements[1].kind,
        crate::Kind::Drop(crate::ObjectType::Table)
    );
}

#[test]
fn normalized_forms_number_each_statements_constants() {
    let analysis = analyze_uncached(
        "SELECT * FROM t WHERE id = 12 AND name = 'x' /*c='1'*/; DELETE FROM t WHERE id = 9",
    )
    .unwrap();
    assert_eq!(
        analysis.statements[0].normalized,
        "SELECT * FROM t WHERE id = $1 AND name = $2 /*c='1'*/"
    );
    assert_eq!(
        analysis.statements[1].normalized,
        "DELETE FROM t WHERE id = $1"
    );
    // Without a shape, pg_query normalizes.
    assert_eq!(
        analyze_uncached("SELECT E'a' FROM t WHERE id = $1")
            .unwrap()
            .statements[0]
            .normalized,
        "SELECT $2 FROM t WHERE id = $1"
    );
}

#[test]
fn positional_order_and_group_are_not_shared() {
    let analyzer = Analyzer::new(64);
    let first = analyzer.analyze("SELECT a, b FROM t ORDER BY 1").unwrap();
    let second = analyzer.analyze("SELECT a, b FROM t ORDER BY 2").unwrap();
    assert_eq!(
        shape("SELECT a, b FROM t ORDER BY 1").map(|s| s.key),
        shape("SELECT a, b FROM t ORDER BY 2").map(|s| s.key)
    );
    assert_ne!(first.statements[0].filters, second.statements[0].filters);
    assert_eq!(
        *second,
        analyze_uncached("SELECT a, b FROM t ORDER BY 2").unwrap()
    );
    let first = analyzer
        .analyze("SELECT a, b FROM t GROUP BY 1, 2")
        .unwrap();
    let second = analyzer
        .analyze("SELECT a, b FROM t GROUP BY 2, 2")
        .unwrap();
    assert_ne!(first.statements[0].filters, second.statements[0].filters);
    assert_eq!(analyzer.cached_shapes(), 0);
}
