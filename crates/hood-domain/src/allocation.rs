//! Allocations: rented slices of hosts (design §11). The record; its
//! lifecycle is [`crate::lifecycle::AllocationState`], where it lands is
//! [`crate::placement`], what it costs is [`crate::sku`].

use crate::lifecycle::AllocationState;
use crate::placement::{HostCapacity, Reservation};
use crate::{AllocationId, HostId, OrgId, Timestamp};
use serde::{Deserialize, Serialize};

/// One allocation and the placement it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub id: AllocationId,
    pub org_id: OrgId,
    pub host_id: HostId,
    pub sku: String,
    pub state: AllocationState,
    pub reservation: Reservation,
    /// The creating request's idempotency key: a retry finds this
    /// allocation instead of placing a second one.
    pub idempotency_key: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where a host's capacity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacitySource {
    /// The agent measured it (NVML for GPUs).
    Reported,
    /// An operator declared it (hosts where NVML is unavailable). A
    /// declared capacity is not overwritten by reports.
    Declared,
}

impl CapacitySource {
    pub fn as_str(self) -> &'static str {
        match self {
            CapacitySource::Reported => "reported",
            CapacitySource::Declared => "declared",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reported" => Some(CapacitySource::Reported),
            "declared" => Some(CapacitySource::Declared),
            _ => None,
        }
    }
}

/// A host's capacity and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInventory {
    pub host_id: HostId,
    pub source: CapacitySource,
    pub capacity: HostCapacity,
    pub updated_at: Timestamp,
}
