//! `terminate-node` v1: stop the node, wipe its keys and snapshots, delete its host,
//! `terminated`. Every step tolerates what is already gone, so the
//! workflow also cleans up after a half-finished provisioning.

use crate::services::{permanent, retryable, Ctx, Services};
use crate::steps::{
    load_node, note, poll_until, retire_host_record, run_command, store_err, update_node,
};
use crate::workflows::{provision_id, TERMINATE_NODE};
use hood_domain::lifecycle::NodeState;
use hood_domain::machine::StateMachine;
use hood_domain::workload::{kinds, WorkloadRef};
use hood_saga::{RetryPolicy, Step, StepError, StepOutcome, Workflow, WorkflowState};
use hood_store::fleet::HostFilter;
use hood_store::node::NodeChange;
use serde_json::json;
use std::time::Duration;

pub(crate) fn workflow() -> Workflow<Services> {
    Workflow::new(TERMINATE_NODE.0, TERMINATE_NODE.1)
        .step(Step::new("begin", begin).retry(RetryPolicy::WAIT_FOR_AGENT))
        .step(Step::new("stop_node", stop_node).retry(RetryPolicy::DEFAULT))
        .step(Step::new("wipe_keys", wipe_keys).retry(RetryPolicy::DEFAULT))
        .step(Step::new("delete_hosts", delete_hosts).retry(RetryPolicy::INFRASTRUCTURE))
        .step(Step::new("finish", finish))
}

/// Waits for a running provision saga to settle (it was sent `abort`),
/// then marks the node `terminating`.
async fn begin(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
    let provision = provision_id(node.id);
    let engine = ctx.runs();
    let settled = poll_until(Duration::from_secs(20), || {
        let engine = engine.clone();
        let provision = provision.clone();
        async move {
            match engine.get(&provision).await {
                Ok(Some(d)) => {
                    Ok(d.workflow.state.is_terminal() || d.workflow.state == WorkflowState::Stuck)
                }
                Ok(None) => Ok(true),
                Err(e) => Err(retryable(e)),
            }
        }
    })
    .await?;
    if !settled {
        return Err(retryable("waiting for the provisioning workflow to stop"));
    }
    let node = load_node(&ctx).await?;
    if !node.state.is_terminal() && node.state != NodeState::Terminating {
        update_node(
            &ctx,
            NodeChange {
                state: Some(NodeState::Terminating),
                message: "termination requested".into(),
                ..Default::default()
            },
        )
        .await?;
    }
    StepOutcome::done(json!({ "from": node.state.as_str() }))
}

async fn stop_node(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
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
        // Host deletion below kills whatever still runs there.
        return StepOutcome::done(json!({ "stopped": false }));
    }
    let payload = serde_json::to_value(WorkloadRef {
        workload_id: node.id.to_string(),
        lines: None,
    })
    .map_err(permanent)?;
    run_command(
        &ctx,
        host,
        kinds::REMOVE_WORKLOAD,
        payload,
        &format!("terminate-remove-{}", node.id),
    )
    .await?;
    note(&ctx, &node, "node stopped and its data removed").await;
    StepOutcome::done(json!({ "stopped": true }))
}

/// Wipes the node's key material and deletes its snapshots: they hold its
/// data, and the keys it wrote there.
async fn wipe_keys(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
    ctx.app
        .store
        .wipe_node_keys(node.id)
        .await
        .map_err(store_err)?;
    let snapshots = match &ctx.app.snapshots {
        Some(s) => s.delete_all(node.id).await.map_err(retryable)?,
        None => 0,
    };
    if snapshots > 0 {
        note(&ctx, &node, &format!("{snapshots} snapshot(s) deleted")).await;
    }
    StepOutcome::done(json!({ "wiped": true, "snapshots_deleted": snapshots }))
}

/// Deletes every host that still carries this node: the current one and
/// any a half-finished provisioning left (found by the node's org and the
/// deterministic provision host id).
async fn delete_hosts(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
    let s = &ctx.app;
    let mut hosts: Vec<hood_domain::HostId> = node.host_id.into_iter().collect();
    let provision_host = crate::steps::host_id_for(&provision_id(node.id));
    if !hosts.contains(&provision_host) {
        hosts.push(provision_host);
    }
    let known = s
        .store
        .list_hosts(&HostFilter {
            org_id: Some(node.org_id),
            ..Default::default()
        })
        .await
        .map_err(store_err)?;
    let mut deleted = Vec::new();
    for host in hosts {
        let Some(record) = known.iter().find(|h| h.id == host) else {
            continue;
        };
        if let Some(provider) = s.providers.get(&record.provider) {
            provider.delete_host(host).await.map_err(retryable)?;
        }
        s.fleet.revoke_host(host).await.map_err(retryable)?;
        retire_host_record(&ctx, host).await?;
        deleted.push(host.to_string());
    }
    StepOutcome::done(json!({ "deleted": deleted }))
}

async fn finish(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
    if node.state.is_terminal() {
        return StepOutcome::done(json!({ "state": node.state.as_str() }));
    }
    let node = update_node(
        &ctx,
        NodeChange {
            state: Some(NodeState::Terminated),
            host_id: Some(None),
            rpc_endpoint: Some(None),
            message: "node terminated; host deleted and keys wiped".into(),
            ..Default::default()
        },
    )
    .await?;
    StepOutcome::done(json!({ "state": node.state.as_str() }))
}
