// Included into `sqlite.rs` and `postgres.rs` (see `repo_common.rs`).

mod node_rows {
    use super::{col, DbRow};
    use crate::codec;
    use crate::StoreResult;
    use hood_domain::lifecycle::NodeState;
    use hood_domain::node::{Node, NodeEvent, NodeKeyMaterial};
    use hood_domain::Timestamp;

    pub(super) const NODE_COLUMNS: &str = "id, org_id, name, chain, node_type, provider, region, \
         state, sync_status, app_health, host_id, rpc_endpoint, head_height, binary_version, \
         failure_reason, version, created_at, updated_at";


    pub(super) fn node(row: &DbRow) -> StoreResult<Node> {
        let host: Option<String> = col(row, "host_id")?;
        Ok(Node {
            id: codec::parse_id("nodes.id", &col::<String>(row, "id")?)?,
            org_id: codec::parse_id("nodes.org_id", &col::<String>(row, "org_id")?)?,
            name: col(row, "name")?,
            chain: col(row, "chain")?,
            node_type: col(row, "node_type")?,
            provider: col(row, "provider")?,
            region: col(row, "region")?,
            state: codec::parse_state("nodes.state", &col::<String>(row, "state")?)?,
            sync_status: codec::parse_state("nodes.sync_status", &col::<String>(row, "sync_status")?)?,
            app_health: codec::parse_state("nodes.app_health", &col::<String>(row, "app_health")?)?,
            host_id: host.map(|h| codec::parse_id("nodes.host_id", &h)).transpose()?,
            rpc_endpoint: col(row, "rpc_endpoint")?,
            head_height: col(row, "head_height")?,
            binary_version: col(row, "binary_version")?,
            failure_reason: col(row, "failure_reason")?,
            version: col(row, "version")?,
            created_at: Timestamp(col(row, "created_at")?),
            updated_at: Timestamp(col(row, "updated_at")?),
        })
    }

    pub(super) fn event(row: &DbRow) -> StoreResult<NodeEvent> {
        let from: Option<String> = col(row, "from_state")?;
        let to: Option<String> = col(row, "to_state")?;
        Ok(NodeEvent {
            node_id: codec::parse_id("node_events.node_id", &col::<String>(row, "node_id")?)?,
            seq: col(row, "seq")?,
            at: Timestamp(col(row, "at")?),
            kind: col(row, "kind")?,
            from_state: from.map(|s| codec::parse_state::<NodeState>("node_events.from_state", &s)).transpose()?,
            to_state: to.map(|s| codec::parse_state::<NodeState>("node_events.to_state", &s)).transpose()?,
            message: col(row, "message")?,
        })
    }

    pub(super) fn keys(row: &DbRow) -> StoreResult<NodeKeyMaterial> {
        Ok(NodeKeyMaterial {
            node_id: codec::parse_id("node_keys.node_id", &col::<String>(row, "node_id")?)?,
            kind: col(row, "kind")?,
            sealed_data_key: col(row, "sealed_data_key")?,
            ciphertext: col(row, "ciphertext")?,
            fingerprint: col(row, "fingerprint")?,
            created_at: Timestamp(col(row, "created_at")?),
        })
    }
}

async fn insert_node_event(
    conn: &mut DbConn,
    node: hood_domain::NodeId,
    at: Timestamp,
    kind: &str,
    from: Option<hood_domain::lifecycle::NodeState>,
    to: Option<hood_domain::lifecycle::NodeState>,
    message: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO node_events (node_id, at, kind, from_state, to_state, message) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(node.to_string())
    .bind(at.millis())
    .bind(kind)
    .bind(from.map(|s| s.as_str()))
    .bind(to.map(|s| s.as_str()))
    .bind(message)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn node_event_payload(node: &hood_domain::node::Node) -> serde_json::Value {
    serde_json::json!({
        "node_id": node.id.to_string(),
        "org_id": node.org_id.to_string(),
        "chain": node.chain,
        "state": node.state.as_str(),
        "host_id": node.host_id.map(|h| h.to_string()),
        "version": node.version,
    })
}

/// `update_node` on the caller's transaction (shared with the health
/// machine's batched writes).
async fn update_node_on(
    conn: &mut DbConn,
    id: hood_domain::NodeId,
    expected_version: i64,
    change: &crate::node::NodeChange,
    now: Timestamp,
) -> StoreResult<hood_domain::node::Node> {
        use hood_domain::machine::StateMachine;
        let row = sqlx::query(&format!("SELECT {} FROM nodes WHERE id = $1", node_rows::NODE_COLUMNS))
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound("node"));
        };
        let mut node = node_rows::node(&row)?;
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
        // The version guard repeats in SQL so the write is safe even where
        // the read above was not under a write lock.
        let updated = sqlx::query(
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
        .execute(&mut *conn)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::Conflict("version".into()));
        }
        if node.state != from {
            insert_node_event(&mut *conn, id, now, "state_changed", Some(from), Some(node.state), &change.message).await?;
            let mut payload = node_event_payload(&node);
            payload["from_state"] = serde_json::Value::from(from.as_str());
            insert_event(
                &mut *conn,
                &DomainEvent {
                    subject: "node.state_changed".into(),
                    aggregate_type: "node".into(),
                    aggregate_id: id.to_string(),
                    payload,
                },
            )
            .await?;
        } else if !change.message.is_empty() {
            insert_node_event(&mut *conn, id, now, "updated", None, None, &change.message).await?;
        }
        Ok(node)
}

#[async_trait]
impl crate::node::NodeStore for StoreImpl {
    async fn create_node(&self, node: &hood_domain::node::Node) -> StoreResult<()> {
        use hood_domain::machine::StateMachine;
        if !node.state.is_initial() {
            return Err(StoreError::InvalidTransition(hood_domain::machine::InvalidTransition {
                machine: "node",
                from: "(new)".into(),
                to: node.state.as_str().into(),
            }));
        }
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(&format!(
            "INSERT INTO nodes ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $17, $18)",
            node_rows::NODE_COLUMNS
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
        insert_node_event(&mut tx, node.id, node.created_at, "created", None, Some(node.state), "node requested").await?;
        insert_event(
            &mut tx,
            &DomainEvent {
                subject: "node.created".into(),
                aggregate_type: "node".into(),
                aggregate_id: node.id.to_string(),
                payload: node_event_payload(node),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_node_with_workflow(
        &self,
        node: &hood_domain::node::Node,
        workflow: &crate::workflow::NewWorkflow,
    ) -> StoreResult<crate::workflow::WorkflowRecord> {
        // Temporary shape until the store rewrite: the node first, then the
        // workflow row on a second statement of one transaction.
        use hood_domain::machine::StateMachine;
        if !node.state.is_initial() {
            return Err(StoreError::InvalidTransition(hood_domain::machine::InvalidTransition {
                machine: "node",
                from: "(new)".into(),
                to: node.state.as_str().into(),
            }));
        }
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(&format!(
            "INSERT INTO nodes ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $17, $18)",
            node_rows::NODE_COLUMNS
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
        insert_node_event(&mut tx, node.id, node.created_at, "created", None, Some(node.state), "node requested").await?;
        insert_event(
            &mut tx,
            &DomainEvent {
                subject: "node.created".into(),
                aggregate_type: "node".into(),
                aggregate_id: node.id.to_string(),
                payload: node_event_payload(node),
            },
        )
        .await?;
        sqlx::query(
            "INSERT INTO workflows (id, name, version, state, input, parent_id, created_at, \
               updated_at, next_run_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)",
        )
        .bind(&workflow.id)
        .bind(&workflow.name)
        .bind(workflow.version)
        .bind(hood_domain::lifecycle::WorkflowState::Pending.as_str())
        .bind(workflow.input.to_string())
        .bind(workflow.parent_id.as_deref())
        .bind(workflow.created_at.millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| codec::write_error(e, "workflow"))?;
        let record = workflow_repo::fetch_workflow(&mut tx, &workflow.id).await?.ok_or_else(|| {
            StoreError::Corrupt(format!("workflow {} vanished after insert", workflow.id))
        })?;
        tx.commit().await?;
        Ok(record)
    }

    async fn get_node(&self, org: Option<OrgId>, id: hood_domain::NodeId) -> StoreResult<Option<hood_domain::node::Node>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM nodes WHERE id = $1 AND ($2 IS NULL OR org_id = $2)",
            node_rows::NODE_COLUMNS
        ))
        .bind(id.to_string())
        .bind(org.map(|o| o.to_string()))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(node_rows::node).transpose()
    }

    async fn list_nodes(&self, org: Option<OrgId>) -> StoreResult<Vec<hood_domain::node::Node>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM nodes WHERE ($1 IS NULL OR org_id = $1) ORDER BY created_at, id",
            node_rows::NODE_COLUMNS
        ))
        .bind(org.map(|o| o.to_string()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(node_rows::node).collect()
    }

    async fn update_node(
        &self,
        id: hood_domain::NodeId,
        expected_version: i64,
        change: &crate::node::NodeChange,
        now: Timestamp,
    ) -> StoreResult<hood_domain::node::Node> {
        let mut tx = begin_write(&self.pool).await?;
        let node = update_node_on(&mut tx, id, expected_version, change, now).await?;
        tx.commit().await?;
        Ok(node)
    }

    async fn append_node_event(&self, id: hood_domain::NodeId, kind: &str, message: &str, now: Timestamp) -> StoreResult<()> {
        let mut tx = begin_write(&self.pool).await?;
        insert_node_event(&mut tx, id, now, kind, None, None, message)
            .await
            .map_err(|e| match e {
                StoreError::Database(db) => codec::write_error(db, "node"),
                other => other,
            })?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_node_events(&self, id: hood_domain::NodeId, after_seq: i64, limit: i64) -> StoreResult<Vec<hood_domain::node::NodeEvent>> {
        let rows = sqlx::query(
            "SELECT seq, node_id, at, kind, from_state, to_state, message FROM node_events \
             WHERE node_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(id.to_string())
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(node_rows::event).collect()
    }

    async fn put_node_keys(&self, keys: &hood_domain::node::NodeKeyMaterial) -> StoreResult<()> {
        let mut tx = begin_write(&self.pool).await?;
        let existing = sqlx::query(
            "SELECT node_id, kind, sealed_data_key, ciphertext, fingerprint, created_at FROM node_keys WHERE node_id = $1",
        )
        .bind(keys.node_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let stored = node_rows::keys(&row)?;
            // Idempotent for a retried workflow step that stores the same
            // material; never silently replaces a node's identity.
            return if stored.fingerprint == keys.fingerprint && stored.kind == keys.kind {
                Ok(())
            } else {
                Err(StoreError::Conflict("node key material".into()))
            };
        }
        sqlx::query(
            "INSERT INTO node_keys (node_id, kind, sealed_data_key, ciphertext, fingerprint, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(keys.node_id.to_string())
        .bind(&keys.kind)
        .bind(&keys.sealed_data_key)
        .bind(&keys.ciphertext)
        .bind(&keys.fingerprint)
        .bind(keys.created_at.millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| codec::write_error(e, "node"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_node_keys(&self, id: hood_domain::NodeId) -> StoreResult<Option<hood_domain::node::NodeKeyMaterial>> {
        let row = sqlx::query(
            "SELECT node_id, kind, sealed_data_key, ciphertext, fingerprint, created_at FROM node_keys WHERE node_id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(node_rows::keys).transpose()
    }

    async fn wipe_node_keys(&self, id: hood_domain::NodeId) -> StoreResult<()> {
        sqlx::query("DELETE FROM node_keys WHERE node_id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
