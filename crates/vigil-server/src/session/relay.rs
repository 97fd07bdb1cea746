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

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWrite;
use tokio::sync::watch;
use tokio_util::io::poll_read_buf;
use vigil_wire::fields::{query_text, ParseMessage};
use vigil_wire::frame::FRONTEND_TAGS;
use vigil_wire::tags::{backend as b, frontend as f};
use vigil_wire::{FrameReader, Next, TagSet, WireError};

use super::gate::{Gate, Verdict};
use super::owed::Owed;
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
}

/// What the server gets in place of a refused statement: rejected by its
/// parser, so nothing runs, and self-explanatory in the server's log.
const STAND_IN: &str = "VIGIL_REFUSED_THIS_STATEMENT";

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
    unsafe_setting: Option<String>,
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
                .streaming(BACKEND_STREAMED, STREAM_ABOVE),
            client_unflushed: false,
            upstream_unflushed: false,
            owed: Owed::default(),
            client_eof: false,
            status,
            terminated: false,
            gate,
            unsafe_setting: None,
            stats: Stats::default(),
        }
    }

    /// Statements refused so far.
    pub(crate) fn refused(&self) -> u64 {
        self.gate.refused
    }

    /// At a point where the session could end without losing anything.
    fn idle(&self) -> bool {
        self.owed.settled()
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
            if self.terminated && self.to_upstream.is_empty() && !self.upstream_unflushed {
                return Poll::Ready(Ok(End::ClientTerminated));
            }

            // A client that half-closed still gets the answers on their way,
            // as PostgreSQL gives them; then the session ends.
            if self.client_eof && !self.owed.answer_coming() && self.to_client.is_empty() {
                return Poll::Ready(Ok(End::ClientGone));
            }

            if !self.terminated && !self.client_eof && self.to_upstream.len() < HIGH_WATER {
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
                        if let Some(reason) = self.unsafe_setting.take() {
                            return Poll::Ready(Ok(End::Unsafe(reason)));
                        }
                    }
                    Poll::Pending => {}
                }
            }

            if draining && self.idle() && self.to_client.is_empty() {
                return Poll::Ready(Ok(End::Drained));
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Moves every complete client frame (and chunks of streamed ones) to the
    /// upstream's outgoing buffer, passing statements through the gate.
    fn forward_client_frames(&mut self) -> Result<(), WireError> {
        // Bytes before `copied` are in `to_upstream` already; those between
        // it and `offset` are checked and go next.
        let mut copied = 0;
        let mut offset = 0;
        let result = loop {
            match self.client_frames.next(&self.from_client[offset..]) {
                Ok(Next::Frame { tag, len }) => {
                    let frame = offset..offset + len;
                    offset += len;
                    let verdict = match tag {
                        f::QUERY | f::PARSE | f::FUNCTION_CALL => {
                            match check(
                                &mut self.gate,
                                tag,
                                &self.from_client[frame.start + 5..frame.end],
                            ) {
                                Ok(verdict) => verdict,
                                Err(e) => break Err(e),
                            }
                        }
                        _ => Verdict::Forward,
                    };
                    match verdict {
                        Verdict::Forward => self.owed.client_sent(tag),
                        Verdict::Refuse(error) => {
                            self.to_upstream
                                .extend_from_slice(&self.from_client[copied..frame.start]);
                            copied = frame.end;
                            let body = &self.from_client[frame.start + 5..frame.end];
                            if tag == f::PARSE {
                                let name = ParseMessage::parse(body).map_or(&b""[..], |p| p.name);
                                vigil_wire::backend::parse(&mut self.to_upstream, name, STAND_IN);
                            } else {
                                vigil_wire::backend::query(&mut self.to_upstream, STAND_IN);
                            }
                            self.owed.client_refused(tag == f::PARSE, error);
                        }
                    }
                    if matches!(tag, f::QUERY | f::FUNCTION_CALL | f::EXECUTE) {
                        self.stats.queries += 1;
                    }
                    if tag == f::TERMINATE {
                        self.terminated = true;
                        break Ok(());
                    }
                }
                Ok(Next::Chunk { len, .. }) => offset += len,
                Ok(Next::Incomplete { want }) => {
                    self.from_client
                        .reserve(want.saturating_sub(self.from_client.len() - offset));
                    break Ok(());
                }
                Err(e) => break Err(e),
            }
        };
        self.to_upstream
            .extend_from_slice(&self.from_client[copied..offset]);
        self.from_client.advance(offset);
        if self.terminated {
            self.from_client.clear();
        }
        result
    }

    fn forward_upstream_frames(&mut self) -> Result<(), WireError> {
        let mut copied = 0;
        let mut offset = 0;
        let result = loop {
            match self.upstream_frames.next(&self.from_upstream[offset..]) {
                Ok(Next::Frame { tag, len }) => {
                    let frame = offset..offset + len;
                    offset += len;
                    if let Some(refusal) = self.owed.server_sent(tag) {
                        // The server's rejection of the stand-in: the client
                        // hears Vigil's refusal instead.
                        self.to_client
                            .extend_from_slice(&self.from_upstream[copied..frame.start]);
                        self.to_client.extend_from_slice(&refusal);
                        copied = frame.end;
                    }
                    match tag {
                        b::READY_FOR_QUERY if len == 6 => {
                            self.status = self.from_upstream[frame.start + 5]
                        }
                        b::PARAMETER_STATUS => {
                            let body = &self.from_upstream[frame.start + 5..frame.end];
                            if let Some(reason) = unsafe_parameter_status(body) {
                                self.unsafe_setting = Some(reason);
                            }
                        }
                        _ => {}
                    }
                }
                Ok(Next::Chunk { tag, len, end, .. }) => {
                    offset += len;
                    if end {
                        // Too large to be the answer to a stand-in.
                        let _ = self.owed.server_sent(tag);
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
        self.stats.bytes_out += offset as u64;
        self.to_client
            .extend_from_slice(&self.from_upstream[copied..offset]);
        self.from_upstream.advance(offset);
        result
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

/// The gate's verdict on a Query, Parse or FunctionCall body.
fn check(gate: &mut Gate, tag: u8, body: &[u8]) -> Result<Verdict, WireError> {
    Ok(match tag {
        f::QUERY => gate.statement(query_text(body)?),
        f::PARSE => gate.statement(ParseMessage::parse(body)?.query),
        _ => gate.function_call(),
    })
}

/// Why the server's parameters (as reported at startup) make the session
/// unsafe to inspect, if they do.
pub(crate) fn unsafe_parameters(parameters: &[(String, String)]) -> Option<String> {
    parameters
        .iter()
        .find_map(|(name, value)| unsafe_setting(name, value))
}

fn unsafe_parameter_status(body: &[u8]) -> Option<String> {
    let mut parts = body.split(|&b| b == 0);
    let name = std::str::from_utf8(parts.next()?).ok()?;
    let value = std::str::from_utf8(parts.next()?).ok()?;
    unsafe_setting(name, value)
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
