//! The guardrail pack's side doors, tried as the AI agent over both
//! protocols: the function forms of SET ROLE, other sessions, databases,
//! ownership and row-level security, heavy maintenance, the server's own
//! logging, replication slots, large objects, the server's configuration
//! files, WHERE clauses that keep every row, functions that run SQL given as
//! text, and built-in names a user overloaded. Each is refused with the rule
//! that names it, and nothing changed.

use crate::harness::*;

const GUARDED: &str = r#"
[policy]
guardrails = true
guardrails_exempt = { groups = ["dba"] }
"#;

fn target_db() -> TestDb {
    let db = TestDb::create("guards");
    db.direct_sql(
        "CREATE TABLE users (id int PRIMARY KEY, name text);
         INSERT INTO users VALUES (1, 'ada'), (2, 'bob'), (3, 'cy');
         CREATE POLICY everyone ON users USING (true);
         CREATE FUNCTION public.lower(integer) RETURNS text LANGUAGE sql AS $$ SELECT 'shadowed' $$;
         CREATE OPERATOR public.=== (leftarg = integer, rightarg = integer, function = int4eq);",
    );
    db
}

fn proxy(db: &TestDb) -> Proxy {
    Proxy::start(&config_toml_with_db(
        &db.name,
        r#"labels = { environment = "production" }"#,
        "",
        GUARDED,
    ))
}

#[track_caller]
fn assert_intact(db: &TestDb) {
    assert_eq!(
        db.direct_sql("SELECT string_agg(id || name, ',' ORDER BY id) FROM users")
            .trim(),
        "1ada,2bob,3cy"
    );
    assert_eq!(
        db.direct_sql(
            "SELECT count(*) FROM pg_policy WHERE polrelid = 'users'::regclass AND polname = 'everyone'"
        )
        .trim(),
        "1"
    );
    assert_eq!(
        db.direct_sql("SELECT relrowsecurity FROM pg_class WHERE oid = 'users'::regclass")
            .trim(),
        "f"
    );
}

/// Statements and the rule that must refuse each (`{db}`: the database).
fn side_doors(db: &str) -> Vec<(String, &'static str)> {
    let doors: &[(&str, &str)] = &[
        (
            "SELECT set_config('role', 'postgres', false)",
            "guardrail.identity-switch",
        ),
        (
            "SELECT set_config('session_authorization', 'postgres', true)",
            "guardrail.identity-switch",
        ),
        ("SELECT pg_terminate_backend(1)", "guardrail.administration"),
        ("SELECT pg_cancel_backend(1)", "guardrail.administration"),
        (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity",
            "guardrail.administration",
        ),
        ("CREATE DATABASE vigil_guard_victim", "guardrail.databases"),
        (
            "ALTER DATABASE {db} CONNECTION LIMIT 0",
            "guardrail.databases",
        ),
        (
            "ALTER DATABASE {db} ALLOW_CONNECTIONS false",
            "guardrail.databases",
        ),
        ("DROP DATABASE {db}", "guardrail.d"),
        (
            "ALTER TABLE users OWNER TO postgres",
            "guardrail.access-control",
        ),
        (
            "REASSIGN OWNED BY postgres TO postgres",
            "guardrail.access-control",
        ),
        (
            "CREATE POLICY nobody ON users USING (false)",
            "guardrail.access-control",
        ),
        (
            "ALTER POLICY everyone ON users USING (false)",
            "guardrail.access-control",
        ),
        ("DROP POLICY everyone ON users", "guardrail."),
        (
            "ALTER TABLE users ENABLE ROW LEVEL SECURITY",
            "guardrail.access-control",
        ),
        (
            "ALTER TABLE users FORCE ROW LEVEL SECURITY",
            "guardrail.access-control",
        ),
        ("VACUUM FULL users", "guardrail.maintenance"),
        ("VACUUM (FULL, VERBOSE) users", "guardrail.maintenance"),
        ("CLUSTER users USING users_pkey", "guardrail.maintenance"),
        ("LOAD 'auto_explain'", "guardrail.maintenance"),
        ("SET log_statement = 'none'", "guardrail.administration"),
        (
            "SET log_min_duration_statement = -1",
            "guardrail.administration",
        ),
        (
            "SET session_replication_role = replica",
            "guardrail.administration",
        ),
        (
            "SELECT set_config('log_statement', 'none', false)",
            "guardrail.administration",
        ),
        (
            "SELECT pg_create_physical_replication_slot('vigil_guard_slot')",
            "guardrail.administration",
        ),
        (
            "SELECT pg_drop_replication_slot('vigil_guard_slot')",
            "guardrail.administration",
        ),
        (
            "SELECT * FROM pg_logical_slot_get_changes('vigil_guard_slot', NULL, NULL)",
            "guardrail.administration",
        ),
        ("SELECT lo_from_bytea(0, 'x')", "guardrail.large-objects"),
        ("SELECT lo_unlink(1)", "guardrail.large-objects"),
        ("SELECT * FROM pg_hba_file_rules", "guardrail.server-config"),
        (
            "SELECT * FROM pg_catalog.pg_file_settings",
            "guardrail.server-config",
        ),
        (
            "SELECT * FROM pg_catalog.pg_hba_file_rules()",
            "guardrail.administration",
        ),
        (
            "UPDATE users SET name = 'x' WHERE true",
            "guardrail.update-without-where",
        ),
        (
            "DELETE FROM users WHERE 1 = 1",
            "guardrail.delete-without-where",
        ),
        (
            "DELETE FROM users WHERE id = 1 OR true",
            "guardrail.delete-without-where",
        ),
        (
            "MERGE INTO users USING (SELECT 1 AS id) s ON true WHEN MATCHED THEN DELETE",
            "guardrail.merge-without-where",
        ),
        (
            "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')",
            "guardrail.unknown",
        ),
        (
            "SELECT query_to_xml('DELETE FROM users', true, false, '')",
            "guardrail.unknown",
        ),
        ("SELECT lower(1)", "guardrail.unknown"),
        ("SELECT 1 === 1", "guardrail.unknown"),
    ];
    doors
        .iter()
        .map(|(sql, rule)| (sql.replace("{db}", db), *rule))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_side_door_is_refused_over_both_protocols() {
    let db = target_db();
    let proxy = proxy(&db);
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    for (sql, rule) in side_doors(&db.name) {
        for extended in [false, true] {
            let error = match extended {
                false => agent.simple_query(&sql).await.map(|_| ()),
                true => agent.execute(sql.as_str(), &[]).await.map(|_| ()),
            }
            .expect_err(&format!("refused: {sql}"));
            let db_error = error
                .as_db_error()
                .unwrap_or_else(|| panic!("{sql}: {error}"));
            assert_eq!(
                db_error.code().code(),
                "42501",
                "{sql}: {}",
                db_error.message()
            );
            assert!(
                db_error.message().contains(rule),
                "{sql} (extended: {extended}): {}",
                db_error.message()
            );
        }
        assert_intact(&db);
    }
    // The session carries on, and ordinary work still runs (a built-in no
    // user overloaded; `lower` now may be the user's).
    let rows = agent
        .query("SELECT upper(name) FROM users WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "ADA");
    agent.simple_query("VACUUM users").await.unwrap();
    agent
        .simple_query("UPDATE users SET name = 'ada' WHERE id = 1")
        .await
        .unwrap();
    // A DBA the pack exempts still can (and the shadowed lower runs the user's).
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    let row = alice.query_one("SELECT lower(1)", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "shadowed");
}

#[test]
fn the_quickstart_holds_what_the_pack_does_not_deny_for_approval() {
    let db = target_db();
    let proxy = Proxy::start(&config_toml(
        &db.name,
        "",
        r#"
[[rules]]
id = "agent-writes-need-approval"
when = { identity_kinds = ["agent"], classes = ["write", "ddl", "dcl", "admin"] }
action = "review"
approval = "refuse"
approvers = { groups = ["dba"], count = 1 }
"#,
    ));
    for sql in [
        "SELECT pg_cancel_backend(1)",
        "ALTER TABLE users OWNER TO postgres",
        "SET log_statement = 'none'",
        "SELECT nextval('users_seq')",
        "SELECT lo_unlink(1)",
    ] {
        let out = proxy.psql("agent", AGENT_PASSWORD, &["-c", sql]);
        assert!(
            stderr(&out).contains("needs approval"),
            "{sql}: {}",
            stderr(&out)
        );
    }
    assert_intact(&db);
}

/// `set_config` with its setting or value bound as a parameter (as drivers
/// send it) is decided on the values bound: harmless ones run, the rest are
/// refused as their literal forms are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_set_config_is_decided_on_the_values_bound() {
    let db = target_db();
    let proxy = proxy(&db);
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let both = "SELECT set_config($1, $2, false)";
    let value = "SELECT set_config('client_encoding', $1, false)";
    for (sql, params) in [
        (both, vec!["client_encoding", "UTF8"]),
        (both, vec!["statement_timeout", "5s"]),
        (both, vec!["application_name", "it's mine"]),
        (value, vec!["utf8"]),
    ] {
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p as _).collect();
        let row = agent
            .query_one(sql, &params)
            .await
            .unwrap_or_else(|e| panic!("{sql} {params:?}: {e:?}"));
        let _: String = row.get(0);
    }
    for (sql, params, rule) in [
        (
            both,
            vec!["standard_conforming_strings", "off"],
            "vigil.parser-integrity",
        ),
        (
            both,
            vec!["search_path", "public, pg_catalog"],
            "vigil.parser-integrity",
        ),
        (
            both,
            vec!["client_encoding", "SJIS"],
            "vigil.parser-integrity",
        ),
        (value, vec!["GBK"], "vigil.parser-integrity"),
        (both, vec!["role", "postgres"], "guardrail.identity-switch"),
        (
            both,
            vec!["log_statement", "none"],
            "guardrail.administration",
        ),
    ] {
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p as _).collect();
        let error = agent.query_one(sql, &params).await.expect_err(sql);
        let db_error = error.as_db_error().unwrap();
        assert_eq!(db_error.code().code(), "42501", "{params:?}: {db_error:?}");
        assert!(
            db_error.message().contains(rule),
            "{params:?}: {db_error:?}"
        );
    }
    let row = agent
        .query_one("SHOW standard_conforming_strings", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "on");
}
