//! The notifier against real HTTP receivers on loopback.

use std::collections::VecDeque;

use axum::extract::State;
use axum::http::{HeaderMap, Method as AxumMethod, Uri as AxumUri};
use axum::Router;
use tokio::runtime::Runtime;

use super::*;

const FLUSH: Duration = Duration::from_secs(5);

/// What a [`Receiver`] answers to one request, in turn; 200 once the
/// script has run out.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    /// Never answers.
    Hang,
}

#[derive(Clone, Debug)]
struct Hit {
    method: AxumMethod,
    target: String,
    headers: HeaderMap,
    body: Value,
    /// `None` when the receiver hung.
    status: Option<u16>,
}

#[derive(Default)]
struct Log {
    script: Mutex<VecDeque<Answer>>,
    hits: Mutex<Vec<Hit>>,
    changed: Condvar,
}

/// A webhook endpoint on 127.0.0.1, served by axum on a runtime of its
/// own, so tests need none and a blocking `flush` stalls nothing.
struct Receiver {
    port: u16,
    log: Arc<Log>,
    runtime: Option<Runtime>,
}

impl Receiver {
    fn start(script: &[Answer]) -> Receiver {
        let log = Arc::new(Log::default());
        log.script.lock().unwrap().extend(script);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let app = Router::new().fallback(answer).with_state(log.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            port,
            log,
            runtime: Some(runtime),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> Vec<Hit> {
        self.log.hits.lock().unwrap().clone()
    }

    /// Waits (up to `deadline`) for at least `count` requests.
    fn wait_for(&self, count: usize, deadline: Duration) -> bool {
        let hits = self.log.hits.lock().unwrap();
        let (hits, _) = self
            .log
            .changed
            .wait_timeout_while(hits, deadline, |hits| hits.len() < count)
            .unwrap();
        hits.len() >= count
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Also fine inside a runtime, unlike dropping a runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn answer(
    State(log): State<Arc<Log>>,
    method: AxumMethod,
    uri: AxumUri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let answer = log
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Status(200));
    let status = match answer {
        Answer::Status(status) => Some(status),
        Answer::Hang => None,
    };
    log.hits.lock().unwrap().push(Hit {
        method,
        target: uri.to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status,
    });
    log.changed.notify_all();
    match status {
        Some(status) => StatusCode::from_u16(status).unwrap(),
        None => std::future::pending().await,
    }
}

fn hook(url: String, format: WebhookFormat, attempts: u32, timeout_ms: u64) -> Webhook {
    Webhook {
        url,
        format,
        attempts,
        timeout_ms,
    }
}

fn request(id: &str) -> Value {
    json!({
        "id": id,
        "kind": "statement",
        "state": "pending",
        "sql": "UPDATE shop.orders SET status = $1 WHERE id = $2",
        "parameters": ["shipped", null],
        "approvers": {"identities": [], "groups": ["dba"], "count": 1},
    })
}

fn header<'a>(hit: &'a Hit, name: &str) -> &'a str {
    hit.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[test]
fn json_payload_and_headers_arrive() {
    let receiver = Receiver::start(&[]);
    let url = receiver.url("/hooks/vigil?team=dba");
    let notifier = Notifier::start(&[hook(url, WebhookFormat::Json, 3, 2_000)]);
    let request = request("7f3a9c2e41d0");
    notifier.send(
        "approval.requested",
        &request,
        "agent asks to UPDATE shop.orders",
    );
    assert!(notifier.flush(FLUSH));

    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.method, AxumMethod::POST);
    assert_eq!(hit.target, "/hooks/vigil?team=dba");
    assert_eq!(
        hit.body,
        json!({
            "event": "approval.requested",
            "request": request,
            "text": "agent asks to UPDATE shop.orders",
        })
    );
    assert_eq!(header(hit, "content-type"), "application/json");
    assert_eq!(
        header(hit, "user-agent"),
        format!("vigil/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(header(hit, "x-vigil-event"), "approval.requested");
    assert_eq!(header(hit, "host"), format!("127.0.0.1:{}", receiver.port));
}

#[test]
fn slack_format_sends_only_text() {
    let receiver = Receiver::start(&[]);
    let notifier = Notifier::start(&[hook(receiver.url(""), WebhookFormat::Slack, 3, 2_000)]);
    notifier.send(
        "approval.denied",
        &request("a1"),
        "bob denied a1: not today",
    );
    assert!(notifier.flush(FLUSH));

    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].target, "/");
    assert_eq!(hits[0].body, json!({"text": "bob denied a1: not today"}));
    assert_eq!(header(&hits[0], "x-vigil-event"), "approval.denied");
}

#[test]
fn both_formats_from_one_send() {
    let json_receiver = Receiver::start(&[]);
    let slack_receiver = Receiver::start(&[]);
    let notifier = Notifier::start(&[
        hook(json_receiver.url("/j"), WebhookFormat::Json, 1, 2_000),
        hook(slack_receiver.url("/s"), WebhookFormat::Slack, 1, 2_000),
    ]);
    notifier.send("approval.granted", &request("b2"), "b2 granted");
    assert!(notifier.flush(FLUSH));
    assert_eq!(json_receiver.hits()[0].body["event"], "approval.granted");
    assert_eq!(slack_receiver.hits()[0].body, json!({"text": "b2 granted"}));
}

#[test]
fn failed_answers_are_retried_until_delivered_once() {
    let receiver = Receiver::start(&[Answer::Status(500), Answer::Status(500)]);
    let notifier = Notifier::start(&[hook(receiver.url("/"), WebhookFormat::Json, 5, 2_000)]);
    notifier.send("approval.requested", &request("c3"), "c3");
    assert!(notifier.flush(FLUSH));

    let hits = receiver.hits();
    let statuses: Vec<_> = hits.iter().map(|hit| hit.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
    assert!(hits.iter().all(|hit| hit.body["request"]["id"] == "c3"));
}

#[test]
fn gives_up_after_attempts_and_moves_on() {
    let always_failing = [Answer::Status(503); 3];
    let receiver = Receiver::start(&always_failing);
    let notifier = Notifier::start(&[hook(receiver.url("/"), WebhookFormat::Json, 3, 2_000)]);
    notifier.send("approval.requested", &request("d4"), "d4");
    notifier.send("approval.expired", &request("d5"), "d5");
    assert!(notifier.flush(FLUSH));

    let hits: Vec<_> = receiver
        .hits()
        .iter()
        .map(|hit| (hit.body["request"]["id"].clone(), hit.status))
        .collect();
    assert_eq!(
        hits,
        [
            (json!("d4"), Some(503)),
            (json!("d4"), Some(503)),
            (json!("d4"), Some(503)),
            (json!("d5"), Some(200)),
        ]
    );
}

#[test]
fn a_receiver_that_is_down_is_given_up_on() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/vigil");
    let notifier = Notifier::start(&[hook(url, WebhookFormat::Json, 3, 1_000)]);
    let started = Instant::now();
    notifier.send("approval.requested", &request("e5"), "e5");
    assert!(notifier.flush(FLUSH));
    // Three refused connections, with 200 ms and 400 ms between them.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(600), "took {took:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn a_receiver_that_never_answers_times_out_and_is_retried() {
    let receiver = Receiver::start(&[Answer::Hang]);
    let notifier = Notifier::start(&[hook(receiver.url("/"), WebhookFormat::Json, 3, 150)]);
    let started = Instant::now();
    notifier.send("approval.requested", &request("f6"), "f6");
    assert!(
        !notifier.flush(Duration::ZERO),
        "nothing can be delivered yet"
    );
    assert!(notifier.flush(FLUSH));

    let statuses: Vec<_> = receiver.hits().iter().map(|hit| hit.status).collect();
    assert_eq!(statuses, [None, Some(200)]);
    // The timeout, then the first backoff.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(350), "took {took:?}");
}

#[test]
fn order_is_kept_for_one_hook() {
    // The first one fails once, so everything after it waits for its retry.
    let receiver = Receiver::start(&[Answer::Status(500)]);
    let notifier = Notifier::start(&[hook(receiver.url("/"), WebhookFormat::Json, 3, 2_000)]);
    for seq in 0..20 {
        notifier.send("approval.requested", &json!({"seq": seq}), "next");
    }
    assert!(notifier.flush(FLUSH));

    let delivered: Vec<_> = receiver
        .hits()
        .iter()
        .filter(|hit| hit.status == Some(200))
        .map(|hit| hit.body["request"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(delivered, (0..20).collect::<Vec<_>>());
}

#[test]
fn a_stuck_hook_does_not_delay_another() {
    let stuck = Receiver::start(&[Answer::Hang]);
    let healthy = Receiver::start(&[]);
    let notifier = Notifier::start(&[
        hook(stuck.url("/"), WebhookFormat::Json, 1, 1_500),
        hook(healthy.url("/"), WebhookFormat::Json, 1, 1_500),
    ]);
    notifier.send("approval.requested", &request("g7"), "g7");
    assert!(healthy.wait_for(1, Duration::from_millis(1_000)));
    assert!(stuck.wait_for(1, Duration::from_millis(1_000)));
    assert!(notifier.flush(FLUSH));
    assert_eq!(stuck.hits().len(), 1);
    assert_eq!(healthy.hits().len(), 1);
}

#[test]
fn a_full_queue_drops_instead_of_blocking() {
    let receiver = Receiver::start(&[Answer::Hang, Answer::Hang, Answer::Hang]);
    let hooks = [hook(receiver.url("/"), WebhookFormat::Json, 1, 300)];
    let notifier = Notifier::start_with_capacity(&hooks, 2);
    let started = Instant::now();
    for seq in 0..50 {
        notifier.send("approval.requested", &json!({"seq": seq}), "next");
    }
    assert!(started.elapsed() < Duration::from_millis(250));
    assert!(notifier.flush(FLUSH));
    // At most one taken off the queue by the worker and two waiting.
    let hits = receiver.hits().len();
    assert!((2..=3).contains(&hits), "{hits} delivered");
}

#[test]
fn no_hooks_start_nothing() {
    let notifier = Notifier::start(&[]);
    assert!(notifier.hooks.is_empty());
    notifier.send("approval.requested", &request("h8"), "h8");
    assert!(notifier.flush(Duration::ZERO));
    let default = Notifier::default();
    default.send("approval.requested", &Value::Null, "");
    assert!(default.flush(Duration::ZERO));
}

#[test]
fn bad_urls_and_events_are_skipped_without_panicking() {
    let receiver = Receiver::start(&[]);
    let notifier = Notifier::start(&[
        hook("https://example.com/".into(), WebhookFormat::Json, 1, 100),
        hook("http://:80/".into(), WebhookFormat::Json, 1, 100),
        hook(receiver.url("/ok"), WebhookFormat::Json, 1, 2_000),
    ]);
    assert_eq!(notifier.hooks.len(), 1);
    notifier.send("approval.requested\r\nX-Evil: 1", &request("i9"), "i9");
    notifier.send(
        "approval.requested",
        &Value::Null,
        "line\nbreak \u{0} \u{1F600}",
    );
    assert!(notifier.flush(FLUSH));
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].body["text"], "line\nbreak \u{0} \u{1F600}");
    assert_eq!(hits[0].body["request"], Value::Null);
    // A huge deadline must not overflow.
    assert!(notifier.flush(Duration::MAX));
}

#[tokio::test]
async fn works_from_inside_a_runtime() {
    let receiver = Receiver::start(&[]);
    let notifier = Notifier::start(&[hook(receiver.url("/"), WebhookFormat::Json, 1, 2_000)]);
    notifier.send("approval.withdrawn", &request("j10"), "j10");
    let flushing = notifier.clone();
    let drained = tokio::task::spawn_blocking(move || flushing.flush(FLUSH))
        .await
        .unwrap();
    assert!(drained);
    assert_eq!(receiver.hits()[0].body["event"], "approval.withdrawn");
    drop(notifier);
}

#[test]
fn urls_parse() {
    let target = Target::parse("http://hooks.internal/vigil?team=dba#frag").unwrap();
    assert_eq!(
        (target.host.as_str(), target.port, target.authority.as_str()),
        ("hooks.internal", 80, "hooks.internal")
    );
    assert_eq!(target.path, "/vigil?team=dba");

    let target = Target::parse("HTTP://127.0.0.1:9000").unwrap();
    assert_eq!((target.host.as_str(), target.port), ("127.0.0.1", 9000));
    assert_eq!(target.path, "/");
    assert_eq!(target.host_header, "127.0.0.1:9000");

    let target = Target::parse("http://[::1]:9000/x").unwrap();
    assert_eq!((target.host.as_str(), target.port), ("::1", 9000));
    assert_eq!(target.host_header, "[::1]:9000");
    assert_eq!(Target::parse("http://[::1]").unwrap().port, 80);
    assert_eq!(Target::parse("http://h?q=1").unwrap().path, "/?q=1");

    for (url, error) in [
        ("https://example.com/", UrlError::NotHttp),
        ("http:/", UrlError::NotHttp),
        ("", UrlError::NotHttp),
        ("ftp://é", UrlError::NotHttp),
        ("http://", UrlError::NoHost),
        ("http:///path", UrlError::NoHost),
        ("http://:9000/", UrlError::NoHost),
        ("http://[::1/", UrlError::NoHost),
        ("http://user:pw@host/", UrlError::Credentials),
        ("http://host:0/", UrlError::BadPort),
        ("http://host:+80/", UrlError::BadPort),
        ("http://host:70000/", UrlError::BadPort),
        ("http://host:/", UrlError::BadPort),
        ("http://[::1]x/", UrlError::BadPort),
        ("http://a:1:2/", UrlError::BadPort),
        ("http://ho st/", UrlError::BadHost),
        ("http://host/a b", UrlError::BadPath),
    ] {
        assert_eq!(Target::parse(url).err(), Some(error), "{url}");
    }
}
