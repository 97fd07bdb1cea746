//! The policy in force over the admin API: the rules as loaded (the
//! guardrail pack included), the databases and identities they speak of,
//! and `explain` for a text as a given identity would send it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use vigil_config::Role;
use vigil_policy::{Action, Rule};

use super::{body, caller, error, Answer};
use crate::State;

/// The longest text `explain` takes.
const MAX_EXPLAIN_BYTES: usize = 256 * 1024;

fn rule_json(rule: &Rule) -> Value {
    let when: Map<String, Value> = rule
        .conditions()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), Value::String(value)))
        .collect();
    let approvers = rule
        .approvers
        .as_ref()
        .map(|a| json!({ "identities": a.identities, "groups": a.groups, "count": a.count }));
    json!({
        "id": &*rule.id,
        "action": rule.action.as_str(),
        "origin": rule.origin,
        "description": rule.description,
        "message": rule.message,
        "hint": rule.hint,
        "when": when,
        "approvers": approvers,
        "approval": rule.approval.map(|m| format!("{m:?}").to_lowercase()),
    })
}

/// `GET /api/v1/policy`.
pub(super) async fn show(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Answer {
    caller(&state, &headers, None)
        .await?
        .at_least(Role::Viewer)?;
    let snapshot = state.snapshot();
    let config = &snapshot.config;
    let rules: Vec<Value> = config
        .compiled_policy
        .rules()
        .iter()
        .map(|r| rule_json(r))
        .collect();
    let databases: Vec<Value> = config
        .databases
        .iter()
        .map(|d| {
            json!({
                "name": d.name,
                "labels": d.labels,
                "default_action": d.default_action.as_str(),
            })
        })
        .collect();
    let identities: Vec<Value> = config
        .identities
        .iter()
        .map(|i| json!({ "name": i.name, "kind": i.kind.as_str(), "groups": i.groups }))
        .collect();
    Ok(Json(json!({
        "guardrails": config.policy.guardrails,
        "rules": rules,
        "databases": databases,
        "identities": identities,
        "generation": state.generation(),
    }))
    .into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExplainBody {
    sql: String,
    identity: String,
    database: String,
}

/// `POST /api/v1/policy/explain` `{sql, identity, database}`: what Vigil
/// would decide, and why, without running anything.
pub(super) async fn explain(
    Shared(state): Shared<Arc<State>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    caller(&state, &headers, None)
        .await?
        .at_least(Role::Viewer)?;
    let ask: ExplainBody = body(&bytes)?;
    if ask.sql.trim().is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "give sql, identity and database",
        ));
    }
    if ask.sql.len() > MAX_EXPLAIN_BYTES {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("sql is longer than {MAX_EXPLAIN_BYTES} bytes"),
        ));
    }
    let snapshot = state.snapshot();
    let config = &snapshot.config;
    let who = config.identity(&ask.identity).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            format!("no identity {:?} is configured", ask.identity),
        )
    })?;
    let db = config.database(&ask.database).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            format!("no database {:?} is configured", ask.database),
        )
    })?;
    let session = config.session_policy(who, db);
    // Parsing is deep recursion on hostile input: off the runtime's threads,
    // on the analyzer's own stack handling.
    let sql = ask.sql.clone();
    let analyzed = tokio::task::spawn_blocking(move || vigil_sql::analyze_uncached(&sql))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let analysis = match analyzed {
        Ok(analysis) => analysis,
        Err(e) => {
            return Ok(Json(json!({
                "decision": Action::Deny.as_str(),
                "rule": "vigil.unreadable",
                "message": format!("{e} (SQLSTATE {}); Vigil refuses it without forwarding", e.sqlstate()),
                "explain": format!("identity {} on database {}\n{e}\n", ask.identity, ask.database),
            }))
            .into_response())
        }
    };
    let explanation = session.explain(&analysis);
    let decision = &explanation.decision;
    let rule = decision.rule.as_ref();
    Ok(Json(json!({
        "decision": decision.action.as_str(),
        "rule": rule.map(|r| &*r.id),
        "message": rule.map(|r| r.message.clone()),
        "hint": rule.and_then(|r| r.hint.clone()),
        "explain": format!("identity {} on database {}\n{explanation}", ask.identity, ask.database),
    }))
    .into_response())
}
