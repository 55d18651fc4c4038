//! A subscription's monthly budget: set by the organization (alerts at
//! 50, 80 and 100 %; optionally a hard cap that stops metered spending),
//! and where the current period stands against it.

use crate::auth::Caller;
use crate::extract::Json;
use crate::problem::{ApiResult, Problem};
use crate::routes::invoicing::{parse_uuid, scope, service};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use hood_domain::billing::budget::BudgetStatus;
use hood_domain::billing::Subscription;
use hood_domain::identity::Permission;
use hood_domain::SubscriptionId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/subscriptions/{id}/budget",
        get(get_budget).put(set_budget),
    )
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetInput {
    /// Monthly budget in minor units of the contract's currency; `null`
    /// removes it.
    pub budget_minor: Option<u64>,
    /// Refuse metered spending (RPC answers 402) once the budget is
    /// reached, until the next period or a larger budget. Needs a budget.
    #[serde(default)]
    pub hard_cap: bool,
}

/// The current period's latest measurement (every billing pass).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BudgetMeasurement {
    #[schema(format = Date)]
    pub period_start: String,
    #[schema(format = Date)]
    pub period_end: String,
    /// The period rated so far, as it would be invoiced now.
    pub spent_minor: u64,
    /// The highest alert sent this period: 50, 80 or 100.
    pub alerted_percent: Option<u8>,
    /// Metered spending is stopped (hard cap reached).
    pub capped: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BudgetView {
    pub subscription_id: Uuid,
    pub currency: String,
    pub budget_minor: Option<u64>,
    pub hard_cap: bool,
    /// `null` until the billing role has measured this budget.
    pub current: Option<BudgetMeasurement>,
}

fn view(sub: &Subscription, status: Option<BudgetStatus>) -> BudgetView {
    BudgetView {
        subscription_id: *sub.id.as_uuid(),
        currency: sub.currency.to_string(),
        budget_minor: sub.budget_minor,
        hard_cap: sub.budget_hard_cap,
        current: status.map(|s| BudgetMeasurement {
            period_start: s.period.start.to_string(),
            period_end: s.period.end.to_string(),
            spent_minor: s.spent_minor,
            alerted_percent: s.alerted_percent,
            capped: s.capped,
        }),
    }
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{id}/budget", tag = "billing",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = BudgetView),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such subscription"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// A subscription's budget and where the current period stands.
pub async fn get_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<BudgetView>> {
    caller.require(Permission::ReadBilling)?;
    let id = SubscriptionId::from_uuid(parse_uuid("id", &id)?);
    let billing = service(&state)?;
    let sub = billing.subscription(scope(&caller), id).await?;
    let status = billing.budget(scope(&caller), id).await?;
    Ok(Json(view(&sub, status)))
}

#[utoipa::path(put, path = "/api/v1/subscriptions/{id}/budget", tag = "billing",
    params(("id" = Uuid, Path)), request_body = BudgetInput,
    responses((status = 200, body = BudgetView),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such subscription"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["manage_billing"])))]
/// Sets the organization's monthly budget (the next billing pass measures
/// against it; raising it lifts a cap).
pub async fn set_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<BudgetInput>,
) -> ApiResult<Json<BudgetView>> {
    caller.require(Permission::ManageBilling)?;
    let id = SubscriptionId::from_uuid(parse_uuid("id", &id)?);
    let billing = service(&state)?;
    let sub = billing
        .set_budget(scope(&caller), id, input.budget_minor, input.hard_cap)
        .await?;
    let status = billing.budget(scope(&caller), id).await?;
    Ok(Json(view(&sub, status)))
}
