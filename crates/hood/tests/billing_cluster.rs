//! Billing in cluster mode on PostgreSQL: an api replica and two `billing`
//! replicas (leader-elected, fenced). The leader is killed with SIGKILL in
//! the middle of closing many organizations' periods; the standby takes
//! over and finishes. Exactly one invoice per period, numbers without gaps,
//! everything posted, and the ledger verifies on PostgreSQL.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::health::wait_for;
use common::{hood_cli, now, read_admin_key, HoodProcess, KillUnder};
use hood_domain::billing::posting::invoice_number;
use hood_identity::master_key::MasterKey;
use hood_store::billing::BillingStore as _;
use hood_store::lease::LeaderLeaseStore as _;
use hood_testkit::PgDatabase;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const ORGS: usize = 80;
const PERIODS: usize = 2;

#[tokio::test(flavor = "multi_thread")]
async fn two_billing_replicas_close_every_period_once_across_a_leader_crash() {
    let Some(db) = PgDatabase::create("billing_two_replicas").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let _guard = KillUnder(dir.path().to_path_buf());
    std::fs::create_dir_all(shared.join("artifacts")).unwrap();
    let master = MasterKey::generate();
    let env = |name: &str| {
        vec![
            ("DATABASE_URL", db.url.clone()),
            ("HOOD_MASTER_KEY", master.to_base64()),
            ("HOOD_HOME", dir.path().join(name).display().to_string()),
            (
                "HOOD_ARTIFACT_STORE",
                format!("file://{}", shared.join("artifacts").display()),
            ),
            ("HOOD_BILLING_INTERVAL_MS", "100".to_owned()),
            ("HOOD_BILLING_LEASE_TTL_MS", "1000".to_owned()),
        ]
    };
    let (ok, out, err) = hood_cli(&["migrate"], &env("migrate"), None);
    assert!(ok, "migrate: {out} {err}");
    let serve = |roles: &str, name: &str| {
        HoodProcess::start(
            &["serve", "--role", roles, "--listen", "127.0.0.1:0"],
            &env(name),
            &["serving"],
        )
    };
    let api = serve("api,auth", "api");
    let base = api.url("serving");
    let admin = read_admin_key(&dir.path().join("api"));
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/api/v1/billing/rate-cards"))
        .bearer_auth(&admin)
        .json(&json!({"currency": "USD", "rules": [
            {"meter": "node.seconds", "price": {"tiers": [{"rate": {"amount_minor": 5, "per": 3600}}]}}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let today = hood_api::clock::rfc3339(now());
    let (year, month) = (
        today[..4].parse::<i32>().unwrap(),
        today[5..7].parse::<i32>().unwrap(),
    );
    let index = year * 12 + (month - 1) - PERIODS as i32;
    let start = format!("{}-{:02}-01", index / 12, index % 12 + 1);
    for i in 0..ORGS {
        let org: Value = http
            .post(format!("{base}/api/v1/orgs"))
            .bearer_auth(&admin)
            .json(&json!({"slug": format!("c-tenant-{i}"), "name": format!("Tenant {i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = http
            .post(format!("{base}/api/v1/subscriptions"))
            .bearer_auth(&admin)
            .json(&json!({
                "org_id": org["id"],
                "terms": {"kind": "fixed", "fee_minor": 2000 + i},
                "currency": "USD",
                "start_date": start,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    // Two billing replicas; the first to lead is killed once it is under way.
    let store = hood_store::connect(&db.url).await.unwrap();
    let count = async || {
        store
            .list_invoices(&hood_store::billing::InvoiceQuery {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap()
            .len()
    };
    let replica_a = serve("billing", "billing-a");
    let replica_b = serve("billing", "billing-b");
    let expected = ORGS * PERIODS;
    wait_for("the close under way", Duration::from_secs(30), async || {
        let n = count().await;
        (n > 0).then(|| json!(n))
    })
    .await;
    // Whoever leads, one of them dies now; the other must finish.
    let leader = store
        .leader_lease("billing")
        .await
        .unwrap()
        .map(|l| l.holder);
    let killed_mid_close = count().await < expected;
    let survivor = match leader.as_deref() {
        Some(holder) if holder.starts_with(&replica_a.pid().to_string()) => {
            replica_a.stop("-KILL");
            replica_b
        }
        _ => {
            replica_b.stop("-KILL");
            replica_a
        }
    };
    eprintln!("leader {leader:?} killed");
    assert!(killed_mid_close, "the leader finished before it was killed");

    let invoices = wait_for(
        "every period invoiced and posted",
        Duration::from_secs(60),
        async || {
            let list: Value = http
                .get(format!("{base}/api/v1/invoices?limit=1000"))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let all = list.as_array().unwrap();
            (all.len() >= expected && all.iter().all(|i| i["posted_at"].is_string()))
                .then(|| list.clone())
        },
    )
    .await;
    let invoices = invoices.as_array().unwrap();
    assert_eq!(invoices.len(), expected, "one invoice per period");
    let periods: BTreeSet<(String, String)> = invoices
        .iter()
        .map(|i| {
            (
                i["subscription_id"].as_str().unwrap().to_owned(),
                i["period_start"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(periods.len(), expected);
    let numbers: BTreeSet<String> = invoices
        .iter()
        .map(|i| i["number"].as_str().unwrap().to_owned())
        .collect();
    let gapless: BTreeSet<String> = (1..=expected as u64)
        .map(|n| invoice_number(year, n))
        .collect();
    assert_eq!(numbers, gapless);
    survivor.stop("-TERM");
    api.stop("-TERM");
    let (ok, out, err) = hood_cli(
        &["ledger", "verify", "--database-url", &db.url],
        &[("HOOD_MASTER_KEY", master.to_base64())],
        None,
    );
    assert!(ok && out.starts_with("ok:"), "{out} {err}");
}
