//! Agent configuration.

use std::path::PathBuf;
use std::time::Duration;

/// Environment variable holding the enrollment token when no file is given.
pub const TOKEN_ENV: &str = "HOOD_ENROLLMENT_TOKEN";

/// How the agent reaches and trusts the gateway, and where it keeps state.
#[derive(Clone)]
pub struct AgentConfig {
    /// `https://host:port` of the agent gateway (TLS is always on; the
    /// scheme may be omitted).
    pub gateway_url: String,
    /// TLS name to verify the gateway as; defaults to the URL's host.
    pub server_name: Option<String>,
    /// Identity, command records and the artifact cache live here.
    pub data_dir: PathBuf,
    /// The installation's CA certificate (PEM), delivered with the token:
    /// how the agent trusts the gateway before it has enrolled. After
    /// enrollment the CA stored with the identity is used.
    pub ca_pem: Option<String>,
    /// File holding the one-time enrollment token; without one the agent
    /// reads [`TOKEN_ENV`].
    pub token_file: Option<PathBuf>,
    /// Reported at enrollment and in every `Hello`.
    pub agent_version: String,
    /// Reported at enrollment.
    pub hostname: String,
    /// Overrides the heartbeat interval the gateway asks for in `Welcome`.
    pub heartbeat_interval: Option<Duration>,
    /// Reconnect backoff bounds (exponential with jitter in between).
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Renew the certificate when this fraction of its lifetime has passed.
    pub renew_at: f64,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("gateway_url", &self.gateway_url)
            .field("data_dir", &self.data_dir)
            .field("token_file", &self.token_file)
            .field("agent_version", &self.agent_version)
            .finish_non_exhaustive()
    }
}

impl AgentConfig {
    /// Defaults for everything but where to connect and where to keep state.
    pub fn new(gateway_url: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            gateway_url: gateway_url.into(),
            server_name: None,
            data_dir: data_dir.into(),
            ca_pem: None,
            token_file: None,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            hostname: std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into()),
            heartbeat_interval: None,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            renew_at: 2.0 / 3.0,
            connect_timeout: Duration::from_secs(10),
        }
    }
}
