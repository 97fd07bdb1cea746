//! Typed values: masking one PostgreSQL value so the result is still a valid
//! value of the same type in the same format (text 0 or binary 1), or NULL
//! where the type cannot carry a masked value.
//!
//! | type | Redact | Hash | KeepLast / Preserve | EmailDomain |
//! |---|---|---|---|---|
//! | text-like | `****` | 32 hex chars | text rule | text rule |
//! | int2/4/8 | 0 | HMAC integer ≥ 0 in range | digits (NULL on overflow) | as Redact |
//! | numeric | 0 | HMAC integer ≥ 0 (text); binary NULL | digits (text); binary NULL | as Redact |
//! | float4/8 | 0 | NULL | NULL | as Redact |
//! | uuid | nil UUID | UUID from HMAC | hex nibbles | as Redact |
//! | json/jsonb | `"****"` | `"<hex>"` | text rule as a JSON string | text rule as a JSON string |
//! | bytea | empty | 16 HMAC bytes | bytes | as Redact |
//! | date/timestamp(tz) | 2000-01-01 (binary 0) | NULL | NULL | as Redact |
//! | inet/cidr | 0.0.0.0(/0) | NULL | NULL | as Redact |
//! | bool, arrays, records, enums, anything else | NULL | NULL | NULL | NULL |
//!
//! bool is NULL rather than `false` because `false` is itself information a
//! reader would take as real. Inputs this module cannot decode (a binary int4
//! that is not 4 bytes, non-numeric text in an int column) become NULL: the
//! safe answer is never the original.

use bytes::{BufMut, BytesMut};

use crate::strategy::{mask_text, put_hex, MaskKey, Strategy};

/// Type OIDs this module knows (`pg_type.oid`).
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    /// Pass this for any other type to be handled as text (citext, a domain
    /// over text, an enum the proxy wants masked as its label).
    pub const TEXT: u32 = 25;
    pub const JSON: u32 = 114;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// Whether values of this type are UTF-8 text in both formats, so content
/// detectors can run on them.
pub fn is_text_like(type_oid: u32) -> bool {
    matches!(
        type_oid,
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::UNKNOWN
    )
}

/// What [`mask_value`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masked {
    /// The masked value was appended to `out`.
    Value,
    /// The masked value is SQL NULL; nothing was appended.
    Null,
}

/// Masks one non-NULL value of type `type_oid` in the given format,
/// appending the masked bytes (without a length prefix) to `out`.
pub fn mask_value(
    strategy: Strategy,
    key: &MaskKey,
    type_oid: u32,
    binary: bool,
    input: &[u8],
    out: &mut BytesMut,
) -> Masked {
    if strategy == Strategy::Null {
        return Masked::Null;
    }
    let start = out.len();
    let done = match type_oid {
        t if is_text_like(t) => {
            mask_text(strategy, key, input, out);
            true
        }
        oid::INT2 => int(strategy, key, input, binary, 2, out),
        oid::INT4 => int(strategy, key, input, binary, 4, out),
        oid::INT8 => int(strategy, key, input, binary, 8, out),
        oid::NUMERIC if !binary => numeric(strategy, key, input, out),
        oid::FLOAT4 | oid::FLOAT8 => float(strategy, type_oid, binary, out),
        oid::UUID => uuid(strategy, key, input, binary, out),
        oid::JSON | oid::JSONB => json(strategy, key, type_oid, input, binary, out),
        oid::BYTEA => bytea(strategy, key, input, binary, out),
        oid::DATE | oid::TIMESTAMP | oid::TIMESTAMPTZ => temporal(strategy, type_oid, binary, out),
        oid::INET | oid::CIDR => network(strategy, type_oid, binary, out),
        _ => false,
    };
    if done {
        Masked::Value
    } else {
        out.truncate(start);
        Masked::Null
    }
}

/// A valid value of the type, in the given format, to mask in place of a
/// NULL that must not show as one (see `RowPlan::concealing_nulls`).
pub fn null_stand_in(type_oid: u32, binary: bool) -> &'static [u8] {
    const ZEROS: [u8; 16] = [0; 16];
    match (type_oid, binary) {
        (oid::INT2, true) => &ZEROS[..2],
        (oid::INT4, true) => &ZEROS[..4],
        (oid::INT8, true) => &ZEROS[..8],
        (oid::INT2 | oid::INT4 | oid::INT8 | oid::NUMERIC, false) => b"0",
        (oid::UUID, true) => &ZEROS,
        (oid::UUID, false) => b"00000000-0000-0000-0000-000000000000",
        (oid::JSONB, true) => b"\x01\"\"",
        (oid::JSON | oid::JSONB, _) => b"\"\"",
        (oid::BYTEA, false) => b"\\x",
        _ => b"",
    }
}

fn redacting(strategy: Strategy) -> bool {
    matches!(strategy, Strategy::Redact | Strategy::EmailDomain)
}

/// Integers: text is an optional `-` and digits; binary is big-endian.
fn int(
    strategy: Strategy,
    key: &MaskKey,
    input: &[u8],
    binary: bool,
    width: usize,
    out: &mut BytesMut,
) -> bool {
    let (min, max) = match width {
        2 => (i64::from(i16::MIN), i64::from(i16::MAX)),
        4 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    };
    let value = if binary {
        if input.len() != width {
            return false;
        }
        let mut buf = [0u8; 8];
        buf[8 - width..].copy_from_slice(input);
        // Sign-extend from the type's width.
        let shift = 64 - 8 * width as u32;
        (i64::from_be_bytes(buf) << shift) >> shift
    } else {
        match std::str::from_utf8(input)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
        {
            Some(v) => v,
            None => return false,
        }
    };
    let masked = match strategy {
        Strategy::Redact | Strategy::EmailDomain => Some(0),
        Strategy::Hash => {
            // The canonical decimal, so text and binary results agree.
            let mac = key.mac(&[b"vigil-mask/int", value.to_string().as_bytes()]);
            let raw = u64::from_be_bytes(mac[..8].try_into().expect("8 bytes"));
            Some((raw % (max as u64 + 1)) as i64)
        }
        Strategy::KeepLast(n) => {
            let modulus = 10i128.checked_pow(u32::from(n)).unwrap_or(i128::MAX);
            let kept = (i128::from(value).abs() % modulus) as i64;
            Some(if value < 0 { -kept } else { kept })
        }
        Strategy::Preserve => {
            let text = value.unsigned_abs().to_string();
            let digits = preserve_digits(key, text.as_bytes());
            std::str::from_utf8(&digits)
                .ok()
                .and_then(|d| d.parse::<i128>().ok())
                .map(|v| if value < 0 { -v } else { v })
                .filter(|v| *v >= i128::from(min) && *v <= i128::from(max))
                .map(|v| v as i64)
        }
        Strategy::Null => None,
    };
    let Some(masked) = masked else { return false };
    if binary {
        out.extend_from_slice(&masked.to_be_bytes()[8 - width..]);
    } else {
        out.extend_from_slice(masked.to_string().as_bytes());
    }
    true
}

/// Digit-preserving: the first digit of a multi-digit run stays non-zero so
/// the number keeps its length.
fn preserve_digits(key: &MaskKey, digits: &[u8]) -> Vec<u8> {
    let mut stream = key.keystream(b"vigil-mask/digits", digits);
    let mut first = true;
    let mut out = Vec::with_capacity(digits.len());
    for (i, &d) in digits.iter().enumerate() {
        let run_longer = digits.get(i + 1).is_some_and(u8::is_ascii_digit);
        let masked = match d {
            b'1'..=b'9' if first && run_longer => b'1' + (d - b'1' + stream.next_mod(9)) % 9,
            b'0'..=b'9' => b'0' + (d - b'0' + stream.next_mod(10)) % 10,
            other => other,
        };
        first = !d.is_ascii_digit();
        out.push(masked);
    }
    out
}

/// numeric in text: `-123.45`, `1e10`, `NaN`, `Infinity`.
fn numeric(strategy: Strategy, key: &MaskKey, input: &[u8], out: &mut BytesMut) -> bool {
    let valid = !input.is_empty()
        && input
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    match strategy {
        Strategy::Redact | Strategy::EmailDomain => out.extend_from_slice(b"0"),
        Strategy::Hash => {
            let mac = key.mac(&[b"vigil-mask/numeric", input]);
            let raw = u64::from_be_bytes(mac[..8].try_into().expect("8 bytes"));
            out.extend_from_slice((raw % 1_000_000_000_000_000).to_string().as_bytes());
        }
        Strategy::Preserve if valid => out.extend_from_slice(&preserve_digits(key, input)),
        Strategy::KeepLast(n) if valid => {
            let total = input.iter().filter(|b| b.is_ascii_digit()).count();
            let hide = total.saturating_sub(usize::from(n));
            let mut seen = 0;
            let mut masked = Vec::with_capacity(input.len());
            for &b in input {
                if b.is_ascii_digit() {
                    masked.push(if seen < hide { b'0' } else { b });
                    seen += 1;
                } else {
                    masked.push(b);
                }
            }
            put_trimmed(&masked, out);
        }
        _ => return false,
    }
    true
}

/// `-000056.7` → `-56.7`, `000.5` → `0.5`, `0000` → `0`.
fn put_trimmed(number: &[u8], out: &mut BytesMut) {
    let sign = usize::from(number.first().is_some_and(|b| matches!(b, b'-' | b'+')));
    let body = &number[sign..];
    let zeros = body.iter().take_while(|&&b| b == b'0').count();
    let keep_one = body.get(zeros).is_none_or(|b| !b.is_ascii_digit());
    let cut = if keep_one {
        zeros.saturating_sub(1)
    } else {
        zeros
    };
    out.extend_from_slice(&number[..sign]);
    out.extend_from_slice(&body[cut..]);
}

fn float(strategy: Strategy, type_oid: u32, binary: bool, out: &mut BytesMut) -> bool {
    if !redacting(strategy) {
        return false;
    }
    match (binary, type_oid) {
        (false, _) => out.extend_from_slice(b"0"),
        (true, oid::FLOAT4) => out.extend_from_slice(&0f32.to_be_bytes()),
        (true, _) => out.extend_from_slice(&0f64.to_be_bytes()),
    }
    true
}

fn uuid(strategy: Strategy, key: &MaskKey, input: &[u8], binary: bool, out: &mut BytesMut) -> bool {
    let Some(raw) = (if binary {
        <[u8; 16]>::try_from(input).ok()
    } else {
        parse_uuid(input)
    }) else {
        return false;
    };
    let masked: [u8; 16] = match strategy {
        Strategy::Redact | Strategy::EmailDomain => [0; 16],
        Strategy::Hash => {
            let mac = key.mac(&[b"vigil-mask/uuid", &raw]);
            let mut id: [u8; 16] = mac[..16].try_into().expect("16 bytes");
            // RFC 9562 version 8 (custom), variant 10.
            id[6] = (id[6] & 0x0f) | 0x80;
            id[8] = (id[8] & 0x3f) | 0x80;
            id
        }
        Strategy::KeepLast(n) => {
            let keep = usize::from(n).min(32);
            let mut id = raw;
            for nibble in 0..32 - keep {
                let byte = &mut id[nibble / 2];
                *byte &= if nibble % 2 == 0 { 0x0f } else { 0xf0 };
            }
            id
        }
        Strategy::Preserve => {
            let mut stream = key.keystream(b"vigil-mask/uuid-preserve", &raw);
            raw.map(|b| b ^ stream.next_byte())
        }
        Strategy::Null => return false,
    };
    if binary {
        out.extend_from_slice(&masked);
    } else {
        for (i, chunk) in [0..4, 4..6, 6..8, 8..10, 10..16].into_iter().enumerate() {
            if i > 0 {
                out.put_u8(b'-');
            }
            put_hex(out, &masked[chunk]);
        }
    }
    true
}

fn parse_uuid(text: &[u8]) -> Option<[u8; 16]> {
    let mut raw = [0u8; 16];
    let mut nibbles = 0;
    for &b in text {
        let v = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            b'-' | b'{' | b'}' => continue,
            _ => return None,
        };
        if nibbles == 32 {
            return None;
        }
        raw[nibbles / 2] |= if nibbles % 2 == 0 { v << 4 } else { v };
        nibbles += 1;
    }
    (nibbles == 32).then_some(raw)
}

/// json and jsonb: the masked value is always a JSON string. jsonb binary is
/// a version byte (1) followed by the JSON text.
fn json(
    strategy: Strategy,
    key: &MaskKey,
    type_oid: u32,
    input: &[u8],
    binary: bool,
    out: &mut BytesMut,
) -> bool {
    let text = if binary && type_oid == oid::JSONB {
        match input.split_first() {
            Some((1, rest)) => rest,
            _ => return false,
        }
    } else {
        input
    };
    let mut masked = BytesMut::new();
    mask_text(strategy, key, text, &mut masked);
    if binary && type_oid == oid::JSONB {
        out.put_u8(1);
    }
    put_json_string(&masked, out);
    true
}

pub(crate) fn put_json_string(text: &[u8], out: &mut BytesMut) {
    out.reserve(text.len() + 2);
    out.put_u8(b'"');
    for &b in text {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                put_hex(out, &[b]);
            }
            _ => out.put_u8(b),
        }
    }
    out.put_u8(b'"');
}

/// bytea: binary is the raw bytes; text is `\x` + hex (the escape format of
/// `bytea_output = escape` is masked as its raw text bytes).
fn bytea(
    strategy: Strategy,
    key: &MaskKey,
    input: &[u8],
    binary: bool,
    out: &mut BytesMut,
) -> bool {
    let decoded;
    let raw: &[u8] = if binary {
        input
    } else if let Some(hex) = input.strip_prefix(b"\\x") {
        match decode_hex(hex) {
            Some(bytes) => {
                decoded = bytes;
                &decoded
            }
            None => return false,
        }
    } else {
        input
    };
    let mut masked = BytesMut::new();
    match strategy {
        Strategy::Redact | Strategy::EmailDomain => {}
        Strategy::Hash => masked.extend_from_slice(&key.mac(&[b"vigil-mask/bytea", raw])[..16]),
        Strategy::KeepLast(n) => {
            let hide = raw.len().saturating_sub(usize::from(n));
            masked.put_bytes(0, hide);
            masked.extend_from_slice(&raw[hide..]);
        }
        Strategy::Preserve => {
            let mut stream = key.keystream(b"vigil-mask/bytea-preserve", raw);
            masked.extend(raw.iter().map(|b| b ^ stream.next_byte()));
        }
        Strategy::Null => return false,
    }
    if binary {
        out.extend_from_slice(&masked);
    } else {
        out.extend_from_slice(b"\\x");
        put_hex(out, &masked);
    }
    true
}

fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    fn nibble(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    if hex.len() % 2 != 0 {
        return None;
    }
    hex.chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// Dates and timestamps redact to PostgreSQL's own epoch, 2000-01-01, which
/// is 0 in the binary format. The text assumes `DateStyle = ISO`.
fn temporal(strategy: Strategy, type_oid: u32, binary: bool, out: &mut BytesMut) -> bool {
    if !redacting(strategy) {
        return false;
    }
    match (binary, type_oid) {
        (true, oid::DATE) => out.extend_from_slice(&0i32.to_be_bytes()),
        (true, _) => out.extend_from_slice(&0i64.to_be_bytes()),
        (false, oid::DATE) => out.extend_from_slice(b"2000-01-01"),
        (false, oid::TIMESTAMP) => out.extend_from_slice(b"2000-01-01 00:00:00"),
        (false, _) => out.extend_from_slice(b"2000-01-01 00:00:00+00"),
    }
    true
}

/// inet redacts to `0.0.0.0`, cidr to `0.0.0.0/0`. Binary layout: family
/// (2 = IPv4), prefix bits, is_cidr, address length, address.
fn network(strategy: Strategy, type_oid: u32, binary: bool, out: &mut BytesMut) -> bool {
    if !redacting(strategy) {
        return false;
    }
    let cidr = type_oid == oid::CIDR;
    match (binary, cidr) {
        (true, false) => out.extend_from_slice(&[2, 32, 0, 4, 0, 0, 0, 0]),
        (true, true) => out.extend_from_slice(&[2, 0, 1, 4, 0, 0, 0, 0]),
        (false, false) => out.extend_from_slice(b"0.0.0.0"),
        (false, true) => out.extend_from_slice(b"0.0.0.0/0"),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MaskKey {
        MaskKey::new(&[4; 32]).unwrap()
    }

    fn masked(strategy: Strategy, type_oid: u32, binary: bool, input: &[u8]) -> Option<Vec<u8>> {
        let mut out = BytesMut::from(&b"prefix"[..]);
        match mask_value(strategy, &key(), type_oid, binary, input, &mut out) {
            Masked::Value => Some(out[6..].to_vec()),
            Masked::Null => {
                assert_eq!(&out[..], b"prefix", "NULL appends nothing");
                None
            }
        }
    }

    fn text(strategy: Strategy, type_oid: u32, input: &str) -> Option<String> {
        masked(strategy, type_oid, false, input.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn null_strategy_is_always_null() {
        for t in [oid::TEXT, oid::INT4, oid::UUID, oid::JSONB, 12345] {
            assert_eq!(masked(Strategy::Null, t, false, b"1"), None);
        }
    }

    #[test]
    fn integers_in_text() {
        assert_eq!(
            text(Strategy::Redact, oid::INT4, "123456").as_deref(),
            Some("0")
        );
        assert_eq!(
            text(Strategy::EmailDomain, oid::INT8, "7").as_deref(),
            Some("0")
        );
        assert_eq!(
            text(Strategy::KeepLast(2), oid::INT4, "-123456").as_deref(),
            Some("-56")
        );
        assert_eq!(
            text(Strategy::KeepLast(2), oid::INT4, "100").as_deref(),
            Some("0")
        );
        let hashed: i64 = text(Strategy::Hash, oid::INT2, "31000")
            .unwrap()
            .parse()
            .unwrap();
        assert!((0..=i64::from(i16::MAX)).contains(&hashed));
        assert_eq!(
            text(Strategy::Hash, oid::INT2, "31000"),
            text(Strategy::Hash, oid::INT2, "31000")
        );
        let preserved = text(Strategy::Preserve, oid::INT8, "-9876543210").unwrap();
        assert!(
            preserved.starts_with('-') && preserved.len() == 11,
            "{preserved}"
        );
        assert_eq!(text(Strategy::Redact, oid::INT4, "not a number"), None);
    }

    #[test]
    fn integers_in_binary() {
        assert_eq!(
            masked(Strategy::Redact, oid::INT2, true, &7i16.to_be_bytes()),
            Some(vec![0, 0])
        );
        let kept = masked(
            Strategy::KeepLast(3),
            oid::INT4,
            true,
            &(-123456i32).to_be_bytes(),
        )
        .unwrap();
        assert_eq!(i32::from_be_bytes(kept.try_into().unwrap()), -456);
        let hashed = masked(Strategy::Hash, oid::INT8, true, &5i64.to_be_bytes()).unwrap();
        let hashed = i64::from_be_bytes(hashed.try_into().unwrap());
        assert!(hashed >= 0);
        // Text and binary agree, so joins work whatever format a client asks for.
        assert_eq!(
            text(Strategy::Hash, oid::INT8, "5"),
            Some(hashed.to_string())
        );
        // Preserving the digits of i16::MAX-sized values can overflow: NULL or in range.
        for v in [32767i16, -32768, 29999, 5] {
            if let Some(p) = masked(Strategy::Preserve, oid::INT2, true, &v.to_be_bytes()) {
                assert_eq!(p.len(), 2);
                let p = i16::from_be_bytes(p.try_into().unwrap());
                assert_eq!(p < 0, v < 0);
                assert_eq!(
                    p.unsigned_abs().to_string().len(),
                    v.unsigned_abs().to_string().len()
                );
            }
        }
        assert_eq!(masked(Strategy::Redact, oid::INT4, true, &[0, 1]), None);
    }

    #[test]
    fn numeric_float_bool() {
        assert_eq!(
            text(Strategy::Redact, oid::NUMERIC, "1234.56").as_deref(),
            Some("0")
        );
        assert_eq!(
            text(Strategy::KeepLast(3), oid::NUMERIC, "-1234.56").as_deref(),
            Some("-4.56")
        );
        let p = text(Strategy::Preserve, oid::NUMERIC, "1234.56").unwrap();
        assert!(
            p.len() == 7 && &p[4..5] == "." && !p.starts_with('0'),
            "{p}"
        );
        assert_eq!(masked(Strategy::Redact, oid::NUMERIC, true, &[0; 8]), None);
        assert_eq!(
            text(Strategy::Redact, oid::FLOAT8, "1.5").as_deref(),
            Some("0")
        );
        assert_eq!(
            masked(Strategy::Redact, oid::FLOAT4, true, &[1; 4]),
            Some(vec![0; 4])
        );
        assert_eq!(text(Strategy::Hash, oid::FLOAT8, "1.5"), None);
        assert_eq!(text(Strategy::Redact, oid::BOOL, "t"), None);
    }

    #[test]
    fn uuids() {
        let id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert_eq!(
            text(Strategy::Redact, oid::UUID, id).as_deref(),
            Some("00000000-0000-0000-0000-000000000000")
        );
        let hashed = text(Strategy::Hash, oid::UUID, id).unwrap();
        assert_eq!(hashed.len(), 36);
        assert_eq!(&hashed[14..15], "8");
        assert_eq!(
            text(Strategy::KeepLast(4), oid::UUID, id).as_deref(),
            Some("00000000-0000-0000-0000-000000000a11")
        );
        assert_eq!(
            masked(Strategy::Hash, oid::UUID, true, &[1; 16]).map(|v| v.len()),
            Some(16)
        );
        assert_eq!(text(Strategy::Redact, oid::UUID, "nope"), None);
    }

    #[test]
    fn json_and_jsonb() {
        assert_eq!(
            text(Strategy::Redact, oid::JSON, r#"{"a":1}"#).as_deref(),
            Some(r#""****""#)
        );
        assert_eq!(
            text(Strategy::KeepLast(3), oid::JSONB, r#"{"a":"\n"}"#).as_deref(),
            Some(r#""*******n\"}""#)
        );
        let binary = masked(Strategy::Hash, oid::JSONB, true, b"\x01{}").unwrap();
        assert_eq!(binary[0], 1);
        assert_eq!(binary.len(), 1 + 34);
        assert_eq!(masked(Strategy::Redact, oid::JSONB, true, b"\x02{}"), None);
    }

    #[test]
    fn bytea() {
        assert_eq!(
            text(Strategy::Redact, oid::BYTEA, "\\xdeadbeef").as_deref(),
            Some("\\x")
        );
        assert_eq!(
            text(Strategy::KeepLast(1), oid::BYTEA, "\\xdeadbeef").as_deref(),
            Some("\\x000000ef")
        );
        assert_eq!(
            text(Strategy::Hash, oid::BYTEA, "\\xdeadbeef").map(|h| h.len()),
            Some(34)
        );
        assert_eq!(
            masked(Strategy::Hash, oid::BYTEA, true, b"raw").map(|h| h.len()),
            Some(16)
        );
        assert_eq!(
            masked(Strategy::Redact, oid::BYTEA, true, b"raw"),
            Some(vec![])
        );
    }

    #[test]
    fn dates_networks_and_the_rest() {
        assert_eq!(
            text(Strategy::Redact, oid::DATE, "2024-03-05").as_deref(),
            Some("2000-01-01")
        );
        assert_eq!(
            text(Strategy::Redact, oid::TIMESTAMPTZ, "2024-03-05 12:00:00+01").as_deref(),
            Some("2000-01-01 00:00:00+00")
        );
        assert_eq!(
            masked(Strategy::Redact, oid::TIMESTAMP, true, &[9; 8]),
            Some(vec![0; 8])
        );
        assert_eq!(
            masked(Strategy::Redact, oid::DATE, true, &[9; 4]),
            Some(vec![0; 4])
        );
        assert_eq!(text(Strategy::Hash, oid::DATE, "2024-03-05"), None);
        assert_eq!(
            text(Strategy::Redact, oid::INET, "10.1.2.3").as_deref(),
            Some("0.0.0.0")
        );
        assert_eq!(
            text(Strategy::Redact, oid::CIDR, "10.0.0.0/8").as_deref(),
            Some("0.0.0.0/0")
        );
        assert_eq!(text(Strategy::Redact, 1007 /* int4[] */, "{1,2}"), None);
        assert_eq!(
            text(Strategy::Redact, oid::VARCHAR, "abc").as_deref(),
            Some("****")
        );
    }
}
