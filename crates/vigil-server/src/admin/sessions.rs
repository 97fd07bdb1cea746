//! Live sessions over the admin API: who is connected, from where, since
//! when, and what they run; one session's statement timeline comes from
//! the audit trail, so it outlives the session.

use std::sync::Arc;

use axum::extract::{Path, State as Shared};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use vigil_config::Role;

use super::audit::{read_store, session_timeline};
use super::{caller, error, Answer};
use crate::live::LiveSession;
use crate::State;

fn session_json(session: &LiveSession) -> Value {
    let identity = &session.identity;
    json!({
        "id": session.id,
        "identity": identity.name,
        "kind": identity.kind.as_str(),
        "groups": identity.groups,
        "database": session.database,
        "client_addr": identity.client_addr.to_string(),
        "application_name": identity.application_name,
        "tls": identity.tls,
        "auth_method": identity.auth_method.as_str(),
        "started_at": vigil_audit::clock::format(session.started_at),
        "statements": session.statements(),
        "refused": session.refused(),
        "state": session.activity().as_str(),
        "current_statement": session.current_statement(),
    })
}

/// `GET /api/v1/sessions`: the open sessions, oldest first.
pub(super) async fn list(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Answer {
    caller(&state, &headers, None)
        .await?
        .at_least(Role::Viewer)?;
    let sessions: Vec<Value> = state
        .sessions
        .list()
        .iter()
        .map(|s| session_json(s))
        .collect();
    Ok(Json(json!({ "sessions": sessions })).into_response())
}

/// `GET /api/v1/sessions/{id}`: the session if it is still open, and its
/// statements as the audit trail has them.
pub(super) async fn show(
    Shared(state): Shared<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    caller(&state, &headers, None)
        .await?
        .at_least(Role::Viewer)?;
    let id: u64 = id.parse().map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a session id"),
        )
    })?;
    let live = state.sessions.get(id).map(|s| session_json(&s));
    let audit_off = state.audit.durability() == vigil_audit::Durability::Off;
    let events = match audit_off {
        true => Vec::new(),
        false => read_store(&state, move |store| session_timeline(store, id)).await?,
    };
    if live.is_none() && events.is_empty() {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no session {id} is open or in the audit trail"),
        ));
    }
    Ok(Json(json!({ "session": live, "events": events })).into_response())
}
