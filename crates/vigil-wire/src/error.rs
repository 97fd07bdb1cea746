//! Decoding errors, each one a protocol violation by the peer.

/// A frame that cannot be accepted. The connection it came from is closed
/// after the peer is told why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("invalid message length {len} for message type {tag:?}")]
    BadLength { tag: char, len: i64 },
    #[error("message of type {tag:?} is {len} bytes, over the limit of {max} bytes")]
    TooLarge { tag: char, len: usize, max: usize },
    #[error("invalid frontend message type {tag:?}")]
    UnknownType { tag: char },
    #[error("invalid startup packet length {0}")]
    BadStartupLength(i64),
    #[error("unsupported frontend protocol {major}.{minor}")]
    UnsupportedProtocol { major: u16, minor: u16 },
    #[error("malformed {what}")]
    Malformed { what: &'static str },
}

impl WireError {
    /// The SQLSTATE PostgreSQL itself reports for this violation.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            WireError::TooLarge { .. } => "54000",
            WireError::UnsupportedProtocol { .. } => "0A000",
            _ => "08P01",
        }
    }
}
