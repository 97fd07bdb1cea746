//! The SQLite store's search index (`audit_search` with its indexes, `audit_relations`),
//! built after the commit instead of inside it.
//!
//! A strict-mode statement waits for its event's commit, so a commit carries only what
//! durability needs: one row per record in `audit_events`, whose only index is its
//! primary key. Indexing the same records later, many at a time, costs less per record
//! (each index page is written once per chunk, not once per commit) and nobody waits for
//! it. `audit_meta.indexed_seq` is the watermark: records up to it are indexed. A search
//! first catches the index up; the writer does so when it is idle or falls too far
//! behind. Index rows are derived from the records (their columns, and the relations in
//! the hashed text), so a lost or lowered watermark only means work is done again.

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use super::{i64_of, meta, to_u64, SqliteStore};
use crate::chain::Envelope;
use crate::error::StoreError;
use crate::event::{relation_name, IndexFields};

/// Records indexed per transaction: long enough to share index pages, short enough that
/// a commit waiting for the lock is not held up for long.
const CHUNK: u64 = 2000;

impl SqliteStore {
    /// The highest seq the index covers (the segment start when none is).
    pub(super) fn index_watermark(&self) -> Result<u64, StoreError> {
        watermark(self.conn()?).map_err(self.err())
    }

    /// Indexes up to `max` more records, a chunk per transaction. Returns how many
    /// records are still not indexed.
    pub(super) fn catch_up(&self, max: usize) -> Result<u64, StoreError> {
        let conn = self.conn()?;
        let mut budget = u64::try_from(max).unwrap_or(u64::MAX);
        loop {
            let (done, left) = index_chunk(conn, budget.min(CHUNK)).map_err(self.err())?;
            budget = budget.saturating_sub(done);
            if left == 0 || budget == 0 || done == 0 {
                return Ok(left);
            }
        }
    }
}

fn watermark(conn: &Connection) -> rusqlite::Result<u64> {
    Ok(meta(conn, "indexed_seq")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Indexes the next `n` records in one transaction: (indexed, still left).
fn index_chunk(conn: &Connection, n: u64) -> rusqlite::Result<(u64, u64)> {
    // IMMEDIATE: the watermark read and the writes below must see one state.
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let from = watermark(&tx)?;
    let last: Option<i64> = tx.query_row("SELECT max(seq) FROM audit_events", [], |r| r.get(0))?;
    let last = last.map_or(0, to_u64);
    if last <= from || n == 0 {
        return Ok((0, last.saturating_sub(from)));
    }
    let to = last.min(from.saturating_add(n));
    let range = params![i64_of(from), i64_of(to)];
    // Whatever is there beyond the watermark was not made by us: replace it.
    tx.execute(
        "DELETE FROM audit_search WHERE seq > ?1 AND seq <= ?2",
        range,
    )?;
    tx.execute(
        "DELETE FROM audit_relations WHERE seq > ?1 AND seq <= ?2",
        range,
    )?;
    tx.execute(
        "INSERT INTO audit_search (seq, time, session_id, identity, fingerprint) \
         SELECT seq, time, session_id, identity, fingerprint FROM audit_events \
         WHERE seq > ?1 AND seq <= ?2",
        range,
    )?;
    {
        // Relations are only in the hashed text; the cheap substring test spares
        // parsing the records that have none (completions, sessions).
        let mut records = tx.prepare(
            "SELECT seq, record FROM audit_events WHERE seq > ?1 AND seq <= ?2 \
             AND instr(record, '\"relations\":[\"') > 0",
        )?;
        let mut insert = tx.prepare(
            "INSERT OR IGNORE INTO audit_relations (seq, name, tbl) VALUES (?1, ?2, ?3)",
        )?;
        let mut rows = records.query(range)?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let text: String = row.get(1)?;
            // A record that does not parse was tampered with; verify reports it.
            let Ok(env) = Envelope::parse(&text) else {
                continue;
            };
            for name in IndexFields::from_body(&env.body).relations {
                let name = relation_name(&name);
                let table = name.rsplit_once('.').map_or(name, |(_, t)| t);
                insert.execute(params![seq, name, table])?;
            }
        }
    }
    tx.execute(
        "UPDATE audit_meta SET value = ?1 WHERE key = 'indexed_seq'",
        [to.to_string()],
    )?;
    tx.commit()?;
    Ok((to - from, last - to))
}
