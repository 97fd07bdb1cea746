//! Why a text could not be analyzed, and the SQLSTATE the proxy answers with.

use thiserror::Error;

/// A statement text the analyzer refuses. None of these is ever forwarded:
/// what cannot be analyzed cannot be allowed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnalyzeError {
    /// PostgreSQL's own parser rejected the text; `message` is its wording
    /// (`syntax error at or near "SELEC"`).
    #[error("{message}")]
    Syntax {
        message: String,
        /// 1-based character position, as PostgreSQL reports it in the `P`
        /// field of an ErrorResponse.
        position: Option<usize>,
    },
    /// The parse tree is deeper than the analyzer will follow.
    #[error("statement is too deeply nested to analyze")]
    TooDeep,
    /// A NUL byte cannot appear in a PostgreSQL statement.
    #[error("statement contains a NUL byte")]
    NulByte,
    /// The parser failed in a way that says nothing about the SQL.
    #[error("the SQL parser failed: {0}")]
    Parser(String),
}

impl AnalyzeError {
    /// The SQLSTATE PostgreSQL itself would use for this refusal.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            AnalyzeError::Syntax { .. } => "42601",
            AnalyzeError::TooDeep => "54001",
            AnalyzeError::NulByte => "22021",
            AnalyzeError::Parser(_) => "XX000",
        }
    }

    /// Maps pg_query's error, recovering the position it drops on the way.
    pub(crate) fn from_pg_query(error: pg_query::Error, sql: &str) -> AnalyzeError {
        match error {
            pg_query::Error::Parse(message) if is_too_deep(&message) => AnalyzeError::TooDeep,
            pg_query::Error::Parse(message) | pg_query::Error::Split(message) => {
                AnalyzeError::Syntax {
                    message,
                    position: crate::position::syntax_error_position(sql),
                }
            }
            // prost stops decoding trees deeper than 100 messages; that is a
            // nesting limit, not a fault.
            pg_query::Error::Decode(e) if e.to_string().contains("recursion limit") => {
                AnalyzeError::TooDeep
            }
            pg_query::Error::Conversion(_) => AnalyzeError::NulByte,
            other => AnalyzeError::Parser(other.to_string()),
        }
    }
}

fn is_too_deep(message: &str) -> bool {
    message == "stack depth limit exceeded"
        || message.starts_with("parse tree is nested too deeply")
}
