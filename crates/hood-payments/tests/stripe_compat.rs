//! Our webhook signatures against Stripe's own Python library: a verifier
//! and a signer no one here wrote. The interpreter (a virtualenv with the
//! `stripe` package) comes from `HOOD_TEST_STRIPE_PYTHON`, set by
//! `scripts/test`.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use hood_payments::fake::{FakeStripe, TEST_SECRET_KEY};
use hood_payments::stripe_signature::{self, SignatureError};
use hood_payments::{CheckoutRequest, EventKind, PaymentProvider, StripeProvider};

const SECRET: &str = "whsec_hood_compat_test_secret";

/// Runs the helper script; (exit success, stdout, stderr).
fn run(python: &Path, payload: &[u8], args: &[&str]) -> (bool, String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stripe_compat.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(args)
        .env("HOOD_STRIPE_WEBHOOK_SECRET", SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(payload).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Not ASCII-only, so both sides must agree on bytes, not characters.
const PAYLOAD: &str = r#"{"id":"evt_1Compat","object":"event","type":"invoice.paid","created":1750000000,"data":{"object":{"id":"in_1","amount_paid":1200,"currency":"eur","metadata":{"note":"Zürich €"}}}}"#;

#[test]
fn stripes_signatures_verify_with_ours() {
    let Some(python) = hood_testkit::stripe_python("stripes_signatures_verify_with_ours") else {
        return;
    };
    let t = 1_750_000_000i64;
    let (ok, header, err) = run(&python, PAYLOAD.as_bytes(), &["sign", &t.to_string()]);
    assert!(ok, "{err}");
    assert!(header.starts_with(&format!("t={t},v1=")), "{header}");
    assert_eq!(
        stripe_signature::verify(PAYLOAD.as_bytes(), &header, SECRET, t + 10, 300),
        Ok(t)
    );
    // Byte for byte what we would have sent.
    assert_eq!(
        header,
        stripe_signature::sign(PAYLOAD.as_bytes(), SECRET, t)
    );
    assert_eq!(
        stripe_signature::verify(PAYLOAD.as_bytes(), &header, "whsec_other", t, 300),
        Err(SignatureError::Mismatch)
    );
    let mut tampered = PAYLOAD.as_bytes().to_vec();
    tampered[20] ^= 0x01;
    assert_eq!(
        stripe_signature::verify(&tampered, &header, SECRET, t, 300),
        Err(SignatureError::Mismatch)
    );

    // During a secret's rotation Stripe signs with both; ours is second.
    let (ok, rotated, err) = run(
        &python,
        PAYLOAD.as_bytes(),
        &["sign", &t.to_string(), "whsec_previous"],
    );
    assert!(ok, "{err}");
    assert_eq!(rotated.matches("v1=").count(), 2, "{rotated}");
    assert_eq!(
        stripe_signature::verify(PAYLOAD.as_bytes(), &rotated, SECRET, t, 300),
        Ok(t)
    );
    assert_eq!(
        stripe_signature::verify(PAYLOAD.as_bytes(), &rotated, "whsec_previous", t, 300),
        Ok(t)
    );
}

#[test]
fn our_signatures_verify_with_stripes() {
    let Some(python) = hood_testkit::stripe_python("our_signatures_verify_with_stripes") else {
        return;
    };
    let header = stripe_signature::sign(PAYLOAD.as_bytes(), SECRET, now());
    let (ok, out, err) = run(&python, PAYLOAD.as_bytes(), &["verify", &header, "300"]);
    assert!(ok, "stripe refused our header: {err}");
    assert_eq!(out, "evt_1Compat invoice.paid");

    // The harness can say no: Stripe refuses a wrong secret, a stale
    // timestamp and a changed body.
    let wrong = stripe_signature::sign(PAYLOAD.as_bytes(), "whsec_wrong", now());
    let (ok, _, err) = run(&python, PAYLOAD.as_bytes(), &["verify", &wrong, "300"]);
    assert!(!ok && err.contains("No signatures found matching"), "{err}");
    let stale = stripe_signature::sign(PAYLOAD.as_bytes(), SECRET, now() - 1000);
    let (ok, _, err) = run(&python, PAYLOAD.as_bytes(), &["verify", &stale, "300"]);
    assert!(!ok && err.contains("tolerance"), "{err}");
    let changed = PAYLOAD.replace("1200", "1201");
    let (ok, _, _) = run(&python, changed.as_bytes(), &["verify", &header, "300"]);
    assert!(!ok);
}

#[tokio::test]
async fn the_fakes_event_passes_stripes_construct_event() {
    let Some(python) =
        hood_testkit::stripe_python("the_fakes_event_passes_stripes_construct_event")
    else {
        return;
    };
    let fake = FakeStripe::start().await.unwrap();
    let provider = StripeProvider::new(fake.base_url(), TEST_SECRET_KEY).unwrap();
    let session = provider
        .create_checkout(&CheckoutRequest {
            idempotency_key: "compat-1".into(),
            amount_minor: 999,
            currency: "usd".into(),
            description: "Compatibility".into(),
            client_reference_id: "inv_compat".into(),
            metadata: [("invoice_id".to_owned(), "inv_compat".to_owned())].into(),
            success_url: "https://hood.example/ok".into(),
            cancel_url: "https://hood.example/no".into(),
        })
        .await
        .unwrap();
    let created = now();
    let event = fake
        .completed_event(&session.id, "evt_compat_1", created)
        .unwrap();
    let body = serde_json::to_vec(&event).unwrap();
    let header = stripe_signature::sign(&body, SECRET, created);

    let (ok, out, err) = run(&python, &body, &["verify", &header, "300"]);
    assert!(ok, "stripe refused the fake's event: {err}");
    assert_eq!(out, "evt_compat_1 checkout.session.completed");

    assert_eq!(
        stripe_signature::verify(&body, &header, SECRET, created, 300),
        Ok(created)
    );
    let parsed = hood_payments::stripe_event::parse(&body).unwrap();
    let EventKind::CheckoutSessionCompleted(completed) = parsed.kind else {
        panic!("{:?}", parsed.kind)
    };
    assert_eq!(completed.session_id, session.id);
    assert_eq!(completed.amount_total, 999);
    assert_eq!(completed.client_reference_id.as_deref(), Some("inv_compat"));
}
