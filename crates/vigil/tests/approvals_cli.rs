//! `vigil approvals`, `vigil grants` and `vigil token` as a user runs them.
//!
//! First against a test peer: a plain HTTP/1.1 responder on 127.0.0.1:0 that
//! answers canned requests in the documented shape and records what the CLI sent
//! (method, path, Authorization, body).
//!
//! Then end to end, as the README tells it: a real `vigil serve` (a child
//! process, its config in a scratch folder), psql as `agent` held by a review
//! rule, and the CLI deciding. Those tests need the local PostgreSQL
//! (127.0.0.1:5432, trust auth for `postgres`); each makes a database of its own
//! and drops it at the end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

mod common;

use common::*;

const TOKEN: &str = "vgl_test_token";

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

// ---- end to end: the CLI against a real `vigil serve` (tests/common) ----

/// Instead of review: agents write only as members of `writers`, which the
/// quickstart's `[[approvals.grants]]` entry lets them ask to join.
const WRITERS_RULE: &str = r#"
[[rules]]
id = "agent-writes-only-as-writer"
when = { identity_kinds = ["agent"], classes = ["write", "ddl"] }
unless = { groups = ["writers"] }
action = "deny"
"#;

#[test]
fn the_readme_round_trip_approves_a_held_psql_statement() {
    let mut served = Served::start("round_trip", REVIEW_RULE);
    let sql = "UPDATE t SET status = 'shipped' WHERE id = 1 RETURNING id, status";
    let mut psql = served.psql_as_agent(sql);

    let id = served.pending_request(&mut psql);
    // Held: nothing ran yet.
    assert_eq!(
        served
            .direct_sql("SELECT status FROM t WHERE id = 1")
            .trim(),
        "new"
    );

    let shown = served.cli_ok(&["approvals", "show", &id]);
    for expected in [
        format!("id          {id}\n"),
        "state       pending\n".to_owned(),
        "requester   agent\n".to_owned(),
        "database    demo\n".to_owned(),
        "mode        hold\n".to_owned(),
        "rules       agent-writes-need-approval\n".to_owned(),
        "approvers   1 of groups dba\n".to_owned(),
        "approvals   none yet\n".to_owned(),
        "statements\n  update (write) on t\n".to_owned(),
        format!("sql\n  {sql}\n"),
    ] {
        assert!(shown.contains(&expected), "{expected:?} in\n{shown}");
    }

    let approved = served.cli_ok(&["approvals", "approve", &id, "--reason", "ticket 42"]);
    assert!(
        approved.starts_with(&format!("approved {id} (1 of 1 approvals)")),
        "{approved}"
    );

    let (code, out, err) = psql.finish();
    assert_eq!(code, 0, "psql:\n{out}\n{err}");
    // The RETURNING row, then the command tag (psql prints both).
    assert_eq!(out, "1|shipped\nUPDATE 1\n", "{err}");
    assert!(
        err.contains(&format!(
            "NOTICE:  00000: Vigil is holding this statement for approval {id} \
             (rule agent-writes-need-approval): approve with `vigil approvals approve {id}`"
        )),
        "{err}"
    );
    assert_eq!(
        served
            .direct_sql("SELECT status FROM t WHERE id = 1")
            .trim(),
        "shipped"
    );

    // The request ran, and says so; the audit trail has every step.
    let shown = served.cli_ok(&["approvals", "show", &id]);
    assert!(shown.contains("state       executed\n"), "{shown}");
    assert!(shown.contains("  alice at "), "{shown}");
    assert!(shown.contains(": ticket 42\n"), "{shown}");
    let executed = served.audit_event("approval.executed", &id);
    assert!(executed.contains(" approval.executed "), "{executed}");
    let approval = served.audit_event("approval.approved", &id);
    assert!(approval.contains(" by=alice"), "{approval}");
    assert!(approval.contains(" reason=\"ticket 42\""), "{approval}");

    served.stop();
}

#[test]
fn deny_from_the_cli_reaches_the_held_session() {
    let mut served = Served::start("deny", REVIEW_RULE);
    let mut psql = served.psql_as_agent("UPDATE t SET status = 'gone' WHERE id = 2 RETURNING id");
    let id = served.pending_request(&mut psql);

    let denied = served.cli_ok(&["approvals", "deny", &id, "--reason", "not now"]);
    assert_eq!(denied, format!("denied {id}\n"));

    let (code, out, err) = psql.finish();
    assert_ne!(code, 0, "psql:\n{out}\n{err}");
    assert_eq!(out, "");
    assert!(
        err.contains(&format!(
            "ERROR:  42501: Vigil refused this statement: approval {id} was denied by alice: not now"
        )),
        "{err}"
    );
    assert_eq!(
        served
            .direct_sql("SELECT status FROM t WHERE id = 2")
            .trim(),
        "new"
    );

    let shown = served.cli_ok(&["approvals", "show", &id]);
    assert!(shown.contains("state       denied\n"), "{shown}");
    assert!(shown.contains(": not now\n"), "{shown}");
    let (_, listed, _) = run(&mut served.cli(&["approvals", "list"]));
    assert_eq!(listed, "no pending approval requests\n");

    served.stop();
}

#[test]
fn a_grant_requested_and_approved_from_the_cli_lets_agent_write() {
    let mut served = Served::start("grant", WRITERS_RULE);
    let insert = "INSERT INTO t VALUES (10, 'jit')";

    // Not a writer yet: refused.
    let (code, out, err) = served.psql_as_agent(insert).finish();
    assert_ne!(code, 0, "psql:\n{out}\n{err}");
    assert!(
        err.contains(
            "ERROR:  42501: Vigil refused this statement (rule agent-writes-only-as-writer)"
        ),
        "{err}"
    );

    // agent asks, with its own password (no token).
    let (code, asked, err) = run(served
        .cli(&[
            "grants",
            "request",
            "--user",
            "agent",
            "--group",
            "writers",
            "--database",
            "demo",
            "--for",
            "1h",
            "--reason",
            "x",
        ])
        .env_remove("VIGIL_ADMIN_TOKEN")
        .env("PGPASSWORD", AGENT_PASSWORD));
    assert_eq!(code, 0, "{asked}{err}\nserver log:\n{}", served.log());
    let first = asked.lines().next().unwrap_or_default();
    let (id, rest) = first
        .strip_prefix("requested grant ")
        .and_then(|rest| rest.split_once(": "))
        .unwrap_or_else(|| panic!("{asked}"));
    assert_eq!(rest, "agent in group writers on demo for 1h", "{asked}");
    assert!(
        asked.contains(&format!("`vigil approvals show {id}`")),
        "{asked}"
    );

    // Still refused while the request waits.
    let (code, _, err) = served.psql_as_agent(insert).finish();
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(
            "ERROR:  42501: Vigil refused this statement (rule agent-writes-only-as-writer)"
        ),
        "{err}"
    );

    let approved = served.cli_ok(&["approvals", "approve", id, "--reason", "backfill ok"]);
    assert_eq!(
        approved,
        format!("approved {id} (1 of 1 approvals): agent is in group writers on demo for 1h\n")
    );

    let listed = served.cli_ok(&["grants", "list"]);
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert_eq!(
        rows[0],
        ["IDENTITY", "GROUP", "DATABASE", "EXPIRES", "APPROVAL"]
    );
    assert_eq!(rows[1][..3], ["agent", "writers", "demo"], "{listed}");
    assert_eq!(rows[1][3], "in", "{listed}");
    assert_eq!(rows[1].last(), Some(&id), "{listed}");

    let (code, out, err) = served.psql_as_agent(insert).finish();
    assert_eq!(code, 0, "psql:\n{out}\n{err}");
    assert_eq!(out, "INSERT 0 1\n", "{err}");
    assert_eq!(
        served
            .direct_sql("SELECT status FROM t WHERE id = 10")
            .trim(),
        "jit"
    );

    served.stop();
}

#[test]
fn check_accepts_the_quickstart_and_names_bad_admin_tokens() {
    let quickstart_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.toml");
    let quickstart = std::fs::read_to_string(&quickstart_path).unwrap();
    for section in ["[approvals]", "[[approvals.grants]]", "[[admin.tokens]]"] {
        assert!(quickstart.contains(section), "the quickstart has {section}");
    }
    let (code, out, err) = run(&mut vigil(&[
        "check",
        "--config",
        quickstart_path.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": ok ("), "{out}");

    let dir = std::env::temp_dir().join(format!("vigil-approvals-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let check = |name: &str, from: &str, to: &str| {
        assert!(quickstart.contains(from), "the quickstart has {from}");
        let path = dir.join(name);
        std::fs::write(&path, quickstart.replace(from, to)).unwrap();
        run(&mut vigil(&["check", "--config", path.to_str().unwrap()]))
    };
    let (unknown, _, unknown_err) = check(
        "unknown.toml",
        "identity = \"alice\"",
        "identity = \"mallory\"",
    );
    let (bad_hash, _, bad_hash_err) =
        check("bad-hash.toml", DEMO_TOKEN_SHA256, "vigil-demo-dba-token");
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(unknown, 1, "{unknown_err}");
    assert!(
        unknown_err.contains("admin.tokens[0].identity"),
        "{unknown_err}"
    );
    assert!(unknown_err.contains("\"mallory\""), "{unknown_err}");
    assert_eq!(bad_hash, 1, "{bad_hash_err}");
    assert!(
        bad_hash_err.contains("admin.tokens[0].sha256"),
        "{bad_hash_err}"
    );
}
