//! `hood bench storage`: object upload and download throughput through
//! Hood's storage API (an api served in this process: the real router,
//! API-key authentication, the catalog on SQLite, bytes hashed and streamed
//! into a local object store), anchored on the same object store written
//! and read directly in the same run (same bytes, same disk, same
//! buffered writer).
//!
//! The difference is what a stored object costs beyond its bytes: HTTP,
//! authentication, SHA-256, the blob's row and the committing transaction.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hood_identity::master_key::MasterKey;
use hood_identity::presign::Presigner;
use hood_storage::{Storage, StorageConfig, StoreLocation};
use hood_store::Store;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;

#[derive(Debug, Clone, clap::Args)]
pub struct StorageBenchArgs {
    /// Objects per round.
    #[arg(long, default_value_t = 8)]
    pub objects: usize,
    /// Size of each object.
    #[arg(long, default_value_t = 32)]
    pub object_mib: usize,
    /// Rounds (each: Hood and the anchor); medians reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64().max(1e-9)
}

/// Noise-like bytes (nothing on the path compresses).
fn payload(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

pub async fn run(args: StorageBenchArgs) -> Result<()> {
    if args.objects == 0 || args.object_mib == 0 || args.runs == 0 {
        bail!("--objects, --object-mib and --runs must be at least 1");
    }
    let scratch = tempfile::tempdir().context("a scratch directory")?;
    let store = hood_store::connect(&format!(
        "sqlite://{}",
        scratch.path().join("hood.db").display()
    ))
    .await
    .context("opening the catalog")?;
    store.migrate().await.context("migrating")?;
    let dyn_store: Arc<dyn Store> = store.clone();
    let master = MasterKey::generate();
    let storage = Storage::open(
        &StoreLocation::Local {
            root: scratch.path().join("storage"),
        },
        dyn_store,
        Presigner::new(&master),
        Arc::new(hood_clock::SystemClock),
        StorageConfig::default(),
    )
    .context("opening the storage object store")?;
    let api = super::InProcessApi::start(&store, &master, scratch.path(), |state| {
        state.with_storage(storage)
    })
    .await?;
    let (addr, admin) = (api.addr, api.admin.clone());
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/api/v1/storage/namespaces");
    let total = (args.objects * args.object_mib * 1024 * 1024) as u64;
    let made = http
        .post(&base)
        .bearer_auth(&admin)
        .json(&serde_json::json!({
            "name": "bench", "max_bytes": total * 2, "max_objects": args.objects * 2,
        }))
        .send()
        .await?;
    if !made.status().is_success() {
        bail!("creating the namespace: {}", made.text().await?);
    }

    let objects: Vec<Bytes> = (0..args.objects)
        .map(|i| payload(args.object_mib * 1024 * 1024, i as u64 + 1))
        .collect();
    let anchor_root = scratch.path().join("anchor");
    std::fs::create_dir_all(&anchor_root)?;
    let anchor: Arc<dyn ObjectStore> = Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(&anchor_root)
            .context("the anchor's object store")?,
    );

    let (mut up, mut down, mut anchor_up, mut anchor_down) = (vec![], vec![], vec![], vec![]);
    for _ in 0..args.runs {
        // Hood: PUT then GET every object through the API.
        let started = Instant::now();
        for (i, bytes) in objects.iter().enumerate() {
            let r = http
                .put(format!("{base}/bench/objects/obj-{i}"))
                .bearer_auth(&admin)
                .body(bytes.clone())
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("upload answered {}: {}", r.status(), r.text().await?);
            }
        }
        up.push(started.elapsed());
        let started = Instant::now();
        for (i, bytes) in objects.iter().enumerate() {
            let r = http
                .get(format!("{base}/bench/objects/obj-{i}"))
                .bearer_auth(&admin)
                .send()
                .await?;
            let body = r.bytes().await?;
            if body.len() != bytes.len() {
                bail!("object {i} came back with {} bytes", body.len());
            }
        }
        down.push(started.elapsed());

        // The anchor: the same bytes into the same kind of store.
        let started = Instant::now();
        for (i, bytes) in objects.iter().enumerate() {
            let mut w = BufWriter::with_capacity(
                anchor.clone(),
                ObjectPath::from(format!("obj-{i}")),
                8 * 1024 * 1024,
            );
            w.put(bytes.clone()).await?;
            w.shutdown().await?;
        }
        anchor_up.push(started.elapsed());
        let started = Instant::now();
        for (i, bytes) in objects.iter().enumerate() {
            let got = anchor
                .get(&ObjectPath::from(format!("obj-{i}")))
                .await?
                .bytes()
                .await?;
            if got.len() != bytes.len() {
                bail!("anchor object {i} came back with {} bytes", got.len());
            }
        }
        anchor_down.push(started.elapsed());
    }
    api.shutdown().await?;

    println!(
        "{} objects of {} MiB per round ({} MiB), local disk",
        args.objects,
        args.object_mib,
        total / (1024 * 1024)
    );
    println!(
        "{:<10} {:>12} {:>12} {:>8}",
        "", "hood MiB/s", "anchor MiB/s", "ratio"
    );
    for (name, ours, theirs) in [
        ("upload", median(up), median(anchor_up)),
        ("download", median(down), median(anchor_down)),
    ] {
        println!(
            "{name:<10} {:>12.1} {:>12.1} {:>8.2}",
            mib_s(total, ours),
            mib_s(total, theirs),
            theirs.as_secs_f64() / ours.as_secs_f64().max(1e-9)
        );
    }
    println!(
        "(medians of {} rounds; ratio = hood throughput / anchor throughput)",
        args.runs
    );
    Ok(())
}
