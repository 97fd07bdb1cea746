//! Test fixtures: a scratch database on the local PostgreSQL, and a Vigil
//! serving it on an ephemeral port.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use vigil_config::Config;

pub const PG_HOST: &str = "127.0.0.1";
pub const PG_PORT: u16 = 5432;
pub const ALICE_PASSWORD: &str = "alice-demo";
pub const AGENT_PASSWORD: &str = "agent-demo";

/// A database created for one test and dropped after it.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn create(tag: &str) -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "vigil_e2e_{tag}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("createdb")
            .args(["-h", PG_HOST, "-U", "postgres", &name])
            .output()
            .expect("createdb runs");
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestDb { name }
    }

    /// Runs SQL directly against the database, bypassing Vigil.
    pub fn direct_sql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                PG_HOST,
                "-U",
                "postgres",
                "-d",
                &self.name,
                "-c",
                sql,
            ])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "direct sql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("dropdb")
            .args([
                "-h",
                PG_HOST,
                "-U",
                "postgres",
                "--force",
                "--if-exists",
                &self.name,
            ])
            .output();
    }
}

/// Verifiers are slow to make (PBKDF2), so each test process makes them once.
fn verifiers() -> &'static (String, String) {
    static V: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        (
            vigil_auth::Verifier::generate(ALICE_PASSWORD, 4096).to_string(),
            vigil_auth::Verifier::generate(AGENT_PASSWORD, 4096).to_string(),
        )
    })
}

/// A SCRAM verifier for `password`, made once per test process.
pub fn verifier(password: &str) -> String {
    static MADE: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let mut made = MADE.lock().unwrap();
    if let Some((_, v)) = made.iter().find(|(p, _)| p == password) {
        return v.clone();
    }
    let v = vigil_auth::Verifier::generate(password, 4096).to_string();
    made.push((password.to_owned(), v.clone()));
    v
}

/// An `[[identities]]` entry, for a config's `extra`.
pub fn identity_toml(name: &str, kind: &str, groups: &[&str], password: &str) -> String {
    format!(
        "[[identities]]\nname = \"{name}\"\nkind = \"{kind}\"\ngroups = {groups:?}\npassword = \"{}\"\n\n",
        verifier(password)
    )
}

/// A config serving `db` as `demo`, plus whatever `extra` adds (more tables
/// or keys). `server_extra` goes into the [server] table.
pub fn config_toml(db: &str, server_extra: &str, extra: &str) -> String {
    config_toml_with_db(db, "", server_extra, extra)
}

/// `config_toml` with more keys for the `demo` database (labels, default action).
pub fn config_toml_with_db(db: &str, db_extra: &str, server_extra: &str, extra: &str) -> String {
    let (alice, agent) = verifiers();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{server_extra}

[auth]
failure_delay_ms = 10

[[databases]]
name = "demo"
upstream = "{PG_HOST}:{PG_PORT}"
database = "{db}"
user = "postgres"
{db_extra}

[[identities]]
name = "alice"
groups = ["dba"]
password = "{alice}"

[[identities]]
name = "agent"
kind = "agent"
groups = ["ai-agents"]
password = "{agent}"

{extra}
"#
    )
}

/// Vigil running in this process on its own runtime, stopped on drop.
pub struct Proxy {
    pub port: u16,
    /// The admin HTTP API (approvals, grants), on its own ephemeral port.
    pub admin_port: u16,
    pub state: std::sync::Arc<vigil_server::State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    scratch: Option<TempDir>,
}

impl Proxy {
    /// Starts with `toml` read as if from a file in a scratch folder of
    /// this proxy's own, where its audit store lands.
    pub fn start(toml: &str) -> Proxy {
        let scratch = TempDir::new("proxy");
        let mut proxy = Proxy::start_at(toml, &scratch.0.join("vigil.toml"));
        proxy.scratch = Some(scratch);
        proxy
    }

    /// Starts with `toml` read as if from `path` (relative files resolve there).
    pub fn start_at(toml: &str, path: &Path) -> Proxy {
        let config = Config::from_toml(toml, path).unwrap_or_else(|e| panic!("test config: {e}"));
        let state = vigil_server::State::new(config).expect("state");
        let shared = state.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(vigil_sql::STACK_NEEDED * 2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready_tx
                    .send((
                        listener.local_addr().unwrap().port(),
                        admin_listener.local_addr().unwrap().port(),
                    ))
                    .unwrap();
                // The admin API outlives the sessions: one held for approval
                // may still be decided while the proxy drains.
                let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
                let admin = vigil_server::admin::serve(admin_listener, state.clone(), async {
                    let _ = admin_stopped.await;
                });
                let proxy = async {
                    vigil_server::serve(listener, state, async {
                        let _ = stopped.await;
                    })
                    .await;
                    let _ = admin_stop.send(());
                };
                tokio::join!(proxy, admin);
            });
        });
        let (port, admin_port) = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("proxy started");
        Proxy {
            port,
            admin_port,
            state: shared,
            stop: Some(stop),
            thread: Some(thread),
            scratch: None,
        }
    }

    /// Asks the proxy to shut down (SIGTERM's path) and waits until it has.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// The audit store of a proxy started with [`Proxy::start`] and no
    /// `[audit] store` of its own.
    pub fn audit_store(&self) -> PathBuf {
        let scratch = self.scratch.as_ref().expect("started with Proxy::start");
        scratch.0.join("vigil-audit.db")
    }

    /// Waits until every audit event queued so far is committed.
    pub fn audit_sync(&self) {
        let state = self.state.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(state.audit().sync())
        })
        .join()
        .unwrap()
        .expect("audit sync");
    }

    /// `http://127.0.0.1:<admin port>`, for [`http`].
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    pub fn conninfo(&self, user: &str) -> String {
        format!("host=127.0.0.1 port={} dbname=demo user={user}", self.port)
    }

    /// A tokio-postgres connection through the proxy, driven on the caller's runtime.
    pub async fn connect(&self, user: &str, password: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(
            &format!("{} password={password}", self.conninfo(user)),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"));
        tokio::spawn(connection);
        client
    }

    pub fn psql(&self, user: &str, password: &str, args: &[&str]) -> Output {
        self.psql_with(user, password, "", args)
    }

    /// psql with more connection settings, e.g. `sslmode=require` or
    /// `options='-c role=x'`.
    pub fn psql_with(&self, user: &str, password: &str, settings: &str, args: &[&str]) -> Output {
        Command::new("psql")
            .arg("-X")
            .arg(format!("{} {settings}", self.conninfo(user)))
            .args(args)
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql runs")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "vigil-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed CA and a server certificate for `localhost`/127.0.0.1, made
/// with the openssl command line. Returns (ca.pem, server.pem, server.key).
pub fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=vigil-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// A hand-driven client, for sending what real drivers never would.
pub struct RawClient {
    pub stream: std::net::TcpStream,
    /// BackendKeyData as the proxy announced it.
    pub key: (i32, i32),
}

impl RawClient {
    /// Logs in through the proxy with SCRAM, reading up to ReadyForQuery.
    pub fn login(port: u16, user: &str, password: &str) -> RawClient {
        RawClient::login_pipelined(port, user, password, &[])
    }

    /// Logs in, sending `pipelined` in the same write as the last SCRAM
    /// message, as a client may before it has seen ReadyForQuery.
    pub fn login_pipelined(port: u16, user: &str, password: &str, pipelined: &[u8]) -> RawClient {
        RawClient::login_with(port, user, password, &[], pipelined)
    }

    /// Logs in with more startup parameters (`application_name` …).
    pub fn login_with(
        port: u16,
        user: &str,
        password: &str,
        parameters: &[(&str, &str)],
        pipelined: &[u8],
    ) -> RawClient {
        use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
        use postgres_protocol::message::frontend;
        use std::io::Write;

        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut out = bytes::BytesMut::new();
        let mut startup = vec![("user", user), ("database", "demo")];
        startup.extend_from_slice(parameters);
        frontend::startup_message(startup, &mut out).unwrap();
        stream.write_all(&out).unwrap();
        let mut scram = None;
        let mut key = (0, 0);
        loop {
            let (tag, body) = read_message(&mut stream).expect("message during login");
            out.clear();
            match (
                tag,
                body.get(..4)
                    .map(|b| i32::from_be_bytes(b.try_into().unwrap())),
            ) {
                (b'R', Some(10)) => {
                    let client =
                        ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response("SCRAM-SHA-256", client.message(), &mut out)
                        .unwrap();
                    scram = Some(client);
                }
                (b'R', Some(11)) => {
                    let client = scram.as_mut().unwrap();
                    client.update(&body[4..]).unwrap();
                    frontend::sasl_response(client.message(), &mut out).unwrap();
                    out.extend_from_slice(pipelined);
                }
                (b'R', Some(12)) => scram.as_mut().unwrap().finish(&body[4..]).unwrap(),
                (b'R', Some(0)) | (b'S', _) => {}
                (b'K', _) => {
                    key = (
                        i32::from_be_bytes(body[0..4].try_into().unwrap()),
                        i32::from_be_bytes(body[4..8].try_into().unwrap()),
                    )
                }
                (b'Z', _) => return RawClient { stream, key },
                (tag, _) => panic!(
                    "unexpected {:?} during login: {}",
                    tag as char,
                    String::from_utf8_lossy(&body)
                ),
            }
            stream.write_all(&out).unwrap();
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.stream.write_all(bytes)
    }

    /// Sends a simple Query and collects the messages up to ReadyForQuery.
    pub fn query(&mut self, sql: &str) -> Vec<(u8, Vec<u8>)> {
        let mut out = bytes::BytesMut::new();
        postgres_protocol::message::frontend::query(sql, &mut out).unwrap();
        self.send(&out).unwrap();
        self.read_until_ready()
    }

    pub fn read_until_ready(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut messages = Vec::new();
        loop {
            let message = read_message(&mut self.stream).expect("reply");
            let done = message.0 == b'Z';
            messages.push(message);
            if done {
                return messages;
            }
        }
    }

    /// Reads until the proxy closes the connection; returns the messages seen.
    pub fn read_to_close(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut messages = Vec::new();
        while let Some(message) = read_message(&mut self.stream) {
            messages.push(message);
        }
        messages
    }
}

/// One backend message, or `None` at end of stream.
pub fn read_message(stream: &mut std::net::TcpStream) -> Option<(u8, Vec<u8>)> {
    use std::io::Read;
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).ok()?;
    let len = i32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).ok()?;
    Some((header[0], body))
}

/// The SQLSTATE of an ErrorResponse body.
pub fn sqlstate(body: &[u8]) -> String {
    field(body, b'C')
}

pub fn field(body: &[u8], code: u8) -> String {
    let mut rest = body;
    while let Some((&c, tail)) = rest.split_first() {
        if c == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        if c == code {
            return String::from_utf8_lossy(&tail[..end]).into_owned();
        }
        rest = &tail[(end + 1).min(tail.len())..];
    }
    String::new()
}

/// What a Python script printed, and whether it exited well (`None`: it was
/// still running at the deadline and was killed).
pub struct ScriptRun {
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl ScriptRun {
    pub fn report(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

/// Runs `tests/e2e/python/<script>` with `conninfo` as its argument and
/// `password` in PGPASSWORD, within `deadline`. Output goes to files, so a
/// chatty script cannot block on a full pipe while the test waits for it.
pub fn run_python(script: &str, conninfo: &str, password: &str, deadline: Duration) -> ScriptRun {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/python")
        .join(script);
    let out_dir = TempDir::new("python");
    let stdout_path = out_dir.0.join("stdout");
    let stderr_path = out_dir.0.join("stderr");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(conninfo)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("python3 runs");
    let until = std::time::Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    ScriptRun {
        status,
        stdout: std::fs::read_to_string(&stdout_path).unwrap(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap(),
    }
}

/// Every record of the audit store at `path`, as JSON (envelope and body).
pub fn audit_records(path: &Path) -> Vec<serde_json::Value> {
    audit_records_from(path, 1)
}

/// The audit records from `seq` on, in order.
pub fn audit_records_from(path: &Path, seq: u64) -> Vec<serde_json::Value> {
    let store = vigil_audit::open_existing_store(&format!("sqlite://{}", path.display()))
        .expect("the audit store exists");
    let mut records = Vec::new();
    let mut next = seq;
    loop {
        let page = store.scan(next, 10_000).expect("scan");
        let Some(last) = page.last() else {
            return records;
        };
        next = last.seq + 1;
        records.extend(
            page.iter()
                .map(|e| serde_json::from_str(&e.canonical).expect("canonical JSON")),
        );
    }
}

/// One request to the admin API: `auth` is the whole Authorization value
/// (`Bearer …`, `Basic …`). Returns the status and the JSON body (`Null`
/// when empty, a JSON string when the body is not JSON).
pub fn http(
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};

    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http:// URL: {url}"));
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let mut stream = std::net::TcpStream::connect(authority)
        .unwrap_or_else(|e| panic!("connect to the admin API at {authority}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if let Some(auth) = auth {
        request.push_str(&format!("Authorization: {auth}\r\n"));
    }
    if body.is_some() {
        request.push_str("Content-Type: application/json\r\n");
    }
    if body.is_some() || method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", payload.len()));
    }
    request.push_str("\r\n");
    request.push_str(&payload);
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| panic!("{method} {url}: reading the response: {e}"));

    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "{method} {url}: no end of headers in {:?}",
                String::from_utf8_lossy(&response)
            )
        });
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let raw = &response[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {url}: bad status line {status_line:?}"));
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if name == "content-length" {
            length = value.parse::<usize>().ok();
        }
    }
    let content = if chunked {
        dechunk(raw).unwrap_or_else(|| panic!("{method} {url}: bad chunked body"))
    } else if let Some(length) = length {
        assert!(
            raw.len() >= length,
            "{method} {url}: body cut short ({} of {length} bytes)",
            raw.len()
        );
        raw[..length].to_vec()
    } else {
        raw.to_vec()
    };
    let value = if content.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&content).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&content).into_owned())
        })
    };
    (status, value)
}

/// A `Transfer-Encoding: chunked` body, decoded; `None` if malformed.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_line = std::str::from_utf8(&raw[..end]).ok()?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// The admin API token of alice's `viewer` entry ([`viewer_token_toml`]).
pub const VIEWER_TOKEN: &str = "vigil-e2e-console-viewer";

fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An `[[admin.tokens]]` entry: alice, as a viewer, with [`VIEWER_TOKEN`].
pub fn viewer_token_toml() -> String {
    format!(
        "[[admin.tokens]]\nname = \"alice-dashboard\"\nidentity = \"alice\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
        sha256_hex(VIEWER_TOKEN)
    )
}

/// A GET of the admin API with [`VIEWER_TOKEN`]; must answer 200.
pub fn get(proxy: &Proxy, path: &str) -> serde_json::Value {
    let auth = format!("Bearer {VIEWER_TOKEN}");
    let (status, body) = http(
        "GET",
        &format!("{}{path}", proxy.admin_url()),
        Some(&auth),
        None,
    );
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// `/metrics`, as text.
pub fn scrape(proxy: &Proxy) -> String {
    match get(proxy, "/metrics") {
        serde_json::Value::String(text) => text,
        other => panic!("/metrics is not text: {other}"),
    }
}

/// The value of the series that starts with `series` (name and labels).
pub fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap_or(0.0))
}

/// A Bind of `statement` to `portal` with these text parameters, results
/// in text.
pub fn bind(out: &mut bytes::BytesMut, portal: &str, statement: &str, params: &[&str]) {
    postgres_protocol::message::frontend::bind(
        portal,
        statement,
        [0i16],
        params.iter(),
        |p, buf| {
            buf.extend_from_slice(p.as_bytes());
            Ok(postgres_protocol::IsNull::No)
        },
        [0i16],
        out,
    )
    .map_err(|_| "bind")
    .unwrap();
}
