//! Wiring of billing in a server process: the use cases the API serves
//! (wherever the ledger runs), the payment provider and webhook secret
//! from the environment, and the leader-gated loop of the `billing` role.

use anyhow::{Context, Result};
use hood_app::billing::{BillingRunner, RunnerTiming, StripeWebhookConfig};
use hood_app::{BillingService, BillingStores, LedgerService};
use hood_payments::StripeProvider;
use hood_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Stripe's API origin.
const STRIPE_API_BASE: &str = "https://api.stripe.com";

/// Billing settings (shared by `up` and `serve`).
#[derive(Clone, clap::Args)]
pub struct BillingArgs {
    /// Period between billing passes (close ended periods, post to the
    /// ledger), ms.
    #[arg(long, env = "HOOD_BILLING_INTERVAL_MS", default_value_t = 60_000)]
    pub billing_interval_ms: u64,
    /// How often prepaid credits are accrued (each organization's windows
    /// that ended are charged), ms.
    #[arg(long, env = "HOOD_CREDITS_TICK_MS", default_value_t = 5_000)]
    pub credits_tick_ms: u64,
    /// How long the billing leader's lease lasts without renewal, ms: how
    /// soon a standby (or a restarted process) takes over after a crash.
    #[arg(long, env = "HOOD_BILLING_LEASE_TTL_MS", default_value_t = 15_000)]
    pub billing_lease_ttl_ms: u64,
    /// Days an issued invoice may stay unpaid before its subscription
    /// enters grace.
    #[arg(long, env = "HOOD_BILLING_PAYMENT_TERMS_DAYS", default_value_t = 14)]
    pub billing_payment_terms_days: u32,
    /// How long an organization cut off for exhausted prepaid credits keeps
    /// its suspended nodes before they are terminated (keys and backups
    /// deleted), ms. Default 72 h.
    #[arg(long, env = "HOOD_CREDITS_GRACE_MS", default_value_t = hood_domain::billing::DEFAULT_GRACE_MS)]
    pub credits_grace_ms: i64,
    /// Stripe secret key (`sk_…`): enables checkouts.
    #[arg(long, env = "HOOD_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    /// Stripe webhook signing secret (`whsec_…`): enables
    /// `POST /api/v1/payments/stripe/webhook`.
    #[arg(long, env = "HOOD_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,
    /// Stripe's API origin (tests point it at a local fake).
    #[arg(long, env = "HOOD_STRIPE_API_BASE", default_value = STRIPE_API_BASE)]
    pub stripe_api_base: String,
}

impl std::fmt::Debug for BillingArgs {
    // Hand-written: the secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingArgs")
            .field("billing_interval_ms", &self.billing_interval_ms)
            .field(
                "billing_payment_terms_days",
                &self.billing_payment_terms_days,
            )
            .field("credits_grace_ms", &self.credits_grace_ms)
            .field(
                "stripe_secret_key",
                &self.stripe_secret_key.as_ref().map(|_| "<set>"),
            )
            .field(
                "stripe_webhook_secret",
                &self.stripe_webhook_secret.as_ref().map(|_| "<set>"),
            )
            .field("stripe_api_base", &self.stripe_api_base)
            .finish()
    }
}

/// Billing's use cases over `store`, posting through `ledger`.
pub fn service(
    args: &BillingArgs,
    store: Arc<dyn Store>,
    ledger: LedgerService,
) -> Result<BillingService> {
    let clock = Arc::clone(ledger.log().clock());
    let mut billing = BillingService::new(
        BillingStores {
            billing: store.clone(),
            meters: store.clone(),
            usage: store.clone(),
            uptime: store.clone(),
            nodes: store.clone(),
            credits: store.clone(),
        },
        ledger,
        clock,
    )
    .with_payment_terms_ms(i64::from(args.billing_payment_terms_days) * 86_400_000)
    .with_credits_grace_ms(args.credits_grace_ms)
    .with_audit(store);
    if let Some(key) = args.stripe_secret_key.as_deref().filter(|k| !k.is_empty()) {
        let provider = StripeProvider::new(args.stripe_api_base.clone(), key)
            .context("configuring Stripe (HOOD_STRIPE_SECRET_KEY, HOOD_STRIPE_API_BASE)")?;
        billing = billing.with_provider(Arc::new(provider));
    }
    if let Some(secret) = args
        .stripe_webhook_secret
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        billing = billing.with_stripe_webhook(StripeWebhookConfig::new(secret.to_owned()));
    }
    Ok(billing)
}

/// Starts the billing role's loop.
pub fn start_runner(
    args: &BillingArgs,
    billing: BillingService,
    store: Arc<dyn Store>,
) -> BillingRunner {
    let holder = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
    BillingRunner::spawn(
        billing,
        store,
        &holder,
        RunnerTiming {
            interval: Duration::from_millis(args.billing_interval_ms.max(100)),
            credits_tick: Duration::from_millis(args.credits_tick_ms.max(100)),
            lease_ttl: Duration::from_millis(args.billing_lease_ttl_ms.max(300)),
        },
    )
}
