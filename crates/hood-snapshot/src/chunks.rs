//! Where a snapshot's chunks are kept.

use crate::{Chunk, Manifest, SnapshotError};
use async_trait::async_trait;
use std::collections::BTreeMap;

/// The chunks of one snapshot, and its manifest once complete.
#[async_trait]
pub trait ChunkStore: Send + Sync {
    /// The chunks held now, by index, with their SHA-256: what a resumed
    /// upload need not send again.
    async fn present(&self) -> Result<BTreeMap<u32, String>, SnapshotError>;
    /// Stores one chunk whole (a reader never sees part of one).
    async fn put(&self, chunk: &Chunk, bytes: Vec<u8>) -> Result<(), SnapshotError>;
    /// One chunk's bytes (the caller checks them).
    async fn get(&self, chunk: &Chunk) -> Result<Vec<u8>, SnapshotError>;
    /// Records the manifest: the snapshot is complete.
    async fn put_manifest(&self, manifest: &Manifest) -> Result<(), SnapshotError>;
    /// The manifest, once the snapshot is complete.
    async fn manifest(&self) -> Result<Option<Manifest>, SnapshotError>;
    /// Removes the snapshot: its chunks and manifest.
    async fn delete(&self) -> Result<(), SnapshotError>;
}
