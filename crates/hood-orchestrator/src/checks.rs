//! An upgrade manifest's pre- and post-checks (design §5): CEL over a
//! fresh round of the node's collectors, its sync view and the node, the
//! variables the chain's health policies read.
//!
//! The agent samples every collector on demand (`observe_workload`):
//! right after a start, the background schedule may not sample a
//! collector for a minute. A check that does not hold is retryable: a
//! process that just started answers a moment later, so the calling step's
//! retry policy or deadline says when "not yet" becomes "no".

use crate::services::{permanent, retryable, Ctx};
use crate::steps::{load_node, run_command_with, store_err};
use hood_chains::policy::{node_view, sync_view, CompiledChecks, PolicyInput};
use hood_chains::SyncNetwork;
use hood_domain::health::{evaluate_sync, HealthRules, SyncObservation};
use hood_domain::workload::{kinds, WorkloadObservation, WorkloadRef};
use hood_saga::StepError;
use serde_json::json;

/// Which of a manifest's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Before anything is touched: the node is fit to be upgraded.
    Pre,
    /// Once the new version serves: the upgrade counts as done.
    Post,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Self::Pre => "pre-check",
            Self::Post => "post-check",
        }
    }
}

/// Evaluates the `stage` checks of manifest `upgrade` on the node of this
/// run; answers what was checked (`{"passed": [names]}`). A check that does
/// not hold (or cannot be evaluated yet) is a retryable error naming it; a
/// manifest that is gone or no longer compiles is permanent.
pub(crate) async fn run_checks(
    ctx: &Ctx,
    host: hood_domain::HostId,
    upgrade: &str,
    stage: Stage,
) -> Result<serde_json::Value, StepError> {
    let node = load_node(ctx).await?;
    let chain = ctx
        .app
        .chains
        .get(&node.chain)
        .ok_or_else(|| permanent(format!("chain `{}` is not in the catalog", node.chain)))?;
    let manifest = chain.upgrade(upgrade).ok_or_else(|| {
        permanent(format!(
            "upgrade `{upgrade}` is no longer in the catalog of `{}`",
            node.chain
        ))
    })?;
    let checks = match stage {
        Stage::Pre => &manifest.pre_checks,
        Stage::Post => &manifest.post_checks,
    };
    if checks.is_empty() {
        return Ok(json!({ "passed": [] }));
    }
    let compiled = CompiledChecks::compile(checks, &chain.observation).map_err(permanent)?;

    let key = format!("{}-{}-{}", ctx.workflow_id, stage.label(), ctx.attempt);
    let payload = serde_json::to_value(WorkloadRef {
        workload_id: node.id.to_string(),
        lines: None,
    })
    .map_err(permanent)?;
    // An observation the agent cannot take now (the process still
    // starting, an older agent) is "not yet", like a failing check.
    let observed =
        run_command_with(ctx, host, kinds::OBSERVE_WORKLOAD, payload, &key, true).await?;
    let observed: WorkloadObservation = serde_json::from_value(observed)
        .map_err(|e| retryable(format!("odd observation from the agent: {e}")))?;

    let snapshot = ctx
        .app
        .store
        .node_snapshot(node.id)
        .await
        .map_err(store_err)?;
    let best = if chain.runtime.sync.network == SyncNetwork::Isolated {
        None
    } else {
        ctx.app
            .store
            .chain_heads()
            .await
            .map_err(store_err)?
            .get(&node.chain)
            .map(|t| t.best_head)
    };
    let (sync, peers) = SyncObservation::of(observed.sync.as_ref());
    let status = evaluate_sync(sync, best, &HealthRules::default());
    let now_ms = ctx.now.millis();
    let health = snapshot.and_then(|s| s.health);
    // A head the evaluator has not seen yet moved just now; a node the
    // evaluator has not judged yet (it just started serving) is as fresh
    // as its last change.
    let since_change = (now_ms - node.updated_at.millis()) / 1000;
    let head_age_s = match (&health, sync.head) {
        (_, None) => None,
        (_, Some(_)) if sync.head_since_ms.is_some() => sync
            .head_since_ms
            .map(|since| (now_ms - since).max(0) / 1000),
        (Some(h), Some(head)) if h.last_head != Some(head) => Some(0),
        (Some(h), Some(_)) => Some(
            h.head_changed_at
                .map_or(since_change, |t| (now_ms - t.millis()) / 1000),
        ),
        (None, Some(_)) => Some(since_change),
    };
    let input = PolicyInput::from_observation(
        &observed,
        sync_view(status.as_str(), sync.head, best, None, head_age_s, peers),
        node_view(&node.node_type, (now_ms - node.created_at.millis()) / 1000),
    );
    let results = compiled.evaluate(&input);
    if let Some(failed) = results.iter().find(|r| !r.passed) {
        let why = failed.error.as_deref().map_or_else(
            || "it is false".to_owned(),
            |e| format!("it cannot be evaluated: {e}"),
        );
        return Err(retryable(format!(
            "{} `{}` of {upgrade} does not hold: {why}",
            stage.label(),
            failed.name
        )));
    }
    Ok(json!({ "passed": results.iter().map(|r| r.name.as_str()).collect::<Vec<_>>() }))
}
