//! Vigil and the server must never disagree about what runs: attacks that
//! try to make Vigil decide and audit one statement while the server runs
//! another, over both protocols, pipelined and not. After each, the server's
//! data shows what really ran, and the audit trail says the same.
//!
//! - names that change only when the server confirms them (a refused
//!   re-Parse, changes skipped after an error, SQL PREPARE and DEALLOCATE);
//! - one approval for one execution, however it is run;
//! - settings that change how the server reads text, switched by code Vigil
//!   cannot see, with a text pipelined behind them;
//! - the audit's text in the client's encoding, and statements that never ran.

use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use serde_json::Value;

use crate::harness::*;

const APPROVER_TOKEN: &str = "vigil-e2e-integrity-approver";
const RULE: &str = "agent-writes-need-approval";

/// The target: an account whose balance only a reviewed write may change.
fn target_db() -> TestDb {
    let db = TestDb::create("integrity");
    db.direct_sql(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
         INSERT INTO accounts VALUES (1, 100);
         CREATE TABLE secrets (secret text);
         INSERT INTO secrets VALUES ('the-crown-jewels');
         CREATE FUNCTION run_sql(q text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE q; RETURN 1; END $$;",
    );
    db
}

fn balance(db: &TestDb) -> i32 {
    db.direct_sql("SELECT balance FROM accounts WHERE id = 1")
        .trim()
        .parse()
        .unwrap()
}

fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// agent's writes need one approval from alice's group (refuse mode: the
/// statement is refused with a request id until approved, then runs once);
/// nobody may read `secrets`.
fn proxy(db: &TestDb) -> Proxy {
    let extra = format!(
        r#"
[[rules]]
id = "{RULE}"
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
    Proxy::start(&config_toml(&db.name, "", &extra))
}

// ---- the wire ----

fn parse(out: &mut BytesMut, name: &str, sql: &str) {
    frontend::parse(name, sql, [], out).unwrap();
}

fn execute(out: &mut BytesMut, portal: &str) {
    frontend::execute(portal, 0, out).unwrap();
}

fn sync(out: &mut BytesMut) {
    frontend::sync(out);
}

fn query(out: &mut BytesMut, sql: &str) {
    frontend::query(sql, out).unwrap();
}

/// A Query whose text is these bytes, in whatever encoding.
fn query_bytes(out: &mut BytesMut, sql: &[u8]) {
    out.extend_from_slice(b"Q");
    out.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
    out.extend_from_slice(sql);
    out.extend_from_slice(&[0]);
}

/// Sends `out` in one write and reads the answers to its `readies`
/// ReadyForQuery-ending requests, or to the close.
fn exchange(client: &mut RawClient, out: &BytesMut, readies: usize) -> Vec<(u8, Vec<u8>)> {
    client.send(out).unwrap();
    let mut messages = Vec::new();
    for _ in 0..readies {
        loop {
            match read_message(&mut client.stream) {
                Some(message) => {
                    let done = message.0 == b'Z';
                    messages.push(message);
                    if done {
                        break;
                    }
                }
                None => return messages,
            }
        }
    }
    messages
}

fn errors(messages: &[(u8, Vec<u8>)]) -> Vec<(String, String)> {
    messages
        .iter()
        .filter(|(tag, _)| *tag == b'E')
        .map(|(_, body)| (sqlstate(body), field(body, b'M')))
        .collect()
}

/// Everything the client was sent, as text, for "never shown" checks.
fn everything(messages: &[(u8, Vec<u8>)]) -> String {
    messages
        .iter()
        .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
        .collect::<Vec<_>>()
        .join("|")
}

/// The approval request id in a refuse-mode refusal.
fn request_id(message: &str) -> String {
    message
        .split("request ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no request id in {message:?}"))
        .to_owned()
}

fn approve(proxy: &Proxy, id: &str) {
    let (status, body) = http(
        "POST",
        &format!("{}/api/v1/approvals/{id}/approve", proxy.admin_url()),
        Some(&format!("Bearer {APPROVER_TOKEN}")),
        Some(&serde_json::json!({ "reason": "test" })),
    );
    assert_eq!(status, 200, "approve {id}: {body}");
}

fn agent(proxy: &Proxy) -> RawClient {
    RawClient::login(proxy.port, "agent", AGENT_PASSWORD)
}

// ---- names change when the server says so ----

#[test]
fn a_refused_reparse_leaves_the_name_as_the_server_has_it() {
    let db = target_db();
    let proxy = proxy(&db);
    let mut client = agent(&proxy);
    let update = "UPDATE accounts SET balance = 0 WHERE id = 1";

    // One batch at a time.
    let mut out = BytesMut::new();
    parse(&mut out, "s1", update);
    sync(&mut out);
    let answers = exchange(&mut client, &out, 1);
    assert!(errors(&answers).is_empty(), "{answers:?}");
    out.clear();
    parse(&mut out, "s1", "SELECT 1");
    sync(&mut out);
    let answers = exchange(&mut client, &out, 1);
    assert_eq!(
        errors(&answers)[0].0,
        "42P05",
        "the server refuses the name"
    );
    out.clear();
    bind(&mut out, "", "s1", &[]);
    execute(&mut out, "");
    sync(&mut out);
    let answers = exchange(&mut client, &out, 1);
    let errors = errors(&answers);
    assert_eq!(errors.len(), 1, "{answers:?}");
    assert_eq!(errors[0].0, "42501", "s1 is still the UPDATE: {errors:?}");
    assert!(errors[0].1.contains(RULE), "{errors:?}");
    assert_eq!(balance(&db), 100);

    // The same, pipelined in one write.
    out.clear();
    parse(&mut out, "s2", update);
    sync(&mut out);
    parse(&mut out, "s2", "SELECT 1");
    sync(&mut out);
    bind(&mut out, "", "s2", &[]);
    execute(&mut out, "");
    sync(&mut out);
    let answers = exchange(&mut client, &out, 3);
    let codes: Vec<String> = self::errors(&answers).into_iter().map(|e| e.0).collect();
    assert_eq!(codes, ["42P05", "42501"], "{answers:?}");
    assert_eq!(balance(&db), 100);

    // And through SQL: PREPARE of a name that exists fails too.
    out.clear();
    query(
        &mut out,
        "PREPARE s3 AS UPDATE accounts SET balance = 1 WHERE id = 1",
    );
    query(&mut out, "PREPARE s3 AS SELECT 1");
    query(&mut out, "EXECUTE s3");
    bind(&mut out, "", "s3", &[]);
    execute(&mut out, "");
    sync(&mut out);
    let answers = exchange(&mut client, &out, 4);
    let codes: Vec<String> = self::errors(&answers).into_iter().map(|e| e.0).collect();
    assert_eq!(codes, ["42P05", "42501", "42501"], "{answers:?}");
    assert_eq!(balance(&db), 100);
}

#[test]
fn changes_the_server_skipped_after_an_error_never_happened() {
    let db = target_db();
    let proxy = proxy(&db);
    let mut client = agent(&proxy);
    let mut out = BytesMut::new();
    parse(
        &mut out,
        "s",
        "UPDATE accounts SET balance = 0 WHERE id = 1",
    );
    sync(&mut out);
    // Fails at the Execute: the server skips the Close and the Parse.
    parse(&mut out, "boom", "SELECT 1/0");
    bind(&mut out, "", "boom", &[]);
    execute(&mut out, "");
    frontend::close(b'S', "s", &mut out).unwrap();
    parse(&mut out, "s", "SELECT 1");
    sync(&mut out);
    bind(&mut out, "", "s", &[]);
    execute(&mut out, "");
    sync(&mut out);
    let answers = exchange(&mut client, &out, 3);
    let codes: Vec<String> = errors(&answers).into_iter().map(|e| e.0).collect();
    assert_eq!(codes, ["22012", "42501"], "{answers:?}");
    assert_eq!(balance(&db), 100);

    // SQL: a Query whose first statement fails runs none of the rest.
    out.clear();
    query(
        &mut out,
        "PREPARE t AS UPDATE accounts SET balance = 0 WHERE id = 1",
    );
    query(&mut out, "SELECT 1/0; DEALLOCATE t; PREPARE t AS SELECT 1");
    bind(&mut out, "", "t", &[]);
    execute(&mut out, "");
    sync(&mut out);
    query(&mut out, "EXECUTE t");
    let answers = exchange(&mut client, &out, 4);
    let codes: Vec<String> = errors(&answers).into_iter().map(|e| e.0).collect();
    assert_eq!(codes, ["22012", "42501", "42501"], "{answers:?}");
    assert_eq!(balance(&db), 100);

    // A DEALLOCATE that did run: the name is gone, and what the server
    // holds under it next is what Vigil saw.
    out.clear();
    query(&mut out, "DEALLOCATE t; PREPARE t AS SELECT 42");
    bind(&mut out, "", "t", &[]);
    execute(&mut out, "");
    sync(&mut out);
    let answers = exchange(&mut client, &out, 2);
    assert!(errors(&answers).is_empty(), "{answers:?}");
    assert!(everything(&answers).contains("42"));
}

#[test]
fn a_name_vigil_never_saw_defined_is_not_run() {
    let db = target_db();
    let proxy = proxy(&db);
    let mut client = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let mut out = BytesMut::new();
    // Defined by code Vigil cannot see into.
    query(
        &mut out,
        "SELECT run_sql('PREPARE hidden AS UPDATE accounts SET balance = 7 WHERE id = 1')",
    );
    bind(&mut out, "", "hidden", &[]);
    execute(&mut out, "");
    sync(&mut out);
    execute(&mut out, "nowhere");
    sync(&mut out);
    query(&mut out, "EXECUTE hidden");
    let answers = exchange(&mut client, &out, 4);
    let errors = errors(&answers);
    let codes: Vec<&str> = errors.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(codes, ["26000", "34000", "26000"], "{answers:?}");
    assert!(
        errors.iter().all(|e| e.1.contains("vigil.session-state")),
        "{errors:?}"
    );
    assert_eq!(balance(&db), 100);

    // A cursor declared in SQL can be fetched with a protocol Execute, and
    // is audited as that.
    out.clear();
    query(
        &mut out,
        "BEGIN; DECLARE c CURSOR FOR SELECT balance FROM accounts",
    );
    execute(&mut out, "c");
    sync(&mut out);
    query(&mut out, "COMMIT");
    let answers = exchange(&mut client, &out, 3);
    assert!(self::errors(&answers).is_empty(), "{answers:?}");
    assert!(answers
        .iter()
        .any(|(tag, body)| *tag == b'D' && body.ends_with(b"100")));
    proxy.audit_sync();
    let records = audit_records(&proxy.audit_store());
    assert!(records
        .iter()
        .any(|r| r["body"]["text"] == "<execute of cursor \"c\">"
            && r["body"]["decision"] == "allow"));
}

// ---- one approval, one execution ----

#[test]
fn each_execution_of_a_reviewed_statement_needs_its_own_approval() {
    let db = target_db();
    let proxy = proxy(&db);
    let mut client = agent(&proxy);
    let mut out = BytesMut::new();
    // Preparing runs nothing, so it needs no approval.
    query(
        &mut out,
        "PREPARE pay AS UPDATE accounts SET balance = balance - $1 WHERE id = 1",
    );
    let answers = exchange(&mut client, &out, 1);
    assert!(errors(&answers).is_empty(), "{answers:?}");

    let protocol = |amount: &str| {
        let mut out = BytesMut::new();
        bind(&mut out, "", "pay", &[amount]);
        execute(&mut out, "");
        sync(&mut out);
        out
    };
    let sql = |amount: &str| {
        let mut out = BytesMut::new();
        query(&mut out, &format!("EXECUTE pay({amount})"));
        out
    };
    let mut expected = 100;
    for (how, run) in [
        ("Bind/Execute", &protocol as &dyn Fn(&str) -> BytesMut),
        ("SQL EXECUTE", &sql),
    ] {
        let answers = exchange(&mut client, &run("10"), 1);
        let refused = errors(&answers);
        assert_eq!(refused.len(), 1, "{how}: {answers:?}");
        assert_eq!(refused[0].0, "42501", "{how}: {refused:?}");
        let id = request_id(&refused[0].1);
        assert_eq!(balance(&db), expected, "{how}: nothing ran before approval");
        approve(&proxy, &id);
        // Other parameters are another statement.
        let answers = exchange(&mut client, &run("20"), 1);
        assert_eq!(errors(&answers).len(), 1, "{how}: {answers:?}");
        assert_eq!(balance(&db), expected);
        // The approved one runs, once.
        let answers = exchange(&mut client, &run("10"), 1);
        assert!(errors(&answers).is_empty(), "{how}: {answers:?}");
        expected -= 10;
        assert_eq!(balance(&db), expected, "{how}");
        let answers = exchange(&mut client, &run("10"), 1);
        assert_eq!(errors(&answers).len(), 1, "{how}: once only: {answers:?}");
        assert_eq!(balance(&db), expected, "{how}");
    }

    // A swapped definition under the approved name needs its own approval.
    let answers = exchange(&mut client, &sql("5"), 1);
    let id = request_id(&errors(&answers)[0].1);
    approve(&proxy, &id);
    let mut out = BytesMut::new();
    query(
        &mut out,
        "DEALLOCATE pay; PREPARE pay AS UPDATE accounts SET balance = 0 WHERE id = $1",
    );
    query(&mut out, "EXECUTE pay(5)");
    let answers = exchange(&mut client, &out, 2);
    assert_eq!(errors(&answers).len(), 1, "{answers:?}");
    assert_eq!(balance(&db), expected);
}

// ---- how the server reads text ----

/// Reads `secrets` with standard_conforming_strings off; with it on, two
/// harmless string constants.
const AMBIGUOUS: &str = r"SELECT 'a\' AS x, ' AS x, (SELECT secret FROM secrets) AS y, ' --'";

#[test]
fn a_function_that_changes_how_text_is_read_cannot_smuggle_a_statement() {
    let db = target_db();
    let proxy = proxy(&db);
    let switch = "SELECT run_sql('SET standard_conforming_strings = off')";

    // Simple protocol, both Queries in one write: the second waits for the
    // first's answer, which says the server now reads text another way.
    let mut alice = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let mut out = BytesMut::new();
    query(&mut out, switch);
    query(&mut out, AMBIGUOUS);
    let answers = exchange(&mut alice, &out, 2);
    assert!(
        !everything(&answers).contains("crown-jewels"),
        "{answers:?}"
    );

    // Extended protocol, in one batch: the server reads the Parse before
    // it reports anything.
    let mut alice = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let mut out = BytesMut::new();
    parse(&mut out, "", switch);
    bind(&mut out, "", "", &[]);
    execute(&mut out, "");
    parse(&mut out, "", AMBIGUOUS);
    bind(&mut out, "", "", &[]);
    execute(&mut out, "");
    sync(&mut out);
    let answers = exchange(&mut alice, &out, 1);
    assert!(
        !everything(&answers).contains("crown-jewels"),
        "{answers:?}"
    );
    let refused = errors(&answers);
    assert!(
        refused
            .iter()
            .any(|e| e.1.contains("vigil.parser-integrity")),
        "{answers:?}"
    );

    // Without anything before it, the same text is read as the server reads
    // it (standard_conforming_strings on): two constants.
    let mut alice = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let answers = alice.query(AMBIGUOUS);
    assert!(errors(&answers).is_empty(), "{answers:?}");
    assert!(!everything(&answers).contains("crown-jewels"));
}

#[test]
fn a_function_that_changes_the_encoding_cannot_smuggle_a_statement() {
    let db = target_db();
    let proxy = proxy(&db);
    // In SJIS the UTF-8 bytes of "ぁ" (e3 81 81) are a character and a lead
    // byte that swallows the backslash (81 5c is "―"): the E'' string
    // closes at the next quote.
    let hidden = "SELECT E'ぁ\\' AS x, (SELECT secret FROM secrets) AS y --'";
    let switch = "SELECT run_sql('SET client_encoding = ''SJIS''')";
    let mut alice = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let mut out = BytesMut::new();
    query(&mut out, switch);
    query(&mut out, hidden);
    let answers = exchange(&mut alice, &out, 2);
    assert!(
        !everything(&answers).contains("crown-jewels"),
        "{answers:?}"
    );

    // In one extended batch the server converts the second Parse with the
    // encoding the first Execute set, and reports the change only at Sync.
    let mut alice = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let mut out = BytesMut::new();
    parse(&mut out, "", switch);
    bind(&mut out, "", "", &[]);
    execute(&mut out, "");
    parse(&mut out, "", hidden);
    bind(&mut out, "", "", &[]);
    execute(&mut out, "");
    sync(&mut out);
    let answers = exchange(&mut alice, &out, 1);
    assert!(
        !everything(&answers).contains("crown-jewels"),
        "{answers:?}"
    );
    assert!(
        errors(&answers)
            .iter()
            .any(|e| e.1.contains("vigil.parser-integrity")),
        "{answers:?}"
    );
}

// ---- the audit says what the server ran ----

#[test]
fn a_latin1_session_is_read_and_audited_as_the_server_reads_it() {
    let db = target_db();
    let proxy = proxy(&db);
    let mut client = agent(&proxy);
    let answers = client.query("SET client_encoding = 'LATIN1'");
    assert!(errors(&answers).is_empty(), "{answers:?}");
    let mut out = BytesMut::new();
    query_bytes(&mut out, b"SELECT 'caf\xe9' AS word");
    // Valid UTF-8, but LATIN1 to the server: two characters.
    query_bytes(&mut out, "SELECT 'é' AS pair".as_bytes());
    let answers = exchange(&mut client, &out, 2);
    assert!(errors(&answers).is_empty(), "{answers:?}");
    proxy.audit_sync();
    let records = audit_records(&proxy.audit_store());
    let statements: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "statement")
        .map(|r| &r["body"])
        .collect();
    let word = statements
        .iter()
        .find(|b| b["text"].as_str().is_some_and(|t| t.ends_with("AS word")))
        .expect("recorded");
    assert_eq!(word["text"], "SELECT 'café' AS word");
    assert_eq!(word["client_encoding"], "LATIN1");
    let pair = statements
        .iter()
        .find(|b| b["text"].as_str().is_some_and(|t| t.ends_with("AS pair")))
        .expect("recorded");
    assert_eq!(pair["text"], "SELECT 'Ã©' AS pair");
}

#[test]
fn statements_after_a_failure_are_recorded_as_never_run() {
    let db = target_db();
    let proxy = proxy(&db);
    let mut client = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let answers = client.query("SELECT 1 AS first; SELECT 1/0 AS second; SELECT 3 AS third");
    assert_eq!(errors(&answers)[0].0, "22012");
    let mut out = BytesMut::new();
    // Fails as it runs (a constant 1/0 would fail at Bind, when planned).
    parse(&mut out, "", "SELECT 1/(SELECT 0) AS fourth");
    bind(&mut out, "", "", &[]);
    execute(&mut out, "");
    parse(&mut out, "", "SELECT 5 AS fifth");
    bind(&mut out, "", "", &[]);
    execute(&mut out, "");
    sync(&mut out);
    exchange(&mut client, &out, 1);
    proxy.audit_sync();
    std::thread::sleep(Duration::from_millis(100));
    proxy.audit_sync();
    let records = audit_records(&proxy.audit_store());
    let seq_of = |suffix: &str| {
        records
            .iter()
            .find(|r| {
                r["kind"] == "statement"
                    && r["body"]["text"]
                        .as_str()
                        .is_some_and(|t| t.ends_with(suffix))
            })
            .map(|r| r["body"]["statement_seq"].clone())
            .unwrap_or_else(|| panic!("{suffix} recorded"))
    };
    let completion = |suffix: &str| {
        let seq = seq_of(suffix);
        records
            .iter()
            .find(|r| r["kind"] == "statement.completed" && r["body"]["statement_seq"] == seq)
            .map(|r| r["body"].clone())
            .unwrap_or_else(|| panic!("{suffix} completed"))
    };
    assert!(completion("first").get("executed").is_none());
    assert_eq!(completion("second")["sqlstate"], "22012");
    assert_eq!(completion("third")["executed"], false);
    assert_eq!(completion("fourth")["sqlstate"], "22012");
    assert_eq!(completion("fifth")["executed"], false);
}

#[test]
fn a_name_redefined_by_code_vigil_cannot_see_into_is_not_trusted() {
    let db = target_db();
    let proxy = proxy(&db);
    let mut alice = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let hijack = "SELECT run_sql('DEALLOCATE a') + run_sql('PREPARE a AS UPDATE accounts SET balance = 7 WHERE id = 1')";
    let mut out = BytesMut::new();
    query(&mut out, "PREPARE a AS SELECT 1");
    query(&mut out, hijack);
    // Later batches: Vigil asks the server what `a` is before running it.
    query(&mut out, "EXECUTE a");
    bind(&mut out, "", "a", &[]);
    execute(&mut out, "");
    sync(&mut out);
    let answers = exchange(&mut alice, &out, 4);
    let codes: Vec<String> = errors(&answers).into_iter().map(|e| e.0).collect();
    assert_eq!(codes, ["26000", "26000"], "{answers:?}");
    assert_eq!(balance(&db), 100);
    // Names the code left alone are still run.
    let answers = alice.query("PREPARE b AS SELECT 2; SELECT run_sql('SELECT 1'); EXECUTE b");
    assert!(errors(&answers).is_empty(), "{answers:?}");

    // In the same batch the server runs it before Vigil can ask: Vigil
    // finds out right after, and ends the session.
    let mut alice = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let answers = alice.query("PREPARE a AS SELECT 1");
    assert!(errors(&answers).is_empty());
    let mut out = BytesMut::new();
    parse(&mut out, "", hijack);
    bind(&mut out, "", "", &[]);
    execute(&mut out, "");
    bind(&mut out, "", "a", &[]);
    execute(&mut out, "");
    sync(&mut out);
    query(&mut out, "SELECT 1");
    alice.send(&out).unwrap();
    let answers = alice.read_to_close();
    let last = errors(&answers).pop().expect("told why");
    assert!(last.1.contains("redefined"), "{answers:?}");
}
