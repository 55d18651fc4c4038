//! Where node snapshots live: `snapshots/{node}/{name}/` of the object
//! store (chunks and manifest, `hood-snapshot`), recorded in the store.
//! [`NodeSnapshots`] is the gateway's [`SnapshotSource`] (an agent reaches
//! only the snapshots of the nodes placed on its host, and only snapshots
//! the control plane recorded; every stored chunk advances the recorded
//! progress), what the snapshot sagas read and what a termination deletes.

use async_trait::async_trait;
use hood_domain::snapshot::{node_prefix, snapshot_prefix};
use hood_domain::{HostId, NodeId};
use hood_gateway::{SnapshotSource, SnapshotSourceError};
use hood_snapshot::{Chunk, ChunkStore, Manifest, ObjectChunks, SnapshotError};
use hood_store::Store;
use object_store::ObjectStore;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The node snapshots in the object store.
#[derive(Clone)]
pub struct NodeSnapshots {
    store: Arc<dyn Store>,
    objects: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for NodeSnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSnapshots").finish_non_exhaustive()
    }
}

impl NodeSnapshots {
    /// Snapshots under `snapshots/` of `objects` (the artifact store's
    /// object store: one bucket to operate), recorded in `store`.
    pub fn new(store: Arc<dyn Store>, objects: Arc<dyn ObjectStore>) -> Self {
        Self { store, objects }
    }

    pub(crate) fn chunks(&self, node: NodeId, name: &str) -> ObjectChunks {
        ObjectChunks::new(self.objects.clone(), &snapshot_prefix(node, name))
    }

    /// Deletes one snapshot's objects, then its record.
    pub async fn delete(&self, node: NodeId, name: &str) -> Result<(), String> {
        self.chunks(node, name)
            .delete()
            .await
            .map_err(|e| e.to_string())?;
        self.store
            .delete_snapshot(node, name)
            .await
            .map_err(|e| e.to_string())
    }

    /// Copies a snapshot's objects (chunks, then the manifest) to another
    /// node's prefix under the same name: a new node seeded from it keeps
    /// it even when the source node is gone.
    pub async fn copy(&self, from: NodeId, name: &str, to: NodeId) -> Result<(), String> {
        self.chunks(from, name)
            .copy_to(&self.chunks(to, name))
            .await
            .map_err(|e| e.to_string())
    }

    /// Deletes every snapshot of a node (objects first, then records):
    /// they hold its data and possibly its keys. Returns how many.
    pub async fn delete_all(&self, node: NodeId) -> Result<usize, String> {
        let recorded = self
            .store
            .list_snapshots(node)
            .await
            .map_err(|e| e.to_string())?;
        // Objects without a record too (a run that died between the two).
        ObjectChunks::new(self.objects.clone(), &node_prefix(node))
            .delete()
            .await
            .map_err(|e| e.to_string())?;
        for s in &recorded {
            self.store
                .delete_snapshot(node, &s.name)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(recorded.len())
    }
}

/// The object store's chunks of one snapshot, with each stored chunk
/// recorded as progress.
struct Tracked {
    inner: ObjectChunks,
    store: Arc<dyn Store>,
    node: NodeId,
    name: String,
}

#[async_trait]
impl ChunkStore for Tracked {
    async fn present(&self) -> Result<BTreeMap<u32, String>, SnapshotError> {
        self.inner.present().await
    }

    async fn put(&self, chunk: &Chunk, bytes: Vec<u8>) -> Result<(), SnapshotError> {
        self.inner.put(chunk, bytes).await?;
        // Chunks go up in order: the next index is how many are stored.
        if let Err(e) = self
            .store
            .record_snapshot_progress(self.node, &self.name, i64::from(chunk.index) + 1)
            .await
        {
            tracing::warn!(node_id = %self.node, snapshot = %self.name, error = %e, "could not record snapshot progress");
        }
        Ok(())
    }

    async fn get(&self, chunk: &Chunk) -> Result<Vec<u8>, SnapshotError> {
        self.inner.get(chunk).await
    }

    async fn put_manifest(&self, manifest: &Manifest) -> Result<(), SnapshotError> {
        self.inner.put_manifest(manifest).await
    }

    async fn manifest(&self) -> Result<Option<Manifest>, SnapshotError> {
        self.inner.manifest().await
    }

    async fn delete(&self) -> Result<(), SnapshotError> {
        self.inner.delete().await
    }
}

#[async_trait]
impl SnapshotSource for NodeSnapshots {
    async fn open(
        &self,
        host: HostId,
        node: NodeId,
        name: &str,
    ) -> Result<Option<Arc<dyn ChunkStore>>, SnapshotSourceError> {
        let other = |e: hood_store::StoreError| SnapshotSourceError::Other(e.to_string());
        let placed = self.store.get_node(None, node).await.map_err(other)?;
        if placed.and_then(|n| n.host_id) != Some(host) {
            return Ok(None);
        }
        if self
            .store
            .get_snapshot(node, name)
            .await
            .map_err(other)?
            .is_none()
        {
            return Ok(None);
        }
        Ok(Some(Arc::new(Tracked {
            inner: self.chunks(node, name),
            store: self.store.clone(),
            node,
            name: name.to_owned(),
        })))
    }
}
