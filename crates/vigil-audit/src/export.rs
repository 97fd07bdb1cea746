//! Export for SIEMs: JSON lines (the records as hashed, plus their hash) and OCSF 1.1.
//!
//! The OCSF mapping is best fit: statements and sessions are Datastore Activity (class
//! 6005), failed logins are Authentication (3002), configuration reloads are Application
//! Lifecycle (6002), approvals and admin actions are API Activity (6003). Every OCSF event
//! also carries the original Vigil record under `unmapped.vigil`, so nothing is lost and
//! the chain can still be checked from an export. `docs/audit.md` has the field table.

use std::io::Write;
use std::net::SocketAddr;

use serde_json::{json, Map, Value};

use crate::chain::{Envelope, StoredEvent};
use crate::clock;
use crate::error::{AuditError, Result};
use crate::store::Store;

/// OCSF schema version the export follows.
pub const OCSF_VERSION: &str = "1.1.0";

/// How records are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// One canonical record per line, with its `hash`.
    JsonLines,
    /// One OCSF event per line.
    Ocsf,
}

/// Writes every record with `seq >= from`, in order, reading the store page by page.
/// Returns how many records were written.
pub fn export(
    store: &dyn Store,
    from: u64,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64> {
    const PAGE: usize = 1000;
    let mut next = from;
    let mut written = 0;
    loop {
        let page = store.scan(next, PAGE)?;
        written += write_records(&page, format, out)?;
        match page.last() {
            Some(last) if page.len() == PAGE => next = last.seq + 1,
            _ => break,
        }
    }
    out.flush().map_err(AuditError::Export)?;
    Ok(written)
}

/// Writes the given records (e.g. a search result) in `format`.
pub fn write_records(
    records: &[StoredEvent],
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64> {
    for record in records {
        let line = match format {
            ExportFormat::JsonLines => record.to_json_line()?,
            ExportFormat::Ocsf => to_ocsf(record)?.to_string(),
        };
        writeln!(out, "{line}").map_err(AuditError::Export)?;
    }
    Ok(records.len() as u64)
}

/// Maps one record to an OCSF event.
pub fn to_ocsf(record: &StoredEvent) -> Result<Value> {
    let env = Envelope::parse(&record.canonical).map_err(|reason| AuditError::Decode {
        seq: record.seq,
        reason,
    })?;
    let body = &env.body;
    let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or_default();
    let time_ms = clock::parse(&env.time).map_or(0, |us| us.div_euclid(1000));
    let original: Value = serde_json::from_str(&record.to_json_line()?).unwrap_or(Value::Null);

    let mut ev = Map::new();
    let (class_uid, activity_id, activity_name) = classify(&env.kind, body);
    let category_uid = class_uid / 1000;
    ev.insert("category_uid".into(), json!(category_uid));
    ev.insert("class_uid".into(), json!(class_uid));
    ev.insert("activity_id".into(), json!(activity_id));
    ev.insert("activity_name".into(), json!(activity_name));
    ev.insert("type_uid".into(), json!(class_uid * 100 + activity_id));
    ev.insert("time".into(), json!(time_ms));
    ev.insert(
        "metadata".into(),
        json!({
            "version": OCSF_VERSION,
            "product": {"name": "Vigil", "vendor_name": "Vigil", "version": env!("CARGO_PKG_VERSION")},
            "log_name": "vigil-audit",
            "uid": record.hash.to_hex(),
            "sequence": env.seq,
            "original_time": env.time,
            "event_code": env.kind,
        }),
    );

    let (failed, severity_id) = match env.kind.as_str() {
        "statement" => (
            text("decision") == "deny",
            if text("decision") == "allow" { 1 } else { 3 },
        ),
        "statement.completed" => (body.get("sqlstate").is_some_and(failed_sqlstate), 1),
        "auth.failure" => (true, 3),
        "config.reload" => (!body.get("ok").and_then(Value::as_bool).unwrap_or(true), 1),
        _ => (false, 1),
    };
    ev.insert("severity_id".into(), json!(severity_id));
    ev.insert("status_id".into(), json!(if failed { 2 } else { 1 }));
    ev.insert(
        "status".into(),
        json!(if failed { "Failure" } else { "Success" }),
    );

    if let Some(identity) = body
        .get("identity")
        .or_else(|| body.get("user"))
        .or_else(|| body.get("actor"))
        .and_then(Value::as_str)
    {
        let mut user = json!({"name": identity});
        if let Some(groups) = body.get("groups").and_then(Value::as_array) {
            let groups: Vec<Value> = groups.iter().map(|g| json!({"name": g})).collect();
            user["groups"] = Value::Array(groups);
        }
        let mut actor = json!({"user": user});
        if let Some(session) = body.get("session_id").and_then(Value::as_u64) {
            actor["session"] = json!({"uid": session.to_string()});
        }
        if env.kind == "auth.failure" {
            ev.insert("user".into(), actor["user"].clone());
        }
        ev.insert("actor".into(), actor);
    }
    if let Some(addr) = body.get("client_addr").and_then(Value::as_str) {
        ev.insert("src_endpoint".into(), endpoint(addr));
    }
    if let Some(db) = body.get("database").and_then(Value::as_str) {
        ev.insert("database".into(), json!({"name": db}));
    }
    if let Some(session) = body.get("session_id").and_then(Value::as_u64) {
        ev["metadata"]["correlation_uid"] = json!(session.to_string());
    }
    match env.kind.as_str() {
        "statement" => {
            let mut query = json!({"query_string": text("text")});
            if !text("fingerprint").is_empty() {
                query["uid"] = json!(text("fingerprint"));
            }
            ev.insert("query_info".into(), query);
            if let Some(first) = body
                .get("relations")
                .and_then(Value::as_array)
                .and_then(|r| r.first())
                .and_then(Value::as_str)
            {
                ev.insert(
                    "table".into(),
                    json!({"name": crate::event::relation_name(first)}),
                );
            }
            let (action_id, action, disposition_id) = match text("decision") {
                "allow" => (1, "Allowed", 1),
                "deny" => (2, "Denied", 2),
                _ => (99, "Review", 99),
            };
            ev.insert("action_id".into(), json!(action_id));
            ev.insert("action".into(), json!(action));
            ev.insert("disposition_id".into(), json!(disposition_id));
            if let Some(rule) = body
                .get("rule_ids")
                .and_then(Value::as_array)
                .and_then(|r| r.first())
            {
                ev.insert("policy".into(), json!({"uid": rule, "name": rule}));
            }
            ev.insert(
                "message".into(),
                json!(format!("{} {}", text("decision"), text("class"))),
            );
        }
        "statement.completed" => {
            if let Some(bytes) = body.get("bytes") {
                ev.insert(
                    "query_info".into(),
                    json!({"query_string": "", "bytes": bytes}),
                );
            }
            if let Some(code) = body.get("sqlstate") {
                ev.insert("status_code".into(), code.clone());
            }
            if let Some(d) = body.get("duration_us").and_then(Value::as_u64) {
                ev.insert("duration".into(), json!(d / 1000));
            }
        }
        "session.end" => {
            if let Some(d) = body.get("duration_us").and_then(Value::as_u64) {
                ev.insert("duration".into(), json!(d / 1000));
            }
        }
        "auth.failure" => {
            ev.insert("status_detail".into(), json!(text("reason")));
        }
        "config.reload" => {
            ev.insert(
                "app".into(),
                json!({"name": "Vigil", "vendor_name": "Vigil"}),
            );
            ev.insert("message".into(), json!(text("message")));
        }
        kind if kind == "admin.action" || kind.starts_with("approval.") => {
            let operation = if kind == "admin.action" {
                text("action")
            } else {
                kind
            };
            ev.insert("api".into(), json!({"operation": operation}));
        }
        _ => {}
    }
    ev.insert("unmapped".into(), json!({"vigil": original}));
    Ok(Value::Object(ev))
}

/// (class_uid, activity_id, activity_name) for a record.
fn classify(kind: &str, body: &Value) -> (u32, u32, String) {
    match kind {
        "session.start" => (6005, 3, "Connect".into()),
        "session.end" => (6005, 99, "Disconnect".into()),
        "statement" => {
            let kinds: Vec<&str> = body
                .get("kinds")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let class = body
                .get("class")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let activity = kinds
                .iter()
                .find_map(|k| match *k {
                    "select" => Some(4),
                    "insert" => Some(6),
                    "update" => Some(2),
                    "delete" | "truncate" => Some(7),
                    "merge" | "copy" => Some(5),
                    _ => None,
                })
                .unwrap_or(match class {
                    "read" => 4,
                    "write" => 5,
                    _ => 99,
                });
            let name = match activity {
                2 => "Update",
                4 => "Query",
                5 => "Write",
                6 => "Create",
                7 => "Delete",
                _ => "Other",
            };
            (6005, activity, name.into())
        }
        "statement.completed" => (6005, 99, "Complete".into()),
        "auth.failure" => (3002, 1, "Logon".into()),
        "config.reload" => (6002, 99, "Reload".into()),
        _ => (6003, 99, kind.into()),
    }
}

/// SQLSTATE classes 00 (success), 01 (warning) and 02 (no data) are not failures.
fn failed_sqlstate(code: &Value) -> bool {
    code.as_str()
        .is_some_and(|c| !(c.starts_with("00") || c.starts_with("01") || c.starts_with("02")))
}

fn endpoint(addr: &str) -> Value {
    match addr.parse::<SocketAddr>() {
        Ok(sa) => json!({"ip": sa.ip().to_string(), "port": sa.port()}),
        Err(_) => json!({"name": addr}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{seal, ChainHash};
    use crate::event::samples::{session, statement};
    use crate::event::{AuditEvent, AuthFailure};
    use crate::store::{SqliteOptions, SqliteStore};
    use crate::testing::TempDir;

    fn sealed(event: AuditEvent) -> StoredEvent {
        seal(1, "2026-01-02T03:04:05.678901Z", &event, &ChainHash::ZERO).unwrap()
    }

    #[test]
    fn statements_map_to_datastore_activity() {
        let v = to_ocsf(&sealed(statement(7, 1))).unwrap();
        assert_eq!(v["class_uid"], 6005);
        assert_eq!(v["category_uid"], 6);
        assert_eq!(v["activity_id"], 2);
        assert_eq!(v["type_uid"], 600502);
        assert_eq!(v["time"], 1_767_323_045_678i64);
        assert_eq!(v["actor"]["user"]["name"], "alice");
        assert_eq!(v["actor"]["session"]["uid"], "7");
        assert_eq!(v["database"]["name"], "prod");
        assert_eq!(v["table"]["name"], "public.users");
        assert_eq!(v["action"], "Allowed");
        assert!(v["query_info"]["query_string"]
            .as_str()
            .unwrap()
            .starts_with("UPDATE users"));
        assert_eq!(v["unmapped"]["vigil"]["seq"], 1);
        assert_eq!(v["metadata"]["version"], OCSF_VERSION);
    }

    #[test]
    fn sessions_and_failures_map_to_their_classes() {
        let start = to_ocsf(&sealed(AuditEvent::SessionStart(session(3)))).unwrap();
        assert_eq!(
            (start["class_uid"].as_u64(), start["activity_id"].as_u64()),
            (Some(6005), Some(3))
        );
        assert_eq!(start["src_endpoint"]["ip"], "10.0.0.7");
        assert_eq!(start["src_endpoint"]["port"], 51234);
        assert_eq!(start["actor"]["user"]["groups"][0]["name"], "dba");
        let failure = to_ocsf(&sealed(AuditEvent::AuthFailure(AuthFailure {
            user: "mallory".into(),
            client_addr: "/tmp/.s.PGSQL.6432".into(),
            reason: "bad password".into(),
            database: None,
        })))
        .unwrap();
        assert_eq!(failure["class_uid"], 3002);
        assert_eq!(failure["status_id"], 2);
        assert_eq!(failure["user"]["name"], "mallory");
        assert_eq!(failure["src_endpoint"]["name"], "/tmp/.s.PGSQL.6432");
    }

    #[test]
    fn export_streams_every_record_in_both_formats() {
        let dir = TempDir::new("export");
        let mut store =
            SqliteStore::open(&dir.path().join("e.db"), SqliteOptions::default()).unwrap();
        let first = sealed(statement(1, 1));
        let second = seal(
            2,
            "2026-01-02T03:04:06.000000Z",
            &statement(1, 2),
            &first.hash,
        )
        .unwrap();
        store.append(&[first, second.clone()], &[]).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            export(&store, 0, ExportFormat::JsonLines, &mut out).unwrap(),
            2
        );
        let text = String::from_utf8(out).unwrap();
        let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["hash"], second.hash.to_hex());
        let mut out = Vec::new();
        assert_eq!(export(&store, 2, ExportFormat::Ocsf, &mut out).unwrap(), 1);
        let ocsf: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(ocsf["metadata"]["sequence"], 2);
    }
}
