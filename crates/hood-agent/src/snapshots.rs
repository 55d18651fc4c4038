//! A node's snapshot chunks in the control plane's object store, reached
//! through the gateway: the agent packs and unpacks, the gateway stores.

use crate::handle::AgentHandle;
use async_trait::async_trait;
use hood_agent_proto::v1::agent_gateway_client::AgentGatewayClient;
use hood_agent_proto::v1::{SnapshotChunk, SnapshotChunkRef, SnapshotManifest, SnapshotRef};
use hood_snapshot::{Chunk, ChunkStore, Manifest, SnapshotError};
use std::collections::BTreeMap;
use tonic::transport::Channel;

/// One snapshot of one node placed on this host, as a [`ChunkStore`].
#[derive(Clone)]
pub struct GatewayChunks {
    handle: AgentHandle,
    node: String,
    name: String,
}

impl std::fmt::Debug for GatewayChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayChunks")
            .field("node", &self.node)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl AgentHandle {
    /// Snapshot `name` of `node` in the control plane's store.
    pub fn snapshot_chunks(&self, node: &str, name: &str) -> GatewayChunks {
        GatewayChunks {
            handle: self.clone(),
            node: node.to_owned(),
            name: name.to_owned(),
        }
    }
}

fn status_err(status: tonic::Status) -> SnapshotError {
    match status.code() {
        tonic::Code::NotFound => SnapshotError::Missing(status.message().to_owned()),
        _ => SnapshotError::Store(format!("gateway: {}", status.message())),
    }
}

impl GatewayChunks {
    fn client(&self) -> Result<AgentGatewayClient<Channel>, SnapshotError> {
        let channel = self
            .handle
            .channel()
            .map_err(|e| SnapshotError::Store(e.to_string()))?;
        Ok(AgentGatewayClient::new(channel))
    }

    fn snapshot(&self) -> SnapshotRef {
        SnapshotRef {
            node_id: self.node.clone(),
            name: self.name.clone(),
        }
    }

    fn chunk_ref(&self, chunk: &Chunk) -> SnapshotChunkRef {
        SnapshotChunkRef {
            snapshot: Some(self.snapshot()),
            index: chunk.index,
            sha256: chunk.sha256.clone(),
            size: chunk.size,
        }
    }
}

#[async_trait]
impl ChunkStore for GatewayChunks {
    async fn present(&self) -> Result<BTreeMap<u32, String>, SnapshotError> {
        let list = self
            .client()?
            .list_snapshot_chunks(self.snapshot())
            .await
            .map_err(status_err)?
            .into_inner();
        Ok(list
            .chunks
            .into_iter()
            .map(|c| (c.index, c.sha256))
            .collect())
    }

    async fn put(&self, chunk: &Chunk, bytes: Vec<u8>) -> Result<(), SnapshotError> {
        self.client()?
            .put_snapshot_chunk(SnapshotChunk {
                chunk: Some(self.chunk_ref(chunk)),
                data: bytes,
            })
            .await
            .map_err(status_err)?;
        Ok(())
    }

    async fn get(&self, chunk: &Chunk) -> Result<Vec<u8>, SnapshotError> {
        Ok(self
            .client()?
            .get_snapshot_chunk(self.chunk_ref(chunk))
            .await
            .map_err(status_err)?
            .into_inner()
            .data)
    }

    async fn put_manifest(&self, manifest: &Manifest) -> Result<(), SnapshotError> {
        let manifest_json =
            serde_json::to_string(manifest).map_err(|e| SnapshotError::Manifest(e.to_string()))?;
        self.client()?
            .put_snapshot_manifest(SnapshotManifest {
                snapshot: Some(self.snapshot()),
                manifest_json,
            })
            .await
            .map_err(status_err)?;
        Ok(())
    }

    async fn manifest(&self) -> Result<Option<Manifest>, SnapshotError> {
        match self.client()?.get_snapshot_manifest(self.snapshot()).await {
            Ok(r) => serde_json::from_str(&r.into_inner().manifest_json)
                .map(Some)
                .map_err(|e| SnapshotError::Manifest(e.to_string())),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(status_err(s)),
        }
    }

    async fn delete(&self) -> Result<(), SnapshotError> {
        Err(SnapshotError::Store(
            "agents do not delete snapshots: the control plane does".into(),
        ))
    }
}
