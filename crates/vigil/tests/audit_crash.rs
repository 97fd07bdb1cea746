//! The audit trail survives `kill -9` in the middle of a load: every row the
//! database holds has a committed `statement` event, the chain verifies, and a
//! restarted `vigil serve` continues it.
//!
//! Needs the local PostgreSQL (127.0.0.1:5432, trust auth for `postgres`); the
//! test makes a database of its own and drops it at the end.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_postgres::{Client, NoTls};
use vigil_audit::open_existing_store;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// The one statement the extended sessions prepare; its events carry this text.
const PREPARED_INSERT: &str = "INSERT INTO crash VALUES ($1, $2)";
/// Sessions 0..SIMPLE send literal inserts; SIMPLE..SESSIONS use PREPARED_INSERT.
const SIMPLE: i32 = 3;
const SESSIONS: i32 = 6;
/// How long the load runs before the proxy is killed.
const LOAD: Duration = Duration::from_millis(1500);
/// Any single step (connect, statement, process start or stop) that takes
/// longer than this is a failure, not a slow machine.
const STEP: Duration = Duration::from_secs(10);
/// Fewer acknowledged inserts than this and the kill did not land in a load.
const MIN_ROWS: usize = 1000;

/// What the test owns outside itself: the database, the scratch folder and a
/// running proxy. Dropped on success and on panic alike.
struct Crash {
    dir: PathBuf,
    database: String,
    vigil: Option<Child>,
}

impl Crash {
    fn new() -> Crash {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("vigil-audit-crash-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let database = format!("vigil_audit_crash_{pid}");
        let crash = Crash {
            dir,
            database,
            vigil: None,
        };
        crash.admin_sql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            crash.database
        ));
        let out = crash.admin_sql(&format!("CREATE DATABASE {}", crash.database));
        assert!(out.status.success(), "{}", text(&out.stderr));
        crash
    }

    /// One statement as `postgres` on the maintenance database, directly.
    fn admin_sql(&self, sql: &str) -> Output {
        Command::new("psql")
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1"])
            .arg("host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5")
            .args(["-c", sql])
            .output()
            .unwrap()
    }

    fn store_path(&self) -> PathBuf {
        self.dir.join("audit.db")
    }

    fn store_url(&self) -> String {
        format!("sqlite://{}", self.store_path().display())
    }

    /// The quickstart, listening on `port`, proxying this test's database as
    /// `demo`, with the audit store in the scratch folder.
    fn write_config(&self, port: u16) -> PathBuf {
        let quickstart = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.toml"),
        )
        .unwrap();
        // The admin API on a port of its own: tests run side by side.
        let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|probe| probe.local_addr())
            .map(|address| address.port())
            .unwrap();
        let served = quickstart
            .replace("127.0.0.1:6432", &format!("127.0.0.1:{port}"))
            .replace("127.0.0.1:9187", &format!("127.0.0.1:{admin_port}"))
            .replace(
                "database = \"vigil_demo\"",
                &format!("database = \"{}\"", self.database),
            );
        // The quickstart's own [audit] section, pointed at the scratch folder.
        let default_store = "store = \"sqlite://vigil-audit.db\"";
        assert!(served.contains(&self.database), "quickstart changed shape");
        assert!(served.contains(default_store), "quickstart changed shape");
        assert!(
            served.contains("mode = \"strict\""),
            "quickstart changed shape"
        );
        let config = served.replace(default_store, &format!("store = \"{}\"", self.store_url()));
        let path = self.dir.join("vigil.toml");
        std::fs::write(&path, config).unwrap();
        path
    }

    /// Starts `vigil serve` and waits for it to listen.
    fn serve(&mut self, config: &Path) -> mpsc::Receiver<String> {
        assert!(self.vigil.is_none());
        let mut child = Command::new(VIGIL)
            .args(["serve", "--config"])
            .arg(config)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        self.vigil = Some(child);
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + STEP;
        loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("vigil says it is listening");
            if line.contains("vigil listening") {
                return lines;
            }
        }
    }

    fn vigil_pid(&self) -> u32 {
        self.vigil.as_ref().expect("vigil runs").id()
    }

    /// Waits for the proxy to exit and returns how it did.
    fn reap(&mut self) -> std::process::ExitStatus {
        let mut child = self.vigil.take().expect("vigil runs");
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("vigil did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn verify(&self) -> String {
        let out = Command::new(VIGIL)
            .args(["audit", "verify", "--store", &self.store_url()])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "vigil audit verify:\nstdout:\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

impl Drop for Crash {
    fn drop(&mut self) {
        if let Some(mut child) = self.vigil.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.admin_sql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.database
        ));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// A connection; `application_name` lets the test tell sessions apart in the
/// audit trail (statement events carry it as intent).
async fn connect(conninfo: &str) -> Client {
    let (client, connection) = tokio::time::timeout(STEP, tokio_postgres::connect(conninfo, NoTls))
        .await
        .unwrap_or_else(|_| panic!("connecting to {conninfo} timed out"))
        .unwrap_or_else(|e| panic!("connecting to {conninfo}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn connect_as_alice(port: u16, application_name: &str) -> Client {
    connect(&format!(
        "host=127.0.0.1 port={port} dbname=demo user=alice password=alice-demo \
         application_name={application_name}"
    ))
    .await
}

fn application_name(session: i32) -> String {
    format!("crash-{session}")
}

/// The id of a session's `n`th insert: unique across sessions.
fn row_id(session: i32, n: u64) -> i64 {
    i64::from(session) * 1_000_000_000 + n as i64
}

fn literal_insert(id: i64, session: i32) -> String {
    format!("INSERT INTO crash VALUES ({id}, {session})")
}

/// Inserts as `session` until a statement fails; counts the acknowledged ones
/// in `acked`. Returns the error that ended the loop.
async fn load(client: Client, session: i32, acked: Arc<AtomicU64>) -> String {
    let prepared = if session >= SIMPLE {
        let prepared = tokio::time::timeout(STEP, client.prepare(PREPARED_INSERT)).await;
        Some(prepared.expect("prepare answers").unwrap())
    } else {
        None
    };
    let mut n = 0u64;
    loop {
        let id = row_id(session, n);
        let sent = async {
            match &prepared {
                Some(statement) => client.execute(statement, &[&id, &session]).await.map(drop),
                // Both ways of sending a simple Query.
                None if session % 2 == 0 => {
                    client.batch_execute(&literal_insert(id, session)).await
                }
                None => client
                    .simple_query(&literal_insert(id, session))
                    .await
                    .map(drop),
            }
        };
        match tokio::time::timeout(STEP, sent).await {
            Ok(Ok(())) => {
                n += 1;
                acked.store(n, Ordering::Relaxed);
            }
            Ok(Err(e)) => return e.to_string(),
            Err(_) => return "timed out".to_owned(),
        }
    }
}

/// A `statement` event as the test needs it.
struct StatementEvent {
    seq: u64,
    text: String,
    application_name: Option<String>,
}

fn statement_events(store_url: &str) -> Vec<StatementEvent> {
    let store = open_existing_store(store_url).unwrap();
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let page = store.scan(from, 10_000).unwrap();
        let Some(last) = page.last() else {
            return events;
        };
        from = last.seq + 1;
        for stored in &page {
            let record: Value = serde_json::from_str(&stored.canonical).unwrap();
            if record["kind"] != "statement" {
                continue;
            }
            let body = &record["body"];
            events.push(StatementEvent {
                seq: stored.seq,
                text: body["text"].as_str().unwrap().to_owned(),
                application_name: body["intent"]["application_name"]
                    .as_str()
                    .map(str::to_owned),
            });
        }
    }
}

/// Waits until no backend but the caller's works on the test database, so
/// that inserts the proxy had forwarded when it died have finished.
async fn settle(direct: &Client, database: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        let others: i64 = tokio::time::timeout(
            STEP,
            direct.query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&database],
            ),
        )
        .await
        .expect("pg_stat_activity answers")
        .unwrap()
        .get(0);
        if others == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{others} backends still on {database}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn every_row_has_its_audit_event_after_kill_9_and_the_chain_continues() {
    let mut crash = Crash::new();
    let port = free_port();
    let config = crash.write_config(port);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    crash.serve(&config);
    let acked: Vec<Arc<AtomicU64>> = (0..SESSIONS).map(|_| Arc::default()).collect();
    let ended = runtime.block_on(async {
        let setup = connect_as_alice(port, "crash-setup").await;
        tokio::time::timeout(
            STEP,
            setup.batch_execute("CREATE TABLE crash(id bigint primary key, session int)"),
        )
        .await
        .unwrap()
        .unwrap();
        drop(setup);

        let mut clients = Vec::new();
        for session in 0..SESSIONS {
            clients.push(connect_as_alice(port, &application_name(session)).await);
        }
        let loads: Vec<_> = clients
            .into_iter()
            .zip(0..SESSIONS)
            .map(|(client, session)| {
                tokio::spawn(load(client, session, acked[session as usize].clone()))
            })
            .collect();
        tokio::time::sleep(LOAD).await;
        crash.vigil.as_mut().unwrap().kill().unwrap();
        let mut ended = Vec::new();
        for task in loads {
            let error = tokio::time::timeout(STEP, task)
                .await
                .expect("a client loop goes on after the proxy died")
                .unwrap();
            ended.push(error);
        }
        ended
    });
    let status = crash.reap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status}"
    );
    let acked: Vec<u64> = acked.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    println!("acknowledged inserts per session: {acked:?}");
    println!("client errors after the kill: {ended:?}");

    // What PostgreSQL holds, read directly.
    let rows: Vec<(i64, i32)> = runtime.block_on(async {
        let direct = connect(&format!(
            "host=127.0.0.1 port=5432 user=postgres dbname={}",
            crash.database
        ))
        .await;
        settle(&direct, &crash.database).await;
        tokio::time::timeout(
            STEP,
            direct.query("SELECT id, session FROM crash ORDER BY id", &[]),
        )
        .await
        .expect("the rows are read")
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
    });
    let mut rows_per_session = vec![0u64; SESSIONS as usize];
    let mut last_per_session = vec![None::<u64>; SESSIONS as usize];
    for &(id, session) in &rows {
        let n = (id - row_id(session, 0)) as u64;
        rows_per_session[session as usize] += 1;
        let last = &mut last_per_session[session as usize];
        *last = Some(last.map_or(n, |l| l.max(n)));
    }
    println!("rows per session: {rows_per_session:?}");
    for session in 0..SESSIONS as usize {
        assert!(acked[session] > 0, "session {session} inserted nothing");
        // Each session has at most one insert in flight: acknowledged ones
        // are there, and at most one more (sent, not yet answered).
        let (acked, rows) = (acked[session], rows_per_session[session]);
        assert!(
            rows == acked || rows == acked + 1,
            "session {session}: {acked} inserts acknowledged, {rows} rows"
        );
    }
    assert!(
        rows.len() >= MIN_ROWS,
        "only {} rows: the kill did not land in a load",
        rows.len()
    );

    // Right after the crash the chain verifies.
    let verified = crash.verify();
    println!("after the kill: {}", verified.trim());

    let events = statement_events(&crash.store_url());
    let last_seq_before_restart = events.last().map_or(0, |e| e.seq);
    let simple_texts: HashSet<&str> = events
        .iter()
        .filter(|e| e.text.starts_with("INSERT INTO crash VALUES (") && e.text != PREPARED_INSERT)
        .map(|e| e.text.as_str())
        .collect();
    let mut prepared_per_session: BTreeMap<i32, u64> = BTreeMap::new();
    for event in events.iter().filter(|e| e.text == PREPARED_INSERT) {
        let session = (SIMPLE..SESSIONS)
            .find(|&s| event.application_name.as_deref() == Some(&application_name(s)))
            .unwrap_or_else(|| {
                panic!(
                    "seq {}: prepared insert from {:?}",
                    event.seq, event.application_name
                )
            });
        *prepared_per_session.entry(session).or_default() += 1;
    }
    println!(
        "statement events: {} in all, {} literal inserts, prepared inserts per session {:?}",
        events.len(),
        simple_texts.len(),
        prepared_per_session
    );
    let unaudited: Vec<&(i64, i32)> = rows
        .iter()
        .filter(|&&(id, session)| {
            session < SIMPLE && !simple_texts.contains(literal_insert(id, session).as_str())
        })
        .collect();
    assert!(
        unaudited.is_empty(),
        "{} rows of simple sessions have no statement event, first {:?}",
        unaudited.len(),
        &unaudited[..unaudited.len().min(10)]
    );
    for session in SIMPLE..SESSIONS {
        // The nth Execute of a session inserts row n; it was forwarded only
        // after its event and those of the Executes before it were stored.
        let events = prepared_per_session.get(&session).copied().unwrap_or(0);
        let rows = rows_per_session[session as usize];
        let needed = last_per_session[session as usize].map_or(0, |n| n + 1);
        assert!(
            events >= rows && events >= needed,
            "extended session {session}: {events} statement events, {rows} rows (last row {needed})"
        );
    }

    // A restart continues the chain.
    let lines = crash.serve(&config);
    runtime.block_on(async {
        let client = connect_as_alice(port, "crash-after").await;
        let inserted =
            tokio::time::timeout(STEP, client.simple_query(&literal_insert(-1, SESSIONS)))
                .await
                .unwrap()
                .unwrap();
        assert!(!inserted.is_empty());
    });
    let term = Command::new("kill")
        .args(["-TERM", &crash.vigil_pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = crash.reap();
    let log: Vec<String> = lines.try_iter().collect();
    assert!(status.success(), "{status}\n{}", log.join("\n"));
    let verified = crash.verify();
    println!("after the restart: {}", verified.trim());
    let after = statement_events(&crash.store_url());
    let new_event = after
        .iter()
        .find(|e| e.text == literal_insert(-1, SESSIONS))
        .expect("the statement after the restart has its event");
    assert!(
        new_event.seq > last_seq_before_restart,
        "seq {} after the restart, {} before",
        new_event.seq,
        last_seq_before_restart
    );
}
