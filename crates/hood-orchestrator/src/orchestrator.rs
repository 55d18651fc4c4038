//! The orchestrator role: the saga engine loaded with the node workflows,
//! and the ports it implements for the roles that ask it to act.

use crate::services::{NodeInput, Services};
use crate::workflows::{migrate_id, MIGRATE_NODE};
use async_trait::async_trait;
use hood_domain::allocation::Allocation;
use hood_domain::node::Node;
use hood_domain::workload::{
    kinds, AllocationLogs, AllocationLogsRequest, LogCursor, NodeLogs, NodeLogsRequest,
    TerminalTask,
};
use hood_domain::{HostId, NodeId};
use hood_identity::tasks::TaskSigner;
use hood_ports::{AllocationOperations, NodeOperations, NodeRecovery, PortError};
use hood_saga::{Engine, Registry, SagaError, StartWorkflow};
use std::sync::Arc;
use std::time::Duration;

/// How long a command asked of an agent in a request (`ask_agent`) may
/// wait for it to be picked up.
const AGENT_COMMAND_WAIT: Duration = Duration::from_secs(30);

/// The orchestrator: the saga engine loaded with the node workflows.
#[derive(Clone)]
pub struct Orchestrator {
    engine: Engine<Services>,
}

impl Orchestrator {
    pub fn new(services: Services) -> Result<Self, SagaError> {
        let store = Arc::clone(&services.store);
        let registry = Registry::new()
            .with(crate::provision::workflow())?
            .with(crate::provision::workflow_v1())?
            .with(crate::terminate::workflow())?
            .with(crate::migrate::workflow())?
            .with(crate::migrate::workflow_v2())?
            .with(crate::migrate::workflow_v1())?
            .with(crate::snapshots::snapshot_workflow())?
            .with(crate::snapshots::restore_workflow())?
            .with(crate::suspend::suspend_workflow())?
            .with(crate::suspend::resume_workflow())?
            .with(crate::upgrade::workflow())?
            .with(crate::rollout::workflow())?
            .with(crate::reconfigure::workflow())?;
        Ok(Self {
            engine: Engine::new(store, registry, Arc::new(services)),
        })
    }

    pub fn engine(&self) -> &Engine<Services> {
        &self.engine
    }

    async fn start(&self, id: String, wf: (&str, i64), node: NodeId) -> Result<String, PortError> {
        let req = StartWorkflow::new(id, wf, NodeInput { node_id: node })
            .map_err(|e| PortError::Internal(e.to_string()))?;
        let started = self.engine.start(req).await.map_err(port_error)?;
        Ok(started.workflow.id)
    }
}

#[async_trait]
impl NodeRecovery for Orchestrator {
    async fn start_migration(&self, node: NodeId, version: i64) -> Result<String, PortError> {
        self.start(migrate_id(node, version), MIGRATE_NODE, node)
            .await
    }

    /// Provider delete, certificate revoked, record retired.
    async fn reap_host(&self, host: hood_domain::HostId) -> Result<(), PortError> {
        let s = self.engine.app();
        let record = s
            .store
            .get_host(host)
            .await
            .map_err(|e| PortError::Unavailable(e.to_string()))?
            .ok_or_else(|| PortError::NotFound(format!("host {host}")))?;
        let provider = s.providers.get(&record.provider).ok_or_else(|| {
            PortError::Conflict(format!("no provider `{}` is configured", record.provider))
        })?;
        provider
            .delete_host(host)
            .await
            .map_err(|e| PortError::Unavailable(e.to_string()))?;
        s.fleet
            .revoke_host(host)
            .await
            .map_err(|e| PortError::Unavailable(e.to_string()))?;
        crate::steps::retire_host(s.store.as_ref(), host)
            .await
            .map_err(|e| PortError::Unavailable(e.to_string()))
    }
}

impl Orchestrator {
    /// Asks a host's agent for something read-only and waits briefly for
    /// the answer (logs): an agent that does not answer is `Unavailable`,
    /// one that refuses is a `Conflict` carrying its reason.
    async fn ask_agent(
        &self,
        host: HostId,
        kind: &str,
        payload: serde_json::Value,
    ) -> Result<serde_json::Value, PortError> {
        let fleet = &self.engine.app().fleet;
        let id = fleet
            .enqueue_command(host, kind, payload, None, AGENT_COMMAND_WAIT)
            .await
            .map_err(|e| PortError::Unavailable(e.to_string()))?;
        match fleet
            .wait_command(id, Duration::from_secs(10))
            .await
            .map_err(|e| PortError::Unavailable(e.to_string()))?
        {
            hood_gateway::CommandOutcome::Succeeded(v) => Ok(v),
            hood_gateway::CommandOutcome::Failed(e) => {
                Err(PortError::Conflict(format!("the agent could not: {e}")))
            }
            _ => Err(PortError::Unavailable(
                "the host's agent did not answer in time".into(),
            )),
        }
    }
}

#[async_trait]
impl AllocationOperations for Orchestrator {
    async fn allocation_logs(
        &self,
        allocation: &Allocation,
        lines: u32,
        after: Option<LogCursor>,
    ) -> Result<AllocationLogs, PortError> {
        let payload = serde_json::to_value(AllocationLogsRequest {
            allocation_id: allocation.id,
            lines,
            after,
        })
        .map_err(|e| PortError::Internal(e.to_string()))?;
        let answer = self
            .ask_agent(allocation.host_id, kinds::TAIL_ALLOCATION_LOGS, payload)
            .await?;
        serde_json::from_value(answer)
            .map_err(|e| PortError::Internal(format!("the agent's logs answer: {e}")))
    }

    async fn open_terminal(
        &self,
        allocation: &Allocation,
        task: &TerminalTask,
    ) -> Result<(), PortError> {
        // Valid while the command may wait; the same key every replica
        // derives from the master key.
        let signed = TaskSigner::from_master(&self.engine.app().master)
            .sign_valid_for(
                allocation.host_id,
                kinds::OPEN_TERMINAL,
                hood_clock::now(),
                AGENT_COMMAND_WAIT,
                task,
            )
            .and_then(serde_json::to_value)
            .map_err(|e| PortError::Internal(format!("signing the terminal task: {e}")))?;
        self.ask_agent(allocation.host_id, kinds::OPEN_TERMINAL, signed)
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl NodeOperations for Orchestrator {
    fn providers(&self) -> Vec<String> {
        self.engine.app().providers.names()
    }

    fn workflows_due(&self) {
        self.engine.wake();
    }

    async fn retry_workflow(&self, id: &str) -> Result<(), PortError> {
        self.engine.retry(id).await.map(|_| ()).map_err(port_error)
    }

    async fn abandon_workflow(&self, id: &str, reason: &str) -> Result<(), PortError> {
        self.engine
            .abandon(id, reason)
            .await
            .map(|_| ())
            .map_err(port_error)
    }

    async fn node_logs(&self, node: &Node, lines: u32) -> Result<serde_json::Value, PortError> {
        let host = node
            .host_id
            .ok_or_else(|| PortError::Conflict("node runs on no host".into()))?;
        let payload = serde_json::json!({ "workload_id": node.id.to_string(), "lines": lines });
        self.ask_agent(host, hood_domain::workload::kinds::TAIL_LOGS, payload)
            .await
    }

    async fn follow_node_logs(
        &self,
        node: &Node,
        lines: u32,
        after: std::collections::BTreeMap<String, LogCursor>,
    ) -> Result<NodeLogs, PortError> {
        let host = node
            .host_id
            .ok_or_else(|| PortError::Conflict("node runs on no host".into()))?;
        let payload = serde_json::to_value(NodeLogsRequest {
            workload_id: node.id.to_string(),
            lines,
            after,
        })
        .map_err(|e| PortError::Internal(e.to_string()))?;
        let answer = self
            .ask_agent(host, kinds::FOLLOW_NODE_LOGS, payload)
            .await?;
        serde_json::from_value(answer)
            .map_err(|e| PortError::Internal(format!("the agent's logs answer: {e}")))
    }

    async fn delete_snapshot(&self, node: NodeId, name: &str) -> Result<(), PortError> {
        let snapshots = self
            .engine
            .app()
            .snapshots
            .as_ref()
            .ok_or_else(|| PortError::Unavailable("no object store is configured".into()))?;
        snapshots
            .delete(node, name)
            .await
            .map_err(PortError::Unavailable)
    }
}

fn port_error(e: SagaError) -> PortError {
    match e {
        SagaError::NotFound(id) => PortError::NotFound(id),
        e @ (SagaError::NotStuck { .. } | SagaError::Finished(_)) => {
            PortError::Conflict(e.to_string())
        }
        other => PortError::Internal(other.to_string()),
    }
}
