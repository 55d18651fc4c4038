//! Billing's use cases on a real store and ledger, SQLite and PostgreSQL:
//! a HYBRID contract's period closed from stored usage, node state and
//! ingested events into one invoice whose lines trace to those readings;
//! late usage billed as an adjustment on the next invoice; payments,
//! local and through Stripe's webhook, posted to the ledger exactly once;
//! the ledger verifies at the end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hood_app::billing::payments::INVOICE_METADATA_KEY;
use hood_app::billing::{EnableCredits, StripeWebhookConfig, WebhookOutcome};
use hood_app::{AppError, BillingService, BillingStores, CreateSubscription, LedgerService};
use hood_clock::{Clock, ManualClock};
use hood_domain::billing::builtin::{NODE_SECONDS, RPC_COMPUTE_UNITS};
use hood_domain::billing::credits::CreditState;
use hood_domain::billing::posting::account_id;
use hood_domain::billing::{
    Aggregation, ContractTerms, LineSource, MeterDefinition, MeterEvent, Price, PriceRule, Rate,
    RateCard,
};
use hood_domain::identity::Organization;
use hood_domain::ledger::AccountCode;
use hood_domain::lifecycle::{
    ApplicationHealth, InvoiceState, NodeState, SubscriptionState, SyncStatus,
};
use hood_domain::node::Node;
use hood_domain::rpc::{UsageEvent, UsageStatus};
use hood_domain::{NodeId, OrgId, RpcKeyId, Timestamp};
use hood_identity::master_key::MasterKey;
use hood_ledger::LedgerLog;
use hood_payments::stripe_signature;
use hood_store::node::NodeChange;
use hood_store::Store;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::macros::date;
use uuid::Uuid;

const WEBHOOK_SECRET: &str = "whsec_test_billing";
/// 2026-01-01T00:00:00Z.
const JAN_1: i64 = 1_767_225_600_000;
const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

struct Env {
    store: Arc<dyn Store>,
    billing: BillingService,
    clock: Arc<ManualClock>,
    org: OrgId,
    key: RpcKeyId,
    _guard: Box<dyn std::any::Any>,
}

async fn env_on(store: Arc<dyn Store>, guard: Box<dyn std::any::Any>) -> Env {
    store.migrate().await.unwrap();
    for ledger in hood_testkit::ledger::ledgers() {
        store.ensure_ledger(&ledger, Timestamp(1)).await.unwrap();
    }
    let log = LedgerLog::open(store.clone(), &MasterKey::generate(), "billing.test")
        .await
        .unwrap();
    let org = Organization {
        id: OrgId::from_uuid(Uuid::now_v7()),
        slug: "acme".into(),
        name: "Acme".into(),
        created_at: Timestamp(JAN_1),
    };
    store.create_org(&org).await.unwrap();
    let clock = ManualClock::at(Timestamp(JAN_1));
    let billing = BillingService::new(
        BillingStores {
            billing: store.clone(),
            meters: store.clone(),
            usage: store.clone(),
            uptime: store.clone(),
            nodes: store.clone(),
            credits: store.clone(),
        },
        LedgerService::new(log),
        clock.clone(),
    )
    .with_stripe_webhook(StripeWebhookConfig::new(WEBHOOK_SECRET.into()))
    .with_node_service(hood_app::NodeService::new(
        store.clone(),
        store.clone(),
        store.clone(),
        Arc::new(hood_chains::ChainCatalog::builtin().unwrap()),
    ));
    Env {
        store,
        billing,
        clock,
        org: org.id,
        key: RpcKeyId::from_uuid(Uuid::now_v7()),
        _guard: guard,
    }
}

async fn sqlite() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = hood_store::connect(&hood_testkit::sqlite_url(&dir))
        .await
        .unwrap();
    env_on(store, Box::new(dir)).await
}

async fn postgres(test: &str) -> Option<Env> {
    let db = hood_testkit::PgDatabase::create(test).await?;
    let store = hood_store::connect(&db.url).await.unwrap();
    Some(env_on(store, Box::new(db)).await)
}

fn flat(amount_minor: u64, per: u64) -> Price {
    Price::flat(Rate { amount_minor, per })
}

fn rule(meter: &str, matches: &[(&str, &str)], price: Price) -> PriceRule {
    PriceRule {
        meter: meter.into(),
        matches: matches
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        price,
    }
}

/// Reads at 2 cents per 10,000 CU, traces at 10; anvil node-hours at 5
/// cents; GPU minutes at 1 cent.
fn card() -> RateCard {
    RateCard {
        version: 0,
        currency: "USD".parse().unwrap(),
        rules: vec![
            rule(RPC_COMPUTE_UNITS, &[], flat(2, 10_000)),
            rule(
                RPC_COMPUTE_UNITS,
                &[("method_class", "trace")],
                flat(10, 10_000),
            ),
            rule(NODE_SECONDS, &[], flat(5, 3_600)),
            rule("gpu.minutes", &[], flat(1, 1)),
        ],
        meters: BTreeMap::from([(
            "gpu.minutes".to_owned(),
            MeterDefinition {
                aggregation: Aggregation::Sum,
                group_by: vec!["sku".into()],
            },
        )]),
    }
}

fn usage(env: &Env, id: &str, method: &str, cu: u32, at: i64) -> UsageEvent {
    UsageEvent {
        request_id: id.into(),
        org_id: env.org,
        key_id: env.key,
        chain: "ethereum-anvil".into(),
        method: method.into(),
        compute_units: cu,
        status: UsageStatus::Ok,
        http_status: 200,
        latency_us: 100,
        at: Timestamp(at),
    }
}

/// A node created at `created`, healthy from `healthy_at` on.
async fn node(env: &Env, created: i64, healthy_at: i64) -> NodeId {
    let n = Node {
        id: NodeId::from_uuid(Uuid::now_v7()),
        org_id: env.org,
        name: format!("n-{}", Uuid::now_v7().simple()),
        chain: "ethereum-anvil".into(),
        node_type: "dev".into(),
        provider: "local".into(),
        region: "local".into(),
        state: NodeState::Provisioning,
        sync_status: SyncStatus::Unknown,
        app_health: ApplicationHealth::Unknown,
        host_id: None,
        rpc_endpoint: None,
        head_height: None,
        binary_version: None,
        failure_reason: None,
        version: 1,
        created_at: Timestamp(created),
        updated_at: Timestamp(created),
    };
    env.store.create_node(&n).await.unwrap();
    let change = NodeChange {
        state: Some(NodeState::Healthy),
        message: "synced".into(),
        ..NodeChange::default()
    };
    env.store
        .update_node(n.id, 1, &change, Timestamp(healthy_at))
        .await
        .unwrap();
    n.id
}

fn hybrid() -> CreateSubscription {
    CreateSubscription {
        terms: ContractTerms::Hybrid {
            fee_minor: 4_900,
            included: BTreeMap::from([(RPC_COMPUTE_UNITS.to_owned(), 1_000_000)]),
        },
        currency: "USD".parse().unwrap(),
        start_date: date!(2026 - 01 - 01),
        rate_card_version: None,
        grace_ms: None,
        budget_minor: None,
        budget_hard_cap: false,
        pending_payment: false,
    }
}

fn signed(payload: &serde_json::Value, at_secs: i64) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(payload).unwrap();
    let header = stripe_signature::sign(&body, WEBHOOK_SECRET, at_secs);
    (body, header)
}

fn checkout_completed(event: &str, session: &str, invoice: &str, amount: u64) -> serde_json::Value {
    json!({
        "id": event,
        "object": "event",
        "type": "checkout.session.completed",
        "created": 1_770_000_000,
        "data": {"object": {
            "id": session,
            "object": "checkout.session",
            "payment_status": "paid",
            "amount_total": amount,
            "currency": "usd",
            "client_reference_id": invoice,
            "metadata": {INVOICE_METADATA_KEY: invoice},
            "payment_intent": "pi_test_1",
        }},
    })
}

async fn a_period_closes_into_one_traceable_invoice_and_is_paid_once(env: Env) {
    let b = &env.billing;
    let card = b.create_rate_card(card()).await.unwrap();
    assert_eq!(card.card.version, 1, "the first version is 1");
    let sub = b.create_subscription(env.org, hybrid()).await.unwrap();
    assert_eq!(sub.state, SubscriptionState::Active);
    assert!(matches!(
        b.create_subscription(env.org, hybrid()).await,
        Err(AppError::Conflict(_))
    ));

    // January: 1,200,000 read CU (200,000 beyond the allowance) and 50,000
    // trace CU; one node healthy for 100 hours; 30 GPU minutes. December's
    // and February's usage is not January's.
    let events = vec![
        usage(&env, "r1", "eth_call", 700_000, JAN_1 + DAY),
        usage(&env, "r2", "eth_blockNumber", 500_000, JAN_1 + 10 * DAY),
        usage(&env, "t1", "trace_block", 50_000, JAN_1 + 20 * DAY),
        usage(&env, "old", "eth_call", 999_999, JAN_1 - 1),
        usage(&env, "next", "eth_call", 999_999, JAN_1 + 31 * DAY),
    ];
    env.store.record_usage(&events).await.unwrap();
    node(&env, JAN_1 + 5 * DAY, JAN_1 + 5 * DAY + HOUR).await;
    let n = env.store.list_nodes(Some(env.org)).await.unwrap();
    // Healthy from day 5 + 1 h; terminating 100 hours later.
    let stop = NodeChange {
        state: Some(NodeState::Terminating),
        message: "bye".into(),
        ..NodeChange::default()
    };
    env.store
        .update_node(
            n[0].id,
            n[0].version,
            &stop,
            Timestamp(JAN_1 + 5 * DAY + 101 * HOUR),
        )
        .await
        .unwrap();
    let gpu = MeterEvent {
        id: "g1".into(),
        meter: "gpu.minutes".into(),
        dimensions: BTreeMap::from([("sku".to_owned(), "h200.1g".to_owned())]),
        quantity: 30,
        at: Timestamp(JAN_1 + 3 * DAY),
    };
    env.store
        .insert_meter_events(env.org, &[gpu], Timestamp(JAN_1))
        .await
        .unwrap();

    // Before the period ends nothing closes.
    env.clock.set(Timestamp(JAN_1 + 30 * DAY));
    assert!(b.close_periods(None, None).await.unwrap().issued.is_empty());

    env.clock.set(Timestamp(JAN_1 + 31 * DAY + 5_000));
    let report = b.close_periods(None, None).await.unwrap();
    assert_eq!(report.issued.len(), 1, "{report:?}");
    assert!(report.failed.is_empty());
    let inv = &report.issued[0];
    assert_eq!(inv.state, InvoiceState::Issued);
    assert_eq!(inv.number.as_deref(), Some("2026-000001"));
    assert_eq!(inv.period.start, date!(2026 - 01 - 01));
    assert_eq!(inv.period.end, date!(2026 - 02 - 01));
    // The readings are the stored usage exactly.
    let cu: u64 = inv
        .readings
        .iter()
        .filter(|r| r.meter == RPC_COMPUTE_UNITS)
        .map(|r| r.quantity)
        .sum();
    assert_eq!(cu, 1_250_000);
    let node_seconds: u64 = inv
        .readings
        .iter()
        .filter(|r| r.meter == NODE_SECONDS)
        .map(|r| r.quantity)
        .sum();
    assert_eq!(node_seconds, 100 * 3_600);
    // Fee 49.00; reads: 1,000,000 included, 200,000 × 2/10,000 = 0.40;
    // traces: the allowance went to the reads first (readings in order:
    // read before trace) → 50,000 × 10/10,000 = 0.50; node 100 h × 0.05 =
    // 5.00; GPU 30 × 0.01 = 0.30.
    let amounts: Vec<u64> = inv.lines.iter().map(|l| l.amount_minor).collect();
    assert_eq!(inv.total_minor, amounts.iter().sum::<u64>(), "lines add up");
    assert_eq!(
        inv.total_minor,
        4_900 + 40 + 50 + 500 + 30,
        "{:#?}",
        inv.lines
    );
    assert!(inv.lines.iter().all(|l| l.rate_card_version == 1));
    assert!(
        b.rate_card(1).await.unwrap().used_at.is_some(),
        "card 1 is now immutable"
    );

    // Closing again issues nothing; the ledger holds the receivable.
    assert!(b.close_periods(None, None).await.unwrap().issued.is_empty());
    let receivable = account_id(AccountCode::Receivable, 1, Some(env.org));
    let acc = env.store.get_account(receivable).await.unwrap().unwrap();
    assert_eq!(
        acc.debits_posted,
        inv.total_minor * 10_000,
        "cents → micro-dollars"
    );

    // A late January event and February's own usage: February's invoice
    // bills the late reads at the margin, as an adjustment line.
    env.store
        .record_usage(&[usage(&env, "late", "eth_call", 100_000, JAN_1 + 15 * DAY)])
        .await
        .unwrap();
    env.clock.set(Timestamp(JAN_1 + 59 * DAY + 1));
    let report = b.close_periods(None, None).await.unwrap();
    assert_eq!(report.issued.len(), 1);
    let feb = &report.issued[0];
    assert_eq!(feb.number.as_deref(), Some("2026-000002"));
    let adjustments: Vec<_> = feb
        .lines
        .iter()
        .filter(|l| matches!(l.source, LineSource::Adjustment { .. }))
        .collect();
    assert_eq!(adjustments.len(), 1, "{:#?}", feb.lines);
    assert_eq!(adjustments[0].amount_minor, 20, "100,000 × 2/10,000");
    let jan = b.invoice(Some(env.org), inv.id).await.unwrap();
    assert_eq!(
        (&jan.lines, jan.total_minor, &jan.readings, &jan.number),
        (&inv.lines, inv.total_minor, &inv.readings, &inv.number),
        "the issued January invoice is unchanged"
    );
    assert!(jan.posted_at.is_some(), "posted to the ledger at issue");

    // Paid locally, twice with the same bank reference: one payment.
    let p1 = b
        .record_local_payment(inv.id, "BANK-1", None)
        .await
        .unwrap();
    let p2 = b
        .record_local_payment(inv.id, "BANK-1", None)
        .await
        .unwrap();
    assert_eq!(p1.id, p2.id);
    assert_eq!(
        b.invoice(None, inv.id).await.unwrap().state,
        InvoiceState::Paid
    );

    // February through Stripe's webhook.
    let now = env.clock.now().secs();
    let payload = checkout_completed("evt_1", "cs_test_feb", &feb.id.to_string(), feb.total_minor);
    let (body, header) = signed(&payload, now);
    let out = b.stripe_webhook(&body, &header).await.unwrap();
    assert!(matches!(out, WebhookOutcome::Handled { .. }), "{out:?}");
    assert_eq!(
        b.invoice(None, feb.id).await.unwrap().state,
        InvoiceState::Paid
    );
    // Replayed: nothing changes.
    assert!(matches!(
        b.stripe_webhook(&body, &header).await.unwrap(),
        WebhookOutcome::Duplicate { .. }
    ));
    // Stale (beyond 300 s) and wrongly signed deliveries are refused.
    let other = checkout_completed("evt_2", "cs_test_other", &feb.id.to_string(), 1);
    let (body2, stale) = signed(&other, now - 301);
    assert!(matches!(
        b.stripe_webhook(&body2, &stale).await,
        Err(AppError::Invalid(_))
    ));
    let forged = stripe_signature::sign(&body2, "whsec_wrong", now);
    assert!(matches!(
        b.stripe_webhook(&body2, &forged).await,
        Err(AppError::Invalid(_))
    ));
    assert_eq!(b.invoice_payments(None, feb.id).await.unwrap().len(), 1);

    // Everything is posted; the receivable is settled; the ledger verifies.
    assert_eq!(
        b.post_pending(100).await.unwrap(),
        0,
        "posted as it happened"
    );
    let acc = env.store.get_account(receivable).await.unwrap().unwrap();
    assert_eq!(
        acc.debits_posted,
        (inv.total_minor + feb.total_minor) * 10_000
    );
    assert_eq!(acc.credits_posted, acc.debits_posted, "both invoices paid");
    hood_ledger::verify::verify_store(env.store.as_ref(), None)
        .await
        .unwrap();
}

async fn a_failed_payment_starts_grace_and_a_payment_ends_it(env: Env) {
    let b = &env.billing;
    b.create_rate_card(card()).await.unwrap();
    let mut req = hybrid();
    req.terms = ContractTerms::Fixed { fee_minor: 1_000 };
    let sub = b.create_subscription(env.org, req).await.unwrap();
    env.clock.set(Timestamp(JAN_1 + 31 * DAY));
    let inv = b.close_periods(None, None).await.unwrap().issued.remove(0);
    assert_eq!(inv.total_minor, 1_000);

    let failed = json!({
        "id": "evt_fail",
        "type": "payment_intent.payment_failed",
        "created": 1_770_000_000,
        "data": {"object": {
            "id": "pi_1",
            "amount": 1_000,
            "currency": "usd",
            "metadata": {INVOICE_METADATA_KEY: inv.id.to_string()},
            "last_payment_error": {"message": "Your card was declined."},
        }},
    });
    let (body, header) = signed(&failed, env.clock.now().secs());
    b.stripe_webhook(&body, &header).await.unwrap();
    let s = b.subscription(Some(env.org), sub.id).await.unwrap();
    assert_eq!(s.state, SubscriptionState::Grace);
    assert_eq!(s.grace_until, Some(env.clock.now().plus_millis(72 * HOUR)));
    assert!(s.reason.unwrap().contains("declined"));

    b.record_local_payment(inv.id, "BANK-7", None)
        .await
        .unwrap();
    let s = b.subscription(Some(env.org), sub.id).await.unwrap();
    assert_eq!(s.state, SubscriptionState::Active, "payment ends grace");
}

async fn unpaid_invoices_lead_to_grace_then_expiry_and_node_termination(env: Env) {
    let b = &env.billing;
    b.create_rate_card(card()).await.unwrap();
    let mut req = hybrid();
    req.terms = ContractTerms::Fixed { fee_minor: 1_000 };
    req.grace_ms = Some(24 * HOUR);
    let sub = b.create_subscription(env.org, req).await.unwrap();
    let node_id = node(&env, JAN_1 + DAY, JAN_1 + DAY + HOUR).await;
    env.clock.set(Timestamp(JAN_1 + 31 * DAY));
    let inv = b.close_periods(None, None).await.unwrap().issued.remove(0);

    // Within the payment terms nothing happens.
    env.clock.set(Timestamp(JAN_1 + 44 * DAY));
    assert_eq!(b.dunning().await.unwrap(), Default::default());
    // Unpaid past 14 days: grace.
    env.clock.set(Timestamp(JAN_1 + 45 * DAY + 1));
    let r = b.dunning().await.unwrap();
    assert_eq!(r.entered_grace, 1);
    let s = b.subscription(None, sub.id).await.unwrap();
    assert_eq!(s.state, SubscriptionState::Grace);
    assert!(s.reason.unwrap().contains(inv.number.as_deref().unwrap()));
    // A day of grace later: expired, and the node's termination is asked
    // for (its workflow wipes keys on the host and in the store).
    env.clock.set(Timestamp(JAN_1 + 46 * DAY + 2));
    let r = b.dunning().await.unwrap();
    assert_eq!((r.expired, r.nodes_terminated), (1, 1));
    assert_eq!(
        b.subscription(None, sub.id).await.unwrap().state,
        SubscriptionState::Expired
    );
    let run = env
        .store
        .get_workflow(&hood_domain::node_workflows::terminate_id(node_id))
        .await
        .unwrap();
    assert!(run.is_some(), "terminate-node workflow written");
    // Idempotent: another pass changes nothing.
    assert_eq!(b.dunning().await.unwrap(), Default::default());
    // A paid invoice of an expired subscription does not revive it.
    b.record_local_payment(inv.id, "LATE-1", None)
        .await
        .unwrap();
    assert_eq!(
        b.subscription(None, sub.id).await.unwrap().state,
        SubscriptionState::Expired
    );
}

async fn prepaid_credits_stop_at_zero_and_a_top_up_restores_service(env: Env) {
    let b = &env.billing;
    b.create_rate_card(card()).await.unwrap();
    let credits_account = account_id(AccountCode::PrepaidCredits, 1, Some(env.org));
    let balance = async || {
        let a = env
            .store
            .get_account(credits_account)
            .await
            .unwrap()
            .unwrap();
        assert!(
            a.debits_posted + a.debits_pending <= a.credits_posted,
            "never below zero: {a:?}"
        );
        a
    };
    let stopped = async || {
        env.store
            .spending_stops()
            .await
            .unwrap()
            .iter()
            .any(|(o, _)| *o == env.org)
    };
    // No credits: cut off from the start.
    let acc = b
        .enable_credits(
            env.org,
            EnableCredits {
                window_ms: Some(60_000),
                low_balance_minor: vec![5],
                ..EnableCredits::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(acc.state, CreditState::Stopped);
    assert!(stopped().await);
    assert!(matches!(
        b.enable_credits(env.org, EnableCredits::default()).await,
        Err(AppError::Conflict(_))
    ));

    // One cent (10,000 micro-dollars) lifts the stop at once.
    b.top_up(env.org, "local", "T-1", 1).await.unwrap();
    let view = b.credits(env.org).await.unwrap();
    assert_eq!(view.account.state, CreditState::Active);
    assert_eq!(view.available_units, 10_000 - 1, "one unit held");
    assert!(!stopped().await);
    // The same reference again adds nothing.
    b.top_up(env.org, "local", "T-1", 1).await.unwrap();
    assert_eq!(balance().await.credits_posted, 10_000);

    // A window of 3,000 CU costs 6,000 micro-dollars (2 per CU); what is
    // left (4,000) cannot hold the next window: cut off.
    let t0 = acc.accrued_through.millis();
    env.store
        .record_usage(&[usage(&env, "w1", "eth_call", 3_000, t0 + 1_000)])
        .await
        .unwrap();
    env.clock.set(Timestamp(t0 + 60_000));
    let r = b.accrue_credits().await.unwrap();
    assert_eq!((r.windows, r.stopped), (1, 1));
    let a = balance().await;
    assert_eq!(a.debits_posted, 6_000);
    assert_eq!(a.debits_pending, 0);
    let view = b.credits(env.org).await.unwrap();
    assert_eq!(view.account.state, CreditState::Stopped);
    assert!(view.account.reason.unwrap().contains("exhausted"));
    assert!(stopped().await);
    // Below the 5-cent threshold: warned once.
    assert_eq!(view.account.warned_below, Some(5));
    assert_eq!(
        open_alerts(&env).await,
        vec![
            "Prepaid credits exhausted".to_owned(),
            "Prepaid credits running low".to_owned()
        ]
    );

    // Usage already in flight when it stopped takes what is left, never
    // more: the balance ends at zero, not below.
    env.store
        .record_usage(&[usage(&env, "w2", "eth_call", 5_000, t0 + 61_000)])
        .await
        .unwrap();
    env.clock.set(Timestamp(t0 + 120_000));
    b.accrue_credits().await.unwrap();
    let a = balance().await;
    assert_eq!(a.debits_posted, a.credits_posted, "exactly zero left");
    // Nothing new to charge: a second pass changes nothing.
    assert_eq!(b.accrue_credits().await.unwrap().windows, 0);

    // A top-up restores service at once.
    b.top_up(env.org, "local", "T-2", 100).await.unwrap();
    let view = b.credits(env.org).await.unwrap();
    assert_eq!(view.account.state, CreditState::Active);
    assert!(!stopped().await);
    assert_eq!(view.account.warned_below, None, "warnings start over");
    assert!(
        open_alerts(&env).await.is_empty(),
        "{:?}",
        open_alerts(&env).await
    );
    hood_ledger::verify::verify_store(env.store.as_ref(), None)
        .await
        .unwrap();
}

/// An organization with a subscription that goes on prepaid credits
/// mid-period pays its usage once: what came before the credits on the
/// invoice, what came after from the credits, and no later period's
/// late-usage adjustment bills the credited part again.
async fn usage_paid_from_credits_is_not_invoiced_again(env: Env) {
    let b = &env.billing;
    b.create_rate_card(card()).await.unwrap();
    b.create_subscription(
        env.org,
        CreateSubscription {
            terms: ContractTerms::Metered,
            ..hybrid()
        },
    )
    .await
    .unwrap();
    // 100,000 read CU before the credits (20 cents), 200,000 after (40).
    env.store
        .record_usage(&[usage(&env, "before", "eth_call", 100_000, JAN_1 + DAY)])
        .await
        .unwrap();
    let opened = JAN_1 + 10 * DAY + 7 * HOUR;
    env.clock.set(Timestamp(opened));
    b.enable_credits(
        env.org,
        EnableCredits {
            window_ms: Some(HOUR),
            ..EnableCredits::default()
        },
    )
    .await
    .unwrap();
    b.top_up(env.org, "local", "T-1", 100).await.unwrap();
    env.store
        .record_usage(&[usage(&env, "after", "eth_call", 200_000, opened + 1_000)])
        .await
        .unwrap();
    env.clock.set(Timestamp(opened + HOUR));
    assert_eq!(b.accrue_credits().await.unwrap().windows, 1);
    let credits = account_id(AccountCode::PrepaidCredits, 1, Some(env.org));
    let spent = env.store.get_account(credits).await.unwrap().unwrap();
    assert_eq!(spent.debits_posted, 400_000, "40 cents from the credits");

    env.clock.set(Timestamp(JAN_1 + 31 * DAY + 5_000));
    let report = b.close_periods(None, None).await.unwrap();
    assert_eq!(report.issued.len(), 1, "{report:?}");
    let january = &report.issued[0];
    let cu: u64 = january
        .readings
        .iter()
        .filter(|r| r.meter == RPC_COMPUTE_UNITS)
        .map(|r| r.quantity)
        .sum();
    assert_eq!(cu, 100_000, "only the usage before the credits");
    assert_eq!(january.total_minor, 20);

    // February closes with nothing to bill and no adjustment for January.
    env.clock.set(Timestamp(JAN_1 + 59 * DAY + 5_000));
    let report = b.close_periods(None, None).await.unwrap();
    assert_eq!(report.issued.len(), 1, "{report:?}");
    let february = &report.issued[0];
    assert!(
        february.lines.iter().all(|l| l.amount_minor == 0),
        "{:?}",
        february.lines
    );
    assert_eq!(february.total_minor, 0);
    hood_ledger::verify::verify_store(env.store.as_ref(), None)
        .await
        .unwrap();
}

/// Corrections keep every number and every unit: a void keeps its number
/// and reverses its transfer; credit notes never exceed an invoice, are
/// idempotent per request key, lower what is due, settle an invoice they
/// cover, and reconcile; two concurrent notes cannot both overdraw it.
async fn voids_and_credit_notes_correct_invoices_without_losing_a_unit(env: Env) {
    let b = &env.billing;
    b.create_rate_card(card()).await.unwrap();
    let mut req = hybrid();
    req.terms = ContractTerms::Fixed { fee_minor: 1_000 };
    b.create_subscription(env.org, req).await.unwrap();
    let mut month = 0;
    let mut next_invoice = async || {
        month += 1;
        env.clock.set(Timestamp(JAN_1 + (31 * month + 1) * DAY));
        let mut issued = b.close_periods(None, None).await.unwrap().issued;
        assert_eq!(issued.len(), 1);
        issued.remove(0)
    };
    fn conflict<T>(r: Result<T, AppError>) -> bool {
        matches!(r, Err(AppError::Conflict(_)))
    }

    // Void: the number stays, the transfer is reversed.
    let a = next_invoice().await;
    assert!(matches!(
        b.void_invoice(a.id, "  ").await,
        Err(AppError::Invalid(_))
    ));
    let voided = b.void_invoice(a.id, "wrong contract").await.unwrap();
    assert_eq!(voided.state, InvoiceState::Void);
    assert_eq!(voided.number, a.number);
    assert_eq!(voided.void_reason.as_deref(), Some("wrong contract"));
    assert!(voided.posted_at.is_some(), "the reversal is posted");
    assert!(conflict(b.void_invoice(a.id, "again").await));
    assert!(conflict(b.credit_invoice(a.id, 1, "x", None).await));

    // Credit notes on an issued invoice lower what is due.
    let bi = next_invoice().await;
    let n1 = b
        .credit_invoice(bi.id, 300, "outage credit", Some("k1"))
        .await
        .unwrap();
    assert_eq!(n1.number, "CN-2026-000001");
    let again = b
        .credit_invoice(bi.id, 300, "outage credit", Some("k1"))
        .await
        .unwrap();
    assert_eq!(again, n1, "the same request finds its note");
    assert!(conflict(
        b.credit_invoice(bi.id, 701, "too much", None).await
    ));
    assert_eq!(b.amount_due(&bi).await.unwrap(), 700);
    // Paying without an amount pays what is due.
    let paid = b.record_local_payment(bi.id, "BANK-B", None).await.unwrap();
    assert_eq!(paid.amount_minor, 700);
    let r = b.reconcile(None, None).await.unwrap();
    assert!(r.items.is_empty(), "{:#?}", r.items);
    assert_eq!(r.credited_minor, 300);
    // Credited after payment: money to give back, and reconciliation says so.
    b.credit_invoice(bi.id, 700, "refund the rest", None)
        .await
        .unwrap();
    let r = b.reconcile(None, None).await.unwrap();
    assert_eq!(r.items.len(), 1, "{:#?}", r.items);
    assert_eq!(
        (r.items[0].kind, r.items[0].amount_minor),
        ("overpaid", 700)
    );

    // Credited in full while unpaid: settled, nothing due.
    let c = next_invoice().await;
    b.credit_invoice(c.id, 1_000, "goodwill", None)
        .await
        .unwrap();
    let c = b.invoice(None, c.id).await.unwrap();
    assert_eq!(c.state, InvoiceState::Paid);
    assert_eq!(b.amount_due(&c).await.unwrap(), 0);

    // Two notes at once on one invoice: never more than it in all.
    let d = next_invoice().await;
    let (x, y) = tokio::join!(
        b.credit_invoice(d.id, 600, "first", None),
        b.credit_invoice(d.id, 600, "second", None)
    );
    assert_eq!(
        usize::from(x.is_ok()) + usize::from(y.is_ok()),
        1,
        "{x:?} {y:?}"
    );
    let notes = b.credit_notes(Some(env.org), None).await.unwrap();
    let numbers: Vec<&str> = notes.iter().map(|n| n.number.as_str()).collect();
    assert_eq!(
        numbers,
        vec![
            "CN-2026-000004",
            "CN-2026-000003",
            "CN-2026-000002",
            "CN-2026-000001"
        ],
        "numbered without gaps, newest first"
    );
    assert!(b
        .credit_notes(Some(OrgId::from_uuid(Uuid::now_v7())), None)
        .await
        .unwrap()
        .is_empty());
    hood_ledger::verify::verify_store(env.store.as_ref(), None)
        .await
        .unwrap();
}

/// The payment provider down: the checkout is kept (`pending`) and sent
/// again with backoff under the same idempotency key until it opens; one
/// session, never two. A refusal fails it for good.
async fn a_checkout_waits_out_a_provider_outage(env: Env) {
    use hood_app::billing::checkouts::CHECKOUT_BACKOFF;
    use hood_store::billing::CheckoutState;
    let stripe = hood_payments::fake::FakeStripe::start().await.unwrap();
    let provider = hood_payments::StripeProvider::new(stripe.base_url(), "sk_test_1").unwrap();
    let b = env.billing.clone().with_provider(Arc::new(provider));
    b.create_rate_card(card()).await.unwrap();
    let mut req = hybrid();
    req.terms = ContractTerms::Fixed { fee_minor: 1_000 };
    b.create_subscription(env.org, req).await.unwrap();
    env.clock.set(Timestamp(JAN_1 + 32 * DAY));
    let inv = b.close_periods(None, None).await.unwrap().issued.remove(0);
    let open = async || {
        b.checkout(
            Some(env.org),
            inv.id,
            "https://example.test/ok".into(),
            "https://example.test/no".into(),
        )
        .await
    };

    // Down for the first two attempts.
    stripe.fail_next(2, 503);
    let c = open().await.unwrap();
    assert_eq!(c.state, CheckoutState::Pending);
    assert_eq!(c.attempts, 1);
    assert!(c.last_error.as_deref().unwrap().contains("unavailable"));
    let first_wait = CHECKOUT_BACKOFF.delay(1).as_millis() as i64;
    assert_eq!(
        c.next_attempt_at,
        Some(env.clock.now().plus_millis(first_wait))
    );
    // Not due yet: the loop leaves it alone.
    assert_eq!(b.retry_checkouts(10).await.unwrap(), 0);
    assert_eq!(stripe.requests().len(), 1);
    // Due: still down, waits longer.
    env.clock.set(c.next_attempt_at.unwrap());
    assert_eq!(b.retry_checkouts(10).await.unwrap(), 0);
    let c = b
        .checkout_status(Some(env.org), &c.idempotency_key)
        .await
        .unwrap();
    assert_eq!(c.attempts, 2);
    let second_wait = CHECKOUT_BACKOFF.delay(2).as_millis() as i64;
    assert!(second_wait > first_wait);
    assert_eq!(
        c.next_attempt_at,
        Some(env.clock.now().plus_millis(second_wait))
    );
    // Back: opened by the loop.
    env.clock.set(c.next_attempt_at.unwrap());
    assert_eq!(b.retry_checkouts(10).await.unwrap(), 1);
    let c = b.checkout_status(None, &c.idempotency_key).await.unwrap();
    assert_eq!(c.state, CheckoutState::Open);
    let session = c.session_id.clone().unwrap();
    assert!(stripe.session(&session).is_some());
    assert!(c.url.unwrap().starts_with("http"));
    // Asked again: the same session, no new provider call.
    let calls = stripe.requests().len();
    let again = open().await.unwrap();
    assert_eq!(again.session_id.as_deref(), Some(session.as_str()));
    assert_eq!(stripe.requests().len(), calls);
    // Another tenant does not see it.
    assert!(matches!(
        b.checkout_status(Some(OrgId::from_uuid(Uuid::now_v7())), &c.idempotency_key)
            .await,
        Err(AppError::NotFound(_))
    ));

    // A refusal (4xx) is final: failed, and said so.
    b.credit_invoice(inv.id, 1, "changes the amount due", None)
        .await
        .unwrap();
    stripe.fail_next(1, 400);
    assert!(matches!(open().await, Err(AppError::Conflict(_))));
    assert!(
        matches!(open().await, Err(AppError::Conflict(_))),
        "stays failed"
    );
}

/// A budget warns at 50, 80 and 100 % of the period's cost so far (one
/// open alert, replaced as it climbs); under a hard cap, 100 % stops the
/// organization's metered spending until the budget is raised.
async fn a_budget_alerts_as_it_fills_and_its_hard_cap_stops_spending(env: Env) {
    let b = &env.billing;
    b.create_rate_card(card()).await.unwrap();
    let mut req = hybrid();
    req.terms = ContractTerms::Metered;
    req.budget_minor = Some(100);
    req.budget_hard_cap = true;
    let sub = b.create_subscription(env.org, req).await.unwrap();
    assert!(sub.budget_hard_cap);
    let stops = async || env.store.spending_stops().await.unwrap();
    env.clock.set(Timestamp(JAN_1 + 2 * DAY));
    // Reads cost 2 cents per 10,000 CU.
    let spend = async |id: &str, cu: u32, at: i64| {
        env.store
            .record_usage(&[usage(&env, id, "eth_call", cu, at)])
            .await
            .unwrap();
    };
    spend("b1", 240_000, JAN_1 + HOUR).await; // 48 cents
    let r = b.check_budgets().await.unwrap();
    assert_eq!((r.measured, r.alerts), (1, 0));
    let status = b.budget(Some(env.org), sub.id).await.unwrap().unwrap();
    assert_eq!((status.spent_minor, status.alerted_percent), (48, None));
    assert!(open_alerts(&env).await.is_empty());

    spend("b2", 10_000, JAN_1 + 2 * HOUR).await; // 50 cents: half
    assert_eq!(b.check_budgets().await.unwrap().alerts, 1);
    assert_eq!(
        open_alerts(&env).await,
        vec!["Budget 50 % reached".to_owned()]
    );
    assert_eq!(b.check_budgets().await.unwrap().alerts, 0, "told once");

    spend("b3", 200_000, JAN_1 + 3 * HOUR).await; // 90 cents
    b.check_budgets().await.unwrap();
    assert_eq!(
        open_alerts(&env).await,
        vec!["Budget 80 % reached".to_owned()]
    );
    assert!(stops().await.is_empty());

    spend("b4", 50_000, JAN_1 + 4 * HOUR).await; // 100 cents: capped
    let r = b.check_budgets().await.unwrap();
    assert_eq!((r.alerts, r.capped), (1, 1));
    assert_eq!(
        open_alerts(&env).await,
        vec!["Budget 100 % reached".to_owned()]
    );
    let stopped = stops().await;
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].0, env.org);
    assert!(stopped[0].1.contains("budget"), "{}", stopped[0].1);

    // Another tenant cannot touch it; a hard cap needs a budget.
    let other = OrgId::from_uuid(Uuid::now_v7());
    assert!(matches!(
        b.set_budget(Some(other), sub.id, Some(1), false).await,
        Err(AppError::NotFound(_))
    ));
    assert!(matches!(
        b.set_budget(None, sub.id, None, true).await,
        Err(AppError::Invalid(_))
    ));
    // Raised tenfold: the cap lifts and the alert resolves.
    b.set_budget(Some(env.org), sub.id, Some(1_000), true)
        .await
        .unwrap();
    let r = b.check_budgets().await.unwrap();
    assert_eq!(r.lifted, 1);
    assert!(stops().await.is_empty());
    assert!(open_alerts(&env).await.is_empty());
    let status = b.budget(None, sub.id).await.unwrap().unwrap();
    assert_eq!((status.spent_minor, status.capped), (100, false));

    // Capped again at a small budget; removing the budget lifts it too.
    b.set_budget(None, sub.id, Some(10), true).await.unwrap();
    b.check_budgets().await.unwrap();
    assert_eq!(stops().await.len(), 1);
    b.set_budget(None, sub.id, None, false).await.unwrap();
    assert_eq!(b.check_budgets().await.unwrap().lifted, 1);
    assert!(stops().await.is_empty());
}

/// A cut-off organization's node is suspended (its process stopped by the
/// `suspend-node` workflow), started again after a top-up, and terminated
/// when a later cut-off outlasts the grace.
async fn a_cut_off_suspends_nodes_a_top_up_resumes_them_and_grace_terminates_them(env: Env) {
    use hood_domain::node_workflows::{resume_id, suspend_id, terminate_id};
    let b = &env.billing;
    b.create_rate_card(card()).await.unwrap();
    let node_id = node(&env, JAN_1, JAN_1).await;
    let current = async || env.store.get_node(None, node_id).await.unwrap().unwrap();
    // The orchestrator's part, done by hand: the workflow moves the node.
    let move_to = async |state: NodeState| {
        let n = current().await;
        let change = NodeChange {
            state: Some(state),
            message: "by the workflow".into(),
            ..NodeChange::default()
        };
        env.store
            .update_node(n.id, n.version, &change, env.clock.now())
            .await
            .unwrap()
    };
    let run = async |id: String| env.store.get_workflow(&id).await.unwrap();

    let acc = b
        .enable_credits(
            env.org,
            EnableCredits {
                window_ms: Some(60_000),
                ..EnableCredits::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(acc.state, CreditState::Stopped);
    // Not at once (the edge refuses RPC first)…
    let healthy = current().await;
    assert_eq!(b.accrue_credits().await.unwrap().nodes_suspended, 0);
    // …but soon after, the pass asks for the serving node's suspension,
    // once per node version.
    env.clock.set(Timestamp(
        JAN_1 + hood_app::billing::credits::SUSPEND_NODES_AFTER_MS,
    ));
    let r = b.accrue_credits().await.unwrap();
    assert_eq!(r.nodes_suspended, 1);
    let suspend = run(suspend_id(node_id, healthy.version)).await.unwrap();
    assert_eq!(suspend.name, "suspend-node");
    b.accrue_credits().await.unwrap();
    let suspended = move_to(NodeState::Suspended).await;
    // Suspended: nothing more to ask.
    assert_eq!(b.accrue_credits().await.unwrap().nodes_suspended, 0);
    assert!(run(resume_id(node_id, suspended.version)).await.is_none());

    // A top-up asks for its start at once.
    b.top_up(env.org, "local", "T-1", 1).await.unwrap();
    let resume = run(resume_id(node_id, suspended.version)).await.unwrap();
    assert_eq!(resume.name, "resume-node");
    move_to(NodeState::Syncing).await;
    move_to(NodeState::Healthy).await;
    assert_eq!(b.accrue_credits().await.unwrap().nodes_resumed, 0);

    // Spent beyond the balance: cut off again, suspended again.
    let t0 = b
        .credits(env.org)
        .await
        .unwrap()
        .account
        .accrued_through
        .millis();
    env.store
        .record_usage(&[usage(&env, "w1", "eth_call", 9_000, t0 + 1_000)])
        .await
        .unwrap();
    env.clock.set(Timestamp(t0 + 60_000));
    let r = b.accrue_credits().await.unwrap();
    assert_eq!((r.stopped, r.nodes_suspended), (1, 0));
    env.clock.set(Timestamp(
        t0 + 60_000 + hood_app::billing::credits::SUSPEND_NODES_AFTER_MS,
    ));
    assert_eq!(b.accrue_credits().await.unwrap().nodes_suspended, 1);
    move_to(NodeState::Suspended).await;
    assert!(run(terminate_id(node_id)).await.is_none());
    // Still cut off when the grace (72 h by default) runs out: terminated,
    // which deletes its keys and backups.
    env.clock.set(Timestamp(
        t0 + 60_000 + hood_domain::billing::DEFAULT_GRACE_MS,
    ));
    let r = b.accrue_credits().await.unwrap();
    assert_eq!(r.nodes_terminated, 1);
    assert!(run(terminate_id(node_id)).await.is_some());
    hood_ledger::verify::verify_store(env.store.as_ref(), None)
        .await
        .unwrap();
}

async fn reconciliation_matches_everything_and_itemizes_each_difference(env: Env) {
    let b = &env.billing;
    b.create_rate_card(card()).await.unwrap();
    let mut req = hybrid();
    req.terms = ContractTerms::Fixed { fee_minor: 1_000 };
    b.create_subscription(env.org, req).await.unwrap();
    env.clock.set(Timestamp(JAN_1 + 59 * DAY + 1));
    let issued = b.close_periods(None, None).await.unwrap().issued;
    assert_eq!(issued.len(), 2);
    b.record_local_payment(issued[0].id, "BANK-1", None)
        .await
        .unwrap();

    // Everything agrees: all money matched, nothing to explain.
    let r = b.reconcile(None, None).await.unwrap();
    assert_eq!((r.invoices, r.payments), (2, 1));
    assert_eq!(r.invoiced_minor, 2_000);
    assert_eq!(r.matched_minor, 2_000, "{:#?}", r.items);
    assert!(r.items.is_empty(), "{:#?}", r.items);

    // Paid twice (another bank reference): an overpayment item.
    b.record_local_payment(issued[0].id, "BANK-2", None)
        .await
        .unwrap();
    // A payment billing stored but never posted.
    let unposted = hood_domain::billing::Payment {
        id: hood_domain::PaymentId::from_uuid(Uuid::now_v7()),
        invoice_id: Some(issued[1].id),
        org_id: env.org,
        provider: "local".into(),
        reference: "BANK-3".into(),
        amount_minor: 1_000,
        currency: "USD".parse().unwrap(),
        state: hood_domain::billing::PaymentState::Succeeded,
        detail: None,
        created_at: env.clock.now(),
        updated_at: env.clock.now(),
        posted_at: None,
    };
    env.store.record_payment(&unposted).await.unwrap();
    // A billing transfer no record explains.
    let orphan = hood_domain::ledger::NewTransfer {
        id: hood_domain::TransferId::from_uuid(Uuid::now_v7()),
        debit_account_id: Some(account_id(AccountCode::Receivable, 1, Some(env.org))),
        credit_account_id: Some(account_id(AccountCode::Revenue, 1, None)),
        amount: 5,
        pending_id: None,
        user_data_128: 0,
        user_data_64: 0,
        user_data_32: 0,
        timeout: 0,
        ledger: 1,
        code: hood_domain::billing::posting::transfer_code::INVOICE,
        flags: Default::default(),
    };
    env.store
        .create_transfers(std::slice::from_ref(&orphan), 1)
        .await
        .unwrap();
    let r = b.reconcile(None, None).await.unwrap();
    let kinds: BTreeMap<&str, u64> = r.items.iter().map(|i| (i.kind, i.amount_minor)).collect();
    assert_eq!(kinds.get("overpaid"), Some(&1_000), "{:#?}", r.items);
    assert_eq!(kinds.get("not_posted"), Some(&1_000), "{:#?}", r.items);
    assert!(kinds.contains_key("orphan_transfer"), "{:#?}", r.items);
    assert!(r.items.iter().all(|i| !i.reason.is_empty()));
    // Once posted (the loop's retry), the unposted payment is matched.
    b.post_pending(100).await.unwrap();
    let r = b.reconcile(None, None).await.unwrap();
    assert!(
        !r.items.iter().any(|i| i.kind == "not_posted"),
        "{:#?}",
        r.items
    );
}

/// A ready platform host with two cores to rent (declared at `JAN_1`), and
/// the allocation use cases selling one core at 3 cents a minute on the
/// test's clock.
async fn allocation_fixture(env: &Env) -> hood_app::AllocationService {
    use hood_app::allocations::AllocationService;
    use hood_domain::allocation::CapacitySource;
    use hood_domain::lifecycle::HostState;
    use hood_domain::placement::{GpuShape, HostCapacity, Shape};
    use hood_domain::sku::{Sku, SkuCatalog};
    let at = |ms: i64| Timestamp(JAN_1 + ms);
    // A ready platform host with two cores to rent.
    let host = hood_store::fleet::Host {
        id: hood_domain::HostId::from_uuid(Uuid::now_v7()),
        org_id: None,
        provider: "local".into(),
        region: "local".into(),
        state: HostState::Requested,
        address: None,
        provider_ref: json!({}),
        hostname: None,
        agent_version: None,
        last_seen_at: None,
        connected_at: None,
        created_at: at(0),
        updated_at: at(0),
    };
    env.store.create_host(&host).await.unwrap();
    for state in [
        HostState::Provisioning,
        HostState::Enrolling,
        HostState::Ready,
    ] {
        env.store
            .transition_host(host.id, state, at(0))
            .await
            .unwrap();
    }
    let capacity = HostCapacity {
        cores: 2,
        memory_mib: 2048,
        disk_mib: 10_240,
        gpus: vec![],
    };
    env.store
        .set_host_capacity(host.id, CapacitySource::Declared, &capacity, at(0), None)
        .await
        .unwrap();
    // One core at 3 cents a minute: 30,000 micro-dollars.
    let skus = SkuCatalog::new(vec![Sku {
        name: "cpu.1c".into(),
        shape: Shape {
            cores: 1,
            memory_mib: 512,
            disk_mib: 1024,
            gpu: GpuShape::None,
        },
        price_per_minute_minor: 3,
        currency: "USD".parse().unwrap(),
    }])
    .unwrap();
    AllocationService::new(env.store.clone(), env.store.clone(), Arc::new(skus))
        .with_clock(env.clock.clone())
}

/// Postpaid allocations: an organization on a subscription and not on
/// prepaid credits finds its allocations' active time on the period's
/// invoice, at each allocation's own price, once per SKU and price; one on
/// prepaid credits (which pay it minute by minute) sees no such line.
async fn postpaid_allocations_are_invoiced_at_their_own_price(env: Env) {
    use hood_app::allocations::CreateAllocation;
    use hood_domain::allocation::AllocationSpec;
    use hood_domain::audit::AuditContext;
    use hood_domain::lifecycle::AllocationState;

    let at = |ms: i64| Timestamp(JAN_1 + ms);
    let allocations = allocation_fixture(&env).await;
    let b = env
        .billing
        .clone()
        .with_allocation_service(allocations.clone());
    b.create_rate_card(card()).await.unwrap();
    b.create_subscription(env.org, hybrid()).await.unwrap();
    let user = AuditContext {
        actor: "user:test".into(),
        request_id: None,
        reason: None,
    };
    let worker = AuditContext::system("orchestrator");
    let step = async |id, path: &[AllocationState], ms| {
        env.store
            .transition_allocation(id, path, at(ms), "allocation.step", None, &worker)
            .await
            .unwrap()
            .unwrap();
    };
    let ask = || CreateAllocation {
        sku: "cpu.1c".into(),
        spec: AllocationSpec::default(),
        idempotency_key: None,
    };
    use AllocationState::{Active, Provisioning, Releasing, Requested};
    // One active for 90 minutes on January 2nd; one active for the last
    // hour of January and still running in February.
    env.clock.set(at(DAY));
    let first = allocations.create(env.org, ask(), &user).await.unwrap();
    let first = first.allocation.id;
    step(first, &[Requested, Provisioning], DAY).await;
    step(first, &[Provisioning, Active], DAY).await;
    step(first, &[Active, Releasing], DAY + 90 * 60_000).await;
    env.clock.set(at(31 * DAY - HOUR));
    let second = allocations.create(env.org, ask(), &user).await.unwrap();
    let second = second.allocation.id;
    step(second, &[Requested, Provisioning], 31 * DAY - HOUR).await;
    step(second, &[Provisioning, Active], 31 * DAY - HOUR).await;

    env.clock.set(at(31 * DAY + HOUR));
    let report = b.close_periods(None, None).await.unwrap();
    assert_eq!(report.issued.len(), 1, "{:?}", report.failed);
    let invoice = &report.issued[0];
    let billed: Vec<(&LineSource, u64)> = invoice
        .lines
        .iter()
        .filter(|l| matches!(l.source, LineSource::Allocations { .. }))
        .map(|l| (&l.source, l.amount_minor))
        .collect();
    // 150 minutes at 3 cents: 4.50.
    assert_eq!(
        billed,
        [(
            &LineSource::Allocations {
                sku: "cpu.1c".into(),
                price_per_minute_minor: 3,
                seconds: 150 * 60,
            },
            450
        )]
    );
    let sum: u64 = invoice.lines.iter().map(|l| l.amount_minor).sum();
    assert_eq!(invoice.total_minor, sum, "the line is in the total");
    assert!(
        b.close_periods(None, None).await.unwrap().issued.is_empty(),
        "billed once"
    );

    // On prepaid credits from February: the allocation still running is
    // paid from them, so February's invoice has no allocations line.
    b.enable_credits(env.org, EnableCredits::default())
        .await
        .unwrap();
    env.clock.set(at(59 * DAY + HOUR));
    let report = b.close_periods(None, None).await.unwrap();
    assert_eq!(report.issued.len(), 1, "{:?}", report.failed);
    assert!(
        !report.issued[0]
            .lines
            .iter()
            .any(|l| matches!(l.source, LineSource::Allocations { .. })),
        "{:?}",
        report.issued[0].lines
    );
}

/// Allocations on prepaid credits: each active minute is charged at the
/// allocation's price, pro rata; the next window's hold covers what the
/// running allocations will cost in it, so when the balance cannot, the
/// organization is cut off and its allocations are released in that same
/// pass; the balance never goes below zero, and a cut-off organization
/// cannot allocate (402).
async fn allocations_accrue_by_the_minute_and_are_released_when_credits_run_out(env: Env) {
    use hood_app::allocations::CreateAllocation;
    use hood_domain::allocation::AllocationSpec;
    use hood_domain::audit::AuditContext;
    use hood_domain::lifecycle::AllocationState;

    let t0 = JAN_1;
    let at = |ms: i64| Timestamp(t0 + ms);
    let allocations = allocation_fixture(&env).await;
    let b = env
        .billing
        .clone()
        .with_allocation_service(allocations.clone());
    let allocations = allocations.with_prepaid_gate(Arc::new(b.clone()));
    let user = AuditContext {
        actor: "user:test".into(),
        request_id: None,
        reason: None,
    };
    let ask = || CreateAllocation {
        sku: "cpu.1c".into(),
        spec: AllocationSpec::default(),
        idempotency_key: None,
    };
    b.create_rate_card(card()).await.unwrap();
    let acc = b
        .enable_credits(
            env.org,
            EnableCredits {
                window_ms: Some(60_000),
                ..EnableCredits::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(acc.state, CreditState::Stopped);
    // No credits: no allocation.
    let refused = allocations.create(env.org, ask(), &user).await;
    assert!(
        matches!(&refused, Err(AppError::PaymentRequired(m)) if m.contains("exhausted")),
        "{refused:?}"
    );

    // Ten cents: 100,000 units.
    b.top_up(env.org, "local", "T-1", 10).await.unwrap();
    let made = allocations
        .create(env.org, ask(), &user)
        .await
        .unwrap()
        .allocation;
    // The worker's moves: active from 20 s into the first window.
    let worker = AuditContext::system("orchestrator");
    for (path, ms) in [
        (
            &[AllocationState::Requested, AllocationState::Provisioning][..],
            10_000,
        ),
        (
            &[AllocationState::Provisioning, AllocationState::Active][..],
            20_000,
        ),
    ] {
        env.store
            .transition_allocation(made.id, path, at(ms), "allocation.step", None, &worker)
            .await
            .unwrap()
            .unwrap();
    }
    let credits_account = account_id(AccountCode::PrepaidCredits, 1, Some(env.org));
    let balance = async || {
        let a = env
            .store
            .get_account(credits_account)
            .await
            .unwrap()
            .unwrap();
        assert!(
            a.debits_posted + a.debits_pending <= a.credits_posted,
            "never below zero: {a:?}"
        );
        (a.debits_posted, a.debits_pending)
    };

    // 40 active seconds in the first window: 20,000; the next window holds
    // a whole running minute.
    env.clock.set(at(60_000));
    let r = b.accrue_credits().await.unwrap();
    assert_eq!((r.windows, r.stopped, r.allocations_released), (1, 0, 0));
    assert_eq!(balance().await, (20_000, 30_000));
    // A whole minute: 30,000; 50,000 spent, 30,000 held, 20,000 free.
    env.clock.set(at(120_000));
    b.accrue_credits().await.unwrap();
    assert_eq!(balance().await, (50_000, 30_000));
    // The third minute is paid from its hold; the fourth cannot be held:
    // cut off, and the allocation released in the same pass.
    env.clock.set(at(180_000));
    let r = b.accrue_credits().await.unwrap();
    assert_eq!((r.stopped, r.allocations_released), (1, 1));
    assert_eq!(balance().await, (80_000, 0));
    let released = allocations.get(env.org, made.id).await.unwrap();
    assert_eq!(released.state, AllocationState::Releasing);
    assert_eq!(released.active_until, Some(at(180_000)), "billing stopped");
    assert!(
        released
            .error
            .as_deref()
            .is_some_and(|e| e.contains("exhausted")),
        "{released:?}"
    );
    let audit = env
        .store
        .list_audit(&hood_store::audit::AuditFilter {
            action: Some("allocation.credits_exhausted".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "system:billing");
    assert!(matches!(
        allocations.create(env.org, ask(), &user).await,
        Err(AppError::PaymentRequired(_))
    ));
    // Nothing more is charged for it. The 20,000 left are enough to hold
    // an idle window again (the organization may spend them on RPC), not
    // for an allocation's first minute.
    env.clock.set(at(240_000));
    b.accrue_credits().await.unwrap();
    assert_eq!(balance().await, (80_000, 1));
    let refused = allocations.create(env.org, ask(), &user).await;
    assert!(
        matches!(&refused, Err(AppError::PaymentRequired(m)) if m.contains("first minute")),
        "{refused:?}"
    );
    b.top_up(env.org, "local", "T-2", 2).await.unwrap();
    allocations.create(env.org, ask(), &user).await.unwrap();
    hood_ledger::verify::verify_store(env.store.as_ref(), None)
        .await
        .unwrap();
}

/// An operator's refund gives spent money back to the credits with its
/// reason: one ledger transfer per reference (a retry moves nothing, the
/// reference reused for another amount is refused), one audit row, and a
/// cut-off organization resumes at once.
async fn an_operator_refund_restores_credits_once_with_its_reason(env: Env) {
    use hood_app::billing::CreditRefund;
    use hood_domain::audit::AuditContext;
    use hood_domain::billing::posting::{credit_refund_transfer_id, transfer_code};
    let b = env.billing.clone().with_audit(env.store.clone());
    b.create_rate_card(card()).await.unwrap();
    let refund = |reference: &str, amount_minor: u64, reason: &str| CreditRefund {
        amount_minor,
        reference: reference.into(),
        reason: reason.into(),
    };
    let ctx = AuditContext {
        actor: "user:operator".into(),
        request_id: Some("req-9".into()),
        reason: None,
    };
    // Not on credits: nothing to refund to.
    assert!(matches!(
        b.refund_credits(env.org, &refund("R-0", 1, "outage"), &ctx)
            .await,
        Err(AppError::NotFound(_))
    ));
    let acc = b
        .enable_credits(
            env.org,
            EnableCredits {
                window_ms: Some(60_000),
                ..EnableCredits::default()
            },
        )
        .await
        .unwrap();
    b.top_up(env.org, "local", "T-1", 1).await.unwrap();
    // Spend 6,000 of 10,000 micro-dollars: the next window cannot be held.
    let t0 = acc.accrued_through.millis();
    env.store
        .record_usage(&[usage(&env, "w1", "eth_call", 3_000, t0 + 1_000)])
        .await
        .unwrap();
    env.clock.set(Timestamp(t0 + 60_000));
    assert_eq!(b.accrue_credits().await.unwrap().stopped, 1);
    assert_eq!(
        b.credits(env.org).await.unwrap().account.state,
        CreditState::Stopped
    );

    for bad in [
        refund("", 1, "x"),
        refund("R-1", 0, "x"),
        refund("R-1", 1, " "),
    ] {
        assert!(
            matches!(
                b.refund_credits(env.org, &bad, &ctx).await,
                Err(AppError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    let credits_account = account_id(AccountCode::PrepaidCredits, 1, Some(env.org));
    let credited = async || {
        env.store
            .get_account(credits_account)
            .await
            .unwrap()
            .unwrap()
            .credits_posted
    };
    let before = credited().await;
    let done = b
        .refund_credits(
            env.org,
            &refund("R-1", 2, "the allocation never started"),
            &ctx,
        )
        .await
        .unwrap();
    assert!(done.created);
    assert_eq!(done.transfer_id, credit_refund_transfer_id(env.org, "R-1"));
    assert_eq!(credited().await, before + 20_000, "two cents, exactly");
    let (transfer, _) = env
        .store
        .get_transfer(done.transfer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(transfer.code, transfer_code::CREDIT_REFUND);
    assert_eq!(
        transfer.debit_account_id,
        account_id(AccountCode::Revenue, 1, None)
    );
    // Covered again: active at once.
    assert_eq!(
        b.credits(env.org).await.unwrap().account.state,
        CreditState::Active
    );
    // The same refund again moves nothing; the reference for another
    // amount is refused.
    let again = b
        .refund_credits(
            env.org,
            &refund("R-1", 2, "the allocation never started"),
            &ctx,
        )
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(credited().await, before + 20_000);
    assert!(matches!(
        b.refund_credits(env.org, &refund("R-1", 3, "more"), &ctx)
            .await,
        Err(AppError::Conflict(_))
    ));
    let rows = env
        .store
        .list_audit(&hood_store::audit::AuditFilter {
            action: Some("credits.refund".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one row per refund: {rows:?}");
    assert_eq!(
        rows[0].reason.as_deref(),
        Some("the allocation never started")
    );
    assert_eq!(rows[0].actor, "user:operator");
    assert_eq!(rows[0].request_id.as_deref(), Some("req-9"));
    assert_eq!(rows[0].org_id, Some(env.org));
    assert_eq!(rows[0].after.as_ref().unwrap()["amount_minor"], 2);
    hood_ledger::verify::verify_store(env.store.as_ref(), None)
        .await
        .unwrap();
}

/// A monthly allocation budget: what the month's allocations cost is
/// measured exactly; at the cap a new allocation answers 402 and the
/// billing pass releases the running ones (`allocation.budget_exhausted`),
/// for an organization not on prepaid credits too; raising it lets them
/// allocate again; a new month starts from zero.
async fn an_allocation_budget_refuses_and_releases_at_its_cap(env: Env) {
    use hood_app::allocations::CreateAllocation;
    use hood_domain::allocation::AllocationSpec;
    use hood_domain::audit::AuditContext;
    use hood_domain::lifecycle::AllocationState;
    let at = |ms: i64| Timestamp(JAN_1 + ms);
    let allocations = allocation_fixture(&env).await;
    let b = env
        .billing
        .clone()
        .with_allocation_service(allocations.clone());
    let user = AuditContext {
        actor: "user:owner".into(),
        request_id: Some("req-budget".into()),
        reason: None,
    };
    let ask = || CreateAllocation {
        sku: "cpu.1c".into(),
        spec: AllocationSpec::default(),
        idempotency_key: None,
    };
    assert!(allocations.budget(env.org).await.unwrap().is_none());
    assert!(matches!(
        allocations.set_budget(env.org, Some(0), None, &user).await,
        Err(AppError::Invalid(_))
    ));
    // Ten cents a month, in the SKUs' currency.
    let set = allocations
        .set_budget(env.org, Some(10), None, &user)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(set.budget.currency.to_string(), "USD");
    assert_eq!((set.spent_minor, set.month_start), (0, Timestamp(JAN_1)));

    let made = allocations
        .create(env.org, ask(), &user)
        .await
        .unwrap()
        .allocation;
    let worker = AuditContext::system("orchestrator");
    for path in [
        &[AllocationState::Requested, AllocationState::Provisioning][..],
        &[AllocationState::Provisioning, AllocationState::Active][..],
    ] {
        env.store
            .transition_allocation(made.id, path, at(0), "allocation.step", None, &worker)
            .await
            .unwrap()
            .unwrap();
    }
    // Three minutes at 3 cents: 9 of 10 spent; one more minute does not fit.
    env.clock.set(at(180_000));
    assert_eq!(
        allocations
            .budget(env.org)
            .await
            .unwrap()
            .unwrap()
            .spent_minor,
        9
    );
    let refused = allocations.create(env.org, ask(), &user).await;
    assert!(
        matches!(&refused, Err(AppError::PaymentRequired(m)) if m.contains("budget")),
        "{refused:?}"
    );
    // Still within: the pass leaves it running.
    assert_eq!(b.accrue_credits().await.unwrap().allocations_released, 0);
    // 20 s later it has cost 10: released in the pass.
    env.clock.set(at(200_000));
    assert_eq!(b.accrue_credits().await.unwrap().allocations_released, 1);
    // Releasing (its host stops it); it costs nothing from here on.
    let ended = allocations.get(env.org, made.id).await.unwrap();
    assert_eq!(ended.state, AllocationState::Releasing);
    assert!(ended.error.unwrap().contains("budget"));
    env.clock.set(at(600_000));
    assert_eq!(
        allocations
            .budget(env.org)
            .await
            .unwrap()
            .unwrap()
            .spent_minor,
        10
    );
    let rows = env
        .store
        .list_audit(&hood_store::audit::AuditFilter {
            org_id: Some(env.org),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.action.as_str(), r.actor.as_str()))
        .collect();
    assert!(
        actions.contains(&("allocation.budget.set", "user:owner")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("allocation.budget_exhausted", "system:billing")),
        "{actions:?}"
    );
    // Raised: allocating works again; removed: no cap.
    allocations
        .set_budget(env.org, Some(100), None, &user)
        .await
        .unwrap();
    allocations.create(env.org, ask(), &user).await.unwrap();
    allocations
        .set_budget(env.org, None, None, &user)
        .await
        .unwrap();
    assert!(allocations.budget(env.org).await.unwrap().is_none());
    assert!(actions.len() >= 2);
    // A new month starts from zero.
    allocations
        .set_budget(env.org, Some(10), None, &user)
        .await
        .unwrap();
    env.clock.set(Timestamp(JAN_1 + 31 * DAY + 1_000));
    let feb = allocations.budget(env.org).await.unwrap().unwrap();
    assert_eq!(feb.month_start, Timestamp(JAN_1 + 31 * DAY));
    assert_eq!(feb.spent_minor, 0, "the new allocation never became active");
}

/// Titles of the organization's unresolved billing incidents, sorted.
async fn open_alerts(env: &Env) -> Vec<String> {
    let mut titles: Vec<String> = env
        .store
        .list_incidents(
            env.org,
            &hood_store::incident::IncidentFilter {
                active: true,
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.category == hood_domain::health::IncidentCategory::Billing)
        .map(|i| i.title)
        .collect();
    titles.sort();
    titles
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            use super::*;
            $(#[tokio::test] async fn $name() { super::$name(sqlite().await).await; })*
        }
        mod postgres_backend {
            use super::*;
            $(#[tokio::test] async fn $name() {
                let Some(env) = postgres(stringify!($name)).await else { return };
                super::$name(env).await;
            })*
        }
    };
}

both!(
    usage_paid_from_credits_is_not_invoiced_again,
    postpaid_allocations_are_invoiced_at_their_own_price,
    an_allocation_budget_refuses_and_releases_at_its_cap,
    an_operator_refund_restores_credits_once_with_its_reason,
    allocations_accrue_by_the_minute_and_are_released_when_credits_run_out,
    a_period_closes_into_one_traceable_invoice_and_is_paid_once,
    a_failed_payment_starts_grace_and_a_payment_ends_it,
    unpaid_invoices_lead_to_grace_then_expiry_and_node_termination,
    prepaid_credits_stop_at_zero_and_a_top_up_restores_service,
    a_cut_off_suspends_nodes_a_top_up_resumes_them_and_grace_terminates_them,
    a_budget_alerts_as_it_fills_and_its_hard_cap_stops_spending,
    voids_and_credit_notes_correct_invoices_without_losing_a_unit,
    a_checkout_waits_out_a_provider_outage,
    reconciliation_matches_everything_and_itemizes_each_difference,
);
