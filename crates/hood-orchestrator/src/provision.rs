//! `provision-node` v1: create host → wait for its agent → generate keys →
//! install and start → wait until synced → healthy. Any permanent failure
//! compensates in reverse (the host is deleted) and leaves the node
//! `failed` with the reason.

use crate::plan::{required_artifacts, workload_plan, ArtifactDigests};
use crate::services::{permanent, retryable, Ctx, Services};
use crate::steps::{
    host_id_for, load_node, note, now, poll_until, retire_host_record, run_command,
    run_command_with, store_err, update_node, warn,
};
use crate::workflows::{PROVISION_NODE, PROVISION_NODE_V1};
use hood_domain::lifecycle::{HostState, NodeState, SyncStatus};
use hood_domain::machine::StateMachine;
use hood_domain::node::NodeKeyMaterial;
use hood_domain::workload::{kinds, SyncReport, WorkloadRef, WorkloadStarted};
use hood_identity::envelope::{generate_secret, seal_node_material};
use hood_provider::{CreateHostRequest, EnrollmentInfo, HostResources};
use hood_saga::{RetryPolicy, Step, StepError, StepOutcome, Workflow};
use hood_store::fleet::Host;
use hood_store::node::NodeChange;
use serde_json::json;
use std::time::Duration;

/// Waiting for a node to sync: many short polls, durable between them.
pub(crate) const SYNC_POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 120,
    initial: Duration::from_secs(1),
    multiplier: 1.5,
    max: Duration::from_secs(30),
};

/// Starting a node waits on the agent (download, start); retried like
/// waiting for an agent.
pub(crate) const START_POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 5,
    initial: Duration::from_secs(2),
    multiplier: 2.0,
    max: Duration::from_secs(30),
};

pub(crate) fn workflow() -> Workflow<Services> {
    steps(PROVISION_NODE, true)
}

/// v1, without the seed: a run journaled before seeding existed finishes
/// as it began.
pub(crate) fn workflow_v1() -> Workflow<Services> {
    steps(PROVISION_NODE_V1, false)
}

fn steps(definition: (&str, i64), seeded: bool) -> Workflow<Services> {
    let mut wf = Workflow::new(definition.0, definition.1)
        .step(Step::new("accept", accept).undo(mark_failed))
        .step(
            Step::new("create_host", create_host)
                .undo(delete_host)
                .retry(RetryPolicy::INFRASTRUCTURE),
        )
        .step(Step::new("wait_for_agent", wait_for_agent).retry(RetryPolicy::WAIT_FOR_AGENT))
        .step(Step::new("generate_keys", generate_keys).undo(wipe_keys));
    if seeded {
        wf = wf.step(
            Step::new("seed_data", crate::seed::seed_from_snapshot).retry(RetryPolicy::DEFAULT),
        );
    }
    wf.step(
        Step::new("start_node", start_node)
            .undo(remove_workload)
            .retry(START_POLICY),
    )
    .step(Step::new("wait_synced", wait_synced).retry(SYNC_POLICY))
    .step(Step::new("mark_healthy", mark_healthy))
}

/// Checks the request still makes sense (the node exists and is provisioning).
async fn accept(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
    if node.state != NodeState::Provisioning {
        return Err(permanent(format!(
            "node is {}, not provisioning",
            node.state.as_str()
        )));
    }
    ctx.app
        .chains
        .get(&node.chain)
        .ok_or_else(|| permanent(format!("chain `{}` is not in the catalog", node.chain)))?;
    StepOutcome::done(json!({ "node_id": node.id }))
}

/// Compensation of the whole run: the node ends `failed`, with the reason.
async fn mark_failed(ctx: Ctx) -> Result<(), StepError> {
    let node = load_node(&ctx).await?;
    if node.state.is_terminal() || node.state == NodeState::Terminating {
        return Ok(());
    }
    let reason = match ctx.runs().get(&ctx.workflow_id).await {
        Ok(Some(detail)) => detail
            .workflow
            .error
            .clone()
            .unwrap_or_else(|| "provisioning was aborted".into()),
        _ => "provisioning failed".into(),
    };
    update_node(
        &ctx,
        NodeChange {
            state: Some(NodeState::Failed),
            host_id: Some(None),
            rpc_endpoint: Some(None),
            failure_reason: Some(Some(reason.clone())),
            message: format!("provisioning failed: {reason}"),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

pub(crate) async fn create_host(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
    let s = &ctx.app;
    let host_id = host_id_for(&ctx.workflow_id);
    let provider = s
        .providers
        .get(&node.provider)
        .ok_or_else(|| permanent(format!("no provider `{}` is configured", node.provider)))?;
    let resources = s
        .chains
        .get(&node.chain)
        .and_then(|c| c.profile.node_types.get(&node.node_type))
        .map(|t| HostResources {
            cpu: t.resources.cpu,
            memory_gb: t.resources.memory_gb,
            disk_gb: t.resources.disk_gb,
        })
        .unwrap_or_default();
    let now = now();
    if s.store
        .get_host(host_id)
        .await
        .map_err(store_err)?
        .is_none()
    {
        let host = Host {
            id: host_id,
            org_id: Some(node.org_id),
            provider: node.provider.clone(),
            region: node.region.clone(),
            state: HostState::Requested,
            address: None,
            provider_ref: serde_json::Value::Null,
            hostname: None,
            agent_version: None,
            last_seen_at: None,
            connected_at: None,
            created_at: now,
            updated_at: now,
        };
        match s.store.create_host(&host).await {
            Ok(()) | Err(hood_store::StoreError::Conflict(_)) => {}
            Err(e) => return Err(store_err(e)),
        }
    }
    // The agent enrolls the moment it starts, so the host must already be
    // waiting for enrollment when the provider launches it.
    s.store
        .transition_host_from(host_id, HostState::Requested, HostState::Provisioning, now)
        .await
        .map_err(store_err)?;
    s.store
        .transition_host_from(host_id, HostState::Provisioning, HostState::Enrolling, now)
        .await
        .map_err(store_err)?;
    let token = s
        .fleet
        .issue_enrollment_token(host_id, s.timings.enrollment_ttl)
        .await
        .map_err(retryable)?;
    let handle = provider
        .create_host(CreateHostRequest {
            host_id,
            region: node.region.clone(),
            resources,
            enrollment: EnrollmentInfo {
                gateway_url: s.gateway_url.clone(),
                token,
                ca_pem: s.ca_pem.clone(),
            },
        })
        .await
        .map_err(retryable)?;
    let provider_ref = serde_json::to_value(&handle).unwrap_or_default();
    let address = handle.address.map(|a| a.to_string());
    s.store
        .set_host_provider_info(host_id, address.as_deref(), &provider_ref, now)
        .await
        .map_err(store_err)?;
    if node.host_id != Some(host_id) {
        update_node(
            &ctx,
            NodeChange {
                host_id: Some(Some(host_id)),
                message: format!("host {host_id} created by provider {}", node.provider),
                ..Default::default()
            },
        )
        .await?;
    }
    StepOutcome::done(json!({ "host_id": host_id }))
}

pub(crate) async fn delete_host(ctx: Ctx) -> Result<(), StepError> {
    let node = load_node(&ctx).await?;
    let host_id = host_id_for(&ctx.workflow_id);
    if let Some(provider) = ctx.app.providers.get(&node.provider) {
        provider.delete_host(host_id).await.map_err(retryable)?;
    }
    ctx.app
        .fleet
        .revoke_host(host_id)
        .await
        .map_err(retryable)?;
    retire_host_record(&ctx, host_id).await
}

pub(crate) async fn wait_for_agent(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let host_id = host_id_for(&ctx.workflow_id);
    let fleet = ctx.app.fleet.clone();
    let connected = poll_until(Duration::from_secs(20), || {
        let fleet = fleet.clone();
        async move { fleet.host_connected(host_id).await.map_err(retryable) }
    })
    .await?;
    if !connected {
        return Err(retryable(format!(
            "the agent of host {host_id} has not connected yet"
        )));
    }
    let node = load_node(&ctx).await?;
    note(&ctx, &node, &format!("agent of host {host_id} connected")).await;
    StepOutcome::done(json!({ "host_id": host_id }))
}

async fn generate_keys(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
    let s = &ctx.app;
    // Re-runs keep the first material: a node's identity never changes.
    if let Some(existing) = s.store.get_node_keys(node.id).await.map_err(store_err)? {
        return StepOutcome::done(json!({ "fingerprint": existing.fingerprint }));
    }
    let secret = generate_secret();
    let sealed = seal_node_material(&s.master, &node.id.to_string(), &secret).map_err(permanent)?;
    let record = NodeKeyMaterial {
        node_id: node.id,
        kind: "p2p_nodekey".into(),
        sealed_data_key: sealed.sealed_data_key,
        ciphertext: sealed.ciphertext,
        fingerprint: sealed.fingerprint.clone(),
        created_at: now(),
    };
    s.store.put_node_keys(&record).await.map_err(store_err)?;
    note(
        &ctx,
        &node,
        &format!(
            "key material generated (fingerprint {})",
            &sealed.fingerprint[..16]
        ),
    )
    .await;
    StepOutcome::done(json!({ "fingerprint": sealed.fingerprint }))
}

async fn wipe_keys(ctx: Ctx) -> Result<(), StepError> {
    let node = load_node(&ctx).await?;
    ctx.app
        .store
        .wipe_node_keys(node.id)
        .await
        .map_err(store_err)
}

pub(crate) async fn start_node(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let host_id = host_id_for(&ctx.workflow_id);
    let input: crate::services::NodeInput = ctx.input_as()?;
    // Keyed by attempt: a crash re-run (same attempt) finds its command; a
    // retry after a failure (a gateway restart mid-download) sends a new
    // one. Starting is idempotent on the agent.
    let key = format!("start-{}-{}", input.node_id, ctx.attempt);
    start_on(&ctx, host_id, &key).await
}

/// Starts the node's workload on `host_id` from its chain's plan and hands
/// the node to the health machine as `syncing`. `command_key` names the
/// agent command (unique per host and attempt).
pub(crate) async fn start_on(
    ctx: &Ctx,
    host_id: hood_domain::HostId,
    command_key: &str,
) -> Result<StepOutcome, StepError> {
    let started = start_plan(ctx, host_id, command_key).await?;
    update_node(
        ctx,
        NodeChange {
            state: Some(NodeState::Syncing),
            sync_status: Some(SyncStatus::Syncing),
            rpc_endpoint: Some(started.endpoint),
            binary_version: Some(started.version),
            message: "node started; waiting until synced".into(),
            ..Default::default()
        },
    )
    .await?;
    StepOutcome::done(started.output)
}

/// What the agent answered to `start_workload`.
pub(crate) struct PlanStarted {
    /// The agent's answer, journaled as the step's output.
    pub output: serde_json::Value,
    pub endpoint: Option<String>,
    /// Version of the node's first process.
    pub version: Option<String>,
}

/// Sends the node's plan (its chain's processes at the versions the node
/// is pinned to) to the agent on `host_id`; leaves the node's state alone.
pub(crate) async fn start_plan(
    ctx: &Ctx,
    host_id: hood_domain::HostId,
    command_key: &str,
) -> Result<PlanStarted, StepError> {
    let node = load_node(ctx).await?;
    let s = &ctx.app;
    let chain = s
        .chains
        .get(&node.chain)
        .ok_or_else(|| permanent(format!("chain `{}` is not in the catalog", node.chain)))?;
    let pins = s.store.node_binaries(node.id).await.map_err(store_err)?;
    let mut digests = ArtifactDigests::new();
    for (name, version) in required_artifacts(chain, &pins) {
        let record = s
            .store
            .get_artifact(&name, &version)
            .await
            .map_err(store_err)?
            .ok_or_else(|| {
                permanent(format!(
                    "artifact {name} {version} is not in the artifact store (push it with `hood artifact push`)"
                ))
            })?;
        digests.insert((name, version), record.sha256);
    }
    let keys = s.store.get_node_keys(node.id).await.map_err(store_err)?;
    let plan = workload_plan(chain, &node, &pins, &digests, keys.as_ref()).map_err(permanent)?;
    let payload = serde_json::to_value(&plan).map_err(permanent)?;
    let out = match run_command_with(
        ctx,
        host_id,
        kinds::START_WORKLOAD,
        payload,
        command_key,
        true,
    )
    .await
    {
        Ok(out) => out,
        Err(e) => {
            // Say why while retrying (an artifact missing from the store is
            // fixed by pushing it again, which a retry then picks up).
            warn(ctx, &node, &start_failure_note(ctx.attempt, &e)).await;
            return Err(e);
        }
    };
    let started: WorkloadStarted = serde_json::from_value(out.clone())
        .map_err(|e| permanent(format!("agent answered start_workload oddly: {e}")))?;
    Ok(PlanStarted {
        output: out,
        endpoint: started.rpc_endpoint,
        version: plan.processes.first().map(|p| p.artifact.version.clone()),
    })
}

/// The node event for a failed attempt of `start_node`.
fn start_failure_note(attempt: u32, error: &StepError) -> String {
    let max = START_POLICY.max_attempts;
    if error.is_retryable() && START_POLICY.retries_after(attempt) {
        format!(
            "start attempt {attempt} of {max} failed, retrying in {}s: {}",
            START_POLICY.backoff(attempt).as_secs(),
            error.message()
        )
    } else {
        format!(
            "start attempt {attempt} of {max} failed: {}",
            error.message()
        )
    }
}

pub(crate) async fn remove_workload(ctx: Ctx) -> Result<(), StepError> {
    let node = load_node(&ctx).await?;
    let host_id = host_id_for(&ctx.workflow_id);
    // Without an agent there is nothing to stop gracefully; deleting the
    // host (the next undo) kills everything on it.
    if !ctx
        .app
        .fleet
        .host_connected(host_id)
        .await
        .map_err(retryable)?
    {
        return Ok(());
    }
    let payload = serde_json::to_value(WorkloadRef {
        workload_id: node.id.to_string(),
        lines: None,
    })
    .map_err(permanent)?;
    run_command(
        &ctx,
        host_id,
        kinds::REMOVE_WORKLOAD,
        payload,
        &format!("remove-{}-{}", node.id, ctx.attempt),
    )
    .await
    .map(|_| ())
}

pub(crate) async fn wait_synced(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let node = load_node(&ctx).await?;
    let host_id = host_id_for(&ctx.workflow_id);
    let payload = serde_json::to_value(WorkloadRef {
        workload_id: node.id.to_string(),
        lines: None,
    })
    .map_err(permanent)?;
    // A freshly started node usually answers within a second: probe briefly
    // in the step, and leave longer waits to the durable retry policy.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut probe = 0u32;
    let last = loop {
        probe += 1;
        // Each probe is its own command: a fresh look each time.
        let key = format!(
            "probe-{}-{}-{}-{probe}",
            node.id,
            ctx.attempt,
            ctx.now.millis()
        );
        let outcome = run_command(&ctx, host_id, kinds::PROBE_SYNC, payload.clone(), &key)
            .await
            .and_then(|out| {
                serde_json::from_value::<SyncReport>(out)
                    .map_err(|e| retryable(format!("odd probe answer: {e}")))
            });
        let last = match outcome {
            Ok(report) if report.synced && report.head.is_some() => {
                return StepOutcome::done(json!({ "head": report.head }));
            }
            Ok(report) => format!("node not synced yet (head {:?})", report.head),
            Err(e) => e.message().to_owned(),
        };
        if tokio::time::Instant::now() >= deadline {
            break last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Err(retryable(last))
}

pub(crate) async fn mark_healthy(ctx: Ctx) -> Result<StepOutcome, StepError> {
    let head = ctx
        .output_of("wait_synced")
        .and_then(|v| v.get("head"))
        .and_then(serde_json::Value::as_i64);
    let node = update_node(
        &ctx,
        NodeChange {
            state: Some(NodeState::Healthy),
            sync_status: Some(SyncStatus::Synced),
            head_height: Some(head),
            message: "node is synced and healthy".into(),
            ..Default::default()
        },
    )
    .await?;
    StepOutcome::done(json!({ "state": node.state.as_str() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_failures_say_whether_and_when_they_are_retried() {
        let missing = StepError::retryable(
            "agent start_workload failed: fetching artifact: artifact object a 1 (sha256 ab) missing in the artifact store",
        );
        assert_eq!(
            start_failure_note(1, &missing),
            "start attempt 1 of 5 failed, retrying in 2s: agent start_workload failed: fetching artifact: \
             artifact object a 1 (sha256 ab) missing in the artifact store"
        );
        assert!(start_failure_note(2, &missing)
            .starts_with("start attempt 2 of 5 failed, retrying in 4s: "));
        assert_eq!(
            start_failure_note(5, &missing),
            "start attempt 5 of 5 failed: agent start_workload failed: fetching artifact: \
             artifact object a 1 (sha256 ab) missing in the artifact store"
        );
        let permanent = StepError::permanent("agent answered start_workload oddly");
        assert_eq!(
            start_failure_note(1, &permanent),
            "start attempt 1 of 5 failed: agent answered start_workload oddly"
        );
    }
}
