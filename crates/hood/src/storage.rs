//! Storage wiring: where namespaces' bytes live (`HOOD_STORAGE_URL`, else
//! `$HOOD_HOME/storage` under `hood up`), the sweeper beside the api and
//! storage roles, and the S3 endpoint of the storage role.

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
    /// The S3-compatible endpoint (`hood up`, `hood serve --role storage`).
    #[arg(long, env = "HOOD_S3_ADDR", default_value = "127.0.0.1:9000")]
    pub s3_addr: std::net::SocketAddr,
}

/// The S3 endpoint, bound and ready to serve.
pub struct S3Endpoint {
    pub listener: tokio::net::TcpListener,
    pub router: axum::Router,
    principals: Arc<hood_s3::Principals>,
}

impl S3Endpoint {
    /// Binds `HOOD_S3_ADDR` for `storage`, keys read from `store` and
    /// opened with `master`.
    pub async fn bind(
        args: &StorageArgs,
        storage: Storage,
        store: Arc<dyn Store>,
        master: &MasterKey,
    ) -> Result<Self> {
        let listener = crate::listen::bind(args.s3_addr, crate::listen::S3).await?;
        let principals = Arc::new(hood_s3::Principals::new(store, master.clone()));
        Ok(Self {
            listener,
            router: hood_s3::HoodS3::new(storage, Arc::clone(&principals)).router(),
            principals,
        })
    }

    /// The access keys' cache, which credential changes on the bus evict
    /// (without a bus, keys are re-read every second).
    pub fn credential_cache(&self) -> Arc<dyn hood_identity::credential_cache::CredentialEvictor> {
        self.principals.credential_cache()
    }

    pub fn url(&self) -> Result<String> {
        Ok(format!("http://{}", self.listener.local_addr()?))
    }

    /// Serves until `stop` resolves (requests in flight get `drain`).
    pub fn spawn(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
        drain: std::time::Duration,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        tokio::spawn(hood_api::serve(self.listener, self.router, stop, drain))
    }
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
