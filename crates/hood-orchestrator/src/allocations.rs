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
//!   `allocation.expire`).
//!
//! Every pass reads the queue from the store and every agent command has an
//! idempotency key derived from the allocation, so a crash, a restart or a
//! second orchestrator replica repeats nothing: the transitions are
//! compare-and-set and a command enqueued twice is one command.

use hood_domain::allocation::Allocation;
use hood_domain::audit::AuditContext;
use hood_domain::lifecycle::AllocationState;
use hood_domain::workload::{kinds, AllocationRef, AllocationTask};
use hood_gateway::{CommandOutcome, Fleet, GatewayError};
use hood_store::allocation::AllocationStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long an agent command for an allocation may wait for its agent.
const COMMAND_TTL: Duration = Duration::from_secs(600);
const BATCH: i64 = 200;

/// The worker; cheap to clone.
#[derive(Clone)]
pub struct AllocationWorker {
    store: Arc<dyn AllocationStore>,
    fleet: Fleet,
    interval: Duration,
}

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
    pub fn new(store: Arc<dyn AllocationStore>, fleet: Fleet) -> Self {
        Self {
            store,
            fleet,
            interval: Duration::from_millis(500),
        }
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
            loop {
                if let Err(e) = self.pass().await {
                    tracing::warn!(error = %e, "allocation pass failed; retrying");
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
                if self.transition(&a, path, "allocation.expire").await? {
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

    async fn transition(
        &self,
        a: &Allocation,
        path: &[AllocationState],
        action: &str,
    ) -> Result<bool, GatewayError> {
        let moved = self
            .store
            .transition_allocation(a.id, path, hood_clock::now(), action, &audit())
            .await?;
        if let Some(m) = &moved {
            tracing::info!(allocation = %a.id, host = %a.host_id, state = m.state.as_str(),
                "allocation moved");
        }
        Ok(moved.is_some())
    }

    async fn provision(&self, a: &Allocation) -> Result<bool, GatewayError> {
        // Claim it first: a release from now on goes through `releasing`.
        if !self
            .transition(
                a,
                &[AllocationState::Requested, AllocationState::Provisioning],
                "allocation.provision",
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
        let task = AllocationTask {
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
            command: a.spec.command.clone(),
        };
        let payload = serde_json::to_value(&task)
            .map_err(|e| GatewayError::Invalid(format!("allocation task: {e}")))?;
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
                    )
                    .await;
            }
            Err(e) => return Err(e),
        };
        match self.fleet.wait_command(command, Duration::ZERO).await? {
            CommandOutcome::Succeeded(_) => {
                self.transition(
                    a,
                    &[AllocationState::Provisioning, AllocationState::Active],
                    "allocation.activate",
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
            )
            .await?;
        if moved {
            self.enqueue_stop(a).await?;
        }
        Ok(moved)
    }

    async fn enqueue_stop(&self, a: &Allocation) -> Result<hood_domain::CommandId, GatewayError> {
        let payload = serde_json::to_value(AllocationRef {
            allocation_id: a.id,
        })
        .map_err(|e| GatewayError::Invalid(format!("allocation ref: {e}")))?;
        self.fleet
            .enqueue_command(
                a.host_id,
                kinds::STOP_ALLOCATION,
                payload,
                Some(&format!("alloc-stop-{}", a.id)),
                COMMAND_TTL,
            )
            .await
    }

    /// (Re-)asks the agent to stop the sandbox; `released` once it has.
    async fn settle_stop(&self, a: &Allocation) -> Result<bool, GatewayError> {
        let released = [AllocationState::Releasing, AllocationState::Released];
        let command = match self.enqueue_stop(a).await {
            Ok(id) => id,
            // The host is gone, and its sandboxes with it.
            Err(GatewayError::HostState { .. }) => {
                return self.transition(a, &released, "allocation.released").await;
            }
            Err(e) => return Err(e),
        };
        match self.fleet.wait_command(command, Duration::ZERO).await? {
            CommandOutcome::Succeeded(_) => {
                self.transition(a, &released, "allocation.released").await
            }
            CommandOutcome::Failed(why) => {
                tracing::error!(allocation = %a.id, host = %a.host_id, why,
                    "the agent could not stop the sandbox; the allocation stays releasing");
                Ok(false)
            }
            CommandOutcome::Expired { .. } => {
                tracing::error!(allocation = %a.id, host = %a.host_id,
                    "the agent did not stop the sandbox in time; the allocation stays releasing");
                Ok(false)
            }
            CommandOutcome::Pending(_) => Ok(false),
        }
    }
}
