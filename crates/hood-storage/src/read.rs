//! Reads: an object's record, its bytes whole or by range, listings.

use crate::{Storage, StorageError, StorageResult};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use hood_domain::storage::{blob_path, Namespace, ObjectKey, StoredObject};
use hood_domain::{BlobId, NamespaceId};
use hood_store::storage::ObjectListing;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, GetResultPayload};
use std::ops::Range;

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

/// A listing with keys folded at a delimiter, as folders: the objects
/// directly under the prefix and the common prefixes below it, together
/// at most the limit, in key order.
#[derive(Debug, Clone, Default)]
pub struct FoldedPage {
    pub objects: Vec<StoredObject>,
    /// Each ends with the delimiter (`photos/2024/`).
    pub prefixes: Vec<String>,
    /// The last key or common prefix of this page when more follow: pass
    /// it as `after`.
    pub next_after: Option<String>,
}

/// Listing pages read from the store while a delimiter folds keys.
const FOLD_BATCH: u32 = 1000;

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

impl Storage {
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
        let bytes = self
            .blob_bytes(object.namespace_id, object.blob_id, object.size, range.clone())
            .await
            .inspect_err(|e| {
                if matches!(e, StorageError::Object(object_store::Error::NotFound { .. })) {
                    tracing::error!(namespace = %object.namespace_id, key = %object.key, blob = %object.blob_id,
                        "an object's bytes are missing from the storage object store");
                }
            })?;
        Ok(ObjectRead {
            object,
            range,
            bytes,
        })
    }

    /// A blob's bytes, whole (`size` of them) or one range.
    pub(crate) async fn blob_bytes(
        &self,
        ns: NamespaceId,
        blob: BlobId,
        size: u64,
        range: Option<Range<u64>>,
    ) -> StorageResult<BoxStream<'static, StorageResult<Bytes>>> {
        if size == 0 || range.as_ref().is_some_and(|r| r.is_empty()) {
            return Ok(futures::stream::empty().boxed());
        }
        let path = ObjectPath::from(blob_path(ns, blob));
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self.inner.objects.get_opts(&path, options).await?;
        Ok(match result.payload {
            // A local file: read in large chunks (object_store's own
            // stream reads 8 KiB at a time, which HTTP pays for).
            GetResultPayload::File(file, _) => file_stream(file, result.range),
            GetResultPayload::Stream(stream) => stream
                .map(|chunk| chunk.map_err(StorageError::from))
                .boxed(),
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

    /// Objects under `prefix`, keys that go on past `delimiter` folded
    /// into one common prefix each (S3's ListObjectsV2 rule; with no
    /// delimiter, a plain page). `after` is a previous page's
    /// `next_after`: a key, or a common prefix whose keys are all skipped.
    pub async fn list_folded(
        &self,
        ns: &Namespace,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StorageResult<FoldedPage> {
        let limit = usize::try_from(limit.clamp(1, 1000)).unwrap_or(1000);
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let mut page = FoldedPage::default();
        let mut cursor = after.map(str::to_owned);
        let mut last_emitted: Option<String> = None;
        'batches: loop {
            let batch = self
                .list_objects(ns, Some(prefix), cursor.as_deref(), FOLD_BATCH)
                .await?;
            for object in batch.objects {
                let key = object.key.as_str();
                let folded = delimiter.and_then(|d| {
                    key.get(prefix.len()..)
                        .and_then(|rest| rest.find(d))
                        .map(|at| key[..prefix.len() + at + d.len()].to_owned())
                });
                if let Some(common) = &folded {
                    // Keys of a folder already listed, on this page or the
                    // one before it.
                    let seen = page.prefixes.last() == Some(common)
                        || after.is_some_and(|a| common.as_str() <= a);
                    if seen {
                        continue;
                    }
                }
                if page.objects.len() + page.prefixes.len() >= limit {
                    page.next_after = last_emitted;
                    break 'batches;
                }
                match folded {
                    Some(common) => {
                        last_emitted = Some(common.clone());
                        page.prefixes.push(common);
                    }
                    None => {
                        last_emitted = Some(key.to_owned());
                        page.objects.push(object);
                    }
                }
            }
            match batch.next_after {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(page)
    }
}
