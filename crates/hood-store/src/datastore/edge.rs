//! [`RpcKeyStore`] and [`EdgeStore`] for [`SqlStore`].

use super::outbox::insert_event;
use super::SqlStore;
use crate::codec::{self, events};
use crate::db::{query, query_as, Executor};
use crate::edge::{EdgeStore, RpcKeyStore, ServingNode};
use crate::model::edge::{RpcKeyRow, ServingNodeRow, RPC_KEY_COLUMNS};
use crate::model::{all, one};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::rpc::{KeyScope, RpcKey};
use hood_domain::{OrgId, RpcKeyId, Timestamp};

/// `updated_at` never moves backwards, even when replicas' clocks disagree,
/// so a resync cursor never skips a change.
const TOUCH_UPDATED_AT: &str = "updated_at = CASE WHEN updated_at > $1 THEN updated_at ELSE $1 END";

fn encode_scope(scope: &KeyScope) -> StoreResult<String> {
    serde_json::to_string(scope).map_err(|e| StoreError::Corrupt(format!("rpc key scope: {e}")))
}

async fn fetch_key<'e>(
    on: impl Into<Executor<'e>>,
    org: OrgId,
    id: RpcKeyId,
) -> StoreResult<Option<RpcKey>> {
    let row = query_as::<RpcKeyRow>(format!(
        "SELECT {RPC_KEY_COLUMNS} FROM rpc_keys WHERE id = $1 AND org_id = $2"
    ))
    .bind(id.to_string())
    .bind(org.to_string())
    .fetch_optional(on)
    .await?;
    one(row)
}

#[async_trait]
impl RpcKeyStore for SqlStore {
    async fn create_rpc_key(&self, key: &RpcKey) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        query(format!(
            "INSERT INTO rpc_keys ({RPC_KEY_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(key.id.to_string())
        .bind(key.org_id.to_string())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.secret_hash)
        .bind(&key.plan)
        .bind(encode_scope(&key.scope)?)
        .bind(key.created_at.millis())
        .bind(key.updated_at.millis())
        .bind(key.revoked_at.map(Timestamp::millis))
        .bind(key.version)
        .execute(&mut tx)
        .await
        .map_err(|e| codec::write_error(e, "org"))?;
        insert_event(&mut tx, &events::rpc_key("edge.rpc_key.created", key)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_rpc_key(&self, org: OrgId, id: RpcKeyId) -> StoreResult<Option<RpcKey>> {
        fetch_key(&self.pool, org, id).await
    }

    async fn list_rpc_keys(&self, org: OrgId) -> StoreResult<Vec<RpcKey>> {
        let rows = query_as::<RpcKeyRow>(format!(
            "SELECT {RPC_KEY_COLUMNS} FROM rpc_keys WHERE org_id = $1 \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn find_rpc_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<RpcKey>> {
        let row = query_as::<RpcKeyRow>(format!(
            "SELECT {RPC_KEY_COLUMNS} FROM rpc_keys WHERE prefix = $1"
        ))
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?;
        one(row)
    }

    async fn update_rpc_key(&self, key: &RpcKey, now: Timestamp) -> StoreResult<RpcKey> {
        let mut tx = self.pool.begin_write().await?;
        // The conditional update is the arbiter against a racing revoke.
        let changed = query(format!(
            "UPDATE rpc_keys SET name = $2, plan = $3, scope = $4, version = version + 1, \
             {TOUCH_UPDATED_AT} WHERE id = $5 AND org_id = $6 AND revoked_at IS NULL"
        ))
        .bind(now.millis())
        .bind(&key.name)
        .bind(&key.plan)
        .bind(encode_scope(&key.scope)?)
        .bind(key.id.to_string())
        .bind(key.org_id.to_string())
        .execute(&mut tx)
        .await?;
        let Some(stored) = fetch_key(&mut tx, key.org_id, key.id).await? else {
            tx.rollback().await?;
            return Err(StoreError::NotFound("rpc key"));
        };
        if changed == 0 {
            tx.rollback().await?;
            return Err(StoreError::Conflict("revoked rpc key".into()));
        }
        insert_event(&mut tx, &events::rpc_key("edge.rpc_key.updated", &stored)).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn revoke_rpc_key(&self, org: OrgId, id: RpcKeyId, now: Timestamp) -> StoreResult<bool> {
        let mut tx = self.pool.begin_write().await?;
        let changed = query(format!(
            "UPDATE rpc_keys SET revoked_at = $1, version = version + 1, {TOUCH_UPDATED_AT} \
             WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL"
        ))
        .bind(now.millis())
        .bind(id.to_string())
        .bind(org.to_string())
        .execute(&mut tx)
        .await?;
        match fetch_key(&mut tx, org, id).await? {
            Some(key) if changed > 0 => {
                insert_event(&mut tx, &events::rpc_key("edge.rpc_key.revoked", &key)).await?;
                tx.commit().await?;
                Ok(true)
            }
            // Already revoked: keep the first time, no second event.
            found => {
                tx.rollback().await?;
                Ok(found.is_some())
            }
        }
    }

    async fn rpc_keys_changed_since(&self, since: Timestamp) -> StoreResult<Vec<RpcKey>> {
        let rows = query_as::<RpcKeyRow>(format!(
            "SELECT {RPC_KEY_COLUMNS} FROM rpc_keys WHERE updated_at >= $1 ORDER BY updated_at, id"
        ))
        .bind(since.millis())
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }
}

#[async_trait]
impl EdgeStore for SqlStore {
    async fn serving_nodes(&self) -> StoreResult<Vec<ServingNode>> {
        let rows = query_as::<ServingNodeRow>(
            "SELECT id, org_id, chain, rpc_endpoint FROM nodes \
             WHERE state = 'healthy' AND rpc_endpoint IS NOT NULL ORDER BY chain, id",
        )
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }
}
