//! The on-host agent (`hood agent`).
//!
//! The agent dials out to the agent gateway; nothing dials the agent.
//!
//! * **Enrollment** ([`Agent::enroll`]): a fresh ECDSA key pair and CSR,
//!   exchanged with the one-time token for a host certificate. Key,
//!   certificate and CA are kept in `identity.json` (mode 0600) in the data
//!   directory. The token is read from a file or the environment and never
//!   logged.
//! * **Session** ([`Agent::run`]): one mutual-TLS stream — `Hello`,
//!   heartbeats, events, acks, progress and results up; commands down —
//!   reconnecting with jittered exponential backoff.
//! * **Commands** are de-duplicated by id across restarts: a record is
//!   written *before* execution starts, so a command redelivered after a
//!   crash or a lost ack is never executed twice; the stored result is sent
//!   again instead. Execution is delegated to a [`CommandHandler`].
//! * **Renewal**: at 2/3 of the certificate's lifetime (configurable), then
//!   the session restarts with the new certificate.
//! * **Artifacts** ([`AgentHandle::fetch_artifact`]) are cached under their
//!   SHA-256 and refused when the bytes do not match; **node data keys**
//!   ([`AgentHandle::node_key`]) are held in memory only.

mod artifacts;
mod channel;
mod commands;
mod config;
mod enrollment;
mod error;
mod handle;
mod handler;
pub mod host_metrics;
pub mod inventory;
mod session;
mod snapshots;
mod stored_identity;
mod terminal;

pub use channel::gateway_channel;
pub use config::{AgentConfig, TOKEN_ENV};
pub use error::AgentError;
pub use handle::{AgentHandle, DataKey};
pub use handler::{BuiltinHandler, CommandContext, CommandError, CommandHandler, Workload};
pub use snapshots::GatewayChunks;
pub use stored_identity::StoredIdentity;

use hood_domain::HostId;
use std::future::Future;
use std::sync::Arc;

/// The agent. Build with [`Agent::new`], hand [`Agent::handle`] to the
/// command handler (it fetches artifacts and keys through it), then
/// [`Agent::run`].
pub struct Agent {
    handle: AgentHandle,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").finish_non_exhaustive()
    }
}

impl Agent {
    /// Prepares the data directory (mode 0700) and loads a stored identity.
    pub fn new(config: AgentConfig) -> Result<Self, AgentError> {
        Ok(Self {
            handle: AgentHandle::open(config)?,
        })
    }

    /// A cheap handle for command handlers and other tasks.
    pub fn handle(&self) -> AgentHandle {
        self.handle.clone()
    }

    /// The host this agent is enrolled as, if it is.
    pub fn host_id(&self) -> Option<HostId> {
        self.handle.host_id()
    }

    /// Enrolls unless already enrolled; returns the host id.
    pub async fn enroll(&self) -> Result<HostId, AgentError> {
        enrollment::enroll_if_needed(&self.handle).await
    }

    /// Renews the certificate now (normally automatic at 2/3 of its
    /// lifetime). A running session restarts with the new certificate.
    pub async fn renew_now(&self) -> Result<(), AgentError> {
        enrollment::renew(&self.handle).await
    }

    /// Enrolls if needed, then keeps a session with the gateway until
    /// `shutdown` completes. Only an enrollment the gateway refuses (bad
    /// token) or a broken data directory ends it early with an error;
    /// network failures are retried forever.
    pub async fn run(
        self,
        handler: Arc<dyn CommandHandler>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), AgentError> {
        let result = session::run(&self.handle, handler, shutdown).await;
        self.handle.forget_all_node_keys();
        result
    }
}

/// Wall clock in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    hood_clock::now().millis()
}
