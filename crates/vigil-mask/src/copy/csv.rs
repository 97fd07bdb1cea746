//! COPY `FORMAT csv` rows: quoted fields with doubled quotes (or the escape
//! character), the unquoted null string for NULL, a quoted empty string for
//! an empty value; masked values are quoted when they need it.

use bytes::{BufMut, BytesMut};

use super::CopyPlan;
use crate::row::Outcome;
use crate::MaskError;

pub(super) struct Dialect<'a> {
    pub(super) delimiter: u8,
    pub(super) quote: u8,
    pub(super) escape: u8,
    pub(super) null: &'a [u8],
}

/// Rewrites the row at the start of `body`; returns (bytes consumed, values masked).
pub(super) fn row(
    plan: &mut CopyPlan,
    body: &[u8],
    dialect: &Dialect<'_>,
    out: &mut BytesMut,
) -> Result<(usize, usize), MaskError> {
    // (raw range, quoted)
    let mut fields = Vec::with_capacity(plan.columns.len());
    let mut i = 0;
    let end = loop {
        let start = i;
        let quoted = body.get(i) == Some(&dialect.quote);
        if quoted {
            i += 1;
            loop {
                match body.get(i) {
                    None => {
                        return Err(MaskError::Copy {
                            reason: "csv quoted field is not closed",
                        })
                    }
                    Some(&b) if b == dialect.escape && body.get(i + 1) == Some(&dialect.quote) => {
                        i += 2
                    }
                    Some(&b)
                        if b == dialect.escape
                            && dialect.escape != dialect.quote
                            && body.get(i + 1) == Some(&dialect.escape) =>
                    {
                        i += 2
                    }
                    Some(&b) if b == dialect.quote => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
        } else {
            while let Some(&b) = body.get(i) {
                if b == dialect.delimiter || b == b'\n' {
                    break;
                }
                i += 1;
            }
        }
        fields.push((start..i, quoted));
        match body.get(i) {
            Some(&b) if b == dialect.delimiter => i += 1,
            Some(b'\n') => break i,
            Some(_) => {
                return Err(MaskError::Copy {
                    reason: "csv closing quote not followed by a delimiter",
                })
            }
            None => {
                return Err(MaskError::Copy {
                    reason: "csv row does not end with a newline",
                })
            }
        }
    };
    plan.check_count(fields.len())?;
    let mut masked = 0;
    let mut decoded = std::mem::take(&mut plan.decoded);
    for (column, (range, quoted)) in fields.into_iter().enumerate() {
        if column > 0 {
            out.put_u8(dialect.delimiter);
        }
        let raw = &body[range];
        let is_null = !quoted && raw == dialect.null;
        if (is_null && !plan.conceals(column)) || !plan.masker.active(&plan.columns[column]) {
            out.extend_from_slice(raw);
            continue;
        }
        decoded.clear();
        if is_null {
            // Concealed: masked as a stand-in value of its type.
            decoded.extend_from_slice(plan.null_stand_in(column, false));
        } else if quoted {
            unquote(&raw[1..raw.len() - 1], dialect, &mut decoded);
        } else {
            decoded.extend_from_slice(raw);
        }
        match plan.mask_text_field(column, &decoded) {
            Outcome::Unchanged => out.extend_from_slice(raw),
            Outcome::Null => {
                out.extend_from_slice(dialect.null);
                masked += 1;
            }
            Outcome::Value => {
                encode(&plan.masked, dialect, out);
                masked += 1;
            }
        }
    }
    plan.decoded = decoded;
    out.put_u8(b'\n');
    Ok((end + 1, masked))
}

fn unquote(inner: &[u8], dialect: &Dialect<'_>, out: &mut BytesMut) {
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        if b == dialect.escape
            && matches!(inner.get(i + 1), Some(&n) if n == dialect.quote || n == dialect.escape)
        {
            out.put_u8(inner[i + 1]);
            i += 2;
        } else {
            out.put_u8(b);
            i += 1;
        }
    }
}

/// Writes a value, quoted when it would otherwise be misread.
pub(super) fn encode(value: &[u8], dialect: &Dialect<'_>, out: &mut BytesMut) {
    let needs_quotes = value.is_empty()
        || value == dialect.null
        || value == b"\\."
        || value.iter().any(|&b| {
            b == dialect.delimiter
                || b == dialect.quote
                || b == dialect.escape
                || b == b'\n'
                || b == b'\r'
        });
    if !needs_quotes {
        out.extend_from_slice(value);
        return;
    }
    out.reserve(value.len() + 2);
    out.put_u8(dialect.quote);
    for &b in value {
        if b == dialect.quote || b == dialect.escape {
            out.put_u8(dialect.escape);
        }
        out.put_u8(b);
    }
    out.put_u8(dialect.quote);
}
