//! Rows of the artifact catalog.

use crate::codec;
use crate::StoreError;
use hood_domain::artifact::ArtifactRecord;
use hood_domain::Timestamp;

pub(crate) const ARTIFACT_COLUMNS: &str =
    "name, version, sha256, size, object_key, content_type, created_at, created_by";

#[derive(sqlx::FromRow)]
pub(crate) struct ArtifactRow {
    name: String,
    version: String,
    sha256: String,
    size: i64,
    object_key: String,
    content_type: String,
    created_at: i64,
    created_by: Option<String>,
}

impl TryFrom<ArtifactRow> for ArtifactRecord {
    type Error = StoreError;
    fn try_from(r: ArtifactRow) -> Result<Self, StoreError> {
        Ok(ArtifactRecord {
            name: r.name,
            version: r.version,
            sha256: r.sha256,
            size: u64::try_from(r.size).map_err(|_| {
                StoreError::Corrupt(format!("artifacts.size: negative ({})", r.size))
            })?,
            object_key: r.object_key,
            content_type: r.content_type,
            created_at: Timestamp(r.created_at),
            created_by: codec::parse_opt_id("artifacts.created_by", r.created_by.as_deref())?,
        })
    }
}
