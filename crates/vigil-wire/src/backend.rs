//! Builders for the messages Vigil itself sends: to clients in place of a
//! server (authentication, errors, key data) and to servers in place of a
//! client (terminate, cancel). Each appends one whole frame to `out`.

use bytes::{BufMut, BytesMut};

use crate::tags::{backend as b, frontend as f};

/// Severity of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
    Notice,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
            Severity::Notice => "NOTICE",
            Severity::Warning => "WARNING",
        }
    }
}

/// The fields of an error or notice that Vigil composes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<'a> {
    pub severity: Severity,
    pub code: &'a str,
    pub message: &'a str,
    pub detail: Option<&'a str>,
    pub hint: Option<&'a str>,
    /// 1-based character position in the statement text (the `P` field).
    pub position: Option<usize>,
}

impl<'a> Report<'a> {
    pub fn new(severity: Severity, code: &'a str, message: &'a str) -> Report<'a> {
        Report {
            severity,
            code,
            message,
            detail: None,
            hint: None,
            position: None,
        }
    }

    pub fn position(mut self, position: usize) -> Report<'a> {
        self.position = Some(position);
        self
    }

    pub fn detail(mut self, detail: &'a str) -> Report<'a> {
        self.detail = Some(detail);
        self
    }

    pub fn hint(mut self, hint: &'a str) -> Report<'a> {
        self.hint = Some(hint);
        self
    }
}

/// Writes a frame: tag, then a length patched in once the body is written.
fn framed(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    out.put_u8(tag);
    let at = out.len();
    out.put_i32(0);
    body(out);
    let len = (out.len() - at) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_cstr(out: &mut BytesMut, text: &str) {
    // A NUL inside would end the field early and shift every later one.
    out.extend(text.bytes().filter(|&b| b != 0));
    out.put_u8(0);
}

fn report(out: &mut BytesMut, tag: u8, r: &Report<'_>) {
    framed(out, tag, |out| {
        for (field, value) in [
            (b'S', Some(r.severity.as_str())),
            (b'V', Some(r.severity.as_str())),
            (b'C', Some(r.code)),
            (b'M', Some(r.message)),
            (b'D', r.detail),
            (b'H', r.hint),
        ] {
            if let Some(value) = value {
                out.put_u8(field);
                put_cstr(out, value);
            }
        }
        if let Some(position) = r.position {
            out.put_u8(b'P');
            put_cstr(out, &position.to_string());
        }
        out.put_u8(0);
    });
}

pub fn error_response(out: &mut BytesMut, r: &Report<'_>) {
    report(out, b::ERROR_RESPONSE, r);
}

pub fn notice_response(out: &mut BytesMut, r: &Report<'_>) {
    report(out, b::NOTICE_RESPONSE, r);
}

pub fn authentication_ok(out: &mut BytesMut) {
    framed(out, b::AUTHENTICATION, |out| out.put_i32(0));
}

pub fn authentication_cleartext_password(out: &mut BytesMut) {
    framed(out, b::AUTHENTICATION, |out| out.put_i32(3));
}

pub fn authentication_sasl(out: &mut BytesMut, mechanisms: &[&str]) {
    framed(out, b::AUTHENTICATION, |out| {
        out.put_i32(10);
        for mechanism in mechanisms {
            put_cstr(out, mechanism);
        }
        out.put_u8(0);
    });
}

pub fn authentication_sasl_continue(out: &mut BytesMut, data: &[u8]) {
    framed(out, b::AUTHENTICATION, |out| {
        out.put_i32(11);
        out.put_slice(data);
    });
}

pub fn authentication_sasl_final(out: &mut BytesMut, data: &[u8]) {
    framed(out, b::AUTHENTICATION, |out| {
        out.put_i32(12);
        out.put_slice(data);
    });
}

pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    framed(out, b::PARAMETER_STATUS, |out| {
        put_cstr(out, name);
        put_cstr(out, value);
    });
}

pub fn backend_key_data(out: &mut BytesMut, pid: i32, secret: i32) {
    framed(out, b::BACKEND_KEY_DATA, |out| {
        out.put_i32(pid);
        out.put_i32(secret);
    });
}

pub fn ready_for_query(out: &mut BytesMut, status: u8) {
    framed(out, b::READY_FOR_QUERY, |out| out.put_u8(status));
}

/// Tells a client asking for a newer minor version, or for `_pq_.` options,
/// what this side speaks.
pub fn negotiate_protocol_version(out: &mut BytesMut, minor: u16, unrecognized: &[&str]) {
    framed(out, b::NEGOTIATE_PROTOCOL_VERSION, |out| {
        out.put_i32(i32::from(minor));
        out.put_i32(unrecognized.len() as i32);
        for option in unrecognized {
            put_cstr(out, option);
        }
    });
}

/// A simple-protocol Query, as a client sends it.
pub fn query(out: &mut BytesMut, sql: &str) {
    framed(out, f::QUERY, |out| put_cstr(out, sql));
}

/// A Parse of `sql` as prepared statement `name`, with no parameter types.
pub fn parse(out: &mut BytesMut, name: &[u8], sql: &str) {
    framed(out, f::PARSE, |out| {
        out.extend(name.iter().copied().filter(|&b| b != 0));
        out.put_u8(0);
        put_cstr(out, sql);
        out.put_i16(0);
    });
}

/// A Parse of `rest` (a client Parse's body after its statement name: the
/// text and the parameter types, as sent) under the statement name `name`.
pub fn parse_renamed(out: &mut BytesMut, name: &[u8], rest: &[u8]) {
    framed(out, f::PARSE, |out| {
        out.extend(name.iter().copied().filter(|&b| b != 0));
        out.put_u8(0);
        out.extend_from_slice(rest);
    });
}

/// A Parse of `sql` (bytes as the client sent them) under `name`.
pub fn parse_bytes(out: &mut BytesMut, name: &[u8], sql: &[u8]) {
    framed(out, f::PARSE, |out| {
        out.extend(name.iter().copied().filter(|&b| b != 0));
        out.put_u8(0);
        out.extend(sql.iter().copied().filter(|&b| b != 0));
        out.put_u8(0);
        out.put_i16(0);
    });
}

/// Close of a prepared statement (`S`) or portal (`P`).
pub fn close(out: &mut BytesMut, kind: u8, name: &[u8]) {
    framed(out, f::CLOSE, |out| {
        out.put_u8(kind);
        out.extend(name.iter().copied().filter(|&b| b != 0));
        out.put_u8(0);
    });
}

pub fn sync(out: &mut BytesMut) {
    framed(out, f::SYNC, |_| {});
}

pub fn terminate(out: &mut BytesMut) {
    framed(out, f::TERMINATE, |_| {});
}

/// A CancelRequest packet, sent on a fresh connection to the server.
pub fn cancel_request(out: &mut BytesMut, pid: i32, secret: i32) {
    out.put_i32(16);
    out.put_i32(80_877_102);
    out.put_i32(pid);
    out.put_i32(secret);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::ErrorFields;

    #[test]
    fn error_response_round_trips_through_the_field_parser() {
        let mut out = BytesMut::new();
        error_response(
            &mut out,
            &Report::new(Severity::Fatal, "3D000", "database \"x\" does not exist")
                .hint("Connect to one of: demo"),
        );
        assert_eq!(out[0], b'E');
        assert_eq!(
            i32::from_be_bytes([out[1], out[2], out[3], out[4]]) as usize,
            out.len() - 1
        );
        let fields = ErrorFields::parse(&out[5..]).unwrap();
        assert_eq!(fields.code(), Some("3D000"));
        assert_eq!(fields.severity(), Some("FATAL"));
        assert_eq!(fields.message(), Some("database \"x\" does not exist"));
        assert_eq!(fields.get(b'H'), Some("Connect to one of: demo"));
    }

    #[test]
    fn nul_bytes_cannot_forge_fields() {
        let mut out = BytesMut::new();
        error_response(
            &mut out,
            &Report::new(Severity::Error, "42501", "a\0Cforged"),
        );
        let fields = ErrorFields::parse(&out[5..]).unwrap();
        assert_eq!(fields.code(), Some("42501"));
        assert_eq!(fields.message(), Some("aCforged"));
    }
}
