//! Node snapshots (design §5): a node's data directory in the object store,
//! under `snapshots/{node}/{name}/` (chunks and manifest, `hood-snapshot`).
//!
//! * [`NodeSnapshots`] (`snapshot_store.rs`) is where they live.
//! * `snapshot-node` v1: `maintenance`; stop, pack, start (the node is out
//!   only while its directory is packed locally); verify it serves again;
//!   `healthy`; upload (only the chunks the store lacks: a retry resumes);
//!   `complete`. A failure before the upload leaves the node serving as
//!   before; the snapshot is then `failed` and its objects deleted.
//! * `restore-node` v1: `maintenance`; stop; replace the data directory
//!   with a complete snapshot; start; verify; `healthy`.
//! * `migrate-node` v2 restores the latest complete snapshot on the new
//!   host before its first start ([`restore_latest`]); v3 first pulls the
//!   node's data from its old host when that host still answers
//!   ([`pull_from_old_host`]).

use crate::provision::{start_plan, START_POLICY};
use crate::services::{permanent, retryable, Ctx, Services};
use crate::snapshot_store::NodeSnapshots;
use crate::steps::{load_node, note, run_command, store_err, update_node};
use crate::upgrade::{leave_maintenance, verify_serving, Deadline, VERIFY_POLICY};
use crate::workflows::{RESTORE_NODE, SNAPSHOT_NODE};
use hood_domain::lifecycle::{NodeState, SyncStatus};
use hood_domain::node::Node;
use hood_domain::node_workflows::SnapshotNodeInput;
use hood_domain::snapshot::{NodeSnapshot, SnapshotState};
use hood_domain::workload::{
    kinds, DataSnapshotRef, PackedSnapshot, SyncReport, UploadedSnapshot, WorkloadRef,
};
use hood_domain::{HostId, NodeId};
use hood_saga::{RetryPolicy, Step, StepError, StepOutcome, Workflow};
use hood_snapshot::ChunkStore;
use hood_store::node::NodeChange;
use serde_json::json;
use std::time::Duration;

/// Seconds a node has to serve again after its snapshot or restore.
const VERIFY_TIMEOUT_S: u32 = 120;

/// Between looks at an upload still running on the agent (the command is
/// keyed by the run, so a look never starts a second upload).
const UPLOAD_POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 100_000,
    initial: Duration::from_secs(1),
    multiplier: 2.0,
    max: Duration::from_secs(10),
};

fn snapshots(ctx: &Ctx) -> Result<&NodeSnapshots, StepError> {
    ctx.app
        .snapshots
        .as_ref()
        .ok_or_else(|| permanent("no object store is configured for snapshots"))
}

fn input(ctx: &Ctx) -> Result<SnapshotNodeInput, StepError> {
    ctx.input_as()
}

fn data_ref(input: &SnapshotNodeInput) -> Result<serde_json::Value, StepError> {
    serde_json::to_value(DataSnapshotRef {
        workload_id: input.node_id.to_string(),
        snapshot: input.name.clone(),
    })
    .map_err(permanent)
}

fn workload_ref(node: NodeId) -> Result<serde_json::Value, StepError> {
    serde_json::to_value(WorkloadRef {
        workload_id: node.to_string(),
        lines: None,
    })
    .map_err(permanent)
}

/// The host `prepare` journaled.
fn host(ctx: &Ctx) -> Result<HostId, StepError> {
    ctx.output_of("prepare")
        .and_then(|o| o.get("host"))
        .and_then(|h| serde_json::from_value(h.clone()).ok())
        .ok_or_else(|| permanent("no host journaled by prepare"))
}

/// A serving node into `maintenance` (a re-run finds it there already).
async fn enter_maintenance(ctx: &Ctx, message: String) -> Result<HostId, StepError> {
    let node = load_node(ctx).await?;
    let serving = matches!(
        node.state,
        NodeState::Healthy | NodeState::Degraded | NodeState::Syncing | NodeState::Maintenance
    );
    let Some(host) = node.host_id.filter(|_| serving) else {
        return Err(permanent(format!(
            "node {} is {}: only a serving node is snapshotted or restored",
            node.id,
            node.state.as_str()
        )));
    };
    if node.state != NodeState::Maintenance {
        update_node(
            ctx,
            NodeChange {
                state: Some(NodeState::Maintenance),
                message,
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(host)
}

/// The node back to `healthy` at the head verify saw.
async fn leave_healthy(ctx: &Ctx, message: String) -> Result<Option<i64>, StepError> {
    let head = ctx
        .output_of("verify")
        .and_then(|v| v.get("head"))
        .and_then(serde_json::Value::as_i64);
    let node = load_node(ctx).await?;
    if node.state == NodeState::Maintenance {
        update_node(
            ctx,
            NodeChange {
                state: Some(NodeState::Healthy),
                sync_status: Some(SyncStatus::Synced),
                head_height: Some(head),
                message,
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(head)
}

/// Starts the node as it is pinned (same version, same data) and records
/// its endpoint; the verify deadline counts from here.
async fn start_again(ctx: &Ctx, host: HostId, what: &str) -> Result<i64, StepError> {
    let key = format!("{}-start-{}", ctx.workflow_id, ctx.attempt);
    let started = start_plan(ctx, host, &key).await?;
    update_node(
        ctx,
        NodeChange {
            rpc_endpoint: Some(started.endpoint),
            binary_version: Some(started.version),
            message: format!("{what}; verifying"),
            ..Default::default()
        },
    )
    .await?;
    Ok(ctx.now.millis())
}

async fn verify_again(ctx: Ctx, step: &str, floor: Option<i64>) -> Result<StepOutcome, StepError> {
    let started_at = ctx
        .output_of(step)
        .and_then(|o| o.get("started_at"))
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(ctx.now.millis());
    let deadline = Deadline {
        at_ms: started_at + i64::from(VERIFY_TIMEOUT_S) * 1000,
        timeout_s: VERIFY_TIMEOUT_S,
    };
    verify_serving(&ctx, host(&ctx)?, floor, deadline, "the node").await
}

// ---- snapshot-node ----

pub(crate) fn snapshot_workflow() -> Workflow<Services> {
    Workflow::new(SNAPSHOT_NODE.0, SNAPSHOT_NODE.1)
        .step(Step::new("record", record).undo(give_up))
        .step(Step::new("prepare", prepare_snapshot).undo(leave_maintenance))
        .step(Step::new("pack", pack).retry(START_POLICY))
        .step(Step::new("verify", verify_snapshot).retry(VERIFY_POLICY))
        .step(Step::new("serve", serve_again).retry(RetryPolicy::DEFAULT))
        .step(Step::new("upload", upload).retry(UPLOAD_POLICY))
        .step(Step::new("complete", complete).retry(RetryPolicy::DEFAULT))
}

/// A new snapshot's record, `uploading` (a replay finds the one stored).
async fn create_record(ctx: &Ctx, node: NodeId, name: &str, reason: &str) -> Result<(), StepError> {
    let snapshot = NodeSnapshot {
        node_id: node,
        name: name.to_owned(),
        state: SnapshotState::Uploading,
        reason: reason.to_owned(),
        head_height: None,
        files: 0,
        raw_bytes: 0,
        compressed_bytes: 0,
        chunks_total: 0,
        chunks_done: 0,
        error: None,
        created_at: ctx.now,
        completed_at: None,
    };
    ctx.app
        .store
        .create_snapshot(&snapshot)
        .await
        .map_err(store_err)?;
    Ok(())
}

/// Records the snapshot (`uploading`); a replay finds it.
async fn record(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    snapshots(&ctx)?;
    if !hood_domain::workload::valid_snapshot_name(&input.name) {
        return Err(permanent(format!(
            "`{}` is not a snapshot name (1-128 letters, digits, `-`, `_`)",
            input.name
        )));
    }
    let node = load_node(&ctx).await?;
    create_record(&ctx, node.id, &input.name, &input.reason).await?;
    StepOutcome::done(json!({ "name": input.name }))
}

/// Compensation: the snapshot is `failed` (why: the run's error) and its
/// objects are deleted.
async fn give_up(ctx: Ctx) -> Result<(), StepError> {
    let input = input(&ctx)?;
    discard(
        &ctx,
        input.node_id,
        &input.name,
        "the snapshot run failed; see its workflow",
    )
    .await
}

/// A snapshot that will not complete: `failed` with `why`, its objects
/// deleted.
async fn discard(ctx: &Ctx, node: NodeId, name: &str, why: &str) -> Result<(), StepError> {
    let s = &ctx.app;
    let Some(mut snapshot) = s.store.get_snapshot(node, name).await.map_err(store_err)? else {
        return Ok(());
    };
    if let Some(snapshots) = &s.snapshots {
        snapshots
            .chunks(node, name)
            .delete()
            .await
            .map_err(retryable)?;
    }
    snapshot.state = SnapshotState::Failed;
    snapshot.error = Some(why.to_owned());
    s.store.update_snapshot(&snapshot).await.map_err(store_err)
}

async fn prepare_snapshot(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let host = enter_maintenance(&ctx, format!("taking snapshot {}", input.name)).await?;
    StepOutcome::done(json!({ "host": host }))
}

/// Stop, pack, start, in one step: the node is out only while its data
/// directory is packed locally, and a failed pack still starts it again.
async fn pack(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let host = host(&ctx)?;
    let node = input.node_id;
    // Its head right before the stop: where a restore of it starts.
    let head = match run_command(
        &ctx,
        host,
        kinds::PROBE_SYNC,
        workload_ref(node)?,
        &format!("{}-probe", ctx.workflow_id),
    )
    .await
    {
        Ok(out) => serde_json::from_value::<SyncReport>(out)
            .ok()
            .and_then(|r| r.head),
        Err(_) => None,
    };
    let key = |what: &str| format!("{}-{what}", ctx.workflow_id);
    run_command(
        &ctx,
        host,
        kinds::STOP_WORKLOAD,
        workload_ref(node)?,
        &key("stop"),
    )
    .await?;
    let packed = run_command(
        &ctx,
        host,
        kinds::PACK_SNAPSHOT,
        data_ref(&input)?,
        &key("pack"),
    )
    .await;
    let started_at = start_again(&ctx, host, &format!("snapshot {} packed", input.name)).await?;
    let packed: PackedSnapshot = serde_json::from_value(packed?).map_err(permanent)?;
    record_packed(&ctx, node, &input.name, head, &packed).await?;
    StepOutcome::done(json!({ "started_at": started_at, "head": head, "packed": packed }))
}

async fn verify_snapshot(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let floor = ctx
        .output_of("pack")
        .and_then(|o| o.get("head"))
        .and_then(serde_json::Value::as_i64);
    verify_again(ctx, "pack", floor).await
}

async fn serve_again(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let head = leave_healthy(&ctx, format!("snapshot {} packed; uploading", input.name)).await?;
    StepOutcome::done(json!({ "head": head }))
}

/// The agent sends what the store lacks; the command is keyed by the run,
/// so looking again waits on the same upload rather than starting another.
async fn upload(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let out = run_command(
        &ctx,
        host(&ctx)?,
        kinds::UPLOAD_SNAPSHOT,
        data_ref(&input)?,
        &format!("{}-upload", ctx.workflow_id),
    )
    .await?;
    let uploaded: UploadedSnapshot = serde_json::from_value(out).map_err(permanent)?;
    StepOutcome::done(uploaded)
}

async fn complete(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let uploaded = ctx
        .output_of("upload")
        .and_then(|v| serde_json::from_value::<UploadedSnapshot>(v.clone()).ok());
    let node = load_node(&ctx).await?;
    let snapshot = mark_complete(&ctx, &node, &input.name, uploaded.as_ref(), "stored").await?;
    StepOutcome::done(json!({ "name": input.name, "head": snapshot.head_height }))
}

/// Records an uploaded snapshot `complete` once its manifest is in the
/// object store (what makes it restorable), with a note in the node's
/// history saying what the upload did (`what`: how it came to be).
async fn mark_complete(
    ctx: &Ctx,
    node: &Node,
    name: &str,
    uploaded: Option<&UploadedSnapshot>,
    what: &str,
) -> Result<NodeSnapshot, StepError> {
    let s = &ctx.app;
    let manifest = snapshots(ctx)?
        .chunks(node.id, name)
        .manifest()
        .await
        .map_err(retryable)?
        .ok_or_else(|| permanent("the upload ended without a manifest"))?;
    let mut snapshot = s
        .store
        .get_snapshot(node.id, name)
        .await
        .map_err(store_err)?
        .ok_or_else(|| permanent("the snapshot's record is gone"))?;
    if snapshot.state != SnapshotState::Complete {
        snapshot.state = SnapshotState::Complete;
        snapshot.chunks_total = i64::try_from(manifest.chunks.len()).unwrap_or(i64::MAX);
        snapshot.chunks_done = snapshot.chunks_total;
        snapshot.completed_at = Some(ctx.now);
        s.store
            .update_snapshot(&snapshot)
            .await
            .map_err(store_err)?;
        // What the upload did: a resumed one sent only what was missing.
        let sent = uploaded.map_or_else(String::new, |u| {
            format!(
                "; {} chunks sent, {} already stored, {} interruptions",
                u.sent, u.skipped, u.interruptions
            )
        });
        note(
            ctx,
            node,
            &format!(
                "snapshot {name} {what} ({} chunks, {} bytes compressed, head {}{sent})",
                snapshot.chunks_total,
                snapshot.compressed_bytes,
                snapshot
                    .head_height
                    .map_or_else(|| "?".to_owned(), |h| h.to_string())
            ),
        )
        .await;
    }
    Ok(snapshot)
}

/// Stats of a local pack into the snapshot's record.
async fn record_packed(
    ctx: &Ctx,
    node: NodeId,
    name: &str,
    head: Option<i64>,
    packed: &PackedSnapshot,
) -> Result<(), StepError> {
    let s = &ctx.app;
    if let Some(mut snapshot) = s.store.get_snapshot(node, name).await.map_err(store_err)? {
        snapshot.head_height = head;
        snapshot.files = i64::try_from(packed.files).unwrap_or(i64::MAX);
        snapshot.raw_bytes = i64::try_from(packed.raw_bytes).unwrap_or(i64::MAX);
        snapshot.compressed_bytes = i64::try_from(packed.compressed_bytes).unwrap_or(i64::MAX);
        snapshot.chunks_total = i64::from(packed.chunks);
        s.store
            .update_snapshot(&snapshot)
            .await
            .map_err(store_err)?;
    }
    Ok(())
}

// ---- restore-node ----

pub(crate) fn restore_workflow() -> Workflow<Services> {
    Workflow::new(RESTORE_NODE.0, RESTORE_NODE.1)
        .step(Step::new("prepare", prepare_restore).undo(leave_maintenance))
        .step(Step::new("restore", restore).retry(START_POLICY))
        .step(Step::new("verify", verify_restore).retry(VERIFY_POLICY))
        .step(Step::new("finish", finish_restore).retry(RetryPolicy::DEFAULT))
}

async fn prepare_restore(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    snapshots(&ctx)?;
    let snapshot = ctx
        .app
        .store
        .get_snapshot(input.node_id, &input.name)
        .await
        .map_err(store_err)?
        .filter(|s| s.state == SnapshotState::Complete)
        .ok_or_else(|| {
            permanent(format!(
                "node {} has no complete snapshot `{}`",
                input.node_id, input.name
            ))
        })?;
    let host = enter_maintenance(&ctx, format!("restoring snapshot {}", input.name)).await?;
    StepOutcome::done(json!({ "host": host, "head": snapshot.head_height }))
}

/// Stop, replace the data, start; a failed restore leaves the data as it
/// was (the agent swaps directories only when all arrived) and starts it
/// again.
async fn restore(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let host = host(&ctx)?;
    let key = |what: &str| format!("{}-{what}", ctx.workflow_id);
    run_command(
        &ctx,
        host,
        kinds::STOP_WORKLOAD,
        workload_ref(input.node_id)?,
        &key("stop"),
    )
    .await?;
    let restored = run_command(
        &ctx,
        host,
        kinds::RESTORE_SNAPSHOT,
        data_ref(&input)?,
        &key("restore"),
    )
    .await;
    let what = match &restored {
        Ok(_) => format!("data restored from snapshot {}", input.name),
        Err(e) => format!(
            "restore of {} failed ({}); started as before",
            input.name,
            e.message()
        ),
    };
    let started_at = start_again(&ctx, host, &what).await?;
    let restored = restored?;
    StepOutcome::done(json!({ "started_at": started_at, "restored": restored }))
}

async fn verify_restore(ctx: Ctx) -> Result<StepOutcome, StepError> {
    // Restored data is older than the head seen before: it need only serve.
    verify_again(ctx, "restore", None).await
}

async fn finish_restore(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let input = input(&ctx)?;
    let head = leave_healthy(&ctx, format!("restored from snapshot {}", input.name)).await?;
    StepOutcome::done(json!({ "head": head }))
}

// ---- warm migration ----

/// `migrate-node` v2: the new host restores the node's latest complete
/// snapshot before the first start, so the node continues from that height.
/// No snapshot (or no object store): it starts empty, as before.
pub(crate) async fn restore_latest(ctx: Ctx) -> Result<StepOutcome, StepError> {
    if ctx.app.snapshots.is_none() {
        return StepOutcome::done(json!({ "restored": null }));
    }
    let node = load_node(&ctx).await?;
    let Some(latest) = ctx
        .app
        .store
        .latest_complete_snapshot(node.id)
        .await
        .map_err(store_err)?
    else {
        return StepOutcome::done(json!({ "restored": null }));
    };
    let host = crate::steps::host_id_for(&ctx.workflow_id);
    let payload = serde_json::to_value(DataSnapshotRef {
        workload_id: node.id.to_string(),
        snapshot: latest.name.clone(),
    })
    .map_err(permanent)?;
    if let Err(e) = run_command(
        &ctx,
        host,
        kinds::RESTORE_SNAPSHOT,
        payload,
        &format!("{}-restore-{}", ctx.workflow_id, latest.name),
    )
    .await
    {
        if e.is_retryable() {
            return Err(e);
        }
        // A snapshot that cannot be restored must not keep the node down:
        // it starts empty and syncs, as without one.
        crate::steps::warn(
            &ctx,
            &node,
            &format!(
                "snapshot {} could not be restored on host {host} ({}); starting without it",
                latest.name,
                e.message()
            ),
        )
        .await;
        return StepOutcome::done(json!({ "restored": null, "error": e.message() }));
    }
    note(
        &ctx,
        &node,
        &format!(
            "data restored on host {host} from snapshot {} (head {})",
            latest.name,
            latest
                .head_height
                .map_or_else(|| "?".to_owned(), |h| h.to_string())
        ),
    )
    .await;
    StepOutcome::done(json!({ "restored": latest.name, "head": latest.head_height }))
}

/// How long a migration keeps trying to pull a node's data from its old
/// host before it gives up on it and restores the latest snapshot: the node
/// is down meanwhile.
const PULL_DEADLINE_MS: i64 = 10 * 60 * 1000;

/// Between looks at a pull under way (each look waits on the same keyed
/// commands); a pull gives up by itself at [`PULL_DEADLINE_MS`], well
/// before these attempts run out.
pub(crate) const PULL_POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 10_000,
    initial: Duration::from_secs(1),
    multiplier: 2.0,
    max: Duration::from_secs(5),
};

/// Warm migration's first choice (`migrate-node` v3): when the old host's
/// agent still answers — the node is down because its process does not
/// run there, not because the host is gone — the node's data is packed
/// there and uploaded as snapshot `{run id}` (reason `migration`), newer
/// than any other, so the restore that follows takes it. The node stays
/// placed on the old host until then, which is what lets that host upload
/// it. An unreachable host, a failed pull or one past its deadline falls
/// back to the latest earlier snapshot (the pulled one is then `failed`).
pub(crate) async fn pull_from_old_host(
    ctx: &Ctx,
    old: Option<HostId>,
) -> Result<StepOutcome, StepError> {
    let skipped = |why: &str| StepOutcome::done(json!({ "pulled": null, "why": why }));
    let (Some(old), Some(_)) = (old, &ctx.app.snapshots) else {
        return skipped("no old host or no object store");
    };
    let node = load_node(ctx).await?;
    let name = ctx.workflow_id.clone();
    let s = &ctx.app;
    let started_at = match s
        .store
        .get_snapshot(node.id, &name)
        .await
        .map_err(store_err)?
    {
        Some(done) if done.state == SnapshotState::Complete => {
            return StepOutcome::done(json!({ "pulled": name }));
        }
        Some(failed) if failed.state == SnapshotState::Failed => {
            return skipped("the pull failed");
        }
        Some(under_way) => under_way.created_at,
        None => {
            if !s.fleet.host_connected(old).await.map_err(retryable)? {
                note(
                    ctx,
                    &node,
                    &format!("old host {old} is unreachable: restoring the latest snapshot"),
                )
                .await;
                return skipped("the old host is unreachable");
            }
            create_record(ctx, node.id, &name, "migration").await?;
            ctx.now
        }
    };
    match pull(ctx, old, &node, &name).await {
        Ok(uploaded) => {
            let what = format!("pulled from old host {old}");
            let snapshot = mark_complete(ctx, &node, &name, Some(&uploaded), &what).await?;
            StepOutcome::done(json!({ "pulled": name, "head": snapshot.head_height }))
        }
        Err(e) if e.is_retryable() && ctx.now.millis() < started_at.millis() + PULL_DEADLINE_MS => {
            Err(e)
        }
        Err(e) => {
            let why = format!("pulling from old host {old} failed: {}", e.message());
            discard(ctx, node.id, &name, &why).await?;
            crate::steps::warn(ctx, &node, &format!("{why}; restoring the latest snapshot")).await;
            skipped(&why)
        }
    }
}

/// Stop (a process that still runs there would keep writing), pack and
/// upload on the old host, each command keyed by the run so a look again
/// waits on the same one.
async fn pull(
    ctx: &Ctx,
    old: HostId,
    node: &Node,
    name: &str,
) -> Result<UploadedSnapshot, StepError> {
    let key = |what: &str| format!("{}-pull-{what}", ctx.workflow_id);
    let data = serde_json::to_value(DataSnapshotRef {
        workload_id: node.id.to_string(),
        snapshot: name.to_owned(),
    })
    .map_err(permanent)?;
    run_command(
        ctx,
        old,
        kinds::STOP_WORKLOAD,
        workload_ref(node.id)?,
        &key("stop"),
    )
    .await?;
    let packed = run_command(ctx, old, kinds::PACK_SNAPSHOT, data.clone(), &key("pack")).await?;
    let packed: PackedSnapshot = serde_json::from_value(packed).map_err(permanent)?;
    // The head it last reported: about where its data stands.
    record_packed(ctx, node.id, name, node.head_height, &packed).await?;
    let out = run_command(ctx, old, kinds::UPLOAD_SNAPSHOT, data, &key("upload")).await?;
    serde_json::from_value(out).map_err(permanent)
}
