//! Containers on a host's engine through the Docker Engine API: Docker
//! itself, or Podman's compatible service (`podman system service`), on a
//! Unix socket.
//!
//! * Images come from the engine's store, from a root filesystem tarball
//!   ([`ContainerEngine::import_rootfs`]) or from an image archive, OCI
//!   layout or `docker save` ([`ContainerEngine::load_archive`]): air-gapped
//!   fleets have no registry.
//! * [`ContainerEngine::run`] is idempotent. A container is named after its
//!   workload and labelled [`MANAGED_LABEL`] and [`SPEC_HASH_LABEL`]: an
//!   equal spec leaves a running container alone, a changed one replaces
//!   it. Containers without the label are never touched.
//! * Limits come from the caller's placement: cores as a cpuset (and as
//!   much CPU time), memory with no swap beyond it.
//!
//! Podman 4 reports a container that is being torn down as `stopped`, a
//! state the Docker API does not have and bollard cannot parse: such
//! answers are asked again ([`transient`]).

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ExecConfig, HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ImportImageOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, ResizeExecOptions, StopContainerOptions, TagImageOptions,
};
use bollard::Docker;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::Digest as _;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::AsyncWrite;

/// Marks a container as Hood's: only those are listed, replaced or removed.
pub const MANAGED_LABEL: &str = "io.hood.managed";
/// The hash of the spec a container was made from.
pub const SPEC_HASH_LABEL: &str = "io.hood.spec-hash";
/// How long one API call may take (image loads stream for longer).
const CALL_TIMEOUT_SECS: u64 = 120;
/// How often a transient answer is asked again, and how long apart.
const TRANSIENT_RETRIES: u32 = 20;
const TRANSIENT_PAUSE: Duration = Duration::from_millis(100);

/// What went wrong with the engine.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("connecting to the container engine at {socket}: {reason}")]
    Connect { socket: String, reason: String },
    #[error("the container spec is invalid: {0}")]
    InvalidSpec(String),
    #[error("image {0} is not in the engine's store")]
    NoImage(String),
    #[error("reading {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("the container engine refused {action}: {reason}")]
    Engine {
        action: &'static str,
        reason: String,
    },
}

fn engine(action: &'static str) -> impl Fn(bollard::errors::Error) -> ContainerError {
    move |e| ContainerError::Engine {
        action,
        reason: e.to_string(),
    }
}

/// Whether the API answered 404.
fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Podman's `stopped` state, which bollard cannot parse: a moment later the
/// container is `exited` (or gone).
fn transient(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::JsonDataError { .. }
            | bollard::errors::Error::JsonSerdeError { .. }
    ) && e.to_string().contains("stopped")
}

/// Runs `call` again while its answer is [`transient`].
async fn patiently<T, F, Fut>(mut call: F) -> Result<T, bollard::errors::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, bollard::errors::Error>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if transient(&e) && attempt < TRANSIENT_RETRIES => {
                attempt += 1;
                tokio::time::sleep(TRANSIENT_PAUSE).await;
            }
            answer => return answer,
        }
    }
}

/// When the engine restarts a container whose command ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum RestartMode {
    /// Never: the container's end is reported and acted on elsewhere.
    #[default]
    Never,
    /// After a non-zero exit, up to [`ON_FAILURE_RETRIES`] times.
    OnFailure,
    /// Always, until stopped.
    UnlessStopped,
}

/// Restarts allowed by [`RestartMode::OnFailure`].
pub const ON_FAILURE_RETRIES: i64 = 5;

/// One container as it should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSpec {
    /// The container's name on the engine (letters, digits, `_.-`).
    pub name: String,
    pub image: String,
    /// argv; empty runs the image's own command.
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub hostname: Option<String>,
    /// Cores it is pinned to (and as much CPU time as they give).
    pub cores: Vec<u32>,
    pub memory_mib: u64,
    /// Container port → host port, published on [`Self::publish_ip`].
    pub ports: BTreeMap<u16, u16>,
    pub publish_ip: IpAddr,
    pub restart: RestartMode,
    /// Extra labels (the managed and hash labels are added).
    pub labels: BTreeMap<String, String>,
}

impl ContainerSpec {
    /// Checks what the engine would refuse less clearly, or not at all.
    pub fn validate(&self) -> Result<(), ContainerError> {
        let invalid = |m: String| Err(ContainerError::InvalidSpec(m));
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 128
            && self
                .name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !name_ok {
            return invalid(format!("`{}` is not a container name", self.name));
        }
        if self.image.trim().is_empty() || self.image.chars().any(char::is_whitespace) {
            return invalid(format!("`{}` is not an image reference", self.image));
        }
        if self.cores.is_empty() {
            return invalid("a container needs at least one core".into());
        }
        if self.memory_mib < 6 {
            // The engines' own floor (6 MiB).
            return invalid(format!("{} MiB is too little memory", self.memory_mib));
        }
        if let Some(key) = self
            .env
            .keys()
            .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
        {
            return invalid(format!("`{key}` is not an environment variable name"));
        }
        if self.env.values().any(|v| v.contains('\0'))
            || self.command.iter().any(|a| a.contains('\0'))
        {
            return invalid("a NUL byte in the command or environment".into());
        }
        if self.ports.iter().any(|(c, h)| *c == 0 || *h == 0) {
            return invalid("port 0 cannot be published".into());
        }
        Ok(())
    }

    /// A digest of everything the container is made from: equal specs,
    /// equal hashes.
    pub fn hash(&self) -> String {
        // A derived Serialize of owned, ordered data cannot fail.
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(sha2::Sha256::digest(canonical))
    }

    fn body(&self) -> ContainerCreateBody {
        let mut labels: HashMap<String, String> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.insert(MANAGED_LABEL.into(), "true".into());
        labels.insert(SPEC_HASH_LABEL.into(), self.hash());
        let exposed: HashMap<String, HashMap<(), ()>> = self
            .ports
            .keys()
            .map(|p| (format!("{p}/tcp"), HashMap::new()))
            .collect();
        let bindings: HashMap<String, Option<Vec<PortBinding>>> = self
            .ports
            .iter()
            .map(|(container, host)| {
                (
                    format!("{container}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some(self.publish_ip.to_string()),
                        host_port: Some(host.to_string()),
                    }]),
                )
            })
            .collect();
        let memory = i64::try_from(self.memory_mib.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX);
        let restart = match self.restart {
            RestartMode::Never => RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            },
            RestartMode::OnFailure => RestartPolicy {
                name: Some(RestartPolicyNameEnum::ON_FAILURE),
                maximum_retry_count: Some(ON_FAILURE_RETRIES),
            },
            RestartMode::UnlessStopped => RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            },
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: (!self.command.is_empty()).then(|| self.command.clone()),
            env: Some(self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            hostname: self.hostname.clone(),
            labels: Some(labels),
            exposed_ports: Some(exposed),
            host_config: Some(HostConfig {
                cpuset_cpus: Some(
                    self.cores
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                nano_cpus: Some(self.cores.len() as i64 * 1_000_000_000),
                memory: Some(memory),
                // Swap equal to memory: none beyond the limit.
                memory_swap: Some(memory),
                port_bindings: Some(bindings),
                restart_policy: Some(restart),
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Where a container is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Restarting,
    Paused,
    /// Its command ended with `code`.
    Exited {
        code: i64,
    },
    /// Being removed, or dead.
    Gone,
}

/// A container the engine knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub id: String,
    pub name: String,
    pub state: ContainerState,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub labels: BTreeMap<String, String>,
}

/// One line a container wrote, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLine {
    Stdout(String),
    Stderr(String),
}

impl LogLine {
    pub fn text(&self) -> &str {
        match self {
            Self::Stdout(t) | Self::Stderr(t) => t,
        }
    }
}

/// What a finished exec printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
}

/// A running interactive exec (a terminal): its output, its input.
pub struct InteractiveExec {
    pub id: String,
    pub output: Pin<Box<dyn Stream<Item = Result<Vec<u8>, ContainerError>> + Send>>,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

/// A host's container engine.
#[derive(Clone)]
pub struct ContainerEngine {
    docker: Docker,
}

impl std::fmt::Debug for ContainerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerEngine").finish_non_exhaustive()
    }
}

impl ContainerEngine {
    /// Connects to the engine's API socket and checks it answers.
    pub async fn connect(socket: &Path) -> Result<Self, ContainerError> {
        let shown = socket.display().to_string();
        let fail = |reason: String| ContainerError::Connect {
            socket: shown.clone(),
            reason,
        };
        let docker =
            Docker::connect_with_unix(&shown, CALL_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(|e| fail(e.to_string()))?;
        docker.ping().await.map_err(|e| fail(e.to_string()))?;
        Ok(Self { docker })
    }

    /// Whether the engine's store holds `image`.
    pub async fn has_image(&self, image: &str) -> Result<bool, ContainerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(engine("inspecting an image")(e)),
        }
    }

    /// Makes `image` (`repo:tag`) from a root filesystem tarball.
    pub async fn import_rootfs(&self, tarball: &Path, image: &str) -> Result<(), ContainerError> {
        let bytes = read(tarball).await?;
        let (repo, tag) = split_reference(image);
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
            ..Default::default()
        };
        let answers: Vec<_> = self
            .docker
            .create_image(Some(options), Some(bollard::body_full(bytes.into())), None)
            .try_collect()
            .await
            .map_err(engine("importing a root filesystem"))?;
        // Podman 4 ignores the name asked for and answers the new image's
        // id: tagged here, so both engines end with the name.
        if !self.has_image(image).await? {
            let id = answers
                .iter()
                .rev()
                .find_map(|a| a.id.clone().or_else(|| a.status.clone()))
                .ok_or_else(|| ContainerError::Engine {
                    action: "importing a root filesystem",
                    reason: "the engine did not name the image it made".into(),
                })?;
            self.tag(id.trim(), image).await?;
        }
        Ok(())
    }

    /// Loads an image archive (OCI layout or `docker save`); returns what
    /// the engine said it loaded.
    pub async fn load_archive(&self, archive: &Path) -> Result<Vec<String>, ContainerError> {
        let bytes = read(archive).await?;
        let answers: Vec<_> = self
            .docker
            .import_image(
                ImportImageOptions::default(),
                bollard::body_full(bytes.into()),
                None,
            )
            .try_collect()
            .await
            .map_err(engine("loading an image archive"))?;
        Ok(answers
            .into_iter()
            .filter_map(|a| a.stream.or(a.status))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect())
    }

    /// Names `source` (an image id or name) `target` too.
    pub async fn tag(&self, source: &str, target: &str) -> Result<(), ContainerError> {
        let (repo, tag) = split_reference(target);
        self.docker
            .tag_image(
                source,
                Some(TagImageOptions {
                    repo: Some(repo.to_owned()),
                    tag: Some(tag.to_owned()),
                }),
            )
            .await
            .map_err(engine("tagging an image"))
    }

    /// Runs `spec`: a running container made from an equal spec is left
    /// alone; any other container of that name is replaced.
    pub async fn run(&self, spec: &ContainerSpec) -> Result<ContainerStatus, ContainerError> {
        spec.validate()?;
        if !self.has_image(&spec.image).await? {
            return Err(ContainerError::NoImage(spec.image.clone()));
        }
        let hash = spec.hash();
        if let Some(current) = self.state(&spec.name).await? {
            let same = current.labels.get(SPEC_HASH_LABEL) == Some(&hash);
            let alive = matches!(
                current.state,
                ContainerState::Running | ContainerState::Restarting
            );
            if same && alive {
                return Ok(current);
            }
            if current.labels.get(MANAGED_LABEL).map(String::as_str) != Some("true") {
                return Err(ContainerError::InvalidSpec(format!(
                    "a container named {} exists and is not Hood's",
                    spec.name
                )));
            }
            tracing::info!(container = %spec.name, same_spec = same, "replacing a container");
            self.remove(&spec.name).await?;
        }
        self.docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(spec.name.clone()),
                    ..Default::default()
                }),
                spec.body(),
            )
            .await
            .map_err(engine("creating a container"))?;
        if let Err(e) = self
            .docker
            .start_container(
                &spec.name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            // Nothing half-made is left behind.
            let _ = self.remove(&spec.name).await;
            return Err(engine("starting a container")(e));
        }
        self.state(&spec.name)
            .await?
            .ok_or_else(|| ContainerError::Engine {
                action: "starting a container",
                reason: "it was gone right after it started".into(),
            })
    }

    /// Stops `name` (SIGTERM, then SIGKILL after `grace`); one that is not
    /// there is stopped.
    pub async fn stop(&self, name: &str, grace: Duration) -> Result<(), ContainerError> {
        let options = StopContainerOptions {
            t: Some(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX)),
            signal: None,
        };
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(engine("stopping a container")(e)),
        }
    }

    /// Removes `name`, running or not; one that is not there is removed.
    pub async fn remove(&self, name: &str) -> Result<(), ContainerError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(engine("removing a container")(e)),
        }
    }

    /// `name`'s state, or `None` when there is no such container.
    pub async fn state(&self, name: &str) -> Result<Option<ContainerStatus>, ContainerError> {
        let inspected = patiently(|| {
            self.docker.inspect_container(
                name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
        })
        .await;
        let c = match inspected {
            Ok(c) => c,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(engine("inspecting a container")(e)),
        };
        use bollard::models::ContainerStateStatusEnum as S;
        let st = c.state.unwrap_or_default();
        let state = match st.status {
            Some(S::RUNNING) => ContainerState::Running,
            Some(S::RESTARTING) => ContainerState::Restarting,
            Some(S::PAUSED) => ContainerState::Paused,
            Some(S::CREATED) => ContainerState::Created,
            Some(S::EXITED) => ContainerState::Exited {
                code: st.exit_code.unwrap_or_default(),
            },
            _ => ContainerState::Gone,
        };
        Ok(Some(ContainerStatus {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            pid: st
                .pid
                .filter(|p| *p > 0)
                .and_then(|p| u32::try_from(p).ok()),
            restarts: c
                .restart_count
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or_default(),
            labels: c
                .config
                .and_then(|cfg| cfg.labels)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            state,
        }))
    }

    /// Hood's containers (running or not), by name.
    pub async fn managed(&self) -> Result<BTreeMap<String, ContainerStatus>, ContainerError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![format!("{MANAGED_LABEL}=true")],
            )])),
            ..Default::default()
        };
        let listed = patiently(|| self.docker.list_containers(Some(options.clone())))
            .await
            .map_err(engine("listing containers"))?;
        let mut out = BTreeMap::new();
        for summary in listed {
            let Some(name) = summary
                .names
                .unwrap_or_default()
                .into_iter()
                .next()
                .map(|n| n.trim_start_matches('/').to_owned())
            else {
                continue;
            };
            // One gone between the listing and now is simply not there.
            if let Some(status) = self.state(&name).await? {
                out.insert(name, status);
            }
        }
        Ok(out)
    }

    /// The last `tail` lines `name` wrote, stdout and stderr apart.
    pub async fn logs(&self, name: &str, tail: usize) -> Result<Vec<LogLine>, ContainerError> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.to_string(),
            ..Default::default()
        };
        let chunks: Vec<LogOutput> = self
            .docker
            .logs(name, Some(options))
            .try_collect()
            .await
            .map_err(engine("reading a container's logs"))?;
        let mut lines = Vec::new();
        for chunk in chunks {
            let (text, err) = match chunk {
                LogOutput::StdErr { message } => (message, true),
                LogOutput::StdOut { message } | LogOutput::Console { message } => (message, false),
                LogOutput::StdIn { .. } => continue,
            };
            for line in String::from_utf8_lossy(&text).lines() {
                let line = line.to_owned();
                lines.push(if err {
                    LogLine::Stderr(line)
                } else {
                    LogLine::Stdout(line)
                });
            }
        }
        let skip = lines.len().saturating_sub(tail);
        Ok(lines.split_off(skip))
    }

    /// Runs `command` in `name` to its end.
    pub async fn exec(&self, name: &str, command: &[&str]) -> Result<ExecOutput, ContainerError> {
        let created = self
            .docker
            .create_exec(
                name,
                ExecConfig {
                    cmd: Some(command.iter().map(|s| (*s).to_owned()).collect()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(engine("creating an exec"))?;
        let started = self
            .docker
            .start_exec(&created.id, None::<StartExecOptions>)
            .await
            .map_err(engine("starting an exec"))?;
        let (mut stdout, mut stderr) = (String::new(), String::new());
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(engine("reading an exec's output"))? {
                    LogOutput::StdErr { message } => {
                        stderr.push_str(&String::from_utf8_lossy(&message));
                    }
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        stdout.push_str(&String::from_utf8_lossy(&message));
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
        }
        Ok(ExecOutput {
            code: self.exec_exit_code(&created.id).await?,
            stdout,
            stderr,
        })
    }

    /// Starts `command` in `name` on a terminal of `cols`×`rows`, with
    /// `env` added to the container's.
    pub async fn exec_interactive(
        &self,
        name: &str,
        command: &[String],
        env: &BTreeMap<String, String>,
        cols: u16,
        rows: u16,
    ) -> Result<InteractiveExec, ContainerError> {
        let created = self
            .docker
            .create_exec(
                name,
                ExecConfig {
                    cmd: Some(command.to_vec()),
                    env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(true),
                    console_size: Some(vec![usize::from(rows), usize::from(cols)]),
                    ..Default::default()
                },
            )
            .await
            .map_err(engine("creating a terminal exec"))?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: true,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(engine("starting a terminal exec"))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(ContainerError::Engine {
                action: "starting a terminal exec",
                reason: "the engine detached it".into(),
            });
        };
        // Podman 4 ignores the size given at create: set once it runs.
        let _ = self.resize_exec(&created.id, cols, rows).await;
        let output = output.map(|chunk| {
            chunk
                .map(|c| c.into_bytes().to_vec())
                .map_err(engine("reading a terminal's output"))
        });
        Ok(InteractiveExec {
            id: created.id,
            output: Box::pin(output),
            input,
        })
    }

    /// Resizes an exec's terminal.
    pub async fn resize_exec(&self, id: &str, cols: u16, rows: u16) -> Result<(), ContainerError> {
        self.docker
            .resize_exec(
                id,
                ResizeExecOptions {
                    h: i32::from(rows),
                    w: i32::from(cols),
                },
            )
            .await
            .map_err(engine("resizing a terminal"))
    }

    /// An exec's exit code once it ended (`None` while it runs).
    /// The process id, in the engine's PID namespace, of an exec that is
    /// still running; `None` once it ended (or when the engine does not
    /// say).
    pub async fn exec_pid(&self, id: &str) -> Result<Option<i64>, ContainerError> {
        let inspected = self
            .docker
            .inspect_exec(id)
            .await
            .map_err(engine("inspecting an exec"))?;
        Ok(inspected
            .pid
            .filter(|p| *p > 0 && inspected.running == Some(true)))
    }

    pub async fn exec_exit_code(&self, id: &str) -> Result<Option<i64>, ContainerError> {
        let inspected = self
            .docker
            .inspect_exec(id)
            .await
            .map_err(engine("inspecting an exec"))?;
        if inspected.running == Some(true) {
            return Ok(None);
        }
        Ok(inspected.exit_code)
    }
}

/// `repo[:tag]` → (repo, tag), `latest` by default; a registry's port is
/// not a tag.
fn split_reference(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

async fn read(path: &Path) -> Result<Vec<u8>, ContainerError> {
    tokio::fs::read(path).await.map_err(|e| ContainerError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "alloc-1".into(),
            image: "hood/test:1".into(),
            command: vec!["sleep".into(), "infinity".into()],
            env: BTreeMap::from([("A".into(), "1".into())]),
            hostname: Some("alloc-1".into()),
            cores: vec![0, 1],
            memory_mib: 256,
            ports: BTreeMap::from([(8000, 41000)]),
            publish_ip: IpAddr::from([127, 0, 0, 1]),
            restart: RestartMode::Never,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(split_reference("hood/app:1"), ("hood/app", "1"));
        assert_eq!(split_reference("hood/app"), ("hood/app", "latest"));
        assert_eq!(
            split_reference("registry:5000/app"),
            ("registry:5000/app", "latest")
        );
        assert_eq!(
            split_reference("registry:5000/app:2"),
            ("registry:5000/app", "2")
        );
    }

    #[test]
    fn the_hash_follows_every_field_that_makes_the_container() {
        let base = spec();
        assert_eq!(base.hash(), spec().hash());
        let mut other = spec();
        other.env.insert("B".into(), "2".into());
        assert_ne!(base.hash(), other.hash());
        let mut other = spec();
        other.ports.insert(8001, 41001);
        assert_ne!(base.hash(), other.hash());
        let mut other = spec();
        other.restart = RestartMode::OnFailure;
        assert_ne!(base.hash(), other.hash());
    }

    #[test]
    fn limits_and_labels_reach_the_engines_body() {
        let body = spec().body();
        let host = body.host_config.unwrap();
        assert_eq!(host.cpuset_cpus.as_deref(), Some("0,1"));
        assert_eq!(host.nano_cpus, Some(2_000_000_000));
        assert_eq!(host.memory, Some(256 * 1024 * 1024));
        assert_eq!(host.memory_swap, host.memory);
        let binding = &host.port_bindings.unwrap()["8000/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_port.as_deref(), Some("41000"));
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        let labels = body.labels.unwrap();
        assert_eq!(labels[MANAGED_LABEL], "true");
        assert_eq!(labels[SPEC_HASH_LABEL], spec().hash());
        assert_eq!(body.env.unwrap(), vec!["A=1".to_owned()]);
    }

    #[test]
    fn bad_specs_are_refused_before_the_engine_sees_them() {
        let cases: [fn(&mut ContainerSpec); 8] = [
            |s| s.name = "../x".into(),
            |s| s.name = String::new(),
            |s| s.image = "a b".into(),
            |s| s.cores.clear(),
            |s| s.memory_mib = 1,
            |s| {
                s.env.insert("A=B".into(), "x".into());
            },
            |s| s.command.push("a\0b".into()),
            |s| {
                s.ports.insert(0, 1);
            },
        ];
        for (i, break_it) in cases.iter().enumerate() {
            let mut s = spec();
            break_it(&mut s);
            assert!(
                matches!(s.validate(), Err(ContainerError::InvalidSpec(_))),
                "case {i}"
            );
        }
        assert!(spec().validate().is_ok());
    }
}
