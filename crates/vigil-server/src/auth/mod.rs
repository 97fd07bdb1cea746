//! Client authentication: the one seam that turns a connection into an
//! [`Identity`]. SCRAM-SHA-256 against configured verifiers (with
//! SCRAM-SHA-256-PLUS channel binding also offered over TLS), or a cleartext
//! password (over TLS unless the config allows otherwise).

mod throttle;

use std::net::SocketAddr;
use std::time::Instant;

pub(crate) use throttle::Throttle;
use vigil_auth::{Binding, ScramServer, Verifier, SCRAM_SHA_256, SCRAM_SHA_256_PLUS};
use vigil_config::AuthMethod;
use vigil_wire::backend;
use vigil_wire::fields::{self, SaslInitial};
use vigil_wire::tags::frontend::PASSWORD;

use crate::session::client::ClientConn;
use crate::state::Snapshot;
use crate::{AuthMethodUsed, Identity, SessionError, State};

/// The result of one exchange: the client proved the password or did not.
enum Proof {
    Valid,
    Invalid(String),
}

/// Authenticates `user` against the session's `snapshot` (its identities,
/// and the certificate the client was shown, for channel binding). On
/// success the AuthenticationOk is queued in `conn.out`; on a wrong password
/// the failure is counted and delayed.
pub(crate) async fn authenticate(
    conn: &mut ClientConn,
    state: &State,
    snapshot: &Snapshot,
    user: &str,
    client_addr: SocketAddr,
    application_name: Option<&str>,
) -> Result<Identity, SessionError> {
    let config = &snapshot.config;
    let ip = client_addr.ip();
    if let Some(retry_after_secs) = state.throttle.locked(ip, Instant::now()) {
        return Err(SessionError::LockedOut { retry_after_secs });
    }
    // Held until this attempt is decided: parallel guesses count too.
    let _attempt = state.throttle.begin(ip).ok_or(SessionError::LockedOut {
        retry_after_secs: 1,
    })?;
    let configured = config.identity(user);
    // An unknown user goes through the same exchange against a fake verifier,
    // so responses do not reveal which names exist.
    let (verifier, known) = match configured.and_then(|id| id.verifier.clone()) {
        Some(verifier) => (verifier, true),
        None => (
            Verifier::mock(&state.mock_secret, user).with_iterations(state.mock_iterations),
            false,
        ),
    };
    let (proof, method) = match config.auth.method {
        AuthMethod::ScramSha256 => (
            scram(
                conn,
                verifier,
                !known,
                snapshot
                    .tls_end_point
                    .as_deref()
                    .filter(|_| conn.stream.is_tls()),
            )
            .await?,
            AuthMethodUsed::ScramSha256,
        ),
        AuthMethod::Password => {
            if !conn.stream.is_tls() && !config.auth.allow_cleartext_without_tls {
                return Err(SessionError::CleartextWithoutTls);
            }
            (
                cleartext(conn, &verifier, known).await?,
                AuthMethodUsed::Password,
            )
        }
    };
    // A lockout that began while this exchange ran (other connections'
    // failures) still applies: a right guess must not slip through it.
    if let Some(retry_after_secs) = state.throttle.locked(ip, Instant::now()) {
        return Err(SessionError::LockedOut { retry_after_secs });
    }
    match (proof, configured) {
        (Proof::Valid, Some(identity)) => {
            backend::authentication_ok(&mut conn.out);
            Ok(Identity {
                name: identity.name.clone(),
                kind: identity.kind,
                groups: identity.groups.clone(),
                auth_method: method,
                client_addr,
                tls: conn.stream.is_tls(),
                application_name: application_name.map(str::to_owned),
            })
        }
        (proof, _) => {
            let reason = match proof {
                Proof::Invalid(reason) => reason,
                Proof::Valid => "no such identity".into(),
            };
            state.throttle.record_failure(ip, Instant::now());
            tokio::time::sleep(state.throttle.failure_delay).await;
            Err(SessionError::AuthFailed {
                user: user.to_owned(),
                reason: if known {
                    reason
                } else {
                    "no such identity".into()
                },
            })
        }
    }
}

async fn password_message(conn: &mut ClientConn) -> Result<bytes::Bytes, SessionError> {
    let (tag, body) = conn.read_message().await?;
    if tag != PASSWORD {
        return Err(SessionError::Unexpected {
            tag: char::from(tag),
            phase: "authentication",
        });
    }
    Ok(body)
}

/// `end_point` is the `tls-server-end-point` data when the connection can
/// bind; SCRAM-SHA-256-PLUS is offered only then, first, as PostgreSQL does.
async fn scram(
    conn: &mut ClientConn,
    verifier: Verifier,
    mock: bool,
    end_point: Option<&[u8]>,
) -> Result<Proof, SessionError> {
    let mechanisms: &[&str] = match end_point {
        Some(_) => &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256],
        None => &[SCRAM_SHA_256],
    };
    backend::authentication_sasl(&mut conn.out, mechanisms);
    conn.flush().await?;
    let body = password_message(conn).await?;
    let initial = SaslInitial::parse(&body)?;
    if !mechanisms.contains(&initial.mechanism) {
        return Ok(Proof::Invalid(format!(
            "client chose SASL mechanism {:?}",
            initial.mechanism
        )));
    }
    let binding = match end_point {
        Some(data) => Binding::Offered {
            plus_chosen: initial.mechanism == SCRAM_SHA_256_PLUS,
            data,
        },
        None => Binding::Unavailable,
    };
    let (server, first) = match ScramServer::start_bound(verifier, mock, initial.data, binding) {
        Ok(started) => started,
        Err(e) => return Ok(Proof::Invalid(e.to_string())),
    };
    backend::authentication_sasl_continue(&mut conn.out, &first);
    conn.flush().await?;
    let body = password_message(conn).await?;
    match server.finish(&body) {
        Ok(last) => {
            backend::authentication_sasl_final(&mut conn.out, &last);
            Ok(Proof::Valid)
        }
        Err(e) => Ok(Proof::Invalid(e.to_string())),
    }
}

async fn cleartext(
    conn: &mut ClientConn,
    verifier: &Verifier,
    known: bool,
) -> Result<Proof, SessionError> {
    backend::authentication_cleartext_password(&mut conn.out);
    conn.flush().await?;
    let body = password_message(conn).await?;
    let password = fields::password(&body)?.to_owned();
    // PBKDF2 takes milliseconds: off the session thread, so one client's
    // login does not stall every session sharing it. Always hashed, so a
    // known and an unknown user take the same time.
    let verifier = verifier.clone();
    let matches = tokio::task::spawn_blocking(move || verifier.verify_password(&password))
        .await
        .unwrap_or(false);
    Ok(if matches && known {
        Proof::Valid
    } else {
        Proof::Invalid("wrong password".into())
    })
}
