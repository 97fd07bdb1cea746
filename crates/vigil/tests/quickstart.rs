//! The README's first command, `scripts/quickstart`, as a newcomer runs it:
//! it installs what the build needs, loads the demo shop into a database of
//! its own without replacing what is there, builds Vigil and serves the
//! quickstart, until psql gets an answer through it (masked for the agent).
//! The suite runs it with VIGIL_PROFILE=debug, sharing the suite's build.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn psql(user: &str, password: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1"])
        .arg(format!(
            "host=127.0.0.1 port=6432 dbname=demo user={user} connect_timeout=5"
        ))
        .args(["-c", sql])
        .env("PGPASSWORD", password)
        .output()
        .expect("psql runs")
}

fn direct(sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-At",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "vigil_demo",
        ])
        .args(["-c", sql])
        .output()
        .expect("psql runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_first_command_serves_the_demo_shop() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Vigil logs to stderr: a file, not a pipe nobody drains while waiting.
    let log_path =
        std::env::temp_dir().join(format!("vigil-quickstart-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(root.join("scripts/quickstart"))
        .current_dir(&root)
        .env("VIGIL_PROFILE", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("scripts/quickstart runs");
    let group = child.id();
    let deadline = Instant::now() + Duration::from_secs(600);
    let answer = loop {
        let out = psql(
            "agent",
            "agent-demo",
            "SELECT full_name, ssn FROM shop.customers WHERE id = 1",
        );
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("scripts/quickstart exited ({status}) before answering:\n{stderr}");
        }
        assert!(
            Instant::now() < deadline,
            "no answer through the quickstart"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let alice = psql(
        "alice",
        "alice-demo",
        "SELECT ssn FROM shop.customers WHERE id = 1",
    );
    // The README's line: the agent runs upstream as its own role, alice as
    // the service role.
    let agent_role = psql("agent", "agent-demo", "SELECT current_user");
    let alice_role = psql("alice", "alice-demo", "SELECT current_user");
    // The script's process group: the script, cargo, and Vigil it runs.
    if group > 1 {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{group}")])
            .status();
    }
    let _ = child.wait();
    let _ = std::fs::remove_file(&log_path);
    assert!(answer.starts_with("Grace Lovelace|"), "{answer}");
    assert!(
        answer.contains("*******0002"),
        "the agent sees the SSN masked: {answer}"
    );
    assert_eq!(String::from_utf8_lossy(&alice.stdout).trim(), "101-02-0002");
    assert_eq!(
        String::from_utf8_lossy(&agent_role.stdout).trim(),
        "vigil_agent"
    );
    assert_eq!(
        String::from_utf8_lossy(&alice_role.stdout).trim(),
        "postgres"
    );
    // The demo lives in a database of its own.
    assert_eq!(direct("SELECT count(*) > 0 FROM shop.customers"), "t");
}
