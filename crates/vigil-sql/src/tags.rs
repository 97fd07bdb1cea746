//! sqlcommenter intent tags: `/*key='value',key2='value2'*/` comments, with
//! keys and values URL-encoded and `'` escaped as `\'` inside values.
//!
//! Comments are found with PostgreSQL's own scanner, so a comment-like string
//! inside a literal is never mistaken for one. A comment that is not entirely
//! well-formed tags contributes nothing: a half-read tag is worse than none.

use std::collections::BTreeMap;

use pg_query::protobuf::Token;

/// Tags from every sqlcommenter comment in `sql`; a later comment's value for
/// a key replaces an earlier one's.
pub(crate) fn tags(sql: &str) -> BTreeMap<String, String> {
    // Most statements carry no block comment; skip the scan for them.
    if !sql.contains("/*") {
        return BTreeMap::new();
    }
    let Ok(tokens) = crate::lexing::scan(sql) else {
        return BTreeMap::new();
    };
    from_comments(
        tokens
            .iter()
            .filter(|t| t.token == Token::CComment as i32)
            .filter_map(|token| {
                let start = usize::try_from(token.start).ok()?;
                let end = usize::try_from(token.end).ok()?;
                sql.get(start..end)
            }),
    )
}

/// Tags from these `/* … */` comments, in text order.
pub(crate) fn from_comments<'a>(
    comments: impl Iterator<Item = &'a str>,
) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for comment in comments {
        if let Some(pairs) = parse_comment(comment) {
            tags.extend(pairs);
        }
    }
    tags
}

/// The pairs of one `/* … */` comment, or `None` unless all of it is pairs.
fn parse_comment(comment: &str) -> Option<Vec<(String, String)>> {
    let body = comment.strip_prefix("/*")?.strip_suffix("*/")?.trim();
    if body.is_empty() {
        return None;
    }
    let mut pairs = Vec::new();
    let mut rest = body;
    loop {
        let (key, after_key) = rest.split_once('=')?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(is_key_char) {
            return None;
        }
        let (value, after_value) = quoted(after_key.trim_start())?;
        pairs.push((url_decode(key)?, url_decode(&value)?));
        let after_value = after_value.trim_start();
        if after_value.is_empty() {
            return Some(pairs);
        }
        rest = after_value.strip_prefix(',')?;
    }
}

/// What `encodeURIComponent` leaves unescaped (but `'`), and `%` escapes.
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*()%".contains(c)
}

/// A `'…'` value with `\`-escapes, and the text after its closing quote.
fn quoted(text: &str) -> Option<(String, &str)> {
    let inner = text.strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?.1),
            '\'' => return Some((value, &inner[i + 1..])),
            c => value.push(c),
        }
    }
    None
}

/// Percent-decoding as `encodeURIComponent` encodes; `None` for a broken
/// escape or bytes that are not UTF-8.
fn url_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag_list(sql: &str) -> Vec<(String, String)> {
        tags(sql).into_iter().collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn trailing_sqlcommenter_comment() {
        let sql = "SELECT * FROM t /*action='list',ticket='OPS-12',traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/";
        assert_eq!(
            tag_list(sql),
            pairs(&[
                ("action", "list"),
                ("ticket", "OPS-12"),
                (
                    "traceparent",
                    "00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01"
                ),
            ])
        );
    }

    #[test]
    fn values_are_url_decoded_and_unescaped() {
        let sql = r"SELECT 1 /*route='%2Fparam%2A%27first',reason='it\'s%20urgent',db%20driver='psycopg%C3%A9'*/";
        assert_eq!(
            tag_list(sql),
            pairs(&[
                ("db driver", "psycopgé"),
                ("reason", "it's urgent"),
                ("route", "/param*'first"),
            ])
        );
    }

    #[test]
    fn spaces_around_pairs_and_leading_comments() {
        let sql = "/* ticket = 'OPS-1' , owner='ana' */ SELECT 1";
        assert_eq!(
            tag_list(sql),
            pairs(&[("owner", "ana"), ("ticket", "OPS-1")])
        );
    }

    #[test]
    fn later_comments_override_earlier_ones() {
        let sql = "/*ticket='A'*/ SELECT 1; SELECT 2 /*ticket='B',x='1'*/";
        assert_eq!(tag_list(sql), pairs(&[("ticket", "B"), ("x", "1")]));
    }

    #[test]
    fn ordinary_and_malformed_comments_give_no_tags() {
        for sql in [
            "SELECT 1 /* just a note */",
            "SELECT 1 /* ticket=OPS-12 */",
            "SELECT 1 /* ticket='OPS-12 */",
            "SELECT 1 /* ticket='a' junk */",
            "SELECT 1 /* ticket='a',, b='c' */",
            "SELECT 1 /* ='a' */",
            "SELECT 1 /* ticket='%zz' */",
            "SELECT 1 /* ticket='%ff' */",
            "SELECT 1 /**/",
            "SELECT 1 -- ticket='OPS-12'",
        ] {
            assert!(tags(sql).is_empty(), "{sql}");
        }
    }

    #[test]
    fn comment_lookalikes_inside_literals_are_not_comments() {
        assert!(tags("SELECT '/*ticket=''x''*/'").is_empty());
        assert!(tags("SELECT $$ /*ticket='x'*/ $$").is_empty());
        assert!(tags(r#"SELECT 1 AS "/*ticket='x'*/""#).is_empty());
    }

    #[test]
    fn a_bad_comment_does_not_spoil_a_good_one() {
        let sql = "SELECT 1 /* note */ /*ticket='OPS-3'*/ /* ticket='x' y */";
        assert_eq!(tag_list(sql), pairs(&[("ticket", "OPS-3")]));
    }
}
