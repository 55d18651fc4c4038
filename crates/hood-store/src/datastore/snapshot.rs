//! [`SnapshotStore`] for [`SqlStore`].

use super::billing::parse_id;
use super::SqlStore;
use crate::codec::write_error;
use crate::db::{query, query_as};
use crate::snapshot::SnapshotStore;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::snapshot::{NodeSnapshot, SnapshotState};
use hood_domain::{NodeId, OrgId, Timestamp};

const COLUMNS: &str = "node_id, name, state, reason, head_height, files, raw_bytes, \
     compressed_bytes, chunks_total, chunks_done, error, created_at, completed_at";

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    node_id: String,
    name: String,
    state: String,
    reason: String,
    head_height: Option<i64>,
    files: i64,
    raw_bytes: i64,
    compressed_bytes: i64,
    chunks_total: i64,
    chunks_done: i64,
    error: Option<String>,
    created_at: i64,
    completed_at: Option<i64>,
}

impl TryFrom<SnapshotRow> for NodeSnapshot {
    type Error = StoreError;
    fn try_from(r: SnapshotRow) -> StoreResult<Self> {
        Ok(NodeSnapshot {
            node_id: parse_id("node_id", &r.node_id)?,
            name: r.name,
            state: SnapshotState::parse(&r.state)
                .ok_or_else(|| StoreError::Corrupt(format!("snapshot state `{}`", r.state)))?,
            reason: r.reason,
            head_height: r.head_height,
            files: r.files,
            raw_bytes: r.raw_bytes,
            compressed_bytes: r.compressed_bytes,
            chunks_total: r.chunks_total,
            chunks_done: r.chunks_done,
            error: r.error,
            created_at: Timestamp::from_millis(r.created_at),
            completed_at: r.completed_at.map(Timestamp::from_millis),
        })
    }
}

fn all(rows: Vec<SnapshotRow>) -> StoreResult<Vec<NodeSnapshot>> {
    rows.into_iter().map(NodeSnapshot::try_from).collect()
}

#[async_trait]
impl SnapshotStore for SqlStore {
    async fn create_snapshot(&self, s: &NodeSnapshot) -> StoreResult<bool> {
        let done = query(format!(
            "INSERT INTO node_snapshots ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (node_id, name) DO NOTHING"
        ))
        .bind(s.node_id.to_string())
        .bind(s.name.as_str())
        .bind(s.state.as_str())
        .bind(s.reason.as_str())
        .bind(s.head_height)
        .bind(s.files)
        .bind(s.raw_bytes)
        .bind(s.compressed_bytes)
        .bind(s.chunks_total)
        .bind(s.chunks_done)
        .bind(s.error.clone())
        .bind(s.created_at.millis())
        .bind(s.completed_at.map(Timestamp::millis))
        .execute(&self.pool)
        .await
        .map_err(|e| write_error(e, "snapshot"))?;
        Ok(done == 1)
    }

    async fn update_snapshot(&self, s: &NodeSnapshot) -> StoreResult<()> {
        let done = query(
            "UPDATE node_snapshots SET state = $3, head_height = $4, files = $5, \
             raw_bytes = $6, compressed_bytes = $7, chunks_total = $8, chunks_done = $9, \
             error = $10, completed_at = $11 WHERE node_id = $1 AND name = $2",
        )
        .bind(s.node_id.to_string())
        .bind(s.name.as_str())
        .bind(s.state.as_str())
        .bind(s.head_height)
        .bind(s.files)
        .bind(s.raw_bytes)
        .bind(s.compressed_bytes)
        .bind(s.chunks_total)
        .bind(s.chunks_done)
        .bind(s.error.clone())
        .bind(s.completed_at.map(Timestamp::millis))
        .execute(&self.pool)
        .await?;
        if done == 0 {
            return Err(StoreError::NotFound("snapshot"));
        }
        Ok(())
    }

    async fn record_snapshot_progress(
        &self,
        node: NodeId,
        name: &str,
        chunks_done: i64,
    ) -> StoreResult<()> {
        query(
            "UPDATE node_snapshots SET chunks_done = $3 \
             WHERE node_id = $1 AND name = $2 AND chunks_done < $3",
        )
        .bind(node.to_string())
        .bind(name)
        .bind(chunks_done)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_snapshot(&self, node: NodeId, name: &str) -> StoreResult<Option<NodeSnapshot>> {
        query_as::<SnapshotRow>(format!(
            "SELECT {COLUMNS} FROM node_snapshots WHERE node_id = $1 AND name = $2"
        ))
        .bind(node.to_string())
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(NodeSnapshot::try_from)
        .transpose()
    }

    async fn list_snapshots(&self, node: NodeId) -> StoreResult<Vec<NodeSnapshot>> {
        all(query_as::<SnapshotRow>(format!(
            "SELECT {COLUMNS} FROM node_snapshots WHERE node_id = $1 \
             ORDER BY created_at DESC, name DESC"
        ))
        .bind(node.to_string())
        .fetch_all(&self.pool)
        .await?)
    }

    async fn latest_complete_snapshot(&self, node: NodeId) -> StoreResult<Option<NodeSnapshot>> {
        query_as::<SnapshotRow>(format!(
            "SELECT {COLUMNS} FROM node_snapshots WHERE node_id = $1 AND state = 'complete' \
             ORDER BY created_at DESC, name DESC LIMIT 1"
        ))
        .bind(node.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(NodeSnapshot::try_from)
        .transpose()
    }

    async fn delete_snapshot(&self, node: NodeId, name: &str) -> StoreResult<()> {
        query("DELETE FROM node_snapshots WHERE node_id = $1 AND name = $2")
            .bind(node.to_string())
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn healthy_nodes_without_snapshot(
        &self,
        name: &str,
    ) -> StoreResult<Vec<(OrgId, NodeId)>> {
        let rows: Vec<(String, String)> = query_as(
            "SELECT n.org_id, n.id FROM nodes n WHERE n.state = 'healthy' \
             AND NOT EXISTS (SELECT 1 FROM node_snapshots s \
             WHERE s.node_id = n.id AND s.name = $1) ORDER BY n.id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(org, node)| Ok((parse_id("org_id", &org)?, parse_id("id", &node)?)))
            .collect()
    }

    async fn expired_snapshots(
        &self,
        reason: &str,
        keep: i64,
        before: Timestamp,
    ) -> StoreResult<Vec<NodeSnapshot>> {
        // Rank by a correlated count: portable to both dialects.
        all(query_as::<SnapshotRow>(format!(
            "SELECT {COLUMNS} FROM node_snapshots s \
             WHERE (s.state = 'complete' AND s.reason = $1 AND ( \
                 SELECT COUNT(*) FROM node_snapshots n WHERE n.node_id = s.node_id \
                 AND n.state = 'complete' AND n.reason = $1 \
                 AND (n.created_at > s.created_at \
                      OR (n.created_at = s.created_at AND n.name > s.name))) >= $2) \
             OR (s.state = 'failed' AND s.created_at < $3) \
             ORDER BY s.node_id, s.created_at"
        ))
        .bind(reason)
        .bind(keep)
        .bind(before.millis())
        .fetch_all(&self.pool)
        .await?)
    }
}
