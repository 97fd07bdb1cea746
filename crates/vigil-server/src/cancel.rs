//! Cancel keys. Clients see the upstream backend's own pid (so
//! `pg_backend_pid()`, `pg_terminate_backend` and the pid in a notification
//! mean what they mean on the server) with a secret Vigil made; Vigil maps
//! the pair to the backend's own key, whose secret never leaves the proxy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

use crate::upstream;

/// Where a cancel for one session must go.
#[derive(Clone)]
pub(crate) struct CancelTarget {
    pub(crate) database: String,
    pub(crate) upstream: String,
    pub(crate) tls: Option<(TlsConnector, String)>,
    pub(crate) pid: i32,
    pub(crate) secret: i32,
    /// Set while the session holds a statement for approval.
    pub(crate) held: Arc<crate::approvals::CancelSignal>,
}

#[derive(Default)]
pub(crate) struct CancelRegistry {
    targets: Mutex<HashMap<(i32, i32), CancelTarget>>,
}

/// A registered key; dropping it forgets the key.
pub(crate) struct CancelKey {
    registry: Arc<crate::State>,
    pub(crate) pid: i32,
    pub(crate) secret: i32,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        if let Ok(mut targets) = self.registry.cancels.targets.lock() {
            targets.remove(&(self.pid, self.secret));
        }
    }
}

impl CancelRegistry {
    /// Registers `target` under its backend's pid and a new secret. Two
    /// servers behind Vigil can have backends of the same pid: the pair
    /// tells them apart, and the secret carries the entropy.
    pub(crate) fn register(state: &Arc<crate::State>, target: CancelTarget) -> CancelKey {
        let mut targets = state
            .cancels
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let pid = target.pid;
        loop {
            let secret = rand::random::<i32>();
            if let std::collections::hash_map::Entry::Vacant(free) = targets.entry((pid, secret)) {
                free.insert(target);
                return CancelKey {
                    registry: Arc::clone(state),
                    pid,
                    secret,
                };
            }
        }
    }

    pub(crate) fn lookup(&self, pid: i32, secret: i32) -> Option<CancelTarget> {
        let targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        targets.get(&(pid, secret)).cloned()
    }
}

/// Sends the upstream its own CancelRequest on a fresh connection.
pub(crate) async fn send(target: &CancelTarget) -> std::io::Result<()> {
    let mut stream = upstream::open(&target.upstream, target.tls.as_ref(), 5_000).await?;
    let mut packet = BytesMut::with_capacity(16);
    vigil_wire::backend::cancel_request(&mut packet, target.pid, target.secret);
    stream.write_all(&packet).await?;
    stream.flush().await?;
    // PostgreSQL closes the connection once it has the request; wait for that
    // so the cancel has been delivered before we report it sent.
    let mut sink = [0u8; 1];
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut stream, &mut sink),
    )
    .await;
    Ok(())
}
