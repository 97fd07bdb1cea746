//! Tests of the SQLite store against real files.

use super::*;
use crate::chain::seal;
use crate::event::samples::{session, statement};
use crate::event::AuditEvent;
use crate::testing::TempDir;

fn chain(from: &Tail, events: &[AuditEvent]) -> Vec<StoredEvent> {
    let mut prev = *from;
    events
        .iter()
        .map(|e| {
            let sealed = seal(
                prev.seq + 1,
                &clock::format(clock::now_micros()),
                e,
                &prev.hash,
            )
            .unwrap();
            prev = Tail {
                seq: sealed.seq,
                hash: sealed.hash,
            };
            sealed
        })
        .collect()
}

#[test]
fn appends_atomically_and_reads_back() {
    let dir = TempDir::new("sqlite-append");
    let path = dir.path().join("audit.db");
    let mut store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert_eq!(store.tail().unwrap(), Tail::GENESIS);
    let batch = chain(&Tail::GENESIS, &[statement(1, 1), statement(1, 2)]);
    store.append(&batch, &[]).unwrap();
    assert_eq!(store.tail().unwrap().seq, 2);
    assert_eq!(store.scan(1, 10).unwrap(), batch);
    assert_eq!(store.last(1).unwrap(), batch[1..].to_vec());

    // A batch that does not continue the tail is refused whole.
    let stale = chain(&Tail::GENESIS, &[statement(1, 3)]);
    assert!(matches!(
        store.append(&stale, &[]),
        Err(StoreError::TailMoved { .. })
    ));
    assert_eq!(store.tail().unwrap().seq, 2);

    drop(store);
    let reopened = SqliteStore::open_existing(&path).unwrap();
    assert_eq!(reopened.tail().unwrap().hash, batch[1].hash);
    let mode: String = reopened
        .conn()
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_failing_batch_leaves_nothing_behind() {
    let dir = TempDir::new("sqlite-rollback");
    let mut store = SqliteStore::open(&dir.path().join("a.db"), SqliteOptions::default()).unwrap();
    let mut batch = chain(&Tail::GENESIS, &[statement(1, 1), statement(1, 2)]);
    batch[1].seq = 1; // duplicate primary key: the second insert fails
    assert!(store.append(&batch, &[]).is_err());
    assert_eq!(store.tail().unwrap(), Tail::GENESIS);
    assert!(store.scan(0, 10).unwrap().is_empty());
}

#[test]
fn search_filters_combine() {
    let dir = TempDir::new("sqlite-search");
    let mut store = SqliteStore::open(&dir.path().join("s.db"), SqliteOptions::default()).unwrap();
    let mut other = statement(2, 1);
    if let AuditEvent::Statement(s) = &mut other {
        s.identity = "bob".into();
        s.relations = vec!["sales.orders:read".into()];
        s.decision = crate::event::Decision::Deny;
        s.fingerprint = "ffff".into();
    }
    let batch = chain(
        &Tail::GENESIS,
        &[
            AuditEvent::SessionStart(session(1)),
            statement(1, 1),
            other,
            statement(1, 2),
        ],
    );
    store.append(&batch, &[]).unwrap();
    let seqs =
        |f: SearchFilter| -> Vec<u64> { store.search(&f).unwrap().iter().map(|e| e.seq).collect() };
    let by = |f: fn(&mut SearchFilter)| {
        let mut filter = SearchFilter::default();
        f(&mut filter);
        filter
    };
    assert_eq!(seqs(by(|f| f.identity = Some("bob".into()))), vec![3]);
    assert_eq!(seqs(by(|f| f.table = Some("users".into()))), vec![2, 4]);
    assert_eq!(seqs(by(|f| f.table = Some("sales.orders".into()))), vec![3]);
    assert_eq!(seqs(by(|f| f.table = Some("orders".into()))), vec![3]);
    assert_eq!(seqs(by(|f| f.decision = Some("deny".into()))), vec![3]);
    assert_eq!(
        seqs(by(|f| f.fingerprint = Some("a1b2c3".into()))),
        vec![2, 4]
    );
    assert_eq!(seqs(by(|f| f.kind = Some("session.start".into()))), vec![1]);
    assert_eq!(seqs(by(|f| f.session_id = Some(1))), vec![1, 2, 4]);
    assert_eq!(
        seqs(by(|f| f.database = Some("prod".into()))),
        vec![1, 2, 3, 4]
    );
    assert_eq!(seqs(by(|f| f.limit = 2)), vec![3, 4]);
    assert_eq!(seqs(by(|f| f.after_seq = Some(2))), vec![3, 4]);
    assert_eq!(seqs(by(|f| f.before_seq = Some(3))), vec![1, 2]);
    let past = SearchFilter::default().until("2000-01-01").unwrap();
    assert!(seqs(past).is_empty());
    let recent = SearchFilter::default().since("2000-01-01").unwrap();
    assert_eq!(seqs(recent).len(), 4);
}

#[test]
fn refuses_foreign_files_and_missing_paths() {
    let dir = TempDir::new("sqlite-foreign");
    let path = dir.path().join("other.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE customers (id INTEGER)")
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not an audit store"), "{err}");
    assert!(SqliteStore::open_existing(&dir.path().join("missing.db")).is_err());
}

#[test]
fn rotation_continues_the_chain_in_a_new_file() {
    let dir = TempDir::new("sqlite-rotate");
    let first = dir.path().join("1.db");
    let second = dir.path().join("2.db");
    let mut store = SqliteStore::open(&first, SqliteOptions::default()).unwrap();
    let batch = chain(&Tail::GENESIS, &[statement(1, 1)]);
    store.append(&batch, &[]).unwrap();
    let start = store.rotate(second.to_str().unwrap()).unwrap();
    assert_eq!(start.seq, 1);
    assert_eq!(store.start().unwrap(), start);
    assert_eq!(store.tail().unwrap(), start);
    let next = chain(&start, &[statement(1, 2)]);
    store.append(&next, &[]).unwrap();
    assert_eq!(store.scan(0, 10).unwrap(), next);
    assert!(store.rotate(first.to_str().unwrap()).is_err());
}
