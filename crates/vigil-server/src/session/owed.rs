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

use super::names::{At, Stamp};

/// One forwarded client message that the server will answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    /// Parse, Bind, Describe, Execute or Close: each is answered by one
    /// message of its own when it succeeds, or by an ErrorResponse.
    Extended(Step, Stamp),
    Sync(Stamp),
    Query(Stamp),
    FunctionCall(Stamp),
    /// CopyDone or CopyFail: ends the client's part of a COPY IN.
    CopyEnd,
    /// A message that Vigil refused and replaced with one the server is
    /// sure to reject; its ErrorResponse is swapped for this one.
    Refused {
        extended: bool,
        error: Bytes,
        stamp: Stamp,
    },
    /// A refused Query whose error has been sent; its ReadyForQuery follows.
    Answered(Stamp),
    /// A text the analyzer could not read, sent to the server to parse (a
    /// Close of Vigil's check statement, a Parse of the text under it, then
    /// a stand-in; and a Sync for a Query): the server's own error reaches
    /// the client, or Vigil's `error` if the server parsed it.
    Checking {
        extended: bool,
        error: Bytes,
        stamp: Stamp,
        /// The server answered the Close and the Parse (the stand-in's
        /// error comes next).
        closed: bool,
        parsed: bool,
    },
    /// A Query of Vigil's own: its answers are Vigil's, not the client's.
    Internal(Stamp),
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
            Sent::Sync(_)
                | Sent::Query(_)
                | Sent::FunctionCall(_)
                | Sent::Answered(_)
                | Sent::Internal(_)
                | Sent::Refused {
                    extended: false,
                    ..
                }
                | Sent::Checking {
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
            Sent::Extended(..)
                | Sent::Refused { extended: true, .. }
                | Sent::Checking { extended: true, .. }
        )
    }

    fn stamp(&self) -> Option<Stamp> {
        match self {
            Sent::Extended(_, stamp)
            | Sent::Sync(stamp)
            | Sent::Query(stamp)
            | Sent::FunctionCall(stamp)
            | Sent::Answered(stamp)
            | Sent::Internal(stamp)
            | Sent::Refused { stamp, .. }
            | Sent::Checking { stamp, .. } => Some(*stamp),
            Sent::CopyEnd => None,
        }
    }

    fn is_sync(&self) -> bool {
        matches!(self, Sent::Sync(_))
    }
}

/// What a server message told about the client's requests.
#[derive(Debug, Default)]
pub(crate) struct Heard {
    /// The answer to a refused message: the client hears this instead.
    pub(crate) refusal: Option<Bytes>,
    /// The server's own error about a text Vigil could not read: the client
    /// hears it, unless it only says the text holds several statements (a
    /// Parse takes one): then `refusal`.
    pub(crate) server_error_unless_several: bool,
    /// An answer to a message of Vigil's own: the client never sees it.
    pub(crate) swallow: bool,
    pub(crate) event: Option<Event>,
}

/// How a request the server answered ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// One extended-protocol step, or one statement of a Query, succeeded.
    Done(At),
    /// It failed, in its epoch; `to_sync`: the server now skips every
    /// message up to the next Sync.
    Failed { at: At, epoch: u64, to_sync: bool },
    /// ReadyForQuery: every request up to `through` has been answered.
    Ready { through: u64 },
}

#[derive(Debug, Default)]
pub(crate) struct Owed {
    sent: VecDeque<Sent>,
    /// The server is in COPY IN and the client has not ended it yet.
    copy_in: bool,
    /// Audited statements the server is running or will run, in order: one
    /// per forwarded Query, Execute and FunctionCall that was given one.
    tickets: VecDeque<Ticket>,
    /// Statements of the Query at the front already answered.
    query_statement: u32,
    /// An extended-protocol error came and no Sync has been sent since:
    /// the server discards everything the client sends until its Sync.
    skipping: bool,
}

/// What an audited request is waiting for: the statement sequence numbers
/// (several for a multi-statement Query), and what it has produced so far.
#[derive(Debug)]
pub(crate) struct Ticket {
    request: u8,
    /// The request's id.
    id: u64,
    seqs: VecDeque<u64>,
    started: Instant,
    rows: u64,
    bytes: u64,
}

/// One audited statement finished, well or with an error, or never ran.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Completion {
    pub(crate) seq: u64,
    pub(crate) started: Instant,
    pub(crate) rows: Option<u64>,
    pub(crate) sqlstate: Option<String>,
    pub(crate) bytes: u64,
    /// False when the server skipped it after an earlier error.
    pub(crate) executed: bool,
    /// Values masked in its result, by column; filled in by the relay.
    pub(crate) masked: std::collections::BTreeMap<String, u64>,
}

impl Ticket {
    /// A ticket for a forwarded Query, Execute or FunctionCall (`request`
    /// is its tag, `id` its request id) running the statements `seqs`.
    pub(crate) fn new(request: u8, id: u64, seqs: impl IntoIterator<Item = u64>) -> Ticket {
        Ticket {
            request,
            id,
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
            executed: true,
            masked: Default::default(),
        };
        self.started = Instant::now();
        self.rows = 0;
        self.bytes = 0;
        Some(done)
    }

    /// The statements still to run never will.
    fn skip_rest(&mut self, done: &mut Vec<Completion>) {
        for seq in self.seqs.drain(..) {
            done.push(Completion {
                seq,
                started: self.started,
                rows: None,
                sqlstate: None,
                bytes: 0,
                executed: false,
                masked: Default::default(),
            });
        }
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

    /// A client message was forwarded as `stamp`, the id its answers carry
    /// in [`front_request`](Self::front_request).
    pub(crate) fn client_sent(&mut self, tag: u8, stamp: Stamp) {
        if self.skipping {
            if tag != f::SYNC {
                return;
            }
            self.skipping = false;
        }
        let sent = match tag {
            f::QUERY => Sent::Query(stamp),
            f::FUNCTION_CALL => Sent::FunctionCall(stamp),
            // Ignored by the server while it is in COPY IN.
            f::SYNC if self.copy_in => return,
            f::SYNC => Sent::Sync(stamp),
            f::COPY_DONE | f::COPY_FAIL => {
                self.copy_in = false;
                Sent::CopyEnd
            }
            f::PARSE => Sent::Extended(Step::Parse, stamp),
            f::BIND => Sent::Extended(Step::Bind, stamp),
            f::DESCRIBE => Sent::Extended(Step::Describe, stamp),
            f::EXECUTE => Sent::Extended(Step::Execute, stamp),
            f::CLOSE => Sent::Extended(Step::Close, stamp),
            _ => return,
        };
        self.sent.push_back(sent);
    }

    /// Vigil sent a Query of its own as `stamp`.
    pub(crate) fn internal_sent(&mut self, stamp: Stamp) {
        self.sent.push_back(Sent::Internal(stamp));
    }

    /// The server is answering a Query of Vigil's own.
    pub(crate) fn answering_internal(&self) -> bool {
        matches!(self.sent.front(), Some(Sent::Internal(_)))
    }

    /// The id of the Query or extended-protocol message the server is
    /// answering now, if that is what it is answering.
    pub(crate) fn front_request(&self) -> Option<u64> {
        match self.sent.front()? {
            Sent::Query(stamp) | Sent::Extended(_, stamp) => Some(stamp.request),
            _ => None,
        }
    }

    /// The server is discarding what the client sends until its Sync.
    pub(crate) fn skipping(&self) -> bool {
        self.skipping
    }

    /// The message just forwarded with [`client_sent`](Self::client_sent)
    /// runs these audited statements; or, when the server discards it,
    /// never does (they go to `done`).
    pub(crate) fn expect(&mut self, mut ticket: Ticket, done: &mut Vec<Completion>) {
        match self.skipping {
            true => ticket.skip_rest(done),
            false => self.tickets.push_back(ticket),
        }
    }

    /// What a server message means for the audited statements: call it with
    /// every message (`body` may be a first chunk of a streamed one, `len`
    /// is its whole size) before [`server_sent`](Self::server_sent). The
    /// statements it completes, or shows never ran, go to `done`.
    pub(crate) fn completion(
        &mut self,
        tag: u8,
        body: &[u8],
        len: usize,
        done: &mut Vec<Completion>,
    ) {
        if self.tickets.is_empty() {
            return;
        }
        match tag {
            b::DATA_ROW => {
                if let Some(ticket) = self.tickets.front_mut() {
                    ticket.rows += 1;
                    ticket.bytes += len as u64;
                }
            }
            b::COPY_DATA => {
                if let Some(ticket) = self.tickets.front_mut() {
                    ticket.bytes += len as u64;
                }
            }
            b::COMMAND_COMPLETE
            | b::EMPTY_QUERY_RESPONSE
            | b::PORTAL_SUSPENDED
            | b::FUNCTION_CALL_RESPONSE => {
                let rows = (tag == b::COMMAND_COMPLETE)
                    .then(|| command_rows(body))
                    .flatten();
                let Some(ticket) = self.tickets.front_mut() else {
                    return;
                };
                done.extend(ticket.complete(rows, None));
                // A Query's and a FunctionCall's ticket ends with their
                // ReadyForQuery.
                if ticket.request == f::EXECUTE {
                    self.tickets.pop_front();
                }
            }
            b::ERROR_RESPONSE => {
                let sqlstate = ErrorFields::parse(body)
                    .ok()
                    .and_then(|e| e.code().map(str::to_owned));
                let Some(front) = self.sent.front() else {
                    return;
                };
                match front {
                    Sent::Query(_) | Sent::FunctionCall(_) => {
                        // The statements after the failed one do not run.
                        if let Some(ticket) = self.tickets.front_mut() {
                            done.extend(ticket.complete(None, sqlstate));
                            ticket.skip_rest(done);
                        }
                    }
                    Sent::Extended(Step::Execute, _) => {
                        if let Some(mut ticket) = self.tickets.pop_front() {
                            done.extend(ticket.complete(None, sqlstate));
                            ticket.skip_rest(done);
                        }
                        self.skip_after_error(1, done);
                    }
                    sent if sent.extended() => self.skip_after_error(0, done),
                    _ => {}
                }
            }
            b::READY_FOR_QUERY => {
                // The request it ends: a Query's statements after an error,
                // or never reached, did not run.
                let Some(ends) = self.sent.iter().find(|s| s.ends_with_ready()) else {
                    return;
                };
                if matches!(ends, Sent::Query(_) | Sent::FunctionCall(_)) {
                    if let Some(mut ticket) = self.tickets.pop_front() {
                        ticket.skip_rest(done);
                    }
                }
            }
            _ => {}
        }
    }

    /// More bytes of a streamed server message counted by `completion`.
    pub(crate) fn more_bytes(&mut self, len: usize) {
        if let Some(ticket) = self.tickets.front_mut() {
            ticket.bytes += len as u64;
        }
    }

    /// After an error in an extended batch the server skips to Sync: the
    /// Executes, Queries and FunctionCalls before it (past the first `skip`
    /// entries) never run.
    fn skip_after_error(&mut self, skip: usize, done: &mut Vec<Completion>) {
        let skipped: Vec<u64> = self
            .sent
            .iter()
            .skip(skip)
            .take_while(|s| !s.is_sync())
            .filter_map(|s| match s {
                Sent::Extended(Step::Execute, stamp)
                | Sent::Query(stamp)
                | Sent::FunctionCall(stamp) => Some(stamp.request),
                _ => None,
            })
            .collect();
        for id in skipped {
            if self.tickets.front().is_some_and(|t| t.id == id) {
                if let Some(mut ticket) = self.tickets.pop_front() {
                    ticket.skip_rest(done);
                }
            }
        }
    }

    /// A refused Query (or extended-protocol message, when `extended`) went
    /// to the server as `stamp`, in a form it will reject; `error` is what
    /// the client hears instead.
    /// A text the analyzer could not read went to the server to be parsed
    /// (see [`Sent::Checking`]) as `stamp`.
    pub(crate) fn client_checked(&mut self, extended: bool, error: Bytes, stamp: Stamp) {
        if self.skipping {
            return;
        }
        self.sent.push_back(Sent::Checking {
            extended,
            error,
            stamp,
            closed: false,
            parsed: false,
        });
    }

    pub(crate) fn client_refused(&mut self, extended: bool, error: Bytes, stamp: Stamp) {
        // The stand-in is discarded unheard, as the message would have been.
        if self.skipping {
            return;
        }
        self.sent.push_back(Sent::Refused {
            extended,
            error,
            stamp,
        });
    }

    /// A server message arrived: what it says about the client's requests.
    pub(crate) fn server_sent(&mut self, tag: u8) -> Heard {
        let mut heard = Heard::default();
        if let Some(Sent::Checking { closed, parsed, .. }) = self.sent.front_mut() {
            match tag {
                b::CLOSE_COMPLETE if !*closed => {
                    *closed = true;
                    heard.swallow = true;
                    return heard;
                }
                b::PARSE_COMPLETE if *closed && !*parsed => {
                    *parsed = true;
                    heard.swallow = true;
                    return heard;
                }
                _ => {}
            }
        }
        match tag {
            b::READY_FOR_QUERY => {
                // Everything up to the request that ended, then the COPY
                // markers that belonged to it.
                while let Some(sent) = self.sent.pop_front() {
                    if sent.ends_with_ready() {
                        if let Some(stamp) = sent.stamp() {
                            heard.event = Some(Event::Ready {
                                through: stamp.request,
                            });
                        }
                        break;
                    }
                }
                while self.sent.front() == Some(&Sent::CopyEnd) {
                    self.sent.pop_front();
                }
                self.copy_in = false;
                self.query_statement = 0;
            }
            b::ERROR_RESPONSE => {
                self.copy_in = false;
                let Some(front) = self.sent.front() else {
                    return heard;
                };
                heard.event = front.stamp().map(|stamp| {
                    let statement = match front {
                        Sent::Query(_) => self.query_statement,
                        _ => 0,
                    };
                    Event::Failed {
                        at: At {
                            request: stamp.request,
                            statement,
                        },
                        epoch: stamp.epoch,
                        to_sync: front.extended(),
                    }
                });
                match front {
                    Sent::Refused { error, .. } => heard.refusal = Some(error.clone()),
                    Sent::Checking { error, parsed, .. } => {
                        heard.refusal = Some(error.clone());
                        heard.server_error_unless_several = !parsed;
                    }
                    _ => {}
                }
                if front.extended() {
                    // The server now discards every message until the next
                    // Sync, a Query or FunctionCall included, and those the
                    // client sends before it.
                    while self.sent.front().is_some_and(|s| !s.is_sync()) {
                        self.sent.pop_front();
                    }
                    self.skipping = self.sent.is_empty();
                } else if let (Some(_), Some(stamp)) = (&heard.refusal, front.stamp()) {
                    // Answered; its ReadyForQuery follows, like any Query's.
                    self.sent[0] = Sent::Answered(stamp);
                }
            }
            b::COPY_IN_RESPONSE => {
                // Syncs the client sent between the COPY and its end reach
                // the server in COPY mode, which ignores them.
                let end = self.sent.iter().position(|s| *s == Sent::CopyEnd);
                let until = end.unwrap_or(self.sent.len());
                let mut index = 0;
                self.sent.retain(|s| {
                    let keep = index == 0 || index >= until || !s.is_sync();
                    index += 1;
                    keep
                });
                self.copy_in = end.is_none();
            }
            b::COMMAND_COMPLETE | b::EMPTY_QUERY_RESPONSE
                if matches!(self.sent.front(), Some(Sent::Query(_))) =>
            {
                if let Some(Sent::Query(stamp)) = self.sent.front() {
                    heard.event = Some(Event::Done(At {
                        request: stamp.request,
                        statement: self.query_statement,
                    }));
                    self.query_statement += 1;
                }
            }
            tag => {
                if let Some(Sent::Extended(step, stamp)) = self.sent.front() {
                    if step.completed_by(tag) {
                        heard.event = Some(Event::Done(At::message(stamp.request)));
                        self.sent.pop_front();
                    }
                }
            }
        }
        heard
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

    /// Stamps for a dialogue's client messages: ids in order, a new epoch
    /// after each Sync and Query.
    #[derive(Debug, Default)]
    struct Stamps {
        next: u64,
        epoch: u64,
    }

    impl Stamps {
        fn stamp(&mut self, tag: u8) -> Stamp {
            self.next += 1;
            let stamp = Stamp {
                request: self.next,
                epoch: self.epoch,
            };
            if matches!(tag, f::SYNC | f::QUERY | f::FUNCTION_CALL) {
                self.epoch += 1;
            }
            stamp
        }
    }

    /// An Owed with its stamps, driven step by step.
    #[derive(Debug, Default)]
    struct Dialogue {
        owed: Owed,
        stamps: Stamps,
    }

    impl Dialogue {
        fn client(&mut self, tag: u8) -> Stamp {
            let stamp = self.stamps.stamp(tag);
            self.owed.client_sent(tag, stamp);
            stamp
        }

        fn refused(&mut self, extended: bool, error: Bytes) {
            let tag = if extended { f::PARSE } else { f::QUERY };
            let stamp = self.stamps.stamp(tag);
            self.owed.client_refused(extended, error, stamp);
        }

        fn server(&mut self, tag: u8) -> Option<Bytes> {
            self.owed.server_sent(tag).refusal
        }

        fn settled(&self) -> bool {
            self.owed.settled()
        }

        fn answer_coming(&self) -> bool {
            self.owed.answer_coming()
        }
    }

    fn run(steps: &[(char, u8)]) -> Dialogue {
        let mut dialogue = Dialogue::default();
        for &(side, tag) in steps {
            match side {
                'c' => {
                    dialogue.client(tag);
                }
                _ => {
                    dialogue.server(tag);
                }
            }
        }
        dialogue
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
    fn what_follows_an_extended_error_before_its_sync_is_never_answered() {
        // The error comes back before the client sent the rest.
        let mut owed = run(&[('c', b'P'), ('s', b'E')]);
        assert!(owed.owed.skipping());
        owed.client(b'Q');
        owed.refused(false, Bytes::from_static(b"refusal"));
        assert!(!owed.answer_coming(), "{owed:?}");
        owed.client(b'S');
        assert!(!owed.owed.skipping());
        owed.server(b'Z');
        assert!(owed.settled(), "{owed:?}");
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
        owed.refused(false, error.clone());
        assert_eq!(owed.server(b'E'), None, "the first Query's own error");
        owed.server(b'Z');
        assert_eq!(owed.server(b'E'), Some(error.clone()));
        assert_eq!(owed.server(b'E'), None);
        owed.server(b'Z');
        assert!(owed.settled());

        // Parse Bind Execute (rows) then a refused Parse in the same batch.
        let mut owed = run(&[('c', b'P'), ('c', b'B'), ('c', b'E')]);
        owed.refused(true, error.clone());
        for tag in [b'B', b'E', b'S'] {
            owed.client(tag);
        }
        for tag in [b'1', b'2', b'D', b'D', b'C'] {
            assert_eq!(owed.server(tag), None);
        }
        assert_eq!(owed.server(b'E'), Some(error.clone()));
        owed.server(b'Z');
        assert!(owed.settled(), "{owed:?}");

        // The Execute before it fails: the refused Parse is skipped unheard.
        let mut owed = run(&[('c', b'P'), ('c', b'B'), ('c', b'E')]);
        owed.refused(true, error.clone());
        owed.client(b'S');
        for tag in [b'1', b'2'] {
            owed.server(tag);
        }
        assert_eq!(owed.server(b'E'), None, "the Execute's own error");
        owed.server(b'Z');
        assert!(owed.settled(), "{owed:?}");

        // Describe of a statement answers with 't' then 'T' or 'n'.
        let mut owed = run(&[('c', b'P'), ('c', b'D')]);
        owed.refused(true, error.clone());
        owed.client(b'S');
        for tag in [b'1', b't', b'n'] {
            owed.server(tag);
        }
        assert_eq!(owed.server(b'E'), Some(error));
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
    fn audited(
        steps: &[(char, u8, &[u8], &[u64])],
    ) -> Vec<(u64, Option<u64>, Option<String>, bool)> {
        let mut dialogue = Dialogue::default();
        let mut done = Vec::new();
        for &(side, tag, body, seqs) in steps {
            if side == 'c' {
                let stamp = dialogue.client(tag);
                if !seqs.is_empty() {
                    let mut skipped = Vec::new();
                    dialogue.owed.expect(
                        Ticket::new(tag, stamp.request, seqs.iter().copied()),
                        &mut skipped,
                    );
                    done.extend(
                        skipped
                            .into_iter()
                            .map(|c| (c.seq, c.rows, c.sqlstate, c.executed)),
                    );
                }
            } else {
                let mut completed = Vec::new();
                dialogue
                    .owed
                    .completion(tag, body, body.len() + 5, &mut completed);
                done.extend(
                    completed
                        .into_iter()
                        .map(|c| (c.seq, c.rows, c.sqlstate, c.executed)),
                );
                dialogue.owed.server_sent(tag);
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
                (1, Some(1), None, true),
                (2, None, Some("22012".into()), true),
                (3, None, None, false),
                (4, Some(5), None, true)
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
        assert_eq!(
            done,
            [
                (1, None, None, false),
                (2, Some(2), None, true),
                (3, Some(0), None, true)
            ]
        );
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
                (1, Some(1), None, true),
                (2, None, Some("23505".into()), true),
                (3, None, None, true)
            ]
        );
    }
}
