//! Settings of the web console, served by the api role at `/console`.

use clap::Args;
use hood_console::ConsoleConfig;

#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Mark the console's cookies `Secure` (set when Hood is reached over
    /// TLS, e.g. behind a TLS-terminating proxy; a request carrying
    /// `X-Forwarded-Proto: https` gets them either way).
    #[arg(long, env = "HOOD_CONSOLE_SECURE_COOKIES")]
    pub console_secure_cookies: bool,
    /// The edge's public URL, shown to customers beside their RPC keys
    /// (`hood up` shows its own edge when unset).
    #[arg(long, env = "HOOD_EDGE_PUBLIC_URL")]
    pub edge_public_url: Option<String>,
}

impl ConsoleArgs {
    /// The console's configuration; `local_edge`: the edge this process
    /// runs, if any.
    pub fn config(&self, local_edge: Option<String>) -> ConsoleConfig {
        ConsoleConfig {
            secure_cookies: self.console_secure_cookies,
            edge_url: self
                .edge_public_url
                .clone()
                .or(local_edge)
                .map(|u| u.trim_end_matches('/').to_owned()),
        }
    }
}
