//! The server: TLS accept loop, tonic service, background expiry.

use crate::config::GatewayConfig;
use crate::error::GatewayResult;
use crate::fleet::Fleet;
use crate::now;
use crate::service::GatewayService;
use crate::shared::Shared;
use crate::sources::{ArtifactSource, NodeKeySource, SnapshotSource};
use hood_agent_proto::v1::agent_gateway_server::AgentGatewayServer;
use hood_pki::Ca;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

/// The agent gateway server. Build with [`Gateway::new`], run with
/// [`Gateway::serve`].
pub struct Gateway {
    fleet: Fleet,
    ca: Arc<Ca>,
    config: GatewayConfig,
    tls: Arc<rustls::ServerConfig>,
    artifacts: Option<Arc<dyn ArtifactSource>>,
    node_keys: Option<Arc<dyn NodeKeySource>>,
    snapshots: Option<Arc<dyn SnapshotSource>>,
    terminals: Option<Arc<dyn hood_terminal::AgentRendezvous>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Issues the gateway's server certificate from `ca` (a fresh key, in
    /// memory only) and prepares the TLS configuration.
    pub fn new(fleet: Fleet, ca: Arc<Ca>, config: GatewayConfig) -> GatewayResult<Self> {
        let identity =
            ca.issue_server_identity(&config.server_names, config.server_cert_validity, now())?;
        let tls = hood_pki::server_config(ca.cert_pem(), &identity.cert_pem, identity.key_pem())?;
        Ok(Self {
            fleet,
            ca,
            config,
            tls,
            artifacts: None,
            node_keys: None,
            snapshots: None,
            terminals: None,
        })
    }

    /// Serves `FetchArtifact` from `source` (without one it is unavailable).
    pub fn with_artifacts(mut self, source: Arc<dyn ArtifactSource>) -> Self {
        self.artifacts = Some(source);
        self
    }

    /// Serves `FetchNodeKey` from `source` (without one it is unavailable).
    pub fn with_node_keys(mut self, source: Arc<dyn NodeKeySource>) -> Self {
        self.node_keys = Some(source);
        self
    }

    /// Serves the snapshot calls from `source` (without one they are
    /// unavailable).
    pub fn with_snapshots(mut self, source: Arc<dyn SnapshotSource>) -> Self {
        self.snapshots = Some(source);
        self
    }

    /// Serves `Terminal` streams into the sessions `rendezvous` finds
    /// (without one they are unavailable).
    pub fn with_terminals(mut self, rendezvous: Arc<dyn hood_terminal::AgentRendezvous>) -> Self {
        self.terminals = Some(rendezvous);
        self
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// The CA certificate agents must trust (PEM); hand it to new hosts
    /// together with their enrollment token.
    pub fn ca_cert_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// Serves on `listener` until `shutdown` completes. On shutdown, open
    /// sessions are closed (agents reconnect elsewhere or later) and the
    /// server drains; commands stay in the database.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> GatewayResult<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let local = listener.local_addr().ok();
        let shared = Arc::new(Shared {
            fleet: self.fleet.clone(),
            ca: self.ca.clone(),
            config: self.config.clone(),
            artifacts: self.artifacts.clone(),
            node_keys: self.node_keys.clone(),
            snapshots: self.snapshots.clone(),
            terminals: self.terminals.clone(),
            stop: stop_rx.clone(),
        });
        let (conn_tx, conn_rx) = mpsc::channel::<Result<TlsStream<TcpStream>, std::io::Error>>(64);
        let accept = tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(self.tls.clone()),
            self.config.handshake_timeout,
            conn_tx,
            stop_rx.clone(),
        ));
        let expiry = tokio::spawn(expiry_loop(
            self.fleet.clone(),
            self.config.expiry_sweep,
            stop_rx.clone(),
        ));
        let poller = tokio::spawn(dispatch_poller(
            self.fleet.clone(),
            self.config.dispatch_poll,
            stop_rx.clone(),
        ));
        tracing::info!(addr = ?local, "agent gateway listening (mTLS)");
        let signal = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        let result = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(20)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_service(AgentGatewayServer::new(GatewayService::new(shared)))
            .serve_with_incoming_shutdown(ReceiverStream::new(conn_rx), signal)
            .await;
        accept.abort();
        expiry.abort();
        poller.abort();
        tracing::info!(addr = ?local, "agent gateway stopped");
        result.map_err(Into::into)
    }
}

/// Accepts TCP connections and runs each TLS handshake in its own task, so
/// a slow or hostile client cannot stall the others.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    conns: mpsc::Sender<Result<TlsStream<TcpStream>, std::io::Error>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = crate::stopped(&mut stop) => return,
        };
        let acceptor = acceptor.clone();
        let conns = conns.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = conns.send(Ok(tls)).await;
                }
                Ok(Err(e)) => {
                    tracing::info!(peer = %peer, error = %e, "TLS handshake refused");
                }
                Err(_) => tracing::info!(peer = %peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Expires overdue commands and wakes whoever waits for them.
async fn expiry_loop(fleet: Fleet, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = crate::stopped(&mut stop) => return,
        }
        match fleet.store().expire_overdue_agent_commands(now()).await {
            Ok(expired) if !expired.is_empty() => {
                tracing::info!(count = expired.len(), "expired overdue agent commands");
                fleet.commands_changed();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "expiring agent commands failed"),
        }
    }
}

/// Most hosts the poller wakes per round; the rest wait for the next one.
const POLL_LIMIT: i64 = 10_000;

/// Wakes local sessions of hosts that have queued commands, so commands
/// enqueued by another process (cluster mode) are delivered within one poll
/// interval. One query per round for the whole gateway, not per session.
async fn dispatch_poller(fleet: Fleet, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = crate::stopped(&mut stop) => return,
        }
        if !fleet.has_sessions() {
            continue;
        }
        match fleet
            .store()
            .hosts_with_queued_agent_commands(now(), POLL_LIMIT)
            .await
        {
            Ok(hosts) => hosts.into_iter().for_each(|h| fleet.wake(h)),
            Err(e) => tracing::warn!(error = %e, "polling for queued commands failed"),
        }
    }
}
