//! Wiring of the ledger in a server process: default ledgers, the log and
//! its key, the use cases the API serves, and the leader-gated upkeep.

use anyhow::{Context, Result};
use hood_app::LedgerService;
use hood_domain::ledger::Ledger;
use hood_identity::master_key::MasterKey;
use hood_ledger::{Exporter, LedgerLog, Upkeep, UpkeepConfig};
use hood_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Settings of the ledger (shared by `up` and `serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct LedgerArgs {
    /// The ledger log's origin: the first line of every checkpoint and the
    /// signing key's name (fixed when the key is first created).
    #[arg(long, env = "HOOD_LEDGER_ORIGIN", default_value = hood_ledger::DEFAULT_ORIGIN)]
    pub ledger_origin: String,
    /// Seconds between scheduled checkpoints (signed only when the log grew).
    #[arg(
        long,
        env = "HOOD_LEDGER_CHECKPOINT_INTERVAL",
        default_value_t = 86_400
    )]
    pub ledger_checkpoint_interval: u64,
}

/// The ledgers every installation has: USD in micro-dollars, and
/// compute-unit credits.
pub fn default_ledgers() -> [Ledger; 2] {
    [
        Ledger {
            id: 1,
            asset: "USD".into(),
            scale: 6,
        },
        Ledger {
            id: 2,
            asset: "CU".into(),
            scale: 0,
        },
    ]
}

/// The ledger's use cases without its upkeep, for roles that post to it
/// (billing) in a process that does not run the ledger's upkeep.
pub async fn open_service(
    args: &LedgerArgs,
    store: Arc<dyn Store>,
    master: &MasterKey,
) -> Result<LedgerService> {
    for ledger in default_ledgers() {
        store
            .ensure_ledger(&ledger, hood_clock::now())
            .await
            .with_context(|| format!("configuring the {} ledger", ledger.asset))?;
    }
    let log = LedgerLog::open(store, master, &args.ledger_origin)
        .await
        .context("opening the ledger's checkpoint key")?;
    Ok(LedgerService::new(log))
}

/// The running ledger: its use cases and its upkeep.
pub struct LedgerRole {
    pub service: LedgerService,
    upkeep: Upkeep,
}

impl LedgerRole {
    pub async fn start(
        args: &LedgerArgs,
        store: Arc<dyn Store>,
        master: &MasterKey,
        objects: Option<Arc<dyn object_store::ObjectStore>>,
    ) -> Result<Self> {
        for ledger in default_ledgers() {
            store
                .ensure_ledger(&ledger, hood_clock::now())
                .await
                .with_context(|| format!("configuring the {} ledger", ledger.asset))?;
        }
        let log = LedgerLog::open(store.clone(), master, &args.ledger_origin)
            .await
            .context("opening the ledger's checkpoint key")?;
        let exporter = objects.map(|o| Exporter::new(log.clone(), o));
        let holder = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let upkeep = Upkeep::spawn(
            log.clone(),
            exporter,
            store,
            &holder,
            UpkeepConfig {
                checkpoint_every: Duration::from_secs(args.ledger_checkpoint_interval.max(1)),
                ..UpkeepConfig::default()
            },
        );
        Ok(Self {
            service: LedgerService::new(log),
            upkeep,
        })
    }

    pub async fn shutdown(self) {
        self.upkeep.shutdown().await;
    }
}
