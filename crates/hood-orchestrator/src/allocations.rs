//! The allocation provisioning worker (seed 004's flow): moves allocations
//! through their machine by talking to their host's agent.
//!
//! * `requested` → `provisioning` first (so a release racing with it goes
//!   through `releasing` and the agent is told to clean up), then the
//!   sandbox is asked for with `start_allocation`;
//! * `provisioning` → `active` when the agent's result (bound to the host
//!   by its mTLS identity) says it runs, or `failed` when it could not;
//! * `releasing` → `released` once `stop_allocation` succeeded;
//! * an allocation whose maximum duration ran out is released (audited as
//!   `allocation.expire`);
//! * an active allocation whose sandbox ended on its own (its host's
//!   workload report says `stopped` or `failed`) is released with the
//!   reason kept on the record (audited as `allocation.exit`), so its
//!   placement is free again and nothing bills for a sandbox that is gone.
//!
//! Every sandbox runs under a lease (granted with `start_allocation`,
//! renewed for each host's provisioning and active allocations every third
//! of its length): a host cut off from the control plane stops its
//! sandboxes when their leases run out.
//!
//! Tasks are signed with the installation's task key (derived from the
//! master key): the agent runs them only when the signature verifies
//! against the key it pinned at enrollment and the task names its host.
//!
//! Every pass reads the queue from the store and every agent command has an
//! idempotency key derived from the allocation, so a crash, a restart or a
//! second orchestrator replica repeats nothing: the transitions are
//! compare-and-set and a command enqueued twice is one command.

use hood_domain::agent::WorkloadReport;
use hood_domain::allocation::Allocation;
use hood_domain::audit::AuditContext;
use hood_domain::lifecycle::AllocationState;
use hood_domain::workload::{
    allocation_workload_id, kinds, AllocationLease, AllocationLeases, AllocationRef,
    AllocationTask, StartedAllocation,
};
use hood_domain::{HostId, Timestamp};
use hood_gateway::{CommandOutcome, Fleet, GatewayError};
use hood_identity::tasks::TaskSigner;
use hood_store::allocation::AllocationStore;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long an agent command for an allocation may wait for its agent.
const COMMAND_TTL: Duration = Duration::from_secs(600);
const BATCH: i64 = 200;
/// How many times a release asks the agent to stop a sandbox.
const STOP_ATTEMPTS: u32 = 10;
/// Active allocations checked for an ended sandbox per sweep.
const REAP_BATCH: i64 = 1_000;
/// Sweeps for ended sandboxes every this many passes (they read every
/// active allocation's host reports, so not every half second).
const REAP_EVERY: u64 = 4;

/// The worker; cheap to clone.
#[derive(Clone)]
pub struct AllocationWorker {
    store: Arc<dyn AllocationStore>,
    fleet: Fleet,
    signer: TaskSigner,
    interval: Duration,
    lease: Duration,
}

/// How long a sandbox runs without renewal by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(180);

/// A running worker: stop it with [`AllocationWorkerHandle::shutdown`].
pub struct AllocationWorkerHandle {
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl AllocationWorkerHandle {
    /// Stops after the current pass.
    pub async fn shutdown(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

fn audit() -> AuditContext {
    AuditContext::system("orchestrator")
}

impl AllocationWorker {
    pub fn new(store: Arc<dyn AllocationStore>, fleet: Fleet, signer: TaskSigner) -> Self {
        Self {
            store,
            fleet,
            signer,
            interval: Duration::from_millis(500),
            lease: DEFAULT_LEASE,
        }
    }

    /// How long a sandbox may run without word from the control plane
    /// (renewed every third of it).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_secs(1));
        self
    }

    fn lease_until(&self) -> i64 {
        hood_clock::now().millis() + i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 2)
    }

    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Runs passes until shut down.
    pub fn spawn(self) -> AllocationWorkerHandle {
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut renewed_at: Option<tokio::time::Instant> = None;
            for n in 0u64.. {
                if renewed_at.is_none_or(|at| at.elapsed() >= self.lease / 3) {
                    renewed_at = Some(tokio::time::Instant::now());
                    if let Err(e) = self.renew_leases().await {
                        tracing::warn!(error = %e, "renewing allocation leases failed; retrying");
                    }
                }
                if let Err(e) = self.pass().await {
                    tracing::warn!(error = %e, "allocation pass failed; retrying");
                }
                if n % REAP_EVERY == 0 {
                    if let Err(e) = self.reap_exited().await {
                        tracing::warn!(error = %e, "sweep for ended sandboxes failed; retrying");
                    }
                }
                tokio::select! {
                    () = stopped.notified() => return,
                    () = tokio::time::sleep(self.interval) => {}
                }
            }
        });
        AllocationWorkerHandle { stop, task }
    }

    /// One pass over the queue; returns how many allocations moved.
    pub async fn pass(&self) -> Result<usize, GatewayError> {
        let mut moved = 0;
        // Maximum durations that ran out: released like the owner would.
        for a in self
            .store
            .expired_allocations(hood_clock::now(), BATCH)
            .await?
        {
            if let Some(path) = a.state.release_path() {
                if self.transition(&a, path, "allocation.expire", None).await? {
                    tracing::info!(allocation = %a.id, "maximum duration reached: released");
                    moved += 1;
                }
            }
        }
        let queue = self
            .store
            .allocations_in_states(
                &[
                    AllocationState::Requested,
                    AllocationState::Provisioning,
                    AllocationState::Releasing,
                ],
                BATCH,
            )
            .await?;
        for a in queue {
            let step = match a.state {
                AllocationState::Requested => self.provision(&a).await,
                AllocationState::Provisioning => self.settle_start(&a).await,
                AllocationState::Releasing => self.settle_stop(&a).await,
                _ => Ok(false),
            };
            match step {
                Ok(true) => moved += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(allocation = %a.id, state = a.state.as_str(), error = %e,
                        "allocation step failed; retrying next pass");
                }
            }
        }
        Ok(moved)
    }

    /// Renews the leases of every provisioning and active allocation, one
    /// signed command per host; returns how many hosts were asked. A
    /// renewal nobody delivers expires (a third of the lease) instead of
    /// piling up for a host that is away.
    pub async fn renew_leases(&self) -> Result<usize, GatewayError> {
        let live = self
            .store
            .allocations_in_states(
                &[AllocationState::Provisioning, AllocationState::Active],
                REAP_BATCH,
            )
            .await?;
        let mut by_host: BTreeMap<HostId, Vec<AllocationLease>> = BTreeMap::new();
        let until_ms = self.lease_until();
        for a in &live {
            by_host.entry(a.host_id).or_default().push(AllocationLease {
                allocation_id: a.id,
                until_ms,
            });
        }
        let mut asked = 0;
        for (host, leases) in by_host {
            let payload = self
                .signer
                .sign_valid_for(
                    host,
                    kinds::RENEW_ALLOCATION_LEASES,
                    hood_clock::now(),
                    self.lease / 3,
                    &AllocationLeases { leases },
                )
                .and_then(serde_json::to_value)
                .map_err(|e| GatewayError::Invalid(format!("lease renewal: {e}")))?;
            match self
                .fleet
                .enqueue_command(
                    host,
                    kinds::RENEW_ALLOCATION_LEASES,
                    payload,
                    None,
                    (self.lease / 3).max(Duration::from_secs(1)),
                )
                .await
            {
                Ok(_) => asked += 1,
                // A host that is gone runs nothing to renew.
                Err(GatewayError::HostState { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(asked)
    }

    /// Releases active allocations whose sandbox ended on its own, as its
    /// host last reported; returns how many. A host that reports nothing
    /// about a sandbox (not connected yet, say) proves nothing: only an
    /// explicit `stopped` or `failed` counts.
    pub async fn reap_exited(&self) -> Result<usize, GatewayError> {
        let active = self
            .store
            .allocations_in_states(&[AllocationState::Active], REAP_BATCH)
            .await?;
        let mut by_host: BTreeMap<HostId, Vec<Allocation>> = BTreeMap::new();
        for a in active {
            by_host.entry(a.host_id).or_default().push(a);
        }
        let mut reaped = 0;
        let now = hood_clock::now();
        for (host, allocations) in by_host {
            let reports: HashMap<String, WorkloadReport> = self
                .fleet
                .store()
                .list_host_workloads(host)
                .await?
                .into_iter()
                .map(|r| (r.workload_id.clone(), r))
                .collect();
            for a in allocations {
                let Some(report) = reports.get(&allocation_workload_id(a.id)) else {
                    continue;
                };
                let state = &report.state;
                if state != "stopped" && state != "failed" {
                    if self.idled_out(&a, report, now).await? {
                        reaped += 1;
                    }
                    continue;
                }
                let why = format!("the sandbox's command ended on its own ({state})");
                let Some(path) = a.state.release_path() else {
                    continue;
                };
                if self
                    .transition(&a, path, "allocation.exit", Some(&why))
                    .await?
                {
                    tracing::info!(allocation = %a.id, host = %host, state = %state,
                        "the sandbox ended on its own: released");
                    reaped += 1;
                }
            }
        }
        Ok(reaped)
    }

    /// Applies the allocation's idle policy to its host's latest report:
    /// released (audited as `allocation.idle`) once it has been under its
    /// utilization floor for the policy's minutes. Since when it has been
    /// is kept on the allocation's row (written only when it changes), so
    /// neither a restart nor another replica starts the idle time again.
    async fn idled_out(
        &self,
        a: &Allocation,
        report: &WorkloadReport,
        now: Timestamp,
    ) -> Result<bool, GatewayError> {
        let Some(policy) = a.spec.idle else {
            return Ok(false);
        };
        let used = report.observation["cpu_cores_used"].as_f64();
        let since = policy.under_floor_since(a.idle_since, used, a.reservation.cores.len(), now);
        if since != a.idle_since {
            self.store.set_allocation_idle_since(a.id, since).await?;
        }
        if !policy.ran_out(since, now) {
            return Ok(false);
        }
        let Some(path) = a.state.release_path() else {
            return Ok(false);
        };
        let why = format!(
            "idle: under {}% CPU for {} minute(s)",
            policy.utilization_floor_percent, policy.minutes
        );
        let moved = self
            .transition(a, path, "allocation.idle", Some(&why))
            .await?;
        if moved {
            tracing::info!(allocation = %a.id, "idle policy ran out: released");
        }
        Ok(moved)
    }

    async fn transition(
        &self,
        a: &Allocation,
        path: &[AllocationState],
        action: &str,
        error: Option<&str>,
    ) -> Result<bool, GatewayError> {
        let moved = self
            .store
            .transition_allocation(a.id, path, hood_clock::now(), action, error, &audit())
            .await?;
        if let Some(m) = &moved {
            tracing::info!(allocation = %a.id, host = %a.host_id, state = m.state.as_str(),
                "allocation moved");
        }
        Ok(moved.is_some())
    }

    /// `task` signed for `kind` on the allocation's host, valid as long as
    /// the command may wait (plus the agent clock's margin).
    fn signed<T: serde::Serialize>(
        &self,
        a: &Allocation,
        kind: &str,
        task: &T,
    ) -> Result<serde_json::Value, GatewayError> {
        self.signer
            .sign_valid_for(a.host_id, kind, hood_clock::now(), COMMAND_TTL, task)
            .and_then(serde_json::to_value)
            .map_err(|e| GatewayError::Invalid(format!("{kind} task: {e}")))
    }

    async fn provision(&self, a: &Allocation) -> Result<bool, GatewayError> {
        // Claim it first: a release from now on goes through `releasing`.
        if !self
            .transition(
                a,
                &[AllocationState::Requested, AllocationState::Provisioning],
                "allocation.provision",
                None,
            )
            .await?
        {
            return Ok(false);
        }
        self.settle_start(a).await?;
        Ok(true)
    }

    /// (Re-)asks for the sandbox and acts on the agent's answer, if any.
    async fn settle_start(&self, a: &Allocation) -> Result<bool, GatewayError> {
        let task =
            AllocationTask {
                allocation_id: a.id,
                cores: a.reservation.cores.clone(),
                memory_mib: a.reservation.memory_mib,
                gpus: a
                    .reservation
                    .gpus
                    .iter()
                    .filter_map(|g| match g {
                        hood_domain::placement::GpuClaim::Whole { gpu } => Some(*gpu),
                        hood_domain::placement::GpuClaim::Mig { .. } => None,
                    })
                    .collect(),
                mig: a
                    .reservation
                    .gpus
                    .iter()
                    .filter_map(|g| match g {
                        hood_domain::placement::GpuClaim::Mig {
                            gpu,
                            profile,
                            start,
                        } => Some(hood_domain::workload::MigSlice {
                            gpu: *gpu,
                            profile: profile.clone(),
                            start: *start,
                        }),
                        hood_domain::placement::GpuClaim::Whole { .. } => None,
                    })
                    .collect(),
                command: a.spec.command.clone(),
                lease_until_ms: Some(self.lease_until()),
                // An image runs as a container on the host's engine.
                container: a.spec.image.as_ref().map(|image| {
                    hood_domain::workload::ContainerTask {
                        image: image.clone(),
                        archive: None,
                        env: a.spec.env.clone(),
                        ports: a.spec.ports.clone(),
                        restart: a.spec.restart,
                    }
                }),
            };
        let payload = self.signed(a, kinds::START_ALLOCATION, &task)?;
        let command = match self
            .fleet
            .enqueue_command(
                a.host_id,
                kinds::START_ALLOCATION,
                payload,
                Some(&format!("alloc-start-{}", a.id)),
                COMMAND_TTL,
            )
            .await
        {
            Ok(id) => id,
            // The host is gone: nothing can run there.
            Err(GatewayError::HostState { state, .. }) => {
                tracing::warn!(allocation = %a.id, host = %a.host_id, host_state = %state,
                    "the allocation's host is gone");
                return self
                    .transition(
                        a,
                        &[AllocationState::Provisioning, AllocationState::Failed],
                        "allocation.fail",
                        Some("the allocation's host is gone"),
                    )
                    .await;
            }
            Err(e) => return Err(e),
        };
        match self.fleet.wait_command(command, Duration::ZERO).await? {
            CommandOutcome::Succeeded(output) => {
                // Where its published ports are: the ingress's way in.
                let ports = serde_json::from_value::<StartedAllocation>(output)
                    .map(|s| s.ports)
                    .unwrap_or_default();
                if !ports.is_empty() {
                    self.store.set_allocation_ports(a.id, &ports).await?;
                }
                self.transition(
                    a,
                    &[AllocationState::Provisioning, AllocationState::Active],
                    "allocation.activate",
                    None,
                )
                .await
            }
            CommandOutcome::Failed(why) => self.fail(a, &why).await,
            CommandOutcome::Expired { .. } => {
                self.fail(a, "the host's agent did not answer in time")
                    .await
            }
            CommandOutcome::Pending(_) => Ok(false),
        }
    }

    /// The sandbox could not start: `failed` (its reservation is free), and
    /// the agent is told to clean up whatever it set up.
    async fn fail(&self, a: &Allocation, why: &str) -> Result<bool, GatewayError> {
        tracing::warn!(allocation = %a.id, host = %a.host_id, why, "the sandbox did not start");
        let moved = self
            .transition(
                a,
                &[AllocationState::Provisioning, AllocationState::Failed],
                "allocation.fail",
                Some(why),
            )
            .await?;
        if moved {
            self.enqueue_stop(a, 0).await?;
        }
        Ok(moved)
    }

    async fn enqueue_stop(
        &self,
        a: &Allocation,
        attempt: u32,
    ) -> Result<hood_domain::CommandId, GatewayError> {
        let payload = self.signed(
            a,
            kinds::STOP_ALLOCATION,
            &AllocationRef {
                allocation_id: a.id,
            },
        )?;
        self.fleet
            .enqueue_command(
                a.host_id,
                kinds::STOP_ALLOCATION,
                payload,
                Some(&match attempt {
                    0 => format!("alloc-stop-{}", a.id),
                    n => format!("alloc-stop-{}-{n}", a.id),
                }),
                COMMAND_TTL,
            )
            .await
    }

    /// (Re-)asks the agent to stop the sandbox; `released` once it has.
    async fn settle_stop(&self, a: &Allocation) -> Result<bool, GatewayError> {
        let released = [AllocationState::Releasing, AllocationState::Released];
        // Each attempt has its own key: a stop that failed or expired is
        // asked again with the next, up to STOP_ATTEMPTS.
        for attempt in 0..STOP_ATTEMPTS {
            let command = match self.enqueue_stop(a, attempt).await {
                Ok(id) => id,
                // The host is gone, and its sandboxes with it.
                Err(GatewayError::HostState { .. }) => {
                    return self
                        .transition(a, &released, "allocation.released", None)
                        .await;
                }
                Err(e) => return Err(e),
            };
            match self.fleet.wait_command(command, Duration::ZERO).await? {
                CommandOutcome::Succeeded(_) => {
                    return self
                        .transition(a, &released, "allocation.released", None)
                        .await;
                }
                CommandOutcome::Pending(_) => return Ok(false),
                CommandOutcome::Failed(why) => {
                    tracing::warn!(allocation = %a.id, host = %a.host_id, attempt, why,
                        "the agent could not stop the sandbox; asking again");
                }
                CommandOutcome::Expired { .. } => {
                    tracing::warn!(allocation = %a.id, host = %a.host_id, attempt,
                        "the agent did not stop the sandbox in time; asking again");
                }
            }
        }
        tracing::error!(allocation = %a.id, host = %a.host_id,
            "every attempt to stop the sandbox failed; the allocation stays releasing \
             (its lease still stops the sandbox on the host)");
        Ok(false)
    }
}
