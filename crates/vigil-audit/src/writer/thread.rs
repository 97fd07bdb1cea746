//! The writer thread: takes everything queued, chains it, commits once, wakes the waiters.
//!
//! It owns the store and the chain state (tail, unsigned count, pending checkpoints). A
//! failed store operation marks the writer broken: the batch's events are failed, the tail
//! is left where the store has it, and before the next attempt (at most once per
//! `retry_interval`) the store is reopened and its tail re-read. While broken, an idle
//! writer probes the store on the same schedule so `healthy()` recovers without traffic.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::{AuditOptions, Command, Health, Receipt};
use crate::chain::{PreparedEvent, StoredEvent, Tail};
use crate::checkpoint::{Checkpoint, CheckpointKind, CheckpointSigner};
use crate::clock::{self, Micros};
use crate::error::{AuditError, Result, StoreError};
use crate::store::Store;

use super::queue::{Queue, Received};

pub(super) fn spawn(
    store: Box<dyn Store>,
    signer: Option<SigningKey>,
    options: AuditOptions,
    queue: Arc<Queue>,
    health: Arc<Health>,
) -> Result<()> {
    let writer = Writer::new(store, signer.map(CheckpointSigner::new), options, health)?;
    std::thread::Builder::new()
        .name("vigil-audit-writer".into())
        .spawn(move || {
            writer.run(&queue);
            queue.stop();
        })
        .map_err(|e| AuditError::StoreUnavailable(format!("cannot start audit writer: {e}")))?;
    Ok(())
}

/// Shortest pause between idle probes of a failing store.
const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(10);

type Waiter = (
    PreparedEvent,
    Option<oneshot::Sender<Result<Receipt>>>,
    OwnedSemaphorePermit,
);

struct Writer {
    store: Box<dyn Store>,
    signer: Option<CheckpointSigner>,
    options: AuditOptions,
    health: Arc<Health>,
    /// Where the current segment begins, and its last record.
    start: Tail,
    tail: Tail,
    /// Time of the last record; later records never get an earlier time.
    last_time: Micros,
    /// Records committed after the newest committed checkpoint, and since when.
    unsigned: u64,
    unsigned_since: Option<Instant>,
    last_checkpoint: Option<Checkpoint>,
    /// Signed, not yet committed; written with the next transaction.
    pending: Vec<Checkpoint>,
    broken: bool,
    last_attempt: Option<Instant>,
    /// Events nothing waits for whose commit failed, for the next commit.
    unsent: Vec<Waiter>,
}

enum Flow {
    Continue,
    Stop,
}

impl Writer {
    fn new(
        store: Box<dyn Store>,
        signer: Option<CheckpointSigner>,
        options: AuditOptions,
        health: Arc<Health>,
    ) -> Result<Self> {
        let start = store.start()?;
        let tail = store.tail()?;
        let checkpoints = store.checkpoints()?;
        let last_checkpoint = checkpoints
            .iter()
            .rev()
            .find(|c| c.kind == CheckpointKind::Checkpoint)
            .cloned();
        let signed_up_to = last_checkpoint.as_ref().map_or(start.seq, |c| c.seq);
        let unsigned = tail.seq.saturating_sub(signed_up_to);
        let last_time = match store.last(1)?.first() {
            Some(e) => clock::parse(&e.time).unwrap_or(0),
            None => 0,
        };
        let mut writer = Writer {
            store,
            signer,
            options,
            health,
            start,
            tail,
            last_time,
            unsigned,
            unsigned_since: (unsigned > 0).then(Instant::now),
            last_checkpoint,
            pending: Vec::new(),
            broken: false,
            last_attempt: None,
            unsent: Vec::new(),
        };
        let has_start = checkpoints
            .iter()
            .any(|c| c.kind == CheckpointKind::SegmentStart && c.seq == start.seq);
        if tail == start && !has_start {
            writer.sign(CheckpointKind::SegmentStart, start);
        }
        Ok(writer)
    }

    fn run(mut self, queue: &Queue) {
        // Appends nothing waits for, held back to share a later commit, and
        // since when the oldest of them waits.
        let mut held: Vec<Command> = Vec::new();
        let mut held_since: Option<Instant> = None;
        loop {
            let background = held_since.map(|since| {
                self.options
                    .background_commit
                    .saturating_sub(since.elapsed())
            });
            let wait = match (self.next_wakeup(), background) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match queue.recv(wait, held_since.is_some()) {
                Received::Command(command) => {
                    let batch = self.gather(command, queue);
                    let only_background = batch
                        .iter()
                        .all(|c| matches!(c, Command::Append { reply: None, .. }));
                    if only_background && held.len() + batch.len() < self.options.max_batch {
                        held_since.get_or_insert_with(Instant::now);
                        held.extend(batch);
                        continue;
                    }
                    held_since = None;
                    held.extend(batch);
                    if let Flow::Stop = self.process(std::mem::take(&mut held)) {
                        return;
                    }
                }
                Received::Timeout => {
                    if held_since
                        .is_some_and(|since| since.elapsed() >= self.options.background_commit)
                    {
                        held_since = None;
                        let _ = self.process(std::mem::take(&mut held));
                    }
                    self.tick();
                }
                Received::Closed => {
                    let _ = self.process(std::mem::take(&mut held));
                    self.finish();
                    return;
                }
            }
        }
    }

    /// Everything already queued behind `first` (and, with `commit_delay`, what arrives
    /// shortly after), up to `max_batch` appends.
    fn gather(&self, first: Command, queue: &Queue) -> Vec<Command> {
        let max = self.options.max_batch.max(1);
        let mut appends = usize::from(matches!(first, Command::Append { .. }));
        let mut batch = vec![first];
        appends = queue.drain_into(&mut batch, appends, max);
        if appends > 0 && !self.options.commit_delay.is_zero() {
            std::thread::sleep(self.options.commit_delay);
            queue.drain_into(&mut batch, appends, max);
        }
        batch
    }

    fn process(&mut self, batch: Vec<Command>) -> Flow {
        let mut waiting: Vec<Waiter> = Vec::new();
        for command in batch {
            match command {
                Command::Append {
                    event,
                    reply,
                    _permit,
                } => waiting.push((event, reply, _permit)),
                control => {
                    self.commit(std::mem::take(&mut waiting));
                    if let Flow::Stop = self.control(control) {
                        return Flow::Stop;
                    }
                }
            }
        }
        self.commit(waiting);
        Flow::Continue
    }

    fn control(&mut self, command: Command) -> Flow {
        match command {
            Command::Append { .. } => {}
            Command::Sync(reply) => {
                let _ = reply.send(Ok(()));
            }
            Command::Checkpoint(reply) => {
                let result = self
                    .checkpoint_tail()
                    .map(|()| self.last_checkpoint.clone());
                let _ = reply.send(result);
            }
            Command::Rotate(to, reply) => {
                let _ = reply.send(self.rotate(&to));
            }
            Command::Shutdown(reply) => {
                let result = self.checkpoint_tail();
                let _ = reply.send(result);
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Chains and commits one batch; every waiter learns the outcome.
    fn commit(&mut self, mut waiting: Vec<Waiter>) {
        if !self.unsent.is_empty() {
            // Events nothing waits for that a failed commit kept: first, in order.
            let mut all = std::mem::take(&mut self.unsent);
            all.append(&mut waiting);
            waiting = all;
        }
        if waiting.is_empty() {
            return;
        }
        let events: Vec<&PreparedEvent> = waiting.iter().map(|(e, _, _)| e).collect();
        match self.write_batch(&events) {
            Ok(sealed) => {
                for ((_, reply, _), stored) in waiting.into_iter().zip(&sealed) {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(Receipt::Committed {
                            seq: stored.seq,
                            hash: stored.hash,
                        }));
                    }
                }
            }
            Err(()) => {
                // Those who wait hear the store is down and refuse their
                // statements. Events nothing waits for (completions, fast
                // mode) are kept for the next commit, up to half the queue,
                // so appends never stall behind them; beyond that they are
                // lost and counted.
                let keep = self.options.queue_capacity / 2;
                let mut failed = 0;
                for (event, reply, permit) in waiting {
                    match reply {
                        Some(reply) => {
                            failed += 1;
                            let _ = reply.send(Err(self.health.unavailable()));
                        }
                        None if self.unsent.len() < keep => self.unsent.push((event, None, permit)),
                        None => failed += 1,
                    }
                }
                self.count_failed(failed);
            }
        }
    }

    /// Seals `events` after the tail and commits them in one transaction. If another
    /// writer moved the tail meanwhile (a shared store), re-reads it and seals again.
    fn write_batch(&mut self, events: &[&PreparedEvent]) -> Result<Vec<StoredEvent>, ()> {
        const ATTEMPTS: usize = 5;
        let n = events.len() as u64;
        for _ in 0..ATTEMPTS {
            if !self.ready() {
                return Err(());
            }
            let now = clock::now_micros().max(self.last_time);
            let time = clock::format(now);
            let mut prev = self.tail;
            let sealed: Vec<StoredEvent> = events
                .iter()
                .map(|event| {
                    let s = event.seal(prev.seq + 1, &time, &prev.hash);
                    prev = Tail {
                        seq: s.seq,
                        hash: s.hash,
                    };
                    s
                })
                .collect();
            let every = self.options.checkpoint_every_events;
            let due = every > 0 && self.unsigned + n >= every;
            let mut checkpoints = self.pending.clone();
            if let Some(signer) = self.signer.as_ref().filter(|_| due) {
                checkpoints.push(signer.sign(
                    CheckpointKind::Checkpoint,
                    prev.seq,
                    prev.hash,
                    &time,
                ));
            }
            match self.store.append(&sealed, &checkpoints) {
                Ok(()) => {
                    self.tail = prev;
                    self.last_time = now;
                    let c = &self.health.counters;
                    c.events.fetch_add(n, Ordering::Relaxed);
                    c.commits.fetch_add(1, Ordering::Relaxed);
                    self.after_commit(&checkpoints);
                    return Ok(sealed);
                }
                Err(StoreError::TailMoved { .. }) => {
                    let moved = self.store.tail().and_then(|t| Ok((t, self.store.last(1)?)));
                    match moved {
                        Ok((tail, last)) => {
                            tracing::debug!(seq = tail.seq, "audit tail moved; resealing batch");
                            self.tail = tail;
                            if let Some(t) = last.first().and_then(|e| clock::parse(&e.time).ok()) {
                                self.last_time = self.last_time.max(t);
                            }
                        }
                        Err(e) => {
                            self.failed(&e);
                            return Err(());
                        }
                    }
                }
                Err(e) => {
                    self.failed(&e);
                    return Err(());
                }
            }
        }
        self.failed(&StoreError::Incompatible {
            location: self.store.location(),
            reason: format!("tail kept moving under {ATTEMPTS} attempts to append"),
        });
        Err(())
    }

    /// Whether the store may be written now; reopens it first after a failure.
    fn ready(&mut self) -> bool {
        if !self.broken {
            return true;
        }
        if let Some(at) = self.last_attempt {
            if at.elapsed() < self.options.retry_interval {
                return false;
            }
        }
        self.last_attempt = Some(Instant::now());
        match self.store.reopen().and_then(|()| self.store.tail()) {
            Ok(tail) => {
                // Re-read rather than trust memory: a commit reported as failed may
                // have reached the disk after all.
                self.tail = tail;
                self.broken = false;
                true
            }
            Err(e) => {
                self.failed(&e);
                false
            }
        }
    }

    fn failed(&mut self, e: &StoreError) {
        tracing::error!(store = %self.store.location(), error = %e,
            "audit store write failed; audited statements are refused until it recovers");
        self.broken = true;
        self.last_attempt = Some(Instant::now());
        self.health
            .counters
            .failed_batches
            .fetch_add(1, Ordering::Relaxed);
        self.health.set_failed(e.to_string());
    }

    fn count_failed(&self, n: u64) {
        let c = &self.health.counters;
        c.failed_events.fetch_add(n, Ordering::Relaxed);
    }

    /// Bookkeeping after a successful transaction that carried `checkpoints`.
    fn after_commit(&mut self, checkpoints: &[Checkpoint]) {
        for cp in checkpoints {
            let newer = self
                .last_checkpoint
                .as_ref()
                .is_none_or(|l| cp.seq >= l.seq);
            if cp.kind == CheckpointKind::Checkpoint && newer {
                self.last_checkpoint = Some(cp.clone());
            }
        }
        self.health
            .counters
            .checkpoints
            .fetch_add(checkpoints.len() as u64, Ordering::Relaxed);
        self.pending.clear();
        let signed = self
            .last_checkpoint
            .as_ref()
            .map_or(self.start.seq, |c| c.seq.max(self.start.seq));
        self.unsigned = self.tail.seq.saturating_sub(signed);
        if self.unsigned == 0 {
            self.unsigned_since = None;
        } else {
            self.unsigned_since.get_or_insert_with(Instant::now);
        }
        self.health.set_healthy();
    }

    /// Signs a checkpoint of `kind` at `at` and queues it in `pending`.
    fn sign(&mut self, kind: CheckpointKind, at: Tail) -> Option<Checkpoint> {
        let signer = self.signer.as_ref()?;
        let cp = signer.sign(kind, at.seq, at.hash, &clock::format(clock::now_micros()));
        self.pending.push(cp.clone());
        Some(cp)
    }

    /// Commits the pending checkpoints (and nothing else).
    fn write_pending(&mut self) -> Result<()> {
        if !self.ready() {
            return Err(self.health.unavailable());
        }
        let pending = self.pending.clone();
        match self.store.append(&[], &pending) {
            Ok(()) => {
                self.after_commit(&pending);
                Ok(())
            }
            Err(e) => {
                self.failed(&e);
                Err(self.health.unavailable())
            }
        }
    }

    /// Signs the current tail if records were committed since the last checkpoint.
    fn checkpoint_tail(&mut self) -> Result<()> {
        let at_tail =
            |c: &Checkpoint| c.kind == CheckpointKind::Checkpoint && c.seq == self.tail.seq;
        let signed =
            self.last_checkpoint.as_ref().is_some_and(at_tail) || self.pending.iter().any(at_tail);
        if self.tail.seq > self.start.seq && !signed {
            self.sign(CheckpointKind::Checkpoint, self.tail);
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        self.write_pending()
    }

    fn rotate(&mut self, to: &str) -> Result<Tail> {
        self.checkpoint_tail()?;
        let start = self.store.rotate(to)?;
        self.start = start;
        self.tail = start;
        self.unsigned = 0;
        self.unsigned_since = None;
        self.sign(CheckpointKind::SegmentStart, start);
        // The rotation has happened; a failure here leaves the segment start pending.
        let _ = self.write_pending();
        tracing::info!(store = %self.store.location(), start_seq = start.seq, "audit store rotated");
        Ok(start)
    }

    fn next_wakeup(&self) -> Option<Duration> {
        let mut wait: Option<Duration> = None;
        let mut consider = |d: Duration| wait = Some(wait.map_or(d, |w| w.min(d)));
        if self.broken {
            // Floor the idle probe so a store that fails instantly cannot spin the thread.
            let every = self.options.retry_interval.max(MIN_PROBE_INTERVAL);
            let since = self.last_attempt.map_or(Duration::MAX, |t| t.elapsed());
            consider(every.saturating_sub(since));
        } else if !self.pending.is_empty() {
            consider(Duration::ZERO);
        }
        if let (Some(_), Some(interval), Some(since)) = (
            &self.signer,
            self.options.checkpoint_interval,
            self.unsigned_since,
        ) {
            consider(interval.saturating_sub(since.elapsed()));
        }
        wait
    }

    /// Idle work: retry a failing store, write pending checkpoints, sign on schedule.
    fn tick(&mut self) {
        if let (Some(interval), Some(since)) =
            (self.options.checkpoint_interval, self.unsigned_since)
        {
            if since.elapsed() >= interval && self.pending.is_empty() {
                self.sign(CheckpointKind::Checkpoint, self.tail);
            }
        }
        if self.broken {
            // A probe: an empty write transaction proves the store takes writes again.
            let every = self.options.retry_interval.max(MIN_PROBE_INTERVAL);
            let due = self.last_attempt.is_none_or(|t| t.elapsed() >= every);
            if due && self.write_pending().is_ok() {
                // Back: what a failed commit kept goes in now.
                self.commit(Vec::new());
            }
        } else if !self.unsent.is_empty() {
            self.commit(Vec::new());
        } else if !self.pending.is_empty() {
            let _ = self.write_pending();
        }
    }

    /// The last handle is gone: sign what is unsigned and stop.
    fn finish(&mut self) {
        if let Err(e) = self.checkpoint_tail() {
            tracing::warn!(error = %e, "audit writer stopped without a final checkpoint");
        }
    }
}
