//! The outbox events every mutation announces. Payloads carry ids, states
//! and non-secret fields only: never a password, key or token hash.

use hood_domain::agent::AgentEventRecord;
use hood_domain::artifact::ArtifactRecord;
use hood_domain::event::DomainEvent;
use hood_domain::host::Host;
use hood_domain::identity::{ApiKey, Organization, User};
use hood_domain::incident::Incident;
use hood_domain::lifecycle::{CommandState, HostState, NodeState};
use hood_domain::node::Node;
use hood_domain::rpc::RpcKey;
use hood_domain::{ApiKeyId, HostId, OrgId, ServiceAccountId, Timestamp, UserId};
use serde_json::json;

// -- identity --

pub(crate) fn org_created(org: &Organization) -> DomainEvent {
    DomainEvent {
        subject: "identity.org.created".into(),
        aggregate_type: "org".into(),
        aggregate_id: org.id.to_string(),
        payload: json!({
            "org_id": org.id,
            "slug": org.slug,
            "name": org.name,
            "created_at": org.created_at,
        }),
    }
}

/// `email` is the stored (lower-cased) address.
pub(crate) fn user_created(user: &User, email: &str) -> DomainEvent {
    DomainEvent {
        subject: "identity.user.created".into(),
        aggregate_type: "user".into(),
        aggregate_id: user.id.to_string(),
        payload: json!({
            "user_id": user.id,
            "org_id": user.org_id,
            "email": email,
            "display_name": user.display_name,
            "role": user.role,
            "platform_admin": user.platform_admin,
            "disabled": user.disabled,
            "created_at": user.created_at,
        }),
    }
}

pub(crate) fn user_updated(user: &User) -> DomainEvent {
    DomainEvent {
        subject: "identity.user.updated".into(),
        aggregate_type: "user".into(),
        aggregate_id: user.id.to_string(),
        payload: json!({
            "user_id": user.id,
            "org_id": user.org_id,
            "display_name": user.display_name,
            "role": user.role,
            "disabled": user.disabled,
        }),
    }
}

pub(crate) fn user_deleted(org: OrgId, id: UserId) -> DomainEvent {
    DomainEvent {
        subject: "identity.user.deleted".into(),
        aggregate_type: "user".into(),
        aggregate_id: id.to_string(),
        payload: json!({ "user_id": id, "org_id": org }),
    }
}

pub(crate) fn api_key_created(key: &ApiKey) -> DomainEvent {
    DomainEvent {
        subject: "identity.api_key.created".into(),
        aggregate_type: "api_key".into(),
        aggregate_id: key.id.to_string(),
        payload: json!({
            "api_key_id": key.id,
            "org_id": key.org_id,
            "user_id": key.user_id,
            "name": key.name,
            "prefix": key.prefix,
            "role": key.role,
            "scopes": key.scopes,
            "created_at": key.created_at,
            "expires_at": key.expires_at,
        }),
    }
}

pub(crate) fn api_key_revoked(org: OrgId, id: ApiKeyId, at: Timestamp) -> DomainEvent {
    DomainEvent {
        subject: "identity.api_key.revoked".into(),
        aggregate_type: "api_key".into(),
        aggregate_id: id.to_string(),
        payload: json!({ "api_key_id": id, "org_id": org, "revoked_at": at }),
    }
}

/// A service account's power changed: its grants were replaced, it was
/// deleted (its keys with it), or one of its S3 keys was revoked. Caches
/// of credentials evict what they hold of the organization.
pub(crate) fn service_account_changed(
    subject: &str,
    org: OrgId,
    account: ServiceAccountId,
    access_key_id: Option<&str>,
) -> DomainEvent {
    let mut payload = json!({ "service_account_id": account, "org_id": org });
    if let (Some(key), Some(obj)) = (access_key_id, payload.as_object_mut()) {
        obj.insert("access_key_id".into(), json!(key));
    }
    DomainEvent {
        subject: subject.into(),
        aggregate_type: "service_account".into(),
        aggregate_id: account.to_string(),
        payload,
    }
}

// -- artifacts --

/// A new artifact (metadata only).
pub(crate) fn artifact_pushed(a: &ArtifactRecord) -> DomainEvent {
    DomainEvent {
        subject: "artifact.pushed".into(),
        aggregate_type: "artifact".into(),
        aggregate_id: a.key(),
        payload: json!({
            "name": a.name,
            "version": a.version,
            "sha256": a.sha256,
            "size": a.size,
            "object_key": a.object_key,
            "content_type": a.content_type,
            "created_at": a.created_at,
            "created_by": a.created_by,
        }),
    }
}

// -- fleet: ids and states only --

pub(crate) fn host_created(host: &Host) -> DomainEvent {
    DomainEvent {
        subject: "fleet.host.created".into(),
        aggregate_type: "host".into(),
        aggregate_id: host.id.to_string(),
        payload: json!({
            "host_id": host.id,
            "org_id": host.org_id,
            "provider": host.provider,
            "region": host.region,
            "state": host.state,
            "created_at": host.created_at,
        }),
    }
}

pub(crate) fn host_state_changed(
    id: HostId,
    org: Option<&str>,
    from: HostState,
    to: HostState,
    at: Timestamp,
) -> DomainEvent {
    DomainEvent {
        subject: "fleet.host.state_changed".into(),
        aggregate_type: "host".into(),
        aggregate_id: id.to_string(),
        payload: json!({
            "host_id": id,
            "org_id": org,
            "from": from,
            "to": to,
            "at": at,
        }),
    }
}

pub(crate) fn command_finished(
    id: &str,
    host: &str,
    kind: &str,
    state: CommandState,
    at: Timestamp,
) -> DomainEvent {
    DomainEvent {
        subject: "fleet.command.finished".into(),
        aggregate_type: "agent_command".into(),
        aggregate_id: id.to_owned(),
        payload: json!({
            "command_id": id,
            "host_id": host,
            "kind": kind,
            "state": state,
            "at": at,
        }),
    }
}

/// An agent event as stored under sequence number `seq` (its payload stays
/// in the store).
pub(crate) fn agent_event(event: &AgentEventRecord, seq: i64) -> DomainEvent {
    DomainEvent {
        subject: "fleet.agent.event".into(),
        aggregate_type: "host".into(),
        aggregate_id: event.host_id.to_string(),
        payload: json!({
            "seq": seq,
            "host_id": event.host_id,
            "kind": event.kind,
            "workload_id": event.workload_id,
            "message": event.message,
            "at": event.at,
        }),
    }
}

// -- nodes --

fn node_payload(node: &Node) -> serde_json::Value {
    json!({
        "node_id": node.id.to_string(),
        "org_id": node.org_id.to_string(),
        "chain": node.chain,
        "state": node.state.as_str(),
        "host_id": node.host_id.map(|h| h.to_string()),
        "version": node.version,
    })
}

pub(crate) fn node_created(node: &Node) -> DomainEvent {
    DomainEvent {
        subject: "node.created".into(),
        aggregate_type: "node".into(),
        aggregate_id: node.id.to_string(),
        payload: node_payload(node),
    }
}

/// `node` as it is after the change, which left `from`.
pub(crate) fn node_state_changed(node: &Node, from: NodeState) -> DomainEvent {
    let mut payload = node_payload(node);
    payload["from_state"] = serde_json::Value::from(from.as_str());
    DomainEvent {
        subject: "node.state_changed".into(),
        aggregate_type: "node".into(),
        aggregate_id: node.id.to_string(),
        payload,
    }
}

// -- incidents --

/// `incident.opened`, `.resolved`, `.escalated`, … with the incident as it
/// is now.
pub(crate) fn incident(subject: &str, i: &Incident) -> DomainEvent {
    DomainEvent {
        subject: subject.into(),
        aggregate_type: "incident".into(),
        aggregate_id: i.id.to_string(),
        payload: json!({
            "incident_id": i.id.to_string(),
            "org_id": i.org_id.to_string(),
            "category": i.category.as_str(),
            "severity": i.severity.as_str(),
            "state": i.state.as_str(),
            "node_id": i.node_id.map(|n| n.to_string()),
            "chain": i.chain,
            "escalation_level": i.escalation_level,
        }),
    }
}

// -- allocations --

/// An allocation's change: ids, SKU, state and placement.
pub(crate) fn allocation(subject: &str, a: &hood_domain::allocation::Allocation) -> DomainEvent {
    DomainEvent {
        subject: subject.into(),
        aggregate_type: "allocation".into(),
        aggregate_id: a.id.to_string(),
        payload: json!({
            "allocation_id": a.id.to_string(),
            "org_id": a.org_id.to_string(),
            "host_id": a.host_id.to_string(),
            "sku": a.sku,
            "state": a.state.as_str(),
            "reservation": a.reservation,
        }),
    }
}

/// A container's allocation started or stopped: the container's own event
/// (`compute.container.{id}.started|stopped`, Edd Cloud's subjects).
pub(crate) fn container(
    container: hood_domain::ContainerId,
    verb: &str,
    a: &hood_domain::allocation::Allocation,
) -> DomainEvent {
    DomainEvent {
        subject: format!("compute.container.{container}.{verb}"),
        aggregate_type: "container".into(),
        aggregate_id: container.to_string(),
        payload: json!({
            "container_id": container.to_string(),
            "org_id": a.org_id.to_string(),
            "allocation_id": a.id.to_string(),
            "host_id": a.host_id.to_string(),
            "sku": a.sku,
            "state": verb,
        }),
    }
}

// -- RPC keys --

/// A key change: ids, prefix and version only, never the hash.
pub(crate) fn rpc_key(subject: &str, key: &RpcKey) -> DomainEvent {
    let mut payload = json!({
        "key_id": key.id,
        "org_id": key.org_id,
        "prefix": key.prefix,
        "version": key.version,
    });
    if let (Some(at), Some(obj)) = (key.revoked_at, payload.as_object_mut()) {
        obj.insert("revoked_at".into(), json!(at));
    }
    DomainEvent {
        subject: subject.into(),
        aggregate_type: "rpc_key".into(),
        aggregate_id: key.id.to_string(),
        payload,
    }
}
