//! The hash chain: how an event becomes a sealed record linked to the one before it.
//!
//! `hash = SHA-256(prev_hash ‖ canonical(record without "hash"))`, where `prev_hash` is the
//! 32 raw bytes of the previous record's hash (all zero before the first record) and the
//! canonical text is `{"body":…,"kind":…,"prev_hash":"<hex>","seq":…,"time":…,"v":1}`
//! encoded by [`canonical`]. The text is stored verbatim, so verifying a
//! record never depends on re-serialising it the same way.

use std::fmt::{self, Write as _};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{AuditError, Result};
use crate::event::{AuditEvent, IndexFields, SCHEMA_VERSION};
use crate::{body, canonical};

/// A SHA-256 digest in the chain; shown and serialised as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The `prev_hash` of the very first record.
    pub const ZERO: ChainHash = ChainHash([0; 32]);

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        self.write_hex(&mut s);
        s
    }

    fn write_hex(&self, out: &mut String) {
        for b in self.0 {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(ChainHash(out))
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(ChainHash)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl Serialize for ChainHash {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ChainHash::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("expected 64 lowercase hex digits"))
    }
}

/// Computes the hash of a record from its predecessor's hash and its canonical text.
pub fn link(prev: &ChainHash, canonical: &str) -> ChainHash {
    let mut h = Sha256::new();
    h.update(prev.0);
    h.update(canonical.as_bytes());
    ChainHash(h.finalize().into())
}

/// The position of the chain's end: the last sealed seq and its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tail {
    /// Seq of the last record, or `first_seq - 1` when the store is empty.
    pub seq: u64,
    pub hash: ChainHash,
}

impl Tail {
    /// The tail of an empty, first-ever store.
    pub const GENESIS: Tail = Tail {
        seq: 0,
        hash: ChainHash::ZERO,
    };
}

/// A record as it travels to and from a store: the hashed text plus what is derived from
/// it for indexing. Stores keep `canonical` byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub time: String,
    pub kind: String,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
    /// The canonical text the hash was computed over.
    pub canonical: String,
    pub index: IndexFields,
}

/// A decoded record: envelope plus typed event.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub v: u32,
    pub seq: u64,
    pub time: String,
    pub event: AuditEvent,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
}

/// The envelope fields of a stored record's canonical text, body left as JSON.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub v: u32,
    pub seq: u64,
    pub time: String,
    pub kind: String,
    pub body: Value,
    pub prev_hash: ChainHash,
}

impl Envelope {
    pub fn parse(canonical: &str) -> std::result::Result<Self, String> {
        serde_json::from_str(canonical).map_err(|e| e.to_string())
    }
}

/// An event encoded ahead of time (by the appending task, not the writer thread): only
/// the envelope is left to fill in once the writer assigns `seq`, `time` and `prev_hash`.
#[derive(Clone, Debug)]
pub struct PreparedEvent {
    kind: String,
    /// Canonical text of the body.
    body: String,
    index: IndexFields,
}

impl PreparedEvent {
    pub fn new(event: &AuditEvent) -> Result<Self> {
        // The two kinds every statement records skip the JSON value tree; the rest take
        // the generic path (same bytes either way; `body`'s tests compare them).
        let (body, index) = match event {
            AuditEvent::Statement(s) => (body::statement(s), body::statement_index(s)),
            AuditEvent::StatementCompleted(c) => (body::completed(c), body::completed_index(c)),
            _ => {
                let value = event.body()?;
                (canonical::encode(&value)?, IndexFields::from_body(&value))
            }
        };
        Ok(PreparedEvent {
            kind: event.kind(),
            body,
            index,
        })
    }

    /// Seals the event as record `seq`, linked to `prev`.
    pub fn seal(&self, seq: u64, time: &str, prev: &ChainHash) -> StoredEvent {
        // Keys in canonical (sorted) order: body, kind, prev_hash, seq, time, v. Equal to
        // `canonical::encode` of the whole object, which a test checks.
        // Written piece by piece into one buffer: the writer thread seals every event.
        let mut text = String::with_capacity(self.body.len() + self.kind.len() + 160);
        text.push_str(r#"{"body":"#);
        text.push_str(&self.body);
        text.push_str(r#","kind":"#);
        canonical::write_str(&self.kind, &mut text);
        text.push_str(r#","prev_hash":""#);
        prev.write_hex(&mut text);
        let _ = write!(text, r#"","seq":{seq},"time":"#);
        canonical::write_str(time, &mut text);
        let _ = write!(text, r#","v":{SCHEMA_VERSION}}}"#);
        StoredEvent {
            seq,
            time: time.to_owned(),
            kind: self.kind.clone(),
            prev_hash: *prev,
            hash: link(prev, &text),
            canonical: text,
            index: self.index.clone(),
        }
    }
}

/// Seals `event` as record `seq`, linked to `prev`.
pub fn seal(seq: u64, time: &str, event: &AuditEvent, prev: &ChainHash) -> Result<StoredEvent> {
    Ok(PreparedEvent::new(event)?.seal(seq, time, prev))
}

impl StoredEvent {
    /// Decodes the stored text into a typed record. Does not check the hash; that is
    /// [`verify`](crate::verify())'s job.
    pub fn decode(&self) -> Result<Record> {
        let fail = |reason: String| AuditError::Decode {
            seq: self.seq,
            reason,
        };
        let env = Envelope::parse(&self.canonical).map_err(fail)?;
        if env.v != SCHEMA_VERSION {
            return Err(fail(format!("unsupported schema version {}", env.v)));
        }
        let event = AuditEvent::from_parts(&env.kind, env.body).map_err(fail)?;
        Ok(Record {
            v: env.v,
            seq: env.seq,
            time: env.time,
            event,
            prev_hash: env.prev_hash,
            hash: self.hash,
        })
    }

    /// The record as one JSON object including its hash, keys in canonical order: the form
    /// of `export --format jsonl`. Removing `"hash"` and re-encoding canonically gives back
    /// the hashed text.
    pub fn to_json_line(&self) -> Result<String> {
        let mut value: Value =
            serde_json::from_str(&self.canonical).map_err(|e| AuditError::Decode {
                seq: self.seq,
                reason: e.to_string(),
            })?;
        if let Value::Object(map) = &mut value {
            map.insert("hash".into(), Value::String(self.hash.to_hex()));
        }
        canonical::encode(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::samples::statement;

    #[test]
    fn hex_round_trips_and_rejects_uppercase() {
        let h = link(&ChainHash::ZERO, "x");
        assert_eq!(ChainHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(ChainHash::from_hex(&h.to_hex().to_uppercase()), None);
        assert_eq!(ChainHash::from_hex("00"), None);
    }

    #[test]
    fn sealing_is_deterministic_and_linked() {
        let t = "2026-01-01T00:00:00.000000Z";
        let a = seal(1, t, &statement(1, 1), &ChainHash::ZERO).unwrap();
        let again = seal(1, t, &statement(1, 1), &ChainHash::ZERO).unwrap();
        assert_eq!(a, again);
        assert_eq!(a.hash, link(&ChainHash::ZERO, &a.canonical));
        let b = seal(2, t, &statement(1, 2), &a.hash).unwrap();
        assert_ne!(a.hash, b.hash);
        assert!(b.canonical.contains(&a.hash.to_hex()));
        assert!(a.canonical.starts_with(r#"{"body":{"#));
        assert_eq!(b.decode().unwrap().event, statement(1, 2));
    }

    #[test]
    fn envelope_text_equals_canonical_encoding_of_the_whole_record() {
        let a = seal(
            9,
            "2026-01-01T00:00:00.000000Z",
            &statement(1, 1),
            &ChainHash::ZERO,
        )
        .unwrap();
        let whole = serde_json::json!({
            "v": SCHEMA_VERSION,
            "seq": 9,
            "time": "2026-01-01T00:00:00.000000Z",
            "kind": "statement",
            "body": statement(1, 1).body().unwrap(),
            "prev_hash": ChainHash::ZERO.to_hex(),
        });
        assert_eq!(canonical::encode(&whole).unwrap(), a.canonical);
    }

    #[test]
    fn json_line_rebuilds_the_hashed_text() {
        let a = seal(1, "t", &statement(1, 1), &ChainHash::ZERO).unwrap();
        let line = a.to_json_line().unwrap();
        let mut v: Value = serde_json::from_str(&line).unwrap();
        let hash = v.as_object_mut().unwrap().remove("hash").unwrap();
        assert_eq!(hash, Value::String(a.hash.to_hex()));
        assert_eq!(canonical::encode(&v).unwrap(), a.canonical);
    }
}
