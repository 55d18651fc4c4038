//! Chain catalog, read-only: what Hood can run.

use crate::auth::Caller;
use crate::extract::{Json, Path};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::Page;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use hood_chains::ChainSummary;
use hood_domain::identity::Permission;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/chains", get(list_chains))
        .route("/api/v1/chains/{name}", get(get_chain))
}

/// A node type of a chain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeTypeView {
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Minimum host size.
    pub resources: ResourcesView,
}

/// Host resources a node type needs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResourcesView {
    /// vCPUs.
    pub cpu: u32,
    /// Memory in GiB.
    pub memory_gb: u32,
    /// Disk in GB for the node's data directory.
    pub disk_gb: u32,
}

/// A binary a chain runs, with the version new nodes get.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BinaryView {
    pub name: String,
    pub version: String,
}

/// A chain profile this installation can run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChainView {
    pub name: String,
    pub display_name: String,
    /// evm | solana | cosmos | bitcoin
    pub family: String,
    /// `mainnet`, `devnet`, …
    pub network: String,
    /// Protocol chain id, where there is one.
    pub chain_id: Option<String>,
    /// Node type used when none is requested.
    pub default_node_type: String,
    pub node_types: Vec<NodeTypeView>,
    /// Providers the chain can be placed on.
    pub providers: Vec<String>,
    pub binaries: Vec<BinaryView>,
    /// process | systemd | docker
    pub runtime_adapter: String,
    /// The node's JSON-RPC port.
    pub rpc_port: Option<u16>,
    /// How sync is judged, in one line.
    pub sync_method: String,
    /// Available upgrade ids.
    pub upgrades: Vec<String>,
}

/// The name a value has on the wire: its serde form when that is a string.
fn wire_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl From<ChainSummary> for ChainView {
    fn from(c: ChainSummary) -> Self {
        Self {
            name: c.name,
            display_name: c.display_name,
            family: c.family.as_str().to_owned(),
            network: c.network,
            chain_id: c.chain_id,
            default_node_type: c.default_node_type,
            node_types: c
                .node_types
                .into_iter()
                .map(|t| NodeTypeView {
                    name: t.name,
                    description: t.description,
                    resources: ResourcesView {
                        cpu: t.resources.cpu,
                        memory_gb: t.resources.memory_gb,
                        disk_gb: t.resources.disk_gb,
                    },
                })
                .collect(),
            providers: c.providers,
            binaries: c
                .binaries
                .into_iter()
                .map(|b| BinaryView {
                    name: b.name,
                    version: b.version,
                })
                .collect(),
            runtime_adapter: wire_name(&c.runtime_adapter),
            rpc_port: c.rpc_port,
            sync_method: c.sync_method,
            upgrades: c.upgrades,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/chains", tag = "chains",
    responses((status = 200, body = Page<ChainView>)), security(("bearer" = ["read"])))]
/// Every chain profile this installation can run, in name order.
pub async fn list_chains(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<ChainView>>> {
    caller.require(Permission::Read)?;
    Ok(Json(Page {
        items: state.chains.iter().map(|c| c.summary().into()).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/chains/{name}", tag = "chains",
    params(("name" = String, Path, description = "Chain name, e.g. `ethereum-anvil`")),
    responses((status = 200, body = ChainView)), security(("bearer" = ["read"])))]
pub async fn get_chain(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<ChainView>> {
    caller.require(Permission::Read)?;
    state
        .chains
        .get(&name)
        .map(|c| Json(c.summary().into()))
        .ok_or(ApiError::NotFound("chain"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_view_is_the_summary_on_the_wire() {
        for chain in hood_chains::builtin().unwrap().iter() {
            let summary = chain.summary();
            let before = serde_json::to_value(&summary).unwrap();
            let after = serde_json::to_value(ChainView::from(summary)).unwrap();
            assert_eq!(before, after, "{}", chain.name);
        }
    }
}
