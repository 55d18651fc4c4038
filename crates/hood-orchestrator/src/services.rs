//! What the workflows' steps reach: stores, the fleet (agent commands and
//! enrollment), host providers, chains, the master key.

use crate::workflows::{migrate_id, MIGRATE_NODE};
use async_trait::async_trait;
use hood_chains::ChainCatalog;
use hood_domain::node::Node;
use hood_domain::NodeId;
use hood_gateway::Fleet;
use hood_identity::master_key::MasterKey;
use hood_ports::{NodeOperations, NodeRecovery, PortError};
use hood_provider::ProviderRegistry;
use hood_saga::{Engine, Registry, SagaError, StartWorkflow};
use hood_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Waits and deadlines of the node workflows; tests shorten them.
#[derive(Debug, Clone)]
pub struct Timings {
    /// Lifetime of an enrollment token handed to a new host.
    pub enrollment_ttl: Duration,
    /// Deadline of an agent command (it expires undelivered after this).
    pub command_ttl: Duration,
    /// How long one step waits on a command before yielding (it retries).
    pub command_wait: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            enrollment_ttl: Duration::from_secs(30 * 60),
            command_ttl: Duration::from_secs(10 * 60),
            command_wait: Duration::from_secs(30),
        }
    }
}

/// The application context of every orchestrator step.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub fleet: Fleet,
    pub providers: ProviderRegistry,
    pub chains: Arc<ChainCatalog>,
    pub master: MasterKey,
    /// Agent gateway URL handed to new hosts.
    pub gateway_url: String,
    /// The internal CA certificate new agents must trust.
    pub ca_pem: String,
    pub timings: Timings,
}

/// Input of the node workflows.
pub(crate) use hood_domain::node_workflows::NodeWorkflowInput as NodeInput;

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
            .with(crate::terminate::workflow())?
            .with(crate::migrate::workflow())?;
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
        let fleet = &self.engine.app().fleet;
        let payload = serde_json::json!({ "workload_id": node.id.to_string(), "lines": lines });
        let id = fleet
            .enqueue_command(
                host,
                hood_domain::workload::kinds::TAIL_LOGS,
                payload,
                None,
                Duration::from_secs(30),
            )
            .await
            .map_err(|e| PortError::Unavailable(e.to_string()))?;
        match fleet
            .wait_command(id, Duration::from_secs(10))
            .await
            .map_err(|e| PortError::Unavailable(e.to_string()))?
        {
            hood_gateway::CommandOutcome::Succeeded(v) => Ok(v),
            hood_gateway::CommandOutcome::Failed(e) => Err(PortError::Conflict(format!(
                "agent could not read logs: {e}"
            ))),
            _ => Err(PortError::Unavailable(
                "the node's agent did not answer in time".into(),
            )),
        }
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

pub(crate) type Ctx = hood_saga::StepContext<Services>;

pub(crate) fn retryable(e: impl std::fmt::Display) -> hood_saga::StepError {
    hood_saga::StepError::retryable(e)
}

pub(crate) fn permanent(e: impl std::fmt::Display) -> hood_saga::StepError {
    hood_saga::StepError::permanent(e)
}
