//! The walk reaches every node: compared with a serde_json dump of the same
//! tree, which pg_query derives for every node type, over a varied corpus.

use std::collections::HashMap;

use pg_query::NodeRef;
use serde_json::Value;

use crate::walk::{walk, Visit, Visitor};

const CORPUS: &[&str] = &[
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + f(n) FROM r WHERE n < 5) SEARCH DEPTH FIRST BY n SET o CYCLE n SET c USING p SELECT * FROM r",
    "SELECT a, count(*) FILTER (WHERE g(b)) OVER w, rank() OVER (PARTITION BY h(c) ORDER BY d ROWS BETWEEN k() PRECEDING AND CURRENT ROW) FROM t GROUP BY GROUPING SETS ((a), (b), ()) HAVING m(a) > 1 WINDOW w AS (ORDER BY n(a)) ORDER BY o(a) LIMIT p() OFFSET q()",
    "SELECT * FROM t TABLESAMPLE system (f(1)) REPEATABLE (g(2)) JOIN LATERAL (SELECT h(t.a)) s ON true LEFT JOIN u USING (id) NATURAL JOIN v",
    "SELECT * FROM xmltable(xmlnamespaces('x' AS y), '/r' PASSING f() COLUMNS a int PATH g() DEFAULT h(), b FOR ORDINALITY)",
    "SELECT * FROM json_table(f(), '$[*]' PASSING g() AS x COLUMNS (a int PATH '$.a' DEFAULT h() ON EMPTY, NESTED PATH '$.b[*]' COLUMNS (b text)))",
    "SELECT json_object('a' : f()), json_arrayagg(g() ORDER BY h()), json_query(i(), '$' RETURNING jsonb), j() IS JSON OBJECT, json_scalar(k()), json_serialize(l()), json(m())",
    "SELECT xmlelement(name a, xmlattributes(f() AS b), g()), xmlserialize(document h() AS text), xmlforest(i() AS c), xmlpi(name p, j()), xmlroot(k(), version '1.0')",
    "SELECT CASE f() WHEN g() THEN h() ELSE i() END, coalesce(j(), k()), greatest(l(), m()), nullif(n(), o()), row(p(), q()), (array[r()])[s():t()], (u()).field, v() IS DISTINCT FROM w(), x() BETWEEN y() AND z()",
    "SELECT a COLLATE \"C\", b::int[], c IS NOT NULL, d IS TRUE, e IN (SELECT f()), g = ANY (SELECT h()), EXISTS (SELECT i()), ARRAY(SELECT j()), current_user, CURRENT_DATE, k() AT TIME ZONE l() FROM t",
    "INSERT INTO t (a, b) OVERRIDING SYSTEM VALUE SELECT f(), DEFAULT FROM u ON CONFLICT (a) WHERE g() DO UPDATE SET (b, c) = (SELECT h(), i()) WHERE j() RETURNING k(), *",
    "INSERT INTO t DEFAULT VALUES RETURNING OLD.a, NEW.b",
    "UPDATE t SET a = f(), (b, c) = (g(), h()) FROM u WHERE t.id = u.id AND i() RETURNING j()",
    "DELETE FROM t USING u WHERE t.id = u.id AND f() RETURNING g()",
    "MERGE INTO t USING (SELECT f() AS a) s ON t.a = s.a WHEN MATCHED AND g() THEN UPDATE SET b = h() WHEN NOT MATCHED BY SOURCE THEN DELETE WHEN NOT MATCHED THEN INSERT (a) VALUES (i()) RETURNING merge_action(), j()",
    "COPY (SELECT f() FROM t) TO STDOUT WITH (FORMAT csv)",
    "COPY t (a) FROM STDIN WHERE g(a)",
    "CREATE TABLE t (a int PRIMARY KEY DEFAULT f(), b text CHECK (g(b)) REFERENCES u (x) ON DELETE CASCADE, c int GENERATED ALWAYS AS (h(a)) STORED, EXCLUDE USING gist (a WITH =) WHERE (i(a)), LIKE v INCLUDING ALL) PARTITION BY RANGE (j(a))",
    "CREATE TABLE p1 PARTITION OF t FOR VALUES FROM (f()) TO (MAXVALUE)",
    "CREATE INDEX i ON t USING btree (f(a) DESC NULLS LAST, b COLLATE \"C\") INCLUDE (c) WHERE g(d)",
    "CREATE VIEW v WITH (security_barrier) AS SELECT f() FROM t WITH CHECK OPTION",
    "CREATE MATERIALIZED VIEW mv AS SELECT f() FROM t WITH NO DATA",
    "CREATE FUNCTION fn(a int DEFAULT f()) RETURNS int LANGUAGE sql IMMUTABLE BEGIN ATOMIC SELECT g(a); UPDATE t SET b = h(); END",
    "CREATE FUNCTION fn2() RETURNS int RETURN f()",
    "CREATE TRIGGER tr BEFORE UPDATE OF a ON t REFERENCING NEW TABLE AS n FOR EACH ROW WHEN (f(NEW.a)) EXECUTE FUNCTION g()",
    "CREATE POLICY p ON t FOR SELECT TO bob USING (f(owner)) WITH CHECK (g(owner))",
    "CREATE RULE r AS ON UPDATE TO t WHERE f() DO ALSO (INSERT INTO log VALUES (g()); NOTIFY ch)",
    "CREATE DOMAIN d AS int DEFAULT f() CHECK (VALUE > g())",
    "CREATE STATISTICS s ON (f(a)), b FROM t",
    "ALTER TABLE t ADD COLUMN x int DEFAULT f(), ALTER COLUMN y TYPE bigint USING g(y), ADD CONSTRAINT c CHECK (h(z))",
    "ALTER TABLE t ATTACH PARTITION p FOR VALUES IN (i())",
    "ALTER TABLE t ALTER COLUMN a SET DEFAULT f(), ALTER COLUMN b SET EXPRESSION AS (g())",
    "CREATE PUBLICATION pub FOR TABLE t WHERE (f(a)), TABLES IN SCHEMA s",
    "CREATE SCHEMA s CREATE TABLE t (a int DEFAULT f()) CREATE VIEW v AS SELECT g()",
    "EXPLAIN (ANALYZE, BUFFERS) WITH d AS (DELETE FROM t WHERE f() RETURNING *) SELECT g() FROM d",
    "PREPARE p (int) AS SELECT f($1) FROM t",
    "EXECUTE p(f(), g())",
    "DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT f() FROM t",
    "CALL proc(f(), g => h())",
    "DO $$ BEGIN PERFORM 1; END $$",
    "GRANT SELECT (a, b), UPDATE ON t, s.u TO bob, CURRENT_USER WITH GRANT OPTION",
    "SELECT * FROM t1 FULL JOIN (t2 CROSS JOIN t3) ON f() WHERE g() FOR UPDATE OF t1 SKIP LOCKED",
    "VALUES (f(), g()), (h(), i()) ORDER BY 1",
    "SELECT f() UNION ALL (SELECT g() INTERSECT SELECT h()) EXCEPT SELECT i()",
    "SELECT * FROM ROWS FROM (f(1), g(2)) WITH ORDINALITY AS x(a, b, n)",
    "SELECT a[f()], (b).c[g():], h() -> 'x' ->> i(), j() @> k(), l() OPERATOR(pg_catalog.+) m() FROM t",
    "CREATE TABLE t2 AS SELECT f() FROM t",
    "SELECT * INTO t2 FROM t WHERE f()",
    "VACUUM (ANALYZE) t (a, b), u",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA s GRANT SELECT ON TABLES TO bob",
    "CREATE AGGREGATE a (int) (sfunc = f, stype = int, initcond = '0')",
    "CREATE OPERATOR === (leftarg = int, rightarg = int, procedure = f)",
    "ALTER ROLE bob SET search_path TO f, g",
    "SET search_path TO f, g",
    "SELECT pg_sleep(f()) WHERE g() IS NOT DISTINCT FROM h() AND i() LIKE j() ESCAPE k() AND l() SIMILAR TO m()",
    "SELECT f() WITHIN GROUP (ORDER BY g()) FILTER (WHERE h()) FROM t",
    "SELECT percentile_cont(f()) WITHIN GROUP (ORDER BY g()) FROM t",
    "SELECT extract(year FROM f()), position(g() IN h()), substring(i() FROM j() FOR k()), trim(BOTH l() FROM m()), overlay(n() PLACING o() FROM p())",
    "SELECT f() AT LOCAL, normalize(g(), NFC), h() IS NFC NORMALIZED, cast(i() AS text), treat(j() AS text)",
];

/// Counts visited nodes by variant name.
#[derive(Default)]
struct Census(HashMap<String, usize>);

impl<'a> Visitor<'a> for Census {
    fn enter(&mut self, visit: Visit<'a>) {
        let debug = format!("{:?}", visit.node);
        let name = debug.split('(').next().unwrap_or_default().to_owned();
        *self.0.entry(name).or_default() += 1;
        if let NodeRef::RangeVar(_) = visit.node {
            *self.0.entry("<relation>".to_owned()).or_default() += 1;
        }
    }
    fn leave(&mut self, _: Visit<'a>) {}
}

/// Counts nodes in the JSON dump: every tagged `{"node": {"Variant": …}}`,
/// and every RangeVar by its shape, tagged or held in a typed field.
fn json_census(value: &Value, counts: &mut HashMap<String, usize>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(tagged)) = map.get("node") {
                // SortBy has a field called `node` too; variants are capitalised.
                for name in tagged.keys().filter(|k| k.starts_with(char::is_uppercase)) {
                    *counts.entry(name.clone()).or_default() += 1;
                }
            }
            if map.contains_key("relname") && map.contains_key("relpersistence") {
                *counts.entry("<relation>".to_owned()).or_default() += 1;
            }
            map.values().for_each(|v| json_census(v, counts));
        }
        Value::Array(items) => items.iter().for_each(|v| json_census(v, counts)),
        _ => {}
    }
}

#[test]
fn the_walk_reaches_every_node_the_tree_holds() {
    for sql in CORPUS {
        let parsed = pg_query::parse(sql, 0).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut census = Census::default();
        for raw in &parsed.protobuf.stmts {
            let node = raw
                .stmt
                .as_deref()
                .and_then(|n| n.node.as_ref())
                .expect("statement");
            walk(node.to_ref(), &mut census).expect("shallow");
        }
        let mut expected = HashMap::new();
        let json = serde_json::to_value(&parsed.protobuf).expect("serializable");
        json_census(&json, &mut expected);
        for (name, count) in &expected {
            let seen = census.0.get(name).copied().unwrap_or(0);
            assert!(
                seen >= *count,
                "{sql}: walk saw {seen} {name}, tree holds {count}"
            );
        }
        assert_eq!(
            census.0.get("<relation>"),
            expected.get("<relation>"),
            "{sql}: relations"
        );
        // Every function call the SQL text makes is visible.
        assert!(
            census.0.get("FuncCall").copied().unwrap_or(0) > 0 || !sql.contains("f("),
            "{sql}"
        );
    }
}

#[test]
fn the_corpus_analyzes() {
    for sql in CORPUS {
        let analysis = crate::analyze_uncached(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        if sql.contains("f(") {
            let functions = analysis
                .statements
                .iter()
                .flat_map(|s| s.functions.iter())
                .collect::<Vec<_>>();
            assert!(!functions.is_empty(), "{sql}");
        }
    }
}
