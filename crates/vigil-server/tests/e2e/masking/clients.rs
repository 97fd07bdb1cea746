//! Masking as psycopg sees it (checked by `python/psycopg_masking.py`), and
//! what masked statements leave in the audit trail.

use std::time::Duration;

use serde_json::Value;

use super::*;

/// Generous: the script takes a second or two; only a hang gets near this.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn psycopg_text_binary_cursors_copy_and_prepared_are_masked() {
    let shop = Shop::create("mask_psycopg", "");
    let proxy = shop.proxy("");
    let run = run_python(
        "psycopg_masking.py",
        &proxy.conninfo("agent"),
        AGENT_PASSWORD,
        SCRIPT_DEADLINE,
    );
    let report = run.report();
    shop.assert_hidden("psycopg", &report);
    let status = run.status.unwrap_or_else(|| {
        panic!("psycopg script still running after {SCRIPT_DEADLINE:?}\n{report}")
    });
    assert!(
        status.success(),
        "psycopg script failed ({status})\n{report}"
    );
    let stdout = &run.stdout;
    assert_eq!(
        stdout.lines().last(),
        Some("psycopg masking ok"),
        "{report}"
    );
}

/// The `statement.completed` record of the statement whose text is `text`.
fn completion<'a>(records: &'a [Value], text: &str) -> &'a Value {
    let statement = records
        .iter()
        .find(|r| r["kind"] == "statement" && r["body"]["text"] == text)
        .unwrap_or_else(|| panic!("no statement event for {text:?}"));
    let body = &statement["body"];
    records
        .iter()
        .find(|r| {
            r["kind"] == "statement.completed"
                && r["body"]["session_id"] == body["session_id"]
                && r["body"]["statement_seq"] == body["statement_seq"]
        })
        .unwrap_or_else(|| panic!("{text:?} never completed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_counts_masked_values_and_never_holds_them() {
    let shop = Shop::create("mask_audit", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let alice = proxy.connect("alice", ALICE_PASSWORD).await;
    let masked = "SELECT ssn, email FROM shop.customers WHERE id = 1";
    let many = "SELECT ssn AS s FROM shop.customers WHERE id <= 3";
    let clear = "SELECT id, full_name FROM shop.customers WHERE id = 1";
    let by_alice = "SELECT ssn, card_number FROM shop.customers WHERE id = 1";
    binary(&agent, masked).await.unwrap();
    simple(&agent, many).await.unwrap();
    binary(&agent, clear).await.unwrap();
    binary(&alice, by_alice).await.unwrap();
    // Statements refused or failed with a masked value in them.
    let _ = simple(&agent, "SELECT id FROM shop.customers WHERE ssn LIKE '1%'").await;
    let _ = simple(
        &agent,
        "SELECT card_number::int FROM shop.customers WHERE id = 1",
    )
    .await;
    drop((agent, alice));
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.audit_sync();

    let path = proxy.audit_store();
    let records = audit_records(&path);
    let counts = &completion(&records, masked)["body"]["masked_values"];
    assert!(counts["ssn"].as_u64() >= Some(1), "{counts}");
    assert!(counts["email"].as_u64() >= Some(1), "{counts}");
    let counts = &completion(&records, many)["body"]["masked_values"];
    assert!(
        counts
            .as_object()
            .is_some_and(|c| c.values().any(|n| n.as_u64() >= Some(3))),
        "{counts}"
    );
    for unmasked in [clear, by_alice] {
        let counts = &completion(&records, unmasked)["body"]["masked_values"];
        assert!(
            counts.is_null() || counts.as_object().is_some_and(|c| c.is_empty()),
            "{unmasked}: {counts}"
        );
    }
    // Values never reach the store, masked or clear, whoever read them.
    // The write-ahead log too, where the latest events may still be.
    let stored: String = ["", "-wal", "-journal"]
        .iter()
        .filter_map(|suffix| std::fs::read(format!("{}{suffix}", path.display())).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect();
    for value in [SSN, "grace.lovelace1@", "4000000000079196", "*******0002"] {
        assert!(!stored.contains(value), "the audit store holds {value:?}");
    }
}
