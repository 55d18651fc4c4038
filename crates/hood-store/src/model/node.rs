//! Rows of the node tables.

use crate::codec;
use crate::StoreError;
use hood_domain::node::{Node, NodeEvent, NodeKeyMaterial};
use hood_domain::Timestamp;

pub(crate) const NODE_COLUMNS: &str = "id, org_id, name, chain, node_type, provider, region, \
     state, sync_status, app_health, host_id, rpc_endpoint, head_height, binary_version, \
     failure_reason, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct NodeRow {
    id: String,
    org_id: String,
    name: String,
    chain: String,
    node_type: String,
    provider: String,
    region: String,
    state: String,
    sync_status: String,
    app_health: String,
    host_id: Option<String>,
    rpc_endpoint: Option<String>,
    head_height: Option<i64>,
    binary_version: Option<String>,
    failure_reason: Option<String>,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<NodeRow> for Node {
    type Error = StoreError;
    fn try_from(r: NodeRow) -> Result<Self, StoreError> {
        Ok(Node {
            id: codec::parse_id("nodes.id", &r.id)?,
            org_id: codec::parse_id("nodes.org_id", &r.org_id)?,
            name: r.name,
            chain: r.chain,
            node_type: r.node_type,
            provider: r.provider,
            region: r.region,
            state: codec::parse_state("nodes.state", &r.state)?,
            sync_status: codec::parse_state("nodes.sync_status", &r.sync_status)?,
            app_health: codec::parse_state("nodes.app_health", &r.app_health)?,
            host_id: codec::parse_opt_id("nodes.host_id", r.host_id.as_deref())?,
            rpc_endpoint: r.rpc_endpoint,
            head_height: r.head_height,
            binary_version: r.binary_version,
            failure_reason: r.failure_reason,
            version: r.version,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

pub(crate) const NODE_EVENT_COLUMNS: &str = "seq, node_id, at, kind, from_state, to_state, message";

#[derive(sqlx::FromRow)]
pub(crate) struct NodeEventRow {
    seq: i64,
    node_id: String,
    at: i64,
    kind: String,
    from_state: Option<String>,
    to_state: Option<String>,
    message: String,
}

impl TryFrom<NodeEventRow> for NodeEvent {
    type Error = StoreError;
    fn try_from(r: NodeEventRow) -> Result<Self, StoreError> {
        Ok(NodeEvent {
            node_id: codec::parse_id("node_events.node_id", &r.node_id)?,
            seq: r.seq,
            at: Timestamp(r.at),
            kind: r.kind,
            from_state: codec::parse_opt_state("node_events.from_state", r.from_state.as_deref())?,
            to_state: codec::parse_opt_state("node_events.to_state", r.to_state.as_deref())?,
            message: r.message,
        })
    }
}

pub(crate) const NODE_KEY_COLUMNS: &str =
    "node_id, kind, sealed_data_key, ciphertext, fingerprint, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct NodeKeysRow {
    node_id: String,
    kind: String,
    sealed_data_key: Vec<u8>,
    ciphertext: Vec<u8>,
    fingerprint: String,
    created_at: i64,
}

impl TryFrom<NodeKeysRow> for NodeKeyMaterial {
    type Error = StoreError;
    fn try_from(r: NodeKeysRow) -> Result<Self, StoreError> {
        Ok(NodeKeyMaterial {
            node_id: codec::parse_id("node_keys.node_id", &r.node_id)?,
            kind: r.kind,
            sealed_data_key: r.sealed_data_key,
            ciphertext: r.ciphertext,
            fingerprint: r.fingerprint,
            created_at: Timestamp(r.created_at),
        })
    }
}
