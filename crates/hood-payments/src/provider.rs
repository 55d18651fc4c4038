//! Payment providers: how billing asks for a customer's payment.
//!
//! Each call carries an idempotency key, so billing may retry an
//! [`PaymentError::Unavailable`] call with the same key and get the same
//! session instead of a second one.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What billing wants paid through a hosted checkout page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRequest {
    /// Same key, same request: the provider answers the first session again.
    pub idempotency_key: String,
    /// Minor units of `currency` (cents for USD).
    pub amount_minor: u64,
    /// ISO 4217, any case (`USD`).
    pub currency: String,
    /// The line the customer sees on the checkout page.
    pub description: String,
    /// Billing's own reference (e.g. its invoice id), echoed back in the
    /// `checkout.session.completed` event to match the payment.
    pub client_reference_id: String,
    pub metadata: BTreeMap<String, String>,
    pub success_url: String,
    pub cancel_url: String,
}

/// A checkout the customer is sent to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckoutSession {
    /// `cs_…` for Stripe.
    pub id: String,
    /// The hosted page to redirect the customer to.
    pub url: String,
    /// The provider's status word (`open` for a new Stripe session).
    pub status: String,
}

/// Why a provider call failed, by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// Not reached or not answering properly (connection error, timeout,
    /// HTTP 5xx, 429): retry later with the same idempotency key.
    #[error("payment provider unavailable: {reason}")]
    Unavailable { reason: String },
    /// The provider refused the request (HTTP 4xx other than 429), or it was
    /// refused before being sent (`status` None): retrying will not help.
    #[error("payment provider refused the request{}: {message}", status_suffix(*.status))]
    Rejected {
        status: Option<u16>,
        message: String,
    },
    /// The provider answered something we cannot read.
    #[error("payment provider's answer is malformed: {0}")]
    Malformed(String),
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl PaymentError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// The provider's name as configured (`stripe`, `local`).
    fn name(&self) -> &str;

    async fn create_checkout(&self, req: &CheckoutRequest)
        -> Result<CheckoutSession, PaymentError>;
}

/// Payments recorded by a billing operator (bank transfer, cash, …): there
/// is no checkout to open, and saying so lets callers treat every provider
/// alike.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalProvider;

#[async_trait]
impl PaymentProvider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    async fn create_checkout(
        &self,
        _req: &CheckoutRequest,
    ) -> Result<CheckoutSession, PaymentError> {
        Err(PaymentError::Rejected {
            status: None,
            message: "the local payment provider has no checkout: payments are recorded by a \
                      billing operator"
                .into(),
        })
    }
}

/// Why a [`StripeProvider`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StripeConfigError {
    #[error("Stripe API base URL {0:?} is not an http(s) URL")]
    InvalidBase(String),
    #[error("Stripe secret key is empty")]
    EmptyKey,
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Stripe Checkout over Stripe's REST API.
pub struct StripeProvider {
    /// Without a trailing slash.
    api_base: String,
    secret_key: String,
    http: reqwest::Client,
}

/// The whole time a call may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl fmt::Debug for StripeProvider {
    // Hand-written so the secret key never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeProvider")
            .field("api_base", &self.api_base)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl StripeProvider {
    /// `api_base` is Stripe's API origin (or a fake's), without `/v1`.
    pub fn new(
        api_base: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Result<Self, StripeConfigError> {
        Self::with_timeout(api_base, secret_key, DEFAULT_TIMEOUT)
    }

    pub fn with_timeout(
        api_base: impl Into<String>,
        secret_key: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, StripeConfigError> {
        let api_base = api_base.into();
        let parsed = reqwest::Url::parse(&api_base)
            .map_err(|_| StripeConfigError::InvalidBase(api_base.clone()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(StripeConfigError::InvalidBase(api_base));
        }
        let secret_key = secret_key.into();
        if secret_key.trim().is_empty() {
            return Err(StripeConfigError::EmptyKey);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // A redirected POST could resend the bearer key elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StripeConfigError::Client(e.to_string()))?;
        Ok(Self {
            api_base: api_base.trim_end_matches('/').to_owned(),
            secret_key,
            http,
        })
    }

    async fn post_form(
        &self,
        path: &str,
        key: &str,
        body: String,
    ) -> Result<(u16, Vec<u8>), PaymentError> {
        let response = self
            .http
            .post(format!("{}{path}", self.api_base))
            .bearer_auth(&self.secret_key)
            .header("Idempotency-Key", key)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable_from(&e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| unavailable_from(&e))?;
        Ok((status, bytes.to_vec()))
    }
}

/// Stripe's form encoding of a checkout for one line of `amount_minor`.
/// Keys use Stripe's bracket notation; the order is fixed (metadata sorted)
/// so a retried request is byte-identical.
pub fn checkout_form(req: &CheckoutRequest) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("mode", "payment");
    form.append_pair(
        "line_items[0][price_data][currency]",
        &req.currency.to_ascii_lowercase(),
    );
    form.append_pair(
        "line_items[0][price_data][unit_amount]",
        &req.amount_minor.to_string(),
    );
    form.append_pair(
        "line_items[0][price_data][product_data][name]",
        &req.description,
    );
    form.append_pair("line_items[0][quantity]", "1");
    form.append_pair("success_url", &req.success_url);
    form.append_pair("cancel_url", &req.cancel_url);
    form.append_pair("client_reference_id", &req.client_reference_id);
    for (k, v) in &req.metadata {
        form.append_pair(&format!("metadata[{k}]"), v);
    }
    // A session's metadata stays on the session; copying it to the payment
    // intent lets `payment_intent.*` events carry it too.
    for (k, v) in &req.metadata {
        form.append_pair(&format!("payment_intent_data[metadata][{k}]"), v);
    }
    form.finish()
}

#[derive(Deserialize)]
struct StripeErrorBody {
    error: StripeErrorDetail,
}

#[derive(Deserialize)]
struct StripeErrorDetail {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

/// Stripe's error message (which masks any key it quotes), or a plain
/// status line when the body is not Stripe's error shape.
fn error_message(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<StripeErrorBody>(body) {
        Ok(StripeErrorBody {
            error: StripeErrorDetail { kind, message },
        }) => match (kind, message) {
            (Some(kind), Some(message)) => format!("{kind}: {message}"),
            (None, Some(message)) => message,
            (Some(kind), None) => kind,
            (None, None) => format!("HTTP {status}"),
        },
        Err(_) => format!("HTTP {status}"),
    }
}

fn unavailable_from(e: &reqwest::Error) -> PaymentError {
    if e.is_builder() {
        // Never sent (e.g. an idempotency key that is no valid header value):
        // the same request would fail the same way.
        return PaymentError::Rejected {
            status: None,
            message: format!("the request cannot be built: {e}"),
        };
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    PaymentError::Unavailable {
        reason: format!("{what}: {e}"),
    }
}

#[async_trait]
impl PaymentProvider for StripeProvider {
    fn name(&self) -> &str {
        "stripe"
    }

    async fn create_checkout(
        &self,
        req: &CheckoutRequest,
    ) -> Result<CheckoutSession, PaymentError> {
        if req.idempotency_key.trim().is_empty() {
            return Err(PaymentError::Rejected {
                status: None,
                message: "a checkout needs an idempotency key".into(),
            });
        }
        let (status, body) = self
            .post_form(
                "/v1/checkout/sessions",
                &req.idempotency_key,
                checkout_form(req),
            )
            .await?;
        match status {
            200..=299 => {
                let session: CheckoutSession = serde_json::from_slice(&body)
                    .map_err(|e| PaymentError::Malformed(format!("checkout session: {e}")))?;
                tracing::info!(
                    session = %session.id,
                    idempotency_key = %req.idempotency_key,
                    "stripe checkout session created"
                );
                Ok(session)
            }
            429 | 500..=599 => {
                let message = error_message(status, &body);
                tracing::warn!(status, %message, "stripe unavailable; the checkout may be retried");
                Err(PaymentError::Unavailable {
                    reason: format!("HTTP {status}: {message}"),
                })
            }
            400..=499 => {
                let message = error_message(status, &body);
                tracing::warn!(status, %message, "stripe refused a checkout");
                Err(PaymentError::Rejected {
                    status: Some(status),
                    message,
                })
            }
            _ => Err(PaymentError::Malformed(format!(
                "unexpected HTTP status {status}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CheckoutRequest {
        CheckoutRequest {
            idempotency_key: "inv_1-attempt-1".into(),
            amount_minor: 1999,
            currency: "USD".into(),
            description: "Hood, May 2025".into(),
            client_reference_id: "inv_1".into(),
            metadata: BTreeMap::from([("invoice".into(), "inv_1".into())]),
            success_url: "https://hood.example/ok?x=1&y=2".into(),
            cancel_url: "https://hood.example/cancel".into(),
        }
    }

    #[test]
    fn the_form_uses_stripe_bracket_keys() {
        let form = checkout_form(&request());
        let pairs: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("mode"), Some("payment"));
        assert_eq!(get("line_items[0][price_data][currency]"), Some("usd"));
        assert_eq!(get("line_items[0][price_data][unit_amount]"), Some("1999"));
        assert_eq!(
            get("line_items[0][price_data][product_data][name]"),
            Some("Hood, May 2025")
        );
        assert_eq!(get("line_items[0][quantity]"), Some("1"));
        assert_eq!(get("success_url"), Some("https://hood.example/ok?x=1&y=2"));
        assert_eq!(get("cancel_url"), Some("https://hood.example/cancel"));
        assert_eq!(get("client_reference_id"), Some("inv_1"));
        assert_eq!(get("metadata[invoice]"), Some("inv_1"));
        assert_eq!(get("payment_intent_data[metadata][invoice]"), Some("inv_1"));
        assert_eq!(checkout_form(&request()), form, "deterministic");
    }

    #[test]
    fn stripe_error_bodies_become_messages() {
        let body = br#"{"error":{"type":"invalid_request_error","message":"No such price"}}"#;
        assert_eq!(
            error_message(400, body),
            "invalid_request_error: No such price"
        );
        assert_eq!(error_message(502, b"<html>"), "HTTP 502");
    }

    #[test]
    fn debug_hides_the_secret_key() {
        let provider = StripeProvider::new("http://127.0.0.1:1", "sk_test_secret").unwrap();
        let text = format!("{provider:?}");
        assert!(!text.contains("sk_test_secret"), "{text}");
    }

    #[test]
    fn configuration_is_checked() {
        assert!(matches!(
            StripeProvider::new("not a url", "sk_test_x"),
            Err(StripeConfigError::InvalidBase(_))
        ));
        assert!(matches!(
            StripeProvider::new("ftp://x", "sk_test_x"),
            Err(StripeConfigError::InvalidBase(_))
        ));
        assert!(matches!(
            StripeProvider::new("http://x", " "),
            Err(StripeConfigError::EmptyKey)
        ));
    }

    #[tokio::test]
    async fn local_provider_has_no_checkout() {
        let err = LocalProvider.create_checkout(&request()).await.unwrap_err();
        assert!(matches!(err, PaymentError::Rejected { status: None, .. }));
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("billing operator"), "{err}");
        assert_eq!(LocalProvider.name(), "local");
    }
}
