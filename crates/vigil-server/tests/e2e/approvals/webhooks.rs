//! Webhooks through a live proxy: a real HTTP receiver hears each request
//! made and decided, and a receiver that fails never decides anything.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use super::*;

/// One POST a receiver got: its `X-Vigil-Event` header and JSON body.
struct Delivery {
    event: String,
    body: Value,
}

/// An HTTP receiver on a thread of its own, answering every POST with
/// `status`; what it gets arrives on the channel.
fn receiver(status: u16) -> (String, mpsc::Receiver<Delivery>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/vigil", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            let mut event = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(value) = lower.strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-vigil-event:") {
                    event = line["x-vigil-event:".len()..].trim().to_owned();
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let reply =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(reply.as_bytes());
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if tx.send(Delivery { event, body }).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

fn webhook(url: &str, format: &str) -> String {
    format!(
        "[[approvals.webhooks]]\nurl = \"{url}\"\nformat = \"{format}\"\nattempts = 3\ntimeout_ms = 2000\n"
    )
}

/// The next delivery of `event`, skipping others.
fn next_of(deliveries: &mpsc::Receiver<Delivery>, event: &str) -> Delivery {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let delivery = deliveries
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {event} webhook within {WAIT:?}"));
        if delivery.event == event {
            return delivery;
        }
    }
}

#[test]
fn webhooks_hear_a_request_made_and_decided_in_both_formats() {
    let db = table_db("appr_hooks");
    let (json_url, json_hook) = receiver(200);
    let (slack_url, slack_hook) = receiver(204);
    let extra = format!(
        "{}\n[approvals]\n{}{}",
        review_rule("hold"),
        webhook(&json_url, "json"),
        webhook(&slack_url, "slack")
    );
    let proxy = approvals_proxy(&db, &extra);
    let psql = spawn_psql(&proxy, PSQL_UPDATE, true);
    let pending = wait_for_pending(&proxy, PSQL_UPDATE);
    let id = id_of(&pending);

    let made = next_of(&json_hook, "approval.requested");
    assert_eq!(made.body["event"], "approval.requested");
    assert_eq!(made.body["request"]["id"], id.as_str());
    assert_eq!(made.body["request"]["sql"], PSQL_UPDATE);
    assert_eq!(made.body["request"]["state"], "pending");
    let text = made.body["text"].as_str().unwrap_or_default();
    assert!(text.contains(&id) && text.contains("agent"), "{text}");

    let slack = next_of(&slack_hook, "approval.requested");
    let keys: Vec<&String> = slack.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["text"], "Slack gets only text: {}", slack.body);
    assert!(slack.body["text"].as_str().unwrap().contains(&id));

    let (status, _) = approve(&proxy, BOB_TOKEN, &id, Some("hooked"));
    assert_eq!(status, 200);
    let decided = next_of(&json_hook, "approval.granted");
    assert_eq!(decided.body["request"]["id"], id.as_str());
    assert_eq!(decided.body["request"]["approvals"][0]["by"], "bob");
    next_of(&slack_hook, "approval.granted");
    assert!(wait_child(psql).status.success());
    assert_eq!(row(&db, 1), "approved:0");
}

#[test]
fn a_failing_webhook_never_decides_a_request() {
    let db = table_db("appr_hook_fail");
    let (url, hook) = receiver(500);
    let extra = format!(
        "{}\n[approvals]\n{}",
        review_rule("hold"),
        webhook(&url, "json")
    );
    let proxy = approvals_proxy(&db, &extra);
    let mut psql = spawn_psql(&proxy, PSQL_UPDATE, false);
    let id = id_of(&wait_for_pending(&proxy, PSQL_UPDATE));
    // Three attempts, every one refused: the request is still pending and
    // the statement still held.
    for _ in 0..3 {
        next_of(&hook, "approval.requested");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(request(&proxy, &id)["state"], "pending");
    assert!(psql.try_wait().unwrap().is_none(), "psql is still held");
    assert_eq!(row(&db, 1), "before:0");
    let (status, _) = deny(&proxy, BOB_TOKEN, &id, Some("cleaning up"));
    assert_eq!(status, 200);
    assert!(!wait_child(psql).status.success());
    assert_eq!(row(&db, 1), "before:0");
}
