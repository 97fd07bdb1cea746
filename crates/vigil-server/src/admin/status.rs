//! How the proxy is doing: readiness, who the caller is, the console's
//! overview and the Prometheus metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State as Shared;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use vigil_config::Role;

use super::{caller, Answer};
use crate::approvals::RequestState;
use crate::metrics::Gauges;
use crate::State;

/// Rows in the overview's top tables.
const TOP: usize = 10;
/// Seconds of decisions the overview's chart shows.
const CHART_SECONDS: usize = 60;

fn audit_json(state: &State) -> Value {
    let log = &state.audit;
    let stats = log.stats();
    json!({
        "mode": format!("{:?}", log.durability()).to_lowercase(),
        "healthy": log.healthy(),
        "events": stats.events,
        "commits": stats.commits,
        "failed_events": stats.failed_events,
    })
}

/// `GET /api/v1/ready`: 200 while statements can be served (the audit
/// store accepts commits, or audit is off), 503 with the reason otherwise.
pub(super) async fn ready(Shared(state): Shared<Arc<State>>) -> impl IntoResponse {
    let audit = &state.audit;
    if audit.durability() != vigil_audit::Durability::Off && !audit.healthy() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "ready": false,
                "reason": "the audit store is not accepting commits: statements are refused until it is",
            })),
        );
    }
    (StatusCode::OK, Json(json!({ "ready": true })))
}

/// `GET /api/v1/whoami`: the token's identity and role.
pub(super) async fn whoami(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Answer {
    let me = caller(&state, &headers, None).await?;
    me.at_least(Role::Viewer)?;
    let role = me.role.map(Role::as_str);
    Ok(Json(json!({ "identity": me.identity, "groups": me.groups, "role": role })).into_response())
}

/// `GET /api/v1/overview`: what the console's first page shows.
pub(super) async fn overview(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Answer {
    caller(&state, &headers, None)
        .await?
        .at_least(Role::Viewer)?;
    let metrics = &state.metrics;
    let [allow, deny, review] = metrics.by_decision();
    let rate: Vec<Value> = metrics
        .rate(CHART_SECONDS)
        .iter()
        .map(|s| json!({ "t": s.unix, "allow": s.allow, "deny": s.deny, "review": s.review }))
        .collect();
    let identities: Vec<Value> = metrics
        .top_identities(TOP)
        .into_iter()
        .map(|(identity, statements)| json!({ "identity": identity, "statements": statements }))
        .collect();
    let fingerprints: Vec<Value> = metrics
        .top_fingerprints(TOP)
        .into_iter()
        .map(|(fingerprint, text, statements)| {
            json!({ "fingerprint": fingerprint, "text": &*text, "statements": statements })
        })
        .collect();
    Ok(Json(json!({
        "uptime_secs": metrics.uptime().as_secs(),
        "sessions_active": state.sessions.count(),
        "statements_total": allow + deny + review,
        "by_decision": { "allow": allow, "deny": deny, "review": review },
        "masked_values_total": metrics.masked_values.load(Ordering::Relaxed),
        "auth_failures_total": metrics.auth_failures.load(Ordering::Relaxed),
        "approvals_pending": state.approvals.list(Some(RequestState::Pending)).len(),
        "rate": rate,
        "top_identities": identities,
        "top_fingerprints": fingerprints,
        "audit": audit_json(&state),
    }))
    .into_response())
}

/// `GET /metrics`: Prometheus text. Needs a viewer token like the rest of
/// the API (Prometheus sends one with `authorization: { credentials: … }`).
pub(super) async fn prometheus(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Answer {
    caller(&state, &headers, None)
        .await?
        .at_least(Role::Viewer)?;
    let audit = &state.audit;
    let gauges = Gauges {
        sessions: state.sessions.count() as u64,
        approvals_pending: state.approvals.list(Some(RequestState::Pending)).len() as u64,
        audit: audit.stats(),
        audit_queued: audit.queued() as u64,
        audit_healthy: audit.healthy(),
        audit_enabled: audit.durability() != vigil_audit::Durability::Off,
    };
    let body = state.metrics.render(&gauges);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
