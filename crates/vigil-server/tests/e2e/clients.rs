//! Drivers and tools through Vigil: tokio-postgres (extended protocol,
//! prepared statements, pipelining, binary formats, cancel, large values)
//! and pgbench in every query mode.

use std::process::Command;

use futures_util::SinkExt;
use std::time::{Duration, Instant};

use crate::harness::{config_toml, stderr, stdout, Proxy, RawClient, TestDb, ALICE_PASSWORD};

#[tokio::test(flavor = "multi_thread")]
async fn extended_protocol_prepared_statements_and_binary_formats() {
    let db = TestDb::create("tpg_extended");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let client = proxy.connect("alice", ALICE_PASSWORD).await;

    client
        .batch_execute(
            "CREATE TABLE t (id int8 PRIMARY KEY, name text, data bytea, score float8, ok bool)",
        )
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO t VALUES ($1, $2, $3, $4, $5)")
        .await
        .unwrap();
    for i in 0..50i64 {
        let data: Vec<u8> = (0..=255u8).cycle().skip(i as usize).take(300).collect();
        client
            .execute(
                &insert,
                &[
                    &i,
                    &format!("row {i}"),
                    &data,
                    &(i as f64 / 3.0),
                    &(i % 2 == 0),
                ],
            )
            .await
            .unwrap();
    }
    // tokio-postgres asks for every result column in binary format.
    let rows = client
        .query(
            "SELECT id, name, data, score, ok FROM t WHERE id >= $1 ORDER BY id",
            &[&45i64],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    let data: Vec<u8> = rows[0].get(2);
    assert_eq!(
        data,
        (0..=255u8).cycle().skip(45).take(300).collect::<Vec<_>>()
    );
    assert_eq!(rows[0].get::<_, f64>(3), 15.0);
    assert!(!rows[0].get::<_, bool>(4));

    // A named statement used many times, then an error inside the extended
    // protocol: the session recovers at Sync.
    let by_id = client
        .prepare("SELECT name FROM t WHERE id = $1")
        .await
        .unwrap();
    for i in [3i64, 7, 11] {
        let name: String = client.query_one(&by_id, &[&i]).await.unwrap().get(0);
        assert_eq!(name, format!("row {i}"));
    }
    let err = client
        .execute("INSERT INTO t (id) VALUES ($1)", &[&3i64])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "23505");
    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 50);

    // Portals with a row limit (PortalSuspended) inside a transaction.
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    let portal = tx.bind("SELECT id FROM t ORDER BY id", &[]).await.unwrap();
    let first = tx.query_portal(&portal, 20).await.unwrap();
    let rest = tx.query_portal(&portal, 100).await.unwrap();
    assert_eq!((first.len(), rest.len()), (20, 30));
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_queries_all_come_back_in_order() {
    let db = TestDb::create("tpg_pipeline");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let client = proxy.connect("alice", ALICE_PASSWORD).await;
    let statement = client.prepare("SELECT $1::int4 * 2").await.unwrap();
    // tokio-postgres writes every request before reading any reply when
    // futures are polled together: a real pipeline through the proxy.
    let futures: Vec<_> = (0..200i32)
        .map(|i| {
            let client = &client;
            let statement = &statement;
            async move {
                client
                    .query_one(statement, &[&i])
                    .await
                    .map(|row| row.get::<_, i32>(0))
            }
        })
        .collect();
    let results = futures_util::future::join_all(futures).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap(), i as i32 * 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_through_the_token_stops_the_running_query() {
    let db = TestDb::create("tpg_cancel");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let client = proxy.connect("alice", ALICE_PASSWORD).await;
    let token = client.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await });
    // Cancel once the query is visibly running upstream.
    wait_for(|| {
        db.direct_sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND query LIKE 'SELECT pg_sleep%'",
            db.name
        ))
        .trim()
            == "1"
    });
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let err = sleeper.await.unwrap().unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014", "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn clients_see_the_servers_pid_with_a_secret_of_vigils() {
    let db = TestDb::create("raw_key");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let mut raw = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let reply = raw.query("SELECT pg_backend_pid()");
    let row = reply.iter().find(|(tag, _)| *tag == b'D').expect("a row");
    let upstream_pid: i32 = String::from_utf8_lossy(&row.1[6..]).parse().unwrap();
    assert_eq!(
        raw.key.0, upstream_pid,
        "BackendKeyData carries the backend's own pid"
    );
    // Its own notifications carry that pid: a client telling its own from
    // others' by comparing them sees them right.
    let reply = raw.query("LISTEN vigil_pid; NOTIFY vigil_pid, 'mine'");
    let notification = reply
        .iter()
        .find(|(tag, _)| *tag == b'A')
        .expect("the notification");
    let sender = i32::from_be_bytes(notification.1[..4].try_into().unwrap());
    assert_eq!(sender, raw.key.0);
    // A cancel with the right pid and a made-up secret is ignored and
    // harms nothing.
    let mut bogus = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    let mut packet = bytes::BytesMut::new();
    postgres_protocol::message::frontend::cancel_request(raw.key.0, raw.key.1 ^ 1, &mut packet);
    std::io::Write::write_all(&mut bogus, &packet).unwrap();
    assert!(raw.query("SELECT 1").iter().any(|(tag, _)| *tag == b'D'));
}

#[tokio::test(flavor = "multi_thread")]
async fn large_values_stream_through_in_both_directions() {
    let db = TestDb::create("tpg_large");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let client = proxy.connect("alice", ALICE_PASSWORD).await;
    // 64 MiB in one DataRow: four times the client message cap, which only
    // bounds what Vigil holds whole.
    let row = client
        .query_one("SELECT repeat('x', 64 * 1024 * 1024)", &[])
        .await
        .unwrap();
    let value: String = row.get(0);
    assert_eq!(value.len(), 64 << 20);
    assert!(value.bytes().all(|b| b == b'x'));

    // A 40 MiB value in through COPY (CopyData streams through).
    client
        .batch_execute("CREATE TABLE blobs (v text)")
        .await
        .unwrap();
    let sink = client
        .copy_in::<_, bytes::Bytes>("COPY blobs FROM STDIN")
        .await
        .unwrap();
    let mut line = vec![b'y'; 40 << 20];
    line.push(b'\n');
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from(line)).await.unwrap();
    let copied = sink.finish().await.unwrap();
    assert_eq!(copied, 1);
    let len: i32 = client
        .query_one("SELECT length(v) FROM blobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(len, 40 << 20);
}

fn wait_for(mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "condition not reached in 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pgbench_runs_every_query_mode_without_failures() {
    let db = TestDb::create("pgbench");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let pgbench = |args: &[&str]| {
        let out = Command::new("pgbench")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &proxy.port.to_string(),
                "-U",
                "alice",
            ])
            .args(args)
            .arg("demo")
            .env("PGPASSWORD", ALICE_PASSWORD)
            .output()
            .expect("pgbench runs");
        assert!(
            out.status.success(),
            "pgbench {args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    };
    pgbench(&["-i", "-s", "1", "-q"]);
    for mode in ["simple", "extended", "prepared"] {
        let out = pgbench(&["-M", mode, "-c", "4", "-j", "2", "-t", "300"]);
        assert!(
            out.contains("number of failed transactions: 0 (0.000%)"),
            "{mode}: {out}"
        );
        assert!(
            out.contains("number of transactions actually processed: 1200/1200"),
            "{mode}: {out}"
        );
    }
}

#[test]
fn a_query_sent_along_with_the_login_is_answered() {
    let db = TestDb::create("raw_pipelined_login");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let mut query = bytes::BytesMut::new();
    postgres_protocol::message::frontend::query("SELECT 'early bird'", &mut query).unwrap();
    let mut raw = RawClient::login_pipelined(proxy.port, "alice", ALICE_PASSWORD, &query);
    let reply = raw.read_until_ready();
    let row = reply
        .iter()
        .find(|(tag, _)| *tag == b'D')
        .expect("the pipelined query's row");
    assert!(String::from_utf8_lossy(&row.1).ends_with("early bird"));
}

#[test]
fn a_half_closed_client_still_gets_its_answer() {
    let db = TestDb::create("raw_half_close");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let mut raw = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let mut query = bytes::BytesMut::new();
    postgres_protocol::message::frontend::query("SELECT pg_sleep(0.2), 42", &mut query).unwrap();
    raw.send(&query).unwrap();
    raw.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let messages = raw.read_to_close();
    let tags: Vec<char> = messages.iter().map(|(tag, _)| *tag as char).collect();
    assert_eq!(
        tags,
        ['T', 'D', 'C', 'Z'],
        "as PostgreSQL answers a half-closed client"
    );
}
