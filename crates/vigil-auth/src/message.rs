//! Parsing the two SCRAM messages a client sends (RFC 5802 §7), with
//! PostgreSQL's choices where the RFC leaves room.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::keys::{Key, KEY_LEN};
use crate::server::ScramError;

/// The GS2 channel-binding flag (RFC 5802 §7 `gs2-cbind-flag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CbindFlag<'a> {
    /// `n`: the client does not support channel binding.
    No,
    /// `y`: the client supports it but thinks the server does not.
    ClientOnly,
    /// `p=<cb-name>`: the client binds to the named channel-binding type.
    Bound(&'a [u8]),
}

/// The parts of a client-first-message the exchange needs.
#[derive(Debug)]
pub(crate) struct ClientFirst<'a> {
    pub cbind_flag: CbindFlag<'a>,
    /// `n,,`, `y,,` or `p=<cb-name>,,`, exactly as sent: client-final's `c=`
    /// must echo it.
    pub gs2_header: &'a [u8],
    /// client-first-message-bare, which goes into the AuthMessage verbatim.
    pub bare: &'a [u8],
    pub nonce: &'a str,
}

/// The parts of a client-final-message the exchange needs.
#[derive(Debug)]
pub(crate) struct ClientFinal<'a> {
    /// The `c=` value, still base64: PostgreSQL compares the text.
    pub channel_binding: &'a [u8],
    pub nonce: &'a [u8],
    /// client-final-message-without-proof, which goes into the AuthMessage.
    pub without_proof: &'a [u8],
    pub proof: Key,
}

pub(crate) fn parse_client_first(msg: &[u8]) -> Result<ClientFirst<'_>, ScramError> {
    check_bytes(msg)?;

    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    let (cbind_flag, flag_len) = match msg.first() {
        Some(b'n') => (CbindFlag::No, 1),
        Some(b'y') => (CbindFlag::ClientOnly, 1),
        Some(b'p') => {
            // "p=" cb-name, with cb-name = 1*(ALPHA / DIGIT / "." / "-").
            if msg.get(1) != Some(&b'=') {
                return Err(ScramError::Malformed("channel-binding flag"));
            }
            let rest = msg.get(2..).unwrap_or_default();
            let len = rest
                .iter()
                .position(|&b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
                .unwrap_or(rest.len());
            if len == 0 {
                return Err(ScramError::Malformed("channel-binding type"));
            }
            (CbindFlag::Bound(&rest[..len]), 2 + len)
        }
        _ => return Err(ScramError::Malformed("channel-binding flag")),
    };
    if msg.get(flag_len) != Some(&b',') {
        return Err(ScramError::Malformed("channel-binding flag"));
    }
    match msg.get(flag_len + 1) {
        Some(b',') => {}
        Some(b'a') => return Err(ScramError::AuthzidNotSupported),
        _ => return Err(ScramError::Malformed("GS2 header")),
    }
    let (gs2_header, bare) = msg.split_at(flag_len + 2);

    // A mandatory extension comes first; we know none, so we cannot go on.
    if bare.first() == Some(&b'm') {
        return Err(ScramError::UnsupportedExtension);
    }
    let mut attrs = Attributes::new(bare);
    // The user name is ignored: PostgreSQL authenticates the startup packet's
    // user, and libpq sends an empty `n=`.
    attrs.expect(b'n', "username attribute n=")?;
    let nonce = attrs.expect(b'r', "nonce attribute r=")?;
    let nonce = printable(nonce).ok_or(ScramError::Malformed("client nonce"))?;
    // Optional extensions may follow; PostgreSQL ignores them, and so do we.
    while attrs.next()?.is_some() {}

    Ok(ClientFirst {
        cbind_flag,
        gs2_header,
        bare,
        nonce,
    })
}

pub(crate) fn parse_client_final(msg: &[u8]) -> Result<ClientFinal<'_>, ScramError> {
    check_bytes(msg)?;

    let mut attrs = Attributes::new(msg);
    let channel_binding = attrs.expect(b'c', "channel-binding attribute c=")?;
    let nonce = attrs.expect(b'r', "nonce attribute r=")?;
    // Optional extensions may sit between the nonce and the proof.
    let (proof_start, proof) = loop {
        let start = attrs.offset();
        match attrs.next()? {
            Some((b'p', value)) => break (start, value),
            Some(_) => {}
            None => return Err(ScramError::Malformed("missing proof attribute p=")),
        }
    };
    if attrs.next()?.is_some() {
        return Err(ScramError::Malformed("attribute after the proof"));
    }
    let proof = STANDARD
        .decode(proof)
        .ok()
        .and_then(|p| <[u8; KEY_LEN]>::try_from(p.as_slice()).ok())
        .ok_or(ScramError::Malformed("proof is not base64 of 32 bytes"))?;

    Ok(ClientFinal {
        channel_binding,
        nonce,
        // Up to, not including, the comma before `p=`; `c=…,r=…,` came
        // first, so `proof_start` is never 0.
        without_proof: msg.get(..proof_start.saturating_sub(1)).unwrap_or_default(),
        proof,
    })
}

/// Checks PostgreSQL makes before parsing: it handles the messages as C strings.
fn check_bytes(msg: &[u8]) -> Result<(), ScramError> {
    if msg.is_empty() {
        return Err(ScramError::Malformed("empty message"));
    }
    if msg.contains(&0) {
        return Err(ScramError::Malformed("NUL byte in message"));
    }
    Ok(())
}

/// A nonce: one or more printable ASCII characters other than ','.
fn printable(value: &[u8]) -> Option<&str> {
    let ok = !value.is_empty()
        && value
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b',');
    if ok {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// Walks `a=value,b=value,…`. Values may be empty and contain '=' but never ','.
struct Attributes<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Attributes<'a> {
    fn new(msg: &'a [u8]) -> Self {
        Attributes { msg, pos: 0 }
    }

    /// Where the next attribute starts.
    fn offset(&self) -> usize {
        self.pos
    }

    fn next(&mut self) -> Result<Option<(u8, &'a [u8])>, ScramError> {
        let Some(rest) = self.msg.get(self.pos..).filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        let (name, rest) = match rest {
            [name, b'=', rest @ ..] if name.is_ascii_alphabetic() => (*name, rest),
            _ => {
                return Err(ScramError::Malformed(
                    "attribute is not of the form x=value",
                ))
            }
        };
        let len = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
        let value = &rest[..len];
        self.pos += 2 + len;
        if self.pos < self.msg.len() {
            // Skip the comma. One that ends the message would promise an
            // attribute that never comes.
            self.pos += 1;
            if self.pos == self.msg.len() {
                return Err(ScramError::Malformed("trailing comma"));
            }
        }
        Ok(Some((name, value)))
    }

    fn expect(&mut self, name: u8, what: &'static str) -> Result<&'a [u8], ScramError> {
        match self.next()? {
            Some((n, value)) if n == name => Ok(value),
            _ => Err(ScramError::Malformed(what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_first_from_libpq() {
        let first = parse_client_first(b"n,,n=,r=abcDEF+/123").unwrap();
        assert_eq!(first.cbind_flag, CbindFlag::No);
        assert_eq!(first.gs2_header, b"n,,");
        assert_eq!(first.bare, b"n=,r=abcDEF+/123");
        assert_eq!(first.nonce, "abcDEF+/123");
    }

    #[test]
    fn client_first_keeps_name_and_optional_extensions_in_bare() {
        let first = parse_client_first(b"y,,n=alice,r=xyz,q=ignored,z=").unwrap();
        assert_eq!(first.cbind_flag, CbindFlag::ClientOnly);
        assert_eq!(first.gs2_header, b"y,,");
        assert_eq!(first.bare, b"n=alice,r=xyz,q=ignored,z=");
        assert_eq!(first.nonce, "xyz");
    }

    #[test]
    fn client_first_with_channel_binding_keeps_the_type_in_the_header() {
        let first = parse_client_first(b"p=tls-server-end-point,,n=,r=abc").unwrap();
        assert_eq!(first.cbind_flag, CbindFlag::Bound(b"tls-server-end-point"));
        assert_eq!(first.gs2_header, b"p=tls-server-end-point,,");
        assert_eq!(first.bare, b"n=,r=abc");
        // The parser accepts any well-formed type; the exchange decides.
        let first = parse_client_first(b"p=tls-unique,,n=,r=abc").unwrap();
        assert_eq!(first.cbind_flag, CbindFlag::Bound(b"tls-unique"));
    }

    #[test]
    fn client_first_refusals() {
        use std::mem::discriminant;
        use ScramError::*;
        // Malformed's text is for people; only the variant is checked.
        let malformed = Malformed("");
        let cases: &[(&[u8], ScramError)] = &[
            (
                b"p=tls-server-end-point,a=bob,n=,r=abc",
                AuthzidNotSupported,
            ),
            (b"p,,n=,r=abc", malformed.clone()),
            (b"p=,,n=,r=abc", malformed.clone()),
            (b"p=tls server,,n=,r=abc", malformed.clone()),
            (b"p=tls-server-end-point", malformed.clone()),
            (b"p=tls-server-end-point,n=,r=abc", malformed.clone()),
            (b"n,a=bob,n=,r=abc", AuthzidNotSupported),
            (b"n,,m=ext,n=,r=abc", UnsupportedExtension),
            (b"", malformed.clone()),
            (b"x,,n=,r=abc", malformed.clone()),
            (b"n,n=,r=abc", malformed.clone()),
            (b"n,,", malformed.clone()),
            (b"n,,r=abc", malformed.clone()),
            (b"n,,n=", malformed.clone()),
            (b"n,,n=,r=", malformed.clone()),
            (b"n,,n=,r=a b", malformed.clone()),
            (b"n,,n=,r=\xc3\xa9", malformed.clone()),
            (b"n,,n=,r=abc,", malformed.clone()),
            (b"n,,n=,r=abc,,", malformed.clone()),
            (b"n,,n=,r=abc,1=x", malformed.clone()),
            (b"n,,n=,r=abc,xy", malformed.clone()),
            (b"n,,n=\0,r=abc", malformed.clone()),
        ];
        for (msg, want) in cases {
            let err = parse_client_first(msg).unwrap_err();
            assert_eq!(
                discriminant(&err),
                discriminant(want),
                "{:?}: {err:?}",
                String::from_utf8_lossy(msg)
            );
        }
    }

    #[test]
    fn client_final_splits_off_the_proof() {
        let proof = STANDARD.encode([7u8; 32]);
        let msg = format!("c=biws,r=abc,x=ext,p={proof}");
        let last = parse_client_final(msg.as_bytes()).unwrap();
        assert_eq!(last.channel_binding, b"biws");
        assert_eq!(last.nonce, b"abc");
        assert_eq!(last.without_proof, b"c=biws,r=abc,x=ext");
        assert_eq!(last.proof, [7u8; 32]);
    }

    #[test]
    fn client_final_refusals() {
        let proof = STANDARD.encode([7u8; 32]);
        let short = STANDARD.encode([7u8; 31]);
        for msg in [
            String::new(),
            format!("r=abc,c=biws,p={proof}"),
            format!("c=biws,p={proof}"),
            "c=biws,r=abc".to_string(),
            "c=biws,r=abc,p=".to_string(),
            format!("c=biws,r=abc,p={short}"),
            "c=biws,r=abc,p=!!!!".to_string(),
            format!("c=biws,r=abc,p={proof},x=after"),
            format!("c=biws,r=abc,p={proof},"),
            format!("c=biws,r=abc,,p={proof}"),
        ] {
            assert!(
                matches!(
                    parse_client_final(msg.as_bytes()),
                    Err(ScramError::Malformed(_))
                ),
                "{msg:?}"
            );
        }
    }
}
