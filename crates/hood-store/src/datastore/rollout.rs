//! [`RolloutStore`] for [`SqlStore`].

use super::billing::parse_id;
use super::SqlStore;
use crate::codec::write_error;
use crate::db::{query, query_as, Tx};
use crate::rollout::RolloutStore;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::lifecycle::rollout::{RolloutNodeState, RolloutState};
use hood_domain::machine::StateMachine;
use hood_domain::rollout::{PinnedBinary, Rollout, RolloutKind, RolloutNode};
use hood_domain::{NodeId, RolloutId, Timestamp};

const ROLLOUT_COLUMNS: &str = "id, upgrade_id, chain, node_type, from_version, target, policy, \
     soak_s, verify_timeout_s, state, approved_through, error, created_by, created_at, updated_at, \
     kind, selector";
const NODE_COLUMNS: &str = "rollout_id, node_id, batch, batch_position, state, from_version, \
     soak_until, error, updated_at";

#[derive(sqlx::FromRow)]
struct RolloutRow {
    id: String,
    upgrade_id: Option<String>,
    chain: String,
    node_type: Option<String>,
    from_version: String,
    target: String,
    policy: String,
    soak_s: i64,
    verify_timeout_s: i64,
    state: String,
    approved_through: i64,
    error: Option<String>,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    kind: String,
    selector: Option<String>,
}

fn small(column: &str, v: i64) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column}: {v} out of range")))
}

fn json<T: serde::de::DeserializeOwned>(column: &str, v: &str) -> StoreResult<T> {
    serde_json::from_str(v).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

impl TryFrom<RolloutRow> for Rollout {
    type Error = StoreError;
    fn try_from(r: RolloutRow) -> StoreResult<Self> {
        Ok(Rollout {
            id: parse_id("id", &r.id)?,
            upgrade_id: r.upgrade_id,
            kind: RolloutKind::parse(&r.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("rollout kind `{}`", r.kind)))?,
            chain: r.chain,
            node_type: r.node_type,
            selector: r.selector,
            from_version: r.from_version,
            target: json("target", &r.target)?,
            policy: json("policy", &r.policy)?,
            soak_s: small("soak_s", r.soak_s)?,
            verify_timeout_s: small("verify_timeout_s", r.verify_timeout_s)?,
            state: RolloutState::parse(&r.state)
                .ok_or_else(|| StoreError::Corrupt(format!("rollout state `{}`", r.state)))?,
            approved_through: small("approved_through", r.approved_through)?,
            error: r.error,
            created_by: r.created_by,
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct RolloutNodeRow {
    rollout_id: String,
    node_id: String,
    batch: i64,
    batch_position: i64,
    state: String,
    from_version: String,
    soak_until: Option<i64>,
    error: Option<String>,
    updated_at: i64,
}

impl TryFrom<RolloutNodeRow> for RolloutNode {
    type Error = StoreError;
    fn try_from(r: RolloutNodeRow) -> StoreResult<Self> {
        Ok(RolloutNode {
            rollout_id: parse_id("rollout_id", &r.rollout_id)?,
            node_id: parse_id("node_id", &r.node_id)?,
            batch: small("batch", r.batch)?,
            position: small("batch_position", r.batch_position)?,
            state: RolloutNodeState::parse(&r.state)
                .ok_or_else(|| StoreError::Corrupt(format!("rollout node state `{}`", r.state)))?,
            from_version: r.from_version,
            soak_until: r.soak_until.map(Timestamp::from_millis),
            error: r.error,
            updated_at: Timestamp::from_millis(r.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct PinRow {
    binary_name: String,
    artifact: String,
    version: String,
}

fn to_json(v: &impl serde::Serialize) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("encoding: {e}")))
}

async fn insert_rollout(tx: &mut Tx<'_>, r: &Rollout, nodes: &[RolloutNode]) -> StoreResult<()> {
    query(format!(
        "INSERT INTO rollouts ({ROLLOUT_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    ))
    .bind(r.id.to_string())
    .bind(r.upgrade_id.clone())
    .bind(r.chain.as_str())
    .bind(r.node_type.clone())
    .bind(r.from_version.as_str())
    .bind(to_json(&r.target)?)
    .bind(to_json(&r.policy)?)
    .bind(i64::from(r.soak_s))
    .bind(i64::from(r.verify_timeout_s))
    .bind(r.state.as_str())
    .bind(i64::from(r.approved_through))
    .bind(r.error.clone())
    .bind(r.created_by.as_str())
    .bind(r.created_at.millis())
    .bind(r.updated_at.millis())
    .bind(r.kind.as_str())
    .bind(r.selector.clone())
    .execute(&mut *tx)
    .await
    .map_err(|e| write_error(e, "rollout"))?;
    for n in nodes {
        query(format!(
            "INSERT INTO rollout_nodes ({NODE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(n.rollout_id.to_string())
        .bind(n.node_id.to_string())
        .bind(i64::from(n.batch))
        .bind(i64::from(n.position))
        .bind(n.state.as_str())
        .bind(n.from_version.as_str())
        .bind(n.soak_until.map(Timestamp::millis))
        .bind(n.error.clone())
        .bind(n.updated_at.millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| write_error(e, "node"))?;
    }
    Ok(())
}

#[async_trait]
impl RolloutStore for SqlStore {
    async fn create_rollout(&self, r: &Rollout, nodes: &[RolloutNode]) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        match insert_rollout(&mut tx, r, nodes).await {
            Ok(()) => Ok(tx.commit().await?),
            Err(e) => {
                // Roll back now rather than when the connection is reused.
                tx.rollback().await?;
                Err(e)
            }
        }
    }

    async fn get_rollout(&self, id: RolloutId) -> StoreResult<Option<(Rollout, Vec<RolloutNode>)>> {
        let Some(row) = query_as::<RolloutRow>(format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let nodes = query_as::<RolloutNodeRow>(format!(
            "SELECT {NODE_COLUMNS} FROM rollout_nodes WHERE rollout_id = $1 \
             ORDER BY batch, batch_position"
        ))
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(RolloutNode::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some((Rollout::try_from(row)?, nodes)))
    }

    async fn list_rollouts(&self, limit: i64) -> StoreResult<Vec<Rollout>> {
        query_as::<RolloutRow>(format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts ORDER BY created_at DESC, id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Rollout::try_from)
        .collect()
    }

    async fn set_rollout_state(
        &self,
        id: RolloutId,
        from: &[RolloutState],
        to: RolloutState,
        error: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        // Only the transitions the machine allows, whatever the caller says.
        let from: Vec<&str> = from
            .iter()
            .filter(|s| **s == to || s.can_transition_to(to))
            .map(|s| s.as_str())
            .collect();
        if from.is_empty() {
            return Ok(false);
        }
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 5)).collect();
        let mut q = query(format!(
            "UPDATE rollouts SET state = $1, error = COALESCE($2, error), updated_at = $3 \
             WHERE id = $4 AND state IN ({})",
            placeholders.join(", ")
        ))
        .bind(to.as_str())
        .bind(error.map(str::to_owned))
        .bind(now.millis())
        .bind(id.to_string());
        for s in from {
            q = q.bind(s);
        }
        Ok(q.execute(&self.pool).await? == 1)
    }

    async fn approve_rollout(
        &self,
        id: RolloutId,
        through: u32,
        now: Timestamp,
    ) -> StoreResult<()> {
        query(
            "UPDATE rollouts SET approved_through = $1, updated_at = $2 \
             WHERE id = $3 AND approved_through < $1",
        )
        .bind(i64::from(through))
        .bind(now.millis())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn update_rollout_node(&self, n: &RolloutNode) -> StoreResult<()> {
        let changed = query(
            "UPDATE rollout_nodes SET state = $1, soak_until = $2, error = $3, updated_at = $4 \
             WHERE rollout_id = $5 AND node_id = $6",
        )
        .bind(n.state.as_str())
        .bind(n.soak_until.map(Timestamp::millis))
        .bind(n.error.clone())
        .bind(n.updated_at.millis())
        .bind(n.rollout_id.to_string())
        .bind(n.node_id.to_string())
        .execute(&self.pool)
        .await?;
        if changed == 0 {
            return Err(StoreError::NotFound("rollout node"));
        }
        Ok(())
    }

    async fn live_rollouts_of_node(&self, node: NodeId) -> StoreResult<Vec<RolloutId>> {
        let live: Vec<&str> = RolloutState::ALL
            .iter()
            .filter(|s| !s.is_terminal())
            .map(|s| s.as_str())
            .collect();
        let placeholders: Vec<String> = (0..live.len()).map(|i| format!("${}", i + 2)).collect();
        let mut q = query_as::<(String,)>(format!(
            "SELECT r.id FROM rollouts r JOIN rollout_nodes n ON n.rollout_id = r.id \
             WHERE n.node_id = $1 AND r.state IN ({}) ORDER BY r.id",
            placeholders.join(", ")
        ))
        .bind(node.to_string());
        for s in live {
            q = q.bind(s);
        }
        q.fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|(id,)| parse_id("id", &id))
            .collect()
    }

    async fn node_binaries(&self, node: NodeId) -> StoreResult<Vec<PinnedBinary>> {
        Ok(query_as::<PinRow>(
            "SELECT binary_name, artifact, version FROM node_binaries WHERE node_id = $1 \
             ORDER BY binary_name",
        )
        .bind(node.to_string())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| PinnedBinary {
            binary: r.binary_name,
            artifact: r.artifact,
            version: r.version,
        })
        .collect())
    }

    async fn pin_node_binary(
        &self,
        node: NodeId,
        pin: &PinnedBinary,
        now: Timestamp,
    ) -> StoreResult<()> {
        query(
            "INSERT INTO node_binaries (node_id, binary_name, artifact, version, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (node_id, binary_name) DO UPDATE SET \
             artifact = excluded.artifact, version = excluded.version, \
             updated_at = excluded.updated_at",
        )
        .bind(node.to_string())
        .bind(pin.binary.as_str())
        .bind(pin.artifact.as_str())
        .bind(pin.version.as_str())
        .bind(now.millis())
        .execute(&self.pool)
        .await
        .map_err(|e| write_error(e, "node"))?;
        Ok(())
    }
}
