//! The console's endpoints without a socket: sessions, audit search and
//! records, verification, policy and explain, overview and metrics, over a
//! real state whose audit store is a scratch SQLite file.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;
use vigil_audit::{AuditEvent, Decision as AuditDecision, Statement, StatementCompleted};

use super::*;

const VIEWER: &str = "viewer-token";

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn state(audit: &str) -> (Arc<State>, Scratch) {
    let dir = std::env::temp_dir().join(format!(
        "vigil-admin-views-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let hash = crate::approvals::hex(&Sha256::digest(VIEWER.as_bytes()));
    let verifier = vigil_auth::Verifier::generate("bob-pw", 4096);
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[databases]]
name = "prod"
upstream = "127.0.0.1:5432"
database = "postgres"
user = "postgres"
labels = {{ environment = "production" }}

[[identities]]
name = "bob"
groups = ["dba"]
password = "{verifier}"

[[identities]]
name = "agent"
kind = "agent"
groups = ["ai-agents"]
password = "{verifier}"

[policy]
guardrails = true
guardrails_exempt = {{ groups = ["dba"] }}

[[rules]]
id = "agents-read-only"
when = {{ groups = ["ai-agents"], classes = ["write"] }}
action = "deny"
message = "Agents only read."

[audit]
mode = "{audit}"
store = "sqlite://audit.db"

[[admin.tokens]]
name = "bob-viewer"
identity = "bob"
role = "viewer"
sha256 = "{hash}"
"#
    );
    let config = vigil_config::Config::from_toml(&toml, &dir.join("vigil.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    (State::new(config).unwrap(), Scratch(dir))
}

async fn get(state: &Arc<State>, path: &str) -> (StatusCode, Value) {
    send(state, "GET", path, "").await
}

async fn send(state: &Arc<State>, method: &str, path: &str, body: &str) -> (StatusCode, Value) {
    let (status, text) = raw(state, method, path, Some(VIEWER), body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn raw(
    state: &Arc<State>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Body::from(body.to_owned())).unwrap();
    let response = app(Arc::clone(state)).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn statement(
    session: u64,
    n: u64,
    identity: &str,
    text: &str,
    decision: AuditDecision,
) -> AuditEvent {
    AuditEvent::Statement(Statement {
        session_id: session,
        statement_seq: n,
        identity: identity.into(),
        database: "prod".into(),
        text: text.into(),
        redaction: vigil_audit::Redaction::Keep,
        fingerprint: format!("fp{n}"),
        client_encoding: None,
        kinds: vec!["select".into()],
        class: "read".into(),
        relations: vec!["public.users:read".into()],
        decision,
        rule_ids: Vec::new(),
        masked_columns: Vec::new(),
        approval_id: None,
        intent: Default::default(),
    })
}

fn completed(session: u64, n: u64, rows: u64) -> AuditEvent {
    AuditEvent::StatementCompleted(StatementCompleted {
        session_id: session,
        statement_seq: n,
        rows: Some(rows),
        duration_us: 120,
        executed: true,
        sqlstate: None,
        bytes: 10,
        masked_values: Default::default(),
    })
}

/// Records `events` and waits for their commit.
async fn record(state: &Arc<State>, events: Vec<AuditEvent>) {
    for result in state.audit.append_all(events).await {
        result.unwrap();
    }
}

#[tokio::test]
async fn every_console_endpoint_needs_a_token() {
    let (state, _dir) = state("off");
    for path in [
        "/api/v1/whoami",
        "/api/v1/overview",
        "/api/v1/sessions",
        "/api/v1/sessions/1",
        "/api/v1/audit",
        "/api/v1/audit/1",
        "/api/v1/audit/verify",
        "/api/v1/policy",
        "/metrics",
    ] {
        let (status, _) = raw(&state, "GET", path, None, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _) = raw(&state, "GET", path, Some("guess"), "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, _) = raw(&state, "POST", "/api/v1/policy/explain", None, "{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Liveness, readiness and the API description need none.
    for path in ["/api/v1/health", "/api/v1/ready", "/api/v1/openapi.json"] {
        let (status, _) = raw(&state, "GET", path, None, "").await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (_, body) = get(&state, "/api/v1/whoami").await;
    assert_eq!(body["identity"], "bob");
    assert_eq!(body["role"], "viewer");
}

#[tokio::test]
async fn the_openapi_document_names_every_route() {
    let (state, _dir) = state("off");
    let (status, text) = raw(&state, "GET", "/api/v1/openapi.json", None, "").await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/api/v1/sessions/{id}",
        "/api/v1/audit",
        "/api/v1/audit/{seq}",
        "/api/v1/audit/verify",
        "/api/v1/policy/explain",
        "/api/v1/approvals/{id}/approve",
        "/api/v1/grants",
        "/api/v1/overview",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not described");
    }
}

#[tokio::test]
async fn sessions_are_listed_while_open_with_their_last_statement() {
    let (state, _dir) = state("off");
    let (_, body) = get(&state, "/api/v1/sessions").await;
    assert_eq!(body["sessions"], json!([]));
    let identity = Arc::new(crate::Identity {
        name: "agent".into(),
        kind: vigil_config::IdentityKind::Agent,
        groups: vec!["ai-agents".into()],
        auth_method: crate::AuthMethodUsed::ScramSha256,
        client_addr: "127.0.0.1:40000".parse().unwrap(),
        tls: true,
        application_name: Some("psql".into()),
    });
    let held = state.sessions.register(42, identity, "prod");
    let analysis = state
        .analyzer
        .analyze("SELECT count(*) FROM users")
        .unwrap();
    held.session().ran(&analysis, false);
    let (status, body) = get(&state, "/api/v1/sessions").await;
    assert_eq!(status, StatusCode::OK);
    let session = &body["sessions"][0];
    assert_eq!(session["id"], 42);
    assert_eq!(session["identity"], "agent");
    assert_eq!(session["kind"], "agent");
    assert_eq!(session["database"], "prod");
    assert_eq!(session["application_name"], "psql");
    assert_eq!(session["statements"], 1);
    assert_eq!(session["state"], "idle");
    assert_eq!(session["current_statement"], "SELECT count(*) FROM users");
    // Audit off: the session page has the live session and no timeline.
    let (status, body) = get(&state, "/api/v1/sessions/42").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["session"]["id"], 42);
    assert_eq!(body["events"], json!([]));
    drop(held);
    let (_, body) = get(&state, "/api/v1/sessions").await;
    assert_eq!(body["sessions"], json!([]));
    let (status, _) = get(&state, "/api/v1/sessions/42").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&state, "/api/v1/sessions/x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn audit_search_pages_newest_first_with_the_clis_filters() {
    let (state, _dir) = state("strict");
    let mut events = Vec::new();
    for n in 1..=5 {
        let who = if n % 2 == 0 { "agent" } else { "bob" };
        let decision = if n == 4 {
            AuditDecision::Deny
        } else {
            AuditDecision::Allow
        };
        events.push(statement(7, n, who, &format!("SELECT {n}"), decision));
    }
    record(&state, events).await;
    let seqs = |body: &Value| -> Vec<u64> {
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };
    let (status, page) = get(&state, "/api/v1/audit?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(seqs(&page), vec![5, 4]);
    assert_eq!(page["next_before"], 4);
    let (_, page) = get(&state, "/api/v1/audit?limit=2&before=4").await;
    assert_eq!(seqs(&page), vec![3, 2]);
    let (_, page) = get(&state, "/api/v1/audit?limit=2&before=2").await;
    assert_eq!(seqs(&page), vec![1]);
    assert_eq!(page["next_before"], Value::Null);

    let (_, page) = get(&state, "/api/v1/audit?identity=agent").await;
    assert_eq!(seqs(&page), vec![4, 2]);
    let (_, page) = get(&state, "/api/v1/audit?decision=deny&kind=statement").await;
    assert_eq!(seqs(&page), vec![4]);
    assert_eq!(page["events"][0]["body"]["text"], "SELECT 4");
    assert!(page["events"][0]["hash"].is_string());
    let (_, page) = get(&state, "/api/v1/audit?table=users&fingerprint=fp3").await;
    assert_eq!(seqs(&page), vec![3]);
    let (_, page) = get(&state, "/api/v1/audit?since=2000-01-01&until=2000-01-02").await;
    assert_eq!(seqs(&page), Vec::<u64>::new());
    // Empty fields are no filter, as the console's form sends them.
    let (_, page) = get(&state, "/api/v1/audit?identity=&decision=&limit=1").await;
    assert_eq!(seqs(&page), vec![5]);

    for bad in [
        "/api/v1/audit?limit=0",
        "/api/v1/audit?limit=501",
        "/api/v1/audit?since=yesterday",
        "/api/v1/audit?session_id=x",
        "/api/v1/audit?colour=red",
    ] {
        let (status, body) = get(&state, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
}

#[tokio::test]
async fn a_statement_record_comes_with_its_completion_and_the_chain_verifies() {
    let (state, _dir) = state("strict");
    record(
        &state,
        vec![
            statement(3, 1, "bob", "SELECT 1", AuditDecision::Allow),
            statement(9, 1, "agent", "SELECT 2", AuditDecision::Allow),
            completed(9, 1, 2),
            completed(3, 1, 1),
        ],
    )
    .await;
    let (status, body) = get(&state, "/api/v1/audit/1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["event"]["body"]["text"], "SELECT 1");
    assert_eq!(body["completion"]["seq"], 4);
    assert_eq!(body["completion"]["body"]["rows"], 1);
    let (_, body) = get(&state, "/api/v1/audit/3").await;
    assert_eq!(body["completion"], Value::Null);
    let (status, _) = get(&state, "/api/v1/audit/99").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = get(&state, "/api/v1/sessions/9").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["session"], Value::Null);
    let timeline = body["events"].as_array().unwrap();
    assert_eq!(timeline.len(), 1, "{body}");
    assert_eq!(timeline[0]["body"]["text"], "SELECT 2");
    assert_eq!(timeline[0]["completion"]["rows"], 2);

    let (status, body) = get(&state, "/api/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(body["records"], 4);
    assert_eq!(body["first_bad_seq"], Value::Null);
}

#[tokio::test]
async fn audit_reads_say_so_when_audit_is_off() {
    let (state, _dir) = state("off");
    for path in ["/api/v1/audit", "/api/v1/audit/1", "/api/v1/audit/verify"] {
        let (status, body) = get(&state, path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(
            body["error"].as_str().unwrap().contains("audit is off"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn the_policy_lists_rules_with_their_conditions_and_explains_sql() {
    let (state, _dir) = state("off");
    let (status, body) = get(&state, "/api/v1/policy").await;
    assert_eq!(status, StatusCode::OK);
    let rules = body["rules"].as_array().unwrap();
    let ours = rules
        .iter()
        .find(|r| r["id"] == "agents-read-only")
        .expect("the configured rule");
    assert_eq!(ours["action"], "deny");
    assert_eq!(ours["when"]["groups"], "ai-agents");
    assert_eq!(ours["when"]["classes"], "write");
    assert!(rules.iter().any(|r| r["id"] == "guardrail.drop"), "{body}");
    assert_eq!(body["databases"][0]["labels"]["environment"], "production");
    let identity = &body["identities"][1];
    assert_eq!(
        (identity["name"].as_str(), identity["kind"].as_str()),
        (Some("agent"), Some("agent"))
    );
    assert!(!body.to_string().contains("SCRAM-SHA-256"), "no verifiers");

    let ask = |sql: &str, who: &str| {
        json!({ "sql": sql, "identity": who, "database": "prod" }).to_string()
    };
    let (status, body) = send(
        &state,
        "POST",
        "/api/v1/policy/explain",
        &ask("DELETE FROM users WHERE id = 1", "agent"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["rule"], "agents-read-only");
    let text = body["explain"].as_str().unwrap();
    assert!(
        text.starts_with("identity agent on database prod\n"),
        "{text}"
    );
    assert!(text.contains("class:       write"), "{text}");
    let (_, body) = send(
        &state,
        "POST",
        "/api/v1/policy/explain",
        &ask("SELECT 1", "bob"),
    )
    .await;
    assert_eq!(body["decision"], "allow");
    let (_, body) = send(
        &state,
        "POST",
        "/api/v1/policy/explain",
        &ask("SELEC 1", "bob"),
    )
    .await;
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["rule"], "vigil.unreadable");
    let (status, _) = send(
        &state,
        "POST",
        "/api/v1/policy/explain",
        &ask("SELECT 1", "mallory"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send(&state, "POST", "/api/v1/policy/explain", r#"{"sql":"x"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn overview_and_metrics_count_what_the_gate_tallied() {
    let (state, _dir) = state("off");
    let counted = |identity: &'static str, action| crate::metrics::Counted {
        database: "prod",
        identity,
        class: "write",
        action,
        fingerprint: "abc",
        text: "DELETE FROM users WHERE id = $1",
    };
    state
        .metrics
        .statement(&counted("agent", vigil_policy::Action::Deny));
    state
        .metrics
        .statement(&counted("agent", vigil_policy::Action::Deny));
    state
        .metrics
        .statement(&counted("bob", vigil_policy::Action::Allow));
    let (status, body) = get(&state, "/api/v1/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["statements_total"], 3);
    assert_eq!(body["by_decision"]["deny"], 2);
    assert_eq!(body["rate"].as_array().unwrap().len(), 60);
    let last = &body["rate"][59];
    assert!(
        last["deny"].as_u64().unwrap() + body["rate"][58]["deny"].as_u64().unwrap() >= 2,
        "{body}"
    );
    assert_eq!(body["top_identities"][0]["identity"], "agent");
    assert_eq!(
        body["top_fingerprints"][0]["text"],
        "DELETE FROM users WHERE id = $1"
    );
    assert_eq!(body["audit"]["mode"], "off");

    let (status, text) = raw(&state, "GET", "/metrics", Some(VIEWER), "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(
            "vigil_statements_total{database=\"prod\",class=\"write\",decision=\"deny\"} 2"
        ),
        "{text}"
    );
    for name in [
        "vigil_added_latency_seconds_bucket",
        "vigil_upstream_latency_seconds_count",
        "vigil_audit_commit_seconds_sum",
        "vigil_masked_values_total 0",
        "vigil_auth_failures_total 0",
        "vigil_upstream_connection_errors_total 0",
        "vigil_sessions 0",
        "vigil_approvals_pending 0",
        "vigil_audit_queue_depth",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
}
