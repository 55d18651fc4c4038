//! Allocations that name an image run as containers on the host's engine
//! (Docker, or Podman's compatible service) instead of a bare sandbox: the
//! same cores and memory, the same lifecycle (start is idempotent, a
//! lease that runs out stops it, release removes it), the same reports
//! (its state goes out with every heartbeat, its logs through the same
//! command).
//!
//! The container is named after the allocation's workload id and labelled
//! [`ALLOCATION_LABEL`]; published ports are chosen on the host's address
//! once and kept beside the workloads (`{workload}.ports.json`), so a
//! redelivered start keeps them.

use hood_agent::CommandError;
use hood_containers::{
    ContainerEngine, ContainerError, ContainerSpec, ContainerState, ContainerStatus, RestartMode,
};
use hood_domain::workload::{AllocationTask, ContainerRestart, ContainerTask, StartedAllocation};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Names the allocation a container runs.
pub const ALLOCATION_LABEL: &str = "io.hood.allocation";
/// SIGTERM, then SIGKILL after this.
const STOP_GRACE: Duration = Duration::from_secs(10);

fn err(context: &str, e: impl std::fmt::Display) -> CommandError {
    CommandError(format!("{context}: {e}"))
}

/// A container as a heartbeat reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerReport {
    pub workload_id: String,
    /// `starting`, `running`, `restarting`, `stopped` or `failed`: the
    /// states the control plane reads from every runtime.
    pub state: &'static str,
    pub pid: Option<u32>,
    pub restarts: u32,
}

/// The host's engine, for allocations.
pub struct ContainerAllocations {
    engine: ContainerEngine,
    dir: PathBuf,
    advertise: IpAddr,
}

impl ContainerAllocations {
    /// Connects to the engine at `socket`; ports are kept under `dir`.
    pub async fn connect(
        socket: &Path,
        dir: impl Into<PathBuf>,
        advertise: IpAddr,
    ) -> Result<Self, ContainerError> {
        let engine = ContainerEngine::connect(socket).await?;
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| ContainerError::Io {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            engine,
            dir,
            advertise,
        })
    }

    /// The engine (a terminal's exec goes straight to it).
    pub fn engine(&self) -> &ContainerEngine {
        &self.engine
    }

    fn ports_path(&self, workload: &str) -> PathBuf {
        self.dir.join(format!("{workload}.ports.json"))
    }

    /// The ports kept for `workload`, when they cover exactly `wanted`;
    /// else new ones, kept.
    fn ports(&self, workload: &str, wanted: &[u16]) -> Result<BTreeMap<u16, u16>, CommandError> {
        let path = self.ports_path(workload);
        // An unreadable file is as good as none: new ports are chosen.
        let kept: Option<BTreeMap<u16, u16>> = hood_files::read_json(&path).ok().flatten();
        let mut wanted: Vec<u16> = wanted.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        if let Some(kept) = kept {
            if kept.keys().copied().eq(wanted.iter().copied()) {
                return Ok(kept);
            }
        }
        let chosen = crate::allocate_ports(self.advertise, &wanted)?;
        hood_files::write_json_private(&path, &chosen).map_err(|e| err("keeping the ports", e))?;
        Ok(chosen)
    }

    /// Whether the engine lacks `container`'s image.
    pub async fn missing_image(&self, container: &ContainerTask) -> Result<bool, CommandError> {
        Ok(!self
            .engine
            .has_image(&container.image)
            .await
            .map_err(|e| err("looking for the image", e))?)
    }

    /// Loads `container`'s image from its archive at `archive` (fetched
    /// from the artifact store); the archive must hold it.
    pub async fn load_image(
        &self,
        container: &ContainerTask,
        archive: &Path,
    ) -> Result<(), CommandError> {
        let loaded = self
            .engine
            .load_archive(archive)
            .await
            .map_err(|e| err("loading the image archive", e))?;
        if self.missing_image(container).await? {
            return Err(CommandError(format!(
                "the archive does not hold image {} (the engine loaded: {})",
                container.image,
                loaded.join("; ")
            )));
        }
        tracing::info!(image = %container.image, "image loaded from its archive");
        Ok(())
    }

    /// Runs the allocation's container (idempotent); its image must be on
    /// the host.
    pub async fn start(
        &self,
        task: &AllocationTask,
        container: &ContainerTask,
    ) -> Result<StartedAllocation, CommandError> {
        // Without them the container would run without the GPUs that are
        // paid for: refused, so the allocation fails and frees its place.
        if !task.gpus.is_empty() || !task.mig.is_empty() {
            return Err(CommandError(
                "GPUs cannot be given to a container yet (this agent sets up no CDI devices)"
                    .into(),
            ));
        }
        if self.missing_image(container).await? {
            return Err(CommandError(format!(
                "image {} is not on this host and no archive was given to load it from",
                container.image
            )));
        }
        let workload = task.workload_id();
        let ports = self.ports(&workload, &container.ports)?;
        let mut env = container.env.clone();
        env.insert("HOOD_ALLOCATION_ID".into(), task.allocation_id.to_string());
        let spec = ContainerSpec {
            name: workload.clone(),
            image: container.image.clone(),
            command: task.command.clone(),
            env,
            hostname: Some(task.hostname()),
            cores: task.cores.clone(),
            memory_mib: task.memory_mib,
            ports: ports.clone(),
            publish_ip: self.advertise,
            restart: match container.restart {
                ContainerRestart::Never => RestartMode::Never,
                ContainerRestart::OnFailure => RestartMode::OnFailure,
                ContainerRestart::UnlessStopped => RestartMode::UnlessStopped,
            },
            labels: BTreeMap::from([(ALLOCATION_LABEL.to_owned(), task.allocation_id.to_string())]),
        };
        let status = self
            .engine
            .run(&spec)
            .await
            .map_err(|e| err("running the container", e))?;
        tracing::info!(allocation = %task.allocation_id, image = %container.image,
            cores = ?task.cores, ports = ?ports, "allocation container started");
        Ok(StartedAllocation {
            workload_id: workload,
            pid: status.pid,
            hostname: task.hostname(),
            memory_limited: true,
            ports,
        })
    }

    /// Whether `workload` has a container here.
    pub async fn has(&self, workload: &str) -> Result<bool, CommandError> {
        Ok(self
            .engine
            .state(workload)
            .await
            .map_err(|e| err("inspecting the container", e))?
            .is_some())
    }

    /// Stops `workload`'s container, keeping it (and its logs).
    pub async fn stop(&self, workload: &str) -> Result<(), CommandError> {
        self.engine
            .stop(workload, STOP_GRACE)
            .await
            .map_err(|e| err("stopping the container", e))
    }

    /// Removes `workload`'s container and forgets its ports.
    pub async fn remove(&self, workload: &str) -> Result<(), CommandError> {
        self.engine
            .remove(workload)
            .await
            .map_err(|e| err("removing the container", e))?;
        let path = self.ports_path(workload);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "could not forget a container's ports");
            }
        }
        Ok(())
    }

    /// Every allocation container on the engine.
    pub async fn reports(&self) -> Result<Vec<ContainerReport>, CommandError> {
        let managed = self
            .engine
            .managed()
            .await
            .map_err(|e| err("listing containers", e))?;
        Ok(managed
            .into_values()
            .filter(|c| c.labels.contains_key(ALLOCATION_LABEL))
            .map(report)
            .collect())
    }

    /// The last `lines` lines the container wrote (stdout and stderr).
    pub async fn tail_logs(
        &self,
        workload: &str,
        lines: usize,
    ) -> Result<Vec<String>, CommandError> {
        Ok(self
            .engine
            .logs(workload, lines)
            .await
            .map_err(|e| err("reading the container's logs", e))?
            .into_iter()
            .map(|l| l.text().to_owned())
            .collect())
    }
}

fn report(c: ContainerStatus) -> ContainerReport {
    let state = match c.state {
        ContainerState::Created => "starting",
        ContainerState::Running | ContainerState::Paused => "running",
        ContainerState::Restarting => "restarting",
        ContainerState::Exited { code: 0 } | ContainerState::Gone => "stopped",
        ContainerState::Exited { .. } => "failed",
    };
    ContainerReport {
        workload_id: c.name,
        state,
        pid: c.pid.filter(|_| state == "running"),
        restarts: c.restarts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: ContainerState) -> ContainerStatus {
        ContainerStatus {
            id: "x".into(),
            name: "alloc-1".into(),
            state,
            pid: Some(7),
            restarts: 2,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn engine_states_read_as_the_runtimes_do() {
        let cases = [
            (ContainerState::Running, "running", Some(7)),
            (ContainerState::Created, "starting", None),
            (ContainerState::Restarting, "restarting", None),
            (ContainerState::Exited { code: 0 }, "stopped", None),
            (ContainerState::Exited { code: 137 }, "failed", None),
            (ContainerState::Gone, "stopped", None),
        ];
        for (state, expected, pid) in cases {
            let r = report(status(state.clone()));
            assert_eq!(r.state, expected, "{state:?}");
            assert_eq!(r.pid, pid, "{state:?}");
            assert_eq!(r.restarts, 2);
        }
    }
}
