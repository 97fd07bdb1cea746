//! Approvals through the proxy: statements a `review` rule holds or refuses,
//! decided over the admin HTTP API, as psql and tokio-postgres see them;
//! just-in-time grants; and the audit trail of every step. Before a decision
//! the target row is always unchanged.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::error::DbError;
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::harness::*;

mod store_down;
mod webhooks;

const BOB_PASSWORD: &str = "bob-demo";
const CAROL_PASSWORD: &str = "carol-demo";
const DAVE_PASSWORD: &str = "dave-demo";

/// bob, in group dba: one of the rule's approvers.
const BOB_TOKEN: &str = "vigil-e2e-token-bob";
/// carol is in dba too, but the review rule applies to her own writes.
const CAROL_TOKEN: &str = "vigil-e2e-token-carol";
/// dave holds an approver token but is not among the rule's approvers.
const DAVE_TOKEN: &str = "vigil-e2e-token-dave";
/// alice is in dba, but this token of hers may only look.
const VIEWER_TOKEN: &str = "vigil-e2e-token-alice-viewer";

const RULE: &str = "agent-writes-need-approval";
const POLL: Duration = Duration::from_millis(25);
const WAIT: Duration = Duration::from_secs(10);

fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The people and admin tokens every test here shares.
fn people() -> String {
    let mut toml = identity_toml("bob", "person", &["dba"], BOB_PASSWORD);
    toml += &identity_toml("carol", "person", &["dba"], CAROL_PASSWORD);
    toml += &identity_toml("dave", "person", &["ops"], DAVE_PASSWORD);
    for (name, identity, role, token) in [
        ("bob-laptop", "bob", "approver", BOB_TOKEN),
        ("carol-laptop", "carol", "approver", CAROL_TOKEN),
        ("dave-laptop", "dave", "approver", DAVE_TOKEN),
        ("alice-dashboard", "alice", "viewer", VIEWER_TOKEN),
    ] {
        toml += &format!(
            "[[admin.tokens]]\nname = \"{name}\"\nidentity = \"{identity}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n\n",
            sha256_hex(token)
        );
    }
    toml
}

/// agent's and carol's writes need one approval from group dba; `mode` is
/// `hold` or `refuse`.
fn review_rule(mode: &str) -> String {
    format!(
        r#"
[[rules]]
id = "{RULE}"
when = {{ identities = ["agent", "carol"], classes = ["write"] }}
action = "review"
approval = "{mode}"
approvers = {{ groups = ["dba"], count = 1 }}
"#
    )
}

/// A proxy for `db` with the shared people and tokens, then `extra`. A short
/// drain, so a failed test does not wait long on sessions it left held.
fn approvals_proxy(db: &TestDb, extra: &str) -> Proxy {
    Proxy::start(&config_toml(
        &db.name,
        "drain_timeout_secs = 2",
        &format!("{}{extra}", people()),
    ))
}

/// A scratch database with table `t`: rows 1 and 2, `v = 'before'`, `n = 0`.
fn table_db(tag: &str) -> TestDb {
    let db = TestDb::create(tag);
    db.direct_sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0);
         INSERT INTO t VALUES (1, 'before', 0), (2, 'before', 0);",
    );
    db
}

/// Row `id` of `t` as `v:n`, read directly from PostgreSQL.
fn row(db: &TestDb, id: i32) -> String {
    db.direct_sql(&format!("SELECT v || ':' || n FROM t WHERE id = {id}"))
        .trim()
        .to_owned()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---- the admin API ----

fn api(
    proxy: &Proxy,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    http(
        method,
        &format!("{}{path}", proxy.admin_url()),
        auth.as_deref(),
        body,
    )
}

/// The requests in `state`, as the viewer sees them.
fn requests(proxy: &Proxy, state: &str) -> Vec<Value> {
    let (status, body) = api(
        proxy,
        "GET",
        &format!("/api/v1/approvals?state={state}"),
        Some(VIEWER_TOKEN),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["requests"]
        .as_array()
        .unwrap_or_else(|| panic!("no requests list: {body}"))
        .clone()
}

fn request(proxy: &Proxy, id: &str) -> Value {
    let (status, body) = api(
        proxy,
        "GET",
        &format!("/api/v1/approvals/{id}"),
        Some(VIEWER_TOKEN),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits for a request in `state` (`pending`, `all` …) for `sql` whose id
/// is not one of `known`.
fn wait_for_request(proxy: &Proxy, state: &str, sql: &str, known: &[String]) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = requests(proxy, state)
            .into_iter()
            .find(|r| r["sql"] == sql && !known.iter().any(|k| r["id"] == k.as_str()));
        if let Some(found) = found {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no new {state} request for {sql:?}; all: {:#?}",
            requests(proxy, "all")
        );
        std::thread::sleep(POLL);
    }
}

fn wait_for_pending(proxy: &Proxy, sql: &str) -> Value {
    wait_for_request(proxy, "pending", sql, &[])
}

/// Waits until request `id` is in `state`; returns it then.
fn wait_for_state(proxy: &Proxy, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let current = request(proxy, id);
        if current["state"] == state {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "request {id} never became {state}: {current:#}"
        );
        std::thread::sleep(POLL);
    }
}

fn id_of(request: &Value) -> String {
    request["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a request has a string id: {request}"))
        .to_owned()
}

fn reason_body(reason: Option<&str>) -> Value {
    match reason {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    }
}

fn approve(proxy: &Proxy, token: &str, id: &str, reason: Option<&str>) -> (u16, Value) {
    api(
        proxy,
        "POST",
        &format!("/api/v1/approvals/{id}/approve"),
        Some(token),
        Some(&reason_body(reason)),
    )
}

fn deny(proxy: &Proxy, token: &str, id: &str, reason: Option<&str>) -> (u16, Value) {
    api(
        proxy,
        "POST",
        &format!("/api/v1/approvals/{id}/deny"),
        Some(token),
        Some(&reason_body(reason)),
    )
}

// ---- clients ----

/// A tokio-postgres session whose notices are kept and whose connection
/// can be cut (aborting `connection` closes the socket).
struct Watched {
    client: tokio_postgres::Client,
    notices: tokio::sync::mpsc::UnboundedReceiver<DbError>,
    connection: JoinHandle<()>,
}

async fn connect_watched(proxy: &Proxy, user: &str, password: &str) -> Watched {
    use futures_util::StreamExt;
    let (client, mut connection) = tokio_postgres::connect(
        &format!("{} password={password}", proxy.conninfo(user)),
        NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("connect as {user}: {e}"));
    let (tx, notices) = tokio::sync::mpsc::unbounded_channel();
    let connection = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notice(notice)) => {
                    let _ = tx.send(notice);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    Watched {
        client,
        notices,
        connection,
    }
}

/// The first notice that mentions `needle`, within [`WAIT`].
fn notice_with(
    rt: &Runtime,
    notices: &mut tokio::sync::mpsc::UnboundedReceiver<DbError>,
    needle: &str,
) -> DbError {
    rt.block_on(async {
        tokio::time::timeout(WAIT, async {
            let mut seen = Vec::new();
            loop {
                match notices.recv().await {
                    Some(notice) if notice.message().contains(needle) => return notice,
                    Some(notice) => seen.push(notice.message().to_owned()),
                    None => panic!("connection closed; notices seen: {seen:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no notice mentioning {needle:?}"))
    })
}

/// What a task spawned on `rt` returned, within `within`.
fn finish<T>(rt: &Runtime, task: JoinHandle<T>, within: Duration) -> T {
    rt.block_on(async { tokio::time::timeout(within, task).await })
        .expect("the client got its answer in time")
        .expect("the client task did not panic")
}

#[track_caller]
fn db_error(error: &tokio_postgres::Error) -> &DbError {
    error
        .as_db_error()
        .unwrap_or_else(|| panic!("not an ErrorResponse: {error}"))
}

/// Asserts `error` is Vigil's refusal (42501) naming request `id`.
#[track_caller]
fn assert_refused_for(error: &tokio_postgres::Error, id: &str) {
    let e = db_error(error);
    assert_eq!(e.code().code(), "42501", "{e:?}");
    assert!(
        e.message().contains(id),
        "the error names request {id}: {e:?}"
    );
}

/// The session answers `SELECT 1`.
#[track_caller]
fn assert_usable(rt: &Runtime, client: &tokio_postgres::Client) {
    let messages = rt
        .block_on(client.simple_query("SELECT 1"))
        .expect("the session carries on");
    let first = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(first.as_deref(), Some("1"));
}

/// psql as agent running `sql`, in the background.
fn spawn_psql(proxy: &Proxy, sql: &str, output: bool) -> Child {
    let pipe = || {
        if output {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    Command::new("psql")
        .arg("-X")
        .arg(proxy.conninfo("agent"))
        .args(["-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", AGENT_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .stdout(pipe())
        .stderr(pipe())
        .spawn()
        .expect("psql runs")
}

/// The lines of `from` as they come, read on a thread of their own.
fn lines_of(from: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line from `lines` that contains `needle`, within [`WAIT`];
/// every line read goes into `seen`.
fn line_with(lines: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(_) => panic!("no line mentioning {needle:?}; seen: {seen:?}"),
        }
    }
}

/// Waits for `child` to exit within [`WAIT`] and collects its stdout.
fn wait_child(mut child: Child) -> Output {
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("psql still running after {WAIT:?}");
        }
        std::thread::sleep(POLL);
    };
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout).unwrap();
    }
    Output {
        status,
        stdout,
        stderr: Vec::new(),
    }
}

// ---- hold ----

const PSQL_UPDATE: &str = "UPDATE t SET v = 'approved' WHERE id = 1 RETURNING id, v";

/// psql's UPDATE is held, seen through the API, approved by bob, and runs
/// once. Returns the request as it ends.
fn psql_update_held_then_approved(proxy: &Proxy, db: &TestDb) -> Value {
    let mut psql = spawn_psql(proxy, PSQL_UPDATE, true);
    let stderr_lines = lines_of(psql.stderr.take().unwrap());

    let pending = wait_for_pending(proxy, PSQL_UPDATE);
    let id = id_of(&pending);
    assert_eq!(pending["kind"], "statement", "{pending:#}");
    assert_eq!(pending["state"], "pending", "{pending:#}");
    assert_eq!(pending["requester"], "agent", "{pending:#}");
    assert_eq!(pending["database"], "demo", "{pending:#}");
    assert_eq!(pending["mode"], "hold", "{pending:#}");
    assert_eq!(pending["rules"], json!([RULE]), "{pending:#}");
    assert_eq!(
        pending["approvers"]["groups"],
        json!(["dba"]),
        "{pending:#}"
    );
    assert_eq!(pending["approvers"]["count"], 1, "{pending:#}");
    assert_eq!(pending["approvals"], json!([]), "{pending:#}");
    assert!(
        pending["binding"].as_str().is_some_and(|b| !b.is_empty()),
        "{pending:#}"
    );
    assert!(pending["session_id"].is_number(), "{pending:#}");
    assert_eq!(request(proxy, &id)["sql"], PSQL_UPDATE);

    // Nothing has run, and psql waits, told why.
    assert_eq!(row(db, 1), "before:0", "nothing runs before approval");
    assert!(psql.try_wait().unwrap().is_none(), "psql waits");
    let mut seen = Vec::new();
    let notice = line_with(&stderr_lines, &format!("for approval {id}"), &mut seen);
    assert!(notice.starts_with("NOTICE:"), "{notice}");
    assert!(psql.try_wait().unwrap().is_none(), "psql still waits");

    let (status, approved) = approve(proxy, BOB_TOKEN, &id, Some("ticket 42"));
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["id"], id.as_str());
    assert!(
        approved["state"] == "approved" || approved["state"] == "executed",
        "{approved:#}"
    );
    let approvals = approved["approvals"].as_array().expect("approvals list");
    assert_eq!(approvals.len(), 1, "{approved:#}");
    assert_eq!(approvals[0]["by"], "bob");
    assert_eq!(approvals[0]["reason"], "ticket 42");

    let out = wait_child(psql);
    seen.extend(stderr_lines.try_iter());
    assert!(
        out.status.success(),
        "psql: {}\nstdout: {}",
        seen.join("\n"),
        stdout(&out)
    );
    assert!(
        stdout(&out).lines().any(|l| l == "1|approved"),
        "the RETURNING row: {}",
        stdout(&out)
    );
    assert_eq!(row(db, 1), "approved:0");
    let done = wait_for_state(proxy, &id, "executed");
    assert!(
        !requests(proxy, "pending")
            .iter()
            .any(|r| r["id"] == id.as_str()),
        "no longer pending"
    );
    done
}

#[test]
fn a_held_psql_statement_runs_once_approved() {
    let db = table_db("appr_hold");
    let proxy = approvals_proxy(&db, &review_rule("hold"));
    let done = psql_update_held_then_approved(&proxy, &db);
    assert_eq!(done["approvals"][0]["by"], "bob", "{done:#}");
    assert!(done["decided_at"].is_string(), "{done:#}");
    // Another row was never touched.
    assert_eq!(row(&db, 2), "before:0");
}

#[test]
fn a_denied_statement_fails_with_the_reason_and_the_session_carries_on() {
    const SQL: &str = "UPDATE t SET v = 'denied' WHERE id = 1";
    const REASON: &str = "not during the freeze";
    let db = table_db("appr_deny");
    let proxy = approvals_proxy(&db, &review_rule("hold"));
    let rt = runtime();
    let Watched {
        client,
        mut notices,
        connection: _connection,
    } = rt.block_on(connect_watched(&proxy, "agent", AGENT_PASSWORD));
    let held = rt.spawn(async move {
        let result = client.batch_execute(SQL).await;
        (client, result)
    });
    let id = id_of(&wait_for_pending(&proxy, SQL));
    // The notice comes at once, before any decision.
    notice_with(&rt, &mut notices, &format!("for approval {id}"));

    // A denial needs a reason.
    let (status, body) = deny(&proxy, BOB_TOKEN, &id, None);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(request(&proxy, &id)["state"], "pending");
    assert!(!held.is_finished(), "still held");

    let (status, denied) = deny(&proxy, BOB_TOKEN, &id, Some(REASON));
    assert_eq!(status, 200, "{denied}");
    assert_eq!(denied["state"], "denied", "{denied:#}");
    assert_eq!(denied["denial"]["by"], "bob", "{denied:#}");
    assert_eq!(denied["denial"]["reason"], REASON, "{denied:#}");

    let (client, result) = finish(&rt, held, WAIT);
    let error = result.expect_err("a denied statement fails");
    assert_refused_for(&error, &id);
    let e = db_error(&error);
    let said = format!("{} {}", e.message(), e.detail().unwrap_or_default());
    assert!(said.contains(REASON), "the error gives the reason: {e:?}");
    assert_eq!(row(&db, 1), "before:0");
    assert_usable(&rt, &client);

    // Decided is decided.
    let (status, body) = approve(&proxy, BOB_TOKEN, &id, None);
    assert_eq!(status, 409, "{body}");
    assert!(requests(&proxy, "denied")
        .iter()
        .any(|r| r["id"] == id.as_str()));
    assert_eq!(row(&db, 1), "before:0");
}

#[test]
fn an_undecided_request_expires_and_the_session_carries_on() {
    const SQL: &str = "UPDATE t SET v = 'expired' WHERE id = 1";
    let db = table_db("appr_expire");
    let proxy = approvals_proxy(
        &db,
        &format!("{}\n[approvals]\ntimeout_secs = 1\n", review_rule("hold")),
    );
    let rt = runtime();
    let client = rt.block_on(proxy.connect("agent", AGENT_PASSWORD));
    let held = rt.spawn(async move {
        let start = Instant::now();
        let result = client.batch_execute(SQL).await;
        (client, result, start.elapsed())
    });
    // `all`: it may have expired by the time we look.
    let id = id_of(&wait_for_request(&proxy, "all", SQL, &[]));
    let (client, result, waited) = finish(&rt, held, WAIT);
    let error = result.expect_err("an expired request fails its statement");
    assert!(
        waited >= Duration::from_millis(950),
        "expired after {waited:?}, before its timeout"
    );
    assert!(waited < Duration::from_secs(5), "expired after {waited:?}");
    assert_refused_for(&error, &id);

    wait_for_state(&proxy, &id, "expired");
    assert!(requests(&proxy, "expired")
        .iter()
        .any(|r| r["id"] == id.as_str()));
    assert_eq!(row(&db, 1), "before:0");
    assert_usable(&rt, &client);
    let (status, body) = approve(&proxy, BOB_TOKEN, &id, None);
    assert_eq!(status, 409, "too late: {body}");
    assert_eq!(row(&db, 1), "before:0");
}

#[test]
fn only_the_rules_approvers_may_approve_and_never_their_own_request() {
    const SQL: &str = "UPDATE t SET v = 'carol' WHERE id = 1";
    let db = table_db("appr_self");
    let proxy = approvals_proxy(&db, &review_rule("hold"));
    let rt = runtime();
    let client = rt.block_on(proxy.connect("carol", CAROL_PASSWORD));
    let held = rt.spawn(async move {
        let result = client.batch_execute(SQL).await;
        (client, result)
    });
    let pending = wait_for_pending(&proxy, SQL);
    let id = id_of(&pending);
    assert_eq!(pending["requester"], "carol", "{pending:#}");

    for (who, token, expected) in [
        ("carol herself", Some(CAROL_TOKEN), 403),
        ("dave, not an approver", Some(DAVE_TOKEN), 403),
        ("a viewer token", Some(VIEWER_TOKEN), 403),
        ("no token", None, 401),
        ("an unknown token", Some("not-a-configured-token"), 401),
    ] {
        let (status, body) = api(
            &proxy,
            "POST",
            &format!("/api/v1/approvals/{id}/approve"),
            token,
            Some(&json!({ "reason": "looks fine" })),
        );
        assert_eq!(status, expected, "{who}: {body}");
        assert!(body["error"].is_string(), "{who}: {body}");
    }
    let (status, body) = deny(&proxy, VIEWER_TOKEN, &id, Some("viewers cannot"));
    assert_eq!(status, 403, "{body}");
    // Reading needs a token too, except health.
    let (status, _) = api(&proxy, "GET", "/api/v1/approvals", None, None);
    assert_eq!(status, 401);
    let (status, body) = api(&proxy, "GET", "/api/v1/health", None, None);
    assert_eq!((status, body), (200, json!({ "status": "ok" })));
    let (status, body) = approve(&proxy, BOB_TOKEN, "000000000000", None);
    assert_eq!(status, 404, "{body}");

    let still = request(&proxy, &id);
    assert_eq!(still["state"], "pending", "{still:#}");
    assert_eq!(still["approvals"], json!([]), "{still:#}");
    assert!(!held.is_finished(), "still held");
    assert_eq!(row(&db, 1), "before:0");

    let (status, body) = deny(&proxy, BOB_TOKEN, &id, Some("cleanup"));
    assert_eq!(status, 200, "{body}");
    let (client, result) = finish(&rt, held, WAIT);
    assert_refused_for(&result.expect_err("denied"), &id);
    assert_usable(&rt, &client);
    assert_eq!(row(&db, 1), "before:0");
}

// ---- refuse ----

#[test]
fn refuse_mode_runs_only_the_byte_identical_statement_and_only_once() {
    const BUMP: &str = "UPDATE t SET n = n + 1 WHERE id = 1";
    const OTHER: &str = "UPDATE t SET n = n + 2 WHERE id = 1";
    const PARAM: &str = "UPDATE t SET n = n + $1 WHERE id = $2";
    let db = table_db("appr_refuse");
    let proxy = approvals_proxy(&db, &review_rule("refuse"));
    let rt = runtime();
    let client = rt.block_on(proxy.connect("agent", AGENT_PASSWORD));
    let mut known = Vec::new();

    // Refused at once, with the id of a new request.
    let start = Instant::now();
    let error = rt
        .block_on(client.batch_execute(BUMP))
        .expect_err("refused");
    assert!(start.elapsed() < Duration::from_secs(2), "refused at once");
    let first = wait_for_request(&proxy, "pending", BUMP, &known);
    let first_id = id_of(&first);
    known.push(first_id.clone());
    assert_eq!(first["mode"], "refuse", "{first:#}");
    assert_refused_for(&error, &first_id);
    assert_eq!(row(&db, 1), "before:0");

    let (status, approved) = approve(&proxy, BOB_TOKEN, &first_id, Some("one bump"));
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["state"], "approved", "{approved:#}");
    assert!(approved["run_until"].is_string(), "{approved:#}");

    // Another literal is another statement: a new request.
    let error = rt
        .block_on(client.batch_execute(OTHER))
        .expect_err("refused");
    let other = wait_for_request(&proxy, "pending", OTHER, &known);
    known.push(id_of(&other));
    assert_refused_for(&error, &id_of(&other));
    assert_eq!(row(&db, 1), "before:0");

    // The approved bytes run, once.
    rt.block_on(client.batch_execute(BUMP))
        .expect("the approved statement runs");
    assert_eq!(row(&db, 1), "before:1");
    wait_for_state(&proxy, &first_id, "executed");
    let error = rt
        .block_on(client.batch_execute(BUMP))
        .expect_err("an approval is used once");
    let again = wait_for_request(&proxy, "pending", BUMP, &known);
    known.push(id_of(&again));
    assert_refused_for(&error, &id_of(&again));
    assert_eq!(row(&db, 1), "before:1");

    // The extended protocol: the parameters are part of what is approved.
    let error = rt
        .block_on(client.execute(PARAM, &[&5i32, &1i32]))
        .expect_err("refused");
    let prepared = wait_for_request(&proxy, "pending", PARAM, &known);
    let prepared_id = id_of(&prepared);
    known.push(prepared_id.clone());
    assert_refused_for(&error, &prepared_id);
    // tokio-postgres sends parameters in binary.
    assert_eq!(
        prepared["parameters"],
        json!(["\\x00000005", "\\x00000001"]),
        "{prepared:#}"
    );
    let (status, body) = approve(&proxy, BOB_TOKEN, &prepared_id, None);
    assert_eq!(status, 200, "{body}");
    let error = rt
        .block_on(client.execute(PARAM, &[&6i32, &1i32]))
        .expect_err("other parameters need their own approval");
    let swapped = wait_for_request(&proxy, "pending", PARAM, &known);
    known.push(id_of(&swapped));
    assert_refused_for(&error, &id_of(&swapped));
    assert_eq!(row(&db, 1), "before:1");
    let rows = rt
        .block_on(client.execute(PARAM, &[&5i32, &1i32]))
        .expect("the approved statement and parameters run");
    assert_eq!(rows, 1);
    assert_eq!(row(&db, 1), "before:6");
    let error = rt
        .block_on(client.execute(PARAM, &[&5i32, &1i32]))
        .expect_err("once");
    assert_eq!(db_error(&error).code().code(), "42501");
    assert_eq!(row(&db, 1), "before:6");
    assert_eq!(row(&db, 2), "before:0");
}

// ---- withdrawal ----

#[test]
fn a_client_that_cancels_or_leaves_withdraws_its_request() {
    const CANCELLED: &str = "UPDATE t SET v = 'cancelled' WHERE id = 1";
    const CUT: &str = "UPDATE t SET v = 'cut' WHERE id = 1";
    const KILLED: &str = "UPDATE t SET v = 'killed' WHERE id = 1";
    let db = table_db("appr_cancel");
    let proxy = approvals_proxy(&db, &review_rule("hold"));
    let rt = runtime();

    // Cancelled (psql's Ctrl-C) while it waits.
    let client = rt.block_on(proxy.connect("agent", AGENT_PASSWORD));
    let cancel = client.cancel_token();
    let held = rt.spawn(async move {
        let result = client.batch_execute(CANCELLED).await;
        (client, result)
    });
    let id = id_of(&wait_for_pending(&proxy, CANCELLED));
    rt.block_on(cancel.cancel_query(NoTls))
        .expect("cancel request sent");
    let (client, result) = finish(&rt, held, WAIT);
    let error = result.expect_err("a cancelled statement fails");
    assert_eq!(db_error(&error).code().code(), "57014", "{error:?}");
    wait_for_state(&proxy, &id, "withdrawn");
    assert_usable(&rt, &client);
    assert_eq!(row(&db, 1), "before:0");
    let (status, body) = approve(&proxy, BOB_TOKEN, &id, None);
    assert_eq!(status, 409, "withdrawn is not pending: {body}");

    // A driver whose connection drops while it waits.
    let watched = rt.block_on(connect_watched(&proxy, "agent", AGENT_PASSWORD));
    let client = watched.client;
    let held = rt.spawn(async move { client.batch_execute(CUT).await.is_ok() });
    let id = id_of(&wait_for_pending(&proxy, CUT));
    watched.connection.abort();
    wait_for_state(&proxy, &id, "withdrawn");
    assert!(!finish(&rt, held, WAIT), "no result without a connection");

    // psql killed while it waits.
    let mut psql = spawn_psql(&proxy, KILLED, false);
    let id = id_of(&wait_for_pending(&proxy, KILLED));
    psql.kill().unwrap();
    psql.wait().unwrap();
    wait_for_state(&proxy, &id, "withdrawn");
    assert_eq!(row(&db, 1), "before:0");
}

// ---- many at once ----

#[test]
fn fifty_sessions_wait_at_once_and_each_runs_once_approved() {
    const SESSIONS: usize = 50;
    let db = TestDb::create("appr_fifty");
    db.direct_sql("CREATE TABLE items (id int)"); // no key: a second run would show
    let proxy = approvals_proxy(&db, &review_rule("hold"));
    let rt = runtime();
    // One login at a time: Vigil's throttle caps logins in flight from
    // one address. The statements are what must wait at once.
    let clients: Vec<_> = (0..SESSIONS)
        .map(|_| rt.block_on(proxy.connect("agent", AGENT_PASSWORD)))
        .collect();
    let held: Vec<JoinHandle<Result<u64, String>>> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            rt.spawn(async move {
                let sql = format!("INSERT INTO items VALUES ({})", i + 1);
                client
                    .execute(sql.as_str(), &[])
                    .await
                    .map_err(|e| format!("{e:?}"))
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(20);
    let pending = loop {
        let pending: Vec<Value> = requests(&proxy, "pending")
            .into_iter()
            .filter(|r| {
                r["sql"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("INSERT INTO items"))
            })
            .collect();
        if pending.len() >= SESSIONS {
            break pending;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {SESSIONS} requests pending",
            pending.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(pending.len(), SESSIONS);
    let texts: HashSet<&str> = pending.iter().filter_map(|r| r["sql"].as_str()).collect();
    assert_eq!(texts.len(), SESSIONS, "one request per session");
    let created: Vec<&str> = pending
        .iter()
        .map(|r| r["created_at"].as_str().expect("created_at"))
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {created:?}"
    );
    assert_eq!(db.direct_sql("SELECT count(*) FROM items").trim(), "0");
    assert!(held.iter().all(|h| !h.is_finished()), "all held");

    let ids: Vec<String> = pending.iter().map(id_of).collect();
    std::thread::scope(|scope| {
        for chunk in ids.chunks(5) {
            let proxy = &proxy;
            scope.spawn(move || {
                for id in chunk {
                    let (status, body) = approve(proxy, BOB_TOKEN, id, None);
                    assert_eq!(status, 200, "{id}: {body}");
                }
            });
        }
    });
    let results = rt
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(20),
                futures_util::future::join_all(held),
            )
            .await
        })
        .expect("every held client answered");
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.expect("no panic"), Ok(1), "client {}", i + 1);
    }
    assert_eq!(
        db.direct_sql("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM items")
            .trim(),
        "50|50|1|50"
    );

    proxy.audit_sync();
    let records = audit_records(&proxy.audit_store());
    let executed: Vec<&str> = records
        .iter()
        .filter(|r| r["kind"] == "approval.executed")
        .map(|r| r["body"]["approval_id"].as_str().expect("approval_id"))
        .collect();
    assert_eq!(executed.len(), SESSIONS, "{executed:?}");
    let executed: HashSet<&str> = executed.into_iter().collect();
    let approved: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(executed, approved);
}

// ---- grants ----

#[test]
fn a_just_in_time_grant_lets_an_open_session_write_until_it_expires() {
    use base64::Engine;
    const GRANTS: &str = r#"
[[rules]]
id = "agent-writes-only-as-writer"
when = { identities = ["agent"], classes = ["write"] }
unless = { groups = ["writers"] }
action = "deny"

[[approvals.grants]]
group = "writers"
databases = ["demo"]
max_secs = 3600
approvers = { groups = ["dba"] }
"#;
    let db = table_db("appr_grant");
    let proxy = approvals_proxy(&db, GRANTS);
    let rt = runtime();
    let client = rt.block_on(proxy.connect("agent", AGENT_PASSWORD));
    let insert = |id: i32| {
        rt.block_on(client.batch_execute(&format!("INSERT INTO t VALUES ({id}, 'grant', 0)")))
    };
    let refused = |result: Result<(), tokio_postgres::Error>| {
        let error = result.expect_err("agent is not a writer");
        assert_eq!(db_error(&error).code().code(), "42501", "{error:?}");
    };
    refused(insert(10));

    let ask = |password: &str, secs: u64| {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("agent:{password}"));
        http(
            "POST",
            &format!("{}/api/v1/grants", proxy.admin_url()),
            Some(&format!("Basic {basic}")),
            Some(&json!({
                "group": "writers",
                "database": "demo",
                "duration_secs": secs,
                "reason": "INC-4411 backfill",
            })),
        )
    };
    let (status, body) = ask("wrong-password", 2);
    assert_eq!(status, 401, "{body}");
    let (status, body) = ask(AGENT_PASSWORD, 7200);
    assert_eq!(status, 400, "longer than max_secs: {body}");
    let (status, asked) = ask(AGENT_PASSWORD, 2);
    assert_eq!(status, 201, "{asked}");
    let id = id_of(&asked);
    assert_eq!(asked["kind"], "grant", "{asked:#}");
    assert_eq!(asked["state"], "pending", "{asked:#}");
    assert_eq!(asked["requester"], "agent", "{asked:#}");
    assert_eq!(
        asked["grant"],
        json!({ "group": "writers", "database": "demo", "duration_secs": 2, "expires_at": null }),
        "{asked:#}"
    );
    refused(insert(11));

    let (status, approved) = approve(&proxy, BOB_TOKEN, &id, Some("backfill ok"));
    let approved_at = Instant::now();
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["state"], "approved", "{approved:#}");
    assert!(
        approved["grant"]["expires_at"].is_string(),
        "in force until: {approved:#}"
    );
    // The same open session, at its next statement.
    insert(12).expect("agent writes as a member of writers");

    let grants = |token: &str| {
        let (status, body) = api(&proxy, "GET", "/api/v1/grants", Some(token), None);
        assert_eq!(status, 200, "{body}");
        body["grants"].as_array().expect("grants list").clone()
    };
    let listed = grants(VIEWER_TOKEN);
    let grant = listed
        .iter()
        .find(|g| g["approval_id"] == id.as_str())
        .unwrap_or_else(|| panic!("the grant is in force: {listed:?}"));
    assert_eq!(grant["identity"], "agent");
    assert_eq!(grant["group"], "writers");
    assert_eq!(grant["database"], "demo");
    assert!(grant["expires_at"].is_string(), "{grant}");

    std::thread::sleep(
        (approved_at + Duration::from_millis(2500)).saturating_duration_since(Instant::now()),
    );
    refused(insert(13));
    assert!(
        !grants(BOB_TOKEN)
            .iter()
            .any(|g| g["approval_id"] == id.as_str()),
        "expired grants are not listed"
    );
    assert_eq!(
        db.direct_sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t WHERE v = 'grant'")
            .trim(),
        "12"
    );

    // The audit trail: asked, approved, granted, and expired.
    let deadline = Instant::now() + WAIT;
    let steps = loop {
        proxy.audit_sync();
        let steps: Vec<Value> = audit_records(&proxy.audit_store())
            .into_iter()
            .filter(|r| {
                r["kind"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("approval."))
                    && r["body"]["approval_id"] == id.as_str()
            })
            .collect();
        if steps.iter().any(|r| r["kind"] == "approval.expired") || Instant::now() >= deadline {
            break steps;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let kinds: Vec<&str> = steps.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "approval.requested",
            "approval.approved",
            "approval.granted",
            "approval.expired"
        ],
        "{steps:#?}"
    );
    assert_eq!(steps[0]["body"]["kind"], "grant");
    assert_eq!(steps[0]["body"]["requester"], "agent");
    assert_eq!(steps[1]["body"]["by"], "bob");
    assert_eq!(steps[1]["body"]["reason"], "backfill ok");
    assert!(steps[3]["body"]["what"].is_string(), "{:#}", steps[3]);
    assert!(
        steps[2]["body"]["grant_expires_at"].is_string(),
        "{:#}",
        steps[2]
    );
}

// ---- audit ----

#[test]
fn every_step_of_an_approval_is_in_the_audit_trail() {
    let db = table_db("appr_audit");
    let proxy = approvals_proxy(&db, &review_rule("hold"));
    let done = psql_update_held_then_approved(&proxy, &db);
    let id = id_of(&done);
    proxy.audit_sync();
    let records = audit_records(&proxy.audit_store());

    let steps: Vec<&Value> = records
        .iter()
        .filter(|r| {
            r["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("approval."))
                && r["body"]["approval_id"] == id.as_str()
        })
        .collect();
    let kinds: Vec<&str> = steps.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "approval.requested",
            "approval.approved",
            "approval.granted",
            "approval.executed"
        ],
        "{steps:#?}"
    );
    let requested = &steps[0]["body"];
    assert_eq!(requested["kind"], "statement", "{requested:#}");
    assert_eq!(requested["requester"], "agent", "{requested:#}");
    assert_eq!(requested["database"], "demo", "{requested:#}");
    assert_eq!(requested["mode"], "hold", "{requested:#}");
    assert_eq!(requested["rules"], json!([RULE]), "{requested:#}");
    assert_eq!(requested["binding"], done["binding"], "{requested:#}");
    assert_eq!(requested["sql"], PSQL_UPDATE, "{requested:#}");
    assert_eq!(requested["session_id"], done["session_id"], "{requested:#}");
    let approved = &steps[1]["body"];
    assert_eq!(approved["by"], "bob", "{approved:#}");
    assert_eq!(approved["reason"], "ticket 42", "{approved:#}");
    assert_eq!(
        steps[3]["body"]["session_id"], done["session_id"],
        "{:#}",
        steps[3]
    );

    // The statement's own event: decided `review`, pointing at the request.
    let statements: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "statement" && r["body"]["approval_id"] == id.as_str())
        .collect();
    assert_eq!(statements.len(), 1, "{statements:#?}");
    let statement = &statements[0]["body"];
    assert_eq!(statement["decision"], "review", "{statement:#}");
    assert_eq!(statement["text"], PSQL_UPDATE, "{statement:#}");
    assert_eq!(statement["identity"], "agent", "{statement:#}");
    assert_eq!(statement["session_id"], done["session_id"], "{statement:#}");
    // It ran: its completion counts the row.
    let completed = records.iter().find(|r| {
        r["kind"] == "statement.completed"
            && r["body"]["session_id"] == statement["session_id"]
            && r["body"]["statement_seq"] == statement["statement_seq"]
    });
    assert_eq!(
        completed.map(|c| &c["body"]["rows"]),
        Some(&json!(1)),
        "{completed:?}"
    );
}
