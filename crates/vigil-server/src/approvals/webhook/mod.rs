//! The outgoing webhooks of `[[approvals.webhooks]]`: tells other systems
//! (chat, paging, ticketing) that an approval request was made or decided.
//!
//! Webhooks are told, never asked. The [`Notifier`] has no way to report
//! anything back: it returns nothing from [`Notifier::send`], reads no
//! response body, and only looks at the status to decide whether to retry.
//! So whatever a webhook answers, or fails to answer, no request is ever
//! approved, denied or otherwise changed by it; a failing webhook never
//! approves anything. Decisions come only from the admin API.
//!
//! Delivery is best effort: each notification gets `attempts` tries with
//! exponential backoff, then is logged and dropped. Each hook has its own
//! bounded queue and its own task, so one hook's notifications arrive in order
//! and a slow hook delays only itself. The tasks run on a thread of their own,
//! so senders never wait on the network.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use vigil_config::{Webhook, WebhookFormat};

/// Notifications waiting per hook; more are dropped (and logged) rather than
/// letting an unreachable hook grow memory without bound.
const QUEUE_PER_HOOK: usize = 10_000;

/// Wait before the second attempt; doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

const EVENT_HEADER: HeaderName = HeaderName::from_static("x-vigil-event");

fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("vigil/", env!("CARGO_PKG_VERSION")))
}

/// Sends approval events to the configured webhooks. Cheap to clone; the
/// delivery thread ends once every clone is dropped and the queues are done.
#[derive(Clone, Default)]
pub(crate) struct Notifier {
    hooks: Arc<[HookQueue]>,
}

/// The sending side of one hook.
struct HookQueue {
    /// Position in `[[approvals.webhooks]]`, for logs.
    index: usize,
    /// `host[:port]` only, for logs: the path of a webhook URL is often its
    /// secret (Slack's are), so the full URL is never logged.
    host: Arc<str>,
    format: WebhookFormat,
    queue: mpsc::Sender<Notification>,
    progress: Arc<Progress>,
}

/// One notification, ready to be posted as often as needed.
struct Notification {
    event: Box<str>,
    event_header: HeaderValue,
    body: Bytes,
}

impl Notifier {
    /// Starts delivering to `hooks` on a thread of its own (a current-thread
    /// tokio runtime on a std thread named "vigil-webhooks"), so it works
    /// whether or not the caller is inside a runtime. With no hooks, sends are
    /// no-ops and no thread is started.
    ///
    /// A hook whose URL cannot be used is logged here and skipped.
    pub(crate) fn start(hooks: &[Webhook]) -> Notifier {
        Notifier::start_with_capacity(hooks, QUEUE_PER_HOOK)
    }

    fn start_with_capacity(hooks: &[Webhook], capacity: usize) -> Notifier {
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        for (index, hook) in hooks.iter().enumerate() {
            let target = match Target::parse(&hook.url) {
                Ok(target) => target,
                Err(error) => {
                    warn!(webhook = index, %error, "webhook skipped: its url cannot be used");
                    continue;
                }
            };
            let host: Arc<str> = target.authority.clone().into();
            let (queue, incoming) = mpsc::channel(capacity.max(1));
            let progress = Arc::new(Progress::default());
            queues.push(HookQueue {
                index,
                host: host.clone(),
                format: hook.format,
                queue,
                progress: progress.clone(),
            });
            workers.push(Worker {
                index,
                host,
                target,
                attempts: hook.attempts.max(1),
                timeout: Duration::from_millis(hook.timeout_ms),
                incoming,
                progress,
            });
        }
        if !workers.is_empty() {
            let spawned = std::thread::Builder::new()
                .name("vigil-webhooks".into())
                .spawn(move || run(workers));
            // The workers (and their receivers) went down with the failed
            // spawn, so every send reports the queue closed.
            if let Err(error) = spawned {
                warn!(%error, "webhook thread not started: notifications will be dropped");
            }
        }
        Notifier {
            hooks: queues.into(),
        }
    }

    /// Queues one notification for every hook; never blocks, never fails.
    /// `event` is e.g. "approval.requested", "approval.granted",
    /// "approval.denied", "approval.expired", "approval.withdrawn"; `request`
    /// is the request as the admin API shows it (JSON object); `summary` is
    /// one human line (used as Slack's text).
    pub(crate) fn send(&self, event: &str, request: &Value, summary: &str) {
        if self.hooks.is_empty() {
            return;
        }
        let Ok(event_header) = HeaderValue::from_str(event) else {
            warn!(
                event,
                "webhook notification dropped: the event is not a valid header value"
            );
            return;
        };
        let mut json_body = None;
        let mut slack_body = None;
        for hook in self.hooks.iter() {
            let body = match hook.format {
                WebhookFormat::Json => json_body.get_or_insert_with(|| {
                    body(&json!({"event": event, "request": request, "text": summary}))
                }),
                WebhookFormat::Slack => {
                    slack_body.get_or_insert_with(|| body(&json!({"text": summary})))
                }
            };
            let notification = Notification {
                event: event.into(),
                event_header: event_header.clone(),
                body: body.clone(),
            };
            // Counted under the lock so that `flush` never sees a
            // notification settled before it was counted as queued.
            let mut counts = hook.progress.lock();
            match hook.queue.try_send(notification) {
                Ok(()) => counts.queued += 1,
                Err(mpsc::error::TrySendError::Full(_)) => warn!(
                    webhook = hook.index,
                    host = %hook.host,
                    event,
                    capacity = hook.queue.max_capacity(),
                    "webhook notification dropped: the queue is full"
                ),
                Err(mpsc::error::TrySendError::Closed(_)) => warn!(
                    webhook = hook.index,
                    host = %hook.host,
                    event,
                    "webhook notification dropped: the webhook thread is not running"
                ),
            }
        }
    }

    /// For tests and shutdown: waits (up to `deadline`) until everything
    /// queued so far was delivered or given up on. Returns true if the queue
    /// drained.
    ///
    /// Blocks the calling thread: from async code, call it in
    /// `spawn_blocking`.
    pub(crate) fn flush(&self, deadline: Duration) -> bool {
        let until = Instant::now().checked_add(deadline);
        let targets: Vec<u64> = self
            .hooks
            .iter()
            .map(|hook| hook.progress.lock().queued)
            .collect();
        self.hooks
            .iter()
            .zip(targets)
            .all(|(hook, target)| hook.progress.wait_settled(target, until))
    }
}

fn body(value: &Value) -> Bytes {
    // Serializing a `Value` cannot fail: its keys are strings.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// How far one hook's queue has got. A hook delivers in order, so once
/// `settled` reaches a count `queued` had, all of those are done.
#[derive(Default)]
struct Progress {
    counts: Mutex<Counts>,
    changed: Condvar,
}

#[derive(Default)]
struct Counts {
    queued: u64,
    /// Delivered or given up on.
    settled: u64,
}

impl Progress {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn settle_one(&self) {
        self.lock().settled += 1;
        self.changed.notify_all();
    }

    /// Waits until `target` notifications are settled; `None` waits forever.
    fn wait_settled(&self, target: u64, until: Option<Instant>) -> bool {
        let mut counts = self.lock();
        while counts.settled < target {
            counts = match until {
                None => self
                    .changed
                    .wait(counts)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(until) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.changed
                        .wait_timeout(counts, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        true
    }
}

/// The body of the "vigil-webhooks" thread: one task per hook.
fn run(workers: Vec<Worker>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            warn!(%error, "webhook runtime not started: notifications will be dropped");
            return;
        }
    };
    runtime.block_on(async {
        let tasks: Vec<_> = workers
            .into_iter()
            .map(|worker| tokio::spawn(worker.deliver_all()))
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });
}

/// The delivering side of one hook.
struct Worker {
    index: usize,
    host: Arc<str>,
    target: Target,
    attempts: u32,
    timeout: Duration,
    incoming: mpsc::Receiver<Notification>,
    progress: Arc<Progress>,
}

impl Worker {
    /// Delivers until every `Notifier` is dropped and the queue is empty.
    async fn deliver_all(mut self) {
        while let Some(notification) = self.incoming.recv().await {
            self.deliver(&notification).await;
            self.progress.settle_one();
        }
    }

    async fn deliver(&self, notification: &Notification) {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=self.attempts {
            let outcome = tokio::time::timeout(self.timeout, self.post(notification))
                .await
                .unwrap_or(Err(AttemptError::Timeout(self.timeout)));
            let error = match outcome {
                Ok(()) => return,
                Err(error) => error,
            };
            if attempt == self.attempts {
                warn!(
                    webhook = self.index,
                    host = %self.host,
                    event = %notification.event,
                    attempts = self.attempts,
                    %error,
                    "webhook notification dropped: every attempt failed"
                );
                return;
            }
            debug!(
                webhook = self.index,
                host = %self.host,
                event = %notification.event,
                attempt,
                retry_in_ms = backoff.as_millis() as u64,
                %error,
                "webhook attempt failed"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One attempt, on a connection of its own.
    async fn post(&self, notification: &Notification) -> Result<(), AttemptError> {
        let stream = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map_err(AttemptError::Connect)?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;

        let mut request = Request::new(Full::new(notification.body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.target.path.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.target.host_header.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, user_agent());
        headers.insert(EVENT_HEADER, notification.event_header.clone());

        // The connection is driven here rather than spawned, so a timed-out
        // attempt leaves nothing running behind it.
        let mut response = std::pin::pin!(sender.send_request(request));
        let mut connection = connection;
        let response = tokio::select! {
            biased;
            response = &mut response => response?,
            // It may have delivered the response as it closed.
            _ = &mut connection => response.await?,
        };
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(AttemptError::Status(status)),
        }
    }
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Why a webhook URL cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum UrlError {
    #[error("only http:// URLs are supported")]
    NotHttp,
    #[error("no host")]
    NoHost,
    #[error("credentials in the URL are not supported")]
    Credentials,
    #[error("the port is not a number from 1 to 65535")]
    BadPort,
    #[error("the host is not a name or an IP address")]
    BadHost,
    #[error("the path is not a valid request target")]
    BadPath,
}

/// Where one hook's notifications go, parsed once from its URL.
#[derive(Debug)]
struct Target {
    /// As written in the URL (`host`, `host:port`, `[::1]:port`): the Host
    /// header, and what logs show.
    authority: String,
    /// To connect to: a name or an IP address, without brackets.
    host: String,
    port: u16,
    host_header: HeaderValue,
    /// Path and query (origin form).
    path: Uri,
}

impl Target {
    /// Parses `http://host[:port][/path][?query]`; the port defaults to 80
    /// and the path to `/`. A `#fragment` is never sent, so it is dropped.
    fn parse(url: &str) -> Result<Target, UrlError> {
        let scheme = url.get(..7).ok_or(UrlError::NotHttp)?;
        if !scheme.eq_ignore_ascii_case("http://") {
            return Err(UrlError::NotHttp);
        }
        let rest = &url[7..];
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        let (host, port) = match authority.strip_prefix('[') {
            // An IPv6 literal: `[::1]` or `[::1]:port`.
            Some(bracketed) => {
                let (host, after) = bracketed.split_once(']').ok_or(UrlError::NoHost)?;
                match after {
                    "" => (host, None),
                    after => (
                        host,
                        Some(after.strip_prefix(':').ok_or(UrlError::BadPort)?),
                    ),
                }
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        let host_chars_ok = if authority.starts_with('[') {
            host.bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        } else {
            host.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        };
        if !host_chars_ok {
            return Err(UrlError::BadHost);
        }
        let port = match port {
            None => 80,
            // `u16::from_str` would also take a sign.
            Some(port) if !port.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(UrlError::BadPort);
            }
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(UrlError::BadPort),
            },
        };
        let host_header = HeaderValue::from_str(authority).map_err(|_| UrlError::BadHost)?;
        let path = match path {
            "" => "/".to_owned(),
            path if path.starts_with('?') => format!("/{path}"),
            path => path.to_owned(),
        };
        let path = path.parse::<Uri>().map_err(|_| UrlError::BadPath)?;
        if path.scheme().is_some() || path.path_and_query().is_none() {
            return Err(UrlError::BadPath);
        }
        Ok(Target {
            authority: authority.to_owned(),
            host: host.to_owned(),
            port,
            host_header,
            path,
        })
    }
}

#[cfg(test)]
mod tests;
