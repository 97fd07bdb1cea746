//! Connections to the upstream PostgreSQL: TCP (and TLS), startup with the
//! database's service credentials, and the parameters the server reports.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use vigil_config::Database;
use vigil_wire::fields::ErrorFields;
use vigil_wire::tags::backend as b;
use vigil_wire::{FrameReader, Next};

use crate::stream::Stream;
use crate::tls::server_name;

/// Startup replies are small; anything bigger is not PostgreSQL.
const MAX_STARTUP_REPLY: usize = 64 * 1024;

/// A logged-in upstream connection, ready for queries.
pub(crate) struct Upstream {
    pub(crate) stream: Stream,
    /// Bytes the server sent after ReadyForQuery (none, normally).
    pub(crate) leftover: BytesMut,
    pub(crate) parameters: Vec<(String, String)>,
    pub(crate) pid: i32,
    pub(crate) secret: i32,
    pub(crate) status: u8,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("server refused: {code} {message}")]
    Refused { code: String, message: String },
    #[error("server asks for a password and none is configured")]
    NoPassword,
    /// Nothing was sent in answer: the request is refused before the
    /// password is used at all.
    #[error(
        "server asked for \"{requested}\" authentication, which this database's \
         auth_methods {allowed:?} does not allow"
    )]
    AuthMethodRefused {
        requested: &'static str,
        allowed: Vec<String>,
    },
    #[error("server skipped SCRAM's final proof, so it may not know the password")]
    ScramUnverified,
    #[error("unsupported authentication request {0}")]
    UnsupportedAuth(i32),
    #[error("protocol: {0}")]
    Protocol(String),
}

impl UpstreamError {
    /// Refusals a client can act on itself (too many connections, server
    /// starting or shutting down) are passed on as the server worded them.
    pub(crate) fn relay(&self) -> Option<(String, String)> {
        match self {
            // 22xxx and 42704: a startup setting the client chose itself was
            // invalid (a bad TimeZone, an unknown parameter); it must see why.
            UpstreamError::Refused { code, message }
                if code.starts_with("53")
                    || code.starts_with("57P")
                    || code.starts_with("22")
                    || code == "42704" =>
            {
                Some((code.clone(), message.clone()))
            }
            _ => None,
        }
    }
}

fn protocol(what: impl Into<String>) -> UpstreamError {
    UpstreamError::Protocol(what.into())
}

/// Opens a TCP connection, negotiating TLS when `tls` is given.
pub(crate) async fn open(
    addr: &str,
    tls: Option<&(TlsConnector, String)>,
    timeout_ms: u64,
) -> io::Result<Stream> {
    let tcp = tokio::time::timeout(Duration::from_millis(timeout_ms), TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    tcp.set_nodelay(true)?;
    let Some((connector, name)) = tls else {
        return Ok(Stream::Tcp(tcp));
    };
    let mut tcp = tcp;
    let mut request = BytesMut::with_capacity(8);
    frontend::ssl_request(&mut request);
    tcp.write_all(&request).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    if answer[0] != b'S' {
        return Err(io::Error::other("upstream server does not accept TLS"));
    }
    let name = server_name(name)
        .ok_or_else(|| io::Error::other(format!("{name:?} is not a valid TLS server name")))?;
    let tls = connector.connect(name, tcp).await?;
    Ok(Stream::ClientTls(Box::new(tls)))
}

/// The TLS target for `db`: its connector and the name its certificate must carry.
pub(crate) fn tls_target(
    db: &Database,
    connector: Option<&TlsConnector>,
) -> Option<(TlsConnector, String)> {
    let connector = connector?.clone();
    let name = db.tls.server_name.clone().unwrap_or_else(|| {
        let host = db
            .upstream
            .rsplit_once(':')
            .map_or(db.upstream.as_str(), |(h, _)| h);
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned()
    });
    Some((connector, name))
}

/// Connects and logs in to `db` as its service user, sending `params` along.
pub(crate) async fn connect(
    db: &Database,
    tls: Option<&(TlsConnector, String)>,
    params: &[(&str, &str)],
) -> Result<Upstream, UpstreamError> {
    let limit = db.connect_timeout_ms;
    tokio::time::timeout(Duration::from_millis(limit), async {
        let stream = open(&db.upstream, tls, limit).await?;
        login(stream, db, params).await
    })
    .await
    .map_err(|_| UpstreamError::Timeout(limit))?
}

struct Handshake {
    stream: Stream,
    inbuf: BytesMut,
    out: BytesMut,
    frames: FrameReader,
}

impl Handshake {
    async fn send(&mut self) -> Result<(), UpstreamError> {
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        self.out.clear();
        Ok(())
    }

    async fn next(&mut self) -> Result<(u8, bytes::Bytes), UpstreamError> {
        loop {
            match self
                .frames
                .next(&self.inbuf)
                .map_err(|e| protocol(e.to_string()))?
            {
                Next::Frame { tag, len } => {
                    let mut frame = self.inbuf.split_to(len).freeze();
                    frame.advance(vigil_wire::frame::HEADER_LEN);
                    if tag == b::ERROR_RESPONSE {
                        let fields =
                            ErrorFields::parse(&frame).map_err(|e| protocol(e.to_string()))?;
                        return Err(UpstreamError::Refused {
                            code: fields.code().unwrap_or("XX000").to_owned(),
                            message: fields.message().unwrap_or("").to_owned(),
                        });
                    }
                    return Ok((tag, frame));
                }
                Next::Incomplete { .. } | Next::Chunk { .. } => {
                    if self.stream.read_buf(&mut self.inbuf).await? == 0 {
                        return Err(protocol("server closed the connection during startup"));
                    }
                }
            }
        }
    }
}

async fn login(
    stream: Stream,
    db: &Database,
    params: &[(&str, &str)],
) -> Result<Upstream, UpstreamError> {
    let mut hs = Handshake {
        stream,
        inbuf: BytesMut::with_capacity(4096),
        out: BytesMut::with_capacity(256),
        frames: FrameReader::new(MAX_STARTUP_REPLY),
    };
    let mut startup = vec![
        ("user", db.user.as_str()),
        ("database", db.database.as_str()),
    ];
    startup.extend(params.iter().copied());
    frontend::startup_message(startup, &mut hs.out)?;
    hs.send().await?;
    authenticate(&mut hs, db).await?;

    let mut parameters = Vec::new();
    let mut key = None;
    loop {
        let (tag, mut body) = hs.next().await?;
        match tag {
            b::PARAMETER_STATUS => {
                let mut parts = body.split(|&c| c == 0);
                let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
                    return Err(protocol("malformed ParameterStatus"));
                };
                parameters.push((
                    String::from_utf8_lossy(name).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                ));
            }
            b::BACKEND_KEY_DATA if body.len() == 8 => key = Some((body.get_i32(), body.get_i32())),
            b::NOTICE_RESPONSE | b::NEGOTIATE_PROTOCOL_VERSION => {}
            b::READY_FOR_QUERY if body.len() == 1 => {
                let (pid, secret) = key.ok_or_else(|| protocol("no BackendKeyData"))?;
                return Ok(Upstream {
                    stream: hs.stream,
                    leftover: hs.inbuf,
                    parameters,
                    pid,
                    secret,
                    status: body[0],
                });
            }
            other => {
                return Err(protocol(format!(
                    "unexpected message {:?} in startup",
                    char::from(other)
                )))
            }
        }
    }
}

/// How far a login's single authentication exchange has got.
enum Exchange {
    /// The server has asked for nothing yet.
    NotStarted,
    /// SCRAM is under way; the server has not yet proved it knows the password.
    Scram(Box<sasl::ScramSha256>),
    /// SCRAM's final message checked out: the server knows the password.
    ScramVerified,
    /// A cleartext or MD5-hashed password went out, by an allowed method.
    Password,
}

/// Answers the server's authentication requests with the service
/// credentials, but only by a method the database's `auth_methods` allows:
/// whoever listens at the upstream address chooses the method, and an
/// impostor would choose the one that hands it the password.
async fn authenticate(hs: &mut Handshake, db: &Database) -> Result<(), UpstreamError> {
    // Checked before anything is computed or sent for a request.
    let allow = |method: &'static str| {
        if db.auth_methods.iter().any(|m| m == method) {
            Ok(())
        } else {
            Err(UpstreamError::AuthMethodRefused {
                requested: method,
                allowed: db.auth_methods.clone(),
            })
        }
    };
    let password = || {
        db.password
            .as_ref()
            .map(|secret| secret.expose().as_bytes())
            .ok_or(UpstreamError::NoPassword)
    };
    let mut exchange = Exchange::NotStarted;
    loop {
        let (tag, mut body) = hs.next().await?;
        if tag != b::AUTHENTICATION || body.len() < 4 {
            return Err(protocol(format!(
                "expected authentication, got {:?}",
                char::from(tag)
            )));
        }
        let code = body.get_i32();
        exchange = match (code, exchange) {
            // Let in without any exchange: that is trust, whatever the server calls it.
            (0, Exchange::NotStarted) => {
                allow("trust")?;
                return Ok(());
            }
            // Without SASLFinal's server signature, nothing shows that the
            // server knew the password: an impostor would skip it.
            (0, Exchange::Scram(_)) => return Err(UpstreamError::ScramUnverified),
            (0, Exchange::ScramVerified | Exchange::Password) => return Ok(()),
            (3, Exchange::NotStarted) => {
                allow("password")?;
                frontend::password_message(password()?, &mut hs.out)?;
                hs.send().await?;
                Exchange::Password
            }
            (5, Exchange::NotStarted) => {
                allow("md5")?;
                let salt: [u8; 4] = body[..]
                    .try_into()
                    .map_err(|_| protocol("malformed MD5 password request"))?;
                let hash = md5_hash(db.user.as_bytes(), password()?, salt);
                frontend::password_message(hash.as_bytes(), &mut hs.out)?;
                hs.send().await?;
                Exchange::Password
            }
            (10, Exchange::NotStarted) => {
                allow("scram-sha-256")?;
                let offered = body.split(|&c| c == 0).any(|m| m == b"SCRAM-SHA-256");
                if !offered {
                    return Err(protocol("server offers no SCRAM-SHA-256"));
                }
                let client =
                    sasl::ScramSha256::new(password()?, sasl::ChannelBinding::unsupported());
                frontend::sasl_initial_response("SCRAM-SHA-256", client.message(), &mut hs.out)?;
                hs.send().await?;
                Exchange::Scram(Box::new(client))
            }
            (11, Exchange::Scram(mut client)) => {
                client.update(&body)?;
                frontend::sasl_response(client.message(), &mut hs.out)?;
                hs.send().await?;
                Exchange::Scram(client)
            }
            (12, Exchange::Scram(mut client)) => {
                // Proves the server knew the password too: no impostor upstream.
                client.finish(&body)?;
                Exchange::ScramVerified
            }
            // A real server asks once; a second request could only be a
            // switch to another method halfway through.
            (3 | 5 | 10, _) => {
                return Err(protocol("server asked for authentication a second time"))
            }
            (11, _) => return Err(protocol("SASLContinue outside a SCRAM exchange")),
            (12, _) => return Err(protocol("SASLFinal outside a SCRAM exchange")),
            (code, _) => return Err(UpstreamError::UnsupportedAuth(code)),
        };
    }
}

/// The largest reply message to a query of Vigil's own it accepts.
const MAX_REPLY_FRAME: usize = 64 << 20;

/// Runs one simple-protocol query and returns its rows, text format. The
/// parameters the server reports changed on the way are kept in
/// `upstream.parameters`.
pub(crate) async fn simple_query(
    upstream: &mut Upstream,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, UpstreamError> {
    let mut out = BytesMut::new();
    vigil_wire::backend::query(&mut out, sql);
    upstream.stream.write_all(&out).await?;
    upstream.stream.flush().await?;
    let mut inbuf = std::mem::take(&mut upstream.leftover);
    let mut frames = FrameReader::new(MAX_REPLY_FRAME);
    let mut rows = Vec::new();
    let mut failure = None;
    loop {
        match frames
            .next(&inbuf)
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?
        {
            Next::Frame { tag, len } => {
                let frame = inbuf.split_to(len);
                let body = &frame[vigil_wire::frame::HEADER_LEN..];
                match tag {
                    b::DATA_ROW => rows.push(data_row(body)?),
                    b::PARAMETER_STATUS => {
                        let mut parts = body.split(|&b| b == 0).map(String::from_utf8_lossy);
                        if let (Some(name), Some(value)) = (parts.next(), parts.next()) {
                            match upstream.parameters.iter_mut().find(|(n, _)| *n == name) {
                                Some((_, old)) => *old = value.into_owned(),
                                None => upstream
                                    .parameters
                                    .push((name.into_owned(), value.into_owned())),
                            }
                        }
                    }
                    b::ERROR_RESPONSE => {
                        let fields = ErrorFields::parse(body)
                            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                        failure = Some(UpstreamError::Refused {
                            code: fields.code().unwrap_or("XX000").to_owned(),
                            message: fields.message().unwrap_or("").to_owned(),
                        });
                    }
                    b::READY_FOR_QUERY => {
                        upstream.leftover = inbuf;
                        return match failure {
                            Some(error) => Err(error),
                            None => Ok(rows),
                        };
                    }
                    _ => {}
                }
            }
            Next::Incomplete { .. } | Next::Chunk { .. } => {
                if upstream.stream.read_buf(&mut inbuf).await? == 0 {
                    return Err(UpstreamError::Protocol(
                        "server closed the connection while Vigil's own query ran".into(),
                    ));
                }
            }
        }
    }
}

fn data_row(mut body: &[u8]) -> Result<Vec<Option<String>>, UpstreamError> {
    let bad = || UpstreamError::Protocol("malformed DataRow in catalog reply".into());
    if body.remaining() < 2 {
        return Err(bad());
    }
    let count = body.get_i16();
    let mut values = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        if body.remaining() < 4 {
            return Err(bad());
        }
        let len = body.get_i32();
        if len < 0 {
            values.push(None);
            continue;
        }
        let len = len as usize;
        if body.remaining() < len {
            return Err(bad());
        }
        values.push(Some(String::from_utf8_lossy(&body[..len]).into_owned()));
        body.advance(len);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    //! `authenticate` against a scripted server on 127.0.0.1, which records
    //! everything Vigil sends it.

    use std::future::Future;
    use std::path::Path;

    use tokio::net::TcpListener;
    use vigil_config::Config;

    use super::*;

    const PASSWORD: &str = "svc-Unit-pw-8d21";

    fn database(upstream: &str, password: bool, more: &str) -> Database {
        const VAR: &str = "VIGIL_UNIT_UPSTREAM_SERVICE_PASSWORD";
        std::env::set_var(VAR, PASSWORD);
        let password = if password {
            format!("password_env = \"{VAR}\"")
        } else {
            String::new()
        };
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\
             [[databases]]\nname = \"d\"\nupstream = \"{upstream}\"\ndatabase = \"x\"\n\
             user = \"svc\"\nconnect_timeout_ms = 5000\n{password}\n{more}\n"
        );
        let config = Config::from_toml(&toml, Path::new("/tmp/vigil-unit.toml"))
            .unwrap_or_else(|e| panic!("test config: {e}"));
        config.databases[0].clone()
    }

    fn auth(code: i32, payload: &[u8]) -> Vec<u8> {
        let mut message = vec![b'R'];
        let len = i32::try_from(8 + payload.len()).unwrap();
        message.extend_from_slice(&len.to_be_bytes());
        message.extend_from_slice(&code.to_be_bytes());
        message.extend_from_slice(payload);
        message
    }

    /// What a server sends after AuthenticationOk for a login to complete.
    fn ready() -> Vec<u8> {
        let mut out = b"K\0\0\0\x0c\0\0\0\x2a\0\0\0\x07".to_vec();
        out.extend_from_slice(b"Z\0\0\0\x05I");
        out
    }

    async fn read_message(stream: &mut TcpStream) -> (u8, Vec<u8>) {
        let tag = stream.read_u8().await.unwrap();
        let len = stream.read_i32().await.unwrap();
        let mut body = vec![0; usize::try_from(len - 4).unwrap()];
        stream.read_exact(&mut body).await.unwrap();
        (tag, body)
    }

    /// Everything Vigil sends until it hangs up.
    async fn rest(mut stream: TcpStream) -> Vec<u8> {
        let mut received = Vec::new();
        let read = stream.read_to_end(&mut received);
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("Vigil hung up")
            .unwrap();
        received
    }

    /// Logs in to a server that takes the startup message and then runs
    /// `script`, which returns what it received afterwards.
    async fn login_to<F, Fut>(
        password: bool,
        more: &str,
        script: F,
    ) -> (Result<Upstream, UpstreamError>, Vec<u8>)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<u8>> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let db = database(&listener.local_addr().unwrap().to_string(), password, more);
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let len = stream.read_i32().await.unwrap();
            let mut startup = vec![0; usize::try_from(len - 4).unwrap()];
            stream.read_exact(&mut startup).await.unwrap();
            script(stream).await
        });
        let result = connect(&db, None, &[]).await;
        (result, server.await.unwrap())
    }

    /// A server that sends `first` and records the answer.
    async fn asks(password: bool, more: &str, first: Vec<u8>) -> (UpstreamError, Vec<u8>) {
        let (result, received) = login_to(password, more, |mut stream| async move {
            stream.write_all(&first).await.unwrap();
            rest(stream).await
        })
        .await;
        let error = result.err().expect("login should have failed");
        assert!(!error.to_string().contains(PASSWORD), "{error}");
        (error, received)
    }

    fn assert_refused(error: &UpstreamError, method: &str, allowed: &[&str]) {
        match error {
            UpstreamError::AuthMethodRefused {
                requested,
                allowed: listed,
            } => {
                assert_eq!(*requested, method);
                assert_eq!(listed, allowed);
            }
            other => panic!("expected {method} to be refused, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn scram_only_sends_nothing_to_a_server_asking_for_cleartext_or_md5() {
        let (error, received) = asks(true, "", auth(3, b"")).await;
        assert_refused(&error, "password", &["scram-sha-256"]);
        assert!(received.is_empty(), "sent {received:?}");
        assert_eq!(
            error.to_string(),
            "server asked for \"password\" authentication, which this database's \
             auth_methods [\"scram-sha-256\"] does not allow"
        );

        let (error, received) = asks(true, "", auth(5, b"salt")).await;
        assert_refused(&error, "md5", &["scram-sha-256"]);
        assert!(received.is_empty(), "sent {received:?}");
    }

    #[tokio::test]
    async fn a_server_letting_vigil_in_unasked_is_trust() {
        let mut ok = auth(0, b"");
        let (error, received) = asks(true, "", ok.clone()).await;
        assert_refused(&error, "trust", &["scram-sha-256"]);
        assert!(received.is_empty(), "sent {received:?}");

        // Without a password, trust is the default and the login completes.
        ok.extend(ready());
        let (result, _) = login_to(false, "", |mut stream| async move {
            stream.write_all(&ok).await.unwrap();
            Vec::new()
        })
        .await;
        let upstream = result.expect("trust login");
        assert_eq!((upstream.pid, upstream.secret), (42, 7));
    }

    #[tokio::test]
    async fn a_password_less_database_refuses_scram() {
        let (error, received) = asks(false, "", auth(10, b"SCRAM-SHA-256\0\0")).await;
        assert_refused(&error, "scram-sha-256", &["trust"]);
        assert!(received.is_empty(), "sent {received:?}");
    }

    #[tokio::test]
    async fn allowed_md5_answers_with_the_hash_not_the_password() {
        let more = "auth_methods = [\"md5\"]\nallow_insecure_auth = true";
        let (result, received) = login_to(true, more, |mut stream| async move {
            stream.write_all(&auth(5, b"salt")).await.unwrap();
            // Hangs up after the answer, so the login ends unfinished.
            read_message(&mut stream).await.1
        })
        .await;
        assert!(
            matches!(result, Err(UpstreamError::Protocol(_))),
            "{:?}",
            result.err()
        );
        let expected = md5_hash(b"svc", PASSWORD.as_bytes(), *b"salt");
        assert!(
            received
                .windows(expected.len())
                .any(|w| w == expected.as_bytes()),
            "{received:?}"
        );
        assert!(!received
            .windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes()));
    }

    /// Starts SCRAM as a server would, up to and including SASLContinue,
    /// and returns the client's final message.
    async fn scram_until_final(stream: &mut TcpStream) -> Vec<u8> {
        stream
            .write_all(&auth(10, b"SCRAM-SHA-256\0\0"))
            .await
            .unwrap();
        let (tag, initial) = read_message(stream).await;
        assert_eq!(tag, b'p');
        let nonce_at = initial
            .windows(2)
            .position(|w| w == b"r=")
            .expect("client nonce");
        let client_nonce = String::from_utf8(initial[nonce_at + 2..].to_vec()).unwrap();
        let first = format!("r={client_nonce}serverpart,s=c2FsdHNhbHQ=,i=4096");
        stream.write_all(&auth(11, first.as_bytes())).await.unwrap();
        let (tag, last) = read_message(stream).await;
        assert_eq!(tag, b'p');
        last
    }

    #[tokio::test]
    async fn authentication_ok_without_scrams_final_proof_is_refused() {
        let (result, received) = login_to(true, "", |mut stream| async move {
            scram_until_final(&mut stream).await;
            let mut ok = auth(0, b"");
            ok.extend(ready());
            stream.write_all(&ok).await.unwrap();
            rest(stream).await
        })
        .await;
        let error = result.err().expect("login should have failed");
        assert!(matches!(error, UpstreamError::ScramUnverified), "{error:?}");
        assert_eq!(
            error.to_string(),
            "server skipped SCRAM's final proof, so it may not know the password"
        );
        assert!(received.is_empty(), "sent {received:?}");

        // Straight after AuthenticationSASL, too.
        let (result, received) = login_to(true, "", |mut stream| async move {
            stream
                .write_all(&auth(10, b"SCRAM-SHA-256\0\0"))
                .await
                .unwrap();
            read_message(&mut stream).await;
            stream.write_all(&auth(0, b"")).await.unwrap();
            rest(stream).await
        })
        .await;
        assert!(
            matches!(result, Err(UpstreamError::ScramUnverified)),
            "{:?}",
            result.err()
        );
        assert!(received.is_empty(), "sent {received:?}");
    }

    #[tokio::test]
    async fn a_second_request_midway_through_scram_is_refused() {
        let more = "auth_methods = [\"scram-sha-256\", \"password\"]\nallow_insecure_auth = true";
        let (result, received) = login_to(true, more, |mut stream| async move {
            scram_until_final(&mut stream).await;
            stream.write_all(&auth(3, b"")).await.unwrap();
            rest(stream).await
        })
        .await;
        let error = result.err().expect("login should have failed");
        assert_eq!(
            error.to_string(),
            "protocol: server asked for authentication a second time"
        );
        assert!(received.is_empty(), "sent {received:?}");
    }
}
