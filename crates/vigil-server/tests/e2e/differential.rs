//! The differential test: what the server says it executed against what
//! Vigil's audit trail says it allowed, over generated sessions.
//!
//! A cluster of the test's own logs every statement it executes
//! (`log_statement = 'all'`, as JSON lines). Generated sessions go through
//! Vigil: named and unnamed statements, re-Parse, Close, errors in the middle
//! of batches, pipelining, SQL PREPARE/EXECUTE/DEALLOCATE and DECLARE/FETCH,
//! client encodings and backslashes, functions Vigil cannot see into, and
//! approvals. Then every statement the server executed must be one the
//! audit recorded as allowed (or approved) and run, with the same text, in
//! the same order; so nothing Vigil refused reached the server either.
//!
//! `VIGIL_DIFF_CASES` (default 150) sets how many sessions, `VIGIL_DIFF_SEED`
//! (default 16) the seed; a failure prints both, and proptest shrinks the
//! session to the smallest that still fails.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

use crate::cluster::Cluster;
use crate::harness::*;

const APPROVER_TOKEN: &str = "vigil-e2e-differential-approver";
/// Vigil's own question after unseen code ran (session/defined.rs).
const VERIFY_SQL: &str = "SELECT 'S', name, statement FROM pg_catalog.pg_prepared_statements UNION ALL SELECT 'P', name, statement FROM pg_catalog.pg_cursors UNION ALL SELECT 'R', pg_catalog.current_user()::text, pg_catalog.session_user()::text";
const STAND_IN: &str = "VIGIL_REFUSED_THIS_STATEMENT";

/// Single statements sessions are made of.
const STATEMENTS: &[&str] = &[
    "SELECT balance FROM accounts WHERE id = 1",
    "SELECT $1::int + 1",
    "UPDATE accounts SET balance = balance + 1 WHERE id = 1",
    "UPDATE accounts SET balance = balance + $1::int WHERE id = 1",
    "PREPARE a AS UPDATE accounts SET balance = balance + 1 WHERE id = 1",
    "PREPARE a AS SELECT 1",
    "PREPARE b AS SELECT $1::int",
    "EXECUTE a",
    "EXECUTE b(2)",
    "DEALLOCATE a",
    "DEALLOCATE ALL",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s",
    "ROLLBACK TO SAVEPOINT s",
    "DECLARE c CURSOR FOR SELECT id, balance FROM accounts",
    "DECLARE c CURSOR WITH HOLD FOR SELECT 2",
    "FETCH 1 FROM c",
    "CLOSE c",
    "SELECT 1/0",
    "SELECT 1/(SELECT 0)",
    r"SELECT 'a\' AS x",
    "SELECT 'é' AS e",
    "SET client_encoding = 'LATIN1'",
    "SET client_encoding = 'UTF8'",
    "SELECT secret FROM secrets",
    "DISCARD ALL",
    "SELECT run_sql('DEALLOCATE a')",
    "SELECT run_sql('PREPARE a AS UPDATE accounts SET balance = 0 WHERE id = 1')",
    "SELECT run_sql('SET standard_conforming_strings = off')",
    r"SELECT 'a\' AS x, ' AS x, (SELECT secret FROM secrets) AS y, ' --'",
];

const STATEMENT_NAMES: &[&str] = &["", "a", "a", "b"];
const PORTAL_NAMES: &[&str] = &["", "", "p", "c"];

#[derive(Debug, Clone)]
enum Step {
    Query(String),
    Parse(&'static str, &'static str),
    Bind(&'static str, &'static str, bool),
    Execute(&'static str),
    Close(u8, &'static str),
    Describe(u8, &'static str),
    Sync,
}

/// One write: its steps, and whether to approve what it asked for and send
/// it once more.
#[derive(Debug, Clone)]
struct Write {
    steps: Vec<Step>,
    approve_and_retry: bool,
}

#[derive(Debug, Clone)]
struct Session {
    agent: bool,
    writes: Vec<Write>,
}

fn statement() -> impl Strategy<Value = &'static str> {
    prop::sample::select(STATEMENTS)
}

fn step() -> impl Strategy<Value = Step> {
    let name = || prop::sample::select(STATEMENT_NAMES);
    let portal = || prop::sample::select(PORTAL_NAMES);
    prop_oneof![
        3 => prop::collection::vec(statement(), 1..=3).prop_map(|s| Step::Query(s.join("; "))),
        4 => (name(), statement()).prop_map(|(n, s)| Step::Parse(n, s)),
        4 => (portal(), name(), any::<bool>()).prop_map(|(p, n, param)| Step::Bind(p, n, param)),
        4 => portal().prop_map(Step::Execute),
        1 => (prop::sample::select(&[b'S', b'P'][..]), name()).prop_map(|(k, n)| Step::Close(k, n)),
        1 => (prop::sample::select(&[b'S', b'P'][..]), name()).prop_map(|(k, n)| Step::Describe(k, n)),
        2 => Just(Step::Sync),
    ]
}

fn session() -> impl Strategy<Value = Session> {
    let write = (
        prop::collection::vec(step(), 1..8),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(steps, approve_and_retry)| Write {
            steps,
            approve_and_retry,
        });
    (any::<bool>(), prop::collection::vec(write, 1..10))
        .prop_map(|(agent, writes)| Session { agent, writes })
}

/// The steps of one write, then a Sync and an empty Query, whose
/// EmptyQueryResponse (which nothing else in a session is answered with,
/// and which even a failed transaction gives) ends the write's answers.
fn encode(steps: &[Step]) -> BytesMut {
    let mut out = BytesMut::new();
    for step in steps {
        match step {
            Step::Query(sql) => frontend::query(sql, &mut out).unwrap(),
            Step::Parse(name, sql) => frontend::parse(name, sql, [], &mut out).unwrap(),
            Step::Bind(portal, name, param) => {
                let params: &[&str] = if *param { &["1"] } else { &[] };
                frontend::bind(
                    portal,
                    name,
                    [0i16],
                    params.iter(),
                    |p, buf| {
                        buf.extend_from_slice(p.as_bytes());
                        Ok(IsNull::No)
                    },
                    [0i16],
                    &mut out,
                )
                .map_err(|_| "bind")
                .unwrap()
            }
            Step::Execute(portal) => frontend::execute(portal, 0, &mut out).unwrap(),
            Step::Close(kind, name) => frontend::close(*kind, name, &mut out).unwrap(),
            Step::Describe(kind, name) => frontend::describe(*kind, name, &mut out).unwrap(),
            Step::Sync => frontend::sync(&mut out),
        }
    }
    frontend::sync(&mut out);
    frontend::query("", &mut out).unwrap();
    out
}

/// How a write went.
enum Exchanged {
    Answered(Vec<(u8, Vec<u8>)>),
    /// Vigil closed the session (it can no longer follow it).
    Closed,
}

/// Sends `out` and reads up to the answer to its final empty Query. A
/// session that stops answering is a failure: nothing a client sends may
/// hang it.
fn exchange(client: &mut RawClient, out: &BytesMut) -> Result<Exchanged, String> {
    use std::io::Read;
    if client.send(out).is_err() {
        return Ok(Exchanged::Closed);
    }
    let mut messages = Vec::new();
    let mut marked = false;
    loop {
        let mut header = [0u8; 5];
        match client.stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "no answer within the read timeout; so far: {messages:?}"
                ))
            }
            Err(_) => return Ok(Exchanged::Closed),
        }
        let len = i32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 4];
        if client.stream.read_exact(&mut body).is_err() {
            return Ok(Exchanged::Closed);
        }
        let message = (header[0], body);
        marked |= message.0 == b'I';
        let done = marked && message.0 == b'Z';
        messages.push(message);
        if done {
            return Ok(Exchanged::Answered(messages));
        }
    }
}

/// The approval request ids refuse-mode refusals named.
fn requests(messages: &[(u8, Vec<u8>)]) -> Vec<String> {
    messages
        .iter()
        .filter(|(tag, _)| *tag == b'E')
        .filter_map(|(_, body)| {
            let message = field(body, b'M');
            let rest = message.split("; request ").nth(1)?;
            rest.split_whitespace().next().map(str::to_owned)
        })
        .collect()
}

struct Fixture {
    cluster: Cluster,
    proxy: Proxy,
    /// How far the server's log has been read, and what it held for each
    /// session (by application_name).
    log_read: usize,
    /// The first audit record not read yet.
    audit_from: u64,
}

impl Fixture {
    fn start() -> Fixture {
        let mut cluster = Cluster::init("differential");
        cluster.configure(&format!(
            "log_statement = 'all'\n\
             log_destination = 'jsonlog'\n\
             logging_collector = on\n\
             log_directory = '{}'\n\
             log_filename = 'server'\n\
             log_disconnections = on\n\
             log_parameter_max_length = 0\n",
            cluster.dir.0.join("log").display()
        ));
        cluster.start();
        cluster.admin_sql(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
             INSERT INTO accounts VALUES (1, 100), (2, 200);
             CREATE TABLE secrets (secret text);
             INSERT INTO secrets VALUES ('the-crown-jewels');
             CREATE FUNCTION run_sql(q text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE q; RETURN 1; END $$;",
        );
        let extra = format!(
            r#"
[[rules]]
id = "agent-writes-need-approval"
when = {{ identities = ["agent"], classes = ["write"] }}
action = "review"
approval = "refuse"
approvers = {{ groups = ["dba"], count = 1 }}

[[rules]]
id = "no-secrets"
when = {{ relations = ["secrets", "*.secrets"] }}
action = "deny"

[[admin.tokens]]
name = "alice-laptop"
identity = "alice"
role = "approver"
sha256 = "{}"
"#,
            sha256_hex(APPROVER_TOKEN)
        );
        let mut toml = config_toml("postgres", "", &extra);
        toml = toml.replace(
            &format!("upstream = \"{PG_HOST}:{PG_PORT}\""),
            &format!("upstream = \"127.0.0.1:{}\"", cluster.port),
        );
        let proxy = Proxy::start(&toml);
        Fixture {
            cluster,
            proxy,
            log_read: 0,
            audit_from: 1,
        }
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.cluster.dir.0.join("log").join("server.json")
    }

    /// The server's log entries for session `app`, once it has logged the
    /// session's end.
    fn server_log(&mut self, app: &str) -> Result<Vec<Value>, String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = read_from(&self.log_path(), self.log_read);
            let entries: Vec<Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .filter(|e: &Value| e["application_name"] == app)
                .collect();
            let ended = entries.iter().any(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("disconnection:"))
            });
            if ended {
                return Ok(entries);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the server never logged the end of {app}: {:#?}",
                    entries.iter().map(|e| &e["message"]).collect::<Vec<_>>()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn run_session(fixture: &Fixture, session: &Session, app: &str) -> Result<(), String> {
    let (user, password) = match session.agent {
        true => ("agent", AGENT_PASSWORD),
        false => ("alice", ALICE_PASSWORD),
    };
    let mut client = RawClient::login_with(
        fixture.proxy.port,
        user,
        password,
        &[("application_name", app)],
        &[],
    );
    for write in &session.writes {
        let out = encode(&write.steps);
        let Exchanged::Answered(answers) = exchange(&mut client, &out)? else {
            return Ok(());
        };
        if !write.approve_and_retry {
            continue;
        }
        let asked = requests(&answers);
        if asked.is_empty() {
            continue;
        }
        for id in asked {
            let _ = http(
                "POST",
                &format!(
                    "{}/api/v1/approvals/{id}/approve",
                    fixture.proxy.admin_url()
                ),
                Some(&format!("Bearer {APPROVER_TOKEN}")),
                Some(&serde_json::json!({ "reason": "differential" })),
            );
        }
        if let Exchanged::Closed = exchange(&mut client, &out)? {
            return Ok(());
        }
    }
    let mut out = BytesMut::new();
    frontend::terminate(&mut out);
    let _ = client.send(&out);
    let _ = client.read_to_close();
    Ok(())
}

/// One audited statement of the session, as the check needs it.
#[derive(Debug)]
struct Audited {
    text: String,
    kinds: Vec<String>,
    decision: String,
    /// From its completion: `Some(false)` never ran, `Some(true)` ran,
    /// `None` no completion (refused, or the session ended first).
    ran: Option<bool>,
}

impl Audited {
    /// Allowed to reach the server, and not known not to have.
    fn may_have_run(&self) -> bool {
        match self.decision.as_str() {
            "allow" => self.ran != Some(false),
            // Review: only the attempt that ran (it completed) was approved.
            "review" => self.ran == Some(true),
            _ => false,
        }
    }
}

/// The log file's text from byte `offset` on (a long run's log is large).
fn read_from(path: &std::path::Path, offset: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        if file.seek(SeekFrom::Start(offset as u64)).is_ok() {
            let _ = file.read_to_end(&mut text);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The statements session `app` has in the audit, among the records from
/// `*from` on; `*from` moves past them.
fn audited(proxy: &Proxy, app: &str, from: &mut u64) -> Vec<Audited> {
    proxy.audit_sync();
    let records = audit_records_from(&proxy.audit_store(), *from);
    *from += records.len() as u64;
    let session_ids: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "statement" && r["body"]["intent"]["application_name"] == app)
        .map(|r| &r["body"]["session_id"])
        .collect();
    let Some(session) = session_ids.first().copied() else {
        return Vec::new();
    };
    let mut statements: Vec<(u64, Audited)> = records
        .iter()
        .filter(|r| r["kind"] == "statement" && &r["body"]["session_id"] == session)
        .map(|r| {
            let b = &r["body"];
            (
                b["statement_seq"].as_u64().unwrap(),
                Audited {
                    text: b["text"].as_str().unwrap_or_default().to_owned(),
                    kinds: b["kinds"]
                        .as_array()
                        .map(|k| {
                            k.iter()
                                .filter_map(|k| k.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    decision: b["decision"].as_str().unwrap_or_default().to_owned(),
                    ran: None,
                },
            )
        })
        .collect();
    statements.sort_by_key(|(seq, _)| *seq);
    for r in &records {
        let b = &r["body"];
        if r["kind"] != "statement.completed" || &b["session_id"] != session {
            continue;
        }
        let seq = b["statement_seq"].as_u64().unwrap();
        if let Some((_, s)) = statements.iter_mut().find(|(q, _)| *q == seq) {
            s.ran = Some(b["executed"] != false);
        }
    }
    statements.into_iter().map(|(_, s)| s).collect()
}

/// One execution the server logged: the texts an audit event for it may
/// carry, how many audited statements the text holds, and for an SQL
/// `EXECUTE` the kind of what it ran (the log's `prepare:` detail).
struct Execution {
    message: String,
    candidates: Vec<String>,
    statements: usize,
    runs: Option<String>,
}

/// What the server says it executed, per log entry.
fn executed(log: &[Value]) -> Vec<Execution> {
    let mut out = Vec::new();
    for (i, entry) in log.iter().enumerate() {
        let Some(message) = entry["message"].as_str() else {
            continue;
        };
        // In a failed transaction the server logs what it was sent, then
        // refuses to run it.
        if log
            .get(i + 1)
            .is_some_and(|next| next["state_code"] == "25P02")
        {
            continue;
        }
        if let Some(text) = message.strip_prefix("statement: ") {
            if text == STAND_IN || text == VERIFY_SQL {
                continue;
            }
            let Ok(analysis) = vigil_sql::analyze_uncached(text) else {
                continue;
            };
            let texts: Vec<String> = analysis.statements.iter().map(|s| s.text.clone()).collect();
            let n = texts.len();
            // An empty Query runs nothing.
            if n == 0 {
                continue;
            }
            let runs = entry["detail"]
                .as_str()
                .and_then(|d| d.strip_prefix("prepare: "))
                .and_then(vigil_sql::prepared_statement_text)
                .and_then(|inner| vigil_sql::analyze_uncached(inner).ok())
                .and_then(|a| a.statements.first().map(|s| s.kind.to_string()));
            out.push(Execution {
                message: message.to_owned(),
                candidates: texts,
                statements: n,
                runs,
            });
            continue;
        }
        let rest = message
            .strip_prefix("execute fetch from ")
            .or_else(|| message.strip_prefix("execute "));
        let Some(rest) = rest else { continue };
        let Some((names, text)) = rest.split_once(": ") else {
            continue;
        };
        let portal = names.split_once('/').map(|(_, p)| p);
        let mut candidates = Vec::new();
        if let Some(portal) = portal {
            candidates.push(format!("<execute of cursor {portal:?}>"));
        }
        if let Ok(analysis) = vigil_sql::analyze_uncached(text) {
            for s in &analysis.statements {
                candidates.push(s.text.clone());
                if let Some(inner) = vigil_sql::prepared_statement_text(&s.text) {
                    candidates.push(inner.to_owned());
                }
            }
        }
        out.push(Execution {
            message: message.to_owned(),
            candidates,
            statements: 1,
            runs: None,
        });
    }
    out
}

/// Every execution the server logged consumes, in order, an audited
/// statement that may have run with a matching text.
fn check(session: &Session, app: &str, log: &[Value], audit: &[Audited]) -> Result<(), String> {
    let mut cursor = 0;
    for Execution {
        message,
        candidates,
        statements,
        runs,
    } in executed(log)
    {
        // The first statement of what ran is a statement that may have
        // run; an EXECUTE among the text's statements ran what the log's
        // `prepare:` detail says.
        let found = (cursor..audit.len()).find(|&at| {
            let group = &audit[at..(at + statements).min(audit.len())];
            group[0].may_have_run()
                && candidates.contains(&group[0].text)
                && runs.as_ref().is_none_or(|kind| {
                    // The log names what the EXECUTE's name held when the
                    // text arrived; if the EXECUTE never ran, that is moot.
                    let executes = group
                        .iter()
                        .filter(|a| a.kinds.iter().any(|k| k == "execute"));
                    group.iter().any(|a| a.kinds.contains(kind))
                        || executes.clone().count() > 0
                            && executes.into_iter().all(|a| a.ran == Some(false))
                })
        });
        match found {
            Some(at) => cursor = (at + statements).min(audit.len()),
            None => {
                return Err(format!(
                    "{app}: the server ran {message:?}, which the audit does not show allowed after #{cursor}\n\
                     session: {session:#?}\naudit: {audit:#?}\nserver: {:#?}",
                    log.iter().map(|e| &e["message"]).collect::<Vec<_>>()
                ))
            }
        }
    }
    Ok(())
}

#[test]
fn every_statement_the_server_ran_is_one_vigil_allowed() {
    let cases: u32 = std::env::var("VIGIL_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let seed: u64 = std::env::var("VIGIL_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let fixture = std::cell::RefCell::new(Fixture::start());
    static CASE: AtomicU32 = AtomicU32::new(0);
    let result = runner.run(&session(), |session| {
        let app = format!("diff-{}", CASE.fetch_add(1, Ordering::Relaxed));
        let mut fixture = fixture.borrow_mut();
        if std::env::var_os("VIGIL_DIFF_SHOW").is_some() {
            eprintln!("{app}: {session:?}");
        }
        let started = Instant::now();
        run_session(&fixture, &session, &app)
            .map_err(|e| TestCaseError::fail(format!("{app}: {e}\nsession: {session:#?}")))?;
        if std::env::var_os("VIGIL_DIFF_SHOW").is_some() {
            eprintln!("{app}: ran in {:?}", started.elapsed());
        }
        let log = fixture
            .server_log(&app)
            .map_err(|e| TestCaseError::fail(format!("{e}\nsession: {session:#?}")))?;
        let fixture = &mut *fixture;
        let audit = audited(&fixture.proxy, &app, &mut fixture.audit_from);
        check(&session, &app, &log, &audit).map_err(TestCaseError::fail)?;
        // Each session starts from the same data.
        fixture
            .cluster
            .admin_sql("UPDATE accounts SET balance = id * 100");
        let read = std::fs::metadata(fixture.log_path()).map_or(0, |m| m.len() as usize);
        fixture.log_read = read;
        Ok(())
    });
    if let Err(error) = result {
        panic!(
            "differential test failed (VIGIL_DIFF_SEED={seed}, VIGIL_DIFF_CASES={cases}): {error}"
        );
    }
}
