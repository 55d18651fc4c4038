//! Settings and shared state of the WebSocket side of one edge replica:
//! held by [`crate::state::Edge`], used by [`crate::ws`], and kept apart
//! from `ws` so that the shared state does not depend on the WebSocket
//! handlers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// WebSocket settings and shared state of one edge replica.
pub struct WsSettings {
    /// Largest client message (the HTTP body limit).
    pub max_message_bytes: usize,
    /// How often an open socket re-checks its key.
    pub recheck_every: Duration,
    /// How long a forwarded call waits for its answer.
    pub call_timeout: Duration,
    /// TLS for `wss://` upstreams (ring, webpki roots).
    pub tls: tokio_tungstenite::Connector,
    /// Flips to `true` when the edge shuts down.
    pub stop: watch::Receiver<bool>,
    pub sessions: Arc<Sessions>,
}

impl WsSettings {
    pub fn new(
        max_message_bytes: usize,
        recheck_every: Duration,
        call_timeout: Duration,
        stop: watch::Receiver<bool>,
    ) -> Result<Self, rustls::Error> {
        Ok(Self {
            max_message_bytes,
            recheck_every,
            call_timeout,
            tls: tokio_tungstenite::Connector::Rustls(tls_config()?),
            stop,
            sessions: Arc::new(Sessions::default()),
        })
    }
}

/// The TLS client configuration for `wss://` upstreams. The provider is
/// named explicitly: a binary with several rustls providers compiled in has
/// no implicit default.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Open WebSocket sessions, so shutdown can wait for them.
#[derive(Default)]
pub struct Sessions {
    open: AtomicUsize,
    idle: Notify,
}

impl Sessions {
    /// Counts a session as open until the guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> SessionGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        SessionGuard(self.clone())
    }

    /// Sessions open (or upgrading) right now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Returns once no session is open.
    pub async fn idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            idle.await;
        }
    }
}

pub(crate) struct SessionGuard(Arc<Sessions>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_tls_configuration_builds() {
        assert!(tls_config().is_ok());
    }

    #[tokio::test]
    async fn sessions_are_tracked_until_they_end() {
        let sessions = Arc::new(Sessions::default());
        sessions.idle().await;
        let a = sessions.enter();
        let b = sessions.enter();
        assert_eq!(sessions.open(), 2);
        let waiter = {
            let sessions = sessions.clone();
            tokio::spawn(async move { sessions.idle().await })
        };
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
