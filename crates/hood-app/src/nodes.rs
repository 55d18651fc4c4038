//! Managed nodes: create, read, terminate, and what operators ask of a
//! running node.

mod keys;
pub use keys::KeyExport;

use crate::error::{AppError, AppResult};
use hood_chains::{ArtifactSource, Binary, Chain, ChainCatalog};
use hood_clock::Clock;
use hood_domain::label::{self, Labels, Selector};
use hood_domain::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
use hood_domain::machine::StateMachine;
use hood_domain::node::{Node, NodeEvent};
use hood_domain::node_workflows::{
    provision_id, reconfigure_id, resume_id, signals, suspend_id, terminate_id, NodeWorkflowInput,
    ProvisionInput, SnapshotSeed, PROVISION_NODE, RECONFIGURE_NODE, RESUME_NODE, SUSPEND_NODE,
    TERMINATE_NODE,
};
use hood_domain::snapshot::SnapshotState;
use hood_domain::validate::{self, FieldError};
use hood_domain::{NodeId, OrgId};
use hood_ports::NodeOperations;
use hood_store::artifact::ArtifactCatalog;
use hood_store::node::NodeStore;
use hood_store::snapshot::SnapshotStore;
use hood_store::workflow::{NewSignal, NewWorkflow, WorkflowStore};
use hood_store::StoreError;
use std::sync::Arc;
use uuid::Uuid;

/// Default host provider and region of a new node.
const DEFAULT_PROVIDER: &str = "local";
const DEFAULT_REGION: &str = "local";

/// A request for a node.
#[derive(Debug, Clone, Default)]
pub struct CreateNode {
    /// Chain profile, e.g. `ethereum-anvil`.
    pub chain: String,
    /// Node type of the profile; default: the profile's default.
    pub node_type: Option<String>,
    /// Unique per organization; default: `{chain}-{random}`.
    pub name: Option<String>,
    /// Host provider; default `local`.
    pub provider: Option<String>,
    /// Provider region; default `local`.
    pub region: Option<String>,
    /// A complete snapshot of another node of the organization, same chain,
    /// the new node's data starts from.
    pub from_snapshot: Option<SnapshotSeed>,
    /// The new node's labels.
    pub labels: Labels,
}

/// A node request that was accepted: the node as it is now and the
/// workflow doing the work.
#[derive(Debug, Clone)]
pub struct NodeAccepted {
    pub node: Node,
    pub workflow_id: String,
}

/// The node use cases.
#[derive(Clone)]
pub struct NodeService {
    nodes: Arc<dyn NodeStore>,
    workflows: Arc<dyn WorkflowStore>,
    artifacts: Arc<dyn ArtifactCatalog>,
    chains: Arc<ChainCatalog>,
    /// The orchestrator, in processes that reach one.
    operations: Option<Arc<dyn NodeOperations>>,
    /// Snapshots, to check what a new node is seeded from.
    snapshots: Option<Arc<dyn SnapshotStore>>,
    clock: Arc<dyn Clock>,
}

impl NodeService {
    pub fn new(
        nodes: Arc<dyn NodeStore>,
        workflows: Arc<dyn WorkflowStore>,
        artifacts: Arc<dyn ArtifactCatalog>,
        chains: Arc<ChainCatalog>,
    ) -> Self {
        Self {
            nodes,
            workflows,
            artifacts,
            chains,
            operations: None,
            snapshots: None,
            clock: hood_clock::system(),
        }
    }

    /// Attaches the orchestrator: provider validation, prompt wake-ups,
    /// operator actions and logs.
    pub fn with_operations(mut self, operations: Arc<dyn NodeOperations>) -> Self {
        self.operations = Some(operations);
        self
    }

    /// Lets new nodes be seeded from snapshots (checked against `store`).
    pub fn with_snapshot_store(mut self, store: Arc<dyn SnapshotStore>) -> Self {
        self.snapshots = Some(store);
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Now, by the service's clock.
    pub(crate) fn now(&self) -> hood_domain::Timestamp {
        self.clock.now()
    }

    /// The orchestrator's operations, or 503 in a process without one.
    pub fn operations(&self) -> AppResult<&dyn NodeOperations> {
        self.operations.as_deref().ok_or_else(|| {
            AppError::Unavailable("this process does not run the orchestrator".into())
        })
    }

    /// Creates a node of `org` and the workflow that provisions it, in one
    /// transaction: a crash can leave neither a node without its workflow
    /// nor a workflow without its node. What can be known now is checked
    /// now: the chain, node type, provider and names (400), and whether the
    /// binaries the chain runs are in the artifact store (409, with the
    /// command that puts them there).
    pub async fn create(&self, org: OrgId, req: CreateNode) -> AppResult<NodeAccepted> {
        let chain = self.chains.get(&req.chain);
        let mut errors = Vec::new();
        if chain.is_none() {
            errors.push(FieldError::new(
                "chain",
                format!("unknown chain `{}`", req.chain),
            ));
        }
        let node_type = match (chain, &req.node_type) {
            (Some(c), Some(t)) if c.profile.node_types.contains_key(t) => Some(t.clone()),
            (Some(_), Some(t)) => {
                errors.push(FieldError::new(
                    "node_type",
                    format!("chain `{}` has no node type `{t}`", req.chain),
                ));
                None
            }
            (Some(c), None) => Some(c.profile.default_node_type.clone()),
            (None, _) => None,
        };
        let provider = req
            .provider
            .clone()
            .unwrap_or_else(|| DEFAULT_PROVIDER.into());
        if let Some(ops) = &self.operations {
            if !ops.providers().contains(&provider) {
                errors.push(FieldError::new(
                    "provider",
                    format!("no provider `{provider}` is configured"),
                ));
            }
        }
        if let Some(c) = chain {
            if !c.profile.providers.contains(&provider) {
                errors.push(FieldError::new(
                    "provider",
                    format!("chain `{}` does not run on `{provider}`", req.chain),
                ));
            }
        }
        let name = req.name.clone().unwrap_or_else(|| {
            format!(
                "{}-{}",
                req.chain,
                &Uuid::new_v4().simple().to_string()[..6]
            )
        });
        if let Err(e) = validate::slug("name", &name) {
            errors.push(e);
        }
        let region = req.region.clone().unwrap_or_else(|| DEFAULT_REGION.into());
        if let Err(e) = validate::slug("region", &region) {
            errors.push(e);
        }
        if let Err(e) = label::validate(&req.labels) {
            errors.push(FieldError::new("labels", e));
        }
        if let Some(seed) = &req.from_snapshot {
            if let Err(e) = self.check_seed(org, &req.chain, seed).await? {
                errors.push(e);
            }
        }
        let (Some(chain), Some(node_type), true) = (chain, node_type, errors.is_empty()) else {
            return Err(AppError::Invalid(errors));
        };
        self.require_artifacts(chain).await?;

        let now = self.clock.now();
        let node = Node {
            id: NodeId::from_uuid(Uuid::now_v7()),
            org_id: org,
            name,
            chain: req.chain,
            node_type,
            provider,
            region,
            state: NodeState::Provisioning,
            sync_status: SyncStatus::Unknown,
            app_health: ApplicationHealth::Unknown,
            host_id: None,
            rpc_endpoint: None,
            head_height: None,
            binary_version: None,
            failure_reason: None,
            version: 0,
            created_at: now,
            updated_at: now,
        };
        let input = serde_json::to_value(ProvisionInput {
            node_id: node.id,
            seed: req.from_snapshot.clone(),
        })
        .map_err(|e| AppError::Internal(format!("encoding workflow input: {e}")))?;
        let workflow = workflow_with_input(PROVISION_NODE, provision_id(node.id), input, now)?;
        let started = self
            .nodes
            .create_node_with_workflow(&node, &workflow)
            .await?;
        if !req.labels.is_empty() {
            // After the node exists (labels reference it); a failure here
            // leaves an unlabelled node, which `labels` can fix.
            self.nodes.set_node_labels(node.id, &req.labels).await?;
        }
        self.wake();
        tracing::info!(node_id = %node.id, chain = %node.chain, workflow_id = %started.id, "node requested");
        Ok(NodeAccepted {
            node,
            workflow_id: started.id,
        })
    }

    /// Why `seed` cannot seed a new `chain` node of `org`, if it cannot: a
    /// complete snapshot of a node of the same organization and chain.
    async fn check_seed(
        &self,
        org: OrgId,
        chain: &str,
        seed: &SnapshotSeed,
    ) -> AppResult<Result<(), FieldError>> {
        let refuse = |why: String| Ok(Err(FieldError::new("from_snapshot", why)));
        let Some(snapshots) = &self.snapshots else {
            return Err(AppError::Unavailable(
                "this process cannot seed nodes from snapshots".into(),
            ));
        };
        let Some(source) = self.nodes.get_node(Some(org), seed.node_id).await? else {
            return refuse(format!("no node {} in this organization", seed.node_id));
        };
        if source.chain != chain {
            return refuse(format!(
                "a snapshot of a `{}` node cannot seed a `{chain}` node",
                source.chain
            ));
        }
        match snapshots.get_snapshot(source.id, &seed.snapshot).await? {
            Some(s) if s.state == SnapshotState::Complete => Ok(Ok(())),
            Some(s) => refuse(format!(
                "snapshot `{}` is {}, not complete",
                seed.snapshot,
                s.state.as_str()
            )),
            None => refuse(format!(
                "node {} has no snapshot `{}`",
                source.id, seed.snapshot
            )),
        }
    }

    /// The organization's nodes, oldest first.
    pub async fn list(&self, org: OrgId) -> AppResult<Vec<Node>> {
        Ok(self.nodes.list_nodes(Some(org)).await?)
    }

    /// The organization's nodes with their labels, oldest first; only
    /// those whose labels match `selector` when one is given.
    pub async fn list_labelled(
        &self,
        org: OrgId,
        selector: Option<&str>,
    ) -> AppResult<Vec<(Node, Labels)>> {
        let selector = parse_selector(selector)?;
        let mut labels = self.nodes.labels_by_node(Some(org)).await?;
        Ok(self
            .nodes
            .list_nodes(Some(org))
            .await?
            .into_iter()
            .map(|n| {
                let l = labels.remove(&n.id).unwrap_or_default();
                (n, l)
            })
            .filter(|(_, l)| selector.matches(l))
            .collect())
    }

    /// A node's labels.
    pub async fn labels(&self, org: OrgId, id: NodeId) -> AppResult<Labels> {
        let node = self.get(org, id).await?;
        Ok(self.nodes.node_labels(node.id).await?)
    }

    /// Replaces a node's labels; the change is in the node's history.
    pub async fn set_labels(
        &self,
        org: OrgId,
        id: NodeId,
        labels: Labels,
        actor: &str,
    ) -> AppResult<Labels> {
        label::validate(&labels)
            .map_err(|e| AppError::Invalid(vec![FieldError::new("labels", e)]))?;
        let node = self.get(org, id).await?;
        let before = self.nodes.node_labels(node.id).await?;
        if before == labels {
            return Ok(labels);
        }
        self.nodes.set_node_labels(node.id, &labels).await?;
        let shown = |l: &Labels| {
            l.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        self.nodes
            .append_node_event(
                node.id,
                "labels",
                &format!(
                    "labels set by {actor}: {{{}}} (were {{{}}})",
                    shown(&labels),
                    shown(&before)
                ),
                self.clock.now(),
            )
            .await?;
        tracing::info!(node_id = %node.id, labels = labels.len(), "node labels set");
        Ok(labels)
    }

    /// One node of the organization (another organization's is 404).
    pub async fn get(&self, org: OrgId, id: NodeId) -> AppResult<Node> {
        self.nodes
            .get_node(Some(org), id)
            .await?
            .ok_or(AppError::NotFound("node"))
    }

    /// A node's history after `after_seq`, oldest first.
    pub async fn events(
        &self,
        org: OrgId,
        id: NodeId,
        after_seq: i64,
        limit: i64,
    ) -> AppResult<Vec<NodeEvent>> {
        if !(1..=1000).contains(&limit) {
            return Err(invalid("limit", "must be between 1 and 1000"));
        }
        let node = self.get(org, id).await?;
        Ok(self
            .nodes
            .list_node_events(node.id, after_seq, limit)
            .await?)
    }

    /// Terminates a node: stop, wipe keys, delete the host. Idempotent: the
    /// node's one termination run is started or found.
    ///
    /// The termination run is written first, then a still-running
    /// provisioning is told to abort. A crash between the two leaves a
    /// termination that waits for provisioning to finish and then removes
    /// the node: never a node nobody will remove.
    pub async fn terminate(&self, org: OrgId, id: NodeId) -> AppResult<NodeAccepted> {
        let node = self.get(org, id).await?;
        let now = self.clock.now();
        let workflow = node_workflow(TERMINATE_NODE, terminate_id(node.id), node.id, now)?;
        let (run, _) = self.workflows.create_workflow(&workflow).await?;
        let abort = NewSignal {
            id: Uuid::now_v7().to_string(),
            workflow_id: provision_id(node.id),
            name: signals::ABORT.into(),
            payload: serde_json::Value::Null,
            created_at: now,
        };
        match self.workflows.send_signal(&abort).await {
            // No provisioning run, or it already finished: nothing to stop.
            Ok(()) | Err(StoreError::NotFound(_) | StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.wake();
        let node = self.get(org, id).await.unwrap_or(node);
        tracing::info!(node_id = %node.id, workflow_id = %run.id, "node termination requested");
        Ok(NodeAccepted {
            node,
            workflow_id: run.id,
        })
    }

    /// Starts the node's processes again from its chain's current recipe
    /// (`reconfigure-node`). 409 unless it serves; asking again before the
    /// node changed finds the same run.
    pub async fn reconfigure(&self, org: OrgId, id: NodeId) -> AppResult<NodeAccepted> {
        let node = self.get(org, id).await?;
        let serving = matches!(
            node.state,
            NodeState::Healthy | NodeState::Degraded | NodeState::Syncing
        );
        if !serving || node.host_id.is_none() {
            return Err(AppError::Conflict(format!(
                "node is {}: only a serving node is reconfigured",
                node.state.as_str()
            )));
        }
        let run = self
            .start_node_workflow(
                &node,
                RECONFIGURE_NODE,
                reconfigure_id(node.id, node.version),
            )
            .await?;
        Ok(NodeAccepted {
            node,
            workflow_id: run,
        })
    }

    /// Stops a serving node of an organization that cannot pay (keeping its
    /// host, data and keys). Returns the workflow asked, or `None` when the
    /// node is not in a state that can be suspended (already suspended,
    /// owned by another workflow, or leaving). Asking again while the node
    /// is unchanged finds the same run.
    pub async fn suspend(&self, org: OrgId, id: NodeId) -> AppResult<Option<String>> {
        let node = self.get(org, id).await?;
        if !node.state.can_transition_to(NodeState::Suspended) {
            return Ok(None);
        }
        self.start_node_workflow(&node, SUSPEND_NODE, suspend_id(node.id, node.version))
            .await
            .map(Some)
    }

    /// Starts a suspended node again; `None` when it is not suspended.
    pub async fn resume(&self, org: OrgId, id: NodeId) -> AppResult<Option<String>> {
        let node = self.get(org, id).await?;
        if node.state != NodeState::Suspended {
            return Ok(None);
        }
        self.start_node_workflow(&node, RESUME_NODE, resume_id(node.id, node.version))
            .await
            .map(Some)
    }

    async fn start_node_workflow(
        &self,
        node: &Node,
        definition: hood_domain::node_workflows::Definition,
        run_id: String,
    ) -> AppResult<String> {
        let workflow = node_workflow(definition, run_id, node.id, self.clock.now())?;
        let (run, created) = self.workflows.create_workflow(&workflow).await?;
        if created {
            tracing::info!(node_id = %node.id, workflow_id = %run.id, "node workflow requested");
            self.wake();
        }
        Ok(run.id)
    }

    /// The tail of a running node's process logs, from its agent.
    pub async fn logs(&self, org: OrgId, id: NodeId, lines: u32) -> AppResult<serde_json::Value> {
        if !(1..=10_000).contains(&lines) {
            return Err(invalid("lines", "must be between 1 and 10000"));
        }
        let node = self.get(org, id).await?;
        if node.host_id.is_none() {
            return Err(AppError::Conflict(format!(
                "node is {} and runs on no host",
                node.state.as_str()
            )));
        }
        Ok(self.operations()?.node_logs(&node, lines).await?)
    }

    /// Each process's log lines with cursors to follow them (after the
    /// cursors in `after`, else the last `lines`).
    pub async fn follow_logs(
        &self,
        org: OrgId,
        id: NodeId,
        lines: u32,
        after: std::collections::BTreeMap<String, hood_domain::workload::LogCursor>,
    ) -> AppResult<hood_domain::workload::NodeLogs> {
        if !(1..=10_000).contains(&lines) {
            return Err(invalid("lines", "must be between 1 and 10000"));
        }
        let node = self.get(org, id).await?;
        if node.host_id.is_none() {
            return Err(AppError::Conflict(format!(
                "node is {} and runs on no host",
                node.state.as_str()
            )));
        }
        Ok(self
            .operations()?
            .follow_node_logs(&node, lines, after)
            .await?)
    }

    /// 409 naming the first binary the chain needs that the artifact store
    /// lacks, and how to put it there.
    async fn require_artifacts(&self, chain: &Chain) -> AppResult<()> {
        for binary in chain.required_binaries() {
            if self
                .artifacts
                .get_artifact(&binary.artifact, &binary.version)
                .await?
                .is_none()
            {
                return Err(AppError::Conflict(format!(
                    "artifact {} {} (binary `{}` of chain `{}`) is not in the artifact store; \
                     a platform administrator adds it with `{}`",
                    binary.artifact,
                    binary.version,
                    binary.name,
                    chain.name,
                    push_command(binary)
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn wake(&self) {
        if let Some(ops) = &self.operations {
            ops.workflows_due();
        }
    }
}

/// The CLI command that puts a binary's artifact into the store.
/// A selector given by an operator (none: every node).
pub(crate) fn parse_selector(selector: Option<&str>) -> AppResult<Selector> {
    selector
        .map(Selector::parse)
        .transpose()
        .map_err(|e| AppError::Invalid(vec![FieldError::new("selector", e)]))
        .map(Option::unwrap_or_default)
}

pub fn push_command(binary: &Binary) -> String {
    match &binary.source {
        Some(ArtifactSource::Npm(npm)) if npm.package == "@foundry-rs/anvil-linux-amd64" => {
            format!(
                "hood artifact import-anvil --version {} --name {}",
                binary.version, binary.artifact
            )
        }
        _ => format!(
            "hood artifact push {} {} PATH/TO/{}",
            binary.artifact, binary.version, binary.name
        ),
    }
}

fn node_workflow(
    definition: (&str, i64),
    id: String,
    node: NodeId,
    now: hood_domain::Timestamp,
) -> AppResult<NewWorkflow> {
    let input = serde_json::to_value(NodeWorkflowInput { node_id: node })
        .map_err(|e| AppError::Internal(format!("encoding workflow input: {e}")))?;
    workflow_with_input(definition, id, input, now)
}

/// A workflow run to create, with its input.
pub(crate) fn workflow_with_input(
    definition: (&str, i64),
    id: String,
    input: serde_json::Value,
    now: hood_domain::Timestamp,
) -> AppResult<NewWorkflow> {
    Ok(NewWorkflow {
        id,
        name: definition.0.into(),
        version: definition.1,
        input,
        parent_id: None,
        created_at: now,
    })
}

fn invalid(field: &'static str, reason: &str) -> AppError {
    AppError::Invalid(vec![FieldError::new(field, reason)])
}
