//! Python's psycopg 3 through Vigil: a driver that pipelines, prepares, COPYs
//! and keeps server-side cursors, checked by `python/psycopg_session.py`.

use std::time::Duration;

use crate::harness::{config_toml, run_python, Proxy, TestDb, ALICE_PASSWORD};

/// Generous: the script takes about a second; only a hang gets near this.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn psycopg_queries_copy_and_cursors() {
    let db = TestDb::create("psycopg");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let run = run_python(
        "psycopg_session.py",
        &proxy.conninfo("alice"),
        ALICE_PASSWORD,
        SCRIPT_DEADLINE,
    );
    let report = run.report();
    let status = run.status.unwrap_or_else(|| {
        panic!("psycopg script still running after {SCRIPT_DEADLINE:?}\n{report}")
    });
    assert!(
        status.success(),
        "psycopg script failed ({status})\n{report}"
    );
    assert_eq!(run.stdout.lines().last(), Some("psycopg ok"), "{report}");
}
