//! The sweeper: deleting namespaces emptied batch by batch, then the
//! bytes of garbage and abandoned blobs deleted before their rows.

use crate::{Storage, StorageResult};

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub objects_purged: u64,
    pub namespaces_removed: u64,
    pub blobs_deleted: u64,
    pub uploads_expired: u64,
}

impl Storage {
    /// One pass: deleting namespaces lose a batch of objects each (and go
    /// when empty), then garbage and abandoned blobs lose their bytes and
    /// rows. Every step is idempotent: replicas may sweep at once.
    pub async fn sweep_once(&self) -> StorageResult<SweepReport> {
        let mut report = SweepReport::default();
        let now = self.now();
        for ns in self.inner.store.deleting_namespaces(16).await? {
            let (purged, gone) = self
                .inner
                .store
                .purge_namespace(ns.id, self.inner.config.purge_batch, now)
                .await?;
            report.objects_purged += purged;
            if gone {
                report.namespaces_removed += 1;
                tracing::info!(namespace = %ns.id, name = %ns.name, "namespace deleted");
            }
        }
        let expires = self.inner.config.upload_expires_after;
        let started_before =
            now.plus_millis(-i64::try_from(expires.as_millis()).unwrap_or(i64::MAX));
        for upload in self.inner.store.stale_uploads(started_before, 100).await? {
            // Its parts' blobs turn garbage: deleted below.
            if self.inner.store.end_upload(upload.id, now).await? {
                report.uploads_expired += 1;
                tracing::info!(upload = %upload.id, key = %upload.key, "multipart upload expired");
            }
        }
        let abandoned = self.inner.config.abandoned_after;
        let before = now.plus_millis(-i64::try_from(abandoned.as_millis()).unwrap_or(i64::MAX));
        let blobs = self.inner.store.sweepable_blobs(before, 500).await?;
        let mut deleted = Vec::with_capacity(blobs.len());
        for blob in blobs {
            match self.delete_bytes(blob.namespace_id, blob.id).await {
                Ok(()) => deleted.push(blob.id),
                Err(e) => {
                    tracing::warn!(blob = %blob.id, error = %e, "could not delete a blob; next sweep retries");
                }
            }
        }
        self.inner.store.forget_blobs(&deleted).await?;
        report.blobs_deleted = deleted.len() as u64;
        Ok(report)
    }

    /// Sweeps every `sweep_every` until the task is dropped; a failed pass
    /// is logged and retried at the next.
    pub async fn run_sweeper(self) {
        let mut tick = tokio::time::interval(self.inner.config.sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.sweep_once().await {
                Ok(r) if r != SweepReport::default() => {
                    tracing::debug!(
                        objects = r.objects_purged,
                        namespaces = r.namespaces_removed,
                        blobs = r.blobs_deleted,
                        "storage sweep"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "storage sweep failed; retrying"),
            }
        }
    }
}
