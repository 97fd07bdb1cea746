//! A small HTTP/1.1 JSON client for Vigil's admin API: one connection per request,
//! Bearer or Basic credentials, a deadline on every request, and errors that say
//! what to check (the address, `server.admin_listen`, the server's own message).

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// How long one request may take, from connecting to the last byte of the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read; the API's lists are far smaller.
const MAX_RESPONSE: usize = 16 << 20;
/// Most of an error body quoted when it is not the API's `{"error": …}`.
const MAX_QUOTED: usize = 200;

/// What went wrong talking to the admin API.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    BadUrl(String),
    #[error(
        "cannot connect to the admin API at {url}: {cause}; is Vigil running with \
         server.admin_listen = \"{authority}\"?"
    )]
    Unreachable {
        url: String,
        authority: String,
        cause: std::io::Error,
    },
    #[error("the admin API at {url} did not answer within {}s", after.as_secs_f32())]
    Timeout { url: String, after: Duration },
    #[error("talking to the admin API at {url}: {cause}")]
    Http { url: String, cause: String },
    /// A non-2xx answer: the server's `error` text, or what it sent instead.
    #[error("{message} ({status})")]
    Status { status: StatusCode, message: String },
    #[error("the admin API at {url} answered {status} with something that is not JSON")]
    NotJson { url: String, status: StatusCode },
}

/// The credentials sent with each request.
pub enum Auth {
    /// An `[[admin.tokens]]` token.
    Bearer(String),
    /// An identity's own Vigil password (accepted for grant requests).
    Basic { identity: String, password: String },
}

impl Auth {
    fn header(&self) -> String {
        match self {
            Auth::Bearer(token) => format!("Bearer {token}"),
            Auth::Basic { identity, password } => {
                format!("Basic {}", B64.encode(format!("{identity}:{password}")))
            }
        }
    }
}

/// Credentials stay out of debug output.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::Bearer(_) => "Auth::Bearer(…)",
            Auth::Basic { .. } => "Auth::Basic(…)",
        })
    }
}

/// Where the admin API is: `http://host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// As the user gave it, without a trailing slash: for messages.
    shown: String,
    /// `host:port`, as `TcpStream::connect` takes it.
    connect: String,
    /// The Host header: the authority as given.
    host: String,
    /// A path prefix without a trailing slash (usually empty).
    prefix: String,
}

impl BaseUrl {
    pub fn parse(url: &str) -> Result<BaseUrl, AdminError> {
        let shown = url.trim().trim_end_matches('/');
        let bad = |why: &str| AdminError::BadUrl(format!("admin URL {shown:?}: {why}"));
        let rest = match shown.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(bad(
                    "https is not supported; the admin API speaks plain http",
                ))
            }
            Some(_) => return Err(bad("expected http://host:port")),
            None => return Err(bad("expected http://host:port")),
        };
        let (authority, prefix) = match rest.find(['/', '?', '#']) {
            Some(i) if rest[i..].starts_with('/') && !rest[i..].contains(['?', '#']) => {
                (&rest[..i], &rest[i..])
            }
            Some(_) => return Err(bad("no query or fragment, please")),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("expected http://host:port"));
        }
        // `[::1]` and `host` have no port; `[::1]:9187` and `host:9187` do.
        let has_port = match authority.rfind(':') {
            Some(i) => !authority[i..].contains(']'),
            None => false,
        };
        let connect = if has_port {
            let port = &authority[authority.rfind(':').unwrap_or(0) + 1..];
            if port.parse::<u16>().is_err() {
                return Err(bad("the port is not a number"));
            }
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(BaseUrl {
            shown: shown.to_owned(),
            connect,
            host: authority.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// A client for one admin API address with one set of credentials.
#[derive(Debug)]
pub struct AdminClient {
    base: BaseUrl,
    auth: Auth,
    timeout: Duration,
}

impl AdminClient {
    pub fn new(base: BaseUrl, auth: Auth) -> AdminClient {
        AdminClient {
            base,
            auth,
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// A different deadline per request (tests use a short one).
    #[cfg(test)]
    pub fn with_timeout(mut self, timeout: Duration) -> AdminClient {
        self.timeout = timeout;
        self
    }

    /// `GET path` (path and query, e.g. `/api/v1/approvals?state=all`).
    pub async fn get(&self, path: &str) -> Result<(StatusCode, Value), AdminError> {
        self.request(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(StatusCode, Value), AdminError> {
        self.request(Method::POST, path, Some(body)).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), AdminError> {
        let exchange = self.exchange(method, path, body);
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| AdminError::Timeout {
                url: self.base.to_string(),
                after: self.timeout,
            })??;
        if !status.is_success() {
            return Err(AdminError::Status {
                status,
                message: error_text(status, &bytes),
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok((status, Value::Null));
        }
        let value = serde_json::from_slice(&bytes).map_err(|_| AdminError::NotJson {
            url: self.base.to_string(),
            status,
        })?;
        Ok((status, value))
    }

    /// One request on a fresh connection: the status and the whole body.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Bytes), AdminError> {
        let url = || self.base.to_string();
        let http = |cause: String| AdminError::Http { url: url(), cause };
        let stream = TcpStream::connect(&self.base.connect)
            .await
            .map_err(|cause| AdminError::Unreachable {
                url: url(),
                authority: self.base.connect.clone(),
                cause,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http(e.to_string()))?;
        // Drives the connection; it ends when the answer is read and the sender dropped.
        let driver = tokio::spawn(connection);

        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base.prefix))
            .header(HOST, &self.base.host)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .header(AUTHORIZATION, self.auth.header());
        let payload = match body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|e| http(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http(e.to_string()))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| http(e.to_string()))?
            .to_bytes();
        drop(sender);
        driver.abort();
        Ok((status, bytes))
    }
}

/// The server's `{"error": …}` text, else the start of whatever it sent, else the status.
fn error_text(status: StatusCode, body: &[u8]) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        if let Some(Value::String(error)) = map.get("error") {
            return error.clone();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!(
            "the admin API refused the request: {}",
            status.canonical_reason().unwrap_or("no reason given")
        );
    }
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Percent-encodes one path segment or query value (RFC 3986 unreserved kept).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn parses_base_urls() {
        let url = BaseUrl::parse("http://127.0.0.1:9187/").unwrap();
        assert_eq!(url.connect, "127.0.0.1:9187");
        assert_eq!(url.host, "127.0.0.1:9187");
        assert_eq!(url.prefix, "");
        assert_eq!(url.to_string(), "http://127.0.0.1:9187");

        let url = BaseUrl::parse("HTTP://admin.example/vigil").unwrap();
        assert_eq!(url.connect, "admin.example:80");
        assert_eq!(url.host, "admin.example");
        assert_eq!(url.prefix, "/vigil");

        let url = BaseUrl::parse("http://[::1]:9187").unwrap();
        assert_eq!(url.connect, "[::1]:9187");
        assert_eq!(BaseUrl::parse("http://[::1]").unwrap().connect, "[::1]:80");

        for bad in [
            "127.0.0.1:9187",
            "https://127.0.0.1:9187",
            "http://",
            "http://host:port",
            "http://u:p@host:1",
            "http://host:1/?x",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
        let err = BaseUrl::parse("https://h:1").unwrap_err().to_string();
        assert!(err.contains("https is not supported"), "{err}");
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode("7f3a9c2e41d0"), "7f3a9c2e41d0");
        assert_eq!(encode("a/b?c d"), "a%2Fb%3Fc%20d");
    }

    #[test]
    fn error_text_prefers_the_servers_message() {
        let forbidden = StatusCode::FORBIDDEN;
        assert_eq!(
            error_text(
                forbidden,
                br#"{"error": "nobody approves their own request"}"#
            ),
            "nobody approves their own request"
        );
        assert_eq!(error_text(forbidden, b"  plain text\n"), "plain text");
        assert_eq!(
            error_text(forbidden, b""),
            "the admin API refused the request: Forbidden"
        );
        let long = "x".repeat(500);
        assert_eq!(
            error_text(forbidden, long.as_bytes()).chars().count(),
            MAX_QUOTED + 1
        );
    }

    #[test]
    fn auth_headers_and_debug_hide_secrets() {
        let basic = Auth::Basic {
            identity: "alice".into(),
            password: "s3cret".into(),
        };
        assert_eq!(basic.header(), "Basic YWxpY2U6czNjcmV0");
        assert_eq!(format!("{basic:?}"), "Auth::Basic(…)");
        let bearer = Auth::Bearer("vgl_x".into());
        assert_eq!(bearer.header(), "Bearer vgl_x");
        assert!(!format!("{bearer:?}").contains("vgl_x"));
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(socket);
        });
        let client = AdminClient::new(BaseUrl::parse(&url).unwrap(), Auth::Bearer("t".into()))
            .with_timeout(Duration::from_millis(200));
        let err = client.get("/api/v1/health").await.unwrap_err();
        assert!(matches!(err, AdminError::Timeout { .. }), "{err}");
        assert!(
            err.to_string().contains("did not answer within 0.2s"),
            "{err}"
        );
        held.abort();
    }

    #[tokio::test]
    async fn reads_json_and_turns_errors_into_messages() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let answers = [
                ("200 OK", r#"{"status":"ok"}"#),
                (
                    "409 Conflict",
                    "{\"error\": \"the request is not pending\"}\r\n",
                ),
                ("200 OK", "hello"),
            ]
            .map(|(status, body)| {
                format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
            });
            let mut seen = Vec::new();
            for answer in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = vec![0; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = socket.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                }
                seen.push(String::from_utf8(got).unwrap());
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
            seen
        });
        let client = AdminClient::new(BaseUrl::parse(&url).unwrap(), Auth::Bearer("vgl_t".into()));
        let (status, value) = client.get("/api/v1/health").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(value["status"], "ok");
        let err = client.get("/api/v1/approvals/x").await.unwrap_err();
        assert_eq!(err.to_string(), "the request is not pending (409 Conflict)");
        let err = client.get("/api/v1/grants").await.unwrap_err();
        assert!(matches!(err, AdminError::NotJson { .. }), "{err}");
        let seen = server.await.unwrap();
        assert!(
            seen[0].starts_with("GET /api/v1/health HTTP/1.1\r\n"),
            "{}",
            seen[0]
        );
        assert!(
            seen[0].contains("authorization: Bearer vgl_t\r\n"),
            "{}",
            seen[0]
        );
    }

    #[tokio::test]
    async fn a_closed_port_names_the_url_and_admin_listen() {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let client = AdminClient::new(BaseUrl::parse(&url).unwrap(), Auth::Bearer("t".into()));
        let err = client.get("/api/v1/health").await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("cannot connect to the admin API at {url}: ")),
            "{err}"
        );
        assert!(
            err.ends_with(&format!("server.admin_listen = \"127.0.0.1:{port}\"?")),
            "{err}"
        );
    }
}
