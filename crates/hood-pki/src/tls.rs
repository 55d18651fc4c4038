//! rustls configurations for both ends of the agent protocol.
//!
//! TLS 1.3 only (both ends are Hood) and the `ring` provider passed
//! explicitly, so nothing depends on a process-wide default provider. ALPN is
//! `h2` because gRPC runs over HTTP/2.

use crate::{PkiError, PkiResult};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &str) -> PkiResult<Vec<CertificateDer<'static>>> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let certs = certs.map_err(|e| PkiError::BadCert(format!("PEM: {e}")))?;
    if certs.is_empty() {
        return Err(PkiError::BadCert("no certificate in PEM".into()));
    }
    Ok(certs)
}

fn private_key(pem: &str) -> PkiResult<PrivateKeyDer<'static>> {
    // Never echo the input or the parser's view of it.
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| PkiError::BadKey("private key PEM does not parse".into()))
}

fn roots(ca_pem: &str) -> PkiResult<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in certs(ca_pem)? {
        roots.add(cert)?;
    }
    Ok(Arc::new(roots))
}

/// The gateway's TLS configuration: serves `cert_pem`/`key_pem`, verifies
/// client certificates against `ca_pem`, and lets clients without one
/// through (for `Enroll`); a certificate that is presented but does not
/// verify (another CA, expired) fails the handshake.
pub fn server_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> PkiResult<Arc<ServerConfig>> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert_pem)?, private_key(key_pem)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The agent's TLS configuration: trusts only `ca_pem` for the gateway and
/// presents `identity` (certificate PEM, private key PEM) when given —
/// `None` for `Enroll`, before the host has a certificate.
pub fn client_config(ca_pem: &str, identity: Option<(&str, &str)>) -> PkiResult<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca_pem)?);
    let mut config = match identity {
        Some((cert_pem, key_pem)) => {
            builder.with_client_auth_cert(certs(cert_pem)?, private_key(key_pem)?)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}
