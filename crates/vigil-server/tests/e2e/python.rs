//! Python's psycopg 3 through Vigil: a driver that pipelines, prepares, COPYs
//! and keeps server-side cursors, checked by `python/psycopg_session.py`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{config_toml, Proxy, TempDir, TestDb, ALICE_PASSWORD};

/// Generous: the script takes about a second; only a hang gets near this.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn psycopg_queries_copy_and_cursors() {
    let db = TestDb::create("psycopg");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/python/psycopg_session.py");

    // Output goes to files so a chatty script cannot block on a full pipe
    // while the test waits for it to exit.
    let out_dir = TempDir::new("psycopg");
    let stdout_path = out_dir.0.join("stdout");
    let stderr_path = out_dir.0.join("stderr");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(proxy.conninfo("alice"))
        .env("PGPASSWORD", ALICE_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("python3 runs");

    let deadline = Instant::now() + SCRIPT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    let report = format!("stdout:\n{stdout}\nstderr:\n{stderr}");

    let status = status.unwrap_or_else(|| {
        panic!("psycopg script still running after {SCRIPT_DEADLINE:?}\n{report}")
    });
    assert!(
        status.success(),
        "psycopg script failed ({status})\n{report}"
    );
    assert_eq!(stdout.lines().last(), Some("psycopg ok"), "{report}");
}
