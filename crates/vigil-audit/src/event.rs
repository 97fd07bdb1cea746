//! The audit event schema, version 1: what the proxy records and in which shape.
//!
//! The proxy fills an [`AuditEvent`]; the log adds the envelope (`v`, `seq`, `time`,
//! `prev_hash`, `hash`). Kinds and classes are plain strings so this crate does not depend
//! on the analyzer or the policy engine. `docs/audit.md` documents every field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{AuditError, Result};

/// Version of the envelope and body shapes below; stored in every record as `v`.
pub const SCHEMA_VERSION: u32 = 1;

/// One thing that happened, as the proxy reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum AuditEvent {
    /// `session.start`: a client authenticated and its session began.
    SessionStart(SessionInfo),
    /// `session.end`: the session closed.
    SessionEnd(SessionEnd),
    /// `statement`: a statement was analysed and decided, before it is forwarded.
    Statement(Statement),
    /// `statement.completed`: the server finished a statement that was forwarded.
    StatementCompleted(StatementCompleted),
    /// `auth.failure`: a client failed to authenticate.
    AuthFailure(AuthFailure),
    /// `approval.<action>`: a step in the life of an approval request.
    Approval(Approval),
    /// `config.reload`: the configuration was reloaded (or the reload failed).
    ConfigReload(ConfigReload),
    /// `admin.action`: an operator did something through the CLI or admin API.
    AdminAction(AdminAction),
}

/// Who is connected, from where, to what. Body of `session.start`; part of `session.end`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session_id: u64,
    pub identity: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub auth_method: String,
    pub client_addr: String,
    pub tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    pub database: String,
    /// The role the session runs under upstream: the service role's name,
    /// or the role the identity is mapped to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_role: Option<String>,
}

/// Body of `session.end`: the session plus its totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnd {
    #[serde(flatten)]
    pub session: SessionInfo,
    pub duration_us: u64,
    pub statements: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// How the statement text in a [`Statement`] was treated before it was recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Redaction {
    /// The text is exactly what the client sent, literals included.
    #[default]
    Keep,
    /// The caller replaced literals with placeholders (`$1`, `?`) before recording.
    Normalize,
}

/// The policy outcome recorded for a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
    Review,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Review => "review",
        }
    }
}

/// Body of `statement`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub session_id: u64,
    /// 1-based position of this statement within its session.
    pub statement_seq: u64,
    pub identity: String,
    pub database: String,
    /// The statement text; literals kept or already normalized, see `redaction`.
    pub text: String,
    #[serde(default)]
    pub redaction: Redaction,
    pub fingerprint: String,
    /// The client encoding the server read `text` in, when not UTF8; `text`
    /// is what the server decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_encoding: Option<String>,
    #[serde(default)]
    pub kinds: Vec<String>,
    pub class: String,
    /// `schema.table:access`, e.g. `public.users:write`.
    #[serde(default)]
    pub relations: Vec<String>,
    pub decision: Decision,
    #[serde(default)]
    pub rule_ids: Vec<String>,
    #[serde(default)]
    pub masked_columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Intent tags from sqlcommenter comments and startup options.
    #[serde(default)]
    pub intent: BTreeMap<String, String>,
}

/// Body of `statement.completed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementCompleted {
    pub session_id: u64,
    pub statement_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    pub duration_us: u64,
    /// False for a statement the server never ran: an earlier statement of
    /// its Query, or of its extended-protocol batch, failed.
    #[serde(default = "executed", skip_serializing_if = "is_executed")]
    pub executed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    pub bytes: u64,
    /// Values masked in the result, by column (result column name); never
    /// the values themselves.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub masked_values: std::collections::BTreeMap<String, u64>,
}

fn executed() -> bool {
    true
}

fn is_executed(executed: &bool) -> bool {
    *executed
}

/// Body of `auth.failure`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthFailure {
    pub user: String,
    pub client_addr: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// Body of `approval.<action>` (`requested`, `granted`, `denied`, `expired`, …).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// The part of the kind after `approval.`; lowercase letters, digits and `_`.
    #[serde(skip)]
    pub action: String,
    pub approval_id: String,
    /// Free-form details. Integers, strings, booleans, arrays and objects; no floats.
    #[serde(flatten)]
    pub fields: BTreeMap<String, Value>,
}

/// Body of `config.reload`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigReload {
    pub ok: bool,
    pub message: String,
}

/// Body of `admin.action`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAction {
    pub actor: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default)]
    pub detail: BTreeMap<String, String>,
}

impl AuditEvent {
    /// The event kind as stored (`statement`, `approval.granted`, …).
    pub fn kind(&self) -> String {
        match self {
            AuditEvent::SessionStart(_) => "session.start".into(),
            AuditEvent::SessionEnd(_) => "session.end".into(),
            AuditEvent::Statement(_) => "statement".into(),
            AuditEvent::StatementCompleted(_) => "statement.completed".into(),
            AuditEvent::AuthFailure(_) => "auth.failure".into(),
            AuditEvent::Approval(a) => format!("approval.{}", a.action),
            AuditEvent::ConfigReload(_) => "config.reload".into(),
            AuditEvent::AdminAction(_) => "admin.action".into(),
        }
    }

    /// The body as a JSON value (before canonical encoding).
    pub fn body(&self) -> Result<Value> {
        let value = match self {
            AuditEvent::SessionStart(b) => serde_json::to_value(b),
            AuditEvent::SessionEnd(b) => serde_json::to_value(b),
            AuditEvent::Statement(b) => serde_json::to_value(b),
            AuditEvent::StatementCompleted(b) => serde_json::to_value(b),
            AuditEvent::AuthFailure(b) => serde_json::to_value(b),
            AuditEvent::Approval(b) => {
                check_approval_action(&b.action)?;
                if b.fields.contains_key("approval_id") {
                    return Err(AuditError::InvalidEvent(
                        "approval field \"approval_id\" duplicates the id".into(),
                    ));
                }
                serde_json::to_value(b)
            }
            AuditEvent::ConfigReload(b) => serde_json::to_value(b),
            AuditEvent::AdminAction(b) => serde_json::to_value(b),
        };
        value.map_err(|e| AuditError::InvalidEvent(e.to_string()))
    }

    /// Rebuilds an event from a stored kind and body.
    pub fn from_parts(kind: &str, body: Value) -> std::result::Result<Self, String> {
        fn de<T: serde::de::DeserializeOwned>(body: Value) -> std::result::Result<T, String> {
            serde_json::from_value(body).map_err(|e| e.to_string())
        }
        Ok(match kind {
            "session.start" => AuditEvent::SessionStart(de(body)?),
            "session.end" => AuditEvent::SessionEnd(de(body)?),
            "statement" => AuditEvent::Statement(de(body)?),
            "statement.completed" => AuditEvent::StatementCompleted(de(body)?),
            "auth.failure" => AuditEvent::AuthFailure(de(body)?),
            "config.reload" => AuditEvent::ConfigReload(de(body)?),
            "admin.action" => AuditEvent::AdminAction(de(body)?),
            other => match other.strip_prefix("approval.") {
                Some(action) => {
                    let mut approval: Approval = de(body)?;
                    approval.action = action.to_owned();
                    AuditEvent::Approval(approval)
                }
                None => return Err(format!("unknown event kind {other:?}")),
            },
        })
    }
}

fn check_approval_action(action: &str) -> Result<()> {
    let ok = !action.is_empty()
        && action.len() <= 32
        && action
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AuditError::InvalidEvent(format!(
            "approval action {action:?} must be 1-32 of [a-z0-9_]"
        )))
    }
}

/// The searchable facts of an event, copied into store columns next to the record.
///
/// Computed from the body JSON (not the typed event) so that `verify` can recheck the
/// columns of records of any kind against their hashed text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFields {
    pub session_id: Option<u64>,
    /// `identity`, or `user` for `auth.failure`, or `actor` for `admin.action`.
    pub identity: Option<String>,
    pub database: Option<String>,
    pub decision: Option<String>,
    pub fingerprint: Option<String>,
    /// Relation names without the access suffix, sorted and deduplicated.
    pub relations: Vec<String>,
}

impl IndexFields {
    pub fn from_body(body: &Value) -> Self {
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
        let mut relations: Vec<String> = body
            .get("relations")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|r| relation_name(r).to_owned())
                    .collect()
            })
            .unwrap_or_default();
        relations.sort();
        relations.dedup();
        IndexFields {
            session_id: body.get("session_id").and_then(Value::as_u64),
            identity: text("identity")
                .or_else(|| text("user"))
                .or_else(|| text("actor")),
            database: text("database"),
            decision: text("decision"),
            fingerprint: text("fingerprint"),
            relations,
        }
    }
}

/// `public.users:write` → `public.users`.
pub fn relation_name(relation: &str) -> &str {
    relation.rsplit_once(':').map_or(relation, |(name, _)| name)
}

#[cfg(test)]
pub(crate) mod samples {
    //! Events used by tests across the crate.
    use super::*;

    pub fn session(id: u64) -> SessionInfo {
        SessionInfo {
            session_id: id,
            identity: "alice".into(),
            groups: vec!["dba".into()],
            auth_method: "scram-sha-256".into(),
            client_addr: "10.0.0.7:51234".into(),
            tls: true,
            application_name: Some("psql".into()),
            database: "prod".into(),
            upstream_role: None,
        }
    }

    pub fn statement(session_id: u64, n: u64) -> AuditEvent {
        AuditEvent::Statement(Statement {
            session_id,
            statement_seq: n,
            identity: "alice".into(),
            database: "prod".into(),
            text: format!("UPDATE users SET name = 'x' WHERE id = {n}"),
            redaction: Redaction::Keep,
            fingerprint: "a1b2c3".into(),
            client_encoding: None,
            kinds: vec!["update".into()],
            class: "write".into(),
            relations: vec!["public.users:write".into()],
            decision: Decision::Allow,
            rule_ids: vec![],
            masked_columns: vec![],
            approval_id: None,
            intent: BTreeMap::from([("ticket".into(), "OPS-1".into())]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;
    use serde_json::json;

    fn round_trip(event: AuditEvent) {
        let body = event.body().unwrap();
        assert_eq!(AuditEvent::from_parts(&event.kind(), body).unwrap(), event);
    }

    #[test]
    fn every_kind_round_trips() {
        round_trip(AuditEvent::SessionStart(session(1)));
        round_trip(AuditEvent::SessionEnd(SessionEnd {
            session: session(1),
            duration_us: 5,
            statements: 2,
            bytes_in: 10,
            bytes_out: 20,
        }));
        round_trip(statement(1, 1));
        round_trip(AuditEvent::StatementCompleted(StatementCompleted {
            session_id: 1,
            statement_seq: 1,
            rows: Some(3),
            duration_us: 90,
            executed: true,
            sqlstate: None,
            bytes: 100,
            masked_values: [("ssn".to_owned(), 3)].into(),
        }));
        round_trip(AuditEvent::AuthFailure(AuthFailure {
            user: "mallory".into(),
            client_addr: "1.2.3.4:5".into(),
            reason: "bad password".into(),
            database: None,
        }));
        round_trip(AuditEvent::Approval(Approval {
            action: "granted".into(),
            approval_id: "ap-1".into(),
            fields: BTreeMap::from([("by".into(), json!("bob"))]),
        }));
        round_trip(AuditEvent::ConfigReload(ConfigReload {
            ok: false,
            message: "rule x: unknown group".into(),
        }));
        round_trip(AuditEvent::AdminAction(AdminAction {
            actor: "root".into(),
            action: "audit.keygen".into(),
            target: None,
            detail: BTreeMap::new(),
        }));
    }

    #[test]
    fn approval_kind_carries_the_action_and_is_validated() {
        let mut a = Approval {
            action: "requested".into(),
            approval_id: "ap-9".into(),
            fields: BTreeMap::new(),
        };
        assert_eq!(AuditEvent::Approval(a.clone()).kind(), "approval.requested");
        a.action = "Bad Action".into();
        assert!(AuditEvent::Approval(a).body().is_err());
        assert!(AuditEvent::from_parts("nonsense", json!({})).is_err());
    }

    #[test]
    fn index_fields_come_from_the_body() {
        let body = statement(7, 1).body().unwrap();
        let idx = IndexFields::from_body(&body);
        assert_eq!(idx.session_id, Some(7));
        assert_eq!(idx.identity.as_deref(), Some("alice"));
        assert_eq!(idx.decision.as_deref(), Some("allow"));
        assert_eq!(idx.relations, vec!["public.users".to_string()]);
        let failure = json!({"user": "mallory", "client_addr": "x", "reason": "y"});
        assert_eq!(
            IndexFields::from_body(&failure).identity.as_deref(),
            Some("mallory")
        );
    }
}
