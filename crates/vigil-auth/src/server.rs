//! The server side of one SCRAM-SHA-256 exchange: client-first in,
//! server-first out; client-final in, server-final out or a refusal.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::keys;
use crate::message::{parse_client_final, parse_client_first};
use crate::verifier::Verifier;

/// Random bytes in the server's half of the nonce (PostgreSQL's
/// `SCRAM_RAW_NONCE_LEN`).
const SERVER_NONCE_LEN: usize = 18;

/// Why an exchange stopped. Only [`ScramError::InvalidProof`] is a wrong
/// password; every other variant is a protocol violation by the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A message is not valid SCRAM; the string names the part.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client asked for channel binding (`p=`), which we never offer.
    #[error("the client selected SCRAM channel binding, which this server does not offer")]
    ChannelBindingNotSupported,
    /// client-final's `c=` does not echo the client-first GS2 header.
    #[error("SCRAM channel-binding attribute does not match the client-first-message")]
    ChannelBindingMismatch,
    /// The client sent an authorization identity (`a=`); PostgreSQL refuses them.
    #[error("the client sent a SCRAM authorization identity, which is not supported")]
    AuthzidNotSupported,
    /// The client requires a SCRAM extension (`m=`) we do not know.
    #[error("the client requires an unsupported SCRAM extension")]
    UnsupportedExtension,
    /// client-final's nonce is not the one the server sent.
    #[error("SCRAM nonce does not match")]
    NonceMismatch,
    /// The proof is wrong: wrong password, or an unknown user.
    #[error("SCRAM authentication failed")]
    InvalidProof,
}

impl ScramError {
    /// The SQLSTATE PostgreSQL reports for this failure: `28P01`
    /// (invalid_password) for a wrong proof, `08P01` (protocol_violation) for
    /// everything else.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ScramError::InvalidProof => "28P01",
            _ => "08P01",
        }
    }
}

/// The server's state between server-first and client-final. Consumed by
/// [`ScramServer::finish`], so an exchange cannot be finished twice.
pub struct ScramServer {
    verifier: Verifier,
    mock: bool,
    gs2_header: Vec<u8>,
    nonce: String,
    /// client-first-message-bare "," server-first-message ",": the AuthMessage
    /// up to client-final-without-proof.
    auth_prefix: Vec<u8>,
}

impl ScramServer {
    /// Reads the client-first-message (the SASLInitialResponse payload) and
    /// returns the server-first-message to send in AuthenticationSASLContinue.
    ///
    /// `mock = true` marks an unknown user: the exchange runs as usual, with
    /// the same work, so the client cannot tell, and then fails at the proof.
    pub fn start(
        verifier: Verifier,
        mock: bool,
        client_first: &[u8],
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        let mut raw = [0u8; SERVER_NONCE_LEN];
        rand::fill(&mut raw[..]);
        Self::start_with_nonce(verifier, mock, client_first, &STANDARD.encode(raw))
    }

    /// As [`ScramServer::start`], with the server's half of the nonce given,
    /// which lets tests replay published exchanges.
    pub(crate) fn start_with_nonce(
        verifier: Verifier,
        mock: bool,
        client_first: &[u8],
        server_nonce: &str,
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        let first = parse_client_first(client_first)?;
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(verifier.salt()),
            verifier.iterations()
        )
        .into_bytes();

        let mut auth_prefix = Vec::with_capacity(first.bare.len() + server_first.len() + 2);
        auth_prefix.extend_from_slice(first.bare);
        auth_prefix.push(b',');
        auth_prefix.extend_from_slice(&server_first);
        auth_prefix.push(b',');

        let server = ScramServer {
            verifier,
            mock,
            gs2_header: first.gs2_header.to_vec(),
            nonce,
            auth_prefix,
        };
        Ok((server, server_first))
    }

    /// Checks the client-final-message (the SASLResponse payload). On success
    /// returns the server-final-message for AuthenticationSASLFinal; a wrong
    /// password is [`ScramError::InvalidProof`].
    pub fn finish(self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        let last = parse_client_final(client_final)?;
        // PostgreSQL compares the base64 text, so only the canonical encoding
        // of the header passes.
        if last.channel_binding != STANDARD.encode(&self.gs2_header).as_bytes() {
            return Err(ScramError::ChannelBindingMismatch);
        }
        if last.nonce != self.nonce.as_bytes() {
            return Err(ScramError::NonceMismatch);
        }

        let auth_message: &[&[u8]] = &[&self.auth_prefix, last.without_proof];
        let signature = keys::hmac(self.verifier.stored_key(), auth_message);
        let client_key = keys::xor(&last.proof, &signature);
        let matches = keys::ct_eq(&keys::stored_key(&client_key), self.verifier.stored_key());
        if !matches || self.mock {
            return Err(ScramError::InvalidProof);
        }

        let server_signature = keys::hmac(self.verifier.server_key(), auth_message);
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Nothing here is secret but the verifier, and whether the user exists.
        f.debug_struct("ScramServer").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    use super::*;

    /// Runs a whole exchange with the rust-postgres client (tokio-postgres'
    /// SCRAM code) against `verifier`.
    fn exchange(
        verifier: &Verifier,
        mock: bool,
        password: &str,
        binding: ChannelBinding,
    ) -> Result<(), ScramError> {
        let mut client = ScramSha256::new(password.as_bytes(), binding);
        let (server, server_first) = ScramServer::start(verifier.clone(), mock, client.message())?;
        client
            .update(&server_first)
            .expect("client accepts server-first");
        let server_final = server.finish(client.message())?;
        client
            .finish(&server_final)
            .expect("client accepts server-final");
        Ok(())
    }

    #[test]
    fn rust_postgres_client_authenticates_with_the_right_password() {
        let v = Verifier::generate("s3cret", 4096);
        exchange(&v, false, "s3cret", ChannelBinding::unsupported()).unwrap();
        // "y,,": the client could bind but believes we cannot.
        exchange(&v, false, "s3cret", ChannelBinding::unrequested()).unwrap();
    }

    #[test]
    fn rust_postgres_client_is_refused_with_a_wrong_password() {
        let v = Verifier::generate("s3cret", 4096);
        let err = exchange(&v, false, "s3cret!", ChannelBinding::unsupported()).unwrap_err();
        assert_eq!(err, ScramError::InvalidProof);
        assert_eq!(err.sqlstate(), "28P01");
    }

    #[test]
    fn saslprep_applies_on_both_sides() {
        let v = Verifier::generate("pass\u{a0}word", 4096);
        exchange(&v, false, "pass word", ChannelBinding::unsupported()).unwrap();
    }

    #[test]
    fn postgresql_verifier_authenticates_the_rust_postgres_client() {
        // Made by PostgreSQL 15 for "alice-demo".
        let v = Verifier::parse("SCRAM-SHA-256$4096:85OpuX8G2/v+okfwsvqa3Q==$/xVdeNKThm81zFrk/BTlw0Qqx1ajfU00jLhX0uxzikA=:v/N4mVUCTeB1x05MbEarj8HXTnBvbwtZC4bXWGjRRgQ=").unwrap();
        exchange(&v, false, "alice-demo", ChannelBinding::unsupported()).unwrap();
        let err = exchange(&v, false, "alice", ChannelBinding::unsupported()).unwrap_err();
        assert_eq!(err, ScramError::InvalidProof);
    }

    #[test]
    fn mock_exchange_fails_at_the_proof_even_with_the_matching_password() {
        // A mock verifier has no password, so build a real one and mark it mock:
        // the flag alone must be enough to refuse.
        let v = Verifier::generate("s3cret", 4096);
        let err = exchange(&v, true, "s3cret", ChannelBinding::unsupported()).unwrap_err();
        assert_eq!(err, ScramError::InvalidProof);

        let mock = Verifier::mock(b"per-process secret", "nobody");
        let err = exchange(&mock, true, "s3cret", ChannelBinding::unsupported()).unwrap_err();
        assert_eq!(err, ScramError::InvalidProof);
    }

    #[test]
    fn mock_server_first_is_stable_for_a_user() {
        let salt_of = |user: &str| {
            let v = Verifier::mock(b"per-process secret", user);
            let (_, first) = ScramServer::start(v, true, b"n,,n=,r=abc").unwrap();
            let first = String::from_utf8(first).unwrap();
            first.split(',').skip(1).collect::<Vec<_>>().join(",")
        };
        assert_eq!(salt_of("nobody"), salt_of("nobody"));
        assert_ne!(salt_of("nobody"), salt_of("somebody"));
        assert!(salt_of("nobody").ends_with(",i=4096"));
    }

    #[test]
    fn channel_binding_request_is_refused() {
        let v = Verifier::generate("s3cret", 1);
        let client = ScramSha256::new(
            b"s3cret",
            ChannelBinding::tls_server_end_point(vec![1, 2, 3]),
        );
        let err = ScramServer::start(v, false, client.message()).unwrap_err();
        assert_eq!(err, ScramError::ChannelBindingNotSupported);
        assert_eq!(err.sqlstate(), "08P01");
    }

    #[test]
    fn rfc7677_example_exchange() {
        // RFC 7677 §3: user "user", password "pencil".
        let v = Verifier::with_salt(
            "pencil",
            &STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
            4096,
        );
        let (server, first) = ScramServer::start_with_nonce(
            v,
            false,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        assert_eq!(
            first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let last = server
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(last, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    /// Starts an exchange and returns the server with the nonce it expects.
    fn started(client_first: &[u8]) -> (ScramServer, String) {
        let v = Verifier::generate("pw", 1);
        let (server, first) = ScramServer::start(v, false, client_first).unwrap();
        let first = String::from_utf8(first).unwrap();
        let nonce = first
            .strip_prefix("r=")
            .and_then(|r| r.split(',').next())
            .unwrap()
            .to_string();
        (server, nonce)
    }

    #[test]
    fn server_nonce_extends_the_client_nonce_with_24_base64_chars() {
        let (_, nonce) = started(b"n,,n=,r=client");
        let suffix = nonce.strip_prefix("client").unwrap();
        assert_eq!(suffix.len(), 24);
        assert_eq!(STANDARD.decode(suffix).unwrap().len(), SERVER_NONCE_LEN);
        let (_, again) = started(b"n,,n=,r=client");
        assert_ne!(nonce, again);
    }

    #[test]
    fn final_nonce_must_be_the_combined_one() {
        let proof = STANDARD.encode([0u8; 32]);
        let (server, nonce) = started(b"n,,n=,r=client");
        let err = server
            .finish(format!("c=biws,r={nonce}x,p={proof}").as_bytes())
            .unwrap_err();
        assert_eq!(err, ScramError::NonceMismatch);
        let (server, _) = started(b"n,,n=,r=client");
        let err = server
            .finish(format!("c=biws,r=client,p={proof}").as_bytes())
            .unwrap_err();
        assert_eq!(err, ScramError::NonceMismatch);
    }

    #[test]
    fn final_channel_binding_must_echo_the_gs2_header() {
        let proof = STANDARD.encode([0u8; 32]);
        // "biws" is "n,,", "eSws" is "y,,".
        for (first, c) in [
            (&b"n,,n=,r=client"[..], "eSws"),
            (&b"y,,n=,r=client"[..], "biws"),
            (&b"n,,n=,r=client"[..], "biws=="),
            (&b"n,,n=,r=client"[..], ""),
        ] {
            let (server, nonce) = started(first);
            let err = server
                .finish(format!("c={c},r={nonce},p={proof}").as_bytes())
                .unwrap_err();
            assert_eq!(err, ScramError::ChannelBindingMismatch, "{c}");
        }
    }

    #[test]
    fn debug_shows_nothing_secret() {
        let (server, _) = started(b"n,,n=,r=client");
        assert_eq!(format!("{server:?}"), "ScramServer { .. }");
    }
}
