//! TLS between clients and Vigil: certificate verification, direct TLS with
//! ALPN, the fallback without a certificate, cleartext passwords only over
//! TLS, and SCRAM channel binding.

use std::process::{Command, Output};

use tokio_postgres::error::SqlState;

use super::upstream::connect;
use crate::harness::{
    config_toml, make_certs, stderr, stdout, Proxy, TempDir, TestDb, ALICE_PASSWORD,
};

/// psql to Vigil's `demo` as alice; `settings` go into the connection string.
/// psql as alice, by name so `sslmode=verify-full` can check `localhost`.
fn psql(proxy: &Proxy, settings: &str, args: &[&str]) -> Output {
    let settings = format!("host=localhost hostaddr=127.0.0.1 {settings}");
    proxy.psql_with("alice", ALICE_PASSWORD, &settings, args)
}

fn server_tls(certs: &TempDir) -> String {
    let (_, cert, key) = make_certs(&certs.0);
    format!(
        "tls = {{ cert_file = \"{}\", key_file = \"{}\" }}",
        cert.display(),
        key.display()
    )
}

#[test]
fn clients_can_verify_vigils_certificate() {
    let db = TestDb::create("client_tls");
    let certs = TempDir::new("client-tls");
    let proxy = Proxy::start(&config_toml(&db.name, &server_tls(&certs), ""));
    let ca = certs.0.join("ca.pem");

    let verified = format!("sslmode=verify-full sslrootcert={}", ca.display());
    let out = psql(&proxy, &verified, &["-c", "\\conninfo", "-c", "SELECT 1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("SSL connection"), "{}", stdout(&out));

    let out = psql(&proxy, "sslmode=require", &["-At", "-c", "SELECT 1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1");
}

/// PostgreSQL 17's `sslnegotiation=direct` opens with TLS at once; psycopg's
/// bundled libpq (18) speaks it, psql 15 does not.
#[test]
fn direct_tls_negotiation_works_and_needs_alpn() {
    let db = TestDb::create("client_direct_tls");
    let certs = TempDir::new("client-direct-tls");
    let proxy = Proxy::start(&config_toml(&db.name, &server_tls(&certs), ""));
    let ca = certs.0.join("ca.pem");
    let script = r#"
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    print(conn.pgconn.ssl_in_use, conn.execute("SELECT 41 + 1").fetchone()[0])
"#;
    let conninfo = format!(
        "{} password={ALICE_PASSWORD} host=localhost hostaddr=127.0.0.1 sslmode=verify-full sslnegotiation=direct sslrootcert={}",
        proxy.conninfo("alice"),
        ca.display()
    );
    let out = Command::new("python3")
        .args(["-c", script, &conninfo])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "True 42");

    // A TLS client that does not say it speaks PostgreSQL is turned away.
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", proxy.port),
            "-alpn",
            "http/1.1",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        !stdout(&out).contains("ALPN protocol: http/1.1"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn without_server_tls_require_fails_and_prefer_falls_back() {
    let db = TestDb::create("client_no_tls");
    let proxy = Proxy::start(&config_toml(&db.name, "", ""));

    let out = psql(&proxy, "sslmode=require", &["-c", "SELECT 1"]);
    assert!(
        !out.status.success(),
        "sslmode=require connected without TLS"
    );
    assert!(stderr(&out).contains("SSL"), "{}", stderr(&out));

    let out = psql(
        &proxy,
        "sslmode=prefer",
        &["-c", "\\conninfo", "-At", "-c", "SELECT 1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("SSL connection"), "{}", stdout(&out));
    assert!(stdout(&out).ends_with("1\n"), "{}", stdout(&out));
}

/// `[auth] method = "password"` sends the password itself, so only over TLS.
#[tokio::test(flavor = "multi_thread")]
async fn cleartext_client_auth_needs_tls() {
    let db = TestDb::create("client_password");
    let certs = TempDir::new("client-password");
    let alice = vigil_auth::Verifier::generate(ALICE_PASSWORD, 4096);
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
{tls}

[auth]
method = "password"
failure_delay_ms = 10

[[databases]]
name = "demo"
upstream = "127.0.0.1:5432"
database = "{db}"
user = "postgres"

[[identities]]
name = "alice"
password = "{alice}"
"#,
        tls = server_tls(&certs),
        db = db.name,
    );
    let proxy = Proxy::start(&toml);

    let error = match connect(&proxy, "demo").await {
        Ok(_) => panic!("a cleartext password was accepted without TLS"),
        Err(error) => error,
    };
    let refused = error
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {error:?}"));
    assert_eq!(
        refused.code(),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        "{refused:?}"
    );
    assert_eq!(
        refused.message(),
        "password authentication needs an encrypted connection"
    );

    let out = psql(&proxy, "sslmode=require", &["-At", "-c", "SELECT 1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1");
}

/// Over TLS Vigil offers SCRAM-SHA-256-PLUS bound to its certificate, so a
/// client that insists on channel binding gets in, and a relay that stripped
/// TLS could not pass its login on.
#[test]
fn channel_binding_required_by_psql_works_over_tls() {
    let db = TestDb::create("client_channel_binding");
    let certs = TempDir::new("client-channel-binding");
    let proxy = Proxy::start(&config_toml(&db.name, &server_tls(&certs), ""));

    let out = psql(
        &proxy,
        "sslmode=require channel_binding=require",
        &["-At", "-c", "SELECT 40 + 2"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "42");

    // channel_binding=prefer (the default) binds too, and still works.
    let out = psql(&proxy, "sslmode=require", &["-At", "-c", "SELECT 1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1");

    // A client that cannot bind picks plain SCRAM-SHA-256 ("n,,").
    let out = psql(
        &proxy,
        "sslmode=require channel_binding=disable",
        &["-At", "-c", "SELECT 1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1");

    // Without TLS there is nothing to bind to: libpq refuses by itself.
    let out = psql(
        &proxy,
        "sslmode=disable channel_binding=require",
        &["-At", "-c", "SELECT 1"],
    );
    assert!(
        !out.status.success(),
        "channel_binding=require connected without TLS"
    );
    assert!(stderr(&out).contains("channel binding"), "{}", stderr(&out));
}

/// psycopg's bundled libpq (18) binds too, also over direct TLS negotiation.
#[test]
fn channel_binding_required_by_psycopg_works_over_tls() {
    let db = TestDb::create("client_channel_binding_psycopg");
    let certs = TempDir::new("client-channel-binding-psycopg");
    let proxy = Proxy::start(&config_toml(&db.name, &server_tls(&certs), ""));
    let ca = certs.0.join("ca.pem");
    let script = r#"
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    print(conn.pgconn.ssl_in_use, conn.execute("SELECT 41 + 1").fetchone()[0])
"#;
    for negotiation in ["postgres", "direct"] {
        let conninfo = format!(
            "{} password={ALICE_PASSWORD} host=localhost hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={} sslnegotiation={negotiation} channel_binding=require",
            proxy.conninfo("alice"),
            ca.display()
        );
        let out = Command::new("python3")
            .args(["-c", script, &conninfo])
            .output()
            .unwrap();
        assert!(out.status.success(), "{negotiation}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), "True 42", "{negotiation}");
    }
}
