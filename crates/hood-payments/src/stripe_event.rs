//! Stripe webhook events, parsed into what billing acts on.
//!
//! Parse only after [`crate::stripe_signature::verify`] accepted the body.
//! The event kinds billing handles are typed; any other kind becomes
//! [`EventKind::Other`] so the endpoint can acknowledge it (Stripe retries
//! unacknowledged events for days) and ignore it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One webhook event: Stripe's `evt_…` id (the de-duplication key: Stripe
/// delivers at least once), what happened, and when Stripe created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub id: String,
    pub kind: EventKind,
    /// Unix seconds.
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `checkout.session.completed`: the customer finished the checkout. For
    /// delayed payment methods `payment_status` is still `unpaid`, and the
    /// money arrives with `checkout.session.async_payment_succeeded`.
    CheckoutSessionCompleted(CheckoutSessionEvent),
    /// `checkout.session.async_payment_succeeded`.
    CheckoutSessionAsyncPaymentSucceeded(CheckoutSessionEvent),
    /// `invoice.paid`.
    InvoicePaid(InvoicePaidEvent),
    /// `payment_intent.payment_failed`.
    PaymentFailed(PaymentFailedEvent),
    /// `charge.refunded`.
    ChargeRefunded(ChargeRefundedEvent),
    /// Any other type, by name: acknowledged and ignored.
    Other(String),
}

impl EventKind {
    /// Stripe's name of the event type.
    pub fn type_name(&self) -> &str {
        match self {
            EventKind::CheckoutSessionCompleted(_) => "checkout.session.completed",
            EventKind::CheckoutSessionAsyncPaymentSucceeded(_) => {
                "checkout.session.async_payment_succeeded"
            }
            EventKind::InvoicePaid(_) => "invoice.paid",
            EventKind::PaymentFailed(_) => "payment_intent.payment_failed",
            EventKind::ChargeRefunded(_) => "charge.refunded",
            EventKind::Other(name) => name,
        }
    }
}

/// A Checkout Session's `payment_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Paid,
    Unpaid,
    NoPaymentRequired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSessionEvent {
    /// `cs_…`.
    pub session_id: String,
    pub payment_status: PaymentStatus,
    /// Minor units of `currency`.
    pub amount_total: u64,
    /// ISO 4217, upper case (`USD`); Stripe sends lower case.
    pub currency: String,
    pub client_reference_id: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// `pi_…`, when the session created a PaymentIntent.
    pub payment_intent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoicePaidEvent {
    /// Stripe's `in_…`.
    pub invoice_id: String,
    pub amount_paid: u64,
    pub currency: String,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentFailedEvent {
    /// `pi_…`.
    pub payment_intent_id: String,
    pub amount: u64,
    pub currency: String,
    pub metadata: BTreeMap<String, String>,
    /// `last_payment_error.message`: the reason to show the customer.
    pub failure_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRefundedEvent {
    /// `ch_…`.
    pub charge_id: String,
    pub payment_intent: Option<String>,
    /// The charge's whole amount, to tell a full refund from a partial one.
    pub amount: u64,
    /// Refunded so far, cumulative over the charge's refunds.
    pub amount_refunded: u64,
    pub currency: String,
    pub metadata: BTreeMap<String, String>,
}

/// Why an event body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("webhook body is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("webhook event is missing the field `{field}`")]
    Missing { field: String },
    #[error("webhook event field `{field}` is invalid: expected {expected}")]
    Invalid {
        field: String,
        expected: &'static str,
    },
}

/// Parses a (verified) raw webhook body.
pub fn parse(payload: &[u8]) -> Result<WebhookEvent, EventError> {
    let root: Value = serde_json::from_slice(payload)?;
    let root = Fields::new(&root, "")?;
    let id = root.string("id")?;
    let type_name = root.string("type")?;
    let created = root.integer("created")?;
    let object = root.object("data")?.object("object")?;
    let kind = match type_name.as_str() {
        "checkout.session.completed" => {
            EventKind::CheckoutSessionCompleted(checkout_session(&object)?)
        }
        "checkout.session.async_payment_succeeded" => {
            EventKind::CheckoutSessionAsyncPaymentSucceeded(checkout_session(&object)?)
        }
        "invoice.paid" => EventKind::InvoicePaid(InvoicePaidEvent {
            invoice_id: object.string("id")?,
            amount_paid: object.amount("amount_paid")?,
            currency: object.currency("currency")?,
            metadata: object.metadata()?,
        }),
        "payment_intent.payment_failed" => EventKind::PaymentFailed(PaymentFailedEvent {
            payment_intent_id: object.string("id")?,
            amount: object.amount("amount")?,
            currency: object.currency("currency")?,
            metadata: object.metadata()?,
            failure_message: match object.optional_object("last_payment_error")? {
                Some(error) => error.optional_string("message")?,
                None => None,
            },
        }),
        "charge.refunded" => EventKind::ChargeRefunded(ChargeRefundedEvent {
            charge_id: object.string("id")?,
            payment_intent: object.optional_id("payment_intent")?,
            amount: object.amount("amount")?,
            amount_refunded: object.amount("amount_refunded")?,
            currency: object.currency("currency")?,
            metadata: object.metadata()?,
        }),
        _ => EventKind::Other(type_name),
    };
    Ok(WebhookEvent { id, kind, created })
}

fn checkout_session(object: &Fields<'_>) -> Result<CheckoutSessionEvent, EventError> {
    let payment_status = match object.string("payment_status")?.as_str() {
        "paid" => PaymentStatus::Paid,
        "unpaid" => PaymentStatus::Unpaid,
        "no_payment_required" => PaymentStatus::NoPaymentRequired,
        _ => {
            return Err(object.invalid(
                "payment_status",
                "\"paid\", \"unpaid\" or \"no_payment_required\"",
            ))
        }
    };
    Ok(CheckoutSessionEvent {
        session_id: object.string("id")?,
        payment_status,
        amount_total: object.amount("amount_total")?,
        currency: object.currency("currency")?,
        client_reference_id: object.optional_string("client_reference_id")?,
        metadata: object.metadata()?,
        payment_intent: object.optional_id("payment_intent")?,
    })
}

/// A JSON object and its dotted path, so errors name the exact field.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, path: &str) -> Result<Self, EventError> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                path: path.to_owned(),
            }),
            _ => Err(EventError::Invalid {
                field: if path.is_empty() {
                    "(root)".into()
                } else {
                    path.into()
                },
                expected: "an object",
            }),
        }
    }

    fn field_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn invalid(&self, key: &str, expected: &'static str) -> EventError {
        EventError::Invalid {
            field: self.field_path(key),
            expected,
        }
    }

    /// The value, with JSON `null` read as absent (Stripe's nullable fields).
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn required(&self, key: &str) -> Result<&'a Value, EventError> {
        self.get(key).ok_or_else(|| EventError::Missing {
            field: self.field_path(key),
        })
    }

    fn object(&self, key: &str) -> Result<Fields<'a>, EventError> {
        Fields::new(self.required(key)?, &self.field_path(key))
    }

    fn optional_object(&self, key: &str) -> Result<Option<Fields<'a>>, EventError> {
        self.get(key)
            .map(|v| Fields::new(v, &self.field_path(key)))
            .transpose()
    }

    fn string(&self, key: &str) -> Result<String, EventError> {
        self.required(key)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.invalid(key, "a string"))
    }

    fn optional_string(&self, key: &str) -> Result<Option<String>, EventError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_owned()))
                .ok_or_else(|| self.invalid(key, "a string")),
        }
    }

    /// A reference to another object: its id, or the object itself when the
    /// endpoint expands it.
    fn optional_id(&self, key: &str) -> Result<Option<String>, EventError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(id)) => Ok(Some(id.clone())),
            Some(v @ Value::Object(_)) => Fields::new(v, &self.field_path(key))?
                .string("id")
                .map(Some),
            Some(_) => Err(self.invalid(key, "an id or an object")),
        }
    }

    fn integer(&self, key: &str) -> Result<i64, EventError> {
        self.required(key)?
            .as_i64()
            .ok_or_else(|| self.invalid(key, "an integer"))
    }

    /// Stripe amounts: non-negative integers in minor units.
    fn amount(&self, key: &str) -> Result<u64, EventError> {
        self.required(key)?
            .as_u64()
            .ok_or_else(|| self.invalid(key, "a non-negative integer (minor units)"))
    }

    fn currency(&self, key: &str) -> Result<String, EventError> {
        let code = self.string(key)?;
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(code.to_ascii_uppercase())
        } else {
            Err(self.invalid(key, "a three-letter ISO 4217 code"))
        }
    }

    /// `metadata`: Stripe always sends an object of strings; absent is empty.
    fn metadata(&self) -> Result<BTreeMap<String, String>, EventError> {
        let Some(value) = self.optional_object("metadata")? else {
            return Ok(BTreeMap::new());
        };
        value
            .map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(value.invalid(k, "a string")),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "id": "evt_1", "object": "event", "type": kind, "created": 1_700_000_000,
            "livemode": false, "data": { "object": object }
        }))
        .unwrap()
    }

    fn session(payment_status: &str) -> Value {
        json!({
            "id": "cs_test_1", "object": "checkout.session", "payment_status": payment_status,
            "amount_total": 1250, "currency": "usd", "client_reference_id": "inv_42",
            "metadata": { "invoice": "inv_42" }, "payment_intent": "pi_1", "status": "complete"
        })
    }

    #[test]
    fn checkout_session_completed() {
        let parsed = parse(&event("checkout.session.completed", session("paid"))).unwrap();
        assert_eq!(parsed.id, "evt_1");
        assert_eq!(parsed.created, 1_700_000_000);
        let EventKind::CheckoutSessionCompleted(s) = parsed.kind else {
            panic!("{:?}", parsed.kind)
        };
        assert_eq!(s.session_id, "cs_test_1");
        assert_eq!(s.payment_status, PaymentStatus::Paid);
        assert_eq!(s.amount_total, 1250);
        assert_eq!(s.currency, "USD");
        assert_eq!(s.client_reference_id.as_deref(), Some("inv_42"));
        assert_eq!(
            s.metadata.get("invoice").map(String::as_str),
            Some("inv_42")
        );
        assert_eq!(s.payment_intent.as_deref(), Some("pi_1"));
    }

    #[test]
    fn async_payment_succeeded_with_nulls_and_expanded_intent() {
        let mut object = session("unpaid");
        object["client_reference_id"] = Value::Null;
        object["payment_intent"] = json!({ "id": "pi_9", "object": "payment_intent" });
        let parsed = parse(&event("checkout.session.async_payment_succeeded", object)).unwrap();
        let EventKind::CheckoutSessionAsyncPaymentSucceeded(s) = parsed.kind else {
            panic!("{:?}", parsed.kind)
        };
        assert_eq!(s.payment_status, PaymentStatus::Unpaid);
        assert_eq!(s.client_reference_id, None);
        assert_eq!(s.payment_intent.as_deref(), Some("pi_9"));

        let mut object = session("no_payment_required");
        object["payment_intent"] = Value::Null;
        let parsed = parse(&event("checkout.session.completed", object)).unwrap();
        let EventKind::CheckoutSessionCompleted(s) = parsed.kind else {
            panic!("{:?}", parsed.kind)
        };
        assert_eq!(s.payment_status, PaymentStatus::NoPaymentRequired);
        assert_eq!(s.payment_intent, None);
    }

    #[test]
    fn invoice_paid() {
        let parsed = parse(&event(
            "invoice.paid",
            json!({ "id": "in_1", "object": "invoice", "amount_paid": 990, "currency": "eur",
                    "metadata": {} }),
        ))
        .unwrap();
        assert_eq!(
            parsed.kind,
            EventKind::InvoicePaid(InvoicePaidEvent {
                invoice_id: "in_1".into(),
                amount_paid: 990,
                currency: "EUR".into(),
                metadata: BTreeMap::new(),
            })
        );
    }

    #[test]
    fn payment_intent_payment_failed() {
        let parsed = parse(&event(
            "payment_intent.payment_failed",
            json!({ "id": "pi_1", "object": "payment_intent", "amount": 500, "currency": "usd",
                    "metadata": { "invoice": "inv_1" },
                    "last_payment_error": { "code": "card_declined",
                                            "message": "Your card was declined." } }),
        ))
        .unwrap();
        let EventKind::PaymentFailed(f) = parsed.kind else {
            panic!("{:?}", parsed.kind)
        };
        assert_eq!(f.payment_intent_id, "pi_1");
        assert_eq!(f.amount, 500);
        assert_eq!(
            f.failure_message.as_deref(),
            Some("Your card was declined.")
        );

        let parsed = parse(&event(
            "payment_intent.payment_failed",
            json!({ "id": "pi_2", "amount": 500, "currency": "usd", "metadata": {},
                    "last_payment_error": null }),
        ))
        .unwrap();
        let EventKind::PaymentFailed(f) = parsed.kind else {
            panic!("{:?}", parsed.kind)
        };
        assert_eq!(f.failure_message, None);
    }

    #[test]
    fn charge_refunded() {
        let parsed = parse(&event(
            "charge.refunded",
            json!({ "id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount": 1000,
                    "amount_refunded": 400, "currency": "gbp", "metadata": { "k": "v" },
                    "refunded": false }),
        ))
        .unwrap();
        let EventKind::ChargeRefunded(c) = parsed.kind else {
            panic!("{:?}", parsed.kind)
        };
        assert_eq!(c.charge_id, "ch_1");
        assert_eq!(c.payment_intent.as_deref(), Some("pi_1"));
        assert_eq!((c.amount, c.amount_refunded), (1000, 400));
        assert_eq!(c.currency, "GBP");
    }

    #[test]
    fn other_types_are_named_and_not_inspected() {
        let parsed = parse(&event("customer.created", json!({ "id": "cus_1" }))).unwrap();
        assert_eq!(parsed.kind, EventKind::Other("customer.created".into()));
    }

    #[test]
    fn missing_and_invalid_fields_are_named() {
        let mut object = session("paid");
        object.as_object_mut().unwrap().remove("amount_total");
        let err = parse(&event("checkout.session.completed", object)).unwrap_err();
        assert!(
            matches!(&err, EventError::Missing { field } if field == "data.object.amount_total"),
            "{err}"
        );
        assert!(err.to_string().contains("data.object.amount_total"));

        let mut object = session("paid");
        object["payment_status"] = json!("maybe");
        let err = parse(&event("checkout.session.completed", object)).unwrap_err();
        assert!(
            matches!(&err, EventError::Invalid { field, .. } if field == "data.object.payment_status")
        );

        let mut object = session("paid");
        object["amount_total"] = json!(-5);
        assert!(matches!(
            parse(&event("checkout.session.completed", object)),
            Err(EventError::Invalid { .. })
        ));

        let mut object = session("paid");
        object["currency"] = json!("dollars");
        assert!(matches!(
            parse(&event("checkout.session.completed", object)),
            Err(EventError::Invalid { .. })
        ));

        let err = parse(br#"{"id":"evt_1","type":"invoice.paid","created":1}"#).unwrap_err();
        assert!(matches!(&err, EventError::Missing { field } if field == "data"));
        let err = parse(br#"{"type":"x","created":1,"data":{"object":{}}}"#).unwrap_err();
        assert!(matches!(&err, EventError::Missing { field } if field == "id"));
        assert!(matches!(parse(b"not json"), Err(EventError::Json(_))));
        assert!(matches!(parse(b"[]"), Err(EventError::Invalid { .. })));
    }
}
