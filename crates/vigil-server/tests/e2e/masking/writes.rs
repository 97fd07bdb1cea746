//! Masked values coming back from writes (RETURNING) and through the
//! error channel: constraint violations, casts and notices that echo them.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returning_clauses_are_masked() {
    // Rows for agent to delete, one per client, with SSNs only they hold.
    let shop = Shop::create(
        "mask_returning",
        "INSERT INTO shop.customers (id, full_name, email, ssn, card_number)
         SELECT 5000 + n, 'Doomed', 'doomed' || n || '@example.com', '20' || n || '-45-6789',
                '555566667777888' || n
         FROM generate_series(1, 3) n",
    );
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let mut shop = shop;
    for n in 1..=3 {
        for secret in [
            format!("20{n}-45-6789"),
            format!("doomed{n}@example.com"),
            format!("555566667777888{n}"),
            format!("30{n}-12-3456"),
        ] {
            shop.secrets.insert(secret);
        }
    }

    let sql = "UPDATE shop.customers SET full_name = full_name WHERE id = 1 RETURNING ssn";
    assert_rows(
        sql,
        &agent_sees(&shop, &proxy, &agent, sql).await,
        &[&[Some("*******0002")]],
    );
    for sql in [
        "UPDATE shop.customers SET full_name = full_name WHERE id = 1 RETURNING *",
        "UPDATE shop.customers c SET full_name = c.full_name WHERE c.id = 1 RETURNING c.email, upper(c.card_number)",
        "WITH u AS (UPDATE shop.customers SET full_name = full_name WHERE id = 1 RETURNING ssn) SELECT ssn FROM u",
        "INSERT INTO shop.orders (id, order_number, customer_id, amount, status, created_at)
         VALUES (900001, 'X-1', 1, 1, 'placed', now())
         ON CONFLICT (id) DO UPDATE SET status = 'placed'
         RETURNING (SELECT ssn FROM shop.customers WHERE id = 1)",
    ] {
        agent_sees(&shop, &proxy, &agent, sql).await;
    }
    for (n, via) in (1..=3).zip(EVERY_CLIENT) {
        let insert = format!(
            "INSERT INTO shop.customers (id, full_name, email, ssn) \
             VALUES ({}, 'New', 'new{n}@example.com', '30{n}-12-3456') RETURNING ssn, email",
            6000 + n
        );
        let s = run(&proxy, &agent, "agent", via, &insert).await;
        shop.assert_hidden(&insert, &s.shown);
        assert_eq!(
            s.rows(),
            &vec![vec![
                Some("*******3456".to_owned()),
                Some("****@example.com".to_owned())
            ]],
            "{insert} via {via:?}"
        );
        for delete in [
            format!(
                "DELETE FROM shop.customers WHERE id = {} RETURNING ssn",
                5000 + n
            ),
            format!(
                "DELETE FROM shop.customers WHERE id = {} RETURNING *",
                6000 + n
            ),
        ] {
            let s = run(&proxy, &agent, "agent", via, &delete).await;
            shop.assert_hidden(&delete, &s.shown);
            assert_eq!(s.rows().len(), 1, "{delete} via {via:?}");
        }
    }
}

/// Statements whose errors would quote a masked value.
const ECHOES: &[&str] = &[
    // Key (ssn)=(101-02-0002) already exists.
    "INSERT INTO shop.customers (id, full_name, email, ssn) VALUES (99999, 'x', 'x@example.com', '101-02-0002')",
    // Key (email)=(grace.lovelace1@example.com) already exists.
    "INSERT INTO shop.customers (id, full_name, email, ssn) VALUES (99997, 'x', 'grace.lovelace1@example.com', '899-01-0001')",
    // An UPDATE that collides with customer 1's SSN.
    "UPDATE shop.customers SET ssn = (SELECT ssn FROM shop.customers WHERE id = 1) WHERE id = 2",
    // invalid input syntax for type integer: "101-02-0002"
    "SELECT ssn::int FROM shop.customers WHERE id = 1",
    // value "4000000000079196" is out of range for type integer
    "SELECT card_number::int FROM shop.customers WHERE id = 1",
    "SELECT email::inet FROM shop.customers WHERE id = 1",
    "SELECT ssn::date FROM shop.customers WHERE id = 1",
    "SELECT ssn::json FROM shop.customers WHERE id = 1",
    "SELECT ssn::uuid FROM shop.customers WHERE id = 1",
    "SELECT to_number(ssn, 'x') FROM shop.customers WHERE id = 1",
    "SELECT (SELECT ssn FROM shop.customers WHERE id = 1)::int",
    "SELECT 1/0 FROM shop.customers WHERE id = 1 AND email IS NOT NULL",
    "DO $$ BEGIN RAISE EXCEPTION '%', (SELECT ssn FROM shop.customers WHERE id = 1); END $$",
    "DO $$ BEGIN RAISE EXCEPTION 'x' USING DETAIL = (SELECT email FROM shop.customers WHERE id = 1); END $$",
    "DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM shop.customers WHERE id = 1); END $$",
    "DO $$ BEGIN RAISE WARNING '% %', (SELECT email FROM shop.customers WHERE id = 1), (SELECT card_number FROM shop.customers WHERE id = 1); END $$",
    "DO $$ DECLARE r record; BEGIN FOR r IN SELECT ssn FROM shop.customers WHERE id = 1 LOOP RAISE NOTICE 'ssn %', r.ssn; END LOOP; END $$",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_notices_do_not_echo_masked_values() {
    let shop = Shop::create("mask_errors", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let mut shop = shop;
    shop.secrets.insert("234-56-7891".to_owned());
    shop.secrets.insert("y@example.com".to_owned());

    for sql in ECHOES {
        // Clients report errors and notices their own ways; psql shows them
        // all (verbose), and none may carry a clear value.
        for via in EVERY_CLIENT {
            let s = run(&proxy, &agent, "agent", via, sql).await;
            shop.assert_hidden(&format!("{sql} via {via:?}"), &s.shown);
        }
    }
    // Failing row contains (99998, null, y@example.com, null, 234-56-7891, …)
    let sql = "INSERT INTO shop.customers (id, email, ssn) VALUES (99998, 'y@example.com', '234-56-7891')";
    for via in EVERY_CLIENT {
        let s = run(&proxy, &agent, "agent", via, sql).await;
        shop.assert_hidden(&format!("{sql} via {via:?}"), &s.shown);
        assert!(s.result.is_err(), "{sql} via {via:?}");
    }
    // The session is still good, and alice still sees what the error says.
    let s = psql(&proxy, "alice", &[ECHOES[0]]);
    assert!(s.shown.contains(SSN), "{}", s.shown);
    agent_sees(
        &shop,
        &proxy,
        &agent,
        "SELECT ssn FROM shop.customers WHERE id = 1",
    )
    .await;
}
