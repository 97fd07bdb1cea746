//! A session's side of the audit trail: the events it records, in the shape
//! `vigil-audit` stores (see docs/audit.md), and the numbering of its
//! statements.
//!
//! Statement events are written before the statement is forwarded (the relay
//! waits for them in `strict` mode); everything else is queued without
//! waiting: session start and end, and each statement's completion.

use std::collections::BTreeMap;
use std::time::Instant;

use tracing::warn;
use vigil_audit::{
    AuditError, AuditEvent, AuditLog, Decision as AuditDecision, Redaction, SessionEnd,
    SessionInfo, Statement as StatementEvent, StatementCompleted,
};
use vigil_policy::Action;
use vigil_sql::{Access, Analysis, Statement};

use super::owed::Completion;
use crate::Identity;

pub(crate) struct SessionAudit {
    log: AuditLog,
    info: SessionInfo,
    redaction: Redaction,
    /// Intent from the startup packet (`application_name`).
    startup_intent: BTreeMap<String, String>,
    /// Statement events recorded so far; the next one's number is this + 1.
    statements: u64,
    /// The client encoding texts are read in, when not UTF8.
    client_encoding: Option<String>,
    started: Instant,
}

/// How a statement was decided, for its event.
pub(crate) struct Decided<'a> {
    pub(crate) action: Action,
    pub(crate) rule: Option<&'a str>,
    /// Per statement, the masked columns it reads (`schema.table.column`).
    pub(crate) masked: &'a [Vec<String>],
    /// The approval request it was sent to review under.
    pub(crate) approval: Option<&'a str>,
}

impl SessionAudit {
    pub(crate) fn new(
        log: AuditLog,
        redaction: Redaction,
        session_id: u64,
        identity: &Identity,
        database: &str,
        upstream_role: &str,
    ) -> SessionAudit {
        let info = SessionInfo {
            session_id,
            identity: identity.name.clone(),
            groups: identity.groups.clone(),
            auth_method: identity.auth_method.as_str().to_owned(),
            client_addr: identity.client_addr.to_string(),
            tls: identity.tls,
            application_name: identity.application_name.clone(),
            database: database.to_owned(),
            upstream_role: Some(upstream_role.to_owned()),
        };
        let startup_intent = identity
            .application_name
            .iter()
            .map(|name| ("application_name".to_owned(), name.clone()))
            .collect();
        SessionAudit {
            log,
            info,
            redaction,
            startup_intent,
            statements: 0,
            client_encoding: None,
            started: Instant::now(),
        }
    }

    /// Whether events are recorded at all (`mode = "off"` records none).
    pub(crate) fn enabled(&self) -> bool {
        self.log.durability() != vigil_audit::Durability::Off
    }

    pub(crate) fn session_id(&self) -> u64 {
        self.info.session_id
    }

    pub(crate) fn log(&self) -> &AuditLog {
        &self.log
    }

    /// Texts are read in `encoding` from now on (`None`: UTF8).
    pub(crate) fn set_client_encoding(&mut self, encoding: Option<String>) {
        self.client_encoding = encoding;
    }

    pub(crate) fn session_started(&self) {
        self.record(AuditEvent::SessionStart(self.info.clone()));
    }

    pub(crate) fn session_ended(&self, bytes_in: u64, bytes_out: u64) {
        self.record(AuditEvent::SessionEnd(SessionEnd {
            session: self.info.clone(),
            duration_us: micros(self.started),
            statements: self.statements,
            bytes_in,
            bytes_out,
        }));
    }

    /// The events of every statement of `analysis`, decided as `decided`,
    /// with the sequence numbers they take.
    pub(crate) fn statements(
        &mut self,
        analysis: &Analysis,
        decided: &Decided<'_>,
        events: &mut Vec<AuditEvent>,
    ) -> Vec<u64> {
        analysis
            .statements
            .iter()
            .enumerate()
            .map(|(i, statement)| {
                let seq = self.next_seq();
                let masked = decided.masked.get(i).cloned().unwrap_or_default();
                events.push(self.statement_event(seq, statement, &analysis.tags, decided, masked));
                seq
            })
            .collect()
    }

    pub(crate) fn completed(&self, done: Completion) {
        self.record(AuditEvent::StatementCompleted(StatementCompleted {
            session_id: self.info.session_id,
            statement_seq: done.seq,
            rows: done.rows,
            duration_us: micros(done.started),
            sqlstate: done.sqlstate,
            executed: done.executed,
            bytes: done.bytes,
            masked_values: done.masked,
        }));
    }

    fn next_seq(&mut self) -> u64 {
        self.statements += 1;
        self.statements
    }

    fn statement_event(
        &self,
        seq: u64,
        statement: &Statement,
        tags: &BTreeMap<String, String>,
        decided: &Decided<'_>,
        masked_columns: Vec<String>,
    ) -> AuditEvent {
        let text = match self.redaction {
            Redaction::Keep => statement.text.clone(),
            Redaction::Normalize => statement.normalized.clone(),
        };
        let mut kinds = Vec::with_capacity(1 + statement.inner_kinds.len());
        kinds.push(statement.kind.to_string());
        kinds.extend(statement.inner_kinds.iter().map(ToString::to_string));
        let relations = statement
            .relations
            .iter()
            .map(|r| {
                let access = match r.access {
                    Access::Read => "read",
                    Access::Write => "write",
                };
                format!("{}:{access}", r.qualified_name())
            })
            .collect();
        let mut intent = self.startup_intent.clone();
        intent.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        AuditEvent::Statement(StatementEvent {
            session_id: self.info.session_id,
            statement_seq: seq,
            identity: self.info.identity.clone(),
            database: self.info.database.clone(),
            text,
            redaction: self.redaction,
            fingerprint: statement.fingerprint.clone(),
            client_encoding: self.client_encoding.clone(),
            kinds,
            class: statement.class.to_string(),
            relations,
            decision: match decided.action {
                Action::Allow => AuditDecision::Allow,
                Action::Review => AuditDecision::Review,
                Action::Deny => AuditDecision::Deny,
            },
            rule_ids: decided.rule.iter().map(|r| (*r).to_owned()).collect(),
            masked_columns,
            approval_id: decided.approval.map(str::to_owned),
            intent,
        })
    }

    /// Queues an event nothing waits for. Such an event lost to a failing
    /// store is counted by the log and logged here.
    fn record(&self, event: AuditEvent) {
        if !self.enabled() {
            return;
        }
        if let Err(error) = self.log.record(event) {
            warn!(%error, "audit event not recorded");
        }
    }
}

/// The error a statement gets when its audit event could not be written:
/// nothing ran, and it may be retried once the store is back.
pub(crate) fn unavailable_report(error: &AuditError) -> bytes::Bytes {
    use vigil_wire::backend::{self, Report, Severity};
    let message =
        format!("Vigil refused this statement: its audit event could not be recorded ({error})");
    let report = Report::new(Severity::Error, "58030", &message)
        .detail("Vigil forwards no statement before its audit event is stored; nothing ran.")
        .hint("Retry when the audit store is available again; Vigil reconnects to it by itself.");
    let mut out = bytes::BytesMut::new();
    backend::error_response(&mut out, &report);
    out.freeze()
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}
