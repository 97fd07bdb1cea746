//! Who is on the other end of a session, as established by authentication.

use std::net::SocketAddr;

use vigil_config::IdentityKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethodUsed {
    ScramSha256,
    Password,
}

impl AuthMethodUsed {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethodUsed::ScramSha256 => "scram-sha-256",
            AuthMethodUsed::Password => "password",
        }
    }
}

/// An authenticated principal. Built only by the authentication step, from
/// the configured identity; nothing the client claims at startup changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub kind: IdentityKind,
    pub groups: Vec<String>,
    pub auth_method: AuthMethodUsed,
    pub client_addr: SocketAddr,
    pub tls: bool,
    /// What the client called itself; informational, never trusted.
    pub application_name: Option<String>,
}
