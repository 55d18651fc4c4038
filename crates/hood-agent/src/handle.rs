//! The shared state of a running agent, and what command handlers may use:
//! artifacts, node data keys and events.

use crate::channel::gateway_channel;
use crate::commands::CommandLog;
use crate::config::AgentConfig;
use crate::error::AgentError;
use crate::now_ms;
use crate::stored_identity::StoredIdentity;
use hood_agent_proto::v1::agent_gateway_client::AgentGatewayClient;
use hood_agent_proto::v1::agent_message::Body as Up;
use hood_agent_proto::v1::{AgentEvent, AgentMessage, FetchNodeKeyRequest};
use hood_domain::{HostId, NodeId};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{mpsc, Notify};
use tonic::transport::Channel;

/// Messages waiting for a session (events, progress, results). Bounded: a
/// long outage drops the oldest kinds of news rather than growing forever
/// (results are re-sent from the command log anyway).
const UPLINK_CAPACITY: usize = 1024;

/// A node's data key, in memory only. `Debug` never prints it; the bytes
/// are overwritten when the last reference goes (best effort, safe Rust).
pub struct DataKey(Vec<u8>);

impl DataKey {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

struct Inner {
    config: AgentConfig,
    identity: RwLock<Option<StoredIdentity>>,
    /// Poked when the identity changes (renewal): the session restarts.
    identity_changed: Notify,
    uplink_tx: mpsc::Sender<AgentMessage>,
    uplink_rx: tokio::sync::Mutex<mpsc::Receiver<AgentMessage>>,
    node_keys: Mutex<HashMap<NodeId, Arc<DataKey>>>,
    commands: CommandLog,
    /// The host as measured at start, sent with every `Hello`.
    inventory: hood_agent_proto::v1::Inventory,
}

/// A cheap, cloneable handle on the agent.
#[derive(Clone)]
pub struct AgentHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("host_id", &self.host_id())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AgentHandle {
    pub(crate) fn open(config: AgentConfig) -> Result<Self, AgentError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| AgentError::io(dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| AgentError::io(dir, e))?;
        }
        let identity = StoredIdentity::load(dir)?;
        let commands = CommandLog::open(&dir.join("commands"))?;
        let (uplink_tx, uplink_rx) = mpsc::channel(UPLINK_CAPACITY);
        let inventory = crate::inventory::measure(dir);
        tracing::info!(
            cores = inventory.cores,
            memory_mib = inventory.memory_mib,
            disk_mib = inventory.disk_mib,
            gpus = inventory.gpus.len(),
            "host measured"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                identity: RwLock::new(identity),
                identity_changed: Notify::new(),
                uplink_tx,
                uplink_rx: tokio::sync::Mutex::new(uplink_rx),
                node_keys: Mutex::new(HashMap::new()),
                commands,
                inventory,
            }),
        })
    }

    pub(crate) fn config(&self) -> &AgentConfig {
        &self.inner.config
    }

    pub(crate) fn inventory(&self) -> &hood_agent_proto::v1::Inventory {
        &self.inner.inventory
    }

    pub(crate) fn commands(&self) -> &CommandLog {
        &self.inner.commands
    }

    /// This agent's host and the task key it pinned at enrollment (`None`
    /// before enrollment).
    pub fn task_trust(&self) -> Option<(HostId, Option<String>)> {
        self.identity().map(|i| (i.host_id, i.task_key))
    }

    pub(crate) fn identity(&self) -> Option<StoredIdentity> {
        self.inner
            .identity
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_identity(&self, identity: StoredIdentity) {
        *self
            .inner
            .identity
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(identity);
        self.inner.identity_changed.notify_waiters();
    }

    pub(crate) fn identity_changed(&self) -> &Notify {
        &self.inner.identity_changed
    }

    pub(crate) fn uplink(&self) -> &tokio::sync::Mutex<mpsc::Receiver<AgentMessage>> {
        &self.inner.uplink_rx
    }

    /// Queues a message for the current (or next) session.
    pub(crate) fn send_up(&self, body: Up) {
        if self
            .inner
            .uplink_tx
            .try_send(AgentMessage { body: Some(body) })
            .is_err()
        {
            tracing::warn!("uplink full or closed: dropped a message for the gateway");
        }
    }

    /// The host this agent is enrolled as.
    pub fn host_id(&self) -> Option<HostId> {
        self.identity().map(|i| i.host_id)
    }

    /// The current identity (certificate, serial, expiry; the key stays
    /// private).
    pub fn stored_identity(&self) -> Option<StoredIdentity> {
        self.identity()
    }

    /// Where downloaded artifacts are cached.
    pub fn artifact_dir(&self) -> PathBuf {
        self.inner.config.data_dir.join("artifacts")
    }

    /// A channel with the current identity.
    pub(crate) fn channel(&self) -> Result<Channel, AgentError> {
        let identity = self
            .identity()
            .ok_or_else(|| AgentError::Config("not enrolled".into()))?;
        gateway_channel(
            &self.inner.config,
            &identity.ca_pem,
            Some((&identity.cert_pem, identity.key_pem())),
        )
    }

    /// Reports an event to the control plane (`workload_started`,
    /// `workload_exited`, …). Queued while disconnected.
    pub fn emit_event(
        &self,
        kind: &str,
        workload_id: Option<&str>,
        message: &str,
        payload: serde_json::Value,
    ) {
        self.send_up(Up::Event(AgentEvent {
            kind: kind.to_owned(),
            workload_id: workload_id.unwrap_or_default().to_owned(),
            message: message.to_owned(),
            payload_json: payload.to_string(),
            at_unix_ms: now_ms(),
        }));
    }

    /// The data key of a node placed on this host, fetched once and then
    /// held in memory (never written to disk).
    pub async fn node_key(&self, node: NodeId) -> Result<Arc<DataKey>, AgentError> {
        if let Some(key) = lock(&self.inner.node_keys).get(&node).cloned() {
            return Ok(key);
        }
        let response = AgentGatewayClient::new(self.channel()?)
            .fetch_node_key(FetchNodeKeyRequest {
                node_id: node.to_string(),
            })
            .await?
            .into_inner();
        let key = Arc::new(DataKey(response.data_key));
        lock(&self.inner.node_keys).insert(node, key.clone());
        tracing::info!(node_id = %node, "fetched node data key");
        Ok(key)
    }

    /// Drops a node's data key from memory (node stopped or moved away).
    pub fn forget_node_key(&self, node: NodeId) {
        lock(&self.inner.node_keys).remove(&node);
    }

    pub(crate) fn forget_all_node_keys(&self) {
        lock(&self.inner.node_keys).clear();
    }
}
