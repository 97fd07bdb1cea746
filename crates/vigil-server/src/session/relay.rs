//! The relay: both directions of one session in one task.
//!
//! One poll function drives four things (write to upstream, write to client,
//! read from client, read from upstream), so neither direction can block the
//! other: a server busy sending results is always read from while the client's
//! pipeline is still being written to it. Every byte passes a [`FrameReader`],
//! so the relay always knows where messages begin; that is where policy,
//! masking and audit hook in. Large DataRow and CopyData frames stream through
//! in chunks and are never buffered whole.
//!
//! Every Query, Parse and FunctionCall passes the [`Gate`] first. A refused
//! one is not dropped: the server gets a stand-in it is sure to reject without
//! running anything (a syntax error), and its ErrorResponse is swapped for
//! Vigil's. So the refusal reaches the client exactly where the answer would
//! have, behind everything pipelined before it; inside a transaction block the
//! server itself marks the transaction failed, as after any error; and in the
//! extended protocol the server skips to the next Sync.

use std::future::{poll_fn, Future};
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;
use tokio::sync::watch;
use tokio_util::io::poll_read_buf;
use vigil_audit::{AuditError, AuditEvent, Receipt};
use vigil_wire::fields::{query_text, ParseMessage};
use vigil_wire::frame::FRONTEND_TAGS;
use vigil_wire::tags::{backend as b, frontend as f};
use vigil_wire::{FrameReader, Next, TagSet, WireError};

use super::audit::unavailable_report;
use super::defined::{HeldName, VERIFY_SQL};
use super::gate::{Checked, Gate, Gated, Hold, Place, Verdict};
use super::names::Stamp;
use super::owed::{Completion, Owed, Ticket};
use crate::approvals::Outcome;
use crate::live::Activity;
use crate::masking::{Handling, Masker, Prepared as MaskedStatement, Source};
use crate::shutdown::Phase;
use crate::stream::Stream;
use crate::SessionError;

/// Stop reading from one side while this much waits to be written to the other.
const HIGH_WATER: usize = 256 * 1024;
/// Read at least this much at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Frames of streamable types above this size pass through in pieces.
const STREAM_ABOVE: usize = 64 * 1024;

/// Frontend frames that may stream: COPY data only; everything else the
/// client sends is held whole so it can be inspected.
const FRONTEND_STREAMED: TagSet = TagSet::of(&[f::COPY_DATA]);
/// Backend frames that may stream: all but ReadyForQuery, the one the relay
/// reads. A server's huge row, COPY line or notice never sits whole in Vigil.
const BACKEND_STREAMED: TagSet = TagSet::ALL.without(b::READY_FOR_QUERY);

/// How a relayed session ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The client sent Terminate; it has been passed upstream.
    ClientTerminated,
    /// The client closed its socket without a Terminate.
    ClientGone,
    /// The server closed; what it said last has been passed to the client.
    UpstreamGone,
    /// Shutdown was asked for and the session reached an idle point.
    Drained,
    /// The shutdown deadline passed while the session was busy.
    Cancelled { idle: bool },
    /// The client broke the protocol.
    Violation(WireError),
    /// The server reported a setting under which it would read SQL text
    /// differently from the analyzer.
    Unsafe(String),
    /// The server reports the session left the upstream role Vigil locked
    /// it in.
    RoleChanged(String),
}

/// What the server gets in place of a refused statement: rejected by its
/// parser, so nothing runs, and self-explanatory in the server's log.
const STAND_IN: &str = "VIGIL_REFUSED_THIS_STATEMENT";
/// The prepared statement name a refused Execute's stand-in Parse uses: it
/// fails, so nothing of that name is ever created.
const STAND_IN_NAME: &[u8] = b"vigil_refused";
/// The prepared statement name under which the server is asked to parse a
/// text the analyzer could not read. Nothing ever runs it: no client can
/// bind a name Vigil did not see it define.
const CHECK_NAME: &[u8] = b"vigil_syntax_check";

/// One client message (or a piece of a streamed one), checked and waiting to
/// be passed on.
struct Message {
    /// Its bytes in `from_client`.
    range: Range<usize>,
    /// Its place in the stream (a streamed chunk shares its message's).
    stamp: Stamp,
    /// Refused as unreadable, with the server asked to parse it (see
    /// `refuse`).
    ask_server: bool,
    /// Its tag; `None` for the continuation of a streamed message.
    tag: Option<u8>,
    verdict: Verdict,
    /// The audited statements it runs, and their events' places in the batch.
    runs: Option<(Vec<u64>, Range<usize>)>,
    /// What masking makes of its statements (a Query's, a Parse's).
    masks: Option<Vec<MaskedStatement>>,
    /// Held for approval: forwarded only once approved.
    hold: Option<Box<Hold>>,
}

/// The audit log's answer for a batch of events, one result per event, and
/// the outcome of each approval the batch waited for, by message.
type Answers = (
    Vec<Result<Receipt, AuditError>>,
    Vec<(usize, String, Outcome)>,
    bool,
);
type Waiting = Pin<Box<dyn Future<Output = Answers> + Send>>;

/// Client messages held back until their audit events are stored and the
/// approvals they need are decided.
struct Held {
    messages: Vec<Message>,
    /// Bytes of `from_client` they cover.
    end: usize,
    answers: Waiting,
    /// Waiting for approvers, not only for the audit store: the client is
    /// still read from, so a disconnect withdraws the request.
    for_approval: bool,
    /// When the batch was read, for the latency Vigil adds.
    read_at: Instant,
}

pub(crate) struct Relay {
    client: Stream,
    upstream: Stream,
    from_client: BytesMut,
    from_upstream: BytesMut,
    pub(crate) to_client: BytesMut,
    pub(crate) to_upstream: BytesMut,
    client_frames: FrameReader,
    upstream_frames: FrameReader,
    client_unflushed: bool,
    upstream_unflushed: bool,
    /// What the server still owes for what the client sent.
    owed: Owed,
    /// The client closed its sending side; it may still be reading answers.
    client_eof: bool,
    /// Transaction status from the last ReadyForQuery: I, T or E.
    pub(crate) status: u8,
    terminated: bool,
    gate: Gate,
    /// Set when the server reported an unsafe setting.
    ended: Option<End>,
    /// Messages waiting for their audit events; nothing more is read from
    /// the client meanwhile.
    held: Option<Held>,
    /// An empty vector kept for the next batch of checked messages.
    spare: Vec<Message>,
    /// Rewrites results in a session whose identity sees masked columns.
    masker: Option<Masker>,
    /// Vigil's own notices, waiting for the end of a server message that
    /// is streaming to the client.
    notices: BytesMut,
    /// Server frames stream only above this size once results are masked.
    masked_stream_above: usize,
    /// The id of the last client message checked.
    request: u64,
    /// The current epoch: it moves on after each Sync, Query and
    /// FunctionCall, the messages an error does not make the server skip past.
    epoch: u64,
    /// The last Sync, Query or FunctionCall checked.
    closed_through: u64,
    /// A client message waits, unchecked, for the server to answer what
    /// came before it.
    waiting: bool,
    /// A client message waits, unchecked, for the catalog to be read again.
    reloading: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Statements the server just finished, for their audit completions.
    done: Vec<Completion>,
    /// Vigil's own question about the names the session holds is on its
    /// way (after code Vigil cannot see into ran), with the answer so far;
    /// `None` inside when the answer could not be read.
    verifying: Option<Option<Vec<HeldName>>>,
    pub(crate) stats: Stats,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) queries: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

impl Relay {
    pub(crate) fn new(
        client: Stream,
        from_client: BytesMut,
        upstream: Stream,
        from_upstream: BytesMut,
        max_message_bytes: usize,
        status: u8,
        gate: Gate,
    ) -> Relay {
        // Rows are masked whole: in a masked session only rows larger than
        // any client message stream (and are refused if they need masking).
        let masker = gate.masks.is_some().then(Masker::new);
        let stream_above = match masker {
            Some(_) => STREAM_ABOVE.max(max_message_bytes),
            None => STREAM_ABOVE,
        };
        let masked_stream_above = STREAM_ABOVE.max(max_message_bytes);
        Relay {
            client,
            upstream,
            from_client,
            from_upstream,
            to_client: BytesMut::with_capacity(READ_CHUNK),
            to_upstream: BytesMut::with_capacity(READ_CHUNK),
            client_frames: FrameReader::new(max_message_bytes)
                .accepting(FRONTEND_TAGS)
                .streaming(FRONTEND_STREAMED, STREAM_ABOVE),
            upstream_frames: FrameReader::new(vigil_wire::frame::MAX_STREAMED_FRAME)
                .streaming(BACKEND_STREAMED, stream_above),
            client_unflushed: false,
            upstream_unflushed: false,
            owed: Owed::default(),
            client_eof: false,
            status,
            terminated: false,
            gate,
            ended: None,
            held: None,
            spare: Vec::new(),
            masker,
            notices: BytesMut::new(),
            masked_stream_above,
            request: 0,
            epoch: 0,
            closed_through: 0,
            waiting: false,
            reloading: None,
            done: Vec::new(),
            verifying: None,
            stats: Stats::default(),
        }
    }

    /// Statements refused so far.
    pub(crate) fn refused(&self) -> u64 {
        self.gate.refused
    }

    pub(crate) fn gate(&self) -> &Gate {
        &self.gate
    }

    /// At a point where the session could end without losing anything.
    fn idle(&self) -> bool {
        self.owed.settled()
            && self.held.is_none()
            && self.status == b'I'
            && self.from_client.is_empty()
            && !self.client_frames.mid_frame()
            && !self.upstream_frames.mid_frame()
    }

    /// Relays until the session ends. `phase` turns to draining or
    /// cancelling when the server shuts down.
    pub(crate) async fn run(&mut self, phase: &mut watch::Receiver<Phase>) -> io::Result<End> {
        // Bytes that came with the last startup message (a pipelining client,
        // or a server message after ReadyForQuery) are relayed before waiting.
        if let Err(violation) = self.forward_client_frames() {
            return Ok(End::Violation(violation));
        }
        self.forward_upstream_frames()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut draining = false;
        loop {
            tokio::select! {
                biased;
                end = poll_fn(|cx| self.poll_relay(cx, draining)) => return end,
                changed = phase.changed() => {
                    let now = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Cancelling };
                    match now {
                        Phase::Running => {}
                        Phase::Draining => draining = true,
                        Phase::Cancelling => return Ok(End::Cancelled { idle: self.idle() }),
                    }
                }
            }
        }
    }

    fn poll_relay(&mut self, cx: &mut Context<'_>, draining: bool) -> Poll<io::Result<End>> {
        loop {
            let mut progress = false;

            if let Some(held) = &mut self.held {
                if let Poll::Ready(answers) = held.answers.as_mut().poll(cx) {
                    let held = self.held.take().expect("held");
                    self.release(held.messages, held.end, &answers);
                    self.observe_added(held.read_at, held.for_approval);
                    progress = true;
                    // Messages that arrived meanwhile.
                    if let Err(violation) = self.forward_client_frames() {
                        return Poll::Ready(Ok(End::Violation(violation)));
                    }
                }
            }

            if let Some(reloading) = &mut self.reloading {
                if reloading.as_mut().poll(cx).is_ready() {
                    self.reloading = None;
                    progress = true;
                    if let Err(violation) = self.forward_client_frames() {
                        return Poll::Ready(Ok(End::Violation(violation)));
                    }
                }
            }

            progress |= ready_or(poll_send(
                &mut self.upstream,
                &mut self.to_upstream,
                &mut self.upstream_unflushed,
                cx,
            ))?;
            progress |= ready_or(poll_send(
                &mut self.client,
                &mut self.to_client,
                &mut self.client_unflushed,
                cx,
            ))?;
            // After Terminate the server still answers what came before it
            // (then closes): the client gets those answers, as from
            // PostgreSQL, before the session ends.
            if self.terminated
                && self.to_upstream.is_empty()
                && !self.upstream_unflushed
                && self.owed.settled()
                && self.to_client.is_empty()
            {
                return Poll::Ready(Ok(End::ClientTerminated));
            }

            // A client that half-closed still gets the answers on their way,
            // as PostgreSQL gives them; then the session ends.
            if self.client_eof && !self.owed.answer_coming() && self.to_client.is_empty() {
                return Poll::Ready(Ok(End::ClientGone));
            }

            // While a statement waits for approval the client is still
            // read (not checked): its disconnect withdraws the request.
            let reading = match &self.held {
                // A message waiting for the server's answers is held whole
                // in `from_client`: read on only a little past it, so a
                // client pipelining more than it reads cannot stall the
                // answers it waits for.
                None if self.waiting || self.reloading.is_some() => {
                    self.from_client.len() < HIGH_WATER
                }
                None => self.to_upstream.len() < HIGH_WATER,
                Some(held) => held.for_approval && self.from_client.len() < HIGH_WATER,
            };
            if !self.terminated && !self.client_eof && reading {
                reserve(&mut self.from_client);
                match poll_read_buf(Pin::new(&mut self.client), cx, &mut self.from_client) {
                    Poll::Ready(Ok(0)) => {
                        self.client_eof = true;
                        progress = true;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(Ok(End::ClientGone)),
                    Poll::Ready(Ok(n)) => {
                        self.stats.bytes_in += n as u64;
                        progress = true;
                        if let Err(violation) = self.forward_client_frames() {
                            return Poll::Ready(Ok(End::Violation(violation)));
                        }
                    }
                    Poll::Pending => {}
                }
            }

            if self.to_client.len() < HIGH_WATER {
                reserve(&mut self.from_upstream);
                match poll_read_buf(Pin::new(&mut self.upstream), cx, &mut self.from_upstream) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        // Pass on what the server said last (often a FATAL).
                        self.to_client.extend_from_slice(&self.from_upstream);
                        return Poll::Ready(Ok(End::UpstreamGone));
                    }
                    Poll::Ready(Ok(_)) => {
                        progress = true;
                        if let Err(e) = self.forward_upstream_frames() {
                            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                        }
                        if let Some(end) = self.ended.take() {
                            return Poll::Ready(Ok(end));
                        }
                        // What the server said may settle a waiting message.
                        if self.waiting {
                            if let Err(violation) = self.forward_client_frames() {
                                return Poll::Ready(Ok(End::Violation(violation)));
                            }
                        }
                    }
                    Poll::Pending => {}
                }
            }

            match self.verify_names() {
                Ok(asked) => progress |= asked,
                Err(end) => return Poll::Ready(Ok(end)),
            }

            if draining && self.idle() && self.to_client.is_empty() {
                return Poll::Ready(Ok(End::Drained));
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Checks every complete client frame (and chunk of a streamed one) and
    /// passes them on, once the audit events of the statements among them
    /// are stored (at once when audit is off or in `fast` mode).
    fn forward_client_frames(&mut self) -> Result<(), WireError> {
        if self.held.is_some()
            || self.terminated
            || self.verifying.is_some()
            || self.reloading.is_some()
        {
            return Ok(());
        }
        self.waiting = false;
        // The previous batch's vector, empty: no allocation per batch.
        let mut messages = std::mem::take(&mut self.spare);
        let read_at = Instant::now();
        let mut events = Vec::new();
        let mut offset = 0;
        loop {
            match self.client_frames.next(&self.from_client[offset..]) {
                Ok(Next::Frame { tag, len }) => {
                    let range = offset..offset + len;
                    let first_event = events.len();
                    let body = &self.from_client[range.start + 5..range.end];
                    let place = Place {
                        stamp: Stamp {
                            request: self.request + 1,
                            epoch: self.epoch,
                        },
                        closed_through: self.closed_through,
                        fresh: self.request == self.closed_through,
                        skipped: self.owed.skipping() && tag != f::SYNC,
                    };
                    let checked = match check(&mut self.gate, tag, body, place, &mut events)? {
                        Gated::Checked(checked) => checked,
                        Gated::Wait => {
                            self.waiting = true;
                            break;
                        }
                        Gated::Reload => {
                            self.reloading = Some(self.gate.reload_catalog());
                            break;
                        }
                    };
                    offset += len;
                    self.request = place.stamp.request;
                    if matches!(tag, f::SYNC | f::QUERY | f::FUNCTION_CALL) {
                        self.epoch += 1;
                        self.closed_through = place.stamp.request;
                    }
                    let runs = checked.runs.map(|seqs| (seqs, first_event..events.len()));
                    // A Query's check ends with a Sync: only where that
                    // cannot end anything of the client's.
                    let ask_server = checked.unreadable
                        && (tag == f::PARSE || (tag == f::QUERY && place.fresh && !place.skipped));
                    messages.push(Message {
                        range,
                        stamp: place.stamp,
                        ask_server,
                        tag: Some(tag),
                        verdict: checked.verdict,
                        runs,
                        masks: checked.masks,
                        hold: checked.hold,
                    });
                    if tag == f::TERMINATE {
                        break;
                    }
                }
                Ok(Next::Chunk { len, .. }) => {
                    messages.push(Message {
                        range: offset..offset + len,
                        stamp: Stamp {
                            request: self.request,
                            epoch: self.epoch,
                        },
                        ask_server: false,
                        tag: None,
                        verdict: Verdict::Forward,
                        runs: None,
                        masks: None,
                        hold: None,
                    });
                    offset += len;
                }
                Ok(Next::Incomplete { want }) => {
                    self.from_client
                        .reserve(want.saturating_sub(self.from_client.len() - offset));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let mut waits = Vec::new();
        for (i, message) in messages.iter_mut().enumerate() {
            if let Some(hold) = message.hold.take() {
                self.say(&hold.notice);
                waits.push((i, hold.wait));
            }
        }
        if events.is_empty() && waits.is_empty() {
            self.release(messages, offset, &(Vec::new(), Vec::new(), false));
            self.observe_added(read_at, false);
            return Ok(());
        }
        let log = self.gate.audit.log().clone();
        let for_approval = !waits.is_empty();
        if for_approval {
            let live = self.gate.live.session();
            live.set_activity(Activity::WaitingApproval);
        }
        let state = Arc::clone(self.gate.state());
        let cancel = Arc::clone(&self.gate.cancel);
        // From now on a cancel withdraws, not reaches the idle server.
        cancel.start();
        let mut answers: Waiting = Box::pin(async move {
            let results = match events.is_empty() {
                true => Vec::new(),
                false => {
                    let started = Instant::now();
                    let results = log.append_all(events).await;
                    state.metrics.audit_wait.observe(started.elapsed());
                    results
                }
            };
            let stored = results.iter().all(Result::is_ok);
            let mut outcomes = Vec::with_capacity(waits.len());
            for (i, wait) in waits {
                let id = wait.id.clone();
                // A statement whose event was not stored cannot run: its
                // request is withdrawn rather than waited for.
                let outcome = match stored {
                    true => wait.outcome(&cancel).await,
                    false => {
                        wait.abandon("its audit event could not be stored");
                        Outcome::Withdrawn
                    }
                };
                outcomes.push((i, id, outcome));
            }
            cancel.stop();
            // Cancelled while its audit events were being stored: nothing
            // reached the server, and nothing will.
            let cancelled = cancel.cancelled();
            (results, outcomes, cancelled)
        });
        // In fast mode the events are queued by the first poll.
        match answers
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(answers) => {
                self.release(messages, offset, &answers);
                self.observe_added(read_at, for_approval);
            }
            Poll::Pending => {
                self.held = Some(Held {
                    messages,
                    end: offset,
                    answers,
                    for_approval,
                    read_at,
                })
            }
        }
        Ok(())
    }

    /// Counts the time between reading a batch and passing it on; a batch
    /// that waited for approvers waited for people, not for Vigil.
    fn observe_added(&self, read_at: Instant, for_approval: bool) {
        if !for_approval {
            self.gate.state().metrics.added.observe(read_at.elapsed());
        }
    }

    /// Queues a message of Vigil's own for the client: now, or after the
    /// server message streaming to it.
    fn say(&mut self, message: &[u8]) {
        match self.upstream_frames.mid_frame() {
            true => self.notices.extend_from_slice(message),
            false => self.to_client.extend_from_slice(message),
        }
    }

    /// Passes checked messages on: as they are, or as a stand-in when
    /// refused, by policy or because their audit events (`results`, by
    /// place in the batch) could not be stored.
    fn release(&mut self, mut messages: Vec<Message>, end: usize, answers: &Answers) {
        let (results, outcomes, cancelled) = answers;
        // Masking started with a reload: from these messages on, results
        // are masked (answers to what went before are unknown, so masked
        // whole).
        if self.masker.is_none() && self.gate.masks.is_some() {
            self.masker = Some(Masker::new());
            self.upstream_frames
                .set_stream_above(self.masked_stream_above);
        }
        for (i, message) in messages.drain(..).enumerate() {
            let Some(tag) = message.tag else {
                self.to_upstream
                    .extend_from_slice(&self.from_client[message.range]);
                continue;
            };
            let mut verdict = message.verdict;
            let mut ticket = None;
            if let (Verdict::Forward, Some((seqs, events))) = (&verdict, message.runs) {
                match results
                    .get(events)
                    .unwrap_or(&[])
                    .iter()
                    .find_map(|r| r.as_ref().err())
                {
                    Some(error) => {
                        tracing::warn!(%error, "statement refused: its audit event was not stored");
                        self.gate.refused += 1;
                        verdict = Verdict::Refuse(unavailable_report(error));
                    }
                    None => ticket = Some(Ticket::new(tag, message.stamp.request, seqs)),
                }
            }
            // Cancelled while held for its audit event: refused as the
            // server refuses a cancelled statement.
            if let (true, true, Verdict::Forward) = (*cancelled, ticket.is_some(), &verdict) {
                ticket = None;
                verdict = Verdict::Refuse(super::review::cancelled_error());
            }
            // A statement already refused (its audit event was not stored)
            // keeps that refusal: it is the reason nothing ran.
            let decided = outcomes.iter().find(|(at, ..)| *at == i);
            if let (Some((_, id, outcome)), Verdict::Forward) = (decided, &verdict) {
                match super::review::outcome_error(id, outcome) {
                    Some(error) => {
                        self.gate.refused += 1;
                        ticket = None;
                        verdict = Verdict::Refuse(error);
                    }
                    None => self
                        .gate
                        .state()
                        .approvals
                        .executed(id, self.gate.audit.session_id()),
                }
            }
            match verdict {
                Verdict::Forward => {
                    let body = &self.from_client[message.range.start + 5..message.range.end];
                    self.owed.client_sent(tag, message.stamp);
                    if let Some(masker) = &mut self.masker {
                        masker_sent(masker, message.stamp.request, tag, body, message.masks);
                    }
                    self.to_upstream
                        .extend_from_slice(&self.from_client[message.range]);
                    if let Some(ticket) = ticket {
                        self.owed.expect(ticket, &mut self.done);
                        for done in self.done.drain(..) {
                            self.gate.completed(done);
                        }
                    }
                    if matches!(tag, f::QUERY | f::FUNCTION_CALL | f::EXECUTE) {
                        self.gate.live.session().set_activity(Activity::Active);
                    }
                }
                Verdict::Refuse(error) if message.ask_server => {
                    self.ask_server(tag, message.range, error, message.stamp)
                }
                Verdict::Refuse(error) => self.refuse(tag, message.range, error, message.stamp),
            }
            if matches!(tag, f::QUERY | f::FUNCTION_CALL | f::EXECUTE) {
                self.stats.queries += 1;
            }
            if tag == f::TERMINATE {
                self.terminated = true;
            }
        }
        self.spare = messages;
        self.from_client.advance(end);
        if self.terminated {
            self.from_client.clear();
        }
    }

    /// Sends the server a stand-in for a refused message, one it rejects
    /// without running anything, and arranges for the client to hear `error`
    /// in place of the server's.
    fn refuse(&mut self, tag: u8, range: Range<usize>, error: Bytes, stamp: Stamp) {
        let extended = matches!(
            tag,
            f::PARSE | f::BIND | f::DESCRIBE | f::EXECUTE | f::CLOSE
        );
        match tag {
            f::PARSE => {
                let body = &self.from_client[range.start + 5..range.end];
                let name = ParseMessage::parse(body).map_or(&b""[..], |p| p.name);
                vigil_wire::backend::parse(&mut self.to_upstream, name, STAND_IN);
            }
            // Names stay as they are; the batch fails to Sync.
            _ if extended => {
                vigil_wire::backend::parse(&mut self.to_upstream, STAND_IN_NAME, STAND_IN)
            }
            _ => vigil_wire::backend::query(&mut self.to_upstream, STAND_IN),
        }
        self.owed.client_refused(extended, error, stamp);
    }

    /// Refuses a Query or Parse whose text the analyzer could not read by
    /// asking the server to parse it, under a statement name of Vigil's own
    /// (a Parse runs nothing), followed by a stand-in sure to fail: the
    /// client hears the server's own error, with its SQLSTATE, position and
    /// hint, or Vigil's `error` if the server took the text.
    fn ask_server(&mut self, tag: u8, range: Range<usize>, error: Bytes, stamp: Stamp) {
        let body = &self.from_client[range.start + 5..range.end];
        let out = &mut self.to_upstream;
        vigil_wire::backend::close(out, b'S', CHECK_NAME);
        match tag {
            f::PARSE => {
                // The client's text and parameter types, under Vigil's name.
                let after_name = body
                    .iter()
                    .position(|&b| b == 0)
                    .map_or(body.len(), |n| n + 1);
                vigil_wire::backend::parse_renamed(out, CHECK_NAME, &body[after_name..]);
                vigil_wire::backend::parse(out, STAND_IN_NAME, STAND_IN);
            }
            _ => {
                let text = query_text(body).unwrap_or_default();
                vigil_wire::backend::parse_bytes(out, CHECK_NAME, text);
                vigil_wire::backend::parse(out, STAND_IN_NAME, STAND_IN);
                vigil_wire::backend::sync(out);
            }
        }
        self.owed.client_checked(tag == f::PARSE, error, stamp);
    }

    fn forward_upstream_frames(&mut self) -> Result<(), WireError> {
        let mut copied = 0;
        let mut offset = 0;
        let result = loop {
            match self.upstream_frames.next(&self.from_upstream[offset..]) {
                Ok(Next::Frame { tag, len }) => {
                    let frame = offset..offset + len;
                    offset += len;
                    if self.owed.answering_internal() && tag != b::PARAMETER_STATUS {
                        // Vigil's own question: the client never sees it.
                        self.to_client
                            .extend_from_slice(&self.from_upstream[copied..frame.start]);
                        copied = frame.end;
                        if let Err(end) = self.internal_answer(tag, frame) {
                            self.ended = Some(end);
                        }
                        continue;
                    }
                    let body = &self.from_upstream[frame.start + 5..frame.end];
                    let handling = match (&mut self.masker, &self.gate.masks) {
                        (Some(masker), Some(masks)) => {
                            masker.observe(masks, self.owed.front_request(), tag, body)
                        }
                        _ => Handling::Pass,
                    };
                    self.owed.completion(tag, body, len, &mut self.done);
                    for mut done in self.done.drain(..) {
                        if let Some(masker) = &mut self.masker {
                            if done.executed {
                                done.masked = masker.take_finished();
                            }
                        }
                        self.gate.completed(done);
                    }
                    let heard = self.owed.server_sent(tag);
                    if let Some(event) = heard.event {
                        let status = match tag {
                            b::READY_FOR_QUERY if len == 6 => self.from_upstream[frame.start + 5],
                            _ => self.status,
                        };
                        self.gate.heard(event, status, self.masker.as_mut());
                    }
                    let several = |body: &[u8]| {
                        vigil_wire::fields::ErrorFields::parse(body).is_ok_and(|e| {
                            e.message().is_some_and(|m| {
                                m.contains(
                                    "cannot insert multiple commands into a prepared statement",
                                )
                            })
                        })
                    };
                    let refusal = match heard.server_error_unless_several {
                        // The server's own word on a text Vigil could not
                        // read, unless it only objects to a Parse of several
                        // statements: then Vigil's.
                        true => heard
                            .refusal
                            .filter(|_| several(&self.from_upstream[frame.start + 5..frame.end])),
                        false => heard.refusal,
                    };
                    if heard.swallow {
                        self.to_client
                            .extend_from_slice(&self.from_upstream[copied..frame.start]);
                        copied = frame.end;
                    } else if let Some(refusal) = refusal {
                        // The server's rejection of the stand-in: the client
                        // hears Vigil's refusal instead.
                        self.to_client
                            .extend_from_slice(&self.from_upstream[copied..frame.start]);
                        self.to_client.extend_from_slice(&refusal);
                        copied = frame.end;
                    } else if let (Handling::Rewrite, Some(masker), Some(masks)) =
                        (handling, &mut self.masker, &self.gate.masks)
                    {
                        self.to_client
                            .extend_from_slice(&self.from_upstream[copied..frame.start]);
                        if let Err(error) = masker.rewrite(
                            masks,
                            tag,
                            &self.from_upstream[frame.clone()],
                            &mut self.to_client,
                        ) {
                            tracing::warn!(%error, "server message could not be masked; session ends");
                            break Err(WireError::Malformed {
                                what: "server message that needed masking",
                            });
                        }
                        copied = frame.end;
                    }
                    match tag {
                        b::READY_FOR_QUERY if len == 6 => {
                            self.status = self.from_upstream[frame.start + 5];
                            if self.owed.settled() {
                                self.gate.live.session().set_activity(Activity::Idle);
                            }
                        }
                        b::PARAMETER_STATUS => {
                            let body = self.from_upstream[frame.start + 5..frame.end].to_vec();
                            if let Some(end) = self.parameter_status(&body) {
                                self.ended = Some(end);
                            }
                        }
                        _ => {}
                    }
                }
                Ok(Next::Chunk {
                    tag,
                    len,
                    start,
                    end,
                }) => {
                    offset += len;
                    if self.owed.answering_internal() {
                        // Too large to read: the answer cannot be trusted.
                        self.to_client
                            .extend_from_slice(&self.from_upstream[copied..offset - len]);
                        copied = offset;
                        self.verifying = Some(None);
                        continue;
                    }
                    if start && self.masker.as_ref().is_some_and(|m| m.needs_whole(tag)) {
                        // Fail closed: a value that needs masking is never
                        // passed on unread.
                        tracing::warn!(len, "a server message too large to mask; session ends");
                        break Err(WireError::TooLarge {
                            tag: char::from(tag),
                            len,
                            max: STREAM_ABOVE,
                        });
                    }
                    if start {
                        self.owed.completion(tag, &[], len, &mut self.done);
                        for done in self.done.drain(..) {
                            self.gate.completed(done);
                        }
                    } else {
                        self.owed.more_bytes(len);
                    }
                    if end {
                        // Too large to be the answer to a stand-in.
                        if let Some(event) = self.owed.server_sent(tag).event {
                            self.gate.heard(event, self.status, self.masker.as_mut());
                        }
                    }
                }
                Ok(Next::Incomplete { want }) => {
                    self.from_upstream
                        .reserve(want.saturating_sub(self.from_upstream.len() - offset));
                    break Ok(());
                }
                Err(e) => break Err(e),
            }
        };
        if self.masker.as_ref().is_some_and(|m| m.missed_oid) {
            if let Some(masker) = &mut self.masker {
                masker.missed_oid = false;
            }
            self.gate.catalog_changed();
        }
        self.stats.bytes_out += offset as u64;
        self.to_client
            .extend_from_slice(&self.from_upstream[copied..offset]);
        self.from_upstream.advance(offset);
        if !self.notices.is_empty() && !self.upstream_frames.mid_frame() {
            self.to_client.extend_from_slice(&self.notices);
            self.notices.clear();
        }
        result
    }

    /// Asks the server which prepared statements and cursors it holds, when
    /// code Vigil cannot see into ran and a message needs to know, once the
    /// server has answered everything before. `Ok(true)`: asked now.
    fn verify_names(&mut self) -> Result<bool, End> {
        if self.verifying.is_some()
            || !self.gate.wants_verification(self.waiting)
            || !self.owed.settled()
            || self.owed.skipping()
            || self.held.is_some()
            || self.terminated
        {
            return Ok(false);
        }
        if self.status == b'E' {
            // A failed transaction answers nothing: nothing can be vouched for.
            return match self.gate.verified(None) {
                Some(end) => Err(end),
                None => {
                    self.forward_client_frames().map_err(End::Violation)?;
                    Ok(true)
                }
            };
        }
        self.request += 1;
        let stamp = Stamp {
            request: self.request,
            epoch: self.epoch,
        };
        self.epoch += 1;
        self.closed_through = stamp.request;
        vigil_wire::backend::query(&mut self.to_upstream, VERIFY_SQL);
        self.owed.internal_sent(stamp);
        self.verifying = Some(Some(Vec::new()));
        Ok(true)
    }

    /// One message of the server's answer to Vigil's own question.
    fn internal_answer(&mut self, tag: u8, frame: Range<usize>) -> Result<(), End> {
        let body = &self.from_upstream[frame.start + 5..frame.end];
        match tag {
            b::DATA_ROW => {
                let row = held_row(body);
                match (&mut self.verifying, row) {
                    (Some(Some(rows)), Some(row)) => rows.push(row),
                    (verifying, _) => *verifying = Some(None),
                }
            }
            b::ERROR_RESPONSE => self.verifying = Some(None),
            b::READY_FOR_QUERY => {
                let heard = self.owed.server_sent(tag);
                if let Some(event) = heard.event {
                    self.gate.heard(event, self.status, self.masker.as_mut());
                }
                let answer = self.verifying.take().flatten();
                if let Some(end) = self.gate.verified(answer.as_deref()) {
                    return Err(end);
                }
                // The messages waiting for it are checked now.
                self.waiting = true;
                return Ok(());
            }
            _ => {}
        }
        self.owed.server_sent(tag);
        Ok(())
    }

    /// A ParameterStatus from the server: why the session can no longer be
    /// followed, if that is what it says.
    fn parameter_status(&mut self, body: &[u8]) -> Option<End> {
        let mut parts = body.split(|&b| b == 0);
        let name = std::str::from_utf8(parts.next()?).ok()?;
        let value = std::str::from_utf8(parts.next()?).ok()?;
        unsafe_setting(name, value)
            .map(End::Unsafe)
            .or_else(|| self.gate.parameter_status(name, value))
    }

    /// Queues Vigil's own last word to the client, unless the client is in the
    /// middle of a streamed server message, where it would read as garbage.
    pub(crate) fn tell_client(&mut self, error: &SessionError) {
        if !self.upstream_frames.mid_frame() {
            error.report(&mut self.to_client);
        }
    }

    /// Writes what is queued for the client, then closes it, within `deadline`.
    pub(crate) async fn finish_client(&mut self, deadline: std::time::Duration) {
        write_and_close(&mut self.client, &mut self.to_client, deadline).await;
    }

    /// Writes what is queued for the server, then closes it, within `deadline`.
    pub(crate) async fn finish_upstream(&mut self, deadline: std::time::Duration) {
        write_and_close(&mut self.upstream, &mut self.to_upstream, deadline).await;
    }
}

/// Tells the masker about a forwarded client message with request id `id`.
fn masker_sent(
    masker: &mut Masker,
    id: u64,
    tag: u8,
    body: &[u8],
    masks: Option<Vec<MaskedStatement>>,
) {
    let name = |rest: &[u8]| rest.split(|&b| b == 0).next().unwrap_or_default().to_vec();
    match tag {
        f::QUERY => masker.expect(id, Source::Query(masks)),
        f::DESCRIBE => {
            if let Some((&kind, rest)) = body.split_first() {
                masker.expect(
                    id,
                    Source::Describe {
                        kind,
                        name: name(rest),
                    },
                );
            }
        }
        f::EXECUTE => {
            let masks = masks.and_then(|m| m.into_iter().next()).map(Box::new);
            masker.expect(
                id,
                Source::Execute {
                    portal: name(body),
                    masks,
                },
            )
        }
        // Parse, Bind and Close reach masking when the server confirms them.
        _ => {}
    }
}

/// The gate's verdict on one client message at `place`.
fn check(
    gate: &mut Gate,
    tag: u8,
    body: &[u8],
    place: Place,
    events: &mut Vec<AuditEvent>,
) -> Result<Gated, WireError> {
    let name = |rest: &[u8]| rest.split(|&b| b == 0).next().unwrap_or_default().to_vec();
    if let Some(gated) = gate.role_unconfirmed(tag, place, events) {
        return Ok(gated);
    }
    Ok(match tag {
        f::QUERY => gate.query(query_text(body)?, place, events),
        f::PARSE => {
            let parse = ParseMessage::parse(body)?;
            gate.parse(parse.name, parse.query, place, events)
        }
        f::FUNCTION_CALL => gate.function_call(place, events),
        f::BIND => {
            let mut names = body.splitn(3, |&b| b == 0);
            match (names.next(), names.next()) {
                (Some(portal), Some(statement)) => {
                    gate.bind(portal, statement, body, place, events)
                }
                // Malformed: the server rejects it.
                _ => Checked::forward(None).into(),
            }
        }
        f::EXECUTE => gate.execute(&name(body), place, events),
        f::CLOSE => match body.split_first() {
            Some((&kind, rest)) => gate.close(kind, &name(rest), place),
            None => Checked::forward(None).into(),
        },
        _ => Checked::forward(None).into(),
    })
}

/// One row of the answer to [`VERIFY_SQL`]: three text columns.
fn held_row(body: &[u8]) -> Option<HeldName> {
    let mut rest = body;
    let count = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
    rest = &rest[2..];
    let mut columns = Vec::with_capacity(3);
    for _ in 0..count {
        let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        rest = &rest[4..];
        let len = usize::try_from(len).ok()?;
        columns.push(rest.get(..len)?.to_vec());
        rest = &rest[len..];
    }
    let [kind, name, text]: [Vec<u8>; 3] = columns.try_into().ok()?;
    Some((*kind.first()?, name, String::from_utf8(text).ok()?))
}

/// Why the server's parameters (as reported at startup) make the session
/// unsafe to inspect, if they do.
pub(crate) fn unsafe_parameters(parameters: &[(String, String)]) -> Option<String> {
    parameters
        .iter()
        .find_map(|(name, value)| unsafe_setting(name, value))
}

fn unsafe_setting(name: &str, value: &str) -> Option<String> {
    use vigil_policy::integrity::{encoding_is_safe, is_on};
    match name {
        "standard_conforming_strings" if !is_on(value) => {
            Some(format!("standard_conforming_strings is {value}"))
        }
        "client_encoding" if !encoding_is_safe(value) => {
            Some(format!("client_encoding is {value}"))
        }
        _ => None,
    }
}

/// Best effort: a peer that stopped reading gets `deadline`, not forever.
async fn write_and_close(stream: &mut Stream, out: &mut BytesMut, deadline: std::time::Duration) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(deadline, async {
        let _ = stream.write_all(out).await;
        let _ = stream.flush().await;
        let _ = stream.shutdown().await;
    })
    .await;
    out.clear();
}

fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
}

/// Writes as much of `out` as the socket takes now, then flushes once empty.
/// Ready(true) when anything moved; a closed or failed socket is an error.
fn poll_send(
    stream: &mut Stream,
    out: &mut BytesMut,
    unflushed: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<io::Result<bool>> {
    let mut moved = false;
    while !out.is_empty() {
        match Pin::new(&mut *stream).poll_write(cx, out) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                out.advance(n);
                *unflushed = true;
                moved = true;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {
                return if moved {
                    Poll::Ready(Ok(true))
                } else {
                    Poll::Pending
                }
            }
        }
    }
    if *unflushed {
        match Pin::new(&mut *stream).poll_flush(cx) {
            Poll::Ready(Ok(())) => *unflushed = false,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
    }
    Poll::Ready(Ok(moved))
}

/// Progress made by a poll that may be pending.
fn ready_or(poll: Poll<io::Result<bool>>) -> io::Result<bool> {
    match poll {
        Poll::Ready(result) => result,
        Poll::Pending => Ok(false),
    }
}
