//! Defence in depth: identities mapped to upstream roles of their own, and
//! the limits on sessions and on connections that have not started yet.
//!
//! Each mapped session runs in its role from its first statement; every form
//! of the switch back is refused, over the simple and the extended protocol;
//! code Vigil cannot see into that switches anyway ends the session before
//! anything else runs; what the role may not do fails at the server even
//! where Vigil's policy allows it; and `pg_stat_activity` keeps one role's SQL
//! from another.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;

/// A role on the shared cluster for one test, dropped after it. Declare it
/// before the test's database, so the database (and the role's privileges
/// in it) goes first.
struct TestRole {
    name: String,
}

impl TestRole {
    fn new(tag: &str) -> TestRole {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TestRole {
            name: format!("vigil_e2e_{tag}_{}_{n}", std::process::id()),
        }
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                "-X", "-q", "-h", PG_HOST, "-U", "postgres", "-d", "postgres", "-c",
            ])
            .arg(format!("DROP ROLE IF EXISTS \"{}\"", self.name))
            .output();
    }
}

const BOB_PASSWORD: &str = "bob-demo";

/// A config serving `db` where agents run as `agent_role` (which may read
/// and change tables, nothing else) and bob as `bob_role` (read only).
/// No guardrails: what the roles may not do must fail at the server.
fn mapped_config(db: &TestDb, agent_role: &str, bob_role: &str, db_extra: &str) -> String {
    let roles = format!(
        r#"{db_extra}
[[databases.roles]]
role = "{agent_role}"
identity_kinds = ["agent"]
grants = ["USAGE ON SCHEMA public", "SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public", "USAGE ON ALL SEQUENCES IN SCHEMA public"]

[[databases.roles]]
role = "{bob_role}"
identities = ["bob"]
grants = ["SELECT ON ALL TABLES IN SCHEMA public"]
"#
    );
    let extra = format!(
        "{}\n{}",
        identity_toml("bob", "person", &[], BOB_PASSWORD),
        viewer_token_toml()
    );
    config_toml_with_db(&db.name, &roles, "", &extra)
}

/// Creates the roles `toml` maps to, with their grants, as `vigil roles
/// provision` does; returns what it printed.
async fn provision(toml: &str) -> Vec<String> {
    let config = vigil_config::Config::from_toml(toml, Path::new("/tmp/vigil-e2e-roles.toml"))
        .unwrap_or_else(|e| panic!("test config: {e}"));
    vigil_server::provision_roles(&config, None, true)
        .await
        .expect("provisioning")
}

fn shop(tag: &str) -> TestDb {
    let db = TestDb::create(tag);
    db.direct_sql(
        "CREATE TABLE items (id serial PRIMARY KEY, name text);
         INSERT INTO items (name) VALUES ('ada'), ('bob');",
    );
    db
}

async fn current_user(client: &tokio_postgres::Client) -> String {
    client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("current_user")
        .get(0)
}

/// The SQLSTATE and message of `result`'s error; panics if it succeeded.
fn failure<T: std::fmt::Debug>(
    result: Result<T, tokio_postgres::Error>,
    what: &str,
) -> (String, String) {
    let error = result.expect_err(what);
    let db = error
        .as_db_error()
        .unwrap_or_else(|| panic!("{what}: not a server error: {error}"));
    (db.code().code().to_owned(), db.message().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_identity_runs_in_its_role_and_no_form_of_the_switch_leaves_it() {
    let (agent_role, bob_role) = (TestRole::new("agent"), TestRole::new("bob"));
    let db = shop("roles");
    let toml = mapped_config(&db, &agent_role.name, &bob_role.name, "");
    let done = provision(&toml).await;
    assert!(
        done.iter()
            .any(|l| l == &format!("demo: created role {} (NOLOGIN)", agent_role.name)),
        "{done:?}"
    );
    // Created as the issue asks: no login, no superuser, only the grants named.
    assert_eq!(
        db.direct_sql(&format!(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls,
                    has_table_privilege('{0}', 'items', 'SELECT'),
                    has_table_privilege('{0}', 'items', 'UPDATE'),
                    has_table_privilege('{0}', 'items', 'DELETE'),
                    has_table_privilege('{0}', 'items', 'TRUNCATE')
             FROM pg_roles WHERE rolname = '{0}'",
            agent_role.name
        ))
        .trim(),
        "f|f|f|f|f|t|t|f|f"
    );
    // Provisioning again changes nothing and says so.
    let again = provision(&toml).await;
    assert!(
        again
            .iter()
            .any(|l| l == &format!("demo: role {} exists", agent_role.name)),
        "{again:?}"
    );

    let proxy = Proxy::start(&toml);
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let row = agent
        .query_one("SELECT current_user::text, session_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), agent_role.name);
    assert_eq!(row.get::<_, String>(1), "postgres");
    let superuser = agent.simple_query("SHOW is_superuser").await.unwrap();
    let superuser: Vec<_> = superuser
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .collect();
    assert!(
        matches!(&superuser[0], tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("off"))
    );

    let switches = [
        "SET ROLE postgres",
        "SET SESSION ROLE postgres",
        "SET LOCAL ROLE postgres",
        "set role to 'postgres'",
        "RESET ROLE",
        "SET ROLE NONE",
        "SET role TO DEFAULT",
        "SET SESSION AUTHORIZATION postgres",
        "SET SESSION AUTHORIZATION DEFAULT",
        "RESET SESSION AUTHORIZATION",
        "SELECT set_config('role', 'postgres', false)",
        "SELECT pg_catalog.set_config('ROLE', 'none', true)",
        "SELECT set_config('session_authorization', 'postgres', false)",
        "WITH s AS (SELECT set_config('role', 'postgres', false)) SELECT * FROM s",
        "SELECT 1 WHERE set_config('role', 'postgres', false) IS NOT NULL",
        "PREPARE p AS SELECT set_config('role', 'postgres', false)",
        "EXPLAIN ANALYZE SELECT set_config('role', 'postgres', false)",
        "DISCARD ALL",
        "discard /* all of it */ all",
        "SELECT 1; RESET ROLE",
    ];
    for sql in switches {
        for extended in [false, true] {
            let (code, message) = match extended {
                true => failure(agent.query(sql, &[]).await, sql),
                false => failure(agent.simple_query(sql).await, sql),
            };
            if extended && sql.contains(';') {
                // Not one statement: the server itself refuses it in a Parse.
                continue;
            }
            assert_eq!(code, "42501", "{sql}: {message}");
            assert!(message.contains("vigil.role-lock"), "{sql}: {message}");
            assert_eq!(current_user(&agent).await, agent_role.name, "after {sql}");
        }
    }
    // The bound form: the setting's name arrives only with Bind.
    let (code, message) = failure(
        agent
            .query("SELECT set_config($1, 'postgres', false)", &[&"role"])
            .await,
        "bound set_config",
    );
    assert_eq!(code, "42501", "{message}");
    assert_eq!(current_user(&agent).await, agent_role.name);

    // What the role may not do fails at the server, though Vigil allows it.
    let (code, message) = failure(agent.simple_query("DROP TABLE items").await, "DROP");
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("42501", "must be owner of table items")
    );
    let (code, _) = failure(agent.simple_query("DELETE FROM items").await, "DELETE");
    assert_eq!(code, "42501");
    let (code, _) = failure(
        agent.simple_query("CREATE TABLE mine (x int)").await,
        "CREATE",
    );
    assert_eq!(code, "42501");
    agent
        .simple_query("INSERT INTO items (name) VALUES ('cy'); UPDATE items SET name = 'ada2' WHERE name = 'ada'")
        .await
        .expect("the role may insert and update");
    assert_eq!(db.direct_sql("SELECT count(*) FROM items").trim(), "3");

    // psql, the same: each switch refused with the rule, the session usable.
    let out = proxy.psql(
        "agent",
        AGENT_PASSWORD,
        &[
            "-At",
            "-c",
            "SET ROLE postgres",
            "-c",
            "RESET ROLE",
            "-c",
            "SELECT set_config('role', 'postgres', false)",
            "-c",
            "SET SESSION AUTHORIZATION DEFAULT",
            "-c",
            "DISCARD ALL",
            "-c",
            "SELECT current_user",
        ],
    );
    assert_eq!(
        stderr(&out).matches("vigil.role-lock").count(),
        5,
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out).trim(), agent_role.name);

    // alice is not mapped: she keeps the service role.
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    assert_eq!(current_user(&alice).await, "postgres");
    let bob = proxy.connect("bob", BOB_PASSWORD).await;
    assert_eq!(current_user(&bob).await, bob_role.name);
    let (code, _) = failure(
        bob.simple_query("UPDATE items SET name = 'x'").await,
        "bob UPDATE",
    );
    assert_eq!(code, "42501");

    // session.start records the role each session runs in.
    drop((agent, alice, bob));
    proxy.audit_sync();
    let records = audit_records(&proxy.audit_store());
    let role_of = |identity: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| r["kind"] == "session.start" && r["body"]["identity"] == identity)
            .map(|r| r["body"]["upstream_role"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert!(
        role_of("agent").iter().all(|r| *r == agent_role.name),
        "{:?}",
        role_of("agent")
    );
    assert!(!role_of("agent").is_empty());
    assert_eq!(role_of("alice"), ["postgres"]);
    assert_eq!(role_of("bob"), std::slice::from_ref(&bob_role.name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_vigil_cannot_see_into_cannot_keep_the_session_out_of_its_role() {
    let (agent_role, bob_role) = (TestRole::new("agent"), TestRole::new("bob"));
    let db = shop("roles_opaque");
    // Functions a DBA left behind that switch roles: Vigil cannot see into
    // them, and the policy here lets agents call them.
    db.direct_sql(
        "CREATE FUNCTION public.become_postgres() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RESET ROLE; RETURN current_user; END $$;
         CREATE FUNCTION public.become(r text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('SET ROLE %I', r); RETURN current_user; END $$;
         CREATE FUNCTION public.become_then_fail(r text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('SET ROLE %I', r); RETURN 1/0; END $$;",
    );
    let toml = mapped_config(&db, &agent_role.name, &bob_role.name, "");
    provision(&toml).await;
    let proxy = Proxy::start(&toml);

    // To a superuser: the server reports is_superuser on, and the session ends.
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let _ = agent.simple_query("SELECT become_postgres()").await;
    let after = agent.query_one("SELECT current_user::text", &[]).await;
    assert!(
        after.is_err(),
        "the session went on as {:?}",
        after.map(|r| r.get::<_, String>(0))
    );

    // To another role: the next batch waits for Vigil's check, which ends
    // the session before it runs.
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let switched = agent
        .query_one("SELECT become($1)", &[&bob_role.name])
        .await
        .expect("the function runs");
    assert_eq!(switched.get::<_, String>(0), bob_role.name);
    let after = agent.query_one("SELECT current_user::text", &[]).await;
    assert!(
        after.is_err(),
        "the session went on as {:?}",
        after.map(|r| r.get::<_, String>(0))
    );

    // Pipelined (tokio-postgres sends both before reading either answer).
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let other: &str = &bob_role.name;
    let parameters: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&other];
    let (switch, whoami) = (
        agent.prepare("SELECT become($1)").await.unwrap(),
        agent.prepare("SELECT current_user::text").await.unwrap(),
    );
    // Prepared, each query is one write (Bind, Execute, Sync), in this order.
    let (switched, after) = tokio::join!(
        agent.query_one(&switch, &parameters),
        agent.query_one(&whoami, &[]),
    );
    assert!(switched.is_ok(), "{switched:?}");
    assert!(
        after.is_err(),
        "the session went on as {:?}",
        after.map(|r| r.get::<_, String>(0))
    );

    // The same with a simple Query after it, which names nothing Vigil
    // would have to look up.
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let switch = agent.prepare("SELECT become($1)").await.unwrap();
    let (switched, after) = tokio::join!(
        agent.query_one(&switch, &parameters),
        agent.simple_query("SELECT current_user"),
    );
    assert!(switched.is_ok(), "{switched:?}");
    assert!(after.is_err(), "the session went on: {after:?}");

    // A failed transaction answers no question, so no savepoint can be
    // rolled back to before the role is confirmed; the whole transaction
    // can. (A savepoint taken after the switch, in the same Query, is
    // refused as running after unseen code.)
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    agent.simple_query("BEGIN; SAVEPOINT s").await.unwrap();
    let failed = agent
        .simple_query(&format!("SELECT become_then_fail('{}')", bob_role.name))
        .await;
    assert!(failed.is_err());
    let (code, message) = failure(agent.simple_query("ROLLBACK TO s").await, "ROLLBACK TO");
    assert_eq!(code, "42501", "{message}");
    assert!(message.contains("vigil.role-lock"), "{message}");
    agent.simple_query("ROLLBACK").await.expect("ROLLBACK");
    assert_eq!(current_user(&agent).await, agent_role.name);

    // A DO block that switches and stays switched ends the session too.
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let _ = agent.simple_query("DO $$ BEGIN RESET ROLE; END $$").await;
    assert!(agent.simple_query("SELECT 1").await.is_err());

    // Every session of alice (unmapped) is untouched by any of it.
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    assert_eq!(current_user(&alice).await, "postgres");
}

/// Whether one of `messages` is an ErrorResponse with `code` naming the
/// role lock.
fn refused_by_role_lock(messages: &[(u8, Vec<u8>)], code: &str) -> bool {
    messages.iter().any(|(tag, body)| {
        let text = String::from_utf8_lossy(body);
        *tag == b'E' && text.contains(&format!("C{code}\0")) && text.contains("vigil.role-lock")
    })
}

fn data_rows(messages: &[(u8, Vec<u8>)]) -> Vec<String> {
    messages
        .iter()
        .filter(|(tag, _)| *tag == b'D')
        .map(|(_, body)| String::from_utf8_lossy(&body[6..]).into_owned())
        .collect()
}

#[test]
fn nothing_runs_after_unseen_code_before_the_role_is_confirmed() {
    use bytes::BytesMut;
    use postgres_protocol::message::frontend;

    let (agent_role, bob_role) = (TestRole::new("agent"), TestRole::new("bob"));
    let db = shop("roles_after_unseen");
    db.direct_sql(
        "CREATE FUNCTION public.become(r text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('SET ROLE %I', r); RETURN current_user; END $$;
         CREATE FUNCTION public.switch_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RESET ROLE; RETURN NEW; END $$;",
    );
    let toml = mapped_config(&db, &agent_role.name, &bob_role.name, "");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(provision(&toml));
    let proxy = Proxy::start(&toml);

    // One extended batch: the call that switches, then a read. The read
    // would run as the other role before Vigil could ask: it is refused.
    // That fails the batch's implicit transaction, which undoes the switch,
    // so the next batch finds the session in its role.
    let mut raw = RawClient::login(proxy.port, "agent", AGENT_PASSWORD);
    let mut out = BytesMut::new();
    frontend::parse("", "SELECT become($1)", [], &mut out).unwrap();
    bind(&mut out, "", "", &[&bob_role.name]);
    frontend::execute("", 0, &mut out).unwrap();
    frontend::parse("", "SELECT current_user::text", [], &mut out).unwrap();
    bind(&mut out, "", "", &[]);
    frontend::execute("", 0, &mut out).unwrap();
    frontend::sync(&mut out);
    raw.send(&out).unwrap();
    let answers = raw.read_until_ready();
    assert_eq!(data_rows(&answers).len(), 1, "{answers:?}");
    assert!(refused_by_role_lock(&answers, "42501"), "{answers:?}");
    let mut out = BytesMut::new();
    frontend::query("SELECT current_user::text", &mut out).unwrap();
    raw.send(&out).unwrap();
    let answers = raw.read_until_ready();
    assert_eq!(
        data_rows(&answers),
        std::slice::from_ref(&agent_role.name),
        "{answers:?}"
    );

    // The same after ending a failed transaction in that batch: the
    // session's status before the batch says nothing of what runs in it.
    let mut out = BytesMut::new();
    frontend::query("BEGIN; SELECT 1/0", &mut out).unwrap();
    raw.send(&out).unwrap();
    raw.read_until_ready();
    let mut out = BytesMut::new();
    for (sql, params) in [
        ("ROLLBACK", vec![]),
        ("SELECT become($1)", vec![bob_role.name.as_str()]),
        ("SELECT current_user::text", vec![]),
    ] {
        frontend::parse("", sql, [], &mut out).unwrap();
        bind(&mut out, "", "", &params);
        frontend::execute("", 0, &mut out).unwrap();
    }
    frontend::sync(&mut out);
    raw.send(&out).unwrap();
    let answers = raw.read_until_ready();
    assert_eq!(data_rows(&answers).len(), 1, "{answers:?}");
    assert!(refused_by_role_lock(&answers, "42501"), "{answers:?}");

    // A switch that stays: the next Query hears a FATAL naming the rule,
    // and nothing of it runs.
    let mut switched = RawClient::login(proxy.port, "agent", AGENT_PASSWORD);
    let mut out = BytesMut::new();
    frontend::query(&format!("SELECT become('{}')", bob_role.name), &mut out).unwrap();
    switched.send(&out).unwrap();
    let answers = switched.read_until_ready();
    assert_eq!(data_rows(&answers), std::slice::from_ref(&bob_role.name));
    let mut out = BytesMut::new();
    frontend::query("SELECT current_user::text", &mut out).unwrap();
    switched.send(&out).unwrap();
    let end = switched.read_to_close();
    assert!(data_rows(&end).is_empty(), "{end:?}");
    assert!(refused_by_role_lock(&end, "42501"), "{end:?}");

    // One Query that switches, reads and switches back: nothing of it runs.
    let mut raw = RawClient::login(proxy.port, "agent", AGENT_PASSWORD);
    let mut out = BytesMut::new();
    frontend::query(
        &format!(
            "SELECT become('{}'); SELECT current_user::text; SELECT become('{}')",
            bob_role.name, agent_role.name
        ),
        &mut out,
    )
    .unwrap();
    raw.send(&out).unwrap();
    let answers = raw.read_until_ready();
    assert!(data_rows(&answers).is_empty(), "{answers:?}");
    assert!(refused_by_role_lock(&answers, "42501"), "{answers:?}");
    let mut out = BytesMut::new();
    frontend::query("SELECT current_user::text", &mut out).unwrap();
    raw.send(&out).unwrap();
    let answers = raw.read_until_ready();
    assert_eq!(data_rows(&answers), std::slice::from_ref(&agent_role.name));

    // Code defined now would run later without being named (a trigger, a
    // default, a view, a rule): defining it is refused.
    let definitions = [
        "CREATE FUNCTION pg_temp.f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RESET ROLE; RETURN NEW; END $$",
        "CREATE OR REPLACE PROCEDURE pg_temp.p() LANGUAGE sql AS 'SELECT 1'",
        "CREATE TEMP TABLE d (x text DEFAULT public.become('postgres'))",
        "CREATE TEMP TABLE c (x text CHECK (public.become(x) IS NOT NULL))",
        "CREATE TEMP VIEW v AS SELECT public.become('postgres')",
        "CREATE TEMP TABLE t (x int); CREATE TRIGGER tt BEFORE INSERT ON pg_temp.t FOR EACH ROW EXECUTE FUNCTION public.switch_trigger()",
        "CREATE TEMP TABLE r (x int); CREATE RULE rr AS ON INSERT TO pg_temp.r DO ALSO SELECT 1",
    ];
    for sql in definitions {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).unwrap();
        raw.send(&out).unwrap();
        let answers = raw.read_until_ready();
        assert!(
            refused_by_role_lock(&answers, "42501"),
            "{sql}: {answers:?}"
        );
    }
    let mut out = BytesMut::new();
    frontend::query(
        "CREATE TEMP TABLE plain (x int DEFAULT 1, y timestamptz DEFAULT now()); INSERT INTO plain DEFAULT VALUES; SELECT current_user::text",
        &mut out,
    )
    .unwrap();
    raw.send(&out).unwrap();
    let answers = raw.read_until_ready();
    assert_eq!(
        data_rows(&answers),
        std::slice::from_ref(&agent_role.name),
        "{answers:?}"
    );
}

/// The queries with `marker` that `client` sees in pg_stat_activity.
async fn seen(client: &tokio_postgres::Client, marker: &str) -> Vec<String> {
    let pattern = format!("SELECT '%-{marker}'");
    let rows = client
        .query(
            "SELECT query FROM pg_stat_activity WHERE query LIKE $1 ORDER BY query",
            &[&pattern],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_stat_activity_keeps_one_roles_sql_from_another() {
    let (agent_role, bob_role) = (TestRole::new("agent"), TestRole::new("bob"));
    let db = shop("roles_activity");
    let toml = mapped_config(&db, &agent_role.name, &bob_role.name, "");
    provision(&toml).await;
    let proxy = Proxy::start(&toml);
    let marker = format!("marker-{}", std::process::id());

    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    alice
        .simple_query(&format!("SELECT 'alice-{marker}'"))
        .await
        .unwrap();
    let bob = proxy.connect("bob", BOB_PASSWORD).await;
    bob.simple_query(&format!("SELECT 'bob-{marker}'"))
        .await
        .unwrap();
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    agent
        .simple_query(&format!("SELECT 'agent-{marker}'"))
        .await
        .unwrap();

    // The server has all three; the DBA (the service role) sees them all.
    let direct = db.direct_sql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT ''%-{marker}'''"
    ));
    assert_eq!(direct.trim(), "3");
    assert_eq!(seen(&alice, &marker).await.len(), 2);
    // An agent sees neither alice's nor bob's SQL, and bob not the agent's.
    assert_eq!(seen(&agent, &marker).await, Vec::<String>::new());
    assert_eq!(seen(&bob, &marker).await, Vec::<String>::new());
    let hidden = agent
        .query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = '<insufficient privilege>'",
            &[],
        )
        .await
        .unwrap();
    assert!(hidden[0].get::<_, i64>(0) >= 2);
}

/// The SQLSTATE and message a login of `user` is refused with.
async fn refused_login(proxy: &Proxy, user: &str, password: &str) -> (String, String) {
    let refused = tokio_postgres::connect(
        &format!("{} password={password}", proxy.conninfo(user)),
        tokio_postgres::NoTls,
    )
    .await;
    failure(
        refused.map(|_| ()),
        &format!("a login of {user} over the limit"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_limited_per_identity_and_per_database() {
    let db = TestDb::create("limits");
    let toml = config_toml_with_db(&db.name, "max_sessions = 3", "", &viewer_token_toml()).replace(
        "kind = \"agent\"\ngroups = [\"ai-agents\"]\n",
        "kind = \"agent\"\ngroups = [\"ai-agents\"]\nmax_sessions = 2\n",
    );
    assert!(toml.contains("max_sessions = 2"));
    let proxy = Proxy::start(&toml);
    let first = proxy.connect("agent", AGENT_PASSWORD).await;
    let second = proxy.connect("agent", AGENT_PASSWORD).await;
    let (code, message) = refused_login(&proxy, "agent", AGENT_PASSWORD).await;
    assert_eq!(code, "53300");
    assert!(
        message.contains("identity \"agent\" is limited to 2"),
        "{message}"
    );
    // psql says the same.
    let out = proxy.psql("agent", AGENT_PASSWORD, &["-c", "SELECT 1"]);
    assert!(stderr(&out).contains("limited to 2"), "{}", stderr(&out));

    // The database: alice takes the third place; a fourth session waits for one.
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    let (code, message) = refused_login(&proxy, "alice", ALICE_PASSWORD).await;
    assert_eq!(code, "53300");
    assert!(
        message.contains("database \"demo\" is limited to 3"),
        "{message}"
    );

    // A place given back is taken again; the sessions left work throughout.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    let third = loop {
        match tokio_postgres::connect(
            &format!("{} password={AGENT_PASSWORD}", proxy.conninfo("agent")),
            tokio_postgres::NoTls,
        )
        .await
        {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                break client;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the freed place: {e}"),
        }
    };
    for client in [&second, &third, &alice] {
        client.simple_query("SELECT 1").await.unwrap();
    }
    let metrics = scrape(&proxy);
    assert!(
        value(
            &metrics,
            "vigil_connections_refused_total{reason=\"identity_max_sessions\"}"
        ) >= 2.0,
        "{metrics}"
    );
    assert!(
        value(
            &metrics,
            "vigil_connections_refused_total{reason=\"database_max_sessions\"}"
        ) >= 1.0,
        "{metrics}"
    );
}

/// A login with tokio-postgres from `source` (a loopback address).
async fn connect_from(
    source: [u8; 4],
    port: u16,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    let stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let mut config = tokio_postgres::Config::new();
    config.user(user).password(password).dbname("demo");
    let (client, connection) = config.connect_raw(stream, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Whether the server end of `socket` is closed (or has said something and
/// closed), without waiting.
fn closed(socket: &mut TcpStream) -> bool {
    socket.set_nonblocking(true).unwrap();
    let mut buffer = [0u8; 256];
    loop {
        match socket.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_sockets_from_one_address_does_not_lock_out_another() {
    const FLOOD: usize = 300;
    const PER_ADDRESS: usize = 8;
    let db = TestDb::create("flood");
    let toml = config_toml(
        &db.name,
        &format!("max_client_connections = 40\nmax_startups_per_address = {PER_ADDRESS}"),
        &viewer_token_toml(),
    )
    .replace("[auth]\n", "[auth]\nfirst_message_secs = 3\n");
    let proxy = Proxy::start(&toml);

    // Without the per-address cap these would hold all 40 places for the
    // whole auth timeout, and everyone else would get 53300.
    let started = Instant::now();
    let mut flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| TcpStream::connect(("127.0.0.1", proxy.port)).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let other = connect_from([127, 0, 0, 2], proxy.port, "alice", ALICE_PASSWORD)
        .await
        .expect("a client from another address gets in during the flood");
    other.simple_query("SELECT 1").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "before the flood times out"
    );

    let open = flood.iter_mut().map(closed).filter(|c| !c).count();
    assert!(open <= PER_ADDRESS, "{open} idle sockets still held");
    // The sockets that said nothing are let go after first_message_secs.
    let deadline = Instant::now() + Duration::from_secs(8);
    while flood.iter_mut().any(|s| !closed(&mut *s)) {
        assert!(
            Instant::now() < deadline,
            "idle sockets held past first_message_secs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(flood);
    // And the flooding address is served again.
    let again = connect_from([127, 0, 0, 1], proxy.port, "alice", ALICE_PASSWORD)
        .await
        .expect("127.0.0.1 once its flood is gone");
    again.simple_query("SELECT 1").await.unwrap();

    let metrics = scrape(&proxy);
    let over = value(
        &metrics,
        "vigil_connections_refused_total{reason=\"max_startups_per_address\"}",
    );
    let silent = value(
        &metrics,
        "vigil_connections_refused_total{reason=\"first_message_timeout\"}",
    );
    assert!(over >= (FLOOD - PER_ADDRESS) as f64, "{metrics}");
    assert!(silent >= 1.0 && silent <= PER_ADDRESS as f64, "{metrics}");
}

#[test]
fn a_refused_address_hears_why() {
    let db = TestDb::create("flood_word");
    let proxy = Proxy::start(&config_toml(&db.name, "max_startups_per_address = 1", ""));
    let _held = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut refused = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    refused
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (tag, body) = read_message(&mut refused).expect("an error before the close");
    assert_eq!(tag, b'E');
    assert_eq!(sqlstate(&body), "53300");
}

#[test]
fn a_startup_search_path_is_held_to_the_rule_of_set() {
    let db = TestDb::create("startup_path");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    for settings in [
        "options='-c search_path=evil,pg_catalog'",
        "options='--search_path=public,pg_catalog'",
    ] {
        let out = proxy.psql_with("alice", ALICE_PASSWORD, settings, &["-c", "SELECT 1"]);
        assert!(!out.status.success(), "{settings}");
        assert!(
            stderr(&out).contains("search_path"),
            "{settings}: {}",
            stderr(&out)
        );
    }
    // The SET equivalent is refused by the same rule; pg_catalog first is fine both ways.
    let out = proxy.psql(
        "alice",
        ALICE_PASSWORD,
        &["-c", "SET search_path = evil, pg_catalog"],
    );
    assert!(
        stderr(&out).contains("vigil.parser-integrity"),
        "{}",
        stderr(&out)
    );
    let out = proxy.psql_with(
        "alice",
        ALICE_PASSWORD,
        "options='-c search_path=pg_catalog,public'",
        &["-At", "-c", "SHOW search_path"],
    );
    assert_eq!(stdout(&out).trim(), "pg_catalog,public", "{}", stderr(&out));
}
