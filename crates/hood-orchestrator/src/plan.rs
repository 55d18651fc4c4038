//! Builds the agent's `start_workload` plan from a chain profile.

use base64::Engine as _;
use hood_chains::Chain;
use hood_domain::node::{Node, NodeKeyMaterial};
use hood_domain::workload::{ArtifactRef, FilePlan, KeyPlan, ProcessPlan, SyncProbe, WorkloadPlan};
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

/// Which (artifact, version) pairs the chain's processes need.
pub fn required_artifacts(chain: &Chain) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = chain
        .runtime
        .processes
        .iter()
        .filter_map(|p| chain.profile.binaries.iter().find(|b| b.name == p.binary))
        .map(|b| (b.artifact.clone(), b.version.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The plan for `node` on a host: processes with the recipe's extra args and
/// env, rendered files, sealed key material, and the sync probe.
pub fn workload_plan(
    chain: &Chain,
    node: &Node,
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
        let sha256 = digests
            .get(&(binary.artifact.clone(), binary.version.clone()))
            .ok_or_else(|| PlanError::MissingArtifact {
                name: binary.artifact.clone(),
                version: binary.version.clone(),
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
                name: binary.artifact.clone(),
                version: binary.version.clone(),
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
    })
}
