//! [`ServiceAccountStore`] for [`SqlStore`].

use super::audit::{audit_value as value, insert_audit, Audited};
use super::identity::insert_api_key;
use super::outbox::insert_event;
use super::SqlStore;
use crate::codec::events;
use crate::codec::{parse_id, write_error};
use crate::db::{query, query_as, Tx};
use crate::service_account::{S3Principal, ServiceAccountStore};
use crate::service_account::{S3_KEY_REVOKED, SERVICE_ACCOUNT_DELETED, SERVICE_ACCOUNT_UPDATED};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::audit::AuditContext;
use hood_domain::identity::ApiKey;
use hood_domain::scope::{Grants, S3AccessKey, ServiceAccount};
use hood_domain::{ApiKeyId, OrgId, ServiceAccountId, Timestamp};

const COLUMNS: &str = "id, org_id, owner_id, name, grants, created_at, deleted_at";
const S3_KEY_COLUMNS: &str =
    "access_key_id, service_account_id, org_id, sealed_secret, created_at, revoked_at";

#[derive(sqlx::FromRow)]
struct S3KeyRow {
    access_key_id: String,
    service_account_id: String,
    org_id: String,
    sealed_secret: Vec<u8>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl S3KeyRow {
    fn key(&self) -> StoreResult<S3AccessKey> {
        Ok(S3AccessKey {
            access_key_id: self.access_key_id.clone(),
            service_account_id: parse_id("service_account_id", &self.service_account_id)?,
            org_id: parse_id("org_id", &self.org_id)?,
            created_at: Timestamp::from_millis(self.created_at),
            revoked_at: self.revoked_at.map(Timestamp::from_millis),
        })
    }
}

/// [`S3Principal`]'s row: the key, its account, the org's slug, the owner.
#[derive(sqlx::FromRow)]
struct PrincipalRow {
    access_key_id: String,
    service_account_id: String,
    org_id: String,
    sealed_secret: Vec<u8>,
    key_created_at: i64,
    revoked_at: Option<i64>,
    owner_id: String,
    name: String,
    grants: String,
    account_created_at: i64,
    deleted_at: Option<i64>,
    org_slug: String,
    owner_role: String,
    owner_disabled: bool,
}

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
        insert_event(
            &mut tx,
            &events::service_account_changed(SERVICE_ACCOUNT_UPDATED, org, id, None),
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
        query(
            "UPDATE s3_access_keys SET revoked_at = $2 \
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
        insert_event(
            &mut tx,
            &events::service_account_changed(SERVICE_ACCOUNT_DELETED, org, id, None),
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

    async fn create_s3_key(
        &self,
        key: &S3AccessKey,
        sealed_secret: &[u8],
        audit: &AuditContext,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        // Locked, so a deletion cannot slip between the check and the key.
        lock_live(&mut tx, key.org_id, key.service_account_id)
            .await?
            .ok_or(StoreError::NotFound("service account"))?;
        query(format!(
            "INSERT INTO s3_access_keys ({S3_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL)"
        ))
        .bind(&key.access_key_id)
        .bind(key.service_account_id.to_string())
        .bind(key.org_id.to_string())
        .bind(sealed_secret)
        .bind(key.created_at.millis())
        .execute(&mut tx)
        .await
        .map_err(|e| write_error(e, "s3 access key"))?;
        insert_audit(
            &mut tx,
            audit,
            key.created_at,
            Audited {
                org_id: Some(key.org_id),
                action: "service_account.s3_key.create",
                resource_type: "service_account",
                resource_id: key.service_account_id.to_string(),
                before: None,
                after: Some(serde_json::json!({ "access_key_id": key.access_key_id })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_s3_keys(
        &self,
        org: OrgId,
        account: ServiceAccountId,
    ) -> StoreResult<Vec<S3AccessKey>> {
        query_as::<S3KeyRow>(format!(
            "SELECT {S3_KEY_COLUMNS} FROM s3_access_keys \
             WHERE org_id = $1 AND service_account_id = $2 \
             ORDER BY created_at DESC, access_key_id"
        ))
        .bind(org.to_string())
        .bind(account.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(S3KeyRow::key)
        .collect()
    }

    async fn revoke_s3_key(
        &self,
        org: OrgId,
        account: ServiceAccountId,
        access_key_id: &str,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin_write().await?;
        let revoked = query(
            "UPDATE s3_access_keys SET revoked_at = $4 \
             WHERE access_key_id = $1 AND org_id = $2 AND service_account_id = $3 \
             AND revoked_at IS NULL",
        )
        .bind(access_key_id)
        .bind(org.to_string())
        .bind(account.to_string())
        .bind(at.millis())
        .execute(&mut tx)
        .await?;
        if revoked == 0 {
            return Ok(false);
        }
        insert_audit(
            &mut tx,
            audit,
            at,
            Audited {
                org_id: Some(org),
                action: "service_account.s3_key.revoke",
                resource_type: "service_account",
                resource_id: account.to_string(),
                before: Some(serde_json::json!({ "access_key_id": access_key_id })),
                after: None,
            },
        )
        .await?;
        insert_event(
            &mut tx,
            &events::service_account_changed(S3_KEY_REVOKED, org, account, Some(access_key_id)),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn s3_principal(&self, access_key_id: &str) -> StoreResult<Option<S3Principal>> {
        let row = query_as::<PrincipalRow>(
            "SELECT k.access_key_id, k.service_account_id, k.org_id, k.sealed_secret, \
             k.created_at AS key_created_at, k.revoked_at, s.owner_id, s.name, s.grants, \
             s.created_at AS account_created_at, s.deleted_at, \
             o.slug AS org_slug, u.role AS owner_role, u.disabled AS owner_disabled \
             FROM s3_access_keys k \
             JOIN service_accounts s ON s.id = k.service_account_id \
             JOIN orgs o ON o.id = k.org_id \
             JOIN users u ON u.id = s.owner_id \
             WHERE k.access_key_id = $1",
        )
        .bind(access_key_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let key = S3KeyRow {
            access_key_id: r.access_key_id,
            service_account_id: r.service_account_id.clone(),
            org_id: r.org_id.clone(),
            sealed_secret: r.sealed_secret,
            created_at: r.key_created_at,
            revoked_at: r.revoked_at,
        };
        let account = ServiceAccount::try_from(AccountRow {
            id: r.service_account_id,
            org_id: r.org_id,
            owner_id: r.owner_id,
            name: r.name,
            grants: r.grants,
            created_at: r.account_created_at,
            deleted_at: r.deleted_at,
        })?;
        Ok(Some(S3Principal {
            key: key.key()?,
            sealed_secret: key.sealed_secret,
            account,
            org_slug: r.org_slug,
            owner_role: crate::codec::parse_role("users.role", &r.owner_role)?,
            owner_disabled: r.owner_disabled,
        }))
    }
}
