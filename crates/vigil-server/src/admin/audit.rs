//! The audit trail over the admin API: search with the CLI's filters and
//! paging, one record with its completion, and the chain's verification.
//! Reads go through a store connection of their own, off the runtime's
//! threads, so a long search never delays a session.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State as Shared};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use vigil_audit::{SearchFilter, Store, StoredEvent};
use vigil_config::Role;

use super::{caller, error, Answer, ApiError};
use crate::State;

/// Records a page holds unless the caller asks for fewer.
const DEFAULT_PAGE: usize = 50;
/// The most records one page may hold.
const MAX_PAGE: usize = 500;
/// How far past a statement its completion is looked for.
const COMPLETION_WINDOW: u64 = 100_000;

/// Opens the configured store for reading, or says why there is none.
pub(super) fn open_store(state: &State) -> Result<Box<dyn Store>, ApiError> {
    let snapshot = state.snapshot();
    let audit = &snapshot.config.audit;
    if audit.mode == vigil_audit::Durability::Off {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit is off ([audit] mode = \"off\"): there is no trail to read",
        ));
    }
    vigil_audit::open_existing_store(&audit.store).map_err(|e| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the audit store cannot be read: {e}"),
        )
    })
}

/// Runs a read of the store on a blocking thread.
pub(super) async fn read_store<T: Send + 'static>(
    state: &Arc<State>,
    read: impl FnOnce(&dyn Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || {
        let store = open_store(&state)?;
        read(store.as_ref())
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// A stored record as the API shows it: the JSON-lines form, hash included.
pub(super) fn record_json(event: &StoredEvent) -> Value {
    event
        .to_json_line()
        .ok()
        .and_then(|line| serde_json::from_str(&line).ok())
        .unwrap_or_else(|| json!({ "seq": event.seq, "error": "record cannot be decoded" }))
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the audit store cannot be read: {e}"),
    )
}

/// The audit search's query string.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchQuery {
    identity: Option<String>,
    database: Option<String>,
    table: Option<String>,
    decision: Option<String>,
    fingerprint: Option<String>,
    kind: Option<String>,
    session_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// Records older than this seq: the next page.
    before: Option<String>,
    limit: Option<String>,
}

/// A number from the query string; empty means absent.
fn number<T: std::str::FromStr>(name: &str, value: Option<String>) -> Result<Option<T>, ApiError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                format!("{name}: {text:?} is not a number"),
            )
        }),
    }
}

impl SearchQuery {
    fn filter(self) -> Result<SearchFilter, ApiError> {
        let bad = |what: &str, e: vigil_audit::AuditError| {
            error(StatusCode::BAD_REQUEST, format!("{what}: {e}"))
        };
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let limit = number("limit", self.limit)?.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("limit must be between 1 and {MAX_PAGE}"),
            ));
        }
        let mut filter = SearchFilter {
            identity: nonempty(self.identity),
            database: nonempty(self.database),
            table: nonempty(self.table),
            decision: nonempty(self.decision),
            fingerprint: nonempty(self.fingerprint),
            kind: nonempty(self.kind),
            session_id: number("session_id", self.session_id)?,
            before_seq: number("before", self.before)?,
            limit,
            ..SearchFilter::default()
        };
        if let Some(since) = nonempty(self.since) {
            filter = filter.since(&since).map_err(|e| bad("since", e))?;
        }
        if let Some(until) = nonempty(self.until) {
            filter = filter.until(&until).map_err(|e| bad("until", e))?;
        }
        Ok(filter)
    }
}

/// `GET /api/v1/audit`: newest first; `next_before` asks for the next page.
pub(super) async fn search(
    Shared(state): Shared<Arc<State>>,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    caller(&state, &headers, None)
        .await?
        .at_least(Role::Viewer)?;
    let Query(query) = query.map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))?;
    let filter = query.filter()?;
    let limit = filter.limit;
    let mut records = read_store(&state, move |store| {
        store.search(&filter).map_err(store_error)
    })
    .await?;
    records.reverse();
    let next_before = (records.len() == limit)
        .then(|| records.last().map(|r| r.seq))
        .flatten()
        .filter(|seq| *seq > 1);
    let events: Vec<Value> = records.iter().map(record_json).collect();
    Ok(Json(json!({ "events": events, "next_before": next_before })).into_response())
}

/// `GET /api/v1/audit/{seq}`: the record, and for a statement the
/// completion that answers it.
pub(super) async fn show(
    Shared(state): Shared<Arc<State>>,
    headers: HeaderMap,
    Path(seq): Path<String>,
) -> Answer {
    caller(&state, &headers, None)
        .await?
        .at_least(Role::Viewer)?;
    let seq: u64 = seq
        .parse()
        .map_err(|_| error(StatusCode::BAD_REQUEST, format!("{seq:?} is not a seq")))?;
    let (event, completion) = read_store(&state, move |store| {
        let event = store
            .scan(seq, 1)
            .map_err(store_error)?
            .into_iter()
            .find(|e| e.seq == seq)
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no audit record {seq}")))?;
        let completion = completion_of(store, &event)?;
        Ok((event, completion))
    })
    .await?;
    let completion = completion.as_ref().map(record_json);
    Ok(Json(json!({ "event": record_json(&event), "completion": completion })).into_response())
}

/// The `statement.completed` record of a `statement` record, if any.
fn completion_of(store: &dyn Store, event: &StoredEvent) -> Result<Option<StoredEvent>, ApiError> {
    if event.kind != "statement" {
        return Ok(None);
    }
    let body = record_json(event)["body"].clone();
    let (Some(session), Some(statement)) =
        (body["session_id"].as_u64(), body["statement_seq"].as_u64())
    else {
        return Ok(None);
    };
    let filter = SearchFilter {
        kind: Some("statement.completed".into()),
        session_id: Some(session),
        after_seq: Some(event.seq),
        before_seq: Some(event.seq.saturating_add(COMPLETION_WINDOW)),
        limit: MAX_PAGE,
        ..SearchFilter::default()
    };
    let found = store.search(&filter).map_err(store_error)?;
    Ok(found
        .into_iter()
        .find(|c| record_json(c)["body"]["statement_seq"].as_u64() == Some(statement)))
}

/// `GET /api/v1/audit/verify`: walks the chain (one walk at a time) with
/// the public half of the configured signing key.
pub(super) async fn verify(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Answer {
    caller(&state, &headers, None)
        .await?
        .at_least(Role::Viewer)?;
    let _one_at_a_time = state.verifying.lock().await;
    let key_path = state.snapshot().config.audit.signing_key.clone();
    let report = read_store(&state, move |store| {
        let key = match key_path {
            Some(path) => Some(
                vigil_audit::load_signing_key(&path)
                    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
                    .verifying_key(),
            ),
            None => None,
        };
        vigil_audit::verify(store, key.as_ref(), None).map_err(store_error)
    })
    .await?;
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    Ok(Json(json!({
        "ok": report.is_ok(),
        "records": report.records,
        "first_seq": report.first_seq,
        "last_seq": report.last.map(|t| t.seq),
        "first_bad_seq": report.first_bad_seq(),
        "problems": problems,
        "checkpoints_verified": report.checkpoints_verified,
        "unsigned_tail": report.unsigned_tail,
        "notes": report.notes,
        "checked_at": vigil_audit::clock::format(vigil_audit::clock::now_micros()),
    }))
    .into_response())
}

/// Statement records of one session, oldest first, each with its
/// completion's outcome folded in (`completion`).
pub(super) fn session_timeline(store: &dyn Store, session: u64) -> Result<Vec<Value>, ApiError> {
    let filter = SearchFilter {
        session_id: Some(session),
        limit: MAX_PAGE,
        ..SearchFilter::default()
    };
    let records = store.search(&filter).map_err(store_error)?;
    let mut completions: HashMap<u64, Value> = HashMap::new();
    let mut timeline = Vec::new();
    for record in &records {
        let json = record_json(record);
        match record.kind.as_str() {
            "statement.completed" => {
                if let Some(n) = json["body"]["statement_seq"].as_u64() {
                    completions.insert(n, json["body"].clone());
                }
            }
            _ => timeline.push(json),
        }
    }
    for entry in &mut timeline {
        let n = entry["body"]["statement_seq"].as_u64();
        if let (Some(n), Some(map)) = (n, entry.as_object_mut()) {
            if let Some(done) = completions.remove(&n) {
                map.insert("completion".into(), done);
            }
        }
    }
    Ok(timeline)
}
