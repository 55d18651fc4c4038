//! [`RetentionStore`] for [`SqlStore`]: batched deletes, each batch its own
//! transaction, driven by the indexes of migration 0008.

use super::SqlStore;
use crate::db::{numbered_placeholders, query, query_scalar};
use crate::retention::{PruneReport, RetentionStore};
use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::retention::RetentionCutoffs;
use hood_domain::Timestamp;

/// States a workflow never leaves (stuck is not one: it waits for an
/// operator).
const FINISHED: &str = "'completed', 'failed', 'abandoned'";

impl SqlStore {
    /// Repeats a single-statement batch delete until it removes fewer than
    /// `batch` rows or `max_batches` ran.
    async fn delete_in_batches(
        &self,
        sql: &str,
        before: Timestamp,
        batch: i64,
        max_batches: u32,
    ) -> StoreResult<u64> {
        let mut total = 0;
        for _ in 0..max_batches {
            let mut tx = self.pool.begin_write().await?;
            let deleted = query(sql)
                .bind(before.millis())
                .bind(batch)
                .execute(&mut tx)
                .await?;
            tx.commit().await?;
            total += deleted;
            if deleted < u64::try_from(batch).unwrap_or(u64::MAX) {
                break;
            }
        }
        Ok(total)
    }

    /// Finished workflows with no remaining children, leaves first, each
    /// batch with its journal in one transaction.
    async fn prune_workflows(
        &self,
        before: Timestamp,
        batch: i64,
        max_batches: u32,
    ) -> StoreResult<u64> {
        let mut total = 0;
        for _ in 0..max_batches {
            let mut tx = self.pool.begin_write().await?;
            let ids = query_scalar::<String>(format!(
                "SELECT id FROM workflows w WHERE state IN ({FINISHED}) AND updated_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM workflows c WHERE c.parent_id = w.id) \
                 ORDER BY updated_at LIMIT $2"
            ))
            .bind(before.millis())
            .bind(batch)
            .fetch_all(&mut tx)
            .await?;
            if ids.is_empty() {
                tx.rollback().await?;
                break;
            }
            let list = numbered_placeholders(1, ids.len());
            for table in [
                "workflow_step_executions",
                "workflow_steps",
                "workflow_signals",
            ] {
                let mut q = query(format!("DELETE FROM {table} WHERE workflow_id IN ({list})"));
                for id in &ids {
                    q = q.bind(id.as_str());
                }
                q.execute(&mut tx).await?;
            }
            let mut q = query(format!("DELETE FROM workflows WHERE id IN ({list})"));
            for id in &ids {
                q = q.bind(id.as_str());
            }
            // Parents whose last children just went are found by the next
            // batch.
            total += q.execute(&mut tx).await?;
            tx.commit().await?;
        }
        Ok(total)
    }
}

#[async_trait]
impl RetentionStore for SqlStore {
    async fn prune(
        &self,
        cutoffs: &RetentionCutoffs,
        batch: i64,
        max_batches: u32,
    ) -> StoreResult<PruneReport> {
        let batch = batch.max(1);
        let mut report = PruneReport::default();
        if let Some(before) = cutoffs.finished_workflows_before {
            report.finished_workflows = self.prune_workflows(before, batch, max_batches).await?;
        }
        // One batch delete per kind of append-only record.
        let kinds: [(Option<Timestamp>, &str, &mut u64); 7] = [
            (
                cutoffs.usage_events_before,
                "DELETE FROM usage_events WHERE request_id IN \
                 (SELECT request_id FROM usage_events WHERE at < $1 LIMIT $2)",
                &mut report.usage_events,
            ),
            (
                cutoffs.step_executions_before,
                "DELETE FROM workflow_step_executions WHERE seq IN \
                 (SELECT seq FROM workflow_step_executions WHERE at < $1 LIMIT $2)",
                &mut report.step_executions,
            ),
            (
                cutoffs.agent_events_before,
                "DELETE FROM agent_events WHERE seq IN \
                 (SELECT seq FROM agent_events WHERE at < $1 LIMIT $2)",
                &mut report.agent_events,
            ),
            (
                cutoffs.published_outbox_before,
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox \
                 WHERE published_at IS NOT NULL AND published_at < $1 LIMIT $2)",
                &mut report.published_outbox,
            ),
            (
                cutoffs.finished_agent_commands_before,
                "DELETE FROM agent_commands WHERE id IN (SELECT id FROM agent_commands \
                 WHERE state IN ('succeeded', 'failed', 'expired') AND expires_at < $1 LIMIT $2)",
                &mut report.finished_agent_commands,
            ),
            (
                cutoffs.feed_items_before,
                "DELETE FROM feed_items WHERE id IN \
                 (SELECT id FROM feed_items WHERE created_at < $1 LIMIT $2)",
                &mut report.feed_items,
            ),
            (
                cutoffs.host_metrics_before,
                "DELETE FROM host_metrics WHERE (host_id, at) IN \
                 (SELECT host_id, at FROM host_metrics WHERE at < $1 LIMIT $2)",
                &mut report.host_samples,
            ),
        ];
        for (before, sql, deleted) in kinds {
            if let Some(before) = before {
                *deleted = self
                    .delete_in_batches(sql, before, batch, max_batches)
                    .await?;
            }
        }
        Ok(report)
    }
}
