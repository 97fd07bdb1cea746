//! psql through Vigil: the same script prints the same thing as direct, and
//! refusals (bad password, unknown database, privileged startup settings)
//! are clear FATAL errors.

use std::process::Command;

use crate::harness::{
    config_toml, stderr, stdout, Proxy, TempDir, TestDb, ALICE_PASSWORD, PG_HOST,
};

fn script() -> String {
    format!("{}/tests/e2e/sql/session.sql", env!("CARGO_MANIFEST_DIR"))
}

/// Runs the session script with psql against `conninfo`, stdout and stderr
/// merged in order, with backend PIDs (which differ by design) blanked out.
/// psql 15's `\copy` does not expand variables, so the file name is written
/// into a copy of the script.
fn run_script(conninfo: &str, password: &str, copyfile: &str) -> String {
    let text = std::fs::read_to_string(script()).unwrap();
    let script = std::path::Path::new(copyfile).with_extension("sql");
    std::fs::write(
        &script,
        text.replace(":'copyfile'", &format!("'{copyfile}'")),
    )
    .unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("psql -X -a \"$CONNINFO\" -f \"$SCRIPT\" 2>&1")
        .env("CONNINFO", conninfo)
        .env("SCRIPT", &script)
        .env("PGPASSWORD", password)
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "psql failed: {}", stdout(&out));
    let text = stdout(&out);
    let mut cleaned = String::new();
    for line in text.lines() {
        match line.find("server process with PID ") {
            Some(at) => cleaned.push_str(&line[..at]),
            None => cleaned.push_str(line),
        }
        cleaned.push('\n');
    }
    cleaned
}

#[test]
fn a_psql_script_reads_the_same_through_vigil_as_direct() {
    let direct_db = TestDb::create("psql_direct");
    let proxied_db = TestDb::create("psql_proxied");
    let proxy = Proxy::start(&config_toml(&proxied_db.name, "", ""));
    let dir = TempDir::new("psql");
    let copyfile = dir.0.join("items.csv");
    let copyfile = copyfile.to_str().unwrap();

    let direct = run_script(
        &format!(
            "host={PG_HOST} port=5432 dbname={} user=postgres",
            direct_db.name
        ),
        "",
        copyfile,
    );
    let proxied = run_script(&proxy.conninfo("alice"), ALICE_PASSWORD, copyfile);

    // The script really covered what it claims to.
    for expected in [
        "duplicate key value violates unique constraint",
        "division by zero",
        "syntax error at or near \"SELEC\"",
        "COPY 3",
        "twelve",
        "hello from a notice",
        "Asynchronous notification \"vigil_channel\" with payload \"hello\"",
        "done",
    ] {
        assert!(
            proxied.contains(expected),
            "missing {expected:?} in:\n{proxied}"
        );
    }
    if direct != proxied {
        let diff: Vec<_> = direct
            .lines()
            .zip(proxied.lines())
            .enumerate()
            .filter(|(_, (d, p))| d != p)
            .take(10)
            .collect();
        panic!("outputs differ (line, direct, proxied): {diff:#?}");
    }
}

#[test]
fn large_objects_use_the_function_call_protocol() {
    let db = TestDb::create("psql_lo");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));
    let dir = TempDir::new("lo");
    let input = dir.0.join("in.bin");
    let output = dir.0.join("out.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    // psql's \lo_ commands go through libpq's PQfn, i.e. FunctionCall messages.
    let out = proxy.psql(
        "alice",
        ALICE_PASSWORD,
        &[
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("\\lo_import {}", input.display()),
            "-c",
            &format!("\\lo_export :LASTOID {}", output.display()),
            "-c",
            "\\lo_unlink :LASTOID",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&output).unwrap(), data);
}

#[test]
fn refusals_are_clear_fatal_errors() {
    let db = TestDb::create("psql_refusals");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));

    let out = proxy.psql("alice", "wrong", &["-c", "select 1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("FATAL:  password authentication failed for user \"alice\""),
        "{}",
        stderr(&out)
    );

    let out = proxy.psql("mallory", "anything", &["-c", "select 1"]);
    assert!(stderr(&out).contains("password authentication failed for user \"mallory\""));

    let out = proxy.psql_with("alice", ALICE_PASSWORD, "dbname=nope", &["-c", "select 1"]);
    assert!(
        stderr(&out).contains("FATAL:  database \"nope\" does not exist"),
        "{}",
        stderr(&out)
    );

    // Identity and privileges come from authentication, never from startup settings.
    let out = proxy.psql_with(
        "alice",
        ALICE_PASSWORD,
        "options='-c role=postgres'",
        &["-c", "select 1"],
    );
    assert!(
        stderr(&out).contains("FATAL:  startup parameter \"role\" is not allowed through Vigil"),
        "{}",
        stderr(&out)
    );

    let out = proxy.psql_with(
        "alice",
        ALICE_PASSWORD,
        "replication=database",
        &["-c", "IDENTIFY_SYSTEM"],
    );
    assert!(
        stderr(&out).contains("replication connections are not supported through Vigil"),
        "{}",
        stderr(&out)
    );

    // A bad value for an allowed setting is the client's to fix: it sees why.
    let out = proxy.psql_with(
        "alice",
        ALICE_PASSWORD,
        "options='-c TimeZone=Mars/Olympus_Mons'",
        &["-c", "select 1"],
    );
    assert!(
        stderr(&out).contains("invalid value for parameter \"TimeZone\""),
        "{}",
        stderr(&out)
    );

    // Allowed settings do reach the upstream session.
    let out = proxy.psql_with(
        "alice",
        ALICE_PASSWORD,
        "options='-c statement_timeout=4321'",
        &["-At", "-c", "show statement_timeout"],
    );
    assert_eq!(stdout(&out).trim(), "4321ms", "{}", stderr(&out));
}

#[test]
fn repeated_failures_lock_the_address_out() {
    let db = TestDb::create("psql_lockout");
    let proxy = Proxy::start(&config_toml(&db.name, "", "").replace(
        "failure_delay_ms = 10",
        "failure_delay_ms = 10\nmax_failures = 3\nlockout_secs = 60",
    ));
    for _ in 0..3 {
        let out = proxy.psql("alice", "wrong", &["-c", "select 1"]);
        assert!(
            stderr(&out).contains("password authentication failed"),
            "{}",
            stderr(&out)
        );
    }
    // Now even the right password is refused from this address.
    let out = proxy.psql("alice", ALICE_PASSWORD, &["-c", "select 1"]);
    assert!(
        stderr(&out).contains("too many failed authentication attempts"),
        "{}",
        stderr(&out)
    );
}

/// A SCRAM login stopped after server-first, to finish later.
struct PendingLogin {
    stream: std::net::TcpStream,
    scram: postgres_protocol::authentication::sasl::ScramSha256,
}

impl PendingLogin {
    /// Connects and runs SCRAM up to the client's final message; `None` when
    /// the proxy refuses before that.
    fn start(port: u16, password: &str) -> Result<PendingLogin, String> {
        use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
        use postgres_protocol::message::frontend;
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut out = bytes::BytesMut::new();
        frontend::startup_message([("user", "alice"), ("database", "demo")], &mut out).unwrap();
        stream.write_all(&out).unwrap();
        let (tag, body) = crate::harness::read_message(&mut stream).unwrap();
        if tag == b'E' {
            return Err(crate::harness::sqlstate(&body));
        }
        let mut scram = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        out.clear();
        frontend::sasl_initial_response("SCRAM-SHA-256", scram.message(), &mut out).unwrap();
        stream.write_all(&out).unwrap();
        let (tag, body) = crate::harness::read_message(&mut stream).unwrap();
        assert_eq!(tag, b'R');
        scram.update(&body[4..]).unwrap();
        Ok(PendingLogin { stream, scram })
    }

    /// Sends the proof; the SQLSTATE of a refusal, or "" on success.
    fn finish(mut self) -> String {
        use std::io::Write;
        let mut out = bytes::BytesMut::new();
        postgres_protocol::message::frontend::sasl_response(self.scram.message(), &mut out)
            .unwrap();
        self.stream.write_all(&out).unwrap();
        loop {
            match crate::harness::read_message(&mut self.stream) {
                Some((b'E', body)) => return crate::harness::sqlstate(&body),
                Some((b'Z', _)) => return String::new(),
                Some(_) => {}
                None => return "closed".into(),
            }
        }
    }
}

#[test]
fn parallel_guesses_cannot_outrun_the_lockout() {
    let db = TestDb::create("psql_parallel_guess");
    let proxy = Proxy::start(&config_toml(&db.name, "", "").replace(
        "failure_delay_ms = 10",
        "failure_delay_ms = 10\nmax_failures = 2\nlockout_secs = 60",
    ));
    // The right password, started before the address is locked out...
    let right = PendingLogin::start(proxy.port, ALICE_PASSWORD).unwrap();
    // ...only one more attempt may be in flight beside it...
    let wrong = PendingLogin::start(proxy.port, "guess-1").unwrap();
    assert_eq!(
        PendingLogin::start(proxy.port, "guess-2").err().as_deref(),
        Some("28000")
    );
    assert_eq!(wrong.finish(), "28P01");
    assert_eq!(
        PendingLogin::start(proxy.port, "guess-3").unwrap().finish(),
        "28P01"
    );
    // ...and once locked out, even the right proof is refused.
    assert_eq!(right.finish(), "28000");
}

#[test]
fn connections_over_the_limit_get_53300() {
    let db = TestDb::create("psql_max_conn");
    let proxy = Proxy::start(&config_toml(&db.name, "max_client_connections = 2", ""));
    let _one = crate::harness::RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let _two = crate::harness::RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    let out = proxy.psql("alice", ALICE_PASSWORD, &["-c", "select 1"]);
    assert!(
        stderr(&out).contains("sorry, too many clients already"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tls_can_be_required() {
    let db = TestDb::create("psql_tls_required");
    let certs = TempDir::new("tls-required");
    let (_, cert, key) = crate::harness::make_certs(&certs.0);
    let tls = format!(
        "tls = {{ cert_file = \"{}\", key_file = \"{}\", require = true }}",
        cert.display(),
        key.display()
    );
    let proxy = Proxy::start(&config_toml(&db.name, &tls, ""));
    let out = proxy.psql_with(
        "alice",
        ALICE_PASSWORD,
        "sslmode=disable",
        &["-c", "select 1"],
    );
    assert!(
        stderr(&out).contains("Vigil accepts only encrypted connections"),
        "{}",
        stderr(&out)
    );
    let out = proxy.psql_with(
        "alice",
        ALICE_PASSWORD,
        "sslmode=require",
        &["-At", "-c", "select 1"],
    );
    assert_eq!(stdout(&out).trim(), "1", "{}", stderr(&out));
}
