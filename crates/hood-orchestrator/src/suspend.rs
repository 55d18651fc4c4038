//! `suspend-node` v1 and `resume-node` v1: billing's stop and restart of a
//! node whose organization cannot pay.
//!
//! Suspending marks the node `suspended` (so the health role stops judging
//! it and billing stops counting it) and stops its process; host, data and
//! keys stay, so resuming is a start on the same host. Both tolerate a node
//! that already moved on: a node no longer serving is not suspended, a node
//! no longer suspended is not resumed. Billing asks again every pass while
//! what it wants differs from what is, so a race between the two settles.

use crate::provision::start_on;
use crate::services::{permanent, retryable, Ctx, Services};
use crate::steps::{load_node, note, run_command, update_node};
use crate::workflows::{RESUME_NODE, SUSPEND_NODE};
use hood_domain::lifecycle::NodeState;
use hood_domain::machine::StateMachine;
use hood_domain::workload::{kinds, WorkloadRef};
use hood_saga::{RetryPolicy, Step, StepError, StepOutcome, Workflow};
use hood_store::node::NodeChange;
use serde_json::json;

pub(crate) fn suspend_workflow() -> Workflow<Services> {
    Workflow::new(SUSPEND_NODE.0, SUSPEND_NODE.1)
        .step(Step::new("mark_suspended", mark_suspended))
        .step(Step::new("stop_process", stop_process).retry(RetryPolicy::DEFAULT))
}

pub(crate) fn resume_workflow() -> Workflow<Services> {
    Workflow::new(RESUME_NODE.0, RESUME_NODE.1)
        .step(Step::new("start_process", start_process).retry(crate::provision::START_POLICY))
}

async fn mark_suspended(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
    if node.state == NodeState::Suspended {
        return StepOutcome::done(json!({ "suspended": true }));
    }
    if !node.state.can_transition_to(NodeState::Suspended) {
        // Provisioning, migrating, in maintenance or leaving: the workflow
        // owning it decides; billing asks again on its next pass.
        return StepOutcome::done(json!({ "suspended": false, "state": node.state.as_str() }));
    }
    update_node(
        &ctx,
        NodeChange {
            state: Some(NodeState::Suspended),
            message: "suspended: the organization's prepaid credits are exhausted".into(),
            ..Default::default()
        },
    )
    .await?;
    StepOutcome::done(json!({ "suspended": true }))
}

async fn stop_process(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
    if node.state != NodeState::Suspended {
        return StepOutcome::done(json!({ "stopped": false }));
    }
    let Some(host) = node.host_id else {
        return StepOutcome::done(json!({ "stopped": false }));
    };
    if !ctx
        .app
        .fleet
        .host_connected(host)
        .await
        .map_err(retryable)?
    {
        // A host without its agent serves nothing; resuming finds out
        // whether it came back.
        return StepOutcome::done(json!({ "stopped": false, "host_connected": false }));
    }
    let payload = serde_json::to_value(WorkloadRef {
        workload_id: node.id.to_string(),
        lines: None,
    })
    .map_err(permanent)?;
    run_command(
        &ctx,
        host,
        kinds::STOP_WORKLOAD,
        payload,
        &format!("{}-stop", ctx.workflow_id),
    )
    .await?;
    note(&ctx, &node, "node process stopped (suspended)").await;
    StepOutcome::done(json!({ "stopped": true }))
}

/// Starts the process again on the node's host; a host that is gone makes
/// the node `down`, which the health role turns into a migration.
async fn start_process(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
    if node.state != NodeState::Suspended {
        return StepOutcome::done(json!({ "resumed": false, "state": node.state.as_str() }));
    }
    let host = match node.host_id {
        Some(h) if ctx.app.fleet.host_connected(h).await.map_err(retryable)? => h,
        _ => {
            update_node(
                &ctx,
                NodeChange {
                    state: Some(NodeState::Down),
                    message: "resumed, but its host is unreachable".into(),
                    ..Default::default()
                },
            )
            .await?;
            return StepOutcome::done(json!({ "resumed": false, "state": "down" }));
        }
    };
    let key = format!("{}-start-{}", ctx.workflow_id, ctx.attempt);
    start_on(&ctx, host, &key).await
}
