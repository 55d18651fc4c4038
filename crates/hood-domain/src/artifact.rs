//! Artifacts: immutable, content-addressed binaries that hosts pull by
//! name, version and SHA-256. The bytes live in the object store; this is
//! the catalog entry that names them.

use crate::{Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// One entry of the artifact catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// Artifact name (`anvil-linux-amd64`); validated by `hood-artifacts`.
    pub name: String,
    /// Upstream version string (`1.5.1`).
    pub version: String,
    /// SHA-256 of the content, 64 lowercase hex characters.
    pub sha256: String,
    /// Size of the content in bytes.
    pub size: u64,
    /// Where the bytes are in the object store (content-addressed, so
    /// several artifacts with identical content share one object).
    pub object_key: String,
    /// Media type served with the bytes.
    pub content_type: String,
    pub created_at: Timestamp,
    /// Who pushed it; `None` for pushes without a user (imports, tests).
    pub created_by: Option<UserId>,
}

impl ArtifactRecord {
    /// `name/version`: the aggregate id of the outbox events and the form
    /// used in messages.
    pub fn key(&self) -> String {
        format!("{}/{}", self.name, self.version)
    }
}
