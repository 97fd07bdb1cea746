//! A session waiting on a held statement's request, and how a cancel from
//! the client reaches that wait instead of the server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{oneshot, Notify};

use super::{Approvals, Outcome};

/// What a holding session shares with its cancel key: a CancelRequest for a
/// session that is holding statements (for approval, or for their audit
/// events) withdraws them instead of reaching an idle server.
#[derive(Default)]
pub(crate) struct CancelSignal {
    /// The session holds statements that have not reached the server.
    armed: AtomicBool,
    /// A cancel came while armed.
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelSignal {
    /// Delivers a cancel to the statements held now; false when none are
    /// (the cancel is then for the server).
    pub(crate) fn cancel(&self) -> bool {
        if !self.armed.load(Ordering::Acquire) {
            return false;
        }
        self.cancelled.store(true, Ordering::Release);
        self.notify.notify_one();
        true
    }

    /// A session starts holding statements: a cancel from now on is kept
    /// for them, even one that comes before a wait begins.
    pub(crate) fn start(&self) {
        self.cancelled.store(false, Ordering::Release);
        self.armed.store(true, Ordering::Release);
    }

    /// Whether a cancel came since [`start`](Self::start).
    pub(crate) fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Resolves when a cancel comes (at once if one came since `start`).
    pub(crate) async fn notified(&self) {
        while !self.cancelled() {
            self.notify.notified().await;
        }
    }

    /// The session holds nothing any more: cancels go to the server again.
    pub(crate) fn stop(&self) {
        self.armed.store(false, Ordering::Release);
    }
}

/// A session waiting on one held statement's request. Dropped unanswered
/// (the client went away), it withdraws the request.
pub(crate) struct Wait {
    pub(crate) id: String,
    outcome: Option<oneshot::Receiver<Outcome>>,
    approvals: Arc<Approvals>,
}

impl Wait {
    pub(crate) fn new(
        id: String,
        outcome: oneshot::Receiver<Outcome>,
        approvals: Arc<Approvals>,
    ) -> Wait {
        Wait {
            id,
            outcome: Some(outcome),
            approvals,
        }
    }

    /// Waits for the decision, or for the client's cancel (`cancelled`,
    /// armed with [`CancelSignal::start`]).
    pub(crate) async fn outcome(mut self, cancelled: &CancelSignal) -> Outcome {
        let outcome = match self.outcome.as_mut() {
            None => Outcome::Withdrawn,
            Some(receiver) => tokio::select! {
                biased;
                decided = &mut *receiver => decided.unwrap_or(Outcome::Withdrawn),
                () = cancelled.notified() => {
                    if self.approvals.withdraw(&self.id, "the client cancelled the statement") {
                        Outcome::Withdrawn
                    } else {
                        // Decided meanwhile: the decision stands.
                        receiver.await.unwrap_or(Outcome::Withdrawn)
                    }
                }
            },
        };
        self.outcome = None;
        outcome
    }

    /// Gives up without waiting: the statement cannot run (its audit event
    /// was not stored).
    pub(crate) fn abandon(mut self, why: &str) {
        self.outcome = None;
        self.approvals.withdraw(&self.id, why);
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if self.outcome.is_some() {
            self.approvals.withdraw(&self.id, "the client disconnected");
        }
    }
}
