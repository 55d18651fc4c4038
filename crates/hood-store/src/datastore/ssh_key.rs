//! [`SshKeyStore`] for [`SqlStore`].

use super::audit::{audit_value as value, insert_audit, Audited};
use super::SqlStore;
use crate::codec::{parse_id, write_error};
use crate::db::{query, query_as};
use crate::ssh_key::SshKeyStore;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::audit::AuditContext;
use hood_domain::ssh_key::SshKey;
use hood_domain::{SshKeyId, Timestamp, UserId};

const COLUMNS: &str = "id, user_id, org_id, name, algorithm, public_key, fingerprint, created_at";

#[derive(sqlx::FromRow)]
struct SshKeyRow {
    id: String,
    user_id: String,
    org_id: String,
    name: String,
    algorithm: String,
    public_key: String,
    fingerprint: String,
    created_at: i64,
}

impl TryFrom<SshKeyRow> for SshKey {
    type Error = StoreError;
    fn try_from(r: SshKeyRow) -> StoreResult<Self> {
        Ok(SshKey {
            id: parse_id("id", &r.id)?,
            user_id: parse_id("user_id", &r.user_id)?,
            org_id: parse_id("org_id", &r.org_id)?,
            name: r.name,
            algorithm: r.algorithm,
            public_key: r.public_key,
            fingerprint: r.fingerprint,
            created_at: Timestamp::from_millis(r.created_at),
        })
    }
}

#[async_trait]
impl SshKeyStore for SqlStore {
    async fn add_ssh_key(&self, key: &SshKey, audit: &AuditContext) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        query(format!(
            "INSERT INTO ssh_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(key.id.to_string())
        .bind(key.user_id.to_string())
        .bind(key.org_id.to_string())
        .bind(&key.name)
        .bind(&key.algorithm)
        .bind(&key.public_key)
        .bind(&key.fingerprint)
        .bind(key.created_at.millis())
        .execute(&mut tx)
        .await
        .map_err(|e| write_error(e, "user"))?;
        insert_audit(
            &mut tx,
            audit,
            key.created_at,
            Audited {
                org_id: Some(key.org_id),
                action: "ssh_key.add",
                resource_type: "ssh_key",
                resource_id: key.id.to_string(),
                before: None,
                after: Some(value(key)?),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ssh_keys_of_user(&self, user: UserId) -> StoreResult<Vec<SshKey>> {
        query_as::<SshKeyRow>(format!(
            "SELECT {COLUMNS} FROM ssh_keys WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(SshKey::try_from)
        .collect()
    }

    async fn remove_ssh_key(
        &self,
        user: UserId,
        id: SshKeyId,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin_write().await?;
        let Some(before) = query_as::<SshKeyRow>(format!(
            "SELECT {COLUMNS} FROM ssh_keys WHERE id = $1 AND user_id = $2"
        ))
        .bind(id.to_string())
        .bind(user.to_string())
        .fetch_optional(&mut tx)
        .await?
        .map(SshKey::try_from)
        .transpose()?
        else {
            return Ok(false);
        };
        let removed = query("DELETE FROM ssh_keys WHERE id = $1 AND user_id = $2")
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&mut tx)
            .await?;
        if removed == 0 {
            // Removed by a concurrent request: that one wrote the row.
            return Ok(false);
        }
        insert_audit(
            &mut tx,
            audit,
            at,
            Audited {
                org_id: Some(before.org_id),
                action: "ssh_key.remove",
                resource_type: "ssh_key",
                resource_id: id.to_string(),
                before: Some(value(&before)?),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn ssh_keys_with_fingerprint(&self, fingerprint: &str) -> StoreResult<Vec<SshKey>> {
        query_as::<SshKeyRow>(format!(
            "SELECT {COLUMNS} FROM ssh_keys WHERE fingerprint = $1 ORDER BY created_at, id"
        ))
        .bind(fingerprint)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(SshKey::try_from)
        .collect()
    }
}
