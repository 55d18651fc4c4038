//! Billing's pure rules (design §8): meter events and their aggregation
//! ([`meter`]), money in minor units and exact
//! prices ([`price`]), monthly periods anchored to a contract's start
//! ([`period`]), the meters Hood measures itself ([`builtin`]), the
//! ledger's accounts, ids and units for billing ([`posting`]), prepaid
//! credits accrued per window as ledger holds ([`credits`]), monthly
//! budgets with alerts and a hard cap ([`budget`]), and rating a period's meter readings under a contract
//! and a rate card version into invoice lines ([`rating`]). The billing
//! role (meters, invoices, payments, credits) builds on these; the
//! subscription lifecycle is [`crate::lifecycle::SubscriptionState`].

pub mod budget;
pub mod builtin;
pub mod credits;
pub mod meter;
pub mod period;
pub mod posting;
pub mod price;
pub mod rating;
pub mod records;

pub use meter::{aggregate, Aggregation, MeterEvent, MeterEventError, Reading};
pub use period::{monthly_period, Period, PeriodError};
pub use price::{Currency, Price, PriceError, Priced, Rate, Tier, TierCharge};
pub use rating::{
    adjustment, rate_period, ContractTerms, Line, LineSource, MeterDefinition, PriceRule, RateCard,
    Rated, RatingError,
};
pub use records::{
    amount_due, check_credit, check_void, CorrectionError, CreditNote, Invoice, Payment,
    PaymentState, Subscription, DEFAULT_GRACE_MS,
};
