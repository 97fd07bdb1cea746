//! The names a session defines on the server (prepared statements, and
//! portals, which SQL cursors share a namespace with) as the server has them.
//!
//! A change is *staged* when the message that makes it is forwarded, and
//! takes effect only when the server confirms it: ParseComplete,
//! BindComplete, CloseComplete, or the CommandComplete of the SQL statement
//! (`PREPARE`, `DEALLOCATE`, `DECLARE`, `CLOSE`, `DISCARD`). An error means
//! it never happened, and neither did the changes the server then skips.
//!
//! Until the server answers, what a name means depends on who asks. Messages
//! of one *epoch* (the run of messages one error makes the server skip: an
//! extended-protocol batch up to its Sync, or the statements of one Query)
//! run only if everything before them in it succeeded, so a later message
//! of the same epoch may count on a staged change. A message of a later
//! epoch cannot know whether the change was made: the name is *unsettled*
//! for it, and it waits for the server's answer.
//!
//! A stale name (Vigil still knows it, the server dropped it, say with its
//! transaction) is harmless: using it fails at the server. What must never
//! happen is Vigil knowing a name as one thing while the server has another;
//! where that cannot be ruled out the name becomes unknown, and using an
//! unknown name is refused.

use std::collections::{HashMap, VecDeque};

/// Where a message stands in the session's stream: its request id (one per
/// message forwarded to the server, stand-ins included) and its epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) request: u64,
    pub(crate) epoch: u64,
}

/// Where a change is confirmed: its request, and for a Query the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct At {
    pub(crate) request: u64,
    pub(crate) statement: u32,
}

impl At {
    pub(crate) fn message(request: u64) -> At {
        At {
            request,
            statement: 0,
        }
    }
}

/// One change to a namespace.
#[derive(Debug, Clone)]
pub(crate) enum Change<T> {
    Define(Vec<u8>, T),
    Remove(Vec<u8>),
    /// Every name: `DEALLOCATE ALL`, `CLOSE ALL`, `DISCARD ALL`.
    Clear,
}

impl<T> Change<T> {
    fn touches(&self, name: &[u8]) -> bool {
        match self {
            Change::Define(n, _) | Change::Remove(n) => n == name,
            Change::Clear => true,
        }
    }
}

#[derive(Debug)]
struct Staged<T> {
    at: At,
    epoch: u64,
    change: Change<T>,
}

/// What a name means to a message of some epoch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup<'a, T> {
    Known(&'a T),
    /// No such name, or one Vigil cannot vouch for.
    Unknown,
    /// A change to it from an earlier epoch is not answered yet.
    Unsettled,
}

#[derive(Debug)]
pub(crate) struct Names<T> {
    confirmed: HashMap<Vec<u8>, T>,
    staged: VecDeque<Staged<T>>,
    /// The newest epoch an error made the server skip the rest of.
    failed_epoch: Option<u64>,
}

impl<T> Default for Names<T> {
    fn default() -> Self {
        Names {
            confirmed: HashMap::new(),
            staged: VecDeque::new(),
            failed_epoch: None,
        }
    }
}

impl<T> Names<T> {
    /// What `name` means to a message of `epoch`.
    pub(crate) fn lookup(&self, name: &[u8], epoch: u64) -> Lookup<'_, T> {
        match self.staged.iter().rev().find(|s| s.change.touches(name)) {
            Some(staged) if staged.epoch != epoch => Lookup::Unsettled,
            Some(Staged {
                change: Change::Define(_, value),
                ..
            }) => Lookup::Known(value),
            Some(_) => Lookup::Unknown,
            None => match self.confirmed.get(name) {
                Some(value) => Lookup::Known(value),
                None => Lookup::Unknown,
            },
        }
    }

    /// Whether the newest change to `name` was staged in `epoch` (what a
    /// message of that epoch sees of it is its own batch's doing).
    pub(crate) fn staged_in(&self, name: &[u8], epoch: u64) -> bool {
        self.staged
            .iter()
            .rev()
            .find(|s| s.change.touches(name))
            .is_some_and(|s| s.epoch == epoch)
    }

    /// A forwarded message will make `change` when the server confirms `at`.
    pub(crate) fn stage(&mut self, at: At, epoch: u64, change: Change<T>) {
        // The server is skipping the rest of this epoch: it never happens.
        if self.failed_epoch == Some(epoch) {
            return;
        }
        self.staged.push_back(Staged { at, epoch, change });
    }

    /// The server confirmed `at`: its changes take effect, and each one
    /// made is shown to `made`. Changes staged before it that were neither
    /// confirmed nor refused cannot be placed: the names they touch become
    /// unknown.
    pub(crate) fn confirm(&mut self, at: At, mut made: impl FnMut(&Change<T>)) {
        while let Some(front) = self.staged.front() {
            if front.at > at {
                break;
            }
            let staged = self.staged.pop_front().expect("front");
            let change = match (staged.at == at, staged.change) {
                (true, change) => change,
                (false, Change::Define(name, _)) => Change::Remove(name),
                // A removal that may or may not have happened leaves a
                // stale name at worst.
                (false, _) => continue,
            };
            made(&change);
            match change {
                Change::Define(name, value) => {
                    self.confirmed.insert(name, value);
                }
                Change::Remove(name) => {
                    self.confirmed.remove(&name);
                }
                Change::Clear => self.confirmed.clear(),
            }
        }
    }

    /// The server refused `at`, so it and everything after it in `epoch`
    /// (which the server skips) never happen.
    pub(crate) fn fail(&mut self, at: At, epoch: u64, skips_to_sync: bool) {
        self.staged.retain(|s| !(s.epoch == epoch && s.at >= at));
        if skips_to_sync {
            self.failed_epoch = Some(epoch);
        }
    }

    /// The server is ready for a new request after answering every request
    /// up to `through`: whatever of them is still staged never happened
    /// (the server skipped it). Definitions among them are not trusted to
    /// be absent: those names become unknown.
    pub(crate) fn settle(&mut self, through: u64) {
        while self.staged.front().is_some_and(|s| s.at.request <= through) {
            let staged = self.staged.pop_front().expect("front");
            if self.failed_epoch != Some(staged.epoch) {
                if let Change::Define(name, _) = staged.change {
                    self.confirmed.remove(&name);
                }
            }
        }
    }

    /// Keeps only the confirmed names `keep` approves of (a transaction
    /// ended and took its portals with it).
    pub(crate) fn retain(&mut self, keep: impl Fn(&T) -> bool) {
        self.confirmed.retain(|_, value| keep(value));
    }

    /// Every confirmed name, and its value.
    pub(crate) fn confirmed(&self) -> impl Iterator<Item = (&Vec<u8>, &T)> {
        self.confirmed.iter()
    }

    /// Forgets `name`: Vigil can no longer vouch for what it means.
    pub(crate) fn forget(&mut self, name: &[u8]) {
        self.confirmed.remove(name);
    }

    /// Some change is still waiting for the server.
    #[cfg(test)]
    fn pending(&self) -> bool {
        !self.staged.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(request: u64) -> At {
        At::message(request)
    }

    fn known(names: &Names<&'static str>, name: &str, epoch: u64) -> Option<&'static str> {
        match names.lookup(name.as_bytes(), epoch) {
            Lookup::Known(v) => Some(v),
            Lookup::Unknown => None,
            Lookup::Unsettled => Some("unsettled"),
        }
    }

    fn define(name: &str, value: &'static str) -> Change<&'static str> {
        Change::Define(name.as_bytes().to_vec(), value)
    }

    #[test]
    fn a_change_counts_once_confirmed_and_never_when_refused() {
        let mut names = Names::default();
        names.stage(at(1), 0, define("s", "update"));
        assert_eq!(known(&names, "s", 0), Some("update"), "same epoch");
        assert_eq!(known(&names, "s", 1), Some("unsettled"), "later epoch");
        names.confirm(at(1), |_| {});
        assert_eq!(known(&names, "s", 1), Some("update"));

        // A second Parse of the name: the server refuses it.
        names.stage(at(3), 1, define("s", "select"));
        assert_eq!(known(&names, "s", 1), Some("select"));
        names.fail(at(3), 1, true);
        assert_eq!(known(&names, "s", 2), Some("update"));
    }

    #[test]
    fn an_error_discards_what_the_server_skips_to_sync() {
        let mut names = Names::default();
        names.stage(at(1), 0, define("s", "update"));
        names.confirm(at(1), |_| {});
        // Batch: failing Parse (2), Close s (3), Parse s (4), Sync (5).
        names.stage(at(3), 1, Change::Remove(b"s".to_vec()));
        names.stage(at(4), 1, define("s", "select"));
        names.fail(at(2), 1, true);
        // The client sends more of the batch after the error arrived.
        names.stage(at(6), 1, define("t", "select"));
        names.settle(5);
        assert_eq!(known(&names, "s", 2), Some("update"));
        assert_eq!(known(&names, "t", 2), None);
        assert!(!names.pending());
    }

    #[test]
    fn statements_of_a_query_confirm_one_by_one() {
        let mut names = Names::default();
        let q = |statement| At {
            request: 7,
            statement,
        };
        names.stage(q(0), 3, define("a", "one"));
        names.stage(q(2), 3, define("b", "two"));
        names.stage(q(3), 3, Change::Clear);
        names.confirm(q(0), |_| {});
        // Statement 1 fails: 2 and 3 never run.
        names.fail(q(1), 3, false);
        names.settle(7);
        assert_eq!(known(&names, "a", 4), Some("one"));
        assert_eq!(known(&names, "b", 4), None);
    }

    #[test]
    fn what_cannot_be_placed_becomes_unknown() {
        let mut names = Names::default();
        names.stage(at(1), 0, define("s", "old"));
        names.confirm(at(1), |_| {});
        // A definition that was never answered, then a later confirmation.
        names.stage(at(2), 1, define("s", "new"));
        names.stage(at(3), 1, define("t", "x"));
        names.confirm(at(3), |_| {});
        assert_eq!(known(&names, "s", 2), None);
        assert_eq!(known(&names, "t", 2), Some("x"));
        // Likewise one still staged when the server says it is ready.
        names.stage(at(4), 2, define("t", "y"));
        names.settle(5);
        assert_eq!(known(&names, "t", 3), None);
    }

    #[test]
    fn clear_touches_every_name() {
        let mut names = Names::default();
        names.stage(at(1), 0, define("s", "x"));
        names.confirm(at(1), |_| {});
        names.stage(at(2), 1, Change::Clear);
        assert_eq!(known(&names, "s", 1), None);
        assert_eq!(known(&names, "s", 2), Some("unsettled"));
        names.confirm(at(2), |_| {});
        assert_eq!(known(&names, "s", 2), None);
    }
}
