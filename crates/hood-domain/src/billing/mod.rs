//! Billing's pure rules (design §8): money in minor units and exact
//! prices ([`price`]), monthly periods anchored to a contract's start
//! ([`period`]), and rating a period's meter readings under a contract
//! and a rate card version into invoice lines ([`rating`]). The billing
//! role (meters, invoices, payments, credits) builds on these; the
//! subscription lifecycle is [`crate::lifecycle::SubscriptionState`].

pub mod period;
pub mod price;
pub mod rating;

pub use period::{monthly_period, Period, PeriodError};
pub use price::{Currency, Price, PriceError, Priced, Rate, Tier, TierCharge};
pub use rating::{
    rate_period, ContractTerms, Line, LineSource, PriceRule, RateCard, Rated, RatingError, Reading,
};
