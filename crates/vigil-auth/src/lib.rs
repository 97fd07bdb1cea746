//! SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL implements it: stored
//! verifiers in PostgreSQL's text format and the server side of one exchange,
//! with or without `tls-server-end-point` channel binding (RFC 5929).
//!
//! Pure logic: no I/O, no tokio, and no input makes it panic. The caller owns the
//! wire (AuthenticationSASL and friends) and decides what a failure means for the
//! connection; [`ScramError::sqlstate`] says what PostgreSQL would report.
//!
//! ```
//! use vigil_auth::{ScramError, ScramServer, Verifier, DEFAULT_ITERATIONS, SCRAM_SHA_256};
//!
//! // Configuration time (`vigil passwd`): store the verifier's text, not the password.
//! let stored = Verifier::generate("s3cret", DEFAULT_ITERATIONS).to_string();
//!
//! // Per connection without TLS: send AuthenticationSASL listing only
//! // SCRAM_SHA_256, check that the SASLInitialResponse names it, then pass its
//! // payload here. Over TLS, list SCRAM_SHA_256_PLUS first and use
//! // `ScramServer::start_bound` with the certificate's binding data.
//! let verifier: Verifier = stored.parse()?;
//! let client_first = b"n,,n=,r=fyko+d2lbbFgONRv9qkxdawL";
//! let (server, server_first) = ScramServer::start(verifier, false, client_first)?;
//! // Send `server_first` in AuthenticationSASLContinue, read the SASLResponse,
//! // then `server.finish(payload)` gives AuthenticationSASLFinal's payload, or
//! // an error: 28P01 for a wrong password, 08P01 for a protocol violation.
//! let wrong = b"c=biws,r=elsewhere,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
//! assert!(matches!(server.finish(wrong), Err(ScramError::NonceMismatch)));
//! # let _ = (server_first, SCRAM_SHA_256);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod keys;
mod message;
mod server;
mod verifier;

#[cfg(test)]
mod robustness;

pub use server::{Binding, ScramError, ScramServer};
pub use verifier::{Verifier, VerifierError, MAX_ITERATIONS};

/// The SASL mechanism without channel binding: always advertised.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// The SASL mechanism with `tls-server-end-point` channel binding: advertised
/// only over TLS, when the server's certificate gives binding data. Without
/// TLS there is nothing for it to bind to.
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// PostgreSQL's default iteration count (`scram_iterations`, fixed before 16).
pub const DEFAULT_ITERATIONS: u32 = 4096;
