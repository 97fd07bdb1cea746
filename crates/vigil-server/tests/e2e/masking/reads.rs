//! Reading masked columns: plainly, under aliases and stars, inside
//! expressions, through views, in multi-statement queries; and the columns
//! that are not masked come back untouched.

use super::*;

const PLAIN: &str =
    "SELECT ssn, email, phone, card_number, birth_date FROM shop.customers WHERE id = 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_columns_are_masked_for_agent_and_clear_for_alice() {
    let shop = Shop::create("mask_plain", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;

    let seen = agent_sees(&shop, &proxy, &agent, PLAIN).await;
    assert_rows(
        PLAIN,
        &seen,
        &[&[
            Some("*******0002"),
            Some("****@example.com"),
            Some("*************37"),
            Some("************9196"),
            Some("2000-01-01"),
        ]],
    );
    let seen = every_client(&proxy, &alice, "alice", PLAIN).await;
    assert_rows(
        PLAIN,
        &seen,
        &[&[
            Some(SSN),
            Some("grace.lovelace1@example.com"),
            Some("+1-555-100-0037"),
            Some("4000000000079196"),
            Some("1950-01-18"),
        ]],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_and_stars_are_masked() {
    let shop = Shop::create("mask_alias", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;

    let sql = "SELECT ssn AS x FROM shop.customers WHERE id=1";
    assert_rows(
        sql,
        &agent_sees(&shop, &proxy, &agent, sql).await,
        &[&[Some("*******0002")]],
    );
    for sql in [
        "SELECT c.* FROM shop.customers c WHERE c.id=1",
        "SELECT * FROM shop.customers WHERE id=1",
        "SELECT c.ssn AS \"SSN\", c.email AS id FROM shop.customers AS c WHERE c.id=1",
        "SELECT shop.customers.ssn FROM shop.customers WHERE id=1",
        "SELECT \"ssn\" FROM \"shop\".\"customers\" WHERE id=1",
        "SELECT ssn FROM shop.customers WHERE id=1 UNION ALL SELECT 'x'",
        "SELECT 'x' UNION ALL SELECT ssn FROM shop.customers WHERE id=1",
        "SELECT ssn FROM ONLY shop.customers WHERE id=1",
        "TABLE shop.customers",
        "VALUES ((SELECT ssn FROM shop.customers WHERE id=1))",
    ] {
        for s in agent_sees(&shop, &proxy, &agent, sql).await {
            assert!(!s.rows().is_empty(), "{sql} via {:?}", s.via);
        }
    }
    // Unqualified, under a search_path set in the same Query.
    let sql = "SET search_path = shop, public; SELECT ssn FROM customers WHERE id=1";
    for via in [Via::Psql, Via::Simple] {
        let s = run(&proxy, &agent, "agent", via, sql).await;
        shop.assert_hidden(&format!("{sql} via {via:?}"), &s.shown);
    }
}

/// Expressions over masked columns: each is masked (or refused), never clear.
const EXPRESSIONS: &[&str] = &[
    "SELECT upper(ssn) FROM shop.customers WHERE id=1",
    "SELECT ssn || '' FROM shop.customers WHERE id=1",
    "SELECT substr(ssn,1,3) || '-' || substr(ssn,5,2) || '-' || substr(ssn,8) FROM shop.customers WHERE id=1",
    "SELECT substr(ssn,1,3) AS a, substr(ssn,5) AS b FROM shop.customers WHERE id=1",
    "SELECT row_to_json(c) FROM shop.customers c WHERE c.id=1",
    "SELECT to_jsonb(c) FROM shop.customers c WHERE c.id=1",
    "SELECT c FROM shop.customers c WHERE c.id=1",
    "SELECT c::text FROM shop.customers c WHERE c.id=1",
    "SELECT string_agg(ssn, ',') FROM shop.customers WHERE id=1",
    "SELECT (SELECT ssn FROM shop.customers WHERE id=1)",
    "SELECT x FROM (SELECT ssn AS x FROM shop.customers WHERE id=1) s",
    "WITH t AS (SELECT ssn FROM shop.customers WHERE id=1) SELECT ssn FROM t",
    "WITH RECURSIVE t(s) AS (SELECT ssn FROM shop.customers WHERE id=1) SELECT s FROM t",
    "SELECT ssn::text FROM shop.customers WHERE id=1",
    "SELECT ssn::varchar(20) FROM shop.customers WHERE id=1",
    "SELECT ssn::bytea FROM shop.customers WHERE id=1",
    "SELECT convert_to(ssn, 'UTF8') FROM shop.customers WHERE id=1",
    "SELECT encode(ssn::bytea, 'hex') FROM shop.customers WHERE id=1",
    "SELECT format('%s', ssn) FROM shop.customers WHERE id=1",
    "SELECT concat(ssn) FROM shop.customers WHERE id=1",
    "SELECT concat_ws(' ', full_name, ssn, email) FROM shop.customers WHERE id=1",
    "SELECT left(ssn, 11) FROM shop.customers WHERE id=1",
    "SELECT reverse(reverse(ssn)) FROM shop.customers WHERE id=1",
    "SELECT replace(ssn, '-', '') FROM shop.customers WHERE id=1",
    "SELECT translate(card_number, '0123456789', '0123456789') FROM shop.customers WHERE id=1",
    "SELECT lower(email) FROM shop.customers WHERE id=1",
    "SELECT split_part(email, '@', 1) FROM shop.customers WHERE id=1",
    "SELECT CASE WHEN id = 1 THEN ssn ELSE email END FROM shop.customers WHERE id=1",
    "SELECT COALESCE(NULL, ssn) FROM shop.customers WHERE id=1",
    "SELECT NULLIF(ssn, 'x') FROM shop.customers WHERE id=1",
    "SELECT GREATEST(ssn, '0') FROM shop.customers WHERE id=1",
    "SELECT json_build_object('s', ssn) FROM shop.customers WHERE id=1",
    "SELECT jsonb_build_array(ssn, email, card_number) FROM shop.customers WHERE id=1",
    "SELECT json_agg(c) FROM shop.customers c WHERE c.id=1",
    "SELECT array_agg(ssn) FROM shop.customers WHERE id=1",
    "SELECT ARRAY[ssn, email] FROM shop.customers WHERE id=1",
    "SELECT (ARRAY[ssn])[1] FROM shop.customers WHERE id=1",
    "SELECT ROW(ssn, email) FROM shop.customers WHERE id=1",
    "SELECT (ROW(ssn, 1)).f1 FROM shop.customers WHERE id=1",
    "SELECT max(ssn), min(email) FROM shop.customers WHERE id=1",
    "SELECT unnest(ARRAY[ssn]) FROM shop.customers WHERE id=1",
    "SELECT s FROM shop.customers c, LATERAL (SELECT c.ssn AS s) l WHERE c.id=1",
    "SELECT s FROM shop.customers c CROSS JOIN LATERAL unnest(ARRAY[c.ssn]) AS s WHERE c.id=1",
    "SELECT regexp_replace(ssn, '(.)', '\\1 ', 'g') FROM shop.customers WHERE id=1",
    "SELECT birth_date + 0 FROM shop.customers WHERE id=1",
    "SELECT birth_date::text FROM shop.customers WHERE id=1",
    "SELECT to_char(birth_date, 'YYYY-MM-DD') FROM shop.customers WHERE id=1",
    "SELECT ssn COLLATE \"C\" FROM shop.customers WHERE id=1",
    "SELECT quote_literal(ssn) FROM shop.customers WHERE id=1",
    "SELECT md5(ssn) = md5('101-02-0002') FROM shop.customers WHERE id=1",
    "SELECT DISTINCT ssn FROM shop.customers WHERE id=1",
    "SELECT ssn FROM shop.customers WHERE id=1 FOR UPDATE",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expressions_over_masked_columns_are_masked() {
    let shop = Shop::create("mask_expr", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    for sql in EXPRESSIONS {
        agent_sees(&shop, &proxy, &agent, sql).await;
    }
}

/// A masked column's value as a one-bit answer: that answer must be masked
/// or refused, never the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_computed_from_masked_values_are_not_the_truth() {
    let shop = Shop::create("mask_oracle", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    for (sql, truth) in [
        (
            "SELECT ssn = '101-02-0002' FROM shop.customers WHERE id=1",
            "t",
        ),
        (
            "SELECT CASE WHEN ssn LIKE '101%' THEN 'yes' ELSE 'no' END FROM shop.customers WHERE id=1",
            "yes",
        ),
        ("SELECT ascii(ssn) FROM shop.customers WHERE id=1", "49"),
        (
            "SELECT position('101' in ssn) FROM shop.customers WHERE id=1",
            "1",
        ),
        (
            "SELECT substr(ssn, 1, 1) FROM shop.customers WHERE id=1",
            "1",
        ),
        (
            "SELECT md5(ssn) FROM shop.customers WHERE id=1",
            "77b7b847856e35f6f2749428e0decebf",
        ),
    ] {
        for s in agent_sees(&shop, &proxy, &agent, sql).await {
            if let Ok(rows) = &s.result {
                assert_ne!(
                    rows.first().and_then(|r| r[0].as_deref()),
                    Some(truth),
                    "{sql} via {:?} gave away the answer",
                    s.via
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_mask_the_columns_they_expose() {
    let shop = Shop::create(
        "mask_views",
        "CREATE VIEW shop.v_ssn AS SELECT id, ssn AS tax FROM shop.customers;
         CREATE VIEW shop.v_nested AS SELECT id, upper(tax) AS t2 FROM shop.v_ssn;
         CREATE MATERIALIZED VIEW shop.mv_ssn AS SELECT id, ssn AS tax FROM shop.customers;",
    );
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;

    let sql = "SELECT * FROM shop.customer_contacts WHERE id=1";
    assert_rows(
        sql,
        &agent_sees(&shop, &proxy, &agent, sql).await,
        &[&[
            Some("1"),
            Some("Grace Lovelace"),
            Some("****@example.com"),
            Some("*************37"),
        ]],
    );
    // keep_last(4) of the last four is the last four: only no more than that.
    let sql = "SELECT ssn_last4 FROM shop.customer_totals WHERE id=1";
    for s in agent_sees(&shop, &proxy, &agent, sql).await {
        assert!(s.value().unwrap().len() <= 4, "{s:?}");
    }
    for sql in [
        "SELECT tax FROM shop.v_ssn WHERE id=1",
        "SELECT * FROM shop.v_ssn WHERE id=1",
        "SELECT t2 FROM shop.v_nested WHERE id=1",
        "SELECT tax FROM shop.mv_ssn WHERE id=1",
    ] {
        agent_sees(&shop, &proxy, &agent, sql).await;
    }
    let seen = every_client(
        &proxy,
        &alice,
        "alice",
        "SELECT tax FROM shop.v_ssn WHERE id=1",
    )
    .await;
    assert_rows("alice's v_ssn", &seen, &[&[Some(SSN)]]);

    // Created after the proxy read the catalog, by someone else and by agent.
    shop.db.direct_sql(
        "CREATE VIEW shop.v_late AS SELECT id, ssn AS tax, email AS e FROM shop.customers",
    );
    agent_sees(
        &shop,
        &proxy,
        &agent,
        "SELECT tax, e FROM shop.v_late WHERE id=1",
    )
    .await;
    // A temporary view lives in the one session that made it.
    for (create, select, vias) in [
        (
            "CREATE VIEW shop.v_agent AS SELECT id, ssn AS t FROM shop.customers",
            "SELECT t FROM shop.v_agent WHERE id=1",
            &EVERY_CLIENT[..],
        ),
        (
            "CREATE TEMP VIEW v_temp AS SELECT id, card_number AS t FROM shop.customers",
            "SELECT t FROM v_temp WHERE id=1",
            &[Via::Binary, Via::Simple][..],
        ),
    ] {
        if let Err(f) = binary(&agent, create).await {
            assert_eq!(f.code, "42501", "{create}: {f:?}");
            continue;
        }
        for via in vias {
            let s = run(&proxy, &agent, "agent", *via, select).await;
            shop.assert_hidden(&format!("{select} via {via:?}"), &s.shown);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_of_a_multi_statement_query_is_masked() {
    let shop = Shop::create("mask_multi", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    for sql in [
        "SELECT 1; SELECT ssn FROM shop.customers WHERE id=1; SELECT 2",
        "SELECT ssn FROM shop.customers WHERE id=1; SELECT email FROM shop.customers WHERE id=1",
        "BEGIN; SELECT card_number FROM shop.customers WHERE id=1; COMMIT",
    ] {
        for via in [Via::Psql, Via::Simple] {
            let s = run(&proxy, &agent, "agent", via, sql).await;
            shop.assert_hidden(sql, &s.shown);
            assert!(!s.rows().is_empty(), "{sql} via {via:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_that_are_not_masked_are_untouched() {
    let shop = Shop::create("mask_clear", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    for sql in [
        "SELECT id, full_name FROM shop.customers ORDER BY id LIMIT 5",
        "SELECT id, order_number, customer_id, status, client_ip::text FROM shop.orders ORDER BY id LIMIT 5",
        "SELECT count(*) FROM shop.customers",
        "SELECT id, notes FROM shop.customers WHERE id IN (1, 7) ORDER BY id",
    ] {
        let masked = every_client(&proxy, &agent, "agent", sql).await;
        let clear = every_client(&proxy, &alice, "alice", sql).await;
        for (m, c) in masked.iter().zip(&clear) {
            assert_eq!(m.rows(), c.rows(), "{sql} via {:?}", m.via);
        }
    }
}

/// A policy rule can mask for whole sessions: here full names for every
/// agent on this database, although `[masking]` leaves them clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_masks_columns_for_the_sessions_it_applies_to() {
    let shop = Shop::create("mask_rule", "");
    let rule = r#"
[[rules]]
id = "agents-see-no-names"
when = { identity_kinds = ["agent"], databases = ["demo"] }
action = "allow"
mask = ["shop.customers.full_name"]
"#;
    let toml = config_toml(
        &shop.db.name,
        "",
        &format!("{}\n{rule}", masking("", COLUMNS)),
    );
    let proxy = Proxy::start(&toml);
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    let sql = "SELECT id, full_name FROM shop.customers WHERE id = 1";
    let seen = agent_sees(&shop, &proxy, &agent, sql).await;
    assert_rows(sql, &seen, &[&[Some("1"), Some("****")]]);
    let seen = every_client(&proxy, &alice, "alice", sql).await;
    assert_rows(sql, &seen, &[&[Some("1"), Some("Grace Lovelace")]]);
}

/// A reload that starts masking for a running session that saw everything
/// clear takes effect at its next statement: refused while Vigil reads the
/// catalog, masked from then on. One that exempts it again ends masking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_starts_and_stops_masking_in_running_sessions() {
    let shop = Shop::create("mask_reload", "");
    let clear = config_toml(&shop.db.name, "", "");
    let masked = config_toml(&shop.db.name, "", &masking("", COLUMNS));
    let proxy = Proxy::start(&clear);
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let sql = "SELECT ssn FROM shop.customers WHERE id = 1";
    let first = simple(&agent, sql).await.expect("clear before the reload");
    assert_eq!(first, [[Some(SSN.to_owned())]]);

    let path = std::path::Path::new("/tmp/vigil-reload-test.toml");
    let load = |toml: &str| vigil_config::Config::from_toml(toml, path).unwrap();
    proxy.state.reload(load(&masked)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let seen = loop {
        match simple(&agent, sql).await {
            Ok(rows) => break rows,
            Err(f) => {
                assert!(f.text.contains("vigil.masking.pending"), "{f:?}");
                assert!(std::time::Instant::now() < deadline, "still pending: {f:?}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(seen, [[Some("*******0002".to_owned())]]);
    // In binary too (the extended protocol's Describe and Execute).
    for s in agent_sees(&shop, &proxy, &agent, sql).await {
        assert_eq!(s.rows(), &[vec![Some("*******0002".to_owned())]], "{s:?}");
    }

    proxy.state.reload(load(&clear)).unwrap();
    let again = simple(&agent, sql)
        .await
        .expect("clear after the second reload");
    assert_eq!(again, [[Some(SSN.to_owned())]]);
}

/// A view column computed from a masked one hides its NULLs too: otherwise
/// `CASE WHEN ssn LIKE '101%' THEN 'x' END` answers through NULL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computed_view_column_hides_its_nulls() {
    let shop = Shop::create(
        "mask_view_nulls",
        "CREATE VIEW shop.flags AS SELECT id, CASE WHEN ssn LIKE '101%' THEN 'x' END AS flag FROM shop.customers",
    );
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let sql = "SELECT flag FROM shop.flags WHERE id IN (1, 2) ORDER BY id";
    for s in agent_sees(&shop, &proxy, &agent, sql).await {
        assert_eq!(
            s.rows(),
            &[vec![Some("****".to_owned())], vec![Some("****".to_owned())]],
            "{s:?}"
        );
    }
}

/// The demo data loaded after Vigil read the catalog (the README's order):
/// the first statement that names the new tables has the catalog read
/// again before it is decided, so it is neither refused nor masked whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relations_created_after_the_catalog_was_read_are_known_at_once() {
    let db = TestDb::create("mask_fresh_catalog");
    let proxy = Proxy::start(&config_toml(&db.name, "", &masking("", COLUMNS)));
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    // Both sessions are open, with the catalog read, before the shop exists.
    agent.simple_query("SELECT 1").await.unwrap();
    alice.simple_query("SELECT 1").await.unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo.sql");
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", PG_HOST])
        .args(["-U", "postgres", "-d", &db.name, "-f"])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let sql = "SELECT full_name, ssn, email, upper(ssn) AS x FROM shop.customers WHERE id = 1";
    let row = simple(&agent, sql).await.expect("not refused");
    assert_eq!(
        row[0],
        [
            Some("Grace Lovelace".to_owned()),
            Some("*******0002".to_owned()),
            Some("****@example.com".to_owned()),
            Some("****".to_owned())
        ]
    );
    let row = simple(&alice, sql).await.unwrap();
    assert_eq!(row[0][1].as_deref(), Some(SSN));
    let sql = "UPDATE shop.orders SET status = 'shipped' WHERE id = 1 RETURNING id, status";
    let row = simple(&agent, sql).await.expect("not refused");
    assert_eq!(
        row[0],
        [Some("1".to_owned()), Some("shipped".to_owned())],
        "orders has no masked column: nothing masked"
    );
}
