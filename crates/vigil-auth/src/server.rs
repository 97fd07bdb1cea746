//! The server side of one SCRAM-SHA-256 exchange: client-first in,
//! server-first out; client-final in, server-final out or a refusal.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::keys;
use crate::message::{parse_client_final, parse_client_first, CbindFlag};
use crate::verifier::Verifier;

/// The only channel-binding type offered (RFC 5929 §4), as PostgreSQL.
const TLS_SERVER_END_POINT: &[u8] = b"tls-server-end-point";

/// What the connection offers for channel binding, and what the client chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding<'a> {
    /// No TLS, or no binding data for the server's certificate: only
    /// SCRAM-SHA-256 was advertised.
    Unavailable,
    /// SCRAM-SHA-256-PLUS was advertised alongside SCRAM-SHA-256.
    Offered {
        /// The client's SASLInitialResponse named SCRAM-SHA-256-PLUS.
        plus_chosen: bool,
        /// The `tls-server-end-point` data: the hash of the server's
        /// certificate (RFC 5929 §4.1).
        data: &'a [u8],
    },
}

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
    /// The client asked for channel binding (`p=`) on a connection where
    /// it was not offered.
    #[error("the client selected SCRAM channel binding, which this server does not offer")]
    ChannelBindingNotSupported,
    /// The client sent `y` (it could bind but believes the server cannot)
    /// although SCRAM-SHA-256-PLUS was offered: someone between them may
    /// have removed it.
    #[error("SCRAM channel binding negotiation error")]
    ChannelBindingDowngrade,
    /// The client chose SCRAM-SHA-256 but sent channel binding data (`p=`).
    #[error("the client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data")]
    ChannelBindingUnexpected,
    /// The client chose SCRAM-SHA-256-PLUS but did not bind (`n` or `y`).
    #[error("the client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data")]
    ChannelBindingMissing,
    /// The client asked for a channel-binding type other than
    /// `tls-server-end-point`.
    #[error("unsupported SCRAM channel-binding type")]
    UnsupportedChannelBindingType,
    /// client-final's `c=` does not echo the client-first GS2 header, or
    /// carries other channel-binding data than this connection's.
    #[error("SCRAM channel binding check failed")]
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
    /// The `c=` value client-final must carry: base64 of the GS2 header and,
    /// when bound, the channel-binding data.
    channel_binding: String,
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
    ///
    /// For a connection where channel binding is not offered (no TLS); the
    /// same as [`ScramServer::start_bound`] with [`Binding::Unavailable`].
    pub fn start(
        verifier: Verifier,
        mock: bool,
        client_first: &[u8],
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        Self::start_bound(verifier, mock, client_first, Binding::Unavailable)
    }

    /// As [`ScramServer::start`], on a connection that may offer channel
    /// binding. The client-first GS2 header must agree with `binding`, as
    /// PostgreSQL requires: with SCRAM-SHA-256-PLUS chosen it must be
    /// `p=tls-server-end-point`; with SCRAM-SHA-256 chosen while PLUS was
    /// offered it must be `n` (a `y` means the offer was stripped on the way).
    pub fn start_bound(
        verifier: Verifier,
        mock: bool,
        client_first: &[u8],
        binding: Binding<'_>,
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        let mut raw = [0u8; SERVER_NONCE_LEN];
        rand::fill(&mut raw[..]);
        Self::start_with_nonce(verifier, mock, client_first, binding, &STANDARD.encode(raw))
    }

    /// As [`ScramServer::start_bound`], with the server's half of the nonce
    /// given, which lets tests replay published exchanges.
    pub(crate) fn start_with_nonce(
        verifier: Verifier,
        mock: bool,
        client_first: &[u8],
        binding: Binding<'_>,
        server_nonce: &str,
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        let first = parse_client_first(client_first)?;
        let cbind_data = negotiate(first.cbind_flag, binding)?;
        let mut cbind_input = Vec::with_capacity(first.gs2_header.len() + cbind_data.len());
        cbind_input.extend_from_slice(first.gs2_header);
        cbind_input.extend_from_slice(cbind_data);
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
            channel_binding: STANDARD.encode(cbind_input),
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
        // passes. Not secret, so no need for a constant-time comparison.
        if last.channel_binding != self.channel_binding.as_bytes() {
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

/// Checks the client's GS2 flag against what the connection offered, the
/// way PostgreSQL's `read_client_first_message` does, and returns the
/// channel-binding data that client-final's `c=` must carry after the header.
fn negotiate<'a>(flag: CbindFlag<'_>, binding: Binding<'a>) -> Result<&'a [u8], ScramError> {
    match (binding, flag) {
        (Binding::Unavailable, CbindFlag::No | CbindFlag::ClientOnly) => Ok(&[]),
        (Binding::Unavailable, CbindFlag::Bound(_)) => Err(ScramError::ChannelBindingNotSupported),
        (
            Binding::Offered {
                plus_chosen: false, ..
            },
            CbindFlag::No,
        ) => Ok(&[]),
        (
            Binding::Offered {
                plus_chosen: false, ..
            },
            CbindFlag::ClientOnly,
        ) => Err(ScramError::ChannelBindingDowngrade),
        (
            Binding::Offered {
                plus_chosen: false, ..
            },
            CbindFlag::Bound(_),
        ) => Err(ScramError::ChannelBindingUnexpected),
        (
            Binding::Offered {
                plus_chosen: true, ..
            },
            CbindFlag::No | CbindFlag::ClientOnly,
        ) => Err(ScramError::ChannelBindingMissing),
        (
            Binding::Offered {
                plus_chosen: true,
                data,
            },
            CbindFlag::Bound(name),
        ) => {
            if name == TLS_SERVER_END_POINT {
                Ok(data)
            } else {
                Err(ScramError::UnsupportedChannelBindingType)
            }
        }
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

    /// As [`exchange`], on a connection offering channel binding with
    /// `server_data` as the certificate hash.
    fn bound_exchange(
        password: &str,
        client_binding: ChannelBinding,
        plus_chosen: bool,
        server_data: &[u8],
    ) -> Result<(), ScramError> {
        let v = Verifier::generate("s3cret", 16);
        let mut client = ScramSha256::new(password.as_bytes(), client_binding);
        let binding = Binding::Offered {
            plus_chosen,
            data: server_data,
        };
        let (server, server_first) = ScramServer::start_bound(v, false, client.message(), binding)?;
        client
            .update(&server_first)
            .expect("client accepts server-first");
        let server_final = server.finish(client.message())?;
        client
            .finish(&server_final)
            .expect("client accepts server-final");
        Ok(())
    }

    const CERT_HASH: [u8; 32] = [0x5a; 32];

    #[test]
    fn rust_postgres_client_authenticates_with_channel_binding() {
        let client = ChannelBinding::tls_server_end_point(CERT_HASH.to_vec());
        bound_exchange("s3cret", client, true, &CERT_HASH).unwrap();
    }

    #[test]
    fn channel_binding_to_another_certificate_is_refused() {
        // What a relaying attacker with its own certificate looks like.
        let client = ChannelBinding::tls_server_end_point(vec![0xa5; 32]);
        let err = bound_exchange("s3cret", client, true, &CERT_HASH).unwrap_err();
        assert_eq!(err, ScramError::ChannelBindingMismatch);
        assert_eq!(err.sqlstate(), "08P01");
        let client = ChannelBinding::tls_server_end_point(CERT_HASH[..31].to_vec());
        let err = bound_exchange("s3cret", client, true, &CERT_HASH).unwrap_err();
        assert_eq!(err, ScramError::ChannelBindingMismatch);
    }

    #[test]
    fn wrong_password_with_channel_binding_is_invalid_proof() {
        let client = ChannelBinding::tls_server_end_point(CERT_HASH.to_vec());
        let err = bound_exchange("s3cret!", client, true, &CERT_HASH).unwrap_err();
        assert_eq!(err, ScramError::InvalidProof);
    }

    #[test]
    fn plain_scram_is_accepted_when_plus_is_offered_and_the_client_cannot_bind() {
        bound_exchange("s3cret", ChannelBinding::unsupported(), false, &CERT_HASH).unwrap();
    }

    #[test]
    fn client_that_could_bind_but_saw_no_plus_is_a_downgrade() {
        // "y,,": the client supports binding but was shown no PLUS, which we
        // did offer, so the offer was stripped between us.
        let err =
            bound_exchange("s3cret", ChannelBinding::unrequested(), false, &CERT_HASH).unwrap_err();
        assert_eq!(err, ScramError::ChannelBindingDowngrade);
        assert_eq!(err.sqlstate(), "08P01");
        assert_eq!(err.to_string(), "SCRAM channel binding negotiation error");
    }

    #[test]
    fn gs2_flag_must_agree_with_the_chosen_mechanism() {
        let bound = || ChannelBinding::tls_server_end_point(CERT_HASH.to_vec());
        let err = bound_exchange("s3cret", bound(), false, &CERT_HASH).unwrap_err();
        assert_eq!(err, ScramError::ChannelBindingUnexpected);
        for client in [ChannelBinding::unsupported(), ChannelBinding::unrequested()] {
            let err = bound_exchange("s3cret", client, true, &CERT_HASH).unwrap_err();
            assert_eq!(err, ScramError::ChannelBindingMissing);
        }
    }

    #[test]
    fn only_tls_server_end_point_binding_is_accepted() {
        let v = Verifier::generate("s3cret", 1);
        let binding = Binding::Offered {
            plus_chosen: true,
            data: &CERT_HASH,
        };
        for first in [
            &b"p=tls-unique,,n=,r=abc"[..],
            b"p=tls-exporter,,n=,r=abc",
            b"p=tls-server-end-pointx,,n=,r=abc",
        ] {
            let err = ScramServer::start_bound(v.clone(), false, first, binding).unwrap_err();
            assert_eq!(
                err,
                ScramError::UnsupportedChannelBindingType,
                "{}",
                String::from_utf8_lossy(first)
            );
        }
    }

    #[test]
    fn bound_final_must_carry_header_and_certificate_hash() {
        let v = Verifier::generate("pw", 1);
        let binding = Binding::Offered {
            plus_chosen: true,
            data: &CERT_HASH,
        };
        let header = b"p=tls-server-end-point,,";
        let mut first = header.to_vec();
        first.extend_from_slice(b"n=,r=client");
        let proof = STANDARD.encode([0u8; 32]);
        let mut with_hash = header.to_vec();
        with_hash.extend_from_slice(&CERT_HASH);
        for (c, want) in [
            // The header alone, without the hash.
            (STANDARD.encode(header), ScramError::ChannelBindingMismatch),
            (STANDARD.encode(b"n,,"), ScramError::ChannelBindingMismatch),
            // Right binding: the check moves on, to a proof that is wrong.
            (STANDARD.encode(&with_hash), ScramError::InvalidProof),
        ] {
            let (server, server_first) =
                ScramServer::start_bound(v.clone(), false, &first, binding).unwrap();
            let server_first = String::from_utf8(server_first).unwrap();
            let nonce = server_first
                .strip_prefix("r=")
                .and_then(|r| r.split(',').next())
                .unwrap();
            let err = server
                .finish(format!("c={c},r={nonce},p={proof}").as_bytes())
                .unwrap_err();
            assert_eq!(err, want, "{c}");
        }
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
            Binding::Unavailable,
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
