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

use hood_clock::Clock;
use hood_domain::storage::{Quota, QuotaExceeded, Visibility};
use hood_domain::validate::FieldError;
use hood_identity::presign::{PresignError, Presigner};
use hood_store::storage::StorageStore;
use hood_store::StoreError;
use object_store::ObjectStore;
use std::sync::Arc;
use std::time::Duration;

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
    #[error(transparent)]
    Completion(#[from] hood_domain::storage::CompletionError),
    /// The client's body failed before it ended.
    #[error("the upload ended early: {0}")]
    Body(String),
    #[error("object store: {0}")]
    Object(#[from] object_store::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type StorageResult<T> = Result<T, StorageError>;

mod multipart;
mod namespaces;
mod presign;
mod read;
mod sweep;
mod write;

pub use multipart::{UploadPage, MAX_PART_BYTES};
pub use presign::Presigned;
pub use read::{FoldedPage, ObjectPage, ObjectRead};
pub use sweep::SweepReport;

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
    /// A multipart upload neither completed nor aborted after this long
    /// is ended and its parts' bytes deleted.
    pub upload_expires_after: Duration,
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
            upload_expires_after: Duration::from_secs(7 * 24 * 3600),
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
    pub fn config(&self) -> &StorageConfig {
        &self.inner.config
    }

    fn now(&self) -> hood_domain::Timestamp {
        self.inner.clock.now()
    }
}
