//! [`ContainerStore`] for [`SqlStore`].

use super::audit::{insert_audit, Audited};
use super::SqlStore;
use crate::codec::{parse_id, write_error};
use crate::container::ContainerStore;
use crate::db::{query, query_as};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::audit::AuditContext;
use hood_domain::container::{Container, Desired};
use hood_domain::{AllocationId, ContainerId, OrgId, Timestamp};

const COLUMNS: &str =
    "id, org_id, name, sku, spec, desired, generation, allocation_id, error, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct ContainerRow {
    id: String,
    org_id: String,
    name: String,
    sku: String,
    spec: String,
    desired: String,
    generation: i64,
    allocation_id: Option<String>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ContainerRow> for Container {
    type Error = StoreError;
    fn try_from(r: ContainerRow) -> StoreResult<Self> {
        Ok(Container {
            id: parse_id("id", &r.id)?,
            org_id: parse_id("org_id", &r.org_id)?,
            name: r.name,
            sku: r.sku,
            spec: serde_json::from_str(&r.spec)
                .map_err(|e| StoreError::Corrupt(format!("container spec: {e}")))?,
            desired: Desired::parse(&r.desired)
                .ok_or_else(|| StoreError::Corrupt(format!("container desired `{}`", r.desired)))?,
            generation: u32::try_from(r.generation).map_err(|_| {
                StoreError::Corrupt(format!("container generation {}", r.generation))
            })?,
            allocation_id: r
                .allocation_id
                .as_deref()
                .map(|a| parse_id("allocation_id", a))
                .transpose()?,
            error: r.error,
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
        })
    }
}

fn all(rows: Vec<ContainerRow>) -> StoreResult<Vec<Container>> {
    rows.into_iter().map(Container::try_from).collect()
}

/// What the audit log keeps of a container (its spec without the keys).
fn audited(c: &Container) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "name": c.name,
        "sku": c.sku,
        "image": c.spec.image,
        "desired": c.desired.as_str(),
        "generation": c.generation,
        "allocation_id": c.allocation_id,
    })
}

#[async_trait]
impl ContainerStore for SqlStore {
    async fn insert_container(&self, c: &Container, audit: &AuditContext) -> StoreResult<()> {
        let spec = serde_json::to_string(&c.spec)
            .map_err(|e| StoreError::Corrupt(format!("container spec: {e}")))?;
        let mut tx = self.pool.begin_write().await?;
        query(format!(
            "INSERT INTO containers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(c.id.to_string())
        .bind(c.org_id.to_string())
        .bind(&c.name)
        .bind(&c.sku)
        .bind(spec)
        .bind(c.desired.as_str())
        .bind(i64::from(c.generation))
        .bind(c.allocation_id.map(|a| a.to_string()))
        .bind(c.error.clone())
        .bind(c.created_at.millis())
        .bind(c.updated_at.millis())
        .execute(&mut tx)
        .await
        .map_err(|e| write_error(e, "organization"))?;
        insert_audit(
            &mut tx,
            audit,
            c.created_at,
            Audited {
                org_id: Some(c.org_id),
                action: "container.create",
                resource_type: "container",
                resource_id: c.id.to_string(),
                before: None,
                after: Some(audited(c)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_container(&self, org: OrgId, id: ContainerId) -> StoreResult<Option<Container>> {
        query_as::<ContainerRow>(format!(
            "SELECT {COLUMNS} FROM containers WHERE org_id = $1 AND id = $2"
        ))
        .bind(org.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(Container::try_from)
        .transpose()
    }

    async fn container_by_name(&self, org: OrgId, name: &str) -> StoreResult<Option<Container>> {
        query_as::<ContainerRow>(format!(
            "SELECT {COLUMNS} FROM containers WHERE org_id = $1 AND name = $2"
        ))
        .bind(org.to_string())
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(Container::try_from)
        .transpose()
    }

    async fn container_by_org_slug(
        &self,
        org_slug: &str,
        name: &str,
    ) -> StoreResult<Option<Container>> {
        let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("c.{c}")).collect();
        query_as::<ContainerRow>(format!(
            "SELECT {} FROM containers c JOIN orgs o ON o.id = c.org_id \
             WHERE o.slug = $1 AND c.name = $2",
            columns.join(", ")
        ))
        .bind(org_slug)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(Container::try_from)
        .transpose()
    }

    async fn list_containers(&self, org: OrgId) -> StoreResult<Vec<Container>> {
        all(query_as::<ContainerRow>(format!(
            "SELECT {COLUMNS} FROM containers WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?)
    }

    async fn pending_containers(&self, limit: i64) -> StoreResult<Vec<Container>> {
        all(query_as::<ContainerRow>(format!(
            "SELECT {COLUMNS} FROM containers WHERE desired = 'running' AND allocation_id IS NULL \
             ORDER BY updated_at, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn set_container_desired(
        &self,
        org: OrgId,
        id: ContainerId,
        generation: u32,
        desired: Desired,
        at: Timestamp,
        action: &str,
        audit: &AuditContext,
    ) -> StoreResult<Option<Container>> {
        let mut tx = self.pool.begin_write().await?;
        let Some(before) = query_as::<ContainerRow>(format!(
            "SELECT {COLUMNS} FROM containers WHERE org_id = $1 AND id = $2 AND generation = $3{}",
            tx.backend().for_update()
        ))
        .bind(org.to_string())
        .bind(id.to_string())
        .bind(i64::from(generation))
        .fetch_optional(&mut tx)
        .await?
        .map(Container::try_from)
        .transpose()?
        else {
            return Ok(None);
        };
        // A start's generation has no allocation yet; a stop keeps the
        // one being released, so its end can still be seen.
        let after = Container {
            desired,
            generation: generation + 1,
            allocation_id: match desired {
                Desired::Running => None,
                Desired::Stopped => before.allocation_id,
            },
            error: None,
            updated_at: at,
            ..before.clone()
        };
        query(
            "UPDATE containers SET desired = $3, generation = $4, allocation_id = $5, \
             error = NULL, updated_at = $6 WHERE id = $1 AND generation = $2",
        )
        .bind(id.to_string())
        .bind(i64::from(generation))
        .bind(desired.as_str())
        .bind(i64::from(after.generation))
        .bind(after.allocation_id.map(|a| a.to_string()))
        .bind(at.millis())
        .execute(&mut tx)
        .await?;
        insert_audit(
            &mut tx,
            audit,
            at,
            Audited {
                org_id: Some(org),
                action,
                resource_type: "container",
                resource_id: id.to_string(),
                before: Some(audited(&before)),
                after: Some(audited(&after)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    async fn place_container(
        &self,
        id: ContainerId,
        generation: u32,
        allocation: Option<AllocationId>,
        error: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let updated = query(
            "UPDATE containers SET allocation_id = $3, error = $4, updated_at = $5 \
             WHERE id = $1 AND generation = $2 AND allocation_id IS NULL",
        )
        .bind(id.to_string())
        .bind(i64::from(generation))
        .bind(allocation.map(|a| a.to_string()))
        .bind(error.map(str::to_owned))
        .bind(at.millis())
        .execute(&self.pool)
        .await
        .map_err(|e| write_error(e, "allocation"))?;
        Ok(updated == 1)
    }

    async fn delete_container(
        &self,
        org: OrgId,
        id: ContainerId,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin_write().await?;
        let Some(before) = query_as::<ContainerRow>(format!(
            "SELECT {COLUMNS} FROM containers WHERE org_id = $1 AND id = $2{}",
            tx.backend().for_update()
        ))
        .bind(org.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut tx)
        .await?
        .map(Container::try_from)
        .transpose()?
        else {
            return Ok(false);
        };
        let removed = query("DELETE FROM containers WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut tx)
            .await?;
        if removed == 0 {
            return Ok(false);
        }
        insert_audit(
            &mut tx,
            audit,
            at,
            Audited {
                org_id: Some(org),
                action: "container.delete",
                resource_type: "container",
                resource_id: id.to_string(),
                before: Some(audited(&before)),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
