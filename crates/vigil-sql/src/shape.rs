//! The shape of a text: the text with its constants and comments blanked out,
//! so texts that differ only there (`… WHERE aid = 123` and `… WHERE aid =
//! 456`, or the same query under another `traceparent` comment) can share one
//! analysis without a parse.
//!
//! Sharing is safe only if the blanked parts really are constants and comments
//! to PostgreSQL, so this lexer follows PostgreSQL's scanner (`scan.l`) exactly
//! on a deliberately small language and gives up on everything else:
//!
//! - whitespace (` \t\n\r\f`), identifiers and keywords, `"quoted"`
//!   identifiers, operators and punctuation are kept as they are;
//! - `'strings'` (with `''` inside) become one marker, unless a backslash is
//!   in them or the quote follows an identifier character or `&` (`E'…'`,
//!   `U&'…'`, `B'…'`, `X'…'`, `N'…'`, `date'…'`): no shape;
//! - unsigned integer digits become another marker, unless a letter, `_` or
//!   `$` follows (`0x1F`, `1e5`, `1_000`, `123abc`): no shape;
//! - `-- line` and nested `/* block */` comments become markers of their own;
//! - `$` anywhere (parameters, dollar quotes), a backslash outside a comment,
//!   control characters and unterminated literals or comments: no shape.
//!
//! Two texts with the same key thus have the same tokens in the same places
//! but for the values of constants and the words of comments. Whether an
//! analysis may be shared also depends on what it says (a `SET`'s value is a
//! constant): see `Analysis::shareable`. The agreement with PostgreSQL's
//! scanner is checked by a property test against `pg_query::scan`.

use std::ops::Range;

const STRING: char = '\u{1}';
const NUMBER: char = '\u{2}';
const BLOCK_COMMENT: char = '\u{3}';
const LINE_COMMENT: char = '\u{4}';

/// A text's shape and where its parts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape {
    /// The text with each constant and comment replaced by a marker byte
    /// (control characters, which never survive in a shaped text).
    pub(crate) key: String,
    /// Byte ranges of the constants in the text, in order.
    pub(crate) constants: Vec<Range<usize>>,
    /// Byte ranges of the `/* … */` comments, in order.
    pub(crate) block_comments: Vec<Range<usize>>,
    /// The statements as PostgreSQL splits the text: the ranges between
    /// top-level semicolons that hold more than whitespace and comments,
    /// each from its first token, as the parser places statements.
    pub(crate) statements: Vec<Range<usize>>,
}

/// The shape of `sql`, or `None` when it uses anything outside the small
/// language above.
pub(crate) fn shape(sql: &str) -> Option<Shape> {
    let bytes = sql.as_bytes();
    // The parser refuses a text with a NUL byte anywhere, comments included.
    if bytes.contains(&0) {
        return None;
    }
    let mut shape = Shape {
        key: String::with_capacity(sql.len()),
        constants: Vec::new(),
        block_comments: Vec::new(),
        statements: Vec::new(),
    };
    // Start of the verbatim run not yet copied into the key.
    let mut verbatim = 0;
    let mut piece_start = 0;
    let mut piece_has_token = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (end, marker) = match b {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                i += 1;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                let end = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n' || c == b'\r')
                    .map_or(bytes.len(), |n| i + n);
                (end, LINE_COMMENT)
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                (block_comment_end(bytes, i)?, BLOCK_COMMENT)
            }
            b'\'' => {
                let after_word_or_amp = i > 0 && {
                    let prev = bytes[i - 1];
                    is_ident_char(prev) || prev == b'&'
                };
                if after_word_or_amp {
                    return None;
                }
                if !piece_has_token {
                    piece_start = i;
                }
                piece_has_token = true;
                (string_end(bytes, i)?, STRING)
            }
            b'"' => {
                if !piece_has_token {
                    piece_start = i;
                }
                piece_has_token = true;
                i = quoted_identifier_end(bytes, i)?;
                continue;
            }
            b'0'..=b'9' => {
                let end = bytes[i..]
                    .iter()
                    .position(|c| !c.is_ascii_digit())
                    .map_or(bytes.len(), |n| i + n);
                if bytes.get(end).is_some_and(|&c| is_ident_char(c)) {
                    return None;
                }
                if !piece_has_token {
                    piece_start = i;
                }
                piece_has_token = true;
                (end, NUMBER)
            }
            b if is_ident_start(b) => {
                if !piece_has_token {
                    piece_start = i;
                }
                piece_has_token = true;
                i += bytes[i..]
                    .iter()
                    .position(|&c| !is_ident_char(c))
                    .unwrap_or(bytes.len() - i);
                continue;
            }
            b';' => {
                if piece_has_token {
                    shape.statements.push(piece_start..i);
                }
                piece_start = i + 1;
                piece_has_token = false;
                i += 1;
                continue;
            }
            b'$' | b'\\' | 0..=0x1f | 0x7f => return None,
            _ => {
                // Operators and punctuation, one byte at a time so that a
                // comment start inside an operator is seen, as PostgreSQL does.
                if !piece_has_token {
                    piece_start = i;
                }
                piece_has_token = true;
                i += 1;
                continue;
            }
        };
        shape.key.push_str(&sql[verbatim..i]);
        shape.key.push(marker);
        match marker {
            STRING | NUMBER => shape.constants.push(i..end),
            BLOCK_COMMENT => shape.block_comments.push(i..end),
            _ => {}
        }
        i = end;
        verbatim = end;
    }
    shape.key.push_str(&sql[verbatim..]);
    if piece_has_token {
        shape.statements.push(piece_start..sql.len());
    }
    Some(shape)
}

impl Shape {
    /// `text[range]` with its constants replaced by `$1`, `$2`, … in order:
    /// the statement's normalized form. `range` is a statement of this shape.
    pub(crate) fn normalize(&self, text: &str, range: Range<usize>) -> String {
        let mut out = String::with_capacity(range.len());
        let mut at = range.start;
        let mut n = 0;
        for constant in self
            .constants
            .iter()
            .filter(|c| c.start >= range.start && c.end <= range.end)
        {
            n += 1;
            out.push_str(&text[at..constant.start]);
            out.push('$');
            out.push_str(&n.to_string());
            at = constant.end;
        }
        out.push_str(&text[at..range.end]);
        out
    }
}

/// Letters, digits, `_`, `$` and every non-ASCII byte continue an identifier
/// in PostgreSQL (`ident_cont`).
fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// `ident_start`: letters, `_` and every non-ASCII byte.
fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// The end of the `/* … */` comment at `start`, with nesting as PostgreSQL
/// allows; `None` when it is never closed.
fn block_comment_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The end of the `'…'` string at `start` (`''` is a quote inside it); `None`
/// if it holds a backslash or is never closed.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match *bytes.get(i)? {
            b'\\' => return None,
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The end of the `"…"` identifier at `start` (`""` is a quote inside it).
fn quoted_identifier_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match *bytes.get(i)? {
            b'"' if bytes.get(i + 1) == Some(&b'"') => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sql: &str) -> Option<String> {
        shape(sql).map(|s| s.key)
    }

    #[test]
    fn constants_and_comments_are_blanked() {
        let a = key("SELECT abalance FROM pgbench_accounts WHERE aid = 123;").unwrap();
        let b = key("SELECT abalance FROM pgbench_accounts WHERE aid = 98765;").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a,
            "SELECT abalance FROM pgbench_accounts WHERE aid = \u{2};"
        );
        assert_eq!(
            key("SELECT * FROM t WHERE n = 'O''Brien' /*traceparent='00-1'*/"),
            key("SELECT * FROM t WHERE n = 'x' /*traceparent='00-2'*/"),
        );
        assert_eq!(key("SELECT 1 -- a\nFROM t"), key("SELECT 2 -- b\nFROM t"));
        // The constant's kind is part of the shape.
        assert_ne!(key("SELECT '1'"), key("SELECT 1"));
        // Everything else is kept as written.
        assert_ne!(key("SELECT 1 FROM t"), key("select 1 from t"));
        assert_ne!(key("SELECT 1 FROM t"), key("SELECT 1  FROM t"));
    }

    #[test]
    fn identifiers_keep_their_digits_and_quoted_ones_their_contents() {
        assert_ne!(key("SELECT * FROM t1"), key("SELECT * FROM t2"));
        assert_ne!(key(r#"SELECT "a'b" FROM t"#), key(r#"SELECT "a'c" FROM t"#));
        assert_eq!(
            key(r#"SELECT "a""b" FROM t"#).unwrap(),
            r#"SELECT "a""b" FROM t"#
        );
    }

    #[test]
    fn anything_outside_the_small_language_has_no_shape() {
        for sql in [
            "SELECT E'\\''",
            "SELECT e'x'",
            "SELECT U&'\\0041'",
            "SELECT u&'x' UESCAPE '!'",
            "SELECT B'101'",
            "SELECT X'1F'",
            "SELECT N'x'",
            "SELECT date'2020-01-01'",
            "SELECT 'a\\b'",
            "SELECT $1",
            "SELECT $$x$$",
            "SELECT $q$x$q$",
            "SELECT 0x1F",
            "SELECT 1e5",
            "SELECT 1_000",
            "SELECT 123abc",
            "SELECT 'unterminated",
            "SELECT \"unterminated",
            "SELECT 1 /* unterminated",
            "SELECT 1 /* /* nested, half closed */",
            "SELECT 1\u{0}",
            "SELECT 1\u{b}",
            "SELECT \\x",
        ] {
            assert_eq!(shape(sql), None, "{sql:?}");
        }
    }

    #[test]
    fn nested_comments_close_where_postgresql_closes_them() {
        let s = shape("SELECT /* a /* b */ 'c' */ 1").unwrap();
        assert_eq!(s.key, "SELECT \u{3} \u{2}");
        assert_eq!(s.constants.len(), 1);
        // A quote inside a comment starts nothing.
        assert!(shape("SELECT 1 -- it's\n").is_some());
        assert!(shape("SELECT 1 /* it's */").is_some());
        // `--` and `/*` inside an operator still start comments.
        assert_eq!(
            shape("SELECT 1 +-- x\n").unwrap().key,
            "SELECT \u{2} +\u{4}\n"
        );
        assert_eq!(
            shape("SELECT 1 */* x */").unwrap().key,
            "SELECT \u{2} *\u{3}"
        );
    }

    #[test]
    fn shared_analyses_name_statements_as_the_parser_does() {
        // Found by the analyzer fuzz target: leading comments, and a NUL
        // byte in a comment (which the parser refuses).
        let analyzer = crate::Analyzer::new(16);
        for (first, second) in [
            (
                "/* a */ SELECT 1 FROM t WHERE x = 1; /* b */ SELECT 2",
                "/* c */ SELECT 1 FROM t WHERE x = 5; /* d */ SELECT 3",
            ),
            ("-- a\n SELECT 1 FROM t", "-- b\n SELECT 2 FROM t"),
            ("SELECT 1 /* a */", "SELECT 1 /* \0 */"),
        ] {
            analyzer.analyze(first).unwrap();
            let cached = analyzer.analyze(second);
            let fresh = crate::analyze_uncached(second);
            match (cached, fresh) {
                (Ok(cached), Ok(fresh)) => assert_eq!(*cached, fresh, "{second:?}"),
                (Err(_), Err(_)) => {}
                (cached, fresh) => panic!("{second:?}: cached {cached:?}, fresh {fresh:?}"),
            }
        }
    }

    #[test]
    fn statements_split_at_top_level_semicolons() {
        let sql = "/* c */ SELECT ';'; ; -- only a comment\n; SELECT 2 ;";
        let s = shape(sql).unwrap();
        let texts: Vec<&str> = s.statements.iter().map(|r| sql[r.clone()].trim()).collect();
        assert_eq!(texts, ["SELECT ';'", "SELECT 2"]);
        assert!(shape("  ;; -- x").unwrap().statements.is_empty());
    }

    #[test]
    fn normalizing_numbers_the_constants_of_each_statement() {
        let sql = "SELECT * FROM t WHERE id = 1 AND name = 'x'; DELETE FROM t WHERE id = 9";
        let s = shape(sql).unwrap();
        assert_eq!(
            s.normalize(sql, s.statements[0].clone()),
            "SELECT * FROM t WHERE id = $1 AND name = $2"
        );
        assert_eq!(
            s.normalize(sql, s.statements[1].clone()).trim(),
            "DELETE FROM t WHERE id = $1"
        );
    }
}
