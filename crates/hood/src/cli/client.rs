//! The CLI's HTTP client: finds the server and credentials, sends the API's
//! request types, decodes answers into its view types (a mismatch is a plain
//! error), turns problem JSON into plain error messages, refreshes an
//! expired session once.

use anyhow::{anyhow, bail, Context, Result};
use hood_api::problem::Problem;
use hood_api::views::{RefreshRequest, TokenPair};
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

    /// Sends a request and returns the body of its 2xx answer; a problem
    /// answer becomes an error carrying its detail. On 401 with a saved
    /// session, refreshes once and retries.
    pub async fn send<B: Serialize>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Vec<u8>> {
        let (status, answer) = self.send_once(method.clone(), path, body).await?;
        if status == StatusCode::UNAUTHORIZED {
            if let Credential::Session { refresh, .. } = self.credential.clone() {
                if self.refresh_session(&refresh).await.is_ok() {
                    let (status, answer) = self.send_once(method, path, body).await?;
                    return finish(status, answer);
                }
            }
        }
        finish(status, answer)
    }

    async fn send_once<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, Vec<u8>)> {
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
        let answer = resp.bytes().await.context("reading the response")?;
        Ok((status, answer.to_vec()))
    }

    async fn refresh_session(&mut self, refresh: &str) -> Result<()> {
        let body = RefreshRequest {
            refresh_token: refresh.to_owned(),
        };
        let (status, answer) = self
            .send_once(Method::POST, "/api/v1/auth/refresh", Some(&body))
            .await?;
        let pair: TokenPair = decode(&finish(status, answer)?)?;
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

    /// Sends a request and decodes its answer as `T`, the view type the
    /// server serializes for it.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        decode(&self.send(method, path, body).await?)
    }

    /// Follows a server-sent event stream at `path`, calling `on_event`
    /// with each event's name and data until it answers `false` or the
    /// server ends the stream. A problem answer is an error as usual.
    /// Opens a WebSocket on `path` (`ws://` for an `http://` server,
    /// `wss://` for `https://`); a refusal before the upgrade becomes an
    /// error carrying the problem's detail.
    pub async fn websocket(
        &self,
        path: &str,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    > {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}{}", self.server, path)
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        let mut request = url
            .into_client_request()
            .with_context(|| format!("{} is not a URL a WebSocket can reach", self.server))?;
        if let Some(token) = self.bearer() {
            request.headers_mut().insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}")
                    .parse()
                    .context("the token is not a valid header value")?,
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(answer)) => {
                let status = answer.status();
                finish(status, answer.into_body().unwrap_or_default())?;
                bail!("server answered HTTP {}", status.as_u16())
            }
            Err(e) => bail!("cannot reach Hood at {}: {}", self.server, root_cause(&e)),
        }
    }

    pub async fn follow_events(
        &mut self,
        path: &str,
        mut on_event: impl FnMut(&str, &str) -> bool,
    ) -> Result<()> {
        // No overall timeout: a stream lasts as long as it lasts.
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let mut req = http.get(format!("{}{}", self.server, path));
        if let Some(token) = self.bearer() {
            req = req.bearer_auth(token);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach Hood at {}: {}", self.server, root_cause(&e)))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.bytes().await.context("reading the response")?;
            finish(status, body.to_vec())?;
            bail!("server answered HTTP {}", status.as_u16());
        }
        let mut pending = Vec::new();
        while let Some(chunk) = resp.chunk().await.context("reading the event stream")? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = pending.drain(..end + 2).collect();
                let (event, data) = sse_event(&String::from_utf8_lossy(&block));
                // No data: a keep-alive comment.
                let Some(data) = data else {
                    continue;
                };
                if !on_event(&event, &data) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Follows a log stream (`…/logs/follow`): each `line` event printed
    /// as `render` makes it, until `end`; an `error` event is said on
    /// stderr and the follow goes on.
    pub async fn follow_log_lines(
        &mut self,
        path: &str,
        render: impl Fn(&str) -> String,
    ) -> Result<()> {
        self.follow_events(path, |event, data| match event {
            "line" => {
                println!("{}", render(data));
                true
            }
            "end" => {
                eprintln!("-- {data}");
                false
            }
            "error" => {
                eprintln!("-- {data} (still following)");
                true
            }
            _ => true,
        })
        .await
    }

    pub async fn get<T: DeserializeOwned>(&mut self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// DELETE of a resource that answers `204 No Content`.
    pub async fn delete(&mut self, path: &str) -> Result<()> {
        self.send(Method::DELETE, path, None::<&()>).await?;
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
        self.put_with(path, headers, || async {
            let body = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let len = body
                .metadata()
                .await
                .with_context(|| format!("reading {}", file.display()))?
                .len();
            Ok((reqwest::Body::from(body), len))
        })
        .await
    }

    /// PUTs `bytes` (a part of a multipart upload) and decodes the answer.
    pub async fn put_bytes<T: DeserializeOwned>(
        &mut self,
        path: &str,
        bytes: bytes::Bytes,
    ) -> Result<T> {
        let len = bytes.len() as u64;
        self.put_with(path, &[], || {
            let bytes = bytes.clone();
            async move { Ok((reqwest::Body::from(bytes), len)) }
        })
        .await
    }

    /// PUTs the body `body` makes (again after a session refresh) as
    /// `application/octet-stream` with its length.
    async fn put_with<T, F, Fut>(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        mut body: F,
    ) -> Result<T>
    where
        T: DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(reqwest::Body, u64)>>,
    {
        let url = format!("{}{}", self.server, path);
        let mut refreshed = false;
        loop {
            let (body, len) = body().await?;
            let mut req = self
                .http
                .put(&url)
                .timeout(std::time::Duration::from_secs(3600))
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(body);
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
            let answer = resp.bytes().await.context("reading the response")?;
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                if let Credential::Session { refresh, .. } = self.credential.clone() {
                    refreshed = true;
                    if self.refresh_session(&refresh).await.is_ok() {
                        continue;
                    }
                }
            }
            return decode(&finish(status, answer.to_vec())?);
        }
    }
}

impl Client {
    /// GETs `path` and streams a 2xx answer's body into `out` (never held
    /// whole), sending `headers` (a `Range`); returns the bytes written. A
    /// problem answer becomes an error carrying its detail.
    pub async fn download(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        out: &mut dyn std::io::Write,
    ) -> Result<u64> {
        let url = format!("{}{}", self.server, path);
        let mut req = self
            .http
            .get(&url)
            .timeout(std::time::Duration::from_secs(3600));
        if let Some(token) = self.bearer() {
            req = req.bearer_auth(token);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach Hood at {}: {}", self.server, root_cause(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let answer = resp.bytes().await.context("reading the response")?;
            finish(status, answer.to_vec())?;
            bail!("the server answered {status}");
        }
        let mut written = 0u64;
        while let Some(chunk) = resp.chunk().await.context("reading the download")? {
            out.write_all(&chunk).context("writing the download")?;
            written += chunk.len() as u64;
        }
        out.flush().context("writing the download")?;
        Ok(written)
    }
}

/// Reads the body of a 2xx answer as `T`, the view type the server
/// serializes. A body that does not fit (a field missing, renamed or of
/// another type) is a plain error naming where it differs: the CLI and
/// the server disagree about the API, which a newer server explains.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut reader)
        .map_err(|e| unexpected_answer(&e.path().to_string(), e.inner()))?;
    // Trailing bytes after the value are as wrong as a missing field.
    reader.end().map_err(|e| unexpected_answer(".", &e))?;
    Ok(value)
}

fn unexpected_answer(path: &str, cause: &serde_json::Error) -> anyhow::Error {
    let at = if path == "." {
        String::new()
    } else {
        format!("at `{path}`: ")
    };
    anyhow!("unexpected answer from the server: {at}{cause} (is the CLI older than the server?)")
}

/// Passes a 2xx answer's body on; maps any other to an error carrying the
/// problem's detail (or its title).
/// One server-sent event block: its name (`message` when unnamed) and its
/// data lines joined, `None` when it has none (a comment).
fn sse_event(block: &str) -> (String, Option<String>) {
    let mut event = "message".to_owned();
    let mut data: Option<String> = None;
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut event),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    (event, data)
}

fn finish(status: StatusCode, answer: Vec<u8>) -> Result<Vec<u8>> {
    if status.is_success() {
        return Ok(answer);
    }
    let detail = serde_json::from_slice::<Problem>(&answer)
        .ok()
        .map(|p| p.detail.unwrap_or(p.title));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_sent_events_are_split_into_name_and_data() {
        assert_eq!(
            sse_event("event: line\ndata: hello: world\n\n"),
            ("line".to_owned(), Some("hello: world".to_owned()))
        );
        assert_eq!(
            sse_event("data: a\ndata: b\n"),
            ("message".to_owned(), Some("a\nb".to_owned()))
        );
        assert_eq!(sse_event(":\n\n"), ("message".to_owned(), None));
    }
    use hood_api::routes::nodes::NodeAccepted;
    use hood_api::views::{OrgView, Page};

    const ACCEPTED: &str = r#"{
        "node": {
            "id": "0190a8a2-0000-7000-8000-000000000001",
            "org_id": "0190a8a2-0000-7000-8000-000000000002",
            "name": "devnet-1", "chain": "ethereum-anvil", "node_type": "dev",
            "provider": "local", "region": "local", "state": "provisioning",
            "sync_status": "unknown", "app_health": "unknown", "host_id": null,
            "rpc_endpoint": null, "head_height": null, "binary_version": null,
            "failure_reason": null,
            "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"
        },
        "workflow_id": "provision-node-0190a8a2-0000-7000-8000-000000000001"
    }"#;

    fn message(e: anyhow::Error) -> String {
        format!("{e:#}")
    }

    #[test]
    fn an_answer_decodes_into_the_view_the_server_serializes() {
        let accepted: NodeAccepted = decode(ACCEPTED.as_bytes()).expect("decodes");
        assert_eq!(
            accepted.node.id.to_string(),
            "0190a8a2-0000-7000-8000-000000000001"
        );
        assert_eq!(accepted.node.state, "provisioning");
        assert_eq!(
            accepted.workflow_id,
            format!("provision-node-{}", accepted.node.id)
        );
    }

    #[test]
    fn a_missing_field_is_a_clear_error_naming_where() {
        let renamed = ACCEPTED.replace(
            "\"id\": \"0190a8a2-0000-7000-8000-000000000001\"",
            "\"node_id\": \"x\"",
        );
        let err = message(decode::<NodeAccepted>(renamed.as_bytes()).expect_err("no id"));
        assert!(
            err.starts_with("unexpected answer from the server: at `node`: missing field `id`"),
            "{err}"
        );
        assert!(
            err.ends_with("(is the CLI older than the server?)"),
            "{err}"
        );
    }

    #[test]
    fn a_field_of_another_type_is_a_clear_error() {
        let body = br#"{"items": [{"id": 7, "slug": "acme", "name": "Acme", "created_at": "x"}]}"#;
        let err = message(decode::<Page<OrgView>>(body).expect_err("id is no uuid"));
        assert!(
            err.starts_with("unexpected answer from the server: at `items[0].id`: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_or_trailing_body_is_a_clear_error() {
        let err = message(decode::<OrgView>(b"").expect_err("empty"));
        assert!(
            err.starts_with("unexpected answer from the server: EOF"),
            "{err}"
        );
        let body = br#"{"id": "0190a8a2-0000-7000-8000-000000000002", "slug": "a", "name": "A", "created_at": "x"} trailing"#;
        let err = message(decode::<OrgView>(body).expect_err("trailing bytes"));
        assert!(
            err.starts_with("unexpected answer from the server: trailing characters"),
            "{err}"
        );
    }

    #[test]
    fn problem_answers_become_their_detail() {
        let problem = br#"{"type": "about:blank", "title": "Conflict", "status": 409, "detail": "node name already exists"}"#;
        let err = finish(StatusCode::CONFLICT, problem.to_vec()).expect_err("409");
        assert_eq!(err.to_string(), "node name already exists (HTTP 409)");

        let untitled =
            br#"{"type": "about:blank", "title": "Internal Server Error", "status": 500}"#;
        let err = finish(StatusCode::INTERNAL_SERVER_ERROR, untitled.to_vec()).expect_err("500");
        assert_eq!(err.to_string(), "Internal Server Error (HTTP 500)");

        let unauthenticated = br#"{"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": "API key revoked"}"#;
        let err = finish(StatusCode::UNAUTHORIZED, unauthenticated.to_vec()).expect_err("401");
        assert_eq!(
            err.to_string(),
            "not authenticated: API key revoked (try `hood login` or --token)"
        );

        let proxy = b"<html>bad gateway</html>";
        let err = finish(StatusCode::BAD_GATEWAY, proxy.to_vec()).expect_err("502");
        assert_eq!(err.to_string(), "server answered HTTP 502");

        let ok = finish(StatusCode::OK, b"{}".to_vec()).expect("2xx passes");
        assert_eq!(ok, b"{}");
    }
}
