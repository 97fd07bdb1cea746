//! The untyped packets a client sends before the session starts: StartupMessage,
//! SSLRequest, GSSENCRequest and CancelRequest.

use crate::WireError;

/// PostgreSQL's own cap on a startup packet.
pub const MAX_STARTUP_PACKET: usize = 10_000;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    Startup {
        minor: u16,
        /// In the order sent; names are case-sensitive as in PostgreSQL.
        params: Vec<(String, String)>,
    },
    SslRequest,
    GssEncRequest,
    Cancel {
        pid: i32,
        secret: i32,
    },
}

impl StartupPacket {
    pub fn param(&self, name: &str) -> Option<&str> {
        match self {
            StartupPacket::Startup { params, .. } => params
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str()),
            _ => None,
        }
    }
}

/// Decodes the packet at the front of `buf`, returning it with the bytes it
/// used, or `None` when more bytes are needed.
pub fn decode_startup(buf: &[u8]) -> Result<Option<(StartupPacket, usize)>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let declared = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if declared < 8 || declared as usize > MAX_STARTUP_PACKET {
        return Err(WireError::BadStartupLength(i64::from(declared)));
    }
    let len = declared as usize;
    if buf.len() < len {
        return Ok(None);
    }
    let body = &buf[4..len];
    let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let rest = &body[4..];
    let packet = match code {
        SSL_REQUEST | GSSENC_REQUEST if !rest.is_empty() => {
            return Err(WireError::Malformed {
                what: "SSL or GSS encryption request",
            })
        }
        SSL_REQUEST => StartupPacket::SslRequest,
        GSSENC_REQUEST => StartupPacket::GssEncRequest,
        CANCEL_REQUEST => {
            if rest.len() != 8 {
                return Err(WireError::Malformed {
                    what: "cancel request",
                });
            }
            StartupPacket::Cancel {
                pid: i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]),
                secret: i32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]),
            }
        }
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(WireError::UnsupportedProtocol { major, minor });
            }
            StartupPacket::Startup {
                minor,
                params: decode_params(rest)?,
            }
        }
    };
    Ok(Some((packet, len)))
}

fn decode_params(mut rest: &[u8]) -> Result<Vec<(String, String)>, WireError> {
    const MALFORMED: WireError = WireError::Malformed {
        what: "startup packet parameters",
    };
    let mut params = Vec::new();
    loop {
        let (name, after) = cstr(rest).ok_or(MALFORMED)?;
        if name.is_empty() {
            // The list ends with an empty name; nothing may follow it.
            return if after.is_empty() {
                Ok(params)
            } else {
                Err(MALFORMED)
            };
        }
        let (value, after) = cstr(after).ok_or(MALFORMED)?;
        params.push((name.to_owned(), value.to_owned()));
        rest = after;
    }
}

/// Splits a NUL-terminated UTF-8 string off the front of `buf`.
pub(crate) fn cstr(buf: &[u8]) -> Option<(&str, &[u8])> {
    let end = buf.iter().position(|&b| b == 0)?;
    let text = std::str::from_utf8(&buf[..end]).ok()?;
    Some((text, &buf[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn packet(code: u32, rest: &[u8]) -> Vec<u8> {
        let mut out = ((rest.len() + 8) as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(rest);
        out
    }

    #[test]
    fn startup_parameters_are_decoded_in_order() {
        let buf = packet(196_608, b"user\0alice\0database\0demo\0\0");
        let (decoded, used) = decode_startup(&buf).unwrap().unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(decoded.param("user"), Some("alice"));
        assert_eq!(decoded.param("database"), Some("demo"));
        assert_eq!(decoded.param("options"), None);
    }

    #[test]
    fn special_requests_are_recognised() {
        assert_eq!(
            decode_startup(&packet(SSL_REQUEST, b""))
                .unwrap()
                .unwrap()
                .0,
            StartupPacket::SslRequest
        );
        assert_eq!(
            decode_startup(&packet(GSSENC_REQUEST, b""))
                .unwrap()
                .unwrap()
                .0,
            StartupPacket::GssEncRequest
        );
        let cancel = packet(CANCEL_REQUEST, &[0, 0, 0, 7, 0, 0, 0, 9]);
        assert_eq!(
            decode_startup(&cancel).unwrap().unwrap().0,
            StartupPacket::Cancel { pid: 7, secret: 9 }
        );
    }

    #[test]
    fn bad_packets_are_refused() {
        assert!(decode_startup(&[0, 0, 0, 2, 0]).is_err());
        assert!(decode_startup(&[0x7f, 0, 0, 0]).is_err());
        assert!(decode_startup(&packet(131_072, b"\0")).is_err());
        assert!(decode_startup(&packet(196_608, b"user\0alice\0")).is_err());
        assert!(decode_startup(&packet(196_608, b"user\0al\xffice\0\0")).is_err());
        assert!(decode_startup(&packet(CANCEL_REQUEST, &[0; 3])).is_err());
        assert_eq!(decode_startup(&packet(196_608, b"user\0")[..6]), Ok(None));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_cleanly(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some((_, used))) = decode_startup(&data) {
                prop_assert!(used <= data.len());
            }
        }
    }
}
