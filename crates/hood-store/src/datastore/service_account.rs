//! [`ServiceAccountStore`] for [`SqlStore`].

use super::audit::{audit_value as value, insert_audit, Audited};
use super::identity::insert_api_key;
use super::SqlStore;
use crate::codec::{parse_id, write_error};
use crate::db::{query, query_as, Tx};
use crate::service_account::ServiceAccountStore;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::audit::AuditContext;
use hood_domain::identity::ApiKey;
use hood_domain::scope::{Grants, ServiceAccount};
use hood_domain::{ApiKeyId, OrgId, ServiceAccountId, Timestamp};

const COLUMNS: &str = "id, org_id, owner_id, name, grants, created_at, deleted_at";

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    org_id: String,
    owner_id: String,
    name: String,
    grants: String,
    created_at: i64,
    deleted_at: Option<i64>,
}

impl TryFrom<AccountRow> for ServiceAccount {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> StoreResult<Self> {
        let grants = if r.deleted_at.is_some() {
            Grants::default()
        } else {
            serde_json::from_str(&r.grants)
                .map_err(|e| StoreError::Corrupt(format!("service account grants: {e}")))?
        };
        Ok(ServiceAccount {
            id: parse_id("id", &r.id)?,
            org_id: parse_id("org_id", &r.org_id)?,
            owner_id: parse_id("owner_id", &r.owner_id)?,
            name: r.name,
            grants,
            created_at: Timestamp::from_millis(r.created_at),
        })
    }
}

fn grants_json(grants: &Grants) -> StoreResult<String> {
    serde_json::to_string(grants)
        .map_err(|e| StoreError::Corrupt(format!("service account grants: {e}")))
}

/// A live account of the organization, locked for the rest of `tx`.
async fn lock_live(
    tx: &mut Tx<'_>,
    org: OrgId,
    id: ServiceAccountId,
) -> StoreResult<Option<ServiceAccount>> {
    query_as::<AccountRow>(format!(
        "SELECT {COLUMNS} FROM service_accounts \
         WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL{}",
        tx.backend().for_update()
    ))
    .bind(id.to_string())
    .bind(org.to_string())
    .fetch_optional(&mut *tx)
    .await?
    .map(ServiceAccount::try_from)
    .transpose()
}

#[async_trait]
impl ServiceAccountStore for SqlStore {
    async fn create_service_account(
        &self,
        account: &ServiceAccount,
        audit: &AuditContext,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        query(format!(
            "INSERT INTO service_accounts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL)"
        ))
        .bind(account.id.to_string())
        .bind(account.org_id.to_string())
        .bind(account.owner_id.to_string())
        .bind(&account.name)
        .bind(grants_json(&account.grants)?)
        .bind(account.created_at.millis())
        .execute(&mut tx)
        .await
        .map_err(|e| write_error(e, "organization"))?;
        insert_audit(
            &mut tx,
            audit,
            account.created_at,
            Audited {
                org_id: Some(account.org_id),
                action: "service_account.create",
                resource_type: "service_account",
                resource_id: account.id.to_string(),
                before: None,
                after: Some(value(account)?),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn service_account(
        &self,
        org: OrgId,
        id: ServiceAccountId,
    ) -> StoreResult<Option<ServiceAccount>> {
        query_as::<AccountRow>(format!(
            "SELECT {COLUMNS} FROM service_accounts \
             WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL"
        ))
        .bind(id.to_string())
        .bind(org.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(ServiceAccount::try_from)
        .transpose()
    }

    async fn list_service_accounts(&self, org: OrgId) -> StoreResult<Vec<ServiceAccount>> {
        query_as::<AccountRow>(format!(
            "SELECT {COLUMNS} FROM service_accounts \
             WHERE org_id = $1 AND deleted_at IS NULL ORDER BY name"
        ))
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(ServiceAccount::try_from)
        .collect()
    }

    async fn set_service_account_grants(
        &self,
        org: OrgId,
        id: ServiceAccountId,
        grants: &Grants,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<ServiceAccount> {
        let mut tx = self.pool.begin_write().await?;
        let before = lock_live(&mut tx, org, id)
            .await?
            .ok_or(StoreError::NotFound("service account"))?;
        query("UPDATE service_accounts SET grants = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(grants_json(grants)?)
            .execute(&mut tx)
            .await?;
        let after = ServiceAccount {
            grants: grants.clone(),
            ..before.clone()
        };
        insert_audit(
            &mut tx,
            audit,
            at,
            Audited {
                org_id: Some(org),
                action: "service_account.grants.update",
                resource_type: "service_account",
                resource_id: id.to_string(),
                before: Some(value(&before)?),
                after: Some(value(&after)?),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn delete_service_account(
        &self,
        org: OrgId,
        id: ServiceAccountId,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin_write().await?;
        let Some(before) = lock_live(&mut tx, org, id).await? else {
            return Ok(false);
        };
        query("UPDATE service_accounts SET deleted_at = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(at.millis())
            .execute(&mut tx)
            .await?;
        query(
            "UPDATE api_keys SET revoked_at = $2 \
             WHERE service_account_id = $1 AND revoked_at IS NULL",
        )
        .bind(id.to_string())
        .bind(at.millis())
        .execute(&mut tx)
        .await?;
        insert_audit(
            &mut tx,
            audit,
            at,
            Audited {
                org_id: Some(org),
                action: "service_account.delete",
                resource_type: "service_account",
                resource_id: id.to_string(),
                before: Some(value(&before)?),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_service_account_key(
        &self,
        account: ServiceAccountId,
        key: &ApiKey,
        audit: &AuditContext,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        // Locked, so a deletion cannot slip between the check and the key.
        lock_live(&mut tx, key.org_id, account)
            .await?
            .ok_or(StoreError::NotFound("service account"))?;
        insert_api_key(&mut tx, key).await?;
        query("UPDATE api_keys SET service_account_id = $2 WHERE id = $1")
            .bind(key.id.to_string())
            .bind(account.to_string())
            .execute(&mut tx)
            .await?;
        insert_audit(
            &mut tx,
            audit,
            key.created_at,
            Audited {
                org_id: Some(key.org_id),
                action: "service_account.key.create",
                resource_type: "service_account",
                resource_id: account.to_string(),
                before: None,
                after: Some(serde_json::json!({
                    "key_id": key.id.to_string(),
                    "name": key.name,
                    "prefix": key.prefix,
                    "expires_at": key.expires_at.map(Timestamp::millis),
                })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn service_account_of_key(&self, key: ApiKeyId) -> StoreResult<Option<ServiceAccount>> {
        query_as::<AccountRow>(format!(
            "SELECT {} FROM service_accounts s JOIN api_keys k ON k.service_account_id = s.id \
             WHERE k.id = $1",
            COLUMNS
                .split(", ")
                .map(|c| format!("s.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(key.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(ServiceAccount::try_from)
        .transpose()
    }
}
