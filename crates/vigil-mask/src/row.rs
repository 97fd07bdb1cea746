//! The DataRow rewriter, the hot path: per result, a [`RowPlan`] built from
//! the RowDescription says what happens to each column; per row, values that
//! change are rewritten in place into the output buffer and everything else is
//! copied through in bulk.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use crate::detect::{Detectors, Span};
use crate::strategy::{mask_text, MaskKey, Strategy};
use crate::value::{is_text_like, mask_value, Masked};
use crate::MaskError;

/// A column masked whatever it contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnMask {
    pub strategy: Strategy,
    pub type_oid: u32,
    /// Format code 1 in the RowDescription (or COPY BINARY).
    pub binary: bool,
}

/// What happens to one column of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnPlan {
    /// Passed through untouched.
    Clear,
    /// Every non-NULL value masked.
    Mask(ColumnMask),
    /// Text-like values scanned by the content detectors; detected spans are
    /// masked with each detector's strategy. Other types pass through.
    Scan { type_oid: u32, binary: bool },
}

/// What masking one value produced.
pub(crate) enum Outcome {
    Unchanged,
    Value,
    Null,
}

/// The key, detectors and scratch space every rewriter shares.
pub(crate) struct Masker {
    pub(crate) key: Arc<MaskKey>,
    pub(crate) detectors: Arc<Detectors>,
    spans: Vec<Span>,
}

impl Masker {
    pub(crate) fn new(key: Arc<MaskKey>, detectors: Arc<Detectors>) -> Masker {
        Masker {
            key,
            detectors,
            spans: Vec::new(),
        }
    }

    /// Whether a plan can ever change a value.
    pub(crate) fn active(&self, plan: &ColumnPlan) -> bool {
        match plan {
            ColumnPlan::Clear => false,
            ColumnPlan::Mask(_) => true,
            ColumnPlan::Scan { type_oid, .. } => {
                is_text_like(*type_oid) && !self.detectors.is_empty()
            }
        }
    }

    /// Runs the detectors; true when something must be masked, with the
    /// spans kept for [`Masker::write_scanned`]. Invalid UTF-8 is not scanned.
    pub(crate) fn scan(&mut self, value: &[u8]) -> bool {
        match std::str::from_utf8(value) {
            Ok(text) => {
                self.detectors.find_into(text, &mut self.spans);
                !self.spans.is_empty()
            }
            Err(_) => false,
        }
    }

    pub(crate) fn write_scanned(&self, value: &[u8], out: &mut BytesMut) {
        self.detectors
            .mask_spans(value, &self.spans, &self.key, out);
    }

    /// Masks a non-NULL value under `plan`, appending the result to `out`.
    /// `binary` overrides the column's format (COPY decides it per stream).
    pub(crate) fn mask(
        &mut self,
        plan: &ColumnPlan,
        binary: Option<bool>,
        value: &[u8],
        out: &mut BytesMut,
    ) -> Outcome {
        match plan {
            ColumnPlan::Clear => Outcome::Unchanged,
            ColumnPlan::Mask(mask) => {
                match mask_value(
                    mask.strategy,
                    &self.key,
                    mask.type_oid,
                    binary.unwrap_or(mask.binary),
                    value,
                    out,
                ) {
                    Masked::Value => Outcome::Value,
                    Masked::Null => Outcome::Null,
                }
            }
            ColumnPlan::Scan { .. } => {
                if self.active(plan) && self.scan(value) {
                    self.write_scanned(value, out);
                    Outcome::Value
                } else {
                    Outcome::Unchanged
                }
            }
        }
    }
}

/// A column plan resolved for the hot loop.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// Clear, or a scan that can never find anything.
    Pass,
    /// A text-like column: the text rule, no type dispatch.
    Text(Strategy),
    /// Any other type: [`mask_value`]'s rules.
    Typed,
    Scan,
}

/// The masking plan for one result, built once from its RowDescription.
pub struct RowPlan {
    columns: Vec<ColumnPlan>,
    actions: Vec<Action>,
    masker: Masker,
    counts: Vec<u64>,
    clear: bool,
    /// Per column: NULLs are masked too.
    conceal: Vec<bool>,
}

impl std::fmt::Debug for RowPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowPlan")
            .field("columns", &self.columns)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

pub(crate) fn read_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

pub(crate) fn read_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// Checks a whole message's tag and length; returns the body range end.
pub(crate) fn check_frame(frame: &[u8], tag: u8, message: &'static str) -> Result<(), MaskError> {
    if frame.len() < 5 {
        return Err(MaskError::Truncated {
            message,
            needed: 5,
            had: frame.len(),
        });
    }
    if frame[0] != tag {
        return Err(MaskError::UnexpectedTag {
            expected: tag as char,
            got: frame[0],
        });
    }
    let declared = read_i32(frame, 1);
    let needed = usize::try_from(declared).unwrap_or(0).saturating_add(1);
    if declared < 4 || needed > frame.len() {
        return Err(MaskError::Truncated {
            message,
            needed: needed.max(5),
            had: frame.len(),
        });
    }
    if needed < frame.len() {
        return Err(MaskError::TrailingBytes {
            extra: frame.len() - needed,
        });
    }
    Ok(())
}

/// Rewrites the message length at `start + 1` to cover everything appended
/// since `start`.
pub(crate) fn patch_message_length(out: &mut BytesMut, start: usize) {
    let len = (out.len() - start - 1) as u32;
    out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

/// Rewrites a value's length at `at` to cover everything appended after it.
pub(crate) fn patch_value_length(out: &mut BytesMut, at: usize, outcome: &Outcome) {
    let len = match outcome {
        Outcome::Null => -1i32,
        _ => (out.len() - at - 4) as i32,
    };
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

impl RowPlan {
    pub fn new(columns: Vec<ColumnPlan>, key: Arc<MaskKey>, detectors: Arc<Detectors>) -> RowPlan {
        let masker = Masker::new(key, detectors);
        let clear = !columns.iter().any(|c| masker.active(c));
        let counts = vec![0; columns.len()];
        let actions = columns
            .iter()
            .map(|plan| match plan {
                _ if !masker.active(plan) => Action::Pass,
                ColumnPlan::Mask(mask)
                    if is_text_like(mask.type_oid) && mask.strategy != Strategy::Null =>
                {
                    Action::Text(mask.strategy)
                }
                ColumnPlan::Mask(_) => Action::Typed,
                _ => Action::Scan,
            })
            .collect();
        RowPlan {
            conceal: vec![false; columns.len()],
            columns,
            actions,
            masker,
            counts,
            clear,
        }
    }

    /// Masks NULLs too in the columns marked `true` (of those masked), so a
    /// value computed from a masked column cannot tell NULL from non-NULL
    /// (`nullif(ssn, '…')` would otherwise answer an equality test).
    pub fn concealing_nulls(mut self, conceal: Vec<bool>) -> RowPlan {
        self.conceal = conceal;
        self.conceal.resize(self.columns.len(), false);
        self
    }

    /// True when no column can change: the caller may forward rows untouched.
    pub fn is_clear(&self) -> bool {
        self.clear
    }

    pub fn columns(&self) -> &[ColumnPlan] {
        &self.columns
    }

    /// Values masked so far, per column, for the audit record.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Rewrites one DataRow message (`frame` includes the `D` tag and the
    /// length). Appends the original bytes when nothing changed, otherwise a
    /// re-framed row; returns how many values were masked in this row.
    pub fn rewrite(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<usize, MaskError> {
        let start = out.len();
        let result = self.rewrite_into(frame, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn rewrite_into(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<usize, MaskError> {
        check_frame(frame, b'D', "DataRow")?;
        if frame.len() < 7 {
            return Err(MaskError::Truncated {
                message: "DataRow",
                needed: 7,
                had: frame.len(),
            });
        }
        let count = read_i16(frame, 5);
        if usize::try_from(count).ok() != Some(self.columns.len()) {
            return Err(MaskError::ColumnCount {
                expected: self.columns.len(),
                got: count.max(0) as usize,
            });
        }
        let start = out.len();
        // Bytes of `frame` before `copied` are already in `out` (once any
        // value changed); clear runs are copied in one go at the next change.
        let mut copied = 0;
        let mut masked = 0;
        let mut at = 7;
        for (column, (plan, action)) in self.columns.iter().zip(&self.actions).enumerate() {
            if frame.len() < at + 4 {
                return Err(MaskError::ValueLength { column, length: -2 });
            }
            let length = read_i32(frame, at);
            let value_start = at + 4;
            let value = if length == -1 {
                None
            } else {
                let end = usize::try_from(length)
                    .ok()
                    .and_then(|l| value_start.checked_add(l))
                    .filter(|&end| end <= frame.len())
                    .ok_or(MaskError::ValueLength {
                        column,
                        length: i64::from(length),
                    })?;
                Some(&frame[value_start..end])
            };
            let length_at = at;
            at = value.map_or(value_start, |v| value_start + v.len());
            let value = match (value, plan) {
                (Some(value), _) => value,
                (None, ColumnPlan::Mask(mask)) if self.conceal[column] => {
                    crate::value::null_stand_in(mask.type_oid, mask.binary)
                }
                (None, _) => continue,
            };
            let write = match action {
                Action::Pass => false,
                Action::Scan => self.masker.scan(value),
                Action::Text(_) | Action::Typed => true,
            };
            if !write {
                continue;
            }
            if copied == 0 {
                out.reserve(frame.len() + 32);
            }
            out.extend_from_slice(&frame[copied..length_at]);
            let length_out = out.len();
            out.put_i32(0);
            let outcome = match action {
                Action::Text(strategy) => {
                    mask_text(*strategy, &self.masker.key, value, out);
                    Outcome::Value
                }
                Action::Typed => self.masker.mask(plan, None, value, out),
                Action::Scan | Action::Pass => {
                    self.masker.write_scanned(value, out);
                    Outcome::Value
                }
            };
            patch_value_length(out, length_out, &outcome);
            copied = at;
            masked += 1;
            self.counts[column] += 1;
        }
        if at != frame.len() {
            return Err(MaskError::TrailingBytes {
                extra: frame.len() - at,
            });
        }
        if copied == 0 {
            out.extend_from_slice(frame);
        } else {
            out.extend_from_slice(&frame[copied..]);
            patch_message_length(out, start);
        }
        Ok(masked)
    }
}

#[cfg(test)]
mod tests;
