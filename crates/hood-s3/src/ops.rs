//! The S3 operations Hood serves. Each starts with who signed the request
//! and whether its grants reach the bucket; the rest is the storage
//! service's, shared with Hood's own API.

use crate::errors::s3;
use crate::principals::Principal;
use crate::HoodS3;
use bytes::Bytes;
use futures::StreamExt;
use hood_domain::audit::AuditContext;
use hood_domain::identity::Permission;
use hood_domain::scope::Action;
use hood_domain::storage::{MultipartUpload, Namespace, StoredObject, Visibility};
use hood_storage::{NewNamespace, StorageError, StorageResult};
use s3s::dto::{self, ETag, StreamingBlob};
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};

/// An object's or a part's S3 ETag: the MD5 of its bytes, what SDKs
/// compare with the MD5 they computed (the SHA-256 for bytes stored before
/// Hood kept the MD5).
fn etag(md5: Option<&str>, sha256: &str) -> ETag {
    ETag::Strong(md5.unwrap_or(sha256).to_owned())
}

fn timestamp(t: hood_domain::Timestamp) -> dto::Timestamp {
    dto::Timestamp::from(
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.millis()) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

fn size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn audit(who: &Principal) -> AuditContext {
    AuditContext {
        actor: who.actor(),
        request_id: None,
        reason: None,
    }
}

/// A storage error stream as the std error s3s's bodies carry.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BodyError(String);

fn blob<S>(stream: S) -> StreamingBlob
where
    S: futures::Stream<Item = StorageResult<Bytes>> + Send + 'static,
{
    StreamingBlob::wrap(sync_wrapper::SyncStream::new(
        stream.map(|chunk| chunk.map_err(|e| BodyError(e.to_string()))),
    ))
}

impl HoodS3 {
    async fn who<T>(&self, req: &S3Request<T>) -> S3Result<Principal> {
        self.principals
            .principal(req.credentials.as_ref().map(|c| c.access_key.as_str()))
            .await
    }

    /// The bucket as the principal may touch it: `AccessDenied` without
    /// the grant (whether or not it exists, so grants do not reveal
    /// names), `NoSuchBucket` when the organization has no such bucket.
    async fn bucket(
        &self,
        who: &Principal,
        bucket: &str,
        p: Permission,
        action: Action,
    ) -> S3Result<Namespace> {
        if !who.may(p, bucket, action) {
            return Err(s3_error!(
                AccessDenied,
                "the key's grants do not allow `{}` on namespace `{bucket}`",
                action.as_str()
            ));
        }
        self.storage
            .active_namespace(who.org_id, bucket)
            .await
            .map_err(s3)
    }

    /// The bucket a read reaches: a signed request's as its key's grants
    /// allow; an anonymous one's only when it names a public namespace as
    /// `{org_slug}.{name}` (a private or missing one is `AccessDenied`
    /// alike, so anonymous callers learn no names).
    async fn readable<T>(&self, req: &S3Request<T>, bucket: &str) -> S3Result<Namespace> {
        if req.credentials.is_some() {
            let who = self.who(req).await?;
            return self.read_bucket(&who, bucket).await;
        }
        let denied = || {
            s3_error!(
                AccessDenied,
                "anonymous requests only read public namespaces, as bucket `{{org_slug}}.{{name}}`"
            )
        };
        let (org_slug, name) = bucket.split_once('.').ok_or_else(denied)?;
        match self.storage.public_namespace_of(org_slug, name).await {
            Ok(ns) => Ok(ns),
            Err(StorageError::NotFound(_)) => Err(denied()),
            Err(e) => Err(s3(e)),
        }
    }

    async fn read_bucket(&self, who: &Principal, bucket: &str) -> S3Result<Namespace> {
        self.bucket(who, bucket, Permission::Read, Action::Read)
            .await
    }

    async fn write_bucket(&self, who: &Principal, bucket: &str) -> S3Result<Namespace> {
        self.bucket(who, bucket, Permission::Operate, Action::Create)
            .await
    }

    /// The multipart upload `id` of `key` in `ns`: `NoSuchUpload` when it
    /// is not in progress or belongs to another key (S3's answer).
    async fn upload(&self, ns: &Namespace, id: &str, key: &str) -> S3Result<MultipartUpload> {
        let upload = self.storage.upload(ns, id).await.map_err(s3)?;
        if upload.key.as_str() != key {
            return Err(s3_error!(NoSuchUpload));
        }
        Ok(upload)
    }
}

/// A copy source's bucket and key (no versions: Hood keeps none).
fn copy_source(source: &dto::CopySource) -> S3Result<(&str, &str)> {
    match source {
        dto::CopySource::Bucket {
            bucket,
            key,
            version_id: None,
        } => Ok((bucket, key)),
        _ => Err(s3_error!(
            NotImplemented,
            "only `bucket/key` copy sources without versions are served"
        )),
    }
}

fn object_entry(o: &StoredObject) -> dto::Object {
    dto::Object {
        key: Some(o.key.to_string()),
        e_tag: Some(etag(o.md5.as_deref(), &o.sha256)),
        size: Some(size(o.size)),
        last_modified: Some(timestamp(o.created_at)),
        storage_class: Some(dto::ObjectStorageClass::from_static(
            dto::ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

#[async_trait::async_trait]
impl S3 for HoodS3 {
    async fn list_buckets(
        &self,
        req: S3Request<dto::ListBucketsInput>,
    ) -> S3Result<S3Response<dto::ListBucketsOutput>> {
        let who = self.who(&req).await?;
        let buckets = self
            .storage
            .list_namespaces(who.org_id)
            .await
            .map_err(s3)?
            .into_iter()
            .filter(|ns| {
                ns.state == hood_domain::storage::NamespaceState::Active
                    && who.may(Permission::Read, ns.name.as_str(), Action::Read)
            })
            .map(|ns| dto::Bucket {
                name: Some(ns.name.to_string()),
                creation_date: Some(timestamp(ns.created_at)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(dto::ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(dto::Owner {
                display_name: Some(who.org_slug.clone()),
                id: Some(who.org_id.to_string()),
            }),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<dto::CreateBucketInput>,
    ) -> S3Result<S3Response<dto::CreateBucketOutput>> {
        let who = self.who(&req).await?;
        let name = &req.input.bucket;
        if !who.may(Permission::Operate, name, Action::Create) {
            return Err(s3_error!(
                AccessDenied,
                "the key's grants do not allow `create` on namespace `{name}`"
            ));
        }
        let created = self
            .storage
            .create_namespace(
                who.org_id,
                NewNamespace {
                    name: name.clone(),
                    visibility: Visibility::Private,
                    quota: None,
                },
                &audit(&who),
            )
            .await;
        match created {
            Ok(_) => Ok(S3Response::new(dto::CreateBucketOutput {
                location: Some(format!("/{name}")),
            })),
            Err(StorageError::Invalid(f)) => Err(s3_error!(InvalidBucketName, "{f}")),
            Err(e) => Err(s3(e)),
        }
    }

    async fn head_bucket(
        &self,
        req: S3Request<dto::HeadBucketInput>,
    ) -> S3Result<S3Response<dto::HeadBucketOutput>> {
        let who = self.who(&req).await?;
        self.read_bucket(&who, &req.input.bucket).await?;
        Ok(S3Response::new(dto::HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<dto::GetBucketLocationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLocationOutput>> {
        let who = self.who(&req).await?;
        self.read_bucket(&who, &req.input.bucket).await?;
        Ok(S3Response::new(dto::GetBucketLocationOutput::default()))
    }

    /// S3's rule: only an empty bucket is deleted (Hood's API deletes a
    /// namespace with its objects; S3 tools expect `BucketNotEmpty`).
    async fn delete_bucket(
        &self,
        req: S3Request<dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
        let who = self.who(&req).await?;
        let ns = self
            .bucket(&who, &req.input.bucket, Permission::Operate, Action::Delete)
            .await?;
        if ns.usage.objects > 0 {
            return Err(s3_error!(BucketNotEmpty));
        }
        self.storage
            .delete_namespace(who.org_id, ns.name.as_str(), &audit(&who))
            .await
            .map_err(s3)?;
        Ok(S3Response::new(dto::DeleteBucketOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<dto::PutObjectInput>,
    ) -> S3Result<S3Response<dto::PutObjectOutput>> {
        let who = self.who(&req).await?;
        let input = req.input;
        let ns = self.write_bucket(&who, &input.bucket).await?;
        let declared = input.content_length.and_then(|n| u64::try_from(n).ok());
        let body = match input.body {
            Some(body) => body.left_stream(),
            None => futures::stream::empty().right_stream(),
        };
        let written = self
            .storage
            .put_object(
                &ns,
                &input.key,
                input.content_type.as_deref(),
                declared,
                body,
            )
            .await
            .map_err(s3)?;
        Ok(S3Response::new(dto::PutObjectOutput {
            e_tag: Some(etag(written.object.md5.as_deref(), &written.object.sha256)),
            size: Some(size(written.object.size)),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<dto::GetObjectInput>,
    ) -> S3Result<S3Response<dto::GetObjectOutput>> {
        let ns = self.readable(&req, &req.input.bucket).await?;
        let input = req.input;
        let range = input.range.map(|r| r.to_header_string());
        let read = self
            .storage
            .read_object(&ns, &input.key, range.as_deref())
            .await
            .map_err(s3)?;
        let object = read.object;
        let (length, content_range) = match &read.range {
            Some(r) => (
                r.end - r.start,
                Some(format!(
                    "bytes {}-{}/{}",
                    r.start,
                    r.end.saturating_sub(1),
                    object.size
                )),
            ),
            None => (object.size, None),
        };
        Ok(S3Response::new(dto::GetObjectOutput {
            body: Some(blob(read.bytes)),
            content_length: Some(size(length)),
            content_range,
            content_type: Some(object.content_type.clone()),
            e_tag: Some(etag(object.md5.as_deref(), &object.sha256)),
            last_modified: Some(timestamp(object.created_at)),
            accept_ranges: Some("bytes".into()),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<dto::HeadObjectInput>,
    ) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        let ns = self.readable(&req, &req.input.bucket).await?;
        let object = self.storage.object(&ns, &req.input.key).await.map_err(s3)?;
        Ok(S3Response::new(dto::HeadObjectOutput {
            content_length: Some(size(object.size)),
            content_type: Some(object.content_type.clone()),
            e_tag: Some(etag(object.md5.as_deref(), &object.sha256)),
            last_modified: Some(timestamp(object.created_at)),
            accept_ranges: Some("bytes".into()),
            ..Default::default()
        }))
    }

    /// Deleting a key that holds nothing succeeds (S3's rule).
    async fn delete_object(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        let who = self.who(&req).await?;
        let ns = self
            .bucket(&who, &req.input.bucket, Permission::Operate, Action::Delete)
            .await?;
        match self.storage.delete_object(&ns, &req.input.key).await {
            Ok(_) | Err(StorageError::NotFound("object")) => {}
            Err(e) => return Err(s3(e)),
        }
        Ok(S3Response::new(dto::DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
        let who = self.who(&req).await?;
        let ns = self
            .bucket(&who, &req.input.bucket, Permission::Operate, Action::Delete)
            .await?;
        let quiet = req.input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for id in req.input.delete.objects {
            match self.storage.delete_object(&ns, &id.key).await {
                Ok(_) | Err(StorageError::NotFound("object")) => {
                    if !quiet {
                        deleted.push(dto::DeletedObject {
                            key: Some(id.key),
                            ..Default::default()
                        });
                    }
                }
                Err(e) => {
                    let e = s3(e);
                    errors.push(dto::Error {
                        code: Some(e.code().as_str().to_owned()),
                        key: Some(id.key),
                        message: e.message().map(str::to_owned),
                        version_id: None,
                    });
                }
            }
        }
        Ok(S3Response::new(dto::DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        let ns = self.readable(&req, &req.input.bucket).await?;
        let input = req.input;
        let max_keys = input.max_keys.unwrap_or(1000).clamp(0, 1000);
        let limit = usize::try_from(max_keys).unwrap_or(1000);
        let prefix = input.prefix.clone().unwrap_or_default();
        // The token is the last key or common prefix of the previous page.
        let resume = input
            .continuation_token
            .clone()
            .or_else(|| input.start_after.clone());
        let page = self
            .storage
            .list_folded(
                &ns,
                &prefix,
                input.delimiter.as_deref(),
                resume.as_deref(),
                u32::try_from(limit).unwrap_or(1000).max(1),
            )
            .await
            .map_err(s3)?;
        let (contents, prefixes, truncated, last_emitted) = if limit == 0 {
            (Vec::new(), Vec::new(), false, None)
        } else {
            let truncated = page.next_after.is_some();
            (
                page.objects.iter().map(object_entry).collect::<Vec<_>>(),
                page.prefixes,
                truncated,
                page.next_after,
            )
        };
        let key_count = i32::try_from(contents.len() + prefixes.len()).unwrap_or(i32::MAX);
        Ok(S3Response::new(dto::ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            max_keys: Some(max_keys),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            start_after: input.start_after,
            is_truncated: Some(truncated),
            next_continuation_token: if truncated { last_emitted } else { None },
            contents: Some(contents),
            common_prefixes: Some(
                prefixes
                    .into_iter()
                    .map(|p| dto::CommonPrefix { prefix: Some(p) })
                    .collect(),
            ),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<dto::CopyObjectInput>,
    ) -> S3Result<S3Response<dto::CopyObjectOutput>> {
        let who = self.who(&req).await?;
        let input = req.input;
        let (src_bucket, src_key) = copy_source(&input.copy_source)?;
        let source_ns = self.read_bucket(&who, src_bucket).await?;
        let target_ns = self.write_bucket(&who, &input.bucket).await?;
        let read = self
            .storage
            .read_object(&source_ns, src_key, None)
            .await
            .map_err(s3)?;
        // S3's default directive (COPY) keeps the source's content type.
        let content_type = match input.metadata_directive.as_ref().map(|d| d.as_str()) {
            Some(dto::MetadataDirective::REPLACE) => input.content_type.clone(),
            _ => Some(read.object.content_type.clone()),
        };
        let written = self
            .storage
            .put_object(
                &target_ns,
                &input.key,
                content_type.as_deref(),
                Some(read.object.size),
                read.bytes,
            )
            .await
            .map_err(s3)?;
        Ok(S3Response::new(dto::CopyObjectOutput {
            copy_object_result: Some(dto::CopyObjectResult {
                e_tag: Some(etag(written.object.md5.as_deref(), &written.object.sha256)),
                last_modified: Some(timestamp(written.object.created_at)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        let who = self.who(&req).await?;
        let input = req.input;
        let ns = self.write_bucket(&who, &input.bucket).await?;
        let upload = self
            .storage
            .create_upload(&ns, &input.key, input.content_type.as_deref())
            .await
            .map_err(s3)?;
        Ok(S3Response::new(dto::CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload.id.to_string()),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<dto::UploadPartInput>,
    ) -> S3Result<S3Response<dto::UploadPartOutput>> {
        let who = self.who(&req).await?;
        let input = req.input;
        let ns = self.write_bucket(&who, &input.bucket).await?;
        let number = hood_domain::storage::part_number(i64::from(input.part_number))
            .map_err(|e| s3_error!(InvalidArgument, "{e}"))?;
        let upload = self.upload(&ns, &input.upload_id, &input.key).await?;
        let declared = input.content_length.and_then(|n| u64::try_from(n).ok());
        let body = match input.body {
            Some(body) => body.left_stream(),
            None => futures::stream::empty().right_stream(),
        };
        let part = self
            .storage
            .put_part(&upload, number, declared, body)
            .await
            .map_err(s3)?;
        Ok(S3Response::new(dto::UploadPartOutput {
            e_tag: Some(etag(part.md5.as_deref(), &part.sha256)),
            ..Default::default()
        }))
    }

    /// A part copied from (a range of) an existing object: what `aws s3 cp`
    /// uses to copy a large object from bucket to bucket.
    async fn upload_part_copy(
        &self,
        req: S3Request<dto::UploadPartCopyInput>,
    ) -> S3Result<S3Response<dto::UploadPartCopyOutput>> {
        let who = self.who(&req).await?;
        let input = req.input;
        let (src_bucket, src_key) = copy_source(&input.copy_source)?;
        let source_ns = self.read_bucket(&who, src_bucket).await?;
        let ns = self.write_bucket(&who, &input.bucket).await?;
        let number = hood_domain::storage::part_number(i64::from(input.part_number))
            .map_err(|e| s3_error!(InvalidArgument, "{e}"))?;
        let upload = self.upload(&ns, &input.upload_id, &input.key).await?;
        let read = self
            .storage
            .read_object(&source_ns, src_key, input.copy_source_range.as_deref())
            .await
            .map_err(s3)?;
        if input.copy_source_range.is_some() && read.range.is_none() {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-copy-source-range must be `bytes=FIRST-LAST`"
            ));
        }
        let len = read
            .range
            .as_ref()
            .map_or(read.object.size, |r| r.end - r.start);
        let part = self
            .storage
            .put_part(&upload, number, Some(len), read.bytes)
            .await
            .map_err(s3)?;
        Ok(S3Response::new(dto::UploadPartCopyOutput {
            copy_part_result: Some(dto::CopyPartResult {
                e_tag: Some(etag(part.md5.as_deref(), &part.sha256)),
                last_modified: Some(timestamp(read.object.created_at)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
        let who = self.who(&req).await?;
        let input = req.input;
        let ns = self.write_bucket(&who, &input.bucket).await?;
        let upload = self.upload(&ns, &input.upload_id, &input.key).await?;
        let mut requested = Vec::new();
        for part in input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
        {
            let number = part
                .part_number
                .ok_or_else(|| s3_error!(MalformedXML, "a part without a PartNumber"))?;
            let number = hood_domain::storage::part_number(i64::from(number))
                .map_err(|e| s3_error!(InvalidPart, "{e}"))?;
            requested.push((number, part.e_tag.map(ETag::into_value)));
        }
        let written = self
            .storage
            .complete_upload(&ns, &upload, &requested)
            .await
            .map_err(s3)?;
        Ok(S3Response::new(dto::CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(written.object.md5.as_deref(), &written.object.sha256)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        let who = self.who(&req).await?;
        let ns = self.write_bucket(&who, &req.input.bucket).await?;
        let upload = self
            .upload(&ns, &req.input.upload_id, &req.input.key)
            .await?;
        self.storage.abort_upload(&upload).await.map_err(s3)?;
        Ok(S3Response::new(dto::AbortMultipartUploadOutput::default()))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<dto::ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
        let who = self.who(&req).await?;
        let input = req.input;
        let ns = self.write_bucket(&who, &input.bucket).await?;
        let max = input.max_uploads.unwrap_or(1000).clamp(1, 1000);
        let key_marker = input.key_marker.filter(|k| !k.is_empty());
        // S3 ignores an upload-id marker without a key marker; a malformed
        // one names no upload, so the key's uploads are all after it.
        let after_upload = key_marker.as_ref().and_then(|_| {
            input
                .upload_id_marker
                .as_deref()
                .and_then(|id| id.parse().ok())
        });
        let page = self
            .storage
            .list_uploads(
                &ns,
                input.prefix.as_deref().unwrap_or_default(),
                key_marker.clone(),
                after_upload,
                u32::try_from(max).unwrap_or(1000),
            )
            .await
            .map_err(s3)?;
        Ok(S3Response::new(dto::ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max),
            is_truncated: Some(page.next.is_some()),
            next_key_marker: page.next.as_ref().map(|(key, _)| key.clone()),
            next_upload_id_marker: page.next.as_ref().map(|(_, id)| id.to_string()),
            uploads: Some(
                page.uploads
                    .iter()
                    .map(|u| dto::MultipartUpload {
                        key: Some(u.key.to_string()),
                        upload_id: Some(u.id.to_string()),
                        initiated: Some(timestamp(u.created_at)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn list_parts(
        &self,
        req: S3Request<dto::ListPartsInput>,
    ) -> S3Result<S3Response<dto::ListPartsOutput>> {
        let who = self.who(&req).await?;
        let input = req.input;
        let ns = self.write_bucket(&who, &input.bucket).await?;
        let upload = self.upload(&ns, &input.upload_id, &input.key).await?;
        let marker = input.part_number_marker.unwrap_or(0);
        let max = usize::try_from(input.max_parts.unwrap_or(1000).clamp(1, 1000)).unwrap_or(1000);
        let parts = self.storage.upload_parts(&upload).await.map_err(s3)?;
        let mut after_marker = parts
            .iter()
            .filter(|p| i64::from(p.number) > i64::from(marker))
            .peekable();
        let page: Vec<_> = after_marker.by_ref().take(max).collect();
        let truncated = after_marker.peek().is_some();
        Ok(S3Response::new(dto::ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            is_truncated: Some(truncated),
            next_part_number_marker: if truncated {
                page.last().and_then(|p| i32::try_from(p.number).ok())
            } else {
                None
            },
            parts: Some(
                page.iter()
                    .map(|p| dto::Part {
                        part_number: i32::try_from(p.number).ok(),
                        e_tag: Some(etag(p.md5.as_deref(), &p.sha256)),
                        size: Some(size(p.size)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }
}
