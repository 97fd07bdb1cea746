//! The SCRAM-SHA-256 key schedule (RFC 5802 §3) and the few primitives it rests
//! on: password preparation, HMAC, SHA-256 and constant-time comparison.

use std::borrow::Cow;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Length of every SCRAM-SHA-256 key, signature and proof.
pub(crate) const KEY_LEN: usize = 32;

/// A SHA-256-sized key: SaltedPassword, ClientKey, StoredKey, ServerKey, proofs.
pub(crate) type Key = [u8; KEY_LEN];

/// SHA-256's block size, which is what HMAC pads or hashes its key to.
const BLOCK_LEN: usize = 64;

/// SASLprep the password the way PostgreSQL's `pg_saslprep` does, falling back to
/// the raw bytes when it fails: PostgreSQL stores passwords that SASLprep
/// prohibits (control characters, bidi mixes) and libpq sends them unprepared,
/// so refusing them would lock such users out.
pub(crate) fn prepare_password(password: &str) -> Cow<'_, str> {
    // PostgreSQL skips SASLprep for pure ASCII; any ASCII input SASLprep would
    // change is one it also rejects, so the fallback gives the same bytes.
    if password.is_ascii() {
        return Cow::Borrowed(password);
    }
    stringprep::saslprep(password).unwrap_or(Cow::Borrowed(password))
}

/// Hi(Normalize(password), salt, i): PBKDF2-HMAC-SHA-256 with one output block.
pub(crate) fn salted_password(password: &str, salt: &[u8], iterations: u32) -> Key {
    let prepared = prepare_password(password);
    let mut out = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(prepared.as_bytes(), salt, iterations, &mut out);
    out
}

/// HMAC-SHA-256 over the concatenation of `parts`.
pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> Key {
    let mut mac = Hmac::<Sha256>::new(&hmac_block_key(key).into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The key as HMAC uses it (RFC 2104 §2): hashed when longer than a block, then
/// zero-padded to one. Doing this here lets us use the fixed-size, infallible
/// constructor instead of `new_from_slice`, whose error can never happen but
/// would still need an `expect`.
fn hmac_block_key(key: &[u8]) -> [u8; BLOCK_LEN] {
    let mut block = [0u8; BLOCK_LEN];
    if key.len() > BLOCK_LEN {
        block[..KEY_LEN].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    block
}

pub(crate) fn sha256(data: &[u8]) -> Key {
    Sha256::digest(data).into()
}

pub(crate) fn client_key(salted_password: &Key) -> Key {
    hmac(salted_password, &[b"Client Key"])
}

pub(crate) fn server_key(salted_password: &Key) -> Key {
    hmac(salted_password, &[b"Server Key"])
}

pub(crate) fn stored_key(client_key: &Key) -> Key {
    sha256(client_key)
}

/// Equality whose running time does not depend on where the inputs differ, so a
/// client cannot learn a key byte by byte from response times. Lengths are not
/// secret (they are always [`KEY_LEN`] here).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// `a XOR b`, byte by byte.
pub(crate) fn xor(a: &Key, b: &Key) -> Key {
    let mut out = *a;
    for (o, b) in out.iter_mut().zip(b) {
        *o ^= b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_the_variable_length_constructor_for_every_key_size() {
        for len in [0, 1, 31, 32, 63, 64, 65, 200] {
            let key: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            let mut reference = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            reference.update(b"message");
            let reference: Key = reference.finalize().into_bytes().into();
            assert_eq!(
                hmac(&key, &[b"mess", b"age"]),
                reference,
                "key length {len}"
            );
        }
    }

    #[test]
    fn rfc4231_test_case_2() {
        // HMAC-SHA-256 with key "Jefe", from RFC 4231 §4.3.
        let mac = hmac(b"Jefe", &[b"what do ya want for nothing?"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn ct_eq_compares_contents_and_lengths() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn saslprep_maps_like_postgresql_and_falls_back_to_raw() {
        // Non-ASCII space maps to ASCII space; soft hyphen maps to nothing;
        // NFKC folds the Roman numeral nine to "IX".
        assert_eq!(prepare_password("pass\u{a0}word"), "pass word");
        assert_eq!(prepare_password("I\u{ad}X"), "IX");
        assert_eq!(prepare_password("\u{2168}"), "IX");
        // Prohibited (control character, bidi mix): used as given.
        assert_eq!(prepare_password("bell\u{7}"), "bell\u{7}");
        assert_eq!(prepare_password("a\u{5d0}b\u{85}"), "a\u{5d0}b\u{85}");
        assert_eq!(prepare_password(""), "");
    }
}
