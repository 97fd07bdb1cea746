//! rustls configuration: the server side offered to clients, and the client
//! side used towards upstreams.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
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

pub(crate) fn acceptor(files: &ServerTls) -> Result<TlsAcceptor, StartError> {
    let certs = read_certs(&files.cert_file)?;
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
    Ok(TlsAcceptor::from(Arc::new(config)))
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
