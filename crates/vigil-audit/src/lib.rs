//! Vigil's audit trail: every statement that reaches the database has an event that was
//! durable before the statement was forwarded, and nobody can change, remove or reorder
//! events without [`verify()`] noticing.
//!
//! - [`event`]: the versioned event schema the proxy fills in.
//! - [`chain`] and [`canonical`]: how records are sealed into a SHA-256 hash chain.
//! - [`checkpoint`] and [`keyfile`]: Ed25519-signed checkpoints and anchors, key files.
//! - [`store`]: the [`Store`] trait and the embedded [`SqliteStore`].
//! - [`writer`]: the [`AuditLog`] handle with group commit and fail-closed errors.
//! - [`mod@verify`]: walks one or more segments and names the first bad record.
//! - [`mod@export`]: JSON lines and OCSF.
//!
//! `docs/audit.md` in the repository describes the formats for operators.

mod body;
pub mod canonical;
pub mod chain;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod error;
pub mod event;
pub mod export;
pub mod keyfile;
pub mod store;
pub mod verify;
pub mod writer;

#[cfg(test)]
pub(crate) mod testing;

pub use chain::{ChainHash, Record, StoredEvent, Tail};
pub use checkpoint::{read_anchor, write_anchor, Anchor, Checkpoint, CheckpointKind};
pub use config::{open_existing_store, open_segments, AuditConfig, StoreLocation};
pub use error::{AuditError, StoreError};
pub use event::{
    AdminAction, Approval, AuditEvent, AuthFailure, ConfigReload, Decision, Redaction, SessionEnd,
    SessionInfo, Statement, StatementCompleted, SCHEMA_VERSION,
};
pub use export::{export, to_ocsf, write_records, ExportFormat};
pub use keyfile::{generate_key, load_signing_key, load_verifying_key, public_key_path};
pub use store::{SearchFilter, SqliteOptions, SqliteStore, Store};
pub use verify::{export_anchor, verify, verify_segments, Problem, VerifyReport};
pub use writer::{AuditLog, AuditOptions, AuditStats, Durability, Receipt};
