//! What the console and Prometheus read, against a real proxy and the real
//! PostgreSQL: `/metrics` counters move as statements run, the live session
//! list shows a connected client and its last statement, and the audit
//! endpoints find the statements it ran.

use serde_json::Value;

use crate::harness::*;

fn proxy(db: &TestDb) -> Proxy {
    let extra = format!(
        r#"
[[rules]]
id = "agents-read-only"
when = {{ groups = ["ai-agents"], classes = ["write"] }}
action = "deny"
message = "Agents only read here."

{}
"#,
        viewer_token_toml()
    );
    Proxy::start(&config_toml(&db.name, "", &extra))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_sessions_and_audit_follow_what_clients_run() {
    let db = TestDb::create("console");
    db.direct_sql("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1), (2);");
    let proxy = proxy(&db);
    let before = scrape(&proxy);
    let reads = r#"vigil_statements_total{database="demo",class="read",decision="allow"}"#;
    let denied = r#"vigil_statements_total{database="demo",class="write",decision="deny"}"#;
    assert_eq!(value(&before, reads), 0.0);

    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    for _ in 0..3 {
        let rows = alice
            .query("SELECT id FROM items ORDER BY id", &[])
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
    }
    alice
        .simple_query("SELECT count(*) FROM items")
        .await
        .unwrap();
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let refused = agent.simple_query("DELETE FROM items").await.unwrap_err();
    assert_eq!(refused.code().map(|c| c.code()), Some("42501"));
    let wrong = tokio_postgres::connect(
        &format!("{} password=wrong", proxy.conninfo("alice")),
        tokio_postgres::NoTls,
    )
    .await;
    assert!(wrong.is_err());
    proxy.audit_sync();

    let after = scrape(&proxy);
    assert_eq!(value(&after, reads), 4.0, "{after}");
    assert_eq!(value(&after, denied), 1.0, "{after}");
    assert_eq!(value(&after, "vigil_sessions"), 2.0);
    assert!(value(&after, "vigil_auth_failures_total") >= 1.0);
    assert!(
        value(&after, "vigil_upstream_latency_seconds_count") >= 4.0,
        "{after}"
    );
    assert!(
        value(&after, "vigil_added_latency_seconds_count") >= 5.0,
        "{after}"
    );
    // Strict audit: every statement waited for its commit.
    assert!(
        value(&after, "vigil_audit_commit_seconds_count") >= 5.0,
        "{after}"
    );
    assert!(value(&after, "vigil_audit_events_total") > value(&before, "vigil_audit_events_total"));
    assert_eq!(value(&after, "vigil_audit_healthy"), 1.0);

    // The live sessions, with what each ran last.
    let sessions = get(&proxy, "/api/v1/sessions");
    let list = sessions["sessions"].as_array().unwrap();
    let of = |who: &str| {
        list.iter()
            .find(|s| s["identity"] == who)
            .unwrap_or_else(|| panic!("{who} not listed: {sessions}"))
    };
    assert_eq!(
        of("alice")["current_statement"],
        "SELECT count(*) FROM items"
    );
    assert_eq!(of("alice")["statements"], 4);
    assert_eq!(of("alice")["state"], "idle");
    assert_eq!(of("agent")["current_statement"], "DELETE FROM items");
    assert_eq!(of("agent")["refused"], 1);

    // The agent's refusal, found by the audit search and opened.
    let found = get(&proxy, "/api/v1/audit?identity=agent&decision=deny");
    let event = &found["events"][0];
    assert_eq!(event["body"]["text"], "DELETE FROM items");
    assert_eq!(event["body"]["rule_ids"][0], "agents-read-only");
    let seq = event["seq"].as_u64().unwrap();
    let shown = get(&proxy, &format!("/api/v1/audit/{seq}"));
    assert_eq!(shown["event"]["hash"], event["hash"]);

    // Alice's timeline: her statements with their completions' rows.
    let id = of("alice")["id"].as_u64().unwrap();
    let timeline = get(&proxy, &format!("/api/v1/sessions/{id}"));
    let statements: Vec<&Value> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "statement")
        .collect();
    assert_eq!(statements.len(), 4, "{timeline}");
    assert_eq!(statements[0]["completion"]["rows"], 2, "{timeline}");
    assert_eq!(get(&proxy, "/api/v1/audit/verify")["ok"], true);

    drop(alice);
    drop(agent);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while value(&scrape(&proxy), "vigil_sessions") != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "sessions never closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        get(&proxy, "/api/v1/sessions")["sessions"],
        Value::Array(Vec::new())
    );
}
