//! Tests of the writer against real SQLite files: group commit, fail-closed behaviour and
//! recovery, fast mode, checkpoints, rotation, and a real crash (SIGKILL) of a writer.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rusqlite::Connection;

use super::*;
use crate::event::samples::statement;
use crate::store::{SqliteOptions, SqliteStore, Store};
use crate::testing::TempDir;
use crate::verify::{verify, verify_segments};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn public() -> VerifyingKey {
    key().verifying_key()
}

fn options(durability: Durability) -> AuditOptions {
    AuditOptions {
        durability,
        checkpoint_every_events: 10,
        checkpoint_interval: None,
        retry_interval: Duration::ZERO,
        sqlite: SqliteOptions {
            busy_timeout: Duration::from_millis(50),
            ..SqliteOptions::default()
        },
        ..AuditOptions::default()
    }
}

fn open(path: &Path, durability: Durability) -> AuditLog {
    AuditLog::open_sqlite(path, Some(key()), options(durability)).unwrap()
}

fn verify_file(path: &Path) -> crate::verify::VerifyReport {
    let store = SqliteStore::open_existing(path).unwrap();
    verify(&store, Some(&public()), None).unwrap()
}

/// Polls `done` until it holds or five seconds pass.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn strict_appends_are_committed_in_order_and_verify() {
    let dir = TempDir::new("writer-strict");
    let path = dir.path().join("audit.db");
    let log = open(&path, Durability::Strict);
    for n in 1..=25 {
        let receipt = log.append(statement(1, n)).await.unwrap();
        assert_eq!(receipt.seq(), Some(n));
    }
    // Committed means readable by anyone, right now.
    let store = SqliteStore::open_existing(&path).unwrap();
    assert_eq!(store.tail().unwrap().seq, 25);
    let stats = log.stats();
    assert_eq!((stats.events, stats.commits), (25, 25));
    log.shutdown().await.unwrap();
    let report = verify_file(&path);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.unsigned_tail, 0, "shutdown signs the tail");
    assert!(matches!(
        log.append(statement(1, 26)).await,
        Err(AuditError::WriterStopped)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits() {
    let dir = TempDir::new("writer-group");
    let path = dir.path().join("audit.db");
    let log = AuditLog::open_sqlite(
        &path,
        Some(key()),
        AuditOptions {
            commit_delay: Duration::from_millis(10),
            ..options(Durability::Strict)
        },
    )
    .unwrap();
    let mut tasks = Vec::new();
    for session in 0..8u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 1..=25 {
                seqs.push(
                    log.append(statement(session, n))
                        .await
                        .unwrap()
                        .seq()
                        .unwrap(),
                );
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    let stats = log.stats();
    assert_eq!(stats.events, 200);
    assert!(
        stats.commits < stats.events / 2,
        "expected group commit, got {stats:?}"
    );
    log.shutdown().await.unwrap();
    assert!(verify_file(&path).is_ok());
}

#[tokio::test]
async fn a_locked_store_fails_closed_and_recovers() {
    let dir = TempDir::new("writer-locked");
    let path = dir.path().join("audit.db");
    let log = open(&path, Durability::Strict);
    log.append(statement(1, 1)).await.unwrap();

    let blocker = Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = log.append(statement(1, 2)).await.unwrap_err();
    assert!(matches!(err, AuditError::StoreUnavailable(_)), "{err}");
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(err.to_string().contains("audit.db"), "{err}");
    assert!(!log.healthy());
    blocker.execute_batch("ROLLBACK").unwrap();

    // The failed event consumed no seq: the chain continues at 2.
    let receipt = log.append(statement(1, 3)).await.unwrap();
    assert_eq!(receipt.seq(), Some(2));
    assert!(log.healthy());
    let stats = log.stats();
    assert!(
        stats.failed_batches >= 1 && stats.failed_events == 1,
        "{stats:?}"
    );
    log.shutdown().await.unwrap();
    let report = verify_file(&path);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.records, 2);
}

#[tokio::test]
async fn fast_mode_queues_refuses_while_broken_and_heals_when_idle() {
    let dir = TempDir::new("writer-fast");
    let path = dir.path().join("audit.db");
    let log = open(&path, Durability::Fast);
    for n in 1..=5 {
        assert_eq!(log.append(statement(1, n)).await.unwrap(), Receipt::Queued);
    }
    log.sync().await.unwrap();
    assert_eq!(log.stats().events, 5);
    assert_eq!(log.queued(), 0, "committed events leave the queue");

    let blocker = Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Queued fine; its batch fails, and the writer keeps it for the next commit.
    assert_eq!(log.append(statement(1, 6)).await.unwrap(), Receipt::Queued);
    log.sync().await.unwrap();
    assert!(!log.healthy());
    assert!(matches!(
        log.append(statement(1, 7)).await,
        Err(AuditError::StoreUnavailable(_))
    ));
    blocker.execute_batch("ROLLBACK").unwrap();
    eventually("the idle writer to probe the store", || log.healthy()).await;
    log.append(statement(1, 8)).await.unwrap();
    log.shutdown().await.unwrap();
    let report = verify_file(&path);
    assert!(report.is_ok(), "{report}");
    // 1–6 and 8: the refused 7 was never queued.
    assert_eq!(report.records, 7);
}

#[tokio::test]
async fn a_full_queue_makes_appends_wait() {
    let dir = TempDir::new("writer-backpressure");
    let path = dir.path().join("audit.db");
    let log = AuditLog::open_sqlite(
        &path,
        None,
        AuditOptions {
            queue_capacity: 2,
            sqlite: SqliteOptions {
                busy_timeout: Duration::from_millis(400),
                ..SqliteOptions::default()
            },
            ..options(Durability::Fast)
        },
    )
    .unwrap();
    let blocker = Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    log.append(statement(1, 1)).await.unwrap();
    log.append(statement(1, 2)).await.unwrap();
    let third = tokio::time::timeout(Duration::from_millis(100), log.append(statement(1, 3)));
    assert!(third.await.is_err(), "a third append must wait for room");
    blocker.execute_batch("ROLLBACK").unwrap();
}

#[tokio::test]
async fn opening_an_unusable_path_is_a_clear_error() {
    let dir = TempDir::new("writer-badpath");
    let path = dir.path().join("no-such-dir").join("audit.db");
    let err = AuditLog::open_sqlite(&path, None, options(Durability::Strict)).unwrap_err();
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    let off = AuditLog::open_sqlite(&path, None, options(Durability::Off)).unwrap();
    assert_eq!(
        off.append(statement(1, 1)).await.unwrap(),
        Receipt::Disabled
    );
}

#[tokio::test]
async fn checkpoints_follow_count_and_time() {
    let dir = TempDir::new("writer-checkpoints");
    let path = dir.path().join("audit.db");
    let log = AuditLog::open_sqlite(
        &path,
        Some(key()),
        AuditOptions {
            checkpoint_every_events: 0,
            checkpoint_interval: Some(Duration::from_millis(30)),
            ..options(Durability::Strict)
        },
    )
    .unwrap();
    for n in 1..=3 {
        log.append(statement(1, n)).await.unwrap();
    }
    let store = SqliteStore::open_existing(&path).unwrap();
    let signed_at = |seq: u64| {
        store
            .checkpoints()
            .unwrap()
            .iter()
            .any(|c| c.kind == crate::checkpoint::CheckpointKind::Checkpoint && c.seq == seq)
    };
    eventually("a timed checkpoint", || signed_at(3)).await;
    let forced = log.append(statement(1, 4)).await.unwrap();
    let cp = log.checkpoint().await.unwrap().unwrap();
    assert_eq!(Some(cp.seq), forced.seq());
    assert!(cp.verify(&public()));
    drop(log);
}

#[tokio::test]
async fn a_second_writer_on_the_same_store_continues_the_chain() {
    let dir = TempDir::new("writer-two");
    let path = dir.path().join("audit.db");
    let a = open(&path, Durability::Strict);
    let b = open(&path, Durability::Strict);
    for n in 1..=10 {
        a.append(statement(1, n)).await.unwrap();
        b.append(statement(2, n)).await.unwrap();
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let report = verify_file(&path);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.records, 20);
}

#[tokio::test]
async fn rotation_continues_in_a_new_segment() {
    let dir = TempDir::new("writer-rotate");
    let first = dir.path().join("audit-1.db");
    let second = dir.path().join("audit-2.db");
    let log = open(&first, Durability::Strict);
    for n in 1..=4 {
        log.append(statement(1, n)).await.unwrap();
    }
    let start = log.rotate(second.to_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(start.seq, 4);
    assert_eq!(log.append(statement(1, 5)).await.unwrap().seq(), Some(5));
    log.shutdown().await.unwrap();
    let a = SqliteStore::open_existing(&first).unwrap();
    let b = SqliteStore::open_existing(&second).unwrap();
    let report = verify_segments(&[&a, &b], Some(&public()), None).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.records, 5);
    assert!(verify(&b, Some(&public()), None).unwrap().is_ok());
}

const CRASH_ENV: &str = "VIGIL_AUDIT_CRASH_CHILD_DB";

/// Not a test on its own: the child process of `a_killed_writer_loses_nothing_acknowledged`.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CRASH_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let log = open(Path::new(&path), Durability::Strict);
        let mut tasks = Vec::new();
        for session in 0..4u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for n in 1.. {
                    let seq = log.append(statement(session, n)).await.unwrap().seq();
                    println!("ack {}", seq.unwrap());
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[tokio::test]
async fn a_killed_writer_loses_nothing_acknowledged() {
    let dir = TempDir::new("writer-crash");
    let path: PathBuf = dir.path().join("audit.db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "writer::tests::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_ENV, &path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually("the child to commit 100 events", || {
        SqliteStore::open_existing(&path)
            .and_then(|s| s.tail())
            .is_ok_and(|t| t.seq >= 100)
    })
    .await;
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let acked = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("ack ")?.parse::<u64>().ok())
        .max()
        .unwrap();

    let log = open(&path, Durability::Strict);
    let next = log.append(statement(9, 1)).await.unwrap().seq().unwrap();
    assert!(
        next > acked,
        "acknowledged seq {acked} was lost (next is {next})"
    );
    log.shutdown().await.unwrap();
    let report = verify_file(&path);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.records, next, "seqs are contiguous from 1");
}

#[tokio::test]
async fn events_nothing_waits_for_are_committed_by_the_writers_timer() {
    // More than the queue holds: if the writer never woke for them, the
    // appends would wait for permits forever.
    let dir = TempDir::new("writer-background");
    let path = dir.path().join("audit.db");
    let log = open(&path, Durability::Fast);
    for n in 1..=5_000 {
        assert_eq!(log.append(statement(1, n)).await.unwrap(), Receipt::Queued);
    }
    for n in 1..=100 {
        log.record(statement(2, n)).unwrap();
    }
    eventually("the writer to commit everything by itself", || {
        log.stats().events == 5_100
    })
    .await;
    // Batched: far fewer commits than events.
    assert!(log.stats().commits < 200, "{:?}", log.stats());
    log.shutdown().await.unwrap();
    assert!(verify_file(&path).is_ok());
}

#[tokio::test]
async fn the_wal_is_checkpointed_off_the_commit_path() {
    let dir = TempDir::new("writer-checkpoints");
    let path = dir.path().join("audit.db");
    let log = open(&path, Durability::Strict);
    let reader = Connection::open(&path).unwrap();
    // The writer's connection leaves checkpoints to the background thread.
    let before = std::fs::metadata(&path).unwrap().len();
    // Fewer pages than SQLite's own automatic checkpoint waits for.
    for n in 1..=50 {
        log.append(statement(1, n)).await.unwrap();
    }
    // Pages reach the database file without anyone asking for a checkpoint.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&path).unwrap().len() <= before {
        assert!(Instant::now() < deadline, "nothing was checkpointed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seq: i64 = reader
        .query_row("SELECT max(seq) FROM audit_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seq, 50);
}
