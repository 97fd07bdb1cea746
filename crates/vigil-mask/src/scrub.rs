//! Scrubbing ErrorResponse and NoticeResponse messages: PostgreSQL echoes
//! row values in DETAIL (`Key (email)=(jane@…) already exists.`, `Failing
//! row contains (…).`), and user text can carry personal data into any
//! message field. Values of masked columns are replaced, then the content
//! detectors run over the free-text fields.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

use crate::detect::{Detectors, Span};
use crate::row::{check_frame, patch_message_length};
use crate::strategy::{MaskKey, REDACTED};
use crate::MaskError;

/// Fields the detectors scan: message, detail, hint, context, internal query.
const SCANNED: &[u8] = b"MDHWq";

/// Whether a column is masked: `(schema, table, column)`; column `"*"` asks
/// whether the table has any masked column.
pub type MaskedColumn<'a> = dyn Fn(Option<&str>, Option<&str>, &str) -> bool + 'a;

/// Rewrites one ErrorResponse (`E`) or NoticeResponse (`N`) message
/// (`frame` includes tag and length). Appends the original bytes when
/// nothing changed; returns how many values were scrubbed.
pub fn scrub_report(
    frame: &[u8],
    masked: &MaskedColumn<'_>,
    detectors: &Detectors,
    key: &MaskKey,
    out: &mut BytesMut,
) -> Result<usize, MaskError> {
    let tag = *frame.first().unwrap_or(&b'E');
    let tag = if tag == b'N' { b'N' } else { b'E' };
    check_frame(frame, tag, "ErrorResponse")?;
    let fields = parse_fields(&frame[5..])?;
    let field = |code: u8| {
        fields
            .iter()
            .find(|(c, _)| *c == code)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    };
    let (schema, table) = (field(b's'), field(b't'));
    let is_masked = |column: &str| masked(schema, table, column);

    let mut scrubbed = 0;
    let mut rewritten: Vec<(u8, Cow<'_, [u8]>)> = Vec::with_capacity(fields.len());
    let mut spans: Vec<Span> = Vec::new();
    for &(code, value) in &fields {
        let mut text: Cow<'_, [u8]> = Cow::Borrowed(value);
        if code == b'D' {
            if let Some((detail, n)) = std::str::from_utf8(value)
                .ok()
                .and_then(|d| scrub_detail(d, &is_masked))
            {
                text = Cow::Owned(detail.into_bytes());
                scrubbed += n;
            }
        }
        if SCANNED.contains(&code) {
            if let Ok(s) = std::str::from_utf8(&text) {
                detectors.find_into(s, &mut spans);
            }
            if !spans.is_empty() {
                let mut masked_text = BytesMut::new();
                detectors.mask_spans(&text, &spans, key, &mut masked_text);
                scrubbed += spans.len();
                spans.clear();
                // A detector's output never contains NUL; keep the C-string valid anyway.
                let mut masked_text = masked_text.to_vec();
                masked_text.retain(|&b| b != 0);
                text = Cow::Owned(masked_text);
            }
        }
        rewritten.push((code, text));
    }
    if scrubbed == 0 {
        out.extend_from_slice(frame);
        return Ok(0);
    }
    let start = out.len();
    out.put_u8(tag);
    out.put_i32(0);
    for (code, text) in rewritten {
        out.put_u8(code);
        out.extend_from_slice(&text);
        out.put_u8(0);
    }
    out.put_u8(0);
    patch_message_length(out, start);
    Ok(scrubbed)
}

fn parse_fields(mut body: &[u8]) -> Result<Vec<(u8, &[u8])>, MaskError> {
    let mut fields = Vec::new();
    loop {
        match body {
            [0] => return Ok(fields),
            [] | [0, ..] => {
                return Err(MaskError::Report {
                    reason: "fields do not end with a single terminator",
                })
            }
            [code, rest @ ..] => {
                let end = memchr::memchr(0, rest).ok_or(MaskError::Report {
                    reason: "field value is not NUL-terminated",
                })?;
                fields.push((*code, &rest[..end]));
                body = &rest[end + 1..];
            }
        }
    }
}

const FAILING_ROW: &str = "Failing row contains (";

/// How a key's value tuple can end, after the closing parenthesis.
const KEY_ENDINGS: &[&str] = &[
    ") conflicts with existing key (",
    ") already exists.",
    ") is not present in table ",
    ") is still referenced from table ",
];

/// The DETAIL with masked columns' values replaced, and how many were.
fn scrub_detail(detail: &str, is_masked: &dyn Fn(&str) -> bool) -> Option<(String, usize)> {
    if detail.starts_with(FAILING_ROW) {
        return is_masked("*").then(|| (format!("{FAILING_ROW}****)."), 1));
    }
    let rest = detail.strip_prefix("Key ")?;
    let (scrubbed, n) = scrub_key(rest, KEY_ENDINGS, is_masked)?;
    (n > 0).then(|| (format!("Key {scrubbed}"), n))
}

/// `(cols)=(vals)<ending>…`: the values of masked columns replaced.
fn scrub_key(
    text: &str,
    endings: &[&str],
    is_masked: &dyn Fn(&str) -> bool,
) -> Option<(String, usize)> {
    let inner = text.strip_prefix('(')?;
    let split = inner.find(")=(")?;
    let columns: Vec<&str> = inner[..split].split(", ").collect();
    let values_and_rest = &inner[split + 3..];
    let (values_end, ending) = endings
        .iter()
        .filter_map(|ending| {
            let at = if ending.starts_with(") conflicts") {
                values_and_rest.find(ending)
            } else {
                values_and_rest.rfind(ending)
            };
            at.map(|at| (at, *ending))
        })
        .min_by_key(|(at, _)| *at)?;
    let values = &values_and_rest[..values_end];
    let mut after = values_and_rest[values_end + ending.len()..].to_owned();
    let mut count = 0;
    if ending.starts_with(") conflicts") {
        // The existing key: `(cols)=(vals).`
        if let Some((second, n)) = scrub_key(&format!("({after}"), &[")."], is_masked) {
            after = second[1..].to_owned();
            count += n;
        }
    }
    let masked: Vec<bool> = columns
        .iter()
        .map(|c| is_masked(c.trim_matches('"')))
        .collect();
    let mut out = format!("({})=(", &inner[..split]);
    if masked.iter().any(|&m| m) {
        let parts: Vec<&str> = values.split(", ").collect();
        if parts.len() == columns.len() {
            let replaced: Vec<&str> = parts
                .iter()
                .zip(&masked)
                .map(|(v, &m)| {
                    if m {
                        count += 1;
                        std::str::from_utf8(REDACTED).expect("ASCII")
                    } else {
                        v
                    }
                })
                .collect();
            out.push_str(&replaced.join(", "));
        } else {
            // Values with ", " inside cannot be split reliably: hide them all.
            count += 1;
            out.push_str("****");
        }
    } else {
        out.push_str(values);
    }
    out.push_str(ending);
    out.push_str(&after);
    Some((out, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{DetectorKind, DetectorSpec};
    use crate::strategy::Strategy;

    fn report(tag: u8, fields: &[(u8, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (code, value) in fields {
            body.push(*code);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut frame = vec![tag];
        frame.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        frame.extend_from_slice(&body);
        frame
    }

    fn fields(frame: &[u8]) -> Vec<(u8, String)> {
        assert_eq!(
            u32::from_be_bytes(frame[1..5].try_into().unwrap()) as usize,
            frame.len() - 1
        );
        parse_fields(&frame[5..])
            .unwrap()
            .into_iter()
            .map(|(c, v)| (c, String::from_utf8(v.to_vec()).unwrap()))
            .collect()
    }

    fn scrub(frame: &[u8]) -> (Vec<(u8, String)>, usize) {
        let detectors = Detectors::new(vec![DetectorSpec::builtin(
            DetectorKind::Email,
            Strategy::EmailDomain,
        )])
        .unwrap();
        let key = MaskKey::new(&[1; 32]).unwrap();
        let masked = |schema: Option<&str>, table: Option<&str>, column: &str| {
            schema == Some("public")
                && table == Some("users")
                && matches!(column, "email" | "ssn" | "*")
        };
        let mut out = BytesMut::new();
        let n = scrub_report(frame, &masked, &detectors, &key, &mut out).unwrap();
        if n == 0 {
            assert_eq!(&out[..], frame);
        }
        (fields(&out), n)
    }

    fn detail_of(fields: &[(u8, String)]) -> &str {
        &fields.iter().find(|(c, _)| *c == b'D').unwrap().1
    }

    #[test]
    fn unique_violation_detail() {
        let frame = report(
            b'E',
            &[
                (b'S', "ERROR"),
                (b'C', "23505"),
                (
                    b'M',
                    "duplicate key value violates unique constraint \"users_email_key\"",
                ),
                (b'D', "Key (org, email)=(acme, x, y) already exists."),
                (b's', "public"),
                (b't', "users"),
            ],
        );
        // Three values for two columns: the tuple cannot be split, all hidden.
        let (f, n) = scrub(&frame);
        assert_eq!(detail_of(&f), "Key (org, email)=(****) already exists.");
        assert_eq!(n, 1);

        let frame = report(
            b'E',
            &[
                (
                    b'D',
                    "Key (org, email)=(acme, jane@example.com) already exists.",
                ),
                (b's', "public"),
                (b't', "users"),
            ],
        );
        let (f, n) = scrub(&frame);
        assert_eq!(
            detail_of(&f),
            "Key (org, email)=(acme, ****) already exists."
        );
        assert_eq!(n, 1);
    }

    #[test]
    fn foreign_key_and_exclusion_details() {
        let frame = report(
            b'E',
            &[
                (
                    b'D',
                    "Key (ssn)=(123-45-6789) is not present in table \"people\".",
                ),
                (b's', "public"),
                (b't', "users"),
            ],
        );
        assert_eq!(
            detail_of(&scrub(&frame).0),
            "Key (ssn)=(****) is not present in table \"people\"."
        );
        let frame = report(
            b'E',
            &[
                (b'D', "Key (ssn)=(1) conflicts with existing key (ssn)=(2)."),
                (b's', "public"),
                (b't', "users"),
            ],
        );
        let (f, n) = scrub(&frame);
        assert_eq!(
            detail_of(&f),
            "Key (ssn)=(****) conflicts with existing key (ssn)=(****)."
        );
        assert_eq!(n, 2);
    }

    #[test]
    fn failing_row_is_hidden_when_the_table_has_masked_columns() {
        let detail = "Failing row contains (1, null, secret).";
        let frame = report(b'E', &[(b'D', detail), (b's', "public"), (b't', "users")]);
        assert_eq!(detail_of(&scrub(&frame).0), "Failing row contains (****).");
        let frame = report(b'E', &[(b'D', detail), (b's', "public"), (b't', "orders")]);
        assert_eq!(scrub(&frame).1, 0);
    }

    #[test]
    fn detectors_run_over_text_fields() {
        let frame = report(
            b'N',
            &[
                (b'S', "NOTICE"),
                (b'M', "sent mail to jane@example.com"),
                (b'H', "ask bob@example.org"),
                (b'C', "00000"),
            ],
        );
        let (f, n) = scrub(&frame);
        assert_eq!(n, 2);
        assert_eq!(f[1].1, "sent mail to ****@example.com");
        assert_eq!(f[2].1, "ask ****@example.org");
        assert_eq!(f[3].1, "00000");
    }

    #[test]
    fn malformed_reports_are_errors() {
        let detectors = Detectors::none();
        let key = MaskKey::new(&[1; 32]).unwrap();
        let never = |_: Option<&str>, _: Option<&str>, _: &str| false;
        let mut out = BytesMut::new();
        for bad in [
            vec![b'E', 0, 0, 0, 4],
            vec![b'E', 0, 0, 0, 7, b'M', b'x', 0],
            vec![b'E', 0, 0, 0, 6, b'M', b'x'],
            vec![b'X', 0, 0, 0, 5, 0],
        ] {
            assert!(scrub_report(&bad, &never, &detectors, &key, &mut out).is_err());
        }
        assert!(out.is_empty());
    }
}
