//! The CLI's HTTP client: finds the server and credentials, turns problem
//! JSON into plain error messages, refreshes an expired session once.

use anyhow::{anyhow, bail, Context, Result};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the CLI keeps its login session.
pub fn config_path() -> PathBuf {
    if let Ok(p) = std::env::var("HOOD_CONFIG") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("hood").join("cli.json")
}

/// Saved CLI state (`hood login`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CliConfig {
    pub server: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
}

impl CliConfig {
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(s) => serde_json::from_str(&s)
                .with_context(|| format!("{} is not valid CLI config", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let body = serde_json::to_string_pretty(self)?;
        hood_files::write_private(path, format!("{body}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// How the CLI authenticates.
#[derive(Debug, Clone)]
enum Credential {
    None,
    /// An API key or a raw token given by flag or env.
    Static(String),
    /// A login session from the config file (refreshable).
    Session {
        access: String,
        refresh: String,
    },
}

pub struct Client {
    http: reqwest::Client,
    pub server: String,
    credential: Credential,
    config_path: PathBuf,
}

/// Global connection options.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectOpts {
    /// Hood API URL.
    #[arg(long, global = true, env = "HOOD_SERVER")]
    pub server: Option<String>,
    /// Bearer token: an API key (`hood_…`) or a session JWT. Defaults to the
    /// `hood login` session, then to `$HOOD_HOME/admin.key`.
    #[arg(long, global = true, env = "HOOD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data directory of a local `hood up` (for its admin key).
    #[arg(
        long = "home",
        global = true,
        env = "HOOD_HOME",
        default_value = ".hood"
    )]
    pub home: PathBuf,
}

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

impl Client {
    pub fn new(opts: &ConnectOpts) -> Result<Self> {
        let config_path = config_path();
        let config = CliConfig::load(&config_path)?;
        let server = opts
            .server
            .clone()
            .or(config.server.clone())
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let credential = if let Some(t) = &opts.token {
            Credential::Static(t.trim().to_owned())
        } else if let (Some(access), Some(refresh)) = (config.access_token, config.refresh_token) {
            Credential::Session { access, refresh }
        } else {
            let key_file = opts.home.join(hood_api::bootstrap::ADMIN_KEY_FILE);
            match std::fs::read_to_string(&key_file) {
                Ok(k) => Credential::Static(k.trim().to_owned()),
                Err(_) => Credential::None,
            }
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            server: server.trim_end_matches('/').to_owned(),
            credential,
            config_path,
        })
    }

    pub fn without_credentials(opts: &ConnectOpts) -> Result<Self> {
        let mut c = Self::new(opts)?;
        c.credential = Credential::None;
        Ok(c)
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    fn bearer(&self) -> Option<&str> {
        match &self.credential {
            Credential::None => None,
            Credential::Static(t) => Some(t),
            Credential::Session { access, .. } => Some(access),
        }
    }

    /// Sends a request; on 401 with a saved session, refreshes once and retries.
    pub async fn send<B: Serialize>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<serde_json::Value>> {
        let (status, value) = self.send_once(method.clone(), path, body).await?;
        if status == StatusCode::UNAUTHORIZED {
            if let Credential::Session { refresh, .. } = self.credential.clone() {
                if self.refresh_session(&refresh).await.is_ok() {
                    let (status, value) = self.send_once(method, path, body).await?;
                    return finish(status, value);
                }
            }
        }
        finish(status, value)
    }

    async fn send_once<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, Option<serde_json::Value>)> {
        let url = format!("{}{}", self.server, path);
        let mut req = self.http.request(method, &url);
        if let Some(token) = self.bearer() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach Hood at {}: {}", self.server, root_cause(&e)))?;
        let status = resp.status();
        let bytes = resp.bytes().await.context("reading the response")?;
        let value = if bytes.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice(&bytes)
                    .map_err(|_| anyhow!("server answered {status} with a non-JSON body"))?,
            )
        };
        Ok((status, value))
    }

    async fn refresh_session(&mut self, refresh: &str) -> Result<()> {
        let body = serde_json::json!({ "refresh_token": refresh });
        let (status, value) = self
            .send_once(Method::POST, "/api/v1/auth/refresh", Some(&body))
            .await?;
        let pair: TokenPair = serde_json::from_value(finish(status, value)?.unwrap_or_default())?;
        self.save_session(&pair)?;
        Ok(())
    }

    /// Stores a new session in the config file and uses it from now on.
    pub fn save_session(&mut self, pair: &TokenPair) -> Result<()> {
        let config = CliConfig {
            server: Some(self.server.clone()),
            access_token: Some(pair.access_token.clone()),
            refresh_token: Some(pair.refresh_token.clone()),
        };
        config.save(&self.config_path)?;
        self.credential = Credential::Session {
            access: pair.access_token.clone(),
            refresh: pair.refresh_token.clone(),
        };
        Ok(())
    }

    pub async fn get<T: DeserializeOwned>(&mut self, path: &str) -> Result<T> {
        let v = self.send::<()>(Method::GET, path, None).await?;
        Ok(serde_json::from_value(v.unwrap_or_default())?)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let v = self.send(Method::POST, path, Some(body)).await?;
        Ok(serde_json::from_value(v.unwrap_or_default())?)
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let v = self.send(Method::PATCH, path, Some(body)).await?;
        Ok(serde_json::from_value(v.unwrap_or_default())?)
    }

    pub async fn delete(&mut self, path: &str) -> Result<()> {
        self.send::<()>(Method::DELETE, path, None).await?;
        Ok(())
    }

    /// PUTs the file at `file` as a raw `application/octet-stream` body,
    /// streamed from disk (never read whole), with extra `headers`. Uploads
    /// may take long, so the client-wide 30 s timeout is lifted to an hour.
    /// On 401 with a saved session it refreshes once and sends the file
    /// again (a stream cannot be replayed, so the file is reopened).
    pub async fn put_file<T: DeserializeOwned>(
        &mut self,
        path: &str,
        file: &Path,
        headers: &[(&str, &str)],
    ) -> Result<T> {
        let url = format!("{}{}", self.server, path);
        let mut refreshed = false;
        loop {
            let body = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let len = body
                .metadata()
                .await
                .with_context(|| format!("reading {}", file.display()))?
                .len();
            let mut req = self
                .http
                .put(&url)
                .timeout(std::time::Duration::from_secs(3600))
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(reqwest::Body::from(body));
            if let Some(token) = self.bearer() {
                req = req.bearer_auth(token);
            }
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| anyhow!("cannot reach Hood at {}: {}", self.server, root_cause(&e)))?;
            let status = resp.status();
            let bytes = resp.bytes().await.context("reading the response")?;
            let value: Option<serde_json::Value> = if bytes.is_empty() {
                None
            } else {
                Some(
                    serde_json::from_slice(&bytes)
                        .map_err(|_| anyhow!("server answered {status} with a non-JSON body"))?,
                )
            };
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                if let Credential::Session { refresh, .. } = self.credential.clone() {
                    refreshed = true;
                    if self.refresh_session(&refresh).await.is_ok() {
                        continue;
                    }
                }
            }
            let v = finish(status, value)?;
            return Ok(serde_json::from_value(v.unwrap_or_default())?);
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
}

/// Maps non-2xx answers to an error carrying the problem's detail.
fn finish(
    status: StatusCode,
    value: Option<serde_json::Value>,
) -> Result<Option<serde_json::Value>> {
    if status.is_success() {
        return Ok(value);
    }
    let detail = value.as_ref().and_then(|v| {
        let detail = v.get("detail").and_then(|d| d.as_str());
        let title = v.get("title").and_then(|d| d.as_str());
        detail.or(title).map(str::to_owned)
    });
    match (status, detail) {
        (StatusCode::UNAUTHORIZED, Some(d)) => {
            bail!("not authenticated: {d} (try `hood login` or --token)")
        }
        (_, Some(d)) => bail!("{d} (HTTP {})", status.as_u16()),
        (_, None) => bail!("server answered HTTP {}", status.as_u16()),
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}
