//! `provision-node` v2's `seed_data`: a new node that starts from another
//! node's complete snapshot.

use crate::services::{permanent, retryable, Ctx};
use crate::steps::{load_node, note, run_command, store_err};
use hood_domain::snapshot::{NodeSnapshot, SnapshotState};
use hood_domain::workload::{kinds, DataSnapshotRef};
use hood_saga::{StepError, StepOutcome};
use serde_json::json;

/// `provision-node` v2: a node asked for with a seed starts from another
/// node's complete snapshot: the objects are copied under the new node
/// (recorded as its own `bootstrap` snapshot) and restored on its host
/// before the first start.
pub(crate) async fn seed_from_snapshot(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let input: hood_domain::node_workflows::ProvisionInput = ctx.input_as()?;
    let Some(seed) = input.seed else {
        return StepOutcome::done(json!({ "seeded": null }));
    };
    let snapshots = ctx
        .app
        .snapshots
        .as_ref()
        .ok_or_else(|| permanent("no object store is configured for snapshots"))?;
    let s = &ctx.app;
    let source = s
        .store
        .get_snapshot(seed.node_id, &seed.snapshot)
        .await
        .map_err(store_err)?
        .filter(|x| x.state == SnapshotState::Complete)
        .ok_or_else(|| {
            permanent(format!(
                "node {} has no complete snapshot `{}` to start from",
                seed.node_id, seed.snapshot
            ))
        })?;
    let node = load_node(&ctx).await?;
    snapshots
        .copy(seed.node_id, &seed.snapshot, node.id)
        .await
        .map_err(retryable)?;
    let own = NodeSnapshot {
        node_id: node.id,
        reason: "bootstrap".into(),
        created_at: ctx.now,
        completed_at: Some(ctx.now),
        error: None,
        ..source.clone()
    };
    s.store.create_snapshot(&own).await.map_err(store_err)?;
    let host = crate::steps::host_id_for(&ctx.workflow_id);
    let payload = serde_json::to_value(DataSnapshotRef {
        workload_id: node.id.to_string(),
        snapshot: seed.snapshot.clone(),
    })
    .map_err(permanent)?;
    run_command(
        &ctx,
        host,
        kinds::RESTORE_SNAPSHOT,
        payload,
        &format!("{}-seed", ctx.workflow_id),
    )
    .await?;
    note(
        &ctx,
        &node,
        &format!(
            "data seeded from snapshot {} of node {} (head {})",
            seed.snapshot,
            seed.node_id,
            source
                .head_height
                .map_or_else(|| "?".to_owned(), |h| h.to_string())
        ),
    )
    .await;
    StepOutcome::done(json!({ "seeded": seed.snapshot, "head": source.head_height }))
}
