//! Read-only views of message bodies Vigil inspects: error and notice fields,
//! and the client's password and SASL messages.

use crate::startup::cstr;
use crate::WireError;

/// The fields of an ErrorResponse or NoticeResponse body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFields<'a> {
    fields: Vec<(u8, &'a str)>,
}

impl<'a> ErrorFields<'a> {
    pub fn parse(mut body: &'a [u8]) -> Result<ErrorFields<'a>, WireError> {
        let mut fields = Vec::new();
        loop {
            match body.split_first() {
                Some((0, _)) => return Ok(ErrorFields { fields }),
                Some((&code, rest)) => {
                    let (value, rest) = cstr(rest).ok_or(WireError::Malformed {
                        what: "error fields",
                    })?;
                    fields.push((code, value));
                    body = rest;
                }
                None => {
                    return Err(WireError::Malformed {
                        what: "error fields",
                    })
                }
            }
        }
    }

    pub fn get(&self, code: u8) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, value)| *value)
    }

    /// The untranslated severity when the server sent it, else the localized one.
    pub fn severity(&self) -> Option<&'a str> {
        self.get(b'V').or_else(|| self.get(b'S'))
    }

    pub fn code(&self) -> Option<&'a str> {
        self.get(b'C')
    }

    pub fn message(&self) -> Option<&'a str> {
        self.get(b'M')
    }
}

/// A SASLInitialResponse body: the chosen mechanism and its first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslInitial<'a> {
    pub mechanism: &'a str,
    pub data: &'a [u8],
}

impl<'a> SaslInitial<'a> {
    pub fn parse(body: &'a [u8]) -> Result<SaslInitial<'a>, WireError> {
        const MALFORMED: WireError = WireError::Malformed {
            what: "SASLInitialResponse",
        };
        let (mechanism, rest) = cstr(body).ok_or(MALFORMED)?;
        let Some((len, data)) = rest.split_first_chunk::<4>() else {
            return Err(MALFORMED);
        };
        let len = i32::from_be_bytes(*len);
        // -1 means "no initial response"; SCRAM always has one.
        if len < 0 || len as usize != data.len() {
            return Err(MALFORMED);
        }
        Ok(SaslInitial { mechanism, data })
    }
}

/// A PasswordMessage body: one NUL-terminated string.
pub fn password(body: &[u8]) -> Result<&str, WireError> {
    match cstr(body) {
        Some((text, [])) => Ok(text),
        _ => Err(WireError::Malformed {
            what: "password message",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_initial_response_is_checked_against_its_length() {
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&4i32.to_be_bytes());
        body.extend_from_slice(b"n,,x");
        let parsed = SaslInitial::parse(&body).unwrap();
        assert_eq!(parsed.mechanism, "SCRAM-SHA-256");
        assert_eq!(parsed.data, b"n,,x");
        body.push(b'!');
        assert!(SaslInitial::parse(&body).is_err());
        assert!(SaslInitial::parse(b"SCRAM").is_err());
    }

    #[test]
    fn password_must_be_one_string() {
        assert_eq!(password(b"secret\0"), Ok("secret"));
        assert!(password(b"secret").is_err());
        assert!(password(b"a\0b\0").is_err());
    }

    #[test]
    fn truncated_error_fields_are_malformed() {
        assert!(ErrorFields::parse(b"Cabc").is_err());
        assert!(ErrorFields::parse(b"").is_err());
        assert_eq!(
            ErrorFields::parse(b"C42501\0\0").unwrap().code(),
            Some("42501")
        );
    }
}

/// The SQL of a Query body, as bytes: the session's encoding decides whether
/// it is text Vigil can read.
pub fn query_text(body: &[u8]) -> Result<&[u8], WireError> {
    match body.split_last() {
        Some((0, sql)) if !sql.contains(&0) => Ok(sql),
        _ => Err(WireError::Malformed {
            what: "Query message",
        }),
    }
}

/// The start of a Parse body: the statement name and its SQL. Parameter
/// types follow; the relay forwards them untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseMessage<'a> {
    pub name: &'a [u8],
    pub query: &'a [u8],
}

impl<'a> ParseMessage<'a> {
    pub fn parse(body: &'a [u8]) -> Result<ParseMessage<'a>, WireError> {
        let malformed = WireError::Malformed {
            what: "Parse message",
        };
        let split = |bytes: &'a [u8]| -> Option<(&'a [u8], &'a [u8])> {
            let end = bytes.iter().position(|&b| b == 0)?;
            Some((&bytes[..end], &bytes[end + 1..]))
        };
        let (name, rest) = split(body).ok_or(malformed.clone())?;
        let (query, _types) = split(rest).ok_or(malformed)?;
        Ok(ParseMessage { name, query })
    }
}

#[cfg(test)]
mod statement_tests {
    use super::*;

    #[test]
    fn query_and_parse_bodies() {
        assert_eq!(query_text(b"SELECT 1\0"), Ok(&b"SELECT 1"[..]));
        assert!(query_text(b"SELECT 1").is_err());
        assert!(query_text(b"SEL\0ECT\0").is_err());
        let parse = ParseMessage::parse(b"s1\0SELECT $1\0\0\x01\0\0\0\x17").unwrap();
        assert_eq!((parse.name, parse.query), (&b"s1"[..], &b"SELECT $1"[..]));
        assert!(ParseMessage::parse(b"s1\0SELECT").is_err());
    }
}
