//! One agent session: `Hello` → `Welcome`, then heartbeats, reports and
//! results up, commands down, until either side goes away.

use crate::fleet::SessionSlot;
use crate::now;
use crate::shared::{internal, is_expected, Shared};
use hood_agent_proto::v1::agent_message::Body as Up;
use hood_agent_proto::v1::gateway_message::Body as Down;
use hood_agent_proto::v1::{
    AgentMessage, Command, GatewayMessage, HeartbeatAck, Hello, HostMetrics, ResultAck, Welcome,
    WorkloadStatus,
};
use hood_domain::allocation::CapacitySource;
use hood_domain::host_metrics::{HostCounters, HostSample};
use hood_domain::lifecycle::HostState;
use hood_domain::machine::StateMachine as _;
use hood_domain::placement::{GpuCapacity, HostCapacity};
use hood_domain::{CommandId, HostId, Timestamp};
use hood_pki::PeerIdentity;
use hood_store::fleet::{AgentEventRecord, CommandFinish, Host, WorkloadReport};
use hood_store::StoreError;
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

/// Commands fetched per dispatch round.
const DISPATCH_BATCH: i64 = 64;
/// Each session re-checks its queue this often even when nothing woke it.
const SAFETY_POLL: std::time::Duration = std::time::Duration::from_secs(10);

type Tx = mpsc::Sender<Result<GatewayMessage, Status>>;

/// Why a session loop stopped.
enum End {
    /// The agent closed its stream or the connection dropped.
    Closed,
    /// We end it, telling the agent why (if it is still listening).
    Refuse(Status),
}

impl From<Status> for End {
    fn from(status: Status) -> Self {
        End::Refuse(status)
    }
}

/// Runs a session to its end and cleans up after it.
pub(crate) async fn run_session(
    shared: Arc<Shared>,
    peer: PeerIdentity,
    host: Host,
    inbound: Streaming<AgentMessage>,
    tx: Tx,
) {
    let session_id = uuid::Uuid::now_v7().to_string();
    let host_id = host.id;
    let mut session = Session {
        shared: shared.clone(),
        peer,
        host_id,
        session_id: session_id.clone(),
        tx: tx.clone(),
        slot: None,
    };
    let end = session.run(inbound).await;
    if let End::Refuse(status) = end {
        tracing::info!(host_id = %host_id, session_id, code = ?status.code(), message = status.message(), "ending agent session");
        let _ = tx.send(Err(status)).await;
    } else {
        tracing::info!(host_id = %host_id, session_id, "agent session closed");
    }
    if session.slot.is_some() {
        shared.fleet.unregister_session(host_id, &session_id);
        if let Err(e) = shared
            .fleet
            .store()
            .host_session_ended(host_id, &session_id, now())
            .await
        {
            tracing::warn!(host_id = %host_id, error = %e, "recording session end failed");
        }
    }
}

struct Session {
    shared: Arc<Shared>,
    peer: PeerIdentity,
    host_id: HostId,
    session_id: String,
    tx: Tx,
    slot: Option<Arc<SessionSlot>>,
}

fn counters(m: &HostMetrics) -> HostCounters {
    HostCounters {
        cpu_busy_ticks: m.cpu_busy_ticks,
        cpu_total_ticks: m.cpu_total_ticks,
        memory_total_bytes: m.memory_total_bytes,
        memory_available_bytes: m.memory_available_bytes,
        disk_total_bytes: m.disk_total_bytes,
        disk_available_bytes: m.disk_available_bytes,
        net_rx_bytes: m.net_rx_bytes,
        net_tx_bytes: m.net_tx_bytes,
    }
}

fn reports(workloads: &[WorkloadStatus], now: Timestamp) -> Vec<WorkloadReport> {
    workloads
        .iter()
        .map(|w| WorkloadReport {
            workload_id: w.workload_id.clone(),
            state: w.state.clone(),
            pid: (w.pid > 0).then_some(i64::from(w.pid)),
            restarts: i64::from(w.restarts),
            observation: parse_json(&w.observation_json),
            updated_at: now,
        })
        .collect()
}

/// Agent-supplied JSON; anything unparsable is kept as a string rather than
/// failing the whole report.
fn parse_json(text: &str) -> serde_json::Value {
    if text.trim().is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

fn store_err(context: &'static str, err: StoreError) -> End {
    End::Refuse(internal(context, err))
}

impl Session {
    async fn run(&mut self, mut inbound: Streaming<AgentMessage>) -> End {
        let hello = match self.await_hello(&mut inbound).await {
            Ok(hello) => hello,
            Err(end) => return end,
        };
        if let Err(end) = self.open(&hello).await {
            return end;
        }
        let Some(slot) = self.slot.clone() else {
            return End::Closed;
        };
        let mut stop = self.shared.stop.clone();
        // A slow safety net: the gateway-wide poller and in-process pokes
        // are what normally wake delivery.
        let mut poll = tokio::time::interval(SAFETY_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        loop {
            let step = tokio::select! {
                message = inbound.message() => match message {
                    Ok(Some(message)) => self.handle(message).await,
                    Ok(None) => Err(End::Closed),
                    Err(status) => {
                        tracing::debug!(host_id = %self.host_id, error = %status, "agent stream failed");
                        Err(End::Closed)
                    }
                },
                () = slot.wake.notified() => self.deliver().await,
                _ = poll.tick() => self.deliver().await,
                () = slot.kicked.notified() => Err(End::Refuse(Status::aborted("session superseded or host revoked"))),
                () = crate::stopped(&mut stop) => Err(End::Refuse(Status::unavailable("gateway shutting down"))),
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    async fn await_hello(&self, inbound: &mut Streaming<AgentMessage>) -> Result<Hello, End> {
        let first = tokio::time::timeout(self.shared.config.hello_timeout, inbound.message()).await;
        match first {
            Err(_) => Err(End::Refuse(Status::deadline_exceeded("expected Hello"))),
            Ok(Err(_)) | Ok(Ok(None)) => Err(End::Closed),
            Ok(Ok(Some(AgentMessage {
                body: Some(Up::Hello(hello)),
            }))) => Ok(hello),
            Ok(Ok(Some(_))) => Err(End::Refuse(Status::failed_precondition(
                "the first message of a session must be Hello",
            ))),
        }
    }

    /// Records the session, re-queues what was dispatched but never
    /// acknowledged (the previous stream died with it), says `Welcome` and
    /// delivers the backlog.
    async fn open(&mut self, hello: &Hello) -> Result<(), End> {
        let store = self.shared.fleet.store().clone();
        let now = now();
        let version: String = hello.agent_version.chars().take(64).collect();
        store
            .host_session_started(self.host_id, &self.session_id, &version, now)
            .await
            .map_err(|e| store_err("record session start", e))?;
        // The agent is back: a host judged unreachable is ready again.
        match store
            .transition_host_from(self.host_id, HostState::Unreachable, HostState::Ready, now)
            .await
        {
            Ok(true) => tracing::info!(host_id = %self.host_id, "host reachable again"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(host_id = %self.host_id, error = %e, "could not mark host ready")
            }
        }
        store
            .record_heartbeat(self.host_id, &reports(&hello.workloads, now), now)
            .await
            .map_err(|e| store_err("record workloads", e))?;
        self.record_inventory(hello, now).await;
        let requeued = store
            .requeue_dispatched_agent_commands(self.host_id, now)
            .await
            .map_err(|e| store_err("requeue commands", e))?;
        self.slot = Some(
            self.shared
                .fleet
                .register_session(self.host_id, &self.session_id),
        );
        tracing::info!(
            host_id = %self.host_id,
            session_id = %self.session_id,
            agent_version = %version,
            requeued,
            "agent session opened"
        );
        let heartbeat_secs = u32::try_from(self.shared.config.heartbeat_interval.as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        self.send(Down::Welcome(Welcome {
            host_id: self.host_id.to_string(),
            heartbeat_interval_secs: heartbeat_secs,
        }))
        .await?;
        self.deliver().await
    }

    /// Stores the capacity the agent measured (never over an operator's
    /// declaration). A bad or failed report is logged, not fatal: the
    /// session matters more than the inventory.
    async fn record_inventory(&self, hello: &Hello, now: Timestamp) {
        let (Some(inv), Some(capacity_store)) =
            (&hello.inventory, self.shared.fleet.capacity_store())
        else {
            return;
        };
        let capacity = HostCapacity {
            cores: inv.cores,
            memory_mib: inv.memory_mib,
            disk_mib: inv.disk_mib,
            gpus: inv
                .gpus
                .iter()
                .map(|g| GpuCapacity {
                    index: g.index,
                    model: g.model.chars().take(128).collect(),
                    memory_mib: g.memory_mib,
                    mig: g.mig,
                })
                .collect(),
        };
        if let Err(why) = capacity.validate() {
            tracing::warn!(host_id = %self.host_id, %why, "agent reported an unusable capacity");
            return;
        }
        match capacity_store
            .set_host_capacity(self.host_id, CapacitySource::Reported, &capacity, now, None)
            .await
        {
            Ok(stored) => tracing::debug!(host_id = %self.host_id, stored, cores = capacity.cores,
                gpus = capacity.gpus.len(), "host capacity reported"),
            Err(e) => {
                tracing::warn!(host_id = %self.host_id, error = %e, "could not record capacity")
            }
        }
    }

    async fn send(&self, body: Down) -> Result<(), End> {
        self.tx
            .send(Ok(GatewayMessage { body: Some(body) }))
            .await
            .map_err(|_| End::Closed)
    }

    /// Sends every queued command, oldest first. A command is marked
    /// `dispatched` before it is written, so if the stream dies in between it
    /// is re-queued at the next session; a concurrent session elsewhere
    /// cannot take the same command (the mark is compare-and-set).
    async fn deliver(&self) -> Result<(), End> {
        let store = self.shared.fleet.store().clone();
        loop {
            let now = now();
            let batch = store
                .agent_commands_to_dispatch(self.host_id, now, DISPATCH_BATCH)
                .await
                .map_err(|e| store_err("load commands", e))?;
            if batch.is_empty() {
                return Ok(());
            }
            let host = store
                .get_host(self.host_id)
                .await
                .map_err(|e| store_err("load host", e))?;
            match host.map(|h| h.state) {
                // Fenced off: commands wait (and expire) rather than run.
                Some(HostState::Quarantined) => return Ok(()),
                Some(state) if !state.is_terminal() => {}
                _ => return Err(End::Refuse(Status::permission_denied("host is not active"))),
            }
            let full = i64::try_from(batch.len()).unwrap_or(i64::MAX) >= DISPATCH_BATCH;
            for cmd in batch {
                let marked = store
                    .mark_agent_command_dispatched(cmd.id, now)
                    .await
                    .map_err(|e| store_err("mark dispatched", e))?;
                if !marked {
                    continue;
                }
                tracing::debug!(host_id = %self.host_id, command_id = %cmd.id, kind = %cmd.kind, attempt = cmd.attempts + 1, "dispatching command");
                self.send(Down::Command(Command {
                    command_id: cmd.id.to_string(),
                    kind: cmd.kind,
                    payload_json: cmd.payload.to_string(),
                    expires_at_unix_ms: cmd.expires_at.millis(),
                }))
                .await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn handle(&self, message: AgentMessage) -> Result<(), End> {
        let store = self.shared.fleet.store().clone();
        let now = now();
        let Some(body) = message.body else {
            return Ok(());
        };
        match body {
            Up::Hello(_) => {
                tracing::debug!(host_id = %self.host_id, "ignoring a repeated Hello");
            }
            Up::Heartbeat(beat) => {
                // Revocation takes effect within one heartbeat on an open
                // session, not only at the next connection.
                self.shared.check_peer(&self.peer).await?;
                store
                    .record_heartbeat(self.host_id, &reports(&beat.workloads, now), now)
                    .await
                    .map_err(|e| store_err("record heartbeat", e))?;
                if let Some(m) = &beat.metrics {
                    // The monitor's gap is not worth a session: logged.
                    let sample = HostSample {
                        at: now,
                        counters: counters(m),
                    };
                    if let Err(e) = store.record_host_sample(self.host_id, &sample).await {
                        tracing::warn!(host_id = %self.host_id, error = %e, "could not record the host's metrics");
                    }
                }
                self.send(Down::HeartbeatAck(HeartbeatAck {
                    server_time_unix_ms: now.millis(),
                }))
                .await?;
            }
            Up::Ack(ack) => {
                let Some(id) = self.command_id(&ack.command_id) else {
                    return Ok(());
                };
                match store.ack_agent_command(self.host_id, id, now).await {
                    Ok(_) => {
                        tracing::debug!(host_id = %self.host_id, command_id = %id, "command acknowledged")
                    }
                    Err(e) if is_expected(&e) => {
                        tracing::debug!(host_id = %self.host_id, command_id = %id, error = %e, "ignoring ack");
                    }
                    Err(e) => return Err(store_err("ack command", e)),
                }
            }
            Up::Progress(progress) => {
                let Some(id) = self.command_id(&progress.command_id) else {
                    return Ok(());
                };
                let message: String = progress.message.chars().take(1000).collect();
                store
                    .record_agent_command_progress(
                        self.host_id,
                        id,
                        i64::from(progress.percent),
                        &message,
                        now,
                    )
                    .await
                    .map_err(|e| store_err("record progress", e))?;
            }
            Up::Result(result) => {
                let Some(id) = self.command_id(&result.command_id) else {
                    return Ok(());
                };
                let outcome = if result.success {
                    CommandFinish::Succeeded(parse_json(&result.output_json))
                } else {
                    CommandFinish::Failed(result.error.chars().take(4000).collect())
                };
                match store
                    .finish_agent_command(self.host_id, id, &outcome, now)
                    .await
                {
                    Ok(_) => {
                        tracing::info!(host_id = %self.host_id, command_id = %id, success = result.success, "command finished");
                        self.shared.fleet.commands_changed();
                    }
                    // Already has an outcome (a re-sent result, or it
                    // expired first): recorded either way.
                    Err(StoreError::InvalidTransition(e)) => {
                        tracing::debug!(host_id = %self.host_id, command_id = %id, error = %e, "result for a finished command");
                    }
                    Err(StoreError::NotFound(_)) => {
                        tracing::warn!(host_id = %self.host_id, command_id = %id, "result for an unknown command");
                    }
                    Err(e) => return Err(store_err("finish command", e)),
                }
                self.send(Down::ResultAck(ResultAck {
                    command_id: result.command_id,
                }))
                .await?;
            }
            Up::Event(event) => {
                let at = if event.at_unix_ms > 0 {
                    Timestamp(event.at_unix_ms)
                } else {
                    now
                };
                let record = AgentEventRecord {
                    seq: 0,
                    host_id: self.host_id,
                    kind: event.kind.chars().take(64).collect(),
                    workload_id: (!event.workload_id.is_empty()).then_some(event.workload_id),
                    message: event.message.chars().take(4000).collect(),
                    payload: parse_json(&event.payload_json),
                    at,
                };
                store
                    .insert_agent_event(&record)
                    .await
                    .map_err(|e| store_err("record event", e))?;
            }
        }
        Ok(())
    }

    fn command_id(&self, text: &str) -> Option<CommandId> {
        let id = text.parse().ok();
        if id.is_none() {
            tracing::warn!(host_id = %self.host_id, "agent sent a malformed command id");
        }
        id
    }
}
