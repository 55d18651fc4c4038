//! Billing end to end on `hood up`: an organization on a HYBRID contract
//! (made with the CLI) with a managed anvil node and RPC traffic through
//! the edge. Closing the period (`hood billing close-period --as-of`)
//! issues one invoice whose compute units equal the stored usage events
//! exactly and whose node time matches the node's state log; a webhook
//! signed by Stripe's own Python library marks it paid; a replayed, a
//! stale and a wrongly signed webhook change nothing; the ledger verifies.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::health::{get_json, wait_for};
use common::{hood_cli, hood_up, now, push_anvil, read_admin_key, temp_home, KillUnder};
use hood_domain::billing::builtin::{billable_millis, NODE_SECONDS, RPC_COMPUTE_UNITS};
use hood_domain::lifecycle::NodeState;
use hood_domain::machine::StateMachine;
use hood_domain::{OrgId, Timestamp};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const WEBHOOK_SECRET: &str = "whsec_billing_e2e";
const DAY_MS: i64 = 86_400_000;

/// Stripe's library signs `payload` at `t` with `secret`.
fn stripe_sign(python: &Path, payload: &[u8], t: i64, secret: &str) -> String {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../hood-payments/tests/stripe_compat.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(["sign", &t.to_string()])
        .env("HOOD_STRIPE_WEBHOOK_SECRET", secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(payload).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn checkout_event(event: &str, session: &str, invoice: &str, amount: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": event,
        "object": "event",
        "type": "checkout.session.completed",
        "created": now().secs(),
        "data": {"object": {
            "id": session,
            "object": "checkout.session",
            "payment_status": "paid",
            "amount_total": amount,
            "currency": "usd",
            "client_reference_id": invoice,
            "metadata": {"hood_invoice_id": invoice},
        }},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hybrid_period_is_invoiced_from_stored_usage_and_paid_through_stripe() {
    let Some(anvil) = hood_testkit::anvil_bin("billing_end_to_end") else {
        return;
    };
    let Some(python) = hood_testkit::stripe_python("billing_e2e") else {
        return;
    };
    let (dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(
        &home,
        &[
            ("HOOD_HEARTBEAT_INTERVAL_MS", "1000".into()),
            ("HOOD_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
            ("HOOD_BILLING_INTERVAL_MS", "500".into()),
        ],
    );
    let api = hood.url("api");
    let edge = hood.url("edge");
    let admin = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", admin.clone())];
    let cli = |args: &[&str]| {
        let (ok, out, err) = hood_cli(args, &env, None);
        assert!(ok, "hood {args:?}: {out} {err}");
        out
    };
    push_anvil(&anvil, &env);
    let http = reqwest::Client::new();

    // The price book and the contract, as an operator makes them.
    let card = dir.path().join("card.json");
    std::fs::write(
        &card,
        json!({
            "currency": "USD",
            "rules": [
                {"meter": RPC_COMPUTE_UNITS, "price": {"tiers": [{"rate": {"amount_minor": 1, "per": 10}}]}},
                {"meter": NODE_SECONDS, "price": {"tiers": [{"rate": {"amount_minor": 5, "per": 3600}}]}},
            ],
        })
        .to_string(),
    )
    .unwrap();
    cli(&[
        "billing",
        "rate-card",
        "create",
        "--file",
        card.to_str().unwrap(),
    ]);
    let today = hood_api::clock::rfc3339(now())[..10].to_owned();
    let sub: Value = serde_json::from_str(&cli(&[
        "-o",
        "json",
        "subscription",
        "create",
        "--kind",
        "hybrid",
        "--fee-minor",
        "4900",
        "--include",
        &format!("{RPC_COMPUTE_UNITS}=50"),
        "--start-date",
        &today,
    ]))
    .unwrap();
    let sub = &sub[0];
    assert_eq!(sub["state"], "active", "{sub}");
    let org: OrgId = sub["org_id"].as_str().unwrap().parse().unwrap();

    // A managed node, and traffic through the edge.
    let r = http
        .post(format!("{api}/api/v1/nodes"))
        .bearer_auth(&admin)
        .json(&json!({"chain": "ethereum-anvil", "name": "billed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let node: Value = r.json().await.unwrap();
    let node_url = format!(
        "{api}/api/v1/nodes/{}",
        node["node"]["id"].as_str().unwrap()
    );
    wait_for("healthy", Duration::from_secs(60), async || {
        let n = get_json(&http, &node_url, &admin).await;
        assert_ne!(n["state"], "failed", "{n}");
        (n["state"] == "healthy").then_some(n)
    })
    .await;
    let created: Value = serde_json::from_str(&cli(&[
        "-o",
        "json",
        "rpc-key",
        "create",
        "--name",
        "billing",
        "--plan",
        "free",
        "--chains",
        "ethereum-anvil",
    ]))
    .unwrap();
    let token = created["key"].as_str().unwrap().to_owned();
    let rpc_url = format!("{edge}/ethereum-anvil/v1/{token}");
    let mut answered = 0;
    wait_for("served", Duration::from_secs(20), async || {
        let r = http
            .post(&rpc_url)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}))
            .send()
            .await
            .unwrap();
        (r.status() == 200).then_some(Value::Null)
    })
    .await;
    for i in 0..30 {
        let method = if i % 3 == 0 {
            "eth_chainId"
        } else {
            "eth_blockNumber"
        };
        let r = http
            .post(&rpc_url)
            .json(&json!({"jsonrpc": "2.0", "id": i, "method": method}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        answered += 1;
    }

    // A budget under what the period already costs (the fee alone is
    // 49.00), with a hard cap: the billing role measures it and the edge
    // refuses with 402 naming the budget; raised, the key serves again.
    let sub_id = sub["id"].as_str().unwrap();
    let budget: Value = serde_json::from_str(&cli(&[
        "-o",
        "json",
        "subscription",
        "budget",
        sub_id,
        "--set-minor",
        "1000",
        "--hard-cap",
    ]))
    .unwrap();
    assert_eq!(budget[0]["budget_minor"], 1000, "{budget}");
    assert_eq!(budget[0]["hard_cap"], true, "{budget}");
    let call = async || {
        let r = http
            .post(&rpc_url)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}))
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let refused = wait_for("402 at the budget", Duration::from_secs(20), async || {
        let (status, body) = call().await;
        (status == 402).then_some(body)
    })
    .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("budget"),
        "{refused}"
    );
    let shown: Value =
        serde_json::from_str(&cli(&["-o", "json", "subscription", "budget", sub_id])).unwrap();
    let current = &shown[0]["current"];
    assert_eq!(current["capped"], true, "{shown}");
    assert_eq!(current["alerted_percent"], 100, "{shown}");
    assert!(current["spent_minor"].as_u64().unwrap() >= 4_900, "{shown}");
    cli(&[
        "subscription",
        "budget",
        sub_id,
        "--set-minor",
        "100000000",
        "--hard-cap",
    ]);
    wait_for(
        "served under the raised budget",
        Duration::from_secs(20),
        async || {
            let (status, _) = call().await;
            (status == 200).then_some(Value::Null)
        },
    )
    .await;

    // The node ends; its billable time is then fixed by its state log.
    let r = http
        .delete(&node_url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for("terminated", Duration::from_secs(60), async || {
        let n = get_json(&http, &node_url, &admin).await;
        (n["state"] == "terminated").then_some(n)
    })
    .await;

    // Every answered call is stored before the close.
    let store: std::sync::Arc<dyn hood_store::Store> =
        hood_store::connect(&format!("sqlite://{}", home.join("hood.db").display()))
            .await
            .unwrap();
    let far = Timestamp::from_millis(now().millis() + 40 * DAY_MS);
    let day_start =
        |t: Timestamp| Timestamp::from_millis(t.millis() - t.millis().rem_euclid(DAY_MS));
    let period_start = day_start(now());
    // The edge flushes usage in batches: wait until the count has stopped
    // moving and holds every call the test made.
    let mut last = (-1, -1);
    let (events, stored_cu) = wait_for("usage stored", Duration::from_secs(30), async || {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let seen = store
            .usage_event_totals(org, period_start, far)
            .await
            .unwrap();
        let settled = seen == last && seen.0 > answered;
        last = seen;
        settled.then(|| json!([seen.0, seen.1]))
    })
    .await
    .as_array()
    .map(|a| (a[0].as_i64().unwrap(), a[1].as_i64().unwrap()))
    .unwrap();
    assert!(events > 0 && stored_cu > 0);

    // Close as of a day after the period's end (a month on).
    let as_of =
        hood_api::clock::rfc3339(Timestamp::from_millis(period_start.millis() + 32 * DAY_MS));
    let report: Value = serde_json::from_str(&cli(&[
        "-o",
        "json",
        "billing",
        "close-period",
        "--as-of",
        &as_of,
    ]))
    .unwrap();
    let issued = report["issued"].as_array().unwrap();
    assert_eq!(issued.len(), 1, "one invoice for the one period: {report}");
    let invoice = &issued[0];
    let invoice_id = invoice["id"].as_str().unwrap().to_owned();
    assert_eq!(invoice["state"], "issued");
    let readings = invoice["readings"].as_array().unwrap();
    let sum = |meter: &str| -> i64 {
        readings
            .iter()
            .filter(|r| r["meter"] == meter)
            .map(|r| r["quantity"].as_i64().unwrap())
            .sum()
    };
    assert_eq!(
        sum(RPC_COMPUTE_UNITS),
        stored_cu,
        "the invoice's compute units are the stored events' exactly"
    );
    // Node time: the state log, read back through the API.
    let history = get_json(&http, &format!("{node_url}/events?limit=1000"), &admin).await;
    let changes: Vec<(i64, NodeState)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let to = NodeState::parse(e["to_state"].as_str()?)?;
            let at = hood_api::clock::parse_rfc3339(e["at"].as_str()?)?;
            Some((at.millis(), to))
        })
        .collect();
    let billed_ms = billable_millis(
        None,
        &changes,
        period_start.millis(),
        period_start.millis() + 40 * DAY_MS,
    );
    assert!(billed_ms > 0, "{history}");
    assert_eq!(sum(NODE_SECONDS), i64::try_from(billed_ms / 1000).unwrap());
    let lines = invoice["lines"].as_array().unwrap();
    let total: u64 = lines
        .iter()
        .map(|l| l["amount_minor"].as_u64().unwrap())
        .sum();
    assert_eq!(
        invoice["total_minor"].as_u64().unwrap(),
        total,
        "lines add up"
    );
    assert!(total >= 4_900);

    // Closing again issues nothing.
    let again: Value = serde_json::from_str(&cli(&[
        "-o",
        "json",
        "billing",
        "close-period",
        "--as-of",
        &as_of,
    ]))
    .unwrap();
    assert!(again["issued"].as_array().unwrap().is_empty(), "{again}");

    // Paid through Stripe: a checkout.session.completed signed by Stripe's
    // library.
    let webhook = format!("{api}/api/v1/payments/stripe/webhook");
    let post = |body: Vec<u8>, signature: String| {
        let http = http.clone();
        let webhook = webhook.clone();
        async move {
            let r = http
                .post(webhook)
                .header("content-type", "application/json")
                .header("stripe-signature", signature)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let body = checkout_event("evt_e2e_1", "cs_e2e_1", &invoice_id, total);
    let header = stripe_sign(&python, &body, now().secs(), WEBHOOK_SECRET);
    let (status, answer) = post(body.clone(), header.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "handled");
    let paid = get_json(
        &http,
        &format!("{api}/api/v1/invoices/{invoice_id}"),
        &admin,
    )
    .await;
    assert_eq!(paid["state"], "paid", "{paid}");
    assert_eq!(paid["payments"].as_array().unwrap().len(), 1);

    // Replayed, stale (> 300 s) and wrongly signed deliveries change nothing.
    let (status, answer) = post(body, header).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("duplicate"))
    );
    let other = checkout_event("evt_e2e_2", "cs_e2e_2", &invoice_id, total);
    let stale = stripe_sign(&python, &other, now().secs() - 301, WEBHOOK_SECRET);
    let (status, answer) = post(other.clone(), stale).await;
    assert_eq!(status, 400, "{answer}");
    let forged = stripe_sign(&python, &other, now().secs(), "whsec_someone_else");
    let (status, answer) = post(other, forged).await;
    assert_eq!(status, 400, "{answer}");
    let after = get_json(
        &http,
        &format!("{api}/api/v1/invoices/{invoice_id}"),
        &admin,
    )
    .await;
    assert_eq!(after["payments"].as_array().unwrap().len(), 1, "{after}");

    // Reconciled: the invoice, its Stripe payment and the ledger agree.
    let rec: Value = serde_json::from_str(&cli(&["-o", "json", "billing", "reconcile"])).unwrap();
    assert_eq!(rec["items"].as_array().unwrap().len(), 0, "{rec}");
    assert_eq!(rec["matched_minor"], rec["invoiced_minor"], "{rec}");
    assert_eq!(rec["invoiced_minor"].as_u64(), Some(total));

    // The printable page names the invoice; the CLI lists it.
    let out = cli(&["invoice", "show", &invoice_id, "--html"]);
    assert!(out.contains(invoice["number"].as_str().unwrap()), "{out}");
    let out = cli(&["invoice", "list"]);
    assert!(out.contains("paid"), "{out}");

    // A correction after payment is a credit note, numbered in its own
    // series and posted; reconciliation then names the money to give back.
    let note: Value = serde_json::from_str(&cli(&[
        "-o",
        "json",
        "invoice",
        "credit",
        &invoice_id,
        "--amount-minor",
        "100",
        "--reason",
        "SLA credit",
        "--request-key",
        "sla-1",
    ]))
    .unwrap();
    assert!(
        note[0]["number"].as_str().unwrap().starts_with("CN-"),
        "{note}"
    );
    assert!(note[0]["posted_at"].is_string(), "{note}");
    // The same request again is the same note.
    let again: Value = serde_json::from_str(&cli(&[
        "-o",
        "json",
        "invoice",
        "credit",
        &invoice_id,
        "--amount-minor",
        "100",
        "--reason",
        "SLA credit",
        "--request-key",
        "sla-1",
    ]))
    .unwrap();
    assert_eq!(again[0]["id"], note[0]["id"]);
    // A paid invoice cannot be voided: a plain message, a non-zero exit.
    let (ok, _, err) = hood_cli(
        &["invoice", "void", &invoice_id, "--reason", "oops"],
        &env,
        None,
    );
    assert!(!ok && err.contains("credit note"), "{err}");
    let shown = get_json(
        &http,
        &format!("{api}/api/v1/invoices/{invoice_id}"),
        &admin,
    )
    .await;
    assert_eq!(
        shown["amount_due_minor"].as_u64(),
        Some(total - 100),
        "{shown}"
    );
    assert_eq!(
        shown["credit_notes"].as_array().unwrap().len(),
        1,
        "{shown}"
    );
    let rec: Value = serde_json::from_str(&cli(&["-o", "json", "billing", "reconcile"])).unwrap();
    let items = rec["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{rec}");
    assert_eq!(
        (items[0]["kind"].as_str(), items[0]["amount_minor"].as_u64()),
        (Some("overpaid"), Some(100))
    );
    assert_eq!(rec["credited_minor"], 100, "{rec}");

    // Stopped, the ledger audits clean: the invoice and its payment are
    // transfers in the verified log.
    hood.stop("-TERM");
    let (ok, out, err) = hood_cli(
        &["ledger", "verify"],
        &[("HOOD_HOME", home.display().to_string())],
        None,
    );
    assert!(ok, "{out} {err}");
    assert!(out.starts_with("ok:"), "{out}");
    let receivable = hood_domain::billing::posting::account_id(
        hood_domain::ledger::AccountCode::Receivable,
        1,
        Some(org),
    );
    let acc = store.get_account(receivable).await.unwrap().unwrap();
    assert_eq!(
        acc.debits_posted,
        total * 10_000,
        "invoiced, in micro-dollars"
    );
    assert_eq!(
        acc.credits_posted,
        acc.debits_posted + 100 * 10_000,
        "paid once, and credited 1.00 (owed back to the customer)"
    );
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn expiry_terminates_the_node_and_deletes_its_key_material() {
    let Some(anvil) = hood_testkit::anvil_bin("billing_expiry") else {
        return;
    };
    let Some(python) = hood_testkit::stripe_python("billing_e2e") else {
        return;
    };
    let (dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(
        &home,
        &[
            ("HOOD_HEARTBEAT_INTERVAL_MS", "1000".into()),
            ("HOOD_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
            ("HOOD_BILLING_INTERVAL_MS", "300".into()),
        ],
    );
    let api = hood.url("api");
    let admin = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", admin.clone())];
    let cli = |args: &[&str]| {
        let (ok, out, err) = hood_cli(args, &env, None);
        assert!(ok, "hood {args:?}: {out} {err}");
        out
    };
    push_anvil(&anvil, &env);
    let http = reqwest::Client::new();
    let card = dir.path().join("card.json");
    std::fs::write(
        &card,
        json!({"currency": "USD", "rules": [
            {"meter": NODE_SECONDS, "price": {"tiers": [{"rate": {"amount_minor": 5, "per": 3600}}]}}
        ]})
        .to_string(),
    )
    .unwrap();
    cli(&[
        "billing",
        "rate-card",
        "create",
        "--file",
        card.to_str().unwrap(),
    ]);
    let today = hood_api::clock::rfc3339(now())[..10].to_owned();
    // No grace at all: the first failed payment expires the contract.
    let sub: Value = serde_json::from_str(&cli(&[
        "-o",
        "json",
        "subscription",
        "create",
        "--kind",
        "fixed",
        "--fee-minor",
        "1000",
        "--start-date",
        &today,
        "--grace-hours",
        "0",
    ]))
    .unwrap();
    let sub_id = sub[0]["id"].as_str().unwrap().to_owned();

    let r = http
        .post(format!("{api}/api/v1/nodes"))
        .bearer_auth(&admin)
        .json(&json!({"chain": "ethereum-anvil", "name": "doomed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let node: Value = r.json().await.unwrap();
    let node_id: hood_domain::NodeId = node["node"]["id"].as_str().unwrap().parse().unwrap();
    let node_url = format!("{api}/api/v1/nodes/{node_id}");
    let healthy = wait_for("healthy", Duration::from_secs(60), async || {
        let n = get_json(&http, &node_url, &admin).await;
        assert_ne!(n["state"], "failed", "{n}");
        (n["state"] == "healthy").then_some(n)
    })
    .await;
    let host = healthy["host_id"].as_str().unwrap().to_owned();
    let sandbox = home.join("hosts").join("hosts").join(&host);
    assert!(
        !files_under(&sandbox).is_empty(),
        "the host holds the node's files"
    );
    let store: std::sync::Arc<dyn hood_store::Store> =
        hood_store::connect(&format!("sqlite://{}", home.join("hood.db").display()))
            .await
            .unwrap();
    assert!(store.get_node_keys(node_id).await.unwrap().is_some());

    // An invoice, and a failed payment of it.
    let day_start = now().millis() - now().millis().rem_euclid(DAY_MS);
    let as_of = hood_api::clock::rfc3339(Timestamp::from_millis(day_start + 32 * DAY_MS));
    let report: Value = serde_json::from_str(&cli(&[
        "-o",
        "json",
        "billing",
        "close-period",
        "--as-of",
        &as_of,
    ]))
    .unwrap();
    let invoice_id = report["issued"][0]["id"].as_str().unwrap().to_owned();
    let failed = serde_json::to_vec(&json!({
        "id": "evt_expiry_1",
        "type": "payment_intent.payment_failed",
        "created": now().secs(),
        "data": {"object": {
            "id": "pi_expiry_1",
            "amount": 1000,
            "currency": "usd",
            "metadata": {"hood_invoice_id": invoice_id},
            "last_payment_error": {"message": "Your card has insufficient funds."},
        }},
    }))
    .unwrap();
    let signature = stripe_sign(&python, &failed, now().secs(), WEBHOOK_SECRET);
    let r = http
        .post(format!("{api}/api/v1/payments/stripe/webhook"))
        .header("stripe-signature", signature)
        .body(failed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The billing loop expires the subscription and terminates the node.
    let sub_url = format!("{api}/api/v1/subscriptions/{sub_id}");
    let expired = wait_for("expired", Duration::from_secs(20), async || {
        let s = get_json(&http, &sub_url, &admin).await;
        (s["state"] == "expired").then_some(s)
    })
    .await;
    assert!(
        expired["reason"].as_str().unwrap().contains("grace"),
        "{expired}"
    );
    wait_for("terminated", Duration::from_secs(60), async || {
        let n = get_json(&http, &node_url, &admin).await;
        (n["state"] == "terminated").then_some(n)
    })
    .await;
    assert!(
        store.get_node_keys(node_id).await.unwrap().is_none(),
        "key material deleted from the store"
    );
    assert!(
        files_under(&sandbox).is_empty(),
        "nothing of the node is left on the host: {:?}",
        files_under(&sandbox)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prepaid_credits_cut_off_live_traffic_at_zero_and_a_top_up_restores_it() {
    let Some(anvil) = hood_testkit::anvil_bin("billing_credits") else {
        return;
    };
    let (dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(
        &home,
        &[
            ("HOOD_HEARTBEAT_INTERVAL_MS", "1000".into()),
            ("HOOD_CREDITS_TICK_MS", "300".into()),
            ("HOOD_NOTIFY_BACKOFF_MS", "200".into()),
            // The webhook receiver listens on loopback.
            ("HOOD_NOTIFY_ALLOW_NETWORKS", "127.0.0.0/8".into()),
        ],
    );
    let api = hood.url("api");
    let edge = hood.url("edge");
    let admin = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", admin.clone())];
    let cli = |args: &[&str]| {
        let (ok, out, err) = hood_cli(args, &env, None);
        assert!(ok, "hood {args:?}: {out} {err}");
        out
    };
    push_anvil(&anvil, &env);
    let http = reqwest::Client::new();
    // A cent per compute unit: eth_blockNumber (10 CU) costs 10 cents.
    let card = dir.path().join("card.json");
    std::fs::write(
        &card,
        json!({"currency": "USD", "rules": [
            {"meter": RPC_COMPUTE_UNITS, "price": {"tiers": [{"rate": {"amount_minor": 1, "per": 1}}]}}
        ]})
        .to_string(),
    )
    .unwrap();
    cli(&[
        "billing",
        "rate-card",
        "create",
        "--file",
        card.to_str().unwrap(),
    ]);
    let r = http
        .post(format!("{api}/api/v1/nodes"))
        .bearer_auth(&admin)
        .json(&json!({"chain": "ethereum-anvil", "name": "paid"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let node: Value = r.json().await.unwrap();
    let node_url = format!(
        "{api}/api/v1/nodes/{}",
        node["node"]["id"].as_str().unwrap()
    );
    let node_in = async |state: &str, within: u64| {
        wait_for(
            &format!("node {state}"),
            Duration::from_secs(within),
            async || {
                let n = get_json(&http, &node_url, &admin).await;
                assert_ne!(n["state"], "failed", "{n}");
                (n["state"] == state).then_some(n)
            },
        )
        .await
    };
    let healthy = node_in("healthy", 60).await;
    // The node's own endpoint on the host, past the edge: whether its
    // process runs.
    let direct = healthy["rpc_endpoint"].as_str().unwrap().to_owned();
    let process_answers = async || {
        http.post(&direct)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    };
    assert!(process_answers().await);
    let created: Value = serde_json::from_str(&cli(&[
        "-o",
        "json",
        "rpc-key",
        "create",
        "--name",
        "prepaid",
        "--plan",
        "free",
        "--chains",
        "ethereum-anvil",
    ]))
    .unwrap();
    let token = created["key"].as_str().unwrap().to_owned();
    let rpc_url = format!("{edge}/ethereum-anvil/v1/{token}");
    let call = || {
        let http = http.clone();
        let rpc_url = rpc_url.clone();
        async move {
            let r = http
                .post(rpc_url)
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // The organization's channel: a webhook on this machine.
    let (hook, received) = common::health::webhook_receiver().await;
    let r = http
        .post(format!("{api}/api/v1/notification-channels"))
        .bearer_auth(&admin)
        .json(&json!({"name": "billing-hook", "config": {
            "kind": "webhook", "url": hook, "secret": common::health::SECRET
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // On credits with nothing in them: cut off from the start (402).
    let enabled: Value = serde_json::from_str(&cli(&[
        "-o",
        "json",
        "credits",
        "enable",
        "--window-seconds",
        "2",
    ]))
    .unwrap();
    assert_eq!(enabled[0]["state"], "stopped", "{enabled}");
    let refused = wait_for("402 without credits", Duration::from_secs(10), async || {
        let (status, body) = call().await;
        (status == 402).then_some(body)
    })
    .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("credits"),
        "the JSON-RPC error names the reason: {refused}"
    );
    // …and its node is stopped: suspended, its process gone from the host.
    node_in("suspended", 60).await;
    wait_for("the process stopped", Duration::from_secs(30), async || {
        (!process_answers().await).then_some(Value::Null)
    })
    .await;

    // A dollar of credits: served again within seconds.
    cli(&[
        "credits",
        "top-up",
        "--amount-minor",
        "100",
        "--reference",
        "bank-1",
    ]);
    // The node starts again (on the same host, with its data and keys).
    node_in("healthy", 60).await;
    assert!(process_answers().await);
    wait_for(
        "served after the top-up",
        Duration::from_secs(10),
        async || {
            let (status, _) = call().await;
            (status == 200).then_some(Value::Null)
        },
    )
    .await;

    // Live traffic spends it; the cut-off follows within a minute of the
    // balance running out.
    let started = std::time::Instant::now();
    let mut exhausted_at = None;
    let cut_at = loop {
        assert!(started.elapsed() < Duration::from_secs(90), "never cut off");
        let (status, _) = call().await;
        if status == 402 {
            break std::time::Instant::now();
        }
        assert_eq!(status, 200);
        if exhausted_at.is_none() {
            let c = get_json(&http, &format!("{api}/api/v1/credits"), &admin).await;
            if c["available_minor"] == 0 || c["state"] == "stopped" {
                exhausted_at = Some(std::time::Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let exhausted_at = exhausted_at.unwrap_or(cut_at);
    assert!(
        cut_at.duration_since(exhausted_at) < Duration::from_secs(60),
        "cut off {:?} after the balance ran out",
        cut_at.duration_since(exhausted_at)
    );
    let c = get_json(&http, &format!("{api}/api/v1/credits"), &admin).await;
    assert_eq!(c["state"], "stopped", "{c}");
    assert!(c["reason"].as_str().unwrap().contains("exhausted"), "{c}");
    // Cut off again: the node is stopped again, within the minute.
    node_in("suspended", 60).await;
    // The channel heard of it, signed.
    wait_for(
        "the cut-off notified",
        Duration::from_secs(20),
        async || {
            let got = received.lock().unwrap().clone();
            got.iter()
                .find(|r| r.body.to_string().contains("Prepaid credits exhausted"))
                .map(|r| {
                    assert!(r.signature_ok, "signed with the channel's secret");
                    Value::Null
                })
        },
    )
    .await;

    // A top-up restores service within seconds.
    cli(&[
        "credits",
        "top-up",
        "--amount-minor",
        "500",
        "--reference",
        "bank-2",
    ]);
    let restored = std::time::Instant::now();
    wait_for(
        "served after the second top-up",
        Duration::from_secs(30),
        async || {
            let (status, _) = call().await;
            (status == 200).then_some(Value::Null)
        },
    )
    .await;
    eprintln!("service restored {:?} after the top-up", restored.elapsed());
    node_in("healthy", 60).await;

    // The balance never went below zero in the ledger, which verifies.
    hood.stop("-TERM");
    let store: std::sync::Arc<dyn hood_store::Store> =
        hood_store::connect(&format!("sqlite://{}", home.join("hood.db").display()))
            .await
            .unwrap();
    let org: OrgId = enabled[0]["org_id"].as_str().unwrap().parse().unwrap();
    let credits = hood_domain::billing::posting::account_id(
        hood_domain::ledger::AccountCode::PrepaidCredits,
        1,
        Some(org),
    );
    let a = store.get_account(credits).await.unwrap().unwrap();
    assert_eq!(a.credits_posted, 600 * 10_000, "six dollars topped up");
    assert!(
        a.debits_posted + a.debits_pending <= a.credits_posted,
        "{a:?}"
    );
    assert!(
        a.debits_posted >= 100 * 10_000,
        "the first dollar was spent: {a:?}"
    );
    let (ok, out, err) = hood_cli(
        &["ledger", "verify"],
        &[("HOOD_HOME", home.display().to_string())],
        None,
    );
    assert!(ok && out.starts_with("ok:"), "{out} {err}");
}
