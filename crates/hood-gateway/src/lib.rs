//! The `agent-gateway` role: the gRPC endpoint agents dial (mutual TLS).
//!
//! Two halves:
//!
//! * [`Fleet`] — the in-process service API the orchestrator calls:
//!   [`enqueue_command`](Fleet::enqueue_command),
//!   [`wait_command`](Fleet::wait_command),
//!   [`issue_enrollment_token`](Fleet::issue_enrollment_token),
//!   [`host_connected`](Fleet::host_connected),
//!   [`revoke_host`](Fleet::revoke_host). It works on the store alone, so a
//!   process that runs no gateway (cluster-mode orchestrator) can use it too.
//! * [`Gateway`] — the server: TLS accept loop over `hood-pki`'s rustls
//!   configuration, and the `AgentGateway` service (`Enroll`, `Renew`,
//!   `Session`, `FetchArtifact`, `FetchNodeKey`).
//!
//! Commands are rows (`agent_commands`), so they survive a gateway restart.
//! A session delivers queued commands at start (after re-queueing anything
//! dispatched but never acknowledged) and then whenever [`Fleet`] pokes it —
//! in under a second — with a short database poll as the fallback for
//! commands enqueued by another process.

mod authority;
mod config;
mod error;
mod fleet;
mod server;
mod service;
mod session;
mod shared;
mod sources;
mod terminal;

pub use authority::{certificate_record, load_or_create_ca, CaStoreError};
pub use config::GatewayConfig;
pub use error::GatewayError;
pub use fleet::{CommandOutcome, Fleet, ENROLLMENT_TOKEN_PREFIX};
pub use server::Gateway;
pub use sources::{
    ArtifactSource, ArtifactSourceError, ArtifactStream, DataKey, NodeKeyError, NodeKeySource,
    SnapshotSource, SnapshotSourceError,
};

pub(crate) use hood_clock::now;

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Resolves once the server is shutting down (or gone). A function of its
/// own so the `watch` guard is dropped before any `.await` of the caller.
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
