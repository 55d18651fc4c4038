//! The CA itself: generation, sealed persistence, and signing.

use crate::peer::HOST_URI_PREFIX;
use crate::{to_offset, to_timestamp, PkiError, PkiResult};
use hood_domain::{HostId, Timestamp};
use hood_identity::master_key::MasterKey;
use rand::RngCore as _;
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use std::net::IpAddr;
use std::time::Duration;

/// Additional data binding the sealed CA key to its purpose.
pub const CA_SEAL_AAD: &[u8] = b"pki-ca";
/// Host certificates live 30 days by default; agents renew at 2/3.
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// The CA outlives many host certificates; rotating it is a later concern.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start a little in the past so a host whose clock runs
/// slightly behind still accepts them.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The installation's CA: certificate plus signing key (in memory only).
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A certificate issued to a host (public data; the key stays on the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub host_id: HostId,
    pub cert_pem: String,
    /// Lower-case hex, as recorded in `host_certificates.serial`.
    pub serial: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

/// A server (or client) certificate with its private key, as PEM.
#[derive(Clone)]
pub struct ServerIdentity {
    pub cert_pem: String,
    key_pem: String,
}

impl ServerIdentity {
    /// The private key, PEM. Handle with care: never log it.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A random, positive 128-bit serial. The first byte is kept in
/// `0x40..=0x7f` so the DER INTEGER is exactly these 16 bytes (no sign or
/// padding byte), and the hex we store equals what a parser reads back.
fn random_serial() -> (SerialNumber, String) {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x3f) | 0x40;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    (SerialNumber::from_slice(&bytes), hex)
}

fn validity(now: Timestamp, lifetime: Duration) -> PkiResult<(Timestamp, Timestamp)> {
    let skew = i64::try_from(CLOCK_SKEW.as_secs()).unwrap_or(0);
    let life = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 1000);
    // Whole seconds: X.509 has no finer precision, and the stored
    // `not_after` must equal the certificate's.
    let now_s = Timestamp(now.secs() * 1000);
    Ok((now_s.plus_secs(-skew), now_s.plus_secs(life.max(1))))
}

fn ia5(s: String) -> PkiResult<Ia5String> {
    Ia5String::try_from(s).map_err(PkiError::Rcgen)
}

impl Ca {
    /// A new self-signed CA (ECDSA P-256).
    pub fn generate(now: Timestamp) -> PkiResult<Self> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Hood internal CA");
        dn.push(DnType::OrganizationName, "Hood");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let (not_before, not_after) = validity(now, CA_VALIDITY)?;
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;
        params.serial_number = Some(random_serial().0);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Rebuilds a CA from its certificate and private key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> PkiResult<Self> {
        let key = KeyPair::from_pem(key_pem)
            .map_err(|_| PkiError::BadKey("CA private key does not parse".into()))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            issuer,
        })
    }

    /// The private key sealed under the master key (bound to
    /// [`CA_SEAL_AAD`]): the only form in which the key is ever stored.
    pub fn sealed_key(&self, master: &MasterKey) -> PkiResult<Vec<u8>> {
        Ok(master.seal(self.issuer.key().serialize_pem().as_bytes(), CA_SEAL_AAD)?)
    }

    /// Rebuilds a stored CA: its certificate and its key as sealed by
    /// [`Self::sealed_key`].
    pub fn open(cert_pem: &str, sealed_key: &[u8], master: &MasterKey) -> PkiResult<Self> {
        let key = master.open(sealed_key, CA_SEAL_AAD)?;
        let key = String::from_utf8(key)
            .map_err(|_| PkiError::BadKey("sealed CA key is not PEM".into()))?;
        Self::from_pem(cert_pem, &key)
    }

    /// The CA certificate (PEM): what agents and the gateway trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// SHA-256 (hex) of a CSR's public key: identifies the key pair that
    /// asks, so a lost enrollment answer can be re-issued to the same key
    /// and to no other.
    pub fn csr_key_fingerprint(csr_pem: &str) -> PkiResult<String> {
        use rcgen::PublicKeyData;
        use sha2::Digest;
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        Ok(hex::encode(sha2::Sha256::digest(
            csr.public_key.der_bytes(),
        )))
    }

    /// Signs a host's CSR. Only the CSR's public key is used: subject, SANs,
    /// key usages and validity are set here, so an agent cannot ask for a
    /// name or a purpose it is not entitled to.
    pub fn sign_host_csr(
        &self,
        host: HostId,
        csr_pem: &str,
        lifetime: Duration,
        now: Timestamp,
    ) -> PkiResult<IssuedCert> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host.to_string());
        dn.push(DnType::OrganizationName, "Hood hosts");
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(ia5(format!("{HOST_URI_PREFIX}{host}"))?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let (not_before, not_after) = validity(now, lifetime)?;
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;
        let (serial_number, serial) = random_serial();
        params.serial_number = Some(serial_number);
        csr.params = params;
        let cert = csr.signed_by(&self.issuer)?;
        Ok(IssuedCert {
            host_id: host,
            cert_pem: cert.pem(),
            serial,
            not_before: to_timestamp(to_offset(not_before)?),
            not_after: to_timestamp(to_offset(not_after)?),
        })
    }

    /// A server certificate for the agent gateway, valid for `names` (IP
    /// addresses become IP SANs, anything else DNS SANs) plus `127.0.0.1` and
    /// `localhost`. Issued at each gateway start with a fresh key that never
    /// leaves the process.
    pub fn issue_server_identity(
        &self,
        names: &[String],
        lifetime: Duration,
        now: Timestamp,
    ) -> PkiResult<ServerIdentity> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Hood agent gateway");
        params.distinguished_name = dn;
        let mut all: Vec<String> = vec!["127.0.0.1".into(), "localhost".into()];
        for n in names {
            if !all.contains(n) {
                all.push(n.clone());
            }
        }
        let mut sans = Vec::with_capacity(all.len());
        for name in all {
            match name.parse::<IpAddr>() {
                Ok(ip) => sans.push(SanType::IpAddress(ip)),
                Err(_) => sans.push(SanType::DnsName(ia5(name)?)),
            }
        }
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let (not_before, not_after) = validity(now, lifetime)?;
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;
        params.serial_number = Some(random_serial().0);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerIdentity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// An agent's key pair (ECDSA P-256), generated on the host.
pub struct HostKey {
    key: KeyPair,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostKey(..)")
    }
}

impl HostKey {
    pub fn generate() -> PkiResult<Self> {
        Ok(Self {
            key: KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        })
    }

    pub fn from_pem(key_pem: &str) -> PkiResult<Self> {
        let key = KeyPair::from_pem(key_pem)
            .map_err(|_| PkiError::BadKey("host private key does not parse".into()))?;
        Ok(Self { key })
    }

    /// The private key, PEM, for the agent's key file (mode 0600).
    pub fn private_key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A PKCS#10 CSR (PEM) for this key. The CA ignores everything in it but
    /// the public key; the CN is only a hint for humans reading it.
    pub fn csr_pem(&self, hint: &str) -> PkiResult<String> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, hint);
        params.distinguished_name = dn;
        Ok(params.serialize_request(&self.key)?.pem()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::PeerIdentity;

    const NOW: Timestamp = Timestamp(1_760_000_000_123);

    fn der_of(pem: &str) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject as _;
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn signs_a_csr_for_the_host_ignoring_requested_names() {
        let ca = Ca::generate(NOW).unwrap();
        let host = HostId::from_uuid(uuid::Uuid::now_v7());
        let key = HostKey::generate().unwrap();
        let csr = key.csr_pem("someone-else").unwrap();
        let issued = ca
            .sign_host_csr(host, &csr, Duration::from_secs(3600), NOW)
            .unwrap();
        assert_eq!(issued.host_id, host);
        assert_eq!(issued.not_after, Timestamp(NOW.secs() * 1000 + 3_600_000));
        let peer = PeerIdentity::from_der(&der_of(&issued.cert_pem)).unwrap();
        assert_eq!(peer.host_id, host);
        assert_eq!(peer.serial, issued.serial);
        assert_eq!(peer.not_after, issued.not_after);
    }

    #[test]
    fn a_tampered_csr_is_refused() {
        let ca = Ca::generate(NOW).unwrap();
        let host = HostId::from_uuid(uuid::Uuid::now_v7());
        assert!(matches!(
            ca.sign_host_csr(host, "not a csr", Duration::from_secs(60), NOW),
            Err(PkiError::BadCsr(_))
        ));
    }

    #[test]
    fn ca_round_trips_through_pem() {
        let ca = Ca::generate(NOW).unwrap();
        let again = Ca::from_pem(ca.cert_pem(), &ca.issuer.key().serialize_pem()).unwrap();
        let host = HostId::from_uuid(uuid::Uuid::now_v7());
        let csr = HostKey::generate().unwrap().csr_pem("h").unwrap();
        again
            .sign_host_csr(host, &csr, Duration::from_secs(60), NOW)
            .unwrap();
    }

    #[test]
    fn debug_never_prints_keys() {
        let ca = Ca::generate(NOW).unwrap();
        assert!(!format!("{ca:?}").contains("PRIVATE"));
        let id = ca
            .issue_server_identity(&[], Duration::from_secs(60), NOW)
            .unwrap();
        assert!(!format!("{id:?}").contains("PRIVATE"));
        let key = HostKey::generate().unwrap();
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }
}
