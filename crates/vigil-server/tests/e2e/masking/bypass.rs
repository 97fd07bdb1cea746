//! Red-team attacks on masking: ways agent got clear masked values back
//! that the other attack tests do not cover. Each test names its attack.
//! Side channels that keep a value in server state for a later statement to
//! read (notifications, settings, large objects, advisory locks), built-ins
//! that dump tables, masks lent from a failed statement to a cursor or a
//! prepared statement of the same name, and oracles (errors, row counts).

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;

use super::*;

/// Customer 1's values, plus its SSN spelled with letters (`0`→`a` … `9`→`j`)
/// so that no content detector can recognise it on the way out.
const PAYLOAD: &str = "ssn || ' ' || phone || ' ' || birth_date::text || ' ' \
                       || translate(ssn, '0123456789', 'abcdefghij')";

/// Letters `a`–`j` back to digits: what a spelled-out SSN decodes to.
fn decode(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='j' => char::from(b'0' + (c as u8 - b'a')),
            c => c,
        })
        .collect()
}

impl Shop {
    /// `seen` holds no clear value, as it is or with letters read as digits.
    #[track_caller]
    fn assert_hidden_spelled(&self, what: &str, seen: &str) {
        self.assert_hidden(what, seen);
        self.assert_hidden(&format!("{what} (decoded)"), &decode(seen));
    }
}

/// Messages of one type among those a raw client received, as text.
fn bodies(messages: &[(u8, Vec<u8>)], tag: u8) -> String {
    messages
        .iter()
        .filter(|(t, _)| *t == tag)
        .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Everything a raw client received, as text.
fn everything(messages: &[(u8, Vec<u8>)]) -> String {
    messages
        .iter()
        .map(|(t, body)| format!("{}:{}", *t as char, String::from_utf8_lossy(body)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `pg_notify(channel, ssn)` to a channel the session LISTENs on: the
/// NotificationResponse carries the payload as it was computed, in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_notify_cannot_carry_masked_values_to_a_listener() {
    let shop = Shop::create("mask_bypass_notify", "");
    let proxy = shop.proxy("");
    let notify = format!("SELECT pg_notify('leak', {PAYLOAD}) FROM shop.customers WHERE id = 1");
    let s = psql(&proxy, "agent", &["LISTEN leak", &notify]);
    shop.assert_hidden_spelled("psql LISTEN + pg_notify", &s.shown);

    let mut raw = RawClient::login(proxy.port, "agent", AGENT_PASSWORD);
    raw.query("LISTEN leak");
    let messages = raw.query(&notify);
    let refused = messages
        .iter()
        .any(|(t, b)| *t == b'E' && sqlstate(b) == "42501");
    let payloads = bodies(&messages, b'A');
    shop.assert_hidden_spelled("NotificationResponse", &payloads);
    assert!(
        refused || !payloads.is_empty(),
        "neither refused nor notified: {}",
        everything(&messages)
    );
}

/// A session that sees clear values notifies one to a channel agent
/// listens on: the payload reaches agent through the content detectors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_from_a_clear_session_are_scanned() {
    let shop = Shop::create("mask_notify_scan", "");
    let proxy = shop.proxy("");
    let mut agent = RawClient::login(proxy.port, "agent", AGENT_PASSWORD);
    agent.query("LISTEN news");
    let mut alice = RawClient::login(proxy.port, "alice", ALICE_PASSWORD);
    alice.query(
        "SELECT pg_notify('news', 'customer ' || ssn || ' wrote from ' || email) \
         FROM shop.customers WHERE id = 1",
    );
    let messages = agent.query("SELECT 1");
    let payloads = bodies(&messages, b'A');
    assert!(payloads.contains("customer "), "{}", everything(&messages));
    shop.assert_hidden("NotificationResponse", &payloads);
    assert!(payloads.contains("****@example.com"), "{payloads}");
}

/// `set_config('x.y', ssn, false)` is masked, but the setting keeps the
/// clear value: `current_setting` and `SHOW` read it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_config_cannot_keep_masked_values_for_current_setting() {
    let shop = Shop::create("mask_bypass_setting", "");
    let proxy = shop.proxy("");
    let set =
        format!("SELECT set_config('leak.v', {PAYLOAD}, false) FROM shop.customers WHERE id = 1");
    let s = psql(
        &proxy,
        "agent",
        &[&set, "SELECT current_setting('leak.v')", "SHOW leak.v"],
    );
    shop.assert_hidden_spelled("psql set_config + current_setting", &s.shown);

    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    if let Err(f) = simple(&agent, &set).await {
        assert_eq!(f.code, "42501", "{f:?}");
        return;
    }
    for via in [Via::Binary, Via::Simple] {
        for read in ["SELECT current_setting('leak.v', true)", "SHOW leak.v"] {
            let s = run(&proxy, &agent, "agent", via, read).await;
            shop.assert_hidden_spelled(&format!("{read} via {via:?}"), &s.shown);
        }
    }
}

/// `lo_from_bytea(oid, ssn::bytea)` returns a masked OID, but the large
/// object of the OID agent chose holds the clear bytes for `lo_get`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_cannot_keep_masked_values_for_lo_get() {
    let shop = Shop::create("mask_bypass_lo", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let store = format!(
        "SELECT lo_from_bytea(4242421, convert_to({PAYLOAD}, 'UTF8')) FROM shop.customers WHERE id = 1"
    );
    if let Err(f) = simple(&agent, &store).await {
        assert_eq!(f.code, "42501", "{f:?}");
        return;
    }
    for read in [
        "SELECT convert_from(lo_get(4242421), 'UTF8')",
        "SELECT encode(lo_get(4242421), 'escape')",
        "SELECT lo_get(4242421)",
    ] {
        for s in every_client(&proxy, &agent, "agent", read).await {
            shop.assert_hidden_spelled(&format!("{read} via {:?}", s.via), &s.shown);
        }
    }
}

/// `pg_advisory_lock(digits of ssn)`: the lock's key, in pg_locks, is the SSN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisory_lock_keys_cannot_show_masked_values_in_pg_locks() {
    let shop = Shop::create("mask_bypass_lock", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let lock =
        "SELECT pg_advisory_lock(replace(ssn, '-', '')::bigint) FROM shop.customers WHERE id = 1";
    if let Err(f) = simple(&agent, lock).await {
        assert_eq!(f.code, "42501", "{f:?}");
        return;
    }
    let read =
        "SELECT objid::text FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()";
    for via in [Via::Binary, Via::Simple] {
        let s = run(&proxy, &agent, "agent", via, read).await;
        assert!(
            !s.shown.contains("101020002"),
            "{read} via {via:?}: customer 1's SSN as a lock key: {}",
            s.shown
        );
    }
}

/// The `*_to_xml` built-ins that take a table or schema (not a query) run
/// a `SELECT *` of their own: every column of every row, in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_and_schema_to_xml_cannot_dump_masked_columns() {
    let shop = Shop::create("mask_bypass_xml", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    for sql in [
        "SELECT substr(table_to_xml('shop.customers', true, false, '')::text, 1, 2000)",
        "SELECT substr(table_to_xml_and_xmlschema('shop.customers'::regclass, true, false, '')::text, 1, 6000)",
        "SELECT substr(schema_to_xml('shop', true, false, '')::text, 1, 6000)",
        "SELECT substr(database_to_xml(true, false, '')::text, 1, 6000)",
    ] {
        agent_sees(&shop, &proxy, &agent, sql).await;
    }
}

/// A DECLARE that fails (the cursor exists) still replaces what Vigil
/// remembers of the cursor: FETCH then reads the first cursor's rows as if
/// they came from the second's harmless query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_redeclare_cannot_lend_its_masks_to_the_open_cursor() {
    let shop = Shop::create("mask_bypass_cursor", "");
    let proxy = shop.proxy("");
    let declare =
        format!("DECLARE c CURSOR WITH HOLD FOR SELECT {PAYLOAD} FROM shop.customers WHERE id = 1");
    let s = psql(
        &proxy,
        "agent",
        &[
            &declare,
            "DECLARE c CURSOR WITH HOLD FOR SELECT 'x'",
            "FETCH ALL FROM c",
            "CLOSE c",
        ],
    );
    shop.assert_hidden_spelled("psql cursor redeclared", &s.shown);

    // The same in a transaction, the failed DECLARE's error rolled back to
    // a savepoint; fetched in text and in binary.
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let inner = format!(
        "DECLARE c2 CURSOR FOR SELECT upper(phone), {PAYLOAD} FROM shop.customers WHERE id = 1"
    );
    simple(&agent, "BEGIN").await.unwrap();
    if let Err(f) = simple(&agent, &inner).await {
        assert_eq!(f.code, "42501", "{f:?}");
        return;
    }
    simple(&agent, "SAVEPOINT s").await.unwrap();
    let _ = simple(&agent, "DECLARE c2 CURSOR FOR SELECT 'x', 'y'").await;
    simple(&agent, "ROLLBACK TO SAVEPOINT s").await.unwrap();
    let fetched = binary(&agent, "FETCH 1 FROM c2").await;
    shop.assert_hidden_spelled(
        "binary FETCH of a redeclared cursor",
        &format!("{fetched:?}"),
    );
    simple(&agent, "MOVE BACKWARD ALL IN c2").await.ok();
    let fetched = simple(&agent, "FETCH 1 FROM c2").await;
    shop.assert_hidden_spelled(
        "simple FETCH of a redeclared cursor",
        &format!("{fetched:?}"),
    );
    simple(&agent, "ROLLBACK").await.unwrap();
}

/// Parse of a statement name that already exists fails in the server, but
/// Vigil has already taken the new text's masks for that name: a portal
/// bound to the old statement is then described and executed in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reparse_cannot_lend_its_masks_to_the_prepared_statement() {
    let shop = Shop::create("mask_bypass_reparse", "");
    let proxy = shop.proxy("");
    let mut raw = RawClient::login(proxy.port, "agent", AGENT_PASSWORD);
    let mut out = BytesMut::new();
    let secret = format!("SELECT upper(ssn), {PAYLOAD} FROM shop.customers WHERE id = 1");
    frontend::parse("s1", &secret, None, &mut out).unwrap();
    frontend::sync(&mut out);
    raw.send(&out).unwrap();
    let first = raw.read_until_ready();
    if first
        .iter()
        .any(|(t, b)| *t == b'E' && sqlstate(b) == "42501")
    {
        return;
    }
    out.clear();
    // Fails: prepared statement "s1" already exists.
    frontend::parse("s1", "SELECT 'x', 'y'", None, &mut out).unwrap();
    frontend::sync(&mut out);
    raw.send(&out).unwrap();
    let second = raw.read_until_ready();
    out.clear();
    for (portal, result_format) in [("", 0i16), ("p", 1)] {
        frontend::bind(
            portal,
            "s1",
            None,
            std::iter::empty::<()>(),
            |_, _| Ok(IsNull::No),
            Some(result_format),
            &mut out,
        )
        .map_err(|_| "bind")
        .unwrap();
        frontend::describe(b'P', portal, &mut out).unwrap();
        frontend::execute(portal, 0, &mut out).unwrap();
    }
    frontend::sync(&mut out);
    raw.send(&out).unwrap();
    let third = raw.read_until_ready();
    let seen = format!(
        "{}\n{}\n{}",
        everything(&first),
        everything(&second),
        everything(&third)
    );
    shop.assert_hidden_spelled("Execute of a statement whose re-Parse failed", &seen);
}

/// `PREPARE q AS SELECT <expression of masked columns>` then `EXECUTE q`:
/// the EXECUTE's columns have no table source and Vigil does not know what
/// `q` is, so they pass in clear (only content detectors look at them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_execute_of_a_prepared_expression_is_masked() {
    let shop = Shop::create("mask_bypass_execute", "");
    let proxy = shop.proxy("");
    let prepare =
        format!("PREPARE q AS SELECT upper(phone), {PAYLOAD} FROM shop.customers WHERE id = 1");
    let s = psql(&proxy, "agent", &[&prepare, "EXECUTE q"]);
    shop.assert_hidden_spelled("psql PREPARE + EXECUTE", &s.shown);

    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    if let Err(f) = simple(&agent, &prepare).await {
        assert_eq!(f.code, "42501", "{f:?}");
        return;
    }
    for via in [Via::Binary, Via::Simple] {
        let s = run(&proxy, &agent, "agent", via, "EXECUTE q").await;
        shop.assert_hidden_spelled(&format!("EXECUTE q via {via:?}"), &s.shown);
    }
}

/// Cast errors quote the value that failed: content detectors are the only
/// scrub, and they miss phones, dates, and an SSN glued to a letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cast_errors_cannot_quote_masked_values() {
    let shop = Shop::create("mask_bypass_casts", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    for sql in [
        // invalid input syntax for type integer: "x101-02-0002"
        "SELECT ('x' || ssn)::int FROM shop.customers WHERE id = 1",
        // invalid input syntax for type integer: "+1-555-100-0037"
        "SELECT phone::int FROM shop.customers WHERE id = 1",
        // invalid input syntax for type integer: "1950-01-18"
        "SELECT birth_date::text::int FROM shop.customers WHERE id = 1",
        // invalid input syntax for type integer: "bab-ac-aaac"
        "SELECT translate(ssn, '0123456789', 'abcdefghij')::int FROM shop.customers WHERE id = 1",
    ] {
        for via in EVERY_CLIENT {
            let s = run(&proxy, &agent, "agent", via, sql).await;
            shop.assert_hidden_spelled(&format!("{sql} via {via:?}"), &s.shown);
        }
    }
}

/// `1 / (ssn = guess)::int` fails with division by zero exactly when the
/// guess is wrong: one bit per statement, enough to test guesses digit by
/// digit. A right and a wrong guess must look alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn division_by_zero_cannot_tell_a_right_guess_from_a_wrong_one() {
    let shop = Shop::create("mask_bypass_div0", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let guess = |g: &str| {
        format!("SELECT 1 / (substr(ssn, 1, 3) = '{g}')::int FROM shop.customers WHERE id = 1")
    };
    let outcome = |s: &Seen| match &s.result {
        Ok(rows) => format!("{} rows", rows.len()),
        Err(f) => f.code.clone(),
    };
    for via in EVERY_CLIENT {
        let right = run(&proxy, &agent, "agent", via, &guess("101")).await;
        let wrong = run(&proxy, &agent, "agent", via, &guess("999")).await;
        assert_eq!(
            outcome(&right),
            outcome(&wrong),
            "via {via:?}: a right guess answers {:?}, a wrong one {:?}",
            right.result,
            wrong.result
        );
    }
}

/// A set-returning function sized by a masked value: the number of rows
/// (or their count, which carries no masked source) is the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_counts_cannot_be_sized_by_masked_values() {
    let shop = Shop::create("mask_bypass_rows", "");
    let proxy = shop.proxy("");
    let agent = proxy.connect("agent", AGENT_PASSWORD).await;
    let mut told = Vec::new();
    for (sql, truth) in [
        (
            "SELECT count(*)::text FROM (SELECT generate_series(1, substr(ssn, 1, 3)::int) FROM shop.customers WHERE id = 1) s",
            "101",
        ),
        (
            "SELECT count(*)::text FROM (SELECT generate_series(1, substr(ssn, 8)::int) FROM shop.customers WHERE id = 1) s",
            "2",
        ),
    ] {
        for s in agent_sees(&shop, &proxy, &agent, sql).await {
            if let Ok(rows) = &s.result {
                if rows.first().and_then(|r| r[0].as_deref()) == Some(truth) {
                    told.push(format!("{sql} via {:?} = {truth}", s.via));
                }
            }
        }
    }
    let sql = "SELECT generate_series(1, substr(ssn, 1, 3)::int) FROM shop.customers WHERE id = 1";
    for s in agent_sees(&shop, &proxy, &agent, sql).await {
        if let Ok(rows) = &s.result {
            if rows.len() == 101 {
                told.push(format!("{sql} via {:?}: 101 rows", s.via));
            }
        }
    }
    assert!(told.is_empty(), "told:\n{}", told.join("\n"));
}
