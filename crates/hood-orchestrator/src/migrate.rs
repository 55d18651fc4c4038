//! `migrate-node` v3: a node whose host died comes back on a new host with
//! the same key material and its data (warm migration: it continues from
//! where it was instead of from zero): pulled from the old host when that
//! host still answers, else its latest snapshot. down → migrating → pull
//! → new host → agent → restore → start (the
//! gateway releases the node's data key only to the host the node is now
//! placed on) → synced → healthy → retire the old host.
//!
//! The run id is `migrate-node-{node}-{version}`, the node version at which
//! the health role saw it down: every health replica deciding about the
//! same outage names the same run, so it starts once.
//!
//! A permanent failure compensates: the new host is deleted, the node is
//! placed back on the old host and left `down` (the health role retries
//! after the cooldown).

use crate::provision::{
    create_host, delete_host, mark_healthy, remove_workload, start_node, wait_for_agent,
    wait_synced, START_POLICY, SYNC_POLICY,
};
use crate::services::{permanent, retryable, Ctx, Services};
use crate::snapshots::{pull_from_old_host, restore_latest, PULL_POLICY};
use crate::steps::{
    host_id_for, load_node, note, retire_host_record, run_command, store_err, update_node,
};
use crate::workflows::{MIGRATE_NODE, MIGRATE_NODE_V1, MIGRATE_NODE_V2};
use hood_domain::lifecycle::{HostState, NodeState};
use hood_domain::machine::StateMachine;
use hood_domain::workload::{kinds, WorkloadRef};
use hood_domain::HostId;
use hood_saga::{RetryPolicy, Step, StepError, StepOutcome, Workflow};
use hood_store::node::NodeChange;
use serde_json::json;

pub(crate) fn workflow() -> Workflow<Services> {
    steps(MIGRATE_NODE, Warmth::PullThenRestore)
}

/// v2, restoring the latest snapshot without trying the old host first: a
/// run journaled before the pull existed finishes as it began.
pub(crate) fn workflow_v2() -> Workflow<Services> {
    steps(MIGRATE_NODE_V2, Warmth::Restore)
}

/// v1, without the restore: a run journaled before warm migration existed
/// finishes as it began.
pub(crate) fn workflow_v1() -> Workflow<Services> {
    steps(MIGRATE_NODE_V1, Warmth::Cold)
}

/// Where a migrated node's data comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Warmth {
    /// Nowhere: it starts empty and syncs.
    Cold,
    /// The latest complete snapshot.
    Restore,
    /// The old host when it still answers, else the latest snapshot.
    PullThenRestore,
}

fn steps(definition: (&str, i64), warmth: Warmth) -> Workflow<Services> {
    let mut wf =
        Workflow::new(definition.0, definition.1).step(Step::new("begin", begin).undo(back_down));
    if warmth == Warmth::PullThenRestore {
        // Before the new host: the node is still placed on the old one,
        // which is what lets that host upload its data.
        wf = wf.step(Step::new("pull_data", pull_data).retry(PULL_POLICY));
    }
    wf = wf
        .step(
            Step::new("create_host", create_host)
                .undo(delete_host)
                .retry(RetryPolicy::INFRASTRUCTURE),
        )
        .step(Step::new("wait_for_agent", wait_for_agent).retry(RetryPolicy::WAIT_FOR_AGENT));
    if warmth != Warmth::Cold {
        wf = wf.step(Step::new("restore_data", restore_latest).retry(RetryPolicy::DEFAULT));
    }
    wf.step(
        Step::new("start_node", start_node)
            .undo(remove_workload)
            .retry(START_POLICY),
    )
    .step(Step::new("wait_synced", wait_synced).retry(SYNC_POLICY))
    .step(Step::new("mark_healthy", mark_healthy))
    .step(Step::new("retire_old_host", retire_old_host).retry(RetryPolicy::INFRASTRUCTURE))
}

fn old_host(ctx: &Ctx) -> Option<HostId> {
    ctx.output_of("begin")
        .and_then(|v| v.get("old_host"))
        .and_then(serde_json::Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// Takes the node from `down` to `migrating`, remembering the old host.
async fn begin(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
    let new_host = host_id_for(&ctx.workflow_id);
    match node.state {
        NodeState::Down => {
            update_node(
                &ctx,
                NodeChange {
                    state: Some(NodeState::Migrating),
                    message: format!("migrating off host {}", display(node.host_id)),
                    ..Default::default()
                },
            )
            .await?;
        }
        // A re-run after a crash: already begun by this run.
        NodeState::Migrating => {}
        other => {
            return Err(permanent(format!(
                "node is {}, no longer down: nothing to migrate",
                other.as_str()
            )))
        }
    }
    let old = node.host_id.filter(|h| *h != new_host);
    StepOutcome::done(json!({ "old_host": old.map(|h| h.to_string()) }))
}

async fn pull_data(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let old = old_host(&ctx);
    pull_from_old_host(&ctx, old).await
}

/// Compensation: back on the old host's record, `down`, for a later try.
async fn back_down(ctx: Ctx) -> Result<(), StepError> {
    let node = load_node(&ctx).await?;
    if node.state.is_terminal() || node.state == NodeState::Terminating {
        return Ok(());
    }
    let to_down = node.state != NodeState::Down && node.state.can_transition_to(NodeState::Down);
    update_node(
        &ctx,
        NodeChange {
            state: to_down.then_some(NodeState::Down),
            host_id: Some(old_host(&ctx)),
            message: "migration failed and was rolled back; the node stays down".into(),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// Deletes the old host: gracefully if its agent answers (the node's data
/// and keys are wiped there first), through the provider otherwise. A host
/// the provider cannot delete is quarantined (never trusted with the node
/// again) and reaped by the cleanup loop once it is seen again.
async fn retire_old_host(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let Some(old) = old_host(&ctx) else {
        return StepOutcome::done(json!({ "retired": null }));
    };
    let node = load_node(&ctx).await?;
    let s = &ctx.app;
    let Some(host) = s.store.get_host(old).await.map_err(store_err)? else {
        return StepOutcome::done(json!({ "retired": null }));
    };
    if host.state.is_terminal() {
        return StepOutcome::done(json!({ "retired": old.to_string() }));
    }
    if s.fleet.host_connected(old).await.map_err(retryable)? {
        let payload = serde_json::to_value(WorkloadRef {
            workload_id: node.id.to_string(),
            lines: None,
        })
        .map_err(permanent)?;
        // Best effort: the provider delete below removes it regardless.
        if let Err(e) = run_command(
            &ctx,
            old,
            kinds::REMOVE_WORKLOAD,
            payload,
            &format!("migrate-remove-{}", ctx.workflow_id),
        )
        .await
        {
            tracing::warn!(host_id = %old, error = %e.message(), "old host did not remove the node");
        }
    }
    let deleted = match s.providers.get(&host.provider) {
        Some(provider) => provider.delete_host(old).await.map_err(|e| e.to_string()),
        None => Err(format!("no provider `{}` is configured", host.provider)),
    };
    match deleted {
        Ok(()) => {
            s.fleet.revoke_host(old).await.map_err(retryable)?;
            retire_host_record(&ctx, old).await?;
            note(&ctx, &node, &format!("old host {old} deleted")).await;
            StepOutcome::done(json!({ "retired": old.to_string() }))
        }
        Err(e) => {
            if host.state != HostState::Quarantined
                && host.state.can_transition_to(HostState::Quarantined)
            {
                s.store
                    .transition_host_from(
                        old,
                        host.state,
                        HostState::Quarantined,
                        crate::steps::now(),
                    )
                    .await
                    .map_err(store_err)?;
            }
            note(&ctx, &node, &format!("old host {old} quarantined: {e}")).await;
            StepOutcome::done(json!({ "quarantined": old.to_string() }))
        }
    }
}

fn display(h: Option<HostId>) -> String {
    h.map_or_else(|| "(none)".into(), |h| h.to_string())
}
