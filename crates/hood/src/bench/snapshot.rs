//! `hood bench snapshot`: snapshot and restore throughput of a data
//! directory (pack + upload to an object store on local disk; restore from
//! it), anchored on `tar | zstd -3` and `zstd -d | tar -x` of the same
//! directory in the same run.
//!
//! Throughput is the directory's raw bytes over the wall time. Both sides
//! write to the same disk and compress at zstd's level 3 on one thread;
//! Hood additionally hashes each chunk, stores chunks as objects and
//! verifies them on the way back.

use anyhow::{bail, Context, Result};
use hood_snapshot::{pack, restore, upload, ObjectChunks, DEFAULT_CHUNK_SIZE};
use object_store::local::LocalFileSystem;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotBenchArgs {
    /// Directory to snapshot; a synthetic data directory of `--size-mib`
    /// is generated when absent.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Size of the generated directory.
    #[arg(long, default_value_t = 256)]
    pub size_mib: u64,
    /// Chunk size.
    #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE / (1024 * 1024))]
    pub chunk_mib: u64,
    /// Rounds (each: Hood and the anchor, alternately); medians reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// Chain-data-like bytes: a third noise, two thirds a slow pattern.
fn generate(dir: &Path, size: u64) -> Result<()> {
    std::fs::create_dir_all(dir.join("chaindata"))?;
    let files = 16u64;
    let per = size / files;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for f in 0..files {
        let bytes: Vec<u8> = (0..per)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 3 == 0 {
                    (x & 0xff) as u8
                } else {
                    ((i / 64) % 251) as u8
                }
            })
            .collect();
        std::fs::write(dir.join(format!("chaindata/{f:06}.ldb")), bytes)?;
    }
    Ok(())
}

fn sh(script: &str) -> Result<Duration> {
    let started = Instant::now();
    let status = Command::new("sh").arg("-c").arg(script).status()?;
    if !status.success() {
        bail!("`{script}` failed: {status}");
    }
    Ok(started.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64().max(1e-9)
}

pub async fn run(args: SnapshotBenchArgs) -> Result<()> {
    if args.runs == 0 || args.chunk_mib == 0 {
        bail!("--runs and --chunk-mib must be at least 1");
    }
    for tool in ["tar", "zstd"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("the anchor needs `{tool}` on PATH");
        }
    }
    let work = tempfile::tempdir().context("creating a scratch directory")?;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let d = work.path().join("data");
            generate(&d, args.size_mib * 1024 * 1024)?;
            d
        }
    };
    let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    let mut ours_snap = Vec::new();
    let mut ours_restore = Vec::new();
    let mut anchor_snap = Vec::new();
    let mut anchor_restore = Vec::new();
    let mut raw = 0;
    let mut compressed = 0;
    let mut anchor_compressed = 0;
    for round in 0..args.runs {
        let objects = work.path().join(format!("objects-{round}"));
        std::fs::create_dir_all(&objects)?;
        let store = ObjectChunks::new(
            Arc::new(LocalFileSystem::new_with_prefix(&objects)?),
            "snapshots/bench/s",
        );
        let archive = work.path().join(format!("hood-{round}.tar.zst"));
        let started = Instant::now();
        let (d, a) = (dir.clone(), archive.clone());
        let chunk = args.chunk_mib * 1024 * 1024;
        let manifest = tokio::task::spawn_blocking(move || pack(&d, &a, chunk)).await??;
        upload(&archive, &manifest, &store, |_| {}).await?;
        ours_snap.push(started.elapsed());
        raw = manifest.raw_bytes;
        compressed = manifest.compressed_bytes;
        let target = work.path().join(format!("restored-{round}"));
        let started = Instant::now();
        restore(&store, &manifest, &target, |_| {}).await?;
        ours_restore.push(started.elapsed());
        std::fs::remove_dir_all(&target)?;
        std::fs::remove_dir_all(&objects)?;
        std::fs::remove_file(&archive)?;

        let out = work.path().join(format!("anchor-{round}.tar.zst"));
        anchor_snap.push(sh(&format!(
            "tar -C {} -cf - . | zstd -3 -T1 -q -o {}",
            q(&dir),
            q(&out)
        ))?);
        anchor_compressed = std::fs::metadata(&out)?.len();
        let target = work.path().join(format!("anchor-restored-{round}"));
        std::fs::create_dir_all(&target)?;
        anchor_restore.push(sh(&format!(
            "zstd -d -q -c {} | tar -C {} -xf -",
            q(&out),
            q(&target)
        ))?);
        std::fs::remove_dir_all(&target)?;
        std::fs::remove_file(&out)?;
    }
    let (s, r, as_, ar) = (
        median(ours_snap),
        median(ours_restore),
        median(anchor_snap),
        median(anchor_restore),
    );
    println!(
        "directory: {:.1} MiB raw; hood {:.1} MiB compressed ({} KiB chunks), tar|zstd {:.1} MiB",
        raw as f64 / 1048576.0,
        compressed as f64 / 1048576.0,
        args.chunk_mib * 1024,
        anchor_compressed as f64 / 1048576.0
    );
    println!(
        "{:<10} {:>12} {:>12} {:>8}",
        "", "hood MiB/s", "anchor MiB/s", "ratio"
    );
    for (name, ours, anchor) in [("snapshot", s, as_), ("restore", r, ar)] {
        println!(
            "{name:<10} {:>12.1} {:>12.1} {:>8.2}",
            mib_s(raw, ours),
            mib_s(raw, anchor),
            anchor.as_secs_f64() / ours.as_secs_f64().max(1e-9)
        );
    }
    println!(
        "(medians of {} rounds; ratio = hood throughput / anchor throughput)",
        args.runs
    );
    Ok(())
}
