//! The `[audit]` configuration section and how it turns into a running [`AuditLog`].
//!
//! ```toml
//! [audit]
//! store = "sqlite://vigil-audit.db"   # sqlite://<path>; postgres://… is planned
//! mode = "strict"                     # strict | fast | off
//! signing_key = "audit.key"           # made by `vigil audit keygen`
//! redaction = "keep"                  # keep | normalize (the proxy applies it)
//! checkpoint_every_events = 1000
//! checkpoint_interval_secs = 60
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{AuditError, Result, StoreError};
use crate::event::Redaction;
use crate::keyfile::load_signing_key;
use crate::store::{SqliteOptions, SqliteStore, Store};
use crate::writer::{AuditLog, AuditOptions, Durability};

/// The `[audit]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// `sqlite://<path>` (relative paths are relative to the working directory).
    pub store: String,
    pub mode: Durability,
    /// Ed25519 key file that signs checkpoints. Without it, a SQLite store's
    /// checkpoints are signed with the key beside the store (`<store>.key`),
    /// made on first start ([`AuditConfig::effective_signing_key`]).
    pub signing_key: Option<PathBuf>,
    /// Whether statement text keeps its literals. The proxy normalizes the text before
    /// building the event; this crate stores what it is given.
    pub redaction: Redaction,
    pub checkpoint_every_events: u64,
    /// 0 disables time-based checkpoints.
    pub checkpoint_interval_secs: u64,
    pub queue_capacity: usize,
    pub max_batch: usize,
    pub commit_delay_us: u64,
    /// How long events nothing waits for may wait to share a commit.
    pub background_commit_ms: u64,
    pub busy_timeout_ms: u64,
    /// Each commit waits for the disk (see `SqliteOptions::fsync`).
    pub fsync: bool,
    pub retry_interval_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        let o = AuditOptions::default();
        AuditConfig {
            store: "sqlite://vigil-audit.db".into(),
            mode: Durability::Strict,
            signing_key: None,
            redaction: Redaction::Keep,
            checkpoint_every_events: o.checkpoint_every_events,
            checkpoint_interval_secs: o.checkpoint_interval.map_or(0, |d| d.as_secs()),
            queue_capacity: o.queue_capacity,
            max_batch: o.max_batch,
            commit_delay_us: 0,
            background_commit_ms: millis(o.background_commit),
            busy_timeout_ms: millis(o.sqlite.busy_timeout),
            fsync: o.sqlite.fsync,
            retry_interval_ms: millis(o.retry_interval),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Where the events live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    /// A shared PostgreSQL store (not implemented yet).
    Postgres(String),
}

impl StoreLocation {
    /// Parses `sqlite://path`, `sqlite:path`, a bare path, or `postgres://…`.
    pub fn parse(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(AuditError::Store(StoreError::Incompatible {
                location: url.to_owned(),
                reason: "expected sqlite://<path> or postgres://…".into(),
            }));
        }
        Ok(StoreLocation::Sqlite(PathBuf::from(path)))
    }
}

impl AuditConfig {
    /// The writer options this section describes.
    pub fn options(&self) -> AuditOptions {
        AuditOptions {
            durability: self.mode,
            checkpoint_every_events: self.checkpoint_every_events,
            checkpoint_interval: (self.checkpoint_interval_secs > 0)
                .then(|| Duration::from_secs(self.checkpoint_interval_secs)),
            queue_capacity: self.queue_capacity.max(1),
            max_batch: self.max_batch.max(1),
            commit_delay: Duration::from_micros(self.commit_delay_us),
            background_commit: Duration::from_millis(self.background_commit_ms),
            retry_interval: Duration::from_millis(self.retry_interval_ms),
            sqlite: SqliteOptions {
                busy_timeout: Duration::from_millis(self.busy_timeout_ms),
                fsync: self.fsync,
            },
        }
    }

    /// The key that signs checkpoints: the configured one, or else the one
    /// beside a SQLite store (`vigil-audit.db.key` for `vigil-audit.db`).
    pub fn effective_signing_key(&self) -> Option<PathBuf> {
        if let Some(key) = &self.signing_key {
            return Some(key.clone());
        }
        match StoreLocation::parse(&self.store) {
            Ok(StoreLocation::Sqlite(path)) => {
                let mut name = path.into_os_string();
                name.push(".key");
                Some(PathBuf::from(name))
            }
            _ => None,
        }
    }

    /// Opens the store, loads the signing key and starts the writer (`vigil
    /// serve`). Without a configured key, the one beside the store signs,
    /// made now if it does not exist yet: checkpoints are always signed.
    pub fn open(&self) -> Result<AuditLog> {
        if self.mode == Durability::Off {
            return Ok(AuditLog::disabled());
        }
        let key = self.effective_signing_key();
        if let (None, Some(key)) = (&self.signing_key, &key) {
            if !key.exists() {
                let public = crate::keyfile::generate_key(key)?;
                tracing::warn!(
                    key = %key.display(),
                    public = %crate::keyfile::public_key_path(key).display(),
                    key_id = %crate::keyfile::key_id(&public),
                    "made an audit signing key beside the store; keep a copy of the .pub file elsewhere for `vigil audit verify --key`"
                );
            }
        }
        let signer = key.as_deref().map(load_signing_key).transpose()?;
        if let Some(key) = &key {
            tracing::info!(key = %key.display(), "audit checkpoints are signed");
        }
        match StoreLocation::parse(&self.store)? {
            StoreLocation::Sqlite(path) => AuditLog::open_sqlite(&path, signer, self.options()),
            StoreLocation::Postgres(_) => Err(postgres_unsupported(&self.store)),
        }
    }
}

/// Opens an existing store for reading, verifying or exporting (`vigil audit …`); never
/// creates one.
pub fn open_existing_store(url: &str) -> Result<Box<dyn Store>> {
    match StoreLocation::parse(url)? {
        StoreLocation::Sqlite(path) => Ok(Box::new(SqliteStore::open_existing(&path)?)),
        StoreLocation::Postgres(_) => Err(postgres_unsupported(url)),
    }
}

/// Opens existing SQLite segment files for [`verify_segments`](crate::verify_segments).
pub fn open_segments(paths: &[&Path]) -> Result<Vec<SqliteStore>> {
    paths
        .iter()
        .map(|p| SqliteStore::open_existing(p).map_err(AuditError::from))
        .collect()
}

fn postgres_unsupported(url: &str) -> AuditError {
    let location = url.split('@').next_back().unwrap_or("postgres").to_owned();
    AuditError::Store(StoreError::Unsupported {
        location,
        operation: "the PostgreSQL audit store",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::samples::statement;
    use crate::testing::TempDir;

    #[test]
    fn parses_store_urls() {
        assert_eq!(
            StoreLocation::parse("sqlite://vigil-audit.db").unwrap(),
            StoreLocation::Sqlite("vigil-audit.db".into())
        );
        assert_eq!(
            StoreLocation::parse("sqlite:///var/lib/vigil/a.db").unwrap(),
            StoreLocation::Sqlite("/var/lib/vigil/a.db".into())
        );
        assert_eq!(
            StoreLocation::parse("a.db").unwrap(),
            StoreLocation::Sqlite("a.db".into())
        );
        assert!(matches!(
            StoreLocation::parse("postgres://u:p@h/db").unwrap(),
            StoreLocation::Postgres(_)
        ));
        assert!(StoreLocation::parse("mysql://x").is_err());
        assert!(StoreLocation::parse("").is_err());
    }

    #[test]
    fn postgres_errors_do_not_leak_credentials() {
        let Err(err) = open_existing_store("postgres://user:secret@db/audit") else {
            panic!("postgres is not implemented yet")
        };
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[tokio::test]
    async fn a_config_section_opens_a_signed_log() {
        let dir = TempDir::new("config");
        let key = dir.path().join("audit.key");
        crate::keyfile::generate_key(&key).unwrap();
        let db = dir.path().join("audit.db");
        let config = AuditConfig {
            store: format!("sqlite://{}", db.display()),
            signing_key: Some(key.clone()),
            ..AuditConfig::default()
        };
        let log = config.open().unwrap();
        log.append(statement(1, 1)).await.unwrap();
        log.shutdown().await.unwrap();
        let store = open_existing_store(&config.store).unwrap();
        let public = crate::keyfile::load_verifying_key(&key).unwrap();
        let report = crate::verify::verify(store.as_ref(), Some(&public), None).unwrap();
        assert!(
            report.is_ok() && report.checkpoints_verified == 1,
            "{report}"
        );
        let parsed: AuditConfig = serde_json::from_str(r#"{"mode": "fast"}"#).unwrap();
        assert_eq!(parsed.mode, Durability::Fast);
        assert!(serde_json::from_str::<AuditConfig>(r#"{"typo": 1}"#).is_err());
    }
}
