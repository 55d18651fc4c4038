//! Storage namespaces, their objects, and the blobs holding the objects'
//! bytes. The bytes themselves live in an object store (`hood-storage`);
//! this is the catalog that says which blob is which object and what each
//! namespace holds, changed only in transactions that keep usage exact.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::audit::AuditContext;
use hood_domain::storage::{
    MultipartUpload, Namespace, NamespaceName, ObjectKey, QuotaExceeded, StoredObject, UploadPart,
    Usage,
};
use hood_domain::{BlobId, NamespaceId, OrgId, Timestamp, UploadId};

/// One page of a listing: keys after `after` that start with `prefix`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectListing {
    pub prefix: String,
    /// Keys strictly after this one (the previous page's last key).
    pub after: Option<String>,
    pub limit: i64,
}

/// One page of the uploads in progress in a namespace, by key then upload
/// id (S3's ListMultipartUploads order): keys starting with `prefix`,
/// after the previous page's last key, or within that key after its last
/// upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadListing {
    pub prefix: String,
    pub after_key: Option<String>,
    /// With `after_key`: that key's uploads after this one are listed too.
    pub after_upload: Option<UploadId>,
    pub limit: i64,
}

/// A blob whose bytes the sweeper may delete: replaced or deleted objects'
/// bytes, and uploads abandoned in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepableBlob {
    pub id: BlobId,
    pub namespace_id: NamespaceId,
}

/// What writing an object did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectWritten {
    pub object: StoredObject,
    /// The object it replaced, whose blob is now garbage.
    pub replaced: Option<StoredObject>,
    pub usage: Usage,
}

/// Why an object could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteRefused {
    /// The namespace is gone or being deleted.
    NoNamespace,
    Quota(QuotaExceeded),
}

#[async_trait]
pub trait StorageStore: Send + Sync {
    /// Creates a namespace (`Conflict("namespace")` when the organization
    /// has one of that name, being deleted or not), with its audit row.
    async fn create_namespace(&self, ns: &Namespace, audit: &AuditContext) -> StoreResult<()>;

    /// The organization's namespace of that name, in any state.
    async fn namespace_by_name(
        &self,
        org: OrgId,
        name: &NamespaceName,
    ) -> StoreResult<Option<Namespace>>;

    /// The namespace of that name of the organization with that slug, in
    /// any state (for anonymous reads, which name the organization by its
    /// slug).
    async fn namespace_by_org_slug(
        &self,
        org_slug: &str,
        name: &NamespaceName,
    ) -> StoreResult<Option<Namespace>>;

    async fn namespace(&self, id: NamespaceId) -> StoreResult<Option<Namespace>>;

    /// The organization's namespaces, by name.
    async fn list_namespaces(&self, org: OrgId) -> StoreResult<Vec<Namespace>>;

    /// Marks an active namespace `deleting` (its objects are removed by
    /// [`StorageStore::purge_namespace`]), with its audit row. Returns the
    /// namespace as it is now; a namespace already being deleted is
    /// returned unchanged.
    async fn begin_namespace_deletion(
        &self,
        org: OrgId,
        name: &NamespaceName,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<Namespace>;

    /// Namespaces being deleted, oldest first.
    async fn deleting_namespaces(&self, limit: i64) -> StoreResult<Vec<Namespace>>;

    /// Ends the uploads of a `deleting` namespace, then removes up to
    /// `batch` objects (their blobs become garbage, the usage shrinks);
    /// when none remain, removes
    /// the namespace with its audit row. Returns how many objects went and
    /// whether the namespace is gone. Safe to repeat and to race.
    async fn purge_namespace(
        &self,
        id: NamespaceId,
        batch: i64,
        at: Timestamp,
    ) -> StoreResult<(u64, bool)>;

    /// Records a blob about to be written (`writing`), before its first
    /// byte reaches the object store.
    async fn start_blob(
        &self,
        id: BlobId,
        namespace: NamespaceId,
        at: Timestamp,
    ) -> StoreResult<()>;

    /// Makes a written blob the object's bytes: in one transaction, under
    /// the namespace's lock, checks the blob is still `writing`
    /// (`NotFound("upload")` when the sweeper took it), the quota against what the key held
    /// before, stores the object, turns the blob `live` and the replaced
    /// one `garbage`, and updates the usage.
    async fn commit_object(
        &self,
        object: &StoredObject,
        at: Timestamp,
    ) -> StoreResult<Result<ObjectWritten, WriteRefused>>;

    async fn object(&self, ns: NamespaceId, key: &ObjectKey) -> StoreResult<Option<StoredObject>>;

    /// One page of a namespace's objects, in key order (UTF-8 bytes).
    async fn list_objects(
        &self,
        ns: NamespaceId,
        listing: &ObjectListing,
    ) -> StoreResult<Vec<StoredObject>>;

    /// Deletes an object (its blob becomes garbage); `None` when the key
    /// held nothing.
    async fn delete_object(
        &self,
        ns: NamespaceId,
        key: &ObjectKey,
        at: Timestamp,
    ) -> StoreResult<Option<StoredObject>>;

    /// Marks a blob garbage (an upload that failed or was refused).
    async fn discard_blob(&self, id: BlobId, at: Timestamp) -> StoreResult<()>;

    /// Blobs whose bytes may be deleted: garbage, and `writing` blobs last
    /// touched before `abandoned_before`, which are turned `garbage` first
    /// (in the same transaction), so a slow upload that finishes later
    /// finds its blob gone instead of committing bytes being deleted.
    async fn sweepable_blobs(
        &self,
        abandoned_before: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<SweepableBlob>>;

    /// Forgets garbage blobs whose bytes are deleted.
    async fn forget_blobs(&self, ids: &[BlobId]) -> StoreResult<()>;

    /// Records a multipart upload into an active namespace
    /// (`NotFound("namespace")` otherwise).
    async fn create_upload(&self, upload: &MultipartUpload) -> StoreResult<()>;

    /// An upload in progress in the namespace.
    async fn upload(&self, ns: NamespaceId, id: UploadId) -> StoreResult<Option<MultipartUpload>>;

    /// Makes a written (`writing`) blob a part of an upload in progress:
    /// the blob turns `live`, the part it replaces (returned) `garbage`.
    /// `NotFound("upload")` when the upload ended or the sweeper took the
    /// blob.
    async fn commit_part(
        &self,
        part: &UploadPart,
        at: Timestamp,
    ) -> StoreResult<Option<UploadPart>>;

    /// An upload's parts by number.
    async fn upload_parts(&self, id: UploadId) -> StoreResult<Vec<UploadPart>>;

    /// Ends an upload (completed, aborted or expired): its parts' blobs
    /// turn `garbage` and its rows go, in one transaction. `false` when it
    /// had already ended.
    async fn end_upload(&self, id: UploadId, at: Timestamp) -> StoreResult<bool>;

    /// Uploads in progress in the namespace, one page of them.
    async fn list_uploads(
        &self,
        ns: NamespaceId,
        listing: &UploadListing,
    ) -> StoreResult<Vec<MultipartUpload>>;

    /// Uploads started before `before`, oldest first.
    async fn stale_uploads(
        &self,
        before: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<MultipartUpload>>;
}
