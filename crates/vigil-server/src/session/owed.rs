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
use std::time::Instant;

use bytes::Bytes;
use vigil_wire::fields::ErrorFields;
use vigil_wire::tags::{backend as b, frontend as f};

/// One forwarded client message that the server will answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    /// Parse, Bind, Describe, Execute or Close: each is answered by one
    /// message of its own when it succeeds, or by an ErrorResponse. With
    /// the request's id.
    Extended(Step, u64),
    Sync,
    Query(u64),
    FunctionCall,
    /// CopyDone or CopyFail: ends the client's part of a COPY IN.
    CopyEnd,
    /// A Query or Parse that Vigil refused and replaced with one the server
    /// is sure to reject; its ErrorResponse is swapped for this one.
    Refused {
        extended: bool,
        error: Bytes,
    },
    /// A refused Query whose error has been sent; its ReadyForQuery follows.
    Answered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Parse,
    Bind,
    Describe,
    Execute,
    Close,
}

impl Step {
    /// Whether `tag` is the server's answer that completes this step.
    fn completed_by(self, tag: u8) -> bool {
        match self {
            Step::Parse => tag == b::PARSE_COMPLETE,
            Step::Bind => tag == b::BIND_COMPLETE,
            Step::Close => tag == b::CLOSE_COMPLETE,
            Step::Describe => matches!(tag, b::ROW_DESCRIPTION | b::NO_DATA),
            Step::Execute => matches!(
                tag,
                b::COMMAND_COMPLETE | b::EMPTY_QUERY_RESPONSE | b::PORTAL_SUSPENDED
            ),
        }
    }
}

impl Sent {
    /// The server answers these with a ReadyForQuery of their own.
    fn ends_with_ready(&self) -> bool {
        matches!(
            self,
            Sent::Sync
                | Sent::Query(_)
                | Sent::FunctionCall
                | Sent::Answered
                | Sent::Refused {
                    extended: false,
                    ..
                }
        )
    }

    /// Part of an extended-protocol batch: its error makes the server skip
    /// to the next Sync.
    fn extended(&self) -> bool {
        matches!(
            self,
            Sent::Extended(..) | Sent::Refused { extended: true, .. }
        )
    }
}

#[derive(Debug, Default)]
pub(crate) struct Owed {
    sent: VecDeque<Sent>,
    /// The server is in COPY IN and the client has not ended it yet.
    copy_in: bool,
    /// Audited statements the server is running or will run, in order: one
    /// per forwarded Query, Execute and FunctionCall that was given one.
    tickets: VecDeque<Ticket>,
    /// The id of the last request forwarded.
    next_id: u64,
}

/// What an audited request is waiting for: the statement sequence numbers
/// (several for a multi-statement Query), and what it has produced so far.
#[derive(Debug)]
pub(crate) struct Ticket {
    request: u8,
    seqs: VecDeque<u64>,
    started: Instant,
    rows: u64,
    bytes: u64,
}

/// One audited statement finished, well or with an error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Completion {
    pub(crate) seq: u64,
    pub(crate) started: Instant,
    pub(crate) rows: Option<u64>,
    pub(crate) sqlstate: Option<String>,
    pub(crate) bytes: u64,
    /// Values masked in its result, by column; filled in by the relay.
    pub(crate) masked: std::collections::BTreeMap<String, u64>,
}

impl Ticket {
    /// A ticket for a forwarded Query, Execute or FunctionCall (`request`
    /// is its tag) running the statements `seqs`.
    pub(crate) fn new(request: u8, seqs: impl IntoIterator<Item = u64>) -> Ticket {
        Ticket {
            request,
            seqs: seqs.into_iter().collect(),
            started: Instant::now(),
            rows: 0,
            bytes: 0,
        }
    }

    /// The current statement finished; the next one, if any, starts now.
    fn complete(&mut self, rows: Option<u64>, sqlstate: Option<String>) -> Option<Completion> {
        let seq = self.seqs.pop_front()?;
        let done = Completion {
            seq,
            started: self.started,
            rows: rows.or((self.rows > 0).then_some(self.rows)),
            sqlstate,
            bytes: self.bytes,
            masked: Default::default(),
        };
        self.started = Instant::now();
        self.rows = 0;
        self.bytes = 0;
        Some(done)
    }
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

    /// A client message was forwarded; returns the id its answers will
    /// carry in [`front_request`](Self::front_request).
    pub(crate) fn client_sent(&mut self, tag: u8) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let sent = match tag {
            f::QUERY => Sent::Query(id),
            f::FUNCTION_CALL => Sent::FunctionCall,
            // Ignored by the server while it is in COPY IN.
            f::SYNC if self.copy_in => return id,
            f::SYNC => Sent::Sync,
            f::COPY_DONE | f::COPY_FAIL => {
                self.copy_in = false;
                Sent::CopyEnd
            }
            f::PARSE => Sent::Extended(Step::Parse, id),
            f::BIND => Sent::Extended(Step::Bind, id),
            f::DESCRIBE => Sent::Extended(Step::Describe, id),
            f::EXECUTE => Sent::Extended(Step::Execute, id),
            f::CLOSE => Sent::Extended(Step::Close, id),
            _ => return id,
        };
        self.sent.push_back(sent);
        id
    }

    /// The id of the Query or extended-protocol message the server is
    /// answering now, if that is what it is answering.
    pub(crate) fn front_request(&self) -> Option<u64> {
        match self.sent.front()? {
            Sent::Query(id) | Sent::Extended(_, id) => Some(*id),
            _ => None,
        }
    }

    /// The message just forwarded with [`client_sent`](Self::client_sent)
    /// runs these audited statements.
    pub(crate) fn expect(&mut self, ticket: Ticket) {
        self.tickets.push_back(ticket);
    }

    /// What a server message means for the audited statements: call it with
    /// every message (`body` may be a first chunk of a streamed one, `len`
    /// is its whole size) before [`server_sent`](Self::server_sent).
    pub(crate) fn completion(&mut self, tag: u8, body: &[u8], len: usize) -> Option<Completion> {
        if self.tickets.is_empty() {
            return None;
        }
        match tag {
            b::DATA_ROW => {
                let ticket = self.tickets.front_mut()?;
                ticket.rows += 1;
                ticket.bytes += len as u64;
                None
            }
            b::COPY_DATA => {
                self.tickets.front_mut()?.bytes += len as u64;
                None
            }
            b::COMMAND_COMPLETE
            | b::EMPTY_QUERY_RESPONSE
            | b::PORTAL_SUSPENDED
            | b::FUNCTION_CALL_RESPONSE => {
                let rows = (tag == b::COMMAND_COMPLETE)
                    .then(|| command_rows(body))
                    .flatten();
                let ticket = self.tickets.front_mut()?;
                let done = ticket.complete(rows, None);
                // A Query's and a FunctionCall's ticket ends with their
                // ReadyForQuery.
                if ticket.request == f::EXECUTE {
                    self.tickets.pop_front();
                }
                done
            }
            b::ERROR_RESPONSE => {
                let sqlstate = ErrorFields::parse(body)
                    .ok()
                    .and_then(|e| e.code().map(str::to_owned));
                let front = self.sent.front()?;
                match front {
                    Sent::Query(_) | Sent::FunctionCall => {
                        // The statements after the failed one do not run.
                        let ticket = self.tickets.front_mut()?;
                        let done = ticket.complete(None, sqlstate);
                        ticket.seqs.clear();
                        done
                    }
                    Sent::Extended(Step::Execute, _) => {
                        let mut ticket = self.tickets.pop_front()?;
                        self.skip_executes_after_error(1);
                        ticket.complete(None, sqlstate)
                    }
                    sent if sent.extended() => {
                        self.skip_executes_after_error(0);
                        None
                    }
                    _ => None,
                }
            }
            b::READY_FOR_QUERY => {
                // The request it ends: a Query's statements after an error,
                // or never reached, did not run.
                let ends = self.sent.iter().find(|s| s.ends_with_ready())?;
                if matches!(ends, Sent::Query(_) | Sent::FunctionCall) {
                    self.tickets.pop_front();
                }
                None
            }
            _ => None,
        }
    }

    /// More bytes of a streamed server message counted by `completion`.
    pub(crate) fn more_bytes(&mut self, len: usize) {
        if let Some(ticket) = self.tickets.front_mut() {
            ticket.bytes += len as u64;
        }
    }

    /// After an error in an extended batch the server skips to Sync: the
    /// Executes before it (past the first `skip` entries) never run.
    fn skip_executes_after_error(&mut self, skip: usize) {
        let skipped = self
            .sent
            .iter()
            .skip(skip)
            .take_while(|s| **s != Sent::Sync)
            .filter(|s| matches!(s, Sent::Extended(Step::Execute, _)))
            .count();
        for _ in 0..skipped {
            self.tickets.pop_front();
        }
    }

    /// A refused Query (or Parse, when `extended`) went to the server in a
    /// form it will reject; `error` is what the client hears instead.
    pub(crate) fn client_refused(&mut self, extended: bool, error: Bytes) {
        self.sent.push_back(Sent::Refused { extended, error });
    }

    /// A server message arrived. For the ErrorResponse that answers a refused
    /// message, returns the error to send the client in its place.
    pub(crate) fn server_sent(&mut self, tag: u8) -> Option<Bytes> {
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
            b::ERROR_RESPONSE => {
                self.copy_in = false;
                let front = self.sent.front()?;
                let swap = match front {
                    Sent::Refused { error, .. } => Some(error.clone()),
                    _ => None,
                };
                if front.extended() {
                    // The server now discards every message until the next
                    // Sync, a Query or FunctionCall included.
                    while self.sent.front().is_some_and(|s| *s != Sent::Sync) {
                        self.sent.pop_front();
                    }
                } else if swap.is_some() {
                    // Answered; its ReadyForQuery follows, like any Query's.
                    self.sent[0] = Sent::Answered;
                }
                return swap;
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
            tag => {
                if let Some(Sent::Extended(step, _)) = self.sent.front() {
                    if step.completed_by(tag) {
                        self.sent.pop_front();
                    }
                }
            }
        }
        None
    }
}

/// The row count at the end of a CommandComplete tag (`SELECT 5`, `INSERT 0
/// 1`, `UPDATE 3`, `COPY 10`); `None` for tags without one (`CREATE TABLE`).
fn command_rows(body: &[u8]) -> Option<u64> {
    let tag = body.strip_suffix(&[0]).unwrap_or(body);
    let tag = std::str::from_utf8(tag).ok()?;
    let (verb, count) = tag.rsplit_once(' ')?;
    let counted = [
        "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "FETCH", "MOVE",
    ];
    let verb = verb.split(' ').next()?;
    counted
        .contains(&verb)
        .then(|| count.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: &[(char, u8)]) -> Owed {
        let mut owed = Owed::default();
        for &(side, tag) in steps {
            match side {
                'c' => {
                    owed.client_sent(tag);
                }
                _ => {
                    owed.server_sent(tag);
                }
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
    fn refused_messages_get_their_own_error_swapped() {
        let error = Bytes::from_static(b"refusal");
        // A refused simple Query after an allowed one.
        let mut owed = run(&[('c', b'Q')]);
        owed.client_refused(false, error.clone());
        assert_eq!(owed.server_sent(b'E'), None, "the first Query's own error");
        owed.server_sent(b'Z');
        assert_eq!(owed.server_sent(b'E'), Some(error.clone()));
        assert_eq!(owed.server_sent(b'E'), None);
        owed.server_sent(b'Z');
        assert!(owed.settled());

        // Parse Bind Execute (rows) then a refused Parse in the same batch.
        let mut owed = run(&[('c', b'P'), ('c', b'B'), ('c', b'E')]);
        owed.client_refused(true, error.clone());
        for tag in [b'B', b'E', b'S'] {
            owed.client_sent(tag);
        }
        for tag in [b'1', b'2', b'D', b'D', b'C'] {
            assert_eq!(owed.server_sent(tag), None);
        }
        assert_eq!(owed.server_sent(b'E'), Some(error.clone()));
        owed.server_sent(b'Z');
        assert!(owed.settled(), "{owed:?}");

        // The Execute before it fails: the refused Parse is skipped unheard.
        let mut owed = run(&[('c', b'P'), ('c', b'B'), ('c', b'E')]);
        owed.client_refused(true, error.clone());
        owed.client_sent(b'S');
        for tag in [b'1', b'2'] {
            owed.server_sent(tag);
        }
        assert_eq!(owed.server_sent(b'E'), None, "the Execute's own error");
        owed.server_sent(b'Z');
        assert!(owed.settled(), "{owed:?}");

        // Describe of a statement answers with 't' then 'T' or 'n'.
        let mut owed = run(&[('c', b'P'), ('c', b'D')]);
        owed.client_refused(true, error.clone());
        owed.client_sent(b'S');
        for tag in [b'1', b't', b'n'] {
            owed.server_sent(tag);
        }
        assert_eq!(owed.server_sent(b'E'), Some(error));
    }

    #[test]
    fn an_unsynced_batch_has_no_answer_coming() {
        let owed = run(&[('c', b'P'), ('c', b'B'), ('c', b'E')]);
        assert!(!owed.settled());
        assert!(!owed.answer_coming());
        let owed = run(&[('c', b'Q'), ('s', b'G')]);
        assert!(!owed.answer_coming(), "COPY IN waits for the client");
    }

    /// Drives `owed` through a dialogue, with audit tickets: a client step
    /// `('c', tag, seqs)` forwards a message (a ticket when `seqs` is not
    /// empty), a server step `('s', tag, body)` answers. Returns the
    /// completions, as (seq, rows, sqlstate).
    fn audited(steps: &[(char, u8, &[u8], &[u64])]) -> Vec<(u64, Option<u64>, Option<String>)> {
        let mut owed = Owed::default();
        let mut done = Vec::new();
        for &(side, tag, body, seqs) in steps {
            if side == 'c' {
                owed.client_sent(tag);
                if !seqs.is_empty() {
                    owed.expect(Ticket::new(tag, seqs.iter().copied()));
                }
            } else {
                if let Some(c) = owed.completion(tag, body, body.len() + 5) {
                    done.push((c.seq, c.rows, c.sqlstate));
                }
                owed.server_sent(tag);
            }
        }
        done
    }

    /// An ErrorResponse body with this SQLSTATE.
    fn error(code: &str) -> Vec<u8> {
        format!("SERROR\0C{code}\0Mboom\0\0").into_bytes()
    }

    #[test]
    fn each_statement_of_a_query_completes_and_those_after_an_error_never_do() {
        let e = error("22012");
        let done = audited(&[
            ('c', b'Q', b"", &[1, 2, 3]),
            ('s', b'D', b"row", &[]),
            ('s', b'C', b"SELECT 1\0", &[]),
            ('s', b'E', &e, &[]),
            ('s', b'Z', b"I", &[]),
            // The next Query's ticket is its own.
            ('c', b'Q', b"", &[4]),
            ('s', b'C', b"INSERT 0 5\0", &[]),
            ('s', b'Z', b"I", &[]),
        ]);
        assert_eq!(
            done,
            [
                (1, Some(1), None),
                (2, None, Some("22012".into())),
                (4, Some(5), None)
            ]
        );
    }

    #[test]
    fn an_error_before_execute_skips_its_execution_to_sync() {
        let e = error("42P01");
        let done = audited(&[
            // Batch 1: Parse fails; its Execute never runs.
            ('c', b'P', b"", &[]),
            ('c', b'B', b"", &[]),
            ('c', b'E', b"", &[1]),
            ('c', b'S', b"", &[]),
            // Batch 2, pipelined: runs.
            ('c', b'B', b"", &[]),
            ('c', b'E', b"", &[2]),
            ('c', b'S', b"", &[]),
            // A simple Query after them.
            ('c', b'Q', b"", &[3]),
            ('s', b'E', &e, &[]),
            ('s', b'Z', b"I", &[]),
            ('s', b'2', b"", &[]),
            ('s', b'D', b"r", &[]),
            ('s', b'D', b"r", &[]),
            ('s', b'C', b"SELECT 2\0", &[]),
            ('s', b'Z', b"I", &[]),
            ('s', b'C', b"UPDATE 0\0", &[]),
            ('s', b'Z', b"I", &[]),
        ]);
        assert_eq!(done, [(2, Some(2), None), (3, Some(0), None)]);
    }

    #[test]
    fn a_failed_execute_and_a_suspended_portal_complete_their_own_statements() {
        let e = error("23505");
        let done = audited(&[
            ('c', b'B', b"", &[]),
            ('c', b'E', b"", &[1]),
            ('c', b'E', b"", &[2]),
            ('c', b'S', b"", &[]),
            ('s', b'2', b"", &[]),
            ('s', b'D', b"r", &[]),
            ('s', b's', b"", &[]),
            ('s', b'E', &e, &[]),
            ('s', b'Z', b"E", &[]),
            ('c', b'Q', b"", &[3]),
            ('s', b'C', b"ROLLBACK\0", &[]),
            ('s', b'Z', b"I", &[]),
        ]);
        assert_eq!(
            done,
            [
                (1, Some(1), None),
                (2, None, Some("23505".into())),
                (3, None, None)
            ]
        );
    }
}
