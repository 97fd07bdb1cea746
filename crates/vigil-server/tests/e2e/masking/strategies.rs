//! Each masking strategy as clients see it, in text and in binary: hash and
//! preserve are keyed and stable, null is NULL, redact keeps the type.

use super::*;

const STRATEGY_COLUMNS: &str = r#"
[[masking.columns]]
column = "shop.customers.ssn"
strategy = "hash"

[[masking.columns]]
column = "shop.customers.phone"
strategy = "preserve"

[[masking.columns]]
column = "shop.customers.card_number"
strategy = "null"

[[masking.columns]]
column = "shop.customers.email"
strategy = "redact"

[[masking.columns]]
column = "shop.customers.birth_date"
strategy = "redact"

[[masking.columns]]
column = "shop.orders.customer_id"
strategy = "redact"
"#;

const CUSTOMER: &str =
    "SELECT ssn, phone, card_number, email, birth_date FROM shop.customers WHERE id = 1";

/// A proxy masking with every strategy, its key in an environment variable
/// of this test's own.
fn strategy_proxy(shop: &Shop) -> Proxy {
    let var = format!("VIGIL_E2E_MASK_KEY_{}", std::process::id());
    std::env::set_var(&var, "e2e-masking-key-0123456789abcdef-0123456789abcdef");
    Proxy::start(&config_toml(
        &shop.db.name,
        "",
        &masking(&format!("key_env = \"{var}\""), STRATEGY_COLUMNS),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_strategy_in_text_and_binary() {
    let shop = Shop::create("mask_strategies", "");
    let proxy = strategy_proxy(&shop);
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;

    let seen = agent_sees(&shop, &proxy, &agent, CUSTOMER).await;
    let first = seen[0].rows().clone();
    let [ssn, phone, card, email, birth] = &first[0][..] else {
        panic!("{first:?}");
    };
    let ssn = ssn.as_deref().expect("hash is not NULL");
    assert!(
        ssn.len() == 32
            && ssn
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "hash: {ssn:?}"
    );
    let unkeyed = shop.db.direct_sql(
        "SELECT md5(ssn) || ',' || left(encode(sha256(ssn::bytea), 'hex'), 32) FROM shop.customers WHERE id = 1",
    );
    assert!(
        !unkeyed.trim().split(',').any(|h| h == ssn),
        "an unkeyed hash"
    );

    let phone = phone.as_deref().expect("preserve is not NULL");
    let clear = "+1-555-100-0037";
    assert_ne!(phone, clear);
    assert_eq!(phone.len(), clear.len(), "{phone}");
    for (p, c) in phone.chars().zip(clear.chars()) {
        assert!(
            if c.is_ascii_digit() {
                p.is_ascii_digit()
            } else {
                p == c
            },
            "preserve: {phone}"
        );
    }
    assert_eq!(card, &None, "null");
    assert_eq!(email.as_deref(), Some("****"), "redacted text");
    assert_eq!(birth.as_deref(), Some("2000-01-01"), "redacted date");
    // Binary and text agree, and so do other sessions and another proxy with the same key.
    assert_rows(
        CUSTOMER,
        &seen,
        &[&first[0].iter().map(Option::as_deref).collect::<Vec<_>>()],
    );
    let again = proxy.connect("agent", AGENT_PASSWORD).await;
    assert_eq!(binary(&again, CUSTOMER).await.unwrap(), first);
    let restarted = strategy_proxy(&shop);
    let again = restarted.connect("agent", AGENT_PASSWORD).await;
    assert_eq!(binary(&again, CUSTOMER).await.unwrap(), first);

    // Equal values hash equal, different ones differ: joins on the hash work.
    let sql = "SELECT ssn FROM shop.customers WHERE id IN (1, 2) ORDER BY id";
    for s in agent_sees(&shop, &proxy, &agent, sql).await {
        let hashes: Vec<&str> = s.rows().iter().map(|r| r[0].as_deref().unwrap()).collect();
        assert_eq!(hashes.len(), 2, "{s:?}");
        assert_eq!(hashes[0], ssn, "{s:?}");
        assert_ne!(hashes[1], ssn, "{s:?}");
    }
    // Through a set operation or an expression the value is computed, not
    // the column's: redacted whole, since a hash of `(ssn = '…')::text`
    // would tell true from false.
    for sql in [
        "SELECT ssn FROM shop.customers WHERE id = 1 UNION ALL SELECT ssn FROM shop.customers WHERE id = 2",
        "SELECT (ssn = '101-02-0002')::text FROM shop.customers WHERE id IN (1, 2)",
        "SELECT nullif(ssn, '101-02-0002') FROM shop.customers WHERE id IN (1, 2)",
    ] {
        for s in agent_sees(&shop, &proxy, &agent, sql).await {
            let values: Vec<Option<&str>> = s.rows().iter().map(|r| r[0].as_deref()).collect();
            assert_eq!(values, [Some("****"), Some("****")], "{sql}: {s:?}");
        }
    }

    // An int column redacted: 0 in binary and in text.
    let sql = "SELECT customer_id FROM shop.orders WHERE id = 1";
    assert_rows(
        sql,
        &agent_sees(&shop, &proxy, &agent, sql).await,
        &[&[Some("0")]],
    );

    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    assert_rows(
        CUSTOMER,
        &every_client(&proxy, &alice, "alice", CUSTOMER).await,
        &[&[
            Some(SSN),
            Some(clear),
            Some("4000000000079196"),
            Some("grace.lovelace1@example.com"),
            Some("1950-01-18"),
        ]],
    );
    assert_rows(
        sql,
        &every_client(&proxy, &alice, "alice", sql).await,
        &[&[Some("2")]],
    );
}
