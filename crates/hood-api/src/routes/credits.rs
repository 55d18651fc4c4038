//! Prepaid credits: the balance and why an organization is cut off, turning
//! credits on (operators), top-ups recorded by an operator or paid through
//! a Stripe checkout.

use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::extract::{Json, Query};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::invoicing::{
    check_url, checkout_response, invalid, service, CheckoutView, PaymentView,
};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hood_app::billing::{CreditRefund, CreditsView, EnableCredits};
use hood_domain::identity::Permission;
use hood_domain::OrgId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/credits", get(get_credits).post(enable_credits))
        .route("/api/v1/credits/top-ups", post(top_up))
        .route("/api/v1/credits/refunds", post(refund))
        .route("/api/v1/credits/checkout", post(checkout))
}

/// The organization asked about: the caller's, or any for the platform.
fn org_of(caller: &Caller, asked: Option<Uuid>) -> ApiResult<OrgId> {
    match asked.map(OrgId::from_uuid) {
        None => Ok(caller.org_id),
        Some(org) if caller.sees_org(org) => Ok(org),
        // Another tenant's: as if it did not exist.
        Some(_) => Err(ApiError::NotFound("credit account")),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreditsViewBody {
    pub org_id: Uuid,
    /// The ledger account holding the balance: its transfers are the
    /// balance's history (`GET /api/v1/ledger/transfers?account_id=…`).
    pub ledger_account_id: Uuid,
    /// active | stopped
    pub state: String,
    /// Why the organization is cut off.
    pub reason: Option<String>,
    pub state_since: String,
    pub currency: String,
    /// What may still be spent, in whole minor units (rounded down)…
    pub available_minor: u64,
    /// …and exactly, in the ledger's units (micro-dollars for USD).
    pub available_units: u64,
    /// Reserved by the current window's hold (ledger units).
    pub held_units: u64,
    /// Spent so far (ledger units).
    pub spent_units: u64,
    pub ledger_scale: u8,
    pub window_seconds: i64,
    pub rate_card_version: u32,
    pub low_balance_minor: Vec<u64>,
    /// Every window before this instant is charged.
    pub accrued_through: String,
}

impl From<&CreditsView> for CreditsViewBody {
    fn from(v: &CreditsView) -> Self {
        let a = &v.account;
        Self {
            org_id: *a.org_id.as_uuid(),
            ledger_account_id: *v.ledger_account.as_uuid(),
            state: a.state.as_str().to_owned(),
            reason: a.reason.clone(),
            state_since: rfc3339(a.state_since),
            currency: v.currency.to_string(),
            available_minor: v.available_minor,
            available_units: v.available_units,
            held_units: v.held_units,
            spent_units: v.spent_units,
            ledger_scale: v.ledger_scale,
            window_seconds: a.window_ms / 1000,
            rate_card_version: a.rate_card_version,
            low_balance_minor: a.low_balance_minor.clone(),
            accrued_through: rfc3339(a.accrued_through),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CreditsQuery {
    /// Another organization's (platform administrators).
    pub org_id: Option<Uuid>,
}

#[utoipa::path(get, path = "/api/v1/credits", tag = "billing", params(CreditsQuery),
    responses((status = 200, body = CreditsViewBody),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "The organization does not run on credits"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// The organization's prepaid credits: balance, hold, and whether (and
/// why) it is cut off.
pub async fn get_credits(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<CreditsQuery>,
) -> ApiResult<Json<CreditsViewBody>> {
    caller.require(Permission::ReadBilling)?;
    let org = org_of(&caller, q.org_id)?;
    let view = service(&state)?.credits(org).await?;
    Ok(Json(CreditsViewBody::from(&view)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableCreditsInput {
    /// Default: the caller's organization.
    pub org_id: Option<Uuid>,
    /// Default: the newest rate card.
    pub rate_card_version: Option<u32>,
    /// Accrual window, 1 to 3600 seconds (default 60).
    #[schema(minimum = 1, maximum = 3600)]
    pub window_seconds: Option<i64>,
    /// Warn below these balances (minor units).
    #[serde(default)]
    pub low_balance_minor: Vec<u64>,
}

#[utoipa::path(post, path = "/api/v1/credits", tag = "billing", request_body = EnableCreditsInput,
    responses((status = 201, body = CreditsViewBody),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The organization runs on credits already"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["manage_billing", "platform_admin"])))]
/// Runs an organization on prepaid credits from now on (operators). Its
/// first hold is placed at once: without credits it starts cut off.
pub async fn enable_credits(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<EnableCreditsInput>,
) -> ApiResult<Response> {
    caller.require(Permission::ManageBilling)?;
    caller.require_platform_admin()?;
    let org = input.org_id.map_or(caller.org_id, OrgId::from_uuid);
    if input.org_id.is_some() {
        state
            .store
            .get_org(org)
            .await?
            .ok_or_else(|| invalid("org_id", "no such organization"))?;
    }
    if input.low_balance_minor.len() > 10 {
        return Err(invalid("low_balance_minor", "at most 10 thresholds"));
    }
    let billing = service(&state)?;
    billing
        .enable_credits(
            org,
            EnableCredits {
                rate_card_version: input.rate_card_version,
                window_ms: input.window_seconds.map(|s| s.saturating_mul(1000)),
                low_balance_minor: input.low_balance_minor,
            },
        )
        .await?;
    let view = billing.credits(org).await?;
    Ok((StatusCode::CREATED, Json(CreditsViewBody::from(&view))).into_response())
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpInput {
    /// Default: the caller's organization.
    pub org_id: Option<Uuid>,
    #[schema(minimum = 1)]
    pub amount_minor: u64,
    /// The payment's reference (a bank transfer's): one top-up per reference.
    #[schema(min_length = 1, max_length = 200)]
    pub reference: String,
}

#[utoipa::path(post, path = "/api/v1/credits/top-ups", tag = "billing", request_body = TopUpInput,
    responses((status = 200, body = PaymentView, description = "Recorded (or recorded before under this reference); a cut-off organization resumes at once"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "The organization does not run on credits"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["manage_billing", "platform_admin"])))]
/// Records a top-up paid outside a provider (operators).
pub async fn top_up(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<TopUpInput>,
) -> ApiResult<Json<PaymentView>> {
    caller.require(Permission::ManageBilling)?;
    caller.require_platform_admin()?;
    let org = input.org_id.map_or(caller.org_id, OrgId::from_uuid);
    let payment = service(&state)?
        .top_up(org, "local", &input.reference, input.amount_minor)
        .await?;
    Ok(Json(PaymentView::from(&payment)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundInput {
    /// Default: the caller's organization.
    pub org_id: Option<Uuid>,
    #[schema(minimum = 1)]
    pub amount_minor: u64,
    /// Unique per refund of the organization: a retry with the same
    /// reference is the same refund.
    #[schema(min_length = 1, max_length = 200)]
    pub reference: String,
    /// Why (kept in the audit log).
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefundView {
    /// The ledger transfer that moved it (revenue ← the organization's
    /// credits).
    pub transfer_id: Uuid,
    pub org_id: Uuid,
    pub amount_minor: u64,
    pub currency: String,
    /// False when this reference was refunded before.
    pub created: bool,
}

#[utoipa::path(post, path = "/api/v1/credits/refunds", tag = "billing", request_body = RefundInput,
    responses((status = 201, body = RefundView, description = "Refunded (a cut-off organization resumes at once when the balance covers a hold)"),
        (status = 200, body = RefundView, description = "This reference was refunded before; nothing new moved"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "No amount, reference or reason"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "The organization does not run on credits"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The reference was used for another refund, or the ledger refused it"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["manage_billing", "platform_admin"])))]
/// Gives spent money back to an organization's prepaid credits, with a
/// reason (operators): one ledger transfer, one audit row.
pub async fn refund(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    Json(input): Json<RefundInput>,
) -> ApiResult<Response> {
    caller.require(Permission::ManageBilling)?;
    caller.require_platform_admin()?;
    let org = input.org_id.map_or(caller.org_id, OrgId::from_uuid);
    let ctx = crate::routes::allocations::audit_context(&caller, &headers);
    let done = service(&state)?
        .refund_credits(
            org,
            &CreditRefund {
                amount_minor: input.amount_minor,
                reference: input.reference,
                reason: input.reason,
            },
            &ctx,
        )
        .await?;
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = RefundView {
        transfer_id: done.transfer_id.0,
        org_id: done.org_id.0,
        amount_minor: done.amount_minor,
        currency: done.currency,
        created: done.created,
    };
    Ok((status, Json(view)).into_response())
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditsCheckoutInput {
    #[schema(minimum = 1)]
    pub amount_minor: u64,
    /// The same key answers the same checkout (a retried click).
    #[schema(min_length = 1, max_length = 100)]
    pub request_key: String,
    #[schema(pattern = "^https?://\\S+$", max_length = 2048)]
    pub success_url: String,
    #[schema(pattern = "^https?://\\S+$", max_length = 2048)]
    pub cancel_url: String,
}

#[utoipa::path(post, path = "/api/v1/credits/checkout", tag = "billing", request_body = CreditsCheckoutInput,
    responses((status = 200, body = CheckoutView, description = "Open: send the customer to its URL"),
        (status = 202, body = CheckoutView, description = "The provider is down: kept and retried (follow it at /api/v1/checkouts/{key})"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "The organization does not run on credits"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The provider refused"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "No payment provider is configured, or it is unreachable")),
    security(("bearer" = ["manage_billing"])))]
/// Opens a Stripe checkout that tops up the organization's credits when
/// paid (the webhook records it).
pub async fn checkout(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<CreditsCheckoutInput>,
) -> ApiResult<Response> {
    caller.require(Permission::ManageBilling)?;
    check_url("success_url", &input.success_url)?;
    check_url("cancel_url", &input.cancel_url)?;
    let key = input.request_key.trim();
    if key.is_empty() || key.len() > 100 {
        return Err(invalid("request_key", "1 to 100 characters"));
    }
    let c = service(&state)?
        .credits_checkout(
            caller.org_id,
            input.amount_minor,
            key,
            input.success_url,
            input.cancel_url,
        )
        .await?;
    Ok(checkout_response(&c))
}
