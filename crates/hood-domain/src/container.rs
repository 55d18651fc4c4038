//! Containers (Edd Cloud's compute): a customer's named image with its
//! command, environment, ports and SSH keys, run as an allocation of a SKU.
//! The container outlives its allocations: stopping it releases the
//! current one (billing stops), starting it again places a new one. Each
//! start is a new generation, and the allocation a generation makes is
//! found again by its idempotency key, so a crash between storing the
//! container and placing its allocation repeats nothing.

use crate::allocation::AllocationSpec;
use crate::lifecycle::AllocationState;
use crate::validate::FieldError;
use crate::workload::ContainerRestart;
use crate::{AllocationId, ContainerId, OrgId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the customer wants of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Desired {
    Running,
    Stopped,
}

impl Desired {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(Self::Running),
            "stopped" => Some(Self::Stopped),
            _ => None,
        }
    }
}

/// What runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// TCP ports it serves, published on its host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// OpenSSH public keys allowed in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_public_keys: Vec<String>,
    #[serde(default)]
    pub restart: ContainerRestart,
}

/// A customer's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: ContainerId,
    pub org_id: OrgId,
    /// Unique in the organization; a DNS label (it names the host in its
    /// ingress address and the user in `ssh {name}@…`).
    pub name: String,
    pub sku: String,
    pub spec: ContainerSpec,
    pub desired: Desired,
    /// Bumped by every start: names the allocation of that start.
    pub generation: u32,
    /// The current generation's allocation, once placed.
    pub allocation_id: Option<AllocationId>,
    /// Why it is not running although wanted (no room yet, …).
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Container {
    /// The idempotency key of this generation's allocation.
    pub fn allocation_key(&self) -> String {
        format!("container-{}-{}", self.id, self.generation)
    }

    /// What this container's allocation runs.
    pub fn allocation_spec(&self) -> AllocationSpec {
        AllocationSpec {
            image: Some(self.spec.image.clone()),
            command: self.spec.command.clone(),
            ssh_public_keys: self.spec.ssh_public_keys.clone(),
            env: self.spec.env.clone(),
            ports: self.spec.ports.clone(),
            restart: self.spec.restart,
            container_id: Some(self.id),
            ..Default::default()
        }
    }

    /// Every problem with a new container, one per field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if !valid_name(&self.name) {
            errors.push(FieldError::new(
                "name",
                "1 to 63 lowercase letters, digits and `-`, starting with a letter and not ending with `-`",
            ));
        }
        // The allocation's own rules, for the fields a container shares.
        errors.extend(self.allocation_spec().validate());
        errors
    }
}

/// A DNS label that starts with a letter.
pub fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Where a container is, from what is wanted and its allocation's state:
/// `starting`, `running`, `stopping`, `stopped`, `exited` (its command
/// ended) or `failed` (it could not start).
pub fn status(desired: Desired, allocation: Option<AllocationState>) -> &'static str {
    use AllocationState as A;
    match (desired, allocation) {
        (Desired::Running, None | Some(A::Requested | A::Provisioning)) => "starting",
        (_, Some(A::Active)) => "running",
        (_, Some(A::Releasing)) => "stopping",
        (Desired::Running, Some(A::Released)) => "exited",
        (_, Some(A::Failed)) => "failed",
        (Desired::Stopped, _) => "stopped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str) -> Container {
        Container {
            id: ContainerId::from_uuid(uuid::Uuid::nil()),
            org_id: OrgId::from_uuid(uuid::Uuid::nil()),
            name: name.into(),
            sku: "cpu.1c".into(),
            spec: ContainerSpec {
                image: "hood/app:1".into(),
                ports: vec![8000],
                ..Default::default()
            },
            desired: Desired::Running,
            generation: 3,
            allocation_id: None,
            error: None,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn names_are_dns_labels() {
        for ok in ["web", "a", "web-1", &"a".repeat(63)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "Web", "1web", "web-", "we_b", "we.b", &"a".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
            assert_eq!(container(bad).validate()[0].field, "name");
        }
    }

    #[test]
    fn each_generation_names_its_own_allocation_which_carries_the_container() {
        let c = container("web");
        assert_eq!(
            c.allocation_key(),
            "container-00000000-0000-0000-0000-000000000000-3"
        );
        let spec = c.allocation_spec();
        assert_eq!(spec.container_id, Some(c.id));
        assert_eq!(spec.image.as_deref(), Some("hood/app:1"));
        assert_eq!(spec.ports, vec![8000]);
        assert!(c.validate().is_empty());
        let mut bad = container("web");
        bad.spec.ports = vec![8000, 8000];
        assert_eq!(bad.validate()[0].field, "ports");
        bad.spec.ports = vec![];
        bad.spec.env.insert("A=B".into(), "x".into());
        assert_eq!(bad.validate()[0].field, "env");
    }

    #[test]
    fn status_reads_the_wish_and_the_allocation() {
        use AllocationState as A;
        let running = Desired::Running;
        let stopped = Desired::Stopped;
        assert_eq!(status(running, None), "starting");
        assert_eq!(status(running, Some(A::Provisioning)), "starting");
        assert_eq!(status(running, Some(A::Active)), "running");
        assert_eq!(status(stopped, Some(A::Releasing)), "stopping");
        assert_eq!(status(stopped, Some(A::Released)), "stopped");
        assert_eq!(status(stopped, None), "stopped");
        assert_eq!(status(running, Some(A::Released)), "exited");
        assert_eq!(status(running, Some(A::Failed)), "failed");
    }
}
