//! Rows of the RPC edge: keys and serving nodes.

use crate::codec::{self, opt_ts};
use crate::edge::ServingNode;
use crate::StoreError;
use hood_domain::rpc::{KeyScope, RpcKey};
use hood_domain::Timestamp;

pub(crate) const RPC_KEY_COLUMNS: &str = "id, org_id, name, prefix, secret_hash, plan, scope, \
     created_at, updated_at, revoked_at, version";

#[derive(sqlx::FromRow)]
pub(crate) struct RpcKeyRow {
    id: String,
    org_id: String,
    name: String,
    prefix: String,
    secret_hash: String,
    plan: String,
    scope: String,
    created_at: i64,
    updated_at: i64,
    revoked_at: Option<i64>,
    version: i64,
}

impl TryFrom<RpcKeyRow> for RpcKey {
    type Error = StoreError;
    fn try_from(r: RpcKeyRow) -> Result<Self, StoreError> {
        Ok(RpcKey {
            id: codec::parse_id("rpc_keys.id", &r.id)?,
            org_id: codec::parse_id("rpc_keys.org_id", &r.org_id)?,
            name: r.name,
            prefix: r.prefix,
            secret_hash: r.secret_hash,
            plan: r.plan,
            scope: codec::parse_json::<KeyScope>("rpc_keys.scope", &r.scope)?,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
            revoked_at: opt_ts(r.revoked_at),
            version: r.version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ServingNodeRow {
    id: String,
    org_id: String,
    chain: String,
    rpc_endpoint: String,
}

impl TryFrom<ServingNodeRow> for ServingNode {
    type Error = StoreError;
    fn try_from(r: ServingNodeRow) -> Result<Self, StoreError> {
        Ok(ServingNode {
            node_id: codec::parse_id("nodes.id", &r.id)?,
            org_id: codec::parse_id("nodes.org_id", &r.org_id)?,
            chain: r.chain,
            rpc_endpoint: r.rpc_endpoint,
        })
    }
}
