//! The audit writer: an [`AuditLog`] handle shared by every session, one writer thread
//! behind it, group commit, fail-closed errors.
//!
//! Sessions call [`AuditLog::append`]. In [`Durability::Strict`] the future resolves only
//! after the event's batch is committed (one transaction and one fsync for every session
//! that was waiting), so the proxy forwards a statement only once its event is durable. A
//! failed commit fails every event of the batch with [`AuditError::StoreUnavailable`];
//! nothing of that batch is written and the chain does not advance. The writer reopens the
//! store and re-reads its tail before the next attempt, so it recovers by itself.

mod queue;
mod thread;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::chain::{ChainHash, PreparedEvent, Tail};
use crate::checkpoint::Checkpoint;
use crate::error::{AuditError, Result};
use crate::event::AuditEvent;
use crate::store::{SqliteOptions, SqliteStore, Store};

/// When `append` returns, relative to the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Resolve after the event's batch is committed and fsynced. Nothing acknowledged is
    /// ever lost; a statement is refused if its event cannot be written.
    #[default]
    Strict,
    /// Resolve once the event is queued. Events queued but not yet committed when the
    /// process dies (at most `queue_capacity`, usually one batch) are lost; the chain stays
    /// valid. While the store is failing, appends are refused, as in strict mode.
    Fast,
    /// No audit at all; `append` does nothing.
    Off,
}

/// Tuning for the writer. The defaults suit a single proxy instance.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    pub durability: Durability,
    /// Sign a checkpoint once this many events were committed since the last one
    /// (checked at batch boundaries). 0 disables count-based checkpoints.
    pub checkpoint_every_events: u64,
    /// Sign a checkpoint when events have been waiting for one this long.
    pub checkpoint_interval: Option<Duration>,
    /// Events in flight (queued or being committed) before `append` waits: backpressure.
    pub queue_capacity: usize,
    /// Most events committed in one transaction.
    pub max_batch: usize,
    /// After the first event of a batch arrives, wait this long for others to join it
    /// (like PostgreSQL's `commit_delay`). Zero: the batch is whatever queued while the
    /// previous commit was running.
    pub commit_delay: Duration,
    /// How long events nothing waits for (those of `fast` mode, and
    /// [`AuditLog::record`]'s) may sit in the writer before it commits them
    /// on their own. Until then they join the next commit someone waits for,
    /// or a batch that reached `max_batch`: many events share one
    /// transaction instead of each paying for one.
    pub background_commit: Duration,
    /// After a failure, the writer touches the store again at most this often.
    pub retry_interval: Duration,
    pub sqlite: SqliteOptions,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            durability: Durability::Strict,
            checkpoint_every_events: 1000,
            checkpoint_interval: Some(Duration::from_secs(60)),
            queue_capacity: 4096,
            max_batch: 512,
            commit_delay: Duration::ZERO,
            background_commit: Duration::from_millis(20),
            retry_interval: Duration::from_secs(1),
            sqlite: SqliteOptions::default(),
        }
    }
}

/// What `append` promises about an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// Durable at `seq` with `hash` (strict mode).
    Committed { seq: u64, hash: ChainHash },
    /// Queued for the next batch (fast mode); not yet durable.
    Queued,
    /// Auditing is off.
    Disabled,
}

impl Receipt {
    pub fn seq(&self) -> Option<u64> {
        match self {
            Receipt::Committed { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

/// Counters since the writer started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Events committed.
    pub events: u64,
    /// Successful transactions that carried events.
    pub commits: u64,
    /// Transactions that failed (each failed all of its events).
    pub failed_batches: u64,
    /// Events refused or dropped because the store was failing.
    pub failed_events: u64,
    /// Checkpoints signed and committed.
    pub checkpoints: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    events: AtomicU64,
    commits: AtomicU64,
    failed_batches: AtomicU64,
    failed_events: AtomicU64,
    checkpoints: AtomicU64,
}

/// What the writer thread is asked to do, in queue order.
pub(crate) enum Command {
    Append {
        event: PreparedEvent,
        reply: Option<oneshot::Sender<Result<Receipt>>>,
        _permit: OwnedSemaphorePermit,
    },
    Checkpoint(oneshot::Sender<Result<Option<Checkpoint>>>),
    Rotate(String, oneshot::Sender<Result<Tail>>),
    /// Answered once everything queued before it has been committed (or failed).
    Sync(oneshot::Sender<Result<()>>),
    Shutdown(oneshot::Sender<Result<()>>),
}

/// State visible to both the handles and the writer thread.
pub(crate) struct Health {
    healthy: AtomicBool,
    last_error: Mutex<String>,
    counters: Counters,
}

impl Health {
    fn set_failed(&self, message: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = message;
        self.healthy.store(false, Ordering::SeqCst);
    }

    fn set_healthy(&self) {
        self.healthy.store(true, Ordering::SeqCst);
    }

    fn unavailable(&self) -> AuditError {
        AuditError::StoreUnavailable(
            self.last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

struct Shared {
    durability: Durability,
    queue: Arc<queue::Queue>,
    permits: Arc<Semaphore>,
    /// The permits there are: `queue_capacity`.
    capacity: usize,
    health: Arc<Health>,
}

/// An event in the queue: committed already as far as the caller waits, or
/// to be answered when its batch is.
enum Queued {
    Done(Receipt),
    Waiting(oneshot::Receiver<Result<Receipt>>),
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// A handle to the audit log; cheap to clone, shared by every session.
#[derive(Clone)]
pub struct AuditLog {
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("durability", &self.durability())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// A log that records nothing (`Durability::Off`).
    pub fn disabled() -> Self {
        AuditLog { shared: None }
    }

    /// Opens (or creates) the SQLite store at `path` and starts the writer. `signer` signs
    /// checkpoints; without it the chain is still kept but nothing is signed.
    pub fn open_sqlite(
        path: &Path,
        signer: Option<SigningKey>,
        options: AuditOptions,
    ) -> Result<Self> {
        if options.durability == Durability::Off {
            return Ok(Self::disabled());
        }
        let mut store = SqliteStore::open(path, options.sqlite.clone())?;
        store.checkpoint_in_background();
        Self::start(Box::new(store), signer, options)
    }

    /// Starts the writer thread on `store`.
    pub fn start(
        store: Box<dyn Store>,
        signer: Option<SigningKey>,
        options: AuditOptions,
    ) -> Result<Self> {
        if options.durability == Durability::Off {
            return Ok(Self::disabled());
        }
        let health = Arc::new(Health {
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(String::new()),
            counters: Counters::default(),
        });
        let queue = Arc::new(queue::Queue::default());
        let capacity = options.queue_capacity.max(1);
        let permits = Arc::new(Semaphore::new(capacity));
        let durability = options.durability;
        thread::spawn(store, signer, options, Arc::clone(&queue), health.clone())?;
        Ok(AuditLog {
            shared: Some(Arc::new(Shared {
                durability,
                queue,
                permits,
                capacity,
                health,
            })),
        })
    }

    pub fn durability(&self) -> Durability {
        self.shared
            .as_ref()
            .map_or(Durability::Off, |s| s.durability)
    }

    /// False while the store is failing (appends are being refused).
    pub fn healthy(&self) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|s| s.health.healthy.load(Ordering::SeqCst))
    }

    pub fn stats(&self) -> AuditStats {
        let Some(s) = &self.shared else {
            return AuditStats::default();
        };
        let c = &s.health.counters;
        AuditStats {
            events: c.events.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
            failed_events: c.failed_events.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
        }
    }

    /// Events appended and not yet committed (each holds a place in the
    /// queue until its batch is committed or fails).
    pub fn queued(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| {
            s.capacity.saturating_sub(s.permits.available_permits())
        })
    }

    /// Records `event`. See [`Durability`] for when this resolves. An `Err` means the event
    /// is not (and will not be) recorded: the caller must refuse the statement.
    ///
    /// Dropping the future after the event was queued does not withdraw it.
    pub async fn append(&self, event: AuditEvent) -> Result<Receipt> {
        match self.enqueue(event, true).await? {
            Queued::Waiting(done) => done.await.map_err(|_| AuditError::WriterStopped)?,
            Queued::Done(receipt) => Ok(receipt),
        }
    }

    /// Records every event of `events`, in order, queued together so they
    /// can share one commit; resolves as [`append`](Self::append) does for
    /// the last of them, with one result per event. A statement pipeline uses
    /// this so that its statements wait for one commit, not one each.
    pub async fn append_all(&self, events: Vec<AuditEvent>) -> Vec<Result<Receipt>> {
        let mut replies = Vec::with_capacity(events.len());
        for event in events {
            replies.push(self.enqueue(event, true).await);
        }
        let mut results = Vec::with_capacity(replies.len());
        for reply in replies {
            results.push(match reply {
                Ok(Queued::Waiting(done)) => done.await.unwrap_or(Err(AuditError::WriterStopped)),
                Ok(Queued::Done(receipt)) => Ok(receipt),
                Err(e) => Err(e),
            });
        }
        results
    }

    /// Queues `event` without waiting for its commit: for events nothing
    /// waits on (a statement's completion). Fails only when the log is
    /// stopped or, in `fast` mode, known to be failing; when the queue is
    /// full the event waits for room on a task of its own.
    pub fn record(&self, event: AuditEvent) -> Result<()> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let event = PreparedEvent::new(&event)?;
        match shared.permits.clone().try_acquire_owned() {
            Ok(permit) => shared.send(Command::Append {
                event,
                reply: None,
                _permit: permit,
            }),
            Err(_) => {
                let shared = Arc::clone(shared);
                tokio::spawn(async move {
                    if let Ok(permit) = shared.permits.clone().acquire_owned().await {
                        let _ = shared.send(Command::Append {
                            event,
                            reply: None,
                            _permit: permit,
                        });
                    }
                });
                Ok(())
            }
        }
    }

    /// Queues `event`; with `wait` in strict mode, hands back the receiver
    /// of its commit.
    async fn enqueue(&self, event: AuditEvent, wait: bool) -> Result<Queued> {
        let Some(shared) = &self.shared else {
            return Ok(Queued::Done(Receipt::Disabled));
        };
        let event = PreparedEvent::new(&event)?;
        if shared.durability == Durability::Fast && !shared.health.healthy.load(Ordering::SeqCst) {
            shared
                .health
                .counters
                .failed_events
                .fetch_add(1, Ordering::Relaxed);
            return Err(shared.health.unavailable());
        }
        let permit = shared
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AuditError::WriterStopped)?;
        if shared.durability == Durability::Fast || !wait {
            shared.send(Command::Append {
                event,
                reply: None,
                _permit: permit,
            })?;
            return Ok(Queued::Done(Receipt::Queued));
        }
        let (reply, done) = oneshot::channel();
        shared.send(Command::Append {
            event,
            reply: Some(reply),
            _permit: permit,
        })?;
        Ok(Queued::Waiting(done))
    }

    /// Signs and commits a checkpoint at the current tail now (if there is anything new
    /// to sign). Returns the newest checkpoint, if a signer is configured.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        self.request(Command::Checkpoint).await.map(Option::flatten)
    }

    /// Waits until every event queued before this call is committed (or has failed).
    pub async fn sync(&self) -> Result<()> {
        self.request(Command::Sync).await.map(|_| ())
    }

    /// Closes the current segment with a final checkpoint and continues in a new store at
    /// `to` (a path for SQLite). Returns where the new segment starts.
    pub async fn rotate(&self, to: &str) -> Result<Option<Tail>> {
        let to = to.to_owned();
        self.request(|reply| Command::Rotate(to, reply)).await
    }

    /// Commits everything queued, signs a final checkpoint and stops the writer.
    /// Appends made afterwards fail with [`AuditError::WriterStopped`].
    pub async fn shutdown(&self) -> Result<()> {
        self.request(Command::Shutdown).await.map(|_| ())
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<Option<T>> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        let (reply, done) = oneshot::channel();
        shared.send(make(reply))?;
        done.await.map_err(|_| AuditError::WriterStopped)?.map(Some)
    }
}

impl Shared {
    fn send(&self, command: Command) -> Result<()> {
        // Events nothing waits for do not wake the writer.
        let wake = !matches!(command, Command::Append { reply: None, .. });
        if self.queue.push(command, wake) {
            Ok(())
        } else {
            Err(AuditError::WriterStopped)
        }
    }
}

#[cfg(test)]
mod tests;
