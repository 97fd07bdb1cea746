//! The canonical byte encoding that the hash chain is computed over.
//!
//! JSON with object keys sorted by their UTF-8 bytes, no insignificant whitespace, strings
//! escaped the way `serde_json` escapes them, and integers only: floats are refused because
//! their text form is not unique. The result does not depend on how `serde_json::Map` is
//! ordered (the `preserve_order` feature may be on elsewhere in the build), so the same
//! event always yields the same bytes, in this process and in any re-implementation.

use serde_json::Value;

use crate::error::{AuditError, Result};

/// Encodes `value` canonically.
pub fn encode(value: &Value) -> Result<String> {
    let mut out = String::with_capacity(256);
    write(value, &mut out, 0)?;
    Ok(out)
}

/// Encodes one string canonically (quoted and escaped).
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_str(s, &mut out);
    out
}

/// Deeper nesting than this is refused; events are shallow, so this only stops abuse of
/// free-form fields (and unbounded recursion).
const MAX_DEPTH: usize = 32;

fn write(value: &Value, out: &mut String, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(AuditError::InvalidEvent(format!(
            "nested deeper than {MAX_DEPTH} levels"
        )));
    }
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                return Err(AuditError::InvalidEvent(format!(
                    "float {n} is not allowed (use an integer or a string)"
                )));
            }
            out.push_str(&n.to_string());
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out, depth + 1)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push(':');
                write(v, out, depth + 1)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Appends `s` quoted and escaped exactly as `serde_json` escapes it (`\"` `\\` `\n` `\r`
/// `\t` `\b` `\f`, `\u00xx` with lowercase hex for other control characters, everything
/// else verbatim; a test compares every character). Written out rather than borrowed from
/// serde_json because this runs for every string of every event, and going through a
/// `Value` cost two allocations each time.
pub(crate) fn write_str(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Only ASCII bytes are escaped, so `start..i` always falls on char boundaries.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"b": 1, "a": {"z": [true, null], "y": "x"}, "A": -3});
        assert_eq!(
            encode(&v).unwrap(),
            r#"{"A":-3,"a":{"y":"x","z":[true,null]},"b":1}"#
        );
    }

    #[test]
    fn escapes_strings_deterministically() {
        let v = json!({"t": "a\"b\\c\n\u{1}é"});
        assert_eq!(encode(&v).unwrap(), "{\"t\":\"a\\\"b\\\\c\\n\\u0001é\"}");
    }

    #[test]
    fn escapes_every_character_as_serde_json_does() {
        let mut all = String::new();
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let one = c.to_string();
            assert_eq!(
                string(&one),
                Value::String(one.clone()).to_string(),
                "{c:?}"
            );
            all.push(c);
            all.push_str("a\"");
        }
        assert_eq!(string(&all), Value::String(all.clone()).to_string());
    }

    #[test]
    fn refuses_floats_and_deep_nesting() {
        assert!(encode(&json!({"x": 1.5})).is_err());
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!([deep]);
        }
        assert!(encode(&deep).is_err());
        assert_eq!(encode(&json!(u64::MAX)).unwrap(), u64::MAX.to_string());
    }
}
