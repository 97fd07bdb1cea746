//! Relations, columns, normalization and fingerprints of ordinary statements.

use super::*;
use crate::ColumnRef;

fn col(relation: Option<&str>, column: &str) -> ColumnRef {
    ColumnRef {
        relation: relation.map(str::to_owned),
        column: column.to_owned(),
    }
}

#[test]
fn aliases_resolve_to_their_relations() {
    let s =
        one("SELECT u.ssn, o.total, name FROM public.users u JOIN orders AS o ON o.user_id = u.id");
    assert_eq!(
        s.relations,
        vec![rel(Some("public"), "users", Access::Read), read("orders")]
    );
    assert_eq!(
        s.columns,
        vec![
            col(Some("public.users"), "ssn"),
            col(Some("orders"), "total"),
            col(None, "name"),
            col(Some("orders"), "user_id"),
            col(Some("public.users"), "id"),
        ]
    );
}

#[test]
fn unqualified_columns_of_a_single_relation_are_attributed() {
    let s = one("SELECT ssn, * FROM customers WHERE id = 1");
    assert_eq!(
        s.columns,
        vec![
            col(Some("customers"), "ssn"),
            col(Some("customers"), "*"),
            col(Some("customers"), "id")
        ]
    );
    // A second FROM source makes an unqualified column ambiguous.
    let s = one("SELECT x FROM customers, generate_series(1, 3) g");
    assert_eq!(s.columns, vec![col(None, "x")]);
}

#[test]
fn qualifiers_that_are_not_relations_are_not_guessed() {
    let s = one("SELECT s.a, c.b, t.c FROM (SELECT 1 AS a) s, f() c, t");
    assert_eq!(
        s.columns,
        vec![col(None, "a"), col(None, "b"), col(Some("t"), "c")]
    );
    let s = one("SELECT x.a FROM t x, (SELECT 1) x");
    assert_eq!(s.columns, vec![col(None, "a")]);
    let s = one("SELECT public.t.a, db.public.t.b FROM public.t");
    assert_eq!(
        s.columns,
        vec![col(Some("public.t"), "a"), col(Some("public.t"), "b")]
    );
}

#[test]
fn assigned_columns_belong_to_the_target() {
    let s = one("INSERT INTO public.t (a, b) VALUES (1, 2) ON CONFLICT (a) DO UPDATE SET c = 3");
    assert_eq!(
        s.columns,
        vec![
            col(Some("public.t"), "a"),
            col(Some("public.t"), "b"),
            col(Some("public.t"), "c")
        ]
    );
    let s = one("UPDATE t SET a = u.b FROM u WHERE t.id = u.id");
    assert_eq!(s.relations, vec![write("t"), read("u")]);
    assert_eq!(
        s.columns,
        vec![
            col(Some("t"), "a"),
            col(Some("u"), "b"),
            col(Some("t"), "id"),
            col(Some("u"), "id")
        ]
    );
    let s = one("COPY t (a, b) FROM STDIN");
    assert_eq!(s.columns, vec![col(Some("t"), "a"), col(Some("t"), "b")]);
}

#[test]
fn relations_are_deduplicated_per_access() {
    let s = one("UPDATE t SET a = (SELECT max(a) FROM t) WHERE id IN (SELECT id FROM t)");
    assert_eq!(s.relations, vec![write("t"), read("t")]);
    let s = one("SELECT * FROM t JOIN t t2 USING (id)");
    assert_eq!(s.relations, vec![read("t")]);
}

#[test]
fn ddl_dcl_and_maintenance_write_what_they_act_on() {
    let cases: &[(&str, &[Relation])] = &[
        (
            "CREATE TABLE t (a int REFERENCES u)",
            &[write("t"), write("u")],
        ),
        ("CREATE INDEX i ON t (a)", &[write("t")]),
        ("CREATE VIEW v AS SELECT * FROM t", &[write("v"), read("t")]),
        (
            "CREATE TABLE t2 AS SELECT * FROM t",
            &[read("t"), write("t2")],
        ),
        ("ALTER TABLE t ADD COLUMN a int", &[write("t")]),
        (
            "TRUNCATE t, s.u",
            &[write("t"), rel(Some("s"), "u", Access::Write)],
        ),
        ("GRANT SELECT ON t TO bob", &[write("t")]),
        ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", &[write("t")]),
        ("VACUUM t", &[write("t")]),
        (
            "DROP VIEW a.v, w",
            &[rel(Some("a"), "v", Access::Write), write("w")],
        ),
        (
            "DROP TRIGGER tr ON s.t",
            &[rel(Some("s"), "t", Access::Write)],
        ),
        ("DROP INDEX CONCURRENTLY i", &[write("i")]),
        ("SELECT * FROM t FOR UPDATE OF t", &[read("t")]),
    ];
    for (sql, relations) in cases {
        assert_eq!(one(sql).relations, *relations, "{sql}");
    }
}

#[test]
fn normalized_text_and_fingerprint() {
    let a = one("SELECT * FROM t WHERE id = 42 AND name = 'x'");
    assert_eq!(a.normalized, "SELECT * FROM t WHERE id = $1 AND name = $2");
    let b = one("select *   from t where id = 7 and name = 'y' /* other */");
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_eq!(a.fingerprint.len(), 16);
    let c = one("SELECT * FROM t WHERE id = 42 OR name = 'x'");
    assert_ne!(a.fingerprint, c.fingerprint);

    let m = analyze("SELECT 1; DELETE FROM t WHERE id = 5");
    assert_eq!(m.statements[1].normalized, "DELETE FROM t WHERE id = $1");
    assert_eq!(
        m.statements[1].fingerprint,
        one("DELETE FROM t WHERE id = 9").fingerprint
    );
}

#[test]
fn tags_come_with_the_analysis() {
    let a = analyze("SELECT 1 /*ticket='OPS-12',traceparent='00-abc-01'*/");
    assert_eq!(a.tags.get("ticket").map(String::as_str), Some("OPS-12"));
    assert_eq!(
        a.tags.get("traceparent").map(String::as_str),
        Some("00-abc-01")
    );
    assert_eq!(
        a.statements[0].text,
        "SELECT 1 /*ticket='OPS-12',traceparent='00-abc-01'*/"
    );
}
