//! `reconfigure-node` v1: a node's processes started again from its
//! chain's current recipe (arguments, environment, rendered files), on the
//! same host, version and data. The agent restarts a process only when
//! what it runs changed (its arguments, environment or rendered files).
//!
//! `maintenance` while it happens (out of uptime); verified like an
//! upgrade (synced and back at its old head before a deadline). A recipe
//! that does not serve cannot be undone by going back to the previous
//! one, which the catalog no longer holds: the node leaves maintenance and
//! the health role judges it, so a bad recipe raises an incident.

use crate::provision::{start_plan, START_POLICY};
use crate::services::{permanent, Ctx, Services};
use crate::steps::{load_node, update_node};
use crate::upgrade::{leave_maintenance, verify_serving, Deadline, VERIFY_POLICY};
use crate::workflows::RECONFIGURE_NODE;
use hood_domain::lifecycle::{NodeState, SyncStatus};
use hood_saga::{RetryPolicy, Step, StepError, StepOutcome, Workflow};
use hood_store::node::NodeChange;
use serde_json::json;

/// Seconds the reconfigured node has to serve again.
const VERIFY_TIMEOUT_S: u32 = 120;

pub(crate) fn workflow() -> Workflow<Services> {
    Workflow::new(RECONFIGURE_NODE.0, RECONFIGURE_NODE.1)
        .step(Step::new("prepare", prepare).undo(leave_maintenance))
        .step(Step::new("apply", apply).retry(START_POLICY))
        .step(Step::new("verify", verify).retry(VERIFY_POLICY))
        .step(Step::new("finish", finish).retry(RetryPolicy::DEFAULT))
}

async fn prepare(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
    let serving = matches!(
        node.state,
        NodeState::Healthy | NodeState::Degraded | NodeState::Syncing | NodeState::Maintenance
    );
    let Some(host) = node.host_id.filter(|_| serving) else {
        return Err(permanent(format!(
            "node {} is {}: only a serving node is reconfigured",
            node.id,
            node.state.as_str()
        )));
    };
    if node.state != NodeState::Maintenance {
        update_node(
            &ctx,
            NodeChange {
                state: Some(NodeState::Maintenance),
                message: "applying its recipe's current configuration".into(),
                ..Default::default()
            },
        )
        .await?;
    }
    StepOutcome::done(json!({ "host": host, "head": node.head_height }))
}

fn host(ctx: &Ctx) -> Result<hood_domain::HostId, StepError> {
    ctx.output_of("prepare")
        .and_then(|o| o.get("host"))
        .and_then(|h| serde_json::from_value(h.clone()).ok())
        .ok_or_else(|| permanent("no host journaled by prepare"))
}

async fn apply(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let key = format!("{}-apply-{}", ctx.workflow_id, ctx.attempt);
    let started = start_plan(&ctx, host(&ctx)?, &key).await?;
    update_node(
        &ctx,
        NodeChange {
            rpc_endpoint: Some(started.endpoint),
            binary_version: Some(started.version),
            message: "configuration applied; verifying".into(),
            ..Default::default()
        },
    )
    .await?;
    StepOutcome::done(json!({ "started_at": ctx.now.millis() }))
}

async fn verify(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let started_at = ctx
        .output_of("apply")
        .and_then(|o| o.get("started_at"))
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(ctx.now.millis());
    let floor = ctx
        .output_of("prepare")
        .and_then(|o| o.get("head"))
        .and_then(serde_json::Value::as_i64);
    let deadline = Deadline {
        at_ms: started_at + i64::from(VERIFY_TIMEOUT_S) * 1000,
        timeout_s: VERIFY_TIMEOUT_S,
    };
    verify_serving(&ctx, host(&ctx)?, floor, deadline, "the new configuration").await
}

async fn finish(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let head = ctx
        .output_of("verify")
        .and_then(|v| v.get("head"))
        .and_then(serde_json::Value::as_i64);
    let node = load_node(&ctx).await?;
    if node.state == NodeState::Maintenance {
        update_node(
            &ctx,
            NodeChange {
                state: Some(NodeState::Healthy),
                sync_status: Some(SyncStatus::Synced),
                head_height: Some(head),
                message: "reconfigured".into(),
                ..Default::default()
            },
        )
        .await?;
    }
    StepOutcome::done(json!({ "head": head }))
}
