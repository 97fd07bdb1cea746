//! What the end-to-end tests of the `vigil` binary share: the binary run
//! with a clean environment, and a real `vigil serve` (a child process with a
//! scratch config, a PostgreSQL database of its own and the quickstart's
//! identities and demo approver token) with psql sessions against it.
//!
//! Each test binary uses part of this, so what one leaves unused is no error.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// The binary with none of the caller's admin or libpq settings.
pub fn vigil(args: &[&str]) -> Command {
    let mut command = Command::new(VIGIL);
    command
        .args(args)
        .stdin(Stdio::null())
        .env_remove("VIGIL_ADMIN_URL")
        .env_remove("VIGIL_ADMIN_TOKEN")
        .env_remove("PGUSER")
        .env_remove("PGPASSWORD");
    command
}

pub fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// The quickstart's demo approver token (alice's) and the sha256 line of its
/// `[[admin.tokens]]` entry.
pub const DEMO_TOKEN: &str = "vigil-demo-dba-token";
pub const DEMO_TOKEN_SHA256: &str =
    "8a9652417bdfcd8d2bf0ade6f8a6bde922bdf5e556ee57bca5c9b15288ab303d";
/// The quickstart's verifiers: `echo alice-demo | vigil passwd`, `echo agent-demo | vigil passwd`.
pub const ALICE_VERIFIER: &str = "SCRAM-SHA-256$4096:d3EggtvKylSTuOh3jsM4nw==$s8/3gHiiHKgcUED/wqDhhJ+ocYw9Mo8kNxIYl3CJq5g=:PV6yDP1WwyCjqonqhx5IOlVLoJQbfNU1RyGIPV0dtIE=";
pub const AGENT_VERIFIER: &str = "SCRAM-SHA-256$4096:RBAP6y9dMEMHNe74gQWnzw==$ANadI0g+1vzlnT7WPuBd0yoGXdToXi2LLiJUpZHN4+A=:gAb+BJoTfaj2/WVmC3++fMMUC+cBYk6kIZykhuWF63k=";
pub const AGENT_PASSWORD: &str = "agent-demo";

/// The quickstart's review rule: agent writes wait for one DBA's approval.
pub const REVIEW_RULE: &str = r#"
[[rules]]
id = "agent-writes-need-approval"
when = { identity_kinds = ["agent"], classes = ["write", "ddl"] }
action = "review"
approval = "hold"
approvers = { groups = ["dba"], count = 1 }
"#;

/// Any one step (a start, a stop, a statement, a decision reaching the client)
/// that takes longer than this is a failure, not a slow machine.
pub const STEP: Duration = Duration::from_secs(10);
pub const POLL: Duration = Duration::from_millis(50);

/// A `vigil serve` child process with a config, a scratch folder and a
/// PostgreSQL database of its own (served to clients as `demo`, with table `t`:
/// rows 1 and 2, status `new`). Dropped on success and on panic alike: the
/// process is stopped, the database dropped, the folder removed.
pub struct Served {
    pub dir: PathBuf,
    pub database: String,
    pub config: PathBuf,
    pub admin_url: String,
    pub port: u16,
    pub vigil: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Starts `vigil serve` with `policy` (rules and the like) added to the
    /// config, and waits until the proxy and the admin API both accept.
    pub fn start(tag: &str, policy: &str) -> Served {
        // Named after the test binary too: several binaries run at once.
        let (pid, binary) = (std::process::id(), env!("CARGO_CRATE_NAME"));
        let dir = std::env::temp_dir().join(format!("vigil-{binary}-{pid}-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Two listeners at once, so that the two ports differ.
        let probes = [0; 2].map(|_| TcpListener::bind("127.0.0.1:0").unwrap());
        let [port, admin_port] = probes.each_ref().map(|p| p.local_addr().unwrap().port());
        drop(probes);
        let mut served = Served {
            config: dir.join("vigil.toml"),
            dir,
            database: format!("vigil_{binary}_{pid}_{tag}"),
            admin_url: format!("http://127.0.0.1:{admin_port}"),
            port,
            vigil: None,
            log: Arc::default(),
        };

        served.postgres(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            served.database
        ));
        served.postgres(&format!("CREATE DATABASE {}", served.database));
        served.direct_sql(
            "CREATE TABLE t (id int PRIMARY KEY, status text NOT NULL);
             INSERT INTO t VALUES (1, 'new'), (2, 'new');",
        );

        std::fs::write(
            &served.config,
            format!(
                r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
drain_timeout_secs = 2

[auth]
method = "scram-sha-256"
failure_delay_ms = 10

[[databases]]
name = "demo"
upstream = "127.0.0.1:5432"
database = "{database}"
user = "postgres"
default_action = "allow"

{policy}

[approvals]
timeout_secs = 60
window_secs = 600

[[approvals.grants]]
group = "writers"
databases = ["demo"]
max_secs = 3600
approvers = {{ groups = ["dba"] }}

[[admin.tokens]]
name = "demo-dba"
identity = "alice"
role = "approver"
sha256 = "{DEMO_TOKEN_SHA256}"

[audit]
store = "sqlite://vigil-audit.db"
mode = "strict"

[[identities]]
name = "alice"
kind = "person"
groups = ["dba"]
password = "{ALICE_VERIFIER}"

[[identities]]
name = "agent"
kind = "agent"
groups = ["ai-agents"]
password = "{AGENT_VERIFIER}"
"#,
                database = served.database,
            ),
        )
        .unwrap();

        let mut child = Command::new(VIGIL)
            .args(["serve", "--config"])
            .arg(&served.config)
            .env("VIGIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        served.vigil = Some(child);
        let log = served.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        });

        let deadline = Instant::now() + STEP;
        for port in [port, admin_port] {
            let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            while TcpStream::connect_timeout(&address, POLL).is_err() {
                if let Some(status) = served.vigil.as_mut().unwrap().try_wait().unwrap() {
                    panic!("vigil serve exited ({status}):\n{}", served.log());
                }
                assert!(
                    Instant::now() < deadline,
                    "vigil does not accept on port {port}:\n{}",
                    served.log()
                );
                std::thread::sleep(POLL);
            }
        }
        served
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// One statement as `postgres` on the maintenance database, directly.
    pub fn postgres(&self, sql: &str) -> Output {
        postgres_sql("postgres", sql)
    }

    /// SQL as `postgres` on this test's database, directly; its output (-At).
    pub fn direct_sql(&self, sql: &str) -> String {
        let out = postgres_sql(&self.database, sql);
        assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// The CLI with the admin API's address and the demo approver token.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut command = vigil(args);
        command
            .env("VIGIL_ADMIN_URL", &self.admin_url)
            .env("VIGIL_ADMIN_TOKEN", DEMO_TOKEN);
        command
    }

    /// Runs the CLI and expects it to succeed; its standard output.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = run(&mut self.cli(args));
        assert_eq!(
            code,
            0,
            "vigil {}:\nstdout:\n{out}\nstderr:\n{err}\nserver log:\n{}",
            args.join(" "),
            self.log()
        );
        out
    }

    /// psql as `agent` through the proxy, running `sql`, in the background.
    pub fn psql_as_agent(&self, sql: &str) -> Psql {
        let child = Command::new("psql")
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                "VERBOSITY=verbose",
            ])
            .arg(format!(
                "host=127.0.0.1 port={} dbname=demo user=agent connect_timeout=10",
                self.port
            ))
            .args(["-c", sql])
            .env_remove("PGUSER")
            .env_remove("PGDATABASE")
            .env_remove("PGSERVICE")
            .env("PGPASSWORD", AGENT_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql runs");
        Psql { child: Some(child) }
    }

    /// Polls `vigil approvals list` until its table has a pending row, then
    /// takes that request's id from `vigil approvals list --json`.
    pub fn pending_request(&self, psql: &mut Psql) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let table = self.cli_ok(&["approvals", "list"]);
            let pending = table.lines().skip(1).any(|line| {
                let columns: Vec<&str> = line.split_whitespace().collect();
                columns.get(1..3) == Some(&["pending", "agent"][..])
            });
            if pending {
                assert!(table.starts_with("ID "), "{table}");
                break;
            }
            if let Some(status) = psql.child.as_mut().unwrap().try_wait().unwrap() {
                let (_, out, err) = psql.finish();
                panic!("psql ended ({status}) before its request was listed:\n{out}\n{err}");
            }
            assert!(
                Instant::now() < deadline,
                "no pending request listed:\n{table}\nserver log:\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
        let answer: Value =
            serde_json::from_str(&self.cli_ok(&["approvals", "list", "--json"])).unwrap();
        let requests = answer["requests"].as_array().expect("a requests list");
        assert_eq!(requests.len(), 1, "{answer:#}");
        let request = &requests[0];
        assert_eq!(request["state"], "pending", "{request:#}");
        assert_eq!(request["kind"], "statement", "{request:#}");
        assert_eq!(request["requester"], "agent", "{request:#}");
        assert_eq!(request["database"], "demo", "{request:#}");
        request["id"].as_str().expect("an id").to_owned()
    }

    /// Polls the audit trail through `vigil audit search --config` until an
    /// event of `kind` for approval `id` is there; that event's line.
    pub fn audit_event(&self, kind: &str, id: &str) -> String {
        let config = self.config.to_str().unwrap();
        let deadline = Instant::now() + STEP;
        loop {
            let (code, out, err) = run(&mut vigil(&[
                "audit", "search", "--config", config, "--kind", kind,
            ]));
            assert_eq!(code, 0, "{err}");
            let wanted = format!("approval={id}");
            if let Some(line) = out
                .lines()
                .find(|line| line.split_whitespace().any(|field| field == wanted))
            {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} event for {id}:\n{out}{err}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, and the exit that follows: it must be a clean one.
    pub fn stop(&mut self) {
        let mut child = self.vigil.take().expect("vigil runs");
        terminate(&child);
        let status =
            reap(&mut child).unwrap_or_else(|| panic!("vigil did not exit:\n{}", self.log()));
        assert!(status.success(), "vigil serve: {status}\n{}", self.log());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.vigil.take() {
            terminate(&child);
            if reap(&mut child).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.postgres(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.database
        ));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

/// Waits for `child` to exit, for STEP at most.
pub fn reap(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn postgres_sql(database: &str, sql: &str) -> Output {
    Command::new("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1"])
        .arg(format!(
            "host=127.0.0.1 port=5432 user=postgres dbname={database} connect_timeout=5"
        ))
        .args(["-c", sql])
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A psql child process; killed if the test ends before it does.
pub struct Psql {
    pub child: Option<Child>,
}

impl Psql {
    /// Waits (STEP at most) for psql to exit: its exit code, stdout and stderr.
    pub fn finish(&mut self) -> (i32, String, String) {
        let mut child = self.child.take().expect("psql runs");
        let Some(status) = reap(&mut child) else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "psql did not finish:\n{}\n{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        };
        let mut out = String::new();
        let mut err = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status.code().unwrap_or(-1), out, err)
    }
}

impl Drop for Psql {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
