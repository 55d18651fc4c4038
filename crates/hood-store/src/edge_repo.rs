// Included into `sqlite.rs` and `postgres.rs` (see `repo_common.rs`).
//
// The RPC edge's records (`crate::edge`). Wrapped in a module so its
// imports and helpers cannot collide with the other included repositories.

mod edge_repo {
    use super::*;
    use crate::edge::{EdgeStore, ServingNode, UsageQuery, UsageRollup};
    use hood_domain::rpc::{Granularity, KeyScope, RpcKey, UsageEvent};
    use hood_domain::{NodeId, RpcKeyId};
    use serde_json::json;
    use std::collections::BTreeMap;

    const RPC_KEY_COLUMNS: &str = "id, org_id, name, prefix, secret_hash, plan, scope, \
         created_at, updated_at, revoked_at, version";

    const USAGE_EVENT_COLUMNS: &str = "request_id, org_id, key_id, chain, method, \
         compute_units, status, http_status, latency_us, at";
    const USAGE_EVENT_WIDTH: usize = 10;

    const ROLLUP_COLUMNS: &str = "granularity, bucket_start, key_id, chain, method, org_id, \
         requests, compute_units, errors, latency_us_sum";
    const ROLLUP_WIDTH: usize = 10;

    /// Most bind parameters one statement may carry: SQLite's
    /// `SQLITE_MAX_VARIABLE_NUMBER` (32766 since 3.32), PostgreSQL's wire
    /// protocol limit (65535).
    const MAX_BINDS: usize = match BACKEND {
        Backend::Sqlite => 32_766,
        Backend::Postgres => 65_535,
    };

    /// Rows per multi-row statement, just under the bind limit.
    const fn rows_per_statement(width: usize) -> usize {
        MAX_BINDS / width
    }

    /// `($1, …, $w), ($w+1, …)`: `rows` tuples of `width` placeholders.
    ///
    /// On SQLite the placeholders are anonymous `?`, bound in order. SQLite
    /// keeps `$n` and `?n` parameters in a list it searches linearly, both
    /// while parsing and when sqlx asks each parameter's name before binding
    /// it, so thousands of them cost quadratic time (over a second for 3,000
    /// rows); anonymous ones never enter that list. PostgreSQL only knows
    /// `$n`.
    fn values_list(rows: usize, width: usize) -> String {
        let mut out = String::with_capacity(rows * width * 7);
        for r in 0..rows {
            if r > 0 {
                out.push_str(", ");
            }
            out.push('(');
            for c in 0..width {
                if c > 0 {
                    out.push_str(", ");
                }
                match BACKEND {
                    Backend::Sqlite => out.push('?'),
                    Backend::Postgres => {
                        out.push('$');
                        out.push_str(&(r * width + c + 1).to_string());
                    }
                }
            }
            out.push(')');
        }
        out
    }

    fn rpc_key_from_row(row: &DbRow) -> StoreResult<RpcKey> {
        let scope: String = col(row, "scope")?;
        Ok(RpcKey {
            id: codec::parse_id("rpc_keys.id", &col::<String>(row, "id")?)?,
            org_id: codec::parse_id("rpc_keys.org_id", &col::<String>(row, "org_id")?)?,
            name: col(row, "name")?,
            prefix: col(row, "prefix")?,
            secret_hash: col(row, "secret_hash")?,
            plan: col(row, "plan")?,
            scope: serde_json::from_str::<KeyScope>(&scope)
                .map_err(|e| StoreError::Corrupt(format!("rpc_keys.scope: {e}")))?,
            created_at: Timestamp(col(row, "created_at")?),
            updated_at: Timestamp(col(row, "updated_at")?),
            revoked_at: opt_ts(col(row, "revoked_at")?),
            version: col(row, "version")?,
        })
    }

    fn encode_scope(scope: &KeyScope) -> StoreResult<String> {
        serde_json::to_string(scope).map_err(|e| StoreError::Corrupt(format!("rpc key scope: {e}")))
    }

    /// The outbox event of a key change: ids, prefix and version only,
    /// never the hash.
    fn key_event(subject: &str, key: &RpcKey) -> DomainEvent {
        let mut payload = json!({
            "key_id": key.id,
            "org_id": key.org_id,
            "prefix": key.prefix,
            "version": key.version,
        });
        if let (Some(at), Some(obj)) = (key.revoked_at, payload.as_object_mut()) {
            obj.insert("revoked_at".into(), json!(at));
        }
        DomainEvent {
            subject: subject.into(),
            aggregate_type: "rpc_key".into(),
            aggregate_id: key.id.to_string(),
            payload,
        }
    }

    async fn fetch_key(conn: &mut DbConn, org: OrgId, id: RpcKeyId) -> StoreResult<Option<RpcKey>> {
        let row = sqlx::query(&format!(
            "SELECT {RPC_KEY_COLUMNS} FROM rpc_keys WHERE id = $1 AND org_id = $2"
        ))
        .bind(id.to_string())
        .bind(org.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(rpc_key_from_row).transpose()
    }

    /// `updated_at` never moves backwards, even when replicas' clocks
    /// disagree, so a resync cursor never skips a change.
    const TOUCH_UPDATED_AT: &str =
        "updated_at = CASE WHEN updated_at > $1 THEN updated_at ELSE $1 END";

    /// What a rollup row adds up.
    #[derive(Default)]
    struct Sums {
        org_id: String,
        requests: i64,
        compute_units: i64,
        errors: i64,
        latency_us_sum: i64,
    }

    fn as_i64(v: u64) -> i64 {
        i64::try_from(v).unwrap_or(i64::MAX)
    }

    #[async_trait]
    impl EdgeStore for StoreImpl {
        async fn create_rpc_key(&self, key: &RpcKey) -> StoreResult<()> {
            let mut tx = begin_write(&self.pool).await?;
            sqlx::query(&format!(
                "INSERT INTO rpc_keys ({RPC_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
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
            .execute(&mut *tx)
            .await
            .map_err(|e| codec::write_error(e, "org"))?;
            insert_event(&mut tx, &key_event("edge.rpc_key.created", key)).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn get_rpc_key(&self, org: OrgId, id: RpcKeyId) -> StoreResult<Option<RpcKey>> {
            let mut conn = self.pool.acquire().await?;
            fetch_key(&mut conn, org, id).await
        }

        async fn list_rpc_keys(&self, org: OrgId) -> StoreResult<Vec<RpcKey>> {
            let rows = sqlx::query(&format!(
                "SELECT {RPC_KEY_COLUMNS} FROM rpc_keys WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
            ))
            .bind(org.to_string())
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(rpc_key_from_row).collect()
        }

        async fn find_rpc_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<RpcKey>> {
            let row = sqlx::query(&format!(
                "SELECT {RPC_KEY_COLUMNS} FROM rpc_keys WHERE prefix = $1"
            ))
            .bind(prefix)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(rpc_key_from_row).transpose()
        }

        async fn update_rpc_key(&self, key: &RpcKey, now: Timestamp) -> StoreResult<RpcKey> {
            let mut tx = begin_write(&self.pool).await?;
            // The conditional update is the arbiter against a racing revoke.
            let changed = sqlx::query(&format!(
                "UPDATE rpc_keys SET name = $2, plan = $3, scope = $4, version = version + 1, {TOUCH_UPDATED_AT} \
                 WHERE id = $5 AND org_id = $6 AND revoked_at IS NULL"
            ))
            .bind(now.millis())
            .bind(&key.name)
            .bind(&key.plan)
            .bind(encode_scope(&key.scope)?)
            .bind(key.id.to_string())
            .bind(key.org_id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let stored = fetch_key(&mut tx, key.org_id, key.id).await?;
            let Some(stored) = stored else {
                tx.rollback().await?;
                return Err(StoreError::NotFound("rpc key"));
            };
            if changed == 0 {
                tx.rollback().await?;
                return Err(StoreError::Conflict("revoked rpc key".into()));
            }
            insert_event(&mut tx, &key_event("edge.rpc_key.updated", &stored)).await?;
            tx.commit().await?;
            Ok(stored)
        }

        async fn revoke_rpc_key(
            &self,
            org: OrgId,
            id: RpcKeyId,
            now: Timestamp,
        ) -> StoreResult<bool> {
            let mut tx = begin_write(&self.pool).await?;
            let changed = sqlx::query(&format!(
                "UPDATE rpc_keys SET revoked_at = $1, version = version + 1, {TOUCH_UPDATED_AT} \
                 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL"
            ))
            .bind(now.millis())
            .bind(id.to_string())
            .bind(org.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let stored = fetch_key(&mut tx, org, id).await?;
            match stored {
                Some(key) if changed > 0 => {
                    insert_event(&mut tx, &key_event("edge.rpc_key.revoked", &key)).await?;
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
            let rows = sqlx::query(&format!(
                "SELECT {RPC_KEY_COLUMNS} FROM rpc_keys WHERE updated_at >= $1 ORDER BY updated_at, id"
            ))
            .bind(since.millis())
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(rpc_key_from_row).collect()
        }

        async fn record_usage(&self, events: &[UsageEvent]) -> StoreResult<u64> {
            if events.is_empty() {
                return Ok(0);
            }
            // The first event of each request id, in id order: concurrent
            // batches then take the unique index's locks in the same order.
            let mut unique: BTreeMap<&str, &UsageEvent> = BTreeMap::new();
            for e in events {
                unique.entry(e.request_id.as_str()).or_insert(e);
            }
            let batch: Vec<&UsageEvent> = unique.values().copied().collect();

            let mut tx = begin_write(&self.pool).await?;
            let mut new_events: Vec<&UsageEvent> = Vec::with_capacity(batch.len());
            for chunk in batch.chunks(rows_per_statement(USAGE_EVENT_WIDTH)) {
                let sql = format!(
                    "INSERT INTO usage_events ({USAGE_EVENT_COLUMNS}) VALUES {} \
                     ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
                    values_list(chunk.len(), USAGE_EVENT_WIDTH)
                );
                // One-off text: keep it out of the prepared-statement cache.
                let mut query = sqlx::query(&sql).persistent(false);
                for e in chunk {
                    query = query
                        .bind(e.request_id.as_str())
                        .bind(e.org_id.to_string())
                        .bind(e.key_id.to_string())
                        .bind(e.chain.as_str())
                        .bind(e.method.as_str())
                        .bind(i64::from(e.compute_units))
                        .bind(e.status.as_str())
                        .bind(i64::from(e.http_status))
                        .bind(as_i64(e.latency_us))
                        .bind(e.at.millis());
                }
                for row in query.fetch_all(&mut *tx).await? {
                    let id: String = col(&row, "request_id")?;
                    match unique.get(id.as_str()) {
                        Some(e) => new_events.push(e),
                        None => {
                            return Err(StoreError::Corrupt(format!(
                                "usage insert returned request id `{id}` that was not in the batch"
                            )))
                        }
                    }
                }
            }

            // Only what was new is added to the rollups: one row per bucket,
            // key, chain and method, in key order (a stable lock order).
            let mut sums: BTreeMap<(Granularity, i64, RpcKeyId, &str, &str), Sums> =
                BTreeMap::new();
            for e in &new_events {
                for g in Granularity::ALL {
                    let s = sums
                        .entry((
                            g,
                            g.bucket_start(e.at.millis()),
                            e.key_id,
                            e.chain.as_str(),
                            e.method.as_str(),
                        ))
                        .or_default();
                    if s.org_id.is_empty() {
                        s.org_id = e.org_id.to_string();
                    }
                    s.requests = s.requests.saturating_add(1);
                    s.compute_units = s.compute_units.saturating_add(i64::from(e.compute_units));
                    s.errors = s.errors.saturating_add(i64::from(e.status.is_error()));
                    s.latency_us_sum = s.latency_us_sum.saturating_add(as_i64(e.latency_us));
                }
            }
            let rows: Vec<_> = sums.iter().collect();
            for chunk in rows.chunks(rows_per_statement(ROLLUP_WIDTH)) {
                let sql = format!(
                    "INSERT INTO usage_rollups ({ROLLUP_COLUMNS}) VALUES {} \
                     ON CONFLICT (granularity, bucket_start, key_id, chain, method) DO UPDATE SET \
                     requests = usage_rollups.requests + excluded.requests, \
                     compute_units = usage_rollups.compute_units + excluded.compute_units, \
                     errors = usage_rollups.errors + excluded.errors, \
                     latency_us_sum = usage_rollups.latency_us_sum + excluded.latency_us_sum",
                    values_list(chunk.len(), ROLLUP_WIDTH)
                );
                let mut query = sqlx::query(&sql).persistent(false);
                for ((g, bucket, key, chain, method), s) in chunk {
                    query = query
                        .bind(g.as_str())
                        .bind(*bucket)
                        .bind(key.to_string())
                        .bind(*chain)
                        .bind(*method)
                        .bind(s.org_id.as_str())
                        .bind(s.requests)
                        .bind(s.compute_units)
                        .bind(s.errors)
                        .bind(s.latency_us_sum);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(new_events.len() as u64)
        }

        async fn usage_rollups(&self, q: &UsageQuery) -> StoreResult<Vec<UsageRollup>> {
            let rows = sqlx::query(
                "SELECT granularity, bucket_start, key_id, chain, method, requests, compute_units, errors, \
                 latency_us_sum FROM usage_rollups \
                 WHERE org_id = $1 AND granularity = $2 AND bucket_start >= $3 AND bucket_start < $4 \
                 AND ($5 IS NULL OR key_id = $5) AND ($6 IS NULL OR chain = $6) \
                 ORDER BY bucket_start, key_id, chain, method",
            )
            .bind(q.org_id.to_string())
            .bind(q.granularity.as_str())
            .bind(q.from.millis())
            .bind(q.to.millis())
            .bind(q.key_id.map(|k| k.to_string()))
            .bind(q.chain.as_deref())
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let g: String = col(r, "granularity")?;
                    Ok(UsageRollup {
                        bucket_start: Timestamp(col(r, "bucket_start")?),
                        granularity: g.parse().map_err(|e| {
                            StoreError::Corrupt(format!("usage_rollups.granularity: {e}"))
                        })?,
                        key_id: codec::parse_id(
                            "usage_rollups.key_id",
                            &col::<String>(r, "key_id")?,
                        )?,
                        chain: col(r, "chain")?,
                        method: col(r, "method")?,
                        requests: col(r, "requests")?,
                        compute_units: col(r, "compute_units")?,
                        errors: col(r, "errors")?,
                        latency_us_sum: col(r, "latency_us_sum")?,
                    })
                })
                .collect()
        }

        async fn count_usage_events(&self, key: RpcKeyId) -> StoreResult<i64> {
            let row = sqlx::query("SELECT count(*) AS n FROM usage_events WHERE key_id = $1")
                .bind(key.to_string())
                .fetch_one(&self.pool)
                .await?;
            col(&row, "n")
        }

        async fn serving_nodes(&self) -> StoreResult<Vec<ServingNode>> {
            let rows = sqlx::query(
                "SELECT id, org_id, chain, rpc_endpoint FROM nodes \
                 WHERE state = 'healthy' AND rpc_endpoint IS NOT NULL ORDER BY chain, id",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(ServingNode {
                        node_id: codec::parse_id::<NodeId>("nodes.id", &col::<String>(r, "id")?)?,
                        org_id: codec::parse_id("nodes.org_id", &col::<String>(r, "org_id")?)?,
                        chain: col(r, "chain")?,
                        rpc_endpoint: col(r, "rpc_endpoint")?,
                    })
                })
                .collect()
        }
    }
}
