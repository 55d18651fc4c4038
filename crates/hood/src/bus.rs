//! Where a process finds the event bus: NATS JetStream in cluster mode, an
//! in-process bus in embedded mode. Shared by every role that publishes or
//! subscribes (health, edge).

use anyhow::{Context, Result};
use hood_bus::{EventBus, InProcessBus, NatsBus, NatsOptions};
use std::sync::Arc;

#[derive(Debug, Clone, clap::Args)]
pub struct BusArgs {
    /// NATS URL of the event bus (cluster mode); embedded mode uses an
    /// in-process bus.
    #[arg(long, env = "HOOD_NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// JetStream stream holding Hood's events.
    #[arg(long, env = "HOOD_NATS_STREAM", default_value = "hood")]
    pub nats_stream: String,
    /// Subject prefix of Hood's events (`<prefix>.>`); two installations
    /// sharing one NATS server need different prefixes and streams.
    #[arg(long, env = "HOOD_NATS_SUBJECT_PREFIX", default_value = "hood")]
    pub nats_subject_prefix: String,
}

impl BusArgs {
    pub async fn connect(&self) -> Result<Arc<dyn EventBus>> {
        Ok(match &self.nats_url {
            Some(url) => {
                let mut options = NatsOptions::new(self.nats_stream.clone());
                options.subject_prefix = self.nats_subject_prefix.clone();
                Arc::new(
                    NatsBus::connect_with(url, options)
                        .await
                        .context("connecting to NATS JetStream")?,
                )
            }
            None => Arc::new(InProcessBus::new()),
        })
    }
}
