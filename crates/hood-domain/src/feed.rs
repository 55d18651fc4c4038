//! Users' notification feeds: what happened to their organization's
//! nodes, incidents and allocations, one item per user per event, read
//! or unread. Which events a feed shows and how each reads is decided
//! here; the bus delivers them and the store fans them out.

use crate::ids::{FeedItemId, OrgId, UserId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The event subjects that feed users' notifications (bus filters).
pub const FEED_SUBJECTS: &[&str] = &[
    "node.state_changed",
    "incident.>",
    "allocation.>",
    "compute.container.>",
];

/// One notification of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedItem {
    pub id: FeedItemId,
    pub user_id: UserId,
    pub org_id: OrgId,
    /// The event it came from (the outbox id): one item per user per event.
    pub event_id: String,
    pub subject: String,
    pub title: String,
    /// The event's payload: ids and states to link to.
    pub detail: Value,
    pub created_at: Timestamp,
    pub read_at: Option<Timestamp>,
}

/// An event worth telling an organization's users about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub event_id: String,
    pub org_id: OrgId,
    pub subject: String,
    pub title: String,
    pub detail: Value,
    pub at: Timestamp,
}

fn text<'a>(payload: &'a Value, field: &str) -> &'a str {
    payload.get(field).and_then(Value::as_str).unwrap_or("?")
}

/// The feed's item for a bus event, if it shows one: the organization it
/// belongs to (from the payload's `org_id`) and how it reads. Events of
/// no organization (platform hosts) and subjects outside
/// [`FEED_SUBJECTS`] show nothing.
pub fn feed_event(
    event_id: &str,
    subject: &str,
    payload: &Value,
    at: Timestamp,
) -> Option<FeedEvent> {
    let org_id = payload.get("org_id")?.as_str()?.parse::<OrgId>().ok()?;
    let title = match subject.split('.').collect::<Vec<_>>().as_slice() {
        ["node", "state_changed"] => format!(
            "A {} node is {} (was {})",
            text(payload, "chain"),
            text(payload, "state"),
            text(payload, "from_state")
        ),
        ["incident", verb] => format!(
            "Incident {verb}: {} ({}{})",
            text(payload, "category").replace('_', " "),
            text(payload, "severity"),
            payload
                .get("chain")
                .and_then(Value::as_str)
                .map(|c| format!(", {c}"))
                .unwrap_or_default()
        ),
        ["allocation", state] => format!("Allocation of {} is {state}", text(payload, "sku")),
        ["compute", "container", id, state] => format!("Container {id} {state}"),
        _ => return None,
    };
    Some(FeedEvent {
        event_id: event_id.to_owned(),
        org_id,
        subject: subject.to_owned(),
        title,
        detail: payload.clone(),
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ORG: &str = "01900000-0000-7000-8000-000000000001";

    #[test]
    fn events_read_as_their_kind_says() {
        let at = Timestamp(5);
        let node = json!({"org_id": ORG, "chain": "ethereum-anvil", "state": "failed", "from_state": "provisioning", "node_id": "n1"});
        let e = feed_event("e1", "node.state_changed", &node, at).unwrap();
        assert_eq!(
            e.title,
            "A ethereum-anvil node is failed (was provisioning)"
        );
        assert_eq!(e.org_id.to_string(), ORG);
        assert_eq!((e.event_id.as_str(), e.at, &e.detail), ("e1", at, &node));
        let incident = json!({"org_id": ORG, "category": "node_down", "severity": "critical", "chain": "solana"});
        assert_eq!(
            feed_event("e2", "incident.opened", &incident, at)
                .unwrap()
                .title,
            "Incident opened: node down (critical, solana)"
        );
        let allocation = json!({"org_id": ORG, "sku": "cpu.2c4g", "state": "active"});
        assert_eq!(
            feed_event("e3", "allocation.active", &allocation, at)
                .unwrap()
                .title,
            "Allocation of cpu.2c4g is active"
        );
        assert_eq!(
            feed_event(
                "e4",
                "compute.container.c1.started",
                &json!({"org_id": ORG}),
                at
            )
            .unwrap()
            .title,
            "Container c1 started"
        );
    }

    #[test]
    fn events_of_no_organization_or_other_subjects_show_nothing() {
        let at = Timestamp(5);
        assert_eq!(
            feed_event("e", "node.state_changed", &json!({"chain": "x"}), at),
            None
        );
        assert_eq!(
            feed_event(
                "e",
                "node.state_changed",
                &json!({"org_id": "not-a-uuid"}),
                at
            ),
            None
        );
        assert_eq!(
            feed_event("e", "node.created", &json!({"org_id": ORG}), at),
            None
        );
        assert_eq!(
            feed_event("e", "identity.user.created", &json!({"org_id": ORG}), at),
            None
        );
    }
}
