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
            UpstreamError::Refused { code, message }
                if code.starts_with("53") || code.starts_with("57P") =>
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

async fn authenticate(hs: &mut Handshake, db: &Database) -> Result<(), UpstreamError> {
    let password = || {
        db.password
            .as_ref()
            .map(|secret| secret.expose().as_bytes())
            .ok_or(UpstreamError::NoPassword)
    };
    let mut scram: Option<sasl::ScramSha256> = None;
    loop {
        let (tag, mut body) = hs.next().await?;
        if tag != b::AUTHENTICATION || body.len() < 4 {
            return Err(protocol(format!(
                "expected authentication, got {:?}",
                char::from(tag)
            )));
        }
        match body.get_i32() {
            0 => return Ok(()),
            3 => {
                frontend::password_message(password()?, &mut hs.out)?;
                hs.send().await?;
            }
            5 if body.len() == 4 => {
                let salt = [body[0], body[1], body[2], body[3]];
                let hash = md5_hash(db.user.as_bytes(), password()?, salt);
                frontend::password_message(hash.as_bytes(), &mut hs.out)?;
                hs.send().await?;
            }
            10 => {
                let offered = body.split(|&c| c == 0).any(|m| m == b"SCRAM-SHA-256");
                if !offered {
                    return Err(protocol("server offers no SCRAM-SHA-256"));
                }
                let client =
                    sasl::ScramSha256::new(password()?, sasl::ChannelBinding::unsupported());
                frontend::sasl_initial_response("SCRAM-SHA-256", client.message(), &mut hs.out)?;
                hs.send().await?;
                scram = Some(client);
            }
            11 => {
                let client = scram
                    .as_mut()
                    .ok_or_else(|| protocol("SASLContinue before SASL"))?;
                client.update(&body)?;
                frontend::sasl_response(client.message(), &mut hs.out)?;
                hs.send().await?;
            }
            12 => {
                let client = scram
                    .as_mut()
                    .ok_or_else(|| protocol("SASLFinal before SASL"))?;
                // Proves the server knew the password too: no impostor upstream.
                client.finish(&body)?;
            }
            code => return Err(UpstreamError::UnsupportedAuth(code)),
        }
    }
}
