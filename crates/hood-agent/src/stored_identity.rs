//! The host identity on disk: key, certificate and CA in one JSON file
//! written atomically (temp file, fsync, rename), so a crash during renewal
//! can never leave a key that does not match its certificate.

use crate::error::AgentError;
use hood_domain::HostId;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub(crate) const IDENTITY_FILE: &str = "identity.json";

/// What the agent is: its host id, certificate, private key and the CA.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredIdentity {
    pub host_id: HostId,
    pub cert_pem: String,
    pub(crate) key_pem: String,
    pub ca_pem: String,
    /// Serial of `cert_pem` (hex), for logs and checks.
    pub serial: String,
    /// When this agent received the certificate (its own clock): renewal is
    /// scheduled from here, not from `not_before`, which the CA back-dates.
    pub obtained_at_ms: i64,
    pub not_after_ms: i64,
    /// The control plane's task-signing key (base64 Ed25519), pinned at
    /// enrollment; absent for an agent enrolled by a control plane that
    /// signed nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_key: Option<String>,
}

impl std::fmt::Debug for StoredIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredIdentity")
            .field("host_id", &self.host_id)
            .field("serial", &self.serial)
            .field("not_after_ms", &self.not_after_ms)
            .finish_non_exhaustive()
    }
}

impl StoredIdentity {
    pub(crate) fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// When renewal is due, as Unix ms.
    pub fn renew_at_ms(&self, fraction: f64) -> i64 {
        let life = (self.not_after_ms - self.obtained_at_ms).max(0);
        // Lifetimes are at most years in ms: well inside f64's exact range.
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let offset = (life as f64 * fraction.clamp(0.05, 0.95)) as i64;
        self.obtained_at_ms + offset
    }

    pub(crate) fn load(dir: &Path) -> Result<Option<Self>, AgentError> {
        let path = dir.join(IDENTITY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| AgentError::Corrupt(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AgentError::io(path, e)),
        }
    }

    pub(crate) fn save(&self, dir: &Path) -> Result<(), AgentError> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| AgentError::Corrupt(format!("serialising identity: {e}")))?;
        write_private(&dir.join(IDENTITY_FILE), &bytes)
    }
}

/// Writes `bytes` to `path` privately and atomically (the one secret writer).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    hood_files::write_private(path, bytes).map_err(|e| AgentError::io(path, e))
}
