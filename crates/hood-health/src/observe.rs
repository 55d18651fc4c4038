//! Turns the agent's last report of a node into what the health rules
//! take: a sync observation and the chain profile's CEL policy verdicts.

use hood_chains::policy::{application_health, CompiledPolicies, PolicyInput};
use hood_chains::HealthOutcome;
use hood_domain::health::SyncObservation;
use hood_domain::lifecycle::ApplicationHealth;
use hood_domain::workload::WorkloadObservation;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The parts of a workload report the evaluator uses.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    pub sync: SyncObservation,
    pub peers: Option<i64>,
    pub report: Option<WorkloadObservation>,
}

/// A report the agent garbled (or an older agent's `null`) is treated as
/// no observation, never as an error that stops the cycle.
pub(crate) fn parse(observation: &serde_json::Value) -> Observed {
    // Deserialized from the borrowed value: no copy of the report per node.
    let Ok(report) = WorkloadObservation::deserialize(observation) else {
        return Observed::default();
    };
    let (sync, peers) = SyncObservation::of(report.sync.as_ref());
    Observed {
        sync,
        peers,
        report: Some(report),
    }
}

/// Evaluates a chain's policies for one node. Updates `firing` (policy →
/// since when, ms) and returns the application health the policies call
/// for: the worst outcome among policies firing for at least their `for_s`.
pub(crate) fn judge_application(
    policies: Option<&CompiledPolicies>,
    observed: &Observed,
    sync_json: serde_json::Value,
    node_json: serde_json::Value,
    firing: &mut BTreeMap<String, i64>,
    now_ms: i64,
) -> ApplicationHealth {
    let Some(report) = &observed.report else {
        firing.clear();
        return ApplicationHealth::Unknown;
    };
    let Some(policies) = policies else {
        return ApplicationHealth::Ok;
    };
    let input = PolicyInput::from_observation(report, sync_json, node_json);
    let results = policies.evaluate(&input);
    let mut still = BTreeMap::new();
    for r in &results {
        if let Some(e) = &r.error {
            tracing::debug!(policy = %r.name, error = %e, "policy could not be evaluated");
        }
        if r.firing {
            let since = firing.get(&r.name).copied().unwrap_or(now_ms);
            still.insert(r.name.clone(), since);
        }
    }
    *firing = still;
    let long_enough = |name: &str| {
        results.iter().any(|r| {
            r.name == name
                && firing
                    .get(name)
                    .is_some_and(|since| now_ms - since >= i64::from(r.for_s) * 1000)
        })
    };
    match application_health(&results, long_enough) {
        Some(HealthOutcome::Critical) => ApplicationHealth::Critical,
        Some(HealthOutcome::Degraded) => ApplicationHealth::Degraded,
        None => ApplicationHealth::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_no_observation() {
        assert!(parse(&serde_json::Value::Null).report.is_none());
        assert!(parse(&serde_json::json!({"sync": 5})).report.is_none());
    }

    #[test]
    fn a_sync_error_is_no_sync_observation() {
        let o = parse(&serde_json::json!({
            "at_ms": 1,
            "sync": {"at_ms": 1, "error": "connection refused"}
        }));
        assert!(o.report.is_some());
        assert_eq!(o.sync, SyncObservation::default());
        let o = parse(&serde_json::json!({
            "at_ms": 1,
            "sync": {"at_ms": 1, "syncing": false, "head": 42, "peers": 3}
        }));
        assert_eq!(o.sync.head, Some(42));
        assert_eq!(o.peers, Some(3));
    }
}
