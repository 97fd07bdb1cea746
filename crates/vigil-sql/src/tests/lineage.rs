//! Column lineage for masking: where each output comes from, which columns
//! decide the rows, and which feed written values. Hostile cases first: a
//! masked column must never reach a client or another table unseen.

use super::{analyze, one};
use crate::{ColumnRef, CopyFormat, Output, Statement};

fn col(relation: &str, column: &str) -> ColumnRef {
    ColumnRef {
        relation: Some(relation.to_owned()),
        column: column.to_owned(),
    }
}

fn any(column: &str) -> ColumnRef {
    ColumnRef {
        relation: None,
        column: column.to_owned(),
    }
}

fn outputs(s: &Statement) -> &[Output] {
    match &s.outputs {
        Some(outputs) => outputs,
        None => panic!("{:?} has no outputs", s.text),
    }
}

/// The sources of each output, which must all be traced.
fn traced(sql: &str) -> Vec<Vec<ColumnRef>> {
    let s = one(sql);
    outputs(&s)
        .iter()
        .map(|o| {
            assert!(o.traced, "{sql}: {o:?}");
            o.sources.clone()
        })
        .collect()
}

fn untraced(sql: &str, position: usize) {
    let s = one(sql);
    assert!(!outputs(&s)[position].traced, "{sql}: {:?}", s.outputs);
}

#[test]
fn plain_and_aliased_columns() {
    let s = one("SELECT ssn AS x, name FROM customers");
    let o = outputs(&s);
    assert_eq!(o[0].name.as_deref(), Some("x"));
    assert_eq!(o[0].sources, [col("customers", "ssn")]);
    assert_eq!(o[1].name.as_deref(), Some("name"));
    assert!(o.iter().all(|o| o.traced && !o.star));
    assert_eq!(
        traced("SELECT public.customers.ssn FROM public.customers"),
        [[col("public.customers", "ssn")]]
    );
    assert_eq!(
        traced("SELECT \"SSN\" FROM \"Customers\""),
        [[col("Customers", "SSN")]]
    );
}

#[test]
fn stars_expand_to_whole_rows() {
    let s = one("SELECT c.* FROM customers c");
    let o = outputs(&s);
    assert!(o[0].star && o[0].traced);
    assert_eq!(o[0].sources, [col("customers", "*")]);
    let s = one("SELECT * FROM customers c JOIN orders o ON o.cid = c.id");
    assert!(outputs(&s)[0].star);
    assert_eq!(
        outputs(&s)[0].sources,
        [col("customers", "*"), col("orders", "*")]
    );
    let s = one("DELETE FROM customers WHERE id = 1 RETURNING *");
    assert!(outputs(&s)[0].star);
    assert_eq!(outputs(&s)[0].sources, [col("customers", "*")]);
}

#[test]
fn expressions_keep_their_columns() {
    let ssn = vec![col("customers", "ssn")];
    assert_eq!(
        traced("SELECT upper(ssn), ssn || '', substr(c.ssn,1,3) FROM customers c"),
        [ssn.clone(), ssn.clone(), ssn.clone()]
    );
    for sql in [
        "SELECT string_agg(ssn, ',') FROM customers",
        "SELECT ssn::text FROM customers",
        "SELECT CASE WHEN true THEN ssn END FROM customers",
        "SELECT coalesce(null, ssn) FROM customers",
        "SELECT json_build_object('a', ssn) FROM customers",
        "SELECT json_object('a': ssn) FROM customers",
        "SELECT xmlelement(name a, ssn) FROM customers",
        "SELECT first_value(ssn) OVER () FROM customers",
        "SELECT ARRAY[ssn] FROM customers",
        "SELECT (SELECT ssn FROM customers LIMIT 1)",
        "SELECT ARRAY(SELECT ssn FROM customers)",
    ] {
        assert_eq!(traced(sql), vec![ssn.clone()], "{sql}");
    }
    // A CASE condition reads the column too: the output depends on it.
    assert_eq!(
        traced("SELECT CASE WHEN ssn LIKE '1%' THEN 'a' END FROM customers"),
        vec![ssn]
    );
    assert_eq!(traced("SELECT count(*) FROM customers"), [vec![]]);
}

#[test]
fn whole_row_references() {
    for sql in [
        "SELECT row_to_json(c) FROM customers c",
        "SELECT to_jsonb(c.*) FROM customers c",
        "SELECT c FROM customers c",
        "SELECT to_jsonb(customers) FROM customers",
    ] {
        let s = one(sql);
        let o = &outputs(&s)[0];
        assert!(o.sources.contains(&col("customers", "*")), "{sql}: {o:?}");
        assert!(o.traced && !o.star, "{sql}");
        assert!(s.columns.contains(&col("customers", "*")), "{sql}");
    }
    // The whole row of a subquery cannot be traced.
    untraced(
        "SELECT row_to_json(s) FROM (SELECT ssn FROM customers) s",
        0,
    );
}

#[test]
fn subqueries_ctes_and_functions_are_not_traced() {
    untraced("SELECT x FROM (SELECT ssn AS x FROM customers) s", 0);
    untraced("SELECT s.x FROM (SELECT ssn AS x FROM customers) s", 0);
    untraced(
        "WITH t AS (SELECT ssn FROM customers) SELECT upper(ssn) FROM t",
        0,
    );
    untraced("SELECT x FROM generate_series(1, 3) x", 0);
    untraced("SELECT column1 FROM (VALUES (1)) v", 0);
    untraced("SELECT ssn FROM customers, (SELECT 1 AS y) s", 0);
}

#[test]
fn sublinks_resolve_in_their_own_scope() {
    // No outer FROM: the inner column is the inner table's.
    assert_eq!(
        traced("SELECT (SELECT ssn FROM customers LIMIT 1)"),
        [[col("customers", "ssn")]]
    );
    // With an outer FROM it could be a correlated reference: any relation.
    let s = one("SELECT (SELECT ssn FROM orders LIMIT 1) FROM customers");
    assert_eq!(outputs(&s)[0].sources, [any("ssn")]);
    // A qualified outer reference resolves to the outer relation.
    assert_eq!(
        traced("SELECT (SELECT c.ssn FROM orders o LIMIT 1) FROM customers c"),
        [[col("customers", "ssn")]]
    );
}

#[test]
fn several_relations_leave_unqualified_columns_unknown() {
    let s = one("SELECT ssn FROM customers, orders");
    let o = &outputs(&s)[0];
    assert_eq!(o.sources, [any("ssn")]);
    assert!(o.traced);
}

#[test]
fn filters_decide_rows_and_order() {
    let s = one("SELECT name FROM customers WHERE ssn LIKE '123%' ORDER BY email");
    assert_eq!(outputs(&s)[0].sources, [col("customers", "name")]);
    assert!(s.filters.contains(&col("customers", "ssn")));
    assert!(s.filters.contains(&col("customers", "email")));
    assert!(!s.filters.contains(&col("customers", "name")));

    let s = one("SELECT o.id FROM orders o JOIN customers c ON c.ssn = o.ssn_copy");
    assert!(s.filters.contains(&col("customers", "ssn")));
    assert!(s.filters.contains(&col("orders", "ssn_copy")));

    let s = one("SELECT count(*) FROM customers GROUP BY ssn");
    assert_eq!(s.filters, [col("customers", "ssn")]);
    assert_eq!(outputs(&s)[0].sources, []);

    for (sql, column) in [
        ("SELECT 1 FROM customers HAVING max(ssn) > '1'", "ssn"),
        ("SELECT DISTINCT ON (ssn) name FROM customers", "ssn"),
        (
            "SELECT rank() OVER (PARTITION BY ssn) FROM customers",
            "ssn",
        ),
        ("SELECT rank() OVER (ORDER BY ssn) FROM customers", "ssn"),
        (
            "SELECT string_agg(name, ',' ORDER BY ssn) FROM customers",
            "ssn",
        ),
        (
            "SELECT count(*) FILTER (WHERE ssn > '1') FROM customers",
            "ssn",
        ),
        (
            "SELECT name FROM customers GROUP BY ROLLUP (ssn, name)",
            "ssn",
        ),
        (
            "SELECT name FROM customers WHERE id IN (SELECT id FROM customers c WHERE c.ssn = '1')",
            "ssn",
        ),
        (
            "SELECT name FROM customers WHERE EXISTS (SELECT 1 FROM customers c WHERE c.ssn = '1')",
            "ssn",
        ),
        (
            "WITH t AS (SELECT id FROM customers WHERE ssn = '1') SELECT * FROM t",
            "ssn",
        ),
    ] {
        let s = one(sql);
        assert!(
            s.filters.contains(&col("customers", column)),
            "{sql}: {:?}",
            s.filters
        );
        let o = outputs(&s);
        assert!(
            !o[0].sources.contains(&col("customers", "ssn")),
            "{sql}: {o:?}"
        );
    }
    // Unqualified in a sublink, a column may be the outer query's: any relation's.
    let s = one("SELECT name FROM customers WHERE id IN (SELECT id FROM orders WHERE ssn = '1')");
    assert!(s.filters.contains(&any("ssn")));
    let s = one("SELECT a.x FROM a JOIN b USING (ssn)");
    assert!(s.filters.contains(&any("ssn")));
}

#[test]
fn positional_and_named_order_resolve_to_outputs() {
    let s = one("SELECT name, ssn FROM customers ORDER BY 2");
    assert_eq!(s.filters, [col("customers", "ssn")]);
    assert!(s.properties.positional_refs);
    let s = one("SELECT ssn, count(*) FROM customers GROUP BY 1");
    assert_eq!(s.filters, [col("customers", "ssn")]);
    let s = one("SELECT *, ssn FROM customers ORDER BY 2");
    assert!(s.filters.contains(&any("*")));
    let s = one("SELECT upper(ssn) AS u FROM customers ORDER BY u");
    assert!(s.filters.contains(&col("customers", "ssn")));
    assert!(!one("SELECT a FROM t ORDER BY a").properties.positional_refs);
}

#[test]
fn written_values() {
    let s = one("INSERT INTO notes(body) SELECT ssn FROM customers");
    assert_eq!(s.written_from, [col("customers", "ssn")]);
    assert_eq!(s.outputs, None);

    let s = one("UPDATE customers SET name = ssn WHERE id = 1 RETURNING name");
    assert_eq!(s.written_from, [col("customers", "ssn")]);
    assert_eq!(outputs(&s)[0].sources, [col("customers", "name")]);
    assert_eq!(s.filters, [col("customers", "id")]);

    for sql in [
        "INSERT INTO notes(body) VALUES ((SELECT ssn FROM customers LIMIT 1))",
        "UPDATE notes SET body = c.ssn FROM customers c WHERE c.id = notes.cid",
        "UPDATE notes SET (body, x) = (SELECT c.ssn, 1 FROM customers c LIMIT 1)",
        "INSERT INTO notes SELECT x FROM (SELECT ssn AS x FROM customers) s",
        "WITH t AS (SELECT ssn FROM customers) INSERT INTO notes SELECT * FROM t",
        "CREATE TABLE leak AS SELECT ssn FROM customers",
        "SELECT ssn INTO leak FROM customers",
        "MERGE INTO notes n USING customers c ON n.id = c.id \
         WHEN MATCHED THEN UPDATE SET body = c.ssn \
         WHEN NOT MATCHED THEN INSERT (body) VALUES (c.ssn)",
        "INSERT INTO customers (ssn) SELECT name FROM people \
         ON CONFLICT (ssn) DO UPDATE SET name = customers.ssn || excluded.ssn",
    ] {
        let s = one(sql);
        assert!(
            s.written_from.contains(&col("customers", "ssn")),
            "{sql}: {:?}",
            s.written_from
        );
        assert!(!s.written_from.contains(&col("customers", "id")), "{sql}");
    }
    let s = one("INSERT INTO notes SELECT * FROM customers");
    assert_eq!(s.written_from, [col("customers", "*")]);
}

#[test]
fn statements_that_return_rows_through_others() {
    let s = one("COPY (SELECT upper(ssn) FROM customers) TO STDOUT WITH (FORMAT csv, HEADER)");
    assert_eq!(outputs(&s)[0].sources, [col("customers", "ssn")]);
    let options = s.properties.copy_options.as_ref().unwrap();
    assert_eq!(options.format, CopyFormat::Csv);
    assert!(options.header);

    let s = one("DECLARE cur CURSOR FOR SELECT ssn FROM customers");
    assert_eq!(outputs(&s)[0].sources, [col("customers", "ssn")]);

    let s = one("COPY customers (name, ssn) TO STDOUT");
    assert_eq!(
        outputs(&s)
            .iter()
            .map(|o| o.sources.clone())
            .collect::<Vec<_>>(),
        [[col("customers", "name")], [col("customers", "ssn")]]
    );
    assert_eq!(
        s.properties.copy_options.as_ref().unwrap().copy_columns,
        ["name", "ssn"]
    );
    let s = one("COPY customers TO STDOUT");
    assert!(outputs(&s)[0].star);

    assert_eq!(one("EXPLAIN SELECT ssn FROM customers").outputs, None);
    assert_eq!(one("UPDATE customers SET name = 'x'").outputs, None);
    assert_eq!(one("CREATE TABLE t (a int)").outputs, None);
    assert_eq!(one("COPY customers FROM STDIN").outputs, None);
}

#[test]
fn copy_options_in_both_syntaxes() {
    let s = one("COPY t TO STDOUT WITH (FORMAT csv, DELIMITER ';', NULL 'n', QUOTE '\"', ESCAPE '\\', HEADER match)");
    let o = s.properties.copy_options.unwrap();
    assert_eq!(o.format, CopyFormat::Csv);
    assert_eq!(o.delimiter.as_deref(), Some(";"));
    assert_eq!(o.null.as_deref(), Some("n"));
    assert_eq!(o.quote.as_deref(), Some("\""));
    assert_eq!(o.escape.as_deref(), Some("\\"));
    assert!(o.header);
    let o = one("COPY t TO STDOUT CSV HEADER DELIMITER AS '|' NULL AS 'x'")
        .properties
        .copy_options
        .unwrap();
    assert_eq!(o.format, CopyFormat::Csv);
    assert!(o.header);
    assert_eq!(o.delimiter.as_deref(), Some("|"));
    assert_eq!(o.null.as_deref(), Some("x"));
    let o = one("COPY t FROM STDIN BINARY")
        .properties
        .copy_options
        .unwrap();
    assert_eq!(o.format, CopyFormat::Binary);
    let o = one("COPY t TO STDOUT (HEADER false)")
        .properties
        .copy_options
        .unwrap();
    assert_eq!(o.format, CopyFormat::Text);
    assert!(!o.header);
    assert_eq!(one("SELECT 1").properties.copy_options, None);
}

#[test]
fn set_operations_and_values() {
    let s = one("SELECT ssn FROM customers UNION SELECT name FROM people");
    let o = outputs(&s);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].name.as_deref(), Some("ssn"));
    assert!(o[0].traced);
    assert_eq!(o[0].sources.len(), 2);
    assert!(o[0].sources.contains(&col("customers", "ssn")));
    assert!(o[0].sources.contains(&col("people", "name")));
    // Positions of a set operation are its arms' outputs.
    let s = one("SELECT ssn FROM customers UNION ALL SELECT name FROM people ORDER BY 1");
    assert_eq!(s.filters.len(), 2);
    let s = one("VALUES (1, 'a')");
    assert_eq!(outputs(&s).len(), 2);
    assert!(outputs(&s).iter().all(|o| o.sources.is_empty()));
    assert_eq!(traced("SELECT 1, 'a'"), [vec![], vec![]]);
}

#[test]
fn each_statement_has_its_own_lineage() {
    let a = analyze("SELECT ssn FROM customers; SELECT name FROM people ORDER BY 1");
    assert_eq!(
        outputs(&a.statements[0])[0].sources,
        [col("customers", "ssn")]
    );
    assert!(a.statements[0].filters.is_empty());
    assert_eq!(
        outputs(&a.statements[1])[0].sources,
        [col("people", "name")]
    );
    assert_eq!(a.statements[1].filters, [col("people", "name")]);
}

#[test]
fn laundering_through_nested_statements() {
    for sql in [
        "WITH d AS (DELETE FROM customers RETURNING ssn) INSERT INTO notes SELECT ssn FROM d",
        "PREPARE p AS INSERT INTO notes SELECT ssn FROM customers",
        "CREATE VIEW v AS SELECT ssn FROM customers",
        "INSERT INTO notes SELECT s.x FROM customers c, LATERAL (SELECT c.ssn AS x) s",
    ] {
        let s = one(sql);
        assert!(
            s.written_from.contains(&col("customers", "ssn")),
            "{sql}: {:?}",
            s.written_from
        );
    }
    // An EXISTS sublink's target list is no value of the output.
    let s = one("SELECT EXISTS (SELECT ssn FROM customers)");
    assert_eq!(outputs(&s)[0].sources, []);
    assert_eq!(outputs(&s)[0].name.as_deref(), Some("exists"));
}

#[test]
fn case_conditions_are_filters() {
    let s = one("SELECT CASE WHEN ssn LIKE '101%' THEN 'yes' ELSE 'no' END FROM customers");
    assert!(
        s.filters.contains(&col("customers", "ssn")),
        "{:?}",
        s.filters
    );
    let s = one("SELECT CASE ssn WHEN '1' THEN name END FROM customers");
    assert!(
        s.filters.contains(&col("customers", "ssn")),
        "{:?}",
        s.filters
    );
}

#[test]
fn computations_that_can_fail_or_multiply_rows_are_marked() {
    for sql in [
        "SELECT 1/(substr(ssn, 1, 3) = '101')::int FROM customers",
        "SELECT ssn::int FROM customers",
        "SELECT generate_series(1, substr(ssn, 1, 3)::int) FROM customers",
        "SELECT set_config('x.y', ssn, false) FROM customers",
        "SELECT pg_notify('c', ssn) FROM customers",
        "SELECT length(ssn) + 1 FROM customers",
        "SELECT 'abc' ~ ssn FROM customers",
        "SELECT (ARRAY[1, 2])[length(ssn)] FROM customers",
    ] {
        let s = one(sql);
        assert!(
            s.computed.contains(&col("customers", "ssn")),
            "{sql}: {:?}",
            s.computed
        );
    }
    for sql in [
        "SELECT ssn, upper(ssn), substr(ssn, 1, 3), ssn || '', ssn::text FROM customers",
        "SELECT (ssn = 'x')::text, nullif(ssn, 'x'), coalesce(ssn, '') FROM customers",
        "SELECT string_agg(ssn, ','), count(ssn), row_to_json(c) FROM customers c",
        "SELECT length(ssn) FROM customers",
    ] {
        let s = one(sql);
        assert!(s.computed.is_empty(), "{sql}: {:?}", s.computed);
    }
}
