//! `upgrade-node` v1: one node moved to another version of one of its
//! binaries (design §5, the seed's UpgradeNodeWorkflow). Each step is one
//! action on the node's host with the compensation that undoes it, run in
//! reverse when a later step fails:
//!
//! | step       | action                                    | compensation              |
//! |------------|-------------------------------------------|---------------------------|
//! | `prepare`  | it serves, its pre-checks hold;           | back to `syncing`         |
//! |            | `maintenance`                             |                           |
//! | `stop`     | stop its processes (state flushed)        | start the previous version|
//! | `snapshot` | copy the data aside (`forward_only`), or  | restore that copy         |
//! |            | put a snapshot back (a revert)            |                           |
//! | `pin`      | pin the node to the new version           | pin the previous one      |
//! | `start`    | fetch, verify, install and start it       | stop it                   |
//! | `verify`   | synced, at or past its old head, its      |                           |
//! |            | post-checks hold, in time                 |                           |
//! | `finish`   | `healthy`                                 |                           |
//!
//! The checks are the manifest's (`upgrade_id` of the input): CEL over a
//! fresh round of the node's collectors ([`crate::checks`]). A pre-check
//! that does not hold within [`PREPARE_POLICY`] leaves the node untouched;
//! a post-check that does not hold by the verify deadline reverts it.
//!
//! A revert is the same workflow towards the previous version; for a
//! `forward_only` upgrade it restores the snapshot the upgrade took
//! instead of taking one (data-aware rollback). A node already on the
//! target version is left alone, so a replayed rollout never upgrades a
//! node twice. Agent commands are keyed by the run's id: redelivery after
//! a crash finds the command instead of repeating it.

use crate::checks::{run_checks, Stage};
use crate::provision::{start_plan, START_POLICY};
use crate::services::{permanent, retryable, Ctx, Services};
use crate::steps::{load_node, note, now, run_command, store_err, update_node};
use crate::workflows::UPGRADE_NODE;
use hood_domain::lifecycle::{NodeState, SyncStatus};
use hood_domain::machine::StateMachine;
use hood_domain::node_workflows::UpgradeNodeInput;
use hood_domain::rollout::PinnedBinary;
use hood_domain::workload::{kinds, DataSnapshotRef, SyncReport, WorkloadRef};
use hood_saga::{RetryPolicy, Step, StepError, StepOutcome, Workflow};
use hood_store::node::NodeChange;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

pub(crate) fn workflow() -> Workflow<Services> {
    Workflow::new(UPGRADE_NODE.0, UPGRADE_NODE.1)
        .step(
            Step::new("prepare", prepare)
                .retry(PREPARE_POLICY)
                .undo(leave_maintenance),
        )
        .step(
            Step::new("stop", stop)
                .retry(RetryPolicy::DEFAULT)
                .undo(start_previous),
        )
        .step(
            Step::new("snapshot", snapshot)
                .retry(RetryPolicy::DEFAULT)
                .undo(restore_own_snapshot),
        )
        .step(Step::new("pin", pin).undo(unpin))
        .step(Step::new("start", start).retry(START_POLICY).undo(stop_new))
        .step(Step::new("verify", verify).retry(VERIFY_POLICY))
        .step(Step::new("finish", finish).retry(RetryPolicy::DEFAULT))
}

/// Between probes of a new version that is not serving yet; the step's
/// own deadline (`verify_timeout_s`) is what fails it.
pub(crate) const VERIFY_POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 10_000,
    initial: Duration::from_secs(1),
    multiplier: 1.0,
    max: Duration::from_secs(1),
};

/// Between evaluations of pre-checks that do not hold yet (a collector
/// whose first sample failed, a head that has not moved since the last
/// look): thirty, a second apart, then the upgrade fails untouched.
pub(crate) const PREPARE_POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 30,
    initial: Duration::from_secs(1),
    multiplier: 1.0,
    max: Duration::from_secs(1),
};

/// What `prepare` found, journaled for the later steps and undos.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Prepared {
    /// Already on the target version: every later step does nothing.
    skip: bool,
    host: Option<hood_domain::HostId>,
    /// What the binary ran before: where a compensation goes back to.
    previous: PinnedBinary,
    /// Its head before the upgrade; the new version must reach it.
    head: Option<i64>,
}

fn prepared(ctx: &Ctx) -> Result<Prepared, StepError> {
    ctx.output_as("prepare")
}

fn host_of(p: &Prepared) -> Result<hood_domain::HostId, StepError> {
    p.host
        .ok_or_else(|| permanent("the node runs on no host".to_string()))
}

async fn prepare(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let input: UpgradeNodeInput = ctx.input_as()?;
    let node = load_node(&ctx).await?;
    let chain = ctx
        .app
        .chains
        .get(&node.chain)
        .ok_or_else(|| permanent(format!("chain `{}` is not in the catalog", node.chain)))?;
    let binary = chain
        .profile
        .binaries
        .iter()
        .find(|b| b.name == input.target.binary)
        .ok_or_else(|| {
            permanent(format!(
                "chain `{}` has no binary `{}`",
                node.chain, input.target.binary
            ))
        })?;
    let pins = ctx
        .app
        .store
        .node_binaries(node.id)
        .await
        .map_err(store_err)?;
    let previous = pins
        .into_iter()
        .find(|p| p.binary == binary.name)
        .unwrap_or_else(|| PinnedBinary {
            binary: binary.name.clone(),
            artifact: binary.artifact.clone(),
            version: binary.version.clone(),
        });
    if previous.version == input.target.version && node.state != NodeState::Maintenance {
        note(
            &ctx,
            &node,
            &format!(
                "{} is already at {}: nothing to do",
                previous.binary, previous.version
            ),
        )
        .await;
        return StepOutcome::done(Prepared {
            skip: true,
            host: node.host_id,
            previous,
            head: node.head_height,
        });
    }
    // A re-run after a crash finds the node already in maintenance.
    if node.state != NodeState::Maintenance {
        let serving = matches!(
            node.state,
            NodeState::Healthy | NodeState::Degraded | NodeState::Syncing
        );
        if !serving || node.host_id.is_none() {
            return Err(permanent(format!(
                "node {} is {}: only a serving node is upgraded",
                node.id,
                node.state.as_str()
            )));
        }
        let host = node
            .host_id
            .ok_or_else(|| permanent("the node runs on no host".to_string()))?;
        if let Some(upgrade) = &input.upgrade_id {
            let passed = run_checks(&ctx, host, upgrade, Stage::Pre).await?;
            tracing::info!(node = %node.id, %upgrade, %passed, "pre-checks hold");
        }
        update_node(
            &ctx,
            NodeChange {
                state: Some(NodeState::Maintenance),
                message: format!(
                    "upgrading {} {} → {}",
                    previous.binary, previous.version, input.target.version
                ),
                ..Default::default()
            },
        )
        .await?;
    }
    StepOutcome::done(Prepared {
        skip: false,
        host: node.host_id,
        previous,
        head: node.head_height,
    })
}

/// Hands the node back to the health role, which judges it from its
/// observations again.
pub(crate) async fn leave_maintenance(ctx: Ctx) -> Result<(), StepError> {
    let node = load_node(&ctx).await?;
    if node.state != NodeState::Maintenance {
        return Ok(());
    }
    update_node(
        &ctx,
        NodeChange {
            state: Some(NodeState::Syncing),
            message: format!("{} rolled back; the node runs as before", ctx.workflow_name),
            ..Default::default()
        },
    )
    .await
    .map(|_| ())
}

fn workload(ctx: &Ctx) -> Result<serde_json::Value, StepError> {
    let input: crate::services::NodeInput = ctx.input_as()?;
    serde_json::to_value(WorkloadRef {
        workload_id: input.node_id.to_string(),
        lines: None,
    })
    .map_err(permanent)
}

async fn stop(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let p = prepared(&ctx)?;
    if p.skip {
        return StepOutcome::done(json!({ "skipped": true }));
    }
    let key = format!("{}-stop", ctx.workflow_id);
    run_command(
        &ctx,
        host_of(&p)?,
        kinds::STOP_WORKLOAD,
        workload(&ctx)?,
        &key,
    )
    .await?;
    StepOutcome::done(json!({ "stopped": true }))
}

/// Starts whatever the node is pinned to (the previous version, once the
/// pin's undo ran) and records its endpoint.
async fn start_previous(ctx: Ctx) -> Result<(), StepError> {
    let p = prepared(&ctx)?;
    if p.skip {
        return Ok(());
    }
    let key = format!("{}-restart-{}", ctx.workflow_id, ctx.attempt);
    let started = start_plan(&ctx, host_of(&p)?, &key).await?;
    update_node(
        &ctx,
        NodeChange {
            rpc_endpoint: Some(started.endpoint),
            binary_version: Some(started.version),
            message: format!("{} {} started again", p.previous.binary, p.previous.version),
            ..Default::default()
        },
    )
    .await
    .map(|_| ())
}

async fn snapshot(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let p = prepared(&ctx)?;
    let input: UpgradeNodeInput = ctx.input_as()?;
    if p.skip {
        return StepOutcome::done(json!({ "skipped": true }));
    }
    let host = host_of(&p)?;
    if let Some(name) = &input.restore_snapshot {
        // A revert of a forward_only upgrade: its data goes back too.
        let payload = snapshot_ref(&input, name)?;
        let key = format!("{}-restore", ctx.workflow_id);
        let out = run_command(&ctx, host, kinds::RESTORE_DATA, payload, &key).await?;
        let node = load_node(&ctx).await?;
        note(
            &ctx,
            &node,
            &format!("data directory restored from snapshot {name}"),
        )
        .await;
        return StepOutcome::done(json!({ "restored": name, "copy": out }));
    }
    if !input.target.forward_only {
        return StepOutcome::done(json!({ "taken": null }));
    }
    let name = ctx.workflow_id.clone();
    let payload = snapshot_ref(&input, &name)?;
    let key = format!("{}-snapshot", ctx.workflow_id);
    let out = run_command(&ctx, host, kinds::SNAPSHOT_DATA, payload, &key).await?;
    let node = load_node(&ctx).await?;
    note(
        &ctx,
        &node,
        &format!("data directory snapshotted as {name}"),
    )
    .await;
    StepOutcome::done(json!({ "taken": name, "copy": out }))
}

fn snapshot_ref(input: &UpgradeNodeInput, name: &str) -> Result<serde_json::Value, StepError> {
    serde_json::to_value(DataSnapshotRef {
        workload_id: input.node_id.to_string(),
        snapshot: name.to_owned(),
    })
    .map_err(permanent)
}

/// Puts the data taken before the first start of a `forward_only` version
/// back: what that version wrote may not open with the previous one.
async fn restore_own_snapshot(ctx: Ctx) -> Result<(), StepError> {
    let taken = ctx
        .output
        .as_ref()
        .and_then(|o| o.get("taken"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    let Some(name) = taken else { return Ok(()) };
    let p = prepared(&ctx)?;
    let input: UpgradeNodeInput = ctx.input_as()?;
    let key = format!("{}-undo-restore-{}", ctx.workflow_id, ctx.attempt);
    run_command(
        &ctx,
        host_of(&p)?,
        kinds::RESTORE_DATA,
        snapshot_ref(&input, &name)?,
        &key,
    )
    .await?;
    let node = load_node(&ctx).await?;
    note(
        &ctx,
        &node,
        &format!("data directory restored from snapshot {name}"),
    )
    .await;
    Ok(())
}

async fn pin(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let p = prepared(&ctx)?;
    if p.skip {
        return StepOutcome::done(json!({ "skipped": true }));
    }
    let input: UpgradeNodeInput = ctx.input_as()?;
    let pin = PinnedBinary {
        binary: input.target.binary.clone(),
        artifact: input.target.artifact.clone(),
        version: input.target.version.clone(),
    };
    ctx.app
        .store
        .pin_node_binary(input.node_id, &pin, now())
        .await
        .map_err(store_err)?;
    StepOutcome::done(json!({ "pinned": pin.version }))
}

async fn unpin(ctx: Ctx) -> Result<(), StepError> {
    let p = prepared(&ctx)?;
    if p.skip {
        return Ok(());
    }
    let input: UpgradeNodeInput = ctx.input_as()?;
    ctx.app
        .store
        .pin_node_binary(input.node_id, &p.previous, now())
        .await
        .map_err(store_err)
}

async fn start(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let p = prepared(&ctx)?;
    if p.skip {
        return StepOutcome::done(json!({ "skipped": true }));
    }
    let key = format!("{}-start-{}", ctx.workflow_id, ctx.attempt);
    let started = start_plan(&ctx, host_of(&p)?, &key).await?;
    update_node(
        &ctx,
        NodeChange {
            rpc_endpoint: Some(started.endpoint),
            binary_version: Some(started.version.clone()),
            message: format!(
                "{} {} started; verifying",
                p.previous.binary,
                started.version.as_deref().unwrap_or("?")
            ),
            ..Default::default()
        },
    )
    .await?;
    // The verify deadline counts from here (journaled, so a crash neither
    // shortens nor extends it).
    StepOutcome::done(json!({ "started_at": ctx.now.millis() }))
}

async fn stop_new(ctx: Ctx) -> Result<(), StepError> {
    let p = prepared(&ctx)?;
    if p.skip {
        return Ok(());
    }
    let key = format!("{}-undo-stop-{}", ctx.workflow_id, ctx.attempt);
    run_command(
        &ctx,
        host_of(&p)?,
        kinds::STOP_WORKLOAD,
        workload(&ctx)?,
        &key,
    )
    .await
    .map(|_| ())
}

async fn verify(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let p = prepared(&ctx)?;
    if p.skip {
        return StepOutcome::done(json!({ "skipped": true }));
    }
    let input: UpgradeNodeInput = ctx.input_as()?;
    let started_at = ctx
        .output_of("start")
        .and_then(|o| o.get("started_at"))
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(ctx.now.millis());
    let deadline = started_at + i64::from(input.verify_timeout_s) * 1000;
    // Restored data is older than the head seen before: it need not reach
    // that head, only serve and be synced.
    let floor = if input.restore_snapshot.is_some() {
        None
    } else {
        p.head
    };
    let what = format!("{} {}", input.target.binary, input.target.version);
    let deadline = Deadline {
        at_ms: deadline,
        timeout_s: input.verify_timeout_s,
    };
    let host = host_of(&p)?;
    let at_ms = deadline.at_ms;
    let serving = verify_serving(&ctx, host, floor, deadline, &what).await?;
    let Some(upgrade) = &input.upgrade_id else {
        return Ok(serving);
    };
    match run_checks(&ctx, host, upgrade, Stage::Post).await {
        Ok(_) => Ok(serving),
        Err(e) if e.is_retryable() && now().millis() >= at_ms => Err(permanent(format!(
            "{what} serves but not as it should within {} s: {}",
            input.verify_timeout_s,
            e.message()
        ))),
        Err(e) => Err(e),
    }
}

/// When a verification gives up.
pub(crate) struct Deadline {
    pub at_ms: i64,
    pub timeout_s: u32,
}

/// One probe of the node: `Done({head})` once it is synced at or past
/// `floor`; else retryable until `deadline`, then permanent (the
/// compensation runs).
pub(crate) async fn verify_serving(
    ctx: &Ctx,
    host: hood_domain::HostId,
    floor: Option<i64>,
    deadline: Deadline,
    what: &str,
) -> Result<StepOutcome, StepError> {
    let key = format!("{}-probe-{}", ctx.workflow_id, ctx.attempt);
    let last = match run_command(ctx, host, kinds::PROBE_SYNC, workload(ctx)?, &key)
        .await
        .and_then(|out| {
            serde_json::from_value::<SyncReport>(out)
                .map_err(|e| retryable(format!("odd probe answer: {e}")))
        }) {
        Ok(r) if r.synced && r.head.is_some() && r.head >= floor => {
            return StepOutcome::done(json!({ "head": r.head }));
        }
        Ok(r) => format!(
            "not serving its old head yet (head {:?}, was {:?}, synced {})",
            r.head, floor, r.synced
        ),
        Err(e) => e.message().to_owned(),
    };
    if now().millis() >= deadline.at_ms {
        return Err(permanent(format!(
            "{what} did not serve within {} s: {last}",
            deadline.timeout_s
        )));
    }
    Err(retryable(last))
}

async fn finish(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let p = prepared(&ctx)?;
    let input: UpgradeNodeInput = ctx.input_as()?;
    if p.skip {
        return StepOutcome::done(json!({ "version": p.previous.version, "skipped": true }));
    }
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
                message: format!(
                    "{} {} → {}: done",
                    p.previous.binary, p.previous.version, input.target.version
                ),
                ..Default::default()
            },
        )
        .await?;
    } else if !node.state.is_terminal() {
        note(&ctx, &node, "upgrade done").await;
    }
    StepOutcome::done(json!({
        "version": input.target.version,
        "from": p.previous.version,
        "head": head,
    }))
}
