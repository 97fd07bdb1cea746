//! Hostile bytes on the wire: each bad connection gets a clear protocol error
//! and is closed, while a session opened beforehand keeps working.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rand::RngExt;

use crate::harness::{config_toml, sqlstate, Proxy, RawClient, TestDb, ALICE_PASSWORD};

/// Frame of type `tag` whose length field says `declared` whatever follows.
fn frame(tag: u8, declared: i32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&declared.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The bystander: a session that must be unaffected by everything else.
fn still_works(bystander: &mut RawClient, round: usize) {
    let reply = bystander.query(&format!("SELECT {round} AS round"));
    let row = reply
        .iter()
        .find(|(tag, _)| *tag == b'D')
        .expect("bystander row");
    assert!(String::from_utf8_lossy(&row.1).ends_with(&round.to_string()));
}

/// Sends `bytes` after logging in, and returns the SQLSTATE of the error the
/// proxy answered with before closing.
fn attack_after_login(proxy: &Proxy, bytes: &[u8]) -> String {
    let mut raw = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let _ = raw.send(bytes);
    let messages = raw.read_to_close();
    let error = messages
        .iter()
        .find(|(tag, _)| *tag == b'E')
        .unwrap_or_else(|| {
            panic!(
                "no ErrorResponse before close, got {} messages",
                messages.len()
            )
        });
    sqlstate(&error.1)
}

#[test]
fn malformed_frames_close_only_their_own_connection() {
    let db = TestDb::create("bad_frames");
    let proxy = Proxy::start(&config_toml(&db.name, "max_message_bytes = 65536", ""));
    let mut bystander = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    bystander.query("BEGIN");
    bystander.query("CREATE TABLE survivor (v int)");

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("length below the header size", frame(b'Q', 3, b""), "08P01"),
        ("negative length", frame(b'Q', -5, b"select 1\0"), "08P01"),
        ("huge length", frame(b'Q', i32::MAX, b"select 1\0"), "54000"),
        (
            "over the configured cap",
            frame(b'Q', 65_536 + 100, &[b'x'; 10]),
            "54000",
        ),
        ("unknown message type", frame(b'z', 4, b""), "08P01"),
        (
            "startup packet after startup",
            vec![0, 0, 0, 8, 4, 210, 22, 47],
            "08P01",
        ),
    ];
    for (round, (what, bytes, code)) in cases.into_iter().enumerate() {
        assert_eq!(attack_after_login(&proxy, &bytes), code, "{what}");
        still_works(&mut bystander, round);
    }

    // An actually oversized message, not just a claim: refused at the header,
    // before its body is read into memory.
    let mut big = frame(b'Q', 200_000 + 4, &vec![b'x'; 199_999]);
    big.push(0);
    assert_eq!(attack_after_login(&proxy, &big), "54000");

    // A length that lies short: the rest of the text is read as the next
    // frame's header, which the proxy rejects; whatever the server saw of the
    // first, the connection ends with an error.
    let mut raw = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    raw.send(&frame(b'Q', 8, b"select 1;\0")).unwrap();
    let messages = raw.read_to_close();
    assert!(messages.iter().any(|(tag, _)| *tag == b'E'), "short lie");

    // The bystander's transaction is intact.
    bystander.query("INSERT INTO survivor VALUES (1)");
    let reply = bystander.query("COMMIT");
    assert!(reply
        .iter()
        .any(|(tag, body)| *tag == b'C' && body.starts_with(b"COMMIT")));
    assert_eq!(db.direct_sql("SELECT count(*) FROM survivor").trim(), "1");
}

#[test]
fn truncated_frames_and_dropped_connections_leave_no_trace() {
    let db = TestDb::create("bad_truncated");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let mut bystander = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    for round in 0..5 {
        let mut raw = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
        let whole = frame(b'Q', 13, b"select 1\0");
        raw.send(&whole[..round + 3]).unwrap();
        drop(raw);
        still_works(&mut bystander, round);
    }
    // The upstream backends of the dropped sessions go away too.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = db.direct_sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
            db.name
        ));
        if n.trim() == "1" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} backends left",
            n.trim()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn random_bytes_before_and_after_login_are_contained() {
    let db = TestDb::create("bad_random");
    let proxy = Proxy::start(&config_toml(&db.name, "max_message_bytes = 65536", ""));
    let mut bystander = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let mut rng = rand::rng();
    for round in 0..40 {
        let len = rng.random_range(1..4096);
        let mut junk = vec![0u8; len];
        rand::fill(&mut junk[..]);
        if round % 2 == 0 {
            // Before login: in place of a startup packet.
            let mut stream = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let _ = stream.write_all(&junk);
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut reply = Vec::new();
            // Either an error then close, or a close: never a hang.
            let _ = stream.read_to_end(&mut reply);
            assert!(
                reply.is_empty() || reply[0] == b'E' || reply[0] == b'N',
                "reply {:?}",
                &reply[..1]
            );
        } else {
            let mut raw = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
            let _ = raw.send(&junk);
            let _ = raw.stream.shutdown(std::net::Shutdown::Write);
            let _ = raw.read_to_close();
        }
        still_works(&mut bystander, round);
    }
    // And the proxy still accepts new sessions.
    RawClient::login(proxy.port, "alice", ALICE_PASSWORD).query("SELECT 1");
}

#[test]
fn a_client_that_never_authenticates_is_disconnected() {
    let db = TestDb::create("bad_silent");
    let toml = config_toml(&db.name, "", "").replace(
        "failure_delay_ms = 10",
        "failure_delay_ms = 10\ntimeout_secs = 1",
    );
    let proxy = Proxy::start(&toml);
    let started = std::time::Instant::now();
    // Half a startup packet, then silence.
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(&[0, 0, 0, 40, 0, 3]).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(reply.first(), Some(&b'E'));
    assert_eq!(sqlstate(&reply[5..]), "08006");
}

/// A query and Terminate in one write: PostgreSQL answers the query before
/// it closes, and so does Vigil (psycopg's `test_socket_closed` relies on it).
#[test]
fn a_query_then_terminate_still_gets_its_answer() {
    let db = TestDb::create("bad_terminate");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let mut raw = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let mut out = bytes::BytesMut::new();
    postgres_protocol::message::frontend::query("SELECT pg_sleep(0.2), 42", &mut out).unwrap();
    postgres_protocol::message::frontend::terminate(&mut out);
    raw.send(&out).unwrap();
    let answers = raw.read_to_close();
    let tags: Vec<u8> = answers.iter().map(|(tag, _)| *tag).collect();
    assert_eq!(tags, b"TDCZ", "{answers:?}");
    assert!(answers[1].1.ends_with(b"42"));
}

/// What is not a startup packet is closed without a word, as PostgreSQL
/// closes it (node-postgres's quick-disconnect test relies on it).
#[test]
fn a_malformed_startup_packet_is_closed_without_a_word() {
    let db = TestDb::create("bad_startup");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    for junk in [
        &[0u8, 0, 0, 3][..],
        &[0, 0, 0, 8, 0, 0, 0, 0][..],
        &[0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0][..],
    ] {
        let mut stream = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(junk).unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        assert!(reply.is_empty(), "{junk:?}: {reply:?}");
    }
}

/// A text the analyzer cannot read is put to the server as a Parse (which
/// runs nothing): the client hears the server's own error, SQLSTATE,
/// position and all, as it would without Vigil; and nothing runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_texts_get_the_servers_own_error() {
    let db = TestDb::create("bad_syntax");
    db.direct_sql("CREATE TABLE t (x int)");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let through = proxy.connect("alice", ALICE_PASSWORD).await;
    let (direct, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=postgres dbname={}",
            crate::harness::PG_HOST,
            crate::harness::PG_PORT,
            db.name
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    for sql in [
        "SELEC 1",
        "SELECT 1 FROM",
        "SELECT E'\\u'",
        "SELECT U&'\\D800'",
        "SELECT 'a' UESCAPE 'x'",
        "INSERT INTO t VALUES (1); SELEC 2",
        "SELECT $1",
    ] {
        for extended in [false, true] {
            if extended && (sql.contains(';') || sql.contains('$')) {
                continue;
            }
            async fn run(
                client: &tokio_postgres::Client,
                sql: &str,
                extended: bool,
            ) -> tokio_postgres::Error {
                match extended {
                    false => client.simple_query(sql).await.map(|_| ()),
                    true => client.execute(sql, &[]).await.map(|_| ()),
                }
                .expect_err("fails")
            }
            let (theirs, ours) = (
                run(&direct, sql, extended).await,
                run(&through, sql, extended).await,
            );
            let (theirs, ours) = (
                theirs
                    .as_db_error()
                    .unwrap_or_else(|| panic!("direct {sql}: {theirs:?}")),
                ours.as_db_error()
                    .unwrap_or_else(|| panic!("{sql} (extended: {extended}): {ours:?}")),
            );
            assert_eq!(
                (
                    theirs.code(),
                    theirs.message(),
                    theirs.position(),
                    theirs.hint()
                ),
                (ours.code(), ours.message(), ours.position(), ours.hint()),
                "{sql} (extended: {extended})"
            );
        }
    }
    assert_eq!(db.direct_sql("SELECT count(*) FROM t").trim(), "0");
    // The session carries on.
    through.simple_query("SELECT 1").await.unwrap();
}
