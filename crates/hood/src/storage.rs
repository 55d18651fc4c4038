//! Storage wiring: where namespaces' bytes live (`HOOD_STORAGE_URL`, else
//! `$HOOD_HOME/storage` under `hood up`) and the sweeper beside the api
//! role.

use anyhow::{Context, Result};
use hood_identity::master_key::MasterKey;
use hood_identity::presign::Presigner;
use hood_storage::{Storage, StorageConfig, StoreLocation};
use hood_store::Store;
use std::path::Path;
use std::sync::Arc;

/// Settings of the storage service.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// Where namespaces' objects live: `file:///PATH` or
    /// `s3://BUCKET/PREFIX?endpoint=…` (credentials from AWS_*). `hood up`
    /// defaults to `$HOOD_HOME/storage`; a cluster api replica without it
    /// answers the storage routes with 503.
    #[arg(long, env = "HOOD_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// Seconds after which an unfinished upload counts as abandoned (its
    /// client gone, or the server killed mid-upload) and its bytes are
    /// deleted.
    #[arg(long, env = "HOOD_STORAGE_UPLOAD_TIMEOUT", default_value_t = 86_400)]
    pub storage_upload_timeout: u64,
}

/// Opens the storage service and starts its sweeper. `embedded_home`:
/// the default location when no URL is given (`hood up`).
pub fn start(
    args: &StorageArgs,
    embedded_home: Option<&Path>,
    store: Arc<dyn Store>,
    master: &MasterKey,
) -> Result<Option<Storage>> {
    let location = match (&args.storage_url, embedded_home) {
        (Some(url), _) => StoreLocation::parse(url).context("HOOD_STORAGE_URL")?,
        (None, Some(home)) => StoreLocation::Local {
            root: home.join(hood_storage::EMBEDDED_DIR),
        },
        (None, None) => {
            tracing::info!("no HOOD_STORAGE_URL: the storage routes answer 503");
            return Ok(None);
        }
    };
    let config = StorageConfig {
        abandoned_after: std::time::Duration::from_secs(args.storage_upload_timeout.max(1)),
        ..StorageConfig::default()
    };
    let storage = Storage::open(
        &location,
        store,
        Presigner::new(master),
        Arc::new(hood_clock::SystemClock),
        config,
    )
    .context("opening the storage object store")?;
    tokio::spawn(storage.clone().run_sweeper());
    Ok(Some(storage))
}
