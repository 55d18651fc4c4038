//! Writes: an upload streamed into a new blob and committed under the
//! namespace's lock; deletions; the bytes of blobs that lost their object.

use crate::{Storage, StorageError, StorageResult, DEFAULT_CONTENT_TYPE, UPLOAD_BUFFER_BYTES};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use hood_domain::storage::{
    blob_path, Namespace, NamespaceState, ObjectKey, QuotaExceeded, StoredObject,
};
use hood_domain::{BlobId, NamespaceId};
use hood_store::storage::{ObjectWritten, WriteRefused};
use md5::Md5;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt as _;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// The most of a refused upload's body read (and thrown away) before the
/// refusal is answered: HTTP clients that write the whole body before
/// reading the answer (most do; few wait for `100 Continue`) then see the
/// 413 instead of a broken pipe. A larger refused body is cut off.
const DRAIN_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Reads and discards what is left of a refused body, up to `announced`
/// bytes and at most [`DRAIN_LIMIT_BYTES`].
pub(crate) async fn drain<S, E>(mut body: std::pin::Pin<&mut S>, announced: u64)
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

impl Storage {
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
        let BlobWritten { sha256, md5, size } = match written {
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
            md5: Some(md5),
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

    /// Streams the body into `path`, hashing it (SHA-256 for Hood, MD5 for
    /// S3's ETag); refuses (with `too_big`'s error) the first chunk that
    /// takes it beyond `room` bytes.
    pub(crate) async fn write_blob<S, E>(
        &self,
        path: &ObjectPath,
        body: S,
        room: u64,
        too_big: impl Fn(u64) -> StorageError,
    ) -> StorageResult<BlobWritten>
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
        let mut md5 = Md5::new();
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
            md5.update(&chunk);
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
        Ok(BlobWritten {
            sha256: hex::encode(hasher.finalize()),
            md5: hex::encode(md5.finalize()),
            size,
        })
    }

    /// An upload that will not become an object: its blob is garbage, its
    /// bytes deleted now when possible (else by the sweeper).
    pub(crate) async fn abandon(&self, ns: NamespaceId, blob: BlobId) {
        if let Err(e) = self.inner.store.discard_blob(blob, self.now()).await {
            tracing::warn!(blob = %blob, error = %e, "could not mark an abandoned upload; the sweeper will find it");
            return;
        }
        self.delete_blob_bytes(ns, blob).await;
    }

    pub(crate) async fn delete_blob_bytes(&self, ns: NamespaceId, blob: BlobId) {
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

    /// Deletes a blob's bytes: the object, and on a local store any staging
    /// file an interrupted write left (`{blob}#{n}`). NotFound is success.
    pub(crate) async fn delete_bytes(
        &self,
        ns: NamespaceId,
        blob: BlobId,
    ) -> Result<(), object_store::Error> {
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
}

/// What [`Storage::write_blob`] stored: the bytes' digests (hex) and size.
pub(crate) struct BlobWritten {
    pub(crate) sha256: String,
    pub(crate) md5: String,
    pub(crate) size: u64,
}
