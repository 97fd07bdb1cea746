//! The `vigil` binary as a user runs it: `check`, `passwd`, and `serve` with
//! its worker runtimes, answering psql and stopping cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn scratch(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn check_accepts_the_quickstart_and_names_what_is_wrong_elsewhere() {
    let out = Command::new(VIGIL)
        .args(["check", "--config"])
        .arg(repo_file("examples/quickstart.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 databases, 2 identities)"));

    let bad = scratch(
        "bad.toml",
        "[server]\nlisten = \"127.0.0.1:6432\"\n[[databases]]\nname = \"d\"\nupstream = \"x:1\"\n\
         database = \"d\"\nuser = \"u\"\npassword_env = \"VIGIL_CLI_TEST_UNSET\"\n",
    );
    let out = Command::new(VIGIL)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml: databases[0].password_env: environment variable VIGIL_CLI_TEST_UNSET is not set"),
        "{err}"
    );

    let typo = scratch(
        "typo.toml",
        "[server]\nlisten = \"127.0.0.1:6432\"\nlisen = 1\n",
    );
    let out = Command::new(VIGIL)
        .args(["check", "--config"])
        .arg(&typo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("typo.toml:3:1: unknown field `lisen`"),
        "{err}"
    );
}

#[test]
fn passwd_prints_a_verifier_that_config_accepts() {
    let mut child = Command::new(VIGIL)
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let verifier = String::from_utf8(out.stdout).unwrap();
    let verifier = verifier.trim();
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
    let parsed: vigil_auth::Verifier = verifier.parse().unwrap();
    assert!(parsed.verify_password("s3cret"));
}

/// One statement through the quickstart's `demo` as alice.
fn psql_as_alice(port: u16, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args([
            "-X",
            "-At",
            &format!("host=127.0.0.1 port={port} dbname=demo user=alice"),
            "-c",
            sql,
        ])
        .env("PGPASSWORD", "alice-demo")
        .output()
        .unwrap()
}

#[test]
fn serve_answers_psql_and_stops_on_sigterm() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let quickstart = std::fs::read_to_string(repo_file("examples/quickstart.toml")).unwrap();
    let admin_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = scratch(
        "serve.toml",
        &quickstart
            .replace("127.0.0.1:6432", &format!("127.0.0.1:{port}"))
            .replace("127.0.0.1:9187", &format!("127.0.0.1:{admin_port}"))
            .replace("database = \"vigil_demo\"", "database = \"postgres\""),
    );
    let mut child = Command::new(VIGIL)
        .args(["serve", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("vigil says it is listening");
        if line.contains("vigil listening") {
            break;
        }
    }

    let out = psql_as_alice(port, "SELECT 6 * 7");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "42",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("vigil logs {what:?}"));
            if line.contains(what) {
                return line;
            }
        }
    };
    // SIGHUP reloads; the proxy keeps serving.
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for("SIGHUP received");
    wait_for("configuration reloaded");
    let out = psql_as_alice(port, "SELECT 'still here'");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "still here");

    // A broken edit is refused with its file and line; the old policy stays.
    let served = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{served}\n[[rules]]\nid = \"x\"\naction = \"block\"\n"),
    )
    .unwrap();
    let refused = wait_for("reload refused");
    assert!(refused.contains("serve.toml:"), "{refused}");
    let out = psql_as_alice(port, "SELECT 'old policy'");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "old policy");
    // A good edit takes effect without a signal.
    std::fs::write(
        &config,
        format!("{served}\n[[rules]]\nid = \"no-selects-for-alice\"\nwhen = {{ identities = [\"alice\"], kinds = [\"select\"] }}\naction = \"deny\"\n"),
    )
    .unwrap();
    wait_for("configuration reloaded");
    let out = psql_as_alice(port, "SELECT 'new policy'");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Vigil refused this statement (rule no-selects-for-alice)"),
        "{err}"
    );

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "vigil did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    // The reader thread ends at the pipe's end, after the last line.
    let mut rest = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        rest.push(line);
    }
    assert!(
        rest.iter().any(|l| l.contains("shutdown complete")),
        "{rest:?}"
    );

    // No signing_key is configured: Vigil made one beside the store, signed
    // its checkpoints with it, and verify finds and checks it.
    let key = config.with_file_name("vigil-audit.db.key");
    let public = config.with_file_name("vigil-audit.db.key.pub");
    assert!(key.exists() && public.exists(), "{}", key.display());
    let verify = Command::new(VIGIL)
        .args(["audit", "verify", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
    assert!(
        report.contains(&format!("key: {}", public.display())),
        "{report}"
    );
    assert!(report.contains("checkpoints verified"), "{report}");
    assert!(!report.contains("NOT checked"), "{report}");
}

#[test]
fn policy_explain_shows_the_analysis_and_the_deciding_rule() {
    let out = Command::new(VIGIL)
        .args(["policy", "explain", "--config"])
        .arg(repo_file("examples/quickstart.toml"))
        .args([
            "--as",
            "agent",
            "--db",
            "demo",
            "SELECT 1; DROP TABLE users",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("statement 2 of 2: DROP TABLE users"),
        "{text}"
    );
    assert!(text.contains("kind:        drop table"), "{text}");
    assert!(
        text.contains("decision: DENY by rule guardrail.drop (statement 2)"),
        "{text}"
    );

    let out = Command::new(VIGIL)
        .args(["policy", "explain", "--config"])
        .arg(repo_file("examples/quickstart.toml"))
        .args(["--as", "nobody", "--db", "demo", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no identity \"nobody\""));
}

#[test]
fn policy_test_runs_the_example_cases_and_fails_on_a_wrong_expectation() {
    let out = Command::new(VIGIL)
        .args(["policy", "test", "--config"])
        .arg(repo_file("examples/quickstart.toml"))
        .arg(repo_file("examples/policy-cases.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("6 passed, 0 failed"), "{text}");

    let wrong = scratch(
        "wrong-cases.toml",
        "[[cases]]\nsql = \"DROP TABLE t\"\nidentity = \"agent\"\ndatabase = \"demo\"\nexpect = \"allow\"\n",
    );
    let out = Command::new(VIGIL)
        .args(["policy", "test", "--config"])
        .arg(repo_file("examples/quickstart.toml"))
        .arg(&wrong)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("expected allow, got deny by guardrail.drop"),
        "{text}"
    );
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
            "postgres",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn roles_config(name: &str, role: &str) -> PathBuf {
    scratch(
        name,
        &format!(
            r#"
[server]
listen = "127.0.0.1:6432"

[[databases]]
name = "app"
upstream = "127.0.0.1:5432"
database = "postgres"
user = "postgres"

[[databases.roles]]
role = "{role}"
identity_kinds = ["agent"]
grants = ["USAGE ON SCHEMA public", "SELECT ON ALL TABLES IN SCHEMA pg_catalog"]
"#
        ),
    )
}

#[test]
fn roles_provision_says_what_it_would_do_then_does_exactly_that() {
    let role = format!("vigil_cli_role_{}", std::process::id());
    let config = roles_config("roles.toml", &role);
    let provision = |extra: &[&str]| {
        Command::new(VIGIL)
            .args(["roles", "provision", "--config"])
            .arg(&config)
            .args(extra)
            .output()
            .unwrap()
    };
    let exists = || {
        direct(&format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"
        ))
    };

    let dry = provision(&["--dry-run"]);
    let said = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        said.contains(&format!(
            "would run: CREATE ROLE \"{role}\" NOLOGIN NOSUPERUSER"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "would run: GRANT USAGE ON SCHEMA public TO \"{role}\""
        )),
        "{said}"
    );
    assert_eq!(exists(), "0", "a dry run changes nothing");

    let done = provision(&[]);
    let said = String::from_utf8_lossy(&done.stdout).into_owned();
    let attributes = direct(&format!(
        "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, \
         has_schema_privilege('{role}', 'public', 'USAGE'), \
         has_schema_privilege('{role}', 'public', 'CREATE'), \
         has_table_privilege('{role}', 'pg_catalog.pg_class', 'SELECT') \
         FROM pg_roles WHERE rolname = '{role}'"
    ));
    let again = provision(&[]);
    direct(&format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""));
    assert!(
        done.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        said.contains(&format!("app: created role {role} (NOLOGIN)")),
        "{said}"
    );
    assert!(
        said.contains(&format!("app: granted USAGE ON SCHEMA public to {role}")),
        "{said}"
    );
    assert_eq!(attributes, "f|f|f|f|f|t|f|t", "only what the config grants");
    let said_again = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{said_again}");
    assert!(
        said_again.contains(&format!("app: role {role} exists")),
        "{said_again}"
    );

    // A superuser role is never one an identity is mapped to.
    let superuser = provision_with(&roles_config("roles-super.toml", "postgres"));
    assert!(!superuser.status.success());
    let said = String::from_utf8_lossy(&superuser.stderr);
    assert!(said.contains("is a superuser"), "{said}");
}

fn provision_with(config: &Path) -> std::process::Output {
    Command::new(VIGIL)
        .args(["roles", "provision", "--config"])
        .arg(config)
        .output()
        .unwrap()
}
