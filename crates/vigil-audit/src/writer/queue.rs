//! The writer's inbox. Unlike a channel, an event nothing waits for is queued
//! without waking the writer: it joins the next batch someone waits for, or
//! the writer's own timer picks it up. A busy proxy then costs the writer one
//! wake-up per commit rather than one per event.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::Command;

#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
struct State {
    commands: VecDeque<Command>,
    /// Every handle is gone: the writer finishes what is queued and stops.
    closed: bool,
    /// The writer has stopped: nothing queued will be answered.
    stopped: bool,
    /// The writer will look again by itself soon (it holds events waiting
    /// for their commit timer): events nothing waits for need not wake it.
    armed: bool,
}

// Returned and matched at once, never stored: boxing the command would cost
// an allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Received {
    Command(Command),
    Timeout,
    Closed,
}

impl Queue {
    /// Queues `command`; `wake` the writer when someone waits for it.
    /// False once the writer has stopped.
    pub(crate) fn push(&self, command: Command, wake: bool) -> bool {
        let mut state = self.lock();
        if state.stopped {
            return false;
        }
        state.commands.push_back(command);
        let wake = wake || !state.armed;
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    /// The writer is gone: what is still queued is dropped (its waiters
    /// learn the writer stopped) and nothing more is taken.
    pub(crate) fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        let dropped = std::mem::take(&mut state.commands);
        drop(state);
        drop(dropped);
    }

    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// The next command, waiting at most `wait` (forever when `None`).
    /// `armed`: the writer will come back within `wait` by itself, so events
    /// nothing waits for do not wake it meanwhile.
    pub(crate) fn recv(&self, wait: Option<Duration>, armed: bool) -> Received {
        let mut state = self.lock();
        state.armed = armed && wait.is_some();
        loop {
            if let Some(command) = state.commands.pop_front() {
                return Received::Command(command);
            }
            if state.closed {
                return Received::Closed;
            }
            match wait {
                None => {
                    state = self
                        .ready
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner)
                }
                Some(wait) => {
                    let (next, timeout) = self
                        .ready
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner);
                    state = next;
                    if timeout.timed_out() {
                        return match state.commands.pop_front() {
                            Some(command) => Received::Command(command),
                            None => Received::Timeout,
                        };
                    }
                }
            }
        }
    }

    /// Everything queued now, up to `max` appends counted by `is_append`.
    pub(crate) fn drain_into(
        &self,
        batch: &mut Vec<Command>,
        mut appends: usize,
        max: usize,
    ) -> usize {
        let mut state = self.lock();
        while appends < max {
            let Some(command) = state.commands.pop_front() else {
                break;
            };
            appends += usize::from(matches!(command, Command::Append { .. }));
            batch.push(command);
        }
        appends
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
