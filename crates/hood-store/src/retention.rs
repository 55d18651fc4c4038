//! Deleting what Hood no longer keeps (see `hood_domain::retention`).

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::retention::RetentionCutoffs;

/// How many records one pass deleted, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub usage_events: u64,
    pub finished_workflows: u64,
    pub step_executions: u64,
    pub agent_events: u64,
    pub published_outbox: u64,
    pub finished_agent_commands: u64,
    pub feed_items: u64,
    pub host_samples: u64,
}

impl PruneReport {
    pub fn total(&self) -> u64 {
        self.usage_events
            + self.finished_workflows
            + self.step_executions
            + self.agent_events
            + self.published_outbox
            + self.finished_agent_commands
            + self.feed_items
            + self.host_samples
    }
}

/// Retention enforcement.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Deletes records older than their cutoff in transactions of at most
    /// `batch` rows each, and at most `max_batches` batches per kind (a
    /// backlog is worked off over several passes without holding locks for
    /// long). Finished workflows go with their steps, signals and
    /// execution logs, children before parents; running, waiting and stuck
    /// ones stay. Usage rollups are never touched.
    async fn prune(
        &self,
        cutoffs: &RetentionCutoffs,
        batch: i64,
        max_batches: u32,
    ) -> StoreResult<PruneReport>;
}
