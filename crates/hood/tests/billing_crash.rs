//! Crash safety of period close: `hood up` closes many organizations'
//! periods in its billing loop and is killed with SIGKILL at random
//! moments, 10 times, then restarted. In the end every organization has
//! exactly one invoice per ended period, the numbers run without gaps,
//! every invoice reached the ledger, and the ledger verifies. The seed is
//! printed (`HOOD_BILLING_CRASH_SEED` replays it).

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::health::wait_for;
use common::{hood_cli, hood_up, now, read_admin_key, seed_from_env, temp_home, KillUnder, Rng};
use hood_domain::billing::posting::invoice_number;
use hood_store::billing::BillingStore as _;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const ORGS: usize = 120;
/// Whole periods each organization's contract has ended by now.
const PERIODS: usize = 3;
const RUNS: usize = 10;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_period_close_leaves_one_invoice_per_period() {
    let mut rng = Rng(seed_from_env("HOOD_BILLING_CRASH_SEED"));
    let (dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    // Billing paused (a long interval) while the contracts are made.
    let paused = [("HOOD_BILLING_INTERVAL_MS", "3600000".to_owned())];
    let hood = hood_up(&home, &paused);
    let api = hood.url("api");
    let admin = read_admin_key(&home);
    let http = reqwest::Client::new();
    let card = dir.path().join("card.json");
    std::fs::write(
        &card,
        json!({"currency": "USD", "rules": [
            {"meter": "node.seconds", "price": {"tiers": [{"rate": {"amount_minor": 5, "per": 3600}}]}}
        ]})
        .to_string(),
    )
    .unwrap();
    let env = vec![("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", admin.clone())];
    let (ok, out, err) = hood_cli(
        &[
            "billing",
            "rate-card",
            "create",
            "--file",
            card.to_str().unwrap(),
        ],
        &env,
        None,
    );
    assert!(ok, "{out} {err}");
    // Contracts that started a little over PERIODS months ago (anchored on
    // the 1st, so every period is a calendar month).
    let today = hood_api::clock::rfc3339(now());
    let (year, month) = (
        today[..4].parse::<i32>().unwrap(),
        today[5..7].parse::<i32>().unwrap(),
    );
    let index = year * 12 + (month - 1) - PERIODS as i32;
    let start = format!("{}-{:02}-01", index / 12, index % 12 + 1);
    for i in 0..ORGS {
        let org: Value = http
            .post(format!("{api}/api/v1/orgs"))
            .bearer_auth(&admin)
            .json(&json!({"slug": format!("tenant-{i}"), "name": format!("Tenant {i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = http
            .post(format!("{api}/api/v1/subscriptions"))
            .bearer_auth(&admin)
            .json(&json!({
                "org_id": org["id"],
                "terms": {"kind": "fixed", "fee_minor": 1000 + i},
                "currency": "USD",
                "start_date": start,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    hood.stop("-TERM");

    // The billing loop closes at once on each start; kill it mid-way.
    // A short lease, so each restart takes over within a second of the
    // killed leader's lease running out.
    let running = [
        ("HOOD_BILLING_INTERVAL_MS", "100".to_owned()),
        ("HOOD_BILLING_LEASE_TTL_MS", "600".to_owned()),
    ];
    let db = format!("sqlite://{}", home.join("hood.db").display());
    let store = hood_store::connect(&db).await.unwrap();
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
    let mut mid_close = 0;
    for run in 0..RUNS {
        let before = count().await;
        let hood = hood_up(&home, &running);
        // Kill at a random moment once this run's close is under way.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count().await == before && before < ORGS * PERIODS {
            assert!(
                std::time::Instant::now() < deadline,
                "run {run}: no progress"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A random point inside what is left (up to a third of it), so
        // the kill lands mid-close however fast this machine closes.
        let left = (ORGS * PERIODS).saturating_sub(before) as u64;
        let target = before + 1 + rng.below((left / 3).max(1)) as usize;
        let started = std::time::Instant::now();
        while count().await < target && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        hood.stop("-KILL");
        let issued = count().await;
        eprintln!(
            "run {run}: SIGKILL {:?} into the close (aimed at {target}), {before} → {issued} invoices",
            started.elapsed()
        );
        if issued < ORGS * PERIODS {
            mid_close += 1;
        }
    }
    assert!(
        mid_close >= RUNS / 2,
        "only {mid_close} kills landed inside a close"
    );

    // A last start finishes the work.
    let hood = hood_up(&home, &running);
    let api = hood.url("api");
    let expected = ORGS * PERIODS;
    let invoices = wait_for(
        "every period invoiced and posted",
        Duration::from_secs(60),
        async || {
            let list: Value = http
                .get(format!("{api}/api/v1/invoices?limit=1000"))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let all = list.as_array().unwrap();
            let posted = all.iter().all(|i| i["posted_at"].is_string());
            (all.len() >= expected && posted).then(|| list.clone())
        },
    )
    .await;
    let invoices = invoices.as_array().unwrap();
    assert_eq!(invoices.len(), expected, "exactly one invoice per period");
    let periods: BTreeSet<(String, String)> = invoices
        .iter()
        .map(|i| {
            (
                i["subscription_id"].as_str().unwrap().to_owned(),
                i["period_start"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(periods.len(), expected, "no period twice");
    let numbers: BTreeSet<String> = invoices
        .iter()
        .map(|i| i["number"].as_str().unwrap().to_owned())
        .collect();
    let year: i32 = today[..4].parse().unwrap();
    let gapless: BTreeSet<String> = (1..=expected as u64)
        .map(|n| invoice_number(year, n))
        .collect();
    assert_eq!(numbers, gapless, "numbers run from 1 without gaps");
    hood.stop("-TERM");
    let (ok, out, err) = hood_cli(
        &["ledger", "verify"],
        &[("HOOD_HOME", home.display().to_string())],
        None,
    );
    assert!(ok && out.starts_with("ok:"), "{out} {err}");
}
