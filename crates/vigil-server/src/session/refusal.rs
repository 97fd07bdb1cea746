//! The errors the gate answers refused statements with: SQLSTATE 42501,
//! the rule and its reason, which statement, and how to proceed. Each
//! refusal explains itself (DESIGN.md invariant 6).

use bytes::{Bytes, BytesMut};
use tracing::warn;
use vigil_policy::{Action, Decision};
use vigil_sql::Analysis;
use vigil_wire::backend::{self, Report, Severity};

/// The error a statement masking refuses gets.
pub(super) fn masking_refusal(rule: &str, reason: &str) -> Bytes {
    let message = format!("Vigil refused this statement (rule {rule}): {reason}");
    let hint = match rule {
        "vigil.masking.inference" => "Masked columns can be read (masked), not filtered, joined, ordered, grouped or computed with beyond text functions (upper, substr, concat …). Ask the owners of the Vigil policy for an exemption if you need their values.",
        "vigil.masking.copy" => "Masked values may not be copied into tables, views or server files. Read them (masked) instead, or ask for an exemption.",
        "vigil.masking.statistics" => "Column statistics hold sample values; ask a DBA for what you need to know about the data's distribution.",
        "vigil.masking.opaque" => "Run the statements the block would run one by one, so Vigil can see what they read.",
        "vigil.masking.pending" => "Run the statement again in a moment.",
        _ => "Use tables and built-in functions Vigil can trace, or ask the owners of the Vigil policy for an exemption.",
    };
    let report = Report::new(Severity::Error, "42501", &message).hint(hint);
    let mut out = BytesMut::new();
    backend::error_response(&mut out, &report);
    out.freeze()
}

/// The error a refused text gets: SQLSTATE 42501, the rule and its reason,
/// which statement, and how to proceed.
pub(super) fn refusal(decision: &Decision, analysis: &Analysis) -> Bytes {
    let (id, reason, hint) = match &decision.rule {
        Some(rule) => (&*rule.id, rule.message.as_str(), rule.hint.clone()),
        None => ("database default", "no rule allows this statement", None),
    };
    let reason = match decision.action {
        Action::Review => format!("requires approval: {reason}"),
        _ => reason.to_owned(),
    };
    let message = format!("Vigil refused this statement (rule {id}): {reason}");
    let statement = decision
        .statement
        .and_then(|i| analysis.statements.get(i).map(|s| (i, s)));
    let detail = statement.map(|(i, s)| match analysis.statements.len() {
        1 => format!("The statement is a {} ({}).", s.kind, s.class),
        n => format!(
            "Statement {} of {n} is a {} ({}); none of the {n} ran.",
            i + 1,
            s.kind,
            s.class
        ),
    });
    let hint = match (decision.action, hint) {
        (_, Some(hint)) => hint,
        (_, None) => "Ask the owners of the Vigil policy, or run `vigil policy explain` to see which rules apply.".to_owned(),
    };
    warn!(
        rule = id,
        action = decision.action.as_str(),
        kind = statement
            .map(|(_, s)| s.kind.to_string())
            .unwrap_or_default(),
        fingerprint = statement.map(|(_, s)| s.fingerprint.as_str()).unwrap_or(""),
        "statement refused"
    );
    let mut report = Report::new(Severity::Error, "42501", &message).hint(&hint);
    if let Some(detail) = &detail {
        report = report.detail(detail);
    }
    let mut out = BytesMut::new();
    backend::error_response(&mut out, &report);
    out.freeze()
}

/// A refusal that keeps what Vigil and the server agree on: a name Vigil
/// cannot vouch for, or a text it cannot be sure how the server reads.
pub(super) fn integrity_refusal(code: &str, rule: &str, reason: &str, hint: &str) -> Bytes {
    warn!(
        rule,
        reason, "statement refused to keep Vigil and the server in step"
    );
    let message = format!("Vigil refused this statement (rule {rule}): {reason}");
    let report = Report::new(Severity::Error, code, &message).hint(hint);
    let mut out = BytesMut::new();
    backend::error_response(&mut out, &report);
    out.freeze()
}
