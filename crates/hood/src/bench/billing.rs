//! `hood bench billing`: meter-event ingest over HTTP and period close for
//! many organizations, each against an anchor measured in the same run on
//! the same database.
//!
//! * Ingest: `--events` meter events sent to `POST /api/v1/meter-events` of
//!   an API served in this process (the real router, authentication and
//!   validation included), `--batch` events per request and
//!   `--concurrency` requests in flight; beside it the same number of
//!   events written straight through the store (`insert_meter_events`, no
//!   HTTP), and the anchor: the store's bare insert rate of as many rows,
//!   `--batch` per transaction (`hood_store::bench::bare_insert_rate`).
//! * Close: `--orgs` organizations on a HYBRID contract, each with
//!   `--events-per-org` ingested events of one meter, closed as of a day
//!   after their first period (one invoice each, posted to the ledger);
//!   anchored on bare single-row transactions, one per organization.

use anyhow::{bail, Context, Result};
use hood_app::{BillingService, BillingStores, CreateSubscription, LedgerService};
use hood_domain::billing::{ContractTerms, MeterEvent, Price, PriceRule, Rate, RateCard};
use hood_domain::identity::Organization;
use hood_domain::{OrgId, Timestamp};
use hood_identity::master_key::MasterKey;
use hood_store::bench::bare_insert_rate;
use hood_store::billing::BillingStore as _;
use hood_store::ledger::LedgerStore as _;
use hood_store::meter::MeterStore as _;
use hood_store::{IdentityStore as _, SqlStore, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const METER: &str = "bench.units";
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, clap::Args)]
pub struct BillingBenchArgs {
    /// Store to measure (`sqlite://…` or `postgres://…`); a fresh database
    /// (migrated by the benchmark, which writes into it).
    #[arg(long)]
    pub database_url: String,
    /// Meter events ingested over HTTP (and again through the store).
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Events per request (and rows per transaction of the anchor).
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Organizations whose period is closed.
    #[arg(long, default_value_t = 1_000)]
    pub orgs: usize,
    /// Ingested events per organization in the closed period.
    #[arg(long, default_value_t = 10)]
    pub events_per_org: usize,
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

async fn org(store: &SqlStore, slug: String, at: Timestamp) -> Result<OrgId> {
    let o = Organization {
        id: OrgId::from_uuid(Uuid::now_v7()),
        name: slug.clone(),
        slug,
        created_at: at,
    };
    store.create_org(&o).await?;
    Ok(o.id)
}

fn events(prefix: &str, n: usize, at: Timestamp) -> Vec<MeterEvent> {
    (0..n)
        .map(|i| MeterEvent {
            id: format!("{prefix}-{i}"),
            meter: METER.into(),
            dimensions: BTreeMap::from([("region".to_owned(), format!("r{}", i % 4))]),
            quantity: 1 + (i % 100) as u64,
            at,
        })
        .collect()
}

pub async fn run(args: BillingBenchArgs) -> Result<()> {
    if args.batch == 0 || args.batch > hood_api::routes::billing::MAX_METER_BATCH {
        bail!(
            "--batch must be 1 to {}",
            hood_api::routes::billing::MAX_METER_BATCH
        );
    }
    if args.events == 0 || args.orgs == 0 || args.concurrency == 0 {
        bail!("--events, --orgs and --concurrency must be at least 1");
    }
    let store = hood_store::connect(&args.database_url)
        .await
        .context("connecting")?;
    store.migrate().await.context("migrating")?;
    if !store.list_rate_cards().await?.is_empty() {
        bail!("the database is not fresh: it holds rate cards");
    }
    let home = tempfile::tempdir().context("a scratch home for the admin key")?;
    let master = MasterKey::generate();
    let dyn_store: Arc<dyn Store> = store.clone();

    // --- ingest over HTTP ------------------------------------------------
    let api = super::InProcessApi::start(&store, &master, home.path(), |state| state).await?;
    let (addr, admin) = (api.addr, api.admin.clone());
    let now = hood_clock::now();
    let http_org = org(&store, "bench-http".into(), now).await?;
    let all = events("h", args.events, now);
    let bodies: Vec<serde_json::Value> = all
        .chunks(args.batch)
        .map(|chunk| {
            serde_json::json!({
                "org_id": http_org,
                "events": chunk.iter().map(|e| serde_json::json!({
                    "id": e.id, "meter": e.meter, "dimensions": e.dimensions,
                    "quantity": e.quantity, "at": e.at.millis().to_string(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/v1/meter-events");
    let queue = Arc::new(tokio::sync::Mutex::new(bodies.into_iter()));
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..args.concurrency {
        let (queue, http, url, admin) = (queue.clone(), http.clone(), url.clone(), admin.clone());
        senders.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            loop {
                let Some(body) = queue.lock().await.next() else {
                    return Ok::<u64, anyhow::Error>(accepted);
                };
                let r = http
                    .post(&url)
                    .bearer_auth(&admin)
                    .json(&body)
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("ingest answered {}: {}", r.status(), r.text().await?);
                }
                let v: serde_json::Value = r.json().await?;
                accepted += v["accepted"].as_u64().unwrap_or(0);
            }
        }));
    }
    let mut accepted = 0;
    for s in senders {
        accepted += s.await??;
    }
    let http_took = started.elapsed();
    api.shutdown().await?;
    if accepted != args.events as u64 {
        bail!("{accepted} of {} events stored over HTTP", args.events);
    }

    // --- the same through the store, and the anchor -------------------------
    let store_org = org(&store, "bench-store".into(), now).await?;
    let direct = events("s", args.events, now);
    let started = Instant::now();
    for chunk in direct.chunks(args.batch) {
        store.insert_meter_events(store_org, chunk, now).await?;
    }
    let store_took = started.elapsed();
    let bare = bare_insert_rate(&store, args.events, args.batch).await?;
    println!(
        "ingest/http: {:.0} events/s ({} events, {} per request, {} in flight), {:.2}x the bare insert rate",
        per_sec(args.events, http_took),
        args.events,
        args.batch,
        args.concurrency,
        per_sec(args.events, http_took) / bare.per_sec()
    );
    println!(
        "ingest/store: {:.0} events/s, {:.2}x the bare insert rate",
        per_sec(args.events, store_took),
        per_sec(args.events, store_took) / bare.per_sec()
    );
    println!(
        "anchor/bare-insert: {:.0} rows/s ({} rows, {} per transaction)",
        bare.per_sec(),
        bare.rows,
        bare.batch
    );

    // --- period close for many organizations --------------------------------
    for ledger in crate::ledger::default_ledgers() {
        store.ensure_ledger(&ledger, now).await?;
    }
    let log = hood_ledger::LedgerLog::open(dyn_store.clone(), &master, "bench.billing").await?;
    let billing = BillingService::new(
        BillingStores {
            billing: dyn_store.clone(),
            meters: dyn_store.clone(),
            usage: dyn_store.clone(),
            uptime: dyn_store.clone(),
            nodes: dyn_store.clone(),
            credits: dyn_store.clone(),
        },
        LedgerService::new(log),
        hood_clock::system(),
    );
    billing
        .create_rate_card(RateCard {
            version: 0,
            currency: "USD".parse()?,
            rules: vec![PriceRule {
                meter: METER.into(),
                matches: BTreeMap::new(),
                price: Price::flat(Rate {
                    amount_minor: 1,
                    per: 10,
                }),
            }],
            meters: BTreeMap::new(),
        })
        .await
        .map_err(|e| anyhow::anyhow!("rate card: {e}"))?;
    // Contracts that started 40 days ago: one period has ended.
    let start_ms = now.millis() - 40 * DAY_MS;
    let start = hood_api::clock::rfc3339(Timestamp::from_millis(start_ms));
    let start_date = time::Date::parse(
        &start[..10],
        time::macros::format_description!("[year]-[month]-[day]"),
    )?;
    let in_period = Timestamp::from_millis(start_ms + DAY_MS);
    for i in 0..args.orgs {
        let id = org(&store, format!("bench-close-{i}"), now).await?;
        billing
            .create_subscription(
                id,
                CreateSubscription {
                    terms: ContractTerms::Hybrid {
                        fee_minor: 1_000,
                        included: BTreeMap::from([(METER.to_owned(), 50)]),
                    },
                    currency: "USD".parse()?,
                    start_date,
                    rate_card_version: None,
                    grace_ms: None,
                    budget_minor: None,
                    budget_hard_cap: false,
                    pending_payment: false,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("subscription: {e}"))?;
        store
            .insert_meter_events(
                id,
                &events(&format!("c{i}"), args.events_per_org, in_period),
                now,
            )
            .await?;
    }
    let started = Instant::now();
    let report = billing
        .close_periods(None, None)
        .await
        .map_err(|e| anyhow::anyhow!("close: {e}"))?;
    let close_took = started.elapsed();
    if report.issued.len() != args.orgs || !report.failed.is_empty() {
        bail!(
            "close issued {} invoices for {} organizations ({} failed)",
            report.issued.len(),
            args.orgs,
            report.failed.len()
        );
    }
    let anchor = bare_insert_rate(&store, args.orgs, 1).await?;
    println!(
        "close: {} organizations in {:.2} s ({:.0} invoices/s, issued and posted to the ledger), {:.1}x the time of {} bare single-row transactions ({:.0} ms)",
        args.orgs,
        close_took.as_secs_f64(),
        per_sec(args.orgs, close_took),
        close_took.as_secs_f64() / anchor.elapsed.as_secs_f64().max(1e-9),
        anchor.rows,
        anchor.elapsed.as_secs_f64() * 1000.0
    );
    Ok(())
}
