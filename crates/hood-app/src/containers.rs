//! Container use cases (Edd Cloud's compute): create a named container from
//! an image, see it, stop, start and restart it, delete it. A container
//! runs as an allocation of its SKU, so placement, billing, audit, leases
//! and health are the allocation machinery's; this layer keeps the
//! container's wish (`desired`) and links each start's allocation.
//!
//! Every start is a new generation whose allocation carries the
//! idempotency key `container-{id}-{generation}`: placing it twice (a
//! crash between storing the container and linking its allocation, then
//! [`ContainerService::reconcile`]) finds the first allocation instead of
//! making another.

use crate::allocations::{AllocationService, CreateAllocation};
use crate::error::{AppError, AppResult};
use hood_clock::Clock;
use hood_domain::allocation::Allocation;
use hood_domain::audit::AuditContext;
use hood_domain::container::{self, Container, ContainerSpec, Desired};
use hood_domain::validate::FieldError;
use hood_domain::{ContainerId, OrgId};
use hood_store::container::ContainerStore;
use std::sync::Arc;

/// What a customer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateContainer {
    pub name: String,
    pub sku: String,
    pub spec: ContainerSpec,
}

/// A container and its current allocation, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub container: Container,
    pub allocation: Option<Allocation>,
}

impl ContainerStatus {
    /// `starting`, `running`, `stopping`, `stopped`, `exited` or `failed`.
    pub fn status(&self) -> &'static str {
        container::status(
            self.container.desired,
            self.allocation.as_ref().map(|a| a.state),
        )
    }

    /// Whether its allocation holds a placement (running or on its way).
    fn live(&self) -> bool {
        self.allocation
            .as_ref()
            .is_some_and(|a| a.state.holds_placement())
    }
}

/// `container` placed on `allocation`.
fn placed(container: Container, allocation: Allocation) -> ContainerStatus {
    ContainerStatus {
        container: Container {
            allocation_id: Some(allocation.id),
            ..container
        },
        allocation: Some(allocation),
    }
}

/// The container use cases.
#[derive(Clone)]
pub struct ContainerService {
    store: Arc<dyn ContainerStore>,
    allocations: AllocationService,
    clock: Arc<dyn Clock>,
}

impl ContainerService {
    pub fn new(store: Arc<dyn ContainerStore>, allocations: AllocationService) -> Self {
        Self {
            store,
            allocations,
            clock: hood_clock::system(),
        }
    }

    /// Stores the container, then places its first allocation. A refusal
    /// (no room, an unknown SKU, credits) removes the container again: a
    /// container is created running or not at all.
    pub async fn create(
        &self,
        org: OrgId,
        req: CreateContainer,
        audit: &AuditContext,
    ) -> AppResult<ContainerStatus> {
        let now = self.clock.now();
        let container = Container {
            id: ContainerId::from_uuid(uuid::Uuid::now_v7()),
            org_id: org,
            name: req.name,
            sku: req.sku,
            spec: req.spec,
            desired: Desired::Running,
            generation: 1,
            allocation_id: None,
            error: None,
            created_at: now,
            updated_at: now,
        };
        let errors = container.validate();
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        if self.allocations.sku(&container.sku).is_none() {
            return Err(AppError::Invalid(vec![FieldError::new(
                "sku",
                format!(
                    "unknown SKU `{}`; GET /api/v1/skus lists those on offer",
                    container.sku
                ),
            )]));
        }
        self.store
            .insert_container(&container, audit)
            .await
            .map_err(|e| match e {
                hood_store::StoreError::Conflict(_) => AppError::Conflict(format!(
                    "the organization has a container named `{}`; choose another name",
                    container.name
                )),
                other => other.into(),
            })?;
        match self.place(&container, audit).await {
            Ok(allocation) => Ok(placed(container, allocation)),
            Err(e) => {
                if let Err(undo) = self
                    .store
                    .delete_container(org, container.id, self.clock.now(), audit)
                    .await
                {
                    tracing::error!(container = %container.id, error = %undo,
                        "could not remove a container whose allocation was refused");
                }
                Err(e)
            }
        }
    }

    /// Places the container's current generation and links it.
    async fn place(&self, c: &Container, audit: &AuditContext) -> AppResult<Allocation> {
        let accepted = self
            .allocations
            .create(
                c.org_id,
                CreateAllocation {
                    sku: c.sku.clone(),
                    spec: c.allocation_spec(),
                    idempotency_key: Some(c.allocation_key()),
                },
                audit,
            )
            .await?;
        self.store
            .place_container(
                c.id,
                c.generation,
                Some(accepted.allocation.id),
                None,
                self.clock.now(),
            )
            .await?;
        tracing::info!(container = %c.id, generation = c.generation,
            allocation = %accepted.allocation.id, "container placed");
        Ok(accepted.allocation)
    }

    /// The container named by its id or its name.
    pub async fn get(&self, org: OrgId, id_or_name: &str) -> AppResult<ContainerStatus> {
        let found = match id_or_name.parse::<ContainerId>() {
            Ok(id) => self.store.get_container(org, id).await?,
            Err(_) => self.store.container_by_name(org, id_or_name).await?,
        };
        self.with_allocation(found.ok_or(AppError::NotFound("container"))?)
            .await
    }

    async fn with_allocation(&self, container: Container) -> AppResult<ContainerStatus> {
        let allocation = match container.allocation_id {
            Some(id) => match self.allocations.get(container.org_id, id).await {
                Ok(a) => Some(a),
                Err(AppError::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        Ok(ContainerStatus {
            container,
            allocation,
        })
    }

    /// Where the HTTP ingress sends a request for container `name` of the
    /// organization `org_slug`: the host address and host port published
    /// for its container port `port` (its first port when `None`). Not
    /// found, or not running (409): nothing is sent.
    pub async fn ingress(
        &self,
        org_slug: &str,
        name: &str,
        port: Option<u16>,
    ) -> AppResult<std::net::SocketAddr> {
        let container = self
            .store
            .container_by_org_slug(org_slug, name)
            .await?
            .ok_or(AppError::NotFound("container"))?;
        let status = self.with_allocation(container).await?;
        let wanted = match port {
            Some(p) if status.container.spec.ports.contains(&p) => p,
            Some(_) => return Err(AppError::NotFound("container port")),
            None => *status
                .container
                .spec
                .ports
                .first()
                .ok_or(AppError::NotFound("container port"))?,
        };
        let (Some(allocation), "running") = (&status.allocation, status.status()) else {
            return Err(AppError::Conflict(format!(
                "container `{name}` is {}: its ingress answers while it runs",
                status.status()
            )));
        };
        let host_port = *allocation.ports.get(&wanted).ok_or_else(|| {
            AppError::Conflict(format!(
                "container `{name}` has not published port {wanted} yet"
            ))
        })?;
        let address = self.allocations.host_address(allocation.host_id).await?;
        format!("{address}:{host_port}")
            .parse()
            .map_err(|e| AppError::Internal(format!("the host's address `{address}`: {e}")))
    }

    /// The last `lines` lines its current allocation's container wrote
    /// (stdout and stderr), from its host's engine.
    pub async fn logs(
        &self,
        org: OrgId,
        id_or_name: &str,
        lines: u32,
    ) -> AppResult<hood_domain::workload::AllocationLogs> {
        let current = self.get(org, id_or_name).await?;
        let Some(allocation) = &current.allocation else {
            return Err(AppError::Conflict(format!(
                "container `{}` is {}: it has no output yet",
                current.container.name,
                current.status()
            )));
        };
        self.allocations.logs(org, allocation.id, lines).await
    }

    /// The organization's containers, newest first.
    pub async fn list(&self, org: OrgId) -> AppResult<Vec<ContainerStatus>> {
        let mut out = Vec::new();
        for c in self.store.list_containers(org).await? {
            out.push(self.with_allocation(c).await?);
        }
        Ok(out)
    }

    /// Stops it: its allocation is released (billing stops, the host
    /// removes the container). Stopping a stopped container changes
    /// nothing.
    pub async fn stop(
        &self,
        org: OrgId,
        id_or_name: &str,
        audit: &AuditContext,
    ) -> AppResult<ContainerStatus> {
        let current = self.get(org, id_or_name).await?;
        if current.container.desired == Desired::Stopped && !current.live() {
            return Ok(current);
        }
        // The wish first: no new allocation is placed for it from now on.
        let stopped = self
            .set_desired(
                &current.container,
                Desired::Stopped,
                "container.stop",
                audit,
            )
            .await?;
        self.release_current(&current, audit).await?;
        self.with_allocation(stopped).await
    }

    /// Starts it on a new allocation; one that runs (or is starting)
    /// is left alone. No room now: 409, and it stays stopped.
    pub async fn start(
        &self,
        org: OrgId,
        id_or_name: &str,
        audit: &AuditContext,
    ) -> AppResult<ContainerStatus> {
        let current = self.get(org, id_or_name).await?;
        if current.container.desired == Desired::Running
            && (current.live() || current.container.allocation_id.is_none())
        {
            return Ok(current);
        }
        let wanted = self
            .set_desired(
                &current.container,
                Desired::Running,
                "container.start",
                audit,
            )
            .await?;
        match self.place(&wanted, audit).await {
            Ok(allocation) => Ok(placed(wanted, allocation)),
            // Its last allocation is still being released: placed as soon
            // as its room is free.
            Err(AppError::Conflict(why)) if current.live() => {
                self.pending(org, &wanted, &why).await
            }
            Err(e) => {
                self.set_desired(&wanted, Desired::Stopped, "container.start_refused", audit)
                    .await?;
                Err(e)
            }
        }
    }

    /// Stops it and starts it again on a new allocation. While the old
    /// one is being released its place may not be free yet: the new one
    /// is then placed as soon as there is room ([`Self::reconcile`]).
    pub async fn restart(
        &self,
        org: OrgId,
        id_or_name: &str,
        audit: &AuditContext,
    ) -> AppResult<ContainerStatus> {
        let current = self.get(org, id_or_name).await?;
        self.release_current(&current, audit).await?;
        let wanted = self
            .set_desired(
                &current.container,
                Desired::Running,
                "container.restart",
                audit,
            )
            .await?;
        match self.place(&wanted, audit).await {
            Ok(allocation) => Ok(placed(wanted, allocation)),
            Err(AppError::Conflict(why)) => self.pending(org, &wanted, &why).await,
            Err(e) => Err(e),
        }
    }

    /// Deletes it, releasing its allocation first.
    pub async fn delete(
        &self,
        org: OrgId,
        id_or_name: &str,
        audit: &AuditContext,
    ) -> AppResult<()> {
        let current = self.get(org, id_or_name).await?;
        // No new allocation may be placed for it from now on.
        let stopped = self
            .set_desired(
                &current.container,
                Desired::Stopped,
                "container.stop",
                audit,
            )
            .await?;
        self.release_current(&current, audit).await?;
        if !self
            .store
            .delete_container(org, stopped.id, self.clock.now(), audit)
            .await?
        {
            return Err(AppError::NotFound("container"));
        }
        Ok(())
    }

    /// Places every container wanted running whose current generation has
    /// no allocation yet (a crash between storing and placing, a restart
    /// that waited for room); returns how many it placed.
    pub async fn reconcile(&self) -> AppResult<usize> {
        let audit = AuditContext::system("containers");
        let mut placed = 0;
        for c in self.store.pending_containers(100).await? {
            match self.place(&c, &audit).await {
                Ok(_) => placed += 1,
                Err(AppError::Conflict(why)) | Err(AppError::PaymentRequired(why)) => {
                    // Kept pending, with the reason to show.
                    if c.error.as_deref() != Some(why.as_str()) {
                        self.store
                            .place_container(c.id, c.generation, None, Some(&why), self.clock.now())
                            .await?;
                    }
                }
                Err(AppError::Invalid(errors)) => {
                    // Cannot ever be placed (its SKU left the catalog):
                    // stopped, with the reason.
                    let why = errors
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect::<Vec<_>>()
                        .join("; ");
                    tracing::warn!(container = %c.id, reason = %why, "a container cannot be placed");
                    if let Some(stopped) = self
                        .store
                        .set_container_desired(
                            c.org_id,
                            c.id,
                            c.generation,
                            Desired::Stopped,
                            self.clock.now(),
                            "container.start_refused",
                            &audit,
                        )
                        .await?
                    {
                        self.store
                            .place_container(
                                stopped.id,
                                stopped.generation,
                                None,
                                Some(&why),
                                self.clock.now(),
                            )
                            .await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(placed)
    }

    /// `wanted`'s start kept pending (the reconciler places it once there
    /// is room), with the reason to show.
    async fn pending(
        &self,
        org: OrgId,
        wanted: &Container,
        why: &str,
    ) -> AppResult<ContainerStatus> {
        self.store
            .place_container(
                wanted.id,
                wanted.generation,
                None,
                Some(why),
                self.clock.now(),
            )
            .await?;
        self.get(org, &wanted.id.to_string()).await
    }

    /// Releases the current allocation if it holds a placement.
    async fn release_current(
        &self,
        current: &ContainerStatus,
        audit: &AuditContext,
    ) -> AppResult<()> {
        if let (true, Some(a)) = (current.live(), &current.allocation) {
            self.allocations
                .release(current.container.org_id, a.id, audit)
                .await?;
        }
        Ok(())
    }

    /// A new generation with `desired`; 409 if another request moved the
    /// container first.
    async fn set_desired(
        &self,
        c: &Container,
        desired: Desired,
        action: &str,
        audit: &AuditContext,
    ) -> AppResult<Container> {
        self.store
            .set_container_desired(
                c.org_id,
                c.id,
                c.generation,
                desired,
                self.clock.now(),
                action,
                audit,
            )
            .await?
            .ok_or_else(|| {
                AppError::Conflict(format!(
                    "container `{}` was changed by another request; try again",
                    c.name
                ))
            })
    }
}
