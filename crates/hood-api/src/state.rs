//! Shared state of the HTTP services.

use crate::limiter::KeyedLimiter;
use crate::metrics::Metrics;
use hood_app::{
    AllocationService, BillingService, LedgerService, NodeService, RolloutService, SnapshotService,
    TerminalService,
};
use hood_chains::ChainCatalog;
use hood_domain::rpc::PlanCatalog;
use hood_domain::sku::SkuCatalog;
use hood_identity::credential_cache::{CredentialCache, CredentialEvictor};
use hood_identity::master_key::MasterKey;
use hood_identity::oidc::OidcVerifier;
use hood_identity::tokens::TokenIssuer;
use hood_notify::NotifierConfig;
use hood_ports::{AllocationOperations, NodeOperations};
use hood_store::Store;
use std::net::IpAddr;
use std::sync::Arc;

/// Tunables of the HTTP services.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Login attempts admitted per client IP per minute.
    pub login_attempts_per_minute: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            login_attempts_per_minute: 20,
        }
    }
}

/// Everything a handler may reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Containers are served at `{name}.{org}.{domain}` under this domain.
    pub ingress_domain: Option<String>,
    /// The ingress's client to containers' published ports.
    pub ingress_client: reqwest::Client,
    pub tokens: TokenIssuer,
    pub oidc: Option<OidcVerifier>,
    pub chains: Arc<ChainCatalog>,
    /// The plans RPC keys can be on.
    pub plans: Arc<PlanCatalog>,
    pub login_limiter: Arc<KeyedLimiter<IpAddr>>,
    pub metrics: Arc<Metrics>,
    /// The node use cases.
    pub nodes: NodeService,
    /// The rollout use cases.
    pub rollouts: RolloutService,
    /// The node snapshot use cases.
    pub snapshots: SnapshotService,
    /// The allocation use cases (SKUs, placement, release, capacity).
    pub allocations: AllocationService,
    /// The ledger's use cases, in processes that run it (they hold the
    /// checkpoint key, so need the master key).
    pub ledger: Option<LedgerService>,
    /// Billing's use cases, in processes that run the ledger.
    pub billing: Option<BillingService>,
    /// The installation master key, in processes that seal secrets at rest
    /// (notification channel configurations).
    pub master: Option<MasterKey>,
    /// How test notifications are sent, and which destinations channels may
    /// name (the SSRF guard checked at channel creation).
    pub notify: NotifierConfig,
    /// Terminal sessions into allocations, in processes that run both the
    /// api role and the agent gateway (whose hub pairs the two ends).
    pub terminals: Option<TerminalService>,
    /// Storage namespaces and objects; `None` answers 503.
    pub storage: Option<hood_storage::Storage>,
    /// API keys' standing, read once and reused until a credential change
    /// of their organization (heard over the bus, or made here) evicts it.
    pub api_keys: Arc<CredentialCache<crate::key_standing::ApiKeyStanding>>,
}

impl AppState {
    /// Serves terminals through `hub` (shared with this process's agent
    /// gateway); the orchestrator's `operations` ask hosts to open them.
    pub fn with_terminals(
        mut self,
        hub: Arc<hood_terminal::TerminalHub>,
        operations: Arc<dyn AllocationOperations>,
    ) -> Self {
        self.terminals = Some(TerminalService::new(
            self.allocations.clone(),
            self.store.clone(),
            hub,
            operations,
        ));
        self
    }

    /// Attaches the orchestrator's operations to the node use cases.
    pub fn with_node_operations(mut self, operations: Arc<dyn NodeOperations>) -> Self {
        self.nodes = self.nodes.with_operations(operations.clone());
        self.snapshots =
            SnapshotService::new(self.nodes.clone(), self.store.clone(), self.store.clone());
        self.rollouts = self.rollouts.with_operations(operations);
        self
    }

    /// Serves containers at `{name}.{org}.{domain}` (lowercase).
    pub fn with_ingress_domain(mut self, domain: Option<String>) -> Self {
        self.ingress_domain = domain
            .map(|d| d.trim_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty());
        self
    }

    /// The container use cases, over this state's allocation use cases
    /// (whatever SKUs, operations and prepaid gate they have).
    pub fn containers(&self) -> hood_app::ContainerService {
        hood_app::ContainerService::new(self.store.clone(), self.allocations.clone())
    }

    /// Attaches the orchestrator's operations to the allocation use cases.
    pub fn with_allocation_operations(mut self, operations: Arc<dyn AllocationOperations>) -> Self {
        self.allocations = self.allocations.with_operations(operations);
        self
    }

    /// Replaces the RPC key plans (default: [`PlanCatalog::defaults`]).
    pub fn with_plans(mut self, plans: PlanCatalog) -> Self {
        self.plans = Arc::new(plans);
        self
    }

    /// Replaces the notification settings (default: strict destination
    /// policy, the public Telegram Bot API).
    pub fn with_notifier_config(mut self, notify: NotifierConfig) -> Self {
        self.notify = notify;
        self
    }

    /// Replaces the SKUs on offer (default: [`SkuCatalog::defaults`]).
    pub fn with_skus(mut self, skus: SkuCatalog) -> Self {
        self.allocations = self.allocations.with_skus(Arc::new(skus));
        self
    }

    /// Serves the ledger's routes with these use cases.
    pub fn with_billing(mut self, billing: BillingService) -> Self {
        self.allocations = self
            .allocations
            .with_prepaid_gate(Arc::new(billing.clone()));
        self.billing = Some(billing);
        self
    }

    pub fn with_ledger(mut self, ledger: LedgerService) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Attaches the master key that seals notification channel secrets.
    pub fn with_storage(mut self, storage: hood_storage::Storage) -> Self {
        self.storage = Some(storage);
        self
    }

    pub fn with_master_key(mut self, master: MasterKey) -> Self {
        self.master = Some(master);
        self
    }

    pub fn new(
        store: Arc<dyn Store>,
        tokens: TokenIssuer,
        oidc: Option<OidcVerifier>,
        chains: Arc<ChainCatalog>,
        config: &ApiConfig,
    ) -> Self {
        let nodes = NodeService::new(store.clone(), store.clone(), store.clone(), chains.clone())
            .with_snapshot_store(store.clone());
        let rollouts = RolloutService::new(
            store.clone(),
            store.clone(),
            store.clone(),
            store.clone(),
            chains.clone(),
        );
        let snapshots = SnapshotService::new(nodes.clone(), store.clone(), store.clone());
        let allocations = AllocationService::new(
            store.clone(),
            store.clone(),
            Arc::new(SkuCatalog::defaults()),
        );
        Self {
            allocations,
            ingress_domain: None,
            // Containers answer on their hosts' addresses, never through a
            // proxy of this process's environment.
            ingress_client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
            store,
            tokens,
            oidc,
            chains,
            plans: Arc::new(PlanCatalog::defaults()),
            login_limiter: Arc::new(KeyedLimiter::per_minute(config.login_attempts_per_minute)),
            metrics: Arc::new(Metrics::default()),
            nodes,
            rollouts,
            snapshots,
            ledger: None,
            billing: None,
            master: None,
            notify: NotifierConfig::default(),
            terminals: None,
            storage: None,
            api_keys: Arc::new(CredentialCache::new()),
        }
    }

    /// The API keys' cache, for `hood_bus::follow_credential_events`.
    pub fn credential_cache(&self) -> Arc<dyn CredentialEvictor> {
        self.api_keys.clone()
    }

    /// Forgets the cached keys of `org` on this replica at once, after a
    /// change this replica made (other replicas hear it over the bus).
    pub(crate) fn credentials_changed(&self, org: hood_domain::OrgId) {
        self.api_keys.evict_org(org);
    }
}
