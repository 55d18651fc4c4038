//! [`ChunkStore`] over `object_store` (local files or S3): one object per
//! chunk, `{prefix}/chunks/{index:08}-{sha256}`, and `{prefix}/manifest.json`
//! written last. The checksum in the name makes a chunk cut differently by
//! another attempt a different object, never a silent overwrite.

use crate::{Chunk, ChunkStore, Manifest, SnapshotError};
use async_trait::async_trait;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One snapshot's objects under a prefix of an object store.
#[derive(Debug, Clone)]
pub struct ObjectChunks {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

fn store_err(e: object_store::Error) -> SnapshotError {
    match e {
        object_store::Error::NotFound { path, .. } => SnapshotError::Missing(path),
        other => SnapshotError::Store(other.to_string()),
    }
}

impl ObjectChunks {
    /// The snapshot whose objects live under `prefix` (e.g.
    /// `snapshots/{node}/{name}`).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self {
            store,
            prefix: ObjectPath::from(prefix),
        }
    }

    fn chunk_path(&self, chunk: &Chunk) -> ObjectPath {
        self.prefix
            .clone()
            .join("chunks")
            .join(format!("{:08}-{}", chunk.index, chunk.sha256))
    }

    fn manifest_path(&self) -> ObjectPath {
        self.prefix.clone().join("manifest.json")
    }

    /// Copies every object of this snapshot (chunks first, the manifest
    /// last, so the copy is complete only once the manifest is there) to
    /// `to`, in the same object store.
    pub async fn copy_to(&self, to: &ObjectChunks) -> Result<(), SnapshotError> {
        let mut paths = self.list(&self.prefix).await?;
        paths.sort_by_key(|p| p.as_ref().ends_with("manifest.json"));
        for path in paths {
            let rel: Vec<_> = path
                .prefix_match(&self.prefix)
                .into_iter()
                .flatten()
                .collect();
            let mut target = to.prefix.clone();
            for part in rel {
                target = target.join(part.as_ref());
            }
            self.store.copy(&path, &target).await.map_err(store_err)?;
        }
        Ok(())
    }

    /// Every object under `under`.
    async fn list(&self, under: &ObjectPath) -> Result<Vec<ObjectPath>, SnapshotError> {
        let mut out = Vec::new();
        let mut listing = self.store.list(Some(under));
        while let Some(meta) = listing.next().await {
            out.push(meta.map_err(store_err)?.location);
        }
        Ok(out)
    }
}

#[async_trait]
impl ChunkStore for ObjectChunks {
    async fn present(&self) -> Result<BTreeMap<u32, String>, SnapshotError> {
        let under = self.prefix.clone().join("chunks");
        let mut out = BTreeMap::new();
        for path in self.list(&under).await? {
            let Some(name) = path.filename() else {
                continue;
            };
            let Some((index, sha)) = name.split_once('-') else {
                continue;
            };
            if let Ok(index) = index.parse::<u32>() {
                out.insert(index, sha.to_owned());
            }
        }
        Ok(out)
    }

    async fn put(&self, chunk: &Chunk, bytes: Vec<u8>) -> Result<(), SnapshotError> {
        self.store
            .put(&self.chunk_path(chunk), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    async fn get(&self, chunk: &Chunk) -> Result<Vec<u8>, SnapshotError> {
        let got = self
            .store
            .get(&self.chunk_path(chunk))
            .await
            .map_err(store_err)?;
        Ok(got.bytes().await.map_err(store_err)?.to_vec())
    }

    async fn put_manifest(&self, manifest: &Manifest) -> Result<(), SnapshotError> {
        let json =
            serde_json::to_vec(manifest).map_err(|e| SnapshotError::Manifest(e.to_string()))?;
        self.store
            .put(&self.manifest_path(), PutPayload::from(json))
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    async fn manifest(&self) -> Result<Option<Manifest>, SnapshotError> {
        let got = match self.store.get(&self.manifest_path()).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_err(e)),
        };
        let bytes = got.bytes().await.map_err(store_err)?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SnapshotError::Manifest(e.to_string()))
    }

    async fn delete(&self) -> Result<(), SnapshotError> {
        for path in self.list(&self.prefix).await? {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_err(e)),
            }
        }
        Ok(())
    }
}
