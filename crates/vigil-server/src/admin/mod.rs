//! The admin HTTP API (JSON over HTTP/1.1 on `server.admin_listen`):
//! approval requests and just-in-time grants, as docs/approvals.md
//! describes. Callers authenticate with an admin token (`Bearer`), whose
//! identity and role decide what they may do; an identity asking for a grant
//! may use its own Vigil password instead (`Basic`).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State as Shared};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use vigil_config::Role;

use crate::approvals::{Approver, GrantAsk, Refusal, RequestState};
use crate::State;

/// The admin API over the shared state.
pub fn app(state: Arc<State>) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/ready", get(status::ready))
        .route("/api/v1/whoami", get(status::whoami))
        .route("/api/v1/overview", get(status::overview))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/metrics", get(status::prometheus))
        .route("/api/v1/sessions", get(sessions::list))
        .route("/api/v1/sessions/{id}", get(sessions::show))
        .route("/api/v1/audit", get(audit::search))
        .route("/api/v1/audit/verify", get(audit::verify))
        .route("/api/v1/audit/{seq}", get(audit::show))
        .route("/api/v1/policy", get(policy::show))
        .route("/api/v1/policy/explain", post(policy::explain))
        .route("/api/v1/approvals", get(list_approvals))
        .route("/api/v1/approvals/{id}", get(show_approval))
        .route("/api/v1/approvals/{id}/approve", post(approve))
        .route("/api/v1/approvals/{id}/deny", post(deny))
        .route("/api/v1/grants", get(list_grants).post(request_grant))
        .merge(console::routes())
        .fallback(not_found)
        .with_state(state)
}

/// Serves the admin API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let address = listener.local_addr().ok();
    tracing::info!(listen = ?address, "admin API listening");
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(error) = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!(%error, "admin API stopped");
    }
}

/// The caller's address: password guesses count toward the same lockout
/// as failed logins to the proxy. Without one (a router called directly,
/// in tests) the caller counts as loopback.
struct Peer(IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0.ip());
        Ok(Peer(address))
    }
}

/// An API error: its status and `{"error": …}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"vigil\""),
            );
        }
        response
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        let status =
            StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError(status, refusal.message)
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError(status, message.into())
}

type Answer = Result<Response, ApiError>;

/// Who is calling.
struct Caller {
    identity: String,
    groups: Vec<String>,
    kind: String,
    /// `None`: an identity with its password, not a token.
    role: Option<Role>,
}

impl Caller {
    fn at_least(&self, role: Role) -> Result<(), ApiError> {
        match self.role {
            Some(have) if have >= role => Ok(()),
            _ => Err(error(
                StatusCode::FORBIDDEN,
                format!("this needs a token with role {} or above", role.as_str()),
            )),
        }
    }
}

/// The caller, from `Authorization`: a configured token, or (where
/// `password_from` gives the caller's address) an identity's Vigil password.
async fn caller(
    state: &Arc<State>,
    headers: &HeaderMap,
    password_from: Option<IpAddr>,
) -> Result<Caller, ApiError> {
    let unauthorized = |why: &str| error(StatusCode::UNAUTHORIZED, why);
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("send Authorization: Bearer <admin token>"))?;
    let snapshot = state.snapshot();
    let config = &snapshot.config;
    let identity_of = |name: &str, role| {
        config.identity(name).map(|identity| Caller {
            identity: identity.name.clone(),
            groups: identity.groups.clone(),
            kind: identity.kind.as_str().to_owned(),
            role,
        })
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        let digest = crate::approvals::hex(&Sha256::digest(token.trim().as_bytes()));
        let found = config
            .admin
            .tokens
            .iter()
            .find(|t| t.sha256.eq_ignore_ascii_case(&digest));
        return match found.and_then(|t| identity_of(&t.identity, Some(t.role))) {
            Some(caller) => Ok(caller),
            None => {
                delay(state).await;
                Err(unauthorized("unknown admin token"))
            }
        };
    }
    if let (Some(basic), Some(peer)) = (value.strip_prefix("Basic "), password_from) {
        if let Some(secs) = state.throttle.locked(peer, Instant::now()) {
            return Err(error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed logins from {peer}; try again in {secs} s"),
            ));
        }
        let _attempt = state.throttle.begin(peer).ok_or_else(|| {
            error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many logins in flight from {peer}"),
            )
        })?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| unauthorized("malformed Basic credentials"))?;
        let (name, password) = decoded
            .split_once(':')
            .ok_or_else(|| unauthorized("malformed Basic credentials"))?;
        let verifier = config.identity(name).and_then(|i| i.verifier.clone());
        let password = password.to_owned();
        // PBKDF2 is slow on purpose: off the runtime's threads.
        let ok = tokio::task::spawn_blocking(move || {
            verifier.is_some_and(|v| v.verify_password(&password))
        })
        .await
        .unwrap_or(false);
        if let (true, Some(caller)) = (ok, identity_of(name, None)) {
            return Ok(caller);
        }
        record_failure(state, name, peer);
        state.throttle.record_failure(peer, Instant::now());
        delay(state).await;
        return Err(unauthorized("wrong identity or password"));
    }
    Err(unauthorized(
        "send Authorization: Bearer <admin token> (or Basic with your Vigil password to ask for a grant)",
    ))
}

async fn delay(state: &State) {
    tokio::time::sleep(state.throttle.failure_delay).await;
}

fn record_failure(state: &State, user: &str, peer: IpAddr) {
    state
        .metrics
        .auth_failures
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let event = vigil_audit::AuditEvent::AuthFailure(vigil_audit::AuthFailure {
        user: user.to_owned(),
        client_addr: format!("{peer} (admin API)"),
        reason: "wrong password for a grant request".to_owned(),
        database: None,
    });
    if state.audit.durability() != vigil_audit::Durability::Off {
        let _ = state.audit.record(event);
    }
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn not_found() -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint; see /api/v1/openapi.json or docs/admin-api.md",
    )
}

/// The API described as OpenAPI 3.
const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
}

async fn list_approvals(
    Shared(state): Shared<Arc<State>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Answer {
    caller(&state, &headers, None)
        .await?
        .at_least(Role::Viewer)?;
    let wanted = query.state.as_deref().unwrap_or("pending");
    let filter = RequestState::parse(wanted).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            format!("state {wanted:?}: expected pending, approved, denied, expired, withdrawn, executed or all"),
        )
    })?;
    let requests = state.approvals.list(filter);
    Ok(Json(json!({ "requests": requests })).into_response())
}

async fn show_approval(
    Shared(state): Shared<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    caller(&state, &headers, None)
        .await?
        .at_least(Role::Viewer)?;
    match state.approvals.get(&id) {
        Some(request) => Ok(Json(request).into_response()),
        None => Err(error(
            StatusCode::NOT_FOUND,
            format!("no approval request {id:?}"),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    reason: Option<String>,
}

/// A JSON body, or the API's own 400.
fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("request body: {e}")))
}

/// An approver's call on a request: who, and the reason they gave.
async fn decider(
    state: &Arc<State>,
    headers: &HeaderMap,
    bytes: &Bytes,
) -> Result<(Caller, Option<String>), ApiError> {
    let caller = caller(state, headers, None).await?;
    caller.at_least(Role::Approver)?;
    let decision: Decision = body(bytes)?;
    let reason = decision.reason.filter(|r| !r.trim().is_empty());
    Ok((caller, reason))
}

async fn approve(
    Shared(state): Shared<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Answer {
    let (caller, reason) = decider(&state, &headers, &bytes).await?;
    let window = Duration::from_secs(state.snapshot().config.approvals.window_secs);
    let approver = Approver {
        name: &caller.identity,
        groups: &caller.groups,
    };
    let request = state.approvals.approve(&id, &approver, reason, window)?;
    Ok(Json(request).into_response())
}

async fn deny(
    Shared(state): Shared<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Answer {
    let (caller, reason) = decider(&state, &headers, &bytes).await?;
    let reason = reason.ok_or_else(|| error(StatusCode::BAD_REQUEST, "a denial needs a reason"))?;
    let approver = Approver {
        name: &caller.identity,
        groups: &caller.groups,
    };
    let request = state.approvals.deny(&id, &approver, reason)?;
    Ok(Json(request).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    group: String,
    database: String,
    duration_secs: u64,
    reason: Option<String>,
}

async fn request_grant(
    Shared(state): Shared<Arc<State>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let caller = caller(&state, &headers, Some(peer)).await?;
    let ask: GrantBody = body(&bytes)?;
    if ask.group.is_empty() || ask.database.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "give group, database and duration_secs",
        ));
    }
    let snapshot = state.snapshot();
    let settings = &snapshot.config.approvals;
    if snapshot.config.database(&ask.database).is_none() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("no database {:?} is configured", ask.database),
        ));
    }
    let subject = vigil_policy::Subject {
        name: &caller.identity,
        groups: &caller.groups,
        kind: &caller.kind,
    };
    let request = state.approvals.request_grant(
        &subject,
        &ask.database,
        GrantAsk {
            group: ask.group,
            duration_secs: ask.duration_secs,
        },
        ask.reason.filter(|r| !r.trim().is_empty()),
        settings,
    )?;
    Ok((StatusCode::CREATED, Json(request)).into_response())
}

async fn list_grants(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Answer {
    caller(&state, &headers, None)
        .await?
        .at_least(Role::Viewer)?;
    let grants: Vec<Value> = state
        .approvals
        .grants()
        .into_iter()
        .map(|g| {
            json!({
                "identity": g.identity,
                "group": g.group,
                "database": g.database,
                "approval_id": g.approval_id,
                "expires_at": vigil_audit::clock::format(g.expires_at),
            })
        })
        .collect();
    Ok(Json(json!({ "grants": grants })).into_response())
}

mod audit;
mod console;
mod policy;
mod sessions;
mod status;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod views_tests;
