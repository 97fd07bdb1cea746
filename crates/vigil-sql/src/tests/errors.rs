//! Refusals: PostgreSQL's wording and position, and the SQLSTATEs behind them.

use crate::{analyze_uncached, AnalyzeError};

fn syntax(sql: &str) -> (String, Option<usize>) {
    match analyze_uncached(sql) {
        Err(AnalyzeError::Syntax { message, position }) => (message, position),
        other => panic!("{sql:?}: expected a syntax error, got {other:?}"),
    }
}

#[test]
fn syntax_error_positions() {
    assert_eq!(
        syntax("SELEC 1"),
        (r#"syntax error at or near "SELEC""#.to_owned(), Some(1))
    );
    assert_eq!(
        syntax("SELECT 1 FROM WHERE"),
        (r#"syntax error at or near "WHERE""#.to_owned(), Some(15))
    );
    assert_eq!(
        syntax("SELECT 1; this is not sql"),
        (r#"syntax error at or near "this""#.to_owned(), Some(11))
    );
    assert_eq!(
        syntax("SELECT (1"),
        ("syntax error at end of input".to_owned(), Some(10))
    );
    // PostgreSQL counts characters, not bytes.
    assert_eq!(syntax("SELECT 'ééé' FRM t").1, Some(18));
    let (message, position) = syntax("SELECT 'unterminated");
    assert!(
        message.starts_with("unterminated quoted string"),
        "{message}"
    );
    assert_eq!(position, Some(8));
}

#[test]
fn a_bad_statement_anywhere_refuses_the_whole_text() {
    let (message, _) = syntax("SELECT 1; DROP TABLE t; SELEC 2");
    assert_eq!(message, r#"syntax error at or near "SELEC""#);
}

#[test]
fn sqlstates() {
    let e = analyze_uncached("SELEC 1").unwrap_err();
    assert_eq!(e.sqlstate(), "42601");
    assert_eq!(e.to_string(), r#"syntax error at or near "SELEC""#);
    assert_eq!(AnalyzeError::TooDeep.sqlstate(), "54001");
    assert_eq!(AnalyzeError::NulByte.sqlstate(), "22021");
}
