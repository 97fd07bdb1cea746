//! What every session shares: the loaded configuration with its TLS material,
//! the statement analyzer, the cancel-key registry and the login throttle.
//! Passed as `Arc<State>`. A reload swaps the whole snapshot at once; sessions
//! notice through the generation number and pick up the new policy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio_rustls::{TlsAcceptor, TlsConnector};
use vigil_audit::{AuditEvent, AuditLog, ConfigReload};
use vigil_config::Config;

use crate::approvals::Approvals;
use crate::auth::Throttle;
use crate::cancel::CancelRegistry;
use crate::live::LiveSessions;
use crate::masking::{Catalogs, MaskSetup};
use crate::metrics::Metrics;
use crate::tls;
use crate::StartError;

/// One consistent view of the configuration and what was built from it.
pub(crate) struct Snapshot {
    pub(crate) config: Config,
    pub(crate) acceptor: Option<TlsAcceptor>,
    /// The acceptor's certificate's `tls-server-end-point` data: present
    /// only with an acceptor, and then SCRAM-SHA-256-PLUS is offered over TLS.
    pub(crate) tls_end_point: Option<Vec<u8>>,
    /// By configured database name; absent where TLS upstream is disabled.
    pub(crate) connectors: HashMap<String, TlsConnector>,
    /// The masking key and detectors.
    pub(crate) masking: Arc<MaskSetup>,
}

/// Texts whose analysis is kept, shared by all sessions.
const ANALYSIS_CACHE: usize = 10_000;

pub struct State {
    snapshot: RwLock<Arc<Snapshot>>,
    /// Bumped by every reload that took effect.
    generation: AtomicU64,
    pub(crate) analyzer: vigil_sql::Analyzer,
    /// Opened from the configuration at start; a reload does not reopen it.
    pub(crate) audit: AuditLog,
    pub(crate) cancels: CancelRegistry,
    pub(crate) throttle: Throttle,
    /// Approval requests and grants. Its webhooks are those configured at
    /// start; a reload does not change them.
    pub(crate) approvals: Arc<Approvals>,
    /// Upstream catalogs, for masking.
    pub(crate) catalogs: Catalogs,
    /// Counters for `/metrics` and the console.
    pub(crate) metrics: Metrics,
    /// The sessions open now.
    pub(crate) sessions: Arc<LiveSessions>,
    /// Sessions per identity and database; startups per client address.
    pub(crate) limits: crate::limits::Limits,
    /// One audit chain verification at a time (the admin API's).
    pub(crate) verifying: tokio::sync::Mutex<()>,
    /// Seeds fake SCRAM verifiers for unknown users.
    pub(crate) mock_secret: [u8; 32],
    /// The iteration count fake verifiers claim: the one most real ones have.
    pub(crate) mock_iterations: u32,
    next_session: AtomicU64,
}

impl State {
    /// Builds the shared state, loading TLS material named by `config` and
    /// opening its audit store (creating it when it does not exist).
    pub fn new(config: Config) -> Result<Arc<State>, StartError> {
        let throttle = Throttle::new(&config.auth);
        let (mock_secret, mock_iterations) = mock_parameters(&config);
        let audit = config.audit.open()?;
        let approvals = Approvals::start(audit.clone(), &config.approvals.webhooks);
        Ok(Arc::new(State {
            snapshot: RwLock::new(Arc::new(Snapshot::build(config)?)),
            generation: AtomicU64::new(0),
            analyzer: vigil_sql::Analyzer::new(ANALYSIS_CACHE),
            audit,
            cancels: CancelRegistry::default(),
            throttle,
            approvals,
            catalogs: Catalogs::default(),
            metrics: Metrics::default(),
            sessions: Arc::default(),
            limits: crate::limits::Limits::default(),
            verifying: tokio::sync::Mutex::new(()),
            mock_secret,
            mock_iterations,
            next_session: AtomicU64::new(1),
        }))
    }

    /// Swaps in a new configuration for new sessions and, at their next
    /// statement, the policy of running ones. Listener, worker and limit
    /// settings only change on restart. Nothing changes when the new
    /// configuration's TLS material cannot be loaded.
    pub fn reload(&self, config: Config) -> Result<(), StartError> {
        let rules = config.compiled_policy.rules().len();
        let snapshot = match Snapshot::build(config) {
            Ok(snapshot) => Arc::new(snapshot),
            Err(error) => {
                self.record_reload(false, &error.to_string());
                return Err(error);
            }
        };
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
        self.generation.fetch_add(1, Ordering::Release);
        self.record_reload(true, &format!("configuration reloaded ({rules} rules)"));
        Ok(())
    }

    /// Records a reload (or a reload refused before it reached [`reload`](Self::reload))
    /// in the audit trail.
    pub fn record_reload(&self, ok: bool, message: &str) {
        let event = AuditEvent::ConfigReload(ConfigReload {
            ok,
            message: message.to_owned(),
        });
        if let Err(error) = self.audit.record(event) {
            tracing::warn!(%error, "config reload not recorded in the audit trail");
        }
    }

    /// Where the admin API listens, if it is configured.
    pub fn admin_listen(&self) -> Option<std::net::SocketAddr> {
        let snapshot = self.snapshot();
        let address = snapshot.config.server.admin_listen.as_deref()?;
        address.parse().ok()
    }

    /// Waits, up to `deadline`, for the webhooks to deliver what was sent;
    /// blocks the calling thread. False when some are still being tried.
    pub fn flush_webhooks(&self, deadline: std::time::Duration) -> bool {
        self.approvals.flush_webhooks(deadline)
    }

    /// The audit log: `vigil serve` shuts it down on exit.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Changes with every reload.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the catalog of `database` again in the background, if it is
    /// stale and no one else is reading it.
    pub(crate) fn refresh_catalog(self: &Arc<State>, database: &str) {
        if !self.catalogs.stale(database) {
            return;
        }
        let state = Arc::clone(self);
        let database = database.to_owned();
        tokio::spawn(async move {
            let snapshot = state.snapshot();
            let Some(db) = snapshot.config.database(&database) else {
                return;
            };
            let tls = crate::upstream::tls_target(db, snapshot.connectors.get(&db.name));
            if let Err(error) = state.catalogs.get(db, tls.as_ref()).await {
                tracing::warn!(%error, database, "catalog not read; columns of unknown source stay masked");
            }
        });
    }

    /// Reads the catalog of `database` again, now; resolves once it is read
    /// (or could not be).
    pub(crate) fn reload_catalog(
        self: &Arc<State>,
        database: &str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let state = Arc::clone(self);
        let database = database.to_owned();
        Box::pin(async move {
            let snapshot = state.snapshot();
            let Some(db) = snapshot.config.database(&database) else {
                return;
            };
            let tls = crate::upstream::tls_target(db, snapshot.connectors.get(&db.name));
            if let Err(error) = state.catalogs.get(db, tls.as_ref()).await {
                tracing::warn!(%error, database, "catalog not read; relations it does not know stay unknown");
            }
        })
    }

    pub(crate) fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}

impl Snapshot {
    fn build(config: Config) -> Result<Snapshot, StartError> {
        let (acceptor, tls_end_point) = match config.server.tls.as_ref().map(tls::acceptor) {
            Some(server_side) => {
                let server_side = server_side?;
                (Some(server_side.acceptor), server_side.end_point)
            }
            None => (None, None),
        };
        let mut connectors = HashMap::new();
        for db in &config.databases {
            if let Some(connector) = tls::connector(&db.tls)? {
                connectors.insert(db.name.clone(), connector);
            }
        }
        let masking = Arc::new(MaskSetup::build(&config).map_err(StartError::Masking)?);
        Ok(Snapshot {
            config,
            acceptor,
            tls_end_point,
            connectors,
            masking,
        })
    }
}

/// Fake verifiers must look like real ones across restarts too: a salt that
/// changed when Vigil restarted would mark a name as unknown. So the secret is
/// derived from the configured verifiers (stable while they are), mixed with
/// a random value only when there are none to derive from.
fn mock_parameters(config: &Config) -> ([u8; 32], u32) {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"vigil mock verifier secret\0");
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for identity in &config.identities {
        hasher.update(identity.password_text.as_bytes());
        hasher.update([0]);
        if let Some(verifier) = &identity.verifier {
            *counts.entry(verifier.iterations()).or_default() += 1;
        }
    }
    if config.identities.is_empty() {
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        hasher.update(random);
    }
    let iterations = counts
        .into_iter()
        .max_by_key(|&(iterations, n)| (n, iterations))
        .map_or(vigil_auth::DEFAULT_ITERATIONS, |(iterations, _)| iterations);
    (hasher.finalize().into(), iterations)
}
