#![allow(clippy::expect_used, clippy::unwrap_used)]

//! Billing store conformance on SQLite and PostgreSQL: meter events
//! de-duplicated by id within an organization and read over a period; rate
//! cards; one live subscription per organization; invoices issued once per
//! period with gapless numbers; payments once per provider reference.

#[macro_use]
mod support;

use hood_domain::billing::{
    ContractTerms, Invoice, MeterEvent, Payment, PaymentState, Period, Price, PriceRule, Rate,
    RateCard, Subscription, DEFAULT_GRACE_MS,
};
use hood_domain::identity::Organization;
use hood_domain::lifecycle::{InvoiceState, SubscriptionState};
use hood_domain::{InvoiceId, OrgId, PaymentId, SubscriptionId, Timestamp};
use hood_store::billing::{InvoiceQuery, IssueOutcome, PaymentOutcome};
use hood_store::meter::IngestOutcome;
use hood_store::{Store, StoreError};
use support::Harness;
use time::macros::date;
use uuid::Uuid;

const T0: Timestamp = Timestamp(1_700_000_000_000);

async fn org(store: &dyn Store, slug: &str) -> Organization {
    let o = Organization {
        id: OrgId::from_uuid(Uuid::now_v7()),
        slug: slug.into(),
        name: slug.into(),
        created_at: T0,
    };
    store.create_org(&o).await.unwrap();
    o
}

fn event(id: &str, meter: &str, quantity: u64, at_secs: i64) -> MeterEvent {
    MeterEvent {
        id: id.into(),
        meter: meter.into(),
        dimensions: [("gpu".to_owned(), "a100".to_owned())]
            .into_iter()
            .collect(),
        quantity,
        at: T0.plus_secs(at_secs),
    }
}

async fn meter_events_are_deduplicated_per_organization(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;

    let batch = [
        event("e1", "gpu_minutes", 5, 10),
        event("e2", "gpu_minutes", 7, 20),
        // Repeated within the batch: the first copy counts.
        event("e1", "gpu_minutes", 999, 10),
    ];
    let out = store
        .insert_meter_events(acme.id, &batch, T0)
        .await
        .unwrap();
    assert_eq!(
        out,
        IngestOutcome {
            accepted: 2,
            duplicates: 1
        }
    );
    // A retry of the whole batch stores nothing new.
    let out = store
        .insert_meter_events(acme.id, &batch, T0)
        .await
        .unwrap();
    assert_eq!(
        out,
        IngestOutcome {
            accepted: 0,
            duplicates: 3
        }
    );
    // The same id in another organization is another event.
    let out = store
        .insert_meter_events(globex.id, &[event("e1", "gpu_minutes", 1, 10)], T0)
        .await
        .unwrap();
    assert_eq!(out.accepted, 1);

    let all = store
        .meter_events(acme.id, "gpu_minutes", T0, T0.plus_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        all,
        vec![batch[0].clone(), batch[1].clone()],
        "first arrival kept"
    );
    assert_eq!(all[0].quantity, 5);
}

async fn meter_events_are_read_by_meter_and_half_open_period(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let events = [
        event("b", "gpu_minutes", 1, 100),
        event("a", "gpu_minutes", 2, 100),
        event("c", "gpu_minutes", 3, 200),
        event("d", "storage_bytes", 4, 150),
        event("e", "gpu_minutes", 5, 99),
    ];
    store
        .insert_meter_events(acme.id, &events, T0)
        .await
        .unwrap();
    let read = store
        .meter_events(acme.id, "gpu_minutes", T0.plus_secs(100), T0.plus_secs(200))
        .await
        .unwrap();
    let ids: Vec<&str> = read.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["a", "b"],
        "from inclusive, to exclusive, ties by id"
    );
    assert_eq!(read[0].dimensions["gpu"], "a100");
    let other = org(store, "other").await;
    assert!(store
        .meter_events(other.id, "gpu_minutes", T0, T0.plus_secs(1000))
        .await
        .unwrap()
        .is_empty());
}

fn card(version: u32) -> RateCard {
    RateCard {
        version,
        currency: "USD".parse().unwrap(),
        rules: vec![PriceRule {
            meter: "rpc.compute_units".into(),
            matches: Default::default(),
            price: Price::flat(Rate {
                amount_minor: 2,
                per: 10_000,
            }),
        }],
        meters: Default::default(),
    }
}

fn subscription(org: OrgId) -> Subscription {
    Subscription {
        id: SubscriptionId::from_uuid(Uuid::now_v7()),
        org_id: org,
        terms: ContractTerms::Metered,
        currency: "USD".parse().unwrap(),
        start_date: date!(2026 - 01 - 15),
        rate_card_version: 1,
        grace_ms: DEFAULT_GRACE_MS,
        budget_minor: Some(10_000),
        budget_hard_cap: true,
        state: SubscriptionState::Active,
        state_since: T0,
        grace_until: None,
        reason: None,
        billed_through: None,
        created_at: T0,
        version: 1,
    }
}

fn draft(s: &Subscription, period: Period, total: u64) -> Invoice {
    Invoice {
        id: InvoiceId::from_uuid(Uuid::now_v7()),
        subscription_id: s.id,
        org_id: s.org_id,
        period,
        state: InvoiceState::Draft,
        number: None,
        currency: s.currency.clone(),
        total_minor: total,
        rate_card_version: s.rate_card_version,
        lines: vec![],
        readings: vec![],
        created_at: T0,
        issued_at: Some(T0),
        paid_at: None,
        voided_at: None,
        void_reason: None,
        posted_at: None,
    }
}

async fn rate_cards_are_versioned_and_subscriptions_one_live_per_org(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    store.insert_rate_card(&card(1), T0).await.unwrap();
    assert!(matches!(
        store.insert_rate_card(&card(1), T0).await,
        Err(StoreError::Conflict(what)) if what == "rate card version"
    ));
    store.insert_rate_card(&card(2), T0).await.unwrap();
    let cards = store.list_rate_cards().await.unwrap();
    assert_eq!(
        cards.iter().map(|c| c.card.version).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(store.get_rate_card(1).await.unwrap().unwrap().card, card(1));

    let mut s = subscription(acme.id);
    store.insert_subscription(&s).await.unwrap();
    assert_eq!(
        store.get_subscription(None, s.id).await.unwrap(),
        Some(s.clone())
    );
    assert!(matches!(
        store.insert_subscription(&subscription(acme.id)).await,
        Err(StoreError::Conflict(what)) if what == "live subscription"
    ));
    let mut unknown_card = subscription(org(store, "globex").await.id);
    unknown_card.rate_card_version = 99;
    assert!(matches!(
        store.insert_subscription(&unknown_card).await,
        Err(StoreError::NotFound(_))
    ));

    // Optimistic locking: a writer that read an old version loses.
    let stale = s.clone();
    s.state = SubscriptionState::Cancelled;
    s.version += 1;
    assert!(store.update_subscription(&s).await.unwrap());
    let mut stale = stale;
    stale.version += 1;
    stale.state = SubscriptionState::Grace;
    assert!(!store.update_subscription(&stale).await.unwrap());
    // Once cancelled, the organization may subscribe again.
    store
        .insert_subscription(&subscription(acme.id))
        .await
        .unwrap();
    assert_eq!(
        store.list_subscriptions(Some(acme.id)).await.unwrap().len(),
        2
    );
}

async fn invoices_are_issued_once_per_period_with_gapless_numbers(db: &Harness) {
    let store = db.migrated().await;
    store.insert_rate_card(&card(1), T0).await.unwrap();
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    let a = subscription(acme.id);
    let g = subscription(globex.id);
    store.insert_subscription(&a).await.unwrap();
    store.insert_subscription(&g).await.unwrap();
    let jan = Period {
        start: date!(2026 - 01 - 15),
        end: date!(2026 - 02 - 15),
    };
    let feb = Period {
        start: date!(2026 - 02 - 15),
        end: date!(2026 - 03 - 15),
    };
    assert_eq!(
        store
            .subscriptions_due(date!(2026 - 02 - 15))
            .await
            .unwrap()
            .len(),
        2
    );

    let IssueOutcome::Issued(first) = store
        .issue_invoice(&draft(&a, jan, 500), None, T0)
        .await
        .unwrap()
    else {
        panic!("first issue");
    };
    assert_eq!(first.state, InvoiceState::Issued);
    // T0 is in 2023.
    assert_eq!(first.number.as_deref(), Some("2023-000001"));
    // A second close of the same period finds the first invoice.
    match store
        .issue_invoice(&draft(&a, jan, 999), None, T0)
        .await
        .unwrap()
    {
        IssueOutcome::Exists(existing) => assert_eq!(existing, first),
        other => panic!("expected the existing invoice, got {other:?}"),
    }
    let IssueOutcome::Issued(second) = store
        .issue_invoice(&draft(&g, jan, 700), None, T0)
        .await
        .unwrap()
    else {
        panic!("globex");
    };
    assert_eq!(
        second.number.as_deref(),
        Some("2023-000002"),
        "no gap after the duplicate"
    );
    let IssueOutcome::Issued(_) = store
        .issue_invoice(&draft(&a, feb, 300), None, T0)
        .await
        .unwrap()
    else {
        panic!("feb");
    };
    assert!(store
        .get_rate_card(1)
        .await
        .unwrap()
        .unwrap()
        .used_at
        .is_some());
    assert_eq!(
        store
            .get_subscription(None, a.id)
            .await
            .unwrap()
            .unwrap()
            .billed_through,
        Some(feb.end)
    );
    assert!(store
        .subscriptions_due(date!(2026 - 02 - 15))
        .await
        .unwrap()
        .is_empty());

    let acme_invoices = store
        .list_invoices(&InvoiceQuery {
            org_id: Some(acme.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        acme_invoices.iter().map(|i| i.period).collect::<Vec<_>>(),
        vec![feb, jan],
        "newest period first, own organization only"
    );
    assert_eq!(
        store.get_invoice(Some(globex.id), first.id).await.unwrap(),
        None
    );

    // Posting: all three wait for the ledger until marked.
    assert_eq!(store.invoices_to_post(10).await.unwrap().len(), 3);
    store.mark_invoice_posted(first.id, T0).await.unwrap();
    assert_eq!(store.invoices_to_post(10).await.unwrap().len(), 2);
}

async fn payments_settle_their_invoice_once_per_reference(db: &Harness) {
    let store = db.migrated().await;
    store.insert_rate_card(&card(1), T0).await.unwrap();
    let acme = org(store, "acme").await;
    let s = subscription(acme.id);
    store.insert_subscription(&s).await.unwrap();
    let jan = Period {
        start: date!(2026 - 01 - 15),
        end: date!(2026 - 02 - 15),
    };
    let IssueOutcome::Issued(inv) = store
        .issue_invoice(&draft(&s, jan, 500), None, T0)
        .await
        .unwrap()
    else {
        panic!("issue");
    };
    let payment = Payment {
        id: PaymentId::from_uuid(Uuid::now_v7()),
        invoice_id: Some(inv.id),
        org_id: acme.id,
        provider: "stripe".into(),
        reference: "cs_test_1".into(),
        amount_minor: 500,
        currency: "USD".parse().unwrap(),
        state: PaymentState::Succeeded,
        detail: None,
        created_at: T0.plus_secs(60),
        updated_at: T0.plus_secs(60),
        posted_at: None,
    };
    assert_eq!(
        store.record_payment(&payment).await.unwrap(),
        PaymentOutcome::Recorded { settled: true }
    );
    let mut again = payment.clone();
    again.id = PaymentId::from_uuid(Uuid::now_v7());
    assert_eq!(
        store.record_payment(&again).await.unwrap(),
        PaymentOutcome::Duplicate
    );
    let paid = store.get_invoice(None, inv.id).await.unwrap().unwrap();
    assert_eq!(paid.state, InvoiceState::Paid);
    assert_eq!(paid.paid_at, Some(T0.plus_secs(60)));
    assert_eq!(
        store
            .list_payments(Some(acme.id), None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .find_payment("stripe", "cs_test_1")
            .await
            .unwrap()
            .map(|p| p.id),
        Some(payment.id)
    );

    assert_eq!(store.payments_to_post(10).await.unwrap().len(), 1);
    store.mark_payment_posted(payment.id, T0).await.unwrap();
    assert!(store.payments_to_post(10).await.unwrap().is_empty());
    // A refund un-posts it so its reversal reaches the ledger.
    assert!(store.refund_payment(payment.id, T0).await.unwrap());
    assert!(!store.refund_payment(payment.id, T0).await.unwrap(), "once");
    assert_eq!(store.payments_to_post(10).await.unwrap().len(), 1);

    assert!(store
        .record_stripe_event("evt_1", "invoice.paid", 1, T0)
        .await
        .unwrap());
    assert!(!store
        .record_stripe_event("evt_1", "invoice.paid", 1, T0)
        .await
        .unwrap());
}

async fn usage_event_totals_count_the_raw_events_of_a_window(db: &Harness) {
    use hood_domain::rpc::{UsageEvent, UsageStatus};
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let key = hood_domain::RpcKeyId::from_uuid(Uuid::now_v7());
    let event = |id: &str, cu: u32, at: i64| UsageEvent {
        request_id: id.into(),
        org_id: acme.id,
        key_id: key,
        chain: "ethereum-anvil".into(),
        method: "eth_call".into(),
        compute_units: cu,
        status: UsageStatus::Ok,
        http_status: 200,
        latency_us: 5,
        at: T0.plus_secs(at),
    };
    store
        .record_usage(&[event("a", 10, 0), event("b", 20, 59), event("c", 40, 60)])
        .await
        .unwrap();
    assert_eq!(
        store
            .usage_event_totals(acme.id, T0, T0.plus_secs(60))
            .await
            .unwrap(),
        (2, 30)
    );
    assert_eq!(
        store.usage_event_totals(acme.id, T0, T0).await.unwrap(),
        (0, 0),
        "an empty window sums to zero, not NULL"
    );
}

conformance!(
    usage_event_totals_count_the_raw_events_of_a_window,
    meter_events_are_deduplicated_per_organization,
    meter_events_are_read_by_meter_and_half_open_period,
    rate_cards_are_versioned_and_subscriptions_one_live_per_org,
    invoices_are_issued_once_per_period_with_gapless_numbers,
    payments_settle_their_invoice_once_per_reference,
);
