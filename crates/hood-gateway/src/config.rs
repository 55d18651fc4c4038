//! The gateway's tunables.

use std::time::Duration;

/// Tunables of the gateway. `Default` is production; tests shorten them.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Told to agents in `Welcome`; they heartbeat this often.
    pub heartbeat_interval: Duration,
    /// Lifetime of host certificates (agents renew at 2/3 of it).
    pub leaf_validity: Duration,
    /// Extra names (DNS or IP) for the gateway's server certificate, besides
    /// `127.0.0.1` and `localhost`: the addresses agents dial.
    pub server_names: Vec<String>,
    /// Lifetime of the gateway's own server certificate, issued at start.
    pub server_cert_validity: Duration,
    /// How often the gateway looks in the database for commands enqueued by
    /// another process (one query for all its sessions). Commands enqueued
    /// through this process's [`Fleet`] are delivered at once regardless.
    pub dispatch_poll: Duration,
    /// How often overdue commands are expired.
    pub expiry_sweep: Duration,
    /// A TCP connection that has not finished its TLS handshake by then is
    /// dropped.
    pub handshake_timeout: Duration,
    /// A session whose first message (`Hello`) has not arrived by then is
    /// closed.
    pub hello_timeout: Duration,
    /// The key that signs task parameters (base64 Ed25519), handed to
    /// agents at enrollment for them to pin.
    pub task_public_key: Option<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(15),
            leaf_validity: hood_pki::DEFAULT_LEAF_VALIDITY,
            server_names: Vec::new(),
            server_cert_validity: Duration::from_secs(365 * 24 * 3600),
            dispatch_poll: Duration::from_millis(500),
            expiry_sweep: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(10),
            hello_timeout: Duration::from_secs(30),
            task_public_key: None,
        }
    }
}
