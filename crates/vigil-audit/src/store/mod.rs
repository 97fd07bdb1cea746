//! Where sealed records and checkpoints are kept: the [`Store`] trait and its filters.
//!
//! A store is dumb on purpose: the writer chains and signs, the store keeps what it is
//! given, atomically, and refuses a batch that does not continue its tail (so two writers
//! sharing one store can never interleave silently). [`SqliteStore`] is the embedded
//! default; a PostgreSQL store shared by several proxy instances implements the same trait.

mod sqlite;
mod sqlite_checkpoints;

pub use sqlite::{SqliteOptions, SqliteStore};

use crate::chain::{StoredEvent, Tail};
use crate::checkpoint::Checkpoint;
use crate::clock::{self, Micros};
use crate::error::{Result, StoreError};

/// Durable storage for one segment of the audit chain.
pub trait Store: Send {
    /// Where the store lives (a path or URL without credentials), for messages.
    fn location(&self) -> String;

    /// Where this segment's chain begins: the seq before its first record and the hash
    /// that record's `prev_hash` must equal. [`Tail::GENESIS`] for a first store.
    fn start(&self) -> Result<Tail, StoreError>;

    /// The last record's seq and hash, or [`Store::start`] when there is none.
    fn tail(&self) -> Result<Tail, StoreError>;

    /// Appends records (already chained, in seq order) and checkpoints in ONE transaction:
    /// either everything is durable when this returns `Ok`, or nothing was written.
    /// Refuses with [`StoreError::TailMoved`] if `events[0]` does not continue the tail.
    fn append(
        &mut self,
        events: &[StoredEvent],
        checkpoints: &[Checkpoint],
    ) -> Result<(), StoreError>;

    /// Drops the connection and opens it again (after a failed write). Must not create
    /// a new, empty store if the old one disappeared.
    fn reopen(&mut self) -> Result<(), StoreError>;

    /// Records with `seq >= from`, ascending, at most `limit`.
    fn scan(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// The last `n` records, ascending.
    fn last(&self, n: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// The last `filter.limit` records matching `filter`, ascending.
    fn search(&self, filter: &SearchFilter) -> Result<Vec<StoredEvent>, StoreError>;

    /// All checkpoints (both kinds), ascending by seq.
    fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError>;

    /// Closes this segment and continues in a new, empty one at `to` whose chain starts at
    /// the current tail. Returns that start.
    fn rotate(&mut self, to: &str) -> Result<Tail, StoreError> {
        Err(StoreError::Unsupported {
            location: format!("{to} (from {})", self.location()),
            operation: "rotation",
        })
    }
}

/// Default number of records a search returns.
pub const DEFAULT_SEARCH_LIMIT: usize = 100;

/// What to look for. Every set field must match; unset fields match anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchFilter {
    pub identity: Option<String>,
    pub database: Option<String>,
    /// A relation: `public.users` matches exactly, `users` matches it in any schema.
    pub table: Option<String>,
    /// `allow`, `deny` or `review`.
    pub decision: Option<String>,
    pub fingerprint: Option<String>,
    /// An event kind, e.g. `statement` or `auth.failure`.
    pub kind: Option<String>,
    pub session_id: Option<u64>,
    /// Inclusive lower bound on the event time.
    pub since: Option<Micros>,
    /// Exclusive upper bound on the event time.
    pub until: Option<Micros>,
    /// Only records with a greater seq.
    pub after_seq: Option<u64>,
    /// Only records with a smaller seq: the next page back from a result whose
    /// oldest record had this seq.
    pub before_seq: Option<u64>,
    /// At most this many records (the most recent matches); 0 means
    /// [`DEFAULT_SEARCH_LIMIT`].
    pub limit: usize,
}

impl SearchFilter {
    /// Sets `since` from RFC 3339 text or a bare date.
    pub fn since(mut self, text: &str) -> Result<Self> {
        self.since = Some(clock::parse(text)?);
        Ok(self)
    }

    /// Sets `until` from RFC 3339 text or a bare date.
    pub fn until(mut self, text: &str) -> Result<Self> {
        self.until = Some(clock::parse(text)?);
        Ok(self)
    }

    pub(crate) fn effective_limit(&self) -> usize {
        if self.limit == 0 {
            DEFAULT_SEARCH_LIMIT
        } else {
            self.limit
        }
    }
}
