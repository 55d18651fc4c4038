//! Allocations and host capacity: placement happens inside the write, so
//! two concurrent requests can never both take the last free slice.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::allocation::{Allocation, AllocationBudget, CapacitySource, HostInventory};
use hood_domain::audit::AuditContext;
use hood_domain::lifecycle::AllocationState;
use hood_domain::placement::{HostCapacity, PlacementError, Shape};
use hood_domain::{AllocationId, HostId, OrgId, Timestamp};

/// What creating an allocation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// Placed and stored (`requested`), with its outbox event.
    Created(Allocation),
    /// The organization already made an allocation with this idempotency
    /// key: that one, untouched.
    Existing(Allocation),
    /// No candidate host has room; why, for the last host tried.
    NoRoom(PlacementError),
}

#[async_trait]
pub trait AllocationStore: Send + Sync {
    /// Records a host's capacity. A `Reported` capacity does not replace
    /// a `Declared` one; returns whether it was stored. With `audit` (an
    /// operator's declaration, not an agent's report) the change is also
    /// an audit row.
    async fn set_host_capacity(
        &self,
        host: HostId,
        source: CapacitySource,
        capacity: &HostCapacity,
        at: Timestamp,
        audit: Option<&AuditContext>,
    ) -> StoreResult<bool>;
    async fn host_inventory(&self, host: HostId) -> StoreResult<Option<HostInventory>>;
    /// Places `draft` (its id, org, SKU, key, times; host, state and
    /// reservation are chosen here) with `shape` on the first of
    /// `candidates` that has room, holding each host's capacity row locked
    /// while it reads the live reservations, and stores the allocation
    /// `requested` with an `allocation.requested` outbox event and an
    /// `allocation.create` audit row in the same transaction.
    async fn create_allocation(
        &self,
        draft: &Allocation,
        shape: &Shape,
        candidates: &[HostId],
        audit: &AuditContext,
    ) -> StoreResult<Placed>;
    async fn get_allocation(&self, org: OrgId, id: AllocationId)
        -> StoreResult<Option<Allocation>>;
    /// Any organization's allocation (operators' force-release).
    async fn find_allocation(&self, id: AllocationId) -> StoreResult<Option<Allocation>>;
    /// An organization's allocations, newest first.
    async fn list_allocations(&self, org: OrgId) -> StoreResult<Vec<Allocation>>;
    /// Allocations of every organization in one of `states`, least
    /// recently changed first (the provisioning worker's queue).
    async fn allocations_in_states(
        &self,
        states: &[AllocationState],
        limit: i64,
    ) -> StoreResult<Vec<Allocation>>;
    /// Allocations whose maximum duration ran out by `now` and that are not
    /// on their way out yet, soonest first.
    async fn expired_allocations(&self, now: Timestamp, limit: i64)
        -> StoreResult<Vec<Allocation>>;
    /// Allocations holding a placement on a host.
    async fn live_allocations(&self, host: HostId) -> StoreResult<Vec<Allocation>>;
    /// An organization's allocations that hold a placement (what a cut-off
    /// releases).
    async fn org_live_allocations(&self, org: OrgId) -> StoreResult<Vec<Allocation>>;
    /// An organization's allocations that were `active` at some time in
    /// `[from, to)` (what prepaid credits charge for that window).
    async fn allocations_active_between(
        &self,
        org: OrgId,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<Allocation>>;
    /// Moves an allocation along `path` (`path[0]` is the state it must be
    /// in; each step a transition of the allocation machine) in one
    /// transaction, with an `allocation.{state}` outbox event per step and
    /// one `action` audit row. `None` when it is no longer in `path[0]`.
    /// Terminal states free the placement. `error` (why it ended other
    /// than by request) is kept on the record.
    async fn transition_allocation(
        &self,
        id: AllocationId,
        path: &[AllocationState],
        at: Timestamp,
        action: &str,
        error: Option<&str>,
        audit: &AuditContext,
    ) -> StoreResult<Option<Allocation>>;
    /// Records since when an active allocation has been under its idle
    /// floor (`None`: busy again). An observation of the orchestrator, not
    /// a change anyone asked for: no audit row (the release it may lead to
    /// has one). `false` when the allocation is no longer active.
    async fn set_allocation_idle_since(
        &self,
        id: AllocationId,
        since: Option<Timestamp>,
    ) -> StoreResult<bool>;
    /// Records the ports the allocation's agent published (an observation,
    /// no audit row); `false` when it is no longer placed.
    async fn set_allocation_ports(
        &self,
        id: AllocationId,
        ports: &std::collections::BTreeMap<u16, u16>,
    ) -> StoreResult<bool>;
    /// Sets (`Some`) or removes (`None`) the organization's monthly
    /// allocation budget, with its audit row (`allocation.budget.set`,
    /// `allocation.budget.remove`) in the same transaction.
    async fn set_allocation_budget(
        &self,
        org: OrgId,
        budget: Option<&AllocationBudget>,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<()>;
    async fn allocation_budget(&self, org: OrgId) -> StoreResult<Option<AllocationBudget>>;
    /// Every organization's budget (the enforcement pass).
    async fn allocation_budgets(&self) -> StoreResult<Vec<AllocationBudget>>;
}
