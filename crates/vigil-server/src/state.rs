//! What every session shares: the loaded configuration with its TLS material,
//! the cancel-key registry and the login throttle. Passed as `Arc<State>`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_rustls::{TlsAcceptor, TlsConnector};
use vigil_config::Config;

use crate::auth::Throttle;
use crate::cancel::CancelRegistry;
use crate::tls;
use crate::StartError;

/// One consistent view of the configuration and what was built from it.
pub(crate) struct Snapshot {
    pub(crate) config: Config,
    pub(crate) acceptor: Option<TlsAcceptor>,
    /// By configured database name; absent where TLS upstream is disabled.
    pub(crate) connectors: HashMap<String, TlsConnector>,
}

pub struct State {
    snapshot: Arc<Snapshot>,
    pub(crate) cancels: CancelRegistry,
    pub(crate) throttle: Throttle,
    /// Seeds fake SCRAM verifiers for unknown users, per process.
    pub(crate) mock_secret: [u8; 32],
    next_session: AtomicU64,
}

impl State {
    /// Builds the shared state, loading TLS material named by `config`.
    pub fn new(config: Config) -> Result<Arc<State>, StartError> {
        let acceptor = config.server.tls.as_ref().map(tls::acceptor).transpose()?;
        let mut connectors = HashMap::new();
        for db in &config.databases {
            if let Some(connector) = tls::connector(&db.tls)? {
                connectors.insert(db.name.clone(), connector);
            }
        }
        let throttle = Throttle::new(&config.auth);
        let mut mock_secret = [0u8; 32];
        rand::fill(&mut mock_secret);
        Ok(Arc::new(State {
            snapshot: Arc::new(Snapshot {
                config,
                acceptor,
                connectors,
            }),
            cancels: CancelRegistry::default(),
            throttle,
            mock_secret,
            next_session: AtomicU64::new(1),
        }))
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot)
    }

    pub(crate) fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}
