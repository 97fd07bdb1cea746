//! The accept loop and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::session;
use crate::shutdown::Phase;
use crate::State;

/// Serves clients from `listener` until `shutdown` completes; then stops
/// accepting, lets sessions finish until the drain deadline, cancels what is
/// left, and returns once every session has ended.
pub async fn serve(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let mut sessions = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, addr)) => {
                    sessions.spawn(session::run(socket, addr, Arc::clone(&state), phase_rx.clone()));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = sessions.join_next() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let drain = Duration::from_secs(state.snapshot().config.server.drain_timeout_secs);
    info!(
        sessions = sessions.len(),
        drain_secs = drain.as_secs(),
        "shutting down: draining sessions"
    );
    let _ = phase_tx.send(Phase::Draining);
    if tokio::time::timeout(drain, join_all(&mut sessions))
        .await
        .is_err()
    {
        warn!(
            sessions = sessions.len(),
            "drain deadline passed: cancelling remaining sessions"
        );
        let _ = phase_tx.send(Phase::Cancelling);
        if tokio::time::timeout(Duration::from_secs(10), join_all(&mut sessions))
            .await
            .is_err()
        {
            sessions.abort_all();
        }
    }
    info!("shutdown complete");
}

async fn join_all(sessions: &mut JoinSet<()>) {
    while sessions.join_next().await.is_some() {}
}
