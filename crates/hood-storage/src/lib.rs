//! Storage namespaces and their objects (the Edd Cloud seed's storage,
//! speaking S3's model: bucket = namespace).
//!
//! Bytes live in an object store chosen by one URL (`HOOD_STORAGE_URL`:
//! `file://` embedded, `s3://` in cluster mode; [`StoreLocation`]), one
//! blob per written version under `namespaces/{namespace}/blobs/{blob}`.
//! The catalog ([`StorageStore`]) says which blob is which object and what
//! each namespace holds. A write streams into a new blob that has a row
//! from before its first byte, then commits in one transaction under the
//! namespace's lock (quota checked exactly there); the old version's blob
//! becomes garbage. The sweeper ([`Storage::sweep_once`]) removes deleted
//! namespaces batch by batch and deletes garbage and abandoned blobs'
//! bytes before their rows, so a crash at any point leaves no byte that no
//! row accounts for, and no half-deleted namespace once the sweeper ran.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use hood_clock::Clock;
use hood_domain::audit::AuditContext;
use hood_domain::storage::{
    blob_path, Namespace, NamespaceName, NamespaceState, ObjectKey, Quota, QuotaExceeded,
    StoredObject, Usage, Visibility,
};
use hood_domain::validate::FieldError;
use hood_domain::{BlobId, NamespaceId, OrgId};
use hood_identity::presign::{Grant, PresignError, Presigner};
use hood_store::storage::{ObjectListing, ObjectWritten, StorageStore, WriteRefused};
use hood_store::StoreError;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt as _};
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub use hood_artifacts::StoreLocation;

/// Subdirectory of `$HOOD_HOME` that holds the embedded storage.
pub const EMBEDDED_DIR: &str = "storage";

/// The content type of an object uploaded without one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// How much of an upload is buffered before it goes to the object store
/// (S3's multipart part size when the object is larger).
const UPLOAD_BUFFER_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
    #[error("an object may hold at most {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("range not satisfiable: the object holds {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error(transparent)]
    Presign(#[from] PresignError),
    /// The client's body failed before it ended.
    #[error("the upload ended early: {0}")]
    Body(String),
    #[error("object store: {0}")]
    Object(#[from] object_store::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// The most of a refused upload's body read (and thrown away) before the
/// refusal is answered: HTTP clients that write the whole body before
/// reading the answer (most do; few wait for `100 Continue`) then see the
/// 413 instead of a broken pipe. A larger refused body is cut off.
const DRAIN_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Reads and discards what is left of a refused body, up to `announced`
/// bytes and at most [`DRAIN_LIMIT_BYTES`].
async fn drain<S, E>(mut body: std::pin::Pin<&mut S>, announced: u64)
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let cap = announced.min(DRAIN_LIMIT_BYTES);
    let mut read = 0u64;
    while read < cap {
        match body.next().await {
            Some(Ok(chunk)) => read = read.saturating_add(chunk.len() as u64),
            _ => break,
        }
    }
}

/// How much of a local file one chunk of a download reads.
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// `range` of a local file as a stream of chunks.
fn file_stream(file: std::fs::File, range: Range<u64>) -> BoxStream<'static, StorageResult<Bytes>> {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    let io = |e: std::io::Error| {
        StorageError::Object(object_store::Error::Generic {
            store: "storage",
            source: Box::new(e),
        })
    };
    let file = tokio::fs::File::from_std(file);
    futures::stream::try_unfold(
        (file, range.start, range.end, false),
        move |(mut file, at, end, positioned)| async move {
            if at >= end {
                return Ok(None);
            }
            if !positioned {
                file.seek(std::io::SeekFrom::Start(at)).await.map_err(io)?;
            }
            let want = usize::try_from(end - at)
                .unwrap_or(usize::MAX)
                .min(READ_CHUNK_BYTES);
            let mut buf = vec![0u8; want];
            let n = file.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the object's file is shorter than recorded",
                )));
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), (file, at + n as u64, end, true))))
        },
    )
    .boxed()
}

/// Limits and timings.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// A namespace's quota when its creator names none.
    pub default_quota: Quota,
    /// The largest single object.
    pub max_object_bytes: u64,
    /// An upload not finished after this long is abandoned and swept.
    pub abandoned_after: Duration,
    /// How often the sweeper runs.
    pub sweep_every: Duration,
    /// Objects removed per transaction while a namespace is deleted.
    pub purge_batch: i64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            default_quota: Quota {
                max_bytes: 10 * 1024 * 1024 * 1024,
                max_objects: 1_000_000,
            },
            max_object_bytes: 5 * 1024 * 1024 * 1024 * 1024,
            abandoned_after: Duration::from_secs(24 * 3600),
            sweep_every: Duration::from_secs(2),
            purge_batch: 500,
        }
    }
}

/// What a new namespace asks for.
#[derive(Debug, Clone)]
pub struct NewNamespace {
    pub name: String,
    pub visibility: Visibility,
    pub quota: Option<Quota>,
}

/// An object on its way out: its record, the bytes asked for, and them.
pub struct ObjectRead {
    pub object: StoredObject,
    /// `Some` when a range was asked for and is being served.
    pub range: Option<Range<u64>>,
    pub bytes: BoxStream<'static, StorageResult<Bytes>>,
}

/// One page of objects and where the next starts.
#[derive(Debug, Clone)]
pub struct ObjectPage {
    pub objects: Vec<StoredObject>,
    /// The last key of this page when more follow: pass it as `after`.
    pub next_after: Option<String>,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub objects_purged: u64,
    pub namespaces_removed: u64,
    pub blobs_deleted: u64,
}

/// A presigned grant: the signature and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub namespace_id: NamespaceId,
    pub method: &'static str,
    pub expires_unix: u64,
    pub signature: String,
}

#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn StorageStore>,
    objects: Arc<dyn ObjectStore>,
    presigner: Presigner,
    clock: Arc<dyn Clock>,
    config: StorageConfig,
    /// The directory of a local object store: where an upload cut off by a
    /// crash leaves its staging file (`{blob}#{n}`) beside the blob's path.
    local_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("objects", &self.inner.objects.to_string())
            .finish_non_exhaustive()
    }
}

impl Storage {
    pub fn new(
        store: Arc<dyn StorageStore>,
        objects: Arc<dyn ObjectStore>,
        presigner: Presigner,
        clock: Arc<dyn Clock>,
        config: StorageConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                objects,
                presigner,
                clock,
                config,
                local_root: None,
            }),
        }
    }

    /// Opens the store at `location`: a local directory (whose staging
    /// files the sweeper also removes) or an S3 bucket.
    pub fn open(
        location: &StoreLocation,
        store: Arc<dyn StorageStore>,
        presigner: Presigner,
        clock: Arc<dyn Clock>,
        config: StorageConfig,
    ) -> StorageResult<Self> {
        let objects = location.open().map_err(|e| {
            StorageError::Object(object_store::Error::Generic {
                store: "storage",
                source: Box::new(e),
            })
        })?;
        let mut storage = Self::new(store, objects, presigner, clock, config);
        if let StoreLocation::Local { root } = location {
            if let Some(inner) = Arc::get_mut(&mut storage.inner) {
                inner.local_root = Some(root.clone());
            }
        }
        Ok(storage)
    }

    /// Deletes a blob's bytes: the object, and on a local store any staging
    /// file an interrupted write left (`{blob}#{n}`). NotFound is success.
    async fn delete_bytes(&self, ns: NamespaceId, blob: BlobId) -> Result<(), object_store::Error> {
        let path = ObjectPath::from(blob_path(ns, blob));
        match self.inner.objects.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        if let Some(root) = &self.inner.local_root {
            let dir = root.join(blob_path(ns, blob));
            let (Some(dir), Some(name)) = (dir.parent(), dir.file_name()) else {
                return Ok(());
            };
            let staged = format!("{}#", name.to_string_lossy());
            let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
                return Ok(());
            };
            while let Ok(Some(entry)) = entries.next_entry().await {
                if entry.file_name().to_string_lossy().starts_with(&staged) {
                    if let Err(e) = tokio::fs::remove_file(entry.path()).await {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            return Err(object_store::Error::Generic {
                                store: "storage",
                                source: Box::new(e),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub fn config(&self) -> &StorageConfig {
        &self.inner.config
    }

    fn now(&self) -> hood_domain::Timestamp {
        self.inner.clock.now()
    }

    // ---- namespaces ----

    pub async fn create_namespace(
        &self,
        org: OrgId,
        req: NewNamespace,
        audit: &AuditContext,
    ) -> StorageResult<Namespace> {
        let name = NamespaceName::parse(&req.name)?;
        let ns = Namespace {
            id: NamespaceId::from_uuid(uuid::Uuid::now_v7()),
            org_id: org,
            name,
            visibility: req.visibility,
            quota: req.quota.unwrap_or(self.inner.config.default_quota),
            usage: Usage::default(),
            state: NamespaceState::Active,
            created_at: self.now(),
        };
        match self.inner.store.create_namespace(&ns, audit).await {
            Ok(()) => Ok(ns),
            Err(StoreError::Conflict(_)) => Err(StorageError::Conflict(format!(
                "the organization already has a namespace named `{}`",
                ns.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_namespaces(&self, org: OrgId) -> StorageResult<Vec<Namespace>> {
        Ok(self.inner.store.list_namespaces(org).await?)
    }

    /// The organization's namespace, in any state (a name that is not a
    /// namespace name is simply not found).
    pub async fn namespace(&self, org: OrgId, name: &str) -> StorageResult<Namespace> {
        let name = NamespaceName::parse(name).map_err(|_| StorageError::NotFound("namespace"))?;
        self.inner
            .store
            .namespace_by_name(org, &name)
            .await?
            .ok_or(StorageError::NotFound("namespace"))
    }

    /// The organization's namespace, only while it is active.
    pub async fn active_namespace(&self, org: OrgId, name: &str) -> StorageResult<Namespace> {
        let ns = self.namespace(org, name).await?;
        if ns.state != NamespaceState::Active {
            return Err(StorageError::NotFound("namespace"));
        }
        Ok(ns)
    }

    /// Starts deleting a namespace: it stops serving at once; the sweeper
    /// removes its objects and then the namespace (resumable after a
    /// crash: the state is in the row).
    pub async fn delete_namespace(
        &self,
        org: OrgId,
        name: &str,
        audit: &AuditContext,
    ) -> StorageResult<Namespace> {
        let name = NamespaceName::parse(name).map_err(|_| StorageError::NotFound("namespace"))?;
        match self
            .inner
            .store
            .begin_namespace_deletion(org, &name, self.now(), audit)
            .await
        {
            Ok(ns) => Ok(ns),
            Err(StoreError::NotFound(_)) => Err(StorageError::NotFound("namespace")),
            Err(e) => Err(e.into()),
        }
    }

    // ---- objects ----

    /// Streams `body` into a new blob and makes it the object under `key`.
    /// `declared_len` (a `Content-Length`) refuses a write that cannot fit
    /// before a byte is stored; without it, the stream stops at the first
    /// byte beyond the namespace's room.
    pub async fn put_object<S, E>(
        &self,
        ns: &Namespace,
        key: &str,
        content_type: Option<&str>,
        declared_len: Option<u64>,
        body: S,
    ) -> StorageResult<ObjectWritten>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut body = std::pin::pin!(body);
        let result = self
            .write_object(ns, key, content_type, declared_len, body.as_mut())
            .await;
        if let Err(e) = &result {
            // A refusal read what it needed; the client may still be
            // writing the rest.
            if !matches!(e, StorageError::Body(_)) {
                drain(body.as_mut(), declared_len.unwrap_or(DRAIN_LIMIT_BYTES)).await;
            }
        }
        result
    }

    async fn write_object<S, E>(
        &self,
        ns: &Namespace,
        key: &str,
        content_type: Option<&str>,
        declared_len: Option<u64>,
        mut body: std::pin::Pin<&mut S>,
    ) -> StorageResult<ObjectWritten>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        if ns.state != NamespaceState::Active {
            return Err(StorageError::NotFound("namespace"));
        }
        let key = ObjectKey::parse(key)?;
        let content_type = match content_type {
            Some(ct) => {
                hood_artifacts::names::content_type(ct)?;
                ct.to_owned()
            }
            None => DEFAULT_CONTENT_TYPE.to_owned(),
        };
        let replaced = self.inner.store.object(ns.id, &key).await?.map(|o| o.size);
        let limit = self.inner.config.max_object_bytes;
        let room = ns.usage.headroom(ns.quota, replaced);
        if let Some(len) = declared_len {
            let refusal = if len > limit {
                Some(StorageError::TooLarge { limit })
            } else {
                ns.usage
                    .after_write(ns.quota, replaced, len)
                    .err()
                    .map(StorageError::Quota)
            };
            if let Some(refusal) = refusal {
                return Err(refusal);
            }
        }

        let blob = BlobId::from_uuid(uuid::Uuid::now_v7());
        self.inner.store.start_blob(blob, ns.id, self.now()).await?;
        let path = ObjectPath::from(blob_path(ns.id, blob));
        let written = self
            .write_blob(&path, body.as_mut(), room.min(limit), |size| {
                if size > limit {
                    StorageError::TooLarge { limit }
                } else {
                    StorageError::Quota(QuotaExceeded::Bytes {
                        limit: ns.quota.max_bytes,
                        used: ns.usage.bytes,
                        needed: size.saturating_sub(replaced.unwrap_or(0)),
                    })
                }
            })
            .await;
        let (sha256, size) = match written {
            Ok(v) => v,
            Err(e) => {
                self.abandon(ns.id, blob).await;
                return Err(e);
            }
        };
        let object = StoredObject {
            namespace_id: ns.id,
            key,
            blob_id: blob,
            size,
            sha256,
            content_type,
            created_at: self.now(),
        };
        match self.inner.store.commit_object(&object, self.now()).await {
            Ok(Ok(written)) => {
                if let Some(old) = &written.replaced {
                    // Best effort now; the sweeper deletes it otherwise.
                    self.delete_blob_bytes(old.namespace_id, old.blob_id).await;
                }
                Ok(written)
            }
            Ok(Err(refused)) => {
                self.abandon(ns.id, blob).await;
                Err(match refused {
                    WriteRefused::NoNamespace => StorageError::NotFound("namespace"),
                    WriteRefused::Quota(q) => StorageError::Quota(q),
                })
            }
            Err(e) => {
                self.abandon(ns.id, blob).await;
                Err(e.into())
            }
        }
    }

    /// Streams the body into `path`, hashing it; refuses (with `too_big`'s
    /// error) the first chunk that takes it beyond `room` bytes.
    async fn write_blob<S, E>(
        &self,
        path: &ObjectPath,
        body: S,
        room: u64,
        too_big: impl Fn(u64) -> StorageError,
    ) -> StorageResult<(String, u64)>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut writer = BufWriter::with_capacity(
            self.inner.objects.clone(),
            path.clone(),
            UPLOAD_BUFFER_BYTES,
        );
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(StorageError::Body(e.to_string()));
                }
            };
            size = size.saturating_add(chunk.len() as u64);
            if size > room {
                let _ = writer.abort().await;
                return Err(too_big(size));
            }
            hasher.update(&chunk);
            if let Err(e) = writer.put(chunk).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
        }
        writer.shutdown().await.map_err(|e| {
            StorageError::Object(object_store::Error::Generic {
                store: "storage",
                source: Box::new(e),
            })
        })?;
        Ok((hex::encode(hasher.finalize()), size))
    }

    /// An upload that will not become an object: its blob is garbage, its
    /// bytes deleted now when possible (else by the sweeper).
    async fn abandon(&self, ns: NamespaceId, blob: BlobId) {
        if let Err(e) = self.inner.store.discard_blob(blob, self.now()).await {
            tracing::warn!(blob = %blob, error = %e, "could not mark an abandoned upload; the sweeper will find it");
            return;
        }
        self.delete_blob_bytes(ns, blob).await;
    }

    async fn delete_blob_bytes(&self, ns: NamespaceId, blob: BlobId) {
        match self.delete_bytes(ns, blob).await {
            Ok(()) => {
                if let Err(e) = self.inner.store.forget_blobs(&[blob]).await {
                    tracing::warn!(blob = %blob, error = %e, "blob deleted but its row kept; the sweeper will retry");
                }
            }
            Err(e) => {
                tracing::warn!(blob = %blob, error = %e, "could not delete a replaced blob; the sweeper will retry");
            }
        }
    }

    /// The object's record (HEAD).
    pub async fn object(&self, ns: &Namespace, key: &str) -> StorageResult<StoredObject> {
        let key = ObjectKey::parse(key).map_err(|_| StorageError::NotFound("object"))?;
        self.inner
            .store
            .object(ns.id, &key)
            .await?
            .ok_or(StorageError::NotFound("object"))
    }

    /// Opens an object for reading, whole or one byte range (a `Range`
    /// header's value; a form this server does not read sends it whole).
    pub async fn read_object(
        &self,
        ns: &Namespace,
        key: &str,
        range: Option<&str>,
    ) -> StorageResult<ObjectRead> {
        let object = self.object(ns, key).await?;
        let range = match range.map(|r| hood_domain::storage::byte_range(r, object.size)) {
            None | Some(Err(hood_domain::storage::RangeError::Unsupported(_))) => None,
            Some(Err(hood_domain::storage::RangeError::NotSatisfiable { size })) => {
                return Err(StorageError::RangeNotSatisfiable { size });
            }
            Some(Ok(r)) => Some(r),
        };
        let path = ObjectPath::from(blob_path(object.namespace_id, object.blob_id));
        let bytes = if object.size == 0 {
            futures::stream::empty().boxed()
        } else {
            let options = GetOptions {
                range: range.clone().map(GetRange::Bounded),
                ..GetOptions::default()
            };
            let result = self.inner.objects.get_opts(&path, options).await.map_err(|e| {
                if matches!(e, object_store::Error::NotFound { .. }) {
                    tracing::error!(namespace = %object.namespace_id, key = %object.key, blob = %object.blob_id,
                        "an object's bytes are missing from the storage object store");
                }
                StorageError::Object(e)
            })?;
            match result.payload {
                // A local file: read in large chunks (object_store's own
                // stream reads 8 KiB at a time, which HTTP pays for).
                GetResultPayload::File(file, _) => file_stream(file, result.range),
                GetResultPayload::Stream(stream) => stream
                    .map(|chunk| chunk.map_err(StorageError::from))
                    .boxed(),
            }
        };
        Ok(ObjectRead {
            object,
            range,
            bytes,
        })
    }

    /// A page of objects in key order.
    pub async fn list_objects(
        &self,
        ns: &Namespace,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StorageResult<ObjectPage> {
        let limit = i64::from(limit.clamp(1, 1000));
        let mut objects = self
            .inner
            .store
            .list_objects(
                ns.id,
                &ObjectListing {
                    prefix: prefix.unwrap_or_default().to_owned(),
                    after: after.map(str::to_owned),
                    limit: limit + 1,
                },
            )
            .await?;
        let more = objects.len() as i64 > limit;
        objects.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_after = more
            .then(|| objects.last().map(|o| o.key.to_string()))
            .flatten();
        Ok(ObjectPage {
            objects,
            next_after,
        })
    }

    pub async fn delete_object(&self, ns: &Namespace, key: &str) -> StorageResult<StoredObject> {
        let key = ObjectKey::parse(key).map_err(|_| StorageError::NotFound("object"))?;
        let deleted = self
            .inner
            .store
            .delete_object(ns.id, &key, self.now())
            .await?
            .ok_or(StorageError::NotFound("object"))?;
        self.delete_blob_bytes(deleted.namespace_id, deleted.blob_id)
            .await;
        Ok(deleted)
    }

    // ---- presigned URLs ----

    /// Signs `method` (`GET` or `PUT`) on one object for `valid_for`.
    pub fn presign(
        &self,
        ns: &Namespace,
        key: &str,
        method: &str,
        valid_for: Duration,
    ) -> StorageResult<Presigned> {
        ObjectKey::parse(key)?;
        let method = match method.to_ascii_uppercase().as_str() {
            "GET" => "GET",
            "PUT" => "PUT",
            other => {
                return Err(FieldError::new(
                    "method",
                    format!("`{other}` cannot be presigned (GET or PUT)"),
                )
                .into())
            }
        };
        let secs = valid_for.as_secs();
        if secs == 0 || secs > hood_identity::presign::MAX_VALIDITY_SECS {
            return Err(FieldError::new(
                "expires_in_seconds",
                format!(
                    "must be between 1 and {}",
                    hood_identity::presign::MAX_VALIDITY_SECS
                ),
            )
            .into());
        }
        let expires_unix = self.now_unix().saturating_add(secs);
        let namespace = ns.id.to_string();
        let signature = self.inner.presigner.sign(&Grant {
            method,
            namespace: &namespace,
            key,
            expires: expires_unix,
        });
        Ok(Presigned {
            namespace_id: ns.id,
            method,
            expires_unix,
            signature,
        })
    }

    /// The active namespace a presigned request may act on, once its
    /// signature and expiry are checked.
    pub async fn presigned_namespace(
        &self,
        namespace: NamespaceId,
        key: &str,
        method: &str,
        expires_unix: u64,
        signature: &str,
    ) -> StorageResult<Namespace> {
        let ns_text = namespace.to_string();
        self.inner.presigner.verify(
            &Grant {
                method,
                namespace: &ns_text,
                key,
                expires: expires_unix,
            },
            signature,
            self.now_unix(),
        )?;
        match self.inner.store.namespace(namespace).await? {
            Some(ns) if ns.state == NamespaceState::Active => Ok(ns),
            _ => Err(StorageError::NotFound("namespace")),
        }
    }

    /// A public namespace, for anonymous reads (a private one is not found,
    /// so anonymous callers cannot tell it exists).
    pub async fn public_namespace(&self, org: OrgId, name: &str) -> StorageResult<Namespace> {
        let ns = self.active_namespace(org, name).await?;
        if ns.visibility != Visibility::Public {
            return Err(StorageError::NotFound("namespace"));
        }
        Ok(ns)
    }

    fn now_unix(&self) -> u64 {
        u64::try_from(self.now().secs()).unwrap_or(0)
    }

    // ---- the sweeper ----

    /// One pass: deleting namespaces lose a batch of objects each (and go
    /// when empty), then garbage and abandoned blobs lose their bytes and
    /// rows. Every step is idempotent: replicas may sweep at once.
    pub async fn sweep_once(&self) -> StorageResult<SweepReport> {
        let mut report = SweepReport::default();
        let now = self.now();
        for ns in self.inner.store.deleting_namespaces(16).await? {
            let (purged, gone) = self
                .inner
                .store
                .purge_namespace(ns.id, self.inner.config.purge_batch, now)
                .await?;
            report.objects_purged += purged;
            if gone {
                report.namespaces_removed += 1;
                tracing::info!(namespace = %ns.id, name = %ns.name, "namespace deleted");
            }
        }
        let abandoned = self.inner.config.abandoned_after;
        let before = now.plus_millis(-i64::try_from(abandoned.as_millis()).unwrap_or(i64::MAX));
        let blobs = self.inner.store.sweepable_blobs(before, 500).await?;
        let mut deleted = Vec::with_capacity(blobs.len());
        for blob in blobs {
            match self.delete_bytes(blob.namespace_id, blob.id).await {
                Ok(()) => deleted.push(blob.id),
                Err(e) => {
                    tracing::warn!(blob = %blob.id, error = %e, "could not delete a blob; next sweep retries");
                }
            }
        }
        self.inner.store.forget_blobs(&deleted).await?;
        report.blobs_deleted = deleted.len() as u64;
        Ok(report)
    }

    /// Sweeps every `sweep_every` until the task is dropped; a failed pass
    /// is logged and retried at the next.
    pub async fn run_sweeper(self) {
        let mut tick = tokio::time::interval(self.inner.config.sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.sweep_once().await {
                Ok(r) if r != SweepReport::default() => {
                    tracing::debug!(
                        objects = r.objects_purged,
                        namespaces = r.namespaces_removed,
                        blobs = r.blobs_deleted,
                        "storage sweep"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "storage sweep failed; retrying"),
            }
        }
    }
}
