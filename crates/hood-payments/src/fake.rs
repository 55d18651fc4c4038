//! A fake Stripe API on loopback, for tests (feature `fake`).
//!
//! It answers `POST /v1/checkout/sessions` the way Stripe documents it:
//! bearer authentication with a test key, form-encoded parameters in bracket
//! notation (unknown or missing ones refused with Stripe's error shape),
//! idempotency keys (a replay returns the first session, a reuse with other
//! parameters is an `idempotency_error`). It records every request and can
//! be told to fail the next ones, to exercise billing's retries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// A key the fake accepts (any `sk_test_…` key is accepted).
pub const TEST_SECRET_KEY: &str = "sk_test_hood_fake_key";

const SESSIONS_PATH: &str = "/v1/checkout/sessions";

const REQUIRED: [&str; 7] = [
    "mode",
    "line_items[0][price_data][currency]",
    "line_items[0][price_data][unit_amount]",
    "line_items[0][price_data][product_data][name]",
    "line_items[0][quantity]",
    "success_url",
    "cancel_url",
];

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub content_type: Option<String>,
    /// The decoded form parameters, in the order sent.
    pub form: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of a form parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<RecordedRequest>,
    /// Injected failures still to answer, with their status.
    failures: Vec<u16>,
    /// Idempotency key → (the body first sent with it, the session answered).
    idempotent: HashMap<String, (Vec<u8>, Value)>,
    sessions: HashMap<String, Value>,
}

struct Shared {
    base_url: String,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not hide the fake's state from others.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fake server; it stops when dropped.
pub struct FakeStripe {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeStripe {
    /// Starts on `127.0.0.1` with a port of the system's choosing.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            base_url: format!("http://{addr}"),
            inner: Mutex::new(Inner::default()),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "fake Stripe server stopped");
            }
        });
        Ok(Self { shared, server })
    }

    /// `http://127.0.0.1:<port>`: the `api_base` for a `StripeProvider`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// Every request received so far, failed ones included.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Answers the next `count` requests with `status` (500, 503, 429, …)
    /// and Stripe's `api_error` body, before looking at them.
    pub fn fail_next(&self, count: usize, status: u16) {
        let mut inner = self.shared.lock();
        inner.failures = vec![status; count];
    }

    /// A session created so far, as it was answered.
    pub fn session(&self, session_id: &str) -> Option<Value> {
        self.shared.lock().sessions.get(session_id).cloned()
    }

    /// The `checkout.session.completed` event Stripe would send once the
    /// customer paid session `session_id`; None for an unknown session. Sign
    /// its serialised bytes with [`crate::stripe_signature::sign`].
    pub fn completed_event(&self, session_id: &str, event_id: &str, created: i64) -> Option<Value> {
        let mut object = self.session(session_id)?;
        let suffix = session_id.trim_start_matches("cs_test_");
        object["status"] = json!("complete");
        object["payment_status"] = json!("paid");
        object["payment_intent"] = json!(format!("pi_test_{suffix}"));
        object["url"] = Value::Null;
        Some(json!({
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": created,
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": "checkout.session.completed",
            "data": { "object": object },
        }))
    }
}

fn stripe_error(status: StatusCode, kind: &str, message: &str, param: Option<&str>) -> Response {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(param) = param {
        error["param"] = json!(param);
    }
    (status, Json(json!({ "error": error }))).into_response()
}

/// A parameter Stripe would refuse, answered as `invalid_request_error`.
struct Invalid {
    param: String,
    message: String,
}

fn invalid(param: &str, message: &str) -> Invalid {
    Invalid {
        param: param.to_owned(),
        message: message.to_owned(),
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn allowed_param(key: &str) -> bool {
    let bracketed = |prefix: &str| {
        key.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(']'))
            .is_some_and(|name| !name.is_empty() && !name.contains(['[', ']']))
    };
    REQUIRED.contains(&key)
        || key == "client_reference_id"
        || bracketed("metadata[")
        || bracketed("payment_intent_data[metadata][")
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let request = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization: header(&headers, "authorization"),
        idempotency_key: header(&headers, "idempotency-key"),
        content_type: header(&headers, "content-type"),
        form,
        body: body.to_vec(),
    };
    let mut inner = shared.lock();
    inner.requests.push(request.clone());
    if let Some(status) = inner.failures.pop() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return stripe_error(
            status,
            "api_error",
            "An unknown error occurred (injected by the fake Stripe).",
            None,
        );
    }
    if method != Method::POST || request.path != SESSIONS_PATH {
        return stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("Unrecognized request URL ({method}: {}).", request.path),
            None,
        );
    }
    match request
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
    {
        None => {
            return stripe_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "You did not provide an API key. Provide it in the Authorization header, \
                 using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                None,
            )
        }
        Some(key) if !(key.starts_with("sk_test_") && key.len() > "sk_test_".len()) => {
            // Like Stripe, quote only the key's last four characters.
            let tail = key
                .char_indices()
                .rev()
                .nth(3)
                .map_or(key, |(i, _)| &key[i..]);
            return stripe_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                &format!("Invalid API Key provided: ****{tail}"),
                None,
            );
        }
        Some(_) => {}
    }
    if !request
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Stripe's API takes application/x-www-form-urlencoded parameters.",
            None,
        );
    }
    if let Some(key) = &request.idempotency_key {
        if let Some((first_body, session)) = inner.idempotent.get(key) {
            if *first_body == request.body {
                let mut response = (StatusCode::OK, Json(session.clone())).into_response();
                response.headers_mut().insert(
                    "idempotent-replayed",
                    axum::http::HeaderValue::from_static("true"),
                );
                return response;
            }
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                &format!(
                    "Keys for idempotent requests can only be used with the same parameters \
                     they were first used with. Try using a key other than '{key}' if you \
                     meant to execute a different request."
                ),
                None,
            );
        }
    }
    let session = match new_session(&shared.base_url, &request) {
        Ok(session) => session,
        Err(refused) => {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &refused.message,
                Some(&refused.param),
            )
        }
    };
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    inner.sessions.insert(id, session.clone());
    // Stripe saves an idempotent result only once the request was valid.
    if let Some(key) = request.idempotency_key {
        inner
            .idempotent
            .insert(key, (request.body, session.clone()));
    }
    (StatusCode::OK, Json(session)).into_response()
}

fn new_session(base_url: &str, request: &RecordedRequest) -> Result<Value, Invalid> {
    if let Some((unknown, _)) = request.form.iter().find(|(k, _)| !allowed_param(k)) {
        return Err(invalid(
            unknown,
            &format!("Received unknown parameter: {unknown}"),
        ));
    }
    for param in REQUIRED {
        if request.param(param).is_none_or(str::is_empty) {
            return Err(invalid(param, &format!("Missing required param: {param}.")));
        }
    }
    let param = |key: &str| request.param(key).unwrap_or_default();
    if param("mode") != "payment" {
        return Err(invalid(
            "mode",
            "Invalid mode: this fake supports only payment",
        ));
    }
    let currency = param("line_items[0][price_data][currency]").to_ascii_lowercase();
    if !(currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_lowercase())) {
        return Err(invalid(
            "line_items[0][price_data][currency]",
            &format!("Invalid currency: {currency}"),
        ));
    }
    let integer = |key: &str| {
        param(key)
            .parse::<u64>()
            .map_err(|_| invalid(key, &format!("Invalid integer: {}", param(key))))
    };
    let unit_amount = integer("line_items[0][price_data][unit_amount]")?;
    let quantity = integer("line_items[0][quantity]")?;
    let amount_total = unit_amount
        .checked_mul(quantity)
        .ok_or_else(|| invalid("line_items[0][quantity]", "The total amount is too large."))?;
    let metadata: Map<String, Value> = request
        .form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(|name| (name.to_owned(), json!(v)))
        })
        .collect();
    let id = format!("cs_test_{}", uuid::Uuid::new_v4().simple());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    Ok(json!({
        "id": id,
        "object": "checkout.session",
        "url": format!("{base_url}/c/pay/{id}"),
        "mode": "payment",
        "status": "open",
        "payment_status": "unpaid",
        "amount_total": amount_total,
        "amount_subtotal": amount_total,
        "currency": currency,
        "client_reference_id": request.param("client_reference_id"),
        "metadata": metadata,
        "payment_intent": null,
        "success_url": param("success_url"),
        "cancel_url": param("cancel_url"),
        "created": created,
        "expires_at": created + 24 * 3600,
        "livemode": false,
    }))
}
