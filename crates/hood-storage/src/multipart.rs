//! Multipart uploads (S3's): parts streamed into blobs of their own, then
//! composed in order into one new object at completion. Parts count
//! against no quota until completion, which checks the whole object like
//! any write; an upload never completed is ended by its abort, its
//! namespace's deletion, or the sweeper once it is older than
//! [`crate::StorageConfig::upload_expires_after`].

use crate::{Storage, StorageError, StorageResult, DEFAULT_CONTENT_TYPE};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use hood_domain::storage::{
    blob_path, plan_completion, MultipartUpload, Namespace, NamespaceState, ObjectKey, UploadPart,
};
use hood_domain::{BlobId, UploadId};
use hood_store::storage::ObjectWritten;
use hood_store::StoreError;
use object_store::path::Path as ObjectPath;

type PartStream = BoxStream<'static, StorageResult<Bytes>>;

/// The most one part may hold (S3's limit): 5 GiB.
pub const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;

impl Storage {
    /// Starts a multipart upload of `key`.
    pub async fn create_upload(
        &self,
        ns: &Namespace,
        key: &str,
        content_type: Option<&str>,
    ) -> StorageResult<MultipartUpload> {
        if ns.state != NamespaceState::Active {
            return Err(StorageError::NotFound("namespace"));
        }
        let content_type = match content_type {
            Some(ct) => {
                hood_artifacts::names::content_type(ct)?;
                ct.to_owned()
            }
            None => DEFAULT_CONTENT_TYPE.to_owned(),
        };
        let upload = MultipartUpload {
            id: UploadId::from_uuid(uuid::Uuid::now_v7()),
            namespace_id: ns.id,
            key: ObjectKey::parse(key)?,
            content_type,
            created_at: self.now(),
        };
        match self.inner.store.create_upload(&upload).await {
            Ok(()) => Ok(upload),
            Err(StoreError::NotFound(_)) => Err(StorageError::NotFound("namespace")),
            Err(e) => Err(e.into()),
        }
    }

    /// The namespace's upload in progress of that id (a malformed id is
    /// simply not found).
    pub async fn upload(&self, ns: &Namespace, id: &str) -> StorageResult<MultipartUpload> {
        let id: UploadId = id.parse().map_err(|_| StorageError::NotFound("upload"))?;
        self.inner
            .store
            .upload(ns.id, id)
            .await?
            .ok_or(StorageError::NotFound("upload"))
    }

    /// One page of at most `limit` of the namespace's uploads in progress,
    /// by key then id (S3's ListMultipartUploads order): keys starting with
    /// `prefix`, after `after_key` (and, within it, after `after_upload`).
    pub async fn list_uploads(
        &self,
        ns: &Namespace,
        prefix: &str,
        after_key: Option<String>,
        after_upload: Option<UploadId>,
        limit: u32,
    ) -> StorageResult<UploadPage> {
        let listing = hood_store::storage::UploadListing {
            prefix: prefix.to_owned(),
            after_key,
            after_upload,
            // One more than asked: whether another page follows.
            limit: i64::from(limit) + 1,
        };
        let mut uploads = self.inner.store.list_uploads(ns.id, &listing).await?;
        let page = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = uploads.len() > page;
        uploads.truncate(page);
        let next = uploads
            .last()
            .filter(|_| more)
            .map(|u| (u.key.to_string(), u.id));
        Ok(UploadPage { uploads, next })
    }

    /// The upload's parts by number.
    pub async fn upload_parts(&self, upload: &MultipartUpload) -> StorageResult<Vec<UploadPart>> {
        Ok(self.inner.store.upload_parts(upload.id).await?)
    }

    /// Streams one part into a blob of its own; a later part of the same
    /// number replaces it.
    pub async fn put_part<S, E>(
        &self,
        upload: &MultipartUpload,
        number: u32,
        declared_len: Option<u64>,
        body: S,
    ) -> StorageResult<UploadPart>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut body = std::pin::pin!(body);
        let limit = MAX_PART_BYTES.min(self.inner.config.max_object_bytes);
        if declared_len.is_some_and(|len| len > limit) {
            crate::write::drain(body.as_mut(), declared_len.unwrap_or(0)).await;
            return Err(StorageError::TooLarge { limit });
        }
        let ns = upload.namespace_id;
        let blob = BlobId::from_uuid(uuid::Uuid::now_v7());
        self.inner.store.start_blob(blob, ns, self.now()).await?;
        let path = ObjectPath::from(blob_path(ns, blob));
        let crate::write::BlobWritten { sha256, md5, size } = match self
            .write_blob(&path, body.as_mut(), limit, |_| StorageError::TooLarge {
                limit,
            })
            .await
        {
            Ok(v) => v,
            Err(e) => {
                self.abandon(ns, blob).await;
                return Err(e);
            }
        };
        let part = UploadPart {
            upload_id: upload.id,
            number,
            blob_id: blob,
            size,
            sha256,
            md5: Some(md5),
        };
        match self.inner.store.commit_part(&part, self.now()).await {
            Ok(replaced) => {
                if let Some(old) = replaced {
                    self.delete_blob_bytes(ns, old.blob_id).await;
                }
                Ok(part)
            }
            Err(e) => {
                self.abandon(ns, blob).await;
                Err(match e {
                    StoreError::NotFound(_) => StorageError::NotFound("upload"),
                    e => e.into(),
                })
            }
        }
    }

    /// Composes the named parts, in order, into the upload's object (a
    /// write like any other: the quota is checked on the whole, before a
    /// byte is copied) and ends the upload.
    pub async fn complete_upload(
        &self,
        ns: &Namespace,
        upload: &MultipartUpload,
        requested: &[(u32, Option<String>)],
    ) -> StorageResult<ObjectWritten> {
        let uploaded = self.inner.store.upload_parts(upload.id).await?;
        let plan = plan_completion(requested, &uploaded)?;
        let total = plan.iter().map(|p| p.size).sum::<u64>();
        let this = self.clone();
        let ns_id = upload.namespace_id;
        // Boxed with 'static types spelled out: the compiler cannot prove
        // an inferred closure's future Send for every lifetime.
        let part_bytes = move |part: UploadPart| -> BoxFuture<'static, StorageResult<PartStream>> {
            let this = this.clone();
            Box::pin(async move { this.blob_bytes(ns_id, part.blob_id, part.size, None).await })
        };
        let bytes = futures::stream::iter(plan)
            .then(part_bytes)
            .try_flatten()
            .boxed();
        let written = self
            .put_object(
                ns,
                upload.key.as_str(),
                Some(&upload.content_type),
                Some(total),
                bytes,
            )
            .await?;
        self.end_upload(upload, &uploaded).await?;
        Ok(written)
    }

    /// Aborts an upload: its parts' bytes are deleted.
    pub async fn abort_upload(&self, upload: &MultipartUpload) -> StorageResult<()> {
        let parts = self.inner.store.upload_parts(upload.id).await?;
        if !self.end_upload(upload, &parts).await? {
            return Err(StorageError::NotFound("upload"));
        }
        Ok(())
    }

    /// Ends an upload and deletes the bytes of `parts` (best effort: the
    /// sweeper deletes what is left, the rows say what).
    async fn end_upload(
        &self,
        upload: &MultipartUpload,
        parts: &[UploadPart],
    ) -> StorageResult<bool> {
        let ended = self.inner.store.end_upload(upload.id, self.now()).await?;
        if ended {
            for part in parts {
                self.delete_blob_bytes(upload.namespace_id, part.blob_id)
                    .await;
            }
        }
        Ok(ended)
    }
}

/// A page of uploads in progress.
#[derive(Debug, Clone)]
pub struct UploadPage {
    pub uploads: Vec<MultipartUpload>,
    /// The last key and upload of the page when more follow: where the
    /// next page starts after.
    pub next: Option<(String, UploadId)>,
}
