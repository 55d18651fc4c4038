//! Who is on the other end: the host named by a verified client certificate.

use crate::{to_timestamp, PkiError, PkiResult};
use hood_domain::{HostId, Timestamp};
use x509_parser::extensions::GeneralName;

/// Scheme of the URI SAN that names a host: `hood-host:{uuid}`.
pub const HOST_URI_PREFIX: &str = "hood-host:";

/// The host a client certificate was issued to. Only meaningful for a
/// certificate that rustls has already verified against the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub host_id: HostId,
    /// Lower-case hex, as recorded in `host_certificates.serial`.
    pub serial: String,
    pub not_after: Timestamp,
}

impl PeerIdentity {
    /// Reads host id, serial and expiry from a DER certificate. The subject
    /// CN and the `hood-host:` URI SAN must both be present and agree.
    pub fn from_der(der: &[u8]) -> PkiResult<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| PkiError::BadCert(format!("does not parse: {e}")))?;
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .ok_or_else(|| PkiError::BadCert("no subject common name".into()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| PkiError::BadCert(format!("bad SAN extension: {e}")))?
            .and_then(|ext| {
                ext.value.general_names.iter().find_map(|n| match n {
                    GeneralName::URI(uri) => uri.strip_prefix(HOST_URI_PREFIX),
                    _ => None,
                })
            })
            .ok_or_else(|| PkiError::BadCert("no host URI SAN".into()))?;
        if san != cn {
            return Err(PkiError::BadCert(
                "subject CN and host URI SAN disagree".into(),
            ));
        }
        let host_id = san
            .parse::<HostId>()
            .map_err(|_| PkiError::BadCert("host URI SAN is not a host id".into()))?;
        let serial: String = cert
            .tbs_certificate
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            host_id,
            serial,
            not_after: to_timestamp(cert.validity().not_after.to_datetime()),
        })
    }

    /// Reads the first certificate of a PEM bundle.
    pub fn from_pem(pem: &str) -> PkiResult<Self> {
        use rustls::pki_types::pem::PemObject as _;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| PkiError::BadCert(format!("PEM: {e}")))?;
        Self::from_der(&der)
    }
}
