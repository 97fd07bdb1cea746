//! A statement the policy sends to review, in a live session: it becomes an
//! approval request, and either waits for it (`hold`) or is refused until
//! approved (`refuse`). What the client hears at each turn is built here.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use vigil_policy::{ApprovalMode, Approvers, Rule};
use vigil_sql::Analysis;
use vigil_wire::backend::{self, Report, Severity};

use crate::approvals::{self, BindParameters, Claim, NewRequest, Outcome, StatementAsk, Wait};
use crate::State;

/// What runs, as the approvers will see it.
pub(crate) struct Asking<'a> {
    pub(crate) sql: &'a str,
    pub(crate) parameters: Option<&'a BindParameters>,
}

/// What the review of one statement came to.
pub(crate) enum Reviewed {
    /// Hold mode: the session waits on `wait`; `notice` tells the client so now.
    Hold { wait: Wait, notice: Bytes },
    /// Refuse mode, approved earlier for exactly this: it runs now.
    Run { id: String },
    /// Refused; the request's id, if one was made, and the client's error.
    Refused { id: Option<String>, error: Bytes },
}

impl Reviewed {
    pub(crate) fn id(&self) -> Option<&str> {
        match self {
            Reviewed::Hold { wait, .. } => Some(&wait.id),
            Reviewed::Run { id } => Some(id),
            Reviewed::Refused { id, .. } => id.as_deref(),
        }
    }
}

/// Who asks, and where.
pub(crate) struct Asker<'a> {
    pub(crate) state: &'a Arc<State>,
    pub(crate) identity: &'a str,
    pub(crate) database: &'a str,
    pub(crate) session_id: u64,
}

/// Makes (or, in refuse mode, claims) the approval request for `analysis`,
/// which `rule` sent to review (`None`: the database's default did).
pub(crate) fn review(
    asker: &Asker<'_>,
    rule: Option<&Arc<Rule>>,
    analysis: &Analysis,
    asking: &Asking<'_>,
) -> Reviewed {
    let snapshot = asker.state.snapshot();
    let settings = &snapshot.config.approvals;
    let mode = rule.and_then(|r| r.approval).unwrap_or(settings.mode);
    let approvers: Approvers = rule
        .and_then(|r| r.approvers.clone())
        .unwrap_or_else(|| settings.approvers.clone());
    let rule_id = rule.map_or("default_action".to_owned(), |r| r.id.to_string());
    let new = NewRequest {
        requester: asker.identity.to_owned(),
        database: asker.database.to_owned(),
        rules: vec![rule_id.clone()],
        approvers,
        timeout: Duration::from_secs(settings.timeout_secs),
        reason: None,
    };
    let ask = StatementAsk {
        session_id: asker.session_id,
        mode,
        sql: asking.sql.to_owned(),
        parameters: asking
            .parameters
            .map(|p| p.shown.clone())
            .unwrap_or_default(),
        binding: approvals::binding(asking.sql, asking.parameters.map(|p| p.raw.as_slice())),
        statements: approvals::statements(analysis),
    };
    let registry = &asker.state.approvals;
    match mode {
        ApprovalMode::Hold => match registry.hold(new, ask, settings.max_pending) {
            Ok((id, outcome)) => {
                let message = format!(
                    "Vigil is holding this statement for approval {id} (rule {rule_id}): approve with `vigil approvals approve {id}`"
                );
                let detail = format!(
                    "The session waits until the request is decided, or for {} s at most. Cancel (Ctrl-C) withdraws it.",
                    settings.timeout_secs
                );
                let report = Report::new(Severity::Notice, "00000", &message).detail(&detail);
                let mut notice = BytesMut::new();
                backend::notice_response(&mut notice, &report);
                Reviewed::Hold {
                    wait: Wait::new(id, outcome, Arc::clone(registry)),
                    notice: notice.freeze(),
                }
            }
            Err(refusal) => Reviewed::Refused {
                id: None,
                error: no_request(&refusal.message),
            },
        },
        ApprovalMode::Refuse => match registry.claim(new, ask, settings.max_pending) {
            Ok(Claim::Run(id)) => Reviewed::Run { id },
            Ok(Claim::Refused(id)) => {
                let message = format!(
                    "Vigil refused this statement (rule {rule_id}): it needs approval; request {id} is waiting for approvers"
                );
                let hint = format!(
                    "Once the request is approved, run exactly this statement again, with the same parameters, within {} s: it runs once. `vigil approvals show {id}` shows the request.",
                    settings.window_secs
                );
                Reviewed::Refused {
                    id: Some(id),
                    error: error("42501", &message, None, Some(&hint)),
                }
            }
            Err(refusal) => Reviewed::Refused {
                id: None,
                error: no_request(&refusal.message),
            },
        },
    }
}

/// The error a held statement gets when its request ends without approval.
pub(crate) fn outcome_error(id: &str, outcome: &Outcome) -> Option<Bytes> {
    Some(match outcome {
        Outcome::Approved => return None,
        Outcome::Denied { by, reason } => error(
            "42501",
            &format!("Vigil refused this statement: approval {id} was denied by {by}: {reason}"),
            Some("Nothing ran; the session carries on."),
            None,
        ),
        Outcome::Expired { after_secs } => error(
            "42501",
            &format!("Vigil refused this statement: approval {id} expired without a decision after {after_secs} s"),
            Some("Nothing ran; the session carries on."),
            Some("Run the statement again to ask again, or ask an approver to look at the queue sooner."),
        ),
        Outcome::Withdrawn => error(
            "57014",
            "canceling statement due to user request",
            Some(&format!("Vigil withdrew approval request {id}; nothing ran.")),
            None,
        ),
    })
}

/// What a statement cancelled before it reached the server gets: what the
/// server gives one it cancelled.
pub(crate) fn cancelled_error() -> Bytes {
    error(
        "57014",
        "canceling statement due to user request",
        Some("Vigil cancelled it before it reached the server; nothing ran."),
        None,
    )
}

fn no_request(why: &str) -> Bytes {
    error(
        "53400",
        &format!(
            "Vigil refused this statement: it needs approval, and no request could be made: {why}"
        ),
        None,
        Some("Try again once approvers have worked through the queue."),
    )
}

fn error(code: &str, message: &str, detail: Option<&str>, hint: Option<&str>) -> Bytes {
    let mut report = Report::new(Severity::Error, code, message);
    report.detail = detail;
    report.hint = hint;
    let mut out = BytesMut::new();
    backend::error_response(&mut out, &report);
    out.freeze()
}
