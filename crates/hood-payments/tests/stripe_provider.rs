//! `StripeProvider` against the fake Stripe server (a real HTTP server on
//! loopback), and the fake's own Stripe-like answers.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

use std::collections::BTreeMap;
use std::time::Duration;

use hood_payments::fake::{FakeStripe, TEST_SECRET_KEY};
use hood_payments::{CheckoutRequest, PaymentError, PaymentProvider, StripeProvider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn request(key: &str) -> CheckoutRequest {
    CheckoutRequest {
        idempotency_key: key.into(),
        amount_minor: 4200,
        currency: "USD".into(),
        description: "Hood subscription, June".into(),
        client_reference_id: "inv_0001".into(),
        metadata: BTreeMap::from([
            ("invoice_id".into(), "inv_0001".into()),
            ("org".into(), "acme".into()),
        ]),
        success_url: "https://hood.example/billing/paid".into(),
        cancel_url: "https://hood.example/billing".into(),
    }
}

async fn fake_and_provider() -> (FakeStripe, StripeProvider) {
    let fake = FakeStripe::start().await.unwrap();
    let provider = StripeProvider::new(fake.base_url(), TEST_SECRET_KEY).unwrap();
    (fake, provider)
}

#[tokio::test]
async fn creates_a_session_with_stripes_encoding() {
    let (fake, provider) = fake_and_provider().await;
    assert_eq!(provider.name(), "stripe");
    let session = provider.create_checkout(&request("key-1")).await.unwrap();
    assert!(session.id.starts_with("cs_test_"), "{}", session.id);
    assert_eq!(session.status, "open");
    assert!(session.url.ends_with(&session.id), "{}", session.url);

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/checkout/sessions");
    assert_eq!(
        sent.authorization.as_deref(),
        Some(format!("Bearer {TEST_SECRET_KEY}").as_str())
    );
    assert_eq!(sent.idempotency_key.as_deref(), Some("key-1"));
    assert_eq!(
        sent.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(sent.param("mode"), Some("payment"));
    assert_eq!(
        sent.param("line_items[0][price_data][currency]"),
        Some("usd")
    );
    assert_eq!(
        sent.param("line_items[0][price_data][unit_amount]"),
        Some("4200")
    );
    assert_eq!(
        sent.param("line_items[0][price_data][product_data][name]"),
        Some("Hood subscription, June")
    );
    assert_eq!(sent.param("line_items[0][quantity]"), Some("1"));
    assert_eq!(sent.param("client_reference_id"), Some("inv_0001"));
    assert_eq!(sent.param("metadata[org]"), Some("acme"));

    let stored = fake.session(&session.id).unwrap();
    assert_eq!(stored["amount_total"], 4200);
    assert_eq!(stored["currency"], "usd");
    assert_eq!(stored["metadata"]["invoice_id"], "inv_0001");
    assert_eq!(stored["client_reference_id"], "inv_0001");
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_session() {
    let (fake, provider) = fake_and_provider().await;
    let first = provider.create_checkout(&request("key-2")).await.unwrap();
    let again = provider.create_checkout(&request("key-2")).await.unwrap();
    assert_eq!(first, again);
    let other = provider.create_checkout(&request("key-3")).await.unwrap();
    assert_ne!(first.id, other.id);
    assert_eq!(fake.requests().len(), 3);

    // The same key with other parameters is Stripe's idempotency error.
    let mut changed = request("key-2");
    changed.amount_minor = 1;
    let err = provider.create_checkout(&changed).await.unwrap_err();
    match &err {
        PaymentError::Rejected {
            status: Some(400),
            message,
        } => assert!(message.contains("idempotency_error"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retryable() {
    let (fake, provider) = fake_and_provider().await;
    for status in [503, 500, 429] {
        fake.fail_next(1, status);
        let err = provider
            .create_checkout(&request("key-4"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, PaymentError::Unavailable { .. }),
            "{status}: {err:?}"
        );
        assert!(err.is_retryable());
        assert!(err.to_string().contains(&status.to_string()), "{err}");
    }
    // The retry with the same key succeeds once the outage is over.
    let session = provider.create_checkout(&request("key-4")).await.unwrap();
    let again = provider.create_checkout(&request("key-4")).await.unwrap();
    assert_eq!(session, again);

    fake.fail_next(2, 503);
    assert!(provider.create_checkout(&request("key-5")).await.is_err());
    assert!(provider.create_checkout(&request("key-5")).await.is_err());
    assert!(provider.create_checkout(&request("key-5")).await.is_ok());
}

#[tokio::test]
async fn a_bad_key_is_rejected_without_echoing_it() {
    let fake = FakeStripe::start().await.unwrap();
    let provider = StripeProvider::new(fake.base_url(), "sk_live_not_for_tests_9z").unwrap();
    let err = provider
        .create_checkout(&request("key-6"))
        .await
        .unwrap_err();
    match &err {
        PaymentError::Rejected {
            status: Some(401),
            message,
        } => {
            assert!(message.contains("Invalid API Key"), "{message}");
            assert!(!message.contains("sk_live_not_for_tests"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable() {
    // A port that was just free: nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let provider = StripeProvider::new(format!("http://{addr}"), TEST_SECRET_KEY).unwrap();
    let err = provider
        .create_checkout(&request("key-7"))
        .await
        .unwrap_err();
    assert!(matches!(err, PaymentError::Unavailable { .. }), "{err:?}");
}

/// A server that reads the request and then answers `answer` (or nothing).
async fn raw_server(answer: Option<&'static str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 64 * 1024];
            let _ = socket.read(&mut buf).await;
            match answer {
                Some(answer) => {
                    let _ = socket.write_all(answer.as_bytes()).await;
                }
                None => tokio::time::sleep(Duration::from_secs(30)).await,
            }
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_silent_provider_times_out_as_unavailable() {
    let base = raw_server(None).await;
    let provider =
        StripeProvider::with_timeout(base, TEST_SECRET_KEY, Duration::from_millis(300)).unwrap();
    let err = provider
        .create_checkout(&request("key-8"))
        .await
        .unwrap_err();
    match &err {
        PaymentError::Unavailable { reason } => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unreadable_answer_is_malformed() {
    let base = raw_server(Some(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"id\":\"cs_1\"}",
    ))
    .await;
    let provider = StripeProvider::new(base, TEST_SECRET_KEY).unwrap();
    let err = provider
        .create_checkout(&request("key-9"))
        .await
        .unwrap_err();
    assert!(matches!(err, PaymentError::Malformed(_)), "{err:?}");
    assert!(!err.is_retryable());
}

/// Posts a raw form to the fake, as a client other than ours would.
async fn post(fake: &FakeStripe, key: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let body = form_body(form);
    let response = reqwest::Client::new()
        .post(format!("{}/v1/checkout/sessions", fake.base_url()))
        .bearer_auth(key)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn form_body(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", k.replace('[', "%5B").replace(']', "%5D"), v))
        .collect::<Vec<_>>()
        .join("&")
}

const VALID: [(&str, &str); 7] = [
    ("mode", "payment"),
    ("line_items[0][price_data][currency]", "eur"),
    ("line_items[0][price_data][unit_amount]", "700"),
    ("line_items[0][price_data][product_data][name]", "Plan"),
    ("line_items[0][quantity]", "2"),
    ("success_url", "https://hood.example/ok"),
    ("cancel_url", "https://hood.example/no"),
];

#[tokio::test]
async fn the_fake_answers_like_stripe() {
    let fake = FakeStripe::start().await.unwrap();

    let (status, body) = post(&fake, TEST_SECRET_KEY, &VALID).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "checkout.session");
    assert_eq!(body["amount_total"], 1400);
    assert_eq!(body["payment_status"], "unpaid");

    for (i, (missing, _)) in VALID.iter().enumerate() {
        let mut form = VALID.to_vec();
        form.remove(i);
        let (status, body) = post(&fake, TEST_SECRET_KEY, &form).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], *missing);
        assert!(body["error"]["message"].as_str().unwrap().contains(missing));
    }

    let mut form = VALID.to_vec();
    form.push(("line_items[0][price]", "price_1"));
    let (status, body) = post(&fake, TEST_SECRET_KEY, &form).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown parameter"));

    let (status, body) = post(&fake, "", &VALID).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn the_completed_event_parses_and_verifies() {
    let (fake, provider) = fake_and_provider().await;
    let session = provider.create_checkout(&request("key-10")).await.unwrap();
    let event = fake
        .completed_event(&session.id, "evt_test_1", 1_750_000_000)
        .unwrap();
    assert!(fake
        .completed_event("cs_test_unknown", "evt_2", 1)
        .is_none());
    let body = serde_json::to_vec(&event).unwrap();
    let header = hood_payments::stripe_signature::sign(&body, "whsec_fake", 1_750_000_000);
    hood_payments::stripe_signature::verify(&body, &header, "whsec_fake", 1_750_000_010, 300)
        .unwrap();
    let parsed = hood_payments::stripe_event::parse(&body).unwrap();
    assert_eq!(parsed.id, "evt_test_1");
    let hood_payments::EventKind::CheckoutSessionCompleted(completed) = parsed.kind else {
        panic!("{:?}", parsed.kind)
    };
    assert_eq!(completed.session_id, session.id);
    assert_eq!(completed.payment_status, hood_payments::PaymentStatus::Paid);
    assert_eq!(completed.amount_total, 4200);
    assert_eq!(completed.currency, "USD");
    assert_eq!(completed.client_reference_id.as_deref(), Some("inv_0001"));
    assert_eq!(
        completed.metadata.get("org").map(String::as_str),
        Some("acme")
    );
    assert!(completed.payment_intent.is_some());
}
