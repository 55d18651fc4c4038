//! `pack_snapshot`, `upload_snapshot`, `restore_snapshot`: a node's data
//! directory to and from the control plane's object store, through
//! `hood-snapshot` (tar, zstd, checksummed chunks).
//!
//! Packing needs the node stopped and is quick (a local archive under
//! `snapshots/{name}.tar.zst`, its manifest beside it); the upload runs
//! while the node serves again, sends only the chunks the control plane
//! lacks (a retry resumes) and removes the local archive once the manifest
//! is stored. A restore replaces the data directory only after every chunk
//! arrived and matched its checksum.

use crate::{check_snapshot_name, err, WorkloadHandler};
use hood_agent::{CommandContext, CommandError};
use hood_domain::backoff::Backoff;
use hood_domain::workload::{DataSnapshotRef, PackedSnapshot, RestoredSnapshot, UploadedSnapshot};
use hood_snapshot::{ChunkStore, Manifest, Progress, SnapshotError, DEFAULT_CHUNK_SIZE};
use std::path::PathBuf;
use std::time::Duration;

/// Reports progress at most every this many percent, and at the end.
const PROGRESS_STEP: u32 = 5;

/// Between attempts of an upload the control plane stopped answering
/// (a restart, a network blip): each attempt sends only what it lacks.
const UPLOAD_RETRY: Backoff = Backoff::doubling(Duration::from_secs(1), Duration::from_secs(15));
/// Attempts before the command fails (about five minutes of waiting).
const UPLOAD_ATTEMPTS: u32 = 25;

fn percent(p: Progress) -> u32 {
    if p.bytes_total == 0 {
        return 100;
    }
    u32::try_from(p.bytes_done.saturating_mul(100) / p.bytes_total).unwrap_or(100)
}

/// A progress callback that reports through the command every few percent.
fn reporter<'a>(ctx: &'a CommandContext, what: &'a str) -> impl FnMut(Progress) + Send + 'a {
    let mut last = 0;
    move |p: Progress| {
        let pct = percent(p);
        if pct >= last + PROGRESS_STEP || p.chunks_done == p.chunks_total {
            last = pct;
            ctx.progress(
                pct,
                &format!("{what}: chunk {}/{}", p.chunks_done, p.chunks_total),
            );
        }
    }
}

impl WorkloadHandler {
    fn archive_paths(&self, r: &DataSnapshotRef) -> (PathBuf, PathBuf) {
        let dir = self.node_dir(&r.workload_id).join("snapshots");
        (
            dir.join(format!("{}.tar.zst", r.snapshot)),
            dir.join(format!("{}.manifest.json", r.snapshot)),
        )
    }

    fn read_manifest(path: &std::path::Path) -> Result<Option<Manifest>, CommandError> {
        hood_files::read_json(path).map_err(|e| err("reading the snapshot manifest", e))
    }

    /// Packs the stopped node's data directory. Done once: asking again
    /// answers from the manifest on disk.
    pub(crate) async fn pack_snapshot(
        &self,
        r: &DataSnapshotRef,
    ) -> Result<PackedSnapshot, CommandError> {
        check_snapshot_name(&r.snapshot)?;
        let (archive, manifest_path) = self.archive_paths(r);
        let manifest = match Self::read_manifest(&manifest_path)? {
            Some(m) if archive.is_file() => m,
            _ => {
                self.ensure_stopped(&r.workload_id).await?;
                let data = self.node_dir(&r.workload_id).join("data");
                let partial = archive.with_extension("zst.partial");
                let (a, m) = (archive.clone(), manifest_path.clone());
                tokio::task::spawn_blocking(move || -> Result<Manifest, CommandError> {
                    if let Some(parent) = a.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| err("snapshots dir", e))?;
                    }
                    let manifest = hood_snapshot::pack(&data, &partial, DEFAULT_CHUNK_SIZE)
                        .map_err(|e| err("packing the data directory", e))?;
                    std::fs::rename(&partial, &a).map_err(|e| err("placing the archive", e))?;
                    hood_files::write_json_private(&m, &manifest)
                        .map_err(|e| err("writing the manifest", e))?;
                    Ok(manifest)
                })
                .await
                .map_err(|e| err("pack task", e))??
            }
        };
        tracing::info!(workload = %r.workload_id, snapshot = %r.snapshot,
            raw_bytes = manifest.raw_bytes, compressed_bytes = manifest.compressed_bytes,
            chunks = manifest.chunks.len(), "data directory packed");
        Ok(PackedSnapshot {
            snapshot: r.snapshot.clone(),
            files: manifest.files,
            raw_bytes: manifest.raw_bytes,
            compressed_bytes: manifest.compressed_bytes,
            chunks: u32::try_from(manifest.chunks.len()).unwrap_or(u32::MAX),
        })
    }

    /// Uploads a packed archive (the chunks the control plane lacks, then
    /// the manifest) and removes it locally. Once uploaded, asking again
    /// answers from the control plane's manifest.
    pub(crate) async fn upload_snapshot(
        &self,
        r: &DataSnapshotRef,
        ctx: &CommandContext,
    ) -> Result<UploadedSnapshot, CommandError> {
        check_snapshot_name(&r.snapshot)?;
        let (archive, manifest_path) = self.archive_paths(r);
        let remote = ctx.agent.snapshot_chunks(&r.workload_id, &r.snapshot);
        let Some(manifest) = Self::read_manifest(&manifest_path)? else {
            return match remote.manifest().await {
                Ok(Some(m)) => Ok(UploadedSnapshot {
                    snapshot: r.snapshot.clone(),
                    sent: 0,
                    skipped: u32::try_from(m.chunks.len()).unwrap_or(u32::MAX),
                    bytes_sent: 0,
                    interruptions: 0,
                }),
                Ok(None) => Err(CommandError(format!(
                    "snapshot `{}` of node {} was never packed here",
                    r.snapshot, r.workload_id
                ))),
                Err(e) => Err(err("asking for the snapshot's manifest", e)),
            };
        };
        let mut failures = 0;
        let report = loop {
            match hood_snapshot::upload(&archive, &manifest, &remote, reporter(ctx, "upload")).await
            {
                Ok(r) => break r,
                // The store's side failed: wait, then send what it lacks.
                Err(e @ (SnapshotError::Store(_) | SnapshotError::Missing(_)))
                    if failures + 1 < UPLOAD_ATTEMPTS =>
                {
                    let wait = UPLOAD_RETRY.delay(failures);
                    failures += 1;
                    tracing::warn!(workload = %r.workload_id, snapshot = %r.snapshot, error = %e,
                        retry_in_ms = wait.as_millis() as u64, "snapshot upload interrupted; resuming");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(err("uploading the snapshot", e)),
            }
        };

        for done in [&archive, &manifest_path] {
            if let Err(e) = std::fs::remove_file(done) {
                tracing::warn!(path = %done.display(), error = %e, "could not remove an uploaded archive");
            }
        }
        tracing::info!(workload = %r.workload_id, snapshot = %r.snapshot,
            sent = report.sent, skipped = report.skipped, interruptions = failures, "snapshot uploaded");
        Ok(UploadedSnapshot {
            snapshot: r.snapshot.clone(),
            sent: report.sent,
            skipped: report.skipped,
            bytes_sent: report.bytes_sent,
            interruptions: failures,
        })
    }

    /// Replaces the node's data directory with a snapshot from the control
    /// plane. The node must not run here (a node not started on this host
    /// yet, as on a migration's new host, is fine).
    pub(crate) async fn restore_snapshot(
        &self,
        r: &DataSnapshotRef,
        ctx: &CommandContext,
    ) -> Result<RestoredSnapshot, CommandError> {
        check_snapshot_name(&r.snapshot)?;
        if self.load_record(&r.workload_id).is_some() {
            self.ensure_stopped(&r.workload_id).await?;
        }
        let remote = ctx.agent.snapshot_chunks(&r.workload_id, &r.snapshot);
        let manifest = remote
            .manifest()
            .await
            .map_err(|e| err("asking for the snapshot's manifest", e))?
            .ok_or_else(|| {
                CommandError(format!(
                    "snapshot `{}` of node {} is not complete",
                    r.snapshot, r.workload_id
                ))
            })?;
        let dir = self.node_dir(&r.workload_id);
        std::fs::create_dir_all(&dir).map_err(|e| err("creating the node directory", e))?;
        hood_snapshot::restore(
            &remote,
            &manifest,
            &dir.join("data"),
            reporter(ctx, "restore"),
        )
        .await
        .map_err(|e| err("restoring the snapshot", e))?;
        tracing::info!(workload = %r.workload_id, snapshot = %r.snapshot,
            raw_bytes = manifest.raw_bytes, "data directory restored from the control plane");
        Ok(RestoredSnapshot {
            snapshot: r.snapshot.clone(),
            files: manifest.files,
            raw_bytes: manifest.raw_bytes,
        })
    }
}
