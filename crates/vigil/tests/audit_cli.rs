//! `vigil audit …` as an operator runs it, against real stores written with
//! vigil-audit: keygen, tail (and follow), search, verify on an untouched log and
//! on logs tampered with behind the store's back, anchors, segments, export.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vigil_audit::chain::{link, ChainHash};
use vigil_audit::{
    canonical, generate_key, load_signing_key, public_key_path, AdminAction, Approval, AuditEvent,
    AuditLog, AuditOptions, AuthFailure, ConfigReload, Decision, Redaction, SessionEnd,
    SessionInfo, SqliteStore, Statement, StatementCompleted, Store,
};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// A folder of its own per test, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("vigil-audit-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn vigil(args: &[&str]) -> Output {
    Command::new(VIGIL).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Asserts the exit code and returns standard output.
fn expect(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

// ---------------------------------------------------------------------------
// The log the tests read: three sessions, every kind of event, three phases
// written some milliseconds apart so that time filters have edges to find.

fn session(id: u64, identity: &str, database: &str) -> SessionInfo {
    SessionInfo {
        session_id: id,
        identity: identity.into(),
        groups: vec!["staff".into()],
        auth_method: "scram-sha-256".into(),
        client_addr: format!("10.0.0.{id}:5{id}000"),
        tls: true,
        application_name: Some("psql".into()),
        database: database.into(),
        upstream_role: None,
    }
}

/// A statement of `who` (session id, identity, database).
fn statement(
    who: (u64, &str, &str),
    n: u64,
    sql: &str,
    relations: &[&str],
    decision: Decision,
    rules: &[&str],
    fingerprint: &str,
) -> AuditEvent {
    AuditEvent::Statement(Statement {
        session_id: who.0,
        statement_seq: n,
        identity: who.1.into(),
        database: who.2.into(),
        text: sql.into(),
        redaction: Redaction::Keep,
        fingerprint: fingerprint.into(),
        client_encoding: None,
        kinds: vec![sql.split(' ').next().unwrap().to_lowercase()],
        class: if sql.starts_with("SELECT") {
            "read"
        } else {
            "write"
        }
        .into(),
        relations: relations.iter().map(|r| r.to_string()).collect(),
        decision,
        rule_ids: rules.iter().map(|r| r.to_string()).collect(),
        masked_columns: vec![],
        approval_id: None,
        intent: BTreeMap::new(),
    })
}

fn completed(session_id: u64, n: u64, rows: Option<u64>, sqlstate: Option<&str>) -> AuditEvent {
    AuditEvent::StatementCompleted(StatementCompleted {
        session_id,
        statement_seq: n,
        rows,
        duration_us: 1200 + n,
        executed: true,
        sqlstate: sqlstate.map(str::to_owned),
        bytes: 64 * n,
        masked_values: Default::default(),
    })
}

fn end(info: SessionInfo, statements: u64) -> AuditEvent {
    AuditEvent::SessionEnd(SessionEnd {
        session: info,
        duration_us: 5_000_000,
        statements,
        bytes_in: 900,
        bytes_out: 4000,
    })
}

fn approval(action: &str, by: &str) -> AuditEvent {
    AuditEvent::Approval(Approval {
        action: action.into(),
        approval_id: "ap-1".into(),
        fields: BTreeMap::from([("by".into(), json!(by))]),
    })
}

const ALICE: (u64, &str, &str) = (1, "alice", "prod");
const BOB: (u64, &str, &str) = (2, "bob", "analytics");
const CAROL: (u64, &str, &str) = (3, "carol", "prod");

/// The events, in three phases; seq = position over all phases + 1.
fn phases() -> Vec<Vec<AuditEvent>> {
    let mut first = vec![
        AuditEvent::SessionStart(session(ALICE.0, ALICE.1, ALICE.2)),
        AuditEvent::SessionStart(session(BOB.0, BOB.1, BOB.2)),
        AuditEvent::AuthFailure(AuthFailure {
            user: "mallory".into(),
            client_addr: "203.0.113.9:4000".into(),
            reason: "password authentication failed".into(),
            database: Some("prod".into()),
        }),
    ];
    for i in 1..=5 {
        first.push(statement(
            ALICE,
            i,
            &format!("SELECT * FROM users WHERE id = {i}"),
            &["public.users:read"],
            Decision::Allow,
            &[],
            "fp-user-by-id",
        ));
        first.push(completed(ALICE.0, i, Some(1), None));
        first.push(statement(
            BOB,
            i,
            &format!("SELECT count(*) FROM sales.orders WHERE day = {i}"),
            &["sales.orders:read"],
            Decision::Allow,
            &[],
            "fp-orders-by-day",
        ));
        first.push(completed(BOB.0, i, Some(1), None));
    }
    let second = vec![
        statement(
            BOB,
            6,
            "DELETE FROM sales.orders",
            &["sales.orders:write"],
            Decision::Deny,
            &["no-unbounded-delete"],
            "fp-delete-orders",
        ),
        statement(
            ALICE,
            6,
            "UPDATE users SET email = 'a@example.com' WHERE id = 1",
            &["public.users:write"],
            Decision::Review,
            &["review-pii"],
            "fp-update-user",
        ),
        approval("requested", "alice"),
        approval("granted", "dana"),
        statement(
            ALICE,
            7,
            "UPDATE users SET email = 'a@example.com' WHERE id = 1",
            &["public.users:write"],
            Decision::Allow,
            &["review-pii"],
            "fp-update-user",
        ),
        completed(ALICE.0, 7, Some(1), None),
        AuditEvent::ConfigReload(ConfigReload {
            ok: true,
            message: "12 rules".into(),
        }),
        AuditEvent::SessionStart(session(CAROL.0, CAROL.1, CAROL.2)),
        statement(
            CAROL,
            1,
            "SELECT name FROM hr.users",
            &["hr.users:read"],
            Decision::Allow,
            &[],
            "fp-hr-names",
        ),
        completed(CAROL.0, 1, Some(30), None),
    ];
    let third = vec![
        statement(
            CAROL,
            2,
            "SELECT * FROM hr.missing",
            &["hr.missing:read"],
            Decision::Allow,
            &[],
            "fp-hr-missing",
        ),
        completed(CAROL.0, 2, None, Some("42P01")),
        AuditEvent::AdminAction(AdminAction {
            actor: "root".into(),
            action: "audit.anchor".into(),
            target: Some("anchor.json".into()),
            detail: BTreeMap::new(),
        }),
        end(session(ALICE.0, ALICE.1, ALICE.2), 7),
        end(session(BOB.0, BOB.1, BOB.2), 6),
        end(session(CAROL.0, CAROL.1, CAROL.2), 2),
    ];
    vec![first, second, third]
}

fn all_events() -> Vec<AuditEvent> {
    phases().into_iter().flatten().collect()
}

/// Seqs of the fixture's events whose kind and body satisfy `pred`.
fn seqs_where(pred: impl Fn(&str, &Value) -> bool) -> Vec<u64> {
    all_events()
        .iter()
        .zip(1..)
        .filter(|(e, _)| pred(&e.kind(), &e.body().unwrap()))
        .map(|(_, seq)| seq)
        .collect()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn options() -> AuditOptions {
    AuditOptions {
        checkpoint_every_events: 10,
        checkpoint_interval: None,
        ..AuditOptions::default()
    }
}

/// Appends `phases` to the store at `store` (creating it), one event per commit,
/// pausing between phases so that each phase starts at a later time.
fn write(store: &Path, key: &Path, phases: &[Vec<AuditEvent>]) {
    block_on(async {
        let log =
            AuditLog::open_sqlite(store, Some(load_signing_key(key).unwrap()), options()).unwrap();
        for (i, phase) in phases.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for event in phase {
                log.append(event.clone()).await.unwrap();
            }
        }
        log.shutdown().await.unwrap();
    });
}

/// A scratch folder with a signing key (`audit.key`, `audit.key.pub`) and the
/// fixture's log in `audit.db`.
struct Fixture {
    dir: Scratch,
    store: PathBuf,
    key: PathBuf,
    public: PathBuf,
    events: u64,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let dir = Scratch::new(name);
        let key = dir.path("audit.key");
        generate_key(&key).unwrap();
        let store = dir.path("audit.db");
        write(&store, &key, &phases());
        Fixture {
            public: public_key_path(&key),
            events: all_events().len() as u64,
            dir,
            store,
            key,
        }
    }

    fn audit(&self, command: &str, args: &[&str]) -> Output {
        let mut all = vec!["audit", command, "--store", s(&self.store)];
        all.extend_from_slice(args);
        vigil(&all)
    }

    fn verify(&self, args: &[&str]) -> Output {
        let mut all = vec!["--key", s(&self.public)];
        all.extend_from_slice(args);
        self.audit("verify", &all)
    }

    /// Edits the store behind its back.
    fn tamper(&self, sql: &str) {
        rusqlite::Connection::open(&self.store)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }

    /// The record times, by seq.
    fn times(&self) -> Vec<String> {
        let store = SqliteStore::open_existing(&self.store).unwrap();
        store
            .scan(0, 1000)
            .unwrap()
            .into_iter()
            .map(|r| r.time)
            .collect()
    }
}

/// The seq of every JSON line in `out`.
fn seqs(out: &str) -> Vec<u64> {
    out.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["seq"].as_u64().unwrap()
        })
        .collect()
}

// ---------------------------------------------------------------------------

#[test]
fn keygen_writes_a_private_key_and_its_public_half_and_never_overwrites() {
    let dir = Scratch::new("keygen");
    let key = dir.path("audit.key");
    let out = expect(&vigil(&["audit", "keygen", s(&key)]), 0);
    let public = public_key_path(&key);
    assert!(out.contains(s(&key)) && out.contains(s(&public)), "{out}");
    let id = vigil_audit::keyfile::key_id(&vigil_audit::load_verifying_key(&public).unwrap());
    assert!(out.contains(&format!("key id      {id}")), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        load_signing_key(&key).unwrap().verifying_key(),
        vigil_audit::load_verifying_key(&public).unwrap()
    );

    let before = std::fs::read(&key).unwrap();
    let again = vigil(&["audit", "keygen", s(&key)]);
    expect(&again, 2);
    assert!(text(&again.stderr).contains("already exists; refusing to overwrite"));
    assert_eq!(std::fs::read(&key).unwrap(), before);
    // A lone .pub is not overwritten either.
    std::fs::remove_file(&key).unwrap();
    expect(&vigil(&["audit", "keygen", s(&key)]), 2);
    assert!(!key.exists());
}

#[test]
fn tail_prints_the_last_events_oldest_first() {
    let f = Fixture::new("tail");
    let n = f.events;
    let out = expect(&f.audit("tail", &["-n", "3", "--format", "jsonl"]), 0);
    assert_eq!(seqs(&out), vec![n - 2, n - 1, n]);
    // The records as hashed, the same lines as an export.
    assert!(expect(&f.audit("export", &[]), 0).ends_with(&out));

    let out = expect(&f.audit("tail", &["-n", "5"]), 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    for (line, seq) in lines.iter().zip(n - 4..) {
        assert!(line.starts_with(&format!("{seq} ")), "{line}");
    }
    // The readable form: time, kind, then what matters for the kind.
    assert!(
        lines[0]
            .contains(" statement.completed session=3 statement=2 sqlstate=42P01 duration=1.2ms"),
        "{out}"
    );
    assert!(
        lines[1].contains(" admin.action actor=root action=audit.anchor target=anchor.json"),
        "{out}"
    );
    assert!(
        lines[4].contains(" session.end session=3 identity=carol database=prod statements=2"),
        "{out}"
    );

    // Twenty by default, and never more than there are.
    assert_eq!(expect(&f.audit("tail", &[]), 0).lines().count(), 20);
    let out = expect(&f.audit("tail", &["-n", "1000", "--format", "jsonl"]), 0);
    assert_eq!(seqs(&out), (1..=n).collect::<Vec<_>>());
}

#[test]
fn tail_follow_prints_events_committed_after_it_started() {
    let f = Fixture::new("follow");
    let n = f.events;
    let mut child = Command::new(VIGIL)
        .args(["audit", "tail", "--store", s(&f.store), "-n", "2", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let next_line = || {
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("vigil audit tail -f printed nothing in time")
    };
    assert!(next_line().starts_with(&format!("{} ", n - 1)));
    assert!(next_line().starts_with(&format!("{n} ")));

    let late = statement(
        BOB,
        7,
        "SELECT 'written after tail -f started'",
        &[],
        Decision::Allow,
        &[],
        "fp-late",
    );
    write(&f.store, &f.key, &[vec![late]]);
    let line = next_line();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with(&format!("{} ", n + 1)), "{line}");
    assert!(
        line.contains(r#"identity=bob database=analytics decision=allow"#)
            && line.contains(r#"text="SELECT 'written after tail -f started'""#),
        "{line}"
    );
}

#[test]
fn search_filters_return_exactly_the_matching_events() {
    let f = Fixture::new("search");
    let search = |args: &[&str]| {
        let mut all = vec!["--format", "jsonl"];
        all.extend_from_slice(args);
        seqs(&expect(&f.audit("search", &all), 0))
    };
    let field = |body: &Value, key: &str| body[key].as_str().map(str::to_owned);
    let relations = |body: &Value| -> Vec<String> {
        body["relations"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|x| x.as_str().unwrap().rsplit_once(':').unwrap().0.to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };

    let bob = seqs_where(|_, b| field(b, "identity").as_deref() == Some("bob"));
    assert_eq!(bob.len(), 8);
    assert_eq!(search(&["--identity", "bob"]), bob);
    // auth.failure is found by its user.
    assert_eq!(search(&["--identity", "mallory"]), vec![3]);
    assert_eq!(
        search(&["--database", "analytics"]),
        seqs_where(|_, b| field(b, "database").as_deref() == Some("analytics"))
    );
    assert_eq!(
        search(&["--table", "sales.orders"]),
        seqs_where(|_, b| relations(b).contains(&"sales.orders".to_owned()))
    );
    let any_users = seqs_where(|_, b| {
        relations(b)
            .iter()
            .any(|r| r == "public.users" || r == "hr.users")
    });
    assert_eq!(any_users.len(), 8);
    assert_eq!(search(&["--table", "users"]), any_users);
    assert_eq!(search(&["--table", "hr.users"]).len(), 1);
    let denied = seqs_where(|_, b| field(b, "decision").as_deref() == Some("deny"));
    assert_eq!(denied, vec![24]);
    assert_eq!(search(&["--decision", "deny"]), denied);
    assert_eq!(
        search(&["--decision", "review"]),
        seqs_where(|_, b| field(b, "decision").as_deref() == Some("review"))
    );
    let updates = seqs_where(|_, b| field(b, "fingerprint").as_deref() == Some("fp-update-user"));
    assert_eq!(updates.len(), 2);
    assert_eq!(search(&["--fingerprint", "fp-update-user"]), updates);
    assert_eq!(
        search(&["--kind", "statement.completed", "--identity", "nobody"]),
        Vec::<u64>::new()
    );
    assert_eq!(
        search(&["--kind", "approval.granted"]),
        seqs_where(|k, _| k == "approval.granted")
    );
    assert_eq!(
        search(&["--database", "prod", "--decision", "allow", "--limit", "2"]),
        {
            let all = seqs_where(|_, b| {
                field(b, "database").as_deref() == Some("prod")
                    && field(b, "decision").as_deref() == Some("allow")
            });
            all[all.len() - 2..].to_vec()
        }
    );

    // The second phase, by its first record's time and the third phase's first.
    let times = f.times();
    let phases = phases();
    let second_start = phases[0].len();
    let third_start = second_start + phases[1].len();
    let between = search(&[
        "--since",
        &times[second_start],
        "--until",
        &times[third_start],
    ]);
    assert_eq!(
        between,
        (second_start as u64 + 1..=third_start as u64).collect::<Vec<_>>()
    );
    assert_eq!(
        search(&["--until", &times[second_start]]).len(),
        second_start
    );
    assert_eq!(search(&["--since", "2999-01-01"]), Vec::<u64>::new());
    let bad = f.audit("search", &["--since", "yesterday"]);
    expect(&bad, 2);
    assert!(
        text(&bad.stderr).contains("--since: invalid time \"yesterday\""),
        "{}",
        text(&bad.stderr)
    );

    let out = expect(&f.audit("search", &["--kind", "approval.granted"]), 0);
    assert!(
        out.trim_end()
            .ends_with(" approval.granted approval=ap-1 by=dana"),
        "{out}"
    );
    // The readable form names the decision, the rule and the statement.
    let out = expect(&f.audit("search", &["--decision", "deny"]), 0);
    assert!(
        out.starts_with("24 ")
            && out.contains(" statement session=2 statement=6 identity=bob database=analytics decision=deny rules=no-unbounded-delete class=write relations=sales.orders:write")
            && out.trim_end().ends_with(r#"text="DELETE FROM sales.orders""#),
        "{out}"
    );
}

#[test]
fn verify_passes_an_untouched_log_with_the_key_of_its_config() {
    let f = Fixture::new("verify-ok");
    let n = f.events;
    let out = expect(&f.verify(&[]), 0);
    assert!(
        out.contains(&format!(
            "OK: {n} records (seq 1 to {n}), 4 checkpoints verified"
        )),
        "{out}"
    );

    // --config names the store and, through signing_key, the public key.
    let config = f.dir.path("vigil.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:6432\"\n\
         [[databases]]\nname = \"prod\"\nupstream = \"127.0.0.1:5432\"\ndatabase = \"postgres\"\nuser = \"postgres\"\n\
         [audit]\nstore = \"sqlite://audit.db\"\nsigning_key = \"audit.key\"\n",
    )
    .unwrap();
    let out = expect(&vigil(&["audit", "verify", "--config", s(&config)]), 0);
    assert!(out.contains(&format!("key: {}", s(&f.public))), "{out}");
    assert!(out.contains("4 checkpoints verified"), "{out}");
    let out = expect(&vigil(&["audit", "tail", "-c", s(&config), "-n", "1"]), 0);
    assert!(out.starts_with(&format!("{n} ")), "{out}");

    // A key that cannot be read stops the check (exit 2, not 1: nothing was found wrong).
    let missing = f.dir.path("missing.pub");
    let out = f.audit("verify", &["--key", s(&missing)]);
    expect(&out, 2);
    assert_eq!(
        text(&out.stderr).trim_end(),
        format!(
            "vigil: loading the verification key: {}: No such file or directory (os error 2)",
            s(&missing)
        )
    );

    // Without a key, the hashes are checked and the output says the signatures were not.
    let out = expect(&f.audit("verify", &[]), 0);
    assert!(out.contains("signatures were NOT checked"), "{out}");
    assert!(out.contains(&format!("OK: {n} records")), "{out}");
}

/// Verify exits 1 and names `seq` as the first bad record.
fn assert_first_bad(out: &Output, seq: u64, problem: &str) {
    let stdout = expect(out, 1);
    assert!(
        stdout.contains(&format!("FAILED: first bad record is seq {seq}\n")),
        "{stdout}"
    );
    assert!(stdout.contains(problem), "{stdout}");
    assert!(text(&out.stderr).contains(&format!("the first bad record is seq {seq}")));
}

#[test]
fn verify_names_a_record_whose_text_was_edited() {
    let f = Fixture::new("tamper-edit");
    f.tamper("UPDATE audit_events SET record = replace(record, 'DELETE FROM', 'SELECT FROM') WHERE seq = 24");
    assert_first_bad(
        &f.verify(&[]),
        24,
        "record 24 was modified: its content does not match its hash",
    );
    // Changing who did it is caught the same way, also in the search column.
    let f = Fixture::new("tamper-identity");
    f.tamper(
        "UPDATE audit_events SET record = replace(record, '\"bob\"', '\"carol\"'), identity = 'carol' WHERE seq = 6",
    );
    assert_first_bad(&f.verify(&[]), 6, "record 6 was modified");
}

#[test]
fn verify_names_a_deleted_record() {
    let f = Fixture::new("tamper-delete");
    f.tamper(
        "DELETE FROM audit_events WHERE seq = 17; DELETE FROM audit_relations WHERE seq = 17;",
    );
    assert_first_bad(&f.verify(&[]), 17, "record 17 was removed");
}

#[test]
fn verify_names_two_swapped_records() {
    let f = Fixture::new("tamper-swap");
    // Away from the checkpoints (10, 20, 30): a swap onto a checkpoint's seq also breaks
    // that checkpoint, and verify then distrusts everything since the one before it.
    f.tamper(
        "UPDATE audit_events SET seq = -1 WHERE seq = 12;
         UPDATE audit_events SET seq = 12 WHERE seq = 13;
         UPDATE audit_events SET seq = 13 WHERE seq = -1;",
    );
    assert_first_bad(
        &f.verify(&[]),
        12,
        "record 12 is out of order: its position holds record 13",
    );
}

#[test]
fn verify_catches_a_cut_tail_by_its_checkpoints_or_by_an_anchor() {
    // Records cut, checkpoints left: the checkpoint at the end vouches for them.
    let f = Fixture::new("tamper-cut");
    let n = f.events;
    f.tamper(
        "DELETE FROM audit_events WHERE seq > 25; DELETE FROM audit_relations WHERE seq > 25;",
    );
    assert_first_bad(
        &f.verify(&[]),
        26,
        &format!("records from 26 on were cut off: the checkpoint vouches for record {n}"),
    );

    // Records and their checkpoints cut: only an anchor kept elsewhere notices.
    let f = Fixture::new("tamper-cut-anchor");
    let anchor = f.dir.path("anchor.json");
    let out = expect(&f.audit("anchor", &["--out", s(&anchor)]), 0);
    assert!(out.contains(&format!("anchor: record {n} hash ")), "{out}");
    expect(&f.verify(&["--anchor", s(&anchor)]), 0);
    let cut = n - 4;
    f.tamper(&format!(
        "DELETE FROM audit_events WHERE seq >= {cut}; DELETE FROM audit_relations WHERE seq >= {cut};
         DELETE FROM audit_checkpoints WHERE seq >= {cut};"
    ));
    expect(&f.verify(&[]), 0);
    assert_first_bad(
        &f.verify(&["--anchor", s(&anchor)]),
        cut,
        &format!("records from {cut} on were cut off: the anchor vouches for record {n}"),
    );
}

#[test]
fn verify_walks_rotated_segments_oldest_first() {
    let dir = Scratch::new("segments");
    let key = dir.path("audit.key");
    generate_key(&key).unwrap();
    let (old, new) = (dir.path("audit-1.db"), dir.path("audit-2.db"));
    let events = all_events();
    block_on(async {
        let log =
            AuditLog::open_sqlite(&old, Some(load_signing_key(&key).unwrap()), options()).unwrap();
        for (i, event) in events.iter().enumerate() {
            if i == 15 {
                log.rotate(s(&new)).await.unwrap();
            }
            log.append(event.clone()).await.unwrap();
        }
        log.shutdown().await.unwrap();
    });
    let public = public_key_path(&key);
    let both = vigil(&[
        "audit",
        "verify",
        "--store",
        s(&new),
        "--key",
        s(&public),
        "--segment",
        s(&old),
    ]);
    let out = expect(&both, 0);
    let n = events.len();
    assert!(
        out.contains(&format!("OK: {n} records (seq 1 to {n})")),
        "{out}"
    );
    let alone = expect(
        &vigil(&["audit", "verify", "--store", s(&new), "--key", s(&public)]),
        0,
    );
    assert!(alone.contains("continues an earlier segment"), "{alone}");
    let swapped = vigil(&[
        "audit",
        "verify",
        "--store",
        s(&old),
        "--key",
        s(&public),
        "--segment",
        s(&new),
    ]);
    expect(&swapped, 1);
}

#[test]
fn export_jsonl_is_the_hash_chain_and_byte_stable() {
    let f = Fixture::new("export-jsonl");
    let first = expect(&f.audit("export", &["--format", "jsonl"]), 0);
    let second = expect(&f.audit("export", &[]), 0);
    assert_eq!(first, second);
    assert_eq!(seqs(&first), (1..=f.events).collect::<Vec<_>>());
    // Re-verify every line independently: hash = SHA-256(prev ‖ canonical line without hash).
    let mut prev = ChainHash::ZERO;
    for line in first.lines() {
        let mut record: Value = serde_json::from_str(line).unwrap();
        let hash = record.as_object_mut().unwrap().remove("hash").unwrap();
        assert_eq!(record["prev_hash"], prev.to_hex());
        let computed = link(&prev, &canonical::encode(&record).unwrap());
        assert_eq!(hash, computed.to_hex(), "{line}");
        prev = computed;
    }

    let file = f.dir.path("export.jsonl");
    let out = expect(
        &f.audit("export", &["--from-seq", "30", "--out", s(&file)]),
        0,
    );
    assert!(
        out.contains(&format!("{} records written to", f.events - 29)),
        "{out}"
    );
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(seqs(&written), (30..=f.events).collect::<Vec<_>>());
    assert!(first.ends_with(&written));
}

#[test]
fn export_ocsf_writes_one_ocsf_event_per_record() {
    let f = Fixture::new("export-ocsf");
    let out = expect(&f.audit("export", &["--format", "ocsf"]), 0);
    let events = all_events();
    assert_eq!(out.lines().count(), events.len());
    for ((line, event), seq) in out.lines().zip(&events).zip(1u64..) {
        let v: Value = serde_json::from_str(line).unwrap();
        let class = match event.kind().as_str() {
            "auth.failure" => 3002,
            "config.reload" => 6002,
            "admin.action" | "approval.requested" | "approval.granted" => 6003,
            _ => 6005, // Datastore Activity: sessions and statements
        };
        assert_eq!(v["class_uid"], class, "{line}");
        assert_eq!(v["metadata"]["sequence"], seq);
        assert_eq!(v["unmapped"]["vigil"]["seq"], seq);
    }
    let deny: Value = serde_json::from_str(out.lines().nth(23).unwrap()).unwrap();
    assert_eq!(deny["action"], "Denied");
    assert_eq!(deny["actor"]["user"]["name"], "bob");
    assert_eq!(
        deny["query_info"]["query_string"],
        "DELETE FROM sales.orders"
    );
}

#[test]
fn a_missing_store_is_an_error_and_is_not_created() {
    let dir = Scratch::new("missing");
    let missing = dir.path("nope.db");
    for url in [s(&missing).to_owned(), format!("sqlite://{}", s(&missing))] {
        for command in ["verify", "tail", "search", "export"] {
            let out = vigil(&["audit", command, "--store", &url]);
            expect(&out, 2);
            let err = text(&out.stderr);
            assert!(
                err.contains(&format!(
                    "no audit store at {}: the file does not exist",
                    s(&missing)
                )),
                "{err}"
            );
        }
    }
    let anchor = dir.path("anchor.json");
    expect(
        &vigil(&[
            "audit",
            "anchor",
            "--store",
            s(&missing),
            "--out",
            s(&anchor),
        ]),
        2,
    );
    assert_eq!(
        std::fs::read_dir(&dir.0).unwrap().count(),
        0,
        "nothing is created"
    );

    // Exactly one of --config and --store.
    expect(&vigil(&["audit", "tail"]), 2);
    let both = vigil(&["audit", "tail", "--store", "a.db", "--config", "v.toml"]);
    expect(&both, 2);
    assert!(
        text(&both.stderr).contains("cannot be used with"),
        "{}",
        text(&both.stderr)
    );
}
