// Included into `sqlite.rs` and `postgres.rs` (see `repo_common.rs`): one
// query text for both dialects.

use crate::artifact::{ArtifactRecord, RecordOutcome};

const ARTIFACT_COLUMNS: &str =
    "name, version, sha256, size, object_key, content_type, created_at, created_by";

fn artifact_from_row(row: &DbRow) -> StoreResult<ArtifactRecord> {
    let size: i64 = col(row, "size")?;
    let created_by: Option<String> = col(row, "created_by")?;
    Ok(ArtifactRecord {
        name: col(row, "name")?,
        version: col(row, "version")?,
        sha256: col(row, "sha256")?,
        size: u64::try_from(size)
            .map_err(|_| StoreError::Corrupt(format!("artifacts.size: negative ({size})")))?,
        object_key: col(row, "object_key")?,
        content_type: col(row, "content_type")?,
        created_at: Timestamp(col(row, "created_at")?),
        created_by: created_by
            .map(|u| codec::parse_id("artifacts.created_by", &u))
            .transpose()?,
    })
}

async fn fetch_artifact(
    conn: &mut DbConn,
    name: &str,
    version: &str,
) -> StoreResult<Option<ArtifactRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE name = $1 AND version = $2"
    ))
    .bind(name)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(artifact_from_row).transpose()
}

#[async_trait]
impl crate::artifact::ArtifactCatalog for StoreImpl {
    /// `ON CONFLICT DO NOTHING` arbitrates concurrent pushes: on PostgreSQL
    /// a second insert waits for the first to commit and then inserts
    /// nothing; on SQLite `BEGIN IMMEDIATE` serialises them. The loser then
    /// reads the winner's row, which decides between "same content" and
    /// "conflict".
    async fn record_artifact(&self, artifact: &ArtifactRecord) -> StoreResult<RecordOutcome> {
        let size = i64::try_from(artifact.size).map_err(|_| {
            StoreError::Corrupt(format!("artifact size {} does not fit", artifact.size))
        })?;
        let mut tx = begin_write(&self.pool).await?;
        let inserted = sqlx::query(
            "INSERT INTO artifacts (name, version, sha256, size, object_key, content_type, \
             created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (name, version) DO NOTHING",
        )
        .bind(&artifact.name)
        .bind(&artifact.version)
        .bind(&artifact.sha256)
        .bind(size)
        .bind(&artifact.object_key)
        .bind(&artifact.content_type)
        .bind(artifact.created_at.millis())
        .bind(artifact.created_by.map(|u| u.to_string()))
        .execute(&mut *tx)
        .await
        .map_err(|e| codec::write_error(e, "artifact"))?
        .rows_affected();
        if inserted > 0 {
            insert_event(&mut tx, &crate::artifact::artifact_pushed(artifact)).await?;
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
        let mut conn = self.pool.acquire().await?;
        fetch_artifact(&mut conn, name, version).await
    }

    async fn list_artifacts(&self) -> StoreResult<Vec<ArtifactRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts ORDER BY name, created_at, version"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(artifact_from_row).collect()
    }

    async fn list_artifact_versions(&self, name: &str) -> StoreResult<Vec<ArtifactRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE name = $1 ORDER BY created_at, version"
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(artifact_from_row).collect()
    }

    async fn artifact_object_in_use(&self, object_key: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT count(*) AS n FROM artifacts WHERE object_key = $1")
            .bind(object_key)
            .fetch_one(&self.pool)
            .await?;
        Ok(col::<i64>(&row, "n")? > 0)
    }
}
