//! [`StorageStore`] for [`SqlStore`].

use super::audit::{audit_value as value, insert_audit, Audited};
use super::SqlStore;
use crate::codec::{parse_id, write_error};
use crate::db::{query, query_as, Tx};
use crate::storage::{
    ObjectListing, ObjectWritten, StorageStore, SweepableBlob, UploadListing, WriteRefused,
};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::audit::AuditContext;
use hood_domain::storage::{
    prefix_upper_bound, MultipartUpload, Namespace, NamespaceName, NamespaceState, ObjectKey,
    Quota, StoredObject, UploadPart, Usage, Visibility,
};
use hood_domain::{BlobId, NamespaceId, OrgId, Timestamp, UploadId};

const NS_COLUMNS: &str = "id, org_id, name, visibility, max_bytes, max_objects, used_bytes, \
                          object_count, state, created_at";
const OBJECT_COLUMNS: &str =
    "namespace_id, object_key, blob_id, size, sha256, md5, content_type, created_at";

#[derive(sqlx::FromRow)]
struct NamespaceRow {
    id: String,
    org_id: String,
    name: String,
    visibility: String,
    max_bytes: i64,
    max_objects: i64,
    used_bytes: i64,
    object_count: i64,
    state: String,
    created_at: i64,
}

fn unsigned(column: &str, v: i64) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column} is negative: {v}")))
}

fn signed(column: &str, v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column} beyond i64: {v}")))
}

impl TryFrom<NamespaceRow> for Namespace {
    type Error = StoreError;
    fn try_from(r: NamespaceRow) -> StoreResult<Self> {
        Ok(Namespace {
            id: parse_id("id", &r.id)?,
            org_id: parse_id("org_id", &r.org_id)?,
            name: NamespaceName::parse(&r.name)
                .map_err(|e| StoreError::Corrupt(format!("namespace name `{}`: {e}", r.name)))?,
            visibility: Visibility::parse(&r.visibility)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            quota: Quota {
                max_bytes: unsigned("max_bytes", r.max_bytes)?,
                max_objects: unsigned("max_objects", r.max_objects)?,
            },
            usage: Usage {
                bytes: unsigned("used_bytes", r.used_bytes)?,
                objects: unsigned("object_count", r.object_count)?,
            },
            state: NamespaceState::parse(&r.state)
                .ok_or_else(|| StoreError::Corrupt(format!("namespace state `{}`", r.state)))?,
            created_at: Timestamp::from_millis(r.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct ObjectRow {
    namespace_id: String,
    object_key: String,
    blob_id: String,
    size: i64,
    sha256: String,
    md5: Option<String>,
    content_type: String,
    created_at: i64,
}

impl TryFrom<ObjectRow> for StoredObject {
    type Error = StoreError;
    fn try_from(r: ObjectRow) -> StoreResult<Self> {
        Ok(StoredObject {
            namespace_id: parse_id("namespace_id", &r.namespace_id)?,
            key: ObjectKey::parse(&r.object_key)
                .map_err(|e| StoreError::Corrupt(format!("object key: {e}")))?,
            blob_id: parse_id("blob_id", &r.blob_id)?,
            size: unsigned("size", r.size)?,
            sha256: r.sha256,
            md5: r.md5,
            content_type: r.content_type,
            created_at: Timestamp::from_millis(r.created_at),
        })
    }
}

/// The namespace's row, locked for the rest of `tx`.
async fn lock_namespace(tx: &mut Tx<'_>, id: NamespaceId) -> StoreResult<Option<Namespace>> {
    query_as::<NamespaceRow>(format!(
        "SELECT {NS_COLUMNS} FROM storage_namespaces WHERE id = $1{}",
        tx.backend().for_update()
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *tx)
    .await?
    .map(Namespace::try_from)
    .transpose()
}

async fn lock_object(
    tx: &mut Tx<'_>,
    ns: NamespaceId,
    key: &ObjectKey,
) -> StoreResult<Option<StoredObject>> {
    query_as::<ObjectRow>(format!(
        "SELECT {OBJECT_COLUMNS} FROM storage_objects WHERE namespace_id = $1 AND object_key = $2{}",
        tx.backend().for_update()
    ))
    .bind(ns.to_string())
    .bind(key.as_str())
    .fetch_optional(&mut *tx)
    .await?
    .map(StoredObject::try_from)
    .transpose()
}

const UPLOAD_COLUMNS: &str = "id, namespace_id, object_key, content_type, created_at";
const PART_COLUMNS: &str = "upload_id, part_number, blob_id, size, sha256, md5";

#[derive(sqlx::FromRow)]
struct UploadRow {
    id: String,
    namespace_id: String,
    object_key: String,
    content_type: String,
    created_at: i64,
}

impl TryFrom<UploadRow> for MultipartUpload {
    type Error = StoreError;
    fn try_from(r: UploadRow) -> StoreResult<Self> {
        Ok(MultipartUpload {
            id: parse_id("id", &r.id)?,
            namespace_id: parse_id("namespace_id", &r.namespace_id)?,
            key: ObjectKey::parse(&r.object_key)
                .map_err(|e| StoreError::Corrupt(format!("upload key: {e}")))?,
            content_type: r.content_type,
            created_at: Timestamp::from_millis(r.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct PartRow {
    upload_id: String,
    part_number: i64,
    blob_id: String,
    size: i64,
    sha256: String,
    md5: Option<String>,
}

impl TryFrom<PartRow> for UploadPart {
    type Error = StoreError;
    fn try_from(r: PartRow) -> StoreResult<Self> {
        Ok(UploadPart {
            upload_id: parse_id("upload_id", &r.upload_id)?,
            number: u32::try_from(r.part_number)
                .map_err(|_| StoreError::Corrupt(format!("part number {}", r.part_number)))?,
            blob_id: parse_id("blob_id", &r.blob_id)?,
            size: unsigned("size", r.size)?,
            sha256: r.sha256,
            md5: r.md5,
        })
    }
}

async fn parts_of(tx: &mut Tx<'_>, id: UploadId) -> StoreResult<Vec<UploadPart>> {
    query_as::<PartRow>(format!(
        "SELECT {PART_COLUMNS} FROM storage_upload_parts WHERE upload_id = $1 ORDER BY part_number"
    ))
    .bind(id.to_string())
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(UploadPart::try_from)
    .collect()
}

/// Ends an upload inside `tx`: its parts' blobs garbage, its rows gone.
async fn end_upload_in(tx: &mut Tx<'_>, id: UploadId, at: Timestamp) -> StoreResult<bool> {
    let locked: Option<(String,)> = query_as(format!(
        "SELECT id FROM storage_uploads WHERE id = $1{}",
        tx.backend().for_update()
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    if locked.is_none() {
        return Ok(false);
    }
    for part in parts_of(tx, id).await? {
        mark_garbage(tx, part.blob_id, at).await?;
    }
    query("DELETE FROM storage_upload_parts WHERE upload_id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    query("DELETE FROM storage_uploads WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(true)
}

async fn set_usage(tx: &mut Tx<'_>, ns: NamespaceId, usage: Usage) -> StoreResult<()> {
    query("UPDATE storage_namespaces SET used_bytes = $2, object_count = $3 WHERE id = $1")
        .bind(ns.to_string())
        .bind(signed("used_bytes", usage.bytes)?)
        .bind(signed("object_count", usage.objects)?)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn mark_garbage(tx: &mut Tx<'_>, blob: BlobId, at: Timestamp) -> StoreResult<()> {
    query("UPDATE storage_blobs SET state = 'garbage', updated_at = $2 WHERE id = $1")
        .bind(blob.to_string())
        .bind(at.millis())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[async_trait]
impl StorageStore for SqlStore {
    async fn create_namespace(&self, ns: &Namespace, audit: &AuditContext) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        query(format!(
            "INSERT INTO storage_namespaces ({NS_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(ns.id.to_string())
        .bind(ns.org_id.to_string())
        .bind(ns.name.as_str())
        .bind(ns.visibility.as_str())
        .bind(signed("max_bytes", ns.quota.max_bytes)?)
        .bind(signed("max_objects", ns.quota.max_objects)?)
        .bind(signed("used_bytes", ns.usage.bytes)?)
        .bind(signed("object_count", ns.usage.objects)?)
        .bind(ns.state.as_str())
        .bind(ns.created_at.millis())
        .execute(&mut tx)
        .await
        .map_err(|e| write_error(e, "organization"))?;
        insert_audit(
            &mut tx,
            audit,
            ns.created_at,
            Audited {
                org_id: Some(ns.org_id),
                action: "storage.namespace.create",
                resource_type: "storage_namespace",
                resource_id: ns.id.to_string(),
                before: None,
                after: Some(value(ns)?),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn namespace_by_name(
        &self,
        org: OrgId,
        name: &NamespaceName,
    ) -> StoreResult<Option<Namespace>> {
        query_as::<NamespaceRow>(format!(
            "SELECT {NS_COLUMNS} FROM storage_namespaces WHERE org_id = $1 AND name = $2"
        ))
        .bind(org.to_string())
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(Namespace::try_from)
        .transpose()
    }

    async fn namespace_by_org_slug(
        &self,
        org_slug: &str,
        name: &NamespaceName,
    ) -> StoreResult<Option<Namespace>> {
        query_as::<NamespaceRow>(format!(
            "SELECT {NS_COLUMNS} FROM storage_namespaces \
             WHERE org_id = (SELECT id FROM orgs WHERE slug = $1) AND name = $2"
        ))
        .bind(org_slug)
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(Namespace::try_from)
        .transpose()
    }

    async fn namespace(&self, id: NamespaceId) -> StoreResult<Option<Namespace>> {
        query_as::<NamespaceRow>(format!(
            "SELECT {NS_COLUMNS} FROM storage_namespaces WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(Namespace::try_from)
        .transpose()
    }

    async fn list_namespaces(&self, org: OrgId) -> StoreResult<Vec<Namespace>> {
        query_as::<NamespaceRow>(format!(
            "SELECT {NS_COLUMNS} FROM storage_namespaces WHERE org_id = $1 ORDER BY name"
        ))
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Namespace::try_from)
        .collect()
    }

    async fn begin_namespace_deletion(
        &self,
        org: OrgId,
        name: &NamespaceName,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<Namespace> {
        let mut tx = self.pool.begin_write().await?;
        let before = query_as::<NamespaceRow>(format!(
            "SELECT {NS_COLUMNS} FROM storage_namespaces WHERE org_id = $1 AND name = $2{}",
            tx.backend().for_update()
        ))
        .bind(org.to_string())
        .bind(name.as_str())
        .fetch_optional(&mut tx)
        .await?
        .map(Namespace::try_from)
        .transpose()?
        .ok_or(StoreError::NotFound("namespace"))?;
        if before.state == NamespaceState::Deleting {
            return Ok(before);
        }
        query("UPDATE storage_namespaces SET state = 'deleting' WHERE id = $1")
            .bind(before.id.to_string())
            .execute(&mut tx)
            .await?;
        let after = Namespace {
            state: NamespaceState::Deleting,
            ..before.clone()
        };
        insert_audit(
            &mut tx,
            audit,
            at,
            Audited {
                org_id: Some(org),
                action: "storage.namespace.delete",
                resource_type: "storage_namespace",
                resource_id: before.id.to_string(),
                before: Some(value(&before)?),
                after: Some(value(&after)?),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn deleting_namespaces(&self, limit: i64) -> StoreResult<Vec<Namespace>> {
        query_as::<NamespaceRow>(format!(
            "SELECT {NS_COLUMNS} FROM storage_namespaces WHERE state = 'deleting' \
             ORDER BY created_at, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Namespace::try_from)
        .collect()
    }

    async fn purge_namespace(
        &self,
        id: NamespaceId,
        batch: i64,
        at: Timestamp,
    ) -> StoreResult<(u64, bool)> {
        let mut tx = self.pool.begin_write().await?;
        let Some(ns) = lock_namespace(&mut tx, id).await? else {
            return Ok((0, true));
        };
        if ns.state != NamespaceState::Deleting {
            return Ok((0, false));
        }
        let uploads: Vec<(String,)> =
            query_as("SELECT id FROM storage_uploads WHERE namespace_id = $1 LIMIT $2")
                .bind(id.to_string())
                .bind(batch)
                .fetch_all(&mut tx)
                .await?;
        if !uploads.is_empty() {
            for (upload,) in &uploads {
                end_upload_in(&mut tx, parse_id("upload id", upload)?, at).await?;
            }
            tx.commit().await?;
            return Ok((0, false));
        }
        let doomed = query_as::<ObjectRow>(format!(
            "SELECT {OBJECT_COLUMNS} FROM storage_objects WHERE namespace_id = $1 \
             ORDER BY object_key LIMIT $2"
        ))
        .bind(id.to_string())
        .bind(batch)
        .fetch_all(&mut tx)
        .await?
        .into_iter()
        .map(StoredObject::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
        let mut usage = ns.usage;
        for object in &doomed {
            query("DELETE FROM storage_objects WHERE namespace_id = $1 AND object_key = $2")
                .bind(id.to_string())
                .bind(object.key.as_str())
                .execute(&mut tx)
                .await?;
            mark_garbage(&mut tx, object.blob_id, at).await?;
            usage = usage.after_delete(object.size);
        }
        let removed = doomed.len() as u64;
        let gone = i64::try_from(removed).unwrap_or(i64::MAX) < batch;
        if gone {
            // Nothing left: uploads still in flight find no namespace and
            // their blobs are swept as abandoned.
            query("DELETE FROM storage_namespaces WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut tx)
                .await?;
            insert_audit(
                &mut tx,
                &AuditContext::system("storage"),
                at,
                Audited {
                    org_id: Some(ns.org_id),
                    action: "storage.namespace.purge",
                    resource_type: "storage_namespace",
                    resource_id: id.to_string(),
                    before: Some(value(&ns)?),
                    after: None,
                },
            )
            .await?;
        } else {
            set_usage(&mut tx, id, usage).await?;
        }
        tx.commit().await?;
        Ok((removed, gone))
    }

    async fn start_blob(
        &self,
        id: BlobId,
        namespace: NamespaceId,
        at: Timestamp,
    ) -> StoreResult<()> {
        query(
            "INSERT INTO storage_blobs (id, namespace_id, state, updated_at) \
             VALUES ($1, $2, 'writing', $3)",
        )
        .bind(id.to_string())
        .bind(namespace.to_string())
        .bind(at.millis())
        .execute(&self.pool)
        .await
        .map_err(|e| write_error(e, "namespace"))?;
        Ok(())
    }

    async fn commit_object(
        &self,
        object: &StoredObject,
        at: Timestamp,
    ) -> StoreResult<Result<ObjectWritten, WriteRefused>> {
        let mut tx = self.pool.begin_write().await?;
        let ns = match lock_namespace(&mut tx, object.namespace_id).await? {
            Some(ns) if ns.state == NamespaceState::Active => ns,
            _ => return Ok(Err(WriteRefused::NoNamespace)),
        };
        let claimed = query(
            "UPDATE storage_blobs SET state = 'live', updated_at = $2 \
             WHERE id = $1 AND state = 'writing'",
        )
        .bind(object.blob_id.to_string())
        .bind(at.millis())
        .execute(&mut tx)
        .await?;
        if claimed != 1 {
            return Err(StoreError::NotFound("upload"));
        }
        let replaced = lock_object(&mut tx, ns.id, &object.key).await?;
        let usage =
            match ns
                .usage
                .after_write(ns.quota, replaced.as_ref().map(|r| r.size), object.size)
            {
                Ok(usage) => usage,
                Err(quota) => return Ok(Err(WriteRefused::Quota(quota))),
            };
        let size = signed("size", object.size)?;
        query(format!(
            "INSERT INTO storage_objects ({OBJECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (namespace_id, object_key) DO UPDATE SET blob_id = excluded.blob_id, \
             size = excluded.size, sha256 = excluded.sha256, md5 = excluded.md5, \
             content_type = excluded.content_type, created_at = excluded.created_at"
        ))
        .bind(object.namespace_id.to_string())
        .bind(object.key.as_str())
        .bind(object.blob_id.to_string())
        .bind(size)
        .bind(&object.sha256)
        .bind(object.md5.as_deref())
        .bind(&object.content_type)
        .bind(object.created_at.millis())
        .execute(&mut tx)
        .await
        .map_err(|e| write_error(e, "namespace"))?;
        if let Some(old) = &replaced {
            mark_garbage(&mut tx, old.blob_id, at).await?;
        }
        set_usage(&mut tx, ns.id, usage).await?;
        tx.commit().await?;
        Ok(Ok(ObjectWritten {
            object: object.clone(),
            replaced,
            usage,
        }))
    }

    async fn object(&self, ns: NamespaceId, key: &ObjectKey) -> StoreResult<Option<StoredObject>> {
        query_as::<ObjectRow>(format!(
            "SELECT {OBJECT_COLUMNS} FROM storage_objects WHERE namespace_id = $1 AND object_key = $2"
        ))
        .bind(ns.to_string())
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(StoredObject::try_from)
        .transpose()
    }

    async fn list_objects(
        &self,
        ns: NamespaceId,
        listing: &ObjectListing,
    ) -> StoreResult<Vec<StoredObject>> {
        // Keys starting with the prefix are exactly [prefix, upper): an
        // index range on both dialects (no LIKE, which SQLite folds case).
        let lower = match &listing.after {
            Some(after) if after.as_str() >= listing.prefix.as_str() => after.clone(),
            _ => listing.prefix.clone(),
        };
        let strictly_after = listing
            .after
            .as_ref()
            .is_some_and(|a| a.as_str() >= listing.prefix.as_str());
        let upper = prefix_upper_bound(&listing.prefix);
        let mut sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM storage_objects WHERE namespace_id = $1 AND object_key {} $2",
            if strictly_after { ">" } else { ">=" }
        );
        if upper.is_some() {
            sql.push_str(" AND object_key < $4");
        }
        sql.push_str(" ORDER BY object_key LIMIT $3");
        let mut q = query_as::<ObjectRow>(sql)
            .bind(ns.to_string())
            .bind(lower)
            .bind(listing.limit);
        if let Some(upper) = upper {
            q = q.bind(upper);
        }
        q.fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(StoredObject::try_from)
            .collect()
    }

    async fn delete_object(
        &self,
        ns: NamespaceId,
        key: &ObjectKey,
        at: Timestamp,
    ) -> StoreResult<Option<StoredObject>> {
        let mut tx = self.pool.begin_write().await?;
        let Some(namespace) = lock_namespace(&mut tx, ns).await? else {
            return Ok(None);
        };
        let Some(object) = lock_object(&mut tx, ns, key).await? else {
            return Ok(None);
        };
        query("DELETE FROM storage_objects WHERE namespace_id = $1 AND object_key = $2")
            .bind(ns.to_string())
            .bind(key.as_str())
            .execute(&mut tx)
            .await?;
        mark_garbage(&mut tx, object.blob_id, at).await?;
        set_usage(&mut tx, ns, namespace.usage.after_delete(object.size)).await?;
        tx.commit().await?;
        Ok(Some(object))
    }

    async fn discard_blob(&self, id: BlobId, at: Timestamp) -> StoreResult<()> {
        query(
            "UPDATE storage_blobs SET state = 'garbage', updated_at = $2 \
             WHERE id = $1 AND state = 'writing'",
        )
        .bind(id.to_string())
        .bind(at.millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn sweepable_blobs(
        &self,
        abandoned_before: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<SweepableBlob>> {
        let mut tx = self.pool.begin_write().await?;
        query(
            "UPDATE storage_blobs SET state = 'garbage' \
             WHERE state = 'writing' AND updated_at < $1",
        )
        .bind(abandoned_before.millis())
        .execute(&mut tx)
        .await?;
        let rows: Vec<(String, String)> = query_as(
            "SELECT id, namespace_id FROM storage_blobs WHERE state = 'garbage' \
             ORDER BY updated_at, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut tx)
        .await?;
        tx.commit().await?;
        rows.into_iter()
            .map(|(id, ns)| {
                Ok(SweepableBlob {
                    id: parse_id("id", &id)?,
                    namespace_id: parse_id("namespace_id", &ns)?,
                })
            })
            .collect()
    }

    async fn forget_blobs(&self, ids: &[BlobId]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin_write().await?;
        for id in ids {
            query("DELETE FROM storage_blobs WHERE id = $1 AND state = 'garbage'")
                .bind(id.to_string())
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_upload(&self, upload: &MultipartUpload) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        match lock_namespace(&mut tx, upload.namespace_id).await? {
            Some(ns) if ns.state == NamespaceState::Active => {}
            _ => return Err(StoreError::NotFound("namespace")),
        }
        query(format!(
            "INSERT INTO storage_uploads ({UPLOAD_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(upload.id.to_string())
        .bind(upload.namespace_id.to_string())
        .bind(upload.key.as_str())
        .bind(&upload.content_type)
        .bind(upload.created_at.millis())
        .execute(&mut tx)
        .await
        .map_err(|e| write_error(e, "upload"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn upload(&self, ns: NamespaceId, id: UploadId) -> StoreResult<Option<MultipartUpload>> {
        query_as::<UploadRow>(format!(
            "SELECT {UPLOAD_COLUMNS} FROM storage_uploads WHERE id = $1 AND namespace_id = $2"
        ))
        .bind(id.to_string())
        .bind(ns.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(MultipartUpload::try_from)
        .transpose()
    }

    async fn commit_part(
        &self,
        part: &UploadPart,
        at: Timestamp,
    ) -> StoreResult<Option<UploadPart>> {
        let mut tx = self.pool.begin_write().await?;
        let upload: Option<(String,)> = query_as(format!(
            "SELECT id FROM storage_uploads WHERE id = $1{}",
            tx.backend().for_update()
        ))
        .bind(part.upload_id.to_string())
        .fetch_optional(&mut tx)
        .await?;
        if upload.is_none() {
            return Err(StoreError::NotFound("upload"));
        }
        let claimed = query(
            "UPDATE storage_blobs SET state = 'live', updated_at = $2 \
             WHERE id = $1 AND state = 'writing'",
        )
        .bind(part.blob_id.to_string())
        .bind(at.millis())
        .execute(&mut tx)
        .await?;
        if claimed != 1 {
            return Err(StoreError::NotFound("upload"));
        }
        let replaced = query_as::<PartRow>(format!(
            "SELECT {PART_COLUMNS} FROM storage_upload_parts \
             WHERE upload_id = $1 AND part_number = $2"
        ))
        .bind(part.upload_id.to_string())
        .bind(i64::from(part.number))
        .fetch_optional(&mut tx)
        .await?
        .map(UploadPart::try_from)
        .transpose()?;
        query(format!(
            "INSERT INTO storage_upload_parts ({PART_COLUMNS}, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (upload_id, part_number) DO UPDATE SET blob_id = excluded.blob_id, \
             size = excluded.size, sha256 = excluded.sha256, md5 = excluded.md5, \
             created_at = excluded.created_at"
        ))
        .bind(part.upload_id.to_string())
        .bind(i64::from(part.number))
        .bind(part.blob_id.to_string())
        .bind(signed("size", part.size)?)
        .bind(&part.sha256)
        .bind(part.md5.as_deref())
        .bind(at.millis())
        .execute(&mut tx)
        .await?;
        if let Some(old) = &replaced {
            mark_garbage(&mut tx, old.blob_id, at).await?;
        }
        tx.commit().await?;
        Ok(replaced)
    }

    async fn upload_parts(&self, id: UploadId) -> StoreResult<Vec<UploadPart>> {
        query_as::<PartRow>(format!(
            "SELECT {PART_COLUMNS} FROM storage_upload_parts WHERE upload_id = $1 \
             ORDER BY part_number"
        ))
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(UploadPart::try_from)
        .collect()
    }

    async fn end_upload(&self, id: UploadId, at: Timestamp) -> StoreResult<bool> {
        let mut tx = self.pool.begin_write().await?;
        let ended = end_upload_in(&mut tx, id, at).await?;
        tx.commit().await?;
        Ok(ended)
    }

    async fn list_uploads(
        &self,
        ns: NamespaceId,
        listing: &UploadListing,
    ) -> StoreResult<Vec<MultipartUpload>> {
        // `$4` is the prefix's upper bound, '' when it has none.
        let mut sql = format!(
            "SELECT {UPLOAD_COLUMNS} FROM storage_uploads \
             WHERE namespace_id = $1 AND object_key >= $2 AND ($4 = '' OR object_key < $4)"
        );
        let upper = prefix_upper_bound(&listing.prefix);
        match (&listing.after_key, listing.after_upload) {
            (Some(_), Some(_)) => {
                sql.push_str(" AND (object_key > $5 OR (object_key = $5 AND id > $6))")
            }
            (Some(_), None) => sql.push_str(" AND object_key > $5"),
            (None, _) => {}
        }
        sql.push_str(" ORDER BY object_key, id LIMIT $3");
        let mut q = query_as::<UploadRow>(sql)
            .bind(ns.to_string())
            .bind(listing.prefix.as_str())
            .bind(listing.limit)
            .bind(upper.unwrap_or_default());
        if let Some(key) = &listing.after_key {
            q = q.bind(key.as_str());
            if let Some(id) = listing.after_upload {
                q = q.bind(id.to_string());
            }
        }
        q.fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(MultipartUpload::try_from)
            .collect()
    }

    async fn stale_uploads(
        &self,
        before: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<MultipartUpload>> {
        query_as::<UploadRow>(format!(
            "SELECT {UPLOAD_COLUMNS} FROM storage_uploads WHERE created_at < $1 \
             ORDER BY created_at, id LIMIT $2"
        ))
        .bind(before.millis())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(MultipartUpload::try_from)
        .collect()
    }
}
