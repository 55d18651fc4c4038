//! What the gateway serves but does not own: artifacts (the object store)
//! and node data keys (the node store plus the master key). Other crates
//! implement these traits; the gateway only authenticates and streams.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use hood_domain::{HostId, NodeId};

/// Why an artifact could not be served. The first three are permanent
/// until an operator acts (the agent is told exactly what is wrong); only
/// [`Unavailable`](Self::Unavailable) is worth retrying as such.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactSourceError {
    /// The catalog has no such name and version.
    #[error("artifact {name} {version} is not in the artifact catalog")]
    NotFound { name: String, version: String },
    /// The catalog has it, the object store does not: pushing the artifact
    /// again restores it.
    #[error("artifact object {name} {version} (sha256 {sha256}) missing in the artifact store")]
    ObjectMissing {
        name: String,
        version: String,
        sha256: String,
    },
    /// The stored bytes do not match the catalog (size or checksum).
    #[error("artifact {name} {version} is damaged in the artifact store")]
    Damaged { name: String, version: String },
    /// The artifact store failed (disk, network, permissions); the detail
    /// is logged by the gateway, not sent to agents.
    #[error("artifact store unavailable: {0}")]
    Unavailable(String),
}

/// An open artifact: what it must hash to and weigh, and its bytes.
pub struct ArtifactStream {
    /// Lower-case hex SHA-256 of the whole artifact, from the catalog (the
    /// agent verifies the bytes against it).
    pub sha256: String,
    pub size: u64,
    pub body: BoxStream<'static, Result<Bytes, ArtifactSourceError>>,
}

impl std::fmt::Debug for ArtifactStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStream")
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// The control plane's artifact store, as the gateway sees it.
#[async_trait]
pub trait ArtifactSource: Send + Sync + 'static {
    async fn open(&self, name: &str, version: &str) -> Result<ArtifactStream, ArtifactSourceError>;
}

/// A node's data key in memory. `Debug` never prints it, and the bytes are
/// overwritten when dropped (best effort: no `unsafe`, no extra crate).
pub struct DataKey(Vec<u8>);

impl DataKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// Why a node key could not be served.
#[derive(Debug, thiserror::Error)]
pub enum NodeKeyError {
    #[error("node key source failed: {0}")]
    Other(String),
}

/// Unseals node data keys for the hosts they are placed on.
#[async_trait]
pub trait NodeKeySource: Send + Sync + 'static {
    /// The data key of `node`, only if the node is placed on `host`;
    /// `Ok(None)` otherwise (or when the node has no key material), which
    /// the gateway reports as "not found" so that no other host learns
    /// whether the node exists.
    async fn data_key(&self, host: HostId, node: NodeId) -> Result<Option<DataKey>, NodeKeyError>;
}

/// Why a node's snapshot could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotSourceError {
    #[error("snapshot source failed: {0}")]
    Other(String),
}

/// The control plane's snapshot storage, as the gateway sees it.
#[async_trait]
pub trait SnapshotSource: Send + Sync + 'static {
    /// The chunk store of snapshot `name` of `node`, only if the node is
    /// placed on `host`; `Ok(None)` otherwise (reported as "not found", so
    /// no other host learns whether the node exists).
    async fn open(
        &self,
        host: HostId,
        node: NodeId,
        name: &str,
    ) -> Result<Option<std::sync::Arc<dyn hood_snapshot::ChunkStore>>, SnapshotSourceError>;
}
