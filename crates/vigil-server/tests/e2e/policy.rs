//! Policy through the proxy: attacks on the guardrails over the simple and
//! the extended protocol, what a refusal looks like to real clients, the
//! session afterwards, and reload. After every refused attack the target is
//! still there and unchanged.

use std::time::Duration;

use crate::harness::*;

const GUARDED: &str = r#"
[policy]
guardrails = true
guardrails_exempt = { groups = ["dba"] }

[[rules]]
id = "no-hr"
when = { relations = ["hr.*"] }
unless = { groups = ["dba"] }
action = "deny"
message = "HR data is off limits."

[[rules]]
id = "agents-review-inserts"
when = { identity_kinds = ["agent"], kinds = ["insert"], relations = ["public.audit_me"] }
action = "review"
approval = "refuse"
"#;

fn guarded_proxy(db: &TestDb) -> Proxy {
    Proxy::start(&config_toml_with_db(
        &db.name,
        r#"labels = { environment = "production" }"#,
        "",
        GUARDED,
    ))
}

fn target_db() -> TestDb {
    let db = TestDb::create("policy");
    db.direct_sql(
        "CREATE TABLE users (id int PRIMARY KEY, name text);
         INSERT INTO users VALUES (1, 'ada'), (2, 'bob'), (3, 'cy');
         CREATE TABLE audit_me (id int);
         CREATE SCHEMA hr; CREATE TABLE hr.salaries (id int, amount int);
         CREATE FUNCTION run_sql(q text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE q; END $$;",
    );
    db
}

/// The target is there, with its three rows, untouched.
#[track_caller]
fn assert_intact(db: &TestDb) {
    assert_eq!(
        db.direct_sql("SELECT string_agg(id || name, ',' ORDER BY id) FROM users")
            .trim(),
        "1ada,2bob,3cy"
    );
}

const SIMPLE_ATTACKS: &[(&str, &str)] = &[
    ("DROP TABLE users", "42501"),
    ("dRoP/**/TaBlE \"users\"", "42501"),
    ("DROP TABLE public.users", "42501"),
    ("DROP TABLE U&\"\\0075sers\"", "42501"),
    ("SET search_path = public; DROP TABLE users", "42501"),
    ("SELECT 1; DROP TABLE users; SELECT 2", "42501"),
    (
        "INSERT INTO users VALUES (9, 'zed'); DROP TABLE users",
        "42501",
    ),
    (
        "WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d",
        "42501",
    ),
    ("COPY (DELETE FROM users RETURNING *) TO STDOUT", "42501"),
    ("PREPARE p AS DELETE FROM users", "42501"),
    // p was never prepared (its PREPARE was refused): the server's own code.
    ("EXECUTE p", "26000"),
    ("DO $$ BEGIN EXECUTE 'DROP TABLE users'; END $$", "42501"),
    ("SELECT run_sql('DROP TABLE users')", "42501"),
    ("SELECT public.run_sql('TRUNCATE users')", "42501"),
    (
        "SELECT query_to_xml('DELETE FROM users', true, false, '')",
        "42501",
    ),
    ("UPDATE users SET name = 'x'", "42501"),
    (
        "DELETE FROM users WHERE true OR id = 1; TRUNCATE users",
        "42501",
    ),
    ("SET standard_conforming_strings = off", "42501"),
    (
        "SELECT set_config('standard_conforming_strings', 'off', false)",
        "42501",
    ),
    ("SET search_path = public, pg_catalog", "42501"),
    ("SET ROLE postgres", "42501"),
    ("SELECT * FROM hr.salaries", "42501"),
    ("SET search_path = hr; SELECT * FROM salaries", "42501"),
    ("SELECT pg_read_file('/etc/passwd')", "42501"),
    ("COPY users TO PROGRAM 'cat > /tmp/x'", "42501"),
    ("DROP TABLE users -- ; SELECT 1", "42501"),
    ("/* DROP */ SELEC 1; DROP TABLE users", "42601"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_over_the_simple_protocol_are_refused_and_change_nothing() {
    let db = target_db();
    let proxy = guarded_proxy(&db);
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    for (sql, code) in SIMPLE_ATTACKS {
        let error = agent
            .simple_query(sql)
            .await
            .expect_err(&format!("refused: {sql}"));
        let db_error = error
            .as_db_error()
            .unwrap_or_else(|| panic!("{sql}: {error}"));
        assert_eq!(
            db_error.code().code(),
            *code,
            "{sql}: {}",
            db_error.message()
        );
        if *code == "42501" {
            assert!(
                db_error
                    .message()
                    .starts_with("Vigil refused this statement (rule "),
                "{}",
                db_error.message()
            );
            assert!(
                db_error.hint().is_some(),
                "{sql}: a hint says how to proceed"
            );
        }
        assert_intact(&db);
    }
    // The session is still good, and reads work.
    let rows = agent
        .simple_query("SELECT count(*) FROM users")
        .await
        .unwrap();
    assert!(
        matches!(&rows[1], tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("3"))
    );
    assert_eq!(
        db.direct_sql("SELECT count(*) FROM hr.salaries").trim(),
        "0"
    );
    // A DBA is exempt from the pack.
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    alice.simple_query("DROP TABLE audit_me").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_over_the_extended_protocol_are_refused_and_change_nothing() {
    let db = target_db();
    let proxy = guarded_proxy(&db);
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    for (sql, code) in SIMPLE_ATTACKS {
        if sql.contains(';') && !sql.contains("--") {
            continue; // the extended protocol takes one statement per Parse
        }
        let error = agent
            .execute(*sql, &[])
            .await
            .expect_err(&format!("refused: {sql}"));
        let db_error = error
            .as_db_error()
            .unwrap_or_else(|| panic!("{sql}: {error}"));
        // A Parse is judged before any Execute looks its name up: an
        // EXECUTE of a name not known then is of unknown class.
        let code = match *sql {
            "EXECUTE p" => "42501",
            _ => code,
        };
        assert_eq!(
            db_error.code().code(),
            code,
            "{sql}: {}",
            db_error.message()
        );
        assert_intact(&db);
    }
    // Parameters do not help: a WHERE that names no column keeps every row.
    let error = agent
        .execute("DELETE FROM users WHERE $1::bool OR true", &[&true])
        .await
        .unwrap_err();
    assert_eq!(error.as_db_error().unwrap().code().code(), "42501");
    assert_intact(&db);
    let deleted = agent
        .execute("DELETE FROM users WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    assert_eq!(deleted, 1, "a DELETE with a real WHERE is allowed");
    db.direct_sql("INSERT INTO users VALUES (1, 'ada')");
    let prepared = agent
        .prepare("SELECT name FROM users WHERE id = $1")
        .await
        .unwrap();
    let row = agent.query_one(&prepared, &[&2i32]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "bob");
    // In refuse mode a reviewed statement is refused until approved.
    let error = agent
        .execute("INSERT INTO public.audit_me VALUES (1)", &[])
        .await
        .unwrap_err();
    let db_error = error.as_db_error().unwrap();
    assert_eq!(db_error.code().code(), "42501");
    assert!(
        db_error.message().contains("needs approval"),
        "{}",
        db_error.message()
    );
    assert_eq!(db.direct_sql("SELECT count(*) FROM audit_me").trim(), "0");
}

#[test]
fn a_refusal_inside_a_transaction_fails_the_transaction_as_postgresql_does() {
    let db = target_db();
    let proxy = guarded_proxy(&db);
    let out = proxy.psql(
        "agent",
        AGENT_PASSWORD,
        &[
            "-c",
            "BEGIN",
            "-c",
            "INSERT INTO users VALUES (10, 'tx')",
            "-c",
            "DROP TABLE users",
            "-c",
            "SELECT 1",
            "-c",
            "COMMIT",
        ],
    );
    let err = stderr(&out);
    assert!(
        err.contains("Vigil refused this statement (rule guardrail.drop)"),
        "{err}"
    );
    assert!(err.contains("current transaction is aborted"), "{err}");
    assert!(stdout(&out).contains("ROLLBACK"), "{}", stdout(&out));
    assert_intact(&db);
}

#[test]
fn pipelined_extended_batch_errors_then_skips_to_sync() {
    let db = target_db();
    let proxy = guarded_proxy(&db);
    let mut client = RawClient::login(proxy.port, "agent", AGENT_PASSWORD);
    // One batch: an allowed query, then a refused Parse and the Bind/Execute
    // that use it, then Sync; then a simple query behind it.
    let mut out = bytes::BytesMut::new();
    use postgres_protocol::message::frontend;
    frontend::parse("", "SELECT 42", std::iter::empty(), &mut out).unwrap();
    bind("", &mut out);
    frontend::execute("", 0, &mut out).unwrap();
    frontend::parse("s1", "DROP TABLE users", std::iter::empty(), &mut out).unwrap();
    bind("s1", &mut out);
    frontend::execute("", 0, &mut out).unwrap();
    frontend::sync(&mut out);
    frontend::query("SELECT 7", &mut out).unwrap();
    client.send(&out).unwrap();
    let batch = client.read_until_ready();
    let tags: Vec<u8> = batch.iter().map(|(t, _)| *t).collect();
    assert_eq!(tags, b"12DCEZ", "{batch:?}");
    assert_eq!(sqlstate(&batch[4].1), "42501");
    assert!(field(&batch[4].1, b'M').contains("guardrail.drop"));
    let simple = client.read_until_ready();
    let tags: Vec<u8> = simple.iter().map(|(t, _)| *t).collect();
    assert_eq!(tags, b"TDCZ");
    assert_eq!(&simple.last().unwrap().1, b"I");
    // The refused statement was never prepared upstream.
    let batch = {
        let mut out = bytes::BytesMut::new();
        bind("s1", &mut out);
        frontend::execute("", 0, &mut out).unwrap();
        frontend::sync(&mut out);
        client.send(&out).unwrap();
        client.read_until_ready()
    };
    assert_eq!(sqlstate(&batch[0].1), "26000", "{batch:?}");
    assert_intact(&db);
}

/// A Bind of `statement` to the unnamed portal, without parameters.
fn bind(statement: &str, out: &mut bytes::BytesMut) {
    use bytes::BufMut;
    let mut body = vec![0u8];
    body.extend_from_slice(statement.as_bytes());
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
    out.put_u8(b'B');
    out.put_i32(body.len() as i32 + 4);
    out.extend_from_slice(&body);
}

#[test]
fn unparseable_sql_gets_a_syntax_error_from_vigil_with_its_position() {
    let db = target_db();
    let proxy = guarded_proxy(&db);
    let mut client = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let reply = client.query("SELECT 1 FROM users WHERE; DROP TABLE users");
    assert_eq!(reply[0].0, b'E');
    assert_eq!(sqlstate(&reply[0].1), "42601");
    assert_eq!(
        field(&reply[0].1, b'P'),
        "26",
        "at the semicolon, as PostgreSQL says"
    );
    assert_eq!(reply.last().unwrap().0, b'Z');
    assert_intact(&db);
}

#[test]
fn a_session_that_turns_off_standard_conforming_strings_is_ended() {
    // A function can change the setting where the analyzer cannot see it;
    // the server reports the change and Vigil ends the session.
    let db = target_db();
    db.direct_sql(
        "CREATE FUNCTION sneaky() RETURNS void LANGUAGE sql AS $$ SELECT set_config('standard_conforming_strings', 'off', false) $$",
    );
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let mut client = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    client.query("SELECT sneaky()").len();
    let rest = client.read_to_close();
    let fatal = rest
        .iter()
        .find(|(t, _)| *t == b'E')
        .expect("a FATAL error");
    assert_eq!(sqlstate(&fatal.1), "0A000", "{rest:?}");
    assert!(field(&fatal.1, b'M').contains("standard_conforming_strings"));
}

#[test]
fn reload_applies_a_new_policy_to_running_sessions_and_refuses_a_bad_one() {
    let db = target_db();
    // A folder of its own: the audit store lands beside the config.
    let scratch = TempDir::new("reload");
    let path = &scratch.0.join("vigil.toml");
    let open = config_toml(&db.name, "", "");
    let proxy = Proxy::start_at(&open, path);
    let mut client = RawClient::login(proxy.port, "agent", AGENT_PASSWORD);
    assert_eq!(client.query("SELECT 1 FROM users")[0].0, b'T');

    let closed = config_toml(
        &db.name,
        "",
        "[[rules]]\nid = \"no-users\"\nwhen = { relations = [\"users\"] }\naction = \"deny\"\n",
    );
    let config = vigil_config::Config::from_toml(&closed, path).unwrap();
    proxy.state.reload(config).unwrap();
    let reply = client.query("SELECT 1 FROM users");
    assert_eq!(sqlstate(&reply[0].1), "42501");
    assert!(field(&reply[0].1, b'M').contains("no-users"));

    // A broken policy does not load; the error names the file, line and key.
    let broken = closed.replace("\"deny\"", "\"block\"");
    let error = vigil_config::Config::from_toml(&broken, path)
        .unwrap_err()
        .to_string();
    let named = format!("{}:", path.display());
    assert!(error.starts_with(&named), "{error}");
    assert!(error.contains("action = …"), "{error}");
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(sqlstate(&client.query("SELECT 1 FROM users")[0].1), "42501");
}

#[test]
fn what_vigil_cannot_read_is_refused_and_the_session_carries_on() {
    use bytes::BufMut;
    let db = target_db();
    let proxy = guarded_proxy(&db);
    let mut client = RawClient::login(proxy.port, "agent", AGENT_PASSWORD);
    // Query text that is not UTF-8.
    let mut out = bytes::BytesMut::new();
    let sql = b"SELECT '\xff\xfe' FROM users\0";
    out.put_u8(b'Q');
    out.put_i32(sql.len() as i32 + 4);
    out.extend_from_slice(sql);
    // A fast-path FunctionCall: the function is an OID Vigil cannot see.
    out.put_u8(b'F');
    out.put_i32(4 + 4 + 2 + 2 + 2);
    out.put_i32(1247); // any OID
    out.put_i16(0);
    out.put_i16(0);
    out.put_i16(0);
    client.send(&out).unwrap();
    let reply = client.read_until_ready();
    assert_eq!(sqlstate(&reply[0].1), "22021", "{reply:?}");
    let reply = client.read_until_ready();
    assert_eq!(sqlstate(&reply[0].1), "42501", "{reply:?}");
    assert!(field(&reply[0].1, b'M').contains("guardrail.unknown"));
    assert_eq!(
        client.query("SELECT 1")[0].0,
        b'T',
        "the session carries on"
    );
    assert_intact(&db);
}
