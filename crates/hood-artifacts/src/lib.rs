//! The artifact store: binaries by name, version and SHA-256, so that fleets
//! install from the control plane and work air-gapped.
//!
//! Bytes live in an [`object_store`] (a directory in embedded mode, an
//! S3-compatible bucket in cluster mode; see [`StoreLocation`]); metadata in
//! the catalog of `hood-store` ([`ArtifactCatalog`]). Layout inside the
//! object store:
//!
//! ```text
//! tmp/{uuid}             an upload in progress (deleted on success or failure)
//! blobs/sha256/{hex}     content, addressed by its SHA-256
//! ```
//!
//! A push streams the body to a temporary object while hashing it, so no
//! artifact is ever held in memory and nothing is visible under its final
//! key before its checksum is known. Only then is it moved to its
//! content-addressed key and recorded. Because the final key is a function of
//! the content, two racing pushes of the same artifact write the same object
//! and the catalog's `(name, version)` uniqueness decides which row wins.
//!
//! On S3 the final move is a server-side copy plus delete (object_store's
//! `rename`), whose single-request copy is limited to 5 GiB; the default
//! size limit stays below it. A push killed mid-upload can leave a
//! multipart upload behind on S3: give the bucket a lifecycle rule that
//! aborts incomplete multipart uploads, and call
//! [`ArtifactStore::sweep_uploads`] at start for leftover `tmp/` objects.
//!
//! [`ArtifactCatalog`]: hood_store::artifact::ArtifactCatalog

mod config;
pub mod names;

pub use config::{S3Location, StoreLocation, EMBEDDED_DIR};
pub use hood_store::artifact::{ArtifactRecord, RecordOutcome};

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, Stream, StreamExt};
use hood_domain::validate::FieldError;
use hood_domain::UserId;
use hood_store::artifact::ArtifactCatalog;
use hood_store::StoreError;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Largest artifact accepted unless [`ArtifactStore::with_max_size`] says
/// otherwise: node binaries and their archives are far below it, a bound
/// keeps one runaway upload from filling the disk, and it stays under S3's
/// 5 GiB single-copy limit that the final move relies on.
pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Bytes buffered before an upload switches to multipart (S3 parts must be
/// at least 5 MiB); also the most a push holds in memory at once.
const UPLOAD_BUFFER_BYTES: usize = 8 * 1024 * 1024;
/// Read size when pushing from a file or reader.
const READ_CHUNK_BYTES: usize = 256 * 1024;
const TMP_PREFIX: &str = "tmp";
const BLOB_PREFIX: &str = "blobs/sha256";

/// Artifact store failures.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// Bad name, version, checksum or media type; names the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("artifact {name}/{version} not found")]
    NotFound { name: String, version: String },
    /// The content does not hash to what the pusher said it would.
    #[error("checksum mismatch: expected sha256 {expected}, the content hashes to {actual}")]
    ChecksumMismatch { expected: String, actual: String },
    /// The name and version are taken by other content; artifacts are
    /// immutable, so a new build needs a new version.
    #[error("{0}; artifacts are immutable, push the new content under a new version")]
    Conflict(String),
    #[error("artifact is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Reading what was to be pushed failed (an aborted upload, an
    /// unreadable file): the pusher's side, not ours.
    #[error("reading the artifact failed: {0}")]
    Source(#[source] std::io::Error),
    /// The object store failed (disk, network, permissions).
    #[error("object store: {0}")]
    Object(#[from] object_store::Error),
    #[error(transparent)]
    Store(StoreError),
    /// The catalog lists the artifact but the object store has no object
    /// for it (a wiped store, or a replica that wrote to another store):
    /// permanent until the artifact is pushed again, which restores it.
    #[error("artifact object {name} {version} (sha256 {sha256}) missing in the artifact store")]
    ObjectMissing {
        name: String,
        version: String,
        sha256: String,
    },
    /// Stored bytes disagree with the catalog (size, checksum).
    #[error("artifact store is inconsistent: {0}")]
    Corrupt(String),
    #[error("artifact store configuration: {0}")]
    Config(String),
}

impl From<StoreError> for ArtifactError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ArtifactError::Conflict(format!("{what} already exists")),
            other => ArtifactError::Store(other),
        }
    }
}

pub type ArtifactResult<T> = Result<T, ArtifactError>;

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// A new artifact: its object stored and its catalog row written.
    Created(ArtifactRecord),
    /// The same name, version and content were already stored, object
    /// included: nothing changed.
    Existing(ArtifactRecord),
    /// The catalog row was there with the same content, but its object was
    /// missing from the object store (or had the wrong size): the pushed
    /// bytes were stored under it again. The row did not change.
    Restored(ArtifactRecord),
}

impl PushOutcome {
    /// The row in the catalog, whichever way it got there.
    pub fn record(&self) -> &ArtifactRecord {
        match self {
            Self::Created(r) | Self::Existing(r) | Self::Restored(r) => r,
        }
    }

    pub fn into_record(self) -> ArtifactRecord {
        match self {
            Self::Created(r) | Self::Existing(r) | Self::Restored(r) => r,
        }
    }

    /// A new catalog row was written.
    pub fn created(&self) -> bool {
        matches!(self, Self::Created(_))
    }

    /// A missing object was stored again under an existing row.
    pub fn restored(&self) -> bool {
        matches!(self, Self::Restored(_))
    }

    /// `created`, `existing` or `restored` (the push answer's `outcome`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Created(_) => "created",
            Self::Existing(_) => "existing",
            Self::Restored(_) => "restored",
        }
    }
}

impl From<RecordOutcome> for PushOutcome {
    fn from(outcome: RecordOutcome) -> Self {
        match outcome {
            RecordOutcome::Created(r) => Self::Created(r),
            RecordOutcome::Existing(r) => Self::Existing(r),
        }
    }
}

/// A stream of an artifact's bytes.
pub type ByteStream = BoxStream<'static, ArtifactResult<Bytes>>;

/// What a push is about, besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct PushRequest {
    pub name: String,
    pub version: String,
    /// Refuse the push unless the content hashes to this (hex, any case).
    pub expected_sha256: Option<String>,
    /// Media type to serve the bytes with; default `application/octet-stream`.
    pub content_type: Option<String>,
    /// Recorded as the pusher.
    pub created_by: Option<UserId>,
}

impl PushRequest {
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            ..Self::default()
        }
    }

    pub fn expect_sha256(mut self, sha256: Option<&str>) -> Self {
        self.expected_sha256 = sha256.map(str::to_owned);
        self
    }

    pub fn created_by(mut self, user: Option<UserId>) -> Self {
        self.created_by = user;
        self
    }

    pub fn content_type(mut self, content_type: Option<&str>) -> Self {
        self.content_type = content_type.map(str::to_owned);
        self
    }
}

/// Name, version and SHA-256 addressed binaries over an object store.
/// Cheap to clone; share one per process.
#[derive(Clone)]
pub struct ArtifactStore {
    objects: Arc<dyn ObjectStore>,
    catalog: Arc<dyn ArtifactCatalog>,
    location: String,
    max_size: u64,
}

impl fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("location", &self.location)
            .field("max_size", &self.max_size)
            .finish_non_exhaustive()
    }
}

impl ArtifactStore {
    /// Opens the store at `location` (a `file://` or `s3://` URL) with
    /// `catalog` for the metadata.
    pub fn connect(location: &str, catalog: Arc<dyn ArtifactCatalog>) -> ArtifactResult<Self> {
        Self::from_location(&StoreLocation::parse(location)?, catalog)
    }

    pub fn from_location(
        location: &StoreLocation,
        catalog: Arc<dyn ArtifactCatalog>,
    ) -> ArtifactResult<Self> {
        let objects = location.open()?;
        tracing::info!(location = %location, "artifact store opened");
        Ok(Self::with_object_store(
            objects,
            catalog,
            location.to_string(),
        ))
    }

    /// Any object store (tests, or a store configured by hand). `location`
    /// is what logs call it.
    pub fn with_object_store(
        objects: Arc<dyn ObjectStore>,
        catalog: Arc<dyn ArtifactCatalog>,
        location: impl Into<String>,
    ) -> Self {
        Self {
            objects,
            catalog,
            location: location.into(),
            max_size: DEFAULT_MAX_ARTIFACT_BYTES,
        }
    }

    /// Overrides [`DEFAULT_MAX_ARTIFACT_BYTES`].
    pub fn with_max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// Where the bytes live (for logs and `hood` start-up output).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The underlying object store (tests and maintenance tools).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    // -- push --

    /// Pushes `name`/`version` from a reader, refusing it unless it hashes
    /// to `expected_sha256` when that is given.
    pub async fn push<R>(
        &self,
        name: &str,
        version: &str,
        reader: R,
        expected_sha256: Option<&str>,
    ) -> ArtifactResult<PushOutcome>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let req = PushRequest::new(name, version).expect_sha256(expected_sha256);
        self.push_reader(req, reader).await
    }

    /// Pushes the file at `path` (streamed, never read whole).
    pub async fn push_file(
        &self,
        name: &str,
        version: &str,
        path: &Path,
        expected_sha256: Option<&str>,
    ) -> ArtifactResult<PushOutcome> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(ArtifactError::Source)?;
        self.push(name, version, file, expected_sha256).await
    }

    /// Pushes from a reader with every option.
    pub async fn push_reader<R>(&self, req: PushRequest, reader: R) -> ArtifactResult<PushOutcome>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        self.push_stream(req, reader_stream(reader)).await
    }

    /// Pushes from a stream of chunks (an HTTP request body: any error type
    /// will do, e.g. `axum::body::Body::into_data_stream()`). The one
    /// implementation behind every `push*` method.
    ///
    /// Returns [`PushOutcome::Created`] for a new artifact,
    /// [`PushOutcome::Existing`] when the same name, version and content
    /// were already there (nothing changes), and [`PushOutcome::Restored`]
    /// when the row was there but its object was not: a repeated push is
    /// how an operator repairs a wiped or misconfigured store. Errors leave
    /// no temporary object and no catalog row behind.
    pub async fn push_stream<S, E>(&self, req: PushRequest, body: S) -> ArtifactResult<PushOutcome>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        names::name(&req.name)?;
        names::version(&req.version)?;
        let expected = req
            .expected_sha256
            .as_deref()
            .map(|s| names::sha256("sha256", s))
            .transpose()?;
        let content_type = match req.content_type.as_deref() {
            Some(ct) => {
                names::content_type(ct)?;
                ct.to_owned()
            }
            None => names::DEFAULT_CONTENT_TYPE.to_owned(),
        };

        let mut upload = TempUpload::start(self.objects.clone());
        let (sha256, size) = match self.stream_into(&mut upload, body).await {
            Ok(v) => v,
            Err(e) => {
                upload.discard().await;
                return Err(e);
            }
        };
        if size == 0 {
            // An empty file is never a binary, and its SHA-256 is the
            // catalog's placeholder checksum: refusing it keeps placeholders
            // failing closed.
            upload.discard().await;
            return Err(FieldError::new("body", "is empty; an artifact needs content").into());
        }
        if let Some(expected) = expected.filter(|e| *e != sha256) {
            tracing::warn!(
                artifact = %req.name, version = %req.version, %expected, actual = %sha256,
                "artifact push refused: checksum mismatch"
            );
            upload.discard().await;
            return Err(ArtifactError::ChecksumMismatch {
                expected,
                actual: sha256,
            });
        }
        if let Err(e) = upload.finish().await {
            upload.discard().await;
            return Err(e);
        }

        // Settle the repeat and conflict cases before writing a row: a
        // repeat only puts back an object that went missing.
        if let Some(existing) = self.catalog.get_artifact(&req.name, &req.version).await? {
            if existing.sha256 != sha256 {
                upload.discard().await;
                return Err(ArtifactError::Conflict(format!(
                    "artifact {} already exists with sha256 {}",
                    existing.key(),
                    existing.sha256
                )));
            }
            let object_key = ObjectPath::from(existing.object_key.as_str());
            return match self.place(&mut upload, &object_key, size).await {
                Ok(Placed::AlreadyThere) => {
                    tracing::info!(artifact = %req.name, version = %req.version, %sha256, "artifact already present");
                    Ok(PushOutcome::Existing(existing))
                }
                Ok(Placed::Stored) => {
                    tracing::warn!(
                        artifact = %req.name, version = %req.version, %sha256,
                        object_key = %existing.object_key,
                        "artifact object was missing from the artifact store; stored it again"
                    );
                    Ok(PushOutcome::Restored(existing))
                }
                Err(e) => {
                    upload.discard().await;
                    Err(e)
                }
            };
        }

        let object_key = blob_key(&sha256);
        if let Err(e) = self.place(&mut upload, &object_key, size).await {
            upload.discard().await;
            return Err(e);
        }
        let record = ArtifactRecord {
            name: req.name,
            version: req.version,
            sha256,
            size,
            object_key: object_key.to_string(),
            content_type,
            created_at: now(),
            created_by: req.created_by,
        };
        // A concurrent push may have recorded this name and version since
        // the check above: the catalog arbitrates. The blob stays either
        // way: it is content-addressed and may be shared with other rows.
        let outcome = PushOutcome::from(self.catalog.record_artifact(&record).await?);
        if outcome.created() {
            tracing::info!(
                artifact = %record.name, version = %record.version, sha256 = %record.sha256,
                size = record.size, "artifact pushed"
            );
        }
        Ok(outcome)
    }

    /// Copies `body` into the temporary object, hashing as it goes.
    async fn stream_into<S, E>(
        &self,
        upload: &mut TempUpload,
        body: S,
    ) -> ArtifactResult<(String, u64)>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut body = std::pin::pin!(body);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                match e.downcast::<std::io::Error>() {
                    Ok(io) => ArtifactError::Source(*io),
                    Err(other) => ArtifactError::Source(std::io::Error::other(other)),
                }
            })?;
            size = size.saturating_add(chunk.len() as u64);
            if size > self.max_size {
                return Err(ArtifactError::TooLarge {
                    limit: self.max_size,
                });
            }
            hasher.update(&chunk);
            upload.write(chunk).await?;
        }
        Ok((hex::encode(hasher.finalize()), size))
    }

    /// Moves the finished temporary object to its content-addressed key,
    /// unless identical content is already there.
    async fn place(
        &self,
        upload: &mut TempUpload,
        object_key: &ObjectPath,
        size: u64,
    ) -> ArtifactResult<Placed> {
        match self.objects.head(object_key).await {
            Ok(meta) if meta.size == size => {
                // Same SHA-256 and size: the same content. Keep the old one.
                upload.discard().await;
                return Ok(Placed::AlreadyThere);
            }
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.objects.rename(&upload.path, object_key).await?;
        upload.moved();
        Ok(Placed::Stored)
    }

    // -- read --

    /// One artifact's metadata.
    pub async fn get(&self, name: &str, version: &str) -> ArtifactResult<ArtifactRecord> {
        names::name(name)?;
        names::version(version)?;
        self.catalog
            .get_artifact(name, version)
            .await?
            .ok_or_else(|| ArtifactError::NotFound {
                name: name.to_owned(),
                version: version.to_owned(),
            })
    }

    /// Every artifact, by name, oldest version first.
    pub async fn list(&self) -> ArtifactResult<Vec<ArtifactRecord>> {
        Ok(self.catalog.list_artifacts().await?)
    }

    /// The versions of one artifact, oldest first.
    pub async fn list_versions(&self, name: &str) -> ArtifactResult<Vec<ArtifactRecord>> {
        names::name(name)?;
        Ok(self.catalog.list_artifact_versions(name).await?)
    }

    /// The metadata and a stream of the bytes. The stream re-hashes what it
    /// serves and ends with [`ArtifactError::Corrupt`] instead of its last
    /// chunk if the stored bytes no longer match the catalog, so a damaged
    /// object is reported here, not only on the host that verifies it.
    pub async fn open(
        &self,
        name: &str,
        version: &str,
    ) -> ArtifactResult<(ArtifactRecord, ByteStream)> {
        let record = self.get(name, version).await?;
        let location = ObjectPath::from(record.object_key.as_str());
        let got = match self.objects.get(&location).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                tracing::error!(
                    artifact = %record.name, version = %record.version, sha256 = %record.sha256,
                    object_key = %record.object_key, store = %self.location,
                    "artifact object missing in the artifact store; pushing the artifact again restores it"
                );
                return Err(ArtifactError::ObjectMissing {
                    name: record.name,
                    version: record.version,
                    sha256: record.sha256,
                });
            }
            Err(e) => return Err(e.into()),
        };
        if got.meta.size != record.size {
            tracing::error!(
                artifact = %record.name, version = %record.version, stored = got.meta.size,
                recorded = record.size, "artifact object has the wrong size"
            );
            return Err(ArtifactError::Corrupt(format!(
                "the object of artifact {} is {} bytes, the catalog says {}",
                record.key(),
                got.meta.size,
                record.size
            )));
        }
        let stream = verified(got.into_stream(), record.clone());
        Ok((record, stream))
    }

    /// [`open`](Self::open) shaped for the agent gateway's artifact source:
    /// `(sha256, size, bytes)`.
    pub async fn open_parts(
        &self,
        name: &str,
        version: &str,
    ) -> ArtifactResult<(String, u64, ByteStream)> {
        let (record, stream) = self.open(name, version).await?;
        Ok((record.sha256, record.size, stream))
    }

    // -- maintenance --

    /// Deletes temporary objects older than `older_than`: what a crash in
    /// the middle of a push leaves behind. Returns how many went. Safe to
    /// run while pushes are in progress as long as `older_than` exceeds the
    /// longest upload.
    pub async fn sweep_uploads(&self, older_than: Duration) -> ArtifactResult<usize> {
        let now = hood_clock::now().millis();
        let older_than = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let prefix = ObjectPath::from(TMP_PREFIX);
        let mut listing = self.objects.list(Some(&prefix));
        let mut removed = 0;
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            // Ages in whole milliseconds, the clock's precision.
            let age = now.saturating_sub(meta.last_modified.timestamp_millis());
            if age >= older_than {
                match self.objects.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "swept abandoned artifact uploads");
        }
        Ok(removed)
    }
}

/// What [`ArtifactStore::place`] found under the final key.
enum Placed {
    /// An object of the same size (same SHA-256, so the same content).
    AlreadyThere,
    /// Nothing, or a wrong-sized object: the upload now lives there.
    Stored,
}

/// `blobs/sha256/{hex}`.
fn blob_key(sha256: &str) -> ObjectPath {
    ObjectPath::from(format!("{BLOB_PREFIX}/{sha256}"))
}

use hood_clock::now;

/// An upload to `tmp/{uuid}` that is cleaned up however it ends: explicitly
/// through [`discard`](Self::discard), or on drop when the push is cancelled
/// (the HTTP client went away), by a background task.
struct TempUpload {
    objects: Arc<dyn ObjectStore>,
    path: ObjectPath,
    writer: Option<BufWriter>,
    /// The object may exist under `path` (the writer finished).
    written: bool,
    /// Nothing left to clean up.
    settled: bool,
}

impl TempUpload {
    fn start(objects: Arc<dyn ObjectStore>) -> Self {
        let path = ObjectPath::from(format!("{TMP_PREFIX}/{}", uuid::Uuid::now_v7()));
        let writer = BufWriter::with_capacity(objects.clone(), path.clone(), UPLOAD_BUFFER_BYTES);
        Self {
            objects,
            path,
            writer: Some(writer),
            written: false,
            settled: false,
        }
    }

    async fn write(&mut self, chunk: Bytes) -> ArtifactResult<()> {
        match self.writer.as_mut() {
            Some(w) => Ok(w.put(chunk).await?),
            None => Err(ArtifactError::Corrupt("upload already finished".into())),
        }
    }

    /// Completes the temporary object.
    async fn finish(&mut self) -> ArtifactResult<()> {
        let Some(mut w) = self.writer.take() else {
            return Err(ArtifactError::Corrupt("upload already finished".into()));
        };
        self.written = true;
        w.shutdown().await.map_err(|e| {
            ArtifactError::Object(object_store::Error::Generic {
                store: "artifacts",
                source: Box::new(e),
            })
        })
    }

    /// The temporary object now lives under its final key.
    fn moved(&mut self) {
        self.settled = true;
    }

    /// Aborts an unfinished upload or deletes a finished one. Failures are
    /// logged: the push has already failed or succeeded for other reasons,
    /// and [`ArtifactStore::sweep_uploads`] catches what is left.
    async fn discard(&mut self) {
        if self.settled {
            return;
        }
        self.settled = true;
        if let Some(mut w) = self.writer.take() {
            if let Err(e) = w.abort().await {
                tracing::warn!(object = %self.path, error = %e, "aborting an artifact upload failed");
            }
        }
        // An unfinished upload may still have been committed by a buffered
        // writer; deleting a missing object is fine.
        match self.objects.delete(&self.path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(object = %self.path, error = %e, "deleting a temporary artifact object failed")
            }
        }
    }
}

impl Drop for TempUpload {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let objects = self.objects.clone();
        let path = self.path.clone();
        let writer = self.writer.take();
        let written = self.written;
        runtime.spawn(async move {
            if let Some(mut w) = writer {
                let _ = w.abort().await;
            }
            match objects.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(object = %path, written, error = %e, "cleaning up a cancelled artifact upload failed")
                }
            }
        });
    }
}

/// Reads `reader` as a stream of chunks.
fn reader_stream<R>(reader: R) -> impl Stream<Item = std::io::Result<Bytes>> + Send
where
    R: AsyncRead + Send + Unpin + 'static,
{
    futures::stream::try_unfold(reader, |mut reader| async move {
        let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
        while buf.len() < READ_CHUNK_BYTES {
            if reader.read_buf(&mut buf).await? == 0 {
                break;
            }
        }
        if buf.is_empty() {
            Ok(None)
        } else {
            Ok(Some((buf.freeze(), reader)))
        }
    })
}

/// Passes `inner` through, hashing it; the last chunk is replaced by an
/// error when the total does not match `record`.
fn verified(
    inner: BoxStream<'static, object_store::Result<Bytes>>,
    record: ArtifactRecord,
) -> ByteStream {
    struct State {
        inner: BoxStream<'static, object_store::Result<Bytes>>,
        hasher: Sha256,
        seen: u64,
        record: ArtifactRecord,
        pending: Option<Bytes>,
        done: bool,
    }
    // One chunk of look-ahead, so the final chunk can be withheld when the
    // total turns out wrong.
    let state = State {
        inner,
        hasher: Sha256::new(),
        seen: 0,
        record,
        pending: None,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            match s.inner.next().await {
                Some(Ok(chunk)) => {
                    s.hasher.update(&chunk);
                    s.seen += chunk.len() as u64;
                    if let Some(prev) = s.pending.replace(chunk) {
                        return Some((Ok(prev), s));
                    }
                }
                Some(Err(e)) => {
                    s.done = true;
                    return Some((Err(ArtifactError::Object(e)), s));
                }
                None => {
                    s.done = true;
                    let actual = hex::encode(std::mem::take(&mut s.hasher).finalize());
                    if actual != s.record.sha256 || s.seen != s.record.size {
                        tracing::error!(
                            artifact = %s.record.name, version = %s.record.version,
                            expected = %s.record.sha256, %actual, "stored artifact does not match its checksum"
                        );
                        return Some((
                            Err(ArtifactError::Corrupt(format!(
                                "the stored bytes of artifact {} no longer hash to {}",
                                s.record.key(),
                                s.record.sha256
                            ))),
                            s,
                        ));
                    }
                    return s.pending.take().map(|last| (Ok(last), s));
                }
            }
        }
    })
    .boxed()
}

/// SHA-256 and size of a file, streamed (for clients that announce the
/// checksum of what they are about to push).
pub async fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}
