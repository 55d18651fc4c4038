//! What the workflows' steps reach: stores, the fleet (agent commands and
//! enrollment), host providers, chains, the master key.

use hood_chains::ChainCatalog;
use hood_gateway::Fleet;
use hood_identity::master_key::MasterKey;
use hood_provider::ProviderRegistry;
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
    /// How often a rollout looks at its nodes.
    pub rollout_poll: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            enrollment_ttl: Duration::from_secs(30 * 60),
            command_ttl: Duration::from_secs(10 * 60),
            command_wait: Duration::from_secs(30),
            rollout_poll: Duration::from_secs(2),
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
    /// Node snapshots in the object store; `None` when no object store is
    /// configured (snapshots are refused, migrations start empty).
    pub snapshots: Option<crate::snapshot_store::NodeSnapshots>,
}

/// Input of the node workflows.
pub(crate) use hood_domain::node_workflows::NodeWorkflowInput as NodeInput;

pub(crate) type Ctx = hood_saga::StepContext<Services>;

pub(crate) fn retryable(e: impl std::fmt::Display) -> hood_saga::StepError {
    hood_saga::StepError::retryable(e)
}

pub(crate) fn permanent(e: impl std::fmt::Display) -> hood_saga::StepError {
    hood_saga::StepError::permanent(e)
}
