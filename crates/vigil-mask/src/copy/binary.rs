//! COPY `FORMAT binary`: the 19-byte file header (plus extension) ahead of
//! the first tuple, then per tuple an int16 field count and per field an
//! int32 length (-1 for NULL) and the value in binary format; the trailer is
//! an int16 -1.

use bytes::{BufMut, BytesMut};

use super::CopyPlan;
use crate::row::{patch_value_length, read_i16, read_i32, Outcome};
use crate::MaskError;

pub(crate) const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

fn malformed(reason: &'static str) -> MaskError {
    MaskError::Copy { reason }
}

/// Rewrites one message body into `out`; returns the values masked.
pub(super) fn message(
    plan: &mut CopyPlan,
    body: &[u8],
    first: bool,
    out: &mut BytesMut,
) -> Result<usize, MaskError> {
    let mut at = 0;
    if first {
        if body.len() < 19 || &body[..11] != SIGNATURE {
            return Err(malformed(
                "binary COPY does not start with the PGCOPY header",
            ));
        }
        let extension = usize::try_from(read_i32(body, 15))
            .map_err(|_| malformed("negative header extension length"))?;
        at = 19usize
            .checked_add(extension)
            .filter(|&end| end <= body.len())
            .ok_or(malformed("header extension past the end of the message"))?;
        out.extend_from_slice(&body[..at]);
    }
    let mut masked = 0;
    while at < body.len() {
        if plan.finished {
            return Err(malformed("data after the binary COPY trailer"));
        }
        if body.len() < at + 2 {
            return Err(malformed("truncated tuple field count"));
        }
        let count = read_i16(body, at);
        out.extend_from_slice(&body[at..at + 2]);
        at += 2;
        if count == -1 {
            plan.finished = true;
            continue;
        }
        plan.check_count(usize::try_from(count).unwrap_or(usize::MAX))?;
        for column in 0..plan.columns.len() {
            if body.len() < at + 4 {
                return Err(malformed("truncated field length"));
            }
            let length = read_i32(body, at);
            let value_start = at + 4;
            if length == -1 && !plan.conceals(column) {
                out.extend_from_slice(&body[at..value_start]);
                at = value_start;
                continue;
            }
            // A concealed NULL is masked as a stand-in value of its type.
            let (end, value) = if length == -1 {
                (value_start, plan.null_stand_in(column, true))
            } else {
                let end = usize::try_from(length)
                    .ok()
                    .and_then(|l| value_start.checked_add(l))
                    .filter(|&end| end <= body.len())
                    .ok_or(MaskError::ValueLength {
                        column,
                        length: i64::from(length),
                    })?;
                (end, &body[value_start..end])
            };
            let length_at = out.len();
            out.put_i32(0);
            let outcome = plan
                .masker
                .mask(&plan.columns[column], Some(true), value, out);
            match outcome {
                Outcome::Unchanged => {
                    out.truncate(length_at);
                    out.extend_from_slice(&body[at..end]);
                }
                _ => {
                    patch_value_length(out, length_at, &outcome);
                    plan.counts[column] += 1;
                    masked += 1;
                }
            }
            at = end;
        }
    }
    Ok(masked)
}
