//! Settings of the web console, served by the api role at `/console`.

use clap::Args;
use hood_console::{ConsoleConfig, OidcLogin};

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
    /// The console's public base URL (e.g. `https://hood.example`): the
    /// OIDC redirect URI is `{url}/console/login/oidc/callback`. Default:
    /// each request's own host.
    #[arg(long, env = "HOOD_CONSOLE_URL")]
    pub console_url: Option<String>,
    /// Client secret of the console at the OIDC issuer (`HOOD_OIDC_ISSUER`;
    /// the client id is `HOOD_OIDC_AUDIENCE`). Without one the console is a
    /// public client and relies on PKCE alone.
    #[arg(long, env = "HOOD_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
}

impl ConsoleArgs {
    /// The console's configuration; `local_edge`: the edge this process
    /// runs, if any; `oidc`: the trusted issuer and its audience (the
    /// console's client id there), if any.
    pub fn config(&self, local_edge: Option<String>, oidc: Option<(&str, &str)>) -> ConsoleConfig {
        ConsoleConfig {
            oidc: oidc.map(|(issuer, client_id)| OidcLogin {
                issuer: issuer.to_owned(),
                client_id: client_id.to_owned(),
                client_secret: self.oidc_client_secret.clone(),
            }),
            public_url: self.console_url.clone(),
            secure_cookies: self.console_secure_cookies,
            edge_url: self
                .edge_public_url
                .clone()
                .or(local_edge)
                .map(|u| u.trim_end_matches('/').to_owned()),
        }
    }
}
