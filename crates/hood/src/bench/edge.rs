//! `hood bench edge`: requests/s and latency of the same JSON-RPC call
//! (a) straight to a local upstream, (b) through nginx as a plain reverse
//! proxy, (c) through Hood's edge with key auth, CU limits and metering on.
//! One run, one machine, one upstream, one load generator; the figures that
//! matter are the ratios.

use anyhow::{bail, Context, Result};
use hood_domain::identity::Organization;
use hood_domain::rpc::{KeyScope, Plan, PlanCatalog, RpcKey};
use hood_domain::{OrgId, RpcKeyId};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct EdgeBenchArgs {
    /// Requests measured per target (after a warm-up).
    #[arg(long, default_value_t = 100_000)]
    pub requests: usize,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// The nginx binary (Debian package `nginx`).
    #[arg(long, default_value = "nginx")]
    pub nginx: PathBuf,
    /// Meter in memory instead of through the crash-safe spool (what the
    /// spool costs, measured against the same anchors).
    #[arg(long)]
    pub no_spool: bool,
}

/// What one target did.
struct Run {
    name: &'static str,
    answered: usize,
    failed: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Run {
    fn rps(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64()
    }
}

const BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
const ANSWER: &str = r#"{"jsonrpc":"2.0","id":1,"result":"0x10"}"#;

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A runtime of its own, so a server does not share the load generator's
/// scheduler (as if it were another process).
fn runtime(name: &str, threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .context("starting a benchmark runtime")
}

async fn wait_listening(port: u16) -> Result<()> {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if started.elapsed() > Duration::from_secs(10) {
            bail!("nothing listens on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn load(name: &'static str, url: &str, requests: usize, concurrency: usize) -> Result<Run> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (client, next, url) = (client.clone(), next.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failed = 0usize;
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    let t = Instant::now();
                    let ok = match client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(BODY)
                        .send()
                        .await
                    {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        latencies.push(t.elapsed());
                    } else {
                        failed += 1;
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests);
    let mut failed = 0;
    for w in workers {
        let (l, f) = w.await.context("load worker")?;
        latencies.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| super::percentile(&latencies, p);
    Ok(Run {
        name,
        answered: latencies.len(),
        failed,
        elapsed,
        p50: pct(50.0),
        p99: pct(99.0),
    })
}

async fn measure(name: &'static str, url: &str, args: &EdgeBenchArgs) -> Result<Run> {
    let warm = load(name, url, (args.requests / 20).max(500), args.concurrency).await?;
    if warm.answered == 0 {
        bail!("{name}: no request succeeded during the warm-up");
    }
    load(name, url, args.requests, args.concurrency).await
}

fn nginx_config(dir: &std::path::Path, listen: u16, upstream: u16) -> String {
    let d = dir.display();
    format!(
        "worker_processes auto;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
           access_log off;\n\
           client_body_temp_path {d}/body;\n\
           proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n\
           uwsgi_temp_path {d}/uwsgi;\n\
           scgi_temp_path {d}/scgi;\n\
           upstream rpc {{ server 127.0.0.1:{upstream}; keepalive 128; }}\n\
           server {{\n\
             listen 127.0.0.1:{listen};\n\
             location / {{\n\
               proxy_pass http://rpc/;\n\
               proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\";\n\
             }}\n\
           }}\n\
         }}\n"
    )
}

pub async fn run(args: EdgeBenchArgs) -> Result<()> {
    if args.requests == 0 || args.concurrency == 0 {
        bail!("--requests and --concurrency must be at least 1");
    }
    let work = tempfile::tempdir().context("creating a work directory")?;

    // The upstream: a fixed JSON-RPC answer, on its own runtime.
    let upstream_port = free_port()?;
    let upstream_rt = runtime("bench-upstream", 1)?;
    upstream_rt.spawn(async move {
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    ANSWER,
                )
            }),
        );
        if let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", upstream_port)).await {
            let _ = axum::serve(l, app).await;
        }
    });
    wait_listening(upstream_port).await?;
    let upstream_url = format!("http://127.0.0.1:{upstream_port}/");

    // nginx as a plain reverse proxy.
    let nginx_port = free_port()?;
    let conf = work.path().join("nginx.conf");
    std::fs::write(&conf, nginx_config(work.path(), nginx_port, upstream_port))?;
    let mut nginx = tokio::process::Command::new(&args.nginx)
        .arg("-p")
        .arg(work.path())
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting nginx ({}); install the Debian package `nginx` or pass --nginx",
                args.nginx.display()
            )
        })?;
    wait_listening(nginx_port).await?;

    // Hood's edge: real store (SQLite), key auth, GCRA limits, metering.
    let edge_rt = runtime("bench-edge", 2)?;
    let db = format!("sqlite://{}", work.path().join("edge.db").display());
    let spool = (!args.no_spool).then(|| work.path().join("edge-spool"));
    let upstream_for_edge = upstream_url.clone();
    let (edge, store, key, token) = edge_rt
        .spawn(async move { start_edge(&db, &upstream_for_edge, spool).await })
        .await
        .context("edge runtime")??;
    let edge_url = format!("http://{}/bench/v1/{token}", edge.addr);

    println!(
        "hood bench edge: {} requests per target, {} connections, eth_blockNumber, metering {}",
        args.requests,
        args.concurrency,
        if args.no_spool {
            "in memory (--no-spool)"
        } else {
            "through the crash-safe spool"
        }
    );
    let direct = measure("direct", &upstream_url, &args).await?;
    let proxied = measure("nginx", &format!("http://127.0.0.1:{nginx_port}/"), &args).await?;
    let hood = measure("hood edge", &edge_url, &args).await?;
    // `nginx -s stop` ends the master and its workers (killing only the
    // master would leave the workers running).
    let _ = tokio::process::Command::new(&args.nginx)
        .arg("-p")
        .arg(work.path())
        .arg("-c")
        .arg(&conf)
        .args(["-s", "stop"])
        .status()
        .await;
    if tokio::time::timeout(Duration::from_secs(10), nginx.wait())
        .await
        .is_err()
    {
        let _ = nginx.kill().await;
    }

    // Metering was on: every answered call must have its event.
    let written = edge_rt
        .spawn(async move { edge.shutdown().await })
        .await
        .context("edge runtime")?;
    let stored = store.count_usage_events(key).await?;

    println!(
        "{:<10} {:>10} {:>8} {:>10} {:>10}",
        "target", "req/s", "failed", "p50 ms", "p99 ms"
    );
    for r in [&direct, &proxied, &hood] {
        println!(
            "{:<10} {:>10.0} {:>8} {:>10.3} {:>10.3}",
            r.name,
            r.rps(),
            r.failed,
            super::ms(r.p50),
            super::ms(r.p99)
        );
    }
    println!(
        "ratio hood/nginx: throughput {:.2}, p99 {:.2}",
        hood.rps() / proxied.rps(),
        super::ms(hood.p99) / super::ms(proxied.p99)
    );
    println!(
        "ratio hood/direct: throughput {:.2}, p99 {:.2}",
        hood.rps() / direct.rps(),
        super::ms(hood.p99) / super::ms(direct.p99)
    );
    println!(
        "metering: {written} usage events written, {stored} stored for the bench key (warm-up included)"
    );
    edge_rt.shutdown_background();
    upstream_rt.shutdown_background();
    Ok(())
}

async fn start_edge(
    db: &str,
    upstream: &str,
    spool: Option<PathBuf>,
) -> Result<(
    hood_edge::EdgeHandle,
    Arc<dyn hood_store::Store>,
    RpcKeyId,
    String,
)> {
    let store: Arc<dyn hood_store::Store> = hood_store::connect(db).await?;
    store.migrate().await?;
    let now = hood_clock::now();
    let org = Organization {
        id: OrgId::from_uuid(uuid::Uuid::now_v7()),
        slug: "bench".into(),
        name: "bench".into(),
        created_at: now,
    };
    store.create_org(&org).await?;
    let generated = hood_identity::api_keys::generate_rpc_key();
    let key = RpcKey {
        id: RpcKeyId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org.id,
        name: "bench".into(),
        prefix: generated.prefix.clone(),
        secret_hash: generated.secret_hash.clone(),
        plan: "bench".into(),
        scope: KeyScope::default(),
        created_at: now,
        updated_at: now,
        revoked_at: None,
        version: 1,
    };
    store.create_rpc_key(&key).await?;
    let mut plans = PlanCatalog::defaults().plans().to_vec();
    // Limits are enforced on every call; this plan is just wide enough
    // never to refuse the benchmark's load.
    plans.push(Plan {
        name: "bench".into(),
        cu_per_minute: 10_000_000_000,
        burst_cu: 10_000_000_000,
    });
    let mut config = hood_edge::EdgeConfig {
        plans: PlanCatalog::from_plans(plans)?,
        ..hood_edge::EdgeConfig::default()
    };
    // Metering as in production: every event through the crash-safe spool
    // (unless --no-spool).
    config.meter.spool_dir = spool;
    config
        .pools
        .external
        .insert("bench".into(), vec![upstream.to_owned()]);
    let deps = hood_edge::EdgeDeps {
        store: store.clone(),
        bus: Arc::new(hood_bus::InProcessBus::new()),
        limiter: Arc::new(hood_edge::limit::LocalLimiter::default()),
        usage: Arc::new(hood_edge::meter::StoreWriter(store.clone())),
        chains: ["bench".to_owned()].into_iter().collect(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let edge = hood_edge::start(config, deps, listener).await?;
    Ok((edge, store, key.id, generated.token))
}
