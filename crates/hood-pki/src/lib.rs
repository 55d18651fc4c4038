//! Hood's internal certificate authority and the TLS configurations of the
//! agent protocol.
//!
//! * [`Ca`]: one ECDSA P-256 CA per installation. Its private key leaves
//!   memory only sealed under the master key ([`Ca::sealed_key`],
//!   [`Ca::open`]); storing it is the control plane's business
//!   (`hood-gateway`), so the agent, which also uses this crate, carries no
//!   database code. It signs host certificates from the agent's CSR
//!   ([`Ca::sign_host_csr`]) and the gateway's server certificate
//!   ([`Ca::issue_server_identity`]).
//! * [`server_config`] / [`client_config`]: rustls configurations for mutual
//!   TLS. Client certificates are *optional* at the TLS layer because
//!   `Enroll` is called before the agent has one; every other RPC requires a
//!   verified certificate and checks it per call ([`PeerIdentity`]).
//! * [`HostKey`]: the agent side — a fresh key pair and its CSR. The private
//!   key never leaves the host.
//!
//! A host certificate names its host twice, as subject CN and as the URI SAN
//! `hood-host:{uuid}`; [`PeerIdentity::from_der`] requires both to agree.

mod ca;
mod peer;
mod tls;

pub use ca::{Ca, HostKey, IssuedCert, ServerIdentity, CA_SEAL_AAD, DEFAULT_LEAF_VALIDITY};
pub use peer::{PeerIdentity, HOST_URI_PREFIX};
pub use tls::{client_config, server_config};

/// PKI failures. Messages name what failed, never key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate operation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The CSR does not parse, or its signature does not verify.
    #[error("invalid certificate signing request: {0}")]
    BadCsr(String),
    /// A certificate does not parse or does not name a host.
    #[error("invalid certificate: {0}")]
    BadCert(String),
    /// Key material does not parse (the message never includes it).
    #[error("invalid key: {0}")]
    BadKey(String),
    /// Sealing or opening the CA key under the master key failed.
    #[error("CA key envelope: {0}")]
    Envelope(#[from] hood_identity::IdentityError),
}

pub type PkiResult<T> = Result<T, PkiError>;

/// Converts a certificate time to a domain timestamp.
fn to_timestamp(t: time::OffsetDateTime) -> hood_domain::Timestamp {
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    hood_domain::Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Converts a domain timestamp to a certificate time (second precision, as
/// X.509 stores it).
fn to_offset(ts: hood_domain::Timestamp) -> PkiResult<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(ts.secs())
        .map_err(|e| PkiError::BadCert(format!("timestamp out of range: {e}")))
}
