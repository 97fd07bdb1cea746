//! The accept loop and graceful shutdown.
//!
//! Sessions run on worker runtimes given by the caller. The `vigil` binary
//! gives one single-threaded runtime per core: a session stays on one thread
//! for its whole life, so no wakeup crosses threads and no idle worker is
//! woken to steal work. On a loaded 2-core host that cut Vigil's CPU per
//! transaction by a sixth against a work-stealing runtime.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::limits::Refused;
use crate::session;
use crate::shutdown::Phase;
use crate::State;

/// Serves clients from `listener` on the current runtime until `shutdown`
/// completes; see [`serve_on`].
pub async fn serve(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    serve_on(listener, state, shutdown, &[Handle::current()]).await
}

/// Serves clients from `listener`, running sessions on `workers` in turn,
/// until `shutdown` completes; then stops accepting, lets sessions finish
/// until the drain deadline, cancels what is left, and returns once every
/// session has ended.
pub async fn serve_on(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
    workers: &[Handle],
) {
    assert!(
        !workers.is_empty(),
        "serve_on needs at least one worker runtime"
    );
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let mut sessions = JoinSet::new();
    let mut next_worker = 0;
    let max_connections = state.snapshot().config.server.max_client_connections;
    let max_startups = state.snapshot().config.server.max_startups_per_address;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted.and_then(|(socket, addr)| Ok((socket.into_std()?, addr))) {
                Ok((socket, addr)) => {
                    // One address may hold only so many connections that
                    // have not finished startup: past that, a flood of idle
                    // sockets is closed at once instead of taking the places
                    // of everyone else's.
                    let Some(starting) = state.limits.startup(addr.ip(), max_startups) else {
                        state.metrics.refused(Refused::Startups);
                        debug!(client = %addr, "max_startups_per_address reached: closing");
                        refuse_at_once(socket);
                        continue;
                    };
                    // Over the limit, a session only says so, as PostgreSQL
                    // does after startup (libpq hides errors sent sooner).
                    let admit = sessions.len() < max_connections;
                    if !admit {
                        state.metrics.refused(Refused::Connections);
                        warn!(client = %addr, "max_client_connections reached: refusing");
                    }
                    let worker = &workers[next_worker % workers.len()];
                    next_worker = next_worker.wrapping_add(1);
                    let session = session::run(socket, addr, Arc::clone(&state), phase_rx.clone(), admit, starting);
                    sessions.spawn_on(session, worker);
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

/// Tells a connection over its address's limit why, if its socket takes
/// the words at once, and closes it: nothing waits on it.
fn refuse_at_once(socket: std::net::TcpStream) {
    use std::io::Write as _;
    let mut out = bytes::BytesMut::new();
    let mut report = vigil_wire::backend::Report::new(
        vigil_wire::backend::Severity::Fatal,
        "53300",
        "sorry, too many connections from this address are starting at once",
    );
    report.hint = Some("Retry in a moment.");
    vigil_wire::backend::error_response(&mut out, &report);
    let _ = socket.set_nonblocking(true);
    let _ = (&socket).write(&out);
}

async fn join_all(sessions: &mut JoinSet<()>) {
    while sessions.join_next().await.is_some() {}
}
