//! `hood bench storage`: object upload and download throughput through
//! Hood's storage API (an api served in this process: the real router,
//! API-key authentication, the catalog on SQLite, bytes hashed and streamed
//! into a local object store), anchored on the same object store written
//! and read directly in the same run (same bytes, same disk, same
//! buffered writer).
//!
//! The difference is what a stored object costs beyond its bytes: HTTP,
//! authentication, SHA-256, the blob's row and the committing transaction.
//! The same objects also go through the S3 endpoint (the storage role,
//! served in this process) with `object_store`'s S3 client, an S3 client
//! this project did not write: SigV4 on every request, multipart uploads
//! in 8 MiB parts composed at completion.

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
        state
            .with_storage(storage.clone())
            .with_master_key(master.clone())
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
            "name": "bench", "max_bytes": total * 3, "max_objects": args.objects * 3,
        }))
        .send()
        .await?;
    if !made.status().is_success() {
        bail!("creating the namespace: {}", made.text().await?);
    }

    let s3 = S3Client::start(
        &http,
        &format!("http://{addr}"),
        &admin,
        &store,
        &master,
        storage,
    )
    .await?;

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
    let (mut s3_up, mut s3_down) = (vec![], vec![]);
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

        // Through S3: multipart uploads, whole downloads.
        let started = Instant::now();
        for (i, bytes) in objects.iter().enumerate() {
            let mut w = BufWriter::with_capacity(
                s3.client.clone(),
                ObjectPath::from(format!("s3-{i}")),
                8 * 1024 * 1024,
            );
            w.put(bytes.clone()).await?;
            w.shutdown().await?;
        }
        s3_up.push(started.elapsed());
        let started = Instant::now();
        for (i, bytes) in objects.iter().enumerate() {
            let got = s3
                .client
                .get(&ObjectPath::from(format!("s3-{i}")))
                .await?
                .bytes()
                .await?;
            if got != *bytes {
                bail!("object {i} came back from S3 different");
            }
        }
        s3_down.push(started.elapsed());

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
    s3.shutdown().await?;

    println!(
        "{} objects of {} MiB per round ({} MiB), local disk",
        args.objects,
        args.object_mib,
        total / (1024 * 1024)
    );
    println!(
        "{:<12} {:>12} {:>12} {:>8}",
        "", "hood MiB/s", "anchor MiB/s", "ratio"
    );
    let (anchor_up, anchor_down) = (median(anchor_up), median(anchor_down));
    for (name, ours, theirs) in [
        ("upload", median(up), anchor_up),
        ("download", median(down), anchor_down),
        ("s3 upload", median(s3_up), anchor_up),
        ("s3 download", median(s3_down), anchor_down),
    ] {
        println!(
            "{name:<12} {:>12.1} {:>12.1} {:>8.2}",
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

/// The S3 endpoint served in this process and a client of it holding an
/// access key of a service account that may write the `bench` namespace.
struct S3Client {
    client: Arc<dyn ObjectStore>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl S3Client {
    async fn start(
        http: &reqwest::Client,
        api: &str,
        admin: &str,
        store: &Arc<hood_store::SqlStore>,
        master: &MasterKey,
        storage: Storage,
    ) -> Result<Self> {
        let me: serde_json::Value = http
            .get(format!("{api}/api/v1/me"))
            .bearer_auth(admin)
            .send()
            .await?
            .json()
            .await?;
        let slug = me["org"]["slug"]
            .as_str()
            .context("the admin's organization")?;
        let account: serde_json::Value = http
            .post(format!("{api}/api/v1/service-accounts"))
            .bearer_auth(admin)
            .json(&serde_json::json!({
                "name": "bench",
                "grants": [{"scope": format!("storage.{slug}.namespaces.bench"), "actions": ["create", "read"]}],
            }))
            .send()
            .await?
            .json()
            .await?;
        let id = account["id"].as_str().context("the service account")?;
        let key: serde_json::Value = http
            .post(format!("{api}/api/v1/service-accounts/{id}/s3-keys"))
            .bearer_auth(admin)
            .send()
            .await?
            .json()
            .await?;
        let (Some(access_key), Some(secret)) = (
            key["key"]["access_key_id"].as_str(),
            key["secret_access_key"].as_str(),
        ) else {
            bail!("issuing an S3 key: {key}");
        };
        let dyn_store: Arc<dyn Store> = store.clone();
        let principals = Arc::new(hood_s3::Principals::new(dyn_store, master.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(hood_api::serve(
            listener,
            hood_s3::HoodS3::new(storage, principals).router(),
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
        ));
        let client = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(format!("http://{addr}"))
            .with_allow_http(true)
            .with_bucket_name("bench")
            .with_region("us-east-1")
            .with_access_key_id(access_key)
            .with_secret_access_key(secret)
            .build()
            .context("the S3 client")?;
        Ok(Self {
            client: Arc::new(client),
            stop,
            server,
        })
    }

    async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(());
        self.server.await??;
        Ok(())
    }
}
