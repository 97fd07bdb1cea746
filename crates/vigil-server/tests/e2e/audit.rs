//! The audit trail through the proxy: what real clients' statements leave in
//! the store, and that a store that cannot be written stops statements
//! instead of letting them through unrecorded.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const GUARDED: &str = r#"
[policy]
guardrails = true
guardrails_exempt = { groups = ["dba"] }
"#;

fn of_kind<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}

/// The `statement` record whose text is `text`.
fn statement<'a>(records: &'a [Value], text: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["kind"] == "statement" && r["body"]["text"] == text)
        .unwrap_or_else(|| panic!("no statement event for {text:?}"))
}

/// The `statement.completed` record of `statement`.
fn completion<'a>(records: &'a [Value], statement: &Value) -> Option<&'a Value> {
    let body = &statement["body"];
    records.iter().find(|r| {
        r["kind"] == "statement.completed"
            && r["body"]["session_id"] == body["session_id"]
            && r["body"]["statement_seq"] == body["statement_seq"]
    })
}

fn verify_ok(path: &std::path::Path) {
    let store = vigil_audit::open_existing_store(&format!("sqlite://{}", path.display())).unwrap();
    let report = vigil_audit::verify(&*store, None, None).unwrap();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn statements_their_outcomes_sessions_and_failed_logins_are_recorded() {
    let db = TestDb::create("audit");
    db.direct_sql("CREATE TABLE t (id int PRIMARY KEY)");
    let proxy = Proxy::start(&config_toml_with_db(
        &db.name,
        r#"labels = { environment = "production" }"#,
        "",
        GUARDED,
    ));

    let out = proxy.psql(
        "agent",
        AGENT_PASSWORD,
        &[
            "-c",
            "INSERT INTO t VALUES (1), (2) /*ticket='OPS-12'*/",
            "-c",
            "SELECT id FROM t ORDER BY id",
            "-c",
            "DROP TABLE t",
            "-c",
            "SELECT 1/0",
            "-c",
            "SELECT 1; SELECT 2",
            "-c",
            "SELEC 1",
        ],
    );
    assert!(stderr(&out).contains("guardrail.drop"), "{}", stderr(&out));
    assert_eq!(
        proxy
            .psql("agent", "wrong", &["-c", "SELECT 1"])
            .status
            .code(),
        Some(2)
    );

    // The extended protocol: one prepared statement executed twice.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = proxy.connect("alice", ALICE_PASSWORD).await;
        let select = client
            .prepare("SELECT id FROM t WHERE id >= $1")
            .await
            .unwrap();
        assert_eq!(client.query(&select, &[&1i32]).await.unwrap().len(), 2);
        assert_eq!(client.query(&select, &[&2i32]).await.unwrap().len(), 1);
    });
    drop(runtime);
    std::thread::sleep(Duration::from_millis(200));
    proxy.audit_sync();
    let path = proxy.audit_store();
    let records = audit_records(&path);

    let insert = statement(
        &records,
        "INSERT INTO t VALUES (1), (2) /*ticket='OPS-12'*/",
    );
    let body = &insert["body"];
    assert_eq!(body["identity"], "agent");
    assert_eq!(body["database"], "demo");
    assert_eq!(body["decision"], "allow");
    assert_eq!(body["kinds"][0], "insert");
    assert_eq!(body["class"], "write");
    assert_eq!(body["relations"], serde_json::json!(["t:write"]));
    assert_eq!(body["intent"]["ticket"], "OPS-12");
    assert_eq!(body["intent"]["application_name"], "psql");
    assert_eq!(body["fingerprint"].as_str().unwrap().len(), 16);
    let done = &completion(&records, insert).expect("insert completed")["body"];
    assert_eq!(done["rows"], 2);
    assert!(done.get("sqlstate").is_none(), "{done}");

    let select = statement(&records, "SELECT id FROM t ORDER BY id");
    let done = &completion(&records, select).expect("select completed")["body"];
    assert_eq!(done["rows"], 2);
    assert!(done["bytes"].as_u64().unwrap() > 0);

    // Refused: recorded with the rule, and never completed.
    let drop = statement(&records, "DROP TABLE t");
    assert_eq!(drop["body"]["decision"], "deny");
    assert_eq!(
        drop["body"]["rule_ids"],
        serde_json::json!(["guardrail.drop"])
    );
    assert!(completion(&records, drop).is_none());

    let failed = statement(&records, "SELECT 1/0");
    assert_eq!(
        completion(&records, failed).expect("failure recorded")["body"]["sqlstate"],
        "22012"
    );
    // A text Vigil cannot parse is refused and recorded as such.
    let unreadable = statement(&records, "SELEC 1");
    assert_eq!(unreadable["body"]["decision"], "deny");
    assert_eq!(
        unreadable["body"]["rule_ids"],
        serde_json::json!(["vigil.unreadable"])
    );
    assert_eq!(unreadable["body"]["class"], "unknown");
    assert!(completion(&records, unreadable).is_none());
    // Each statement of a multi-statement Query has its own events.
    for text in ["SELECT 1", "SELECT 2"] {
        let s = statement(&records, text);
        assert_eq!(completion(&records, s).unwrap()["body"]["rows"], 1);
    }
    // Each Execute of a prepared statement is a statement of its own.
    let executes: Vec<&Value> = records
        .iter()
        .filter(|r| {
            r["kind"] == "statement" && r["body"]["text"] == "SELECT id FROM t WHERE id >= $1"
        })
        .collect();
    assert_eq!(executes.len(), 2);
    let rows: Vec<&Value> = executes
        .iter()
        .map(|s| &completion(&records, s).unwrap()["body"]["rows"])
        .collect();
    assert_eq!(rows, [2, 1]);
    // A statement's event precedes its completion in the chain.
    assert!(
        completion(&records, executes[1]).unwrap()["seq"].as_u64() > executes[1]["seq"].as_u64()
    );

    let starts = of_kind(&records, "session.start");
    assert!(starts
        .iter()
        .any(|s| s["body"]["identity"] == "alice" && s["body"]["auth_method"] == "scram-sha-256"));
    let failures = of_kind(&records, "auth.failure");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["body"]["user"], "agent");
    assert!(!failures[0].to_string().contains("wrong"));
    let ends = of_kind(&records, "session.end");
    assert!(
        ends.iter()
            .any(|e| e["body"]["identity"] == "agent" && e["body"]["statements"] == 7),
        "{ends:?}"
    );
    verify_ok(&path);
}

#[test]
fn an_unwritable_store_refuses_statements_and_recovers_by_itself() {
    let db = TestDb::create("audit_down");
    db.direct_sql("CREATE TABLE t (id int PRIMARY KEY)");
    let proxy = Proxy::start(&config_toml(
        &db.name,
        "",
        "[audit]\nbusy_timeout_ms = 200\nretry_interval_ms = 100\n",
    ));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = proxy.connect("alice", ALICE_PASSWORD).await;
        let other = proxy.connect("agent", AGENT_PASSWORD).await;
        client
            .batch_execute("INSERT INTO t VALUES (1)")
            .await
            .unwrap();

        // Another process holds the store's write lock: nothing can be recorded.
        let blocker = rusqlite::Connection::open(proxy.audit_store()).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        for (session, id) in [(&client, 2), (&other, 3)] {
            let error = session
                .batch_execute(&format!("INSERT INTO t VALUES ({id})"))
                .await
                .expect_err("refused while the store is down");
            let db_error = error.as_db_error().expect("an ErrorResponse");
            assert_eq!(db_error.code().code(), "58030");
            assert!(
                db_error
                    .message()
                    .contains("audit event could not be recorded"),
                "{db_error:?}"
            );
            assert!(db_error.message().contains("locked"), "{db_error:?}");
        }
        // The extended protocol too.
        let error = client.query("SELECT $1::int", &[&1i32]).await.unwrap_err();
        assert_eq!(error.as_db_error().unwrap().code().code(), "58030");
        assert_eq!(
            db.direct_sql("SELECT string_agg(id::text, ',') FROM t")
                .trim(),
            "1"
        );

        blocker.execute_batch("ROLLBACK").unwrap();
        drop(blocker);
        // The same sessions carry on once the store is back.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match client.batch_execute("INSERT INTO t VALUES (2)").await {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    assert_eq!(e.as_db_error().unwrap().code().code(), "58030");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no recovery: {e}"),
            }
        }
        other
            .batch_execute("INSERT INTO t VALUES (3)")
            .await
            .unwrap();
        let row = client
            .query_one("SELECT $1::int + 1", &[&1i32])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 2);
    });
    assert_eq!(
        db.direct_sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t")
            .trim(),
        "1,2,3"
    );
    drop(runtime);
    proxy.audit_sync();
    let path = proxy.audit_store();
    let records = audit_records(&path);
    // Every row has its statement event; the refused attempts left none that
    // claims to have run.
    for id in 1..=3 {
        let text = format!("INSERT INTO t VALUES ({id})");
        let s = statement(&records, &text);
        assert!(completion(&records, s).is_some(), "{text}");
    }
    verify_ok(&path);
}

#[test]
fn fast_mode_records_and_off_records_nothing() {
    for (mode, expect_events) in [("fast", true), ("off", false)] {
        let db = TestDb::create("audit_modes");
        let proxy = Proxy::start(&config_toml(
            &db.name,
            "",
            &format!("[audit]\nmode = \"{mode}\"\n"),
        ));
        let out = proxy.psql("alice", ALICE_PASSWORD, &["-c", "SELECT 42"]);
        assert!(out.status.success(), "{}", stderr(&out));
        std::thread::sleep(Duration::from_millis(100));
        proxy.audit_sync();
        let path = proxy.audit_store();
        if expect_events {
            let records = audit_records(&path);
            let s = statement(&records, "SELECT 42");
            assert!(completion(&records, s).is_some());
            verify_ok(&path);
        } else {
            assert!(!path.exists(), "mode off creates no store");
        }
    }
}

/// psql's Ctrl-C while a statement waits for its audit event (strict mode,
/// the store slow to take the write): the statement never reaches the
/// server, and the client hears 57014 as it would from PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_the_audit_event_is_stored_stops_the_statement() {
    let db = TestDb::create("audit_cancel");
    db.direct_sql("CREATE TABLE t (x int)");
    let proxy = Proxy::start(&config_toml(
        &db.name,
        "",
        "[audit]\nmode = \"strict\"\nbusy_timeout_ms = 10000\n",
    ));
    let client = proxy.connect("alice", ALICE_PASSWORD).await;
    client.simple_query("SELECT 1").await.unwrap();
    // Another process holds the store's write lock: the commit waits.
    let store = proxy.audit_store();
    let blocker = rusqlite::Connection::open(&store).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let token = client.cancel_token();
    let insert = tokio::spawn(async move { client.simple_query("INSERT INTO t VALUES (1)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    let error = tokio::time::timeout(Duration::from_secs(20), insert)
        .await
        .expect("answered")
        .unwrap()
        .expect_err("cancelled");
    assert_eq!(error.code().unwrap().code(), "57014", "{error}");
    assert_eq!(db.direct_sql("SELECT count(*) FROM t").trim(), "0");
}
