//! Masking strategies and the key that makes the deterministic ones stable:
//! what a strategy does to a piece of text. Typed forms live in
//! [`crate::value`].

use std::fmt;

use bytes::{BufMut, BytesMut};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::MaskError;

type HmacSha256 = Hmac<Sha256>;

/// The fixed text that [`Strategy::Redact`] writes: it does not leak length.
pub const REDACTED: &[u8] = b"****";

/// How a value (or a detected span of text) is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Replace with a fixed value of the same type (`****` for text).
    Redact,
    /// Keep the last N characters, `*` for every other character.
    KeepLast(u8),
    /// `jane@example.com` → `****@example.com`; no `@` → [`Strategy::Redact`].
    EmailDomain,
    /// Keyed HMAC-SHA256, stable across sessions so joins and GROUP BY work.
    Hash,
    /// SQL NULL.
    Null,
    /// Format-preserving: digits stay digits, letters keep their case,
    /// punctuation and length are kept; deterministic under the key.
    Preserve,
}

/// The secret behind [`Strategy::Hash`] and [`Strategy::Preserve`].
///
/// Holds the HMAC state with the key already absorbed, so each value costs
/// two compressions rather than four.
#[derive(Clone)]
pub struct MaskKey {
    mac: HmacSha256,
}

impl fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaskKey(..)")
    }
}

impl MaskKey {
    /// The shortest key accepted.
    pub const MIN_LEN: usize = 32;

    /// A key from the caller's secret (at least 32 bytes).
    pub fn new(secret: &[u8]) -> Result<MaskKey, MaskError> {
        if secret.len() < Self::MIN_LEN {
            return Err(MaskError::KeyTooShort { got: secret.len() });
        }
        let mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        Ok(MaskKey { mac })
    }

    /// HMAC-SHA256 over the concatenation of `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// A keystream for `value` under a domain label: seed = HMAC(label ‖
    /// value), then HMAC(seed ‖ counter) blocks, so equal inputs get equal
    /// streams.
    pub(crate) fn keystream(&self, label: &[u8], value: &[u8]) -> Keystream<'_> {
        // The seed is itself pseudo-random: it serves as the first block.
        let seed = self.mac(&[label, value]);
        Keystream {
            key: self,
            seed,
            block: seed,
            used: 0,
            counter: 0,
        }
    }
}

/// The seed, then the bytes of HMAC(key, seed ‖ counter) for counter = 0, 1, ….
pub(crate) struct Keystream<'k> {
    key: &'k MaskKey,
    seed: [u8; 32],
    block: [u8; 32],
    used: usize,
    counter: u32,
}

impl Keystream<'_> {
    pub(crate) fn next_byte(&mut self) -> u8 {
        if self.used == self.block.len() {
            self.block = self.key.mac(&[&self.seed, &self.counter.to_be_bytes()]);
            self.counter = self.counter.wrapping_add(1);
            self.used = 0;
        }
        let byte = self.block[self.used];
        self.used += 1;
        byte
    }

    /// A value in `0..modulus` (modulus ≤ 26); the slight bias of `byte %
    /// modulus` is irrelevant for masking.
    pub(crate) fn next_mod(&mut self, modulus: u8) -> u8 {
        self.next_byte() % modulus
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

pub(crate) fn put_hex(out: &mut BytesMut, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.put_u8(HEX[usize::from(b >> 4)]);
        out.put_u8(HEX[usize::from(b & 0x0f)]);
    }
}

/// Writes `input` masked as text. [`Strategy::Null`] has no text form and
/// writes the redacted text; callers that can emit NULL check for it first.
pub fn mask_text(strategy: Strategy, key: &MaskKey, input: &[u8], out: &mut BytesMut) {
    match strategy {
        Strategy::Redact | Strategy::Null => out.extend_from_slice(REDACTED),
        Strategy::KeepLast(n) => keep_last(input, usize::from(n), out),
        Strategy::EmailDomain => match memchr::memrchr(b'@', input) {
            Some(at) => {
                out.extend_from_slice(REDACTED);
                out.extend_from_slice(&input[at..]);
            }
            None => out.extend_from_slice(REDACTED),
        },
        Strategy::Hash => put_hex(out, &key.mac(&[input])[..16]),
        Strategy::Preserve => preserve(key, input, out),
    }
}

/// `*` for every character but the last `n`; characters, not bytes, so
/// UTF-8 stays valid.
pub(crate) fn keep_last(input: &[u8], n: usize, out: &mut BytesMut) {
    let (hidden, tail) = split_last_chars(input, n);
    out.reserve(hidden + tail.len());
    out.put_bytes(b'*', hidden);
    out.extend_from_slice(tail);
}

/// Number of characters before the last `n`, and the bytes of the last `n`.
fn split_last_chars(input: &[u8], n: usize) -> (usize, &[u8]) {
    if input.is_ascii() {
        let hidden = input.len().saturating_sub(n);
        return (hidden, &input[hidden..]);
    }
    // Walk back over n character starts (bytes that are not 0b10xxxxxx).
    let mut start = input.len();
    let mut kept = 0;
    while kept < n && start > 0 {
        start -= 1;
        if input[start] & 0xc0 != 0x80 {
            kept += 1;
        }
    }
    let hidden = input[..start].iter().filter(|&&b| b & 0xc0 != 0x80).count();
    (hidden, &input[start..])
}

/// Digits → digits, ASCII letters → letters of the same case, the rest kept.
pub(crate) fn preserve(key: &MaskKey, input: &[u8], out: &mut BytesMut) {
    let mut stream = key.keystream(b"vigil-mask/preserve", input);
    out.reserve(input.len());
    for &b in input {
        out.put_u8(preserve_byte(b, &mut stream));
    }
}

pub(crate) fn preserve_byte(b: u8, stream: &mut Keystream<'_>) -> u8 {
    match b {
        b'0'..=b'9' => b'0' + (b - b'0' + stream.next_mod(10)) % 10,
        b'a'..=b'z' => b'a' + (b - b'a' + stream.next_mod(26)) % 26,
        b'A'..=b'Z' => b'A' + (b - b'A' + stream.next_mod(26)) % 26,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn key() -> MaskKey {
        MaskKey::new(&[7; 32]).unwrap()
    }

    fn text(strategy: Strategy, input: &str) -> String {
        let mut out = BytesMut::new();
        mask_text(strategy, &key(), input.as_bytes(), &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(
            MaskKey::new(&[1; 31]).unwrap_err(),
            MaskError::KeyTooShort { got: 31 }
        );
    }

    #[test]
    fn redact_is_fixed_length() {
        assert_eq!(text(Strategy::Redact, "a much longer secret"), "****");
        assert_eq!(text(Strategy::Redact, ""), "****");
    }

    #[test]
    fn keep_last_counts_characters() {
        assert_eq!(text(Strategy::KeepLast(4), "123-45-6789"), "*******6789");
        assert_eq!(text(Strategy::KeepLast(4), "abc"), "abc");
        assert_eq!(text(Strategy::KeepLast(2), "ünïcödé"), "*****dé");
        assert_eq!(text(Strategy::KeepLast(3), "日本語テキスト"), "****キスト");
        assert_eq!(text(Strategy::KeepLast(0), "ab"), "**");
    }

    #[test]
    fn email_domain() {
        assert_eq!(
            text(Strategy::EmailDomain, "jane.doe@example.com"),
            "****@example.com"
        );
        assert_eq!(text(Strategy::EmailDomain, "no at sign"), "****");
    }

    #[test]
    fn hash_is_stable_hex() {
        let a = text(Strategy::Hash, "alice");
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(a, text(Strategy::Hash, "alice"));
        assert_ne!(a, text(Strategy::Hash, "alicf"));
        let other = MaskKey::new(&[8; 32]).unwrap();
        let mut out = BytesMut::new();
        mask_text(Strategy::Hash, &other, b"alice", &mut out);
        assert_ne!(a.as_bytes(), &out[..]);
    }

    #[test]
    fn preserve_keeps_shape() {
        let input = "Ab-12 34/xyZ é";
        let a = text(Strategy::Preserve, input);
        assert_eq!(a, text(Strategy::Preserve, input));
        assert_eq!(a.len(), input.len());
        for (x, y) in input.chars().zip(a.chars()) {
            assert_eq!(x.is_ascii_digit(), y.is_ascii_digit());
            assert_eq!(x.is_ascii_uppercase(), y.is_ascii_uppercase());
            assert_eq!(x.is_ascii_lowercase(), y.is_ascii_lowercase());
            if !x.is_ascii_alphanumeric() {
                assert_eq!(x, y);
            }
        }
        // A long value draws several keystream blocks.
        let long = "9".repeat(100);
        assert_eq!(text(Strategy::Preserve, &long).len(), 100);
        assert_ne!(text(Strategy::Preserve, &long), long);
    }
}
