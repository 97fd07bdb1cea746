//! `vigil approvals`, `vigil grants` and `vigil token` as a user runs them. The
//! admin API here is a test peer: a plain HTTP/1.1 responder on 127.0.0.1:0 that
//! answers canned requests in the documented shape and records what the CLI sent
//! (method, path, Authorization, body). End-to-end runs against `vigil serve` live
//! with the admin API's own tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const TOKEN: &str = "vgl_test_token";

/// The binary with none of the caller's admin or libpq settings.
fn vigil(args: &[&str]) -> Command {
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

fn run(command: &mut Command) -> (i32, String, String) {
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

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn token_prints_a_token_and_the_sha256_line_for_it() {
    let (code, out, err) = run(&mut vigil(&["token"]));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let token = lines[0];
    let digits = token.strip_prefix("vgl_").expect(token);
    assert_eq!(digits.len(), 64, "{token}");
    assert!(digits
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let sha = hex(&Sha256::digest(token.as_bytes()));
    assert_eq!(lines[1], format!("sha256 = \"{sha}\""));
    assert!(err.contains("[[admin.tokens]]"), "{err}");

    let (_, again, _) = run(&mut vigil(&["token"]));
    assert_ne!(again.lines().next(), Some(token), "tokens must be random");
}

#[test]
fn a_closed_port_is_a_clear_error() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let (code, out, err) =
        run(vigil(&["approvals", "list", "--url", &url]).env("VIGIL_ADMIN_TOKEN", TOKEN));
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "");
    assert!(
        err.starts_with(&format!(
            "vigil: cannot connect to the admin API at {url}: "
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("server.admin_listen = \"127.0.0.1:{port}\"")),
        "{err}"
    );
}

#[test]
fn usage_errors() {
    // deny needs a reason, and an empty one is none.
    let (code, _, err) = run(&mut vigil(&["approvals", "deny", "7f3a9c2e41d0"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--reason"), "{err}");
    let (code, _, err) = run(&mut vigil(&[
        "approvals",
        "deny",
        "7f3a9c2e41d0",
        "--reason",
        " ",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("must not be empty"), "{err}");

    let (code, _, err) = run(&mut vigil(&["approvals", "list", "--state", "maybe"]));
    assert_eq!(code, 2, "{err}");

    let (code, _, err) = run(&mut vigil(&[
        "grants",
        "request",
        "--group",
        "writers",
        "--database",
        "prod",
        "--for",
        "1x",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a duration"), "{err}");

    // Reading needs a token; say how to get one before trying.
    let (code, _, err) = run(&mut vigil(&["approvals", "list"]));
    assert_eq!(code, 1);
    assert!(
        err.starts_with("vigil: no admin token: set VIGIL_ADMIN_TOKEN"),
        "{err}"
    );

    let (code, _, err) = run(&mut vigil(&[
        "approvals",
        "list",
        "--url",
        "https://h:1",
        "--token",
        "t",
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("https is not supported"), "{err}");
}

/// What the CLI sent.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// The test peer: answers with `route`, remembers every request.
struct Peer {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Peer {
    fn start(route: fn(&Seen) -> (u16, Value)) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if let Some(request) = read_request(&stream) {
                    let (status, body) = route(&request);
                    log.lock().unwrap().push(request);
                    respond(stream, status, &body);
                }
            }
        });
        Peer { url, seen }
    }

    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no request")
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn vigil(&self, args: &[&str]) -> Command {
        let mut command = vigil(args);
        command
            .env("VIGIL_ADMIN_URL", &self.url)
            .env("VIGIL_ADMIN_TOKEN", TOKEN);
        command
    }
}

fn read_request(stream: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let (mut length, mut authorization, mut content_type) = (0, None, None);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        let value = value.trim().to_owned();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok()?,
            "authorization" => authorization = Some(value),
            "content-type" => content_type = Some(value),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        target,
        authorization,
        content_type,
        body: String::from_utf8(body).ok()?,
    })
}

fn respond(mut stream: TcpStream, status: u16, body: &Value) {
    let body = body.to_string();
    let reason = match status {
        200 => "OK",
        201 => "Created",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Whatever",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
}

/// `seconds` ago (negative: from now), as the API writes times.
fn time(seconds_ago: i64) -> String {
    vigil_audit::clock::format(vigil_audit::clock::now_micros() - seconds_ago * 1_000_000)
}

fn statement_request() -> Value {
    json!({
        "id": "7f3a9c2e41d0",
        "kind": "statement",
        "state": "pending",
        "requester": "agent",
        "database": "demo",
        "session_id": 12,
        "mode": "hold",
        "sql": "UPDATE shop.orders SET status = $1, note = 'a rather long note that goes on' WHERE id = $2",
        "parameters": ["shipped", "42"],
        "binding": "9c1d0e",
        "statements": [{"kind": "update", "class": "write", "relations": ["shop.orders"], "fingerprint": "ab"}],
        "rules": ["agents-writes-need-approval"],
        "approvers": {"identities": [], "groups": ["dba"], "count": 1},
        "approvals": [],
        "denial": null,
        "grant": null,
        "created_at": time(90),
        "expires_at": time(-810),
        "decided_at": null,
        "run_until": null
    })
}

fn grant_request() -> Value {
    json!({
        "id": "b2c4d6e8f0a1",
        "kind": "grant",
        "state": "pending",
        "requester": "alice",
        "database": "prod",
        "session_id": null,
        "mode": null,
        "sql": null,
        "parameters": [],
        "binding": null,
        "statements": [],
        "rules": [],
        "approvers": {"identities": [], "groups": ["dba"], "count": 2},
        "approvals": [],
        "denial": null,
        "grant": {"group": "writers", "database": "prod", "duration_secs": 5400},
        "created_at": time(3 * 3600),
        "expires_at": time(-600),
        "decided_at": null,
        "run_until": null
    })
}

/// The admin API as documented, with one pending statement and one pending grant.
fn admin_api(request: &Seen) -> (u16, Value) {
    let now = time(0);
    let reason = || serde_json::from_str::<Value>(&request.body).unwrap()["reason"].clone();
    match (request.method.as_str(), request.target.as_str()) {
        ("GET", "/api/v1/approvals?state=pending") => (
            200,
            json!({"requests": [statement_request(), grant_request()]}),
        ),
        ("GET", "/api/v1/approvals?state=denied") => (200, json!({"requests": []})),
        ("GET", "/api/v1/approvals/7f3a9c2e41d0") => (200, statement_request()),
        ("POST", "/api/v1/approvals/7f3a9c2e41d0/approve") => {
            let mut r = statement_request();
            r["state"] = json!("approved");
            r["approvals"] = json!([{"by": "bob", "reason": reason(), "at": now}]);
            r["decided_at"] = json!(now);
            (200, r)
        }
        ("POST", "/api/v1/approvals/b2c4d6e8f0a1/approve") => {
            let mut r = grant_request();
            r["approvals"] = json!([{"by": "bob", "reason": reason(), "at": now}]);
            (200, r)
        }
        ("POST", "/api/v1/approvals/7f3a9c2e41d0/deny") => {
            let mut r = statement_request();
            r["state"] = json!("denied");
            r["denial"] = json!({"by": "bob", "reason": reason(), "at": now});
            (200, r)
        }
        ("POST", "/api/v1/approvals/0000mine0000/approve") => {
            (403, json!({"error": "nobody approves their own request"}))
        }
        ("POST", "/api/v1/grants") => {
            let body: Value = serde_json::from_str(&request.body).unwrap();
            let mut r = grant_request();
            r["grant"]["duration_secs"] = body["duration_secs"].clone();
            (201, r)
        }
        ("GET", "/api/v1/grants") => (
            200,
            json!({"grants": [{"identity": "alice", "group": "writers", "database": "prod",
                               "approval_id": "b2c4d6e8f0a1", "expires_at": time(-2700)}]}),
        ),
        _ => (404, json!({"error": "no such request"})),
    }
}

#[test]
fn list_and_show_read_the_api_with_the_token() {
    let api = Peer::start(admin_api);

    let (code, out, err) = run(&mut api.vigil(&["approvals", "list"]));
    assert_eq!(code, 0, "{err}");
    let seen = api.last();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("GET", "/api/v1/approvals?state=pending")
    );
    assert_eq!(seen.authorization.as_deref(), Some("Bearer vgl_test_token"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let columns = |line: &str| {
        line.split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        columns(lines[0]),
        [
            "ID",
            "STATE",
            "REQUESTER",
            "DATABASE",
            "MODE",
            "AGE",
            "RULES",
            "WHAT"
        ]
    );
    assert_eq!(
        columns(lines[1])[..7],
        [
            "7f3a9c2e41d0",
            "pending",
            "agent",
            "demo",
            "hold",
            "1m",
            "agents-writes-need-approval"
        ]
    );
    // The statement, cut at 60 characters.
    assert!(
        lines[1].ends_with("UPDATE shop.orders SET status = $1, note = 'a rather long no…"),
        "{out}"
    );
    assert_eq!(
        columns(lines[2]),
        [
            "b2c4d6e8f0a1",
            "pending",
            "alice",
            "prod",
            "-",
            "3h",
            "-",
            "grant",
            "writers",
            "on",
            "prod",
            "for",
            "1h30m"
        ]
    );
    // Columns line up.
    let at = lines[0].find("WHAT").unwrap();
    assert_eq!(lines[1].find("UPDATE"), Some(at), "{out}");
    assert_eq!(lines[2].find("grant"), Some(at), "{out}");

    let (code, out, _) = run(&mut api.vigil(&["approvals", "list", "--state", "denied"]));
    assert_eq!(code, 0);
    assert_eq!(out, "no denied approval requests\n");

    let (code, out, _) = run(&mut api.vigil(&["approvals", "list", "--json"]));
    assert_eq!(code, 0);
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["requests"][1]["id"], "b2c4d6e8f0a1");

    // --url and --token after the subcommand override the variables.
    let other = Peer::start(admin_api);
    let (code, _, err) = run(&mut api.vigil(&[
        "approvals",
        "show",
        "7f3a9c2e41d0",
        "--url",
        &other.url,
        "--token",
        "vgl_other",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        other.last().authorization.as_deref(),
        Some("Bearer vgl_other")
    );

    let (code, out, err) = run(&mut api.vigil(&["approvals", "show", "7f3a9c2e41d0"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(api.last().target, "/api/v1/approvals/7f3a9c2e41d0");
    for expected in [
        "id          7f3a9c2e41d0\n",
        "state       pending\n",
        "mode        hold\n",
        "approvers   1 of groups dba\n",
        "approvals   none yet\n",
        "sql\n  UPDATE shop.orders SET status = $1, note = 'a rather long note that goes on' WHERE id = $2\n",
        "parameters\n  $1  'shipped'\n  $2  '42'\n",
        "statements\n  update (write) on shop.orders\n",
    ] {
        assert!(out.contains(expected), "{expected:?} in\n{out}");
    }
    assert!(out.contains("(1m ago)\n"), "{out}");
    assert!(out.contains("(in 13m)\n"), "{out}");

    let (code, _, err) = run(&mut api.vigil(&["approvals", "show", "nope"]));
    assert_eq!(code, 1);
    assert_eq!(err, "vigil: no such request (404 Not Found)\n");
}

#[test]
fn approve_and_deny_post_the_reason_and_say_what_happened() {
    let api = Peer::start(admin_api);

    let (code, out, err) = run(&mut api.vigil(&["approvals", "approve", "7f3a9c2e41d0"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "approved 7f3a9c2e41d0 (1 of 1 approvals): it runs now\n"
    );
    let seen = api.last();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/api/v1/approvals/7f3a9c2e41d0/approve")
    );
    assert_eq!(seen.authorization.as_deref(), Some("Bearer vgl_test_token"));
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    assert_eq!(seen.json(), json!({}));

    let (code, out, err) = run(&mut api.vigil(&[
        "approvals",
        "approve",
        "b2c4d6e8f0a1",
        "--reason",
        "INC-4411",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "approval recorded for b2c4d6e8f0a1 (1 of 2)\n");
    assert_eq!(api.last().json(), json!({"reason": "INC-4411"}));

    let (code, out, err) = run(&mut api.vigil(&[
        "approvals",
        "deny",
        "7f3a9c2e41d0",
        "--reason",
        "not during the freeze",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "denied 7f3a9c2e41d0\n");
    let seen = api.last();
    assert_eq!(seen.target, "/api/v1/approvals/7f3a9c2e41d0/deny");
    assert_eq!(seen.json(), json!({"reason": "not during the freeze"}));

    let (code, out, err) = run(&mut api.vigil(&["approvals", "approve", "0000mine0000"]));
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "vigil: nobody approves their own request (403 Forbidden)\n"
    );
}

#[test]
fn grants_request_uses_the_token_or_the_identitys_password() {
    let api = Peer::start(admin_api);
    let args = [
        "grants",
        "request",
        "--group",
        "writers",
        "--database",
        "prod",
        "--for",
        "1h30m",
        "--reason",
        "INC-4411 backfill",
    ];

    // With a token: Bearer.
    let (code, out, err) = run(&mut api.vigil(&args));
    assert_eq!(code, 0, "{err}");
    let seen = api.last();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/api/v1/grants")
    );
    assert_eq!(seen.authorization.as_deref(), Some("Bearer vgl_test_token"));
    assert_eq!(
        seen.json(),
        json!({"group": "writers", "database": "prod", "duration_secs": 5400,
               "reason": "INC-4411 backfill"})
    );
    assert_eq!(
        out,
        "requested grant b2c4d6e8f0a1: alice in group writers on prod for 1h30m\n\
         waiting for approval (2 of groups dba); follow it with `vigil approvals show b2c4d6e8f0a1`\n"
    );

    // Without one: Basic, as --user with PGPASSWORD.
    let basic = |user: &str| format!("Basic {}", B64.encode(format!("{user}:s3cret")));
    let mut with_user = args.to_vec();
    with_user.extend(["--user", "alice"]);
    let (code, _, err) = run(api
        .vigil(&with_user)
        .env_remove("VIGIL_ADMIN_TOKEN")
        .env("PGPASSWORD", "s3cret"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(api.last().authorization, Some(basic("alice")));

    // An explicit --user wins over a token in the environment.
    let (code, _, err) = run(api.vigil(&with_user).env("PGPASSWORD", "s3cret"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(api.last().authorization, Some(basic("alice")));

    // No --user: $PGUSER, then $USER.
    let (code, _, err) = run(api
        .vigil(&args)
        .env_remove("VIGIL_ADMIN_TOKEN")
        .env("PGUSER", "carol")
        .env("USER", "nobody")
        .env("PGPASSWORD", "s3cret"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(api.last().authorization, Some(basic("carol")));
    let (code, _, err) = run(api
        .vigil(&args)
        .env_remove("VIGIL_ADMIN_TOKEN")
        .env("USER", "dave")
        .env("PGPASSWORD", "s3cret"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(api.last().authorization, Some(basic("dave")));

    // No password anywhere (and nothing on stdin): refused before asking the server.
    let before = api.count();
    let (code, _, err) = run(api.vigil(&with_user).env_remove("VIGIL_ADMIN_TOKEN"));
    assert_eq!(code, 1);
    assert_eq!(err, "vigil: empty password\n");
    assert_eq!(api.count(), before);
}

#[test]
fn grants_list_shows_the_grants_in_force() {
    let api = Peer::start(admin_api);
    let (code, out, err) = run(&mut api.vigil(&["grants", "list"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(api.last().target, "/api/v1/grants");
    assert_eq!(
        api.last().authorization.as_deref(),
        Some("Bearer vgl_test_token")
    );
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["IDENTITY", "GROUP", "DATABASE", "EXPIRES", "APPROVAL"],
            vec!["alice", "writers", "prod", "in", "44m", "b2c4d6e8f0a1"],
        ],
        "{out}"
    );

    let (code, out, _) = run(&mut api.vigil(&["grants", "list", "--json"]));
    assert_eq!(code, 0);
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["grants"][0]["identity"], "alice");
}
