//! Vigil's proxy server: accepts PostgreSQL clients, authenticates them as
//! Vigil identities, connects upstream with the proxy's own credentials, and
//! relays the session.
//!
//! The server holds no global state: everything a session needs comes from the
//! [`State`] it is handed, so tests run many servers in one process.

pub mod admin;
mod approvals;
mod auth;
mod cancel;
mod encoding;
mod error;
mod identity;
mod limits;
mod live;
mod masking;
mod metrics;
mod provision;
mod server;
mod session;
mod shutdown;
mod state;
mod stream;
mod tls;
mod upstream;

pub use error::{SessionError, StartError};
pub use identity::{AuthMethodUsed, Identity};
pub use provision::{provision_roles, ProvisionError};
pub use server::{serve, serve_on};
pub use state::State;
