//! Keeping a session in the upstream role Vigil put it in, by the server's
//! word. The statements that switch roles are refused by the policy's role
//! lock; what the server says confirms it:
//!
//! - a change of `is_superuser` or `session_authorization` (the server
//!   reports both when they change) ends the session;
//! - once code Vigil cannot see into ran (a user's function can run `RESET
//!   ROLE`), the next batch waits until Vigil has asked the server for
//!   `current_user` (with the prepared statements and cursors, in one
//!   question), and the session ends if it is not the locked role.
//!
//! In a failed transaction the server answers no question: messages go on
//! (nothing but the end of the transaction runs there), except `ROLLBACK TO
//! SAVEPOINT`, which could bring back a role set since the last check.

use vigil_audit::AuditEvent;
use vigil_sql::{Analysis, Kind, TransactionOp};
use vigil_wire::tags::frontend as f;

use super::{opaque, Checked, Decided, Gate, Gated, Place};
use crate::session::defined::HeldName;
use crate::session::refusal::integrity_refusal;

impl Gate {
    /// A message that runs code Vigil cannot see into, in the batch
    /// `epoch`, is being forwarded.
    pub(super) fn ran_unseen(&mut self, epoch: u64) {
        self.defined.tainted(epoch);
        if let Some(lock) = &mut self.role {
            lock.unconfirmed.get_or_insert(epoch);
        }
    }

    /// Whether the role must be confirmed before the message (`tag`) at
    /// `place` may be checked: it waits, or, when other messages of its
    /// batch went before it unanswered, it is refused.
    pub(crate) fn role_unconfirmed(
        &mut self,
        tag: u8,
        place: Place,
        events: &mut Vec<AuditEvent>,
    ) -> Option<Gated> {
        let since = self.role.as_ref()?.unconfirmed?;
        // These run nothing.
        let runs_nothing = matches!(
            tag,
            f::SYNC | f::FLUSH | f::TERMINATE | f::DESCRIBE | f::CLOSE
        );
        if place.stamp.epoch < since || runs_nothing {
            return None;
        }
        // A later batch waits for the answer, unless the code ran in a
        // transaction that has failed since: nothing but its end runs
        // there, and that undoes the switch. A message of the same batch,
        // after the one that ran the code, would run before the answer
        // (whatever the status was before the batch: it may have ended a
        // failed transaction first).
        if place.stamp.epoch > since {
            if self.status == b'E' {
                return None;
            }
            if place.fresh && !place.skipped {
                return Some(Gated::Wait);
            }
        }
        self.refused += 1;
        let analysis = std::sync::Arc::new(opaque("<role not yet confirmed>".into()));
        let decided = Decided {
            action: vigil_policy::Action::Deny,
            rule: Some(vigil_policy::role_lock::RULE_ID),
            masked: &[],
            approval: None,
        };
        self.record(&analysis, &decided, events);
        Some(
            Checked::refuse(integrity_refusal(
                "42501",
                vigil_policy::role_lock::RULE_ID,
                "code Vigil cannot see into ran earlier in this pipeline, and Vigil confirms the session's role before anything after it runs",
                "Send this in a batch of its own (after a Sync).",
            ))
            .into(),
        )
    }

    /// The statement of `analysis` that would roll back to a savepoint in
    /// a failed transaction whose role Vigil could not confirm.
    pub(super) fn rolls_back_to_unconfirmed_role(&self, analysis: &Analysis) -> Option<usize> {
        let unconfirmed = self.role.as_ref().is_some_and(|l| l.unconfirmed.is_some());
        if !unconfirmed || self.status != b'E' {
            return None;
        }
        analysis
            .statements
            .iter()
            .position(|s| s.kind == Kind::Transaction(TransactionOp::RollbackTo))
    }

    /// In a session whose role is locked, the first statement of
    /// `analysis` that would run after one that runs code Vigil cannot see
    /// into: that code could have switched the role, and the server is
    /// asked only after the whole text ran.
    pub(super) fn runs_after_unseen_code(&self, analysis: &Analysis) -> Option<usize> {
        self.role.as_ref()?;
        let first = analysis
            .statements
            .iter()
            .position(super::messages::statement_runs_unseen)?;
        (first + 1 < analysis.statements.len()).then_some(first + 1)
    }

    /// Whether Vigil must ask the server about the role now.
    pub(super) fn role_wants_confirmation(&self) -> bool {
        self.status != b'E' && self.role.as_ref().is_some_and(|l| l.unconfirmed.is_some())
    }

    /// The server's answer about the session (`None`: it could not be
    /// asked): why the session cannot go on, if its role is not the
    /// locked one.
    pub(super) fn role_confirmed(&mut self, held: Option<&[HeldName]>) -> Option<String> {
        let (Some(lock), Some(held)) = (&mut self.role, held) else {
            return None;
        };
        lock.unconfirmed?;
        match held.iter().find(|(kind, ..)| *kind == b'R') {
            Some((_, current, _)) if current.as_slice() == lock.role.as_bytes() => {
                lock.unconfirmed = None;
                None
            }
            Some((_, current, _)) => Some(format!(
                "code this session ran switched its upstream role to {:?}; the session is locked to {:?}",
                String::from_utf8_lossy(current),
                lock.role
            )),
            None => Some("Vigil could not confirm the session's upstream role".into()),
        }
    }

    /// The server reported `name` as `value`: why the session cannot go
    /// on, if that tells its role changed.
    pub(super) fn role_reported(&self, name: &str, value: &str) -> Option<String> {
        let lock = self.role.as_ref()?;
        let (_, before) = lock.reported.iter().find(|(n, _)| n == name)?;
        (before != value).then(|| {
            format!(
                "the server reports {name} changed from {before:?} to {value:?}: the session's role is locked to {:?}",
                lock.role
            )
        })
    }
}
