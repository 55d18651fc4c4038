//! Host providers: where hosts come from.
//!
//! The orchestrator creates and deletes hosts through [`HostProvider`],
//! picking the implementation by name from a [`ProviderRegistry`], so a new
//! cloud plugs in without touching the callers. Shipped: [`LocalProvider`]
//! (`local`), a host as a sandbox directory plus an agent process on this
//! machine, optionally in its own network namespace. Cloud providers
//! (`hetzner`, `ovh`) implement the same trait in their own modules.
//!
//! Every operation is idempotent on the host id, because workflow steps are
//! retried: creating an existing host returns it, deleting a missing one
//! succeeds.

mod local;
mod netns;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use hood_domain::{HostId, Timestamp};
use serde::{Deserialize, Serialize};

pub use hood_runtime::ExitInfo;
pub use local::{LocalProvider, LocalProviderConfig, AGENT_ENV_ALLOWLIST, SANDBOX_ENV};
pub use netns::NetnsConfig;

/// Size of a host to create. Providers map it to their closest offering;
/// `local` records it and enforces nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostResources {
    pub cpu: u32,
    pub memory_gb: u32,
    pub disk_gb: u32,
}

/// What a new host's agent needs to enroll with the control plane.
#[derive(Clone)]
pub struct EnrollmentInfo {
    /// Agent gateway URL, e.g. `https://127.0.0.1:9090`.
    pub gateway_url: String,
    /// One-time enrollment token. Secret: delivered only as a `0600` file.
    pub token: String,
    /// PEM of the internal CA the agent must trust.
    pub ca_pem: String,
}

impl fmt::Debug for EnrollmentInfo {
    /// The token is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentInfo")
            .field("gateway_url", &self.gateway_url)
            .field("token", &"<redacted>")
            .field("ca_pem", &format_args!("<{} bytes>", self.ca_pem.len()))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct CreateHostRequest {
    pub host_id: HostId,
    pub region: String,
    pub resources: HostResources,
    pub enrollment: EnrollmentInfo,
}

/// A host as the provider knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostHandle {
    pub host_id: HostId,
    /// Provider name (`local`, …).
    pub provider: String,
    /// The provider's own reference: sandbox path, cloud server id.
    pub provider_ref: String,
    pub region: String,
    pub resources: HostResources,
    /// The host's own address, when it has one (`local` with a network
    /// namespace, cloud hosts).
    pub address: Option<IpAddr>,
    pub created_at: Timestamp,
}

/// Provider-side state of a host (whether the machine runs), not the
/// control plane's `HostState`, which also depends on the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderHostState {
    /// Being created (or a create was interrupted; creating again resumes).
    Provisioning,
    Running,
    /// Exists but is not running (for `local`: the agent process ended).
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderHostStatus {
    pub host_id: HostId,
    pub state: ProviderHostState,
    pub address: Option<IpAddr>,
    /// Cut off from the network by [`HostProvider::partition`].
    pub partitioned: bool,
    /// `local`: the agent's pid while it runs.
    pub pid: Option<u32>,
    /// `local`: how the agent ended, when this provider instance saw it.
    pub last_exit: Option<ExitInfo>,
}

/// Errors of a provider. Messages never contain enrollment tokens.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("invalid host request: {field}: {reason}")]
    InvalidRequest { field: String, reason: String },
    #[error("provider {provider} does not support {operation}")]
    Unsupported {
        provider: String,
        operation: &'static str,
    },
    #[error("host {0} not found")]
    NotFound(HostId),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("provider {0} is already registered")]
    DuplicateProvider(String),
}

pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

/// Creates and deletes hosts.
#[async_trait]
pub trait HostProvider: Send + Sync {
    /// Registry name, also stored on each host row.
    fn name(&self) -> &str;

    /// Creates the host and starts its agent with `req.enrollment`.
    /// Idempotent on `host_id`: an existing host is returned as it is.
    async fn create_host(&self, req: CreateHostRequest) -> Result<HostHandle>;

    /// Deletes the host and everything on it. A missing host is Ok.
    async fn delete_host(&self, host_id: HostId) -> Result<()>;

    /// `None` when the provider has no such host.
    async fn host_status(&self, host_id: HostId) -> Result<Option<ProviderHostStatus>>;

    /// Every host this provider holds, including ones the control plane no
    /// longer knows (orphans left by a crash between create and record).
    async fn list_hosts(&self) -> Result<Vec<HostHandle>>;

    /// Cuts the host off the network (fault injection for tests and game
    /// days). Providers that cannot do this say so.
    async fn partition(&self, host_id: HostId) -> Result<()> {
        let _ = host_id;
        Err(ProviderError::Unsupported {
            provider: self.name().to_owned(),
            operation: "partition",
        })
    }

    /// Undoes [`HostProvider::partition`].
    async fn heal(&self, host_id: HostId) -> Result<()> {
        let _ = host_id;
        Err(ProviderError::Unsupported {
            provider: self.name().to_owned(),
            operation: "heal",
        })
    }
}

/// Providers by name.
#[derive(Default, Clone)]
pub struct ProviderRegistry {
    providers: BTreeMap<String, Arc<dyn HostProvider>>,
}

impl ProviderRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a provider under its [`HostProvider::name`]; a second provider
    /// with the same name is refused rather than silently replacing one
    /// that hosts were created with.
    pub fn register(&mut self, provider: Arc<dyn HostProvider>) -> Result<()> {
        let name = provider.name().to_owned();
        if self.providers.contains_key(&name) {
            return Err(ProviderError::DuplicateProvider(name));
        }
        self.providers.insert(name, provider);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn HostProvider>> {
        self.providers.get(name).cloned()
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<dyn HostProvider>)> {
        self.providers.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl fmt::Debug for ProviderRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderRegistry")
            .field("providers", &self.names())
            .finish()
    }
}
