//! WAL checkpoints off the commit path. SQLite's automatic checkpoint runs in
//! the connection that commits, so every thousandth page or so one commit —
//! and every strict-mode statement waiting for it — also copies the WAL into
//! the database and flushes both (10–25 ms here, against 0.2 ms for a plain
//! commit). The writer's store turns that off and this thread checkpoints
//! instead, on a connection of its own: a PASSIVE checkpoint never blocks a
//! commit.
//!
//! A checkpoint that runs while commits go on cannot finish, and SQLite only
//! starts the WAL afresh after one that did; so when the WAL has grown past
//! [`LARGE_WAL_FRAMES`] the writer finishes the job itself between two commits,
//! which is quick because this thread has already copied nearly everything.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How often the background checkpoint runs.
const INTERVAL: Duration = Duration::from_millis(100);
/// WAL frames (pages) past which the writer finishes a checkpoint itself.
pub(crate) const LARGE_WAL_FRAMES: i64 = 4_096;

#[derive(Default)]
struct Shared {
    stop: Mutex<bool>,
    wake: Condvar,
    /// Frames in the WAL at the last checkpoint.
    wal_frames: AtomicI64,
}

/// The background checkpoint thread of one store file; stops when dropped.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing `path`; `None` when no connection of its own
    /// can be opened (the store then keeps SQLite's automatic checkpoints).
    pub(crate) fn start(path: &Path, busy_timeout: Duration) -> Option<Checkpointer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).ok()?;
        conn.busy_timeout(busy_timeout).ok()?;
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("vigil-audit-checkpoint".into())
            .spawn(move || run(&conn, &theirs))
            .ok()?;
        Some(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Frames in the WAL when it was last checkpointed.
    pub(crate) fn wal_frames(&self) -> i64 {
        self.shared.wal_frames.load(Ordering::Relaxed)
    }

    /// The writer finished a checkpoint: the WAL starts afresh at its next commit.
    pub(crate) fn finished(&self) {
        self.shared.wal_frames.store(0, Ordering::Relaxed);
    }
}

fn run(conn: &Connection, shared: &Shared) {
    let mut stop = shared.stop.lock().unwrap_or_else(|e| e.into_inner());
    while !*stop {
        stop = shared
            .wake
            .wait_timeout(stop, INTERVAL)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if *stop {
            break;
        }
        // Failures (a busy file, a vanished one) are the writer's to report;
        // the next round tries again.
        if let Ok(wal) = passive_checkpoint(conn) {
            shared.wal_frames.store(wal.frames, Ordering::Relaxed);
        }
    }
}

/// What a checkpoint found.
pub(crate) struct Wal {
    /// Frames in the WAL.
    pub(crate) frames: i64,
    /// Every frame is in the database file: the next commit starts the WAL
    /// afresh.
    pub(crate) complete: bool,
}

/// Runs a PASSIVE checkpoint on `conn`.
pub(crate) fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<Wal> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        let (busy, frames, copied): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        Ok(Wal {
            frames,
            complete: busy == 0 && copied == frames,
        })
    })
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
