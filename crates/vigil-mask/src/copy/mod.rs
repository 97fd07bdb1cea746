//! The `COPY … TO STDOUT` rewriter: masks the rows of CopyData (`d`)
//! messages in text, csv and binary format with the same column plans as
//! DataRows. Every value of a text or csv COPY is in text format; binary
//! COPY values are in binary format, whatever the plan's `binary` says.
//!
//! PostgreSQL sends whole rows per CopyData message (and, in binary, the
//! file header with the first row and the trailer on its own); a row split
//! across messages is reported as malformed rather than guessed at.

mod binary;
mod csv;
#[cfg(test)]
mod tests;
mod text;

use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use crate::detect::Detectors;
use crate::row::{check_frame, patch_message_length, ColumnPlan, Masker, Outcome};
use crate::strategy::MaskKey;
use crate::MaskError;

/// The format options of the COPY statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyFormat {
    /// `FORMAT text`: delimiter (default tab), null string (default `\N`).
    Text { delimiter: u8, null: Vec<u8> },
    /// `FORMAT csv`: delimiter `,`, quote `"`, escape (defaults to quote),
    /// null (default empty), and whether the first line is a header.
    Csv {
        delimiter: u8,
        quote: u8,
        escape: u8,
        null: Vec<u8>,
        header: bool,
    },
    /// `FORMAT binary`.
    Binary,
}

impl CopyFormat {
    /// PostgreSQL's defaults for `FORMAT text`.
    pub fn text() -> CopyFormat {
        CopyFormat::Text {
            delimiter: b'\t',
            null: b"\\N".to_vec(),
        }
    }

    /// PostgreSQL's defaults for `FORMAT csv`.
    pub fn csv(header: bool) -> CopyFormat {
        CopyFormat::Csv {
            delimiter: b',',
            quote: b'"',
            escape: b'"',
            null: Vec::new(),
            header,
        }
    }
}

/// The masking plan for one `COPY … TO STDOUT`.
pub struct CopyPlan {
    format: CopyFormat,
    columns: Vec<ColumnPlan>,
    masker: Masker,
    counts: Vec<u64>,
    /// The first message is still to come (csv header line, binary file header).
    first: bool,
    /// Binary: the trailer has been seen.
    finished: bool,
    decoded: BytesMut,
    masked: BytesMut,
    /// Per column: NULLs are masked too.
    conceal: Vec<bool>,
}

impl std::fmt::Debug for CopyPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyPlan")
            .field("format", &self.format)
            .field("columns", &self.columns)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl CopyPlan {
    pub fn new(
        format: CopyFormat,
        columns: Vec<ColumnPlan>,
        key: Arc<MaskKey>,
        detectors: Arc<Detectors>,
    ) -> CopyPlan {
        let counts = vec![0; columns.len()];
        CopyPlan {
            conceal: vec![false; columns.len()],
            format,
            columns,
            masker: Masker::new(key, detectors),
            counts,
            first: true,
            finished: false,
            decoded: BytesMut::new(),
            masked: BytesMut::new(),
        }
    }

    /// Masks NULLs too in the columns marked `true` (see
    /// [`RowPlan::concealing_nulls`](crate::RowPlan::concealing_nulls)).
    pub fn concealing_nulls(mut self, conceal: Vec<bool>) -> CopyPlan {
        self.conceal = conceal;
        self.conceal.resize(self.columns.len(), false);
        self
    }

    /// Whether a NULL in `column` is masked like a value.
    pub(crate) fn conceals(&self, column: usize) -> bool {
        self.conceal.get(column).copied().unwrap_or(false)
            && matches!(self.columns.get(column), Some(ColumnPlan::Mask(_)))
    }

    /// What a concealed NULL of `column` is masked as.
    pub(crate) fn null_stand_in(&self, column: usize, binary: bool) -> &'static [u8] {
        match self.columns.get(column) {
            Some(ColumnPlan::Mask(mask)) => crate::value::null_stand_in(mask.type_oid, binary),
            _ => b"",
        }
    }

    /// True when no column can change: the caller may forward data untouched.
    pub fn is_clear(&self) -> bool {
        !self.columns.iter().any(|c| self.masker.active(c))
    }

    /// Values masked so far, per column, for the audit record.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Rewrites one CopyData message (`frame` includes the `d` tag and the
    /// length). Appends the original bytes when nothing changed, otherwise a
    /// re-framed message; returns how many values were masked.
    pub fn rewrite(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<usize, MaskError> {
        check_frame(frame, b'd', "CopyData")?;
        let body = &frame[5..];
        let start = out.len();
        out.reserve(frame.len() + 32);
        out.put_u8(b'd');
        out.put_i32(0);
        let first = std::mem::replace(&mut self.first, false);
        // Taken out for the call so the rewriters can borrow the plan mutably.
        let format = std::mem::replace(&mut self.format, CopyFormat::Binary);
        let result = match &format {
            CopyFormat::Csv { header: true, .. } if first => {
                out.extend_from_slice(body);
                Ok(0)
            }
            CopyFormat::Text { delimiter, null } => self.rows(body, out, |plan, body, out| {
                text::row(plan, body, *delimiter, null, out)
            }),
            CopyFormat::Csv {
                delimiter,
                quote,
                escape,
                null,
                ..
            } => {
                let dialect = csv::Dialect {
                    delimiter: *delimiter,
                    quote: *quote,
                    escape: *escape,
                    null,
                };
                self.rows(body, out, |plan, body, out| {
                    csv::row(plan, body, &dialect, out)
                })
            }
            CopyFormat::Binary => binary::message(self, body, first, out),
        };
        self.format = format;
        match result {
            Ok(0) => {
                out.truncate(start);
                out.extend_from_slice(frame);
                Ok(0)
            }
            Ok(masked) => {
                patch_message_length(out, start);
                Ok(masked)
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Text and csv: one row per line, each line parsed by `row`, which
    /// returns the bytes it consumed and the values it masked.
    fn rows(
        &mut self,
        mut body: &[u8],
        out: &mut BytesMut,
        row: impl Fn(&mut CopyPlan, &[u8], &mut BytesMut) -> Result<(usize, usize), MaskError>,
    ) -> Result<usize, MaskError> {
        let mut masked = 0;
        while !body.is_empty() {
            let (used, n) = row(self, body, out)?;
            masked += n;
            body = &body[used..];
        }
        Ok(masked)
    }

    /// Masks one decoded text value of column `column`, appending the
    /// result to `self.masked` (cleared first).
    pub(crate) fn mask_text_field(&mut self, column: usize, value: &[u8]) -> Outcome {
        self.masked.clear();
        let outcome = self
            .masker
            .mask(&self.columns[column], Some(false), value, &mut self.masked);
        if !matches!(outcome, Outcome::Unchanged) {
            self.counts[column] += 1;
        }
        outcome
    }

    pub(crate) fn check_count(&self, got: usize) -> Result<(), MaskError> {
        if got == self.columns.len() {
            Ok(())
        } else {
            Err(MaskError::ColumnCount {
                expected: self.columns.len(),
                got,
            })
        }
    }
}
