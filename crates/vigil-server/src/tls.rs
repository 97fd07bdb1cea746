//! rustls configuration: the server side offered to clients (with the
//! `tls-server-end-point` channel-binding data of its certificate), and the
//! client side used towards upstreams.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use vigil_config::{ServerTls, UpstreamTls, UpstreamTlsMode};

use crate::StartError;

/// The ALPN protocol name PostgreSQL 17 clients send with TLS.
pub(crate) const ALPN_POSTGRESQL: &[u8] = b"postgresql";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, StartError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StartError::tls(path, e))?;
    if certs.is_empty() {
        return Err(StartError::tls(path, "no certificate in file"));
    }
    Ok(certs)
}

/// The server side of TLS, built once per configuration.
pub(crate) struct ServerSide {
    pub(crate) acceptor: TlsAcceptor,
    /// RFC 5929 `tls-server-end-point` data for SCRAM-SHA-256-PLUS, or `None`
    /// when the certificate's signature algorithm does not define one.
    pub(crate) end_point: Option<Vec<u8>>,
}

pub(crate) fn acceptor(files: &ServerTls) -> Result<ServerSide, StartError> {
    let certs = read_certs(&files.cert_file)?;
    // The first certificate in the file is the one rustls presents.
    let end_point = match certs.first().map(|cert| tls_server_end_point(cert)) {
        Some(Ok(data)) => Some(data),
        Some(Err(reason)) => {
            // Logged once per load: clients with channel_binding=require
            // will be refused, and this says why.
            tracing::warn!(
                cert_file = %files.cert_file.display(),
                %reason,
                "SCRAM-SHA-256-PLUS not offered: no channel-binding data for the certificate"
            );
            None
        }
        None => None,
    };
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| StartError::tls(&files.key_file, e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::tls(&files.cert_file, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartError::tls(&files.cert_file, e))?;
    // Older clients send no ALPN and are served all the same.
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(ServerSide {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        end_point,
    })
}

/// Why a certificate gives no `tls-server-end-point` data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NoEndPoint {
    /// Not a DER Certificate as far as the walk goes.
    #[error("certificate is not DER of the expected shape")]
    Malformed,
    /// RFC 5929 names no hash for the signature algorithm (RSASSA-PSS,
    /// Ed25519, anything unknown); PostgreSQL offers no binding then either.
    #[error("signature algorithm {oid} has no tls-server-end-point hash")]
    Algorithm { oid: String },
}

/// RFC 5929 §4.1: the hash of the DER certificate, with the hash of its
/// signature algorithm, where MD5 and SHA-1 become SHA-256.
pub(crate) fn tls_server_end_point(cert: &[u8]) -> Result<Vec<u8>, NoEndPoint> {
    Ok(match signature_algorithm(cert)? {
        RSA_MD5 | RSA_SHA1 | RSA_SHA256 | ECDSA_SHA256 => Sha256::digest(cert).to_vec(),
        RSA_SHA384 | ECDSA_SHA384 => Sha384::digest(cert).to_vec(),
        RSA_SHA512 | ECDSA_SHA512 => Sha512::digest(cert).to_vec(),
        oid => return Err(NoEndPoint::Algorithm { oid: dotted(oid) }),
    })
}

// DER contents of the signature algorithm OIDs with an RFC 5929 hash:
// 1.2.840.113549.1.1.{4,5,11,12,13} and 1.2.840.10045.4.3.{2,3,4}.
const RSA_MD5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04];
const RSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
const RSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const RSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
const RSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];

const DER_SEQUENCE: u8 = 0x30;
const DER_OID: u8 = 0x06;

/// The OID of `Certificate.signatureAlgorithm`, walking only as far as it:
/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm
/// AlgorithmIdentifier, signature }`, `AlgorithmIdentifier ::= SEQUENCE {
/// algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL }`. rustls has
/// already accepted the certificate; this only has to not panic.
fn signature_algorithm(cert: &[u8]) -> Result<&[u8], NoEndPoint> {
    let expect = |input, want| match der_element(input) {
        Some((tag, content, rest)) if tag == want => Ok((content, rest)),
        _ => Err(NoEndPoint::Malformed),
    };
    let (certificate, _) = expect(cert, DER_SEQUENCE)?;
    let (_tbs, rest) = expect(certificate, DER_SEQUENCE)?;
    let (algorithm, _) = expect(rest, DER_SEQUENCE)?;
    let (oid, _) = expect(algorithm, DER_OID)?;
    Ok(oid)
}

/// Splits one DER element off `input`: tag, contents, what follows. `None`
/// for anything DER does not allow here (high tag numbers, indefinite
/// lengths) or that runs past the input.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Four length bytes cover 4 GiB, far beyond any certificate; 0x80
        // alone is BER's indefinite length.
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = rest
            .get(..n)?
            .iter()
            .fold(0u64, |len, &b| (len << 8) | u64::from(b));
        (usize::try_from(len).ok()?, rest.get(n..)?)
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// An OID's DER contents as dotted text, for the log; best effort.
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut arc: u64 = 0;
    for &b in oid {
        arc = arc.saturating_mul(128) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                // The first byte packs two arcs: 40 * first + second.
                let first = (arc / 40).min(2);
                arcs.push(first);
                arcs.push(arc - first * 40);
            } else {
                arcs.push(arc);
            }
            arc = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The connector for one upstream, or `None` when its TLS is disabled.
pub(crate) fn connector(tls: &UpstreamTls) -> Result<Option<TlsConnector>, StartError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::tls(Path::new("upstream"), e))?;
    let config = match tls.mode {
        UpstreamTlsMode::Disable => return Ok(None),
        UpstreamTlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider())))
            .with_no_client_auth(),
        UpstreamTlsMode::VerifyFull => {
            let ca = tls.ca_file.as_deref().ok_or_else(|| {
                StartError::tls(Path::new("upstream"), "verify-full needs ca_file")
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|e| StartError::tls(ca, e))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Some(TlsConnector::from(Arc::new(config))))
}

pub(crate) fn server_name(name: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(name.to_owned()).ok()
}

/// `require` mode, as libpq means it: encrypted, but the certificate's chain
/// and name are not checked. Handshake signatures still are.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -sha384`:
    /// signed with ecdsa-with-SHA384.
    const ECDSA_P384_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBqzCCATKgAwIBAgIUITepDHBl39aUTL79LMiBjXnS3qUwCgYIKoZIzj0EAwMw
DDEKMAgGA1UEAwwBdjAgFw0yNjExMjQyMjI3MTlaGA8yMTI2MTAzMTIyMjcxOVow
DDEKMAgGA1UEAwwBdjB2MBAGByqGSM49AgEGBSuBBAAiA2IABA+XQHJii+miFVM8
pWEBVABlhVp3KpIDDO5lmiP903aMKK4se3D/NZlwl//hWqUMo4pXBdYaaQXlYLWM
1bYqjpPlDZbvg9/90W8cBtDr7E1VSD5OPv24u9EwECmvVzWNWqNTMFEwHQYDVR0O
BBYEFItqsmpKWk++5Q03x+9ah6MN0Uv/MB8GA1UdIwQYMBaAFItqsmpKWk++5Q03
x+9ah6MN0Uv/MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwMDZwAwZAIwbdko
EIaHxVD1tpbnSOy9w5SmFL2TVJRmlj474xeNloO6GtznUj/WsC1qyK5UNzJNAjAf
FKUMPQrhdJRxKrvlTTkXkEeWLaztMUdTN7hgvrvxGG1hrp4iDJfs9AX1yU0PWDs=
-----END CERTIFICATE-----
";

    /// `openssl x509 -outform DER | sha384sum` of the certificate above.
    const ECDSA_P384_SHA384: &str = "f95fa74ee2275098fce234c0bda4d0f8081cff3018a3b9760e7bee65ed6999d485533e502db6136033c7fb4b44e5c2a3";

    /// `openssl req -x509 -newkey ed25519`: RFC 5929 names no hash for it.
    const ED25519_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBLjCB4aADAgECAhRhowd7l6KJqDWPCDpBSf3ZxNAt5DAFBgMrZXAwDDEKMAgG
A1UEAwwBdjAgFw0yNjExMjQyMjI3MTlaGA8yMTI2MTAzMTIyMjcxOVowDDEKMAgG
A1UEAwwBdjAqMAUGAytlcAMhAP+XVQ1xKrgv08J18wdzH55APuz8/eS1oM/yVqnN
kXioo1MwUTAdBgNVHQ4EFgQUvKEjulRwf8z5jNSePm1t6KgVNM4wHwYDVR0jBBgw
FoAUvKEjulRwf8z5jNSePm1t6KgVNM4wDwYDVR0TAQH/BAUwAwEB/zAFBgMrZXAD
QQBGtH74hXyeNZJPFkm8sAdV1cFCVO2LGcrOf8S9l9IJ0D26+fDBtvLHOhkDj0ZL
9bvYumkZWIsqKfOZBOQRfxYC
-----END CERTIFICATE-----
";

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A certificate reduced to what the walk reads: an empty tbsCertificate,
    /// the algorithm, an empty signature.
    fn skeleton(oid: &[u8]) -> Vec<u8> {
        let mut algorithm = vec![DER_SEQUENCE, oid.len() as u8 + 2, DER_OID, oid.len() as u8];
        algorithm.extend_from_slice(oid);
        let mut body = vec![DER_SEQUENCE, 0];
        body.extend_from_slice(&algorithm);
        body.extend_from_slice(&[0x03, 0]);
        let mut cert = vec![DER_SEQUENCE, body.len() as u8];
        cert.extend_from_slice(&body);
        cert
    }

    #[test]
    fn ecdsa_sha384_certificate_hashes_with_sha384() {
        let cert = der(ECDSA_P384_PEM);
        assert_eq!(signature_algorithm(&cert), Ok(ECDSA_SHA384));
        assert_eq!(
            hex(&tls_server_end_point(&cert).unwrap()),
            ECDSA_P384_SHA384
        );
    }

    #[test]
    fn ed25519_certificate_has_no_end_point() {
        let err = tls_server_end_point(&der(ED25519_PEM)).unwrap_err();
        assert_eq!(
            err,
            NoEndPoint::Algorithm {
                oid: "1.3.101.112".into()
            }
        );
    }

    #[test]
    fn each_signature_algorithm_picks_its_hash() {
        for (oid, len) in [
            (RSA_MD5, 32),
            (RSA_SHA1, 32),
            (RSA_SHA256, 32),
            (ECDSA_SHA256, 32),
            (RSA_SHA384, 48),
            (ECDSA_SHA384, 48),
            (RSA_SHA512, 64),
            (ECDSA_SHA512, 64),
        ] {
            let cert = skeleton(oid);
            let data = tls_server_end_point(&cert).unwrap();
            assert_eq!(data.len(), len, "{}", dotted(oid));
            if len == 32 {
                assert_eq!(data, Sha256::digest(&cert).to_vec());
            }
        }
        // RSASSA-PSS (1.2.840.113549.1.1.10): the hash is in the parameters,
        // and RFC 5929 does not say; PostgreSQL offers no binding either.
        let pss = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
        assert_eq!(
            tls_server_end_point(&skeleton(&pss)),
            Err(NoEndPoint::Algorithm {
                oid: "1.2.840.113549.1.1.10".into()
            })
        );
    }

    #[test]
    fn malformed_certificates_give_no_end_point_and_never_panic() {
        let cert = der(ECDSA_P384_PEM);
        for len in 0..cert.len() {
            assert_eq!(
                tls_server_end_point(&cert[..len]),
                Err(NoEndPoint::Malformed),
                "{len}"
            );
        }
        for bad in [
            &[0x30, 0x80, 0x30, 0x00][..],
            &[0x30, 0x85, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x3f, 0x01, 0x00],
            &[0x31, 0x00],
        ] {
            assert_eq!(tls_server_end_point(bad), Err(NoEndPoint::Malformed));
        }
        // Every single-byte corruption: any result but a panic.
        let mut copy = cert.clone();
        for i in 0..copy.len() {
            let saved = copy[i];
            for b in [0x00, 0x7f, 0x80, 0x84, 0xff] {
                copy[i] = b;
                let _ = tls_server_end_point(&copy);
            }
            copy[i] = saved;
        }
    }
}
