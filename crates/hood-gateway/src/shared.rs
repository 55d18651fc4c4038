//! What every handler and session task shares: the fleet, the CA, the
//! configuration, the artifact and key sources, the stop signal, and the
//! per-call authentication of the caller's certificate.

use crate::config::GatewayConfig;
use crate::fleet::Fleet;
use crate::now;
use crate::sources::{ArtifactSource, NodeKeySource, SnapshotSource};
use hood_domain::machine::StateMachine as _;
use hood_pki::{Ca, PeerIdentity};
use hood_store::fleet::Host;
use hood_store::StoreError;
use std::sync::Arc;
use tokio::sync::watch;
use tonic::{Request, Status};

/// What every handler and session task needs.
pub(crate) struct Shared {
    pub fleet: Fleet,
    pub ca: Arc<Ca>,
    pub config: GatewayConfig,
    pub artifacts: Option<Arc<dyn ArtifactSource>>,
    pub node_keys: Option<Arc<dyn NodeKeySource>>,
    pub snapshots: Option<Arc<dyn SnapshotSource>>,
    pub terminals: Option<Arc<dyn hood_terminal::AgentRendezvous>>,
    /// Becomes true when the server shuts down; sessions end on it.
    pub stop: watch::Receiver<bool>,
}

/// Internal failures become `unavailable` (the agent retries) and are
/// logged here; the client never sees database details.
pub(crate) fn internal(context: &'static str, err: impl std::fmt::Display) -> Status {
    tracing::error!(error = %err, context, "agent gateway internal error");
    Status::unavailable("temporarily unavailable")
}

impl Shared {
    /// The caller's verified host, checked on every call: a certificate the
    /// CA issued (TLS verified the chain and dates), recorded for that host,
    /// not revoked, not expired, and a host that is not gone.
    pub(crate) async fn authenticate<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(PeerIdentity, Host), Status> {
        let certs = request
            .peer_certs()
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let leaf = certs
            .first()
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let peer = PeerIdentity::from_der(leaf).map_err(|e| {
            tracing::info!(error = %e, "refused a client certificate that names no host");
            Status::unauthenticated("certificate does not name a host")
        })?;
        self.check_peer(&peer).await?;
        let host = self
            .fleet
            .store()
            .get_host(peer.host_id)
            .await
            .map_err(|e| internal("load host", e))?
            .ok_or_else(|| Status::permission_denied("host is not active"))?;
        if host.state.is_terminal() {
            tracing::info!(host_id = %host.id, state = %host.state, "refused a call from a host that is gone");
            return Err(Status::permission_denied("host is not active"));
        }
        Ok((peer, host))
    }

    /// Certificate checks against the store (revocation, expiry).
    pub(crate) async fn check_peer(&self, peer: &PeerIdentity) -> Result<(), Status> {
        let record = self
            .fleet
            .store()
            .get_host_certificate(&peer.serial)
            .await
            .map_err(|e| internal("load certificate", e))?;
        let refused = match &record {
            None => Some("unknown certificate"),
            Some(r) if r.host_id != peer.host_id => Some("unknown certificate"),
            Some(r) if r.revoked_at.is_some() => Some("certificate revoked"),
            Some(r) if r.not_after <= now() => Some("certificate expired"),
            Some(_) => None,
        };
        match refused {
            Some(reason) => {
                tracing::info!(host_id = %peer.host_id, serial = %peer.serial, reason, "refused a host certificate");
                Err(Status::unauthenticated(reason))
            }
            None => Ok(()),
        }
    }
}

/// Store failures that mean "the caller sent something wrong" vs. "we broke".
pub(crate) fn is_expected(err: &StoreError) -> bool {
    matches!(
        err,
        StoreError::NotFound(_) | StoreError::InvalidTransition(_)
    )
}
