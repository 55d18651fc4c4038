//! Housekeeping (leader-gated): expired enrollment tokens, hosts no live
//! node uses, quarantined hosts seen again, and nodes stuck in maintenance.

use crate::NodeRecovery;
use hood_domain::lifecycle::{HostState, NodeState};
use hood_domain::machine::StateMachine;
use hood_domain::retention::RetentionPolicy;
use hood_domain::Timestamp;
use hood_store::fleet::FleetStore;
use hood_store::fleet::HostFilter;
use hood_store::node::NodeChange;
use hood_store::node::NodeStore;
use hood_store::retention::{PruneReport, RetentionStore};
use hood_store::StoreError;
use std::collections::BTreeSet;
use std::time::Duration;

/// What one cleanup pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub tokens_deleted: u64,
    pub hosts_reaped: usize,
    pub maintenance_released: usize,
    /// What retention deleted.
    pub pruned: PruneReport,
}

/// Rows per retention batch, and batches per kind per pass: a backlog is
/// worked off over several passes without holding locks for long.
const PRUNE_BATCH: i64 = 5_000;
const PRUNE_BATCHES_PER_PASS: u32 = 20;

/// What a cleanup pass may delete or hand back, and after how long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CleanupPolicy {
    /// A host no live node uses is reaped after this long.
    pub orphan_after: Duration,
    /// A node in maintenance longer than this goes back to the health
    /// machine.
    pub maintenance_max: Duration,
    pub retention: RetentionPolicy,
}

pub(crate) async fn cleanup_once(
    fleet: &dyn FleetStore,
    nodes_store: &dyn NodeStore,
    retention_store: &dyn RetentionStore,
    recovery: Option<&dyn NodeRecovery>,
    policy: &CleanupPolicy,
    now: Timestamp,
) -> Result<CleanupReport, StoreError> {
    let CleanupPolicy {
        orphan_after,
        maintenance_max,
        retention,
    } = *policy;
    let mut report = CleanupReport {
        // Kept a day past expiry so an operator can still see why an
        // enrollment failed.
        tokens_deleted: fleet
            .delete_expired_enrollment_tokens(Timestamp(now.millis() - 24 * 3_600_000))
            .await?,
        ..CleanupReport::default()
    };

    let nodes = nodes_store.list_nodes(None).await?;
    let in_use: BTreeSet<_> = nodes
        .iter()
        .filter(|n| !n.state.is_terminal())
        .filter_map(|n| n.host_id)
        .collect();
    let orphan_ms = i64::try_from(orphan_after.as_millis()).unwrap_or(i64::MAX);
    if let Some(recovery) = recovery {
        for host in fleet.list_hosts(&HostFilter::default()).await? {
            if host.state.is_terminal() || in_use.contains(&host.id) {
                continue;
            }
            let idle_for = now.millis() - host.updated_at.millis();
            // A quarantined host is cleaned up once its agent is seen again
            // (it can then be told to wipe what it ran); any other host
            // nobody uses, once it has been idle long enough that no
            // workflow is still placing a node on it.
            let seen_again = host.state == HostState::Quarantined
                && host
                    .last_seen_at
                    .is_some_and(|t| t.millis() > host.updated_at.millis());
            let orphaned = host.state != HostState::Quarantined && idle_for >= orphan_ms;
            if seen_again || orphaned {
                match recovery.reap_host(host.id).await {
                    Ok(()) => {
                        report.hosts_reaped += 1;
                        tracing::info!(host_id = %host.id, state = host.state.as_str(), "reaped unused host");
                    }
                    Err(e) => tracing::warn!(host_id = %host.id, error = %e, "could not reap host"),
                }
            }
        }
    }

    let max_ms = i64::try_from(maintenance_max.as_millis()).unwrap_or(i64::MAX);
    for node in nodes.iter().filter(|n| {
        n.state == NodeState::Maintenance && now.millis() - n.updated_at.millis() >= max_ms
    }) {
        // Handed back as syncing: the next evaluation judges it from its
        // heartbeats (down if it is gone, healthy if it is fine).
        if !node.state.can_transition_to(NodeState::Syncing) {
            continue;
        }
        let change = NodeChange {
            state: Some(NodeState::Syncing),
            message: format!(
                "maintenance exceeded {} s; returned to health evaluation",
                maintenance_max.as_secs()
            ),
            ..NodeChange::default()
        };
        match nodes_store
            .update_node(node.id, node.version, &change, now)
            .await
        {
            Ok(_) => report.maintenance_released += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    report.pruned = retention_store
        .prune(&retention.cutoffs(now), PRUNE_BATCH, PRUNE_BATCHES_PER_PASS)
        .await?;
    Ok(report)
}
