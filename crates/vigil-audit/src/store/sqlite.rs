//! The embedded store: one SQLite file per segment, WAL mode, `synchronous=FULL`.
//!
//! `synchronous=FULL` makes every commit fsync the WAL, so an acknowledged batch survives
//! power loss; group commit in the writer keeps that to one fsync per batch. Search columns
//! and the `audit_relations` table are copies of facts inside each record's hashed text;
//! `verify` checks that they still agree with it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Row};

use super::sqlite_checkpoints::{passive_checkpoint, Checkpointer, LARGE_WAL_FRAMES};
use super::{SearchFilter, Store};
use crate::chain::{ChainHash, StoredEvent, Tail};
use crate::checkpoint::{Checkpoint, CheckpointKind};
use crate::clock;
use crate::error::StoreError;
use crate::event::{relation_name, IndexFields};

const FORMAT: &str = "vigil-audit";
const SCHEMA: &str = "1";

const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_events (
    seq         INTEGER PRIMARY KEY,
    time        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    session_id  INTEGER,
    identity    TEXT,
    database    TEXT,
    decision    TEXT,
    fingerprint TEXT,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_identity ON audit_events (identity, seq);
CREATE INDEX IF NOT EXISTS audit_events_fingerprint ON audit_events (fingerprint, seq);
CREATE INDEX IF NOT EXISTS audit_events_session ON audit_events (session_id, seq);
CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events (time);
CREATE TABLE IF NOT EXISTS audit_relations (
    seq  INTEGER NOT NULL,
    name TEXT NOT NULL,
    tbl  TEXT NOT NULL,
    PRIMARY KEY (seq, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_relations_name ON audit_relations (name);
CREATE INDEX IF NOT EXISTS audit_relations_tbl ON audit_relations (tbl);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    kind      TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    hash      BLOB NOT NULL,
    time      TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (kind, seq)
);
";

const EVENT_COLUMNS: &str = "e.seq, e.time, e.kind, e.session_id, e.identity, e.database, \
    e.decision, e.fingerprint, e.prev_hash, e.hash, e.record, \
    (SELECT group_concat(r.name, char(10)) FROM audit_relations r WHERE r.seq = e.seq)";

/// How the SQLite store waits and opens.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// How long a write waits for another connection's lock before failing. In strict
    /// mode sessions wait this long at most before their statement is refused.
    pub busy_timeout: Duration,
    /// Whether each commit waits for the disk (`synchronous=FULL`). Without it
    /// (`NORMAL`) a commit is in the operating system's cache when it returns:
    /// it survives the Vigil process dying (`kill -9`, a crash) but not the
    /// machine losing power or the kernel crashing.
    pub fsync: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(2),
            fsync: true,
        }
    }
}

/// A segment of the audit chain in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    /// `None` after a failed reopen; every operation then reports the store unavailable.
    conn: Option<Connection>,
    /// Checkpoints the WAL on a thread of its own (the writer's store only).
    checkpointer: Option<Checkpointer>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file (as the first segment, starting at
    /// genesis) if it does not exist.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        Self::open_with(path, options, true, Tail::GENESIS)
    }

    /// Opens an existing store; fails if `path` does not exist. For `verify`, `search`,
    /// `export`, which must never create an empty log and call it valid.
    pub fn open_existing(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default(), false, Tail::GENESIS)
    }

    /// Creates a new segment at `path` whose chain continues after `start`.
    pub fn create_segment(
        path: &Path,
        start: Tail,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        if path.exists() {
            return Err(StoreError::Incompatible {
                location: path.display().to_string(),
                reason: "refusing to start a new segment in an existing file".into(),
            });
        }
        Self::open_with(path, options, true, start)
    }

    fn open_with(
        path: &Path,
        options: SqliteOptions,
        create: bool,
        start: Tail,
    ) -> Result<Self, StoreError> {
        let mut store = SqliteStore {
            path: path.to_owned(),
            options,
            conn: None,
            checkpointer: None,
        };
        store.conn = Some(store.connect(create, start)?);
        Ok(store)
    }

    /// Moves WAL checkpoints off the commit path, onto a thread of this
    /// store's own (see `sqlite_checkpoints`). For the store the writer
    /// commits to; readers need none.
    pub fn checkpoint_in_background(&mut self) {
        if self.checkpointer.is_none() {
            self.checkpointer = Checkpointer::start(&self.path, self.options.busy_timeout);
        }
        self.automatic_checkpoints();
    }

    /// Turns SQLite's own checkpoints off while the background thread runs.
    fn automatic_checkpoints(&self) {
        if let (Some(conn), Some(_)) = (&self.conn, &self.checkpointer) {
            // Were this to fail, SQLite would go on checkpointing by itself:
            // slower commits, nothing lost.
            let _ = conn.pragma_update(None, "wal_autocheckpoint", 0);
        }
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            location: self.path.display().to_string(),
            source,
        }
    }

    fn incompatible(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Incompatible {
            location: self.path.display().to_string(),
            reason: reason.into(),
        }
    }

    fn connect(&self, create: bool, start: Tail) -> Result<Connection, StoreError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let mut conn = Connection::open_with_flags(&self.path, flags).map_err(self.err())?;
        conn.busy_timeout(self.options.busy_timeout)
            .map_err(self.err())?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(self.err())?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(self.incompatible(format!("cannot switch to WAL (journal_mode={mode})")));
        }
        let synchronous = if self.options.fsync { "FULL" } else { "NORMAL" };
        conn.pragma_update(None, "synchronous", synchronous)
            .map_err(self.err())?;
        let foreign: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'audit\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
                [],
                |r| r.get(0),
            )
            .map_err(self.err())?;
        if foreign > 0 {
            return Err(
                self.incompatible("this SQLite file holds other tables; not an audit store")
            );
        }
        // IMMEDIATE: a deferred transaction that reads, then writes, fails at once with
        // SQLITE_BUSY (no busy wait) when another connection commits in between.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(self.err())?;
        tx.execute_batch(SCHEMA_SQL).map_err(self.err())?;
        for (key, value) in [
            ("format", FORMAT.to_owned()),
            ("schema", SCHEMA.to_owned()),
            ("start_seq", start.seq.to_string()),
            ("start_hash", start.hash.to_hex()),
        ] {
            tx.execute(
                "INSERT OR IGNORE INTO audit_meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())?;
        let format = meta(&conn, "format").map_err(self.err())?;
        let schema = meta(&conn, "schema").map_err(self.err())?;
        if format.as_deref() != Some(FORMAT) || schema.as_deref() != Some(SCHEMA) {
            return Err(self.incompatible(format!(
                "unsupported audit store (format {format:?}, schema {schema:?})"
            )));
        }
        Ok(conn)
    }

    fn conn(&self) -> Result<&Connection, StoreError> {
        self.conn
            .as_ref()
            .ok_or_else(|| self.incompatible("store is closed after a failure; reopen pending"))
    }

    fn query_events(
        &self,
        sql: &str,
        params: &[rusqlite::types::Value],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(sql).map_err(self.err())?;
        let rows = stmt
            .query_map(params_from_iter(params.iter()), event_from_row)
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }
}

fn meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM audit_meta WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .optional()
}

fn hash_from_blob(blob: &[u8]) -> ChainHash {
    // A blob of the wrong length can only come from tampering; ZERO never matches a
    // recomputed hash, so verify reports the record instead of aborting the walk.
    ChainHash::from_slice(blob).unwrap_or(ChainHash::ZERO)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let relations: Option<String> = r.get(11)?;
    let mut relations: Vec<String> = relations
        .map(|s| s.split('\n').map(str::to_owned).collect())
        .unwrap_or_default();
    relations.sort();
    Ok(StoredEvent {
        seq: to_u64(r.get(0)?),
        time: r.get(1)?,
        kind: r.get(2)?,
        index: IndexFields {
            session_id: r.get::<_, Option<i64>>(3)?.map(to_u64),
            identity: r.get(4)?,
            database: r.get(5)?,
            decision: r.get(6)?,
            fingerprint: r.get(7)?,
            relations,
        },
        prev_hash: hash_from_blob(&r.get::<_, Vec<u8>>(8)?),
        hash: hash_from_blob(&r.get::<_, Vec<u8>>(9)?),
        canonical: r.get(10)?,
    })
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn start(&self) -> Result<Tail, StoreError> {
        let conn = self.conn()?;
        let seq = meta(conn, "start_seq").map_err(self.err())?;
        let hash = meta(conn, "start_hash").map_err(self.err())?;
        let seq = seq.and_then(|s| s.parse().ok());
        let hash = hash.and_then(|h| ChainHash::from_hex(&h));
        match (seq, hash) {
            (Some(seq), Some(hash)) => Ok(Tail { seq, hash }),
            _ => Err(self.incompatible("audit_meta start_seq/start_hash missing or malformed")),
        }
    }

    fn tail(&self) -> Result<Tail, StoreError> {
        let last = self
            .conn()?
            .prepare_cached("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .and_then(|mut last| {
                last.query_row([], |r| {
                    Ok((to_u64(r.get(0)?), hash_from_blob(&r.get::<_, Vec<u8>>(1)?)))
                })
                .optional()
            })
            .map_err(self.err())?;
        match last {
            Some((seq, hash)) => Ok(Tail { seq, hash }),
            None => self.start(),
        }
    }

    fn append(
        &mut self,
        events: &[StoredEvent],
        checkpoints: &[Checkpoint],
    ) -> Result<(), StoreError> {
        let tail = self.tail()?;
        let location = self.location();
        let err = |source| StoreError::Sqlite {
            location: location.clone(),
            source,
        };
        let conn = self.conn.as_mut().ok_or_else(|| StoreError::Incompatible {
            location: location.clone(),
            reason: "store is closed after a failure; reopen pending".into(),
        })?;
        // IMMEDIATE takes the write lock now, so the tail re-read below cannot go stale.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let current: Option<(i64, Vec<u8>)> = tx
            .prepare_cached("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .and_then(|mut last| {
                last.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(err)?;
        let current = current.map_or(tail, |(seq, hash)| Tail {
            seq: to_u64(seq),
            hash: hash_from_blob(&hash),
        });
        if let Some(first) = events.first() {
            if first.seq != current.seq + 1 || first.prev_hash != current.hash {
                return Err(StoreError::TailMoved {
                    location,
                    expected: first.seq.saturating_sub(1),
                    found: current.seq,
                });
            }
        }
        {
            let mut insert_event = tx
                .prepare_cached(
                    "INSERT INTO audit_events (seq, time, kind, session_id, identity, database, \
                     decision, fingerprint, prev_hash, hash, record) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(err)?;
            let mut insert_relation = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO audit_relations (seq, name, tbl) VALUES (?1, ?2, ?3)",
                )
                .map_err(err)?;
            for e in events {
                insert_event
                    .execute(params![
                        i64_of(e.seq),
                        e.time,
                        e.kind,
                        e.index.session_id.map(i64_of),
                        e.index.identity,
                        e.index.database,
                        e.index.decision,
                        e.index.fingerprint,
                        &e.prev_hash.0[..],
                        &e.hash.0[..],
                        e.canonical,
                    ])
                    .map_err(err)?;
                for name in &e.index.relations {
                    let name = relation_name(name);
                    let table = name.rsplit_once('.').map_or(name, |(_, t)| t);
                    insert_relation
                        .execute(params![i64_of(e.seq), name, table])
                        .map_err(err)?;
                }
            }
            let mut insert_checkpoint = tx
                .prepare_cached(
                    "INSERT INTO audit_checkpoints (kind, seq, hash, time, key_id, signature) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (kind, seq) DO NOTHING",
                )
                .map_err(err)?;
            for c in checkpoints {
                let inserted = insert_checkpoint
                    .execute(params![
                        c.kind.as_str(),
                        i64_of(c.seq),
                        &c.hash.0[..],
                        c.time,
                        c.key_id,
                        c.signature,
                    ])
                    .map_err(err)?;
                // Two writers sharing a store may both vouch for the same position; one
                // checkpoint is enough, but two different hashes at one seq is a fork.
                if inserted == 0 {
                    let existing: Vec<u8> = tx
                        .query_row(
                            "SELECT hash FROM audit_checkpoints WHERE kind = ?1 AND seq = ?2",
                            params![c.kind.as_str(), i64_of(c.seq)],
                            |r| r.get(0),
                        )
                        .map_err(err)?;
                    if existing != c.hash.0 {
                        return Err(StoreError::Incompatible {
                            location,
                            reason: format!(
                                "a {} for seq {} with a different hash is already stored",
                                c.kind.as_str(),
                                c.seq
                            ),
                        });
                    }
                }
            }
        }
        tx.commit().map_err(err)?;
        if let (Some(checkpointer), Some(conn)) = (&self.checkpointer, &self.conn) {
            // Until it completes, every commit tries again: a large WAL
            // is nearly all copied already, so each try is short.
            let large = checkpointer.wal_frames() > LARGE_WAL_FRAMES;
            if large && passive_checkpoint(conn).is_ok_and(|wal| wal.complete) {
                checkpointer.finished();
            }
        }
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), StoreError> {
        self.conn = None;
        self.conn = Some(self.connect(false, Tail::GENESIS)?);
        self.automatic_checkpoints();
        Ok(())
    }

    fn scan(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events e WHERE e.seq >= ?1 ORDER BY e.seq LIMIT ?2"
        );
        self.query_events(&sql, &[i64_of(from).into(), i64_of(limit as u64).into()])
    }

    fn last(&self, n: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM audit_events e ORDER BY e.seq DESC LIMIT ?1");
        let mut rows = self.query_events(&sql, &[i64_of(n as u64).into()])?;
        rows.reverse();
        Ok(rows)
    }

    fn search(&self, filter: &SearchFilter) -> Result<Vec<StoredEvent>, StoreError> {
        use rusqlite::types::Value as V;
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM audit_events e WHERE 1 = 1");
        let mut args: Vec<V> = Vec::new();
        let mut text = |column: &str, value: &Option<String>, sql: &mut String| {
            if let Some(v) = value {
                args.push(V::Text(v.clone()));
                sql.push_str(&format!(" AND e.{column} = ?{}", args.len()));
            }
        };
        text("identity", &filter.identity, &mut sql);
        text("database", &filter.database, &mut sql);
        text("decision", &filter.decision, &mut sql);
        text("fingerprint", &filter.fingerprint, &mut sql);
        text("kind", &filter.kind, &mut sql);
        if let Some(table) = &filter.table {
            args.push(V::Text(table.clone()));
            let n = args.len();
            sql.push_str(&format!(
                " AND e.seq IN (SELECT seq FROM audit_relations WHERE name = ?{n} OR tbl = ?{n})"
            ));
        }
        if let Some(id) = filter.session_id {
            args.push(V::Integer(i64_of(id)));
            sql.push_str(&format!(" AND e.session_id = ?{}", args.len()));
        }
        if let Some(since) = filter.since {
            args.push(V::Text(clock::format(since)));
            sql.push_str(&format!(" AND e.time >= ?{}", args.len()));
        }
        if let Some(until) = filter.until {
            args.push(V::Text(clock::format(until)));
            sql.push_str(&format!(" AND e.time < ?{}", args.len()));
        }
        if let Some(after) = filter.after_seq {
            args.push(V::Integer(i64_of(after)));
            sql.push_str(&format!(" AND e.seq > ?{}", args.len()));
        }
        if let Some(before) = filter.before_seq {
            args.push(V::Integer(i64_of(before)));
            sql.push_str(&format!(" AND e.seq < ?{}", args.len()));
        }
        args.push(V::Integer(i64_of(filter.effective_limit() as u64)));
        sql.push_str(&format!(" ORDER BY e.seq DESC LIMIT ?{}", args.len()));
        let mut rows = self.query_events(&sql, &args)?;
        rows.reverse();
        Ok(rows)
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT kind, seq, hash, time, key_id, signature FROM audit_checkpoints \
                 ORDER BY seq, kind DESC",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                let kind: String = r.get(0)?;
                Ok(Checkpoint {
                    // An unknown kind can only be tampering; treat it as a plain
                    // checkpoint so its (now invalid) signature is reported.
                    kind: CheckpointKind::parse(&kind).unwrap_or(CheckpointKind::Checkpoint),
                    seq: to_u64(r.get(1)?),
                    hash: hash_from_blob(&r.get::<_, Vec<u8>>(2)?),
                    time: r.get(3)?,
                    key_id: r.get(4)?,
                    signature: r.get(5)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    fn rotate(&mut self, to: &str) -> Result<Tail, StoreError> {
        let start = self.tail()?;
        let next = SqliteStore::create_segment(Path::new(to), start, self.options.clone())?;
        *self = next;
        Ok(start)
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
