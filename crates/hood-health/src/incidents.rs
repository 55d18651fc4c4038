//! Incident reconciliation: level-triggered, like the evaluation itself.
//! Each cycle states which conditions hold; this module turns that and the
//! unresolved incidents into writes: open what is new (de-duplicated by
//! key), reset or count clear cycles (hysteresis), resolve, escalate, and
//! mute children under a root incident (chain halt, dead host) so the
//! operator is told once.

use hood_domain::health::{
    clear_cycle, escalation_due, incident_key, HealthRules, IncidentCategory,
};
use hood_domain::lifecycle::IncidentState;
use hood_domain::{IncidentId, NodeId, OrgId, Timestamp};
use hood_store::health::{HealthWrite, Incident, IncidentChange};
use std::collections::{BTreeMap, BTreeSet};

/// A condition that holds this cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    pub key: String,
    pub category: IncidentCategory,
    pub org_id: OrgId,
    pub node_id: Option<NodeId>,
    pub chain: Option<String>,
    pub title: String,
    pub detail: String,
    /// Key of the root condition that covers this one, if any holds.
    pub root_key: Option<String>,
}

impl Condition {
    pub fn node(
        category: IncidentCategory,
        org_id: OrgId,
        node: NodeId,
        chain: &str,
        title: String,
        detail: String,
    ) -> Self {
        Self {
            key: incident_key(category, &node.to_string()),
            category,
            org_id,
            node_id: Some(node),
            chain: Some(chain.to_owned()),
            title,
            detail,
            root_key: None,
        }
    }
}

/// The writes that bring incidents in line with `conditions`.
pub(crate) fn reconcile(
    conditions: &[Condition],
    unresolved: &[Incident],
    rules: &HealthRules,
    now: Timestamp,
) -> Vec<HealthWrite> {
    let by_key: BTreeMap<&str, &Incident> = unresolved
        .iter()
        .map(|i| (i.dedupe_key.as_str(), i))
        .collect();
    let present: BTreeSet<&str> = conditions.iter().map(|c| c.key.as_str()).collect();
    // Roots first, so children can name them.
    let mut ordered: Vec<&Condition> = conditions.iter().collect();
    ordered.sort_by_key(|c| c.root_key.is_some());
    let mut root_ids: BTreeMap<&str, IncidentId> = BTreeMap::new();
    let mut writes = Vec::new();

    for c in ordered {
        let root = c.root_key.as_deref().and_then(|k| root_ids.get(k).copied());
        match by_key.get(c.key.as_str()) {
            None => {
                let id = IncidentId::from_uuid(uuid::Uuid::now_v7());
                root_ids.insert(c.key.as_str(), id);
                writes.push(HealthWrite::OpenIncident(Incident {
                    id,
                    org_id: c.org_id,
                    dedupe_key: c.key.clone(),
                    category: c.category,
                    severity: c.category.severity(),
                    state: if root.is_some() {
                        IncidentState::Muted
                    } else {
                        IncidentState::Open
                    },
                    node_id: c.node_id,
                    chain: c.chain.clone(),
                    title: c.title.clone(),
                    detail: c.detail.clone(),
                    root_id: root,
                    escalation_level: 0,
                    escalated_at: None,
                    clear_cycles: 0,
                    opened_at: now,
                    acknowledged_at: None,
                    acknowledged_by: None,
                    resolved_at: None,
                    updated_at: now,
                }));
            }
            Some(existing) => {
                root_ids.insert(c.key.as_str(), existing.id);
                let mut change = IncidentChange::default();
                if existing.clear_cycles != 0 {
                    change.clear_cycles = Some(0);
                }
                match (existing.state, root) {
                    (IncidentState::Open | IncidentState::Acknowledged, Some(r)) => {
                        change.state = Some(IncidentState::Muted);
                        change.root_id = Some(Some(r));
                    }
                    (IncidentState::Muted, None) => {
                        change.state = Some(unmuted_state(existing));
                        change.root_id = Some(None);
                    }
                    _ => {}
                }
                let state_now = change.state.unwrap_or(existing.state);
                if state_now == IncidentState::Open
                    && escalation_due(
                        existing.escalated_at.unwrap_or(existing.opened_at).millis(),
                        existing.escalation_level,
                        existing.acknowledged_at.is_some(),
                        now.millis(),
                        rules,
                    )
                {
                    change.escalation_level = Some(existing.escalation_level + 1);
                }
                if change != IncidentChange::default() {
                    writes.push(HealthWrite::UpdateIncident {
                        id: existing.id,
                        expected_state: existing.state,
                        change,
                    });
                }
            }
        }
    }

    for inc in unresolved {
        if present.contains(inc.dedupe_key.as_str()) {
            continue;
        }
        let previous = u32::try_from(inc.clear_cycles.max(0)).unwrap_or(u32::MAX);
        let (clear, resolve) = clear_cycle(previous, false, rules);
        let mut change = IncidentChange {
            clear_cycles: Some(i64::from(clear)),
            ..IncidentChange::default()
        };
        if resolve {
            change.state = Some(IncidentState::Resolved);
        }
        writes.push(HealthWrite::UpdateIncident {
            id: inc.id,
            expected_state: inc.state,
            change,
        });
    }
    writes
}

/// Where a muted incident returns when its root clears.
fn unmuted_state(i: &Incident) -> IncidentState {
    if i.acknowledged_at.is_some() {
        IncidentState::Acknowledged
    } else {
        IncidentState::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> HealthRules {
        HealthRules {
            clear_cycles_to_resolve: 2,
            escalate_after_ms: 1_000,
            ..HealthRules::default()
        }
    }

    fn cond(node: NodeId, org: OrgId) -> Condition {
        Condition::node(
            IncidentCategory::NodeDown,
            org,
            node,
            "ethereum-anvil",
            "node down".into(),
            "3 heartbeats missed".into(),
        )
    }

    fn as_incident(w: &HealthWrite) -> Incident {
        match w {
            HealthWrite::OpenIncident(i) => i.clone(),
            other => panic!("expected an open, got {other:?}"),
        }
    }

    #[test]
    fn opens_once_then_updates_nothing_while_it_holds() {
        let (node, org) = (
            NodeId::from_uuid(uuid::Uuid::new_v4()),
            OrgId::from_uuid(uuid::Uuid::new_v4()),
        );
        let c = vec![cond(node, org)];
        let w = reconcile(&c, &[], &rules(), Timestamp(0));
        assert_eq!(w.len(), 1);
        let inc = as_incident(&w[0]);
        assert_eq!(inc.dedupe_key, format!("node_down:{node}"));
        assert_eq!(inc.state, IncidentState::Open);
        let again = reconcile(&c, &[inc], &rules(), Timestamp(10));
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn resolves_after_enough_clear_cycles_and_relapse_resets() {
        let (node, org) = (
            NodeId::from_uuid(uuid::Uuid::new_v4()),
            OrgId::from_uuid(uuid::Uuid::new_v4()),
        );
        let mut inc = as_incident(&reconcile(&[cond(node, org)], &[], &rules(), Timestamp(0))[0]);
        let w = reconcile(&[], std::slice::from_ref(&inc), &rules(), Timestamp(1));
        match &w[..] {
            [HealthWrite::UpdateIncident { change, .. }] => {
                assert_eq!(change.clear_cycles, Some(1));
                assert_eq!(change.state, None);
            }
            other => panic!("{other:?}"),
        }
        inc.clear_cycles = 1;
        let relapse = reconcile(
            &[cond(node, org)],
            std::slice::from_ref(&inc),
            &rules(),
            Timestamp(2),
        );
        match &relapse[..] {
            [HealthWrite::UpdateIncident { change, .. }] => {
                assert_eq!(change.clear_cycles, Some(0))
            }
            other => panic!("{other:?}"),
        }
        let w = reconcile(&[], &[inc], &rules(), Timestamp(3));
        match &w[..] {
            [HealthWrite::UpdateIncident { change, .. }] => {
                assert_eq!(change.state, Some(IncidentState::Resolved));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn escalates_only_while_open_and_unacknowledged() {
        let (node, org) = (
            NodeId::from_uuid(uuid::Uuid::new_v4()),
            OrgId::from_uuid(uuid::Uuid::new_v4()),
        );
        let mut inc = as_incident(&reconcile(&[cond(node, org)], &[], &rules(), Timestamp(0))[0]);
        let w = reconcile(
            &[cond(node, org)],
            std::slice::from_ref(&inc),
            &rules(),
            Timestamp(1_000),
        );
        match &w[..] {
            [HealthWrite::UpdateIncident { change, .. }] => {
                assert_eq!(change.escalation_level, Some(1))
            }
            other => panic!("{other:?}"),
        }
        inc.state = IncidentState::Acknowledged;
        inc.acknowledged_at = Some(Timestamp(500));
        assert!(reconcile(&[cond(node, org)], &[inc], &rules(), Timestamp(5_000)).is_empty());
    }

    #[test]
    fn children_under_a_root_open_muted_and_unmute_when_it_clears() {
        let org = OrgId::from_uuid(uuid::Uuid::new_v4());
        let root = Condition {
            key: "chain_halted:x".into(),
            category: IncidentCategory::ChainHalted,
            org_id: org,
            node_id: None,
            chain: Some("x".into()),
            title: "halt".into(),
            detail: String::new(),
            root_key: None,
        };
        let mut children: Vec<Condition> = (0..3)
            .map(|_| {
                let mut c = cond(NodeId::from_uuid(uuid::Uuid::new_v4()), org);
                c.category = IncidentCategory::NodeLagging;
                c.key = incident_key(
                    IncidentCategory::NodeLagging,
                    &c.node_id.map(|n| n.to_string()).unwrap_or_default(),
                );
                c.root_key = Some(root.key.clone());
                c
            })
            .collect();
        let mut all = children.clone();
        all.insert(2, root.clone());
        let w = reconcile(&all, &[], &rules(), Timestamp(0));
        let opened: Vec<Incident> = w.iter().map(as_incident).collect();
        let root_inc = opened
            .iter()
            .find(|i| i.category == IncidentCategory::ChainHalted)
            .cloned();
        let root_inc = root_inc.expect("root opened");
        assert_eq!(root_inc.state, IncidentState::Open);
        let muted: Vec<&Incident> = opened
            .iter()
            .filter(|i| i.state == IncidentState::Muted)
            .collect();
        assert_eq!(muted.len(), 3);
        assert!(muted.iter().all(|i| i.root_id == Some(root_inc.id)));
        // Root clears; children persist: they unmute.
        for c in &mut children {
            c.root_key = None;
        }
        let existing: Vec<Incident> = opened.clone();
        let w = reconcile(&children, &existing, &rules(), Timestamp(10));
        let unmuted = w
            .iter()
            .filter(|w| matches!(w, HealthWrite::UpdateIncident { change, .. } if change.state == Some(IncidentState::Open)))
            .count();
        assert_eq!(unmuted, 3);
    }
}
