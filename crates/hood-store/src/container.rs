//! Customers' containers (their allocations are the allocation store's).

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::audit::AuditContext;
use hood_domain::container::{Container, Desired};
use hood_domain::{AllocationId, ContainerId, OrgId, Timestamp};

#[async_trait]
pub trait ContainerStore: Send + Sync {
    /// Stores a new container with its audit row (`container.create`);
    /// `Conflict("container name")` when the organization has one of that
    /// name.
    async fn insert_container(&self, c: &Container, audit: &AuditContext) -> StoreResult<()>;

    async fn get_container(&self, org: OrgId, id: ContainerId) -> StoreResult<Option<Container>>;

    async fn container_by_name(&self, org: OrgId, name: &str) -> StoreResult<Option<Container>>;

    /// The container `name` of the organization with slug `org_slug` (the
    /// ingress names organizations by slug).
    async fn container_by_org_slug(
        &self,
        org_slug: &str,
        name: &str,
    ) -> StoreResult<Option<Container>>;

    /// The organization's containers, newest first.
    async fn list_containers(&self, org: OrgId) -> StoreResult<Vec<Container>>;

    /// Containers wanted running whose current generation has no
    /// allocation yet (every organization), oldest first.
    async fn pending_containers(&self, limit: i64) -> StoreResult<Vec<Container>>;

    /// Records what is wanted as a new generation (a start, without an
    /// allocation yet; a stop, keeping the one being released), with its
    /// audit row, if the container is still
    /// at `generation`; answers the container as stored, or `None` when
    /// another request moved it first.
    #[allow(clippy::too_many_arguments)]
    async fn set_container_desired(
        &self,
        org: OrgId,
        id: ContainerId,
        generation: u32,
        desired: Desired,
        at: Timestamp,
        action: &str,
        audit: &AuditContext,
    ) -> StoreResult<Option<Container>>;

    /// Links `generation`'s allocation (or records why it could not be
    /// placed) if the container is still at that generation and unplaced.
    async fn place_container(
        &self,
        id: ContainerId,
        generation: u32,
        allocation: Option<AllocationId>,
        error: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<bool>;

    /// Deletes a container with its audit row; `false` when there is none.
    async fn delete_container(
        &self,
        org: OrgId,
        id: ContainerId,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<bool>;
}
