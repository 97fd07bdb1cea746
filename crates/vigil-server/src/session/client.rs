//! The client's side of a session before relaying starts: reading startup
//! packets and whole messages, and writing what Vigil says itself.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use vigil_wire::{decode_startup, FrameReader, Next, StartupPacket, WireError};

use crate::stream::Stream;
use crate::SessionError;

/// Messages during authentication are small; a client that sends more is not
/// authenticating.
const MAX_AUTH_MESSAGE: usize = 16 * 1024;

const TLS_HANDSHAKE_RECORD: u8 = 0x16;

pub(crate) struct ClientConn {
    pub(crate) stream: Stream,
    pub(crate) inbuf: BytesMut,
    pub(crate) out: BytesMut,
}

impl ClientConn {
    pub(crate) fn new(stream: Stream) -> ClientConn {
        ClientConn {
            stream,
            inbuf: BytesMut::with_capacity(1024),
            out: BytesMut::with_capacity(1024),
        }
    }

    async fn fill(&mut self) -> Result<(), SessionError> {
        match self.stream.read_buf(&mut self.inbuf).await {
            Ok(0) => Err(SessionError::ClientGone),
            Ok(_) => Ok(()),
            Err(e) => Err(SessionError::ClientIo(e)),
        }
    }

    pub(crate) async fn read_startup(&mut self) -> Result<StartupPacket, SessionError> {
        loop {
            if let Some((packet, used)) =
                decode_startup(&self.inbuf).map_err(SessionError::BadStartup)?
            {
                self.inbuf.advance(used);
                return Ok(packet);
            }
            self.fill().await?;
        }
    }

    /// Reads one whole message of the authentication phase.
    pub(crate) async fn read_message(&mut self) -> Result<(u8, Bytes), SessionError> {
        let mut reader = FrameReader::new(MAX_AUTH_MESSAGE);
        loop {
            match reader.next(&self.inbuf)? {
                Next::Frame { tag, len } => {
                    let mut frame = self.inbuf.split_to(len).freeze();
                    frame.advance(vigil_wire::frame::HEADER_LEN);
                    return Ok((tag, frame));
                }
                Next::Incomplete { .. } | Next::Chunk { .. } => self.fill().await?,
            }
        }
    }

    /// True when the client opened with a TLS handshake record rather than a
    /// startup packet (PostgreSQL 17's `sslnegotiation=direct`). A startup
    /// packet's first byte is the top of its length, always 0.
    pub(crate) async fn opens_with_tls(&mut self) -> Result<bool, SessionError> {
        let Stream::Tcp(tcp) = &self.stream else {
            return Ok(false);
        };
        let mut first = [0u8; 1];
        match tcp.peek(&mut first).await {
            Ok(0) => Err(SessionError::ClientGone),
            Ok(_) => Ok(first[0] == TLS_HANDSHAKE_RECORD),
            Err(e) => Err(SessionError::ClientIo(e)),
        }
    }

    /// Runs the TLS handshake: after answering an SSLRequest with 'S', or at
    /// once when the client opened with TLS (`direct`).
    pub(crate) async fn start_tls(
        &mut self,
        acceptor: &TlsAcceptor,
        direct: bool,
    ) -> Result<(), SessionError> {
        // Bytes sent after the request but before the handshake would be
        // read as if they were encrypted (CVE-2021-23214).
        if !self.inbuf.is_empty() {
            return Err(WireError::Malformed {
                what: "data after SSLRequest",
            }
            .into());
        }
        let Stream::Tcp(mut tcp) = std::mem::replace(&mut self.stream, Stream::Detached) else {
            return Err(WireError::Malformed {
                what: "second SSLRequest",
            }
            .into());
        };
        if !direct {
            tcp.write_all(b"S").await.map_err(SessionError::ClientIo)?;
        }
        let tls = acceptor
            .accept(tcp)
            .await
            .map_err(SessionError::ClientTls)?;
        // As PostgreSQL: direct TLS must name the protocol, so a connection
        // meant for another TLS service cannot be replayed here.
        if direct && tls.get_ref().1.alpn_protocol() != Some(crate::tls::ALPN_POSTGRESQL) {
            return Err(WireError::Malformed {
                what: "direct TLS connection without ALPN \"postgresql\"",
            }
            .into());
        }
        self.stream = Stream::ServerTls(Box::new(tls));
        Ok(())
    }

    pub(crate) async fn write_now(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(SessionError::ClientIo)
    }

    pub(crate) async fn flush(&mut self) -> Result<(), SessionError> {
        let out = std::mem::take(&mut self.out);
        self.stream
            .write_all(&out)
            .await
            .map_err(SessionError::ClientIo)?;
        self.stream.flush().await.map_err(SessionError::ClientIo)?;
        self.out = out;
        self.out.clear();
        Ok(())
    }

    /// Tells the client why the session ends, without waiting on a stuck one.
    pub(crate) async fn fail(&mut self, error: &SessionError) {
        error.report(&mut self.out);
        if !self.out.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.flush()).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.shutdown()).await;
    }
}
