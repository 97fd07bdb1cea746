//! Logging in to an upstream that demands SCRAM-SHA-256, MD5 or a cleartext
//! password (and TLS), on a cluster each test starts for itself; and the
//! helpers the impostor and client-TLS tests share.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;

use crate::harness::{config_toml, make_certs, Proxy, TempDir, ALICE_PASSWORD};

/// A login role in the test cluster and the password it was created with.
struct Role {
    name: &'static str,
    password: &'static str,
}

/// pg_hba lets each role in by one method only, so a login proves the method.
const SCRAM_ROLE: Role = Role {
    name: "svc_scram",
    password: "scram-Svc-pw-3b7e1d",
};
const MD5_ROLE: Role = Role {
    name: "svc_md5",
    password: "md5-Svc-pw-90c2aa",
};
const CLEARTEXT_ROLE: Role = Role {
    name: "svc_clear",
    password: "clear-Svc-pw-5d41f0",
};
/// Allowed in over TLS only (`hostssl`).
const TLS_ROLE: Role = Role {
    name: "svc_tls",
    password: "tls-Svc-pw-e4a7c3",
};

const PG_HBA: &str = "\
# TYPE  DATABASE USER       ADDRESS       METHOD
local   all      postgres                 trust
hostssl all      svc_tls    127.0.0.1/32  scram-sha-256
host    all      svc_scram  127.0.0.1/32  scram-sha-256
host    all      svc_md5    127.0.0.1/32  md5
host    all      svc_clear  127.0.0.1/32  password
";

/// A PostgreSQL cluster of the test's own, so it can demand passwords and TLS
/// without touching the machine's server.
struct Cluster {
    server: crate::cluster::Cluster,
    /// The CA that signed the server's certificate (for `localhost`/127.0.0.1).
    ca: PathBuf,
}

impl std::ops::Deref for Cluster {
    type Target = crate::cluster::Cluster;
    fn deref(&self) -> &Self::Target {
        &self.server
    }
}

impl Cluster {
    fn start() -> Cluster {
        // Key generation and initdb each take about half a second; overlap them.
        let certs = TempDir::new("upstream-certs");
        let (server, (ca, cert, key)) = std::thread::scope(|scope| {
            let made = scope.spawn(|| make_certs(&certs.0));
            let server = crate::cluster::Cluster::init("upstream");
            (server, made.join().expect("make_certs"))
        });
        let mut server = server;
        let ca_kept = server.dir.0.join("ca.pem");
        std::fs::copy(&ca, &ca_kept).unwrap();
        std::fs::copy(cert, server.data.join("server.crt")).unwrap();
        std::fs::copy(key, server.data.join("server.key")).unwrap();
        server.hand_over();
        // PostgreSQL refuses a key others can read.
        let status = Command::new("chmod")
            .arg("600")
            .arg(server.data.join("server.key"))
            .status()
            .unwrap();
        assert!(status.success(), "chmod server.key");
        server.configure(
            "password_encryption = 'scram-sha-256'\n\
             ssl = on\n\
             ssl_cert_file = 'server.crt'\n\
             ssl_key_file = 'server.key'\n\
             log_connections = on\n",
        );
        std::fs::write(server.data.join("pg_hba.conf"), PG_HBA).unwrap();
        server.start();
        let cluster = Cluster {
            server,
            ca: ca_kept,
        };
        cluster.admin_sql(&format!(
            "CREATE ROLE {scram} LOGIN PASSWORD '{scram_pw}';
             CREATE ROLE {tls} LOGIN PASSWORD '{tls_pw}';
             CREATE ROLE {clear} LOGIN PASSWORD '{clear_pw}';
             SET password_encryption = 'md5';
             CREATE ROLE {md5} LOGIN PASSWORD '{md5_pw}';",
            scram = SCRAM_ROLE.name,
            scram_pw = SCRAM_ROLE.password,
            tls = TLS_ROLE.name,
            tls_pw = TLS_ROLE.password,
            clear = CLEARTEXT_ROLE.name,
            clear_pw = CLEARTEXT_ROLE.password,
            md5 = MD5_ROLE.name,
            md5_pw = MD5_ROLE.password,
        ));
        // An md5 hba line with a SCRAM-stored password would quietly use SCRAM.
        let stored = cluster.admin_sql(&format!(
            "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = '{}'",
            MD5_ROLE.name
        ));
        assert_eq!(
            stored.trim(),
            "md5",
            "{} must have an md5 password",
            MD5_ROLE.name
        );
        cluster
    }

    /// Returns once a backend is running `query`, failing after 10 s.
    fn wait_until_running(&self, query: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '{query}'"
        );
        while self.admin_sql(&sql).trim() != "1" {
            assert!(
                Instant::now() < deadline,
                "{query:?} never started upstream"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A `[[databases]]` entry serving this cluster's `postgres` database as
    /// `name`, logging in as `role`. `more` adds keys or a `[databases.tls]`.
    fn database(&self, name: &str, role: &Role, password: &str, more: &str) -> String {
        format!(
            r#"
[[databases]]
name = "{name}"
upstream = "127.0.0.1:{port}"
database = "postgres"
user = "{role}"
connect_timeout_ms = 5000
{password}
{more}
"#,
            port = self.port,
            role = role.name,
        )
    }

    /// Asserts the server's own log says `role` logged in by `method`.
    fn assert_authenticated(&self, role: &Role, method: &str) {
        let expected = format!(
            "connection authenticated: identity=\"{}\" method={method} ",
            role.name
        );
        let log = self.log();
        assert!(
            log.contains(&expected),
            "no {expected:?} in the server log:\n{log}"
        );
    }
}

/// Puts `password` in an environment variable no other test uses and returns
/// the config line naming it.
pub(crate) fn password_env(tag: &str, password: &str) -> String {
    let var = format!("VIGIL_E2E_UPSTREAM_{tag}_{}", std::process::id());
    std::env::set_var(&var, password);
    format!("password_env = \"{var}\"")
}

fn verify_full(ca: &Path) -> String {
    format!(
        "[databases.tls]\nmode = \"verify-full\"\nca_file = \"{}\"",
        ca.display()
    )
}

/// The keys that let a database answer MD5 or cleartext requests without
/// verify-full, as the tests against plain-TCP clusters need.
const INSECURE_MD5: &str = "auth_methods = [\"md5\"]\nallow_insecure_auth = true";
const INSECURE_CLEARTEXT: &str = "auth_methods = [\"password\"]\nallow_insecure_auth = true";

/// Fails the test instead of hanging it when Vigil stops answering.
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than 20 s"))
}

/// Logs in to Vigil as alice, asking for `dbname`.
pub(crate) async fn connect(
    proxy: &Proxy,
    dbname: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let conninfo = format!(
        "host=127.0.0.1 port={} dbname={dbname} user=alice password={ALICE_PASSWORD}",
        proxy.port
    );
    let (client, connection) = within(
        "connect",
        tokio_postgres::connect(&conninfo, tokio_postgres::NoTls),
    )
    .await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The upstream's `current_user` and whether its end of the session is TLS.
async fn upstream_session(client: &tokio_postgres::Client) -> (String, bool) {
    let row = within(
        "query",
        client.query_one(
            "SELECT current_user::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        ),
    )
    .await
    .expect("query through Vigil");
    (row.get(0), row.get(1))
}

/// Expects the login to fail with Vigil's own "could not connect upstream"
/// FATAL, and returns everything the client was told.
pub(crate) async fn expect_upstream_failure(proxy: &Proxy, dbname: &str) -> String {
    let error = match connect(proxy, dbname).await {
        Ok(_) => panic!("login to {dbname} should have failed"),
        Err(error) => error,
    };
    let db = error
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {error:?}"));
    assert_eq!(db.severity(), "FATAL", "{db:?}");
    assert_eq!(db.code(), &SqlState::CONNECTION_FAILURE, "{db:?}");
    assert_eq!(
        db.message(),
        format!("Vigil could not connect to the upstream of database \"{dbname}\""),
    );
    format!("{error}\n{error:?}")
}

#[tokio::test(flavor = "multi_thread")]
async fn scram_service_role_logs_in_upstream() {
    let cluster = Cluster::start();
    let password = password_env("SCRAM", SCRAM_ROLE.password);
    let stanza = cluster.database("scram_db", &SCRAM_ROLE, &password, "");
    let proxy = Proxy::start(&config_toml("postgres", "", &stanza));

    let client = connect(&proxy, "scram_db")
        .await
        .expect("login through Vigil");
    assert_eq!(
        upstream_session(&client).await,
        (SCRAM_ROLE.name.to_owned(), false)
    );
    cluster.assert_authenticated(&SCRAM_ROLE, "scram-sha-256");
}

#[tokio::test(flavor = "multi_thread")]
async fn md5_service_role_logs_in_upstream_with_password_file() {
    let cluster = Cluster::start();
    let file = cluster.dir.0.join("md5.password");
    // The newline an editor leaves must not become part of the password.
    std::fs::write(&file, format!("{}\n", MD5_ROLE.password)).unwrap();
    let password = format!("password_file = \"{}\"", file.display());
    // No verify-full here, so MD5 takes the operator's explicit consent.
    let stanza = cluster.database("md5_db", &MD5_ROLE, &password, INSECURE_MD5);
    // The default, SCRAM only, refuses the server's request for MD5.
    let strict = cluster.database("md5_refused_db", &MD5_ROLE, &password, "");
    let proxy = Proxy::start(&config_toml("postgres", "", &format!("{stanza}\n{strict}")));

    expect_upstream_failure(&proxy, "md5_refused_db").await;
    assert!(
        !cluster.log().contains("connection authenticated"),
        "{}",
        cluster.log()
    );

    let client = connect(&proxy, "md5_db")
        .await
        .expect("login through Vigil");
    assert_eq!(
        upstream_session(&client).await,
        (MD5_ROLE.name.to_owned(), false)
    );
    cluster.assert_authenticated(&MD5_ROLE, "md5");
}

#[tokio::test(flavor = "multi_thread")]
async fn cleartext_service_role_logs_in_upstream() {
    let cluster = Cluster::start();
    let password = password_env("CLEARTEXT", CLEARTEXT_ROLE.password);
    let stanza = cluster.database("clear_db", &CLEARTEXT_ROLE, &password, INSECURE_CLEARTEXT);
    let proxy = Proxy::start(&config_toml("postgres", "", &stanza));

    let client = connect(&proxy, "clear_db")
        .await
        .expect("login through Vigil");
    assert_eq!(
        upstream_session(&client).await,
        (CLEARTEXT_ROLE.name.to_owned(), false)
    );
    cluster.assert_authenticated(&CLEARTEXT_ROLE, "password");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_upstreams_serve_queries_and_cancels() {
    let cluster = Cluster::start();
    let password = password_env("TLS", TLS_ROLE.password);
    let verified = cluster.database("tls_db", &TLS_ROLE, &password, &verify_full(&cluster.ca));
    // `require` encrypts without a CA to check against.
    let encrypted = cluster.database(
        "require_db",
        &TLS_ROLE,
        &password,
        "[databases.tls]\nmode = \"require\"",
    );
    let proxy = Proxy::start(&config_toml(
        "postgres",
        "",
        &format!("{verified}\n{encrypted}"),
    ));

    for dbname in ["tls_db", "require_db"] {
        let client = connect(&proxy, dbname).await.expect("login through Vigil");
        assert_eq!(
            upstream_session(&client).await,
            (TLS_ROLE.name.to_owned(), true),
            "{dbname}"
        );
    }
    cluster.assert_authenticated(&TLS_ROLE, "scram-sha-256");

    // A cancel travels on a connection of its own, which must be TLS as well.
    const SLEEP: &str = "SELECT pg_sleep(60)";
    let client = connect(&proxy, "tls_db")
        .await
        .expect("login through Vigil");
    let cancel = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query(SLEEP).await.map(drop) });
    tokio::task::block_in_place(|| cluster.wait_until_running(SLEEP));
    within("cancel", cancel.cancel_query(tokio_postgres::NoTls))
        .await
        .expect("cancel request");
    let error = within("the cancelled query", sleeper)
        .await
        .unwrap()
        .expect_err("pg_sleep should have been cancelled");
    assert_eq!(error.code(), Some(&SqlState::QUERY_CANCELED), "{error:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_refuses_a_certificate_from_another_ca_or_for_another_name() {
    let cluster = Cluster::start();
    let other = TempDir::new("other-ca");
    let (other_ca, _, _) = make_certs(&other.0);
    let password = password_env("WRONG_CA", TLS_ROLE.password);
    let wrong_ca = cluster.database("wrong_ca_db", &TLS_ROLE, &password, &verify_full(&other_ca));
    let wrong_name = cluster.database(
        "wrong_name_db",
        &TLS_ROLE,
        &password,
        &format!(
            "{}\nserver_name = \"db.example.com\"",
            verify_full(&cluster.ca)
        ),
    );
    let proxy = Proxy::start(&config_toml(
        "postgres",
        "",
        &format!("{wrong_ca}\n{wrong_name}"),
    ));

    expect_upstream_failure(&proxy, "wrong_ca_db").await;
    expect_upstream_failure(&proxy, "wrong_name_db").await;
    // The handshakes failed, so the password was never offered.
    assert!(
        !cluster.log().contains("connection authenticated"),
        "{}",
        cluster.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_service_password_fails_without_showing_it() {
    const WRONG: &str = "Wr0ng-svc-secret-71c9";
    let cluster = Cluster::start();
    let password = password_env("WRONG_PASSWORD", WRONG);
    let stanza = cluster.database("wrong_pw_db", &SCRAM_ROLE, &password, "");
    let proxy = Proxy::start(&config_toml("postgres", "", &stanza));

    let told = expect_upstream_failure(&proxy, "wrong_pw_db").await;
    assert!(
        !told.contains(WRONG),
        "the client saw the service password:\n{told}"
    );
    assert!(
        !told.contains(SCRAM_ROLE.name),
        "the client saw the service role:\n{told}"
    );
    let log = cluster.log();
    assert!(
        log.contains(&format!(
            "password authentication failed for user \"{}\"",
            SCRAM_ROLE.name
        )),
        "{log}"
    );
}
