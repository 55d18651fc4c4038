//! Payment providers for billing.
//!
//! * [`stripe_signature`]: Stripe's webhook signature scheme (`Stripe-Signature`
//!   header, HMAC-SHA256 over `"{t}.{raw body}"`), verified on the raw body.
//! * [`stripe_event`]: a verified webhook body parsed into the few event kinds
//!   billing acts on; every other kind is acknowledged and ignored.
//! * [`provider`]: the [`PaymentProvider`] trait billing calls to open a
//!   checkout, with Stripe's implementation and the `local` provider (payments
//!   recorded by an operator).
//! * `fake` (feature `fake`): a Stripe API server on loopback for tests.
//!
//! No module here logs a secret key, a webhook secret or a signature.

pub mod provider;
pub mod stripe_event;
pub mod stripe_signature;

#[cfg(feature = "fake")]
pub mod fake;

pub use provider::{
    CheckoutRequest, CheckoutSession, LocalProvider, PaymentError, PaymentProvider,
    StripeConfigError, StripeProvider,
};
pub use stripe_event::{
    ChargeRefundedEvent, CheckoutSessionEvent, EventError, EventKind, InvoicePaidEvent,
    PaymentFailedEvent, PaymentStatus, WebhookEvent,
};
pub use stripe_signature::SignatureError;
