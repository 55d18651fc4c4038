//! Corrections of issued invoices (operators): voiding an unpaid invoice
//! and issuing credit notes; the credit notes an organization can read.

use crate::auth::Caller;
use crate::extract::{Json, Query};
use crate::problem::{ApiResult, Problem};
use crate::routes::invoicing::{parse_uuid, scope, service, CreditNoteView, InvoiceView};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hood_domain::identity::Permission;
use hood_domain::InvoiceId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/invoices/{id}/void", post(void_invoice))
        .route("/api/v1/invoices/{id}/credit-notes", post(credit_invoice))
        .route("/api/v1/credit-notes", get(list_credit_notes))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidInput {
    /// Why (shown on the invoice).
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/invoices/{id}/void", tag = "billing",
    params(("id" = Uuid, Path)), request_body = VoidInput,
    responses((status = 200, body = InvoiceView, description = "Void; its ledger transfer reversed"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "Not an issued, unpaid, uncredited invoice"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["manage_billing", "platform_admin"])))]
/// Voids an issued invoice nobody has paid or credited (operators). Its
/// number stays taken; a paid invoice is corrected by a credit note.
pub async fn void_invoice(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<VoidInput>,
) -> ApiResult<Json<InvoiceView>> {
    caller.require(Permission::ManageBilling)?;
    caller.require_platform_admin()?;
    let id = InvoiceId::from_uuid(parse_uuid("id", &id)?);
    let billing = service(&state)?;
    let inv = billing.void_invoice(id, &input.reason).await?;
    let payments = billing.invoice_payments(None, id).await?;
    let notes = billing.credit_notes(None, Some(id)).await?;
    Ok(Json(InvoiceView::detailed(&inv, &payments, &notes)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditNoteInput {
    /// Minor units taken back: at least 1, and the invoice's notes never
    /// exceed its total.
    #[schema(minimum = 1)]
    pub amount_minor: u64,
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
    /// The caller's key for this request: sent again, it answers the note
    /// it made instead of crediting twice.
    #[schema(min_length = 1, max_length = 200)]
    pub request_key: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/invoices/{id}/credit-notes", tag = "billing",
    params(("id" = Uuid, Path)), request_body = CreditNoteInput,
    responses((status = 201, body = CreditNoteView),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "Not creditable, or more than is left to credit"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["manage_billing", "platform_admin"])))]
/// Issues a credit note on an issued or paid invoice (operators): numbered
/// `CN-YYYY-NNNNNN`, posted to the ledger (revenue → receivable). An unpaid
/// invoice credited in full is settled.
pub async fn credit_invoice(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<CreditNoteInput>,
) -> ApiResult<Response> {
    caller.require(Permission::ManageBilling)?;
    caller.require_platform_admin()?;
    let id = InvoiceId::from_uuid(parse_uuid("id", &id)?);
    let note = service(&state)?
        .credit_invoice(
            id,
            input.amount_minor,
            &input.reason,
            input.request_key.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(CreditNoteView::from(&note))).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CreditNoteQuery {
    /// Only this invoice's.
    pub invoice_id: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/credit-notes", tag = "billing", params(CreditNoteQuery),
    responses((status = 200, body = [CreditNoteView]),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Billing does not run in this process")),
    security(("bearer" = ["read_billing"])))]
/// The organization's credit notes (every organization's, for operators),
/// newest first.
pub async fn list_credit_notes(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<CreditNoteQuery>,
) -> ApiResult<Json<Vec<CreditNoteView>>> {
    caller.require(Permission::ReadBilling)?;
    let invoice = q
        .invoice_id
        .as_deref()
        .map(|s| parse_uuid("invoice_id", s).map(InvoiceId::from_uuid))
        .transpose()?;
    let notes = service(&state)?
        .credit_notes(scope(&caller), invoice)
        .await?;
    Ok(Json(notes.iter().map(CreditNoteView::from).collect()))
}
