//! `rollout` v1: a fleet moved to another version in batches (design §5,
//! the seed's RolloutWorkflow), or its chain's current recipe applied in
//! batches (`reconfigure-node` per node; a spent budget stops it as failed,
//! since there is no previous recipe to go back to). One step, `drive`, runs again every poll
//! interval: it reads the rollout and its nodes, folds in what their
//! `upgrade-node` runs did, asks the domain ([`next_step`]) what comes
//! next, does it, and sleeps. Every decision is taken from stored state,
//! so a control plane killed at any moment decides the same again, and
//! child runs have ids derived from the rollout and the node, so a replay
//! finds them instead of upgrading a node twice.
//!
//! Operators change the rollout's state in the store (pause, resume,
//! approve, abort); the next pass honours it. A paused or approval-gated
//! rollout still follows the batch in flight; it only starts no new one.

use crate::services::{permanent, retryable, Ctx, Services};
use crate::steps::{now, store_err};
use crate::workflows::{RECONFIGURE_NODE, ROLLOUT, UPGRADE_NODE};
use hood_domain::lifecycle::rollout::{RolloutNodeState as N, RolloutState as R};
use hood_domain::lifecycle::{NodeState, WorkflowState};
use hood_domain::machine::StateMachine;
use hood_domain::node_workflows::{
    revert_id, rollout_reconfigure_id, upgrade_id, NodeWorkflowInput, RolloutInput,
    UpgradeNodeInput,
};
use hood_domain::rollout::{
    batches_of, next_step, NextStep, Rollout, RolloutKind, RolloutNode, SoftwareTarget,
};
use hood_saga::{ChildSpec, RetryPolicy, Step, StepError, StepOutcome, Workflow};
use serde_json::json;

pub(crate) fn workflow() -> Workflow<Services> {
    Workflow::new(ROLLOUT.0, ROLLOUT.1).step(Step::new("drive", drive).retry(RetryPolicy {
        // A store or gateway hiccup is retried for a long while: a
        // rollout must not die of a blip halfway through.
        max_attempts: 100,
        ..RetryPolicy::DEFAULT
    }))
}

/// Prefix of the error of a node whose revert failed (it is not reverted
/// again; an operator looks).
const REVERT_FAILED: &str = "revert failed";

async fn drive(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let input: RolloutInput = ctx.input_as()?;
    let store = &ctx.app.store;
    let (mut rollout, mut nodes) = store
        .get_rollout(input.rollout_id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| permanent(format!("rollout {} no longer exists", input.rollout_id)))?;
    if rollout.state == R::Pending {
        set_state(&ctx, &mut rollout, &[R::Pending], R::Running, None).await?;
    }
    follow_children(&ctx, &rollout, &mut nodes).await?;
    match rollout.state {
        R::Aborted => {
            skip_waiting(&ctx, &mut nodes).await?;
            return finished(&rollout);
        }
        s if s.is_terminal() => return finished(&rollout),
        R::Reverting => return revert(&ctx, &mut rollout, &mut nodes).await,
        _ => {}
    }
    let (batches, states) = batches_of(&nodes);
    let step = next_step(
        &batches,
        &states,
        &rollout.policy,
        usize::try_from(rollout.approved_through).unwrap_or(usize::MAX),
    );
    match step {
        NextStep::Revert(_) if rollout.kind == RolloutKind::Reconfigure => {
            let failed = nodes.iter().filter(|n| n.state == N::Failed).count();
            let why = format!(
                "{failed} node(s) failed to apply the recipe, more than the failure budget of {}: \
                 stopped (a recipe change is not reverted; fix the recipe and roll it out again)",
                rollout.policy.failure_budget
            );
            skip_waiting(&ctx, &mut nodes).await?;
            let live = [R::Running, R::Paused, R::AwaitingApproval];
            set_state(&ctx, &mut rollout, &live, R::Failed, Some(&why)).await?;
            finished(&rollout)
        }
        NextStep::Revert(_) => {
            let failed = nodes.iter().filter(|n| n.state == N::Failed).count();
            let why = format!(
                "{failed} node(s) failed, more than the failure budget of {}: reverting",
                rollout.policy.failure_budget
            );
            let live = [R::Running, R::Paused, R::AwaitingApproval];
            set_state(&ctx, &mut rollout, &live, R::Reverting, Some(&why)).await?;
            revert(&ctx, &mut rollout, &mut nodes).await
        }
        NextStep::Complete => {
            set_state(
                &ctx,
                &mut rollout,
                &[R::Running, R::Paused, R::AwaitingApproval],
                R::Completed,
                None,
            )
            .await?;
            finished(&rollout)
        }
        // Paused: the batch in flight goes on, no new one starts.
        _ if rollout.state == R::Paused => Ok(poll(&ctx)),
        NextStep::Wait => Ok(poll(&ctx)),
        NextStep::AwaitApproval(_) => {
            set_state(&ctx, &mut rollout, &[R::Running], R::AwaitingApproval, None).await?;
            Ok(poll(&ctx))
        }
        NextStep::StartBatch(i) => {
            if rollout.state == R::AwaitingApproval {
                set_state(&ctx, &mut rollout, &[R::AwaitingApproval], R::Running, None).await?;
            }
            let batch = u32::try_from(i).unwrap_or(u32::MAX);
            for n in nodes
                .iter_mut()
                .filter(|n| n.batch == batch && n.state == N::Waiting)
            {
                // Started first, recorded second: a crash between the two
                // starts it again, which finds the same run.
                let spec = match rollout.kind {
                    RolloutKind::Upgrade => {
                        upgrade_spec(&rollout, n, &rollout.target, None, false)?
                    }
                    RolloutKind::Reconfigure => reconfigure_spec(&rollout, n)?,
                };
                ctx.start_child(spec).await?;
                move_node(&ctx, n, N::Upgrading, None).await?;
            }
            Ok(poll(&ctx))
        }
    }
}

fn poll(ctx: &Ctx) -> StepOutcome {
    let every = i64::try_from(ctx.app.timings.rollout_poll.as_millis()).unwrap_or(i64::MAX);
    StepOutcome::SleepUntil(now().plus_millis(every))
}

fn finished(rollout: &Rollout) -> Result<StepOutcome, StepError> {
    StepOutcome::done(json!({ "state": rollout.state.as_str(), "error": rollout.error }))
}

async fn set_state(
    ctx: &Ctx,
    rollout: &mut Rollout,
    from: &[R],
    to: R,
    error: Option<&str>,
) -> Result<(), StepError> {
    let store = &ctx.app.store;
    store
        .set_rollout_state(rollout.id, from, to, error, now())
        .await
        .map_err(store_err)?;
    // Whoever won (an operator may have paused or aborted meanwhile), go on
    // from what is stored.
    let (stored, _) = store
        .get_rollout(rollout.id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| permanent("the rollout vanished"))?;
    *rollout = stored;
    Ok(())
}

async fn move_node(
    ctx: &Ctx,
    node: &mut RolloutNode,
    to: N,
    error: Option<String>,
) -> Result<(), StepError> {
    if node.state == to {
        return Ok(());
    }
    node.state = node.state.transition(to).map_err(permanent)?;
    node.updated_at = now();
    if error.is_some() {
        node.error = error;
    }
    ctx.app
        .store
        .update_rollout_node(node)
        .await
        .map_err(store_err)
}

fn upgrade_spec(
    rollout: &Rollout,
    node: &RolloutNode,
    target: &SoftwareTarget,
    restore_snapshot: Option<String>,
    revert: bool,
) -> Result<ChildSpec, StepError> {
    let input = UpgradeNodeInput {
        node_id: node.node_id,
        target: target.clone(),
        restore_snapshot,
        verify_timeout_s: rollout.verify_timeout_s,
        upgrade_id: if revert {
            None
        } else {
            rollout.upgrade_id.clone()
        },
    };
    let id = if revert {
        revert_id(rollout.id, node.node_id)
    } else {
        upgrade_id(rollout.id, node.node_id)
    };
    Ok(ChildSpec::new(
        id,
        UPGRADE_NODE.0,
        UPGRADE_NODE.1,
        serde_json::to_value(input).map_err(permanent)?,
    ))
}

fn reconfigure_spec(rollout: &Rollout, node: &RolloutNode) -> Result<ChildSpec, StepError> {
    let input = NodeWorkflowInput {
        node_id: node.node_id,
    };
    Ok(ChildSpec::new(
        rollout_reconfigure_id(rollout.id, node.node_id),
        RECONFIGURE_NODE.0,
        RECONFIGURE_NODE.1,
        serde_json::to_value(input).map_err(permanent)?,
    ))
}

/// The run that moves `node` forward: its upgrade, or its reconfiguration.
fn forward_id(rollout: &Rollout, node: &RolloutNode) -> String {
    match rollout.kind {
        RolloutKind::Upgrade => upgrade_id(rollout.id, node.node_id),
        RolloutKind::Reconfigure => rollout_reconfigure_id(rollout.id, node.node_id),
    }
}

/// Folds the outcome of each node's upgrade (or revert) run, and the
/// node's health while it soaks, into its rollout state.
async fn follow_children(
    ctx: &Ctx,
    rollout: &Rollout,
    nodes: &mut [RolloutNode],
) -> Result<(), StepError> {
    let runs = ctx.runs();
    for n in nodes.iter_mut() {
        let child = match n.state {
            N::Upgrading => forward_id(rollout, n),
            N::Reverting => revert_id(rollout.id, n.node_id),
            N::Soaking => {
                soak(ctx, rollout, n).await?;
                continue;
            }
            _ => continue,
        };
        let Some(detail) = runs.get(&child).await.map_err(retryable)? else {
            continue;
        };
        let run = detail.workflow;
        match (n.state, run.state) {
            (N::Upgrading, WorkflowState::Completed) => {
                n.soak_until = Some(now().plus_millis(i64::from(rollout.soak_s) * 1000));
                move_node(ctx, n, N::Soaking, None).await?;
            }
            (N::Reverting, WorkflowState::Completed) => {
                move_node(ctx, n, N::Reverted, None).await?;
            }
            (state, s) if s.is_terminal() => {
                let why = run.error.unwrap_or_else(|| format!("its run ended {s}"));
                let error = if state == N::Reverting {
                    format!("{REVERT_FAILED}: {why}")
                } else {
                    why
                };
                move_node(ctx, n, N::Failed, Some(error)).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A soaking node counts once it stayed out of trouble until its soak
/// deadline and is healthy then; down or failed meanwhile is a failure.
async fn soak(ctx: &Ctx, rollout: &Rollout, n: &mut RolloutNode) -> Result<(), StepError> {
    let node = ctx
        .app
        .store
        .get_node(None, n.node_id)
        .await
        .map_err(store_err)?;
    let state = node.as_ref().map(|n| n.state);
    match state {
        None | Some(NodeState::Terminating | NodeState::Terminated) => {
            move_node(ctx, n, N::Failed, Some("the node was terminated".into())).await
        }
        Some(s @ (NodeState::Down | NodeState::Failed | NodeState::Migrating)) => {
            let why = format!("the node became {} while soaking", s.as_str());
            move_node(ctx, n, N::Failed, Some(why)).await
        }
        Some(s) => {
            let due = n.soak_until.is_none_or(|t| now() >= t);
            if due && s == NodeState::Healthy {
                move_node(ctx, n, N::Upgraded, None).await
            } else if due {
                // Not healthy when it should be: give it the verify window
                // again, then count it failed.
                let grace = i64::from(rollout.verify_timeout_s) * 1000;
                let late = n.soak_until.is_some_and(|t| now() >= t.plus_millis(grace));
                if late {
                    let why = format!("the node was still {} after its soak", s.as_str());
                    move_node(ctx, n, N::Failed, Some(why)).await
                } else {
                    Ok(())
                }
            } else {
                Ok(())
            }
        }
    }
}

async fn skip_waiting(ctx: &Ctx, nodes: &mut [RolloutNode]) -> Result<(), StepError> {
    for n in nodes.iter_mut().filter(|n| n.state == N::Waiting) {
        move_node(ctx, n, N::Skipped, None).await?;
    }
    Ok(())
}

/// Puts every node the rollout touched back on the version it ran before,
/// restoring the upgrade's snapshot for a `forward_only` target. Nodes in
/// the middle of an upgrade finish it first; untouched nodes are skipped.
async fn revert(
    ctx: &Ctx,
    rollout: &mut Rollout,
    nodes: &mut [RolloutNode],
) -> Result<StepOutcome, StepError> {
    skip_waiting(ctx, nodes).await?;
    for n in nodes.iter_mut() {
        let failed_revert = n.state == N::Failed
            && n.error
                .as_deref()
                .is_some_and(|e| e.starts_with(REVERT_FAILED));
        if !matches!(n.state, N::Upgraded | N::Soaking | N::Failed) || failed_revert {
            continue;
        }
        let back = SoftwareTarget {
            version: n.from_version.clone(),
            ..rollout.target.clone()
        };
        let snapshot = rollout
            .target
            .forward_only
            .then(|| upgrade_id(rollout.id, n.node_id));
        let spec = upgrade_spec(rollout, n, &back, snapshot, true)?;
        ctx.start_child(spec).await?;
        move_node(ctx, n, N::Reverting, None).await?;
    }
    if nodes
        .iter()
        .any(|n| matches!(n.state, N::Upgrading | N::Reverting))
    {
        return Ok(poll(ctx));
    }
    let stuck: Vec<String> = nodes
        .iter()
        .filter(|n| n.state == N::Failed)
        .map(|n| n.node_id.to_string())
        .collect();
    if stuck.is_empty() {
        set_state(ctx, rollout, &[R::Reverting], R::Reverted, None).await?;
    } else {
        let why = format!("could not revert node(s) {}", stuck.join(", "));
        set_state(ctx, rollout, &[R::Reverting], R::Failed, Some(&why)).await?;
    }
    finished(rollout)
}
