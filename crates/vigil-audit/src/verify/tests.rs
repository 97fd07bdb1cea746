//! Tamper tests: real SQLite files, edited behind the store's back with rusqlite.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use rusqlite::{params, Connection};

use super::*;
use crate::chain::{link, seal};
use crate::checkpoint::{read_anchor, CheckpointSigner};
use crate::clock;
use crate::event::samples::statement;
use crate::store::{SqliteOptions, SqliteStore};
use crate::testing::TempDir;

fn signer() -> CheckpointSigner {
    CheckpointSigner::new(SigningKey::from_bytes(&[42; 32]))
}

fn key() -> VerifyingKey {
    signer().verifying_key()
}

/// A store with `n` statements and a signed checkpoint after every `every`-th record.
fn fill(dir: &TempDir, name: &str, n: u64, every: u64) -> PathBuf {
    let path = dir.path().join(name);
    let mut store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let s = signer();
    let start = s.sign(CheckpointKind::SegmentStart, 0, ChainHash::ZERO, "t0");
    store.append(&[], &[start]).unwrap();
    extend(&mut store, n, every);
    path
}

fn extend(store: &mut SqliteStore, n: u64, every: u64) {
    let s = signer();
    let mut tail = store.tail().unwrap();
    for _ in 0..n {
        let time = clock::format(clock::now_micros());
        let e = seal(tail.seq + 1, &time, &statement(1, tail.seq + 1), &tail.hash).unwrap();
        tail = Tail {
            seq: e.seq,
            hash: e.hash,
        };
        let cps: Vec<_> = (tail.seq.checked_rem(every) == Some(0))
            .then(|| s.sign(CheckpointKind::Checkpoint, tail.seq, tail.hash, &time))
            .into_iter()
            .collect();
        store.append(&[e], &cps).unwrap();
    }
}

fn check(path: &Path, anchor: Option<&Anchor>) -> VerifyReport {
    let store = SqliteStore::open_existing(path).unwrap();
    verify(&store, Some(&key()), anchor).unwrap()
}

fn sql(path: &Path, statements: &str) {
    Connection::open(path)
        .unwrap()
        .execute_batch(statements)
        .unwrap();
}

#[test]
fn an_untouched_log_verifies() {
    let dir = TempDir::new("verify-ok");
    let path = fill(&dir, "a.db", 12, 5);
    let report = check(&path, None);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.records, 12);
    assert_eq!(report.checkpoints_verified, 2);
    assert_eq!(report.last_signed_seq, Some(10));
    assert_eq!(report.unsigned_tail, 2);
    assert!(report.to_string().starts_with("OK: 12 records"));
}

#[test]
fn editing_a_field_is_named() {
    let dir = TempDir::new("verify-edit");
    let path = fill(&dir, "a.db", 8, 5);
    sql(
        &path,
        "UPDATE audit_events SET record = replace(record, 'alice', 'mallory') WHERE seq = 4",
    );
    let report = check(&path, None);
    assert_eq!(report.first_bad_seq(), Some(4), "{report}");
    let Problem::Modified { detail, .. } = &report.problems[0] else {
        panic!("{report}")
    };
    assert!(detail.contains("does not match its hash"), "{detail}");
    assert!(detail.contains("identity"), "{detail}");
}

#[test]
fn editing_only_a_search_column_is_named() {
    let dir = TempDir::new("verify-column");
    let path = fill(&dir, "a.db", 8, 5);
    sql(
        &path,
        "UPDATE audit_events SET identity = 'bob' WHERE seq = 6",
    );
    assert_eq!(check(&path, None).first_bad_seq(), Some(6));
    let path = fill(&dir, "b.db", 8, 5);
    sql(&path, "DELETE FROM audit_relations WHERE seq = 2");
    assert_eq!(check(&path, None).first_bad_seq(), Some(2));
}

#[test]
fn rewriting_a_record_with_a_fresh_hash_is_named() {
    let dir = TempDir::new("verify-rewrite");
    let path = fill(&dir, "a.db", 8, 5);
    let conn = Connection::open(&path).unwrap();
    let (text, prev): (String, Vec<u8>) = conn
        .query_row(
            "SELECT record, prev_hash FROM audit_events WHERE seq = 4",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let forged = text.replace("WHERE id = 4", "WHERE id = 5");
    let hash = link(&ChainHash::from_slice(&prev).unwrap(), &forged);
    conn.execute(
        "UPDATE audit_events SET record = ?1, hash = ?2 WHERE seq = 4",
        params![forged, &hash.0[..]],
    )
    .unwrap();
    let report = check(&path, None);
    assert_eq!(report.first_bad_seq(), Some(4), "{report}");
    assert_eq!(report.problems[0], Problem::Rewritten { seq: 4, next: 5 });
}

#[test]
fn deleting_an_event_is_named() {
    let dir = TempDir::new("verify-delete");
    let path = fill(&dir, "a.db", 8, 5);
    sql(&path, "DELETE FROM audit_events WHERE seq = 5");
    let report = check(&path, None);
    assert_eq!(report.problems, vec![Problem::Missing { seq: 5, next: 6 }]);
    assert!(report.to_string().contains("record 5 was removed"));

    let path = fill(&dir, "head.db", 8, 5);
    sql(&path, "DELETE FROM audit_events WHERE seq <= 3");
    assert_eq!(check(&path, None).first_bad_seq(), Some(1));
}

#[test]
fn swapping_two_events_is_named() {
    let dir = TempDir::new("verify-swap");
    let path = fill(&dir, "a.db", 8, 5);
    sql(
        &path,
        "UPDATE audit_events SET seq = -1 WHERE seq = 3;
         UPDATE audit_events SET seq = 3 WHERE seq = 4;
         UPDATE audit_events SET seq = 4 WHERE seq = -1;",
    );
    let report = check(&path, None);
    assert_eq!(report.first_bad_seq(), Some(3), "{report}");
    assert!(report
        .problems
        .contains(&Problem::Reordered { seq: 3, holds: 4 }));
}

#[test]
fn truncating_the_tail_is_named() {
    let dir = TempDir::new("verify-truncate");
    let path = fill(&dir, "a.db", 12, 5);
    sql(&path, "DELETE FROM audit_events WHERE seq >= 8");
    let report = check(&path, None);
    assert_eq!(
        report.problems,
        vec![Problem::Truncated {
            seq: 8,
            vouched: 10,
            what: "checkpoint"
        }]
    );
}

#[test]
fn an_anchor_catches_a_cut_that_took_its_checkpoints_along() {
    let dir = TempDir::new("verify-anchor");
    let path = fill(&dir, "a.db", 12, 4);
    let anchor_path = dir.path().join("anchor.json");
    let store = SqliteStore::open_existing(&path).unwrap();
    let anchor = export_anchor(&store, &anchor_path).unwrap();
    drop(store);
    assert_eq!(anchor.seq, 12);
    let anchor = read_anchor(&anchor_path).unwrap();
    assert!(check(&path, Some(&anchor)).is_ok());

    sql(
        &path,
        "DELETE FROM audit_events WHERE seq >= 10; DELETE FROM audit_checkpoints WHERE seq >= 10;",
    );
    // Without the anchor the cut is invisible: that is what anchors are for.
    assert!(check(&path, None).is_ok());
    let report = check(&path, Some(&anchor));
    assert_eq!(report.first_bad_seq(), Some(10), "{report}");
}

#[test]
fn rewriting_the_whole_chain_is_caught_by_checkpoints() {
    let dir = TempDir::new("verify-rechain");
    let path = fill(&dir, "a.db", 12, 5);
    // Rebuild records 7.. with new content and correct hashes, as a forger would.
    let store = SqliteStore::open_existing(&path).unwrap();
    let mut prev = store.scan(6, 1).unwrap()[0].hash;
    let conn = Connection::open(&path).unwrap();
    for seq in 7..=12u64 {
        let mut event = statement(1, seq);
        if let crate::AuditEvent::Statement(s) = &mut event {
            s.text = "SELECT 1".into();
        }
        let e = seal(seq, "2000-01-01T00:00:00.000000Z", &event, &prev).unwrap();
        conn.execute(
            "UPDATE audit_events SET record = ?1, hash = ?2, prev_hash = ?3, time = ?4 WHERE seq = ?5",
            params![e.canonical, &e.hash.0[..], &prev.0[..], e.time, seq as i64],
        )
        .unwrap();
        prev = e.hash;
    }
    let report = check(&path, None);
    assert_eq!(
        report.problems,
        vec![Problem::Rewound {
            from: 6,
            at: 10,
            what: "checkpoint"
        }],
        "{report}"
    );
}

#[test]
fn forged_or_foreign_signatures_are_reported() {
    let dir = TempDir::new("verify-signature");
    let path = fill(&dir, "a.db", 10, 5);
    sql(
        &path,
        "UPDATE audit_checkpoints SET time = 'later' WHERE seq = 5",
    );
    let report = check(&path, None);
    assert_eq!(report.first_bad_seq(), Some(5), "{report}");

    let other = SigningKey::from_bytes(&[1; 32]).verifying_key();
    let store = SqliteStore::open_existing(&fill(&dir, "b.db", 10, 5)).unwrap();
    let report = verify(&store, Some(&other), None).unwrap();
    assert_eq!(report.problems.len(), 3, "{report}");
    let unsigned = verify(&store, None, None).unwrap();
    assert!(unsigned.is_ok());
    assert!(!unsigned.notes.is_empty());
}

#[test]
fn segments_must_follow_each_other() {
    let dir = TempDir::new("verify-segments");
    let first = fill(&dir, "1.db", 7, 5);
    let second = dir.path().join("2.db");
    let mut store = SqliteStore::open(&first, SqliteOptions::default()).unwrap();
    let end = store.tail().unwrap();
    let s = signer();
    store
        .append(
            &[],
            &[s.sign(CheckpointKind::Checkpoint, end.seq, end.hash, "t")],
        )
        .unwrap();
    let start = store.rotate(second.to_str().unwrap()).unwrap();
    store
        .append(
            &[],
            &[s.sign(CheckpointKind::SegmentStart, start.seq, start.hash, "t")],
        )
        .unwrap();
    extend(&mut store, 6, 5);
    drop(store);

    let a = SqliteStore::open_existing(&first).unwrap();
    let b = SqliteStore::open_existing(&second).unwrap();
    let both = verify_segments(&[&a, &b], Some(&key()), None).unwrap();
    assert!(both.is_ok(), "{both}");
    assert_eq!(both.records, 13);
    assert_eq!(both.last.map(|t| t.seq), Some(13));

    let alone = verify(&b, Some(&key()), None).unwrap();
    assert!(alone.is_ok(), "{alone}");
    assert_eq!(alone.first_seq, Some(8));

    let swapped = verify_segments(&[&b, &a], Some(&key()), None).unwrap();
    assert!(!swapped.is_ok());

    drop(b);
    sql(
        &second,
        "DELETE FROM audit_checkpoints WHERE kind = 'segment-start'",
    );
    let b = SqliteStore::open_existing(&second).unwrap();
    let unvouched = verify(&b, Some(&key()), None).unwrap();
    assert_eq!(unvouched.first_bad_seq(), Some(8), "{unvouched}");
}
