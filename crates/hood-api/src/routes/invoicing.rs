//! Billing's contracts and money: rate cards (the price book),
//! subscriptions, period close, invoices (JSON and a printable page),
//! payments recorded by an operator or opened as a Stripe checkout, and
//! Stripe's webhook.
//!
//! Operators (platform administrators) write the price book, contracts
//! and payments; an organization's members with `read_billing` read their
//! own subscriptions and invoices.

use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::extract::{Json, Query};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::edge::parse_instant;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hood_app::billing::{CloseReport, WebhookOutcome};
use hood_app::{BillingService, CreateSubscription};
use hood_domain::billing::{
    Aggregation, ContractTerms, CreditNote, Invoice, Line, LineSource, MeterDefinition, Payment,
    Price, PriceRule, Rate, RateCard, Reading, Subscription, Tier,
};
use hood_domain::identity::Permission;
use hood_domain::validate::FieldError;
use hood_domain::{InvoiceId, OrgId, SubscriptionId};
use hood_store::billing::{Checkout, CheckoutState, StoredRateCard};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Largest Stripe webhook body accepted.
pub const WEBHOOK_BODY_LIMIT_BYTES: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/billing/rate-cards",
            get(list_rate_cards).post(create_rate_card),
        )
        .route("/api/v1/billing/rate-cards/{version}", get(get_rate_card))
        .route("/api/v1/billing/close-period", post(close_period))
        .route("/api/v1/billing/reconciliation", get(reconciliation))
        .route(
            "/api/v1/subscriptions",
            get(list_subscriptions).post(create_subscription),
        )
        .route("/api/v1/subscriptions/{id}", get(get_subscription))
        .route(
            "/api/v1/subscriptions/{id}/cancel",
            post(cancel_subscription),
        )
        .route("/api/v1/invoices", get(list_invoices))
        .route("/api/v1/invoices/{id}", get(get_invoice))
        .route("/api/v1/invoices/{id}/print", get(print_invoice))
        .route("/api/v1/invoices/{id}/payments", post(record_payment))
        .route("/api/v1/invoices/{id}/checkout", post(checkout))
        .route("/api/v1/checkouts/{key}", get(get_checkout))
}

/// The webhook route: no bearer token (Stripe signs the body), its own
/// body limit.
pub fn webhook_router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/payments/stripe/webhook",
        post(stripe_webhook).layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT_BYTES)),
    )
}

pub(crate) fn service(state: &AppState) -> ApiResult<&BillingService> {
    state
        .billing
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("billing does not run in this process".into()))
}

/// The organization a caller reads: its own, or any for the platform.
pub(crate) fn scope(caller: &Caller) -> Option<OrgId> {
    (!caller.platform_admin).then_some(caller.org_id)
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError::new(field, message)])
}

// --- rate cards -----------------------------------------------------------

/// `amount_minor` per `per` units (2 cents per 10,000 CU is 2 / 10000).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateInput {
    pub amount_minor: u64,
    #[schema(minimum = 1)]
    pub per: u64,
}

/// One tier of a graduated price; the last has no `up_to`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierInput {
    pub up_to: Option<u64>,
    pub rate: RateInput,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    /// Units free before the first tier.
    #[serde(default)]
    pub included: u64,
    #[schema(min_items = 1)]
    pub tiers: Vec<TierInput>,
}

/// A rule: the price of one meter's readings whose dimensions match.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceRuleInput {
    /// `rpc.compute_units` (by `key`, `chain`, `method_class`),
    /// `node.seconds` (by `chain`, `node_type`; price per hour as
    /// `per: 3600`) or an ingested meter.
    pub meter: String,
    /// Dimension → value (`*`: any); the most specific rule wins.
    #[serde(default)]
    pub matches: BTreeMap<String, String>,
    pub price: PriceInput,
}

/// How an ingested meter is read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeterDefinitionInput {
    /// sum | count | max | latest
    #[schema(schema_with = crate::schemas::aggregation)]
    pub aggregation: String,
    #[serde(default)]
    pub group_by: Vec<String>,
}

/// A new rate card version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateCardInput {
    /// Default: the newest version plus one.
    #[schema(minimum = 1)]
    pub version: Option<u32>,
    /// ISO 4217, e.g. `USD`.
    pub currency: String,
    #[schema(min_items = 1)]
    pub rules: Vec<PriceRuleInput>,
    #[serde(default)]
    pub meters: BTreeMap<String, MeterDefinitionInput>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RateCardView {
    pub version: u32,
    pub currency: String,
    pub rules: Vec<PriceRuleInput>,
    pub meters: BTreeMap<String, MeterDefinitionInput>,
    pub created_at: String,
    /// When an invoice first used it; immutable since.
    pub used_at: Option<String>,
}

impl From<&StoredRateCard> for RateCardView {
    fn from(s: &StoredRateCard) -> Self {
        let c = &s.card;
        Self {
            version: c.version,
            currency: c.currency.to_string(),
            rules: c
                .rules
                .iter()
                .map(|r| PriceRuleInput {
                    meter: r.meter.clone(),
                    matches: r.matches.clone(),
                    price: PriceInput {
                        included: r.price.included,
                        tiers: r
                            .price
                            .tiers
                            .iter()
                            .map(|t| TierInput {
                                up_to: t.up_to,
                                rate: RateInput {
                                    amount_minor: t.rate.amount_minor,
                                    per: t.rate.per,
                                },
                            })
                            .collect(),
                    },
                })
                .collect(),
            meters: c
                .meters
                .iter()
                .map(|(k, d)| {
                    (
                        k.clone(),
                        MeterDefinitionInput {
                            aggregation: d.aggregation.as_str().to_owned(),
                            group_by: d.group_by.clone(),
                        },
                    )
                })
                .collect(),
            created_at: rfc3339(s.created_at),
            used_at: s.used_at.map(rfc3339),
        }
    }
}

fn rate_card_from(input: RateCardInput) -> ApiResult<RateCard> {
    let currency = input
        .currency
        .parse()
        .map_err(|e: hood_domain::billing::PriceError| invalid("currency", e.to_string()))?;
    let mut meters = BTreeMap::new();
    for (name, d) in input.meters {
        let aggregation = Aggregation::parse(&d.aggregation)
            .ok_or_else(|| invalid("meters", "aggregation must be sum, count, max or latest"))?;
        meters.insert(
            name,
            MeterDefinition {
                aggregation,
                group_by: d.group_by,
            },
        );
    }
    Ok(RateCard {
        version: input.version.unwrap_or(0),
        currency,
        rules: input
            .rules
            .into_iter()
            .map(|r| PriceRule {
                meter: r.meter,
                matches: r.matches,
                price: Price {
                    included: r.price.included,
                    tiers: r
                        .price
                        .tiers
                        .into_iter()
                        .map(|t| Tier {
                            up_to: t.up_to,
                            rate: Rate {
                                amount_minor: t.rate.amount_minor,
                                per: t.rate.per,
                            },
                        })
                        .collect(),
                },
            })
            .collect(),
        meters,
    })
}

#[utoipa::path(post, path = "/api/v1/billing/rate-cards", tag = "billing", request_body = RateCardInput,
    responses((status = 201, body = RateCardView),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The version exists (versions never change)"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["manage_billing", "platform_admin"])))]
/// Adds a rate card version (operators).
pub async fn create_rate_card(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<RateCardInput>,
) -> ApiResult<Response> {
    caller.require(Permission::ManageBilling)?;
    caller.require_platform_admin()?;
    let card = rate_card_from(input)?;
    let stored = service(&state)?.create_rate_card(card).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(RateCardView::from(&stored)),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/billing/rate-cards", tag = "billing",
    responses((status = 200, body = [RateCardView]),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// Every rate card version, newest first.
pub async fn list_rate_cards(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<RateCardView>>> {
    caller.require(Permission::ReadBilling)?;
    let cards = service(&state)?.rate_cards().await?;
    Ok(Json(cards.iter().map(RateCardView::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/billing/rate-cards/{version}", tag = "billing",
    params(("version" = u32, Path)),
    responses((status = 200, body = RateCardView),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["read_billing"])))]
pub async fn get_rate_card(
    State(state): State<AppState>,
    caller: Caller,
    Path(version): Path<String>,
) -> ApiResult<Json<RateCardView>> {
    caller.require(Permission::ReadBilling)?;
    let version: u32 = version
        .parse()
        .map_err(|_| invalid("version", "must be a positive integer"))?;
    let card = service(&state)?.rate_card(version).await?;
    Ok(Json(RateCardView::from(&card)))
}

// --- subscriptions ----------------------------------------------------------

/// A contract's terms.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TermsInput {
    /// fixed | metered | hybrid
    #[schema(schema_with = crate::schemas::contract_kind)]
    pub kind: String,
    /// The fee per period (fixed, hybrid), minor units.
    pub fee_minor: Option<u64>,
    /// Units per meter the fee includes (hybrid).
    #[serde(default)]
    pub included: BTreeMap<String, u64>,
}

impl TermsInput {
    fn to_domain(&self) -> ApiResult<ContractTerms> {
        let fee = || {
            self.fee_minor.ok_or_else(|| {
                invalid("terms", format!("a {} contract needs fee_minor", self.kind))
            })
        };
        Ok(match self.kind.as_str() {
            "fixed" => ContractTerms::Fixed { fee_minor: fee()? },
            "metered" => ContractTerms::Metered,
            "hybrid" => ContractTerms::Hybrid {
                fee_minor: fee()?,
                included: self.included.clone(),
            },
            _ => return Err(invalid("terms", "kind must be fixed, metered or hybrid")),
        })
    }

    fn from_domain(t: &ContractTerms) -> Self {
        match t {
            ContractTerms::Fixed { fee_minor } => Self {
                kind: "fixed".into(),
                fee_minor: Some(*fee_minor),
                included: BTreeMap::new(),
            },
            ContractTerms::Metered => Self {
                kind: "metered".into(),
                fee_minor: None,
                included: BTreeMap::new(),
            },
            ContractTerms::Hybrid {
                fee_minor,
                included,
            } => Self {
                kind: "hybrid".into(),
                fee_minor: Some(*fee_minor),
                included: included.clone(),
            },
        }
    }
}

/// A new contract for an organization.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    /// Default: the caller's organization.
    pub org_id: Option<Uuid>,
    pub terms: TermsInput,
    /// ISO 4217; must be the rate card's.
    pub currency: String,
    /// `YYYY-MM-DD` (UTC): periods start on this day of each month.
    #[schema(format = Date)]
    pub start_date: String,
    /// Default: the newest rate card.
    pub rate_card_version: Option<u32>,
    /// Hours of grace after a failed payment (default 72).
    #[schema(maximum = 8760)]
    pub grace_hours: Option<u32>,
    /// Optional monthly budget, minor units: alerts at 50, 80 and 100 %.
    pub budget_minor: Option<u64>,
    /// Refuse metered spending once the budget is reached (needs a budget).
    #[serde(default)]
    pub budget_hard_cap: bool,
    /// Wait for the first payment before the subscription is active.
    #[serde(default)]
    pub pending_payment: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub terms: TermsInput,
    pub currency: String,
    pub start_date: String,
    pub rate_card_version: u32,
    pub grace_hours: f64,
    pub budget_minor: Option<u64>,
    pub budget_hard_cap: bool,
    /// pending_payment | active | grace | expired | cancelled
    pub state: String,
    pub state_since: String,
    pub grace_until: Option<String>,
    pub reason: Option<String>,
    /// The end of the last period invoiced.
    pub billed_through: Option<String>,
    pub created_at: String,
}

impl From<&Subscription> for SubscriptionView {
    fn from(s: &Subscription) -> Self {
        Self {
            id: *s.id.as_uuid(),
            org_id: *s.org_id.as_uuid(),
            terms: TermsInput::from_domain(&s.terms),
            currency: s.currency.to_string(),
            start_date: s.start_date.to_string(),
            rate_card_version: s.rate_card_version,
            // Display only; the stored value is whole milliseconds.
            #[allow(clippy::cast_precision_loss)]
            grace_hours: s.grace_ms as f64 / 3_600_000.0,
            budget_minor: s.budget_minor,
            budget_hard_cap: s.budget_hard_cap,
            state: s.state.to_string(),
            state_since: rfc3339(s.state_since),
            grace_until: s.grace_until.map(rfc3339),
            reason: s.reason.clone(),
            billed_through: s.billed_through.map(|d| d.to_string()),
            created_at: rfc3339(s.created_at),
        }
    }
}

fn parse_date(field: &'static str, raw: &str) -> ApiResult<time::Date> {
    time::Date::parse(
        raw,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| invalid(field, "must be a date, YYYY-MM-DD"))
}

#[utoipa::path(post, path = "/api/v1/subscriptions", tag = "billing", request_body = SubscriptionInput,
    responses((status = 201, body = SubscriptionView),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The organization has a live subscription"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["manage_billing", "platform_admin"])))]
/// Puts an organization on a contract (operators).
pub async fn create_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<SubscriptionInput>,
) -> ApiResult<Response> {
    caller.require(Permission::ManageBilling)?;
    caller.require_platform_admin()?;
    let terms = input.terms.to_domain()?;
    let currency = input
        .currency
        .parse()
        .map_err(|e: hood_domain::billing::PriceError| invalid("currency", e.to_string()))?;
    let start_date = parse_date("start_date", &input.start_date)?;
    if input.grace_hours.is_some_and(|h| h > 8_760) {
        return Err(invalid("grace_hours", "at most 8760 (a year)"));
    }
    let org = input.org_id.map_or(caller.org_id, OrgId::from_uuid);
    if input.org_id.is_some() {
        state
            .store
            .get_org(org)
            .await?
            .ok_or_else(|| invalid("org_id", "no such organization"))?;
    }
    let sub = service(&state)?
        .create_subscription(
            org,
            CreateSubscription {
                terms,
                currency,
                start_date,
                rate_card_version: input.rate_card_version,
                grace_ms: input.grace_hours.map(|h| i64::from(h) * 3_600_000),
                budget_minor: input.budget_minor,
                budget_hard_cap: input.budget_hard_cap,
                pending_payment: input.pending_payment,
            },
        )
        .await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(SubscriptionView::from(&sub)),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "billing",
    responses((status = 200, body = [SubscriptionView]),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// The organization's subscriptions (every organization's, for operators),
/// newest first.
pub async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SubscriptionView>>> {
    caller.require(Permission::ReadBilling)?;
    let subs = service(&state)?.subscriptions(scope(&caller)).await?;
    Ok(Json(subs.iter().map(SubscriptionView::from).collect()))
}

pub(crate) fn parse_uuid(field: &'static str, raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| invalid(field, "must be a UUID"))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{id}", tag = "billing",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SubscriptionView),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["read_billing"])))]
pub async fn get_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionView>> {
    caller.require(Permission::ReadBilling)?;
    let id = SubscriptionId::from_uuid(parse_uuid("id", &id)?);
    let sub = service(&state)?.subscription(scope(&caller), id).await?;
    Ok(Json(SubscriptionView::from(&sub)))
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/cancel", tag = "billing",
    params(("id" = Uuid, Path)), request_body = CancelInput,
    responses((status = 200, body = SubscriptionView),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "Already ended"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["manage_billing"])))]
/// Ends a subscription; its last period is still invoiced.
pub async fn cancel_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<CancelInput>,
) -> ApiResult<Json<SubscriptionView>> {
    caller.require(Permission::ManageBilling)?;
    let id = SubscriptionId::from_uuid(parse_uuid("id", &id)?);
    if input.reason.as_ref().is_some_and(|r| r.len() > 500) {
        return Err(invalid("reason", "at most 500 characters"));
    }
    let sub = service(&state)?
        .cancel_subscription(scope(&caller), id, input.reason)
        .await?;
    Ok(Json(SubscriptionView::from(&sub)))
}

// --- period close -----------------------------------------------------------

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClosePeriodInput {
    /// Close the periods that ended by this instant (RFC 3339 or Unix
    /// milliseconds); default: now.
    #[schema(schema_with = crate::schemas::optional_instant)]
    pub as_of: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CloseFailureView {
    pub subscription_id: Uuid,
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CloseReportView {
    /// Invoices issued by this close.
    pub issued: Vec<InvoiceView>,
    /// Periods that already had their invoice.
    pub existing: usize,
    pub failed: Vec<CloseFailureView>,
}

impl From<&CloseReport> for CloseReportView {
    fn from(r: &CloseReport) -> Self {
        Self {
            issued: r.issued.iter().map(|i| InvoiceView::of(i, &[])).collect(),
            existing: r.existing,
            failed: r
                .failed
                .iter()
                .map(|(id, reason)| CloseFailureView {
                    subscription_id: *id.as_uuid(),
                    reason: reason.clone(),
                })
                .collect(),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/billing/close-period", tag = "billing", request_body = ClosePeriodInput,
    responses((status = 200, body = CloseReportView),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["manage_billing", "platform_admin"])))]
/// Closes every period that has ended and has no invoice (operators; the
/// billing role does this on its own). Safe to repeat.
pub async fn close_period(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<ClosePeriodInput>,
) -> ApiResult<Json<CloseReportView>> {
    caller.require(Permission::ManageBilling)?;
    caller.require_platform_admin()?;
    let as_of = input
        .as_of
        .as_deref()
        .map(|raw| parse_instant("as_of", raw))
        .transpose()
        .map_err(|e| ApiError::Validation(vec![e]))?;
    let report = service(&state)?.close_periods(as_of, None).await?;
    Ok(Json(CloseReportView::from(&report)))
}

// --- reconciliation -------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationQuery {
    /// Invoices of periods starting on or after this day (YYYY-MM-DD).
    #[param(format = Date)]
    pub from: Option<String>,
    /// …and before this day.
    #[param(format = Date)]
    pub to: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReconciliationItemView {
    /// not_posted | missing_transfer | transfer_differs | underpaid |
    /// overpaid | paid_void_invoice | orphan_transfer
    pub kind: String,
    pub reference: String,
    pub org_id: Option<Uuid>,
    pub amount_minor: u64,
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReconciliationView {
    pub invoices: usize,
    pub payments: usize,
    pub invoiced_minor: u64,
    /// Taken back by credit notes.
    pub credited_minor: u64,
    pub paid_minor: u64,
    /// Money whose invoice, payments and ledger transfers agree.
    pub matched_minor: u64,
    /// Money an item explains.
    pub itemized_minor: u64,
    pub items: Vec<ReconciliationItemView>,
}

#[utoipa::path(get, path = "/api/v1/billing/reconciliation", tag = "billing", params(ReconciliationQuery),
    responses((status = 200, body = ReconciliationView),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["read_billing", "platform_admin"])))]
/// Invoices and provider payments against the ledger: what agrees, and an
/// item with its reason for every difference (operators).
pub async fn reconciliation(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ReconciliationQuery>,
) -> ApiResult<Json<ReconciliationView>> {
    caller.require(Permission::ReadBilling)?;
    caller.require_platform_admin()?;
    let from = q
        .from
        .as_deref()
        .map(|d| parse_date("from", d))
        .transpose()?;
    let to = q.to.as_deref().map(|d| parse_date("to", d)).transpose()?;
    let r = service(&state)?.reconcile(from, to).await?;
    Ok(Json(ReconciliationView {
        invoices: r.invoices,
        payments: r.payments,
        invoiced_minor: r.invoiced_minor,
        credited_minor: r.credited_minor,
        paid_minor: r.paid_minor,
        matched_minor: r.matched_minor,
        itemized_minor: r.itemized_minor,
        items: r
            .items
            .into_iter()
            .map(|i| ReconciliationItemView {
                kind: i.kind.to_owned(),
                reference: i.reference,
                org_id: i.org_id.map(|o| *o.as_uuid()),
                amount_minor: i.amount_minor,
                reason: i.reason,
            })
            .collect(),
    }))
}

// --- invoices -----------------------------------------------------------------

/// One line of an invoice.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LineView {
    /// fee | usage | adjustment | allocations
    pub kind: String,
    pub description: String,
    pub amount_minor: u64,
    pub rate_card_version: u32,
    /// The meter and dimensions a usage line rated.
    pub meter: Option<String>,
    pub dimensions: Option<BTreeMap<String, String>>,
    pub quantity: Option<u64>,
    /// Units of the quantity that were free.
    pub included: Option<u64>,
    /// The earlier period an adjustment bills late usage of.
    pub adjusts_period_start: Option<String>,
    pub adjusts_period_end: Option<String>,
    /// What a minute of an allocations line's SKU cost when its
    /// allocations were made (`dimensions` names the `sku`, `quantity`
    /// the seconds they were active).
    pub price_per_minute_minor: Option<u64>,
}

fn describe_reading(r: &Reading) -> String {
    let dims: Vec<String> = r
        .dimensions
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if dims.is_empty() {
        r.meter.clone()
    } else {
        format!("{} ({})", r.meter, dims.join(", "))
    }
}

impl From<&Line> for LineView {
    fn from(l: &Line) -> Self {
        let base = LineView {
            kind: String::new(),
            description: String::new(),
            amount_minor: l.amount_minor,
            rate_card_version: l.rate_card_version,
            meter: None,
            dimensions: None,
            quantity: None,
            included: None,
            adjusts_period_start: None,
            adjusts_period_end: None,
            price_per_minute_minor: None,
        };
        match &l.source {
            LineSource::Fee => LineView {
                kind: "fee".into(),
                description: "Contract fee".into(),
                ..base
            },
            LineSource::Usage {
                reading, priced, ..
            } => LineView {
                kind: "usage".into(),
                description: describe_reading(reading),
                meter: Some(reading.meter.clone()),
                dimensions: Some(reading.dimensions.clone()),
                quantity: Some(reading.quantity),
                included: Some(priced.included),
                ..base
            },
            LineSource::Adjustment { period, .. } => LineView {
                kind: "adjustment".into(),
                description: format!(
                    "Late usage of the period {} to {}",
                    period.start, period.end
                ),
                adjusts_period_start: Some(period.start.to_string()),
                adjusts_period_end: Some(period.end.to_string()),
                ..base
            },
            LineSource::Allocations {
                sku,
                price_per_minute_minor,
                seconds,
            } => LineView {
                kind: "allocations".into(),
                description: format!(
                    "Allocations of {sku} ({seconds} s at {price_per_minute_minor} minor units a minute)"
                ),
                dimensions: Some(BTreeMap::from([("sku".to_owned(), sku.clone())])),
                quantity: Some(*seconds),
                price_per_minute_minor: Some(*price_per_minute_minor),
                ..base
            },
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadingLineView {
    pub meter: String,
    pub dimensions: BTreeMap<String, String>,
    pub quantity: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub invoice_id: Option<Uuid>,
    /// local | stripe
    pub provider: String,
    pub reference: String,
    pub amount_minor: u64,
    pub currency: String,
    /// succeeded | failed | refunded
    pub state: String,
    pub created_at: String,
    /// When the ledger confirmed it.
    pub posted_at: Option<String>,
}

impl From<&Payment> for PaymentView {
    fn from(p: &Payment) -> Self {
        Self {
            id: *p.id.as_uuid(),
            invoice_id: p.invoice_id.map(|i| *i.as_uuid()),
            provider: p.provider.clone(),
            reference: p.reference.clone(),
            amount_minor: p.amount_minor,
            currency: p.currency.to_string(),
            state: p.state.as_str().to_owned(),
            created_at: rfc3339(p.created_at),
            posted_at: p.posted_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvoiceView {
    pub id: Uuid,
    /// `YYYY-NNNNNN`, without gaps per year.
    pub number: Option<String>,
    /// draft | issued | paid | void
    pub state: String,
    pub org_id: Uuid,
    pub subscription_id: Uuid,
    pub period_start: String,
    pub period_end: String,
    pub currency: String,
    /// The sum of the lines, in minor units.
    pub total_minor: u64,
    pub rate_card_version: u32,
    pub lines: Vec<LineView>,
    /// The meter readings the usage lines were rated from.
    pub readings: Vec<ReadingLineView>,
    pub issued_at: Option<String>,
    pub paid_at: Option<String>,
    /// When the ledger confirmed the invoice's transfer.
    pub posted_at: Option<String>,
    pub voided_at: Option<String>,
    pub void_reason: Option<String>,
    pub payments: Vec<PaymentView>,
    /// Its corrections (on `GET /api/v1/invoices/{id}`; absent in lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_notes: Option<Vec<CreditNoteView>>,
    /// What is still owed: the total less its credit notes (on
    /// `GET /api/v1/invoices/{id}`; absent in lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_due_minor: Option<u64>,
}

/// A credit note: part or all of an issued invoice taken back.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreditNoteView {
    pub id: Uuid,
    /// `CN-YYYY-NNNNNN`, without gaps per year.
    pub number: String,
    pub invoice_id: Uuid,
    pub org_id: Uuid,
    pub currency: String,
    pub amount_minor: u64,
    pub reason: String,
    pub created_at: String,
    /// When the ledger confirmed its transfer (revenue → receivable).
    pub posted_at: Option<String>,
}

impl From<&CreditNote> for CreditNoteView {
    fn from(n: &CreditNote) -> Self {
        Self {
            id: *n.id.as_uuid(),
            number: n.number.clone(),
            invoice_id: *n.invoice_id.as_uuid(),
            org_id: *n.org_id.as_uuid(),
            currency: n.currency.to_string(),
            amount_minor: n.amount_minor,
            reason: n.reason.clone(),
            created_at: rfc3339(n.created_at),
            posted_at: n.posted_at.map(rfc3339),
        }
    }
}

impl InvoiceView {
    /// With its credit notes and what is due.
    pub(crate) fn detailed(i: &Invoice, payments: &[Payment], notes: &[CreditNote]) -> Self {
        let credited: u64 = notes.iter().map(|n| n.amount_minor).sum();
        Self {
            credit_notes: Some(notes.iter().map(CreditNoteView::from).collect()),
            amount_due_minor: Some(hood_domain::billing::amount_due(i.total_minor, credited)),
            ..Self::of(i, payments)
        }
    }

    pub(crate) fn of(i: &Invoice, payments: &[Payment]) -> Self {
        Self {
            id: *i.id.as_uuid(),
            number: i.number.clone(),
            state: i.state.to_string(),
            org_id: *i.org_id.as_uuid(),
            subscription_id: *i.subscription_id.as_uuid(),
            period_start: i.period.start.to_string(),
            period_end: i.period.end.to_string(),
            currency: i.currency.to_string(),
            total_minor: i.total_minor,
            rate_card_version: i.rate_card_version,
            lines: i.lines.iter().map(LineView::from).collect(),
            readings: i
                .readings
                .iter()
                .map(|r| ReadingLineView {
                    meter: r.meter.clone(),
                    dimensions: r.dimensions.clone(),
                    quantity: r.quantity,
                })
                .collect(),
            issued_at: i.issued_at.map(rfc3339),
            paid_at: i.paid_at.map(rfc3339),
            posted_at: i.posted_at.map(rfc3339),
            voided_at: i.voided_at.map(rfc3339),
            void_reason: i.void_reason.clone(),
            payments: payments.iter().map(PaymentView::from).collect(),
            credit_notes: None,
            amount_due_minor: None,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InvoiceListQuery {
    pub subscription_id: Option<String>,
    /// At most 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/invoices", tag = "billing", params(InvoiceListQuery),
    responses((status = 200, body = [InvoiceView]),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// The organization's invoices (every organization's, for operators),
/// newest period first.
pub async fn list_invoices(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<InvoiceListQuery>,
) -> ApiResult<Json<Vec<InvoiceView>>> {
    caller.require(Permission::ReadBilling)?;
    let sub = q
        .subscription_id
        .as_deref()
        .map(|s| parse_uuid("subscription_id", s).map(SubscriptionId::from_uuid))
        .transpose()?;
    if q.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(invalid("limit", "must be 1 to 1000"));
    }
    let invoices = service(&state)?
        .invoices(scope(&caller), sub, q.limit)
        .await?;
    Ok(Json(
        invoices.iter().map(|i| InvoiceView::of(i, &[])).collect(),
    ))
}

async fn invoice_with_payments(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<(Invoice, Vec<Payment>, Vec<CreditNote>)> {
    caller.require(Permission::ReadBilling)?;
    let id = InvoiceId::from_uuid(parse_uuid("id", id)?);
    let billing = service(state)?;
    let invoice = billing.invoice(scope(caller), id).await?;
    let payments = billing.invoice_payments(scope(caller), id).await?;
    let notes = billing.credit_notes(scope(caller), Some(id)).await?;
    Ok((invoice, payments, notes))
}

#[utoipa::path(get, path = "/api/v1/invoices/{id}", tag = "billing", params(("id" = Uuid, Path)),
    responses((status = 200, body = InvoiceView),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// One invoice with its lines, the readings they came from, and its
/// payments.
pub async fn get_invoice(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<InvoiceView>> {
    let (invoice, payments, notes) = invoice_with_payments(&state, &caller, &id).await?;
    Ok(Json(InvoiceView::detailed(&invoice, &payments, &notes)))
}

#[utoipa::path(get, path = "/api/v1/invoices/{id}/print", tag = "billing", params(("id" = Uuid, Path)),
    responses((status = 200, content_type = "text/html", body = String, description = "A printable page"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// The invoice as a printable HTML page.
pub async fn print_invoice(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (invoice, payments, notes) = invoice_with_payments(&state, &caller, &id).await?;
    let org = state.store.get_org(invoice.org_id).await?;
    let mut page = Html(crate::invoice_page::render(
        &invoice,
        &payments,
        &notes,
        org.as_ref().map(|o| o.name.as_str()),
    ))
    .into_response();
    page.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    Ok(page)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    /// The bank's (or other) reference: one payment per reference.
    #[schema(min_length = 1, max_length = 200)]
    pub reference: String,
    /// Default: what is due (the total less credit notes).
    pub amount_minor: Option<u64>,
}

#[utoipa::path(post, path = "/api/v1/invoices/{id}/payments", tag = "billing",
    params(("id" = Uuid, Path)), request_body = PaymentInput,
    responses((status = 200, body = PaymentView, description = "Recorded (or recorded before under this reference)"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The invoice takes no payments"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["manage_billing", "platform_admin"])))]
/// Records a payment received outside a provider (a bank transfer; the
/// `local` provider). Operators only.
pub async fn record_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<PaymentInput>,
) -> ApiResult<Json<PaymentView>> {
    caller.require(Permission::ManageBilling)?;
    caller.require_platform_admin()?;
    let id = InvoiceId::from_uuid(parse_uuid("id", &id)?);
    let payment = service(&state)?
        .record_local_payment(id, &input.reference, input.amount_minor)
        .await?;
    Ok(Json(PaymentView::from(&payment)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutInput {
    #[schema(pattern = "^https?://\\S+$", max_length = 2048)]
    pub success_url: String,
    #[schema(pattern = "^https?://\\S+$", max_length = 2048)]
    pub cancel_url: String,
}

/// A hosted checkout. When the payment provider is down the request is
/// kept (`pending`, answered with 202) and the billing role sends it again
/// with backoff; follow it at `GET /api/v1/checkouts/{key}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckoutView {
    /// The request's idempotency key.
    pub key: String,
    /// open | pending | failed
    pub state: String,
    /// The provider's session id, once open.
    pub id: Option<String>,
    /// The hosted page to send the customer to, once open.
    pub url: Option<String>,
    pub attempts: u32,
    /// When a pending checkout is tried again.
    pub next_attempt_at: Option<String>,
    /// Why the last attempt did not open it.
    pub last_error: Option<String>,
}

impl From<&Checkout> for CheckoutView {
    fn from(c: &Checkout) -> Self {
        Self {
            key: c.idempotency_key.clone(),
            state: c.state.as_str().to_owned(),
            id: c.session_id.clone(),
            url: c.url.clone(),
            attempts: c.attempts,
            next_attempt_at: c.next_attempt_at.map(rfc3339),
            last_error: c.last_error.clone(),
        }
    }
}

/// 200 with an open checkout, 202 with one waiting for the provider.
pub(crate) fn checkout_response(c: &Checkout) -> Response {
    let status = match c.state {
        CheckoutState::Pending => axum::http::StatusCode::ACCEPTED,
        _ => axum::http::StatusCode::OK,
    };
    (status, Json(CheckoutView::from(c))).into_response()
}

#[utoipa::path(get, path = "/api/v1/checkouts/{key}", tag = "billing",
    params(("key" = String, Path, description = "The checkout's idempotency key")),
    responses((status = 200, body = CheckoutView),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// A checkout as it stands: open with its URL, or still waiting for the
/// payment provider.
pub async fn get_checkout(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<CheckoutView>> {
    caller.require(Permission::ReadBilling)?;
    if key.is_empty() || key.len() > 300 {
        return Err(invalid("key", "1 to 300 characters"));
    }
    let c = service(&state)?
        .checkout_status(scope(&caller), &key)
        .await?;
    Ok(Json(CheckoutView::from(&c)))
}

/// A redirect target for a hosted checkout: an http(s) URL.
pub(crate) fn check_url(field: &'static str, raw: &str) -> ApiResult<()> {
    let ok = (raw.starts_with("https://") || raw.starts_with("http://"))
        && raw.len() <= 2048
        && !raw.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(invalid(field, "must be an http(s) URL"))
    }
}

#[utoipa::path(post, path = "/api/v1/invoices/{id}/checkout", tag = "billing",
    params(("id" = Uuid, Path)), request_body = CheckoutInput,
    responses((status = 200, body = CheckoutView, description = "Open: send the customer to its URL"),
        (status = 202, body = CheckoutView, description = "The provider is down: kept and retried (follow it at /api/v1/checkouts/{key})"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The invoice is not payable, or the provider refused"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "No payment provider is configured")),
    security(("bearer" = ["manage_billing"])))]
/// Opens a hosted checkout (Stripe) for an issued invoice; asking again
/// answers the same session.
pub async fn checkout(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<CheckoutInput>,
) -> ApiResult<Response> {
    caller.require(Permission::ManageBilling)?;
    let id = InvoiceId::from_uuid(parse_uuid("id", &id)?);
    check_url("success_url", &input.success_url)?;
    check_url("cancel_url", &input.cancel_url)?;
    let c = service(&state)?
        .checkout(scope(&caller), id, input.success_url, input.cancel_url)
        .await?;
    Ok(checkout_response(&c))
}

// --- Stripe webhook -------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    pub event: String,
    /// handled | duplicate | ignored
    pub outcome: String,
}

#[utoipa::path(post, path = "/api/v1/payments/stripe/webhook", tag = "billing",
    request_body(content = String, content_type = "application/json", description = "A Stripe event, exactly as Stripe sent it"),
    params(("Stripe-Signature" = String, Header, description = "t=…,v1=…")),
    responses((status = 200, body = WebhookView),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Webhooks are not configured, or the event names a payment not seen yet (Stripe delivers again)")))]
/// Stripe's webhook: verified on the raw body (HMAC-SHA256, 300 s
/// tolerance), de-duplicated by event id.
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<WebhookView>> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| invalid("Stripe-Signature", "the header is missing"))?;
    let outcome = service(&state)?.stripe_webhook(&body, signature).await?;
    let (event, outcome) = match outcome {
        WebhookOutcome::Handled { event, .. } => (event, "handled"),
        WebhookOutcome::Duplicate { event } => (event, "duplicate"),
        WebhookOutcome::Ignored { event, .. } => (event, "ignored"),
    };
    Ok(Json(WebhookView {
        event,
        outcome: outcome.into(),
    }))
}
