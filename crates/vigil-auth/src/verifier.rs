//! Stored SCRAM-SHA-256 verifiers in PostgreSQL's text format
//! (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`): generating,
//! parsing, printing, mock verifiers for unknown users, and cleartext checks.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::keys::{self, Key, KEY_LEN};
use crate::{DEFAULT_ITERATIONS, SCRAM_SHA_256};

/// Salt length PostgreSQL uses (`SCRAM_DEFAULT_SALT_LEN`).
const SALT_LEN: usize = 16;

/// Largest iteration count we accept. PostgreSQL and libpq hold the count in a
/// C `int`; a larger one would be stored wrapped or refused by clients.
pub const MAX_ITERATIONS: u32 = i32::MAX as u32;

/// A stored SCRAM-SHA-256 verifier: what the server keeps instead of a password.
///
/// `Debug` shows the iteration count only: StoredKey and ServerKey are
/// password-equivalent for anyone who can also sniff one exchange.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: Key,
    server_key: Key,
}

/// Why a verifier text was refused. Deliberately never echoes the input: a
/// misplaced plaintext password must not end up in a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    /// The text does not start with `SCRAM-SHA-256$` (e.g. an MD5 hash or a
    /// plaintext password).
    #[error("not a SCRAM-SHA-256 verifier: expected \"SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>\"")]
    UnsupportedMechanism,
    /// No `$` separates `<iterations>:<salt>` from the keys.
    #[error("SCRAM-SHA-256 verifier has no \"$<StoredKey>:<ServerKey>\" part")]
    MissingKeys,
    /// No `:` separates the iteration count from the salt.
    #[error("SCRAM-SHA-256 verifier has no ':' between the iteration count and the salt")]
    MissingSalt,
    /// No `:` separates StoredKey from ServerKey.
    #[error("SCRAM-SHA-256 verifier has no ':' between StoredKey and ServerKey")]
    MissingServerKey,
    /// The iteration count is not a decimal number in `1..=2147483647`.
    #[error("SCRAM-SHA-256 verifier iteration count is not a whole number from 1 to 2147483647")]
    InvalidIterations,
    /// The salt is empty or not base64.
    #[error("SCRAM-SHA-256 verifier salt is not non-empty base64")]
    InvalidSalt,
    /// StoredKey is not base64 of 32 bytes.
    #[error("SCRAM-SHA-256 verifier StoredKey is not base64 of 32 bytes")]
    InvalidStoredKey,
    /// ServerKey is not base64 of 32 bytes.
    #[error("SCRAM-SHA-256 verifier ServerKey is not base64 of 32 bytes")]
    InvalidServerKey,
}

impl Verifier {
    /// A verifier for `password` with a fresh random 16-byte salt, as
    /// PostgreSQL's `CREATE ROLE … PASSWORD` makes it.
    ///
    /// `iterations` is clamped to `1..=MAX_ITERATIONS`: zero rounds is not
    /// PBKDF2, and clients refuse `i=0`.
    pub fn generate(password: &str, iterations: u32) -> Verifier {
        let mut salt = [0u8; SALT_LEN];
        rand::fill(&mut salt[..]);
        Verifier::with_salt(password, &salt, iterations)
    }

    /// As [`Verifier::generate`], with a caller-chosen salt.
    pub(crate) fn with_salt(password: &str, salt: &[u8], iterations: u32) -> Verifier {
        let iterations = iterations.clamp(1, MAX_ITERATIONS);
        let salted = keys::salted_password(password, salt, iterations);
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: keys::stored_key(&keys::client_key(&salted)),
            server_key: keys::server_key(&salted),
        }
    }

    /// Parses PostgreSQL's text format, saying which part is wrong if any.
    pub fn parse(text: &str) -> Result<Verifier, VerifierError> {
        let rest = text
            .strip_prefix(SCRAM_SHA_256)
            .and_then(|rest| rest.strip_prefix('$'))
            .ok_or(VerifierError::UnsupportedMechanism)?;
        let (params, keys) = rest.split_once('$').ok_or(VerifierError::MissingKeys)?;
        let (iterations, salt) = params.split_once(':').ok_or(VerifierError::MissingSalt)?;
        let (stored_key, server_key) = keys
            .split_once(':')
            .ok_or(VerifierError::MissingServerKey)?;

        // `u32::from_str` would also take a leading '+'; PostgreSQL never writes one.
        if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VerifierError::InvalidIterations);
        }
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .filter(|i| (1..=MAX_ITERATIONS).contains(i))
            .ok_or(VerifierError::InvalidIterations)?;
        let salt = STANDARD
            .decode(salt)
            .ok()
            .filter(|salt| !salt.is_empty())
            .ok_or(VerifierError::InvalidSalt)?;

        Ok(Verifier {
            iterations,
            salt,
            stored_key: decode_key(stored_key).ok_or(VerifierError::InvalidStoredKey)?,
            server_key: decode_key(server_key).ok_or(VerifierError::InvalidServerKey)?,
        })
    }

    /// A deterministic stand-in for a user who does not exist, so that probing
    /// usernames learns nothing: the same name always gets the same salt (a real
    /// user's salt never changes either), different names get different ones,
    /// and without `server_secret` nobody can tell it from a real verifier.
    /// Like PostgreSQL's `scram_mock_salt`, but keyed with HMAC.
    ///
    /// Its keys match no password; pair it with `mock = true` in
    /// [`ScramServer::start`](crate::ScramServer::start) anyway, so the
    /// exchange fails even by astronomically lucky guess.
    pub fn mock(server_secret: &[u8], username: &str) -> Verifier {
        // Fixed labels ending in NUL keep the three derivations apart.
        let derive = |label: &[u8]| keys::hmac(server_secret, &[label, username.as_bytes()]);
        let salt = derive(b"vigil scram mock salt\0");
        Verifier {
            iterations: DEFAULT_ITERATIONS,
            salt: salt[..SALT_LEN].to_vec(),
            stored_key: derive(b"vigil scram mock stored key\0"),
            server_key: derive(b"vigil scram mock server key\0"),
        }
    }

    /// Whether `password` is the one this verifier was made from, for cleartext
    /// password authentication. Costs one PBKDF2 run of [`Self::iterations`].
    pub fn verify_password(&self, password: &str) -> bool {
        let salted = keys::salted_password(password, &self.salt, self.iterations);
        let stored = keys::stored_key(&keys::client_key(&salted));
        let server = keys::server_key(&salted);
        // `&`, not `&&`: both comparisons always run.
        keys::ct_eq(&stored, &self.stored_key) & keys::ct_eq(&server, &self.server_key)
    }

    /// [`Verifier::mock`] with the iteration count real users have, so the
    /// count in server-first does not give an unknown user away.
    pub fn with_iterations(mut self, iterations: u32) -> Verifier {
        self.iterations = iterations.clamp(1, MAX_ITERATIONS);
        self
    }

    /// The PBKDF2 iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    pub(crate) fn salt(&self) -> &[u8] {
        &self.salt
    }

    pub(crate) fn stored_key(&self) -> &Key {
        &self.stored_key
    }

    pub(crate) fn server_key(&self) -> &Key {
        &self.server_key
    }
}

fn decode_key(text: &str) -> Option<Key> {
    let bytes = STANDARD.decode(text).ok()?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).ok()
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCRAM_SHA_256}${}:{}${}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key),
        )
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl FromStr for Verifier {
    type Err = VerifierError;

    fn from_str(text: &str) -> Result<Verifier, VerifierError> {
        Verifier::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by PostgreSQL 15 (`CREATE ROLE … PASSWORD 'alice-demo'`).
    const PG_ALICE_DEMO: &str = "SCRAM-SHA-256$4096:85OpuX8G2/v+okfwsvqa3Q==$/xVdeNKThm81zFrk/BTlw0Qqx1ajfU00jLhX0uxzikA=:v/N4mVUCTeB1x05MbEarj8HXTnBvbwtZC4bXWGjRRgQ=";

    #[test]
    fn postgresql_verifier_checks_its_password() {
        let v = Verifier::parse(PG_ALICE_DEMO).unwrap();
        assert_eq!(v.iterations(), 4096);
        assert!(v.verify_password("alice-demo"));
        assert!(!v.verify_password("alice-demo "));
        assert!(!v.verify_password("Alice-demo"));
        assert!(!v.verify_password(""));
        assert_eq!(v.to_string(), PG_ALICE_DEMO);
    }

    #[test]
    fn postgresql_verifiers_agree_on_saslprep() {
        // Made by PostgreSQL 15 for the first password of each row; every
        // password in the row must verify, as it would in PostgreSQL.
        let cases: &[(&str, &[&str])] = &[
            (
                "SCRAM-SHA-256$4096:YwsezS38VPvsumNUwKkvEQ==$0i5NDvqi3XmA6cP8SW94ikZPvHAvxlRF7irq3oMnNsQ=:TBcZ51kDztpfXLat/A570YrOjKHrWcy70duB2jMW05E=",
                &["pass\u{a0}word", "pass word", "pass\u{3000}word"],
            ),
            (
                "SCRAM-SHA-256$4096:2a289OF5d4pVZnKJqbo9Aw==$u7SehusLDkU3ljgMNaXJjBDx0boYF53AjASybqUh/2A=:n14FqHe8yeC8n1iauCOn8ZprkB39ElvCjVE97aIh5Mc=",
                &["I\u{ad}X", "IX"],
            ),
            (
                "SCRAM-SHA-256$4096:ibVj3m6fNdLiiiCiAOujCQ==$tAZFqMtS5yXclpUVTMemx3Hnz0eD+7IIu6prFTLomoA=:17YCSQww0r+SBSMBdWv203gwSMbyDLvAVOe2gww8GOg=",
                &["\u{2168}", "IX"],
            ),
            (
                // SASLprep refuses the control character: raw bytes are used.
                "SCRAM-SHA-256$4096:ZnicNSmjZm8pXFQxOUTARw==$4ul3sJ5cl78kyos3kMFDh2VPcbotr2G1zWGaEvF1E0g=:7nCVZJZOoVXUHJurwnvNh8A5VDdpmhZlz2RNsyVq0Xs=",
                &["bell\u{7}"],
            ),
        ];
        for (text, passwords) in cases {
            let v = Verifier::parse(text).unwrap();
            for password in *passwords {
                assert!(v.verify_password(password), "{password:?} for {text}");
            }
            assert!(!v.verify_password("bell"), "{text}");
        }
    }

    #[test]
    fn postgres_protocol_verifier_checks_its_password() {
        let text = postgres_protocol::password::scram_sha_256(b"s3cret \xc2\xa0x");
        let v: Verifier = text.parse().unwrap();
        assert!(v.verify_password("s3cret \u{a0}x"));
        assert!(v.verify_password("s3cret  x"));
        assert!(!v.verify_password("s3cret x"));
    }

    #[test]
    fn generated_verifier_round_trips_and_checks() {
        let v = Verifier::generate("correct horse", DEFAULT_ITERATIONS);
        assert_eq!(v.iterations(), DEFAULT_ITERATIONS);
        assert_eq!(v.salt().len(), SALT_LEN);
        let text = v.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:"));
        assert_eq!(Verifier::parse(&text).unwrap(), v);
        assert!(v.verify_password("correct horse"));
        assert!(!v.verify_password("correct horse battery"));
        // Salts are fresh each time.
        assert_ne!(Verifier::generate("correct horse", 4096), v);
    }

    #[test]
    fn generate_clamps_zero_iterations() {
        let v = Verifier::generate("pw", 0);
        assert_eq!(v.iterations(), 1);
        assert!(v.verify_password("pw"));
        assert_eq!(Verifier::parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn debug_hides_salt_and_keys() {
        let v = Verifier::parse(PG_ALICE_DEMO).unwrap();
        let debug = format!("{v:?}");
        assert_eq!(debug, "Verifier { iterations: 4096, .. }");
    }

    #[test]
    fn mock_is_deterministic_per_secret_and_user() {
        let a = Verifier::mock(b"secret-1", "mallory");
        assert_eq!(a, Verifier::mock(b"secret-1", "mallory"));
        assert_ne!(a.salt(), Verifier::mock(b"secret-1", "mallor").salt());
        assert_ne!(a.salt(), Verifier::mock(b"secret-2", "mallory").salt());
        // Shaped like a real one.
        assert_eq!(a.iterations(), DEFAULT_ITERATIONS);
        assert_eq!(a.salt().len(), SALT_LEN);
        assert_eq!(Verifier::parse(&a.to_string()).unwrap(), a);
        assert_ne!(a.stored_key(), a.server_key());
        assert!(!a.verify_password(""));
    }

    #[test]
    fn each_malformed_part_has_its_own_error() {
        use VerifierError::*;
        let salt = "85OpuX8G2/v+okfwsvqa3Q==";
        let key = "/xVdeNKThm81zFrk/BTlw0Qqx1ajfU00jLhX0uxzikA=";
        let short_key = "/xVdeNKThm81zFrk/BTlw0Qqx1ajfU00jLhX0uxz";
        let cases = [
            (String::new(), UnsupportedMechanism),
            (
                "md5a3556571e93b0d20722ba62be61e8c2d".into(),
                UnsupportedMechanism,
            ),
            ("alice-demo".into(), UnsupportedMechanism),
            ("SCRAM-SHA-1$4096:abc=$a:b".into(), UnsupportedMechanism),
            (
                "SCRAM-SHA-256-PLUS$4096:abc=$a:b".into(),
                UnsupportedMechanism,
            ),
            ("scram-sha-256$4096:abc=$a:b".into(), UnsupportedMechanism),
            ("SCRAM-SHA-256$4096:abc=".into(), MissingKeys),
            (format!("SCRAM-SHA-256$4096${key}:{key}"), MissingSalt),
            (format!("SCRAM-SHA-256$4096:{salt}${key}"), MissingServerKey),
            (
                format!("SCRAM-SHA-256$:{salt}${key}:{key}"),
                InvalidIterations,
            ),
            (
                format!("SCRAM-SHA-256$0:{salt}${key}:{key}"),
                InvalidIterations,
            ),
            (
                format!("SCRAM-SHA-256$-1:{salt}${key}:{key}"),
                InvalidIterations,
            ),
            (
                format!("SCRAM-SHA-256$+4096:{salt}${key}:{key}"),
                InvalidIterations,
            ),
            (
                format!("SCRAM-SHA-256$ 4096:{salt}${key}:{key}"),
                InvalidIterations,
            ),
            (
                format!("SCRAM-SHA-256$2147483648:{salt}${key}:{key}"),
                InvalidIterations,
            ),
            (
                format!("SCRAM-SHA-256$99999999999:{salt}${key}:{key}"),
                InvalidIterations,
            ),
            (format!("SCRAM-SHA-256$4096:${key}:{key}"), InvalidSalt),
            (
                format!("SCRAM-SHA-256$4096:not*base64${key}:{key}"),
                InvalidSalt,
            ),
            (
                format!("SCRAM-SHA-256$4096:{salt}$:{key}"),
                InvalidStoredKey,
            ),
            (
                format!("SCRAM-SHA-256$4096:{salt}${short_key}:{key}"),
                InvalidStoredKey,
            ),
            (
                format!("SCRAM-SHA-256$4096:{salt}${salt}:{key}"),
                InvalidStoredKey,
            ),
            (
                format!("SCRAM-SHA-256$4096:{salt}${key}:"),
                InvalidServerKey,
            ),
            (
                format!("SCRAM-SHA-256$4096:{salt}${key}:{short_key}"),
                InvalidServerKey,
            ),
            (
                format!("SCRAM-SHA-256$4096:{salt}${key}:{key}:{key}"),
                InvalidServerKey,
            ),
            (
                format!("SCRAM-SHA-256$4096:{salt}${key}:{key}$"),
                InvalidServerKey,
            ),
            (
                format!("SCRAM-SHA-256$4096:{salt}${key}:{key}\n"),
                InvalidServerKey,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Verifier::parse(&text), Err(want), "{text:?}");
        }
        // The largest count PostgreSQL can store is fine.
        let max = format!("SCRAM-SHA-256$2147483647:{salt}${key}:{key}");
        assert_eq!(Verifier::parse(&max).unwrap().iterations(), MAX_ITERATIONS);
    }

    #[test]
    fn errors_do_not_echo_the_input() {
        let err = Verifier::parse("hunter2").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }
}
