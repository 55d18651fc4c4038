//! Building blocks shared by the node workflows.

use crate::services::{permanent, retryable, Ctx, NodeInput};
use hood_domain::lifecycle::HostState;
use hood_domain::machine::StateMachine;
use hood_domain::node::Node;
use hood_domain::HostId;
use hood_gateway::CommandOutcome;
use hood_saga::StepError;
use hood_store::node::NodeChange;
use hood_store::StoreError;
use uuid::Uuid;

/// Namespace of the deterministic ids the orchestrator derives.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f0d_6e6f_6465_4000_8000_686f_6f64_0001);

/// The host a workflow creates: derived from the workflow id, so a step
/// re-run after a crash finds the host it made instead of making another.
pub(crate) fn host_id_for(workflow_id: &str) -> HostId {
    HostId::from_uuid(Uuid::new_v5(
        &ID_NAMESPACE,
        format!("{workflow_id}/host").as_bytes(),
    ))
}

pub(crate) use hood_clock::now;

pub(crate) fn store_err(e: StoreError) -> StepError {
    match e {
        StoreError::InvalidTransition(_) | StoreError::Corrupt(_) => permanent(e),
        other => retryable(other),
    }
}

pub(crate) async fn load_node(ctx: &Ctx) -> Result<Node, StepError> {
    let input: NodeInput = ctx.input_as()?;
    ctx.app
        .store
        .get_node(None, input.node_id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| permanent(format!("node {} no longer exists", input.node_id)))
}

/// Applies `change` to the node, re-reading on a version race (another
/// writer — the health evaluator, the API — got there first).
pub(crate) async fn update_node(ctx: &Ctx, change: NodeChange) -> Result<Node, StepError> {
    for _ in 0..5 {
        let node = load_node(ctx).await?;
        if let Some(to) = change.state {
            if node.state != to && !node.state.can_transition_to(to) {
                return Err(permanent(format!(
                    "node {} is {} and cannot become {}",
                    node.id,
                    node.state.as_str(),
                    to.as_str()
                )));
            }
        }
        match ctx
            .app
            .store
            .update_node(node.id, node.version, &change, now())
            .await
        {
            Ok(n) => return Ok(n),
            Err(StoreError::Conflict(f)) if f == "version" => continue,
            Err(e) => return Err(store_err(e)),
        }
    }
    Err(retryable("node kept changing under the workflow"))
}

/// Records a milestone in the node's history (best effort).
pub(crate) async fn note(ctx: &Ctx, node: &Node, message: &str) {
    record_event(ctx, node, "progress", message).await;
}

/// Records a setback the workflow is retrying, so the node's history says
/// why it is not progressing while it waits (best effort).
pub(crate) async fn warn(ctx: &Ctx, node: &Node, message: &str) {
    record_event(ctx, node, "warning", message).await;
}

async fn record_event(ctx: &Ctx, node: &Node, kind: &str, message: &str) {
    if let Err(e) = ctx
        .app
        .store
        .append_node_event(node.id, kind, message, now())
        .await
    {
        tracing::warn!(node_id = %node.id, kind, error = %e, "could not record a node event");
    }
}

/// Moves a host to `deleted` along the host machine's allowed path. Safe to
/// repeat; a host that is already gone is fine.
pub(crate) async fn retire_host(
    store: &dyn hood_store::Store,
    host: HostId,
) -> Result<(), StepError> {
    for _ in 0..6 {
        let Some(h) = store.get_host(host).await.map_err(store_err)? else {
            return Ok(());
        };
        let next = match h.state {
            HostState::Deleted | HostState::Failed => return Ok(()),
            HostState::Ready => HostState::Draining,
            HostState::Deleting => HostState::Deleted,
            _ => HostState::Deleting,
        };
        if !h.state.can_transition_to(next) {
            return Err(permanent(format!(
                "host {host} is {} and cannot be retired",
                h.state.as_str()
            )));
        }
        store
            .transition_host_from(host, h.state, next, now())
            .await
            .map_err(store_err)?;
    }
    Err(retryable(format!("host {host} did not reach deleted")))
}

/// [`retire_host`] from a workflow step.
pub(crate) async fn retire_host_record(ctx: &Ctx, host: HostId) -> Result<(), StepError> {
    retire_host(ctx.app.store.as_ref(), host).await
}

/// Sends a command to a host's agent (idempotently, by `key`) and waits
/// for its outcome up to the configured step wait.
pub(crate) async fn run_command(
    ctx: &Ctx,
    host: HostId,
    kind: &str,
    payload: serde_json::Value,
    key: &str,
) -> Result<serde_json::Value, StepError> {
    run_command_with(ctx, host, kind, payload, key, false).await
}

/// Like [`run_command`]; with `failure_is_retryable` an agent-reported
/// failure is retried by the step's policy. The caller must then key the
/// command by attempt, so a retry is a new command rather than the same
/// failed one.
pub(crate) async fn run_command_with(
    ctx: &Ctx,
    host: HostId,
    kind: &str,
    payload: serde_json::Value,
    key: &str,
    failure_is_retryable: bool,
) -> Result<serde_json::Value, StepError> {
    let t = &ctx.app.timings;
    let id = ctx
        .app
        .fleet
        .enqueue_command(host, kind, payload, Some(key), t.command_ttl)
        .await
        .map_err(retryable)?;
    match ctx
        .app
        .fleet
        .wait_command(id, t.command_wait)
        .await
        .map_err(retryable)?
    {
        CommandOutcome::Succeeded(out) => Ok(out),
        CommandOutcome::Failed(e) if failure_is_retryable => {
            Err(retryable(format!("agent {kind} failed: {e}")))
        }
        CommandOutcome::Failed(e) => Err(permanent(format!("agent {kind} failed: {e}"))),
        CommandOutcome::Expired { .. } => {
            Err(retryable(format!("agent {kind} expired before completing")))
        }
        CommandOutcome::Pending(state) => {
            Err(retryable(format!("agent {kind} still {}", state.as_str())))
        }
    }
}

/// Polls `check` every 200 ms for up to `within`; a quick answer keeps the
/// workflow fast, the saga's retry policy covers longer waits durably.
pub(crate) async fn poll_until<F, Fut>(
    within: std::time::Duration,
    mut check: F,
) -> Result<bool, StepError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, StepError>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await? {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
