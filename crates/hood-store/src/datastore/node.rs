//! [`NodeStore`] for [`SqlStore`], and [`update_node_on`], the versioned
//! node change the health cycle also applies on its own transaction.

use super::billing::parse_id;
use super::outbox::insert_event;
use super::workflow::insert_workflow;
use super::SqlStore;
use crate::codec::{self, events};
use crate::db::{query, query_as, Tx};
use crate::model::node::{
    NodeEventRow, NodeKeysRow, NodeRow, NODE_COLUMNS, NODE_EVENT_COLUMNS, NODE_KEY_COLUMNS,
};
use crate::model::{all, one};
use crate::node::{NodeChange, NodeStore};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::label::Labels;
use hood_domain::lifecycle::NodeState;
use hood_domain::machine::StateMachine as _;
use hood_domain::node::{Node, NodeEvent, NodeKeyMaterial};
use hood_domain::workflow::{NewWorkflow, WorkflowRecord};
use hood_domain::{NodeId, OrgId, Timestamp};
use std::collections::HashMap;

/// One entry of a node's history.
struct HistoryEntry<'a> {
    at: Timestamp,
    kind: &'a str,
    from: Option<NodeState>,
    to: Option<NodeState>,
    message: &'a str,
}

async fn insert_node_event(tx: &mut Tx<'_>, node: NodeId, e: HistoryEntry<'_>) -> StoreResult<()> {
    query(
        "INSERT INTO node_events (node_id, at, kind, from_state, to_state, message) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(node.to_string())
    .bind(e.at.millis())
    .bind(e.kind)
    .bind(e.from.map(NodeState::as_str))
    .bind(e.to.map(NodeState::as_str))
    .bind(e.message)
    .execute(tx)
    .await
    .map_err(|err| codec::write_error(err, "node"))?;
    Ok(())
}

/// Inserts a node in an initial state with its `created` history entry and
/// `node.created` outbox event, on the caller's transaction.
async fn insert_node(tx: &mut Tx<'_>, node: &Node) -> StoreResult<()> {
    codec::check_initial(node.state)?;
    query(format!(
        "INSERT INTO nodes ({NODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11, $12, $13, $14, $15, $16, $17, $18)"
    ))
    .bind(node.id.to_string())
    .bind(node.org_id.to_string())
    .bind(&node.name)
    .bind(&node.chain)
    .bind(&node.node_type)
    .bind(&node.provider)
    .bind(&node.region)
    .bind(node.state.as_str())
    .bind(node.sync_status.as_str())
    .bind(node.app_health.as_str())
    .bind(node.host_id.map(|h| h.to_string()))
    .bind(&node.rpc_endpoint)
    .bind(node.head_height)
    .bind(&node.binary_version)
    .bind(&node.failure_reason)
    .bind(node.version)
    .bind(node.created_at.millis())
    .bind(node.updated_at.millis())
    .execute(&mut *tx)
    .await
    .map_err(|e| codec::write_error(e, "org"))?;
    insert_node_event(
        tx,
        node.id,
        HistoryEntry {
            at: node.created_at,
            kind: "created",
            from: None,
            to: Some(node.state),
            message: "node requested",
        },
    )
    .await?;
    insert_event(tx, &events::node_created(node)).await?;
    Ok(())
}

/// [`NodeStore::update_node`] on the caller's transaction (shared with the
/// health cycle's batched writes).
pub(crate) async fn update_node_on(
    tx: &mut Tx<'_>,
    id: NodeId,
    expected_version: i64,
    change: &NodeChange,
    now: Timestamp,
) -> StoreResult<Node> {
    let row = query_as::<NodeRow>(format!("SELECT {NODE_COLUMNS} FROM nodes WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        return Err(StoreError::NotFound("node"));
    };
    let mut node = Node::try_from(row)?;
    if node.version != expected_version {
        return Err(StoreError::Conflict("version".into()));
    }
    let from = node.state;
    if let Some(to) = change.state {
        if to != from {
            node.state = from.transition(to)?;
        }
    }
    if let Some(v) = change.sync_status {
        node.sync_status = v;
    }
    if let Some(v) = change.app_health {
        node.app_health = v;
    }
    if let Some(v) = &change.host_id {
        node.host_id = *v;
    }
    if let Some(v) = &change.rpc_endpoint {
        node.rpc_endpoint.clone_from(v);
    }
    if let Some(v) = &change.head_height {
        node.head_height = *v;
    }
    if let Some(v) = &change.binary_version {
        node.binary_version.clone_from(v);
    }
    if let Some(v) = &change.failure_reason {
        node.failure_reason.clone_from(v);
    }
    node.version = expected_version + 1;
    node.updated_at = now;
    // The version guard repeats in SQL so the write is safe even where the
    // read above was not under a write lock.
    let updated = query(
        "UPDATE nodes SET state = $1, sync_status = $2, app_health = $3, host_id = $4, \
         rpc_endpoint = $5, head_height = $6, binary_version = $7, failure_reason = $8, \
         version = $9, updated_at = $10 WHERE id = $11 AND version = $12",
    )
    .bind(node.state.as_str())
    .bind(node.sync_status.as_str())
    .bind(node.app_health.as_str())
    .bind(node.host_id.map(|h| h.to_string()))
    .bind(&node.rpc_endpoint)
    .bind(node.head_height)
    .bind(&node.binary_version)
    .bind(&node.failure_reason)
    .bind(node.version)
    .bind(now.millis())
    .bind(id.to_string())
    .bind(expected_version)
    .execute(&mut *tx)
    .await?;
    if updated != 1 {
        return Err(StoreError::Conflict("version".into()));
    }
    if node.state != from {
        insert_node_event(
            tx,
            id,
            HistoryEntry {
                at: now,
                kind: "state_changed",
                from: Some(from),
                to: Some(node.state),
                message: &change.message,
            },
        )
        .await?;
        insert_event(tx, &events::node_state_changed(&node, from)).await?;
    } else if !change.message.is_empty() {
        insert_node_event(
            tx,
            id,
            HistoryEntry {
                at: now,
                kind: "updated",
                from: None,
                to: None,
                message: &change.message,
            },
        )
        .await?;
    }
    Ok(node)
}

#[async_trait]
impl NodeStore for SqlStore {
    async fn create_node(&self, node: &Node) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        insert_node(&mut tx, node).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Both inserts on one transaction: any failure returns before the
    /// commit, and dropping the transaction rolls back whatever was written.
    async fn create_node_with_workflow(
        &self,
        node: &Node,
        workflow: &NewWorkflow,
    ) -> StoreResult<WorkflowRecord> {
        let mut tx = self.pool.begin_write().await?;
        insert_node(&mut tx, node).await?;
        let (run, created) = insert_workflow(&mut tx, workflow).await?;
        if !created {
            tx.rollback().await?;
            return Err(StoreError::Conflict("workflow id".to_owned()));
        }
        tx.commit().await?;
        Ok(run)
    }

    async fn get_node(&self, org: Option<OrgId>, id: NodeId) -> StoreResult<Option<Node>> {
        let row = query_as::<NodeRow>(format!(
            "SELECT {NODE_COLUMNS} FROM nodes WHERE id = $1 AND ($2 IS NULL OR org_id = $2)"
        ))
        .bind(id.to_string())
        .bind(org.map(|o| o.to_string()))
        .fetch_optional(&self.pool)
        .await?;
        one(row)
    }

    async fn list_nodes(&self, org: Option<OrgId>) -> StoreResult<Vec<Node>> {
        let rows = query_as::<NodeRow>(format!(
            "SELECT {NODE_COLUMNS} FROM nodes WHERE ($1 IS NULL OR org_id = $1) \
             ORDER BY created_at, id"
        ))
        .bind(org.map(|o| o.to_string()))
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn update_node(
        &self,
        id: NodeId,
        expected_version: i64,
        change: &NodeChange,
        now: Timestamp,
    ) -> StoreResult<Node> {
        let mut tx = self.pool.begin_write().await?;
        let node = update_node_on(&mut tx, id, expected_version, change, now).await?;
        tx.commit().await?;
        Ok(node)
    }

    async fn append_node_event(
        &self,
        id: NodeId,
        kind: &str,
        message: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        insert_node_event(
            &mut tx,
            id,
            HistoryEntry {
                at: now,
                kind,
                from: None,
                to: None,
                message,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_node_events(
        &self,
        id: NodeId,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<NodeEvent>> {
        let rows = query_as::<NodeEventRow>(format!(
            "SELECT {NODE_EVENT_COLUMNS} FROM node_events \
             WHERE node_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(id.to_string())
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn put_node_keys(&self, keys: &NodeKeyMaterial) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        let existing = query_as::<NodeKeysRow>(format!(
            "SELECT {NODE_KEY_COLUMNS} FROM node_keys WHERE node_id = $1"
        ))
        .bind(keys.node_id.to_string())
        .fetch_optional(&mut tx)
        .await?;
        if let Some(row) = existing {
            let stored = NodeKeyMaterial::try_from(row)?;
            // Idempotent for a retried workflow step that stores the same
            // material; never silently replaces a node's identity.
            return if stored.fingerprint == keys.fingerprint && stored.kind == keys.kind {
                Ok(())
            } else {
                Err(StoreError::Conflict("node key material".into()))
            };
        }
        query(format!(
            "INSERT INTO node_keys ({NODE_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(keys.node_id.to_string())
        .bind(&keys.kind)
        .bind(&keys.sealed_data_key)
        .bind(&keys.ciphertext)
        .bind(&keys.fingerprint)
        .bind(keys.created_at.millis())
        .execute(&mut tx)
        .await
        .map_err(|e| codec::write_error(e, "node"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_node_keys(&self, id: NodeId) -> StoreResult<Option<NodeKeyMaterial>> {
        let row = query_as::<NodeKeysRow>(format!(
            "SELECT {NODE_KEY_COLUMNS} FROM node_keys WHERE node_id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        one(row)
    }

    async fn wipe_node_keys(&self, id: NodeId) -> StoreResult<()> {
        query("DELETE FROM node_keys WHERE node_id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_node_labels(&self, id: NodeId, labels: &Labels) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        query("DELETE FROM node_labels WHERE node_id = $1")
            .bind(id.to_string())
            .execute(&mut tx)
            .await?;
        for (k, v) in labels {
            query("INSERT INTO node_labels (node_id, label_key, label_value) VALUES ($1, $2, $3)")
                .bind(id.to_string())
                .bind(k.as_str())
                .bind(v.as_str())
                .execute(&mut tx)
                .await
                .map_err(|e| codec::write_error(e, "node label"))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn node_labels(&self, id: NodeId) -> StoreResult<Labels> {
        let rows: Vec<(String, String)> =
            query_as("SELECT label_key, label_value FROM node_labels WHERE node_id = $1")
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    async fn labels_by_node(&self, org: Option<OrgId>) -> StoreResult<HashMap<NodeId, Labels>> {
        let rows: Vec<(String, String, String)> = query_as(
            "SELECT l.node_id, l.label_key, l.label_value FROM node_labels l \
             JOIN nodes n ON n.id = l.node_id WHERE $1 IS NULL OR n.org_id = $1",
        )
        .bind(org.map(|o| o.to_string()))
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<NodeId, Labels> = HashMap::new();
        for (node, k, v) in rows {
            out.entry(parse_id("node_id", &node)?)
                .or_default()
                .insert(k, v);
        }
        Ok(out)
    }
}
