//! Graceful shutdown: no new sessions, idle sessions closed at once, busy
//! ones allowed to finish until the deadline, then cancelled upstream.

use std::time::{Duration, Instant};

use crate::harness::{config_toml, Proxy, TestDb, ALICE_PASSWORD};

fn count_sleepers(db: &TestDb) -> String {
    db.direct_sql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND query LIKE 'SELECT pg_sleep%' AND state = 'active'",
        db.name
    ))
    .trim()
    .to_owned()
}

async fn wait_until(mut ready: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn busy_sessions_finish_and_idle_ones_are_closed() {
    let db = TestDb::create("shutdown_drain");
    let proxy = Proxy::start(&config_toml(&db.name, "drain_timeout_secs = 20", ""));
    let port = proxy.port;
    let idle = proxy.connect("alice", ALICE_PASSWORD).await;
    let busy = proxy.connect("alice", ALICE_PASSWORD).await;
    let work = tokio::spawn(async move {
        let result = busy.simple_query("SELECT pg_sleep(1.5)").await.map(|_| ());
        (result, busy)
    });
    wait_until(|| count_sleepers(&db) == "1", "the busy query to start").await;

    let started = Instant::now();
    let stopper = std::thread::spawn(move || proxy.shutdown());

    // The idle session is told at once, and new sessions are not accepted.
    wait_until(|| idle.is_closed(), "the idle session to close").await;
    wait_until(
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the listener to close",
    )
    .await;

    // The busy one finishes its statement normally, then is closed too.
    let (result, busy) = work.await.unwrap();
    result.expect("the running statement completes during the drain");
    stopper.join().unwrap();
    assert!(busy.simple_query("SELECT 1").await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "drain waited for the deadline"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_deadline_running_statements_are_cancelled() {
    let db = TestDb::create("shutdown_cancel");
    let proxy = Proxy::start(&config_toml(&db.name, "drain_timeout_secs = 1", ""));
    let busy = proxy.connect("alice", ALICE_PASSWORD).await;
    let work =
        tokio::spawn(async move { busy.simple_query("SELECT pg_sleep(60)").await.map(|_| ()) });
    wait_until(|| count_sleepers(&db) == "1", "the long query to start").await;

    let started = Instant::now();
    let stopper = std::thread::spawn(move || proxy.shutdown());
    let err = work
        .await
        .unwrap()
        .expect_err("the long statement is cut short");
    stopper.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    let code = err.code().map(|c| c.code().to_owned()).unwrap_or_default();
    assert!(
        code == "57014" || code == "57P01" || err.is_closed(),
        "{err}"
    );
    // Nothing keeps running upstream.
    wait_until(
        || count_sleepers(&db) == "0",
        "the upstream statement to stop",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_idle_after_copy_or_errors_drain_at_once() {
    use futures_util::SinkExt;
    let db = TestDb::create("shutdown_copy");
    let proxy = Proxy::start(&config_toml(&db.name, "drain_timeout_secs = 30", ""));
    // COPY through the extended protocol sends a Sync the server ignores.
    let copier = proxy.connect("alice", ALICE_PASSWORD).await;
    copier
        .batch_execute("CREATE TABLE t (v int)")
        .await
        .unwrap();
    let sink = copier
        .copy_in::<_, bytes::Bytes>("COPY t FROM STDIN")
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from_static(b"1\n2\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    // An error inside an extended batch makes the server skip to Sync.
    let failer = proxy.connect("alice", ALICE_PASSWORD).await;
    assert!(failer.prepare("SELEC nonsense").await.is_err());
    failer.simple_query("SELECT 1").await.unwrap();

    let started = Instant::now();
    let stopper = std::thread::spawn(move || proxy.shutdown());
    wait_until(
        || copier.is_closed() && failer.is_closed(),
        "idle sessions to close",
    )
    .await;
    stopper.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
