//! Rollouts (design §5): a chain's nodes moved to another version in
//! health-gated batches, by an upgrade manifest or an explicit version.
//!
//! Creating one resolves its targets and plans its batches at once (so an
//! operator sees which node goes when before starting it); starting it
//! writes its `rollout` workflow. Pause, resume, approve and abort change
//! the stored rollout; its workflow honours the change on its next pass.

use crate::error::{AppError, AppResult};
use crate::nodes::{parse_selector, push_command};
use hood_chains::{Chain, ChainCatalog, StateCompatibility};
use hood_clock::Clock;
use hood_domain::label::{Labels, Selector};
use hood_domain::lifecycle::rollout::{RolloutNodeState, RolloutState};
use hood_domain::lifecycle::NodeState;
use hood_domain::machine::StateMachine;
use hood_domain::node_workflows::{rollout_workflow_id, RolloutInput, ROLLOUT};
use hood_domain::rollout::{
    plan_batches, BatchSize, PlanError, Rollout, RolloutKind, RolloutNode, RolloutPolicy,
    SoftwareTarget,
};
use hood_domain::validate::FieldError;
use hood_domain::{NodeId, RolloutId};
use hood_ports::NodeOperations;
use hood_store::artifact::ArtifactCatalog;
use hood_store::node::NodeStore;
use hood_store::rollout::RolloutStore;
use hood_store::workflow::{NewWorkflow, WorkflowStore};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Default seconds an upgraded node must stay healthy before it counts.
pub const DEFAULT_SOAK_S: u32 = 30;
/// Default seconds a new version has to serve its old head.
pub const DEFAULT_VERIFY_TIMEOUT_S: u32 = 120;

/// A rollout request. With `upgrade_id`, the manifest gives the versions,
/// the state compatibility and the default policy; without, `version` (and
/// `binary`, default the chain's first) is the target.
#[derive(Debug, Clone, Default)]
pub struct CreateRollout {
    pub chain: String,
    /// `upgrade` (a version) or `reconfigure` (the chain's current recipe
    /// applied to every target, through `reconfigure-node`).
    pub kind: RolloutKind,
    pub upgrade_id: Option<String>,
    pub binary: Option<String>,
    pub version: Option<String>,
    /// Target only these node types (the manifest's by default; all).
    pub node_type: Option<String>,
    /// Target only these nodes (else every serving node of the chain on
    /// the version the rollout moves from).
    pub nodes: Vec<NodeId>,
    /// Target only nodes whose labels match ([`hood_domain::label::Selector`]).
    pub selector: Option<String>,
    pub canary: Option<u32>,
    pub batch_size: Option<u32>,
    pub batch_percent: Option<u8>,
    pub max_unavailable: Option<u32>,
    pub failure_budget: Option<u32>,
    pub require_approval: Option<bool>,
    pub soak_s: Option<u32>,
    pub verify_timeout_s: Option<u32>,
    /// Data written by the target may not open with the previous version
    /// (explicit targets only; a manifest says so itself).
    pub forward_only: bool,
    /// Start at once.
    pub start: bool,
}

/// A rollout with its nodes, in batch order.
#[derive(Debug, Clone)]
pub struct RolloutDetail {
    pub rollout: Rollout,
    pub nodes: Vec<RolloutNode>,
}

/// The rollout use cases.
#[derive(Clone)]
pub struct RolloutService {
    rollouts: Arc<dyn RolloutStore>,
    nodes: Arc<dyn NodeStore>,
    workflows: Arc<dyn WorkflowStore>,
    artifacts: Arc<dyn ArtifactCatalog>,
    chains: Arc<ChainCatalog>,
    operations: Option<Arc<dyn NodeOperations>>,
    clock: Arc<dyn Clock>,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> AppError {
    AppError::Invalid(vec![FieldError::new(field, reason)])
}

/// What a rollout moves from and to.
struct Resolved {
    from_version: String,
    target: SoftwareTarget,
    node_types: Vec<String>,
    policy: RolloutPolicy,
}

impl RolloutService {
    pub fn new(
        rollouts: Arc<dyn RolloutStore>,
        nodes: Arc<dyn NodeStore>,
        workflows: Arc<dyn WorkflowStore>,
        artifacts: Arc<dyn ArtifactCatalog>,
        chains: Arc<ChainCatalog>,
    ) -> Self {
        Self {
            rollouts,
            nodes,
            workflows,
            artifacts,
            chains,
            operations: None,
            clock: hood_clock::system(),
        }
    }

    /// Attaches the orchestrator, so changes take effect at once rather
    /// than at its next poll.
    pub fn with_operations(mut self, operations: Arc<dyn NodeOperations>) -> Self {
        self.operations = Some(operations);
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn wake(&self) {
        if let Some(ops) = &self.operations {
            ops.workflows_due();
        }
    }

    fn resolve(&self, chain: &Chain, req: &CreateRollout) -> AppResult<Resolved> {
        let default_policy = RolloutPolicy {
            canary: 1,
            batch: BatchSize::Count(1),
            max_unavailable: 1,
            failure_budget: 0,
            require_approval: false,
        };
        if req.kind == RolloutKind::Reconfigure {
            if req.upgrade_id.is_some() || req.version.is_some() || req.binary.is_some() {
                return Err(invalid(
                    "kind",
                    "a reconfigure rollout applies the chain's current recipe: \
                     give no upgrade_id, binary or version",
                ));
            }
            // The binary the nodes run is unchanged; recorded for display.
            let binary = chain
                .profile
                .binaries
                .first()
                .ok_or_else(|| invalid("chain", "the chain declares no binary"))?;
            return Ok(Resolved {
                from_version: binary.version.clone(),
                target: SoftwareTarget {
                    binary: binary.name.clone(),
                    artifact: binary.artifact.clone(),
                    version: binary.version.clone(),
                    forward_only: false,
                },
                node_types: vec![],
                policy: default_policy,
            });
        }
        if let Some(id) = &req.upgrade_id {
            if req.version.is_some() || req.binary.is_some() {
                return Err(invalid(
                    "version",
                    "give either upgrade_id or binary/version, not both",
                ));
            }
            let u = chain.upgrade(id).ok_or_else(|| {
                invalid(
                    "upgrade_id",
                    format!(
                        "chain `{}` has no upgrade `{id}` (chains/upgrades/{}/{id}.yaml)",
                        chain.name, chain.name
                    ),
                )
            })?;
            let batch = u.rollout.batch_size.max(1);
            return Ok(Resolved {
                from_version: u.from_version.clone(),
                target: SoftwareTarget {
                    binary: u.binary.clone(),
                    artifact: u.to.artifact.clone(),
                    version: u.to.version.clone(),
                    forward_only: u.state == StateCompatibility::ForwardOnly,
                },
                node_types: u.node_types.clone(),
                policy: RolloutPolicy {
                    canary: u.rollout.canary.unwrap_or(0),
                    batch: BatchSize::Count(batch),
                    max_unavailable: batch.max(u.rollout.canary.unwrap_or(0)),
                    failure_budget: u.rollout.max_failed_nodes,
                    require_approval: u.rollout.require_approval,
                },
            });
        }
        let version = req
            .version
            .clone()
            .ok_or_else(|| invalid("version", "give upgrade_id, or the version to roll out"))?;
        let binary = match &req.binary {
            Some(b) => chain
                .profile
                .binaries
                .iter()
                .find(|x| &x.name == b)
                .ok_or_else(|| {
                    invalid(
                        "binary",
                        format!("chain `{}` has no binary `{b}`", chain.name),
                    )
                })?,
            None => chain
                .profile
                .binaries
                .first()
                .ok_or_else(|| invalid("chain", "the chain declares no binary"))?,
        };
        Ok(Resolved {
            from_version: binary.version.clone(),
            target: SoftwareTarget {
                binary: binary.name.clone(),
                artifact: binary.artifact.clone(),
                version,
                forward_only: req.forward_only,
            },
            node_types: vec![],
            policy: default_policy,
        })
    }

    /// Resolves the targets, plans the batches and stores the rollout
    /// (`pending`, or `running` with `start`).
    pub async fn create(&self, req: CreateRollout, created_by: &str) -> AppResult<RolloutDetail> {
        let chain = self
            .chains
            .get(&req.chain)
            .ok_or_else(|| invalid("chain", format!("unknown chain `{}`", req.chain)))?;
        let mut resolved = self.resolve(chain, &req)?;
        // The operator's choices override the manifest's.
        let p = &mut resolved.policy;
        if let Some(c) = req.canary {
            p.canary = c;
        }
        match (req.batch_size, req.batch_percent) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "batch_percent",
                    "give batch_size or batch_percent, not both",
                ))
            }
            (Some(n), None) => p.batch = BatchSize::Count(n),
            (None, Some(pc)) => p.batch = BatchSize::Percent(pc),
            (None, None) => {}
        }
        if let Some(m) = req.max_unavailable {
            p.max_unavailable = m;
        } else if let BatchSize::Count(n) = p.batch {
            p.max_unavailable = p.max_unavailable.max(n).max(p.canary);
        }
        if let Some(b) = req.failure_budget {
            p.failure_budget = b;
        }
        if let Some(a) = req.require_approval {
            p.require_approval = a;
        }
        if let Some(t) = &req.node_type {
            if !chain.profile.node_types.contains_key(t) {
                return Err(invalid(
                    "node_type",
                    format!("chain `{}` has no node type `{t}`", chain.name),
                ));
            }
            resolved.node_types = vec![t.clone()];
        }
        let target = &resolved.target;
        let upgrade = req.kind == RolloutKind::Upgrade;
        if upgrade && target.version == resolved.from_version {
            return Err(invalid(
                "version",
                format!("the nodes already run {}", target.version),
            ));
        }
        if upgrade
            && self
                .artifacts
                .get_artifact(&target.artifact, &target.version)
                .await?
                .is_none()
        {
            let hint = chain
                .profile
                .binaries
                .iter()
                .find(|b| b.name == target.binary)
                .map(|b| {
                    let mut b = b.clone();
                    b.version.clone_from(&target.version);
                    b.artifact.clone_from(&target.artifact);
                    push_command(&b)
                })
                .unwrap_or_default();
            return Err(AppError::Conflict(format!(
                "artifact {} {} is not in the artifact store; add it first with `{hint}`",
                target.artifact, target.version
            )));
        }
        let selector = parse_selector(req.selector.as_deref())?;
        let targets = self.targets(chain, &resolved, &req, &selector).await?;
        let ids: Vec<NodeId> = targets.iter().map(|(id, _)| *id).collect();
        let running: HashMap<NodeId, String> = targets.into_iter().collect();
        let batches: Vec<Vec<(NodeId, String)>> = plan_batches(&ids, &resolved.policy)
            .map_err(plan_error)?
            .into_iter()
            .map(|b| {
                b.into_iter()
                    .map(|id| (id, running.get(&id).cloned().unwrap_or_default()))
                    .collect()
            })
            .collect();
        let now = self.clock.now();
        let rollout = Rollout {
            id: RolloutId::from_uuid(Uuid::now_v7()),
            upgrade_id: req.upgrade_id.clone(),
            kind: req.kind,
            chain: chain.name.clone(),
            node_type: resolved.node_types.first().cloned(),
            selector: (!selector.is_empty()).then(|| selector.to_string()),
            from_version: resolved.from_version.clone(),
            target: resolved.target.clone(),
            policy: resolved.policy,
            soak_s: req.soak_s.unwrap_or(DEFAULT_SOAK_S),
            verify_timeout_s: req
                .verify_timeout_s
                .unwrap_or(DEFAULT_VERIFY_TIMEOUT_S)
                .max(1),
            state: RolloutState::Pending,
            approved_through: 0,
            error: None,
            created_by: created_by.to_owned(),
            created_at: now,
            updated_at: now,
        };
        let mut nodes = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            for (i, (node, running)) in batch.iter().enumerate() {
                nodes.push(RolloutNode {
                    rollout_id: rollout.id,
                    node_id: *node,
                    batch: u32::try_from(b).unwrap_or(u32::MAX),
                    position: u32::try_from(i).unwrap_or(u32::MAX),
                    state: RolloutNodeState::Waiting,
                    from_version: running.clone(),
                    soak_until: None,
                    error: None,
                    updated_at: now,
                });
            }
        }
        self.rollouts.create_rollout(&rollout, &nodes).await?;
        tracing::info!(rollout_id = %rollout.id, chain = %rollout.chain, to = %rollout.target.version, nodes = nodes.len(), "rollout created");
        if req.start {
            return self.start(rollout.id).await;
        }
        Ok(RolloutDetail { rollout, nodes })
    }

    /// Serving nodes of the chain (its type, its selector, the nodes
    /// named) on the version the rollout moves from (any version for a
    /// reconfigure), by id, with the version each runs; refused if one is
    /// in another live rollout.
    async fn targets(
        &self,
        chain: &Chain,
        resolved: &Resolved,
        req: &CreateRollout,
        selector: &Selector,
    ) -> AppResult<Vec<(NodeId, String)>> {
        let only = &req.nodes;
        let mut out = Vec::new();
        let mut nodes = self.nodes.list_nodes(None).await?;
        nodes.sort_by_key(|n| n.id);
        let labels = if selector.is_empty() {
            HashMap::new()
        } else {
            self.nodes.labels_by_node(None).await?
        };
        let none = Labels::new();
        for n in nodes {
            if n.chain != chain.name
                || (!only.is_empty() && !only.contains(&n.id))
                || (!resolved.node_types.is_empty() && !resolved.node_types.contains(&n.node_type))
                || !selector.matches(labels.get(&n.id).unwrap_or(&none))
                || !matches!(
                    n.state,
                    NodeState::Healthy | NodeState::Degraded | NodeState::Syncing
                )
            {
                continue;
            }
            let pinned = self
                .rollouts
                .node_binaries(n.id)
                .await?
                .into_iter()
                .find(|p| p.binary == resolved.target.binary)
                .map(|p| p.version);
            let current = pinned.unwrap_or_else(|| {
                chain
                    .profile
                    .binaries
                    .iter()
                    .find(|b| b.name == resolved.target.binary)
                    .map(|b| b.version.clone())
                    .unwrap_or_default()
            });
            if req.kind == RolloutKind::Upgrade && current != resolved.from_version {
                continue;
            }
            if let Some(other) = self.rollouts.live_rollouts_of_node(n.id).await?.first() {
                return Err(AppError::Conflict(format!(
                    "node {} ({}) is in rollout {other}, which has not finished",
                    n.name, n.id
                )));
            }
            out.push((n.id, current));
        }
        if let Some(missing) = only.iter().find(|id| !out.iter().any(|(n, _)| n == *id)) {
            let why = match req.kind {
                RolloutKind::Upgrade => format!(
                    "node {missing} is not a serving {} node on {} {}",
                    chain.name, resolved.target.binary, resolved.from_version
                ),
                RolloutKind::Reconfigure => {
                    format!("node {missing} is not a serving {} node", chain.name)
                }
            };
            return Err(invalid("nodes", why));
        }
        Ok(out)
    }

    pub async fn get(&self, id: RolloutId) -> AppResult<RolloutDetail> {
        let (rollout, nodes) = self
            .rollouts
            .get_rollout(id)
            .await?
            .ok_or(AppError::NotFound("rollout"))?;
        Ok(RolloutDetail { rollout, nodes })
    }

    pub async fn list(&self, limit: i64) -> AppResult<Vec<Rollout>> {
        Ok(self.rollouts.list_rollouts(limit.clamp(1, 500)).await?)
    }

    /// Writes the rollout's workflow (idempotent: starting twice is one
    /// run).
    pub async fn start(&self, id: RolloutId) -> AppResult<RolloutDetail> {
        let detail = self.get(id).await?;
        if detail.rollout.state.is_terminal() {
            return Err(AppError::Conflict(format!(
                "rollout is {}",
                detail.rollout.state.as_str()
            )));
        }
        let input = serde_json::to_value(RolloutInput { rollout_id: id })
            .map_err(|e| AppError::Internal(format!("encoding workflow input: {e}")))?;
        let (_, created) = self
            .workflows
            .create_workflow(&NewWorkflow {
                id: rollout_workflow_id(id),
                name: ROLLOUT.0.into(),
                version: ROLLOUT.1,
                input,
                parent_id: None,
                created_at: self.clock.now(),
            })
            .await?;
        if created {
            tracing::info!(rollout_id = %id, "rollout started");
        }
        self.wake();
        self.get(id).await
    }

    async fn change(
        &self,
        id: RolloutId,
        from: &[RolloutState],
        to: RolloutState,
        verb: &str,
    ) -> AppResult<RolloutDetail> {
        let detail = self.get(id).await?;
        let moved = self
            .rollouts
            .set_rollout_state(id, from, to, None, self.clock.now())
            .await?;
        if !moved && detail.rollout.state != to {
            return Err(AppError::Conflict(format!(
                "a {} rollout cannot be {verb}",
                detail.rollout.state.as_str()
            )));
        }
        tracing::info!(rollout_id = %id, to = to.as_str(), "rollout {verb}");
        self.wake();
        self.get(id).await
    }

    /// Stops starting batches; the batch in flight finishes.
    pub async fn pause(&self, id: RolloutId) -> AppResult<RolloutDetail> {
        self.change(
            id,
            &[RolloutState::Running, RolloutState::AwaitingApproval],
            RolloutState::Paused,
            "paused",
        )
        .await
    }

    pub async fn resume(&self, id: RolloutId) -> AppResult<RolloutDetail> {
        self.change(
            id,
            &[RolloutState::Paused],
            RolloutState::Running,
            "resumed",
        )
        .await
    }

    /// Stops before the next batch; what was upgraded stays upgraded.
    pub async fn abort(&self, id: RolloutId) -> AppResult<RolloutDetail> {
        self.change(
            id,
            &[
                RolloutState::Pending,
                RolloutState::Running,
                RolloutState::Paused,
                RolloutState::AwaitingApproval,
            ],
            RolloutState::Aborted,
            "aborted",
        )
        .await
    }

    /// Lets the next gated batch start.
    pub async fn approve(&self, id: RolloutId) -> AppResult<RolloutDetail> {
        let detail = self.get(id).await?;
        if !detail.rollout.state.is_live() {
            return Err(AppError::Conflict(format!(
                "a {} rollout needs no approval",
                detail.rollout.state.as_str()
            )));
        }
        // The first batch nobody has started yet (after the first).
        let next = detail
            .nodes
            .iter()
            .filter(|n| n.batch > 0 && n.state == RolloutNodeState::Waiting)
            .map(|n| n.batch)
            .min()
            .ok_or_else(|| AppError::Conflict("no batch is waiting for approval".into()))?;
        self.rollouts
            .approve_rollout(id, next, self.clock.now())
            .await?;
        tracing::info!(rollout_id = %id, batch = next, "rollout batch approved");
        self.wake();
        self.get(id).await
    }
}

fn plan_error(e: PlanError) -> AppError {
    let field = match e {
        PlanError::NoTargets | PlanError::Duplicate(_) => "nodes",
        PlanError::NothingMayBeUnavailable => "max_unavailable",
        PlanError::EmptyBatch | PlanError::Percent(_) => "batch_size",
        PlanError::CanaryTooLarge { .. } => "canary",
    };
    invalid(field, e.to_string())
}
