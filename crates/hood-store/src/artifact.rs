//! Artifact metadata (name, version, sha256, size, object key); the bytes
//! live in the object store (`hood-artifacts`).
//!
//! Artifacts are immutable: a `(name, version)` pair names one content for
//! ever, so that every host that pulls it by name, version and SHA-256 gets
//! the same bytes. Recording the same content again is a no-op; recording
//! other content under a taken name and version is a conflict.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::event::DomainEvent;
use hood_domain::{Timestamp, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// One row of the artifact catalog.
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

/// The outbox event announcing a new artifact (metadata only).
pub(crate) fn artifact_pushed(a: &ArtifactRecord) -> DomainEvent {
    DomainEvent {
        subject: "artifact.pushed".into(),
        aggregate_type: "artifact".into(),
        aggregate_id: a.key(),
        payload: json!({
            "name": a.name,
            "version": a.version,
            "sha256": a.sha256,
            "size": a.size,
            "object_key": a.object_key,
            "content_type": a.content_type,
            "created_at": a.created_at,
            "created_by": a.created_by,
        }),
    }
}
