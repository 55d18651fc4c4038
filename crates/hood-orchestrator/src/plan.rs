//! Builds the agent's `start_workload` plan from a chain profile.

use base64::Engine as _;
use hood_chains::{Binary, Chain, Source};
use hood_domain::node::{Node, NodeKeyMaterial};
use hood_domain::rollout::PinnedBinary;
use hood_domain::workload::{
    ArtifactRef, CollectorPlan, CollectorSource, FilePlan, KeyPlan, ProcessPlan, SyncProbe,
    WorkloadPlan,
};
use std::collections::BTreeMap;

/// Why a plan cannot be built (a profile/store mismatch the operator fixes).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("chain `{0}` is not in the catalog")]
    UnknownChain(String),
    #[error("process `{process}` runs binary `{binary}`, which the profile does not declare")]
    UnknownBinary { process: String, binary: String },
    #[error("artifact {name} {version} is not in the artifact store (push it with `hood artifact push`)")]
    MissingArtifact { name: String, version: String },
}

/// The artifacts a plan needs: (artifact name, version) → sha256.
pub type ArtifactDigests = BTreeMap<(String, String), String>;

/// Which (artifact, version) pairs the chain's processes need on a node
/// pinned to `pins` (an upgrade's versions replace the profile's).
pub fn required_artifacts(chain: &Chain, pins: &[PinnedBinary]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = chain
        .required_binaries()
        .into_iter()
        .map(|b| artifact_of(b, pins))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The (artifact, version) a node runs for `binary`: its pin, or the
/// profile's.
fn artifact_of(binary: &Binary, pins: &[PinnedBinary]) -> (String, String) {
    match pins.iter().find(|p| p.binary == binary.name) {
        Some(p) => (p.artifact.clone(), p.version.clone()),
        None => (binary.artifact.clone(), binary.version.clone()),
    }
}

/// The plan for `node` on a host: processes with the recipe's extra args and
/// env, rendered files, sealed key material, the sync probe and the chain's
/// observation collectors.
pub fn workload_plan(
    chain: &Chain,
    node: &Node,
    pins: &[PinnedBinary],
    digests: &ArtifactDigests,
    keys: Option<&NodeKeyMaterial>,
) -> Result<WorkloadPlan, PlanError> {
    let recipe = chain.recipes.get(&node.node_type);
    let mut processes = Vec::new();
    for p in &chain.runtime.processes {
        let binary = chain
            .profile
            .binaries
            .iter()
            .find(|b| b.name == p.binary)
            .ok_or_else(|| PlanError::UnknownBinary {
                process: p.name.clone(),
                binary: p.binary.clone(),
            })?;
        let (artifact, version) = artifact_of(binary, pins);
        let sha256 = digests
            .get(&(artifact.clone(), version.clone()))
            .ok_or_else(|| PlanError::MissingArtifact {
                name: artifact.clone(),
                version: version.clone(),
            })?;
        let mut args = p.args.clone();
        let mut env = p.env.clone();
        if let Some(r) = recipe {
            args.extend(r.extra_args.get(&p.name).cloned().unwrap_or_default());
            env.extend(r.env.clone());
        }
        processes.push(ProcessPlan {
            name: p.name.clone(),
            artifact: ArtifactRef {
                name: artifact,
                version,
                sha256: sha256.clone(),
                entrypoint: binary.entrypoint.clone(),
            },
            args,
            env,
            stop_signal: format!("{:?}", p.stop_signal).to_uppercase(),
            stop_timeout_s: p.stop_timeout_s,
        });
    }
    let files = recipe
        .map(|r| {
            r.files
                .iter()
                .map(|f| FilePlan {
                    path: f.path.clone(),
                    mode: f.mode.clone(),
                    content: f.content.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let key_paths: Vec<String> = recipe
        .map(|r| r.key_material.iter().map(|k| k.path.clone()).collect())
        .unwrap_or_default();
    let keys = match keys {
        Some(k) => vec![KeyPlan {
            kind: k.kind.clone(),
            // A recipe names where its key goes; otherwise a fixed name.
            path: key_paths
                .first()
                .cloned()
                .unwrap_or_else(|| "{{secrets_dir}}/nodekey".into()),
            ciphertext_b64: base64::engine::general_purpose::STANDARD.encode(&k.ciphertext),
            encoding: "hex".into(),
        }],
        None => vec![],
    };
    let sync = evm_sync_probe(chain);
    Ok(WorkloadPlan {
        workload_id: node.id.to_string(),
        node_id: node.id.to_string(),
        node_name: node.name.clone(),
        ports: chain.runtime.ports.keys().cloned().collect(),
        processes,
        files,
        keys,
        sync,
        collectors: collector_plans(chain),
    })
}

/// EVM chains are judged by `eth_syncing` and `eth_blockNumber` on their
/// `rpc` port; other families are probed by the health evaluator later.
fn evm_sync_probe(chain: &Chain) -> Option<SyncProbe> {
    (matches!(chain.profile.family, hood_chains::ChainFamily::Evm)
        && chain.runtime.ports.contains_key("rpc"))
    .then(|| SyncProbe {
        port: "rpc".into(),
        syncing_method: "eth_syncing".into(),
        head_method: "eth_blockNumber".into(),
        peers_method: peers_method(chain),
    })
}

/// `net_peerCount` when the chain's profile already queries it on the
/// `rpc` port (a health or sync probe, or a collector): the peer count then
/// rides along with the sync probe. Chains that do not ask for it (a
/// single-node devnet has no peers) get `None`.
fn peers_method(chain: &Chain) -> Option<String> {
    const METHOD: &str = "net_peerCount";
    let rt = &chain.runtime;
    let mut sources = rt
        .health
        .probes
        .values()
        .chain(rt.sync.probes.values())
        .chain(chain.observation.collectors.iter().map(|c| &c.source));
    sources
        .any(|s| matches!(s, Source::JsonRpc(c) if c.method == METHOD && c.port.as_deref() == Some("rpc")))
        .then(|| METHOD.to_string())
}

/// Per-sample timeout when a collector names none: below the interval (lint
/// requires it) and at most 10 s.
fn default_timeout_s(interval_s: u32) -> u32 {
    interval_s.saturating_sub(1).clamp(1, 10)
}

/// The chain's `observation.yaml` collectors as the agent runs them.
/// Collectors without a port are skipped: lint requires one for local
/// sources, so only a hand-built catalog can lack it, and the agent could
/// not know where to dial.
pub fn collector_plans(chain: &Chain) -> Vec<CollectorPlan> {
    chain
        .observation
        .collectors
        .iter()
        .filter_map(|c| {
            let source = match &c.source {
                Source::JsonRpc(call) => CollectorSource::JsonRpc {
                    port: call.port.clone()?,
                    method: call.method.clone(),
                    params: call.params.clone(),
                    path: call.path.clone(),
                    cookie_file: call.auth.as_ref().map(|a| a.cookie_file.clone()),
                },
                Source::Http(h) => CollectorSource::Http {
                    port: h.port.clone()?,
                    path: h.path.clone(),
                },
                Source::Prometheus(p) => CollectorSource::Prometheus {
                    port: p.port.clone(),
                    path: p.path.clone(),
                },
                Source::System(_) => CollectorSource::System,
            };
            Some(CollectorPlan {
                name: c.name.clone(),
                interval_s: c.interval_s,
                timeout_s: c
                    .timeout_s
                    .unwrap_or_else(|| default_timeout_s(c.interval_s)),
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn chain(name: &str) -> Chain {
        hood_chains::builtin()
            .expect("builtin catalog")
            .get(name)
            .expect("chain")
            .clone()
    }

    #[test]
    fn anvil_collectors_and_sync_probe() {
        let anvil = chain("ethereum-anvil");
        let collectors = collector_plans(&anvil);
        let names: Vec<&str> = collectors.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["block_number", "chain_id", "gas_price", "system"]);
        assert_eq!(
            collectors[1],
            CollectorPlan {
                name: "chain_id".into(),
                interval_s: 60,
                timeout_s: 5,
                source: CollectorSource::JsonRpc {
                    port: "rpc".into(),
                    method: "eth_chainId".into(),
                    params: vec![],
                    path: None,
                    cookie_file: None,
                },
            }
        );
        assert_eq!(collectors[3].source, CollectorSource::System);
        assert_eq!(collectors[3].timeout_s, 10);
        // A devnet has no peers to count.
        let sync = evm_sync_probe(&anvil).expect("evm probe");
        assert_eq!(sync.peers_method, None);
    }

    #[test]
    fn ethereum_counts_peers_and_scrapes_metrics() {
        let eth = chain("ethereum");
        let sync = evm_sync_probe(&eth).expect("evm probe");
        assert_eq!(sync.peers_method.as_deref(), Some("net_peerCount"));
        let collectors = collector_plans(&eth);
        let reth = collectors
            .iter()
            .find(|c| c.name == "reth_metrics")
            .expect("reth_metrics");
        assert_eq!(
            reth.source,
            CollectorSource::Prometheus {
                port: "metrics".into(),
                path: "/metrics".into()
            }
        );
    }

    #[test]
    fn bitcoin_collectors_carry_the_cookie_file() {
        let btc = chain("bitcoin");
        assert!(evm_sync_probe(&btc).is_none());
        let network = collector_plans(&btc)
            .into_iter()
            .find(|c| c.name == "network")
            .expect("network");
        assert!(matches!(
            network.source,
            CollectorSource::JsonRpc { cookie_file: Some(ref f), .. } if f == "{{data_dir}}/.cookie"
        ));
    }
}
