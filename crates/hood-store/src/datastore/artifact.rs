//! [`ArtifactCatalog`] for [`SqlStore`].

use super::outbox::insert_event;
use super::SqlStore;
use crate::artifact::{ArtifactCatalog, ArtifactRecord, RecordOutcome};
use crate::codec::{self, events};
use crate::db::{query, query_as, query_scalar, Executor};
use crate::model::artifact::{ArtifactRow, ARTIFACT_COLUMNS};
use crate::model::{all, one};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;

async fn fetch_artifact<'e>(
    on: impl Into<Executor<'e>>,
    name: &str,
    version: &str,
) -> StoreResult<Option<ArtifactRecord>> {
    let row = query_as::<ArtifactRow>(format!(
        "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE name = $1 AND version = $2"
    ))
    .bind(name)
    .bind(version)
    .fetch_optional(on)
    .await?;
    one(row)
}

#[async_trait]
impl ArtifactCatalog for SqlStore {
    /// `ON CONFLICT DO NOTHING` arbitrates concurrent pushes: on PostgreSQL
    /// a second insert waits for the first to commit and then inserts
    /// nothing; on SQLite `BEGIN IMMEDIATE` serialises them. The loser then
    /// reads the winner's row, which decides between "same content" and
    /// "conflict".
    async fn record_artifact(&self, artifact: &ArtifactRecord) -> StoreResult<RecordOutcome> {
        let size = i64::try_from(artifact.size).map_err(|_| {
            StoreError::Corrupt(format!("artifact size {} does not fit", artifact.size))
        })?;
        let mut tx = self.pool.begin_write().await?;
        let inserted = query(format!(
            "INSERT INTO artifacts ({ARTIFACT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (name, version) DO NOTHING"
        ))
        .bind(&artifact.name)
        .bind(&artifact.version)
        .bind(&artifact.sha256)
        .bind(size)
        .bind(&artifact.object_key)
        .bind(&artifact.content_type)
        .bind(artifact.created_at.millis())
        .bind(artifact.created_by.map(|u| u.to_string()))
        .execute(&mut tx)
        .await
        .map_err(|e| codec::write_error(e, "artifact"))?;
        if inserted > 0 {
            insert_event(&mut tx, &events::artifact_pushed(artifact)).await?;
            tx.commit().await?;
            return Ok(RecordOutcome::Created(artifact.clone()));
        }
        let existing = fetch_artifact(&mut tx, &artifact.name, &artifact.version).await?;
        tx.rollback().await?;
        match existing {
            Some(e) if e.sha256 == artifact.sha256 => Ok(RecordOutcome::Existing(e)),
            Some(e) => Err(StoreError::Conflict(format!(
                "artifact {} with sha256 {}",
                e.key(),
                e.sha256
            ))),
            // Only a concurrent delete could get here; artifacts are never
            // deleted, so this is not a state the catalog can be in.
            None => Err(StoreError::Corrupt(format!(
                "artifact {} neither inserted nor found",
                artifact.key()
            ))),
        }
    }

    async fn get_artifact(&self, name: &str, version: &str) -> StoreResult<Option<ArtifactRecord>> {
        fetch_artifact(&self.pool, name, version).await
    }

    async fn list_artifacts(&self) -> StoreResult<Vec<ArtifactRecord>> {
        let rows = query_as::<ArtifactRow>(format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts ORDER BY name, created_at, version"
        ))
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn list_artifact_versions(&self, name: &str) -> StoreResult<Vec<ArtifactRecord>> {
        let rows = query_as::<ArtifactRow>(format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE name = $1 ORDER BY created_at, version"
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn artifact_object_in_use(&self, object_key: &str) -> StoreResult<bool> {
        let n = query_scalar::<i64>("SELECT count(*) AS n FROM artifacts WHERE object_key = $1")
            .bind(object_key)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}
