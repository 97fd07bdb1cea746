//! The one error type of the masking layer: frames the rewriters could not
//! parse and detector specifications that do not compile.

use thiserror::Error;

/// Why a frame could not be rewritten or a detector could not be built.
///
/// A rewrite error means the frame does not have the shape the protocol
/// promises; the proxy should end the session rather than forward bytes it
/// could not inspect.
#[derive(Debug, Error, PartialEq)]
pub enum MaskError {
    /// The frame is shorter than its header or its declared length.
    #[error("{message} frame truncated: needed {needed} bytes, had {had}")]
    Truncated {
        message: &'static str,
        needed: usize,
        had: usize,
    },
    /// The frame's tag is not the message this rewriter handles.
    #[error("expected a '{expected}' message, got tag {got:#04x}")]
    UnexpectedTag { expected: char, got: u8 },
    /// The row carries a different number of values than the plan has columns.
    #[error("row has {got} values, plan has {expected} columns")]
    ColumnCount { expected: usize, got: usize },
    /// A value length is negative (other than -1 for NULL) or runs past the end.
    #[error("value {column} has invalid length {length}")]
    ValueLength { column: usize, length: i64 },
    /// Bytes remain after the last value of a row.
    #[error("{extra} trailing bytes after the last value")]
    TrailingBytes { extra: usize },
    /// A COPY stream did not follow its format (header, escapes, quoting).
    #[error("malformed COPY data: {reason}")]
    Copy { reason: &'static str },
    /// An ErrorResponse/NoticeResponse body is not a list of fields.
    #[error("malformed report: {reason}")]
    Report { reason: &'static str },
    /// A custom detector's pattern does not compile.
    #[error("detector {name:?}: {source}")]
    Pattern {
        name: String,
        #[source]
        source: Box<regex::Error>,
    },
    /// A mask key shorter than 32 bytes.
    #[error("mask key must be at least 32 bytes, got {got}")]
    KeyTooShort { got: usize },
}
