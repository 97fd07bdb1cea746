//! Error types of the audit layer: one for stores, one for everything a caller sees.

use std::path::PathBuf;

/// A failure inside a [`Store`](crate::Store) implementation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing database refused or failed an operation (locked, read-only, disk full…).
    #[error("audit store {location}: {source}")]
    Sqlite {
        location: String,
        #[source]
        source: rusqlite::Error,
    },
    /// Another writer appended to the store since our view of its tail was taken.
    #[error("audit store {location}: tail moved (expected seq {expected}, store has {found})")]
    TailMoved {
        location: String,
        expected: u64,
        found: u64,
    },
    /// The file exists but is not a Vigil audit store, or has an unknown schema version.
    #[error("audit store {location}: {reason}")]
    Incompatible { location: String, reason: String },
    /// The store does not support an optional operation (e.g. rotation).
    #[error("audit store {location}: {operation} is not supported")]
    Unsupported {
        location: String,
        operation: &'static str,
    },
}

/// Everything that can go wrong when writing, reading, verifying or exporting the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store cannot take writes right now; the event was NOT recorded. Callers must
    /// refuse the statement this event describes (fail closed).
    #[error("audit store unavailable, event not recorded: {0}")]
    StoreUnavailable(String),
    /// A store read or open failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit writer has shut down (or was never started); nothing can be appended.
    #[error("audit writer is not running")]
    WriterStopped,
    /// The event cannot be encoded canonically (e.g. a float in a free-form field).
    #[error("audit event cannot be encoded: {0}")]
    InvalidEvent(String),
    /// A stored record could not be decoded.
    #[error("audit record seq {seq} cannot be decoded: {reason}")]
    Decode { seq: u64, reason: String },
    /// A key or anchor file is missing, malformed or has the wrong permissions.
    #[error("{path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    /// Reading or writing a file (key, anchor, export) failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A time value given to a filter is not RFC 3339.
    #[error("invalid time {0:?}: expected RFC 3339, e.g. 2026-01-31T12:00:00Z or 2026-01-31")]
    InvalidTime(String),
    /// Writing an export stream failed.
    #[error("export failed: {0}")]
    Export(#[source] std::io::Error),
}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;
