//! One client session, from the first byte to the last: TLS negotiation,
//! startup, authentication, the upstream connection, then the relay.

mod audit;
pub(crate) mod client;
mod defined;
mod gate;
mod names;
mod owed;
mod reading;
mod refusal;
mod relay;
mod review;
mod startup;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info, warn, Instrument};
use vigil_wire::backend;
use vigil_wire::StartupPacket;

use crate::cancel::{self, CancelRegistry, CancelTarget};
use crate::masking::SessionMasks;
use crate::shutdown::Phase;
use crate::stream::Stream;
use crate::upstream::{self, UpstreamError};
use crate::{auth, SessionError, State};
use client::ClientConn;
use relay::{End, Relay};

/// How long Vigil keeps writing to a peer that has stopped reading, at the end.
const FINAL_WRITE: Duration = Duration::from_secs(2);
/// A connection over the limit only gets this long to hear why it is refused.
const REFUSAL_TIMEOUT_SECS: u64 = 5;

/// Serves one accepted connection until it ends. Never panics on client input.
///
/// The socket arrives as a std stream and is registered here, so its I/O is
/// driven by the runtime the session runs on.
pub(crate) async fn run(
    socket: std::net::TcpStream,
    client_addr: SocketAddr,
    state: Arc<State>,
    phase: watch::Receiver<Phase>,
    admit: bool,
    starting: crate::limits::Slot,
) {
    let session_id = state.next_session_id();
    let span = tracing::info_span!(
        "session",
        session_id,
        client = %client_addr,
        identity = tracing::field::Empty,
        database = tracing::field::Empty,
    );
    async move {
        let socket = match TcpStream::from_std(socket) {
            Ok(socket) => socket,
            Err(error) => return warn!(%error, "cannot register client socket"),
        };
        let _ = socket.set_nodelay(true);
        // A socket that says nothing holds its address's startup place only
        // this long.
        let first_message = Duration::from_secs(state.snapshot().config.auth.first_message_secs);
        if tokio::time::timeout(first_message, socket.readable())
            .await
            .is_err()
        {
            state.metrics.refused(crate::limits::Refused::Silent);
            return debug!(
                "no first message within {} s: closing",
                first_message.as_secs()
            );
        }
        let mut conn = ClientConn::new(Stream::Tcp(socket));
        // Startup may swap the plain stream for TLS, so it owns the connection
        // and hands it back either way.
        let limit = match admit {
            true => state.snapshot().config.auth.timeout_secs,
            false => REFUSAL_TIMEOUT_SECS,
        };
        let established = tokio::time::timeout(
            Duration::from_secs(limit),
            establish(&mut conn, client_addr, &state, admit, session_id),
        )
        .await
        .unwrap_or(Err(SessionError::StartupTimeout(limit)));
        drop(starting);
        match established {
            Ok(Some(established)) => relay(conn, established, phase).await,
            Ok(None) => {}
            Err(error) => {
                match &error {
                    SessionError::ClientGone | SessionError::ClientIo(_) => {
                        debug!(%error, "client left during startup")
                    }
                    _ => warn!(%error, "session refused"),
                }
                conn.fail(&error).await;
            }
        }
    }
    .instrument(span)
    .await
}

/// A session that got through startup: everything the relay needs.
struct Established {
    upstream: upstream::Upstream,
    max_message_bytes: usize,
    /// The session's places under its identity's and database's limits.
    _sessions: crate::limits::Sessions,
    /// Keeps the client's cancel key registered while the session lives.
    _cancel_key: cancel::CancelKey,
    cancel_target: CancelTarget,
    gate: gate::Gate,
}

async fn establish(
    conn: &mut ClientConn,
    client_addr: SocketAddr,
    state: &Arc<State>,
    admit: bool,
    session_id: u64,
) -> Result<Option<Established>, SessionError> {
    let snapshot = state.snapshot();
    let config = &snapshot.config;
    let mut encryption_negotiated = false;
    if let Some(acceptor) = &snapshot.acceptor {
        if conn.opens_with_tls().await? {
            conn.start_tls(acceptor, true).await?;
            encryption_negotiated = true;
        }
    }
    let (minor, params) = loop {
        match conn.read_startup().await? {
            StartupPacket::SslRequest if !encryption_negotiated => {
                encryption_negotiated = true;
                match &snapshot.acceptor {
                    Some(acceptor) => conn.start_tls(acceptor, false).await?,
                    None => conn.write_now(b"N").await?,
                }
            }
            // GSSAPI encryption is not offered; libpq then falls back to SSL or plain.
            StartupPacket::GssEncRequest if !encryption_negotiated => conn.write_now(b"N").await?,
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                return Err(vigil_wire::WireError::Malformed {
                    what: "repeated encryption request",
                }
                .into())
            }
            StartupPacket::Cancel { pid, secret } => {
                forward_cancel(state, pid, secret).await;
                return Ok(None);
            }
            StartupPacket::Startup { minor, params } => break (minor, params),
        }
    };

    if !admit {
        return Err(SessionError::TooManyConnections);
    }
    let tls_required = config.server.tls.as_ref().is_some_and(|tls| tls.require);
    if tls_required && !conn.stream.is_tls() {
        return Err(SessionError::TlsRequired);
    }
    let startup = startup::Startup::check(minor, &params)?;
    if let Some(negotiation) = startup.negotiation() {
        backend::negotiate_protocol_version(&mut conn.out, 0, &negotiation);
    }
    let authenticated = auth::authenticate(
        conn,
        state,
        &snapshot,
        startup.user,
        client_addr,
        startup.application_name,
    )
    .await;
    let identity = match authenticated {
        Ok(identity) => identity,
        Err(error) => {
            record_auth_failure(state, &error, startup.user, client_addr, startup.database);
            return Err(error);
        }
    };
    let span = tracing::Span::current();
    span.record("identity", identity.name.as_str());
    span.record("database", startup.database);

    let db = config
        .database(startup.database)
        .ok_or_else(|| SessionError::UnknownDatabase(startup.database.to_owned()))?;
    let sessions = session_places(state, config, &identity, db)?;
    let tls = upstream::tls_target(db, snapshot.connectors.get(&db.name));
    let connected = upstream::connect(db, tls.as_ref(), &startup.forwarded).await;
    if connected.is_err() {
        state
            .metrics
            .upstream_errors
            .fetch_add(1, Ordering::Relaxed);
    }
    let mut upstream = connected.map_err(|e: UpstreamError| SessionError::Upstream {
        database: db.name.clone(),
        relay: e.relay(),
        reason: e.to_string(),
    })?;
    let groups = config
        .identity(&identity.name)
        .map_or(&identity.groups, |c| &c.groups);
    let role = db
        .role_for(&identity.name, groups, identity.kind.as_str())
        .map(|mapped| mapped.role.clone());
    if let Some(role) = &role {
        enter_role(&mut upstream, role).await?;
    }
    let cancel_signal = Arc::new(crate::approvals::CancelSignal::default());
    let cancel_target = CancelTarget {
        database: db.name.clone(),
        upstream: db.upstream.clone(),
        tls,
        pid: upstream.pid,
        secret: upstream.secret,
        held: Arc::clone(&cancel_signal),
    };
    if let Some(reason) = relay::unsafe_parameters(&upstream.parameters) {
        return Err(SessionError::UnsafeSession(reason));
    }
    let cancel_key = CancelRegistry::register(state, cancel_target.clone());

    for (name, value) in &upstream.parameters {
        backend::parameter_status(&mut conn.out, name, value);
    }
    backend::backend_key_data(&mut conn.out, cancel_key.pid, cancel_key.secret);
    backend::ready_for_query(&mut conn.out, upstream.status);
    conn.flush().await?;
    info!(
        kind = identity.kind.as_str(),
        groups = ?identity.groups,
        auth = identity.auth_method.as_str(),
        tls = identity.tls,
        application_name = identity.application_name.as_deref().unwrap_or(""),
        "session started"
    );
    let audit = audit::SessionAudit::new(
        state.audit.clone(),
        config.audit.redaction,
        session_id,
        &identity,
        &db.name,
        role.as_deref().unwrap_or(&db.user),
    );
    audit.session_started();
    // Every session's analysis asks the catalog which built-in names the
    // database's users overloaded; a masked session also maps columns.
    state
        .catalogs
        .get(db, cancel_target.tls.as_ref())
        .await
        .map_err(|e| SessionError::Upstream {
            database: db.name.clone(),
            relay: None,
            reason: format!("reading the catalog: {e}"),
        })?;
    let masks = session_masks(state, &snapshot, &identity, db, cancel_target.tls.as_ref()).await?;
    let identity = Arc::new(identity);
    let live = state
        .sessions
        .register(session_id, Arc::clone(&identity), &db.name);
    state.metrics.sessions_total.fetch_add(1, Ordering::Relaxed);
    let encoding = upstream
        .parameters
        .iter()
        .find(|(name, _)| name == "client_encoding")
        .and_then(|(_, value)| crate::encoding::ClientEncoding::named(value))
        .unwrap_or_else(crate::encoding::ClientEncoding::utf8);
    let mut audit = audit;
    audit.set_client_encoding((!encoding.is_utf8()).then(|| encoding.name().to_owned()));
    let mut gate = gate::Gate::new(
        state.clone(),
        identity,
        db.name.clone(),
        audit,
        masks,
        live,
        encoding,
    );
    gate.cancel = cancel_signal;
    if let Some(role) = &role {
        gate.lock_role(role, &upstream.parameters);
    }
    Ok(Some(Established {
        upstream,
        max_message_bytes: config.server.max_message_bytes,
        _sessions: sessions,
        _cancel_key: cancel_key,
        cancel_target,
        gate,
    }))
}

/// Takes the session's places under `max_sessions` of its identity and of
/// `db`, or refuses it with the limit it would pass.
fn session_places(
    state: &State,
    config: &vigil_config::Config,
    identity: &crate::Identity,
    db: &vigil_config::Database,
) -> Result<crate::limits::Sessions, SessionError> {
    let identity_limit = config.identity(&identity.name).and_then(|c| c.max_sessions);
    state
        .limits
        .session(&identity.name, identity_limit, &db.name, db.max_sessions)
        .map_err(|refused| {
            state.metrics.refused(refused);
            let (what, limit) = match refused {
                crate::limits::Refused::IdentitySessions => {
                    (format!("identity \"{}\"", identity.name), identity_limit)
                }
                _ => (format!("database \"{}\"", db.name), db.max_sessions),
            };
            warn!(%what, "max_sessions reached: refusing");
            SessionError::TooManySessions {
                what,
                limit: limit.unwrap_or_default(),
            }
        })
}

/// Puts the new upstream session in `role`, the one its identity maps to:
/// the server must confirm the switch, and the role must not be a
/// superuser's.
async fn enter_role(upstream: &mut upstream::Upstream, role: &str) -> Result<(), SessionError> {
    let failed = |reason: String| SessionError::UpstreamRole {
        role: role.to_owned(),
        reason,
    };
    // Role names in the config are letters, digits and `_` (validated).
    upstream::simple_query(upstream, &format!("SET ROLE \"{role}\""))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let rows = upstream::simple_query(upstream, "SELECT pg_catalog.current_user()::text")
        .await
        .map_err(|e| failed(e.to_string()))?;
    let current = rows.first().and_then(|row| row.first()).cloned().flatten();
    if current.as_deref() != Some(role) {
        return Err(failed(format!(
            "the server reports current_user {current:?}"
        )));
    }
    let superuser = upstream
        .parameters
        .iter()
        .any(|(name, value)| name == "is_superuser" && value == "on");
    if superuser {
        return Err(failed(
            "it is a superuser role; a mapped role must not be".into(),
        ));
    }
    Ok(())
}

/// What `identity` sees masked on `db`, reading the upstream catalog first
/// if no session has yet; `None` when it sees everything in clear.
async fn session_masks(
    state: &Arc<State>,
    snapshot: &crate::state::Snapshot,
    identity: &crate::Identity,
    db: &vigil_config::Database,
    tls: Option<&(tokio_rustls::TlsConnector, String)>,
) -> Result<Option<Arc<SessionMasks>>, SessionError> {
    let config = &snapshot.config;
    let groups = config
        .identity(&identity.name)
        .map_or(&identity.groups, |c| &c.groups);
    let subject = vigil_policy::Subject {
        name: &identity.name,
        groups,
        kind: identity.kind.as_str(),
    };
    if !SessionMasks::applies(config, &subject, &db.name) {
        return Ok(None);
    }
    let catalog = state
        .catalogs
        .get(db, tls)
        .await
        .map_err(|e| SessionError::Upstream {
            database: db.name.clone(),
            relay: None,
            reason: format!("reading the catalog for masking: {e}"),
        })?;
    Ok(SessionMasks::new(
        config,
        Arc::clone(&snapshot.masking),
        &subject,
        &db.name,
        catalog,
        state.catalogs.version(&db.name),
        &state.analyzer,
    )
    .map(Arc::new))
}

async fn relay(conn: ClientConn, established: Established, mut phase: watch::Receiver<Phase>) {
    let started = Instant::now();
    let Established {
        upstream,
        max_message_bytes,
        cancel_target,
        gate,
        ..
    } = established;
    let mut relay = Relay::new(
        conn.stream,
        conn.inbuf,
        upstream.stream,
        upstream.leftover,
        max_message_bytes,
        upstream.status,
        gate,
    );
    let end = relay.run(&mut phase).await;
    match &end {
        Ok(End::ClientTerminated) => relay.finish_upstream(FINAL_WRITE).await,
        Ok(End::ClientGone) => {
            relay.finish_client(FINAL_WRITE).await;
            backend::terminate(&mut relay.to_upstream);
            relay.finish_upstream(FINAL_WRITE).await;
        }
        Ok(End::UpstreamGone) => relay.finish_client(FINAL_WRITE).await,
        Ok(End::Drained) | Ok(End::Cancelled { .. }) => {
            if let Ok(End::Cancelled { idle: false }) = end {
                // The server would run the statement to completion otherwise.
                let _ = cancel::send(&cancel_target).await;
            }
            relay.tell_client(&SessionError::ShuttingDown);
            relay.finish_client(FINAL_WRITE).await;
            backend::terminate(&mut relay.to_upstream);
            relay.finish_upstream(FINAL_WRITE).await;
        }
        Ok(End::Unsafe(reason)) => {
            warn!(
                reason,
                "closing session: the server would now read SQL differently from Vigil"
            );
            relay.tell_client(&SessionError::UnsafeSession(reason.clone()));
            relay.finish_client(FINAL_WRITE).await;
            backend::terminate(&mut relay.to_upstream);
            relay.finish_upstream(FINAL_WRITE).await;
        }
        Ok(End::RoleChanged(reason)) => {
            warn!(reason, "closing session: it left its locked upstream role");
            relay.tell_client(&SessionError::RoleChanged(reason.clone()));
            relay.finish_client(FINAL_WRITE).await;
            backend::terminate(&mut relay.to_upstream);
            relay.finish_upstream(FINAL_WRITE).await;
        }
        Ok(End::Violation(violation)) => {
            warn!(%violation, "closing session after protocol violation");
            relay.tell_client(&SessionError::Protocol(violation.clone()));
            relay.finish_client(FINAL_WRITE).await;
            backend::terminate(&mut relay.to_upstream);
            relay.finish_upstream(FINAL_WRITE).await;
        }
        Err(error) => {
            debug!(%error, "session i/o failed");
            backend::terminate(&mut relay.to_upstream);
            relay.finish_upstream(FINAL_WRITE).await;
        }
    }
    let stats = relay.stats;
    relay
        .gate()
        .audit
        .session_ended(stats.bytes_in, stats.bytes_out);
    info!(
        end = ?end.as_ref().map_err(|e| e.kind()),
        queries = stats.queries,
        refused = relay.refused(),
        bytes_in = stats.bytes_in,
        bytes_out = stats.bytes_out,
        duration_ms = started.elapsed().as_millis() as u64,
        "session ended"
    );
}

/// Failed logins go to the audit trail, with why (never the password).
fn record_auth_failure(
    state: &State,
    error: &SessionError,
    user: &str,
    client_addr: SocketAddr,
    database: &str,
) {
    let reason = match error {
        SessionError::AuthFailed { reason, .. } => reason.clone(),
        SessionError::LockedOut { .. } | SessionError::CleartextWithoutTls => error.to_string(),
        // The client left or broke the exchange: not a failed guess.
        _ => return,
    };
    state.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
    let event = vigil_audit::AuditEvent::AuthFailure(vigil_audit::AuthFailure {
        user: user.to_owned(),
        client_addr: client_addr.to_string(),
        reason,
        database: Some(database.to_owned()),
    });
    if let Err(error) = state.audit.record(event) {
        warn!(%error, "authentication failure not recorded in the audit trail");
    }
}

/// A CancelRequest arrived: pass it on, under the upstream's own key, to the
/// backend of the session whose Vigil key it carries. Unknown keys are ignored,
/// as PostgreSQL does.
async fn forward_cancel(state: &State, pid: i32, secret: i32) {
    match state.cancels.lookup(pid, secret) {
        // The session is holding a statement for approval: the statement
        // has not reached the server, so the cancel withdraws the request.
        Some(target) if target.held.cancel() => {
            info!(
                database = target.database,
                "cancel withdrew a statement held for approval"
            );
        }
        Some(target) => {
            if let Err(error) = cancel::send(&target).await {
                warn!(%error, database = target.database, "cancel could not reach upstream");
            } else {
                info!(database = target.database, "cancel forwarded");
            }
        }
        None => debug!("cancel request with unknown key ignored"),
    }
}
