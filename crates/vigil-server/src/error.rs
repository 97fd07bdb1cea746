//! Errors of the server layer. A [`SessionError`] knows what, if anything, the
//! client should be told; the full cause goes to the log only.

use std::path::Path;

use bytes::BytesMut;

use vigil_wire::backend::{Report, Severity};
use vigil_wire::WireError;

/// Why the server could not start (or reload).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{file}: TLS: {reason}")]
    Tls { file: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("audit: {0}")]
    Audit(#[from] vigil_audit::AuditError),
    #[error("masking: {0}")]
    Masking(String),
}

impl StartError {
    pub(crate) fn tls(file: &Path, reason: impl std::fmt::Display) -> StartError {
        StartError::Tls {
            file: file.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Why a session ended before or instead of relaying normally.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("protocol violation: {0}")]
    Protocol(#[from] WireError),
    /// What came in place of a startup packet was not one. PostgreSQL
    /// closes such a connection without a word; so does Vigil.
    #[error("invalid startup packet: {0}")]
    BadStartup(WireError),
    #[error("client i/o: {0}")]
    ClientIo(std::io::Error),
    #[error("client closed the connection")]
    ClientGone,
    #[error("TLS handshake with client failed: {0}")]
    ClientTls(std::io::Error),
    #[error("unexpected message {tag:?} during {phase}")]
    Unexpected { tag: char, phase: &'static str },
    #[error("authentication failed for user {user:?}: {reason}")]
    AuthFailed { user: String, reason: String },
    #[error("client address is locked out after repeated failures")]
    LockedOut { retry_after_secs: u64 },
    #[error("cleartext password refused without TLS")]
    CleartextWithoutTls,
    #[error("unknown database {0:?}")]
    UnknownDatabase(String),
    #[error("replication connection refused")]
    Replication,
    #[error("startup parameter {0:?} is not allowed")]
    ParameterRefused(String),
    #[error("startup packet has no user")]
    NoUser,
    #[error("upstream {database:?}: {reason}")]
    Upstream {
        database: String,
        reason: String,
        /// An upstream refusal clients can act on (too many connections,
        /// starting up): its SQLSTATE and message, passed on as they are.
        relay: Option<(String, String)>,
    },
    #[error("server is shutting down")]
    ShuttingDown,
    #[error("startup not finished within {0} s")]
    StartupTimeout(u64),
    #[error("client did not use TLS, which is required")]
    TlsRequired,
    #[error("max_client_connections reached")]
    TooManyConnections,
    /// An identity's or a database's `max_sessions` is reached.
    #[error("{what} has {limit} sessions already (max_sessions)")]
    TooManySessions { what: String, limit: usize },
    /// The session could not be put in the upstream role its identity maps to.
    #[error("upstream role {role:?}: {reason}")]
    UpstreamRole { role: String, reason: String },
    /// The server would read SQL text differently from Vigil's analyzer.
    #[error("unsafe session setting: {0}")]
    UnsafeSession(String),
    /// The server reports the session left the upstream role Vigil locked
    /// it in (code Vigil could not see into switched it).
    #[error("the session left its locked upstream role: {0}")]
    RoleChanged(String),
}

impl SessionError {
    /// Appends the FATAL error the client should see, if anyone is listening.
    /// Causes that would help an attacker or leak the upstream stay in the log.
    pub(crate) fn report(&self, out: &mut BytesMut) {
        let fatal = |out: &mut BytesMut, code: &str, message: &str, hint: Option<&str>| {
            let mut report = Report::new(Severity::Fatal, code, message);
            report.hint = hint;
            vigil_wire::backend::error_response(out, &report);
        };
        match self {
            SessionError::ClientIo(_)
            | SessionError::ClientGone
            | SessionError::ClientTls(_)
            | SessionError::BadStartup(_) => {}
            SessionError::Protocol(e) => fatal(out, e.sqlstate(), &e.to_string(), None),
            SessionError::Unexpected { tag, phase } => fatal(
                out,
                "08P01",
                &format!("unexpected message type {tag:?} during {phase}"),
                None,
            ),
            SessionError::AuthFailed { user, .. } => fatal(
                out,
                "28P01",
                &format!("password authentication failed for user \"{user}\""),
                None,
            ),
            SessionError::LockedOut { retry_after_secs } => fatal(
                out,
                "28000",
                "too many failed authentication attempts from this address",
                Some(&format!("Try again in {retry_after_secs} seconds.")),
            ),
            SessionError::CleartextWithoutTls => fatal(
                out,
                "28000",
                "password authentication needs an encrypted connection",
                Some("Connect with sslmode=require."),
            ),
            SessionError::UnknownDatabase(name) => fatal(
                out,
                "3D000",
                &format!("database \"{name}\" does not exist"),
                Some("Vigil serves only the databases named in its configuration."),
            ),
            SessionError::Replication => fatal(
                out,
                "0A000",
                "replication connections are not supported through Vigil",
                None,
            ),
            SessionError::ParameterRefused(name) => fatal(
                out,
                "42501",
                &format!("startup parameter \"{name}\" is not allowed through Vigil"),
                Some("Remove it from the connection settings."),
            ),
            SessionError::NoUser => fatal(
                out,
                "28000",
                "no PostgreSQL user name specified in startup packet",
                None,
            ),
            SessionError::Upstream {
                relay: Some((code, message)),
                ..
            } => fatal(out, code, message, None),
            SessionError::Upstream { database, .. } => fatal(
                out,
                "08006",
                &format!("Vigil could not connect to the upstream of database \"{database}\""),
                Some("The proxy's log has the cause."),
            ),
            SessionError::TooManyConnections => {
                fatal(out, "53300", "sorry, too many clients already", None)
            }
            SessionError::TooManySessions { what, limit } => fatal(
                out,
                "53300",
                &format!("too many sessions: {what} is limited to {limit} at once"),
                Some("Close an idle session, or ask an administrator to raise max_sessions in Vigil's config."),
            ),
            SessionError::UpstreamRole { role, .. } => fatal(
                out,
                "28000",
                &format!("Vigil could not start the session in its upstream role \"{role}\""),
                Some("The proxy's log has the cause; `vigil roles provision` creates missing roles."),
            ),
            SessionError::TlsRequired => fatal(
                out,
                "28000",
                "Vigil accepts only encrypted connections",
                Some("Connect with sslmode=require."),
            ),
            SessionError::StartupTimeout(_) => fatal(
                out,
                "08006",
                "canceling authentication due to timeout",
                None,
            ),
            SessionError::UnsafeSession(reason) => fatal(
                out,
                "0A000",
                &format!("Vigil cannot inspect statements in this session: {reason}"),
                Some("Vigil needs client_encoding UTF8 (or another encoding that keeps ASCII bytes ASCII) and standard_conforming_strings on."),
            ),
            SessionError::RoleChanged(reason) => fatal(
                out,
                "42501",
                &format!("Vigil ended this session (rule vigil.role-lock): {reason}"),
                Some("This identity's upstream role is locked for the whole session; code that switches roles cannot run through Vigil. Reconnect to carry on."),
            ),
            SessionError::ShuttingDown => fatal(
                out,
                "57P01",
                "terminating connection because Vigil is shutting down",
                None,
            ),
        }
    }
}
