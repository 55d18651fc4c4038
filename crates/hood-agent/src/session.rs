//! The session loop: connect, `Hello`, `Welcome`, then heartbeats, uplink
//! messages and commands until the stream ends; reconnect with backoff.

use crate::commands::{Arrival, CommandRecord, Finished};
use crate::enrollment::{enroll_if_needed, renew};
use crate::error::AgentError;
use crate::handle::AgentHandle;
use crate::handler::{CommandContext, CommandHandler, Workload};
use crate::now_ms;
use hood_agent_proto::v1::agent_gateway_client::AgentGatewayClient;
use hood_agent_proto::v1::agent_message::Body as Up;
use hood_agent_proto::v1::gateway_message::Body as Down;
use hood_agent_proto::v1::{
    AgentMessage, Command, CommandAck, CommandResult, GatewayMessage, Heartbeat, Hello,
    HostMetrics, WorkloadStatus,
};
use hood_domain::backoff::Backoff;
use hood_domain::CommandId;
use rand::Rng as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

/// How long to wait for `Welcome` after connecting.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);
/// A session that lasted this long resets the reconnect backoff.
const STABLE_SESSION: Duration = Duration::from_secs(30);
/// Retry delay after a failed renewal.
const RENEW_RETRY: Duration = Duration::from_secs(30);
/// What an agent reports for a command it may have half-run before a crash.
const INTERRUPTED: &str =
    "the agent restarted while this command was running; its outcome is unknown";

/// Why a session ended without an error.
enum End {
    /// The gateway closed the stream.
    Closed,
    /// New certificate: reconnect with it at once.
    Renewed,
}

/// Reconnect waits: the domain's doubling backoff with equal jitter, so a
/// fleet cut off together does not reconnect together.
struct Reconnect {
    policy: Backoff,
    failures: u32,
}

impl Reconnect {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            policy: Backoff::doubling(min, max),
            failures: 0,
        }
    }

    fn reset(&mut self) {
        self.failures = 0;
    }

    fn delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.policy
            .jittered(self.failures, rand::thread_rng().gen::<f64>())
    }
}

pub(crate) async fn run(
    handle: &AgentHandle,
    handler: Arc<dyn CommandHandler>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    tokio::pin!(shutdown);
    let config = handle.config();
    let mut backoff = Reconnect::new(config.reconnect_min, config.reconnect_max);

    loop {
        let enrolled = tokio::select! {
            r = enroll_if_needed(handle) => r,
            () = &mut shutdown => return Ok(()),
        };
        match enrolled {
            Ok(_) => break,
            Err(e @ (AgentError::Transport(_) | AgentError::Rpc { .. })) => {
                tracing::warn!(error = %e, "enrollment failed; retrying");
            }
            Err(e) => return Err(e),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.delay()) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
    backoff.reset();

    loop {
        if let Some(identity) = handle.identity() {
            if now_ms() >= identity.renew_at_ms(config.renew_at) {
                if let Err(e) = renew(handle).await {
                    tracing::warn!(error = %e, "certificate renewal failed");
                }
            }
        }
        let started = Instant::now();
        let outcome = tokio::select! {
            r = session_once(handle, &handler) => r,
            () = &mut shutdown => {
                tracing::info!("agent shutting down");
                return Ok(());
            }
        };
        match outcome {
            Ok(End::Renewed) => {
                tracing::info!("reconnecting with the renewed certificate");
                backoff.reset();
                continue;
            }
            Ok(End::Closed) => tracing::info!("session closed by the gateway"),
            Err(e) => tracing::warn!(error = %e, "session failed"),
        }
        if started.elapsed() >= STABLE_SESSION {
            backoff.reset();
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.delay()) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
}

fn wire_metrics(c: hood_domain::host_metrics::HostCounters) -> HostMetrics {
    HostMetrics {
        cpu_busy_ticks: c.cpu_busy_ticks,
        cpu_total_ticks: c.cpu_total_ticks,
        memory_total_bytes: c.memory_total_bytes,
        memory_available_bytes: c.memory_available_bytes,
        disk_total_bytes: c.disk_total_bytes,
        disk_available_bytes: c.disk_available_bytes,
        net_rx_bytes: c.net_rx_bytes,
        net_tx_bytes: c.net_tx_bytes,
    }
}

fn wire_workloads(workloads: Vec<Workload>) -> Vec<WorkloadStatus> {
    workloads
        .into_iter()
        .map(|w| WorkloadStatus {
            workload_id: w.workload_id,
            state: w.state,
            pid: w.pid.and_then(|p| i32::try_from(p).ok()).unwrap_or(0),
            restarts: w.restarts,
            observation_json: w.observation.to_string(),
        })
        .collect()
}

fn result_body(id: CommandId, f: &Finished) -> Up {
    Up::Result(CommandResult {
        command_id: id.to_string(),
        success: f.success,
        output_json: f.output_json.clone(),
        error: f.error.clone(),
    })
}

fn result_message(id: CommandId, f: &Finished) -> AgentMessage {
    up(result_body(id, f))
}

fn up(body: Up) -> AgentMessage {
    AgentMessage { body: Some(body) }
}

async fn session_once(
    handle: &AgentHandle,
    handler: &Arc<dyn CommandHandler>,
) -> Result<End, AgentError> {
    let config = handle.config();
    let identity = handle
        .identity()
        .ok_or_else(|| AgentError::Config("not enrolled".into()))?;
    let mut client = AgentGatewayClient::new(handle.channel()?);
    let (up_tx, up_rx) = mpsc::channel::<AgentMessage>(256);
    let closed = |_| AgentError::Protocol("session stream closed".into());
    up_tx
        .send(up(Up::Hello(Hello {
            agent_version: config.agent_version.clone(),
            workloads: wire_workloads(handler.workloads().await),
            inventory: Some(handle.inventory().clone()),
        })))
        .await
        .map_err(closed)?;
    let mut down = client
        .session(ReceiverStream::new(up_rx))
        .await?
        .into_inner();
    let welcome = match tokio::time::timeout(WELCOME_TIMEOUT, down.message()).await {
        Ok(Ok(Some(GatewayMessage {
            body: Some(Down::Welcome(welcome)),
        }))) => welcome,
        Ok(Ok(None)) => return Ok(End::Closed),
        Ok(Err(status)) => return Err(status.into()),
        Ok(Ok(Some(_))) => return Err(AgentError::Protocol("expected Welcome".into())),
        Err(_) => return Err(AgentError::Protocol("no Welcome from the gateway".into())),
    };
    if welcome.host_id != identity.host_id.to_string() {
        return Err(AgentError::Protocol(
            "the gateway welcomed another host".into(),
        ));
    }
    let every = config
        .heartbeat_interval
        .unwrap_or(Duration::from_secs(u64::from(
            welcome.heartbeat_interval_secs.max(1),
        )));
    tracing::info!(host_id = %identity.host_id, heartbeat_secs = every.as_secs_f32(), "session established");

    // Results the gateway never confirmed (lost with an earlier stream).
    for record in handle.commands().unacked()? {
        if let Some(f) = &record.finished {
            up_tx
                .send(result_message(record.id, f))
                .await
                .map_err(closed)?;
        }
    }

    // One session at a time owns the uplink.
    let mut uplink = handle.uplink().lock().await;
    let renew_due = identity.renew_at_ms(config.renew_at);
    let renew_in = Duration::from_millis(u64::try_from(renew_due - now_ms()).unwrap_or(0));
    let renew_sleep = tokio::time::sleep(renew_in);
    tokio::pin!(renew_sleep);
    let mut heartbeat = tokio::time::interval_at(Instant::now() + every, every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let identity_changed = handle.identity_changed();

    loop {
        tokio::select! {
            message = down.message() => match message {
                Ok(Some(GatewayMessage { body: Some(body) })) => {
                    on_message(handle, handler, &up_tx, body).await?;
                }
                Ok(Some(_)) => {}
                Ok(None) => return Ok(End::Closed),
                Err(status) => return Err(status.into()),
            },
            _ = heartbeat.tick() => {
                let beat = up(Up::Heartbeat(Heartbeat {
                    sent_at_unix_ms: now_ms(),
                    workloads: wire_workloads(handler.workloads().await),
                    metrics: crate::host_metrics::sample(&handle.config().data_dir)
                        .map(wire_metrics),
                }));
                up_tx.send(beat).await.map_err(closed)?;
                resend_stale_results(handle, &up_tx, every).await?;
            }
            Some(message) = uplink.recv() => {
                up_tx.send(message).await.map_err(closed)?;
            }
            () = &mut renew_sleep => {
                match renew(handle).await {
                    Ok(()) => return Ok(End::Renewed),
                    Err(e) => {
                        tracing::warn!(error = %e, "certificate renewal failed; will retry");
                        renew_sleep.as_mut().reset(Instant::now() + RENEW_RETRY);
                    }
                }
            }
            () = identity_changed.notified() => return Ok(End::Renewed),
        }
    }
}

/// Re-sends results finished more than a heartbeat ago and still not
/// confirmed (a message dropped on a full uplink, a gateway hiccup).
async fn resend_stale_results(
    handle: &AgentHandle,
    up_tx: &mpsc::Sender<AgentMessage>,
    every: Duration,
) -> Result<(), AgentError> {
    let cutoff = now_ms() - i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    let stale: Vec<CommandRecord> = handle
        .commands()
        .unacked()?
        .into_iter()
        .filter(|r| r.finished.as_ref().is_some_and(|f| f.at_ms < cutoff))
        .collect();
    for record in stale {
        if let Some(f) = &record.finished {
            up_tx
                .send(result_message(record.id, f))
                .await
                .map_err(|_| AgentError::Protocol("session stream closed".into()))?;
        }
    }
    Ok(())
}

async fn on_message(
    handle: &AgentHandle,
    handler: &Arc<dyn CommandHandler>,
    up_tx: &mpsc::Sender<AgentMessage>,
    body: Down,
) -> Result<(), AgentError> {
    match body {
        Down::Command(command) => on_command(handle, handler, up_tx, command).await,
        Down::ResultAck(ack) => {
            if let Ok(id) = ack.command_id.parse::<CommandId>() {
                handle.commands().result_acked(id)?;
            }
            Ok(())
        }
        Down::HeartbeatAck(_) | Down::Welcome(_) => Ok(()),
    }
}

async fn on_command(
    handle: &AgentHandle,
    handler: &Arc<dyn CommandHandler>,
    up_tx: &mpsc::Sender<AgentMessage>,
    command: Command,
) -> Result<(), AgentError> {
    let closed = |_| AgentError::Protocol("session stream closed".into());
    let Ok(id) = command.command_id.parse::<CommandId>() else {
        tracing::warn!("gateway sent a command with a malformed id");
        return Ok(());
    };
    let ack = up(Up::Ack(CommandAck {
        command_id: command.command_id.clone(),
    }));
    let arrival = handle.commands().arrive(id, &command.kind)?;
    match arrival {
        Arrival::Execute => {
            if command.expires_at_unix_ms > 0 && command.expires_at_unix_ms <= now_ms() {
                // Too late to start; the gateway expires it on its own.
                tracing::info!(command_id = %id, kind = %command.kind, "command arrived after its deadline; not running it");
                let finished = Finished {
                    success: false,
                    output_json: String::new(),
                    error: "deadline passed before the agent could run the command".into(),
                    at_ms: now_ms(),
                };
                handle
                    .commands()
                    .finish(id, &command.kind, finished.clone())?;
                up_tx.send(ack).await.map_err(closed)?;
                return up_tx
                    .send(result_message(id, &finished))
                    .await
                    .map_err(closed);
            }
            // The command is recorded as running: it must run even if the
            // ack below cannot leave (the session dropped), or every
            // redelivery would be answered "still running" for ever.
            tracing::info!(command_id = %id, kind = %command.kind, "executing command");
            {
                let handle = handle.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    execute(handle, handler, id, command.kind, command.payload_json).await;
                });
            }
            up_tx.send(ack).await.map_err(closed)
        }
        Arrival::Running => {
            tracing::debug!(command_id = %id, "redelivered command is still running");
            up_tx.send(ack).await.map_err(closed)
        }
        Arrival::Finished(f) => {
            tracing::info!(command_id = %id, "redelivered command already finished; re-sending its result");
            up_tx.send(ack).await.map_err(closed)?;
            up_tx.send(result_message(id, &f)).await.map_err(closed)
        }
        Arrival::Interrupted => {
            tracing::warn!(command_id = %id, kind = %command.kind, "command was interrupted by an agent restart; reporting it failed");
            let finished = Finished {
                success: false,
                output_json: String::new(),
                error: INTERRUPTED.into(),
                at_ms: now_ms(),
            };
            handle
                .commands()
                .finish(id, &command.kind, finished.clone())?;
            up_tx.send(ack).await.map_err(closed)?;
            up_tx
                .send(result_message(id, &finished))
                .await
                .map_err(closed)
        }
    }
}

async fn execute(
    handle: AgentHandle,
    handler: Arc<dyn CommandHandler>,
    id: CommandId,
    kind: String,
    payload_json: String,
) {
    let payload = if payload_json.trim().is_empty() {
        Ok(serde_json::Value::Null)
    } else {
        serde_json::from_str(&payload_json)
    };
    let ctx = CommandContext {
        command_id: id,
        agent: handle.clone(),
    };
    let outcome = match payload {
        // A handler that panics still finishes its command (failed): left
        // "running", every redelivery would be answered "still running".
        Ok(payload) => {
            use futures::FutureExt as _;
            std::panic::AssertUnwindSafe(handler.handle(&kind, payload, &ctx))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    tracing::error!(command_id = %id, kind = %kind, "a command handler panicked");
                    Err(format!("the agent's `{kind}` handler failed unexpectedly").into())
                })
        }
        Err(_) => Err("payload is not valid JSON".into()),
    };
    let finished = match outcome {
        Ok(output) => Finished {
            success: true,
            output_json: output.to_string(),
            error: String::new(),
            at_ms: now_ms(),
        },
        Err(e) => Finished {
            success: false,
            output_json: String::new(),
            error: e.0,
            at_ms: now_ms(),
        },
    };
    tracing::info!(command_id = %id, kind, success = finished.success, "command finished");
    if let Err(e) = handle.commands().finish(id, &kind, finished.clone()) {
        // Without the record the result cannot be re-sent after a restart;
        // send it now anyway.
        tracing::error!(command_id = %id, error = %e, "recording a command result failed");
        handle.commands().abandon(id);
    }
    handle.send_up(result_body(id, &finished));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::AgentConfig;
    use crate::handler::CommandError;

    /// Counts what it runs; `panic` panics.
    struct Counting(Arc<std::sync::atomic::AtomicUsize>);

    #[async_trait::async_trait]
    impl CommandHandler for Counting {
        async fn handle(
            &self,
            _kind: &str,
            _payload: serde_json::Value,
            _ctx: &CommandContext,
        ) -> Result<serde_json::Value, CommandError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if _kind == "panic" {
                panic!("a handler bug");
            }
            Ok(serde_json::json!({}))
        }
    }

    /// A session that drops just as a command arrives must not leave the
    /// command recorded as running and never run: every redelivery would
    /// be answered "still running" for ever.
    #[tokio::test]
    async fn a_command_whose_ack_cannot_leave_still_runs_and_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let handle =
            AgentHandle::open(AgentConfig::new("https://127.0.0.1:1", dir.path())).unwrap();
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handler: Arc<dyn CommandHandler> = Arc::new(Counting(ran.clone()));
        // The uplink is already closed: the ack cannot be sent.
        let (up_tx, up_rx) = mpsc::channel(1);
        drop(up_rx);
        let id = CommandId::from_uuid(uuid::Uuid::now_v7());
        let command = Command {
            command_id: id.to_string(),
            kind: "ping".into(),
            payload_json: "{}".into(),
            ..Default::default()
        };
        assert!(on_command(&handle, &handler, &up_tx, command)
            .await
            .is_err());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let record = handle.commands().get(id).unwrap().unwrap();
            if let Some(finished) = record.finished {
                assert!(finished.success, "{finished:?}");
                break;
            }
            assert!(Instant::now() < deadline, "the command never finished");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_handler_that_panics_finishes_its_command_as_failed() {
        let dir = tempfile::tempdir().unwrap();
        let handle =
            AgentHandle::open(AgentConfig::new("https://127.0.0.1:1", dir.path())).unwrap();
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handler: Arc<dyn CommandHandler> = Arc::new(Counting(ran.clone()));
        let id = CommandId::from_uuid(uuid::Uuid::now_v7());
        assert_eq!(
            handle.commands().arrive(id, "panic").unwrap(),
            Arrival::Execute
        );
        execute(handle.clone(), handler, id, "panic".into(), "{}".into()).await;
        let finished = handle
            .commands()
            .get(id)
            .unwrap()
            .unwrap()
            .finished
            .unwrap();
        assert!(!finished.success);
        assert!(
            finished.error.contains("`panic` handler"),
            "{}",
            finished.error
        );
        // A redelivery is answered with that result, never "still running".
        assert!(matches!(
            handle.commands().arrive(id, "panic").unwrap(),
            Arrival::Finished(_)
        ));
    }
}
