//! Allocation use cases: rent a slice of a host by SKU, see it, release it;
//! declare what a host offers and see what is left of it (design §11, seed
//! 004).
//!
//! Placement happens inside the store's write (under the host's capacity
//! row lock), so this layer only chooses the candidate hosts and says what
//! a refusal means.

use crate::error::{AppError, AppResult};
use hood_clock::Clock;
use hood_domain::allocation::{
    month_start, spent_minor, Allocation, AllocationBudget, AllocationSpec, BudgetVerdict,
    CapacitySource, HostInventory,
};
use hood_domain::audit::AuditContext;
use hood_domain::billing::credits::ActiveSpan;
use hood_domain::billing::Currency;
use hood_domain::lifecycle::{AllocationState, HostState};
use hood_domain::placement::{free, Free, HostCapacity, Reservation};
use hood_domain::sku::{Sku, SkuCatalog};
use hood_domain::validate::FieldError;
use hood_domain::workload::{AllocationLogs, LogCursor};
use hood_domain::{AllocationId, HostId, OrgId, Timestamp};
use hood_ports::AllocationOperations;
use hood_store::allocation::{AllocationStore, Placed};
use hood_store::fleet::{FleetStore, HostFilter};
use std::sync::Arc;

/// An organization's allocation budget and where this month stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetStatus {
    pub budget: AllocationBudget,
    pub spent_minor: u64,
    pub month_start: Timestamp,
}

/// What a customer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateAllocation {
    pub sku: String,
    pub spec: AllocationSpec,
    /// Retries with the same key find the first allocation.
    pub idempotency_key: Option<String>,
}

/// An accepted request: the allocation, and whether this call made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationAccepted {
    pub allocation: Allocation,
    pub created: bool,
}

/// A host's capacity, what its live allocations hold, and what is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUsage {
    pub inventory: HostInventory,
    pub reservations: Vec<Reservation>,
    pub free: Free,
}

/// The allocation use cases.
#[derive(Clone)]
pub struct AllocationService {
    allocations: Arc<dyn AllocationStore>,
    fleet: Arc<dyn FleetStore>,
    skus: Arc<SkuCatalog>,
    clock: Arc<dyn Clock>,
    /// The orchestrator, where this process runs it (logs come from the
    /// allocation's agent through it).
    operations: Option<Arc<dyn AllocationOperations>>,
    /// Prepaid credits: an organization that cannot pay a first minute
    /// may not allocate.
    prepaid: Option<Arc<dyn PrepaidGate>>,
}

/// What an allocation's first minute needs from billing: nothing when the
/// organization is not on prepaid credits, else a balance that covers it
/// (402 otherwise). Billing implements it; the binary wires the two.
#[async_trait::async_trait]
pub trait PrepaidGate: Send + Sync {
    async fn require_prepaid_minute(
        &self,
        org: OrgId,
        per_minute_minor: u64,
        currency: &Currency,
    ) -> AppResult<()>;
}

const MAX_IDEMPOTENCY_KEY: usize = 255;

impl AllocationService {
    pub fn new(
        allocations: Arc<dyn AllocationStore>,
        fleet: Arc<dyn FleetStore>,
        skus: Arc<SkuCatalog>,
    ) -> Self {
        Self {
            allocations,
            fleet,
            skus,
            clock: hood_clock::system(),
            operations: None,
            prepaid: None,
        }
    }

    /// Refuses new allocations to organizations on prepaid credits that
    /// cannot pay their first minute.
    pub fn with_prepaid_gate(mut self, gate: Arc<dyn PrepaidGate>) -> Self {
        self.prepaid = Some(gate);
        self
    }

    pub fn with_operations(mut self, operations: Arc<dyn AllocationOperations>) -> Self {
        self.operations = Some(operations);
        self
    }

    /// The same use cases with other SKUs on offer.
    pub fn with_skus(mut self, skus: Arc<SkuCatalog>) -> Self {
        self.skus = skus;
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The SKUs on offer.
    pub fn skus(&self) -> &[Sku] {
        self.skus.skus()
    }

    /// The address a host's published ports listen on (what its provider
    /// reported; a local host without one listens on loopback).
    pub async fn host_address(&self, host: HostId) -> AppResult<String> {
        let host = self
            .fleet
            .get_host(host)
            .await?
            .ok_or(AppError::NotFound("host"))?;
        Ok(host.address.unwrap_or_else(|| "127.0.0.1".into()))
    }

    /// The SKU on offer named `name`.
    pub fn sku(&self, name: &str) -> Option<&Sku> {
        self.skus.get(name)
    }

    /// Reserves a placement for `req` on a ready host the organization may
    /// use (its own, or the platform's shared hosts) and stores the
    /// allocation `requested`, with its outbox event and audit row, in one
    /// transaction. A retry with the same idempotency key answers the
    /// allocation it made; the same key with another request is a conflict.
    pub async fn create(
        &self,
        org: OrgId,
        req: CreateAllocation,
        audit: &AuditContext,
    ) -> AppResult<AllocationAccepted> {
        let mut errors = req.spec.validate();
        let sku = self.skus.get(&req.sku).cloned();
        if sku.is_none() {
            errors.push(FieldError::new(
                "sku",
                format!(
                    "unknown SKU `{}`; GET /api/v1/skus lists those on offer",
                    req.sku
                ),
            ));
        }
        if let Some(key) = &req.idempotency_key {
            if key.is_empty()
                || key.len() > MAX_IDEMPOTENCY_KEY
                || !key.bytes().all(|b| b.is_ascii_graphic())
            {
                errors.push(FieldError::new(
                    "idempotency_key",
                    format!("1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
                ));
            }
        }
        let Some(sku) = sku.filter(|_| errors.is_empty()) else {
            return Err(AppError::Invalid(errors));
        };
        // The organization's own cap first, then what its credits allow.
        self.require_budget_minute(org, sku.price_per_minute_minor, &sku.currency)
            .await?;
        if let Some(gate) = &self.prepaid {
            gate.require_prepaid_minute(org, sku.price_per_minute_minor, &sku.currency)
                .await?;
        }
        let candidates = self.candidates(org).await?;
        let now = self.clock.now();
        let draft = Allocation {
            id: AllocationId::from_uuid(uuid::Uuid::now_v7()),
            org_id: org,
            // Chosen by the store among the candidates.
            host_id: HostId::from_uuid(uuid::Uuid::nil()),
            sku: sku.name.clone(),
            price_per_minute_minor: sku.price_per_minute_minor,
            currency: sku.currency.clone(),
            spec: req.spec.clone(),
            state: AllocationState::Requested,
            reservation: Reservation {
                cores: vec![],
                memory_mib: 0,
                disk_mib: 0,
                gpus: vec![],
            },
            idempotency_key: req.idempotency_key.clone(),
            expires_at: req
                .spec
                .max_duration_minutes
                .map(|m| now.plus_millis(i64::from(m) * 60_000)),
            error: None,
            active_since: None,
            active_until: None,
            idle_since: None,
            ports: Default::default(),
            created_at: now,
            updated_at: now,
        };
        match self
            .allocations
            .create_allocation(&draft, &sku.shape, &candidates, audit)
            .await?
        {
            Placed::Created(allocation) => {
                tracing::info!(allocation = %allocation.id, org = %org, sku = %sku.name,
                    host = %allocation.host_id, "allocation placed");
                Ok(AllocationAccepted {
                    allocation,
                    created: true,
                })
            }
            Placed::Existing(allocation) => {
                if allocation.sku != req.sku || allocation.spec != req.spec {
                    return Err(AppError::Conflict(format!(
                        "the idempotency key was used for a different request \
                         (allocation {}); use a new key for a new allocation",
                        allocation.id
                    )));
                }
                Ok(AllocationAccepted {
                    allocation,
                    created: false,
                })
            }
            Placed::NoRoom(why) => Err(AppError::Conflict(if candidates.is_empty() {
                format!(
                    "no host can take `{}`: no ready host with a known capacity is \
                     available to this organization",
                    sku.name
                )
            } else {
                format!(
                    "no host has room for `{}` now ({why}); release an allocation or \
                     try again later",
                    sku.name
                )
            })),
        }
    }

    /// Ready hosts the organization may be placed on: its own first, then
    /// the platform's shared hosts, each oldest first.
    async fn candidates(&self, org: OrgId) -> AppResult<Vec<HostId>> {
        let ready = self
            .fleet
            .list_hosts(&HostFilter {
                state: Some(HostState::Ready),
                ..Default::default()
            })
            .await?;
        let own = ready.iter().filter(|h| h.org_id == Some(org));
        let shared = ready.iter().filter(|h| h.org_id.is_none());
        Ok(own.chain(shared).map(|h| h.id).collect())
    }

    pub async fn get(&self, org: OrgId, id: AllocationId) -> AppResult<Allocation> {
        self.allocations
            .get_allocation(org, id)
            .await?
            .ok_or(AppError::NotFound("allocation"))
    }

    /// What the organization's allocations were active for in `[from,
    /// to)`, each with its SKU and at its price (prepaid credits' accrual,
    /// postpaid invoices, budgets).
    pub async fn active_spans(
        &self,
        org: OrgId,
        from: Timestamp,
        to: Timestamp,
    ) -> AppResult<Vec<(Currency, String, ActiveSpan)>> {
        Ok(self
            .allocations
            .allocations_active_between(org, from, to)
            .await?
            .into_iter()
            .filter_map(|a| {
                Some((
                    a.currency,
                    a.sku,
                    ActiveSpan {
                        price_per_minute_minor: a.price_per_minute_minor,
                        from: a.active_since?,
                        until: a.active_until,
                    },
                ))
            })
            .collect())
    }

    /// Releases every allocation of an organization whose prepaid credits
    /// ran out (audited as `allocation.credits_exhausted` by
    /// `system:billing`); returns how many it moved.
    pub async fn release_for_credits(&self, org: OrgId, reason: &str) -> AppResult<usize> {
        self.release_all(org, "allocation.credits_exhausted", reason)
            .await
    }

    /// The organization's allocation budget and what this month's
    /// allocations cost so far.
    pub async fn budget(&self, org: OrgId) -> AppResult<Option<BudgetStatus>> {
        let Some(budget) = self.allocations.allocation_budget(org).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        let spent = self.spent_this_month(&budget, now).await?;
        Ok(Some(BudgetStatus {
            budget,
            spent_minor: spent,
            month_start: month_start(now),
        }))
    }

    /// Sets the organization's monthly allocation budget (in the currency
    /// of the SKUs it caps), or removes it with `None`.
    pub async fn set_budget(
        &self,
        org: OrgId,
        monthly_limit_minor: Option<u64>,
        currency: Option<Currency>,
        audit: &AuditContext,
    ) -> AppResult<Option<BudgetStatus>> {
        let now = self.clock.now();
        let budget = match monthly_limit_minor {
            Some(0) => {
                return Err(AppError::Invalid(vec![FieldError::new(
                    "monthly_limit_minor",
                    "at least 1 (remove the budget to lift it)",
                )]))
            }
            Some(limit) if i64::try_from(limit).is_err() => {
                return Err(AppError::Invalid(vec![FieldError::new(
                    "monthly_limit_minor",
                    "too large",
                )]))
            }
            Some(limit) => Some(AllocationBudget {
                org_id: org,
                monthly_limit_minor: limit,
                currency: match currency {
                    Some(c) => c,
                    None => self
                        .skus
                        .skus()
                        .first()
                        .map(|s| s.currency.clone())
                        .ok_or_else(|| AppError::Conflict("no SKU is on offer".into()))?,
                },
                updated_at: now,
            }),
            None => None,
        };
        self.allocations
            .set_allocation_budget(org, budget.as_ref(), now, audit)
            .await?;
        self.budget(org).await
    }

    /// What this month's allocations in the budget's currency cost so far.
    async fn spent_this_month(&self, budget: &AllocationBudget, now: Timestamp) -> AppResult<u64> {
        let from = month_start(now);
        let spans: Vec<ActiveSpan> = self
            .active_spans(budget.org_id, from, now)
            .await?
            .into_iter()
            .filter(|(c, _, _)| *c == budget.currency)
            .map(|(_, _, span)| span)
            .collect();
        spent_minor(&spans, from, now, &budget.currency)
            .map_err(|e| AppError::Internal(format!("budget: {e}")))
    }

    /// 402 when the organization's allocation budget cannot pay one more
    /// minute at `per_minute_minor`.
    async fn require_budget_minute(
        &self,
        org: OrgId,
        per_minute_minor: u64,
        currency: &Currency,
    ) -> AppResult<()> {
        let Some(budget) = self.allocations.allocation_budget(org).await? else {
            return Ok(());
        };
        if budget.currency != *currency {
            return Ok(());
        }
        let spent = self.spent_this_month(&budget, self.clock.now()).await?;
        match budget.verdict(spent, per_minute_minor) {
            BudgetVerdict::Within { .. } => Ok(()),
            BudgetVerdict::Exhausted { spent_minor } => Err(AppError::PaymentRequired(format!(
                "the organization's allocation budget for this month is spent: {spent_minor} \
                 of {} {} minor units (raise it with PUT /api/v1/allocation-budget)",
                budget.monthly_limit_minor, budget.currency
            ))),
        }
    }

    /// Releases the allocations of every organization whose monthly
    /// budget is spent (audited as `allocation.budget_exhausted` by
    /// `system:billing`); returns how many it moved. Billing's pass runs it.
    pub async fn enforce_budgets(&self) -> AppResult<usize> {
        let now = self.clock.now();
        let mut released = 0;
        for budget in self.allocations.allocation_budgets().await? {
            let spent = self.spent_this_month(&budget, now).await?;
            if let BudgetVerdict::Exhausted { spent_minor } = budget.verdict(spent, 0) {
                let reason = format!(
                    "the monthly allocation budget of {} {} minor units is spent ({spent_minor})",
                    budget.monthly_limit_minor, budget.currency
                );
                released += self
                    .release_all(budget.org_id, "allocation.budget_exhausted", &reason)
                    .await?;
            }
        }
        Ok(released)
    }

    /// Releases every live allocation of `org`, audited as `action` by
    /// `system:billing` with `reason`; returns how many it moved.
    async fn release_all(&self, org: OrgId, action: &str, reason: &str) -> AppResult<usize> {
        let audit = AuditContext::system("billing").with_reason(reason);
        let mut released = 0;
        for a in self.allocations.org_live_allocations(org).await? {
            let Some(path) = a.state.release_path() else {
                continue;
            };
            if self
                .allocations
                .transition_allocation(a.id, path, self.clock.now(), action, Some(reason), &audit)
                .await?
                .is_some()
            {
                tracing::warn!(allocation = %a.id, org = %org, reason, action,
                    "allocation released: spending stopped");
                released += 1;
            }
        }
        Ok(released)
    }

    /// The last `lines` lines the allocation's sandbox wrote, from its
    /// host's agent. Its output is kept until it is released.
    pub async fn logs(
        &self,
        org: OrgId,
        id: AllocationId,
        lines: u32,
    ) -> AppResult<AllocationLogs> {
        self.follow_logs(org, id, lines, None).await
    }

    /// Like [`Self::logs`]; with `after` (a cursor an earlier answer gave)
    /// the lines written since. A follower asks again and again.
    pub async fn follow_logs(
        &self,
        org: OrgId,
        id: AllocationId,
        lines: u32,
        after: Option<LogCursor>,
    ) -> AppResult<AllocationLogs> {
        if !(1..=10_000).contains(&lines) {
            return Err(AppError::Invalid(vec![FieldError::new(
                "lines",
                "must be between 1 and 10000",
            )]));
        }
        let allocation = self.get(org, id).await?;
        if !matches!(
            allocation.state,
            AllocationState::Provisioning | AllocationState::Active
        ) {
            return Err(AppError::Conflict(format!(
                "the allocation is {}: only a provisioning or active allocation has a sandbox \
                 to read",
                allocation.state.as_str()
            )));
        }
        let operations = self.operations.as_deref().ok_or_else(|| {
            AppError::Unavailable("this process does not run the orchestrator".into())
        })?;
        Ok(operations
            .allocation_logs(&allocation, lines, after)
            .await?)
    }

    pub async fn list(&self, org: OrgId) -> AppResult<Vec<Allocation>> {
        Ok(self.allocations.list_allocations(org).await?)
    }

    /// Releases an allocation. One that was never dispatched to its host
    /// (`requested`) has nothing running and is released at once; one on
    /// its host goes `releasing` until the agent has stopped it. Releasing
    /// an ended allocation answers it as it is.
    pub async fn release(
        &self,
        org: OrgId,
        id: AllocationId,
        audit: &AuditContext,
    ) -> AppResult<Allocation> {
        self.release_as(org, id, "allocation.release", audit).await
    }

    async fn release_as(
        &self,
        org: OrgId,
        id: AllocationId,
        action: &str,
        audit: &AuditContext,
    ) -> AppResult<Allocation> {
        // A race with the provisioning worker moves the state under us:
        // read again and take the path from where it is now.
        for _ in 0..4 {
            let current = self.get(org, id).await?;
            let Some(path) = current.state.release_path() else {
                return Ok(current);
            };
            if let Some(moved) = self
                .allocations
                .transition_allocation(id, path, self.clock.now(), action, None, audit)
                .await?
            {
                tracing::info!(allocation = %id, org = %org, state = moved.state.as_str(),
                    "allocation released");
                return Ok(moved);
            }
        }
        Err(AppError::Conflict(
            "the allocation is changing state; try again".into(),
        ))
    }

    /// An operator releases any organization's allocation; the reason is
    /// in `audit`.
    pub async fn force_release(
        &self,
        id: AllocationId,
        audit: &AuditContext,
    ) -> AppResult<Allocation> {
        let org = self
            .allocations
            .find_allocation(id)
            .await?
            .ok_or(AppError::NotFound("allocation"))?
            .org_id;
        self.release_as(org, id, "allocation.force_release", audit)
            .await
    }

    /// An operator declares what a host offers (for hosts where the agent
    /// cannot measure it); reports never replace a declaration.
    pub async fn declare_capacity(
        &self,
        host: HostId,
        capacity: HostCapacity,
        audit: &AuditContext,
    ) -> AppResult<HostUsage> {
        capacity
            .validate()
            .map_err(|m| AppError::Invalid(vec![FieldError::new("capacity", m)]))?;
        self.fleet
            .get_host(host)
            .await?
            .ok_or(AppError::NotFound("host"))?;
        // Shrinking below what live allocations hold would break placement:
        // refuse it, naming what holds the space.
        let live = self.allocations.live_allocations(host).await?;
        let held: Vec<Reservation> = live.iter().map(|a| a.reservation.clone()).collect();
        if let Err(v) = hood_domain::placement::check(&capacity, &held) {
            return Err(AppError::Conflict(format!(
                "the host's {} live allocation(s) do not fit that capacity ({v}); \
                 release them first",
                live.len()
            )));
        }
        self.allocations
            .set_host_capacity(
                host,
                CapacitySource::Declared,
                &capacity,
                self.clock.now(),
                Some(audit),
            )
            .await?;
        self.usage(host)
            .await?
            .ok_or_else(|| AppError::Internal("the declared capacity was not stored".into()))
    }

    /// A host's capacity and what is left of it; `None` when it has none
    /// known.
    pub async fn usage(&self, host: HostId) -> AppResult<Option<HostUsage>> {
        let Some(inventory) = self.allocations.host_inventory(host).await? else {
            return Ok(None);
        };
        let reservations: Vec<Reservation> = self
            .allocations
            .live_allocations(host)
            .await?
            .into_iter()
            .map(|a| a.reservation)
            .collect();
        let free = free(&inventory.capacity, &reservations).map_err(|v| {
            AppError::Internal(format!("host {host}: reservations exceed capacity: {v}"))
        })?;
        Ok(Some(HostUsage {
            inventory,
            reservations,
            free,
        }))
    }
}
