//! COPY `FORMAT text` rows: delimiter-separated fields, the null string for
//! NULL, backslash escapes decoded before masking and re-applied after.

use bytes::{BufMut, BytesMut};

use super::CopyPlan;
use crate::row::Outcome;
use crate::MaskError;

/// Rewrites the row at the start of `body`; returns (bytes consumed, values masked).
pub(super) fn row(
    plan: &mut CopyPlan,
    body: &[u8],
    delimiter: u8,
    null: &[u8],
    out: &mut BytesMut,
) -> Result<(usize, usize), MaskError> {
    let mut fields = Vec::with_capacity(plan.columns.len());
    let mut field_start = 0;
    let mut i = 0;
    let end = loop {
        match body.get(i) {
            None => {
                return Err(MaskError::Copy {
                    reason: "text row does not end with a newline",
                })
            }
            Some(b'\\') => i += 2,
            Some(b'\n') => {
                fields.push(field_start..i);
                break i;
            }
            Some(&b) if b == delimiter => {
                fields.push(field_start..i);
                i += 1;
                field_start = i;
            }
            Some(_) => i += 1,
        }
    };
    plan.check_count(fields.len())?;
    let mut masked = 0;
    let mut decoded = std::mem::take(&mut plan.decoded);
    for (column, range) in fields.into_iter().enumerate() {
        if column > 0 {
            out.put_u8(delimiter);
        }
        let raw = &body[range];
        let is_null = raw == null;
        if (is_null && !plan.conceals(column)) || !plan.masker.active(&plan.columns[column]) {
            out.extend_from_slice(raw);
            continue;
        }
        decoded.clear();
        if is_null {
            // Concealed: masked as a stand-in value of its type.
            decoded.extend_from_slice(plan.null_stand_in(column, false));
        } else if let Err(e) = decode(raw, &mut decoded) {
            plan.decoded = decoded;
            return Err(e);
        }
        match plan.mask_text_field(column, &decoded) {
            Outcome::Unchanged => out.extend_from_slice(raw),
            Outcome::Null => {
                out.extend_from_slice(null);
                masked += 1;
            }
            Outcome::Value => {
                encode(&plan.masked, delimiter, out);
                masked += 1;
            }
        }
    }
    plan.decoded = decoded;
    out.put_u8(b'\n');
    Ok((end + 1, masked))
}

/// Decodes COPY text escapes: `\b \f \n \r \t \v`, octal `\ddd`, hex
/// `\xhh`, and `\c` for any other character c.
pub(super) fn decode(raw: &[u8], out: &mut BytesMut) -> Result<(), MaskError> {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        if b != b'\\' {
            out.put_u8(b);
            continue;
        }
        let Some(&c) = raw.get(i) else {
            return Err(MaskError::Copy {
                reason: "text field ends with a backslash",
            });
        };
        i += 1;
        let decoded = match c {
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 11,
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                v as u8
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u8;
                for _ in 0..2 {
                    match raw.get(i).and_then(|&d| (d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d as u8;
                            i += 1;
                        }
                        None => break,
                    }
                }
                v
            }
            other => other,
        };
        out.put_u8(decoded);
    }
    Ok(())
}

/// Escapes a value for COPY text, as PostgreSQL's own output does.
pub(super) fn encode(value: &[u8], delimiter: u8, out: &mut BytesMut) {
    out.reserve(value.len());
    for &b in value {
        let escaped = match b {
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            8 => b'b',
            12 => b'f',
            11 => b'v',
            _ if b == delimiter => b,
            _ => {
                out.put_u8(b);
                continue;
            }
        };
        out.put_u8(b'\\');
        out.put_u8(escaped);
    }
}
