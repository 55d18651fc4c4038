//! Artifact metadata (name, version, sha256, size, object key); the bytes
//! live in the object store (`hood-artifacts`).
//!
//! Artifacts are immutable: a `(name, version)` pair names one content for
//! ever, so that every host that pulls it by name, version and SHA-256 gets
//! the same bytes. Recording the same content again is a no-op; recording
//! other content under a taken name and version is a conflict.
//!
//! [`ArtifactRecord`] is a domain type (`hood_domain::artifact`),
//! re-exported here.

use crate::StoreResult;
use async_trait::async_trait;

pub use hood_domain::artifact::ArtifactRecord;

/// What [`ArtifactCatalog::record_artifact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// A new row was written (with its `artifact.pushed` event).
    Created(ArtifactRecord),
    /// The same name, version and SHA-256 were already recorded: nothing
    /// changed; this is the row that was there first.
    Existing(ArtifactRecord),
}

impl RecordOutcome {
    /// The row now in the catalog, whichever way it got there.
    pub fn record(&self) -> &ArtifactRecord {
        match self {
            RecordOutcome::Created(r) | RecordOutcome::Existing(r) => r,
        }
    }

    pub fn into_record(self) -> ArtifactRecord {
        match self {
            RecordOutcome::Created(r) | RecordOutcome::Existing(r) => r,
        }
    }

    pub fn created(&self) -> bool {
        matches!(self, RecordOutcome::Created(_))
    }
}

/// The artifact catalog: which names and versions exist and what they hash
/// to. Installation-wide (artifacts belong to no organization).
#[async_trait]
pub trait ArtifactCatalog: Send + Sync {
    /// Records an artifact, with an `artifact.pushed` outbox event in the
    /// same transaction. Idempotent for identical content: when
    /// `(name, version)` exists with the same `sha256`, nothing is written
    /// and the existing row is returned as [`RecordOutcome::Existing`].
    /// `Conflict` when it exists with another `sha256` (artifacts are
    /// immutable). Safe under concurrent calls: exactly one creates.
    async fn record_artifact(&self, artifact: &ArtifactRecord) -> StoreResult<RecordOutcome>;
    async fn get_artifact(&self, name: &str, version: &str) -> StoreResult<Option<ArtifactRecord>>;
    /// Every artifact, by name, then oldest version first.
    async fn list_artifacts(&self) -> StoreResult<Vec<ArtifactRecord>>;
    /// The versions of one artifact, oldest first.
    async fn list_artifact_versions(&self, name: &str) -> StoreResult<Vec<ArtifactRecord>>;
    /// Whether any artifact still refers to `object_key` (content is shared
    /// between artifacts, so an object may only go when none does).
    async fn artifact_object_in_use(&self, object_key: &str) -> StoreResult<bool>;
}
