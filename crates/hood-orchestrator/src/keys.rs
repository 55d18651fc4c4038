//! Hands a node's data key to the agent of the host the node is placed on
//! (the gateway calls this over mTLS, with the caller's host id from its
//! certificate). Any other host gets nothing.

use async_trait::async_trait;
use hood_domain::{HostId, NodeId};
use hood_gateway::{DataKey, NodeKeyError, NodeKeySource};
use hood_identity::envelope::open_data_key;
use hood_identity::master_key::MasterKey;
use hood_store::Store;
use std::sync::Arc;

pub struct NodeKeys {
    store: Arc<dyn Store>,
    master: MasterKey,
}

impl NodeKeys {
    pub fn new(store: Arc<dyn Store>, master: MasterKey) -> Self {
        Self { store, master }
    }
}

#[async_trait]
impl NodeKeySource for NodeKeys {
    async fn data_key(&self, host: HostId, node: NodeId) -> Result<Option<DataKey>, NodeKeyError> {
        let other = |e: &dyn std::fmt::Display| NodeKeyError::Other(e.to_string());
        let Some(n) = self
            .store
            .get_node(None, node)
            .await
            .map_err(|e| other(&e))?
        else {
            return Ok(None);
        };
        if n.host_id != Some(host) {
            tracing::warn!(%node, %host, "data key refused: node is not placed on the calling host");
            return Ok(None);
        }
        let Some(keys) = self
            .store
            .get_node_keys(node)
            .await
            .map_err(|e| other(&e))?
        else {
            return Ok(None);
        };
        let dek = open_data_key(&self.master, &node.to_string(), &keys.sealed_data_key)
            .map_err(|e| other(&e))?;
        Ok(Some(DataKey::new(dek.to_bytes().to_vec())))
    }
}
