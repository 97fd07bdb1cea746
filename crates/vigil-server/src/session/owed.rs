//! What the server still owes the client: a model of the requests forwarded
//! and not yet answered, so the relay knows when a session is truly idle (for
//! graceful drain) and when a half-closed client has had all its answers.
//!
//! Counting "one ReadyForQuery per Query or Sync" is wrong in exactly the
//! cases that matter. The server ignores Sync and Flush in COPY IN mode. After
//! an error in an extended-protocol batch it discards everything up to the
//! next Sync. So the model follows the protocol's own rules, driven by what
//! each side sends.

use std::collections::VecDeque;

use vigil_wire::tags::{backend as b, frontend as f};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// One or more of Parse, Bind, Describe, Execute, Close, Flush.
    Extended,
    Sync,
    Query,
    FunctionCall,
    /// CopyDone or CopyFail: ends the client's part of a COPY IN.
    CopyEnd,
}

impl Sent {
    /// The server answers these with a ReadyForQuery of their own.
    fn ends_with_ready(self) -> bool {
        matches!(self, Sent::Sync | Sent::Query | Sent::FunctionCall)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Owed {
    sent: VecDeque<Sent>,
    /// The server is in COPY IN and the client has not ended it yet.
    copy_in: bool,
}

impl Owed {
    /// Nothing sent is waiting for an answer.
    pub(crate) fn settled(&self) -> bool {
        self.sent.is_empty() && !self.copy_in
    }

    /// Some request will still end in a ReadyForQuery without the client
    /// sending anything more.
    pub(crate) fn answer_coming(&self) -> bool {
        !self.copy_in && self.sent.iter().any(|s| s.ends_with_ready())
    }

    /// A client message was forwarded.
    pub(crate) fn client_sent(&mut self, tag: u8) {
        let sent = match tag {
            f::QUERY => Sent::Query,
            f::FUNCTION_CALL => Sent::FunctionCall,
            // Ignored by the server while it is in COPY IN.
            f::SYNC if self.copy_in => return,
            f::SYNC => Sent::Sync,
            f::COPY_DONE | f::COPY_FAIL => {
                self.copy_in = false;
                Sent::CopyEnd
            }
            f::PARSE | f::BIND | f::DESCRIBE | f::EXECUTE | f::CLOSE | f::FLUSH => {
                if self.sent.back() == Some(&Sent::Extended) {
                    return;
                }
                Sent::Extended
            }
            _ => return,
        };
        self.sent.push_back(sent);
    }

    /// A server message was relayed.
    pub(crate) fn server_sent(&mut self, tag: u8) {
        match tag {
            b::READY_FOR_QUERY => {
                // Everything up to the request that ended, then the COPY
                // markers that belonged to it.
                while let Some(sent) = self.sent.pop_front() {
                    if sent.ends_with_ready() {
                        break;
                    }
                }
                while self.sent.front() == Some(&Sent::CopyEnd) {
                    self.sent.pop_front();
                }
                self.copy_in = false;
            }
            b::ERROR_RESPONSE if self.sent.front() == Some(&Sent::Extended) => {
                // The server now discards messages until the next Sync.
                while self.sent.front().is_some_and(|s| *s != Sent::Sync) {
                    self.sent.pop_front();
                }
                self.copy_in = false;
            }
            b::COPY_IN_RESPONSE => {
                // Syncs the client sent between the COPY and its end reach
                // the server in COPY mode, which ignores them.
                let end = self.sent.iter().position(|s| *s == Sent::CopyEnd);
                let until = end.unwrap_or(self.sent.len());
                let mut index = 0;
                self.sent.retain(|s| {
                    let keep = index == 0 || index >= until || *s != Sent::Sync;
                    index += 1;
                    keep
                });
                self.copy_in = end.is_none();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: &[(char, u8)]) -> Owed {
        let mut owed = Owed::default();
        for &(side, tag) in steps {
            match side {
                'c' => owed.client_sent(tag),
                _ => owed.server_sent(tag),
            }
        }
        owed
    }

    #[test]
    fn pipelined_queries_settle_only_after_the_last_answer() {
        let owed = run(&[('c', b'Q'), ('c', b'Q'), ('s', b'Z')]);
        assert!(!owed.settled());
        let owed = run(&[('c', b'Q'), ('c', b'Q'), ('s', b'Z'), ('s', b'Z')]);
        assert!(owed.settled());
    }

    #[test]
    fn extended_copy_in_with_a_sync_before_and_after() {
        // tokio-postgres and libpq: Parse Bind Execute Sync, then the data,
        // CopyDone and Sync. The first Sync arrives in COPY mode and is ignored.
        let owed = run(&[
            ('c', b'P'),
            ('c', b'B'),
            ('c', b'E'),
            ('c', b'S'),
            ('s', b'1'),
            ('s', b'2'),
            ('s', b'G'),
            ('c', b'd'),
            ('c', b'c'),
            ('c', b'S'),
            ('s', b'C'),
            ('s', b'Z'),
        ]);
        assert!(owed.settled(), "{owed:?}");
    }

    #[test]
    fn copy_in_answered_after_the_client_already_finished() {
        let owed = run(&[
            ('c', b'E'),
            ('c', b'S'),
            ('c', b'd'),
            ('c', b'c'),
            ('c', b'S'),
            ('s', b'G'),
            ('s', b'C'),
            ('s', b'Z'),
        ]);
        assert!(owed.settled(), "{owed:?}");
    }

    #[test]
    fn simple_copy_in_then_another_query() {
        let owed = run(&[
            ('c', b'Q'),
            ('s', b'G'),
            ('c', b'd'),
            ('c', b'c'),
            ('c', b'Q'),
        ]);
        assert!(!owed.settled());
        let owed = run(&[
            ('c', b'Q'),
            ('s', b'G'),
            ('c', b'd'),
            ('c', b'c'),
            ('c', b'Q'),
            ('s', b'C'),
            ('s', b'Z'),
            ('s', b'C'),
            ('s', b'Z'),
        ]);
        assert!(owed.settled(), "{owed:?}");
    }

    #[test]
    fn an_extended_error_discards_until_sync() {
        // Parse fails; the Query after it is discarded by the server.
        let owed = run(&[
            ('c', b'P'),
            ('c', b'Q'),
            ('c', b'S'),
            ('s', b'E'),
            ('s', b'Z'),
        ]);
        assert!(owed.settled(), "{owed:?}");
        // A simple query's error is followed by its own ReadyForQuery.
        let owed = run(&[('c', b'Q'), ('c', b'Q'), ('s', b'E'), ('s', b'Z')]);
        assert!(!owed.settled());
    }

    #[test]
    fn parse_and_flush_then_a_query() {
        let owed = run(&[
            ('c', b'P'),
            ('c', b'H'),
            ('s', b'1'),
            ('c', b'Q'),
            ('s', b'Z'),
        ]);
        assert!(owed.settled(), "{owed:?}");
    }

    #[test]
    fn an_unsynced_batch_has_no_answer_coming() {
        let owed = run(&[('c', b'P'), ('c', b'B'), ('c', b'E')]);
        assert!(!owed.settled());
        assert!(!owed.answer_coming());
        let owed = run(&[('c', b'Q'), ('s', b'G')]);
        assert!(!owed.answer_coming(), "COPY IN waits for the client");
    }
}
