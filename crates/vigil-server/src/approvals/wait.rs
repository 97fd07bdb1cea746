//! A session waiting on a held statement's request, and how a cancel from
//! the client reaches that wait instead of the server.

use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, Notify};

use super::{Approvals, Outcome};

/// What a waiting session shares with its cancel key: a CancelRequest for a
/// session that is holding a statement withdraws it instead of reaching
/// the server.
#[derive(Default)]
pub(crate) struct CancelSignal {
    waiting: Mutex<Option<Arc<Notify>>>,
}

impl CancelSignal {
    /// Delivers a cancel to the wait in progress; false when none is.
    pub(crate) fn cancel(&self) -> bool {
        match &*self.waiting.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(notify) => {
                notify.notify_one();
                true
            }
            None => false,
        }
    }

    /// A session starts holding statements: a cancel from now on is kept
    /// for the wait, even one that comes before the wait begins.
    pub(crate) fn start(&self) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&notify));
        notify
    }

    /// The session holds nothing any more: cancels go to the server again.
    pub(crate) fn stop(&self) {
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) = None;
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
    /// from [`CancelSignal::start`]).
    pub(crate) async fn outcome(mut self, cancelled: &Notify) -> Outcome {
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
