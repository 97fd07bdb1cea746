//! Masked values leaving in bulk or in instalments: COPY TO STDOUT in every
//! format, SQL-level cursors (text and BINARY) and SQL-level prepared
//! statements.

use futures_util::TryStreamExt;

use super::*;

/// psql sessions, each a list of commands, that read masked columns through
/// a cursor or a prepared statement.
const CURSOR_SESSIONS: &[&[&str]] = &[
    &[
        "BEGIN",
        "DECLARE c CURSOR FOR SELECT upper(ssn) FROM shop.customers WHERE id=1",
        "FETCH ALL FROM c",
        "COMMIT",
    ],
    &["BEGIN; DECLARE c CURSOR FOR SELECT ssn, email FROM shop.customers WHERE id=1; FETCH ALL FROM c; COMMIT"],
    &[
        "BEGIN",
        "DECLARE c BINARY CURSOR FOR SELECT ssn, card_number FROM shop.customers WHERE id=1",
        "FETCH ALL FROM c",
        "COMMIT",
    ],
    &[
        "DECLARE c CURSOR WITH HOLD FOR SELECT * FROM shop.customers",
        "FETCH 1000 FROM c",
        "CLOSE c",
    ],
    &[
        "BEGIN",
        "DECLARE c SCROLL CURSOR FOR SELECT ssn FROM shop.customers",
        "MOVE LAST IN c",
        "FETCH PRIOR FROM c",
        "FETCH ABSOLUTE 1 FROM c",
        "FETCH BACKWARD 1 FROM c",
        "COMMIT",
    ],
    &[
        "BEGIN",
        "DECLARE c NO SCROLL CURSOR FOR SELECT x FROM (SELECT card_number AS x FROM shop.customers) s",
        "FETCH FORWARD 5 FROM c",
        "COMMIT",
    ],
    &[
        "PREPARE q(int) AS SELECT ssn, email FROM shop.customers WHERE id = $1",
        "EXECUTE q(1)",
    ],
    &[
        "PREPARE q AS SELECT * FROM shop.customers",
        "EXECUTE q",
    ],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_and_sql_prepared_statements_fetch_masked_rows() {
    let shop = Shop::create("mask_cursor", "");
    let proxy = shop.proxy("");
    for session in CURSOR_SESSIONS {
        let s = psql(&proxy, "agent", session);
        shop.assert_hidden(&format!("{session:?}"), &s.shown);
        if let Err(f) = &s.result {
            assert_eq!(f.code, "42501", "{session:?}: {f:?}");
        }
    }
    let s = psql(
        &proxy,
        "agent",
        &[
            "BEGIN",
            "DECLARE c CURSOR FOR SELECT ssn FROM shop.customers WHERE id=1",
            "FETCH NEXT FROM c",
            "COMMIT",
        ],
    );
    assert!(s.shown.contains("*******0002"), "{}", s.shown);

    // Declared over the simple protocol, fetched over the extended one in
    // binary: the FETCH's rows come from the cursor's query.
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    for (declare, fetch) in [
        (
            "BEGIN; DECLARE c CURSOR FOR SELECT ssn, email FROM shop.customers WHERE id=1",
            "FETCH ALL FROM c",
        ),
        (
            "BEGIN; DECLARE c CURSOR FOR SELECT * FROM shop.customers",
            "FETCH 1000 IN c",
        ),
        (
            "BEGIN; PREPARE q2(int) AS SELECT card_number FROM shop.customers WHERE id = $1",
            "EXECUTE q2(1)",
        ),
    ] {
        simple(&agent, declare).await.expect(declare);
        let fetched = binary(&agent, fetch).await;
        shop.assert_hidden(fetch, &format!("{fetched:?}"));
        let fetched = simple(&agent, fetch).await;
        shop.assert_hidden(fetch, &format!("{fetched:?}"));
        simple(&agent, "ROLLBACK").await.unwrap();
    }
}

/// psql COPY … TO STDOUT (and \copy), with what each output must contain.
const COPIES: &[(&str, &str)] = &[
    ("COPY shop.customers TO STDOUT", "1\tGrace Lovelace\t****@example.com\t*************37\t*******0002\t************9196\t2000-01-01"),
    ("COPY shop.customers (id, ssn) TO STDOUT WITH (FORMAT csv)", "1,*******0002"),
    ("COPY (SELECT upper(ssn) FROM shop.customers WHERE id=1) TO STDOUT WITH (FORMAT csv, HEADER)", "upper"),
    ("COPY (SELECT ssn, email FROM shop.customers WHERE id = 1) TO STDOUT (FORMAT csv, FORCE_QUOTE *)", "*******0002"),
    ("COPY shop.customers (id, ssn) TO STDOUT (DELIMITER '-')", "1-*******0002"),
    ("COPY shop.customers (id, ssn) TO STDOUT (FORMAT csv, DELIMITER '0')", "1"),
    ("COPY shop.customers (ssn, full_name) TO STDOUT (FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\')", "Grace Lovelace"),
    ("COPY shop.customers (id, ssn) TO STDOUT (NULL '101-02-0002')", "*******0002"),
    ("COPY (SELECT * FROM shop.customer_contacts) TO STDOUT (FORMAT csv)", "1,Grace Lovelace,****@example.com"),
    ("COPY (SELECT ssn FROM shop.customers WHERE id = 1 UNION ALL SELECT email FROM shop.customers WHERE id = 1) TO STDOUT", ""),
    ("COPY shop.customers TO STDOUT (FORMAT binary)", "PGCOPY"),
    ("\\copy (SELECT ssn FROM shop.customers) TO STDOUT", "*******0002"),
    ("\\copy shop.customers (email, card_number) TO STDOUT (FORMAT csv)", "****@example.com,************9196"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_stdout_is_masked_in_every_format() {
    let shop = Shop::create("mask_copy_out", "");
    let proxy = shop.proxy("");
    for (sql, expected) in COPIES {
        let s = psql(&proxy, "agent", &[sql]);
        shop.assert_hidden(sql, &s.shown);
        // With '-' as the delimiter, text COPY escapes the dashes inside values.
        assert!(!s.shown.contains("101\\-02\\-0002"), "{sql}: {}", s.shown);
        assert!(s.result.is_ok(), "{sql}: {:?}", s.result);
        assert!(
            s.shown.contains(expected),
            "{sql}: no {expected:?} in {}",
            s.shown
        );
    }
    let s = psql(&proxy, "agent", &["COPY shop.customers TO STDOUT"]);
    assert_eq!(s.rows().len(), 1000, "every row arrives");
    let s = psql(&proxy, "alice", &[COPIES[1].0]);
    assert!(s.shown.contains("1,101-02-0002"), "{}", s.shown);

    // tokio-postgres's copy_out, binary format included.
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    for sql in [
        "COPY shop.customers TO STDOUT (FORMAT binary)",
        "COPY (SELECT ssn, birth_date, card_number, email FROM shop.customers WHERE id = 1) TO STDOUT (FORMAT binary)",
        "COPY shop.customers (ssn) TO STDOUT",
        "COPY shop.customers TO STDOUT (FORMAT csv)",
    ] {
        let stream = agent.copy_out(sql).await;
        let bytes: Vec<u8> = match stream {
            Ok(stream) => {
                let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect(sql);
                chunks.concat()
            }
            Err(e) => {
                let f = Failure::from(e);
                assert_eq!(f.code, "42501", "{sql}: {f:?}");
                f.text.into_bytes()
            }
        };
        shop.assert_hidden(sql, &String::from_utf8_lossy(&bytes));
        // Customer 1's birth date in binary: days since 2000-01-01, big-endian.
        let birth = (-18245i32).to_be_bytes();
        assert!(
            !bytes.windows(8).any(|w| w == [&4i32.to_be_bytes()[..], &birth].concat()),
            "{sql}: binary birth date"
        );
    }
}
