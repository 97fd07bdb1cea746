//! The statements masking refuses: inference through filters, joins,
//! ordering and grouping on masked columns; copying masked values elsewhere;
//! reading column statistics; and, when policy says so, results whose
//! source Vigil cannot know.

use super::*;

/// Each would tell agent something about a masked value without returning it.
const INFERENCE: &[&str] = &[
    "SELECT id FROM shop.customers WHERE ssn LIKE '101%'",
    "SELECT id FROM shop.customers WHERE ssn = '101-02-0002'",
    "SELECT id FROM shop.customers WHERE ssn ~ '^101'",
    "SELECT id FROM shop.customers WHERE starts_with(ssn, '101')",
    "SELECT id FROM shop.customers WHERE upper(ssn) = '101-02-0002'",
    "SELECT id FROM shop.customers WHERE ssn IN (SELECT '101-02-0002')",
    "SELECT id FROM shop.customers WHERE birth_date < '1951-01-01'",
    "SELECT id FROM shop.customers WHERE id = 1 AND substr(card_number, 1, 1) = '4'",
    "SELECT c.id FROM shop.customers c JOIN shop.customers d ON c.ssn = d.ssn WHERE c.id = 1",
    "SELECT c.id FROM shop.customers c, (SELECT '101-02-0002' AS s) k WHERE c.ssn = k.s",
    "SELECT c.id FROM shop.customers c JOIN (VALUES ('101-02-0002')) v(ssn) USING (ssn)",
    "SELECT id FROM shop.customers ORDER BY ssn LIMIT 1",
    "SELECT id, ssn FROM shop.customers ORDER BY 2 LIMIT 1",
    "SELECT id FROM shop.customers ORDER BY email DESC LIMIT 1",
    "SELECT count(*) FROM shop.customers GROUP BY ssn",
    "SELECT count(*) FROM shop.customers GROUP BY substr(ssn, 1, 3)",
    "SELECT count(*) FROM shop.customers HAVING max(ssn) > '5'",
    "SELECT id, rank() OVER (PARTITION BY email) FROM shop.customers LIMIT 1",
    "SELECT id, row_number() OVER (ORDER BY ssn) FROM shop.customers LIMIT 1",
    "SELECT DISTINCT ON (ssn) id FROM shop.customers",
    "SELECT id FROM shop.customer_contacts WHERE email = 'grace.lovelace1@example.com'",
    "SELECT id FROM shop.customers WHERE id = 1 AND EXISTS (SELECT 1 FROM shop.customers d WHERE d.ssn LIKE '1%')",
    "SELECT id FROM (SELECT id, ssn AS s FROM shop.customers) q WHERE s LIKE '101%'",
    "WITH t AS (SELECT id, ssn FROM shop.customers) SELECT id FROM t WHERE ssn > '5'",
    "SELECT id FROM shop.customers c WHERE c::text LIKE '%101-02-0002%'",
    "SELECT id FROM shop.customers c WHERE row_to_json(c)::text LIKE '%101-02%'",
    "SELECT count(*) FILTER (WHERE ssn LIKE '1%') FROM shop.customers",
    "SELECT id FROM shop.customers WHERE id = 1 AND ssn BETWEEN '101' AND '102'",
    "SELECT min(id) FROM shop.customers WHERE email LIKE 'grace%'",
    "UPDATE shop.customers SET notes = notes WHERE ssn = '101-02-0002'",
    "DELETE FROM shop.customers WHERE ssn = '000-00-0000'",
    // Alias column lists rename columns: which is which is the table's order.
    "SELECT a FROM shop.customers AS c(a, b, x, y, z) ORDER BY y LIMIT 2",
    "SELECT a FROM shop.customers AS c(a, b, x, y, z) WHERE x LIKE 'grace%'",
    "SELECT a FROM shop.customers c(a, b, x) WHERE c.x = 'grace.lovelace1@example.com'",
    // NATURAL JOIN matches on every column the two sides share.
    "SELECT c.id FROM shop.customers c NATURAL JOIN (SELECT '101-02-0002'::text AS ssn) g",
    // Errors that would happen only for the right guess (these guesses are
    // wrong, so a DBA's run succeeds).
    "SELECT json_build_object(nullif(ssn, 'g'), 1) FROM shop.customers WHERE id = 1",
    "SELECT coalesce(nullif(ssn, 'g'), (SELECT 'x')) FROM shop.customers WHERE id = 1",
    "SELECT ssn <> 'g' OR (SELECT true) FROM shop.customers WHERE id = 1",
    "SELECT convert_to(email, 'UTF8') FROM shop.customers WHERE id = 1",
    "SELECT lpad('x', length(ssn)) FROM shop.customers WHERE id = 1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_through_masked_columns_is_refused_for_agent_only() {
    let shop = Shop::create("mask_inference", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    // Every attack is tried before failing, so a failure lists them all.
    let mut answered = Vec::new();
    for sql in INFERENCE {
        for s in agent_sees(&shop, &proxy, &agent, sql).await {
            if !s.refused_by("vigil.masking.inference") {
                answered.push(format!("{sql} via {:?}: {:?}", s.via, s.result));
            }
        }
        let s = run(&proxy, &alice, "alice", Via::Binary, sql).await;
        assert!(s.result.is_ok(), "alice: {sql}: {:?}", s.result);
    }
    assert!(answered.is_empty(), "answered:\n{}", answered.join("\n"));
    // A parameter instead of a literal changes nothing.
    let sql = "SELECT id FROM shop.customers WHERE ssn = $1";
    let refused = Failure::from(agent.query(sql, &[&SSN]).await.unwrap_err());
    assert_eq!(refused.code, "42501", "{refused:?}");
    assert!(
        refused.text.contains("vigil.masking.inference"),
        "{refused:?}"
    );
    // Prepared by SQL, then executed.
    let s = psql(
        &proxy,
        "agent",
        &[
            "PREPARE p(text) AS SELECT id FROM shop.customers WHERE ssn = $1",
            "EXECUTE p('101-02-0002')",
        ],
    );
    assert!(s.refused_by("vigil.masking.inference"), "{:?}", s.result);
    // The session carries on.
    agent_sees(
        &shop,
        &proxy,
        &agent,
        "SELECT ssn FROM shop.customers WHERE id = 1",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_masked_values_elsewhere_is_refused() {
    let shop = Shop::create("mask_copy", "CREATE TABLE shop.notes_copy (t text)");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    let file = format!("/tmp/vigil-mask-leak-{}", std::process::id());
    let to_file = format!("COPY (SELECT ssn FROM shop.customers) TO '{file}'");
    let copies = [
        "CREATE TABLE shop.leak AS SELECT ssn FROM shop.customers",
        "CREATE TABLE shop.leak AS SELECT id, upper(ssn) AS s FROM shop.customers",
        "SELECT ssn INTO shop.leak FROM shop.customers",
        "CREATE MATERIALIZED VIEW shop.leak AS SELECT email FROM shop.customers",
        "CREATE TEMP TABLE leak AS SELECT card_number FROM shop.customers",
        "INSERT INTO shop.notes_copy (t) SELECT ssn FROM shop.customers",
        "INSERT INTO shop.notes_copy SELECT email || '' FROM shop.customers WHERE id = 1",
        "WITH s AS (SELECT ssn FROM shop.customers) INSERT INTO shop.notes_copy SELECT ssn FROM s",
        "UPDATE shop.customers SET notes = ssn WHERE id = 1",
        "UPDATE shop.customers SET notes = email || ' ' || card_number WHERE id = 1",
        "UPDATE shop.customers c SET notes = d.ssn FROM shop.customers d WHERE c.id = 1 AND d.id = 1",
        "INSERT INTO shop.customers (id, full_name, email, ssn, notes) SELECT 7777, 'x', 'q@example.com', '899-11-1111', ssn FROM shop.customers WHERE id = 1",
        to_file.as_str(),
        // In SJIS a quote byte can be the second byte of a character: the
        // server's fields and Vigil's would part.
        "COPY (SELECT ssn FROM shop.customers) TO STDOUT (FORMAT csv, QUOTE E'\\\\', ENCODING 'SJIS')",
        "COPY shop.customers TO STDOUT (ENCODING 'LATIN1')",
    ];
    let mut answered = Vec::new();
    for sql in copies {
        for s in agent_sees(&shop, &proxy, &agent, sql).await {
            if !s.refused_by("vigil.masking.copy") {
                answered.push(format!("{sql} via {:?}: {:?}", s.via, s.result));
            }
        }
    }
    assert!(answered.is_empty(), "answered:\n{}", answered.join("\n"));
    // Nothing was copied anywhere.
    assert_eq!(
        shop.db.direct_sql(
            "SELECT (SELECT count(*) FROM shop.notes_copy) || ',' || (to_regclass('shop.leak') IS NULL)
             || ',' || (SELECT notes FROM shop.customers WHERE id = 1)"
        )
        .trim(),
        "0,true,regular customer"
    );
    assert_eq!(
        shop.db
            .direct_sql(&format!("SELECT pg_stat_file('{file}', true) IS NULL"))
            .trim(),
        "t",
        "agent's COPY TO a server file ran"
    );
    // A DBA copies as she likes.
    binary(&alice, copies[0]).await.expect("alice copies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_statistics_are_refused_for_agent() {
    let shop = Shop::create(
        "mask_stats",
        "ALTER TABLE shop.customers ALTER COLUMN email SET STATISTICS 1000;
         ANALYZE shop.customers;
         CREATE VIEW shop.stats AS
             SELECT attname, histogram_bounds::text AS hb, most_common_vals::text AS mcv
             FROM pg_catalog.pg_stats;",
    );
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    let direct = [
        "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'customers'",
        "SELECT histogram_bounds::text FROM pg_catalog.pg_stats WHERE attname = 'ssn'",
        "SELECT s.histogram_bounds::text FROM \"pg_stats\" s WHERE s.attname = 'email'",
        "SELECT stavalues1::text, stavalues2::text FROM pg_statistic",
        "SELECT * FROM pg_catalog.pg_statistic WHERE starelid = 'shop.customers'::regclass",
        "SELECT (SELECT array_to_string(histogram_bounds, ',') FROM pg_stats WHERE attname = 'email' LIMIT 1)",
        "SELECT * FROM pg_stats_ext",
    ];
    for sql in direct {
        for s in agent_sees(&shop, &proxy, &agent, sql).await {
            assert!(
                s.refused_by("vigil.masking.statistics"),
                "{sql} via {:?}: {:?}",
                s.via,
                s.result
            );
        }
    }
    // Through a view of the statistics: refused or masked, never clear.
    agent_sees(
        &shop,
        &proxy,
        &agent,
        "SELECT hb, mcv FROM shop.stats WHERE attname IN ('ssn', 'email')",
    )
    .await;
    let bounds = binary(&alice, direct[1])
        .await
        .expect("alice reads statistics");
    assert!(!bounds.is_empty());
}

/// A function Vigil cannot see into returns a masked column.
const SECRET_FUNCTIONS: &str = "
    CREATE FUNCTION shop.secret(i int) RETURNS text LANGUAGE sql
        AS 'SELECT ssn FROM shop.customers WHERE id = i';
    CREATE FUNCTION shop.secret_rows() RETURNS TABLE (a text, b text) LANGUAGE plpgsql
        AS $$ BEGIN RETURN QUERY SELECT email, card_number FROM shop.customers WHERE id = 1; END $$;
";

/// Results from functions of the database's own.
const UNKNOWN: &[&str] = &[
    "SELECT shop.secret(1)",
    "SELECT shop.secret(1) AS harmless",
    "SELECT * FROM shop.secret(1)",
    "SELECT a, b FROM shop.secret_rows()",
    "SELECT shop.luhn_digit(card_number), shop.secret(id) FROM shop.customers WHERE id = 1",
    "SELECT query_to_xml('SELECT ssn, email FROM shop.customers WHERE id = 1', true, false, '')::text",
    "SELECT (xpath('//ssn/text()', query_to_xml('SELECT ssn FROM shop.customers WHERE id = 1', true, false, '')))[1]::text",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_lineage_is_masked_when_policy_says_mask() {
    let shop = Shop::create("mask_unknown", SECRET_FUNCTIONS);
    let proxy = shop.proxy("unknown_lineage = \"mask\"");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    for sql in UNKNOWN {
        agent_sees(&shop, &proxy, &agent, sql).await;
    }
    for s in agent_sees(&shop, &proxy, &agent, UNKNOWN[0]).await {
        assert_eq!(s.rows().len(), 1, "{s:?}");
    }
    // Made through the proxy, by agent, after the catalog was read.
    let made = [
        "CREATE FUNCTION shop.mine(i int) RETURNS text LANGUAGE sql AS 'SELECT email FROM shop.customers WHERE id = i'",
        "CREATE TEMP TABLE mine AS SELECT 1 AS id",
    ];
    for sql in made {
        let _ = simple(&agent, sql).await;
    }
    agent_sees(&shop, &proxy, &agent, "SELECT shop.mine(1)").await;
    // Code Vigil cannot see into could copy masked values anywhere: a DO
    // block (here laundering SSNs into a table of its own) is refused.
    let smuggle = "DO $$ BEGIN EXECUTE 'CREATE TABLE shop.smuggled AS SELECT ssn, card_number FROM shop.customers'; END $$";
    let refused = simple(&agent, smuggle)
        .await
        .expect_err("the DO block is refused");
    assert_eq!(refused.code, "42501", "{refused:?}");
    assert!(refused.text.contains("vigil.masking.opaque"), "{refused:?}");
    assert_eq!(
        shop.db
            .direct_sql("SELECT to_regclass('shop.smuggled') IS NULL")
            .trim(),
        "t"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_lineage_is_refused_when_policy_says_refuse() {
    let shop = Shop::create("mask_refuse", SECRET_FUNCTIONS);
    let proxy = shop.proxy("unknown_lineage = \"refuse\"");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    for sql in UNKNOWN {
        for s in agent_sees(&shop, &proxy, &agent, sql).await {
            assert!(
                s.refused_by("vigil.masking.unknown-lineage"),
                "{sql} via {:?}: {:?}",
                s.via,
                s.result
            );
        }
    }
    let s = run(&proxy, &alice, "alice", Via::Binary, UNKNOWN[0]).await;
    assert_eq!(s.value(), Some(SSN));
    // Known lineage is still answered, masked.
    let sql = "SELECT ssn FROM shop.customers WHERE id = 1";
    assert_rows(
        sql,
        &agent_sees(&shop, &proxy, &agent, sql).await,
        &[&[Some("*******0002")]],
    );
}
