//! Hosts: the machines that run workloads, the one-time tokens their agents
//! enroll with, the certificates the internal CA issues them, and the CA
//! itself (public data and sealed key only).

use crate::lifecycle::HostState;
use crate::{HostId, OrgId, Timestamp};

/// A machine that runs workloads, with the agent that manages it.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub id: HostId,
    /// `None` for platform hosts shared by all organizations.
    pub org_id: Option<OrgId>,
    /// Provider that created it (`local`, `hetzner`, …).
    pub provider: String,
    pub region: String,
    pub state: HostState,
    /// Network address the provider reports, if any.
    pub address: Option<String>,
    /// Provider-specific handle (sandbox path, cloud server id, …), JSON.
    pub provider_ref: serde_json::Value,
    /// Host name the agent reported when it enrolled.
    pub hostname: Option<String>,
    pub agent_version: Option<String>,
    /// Last heartbeat (or session start) seen from the agent.
    pub last_seen_at: Option<Timestamp>,
    /// Start of the agent's current session; `None` when none is open.
    pub connected_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A one-time enrollment token. Only the SHA-256 (hex) of the secret is
/// stored, so a database dump cannot enroll a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    pub token_hash: String,
    pub host_id: HostId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    /// SHA-256 (hex) of the public key whose CSR spent the token.
    pub key_sha256: Option<String>,
}

/// A certificate issued to a host by the internal CA (public data only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCertificate {
    /// Serial number, lower-case hex; unique.
    pub serial: String,
    pub host_id: HostId,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub issued_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// The installation's internal CA. The private key is sealed under the
/// master key by the caller; the store never sees it in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaRecord {
    pub cert_pem: String,
    pub sealed_key: Vec<u8>,
    pub created_at: Timestamp,
}
