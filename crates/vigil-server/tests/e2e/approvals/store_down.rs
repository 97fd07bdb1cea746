//! A statement that needs approval while the audit store cannot be written:
//! refused for that reason, with its request withdrawn; nothing runs.

use super::*;

#[test]
fn a_statement_held_while_the_store_is_down_is_refused_for_that_reason() {
    let db = table_db("appr_store_down");
    let extra = format!(
        "{}\n[audit]\nbusy_timeout_ms = 200\nretry_interval_ms = 100\n",
        review_rule("hold")
    );
    let proxy = approvals_proxy(&db, &extra);
    let rt = runtime();
    let client = rt.block_on(proxy.connect("agent", AGENT_PASSWORD));

    // Another process holds the store's write lock.
    let blocker = rusqlite::Connection::open(proxy.audit_store()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let error = rt
        .block_on(client.batch_execute(PSQL_UPDATE))
        .expect_err("refused while the store is down");
    let db_error = db_error(&error);
    assert_eq!(db_error.code().code(), "58030", "{db_error:?}");
    assert!(
        db_error
            .message()
            .contains("audit event could not be recorded"),
        "{db_error:?}"
    );
    let request = wait_for_request(&proxy, "all", PSQL_UPDATE, &[]);
    assert_eq!(request["state"], "withdrawn", "{request:#}");
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    assert_eq!(row(&db, 1), "before:0");
}
