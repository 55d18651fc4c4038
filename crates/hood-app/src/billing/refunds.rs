//! Operators' refunds to prepaid credits: money an organization spent,
//! given back with a reason (an allocation that never worked, an outage).
//! One ledger transfer (revenue ← the organization's credits) whose id is
//! derived from the reference, so a retry is the same refund; the reason
//! and the operator are in the audit log.

use super::BillingService;
use crate::error::{AppError, AppResult};
use hood_domain::audit::AuditContext;
use hood_domain::billing::posting::{account_id, credit_refund_transfer_id, transfer_code};
use hood_domain::ledger::{AccountCode, CreateTransferResult as R, NewTransfer, TransferFlags};
use hood_domain::{OrgId, TransferId};
use hood_store::audit::AuditEvent;

/// What an operator gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditRefund {
    pub amount_minor: u64,
    /// Unique per refund of the organization: a retry with the same
    /// reference is the same refund.
    pub reference: String,
    /// Why (kept in the audit log, shown to the organization).
    pub reason: String,
}

/// A refund as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecorded {
    pub transfer_id: TransferId,
    pub org_id: OrgId,
    pub amount_minor: u64,
    pub currency: String,
    /// False when this reference was refunded before (nothing new moved).
    pub created: bool,
}

impl BillingService {
    /// Gives `refund.amount_minor` back to `org`'s prepaid credits; a
    /// cut-off organization resumes when the balance covers a hold again.
    pub async fn refund_credits(
        &self,
        org: OrgId,
        refund: &CreditRefund,
        ctx: &AuditContext,
    ) -> AppResult<RefundRecorded> {
        let reference = refund.reference.trim();
        let reason = refund.reason.trim();
        if reference.is_empty() || reference.len() > 200 {
            return Err(super::invalid("reference", "1 to 200 characters"));
        }
        if reason.is_empty() || reason.len() > 500 {
            return Err(super::invalid("reason", "1 to 500 characters"));
        }
        if refund.amount_minor == 0 {
            return Err(super::invalid("amount_minor", "a refund is at least 1"));
        }
        let account = self.credit_account(org).await?;
        let card = self.rate_card(account.rate_card_version).await?.card;
        let (ledger, amount) = self.units(refund.amount_minor, &card.currency).await?;
        let id = credit_refund_transfer_id(org, reference);
        let transfer = NewTransfer {
            id,
            debit_account_id: Some(account_id(AccountCode::Revenue, ledger, None)),
            credit_account_id: Some(account_id(AccountCode::PrepaidCredits, ledger, Some(org))),
            amount,
            pending_id: None,
            user_data_128: 0,
            user_data_64: 0,
            user_data_32: 0,
            timeout: 0,
            ledger,
            code: transfer_code::CREDIT_REFUND,
            flags: TransferFlags::default(),
        };
        let result = self
            .ledger
            .create_transfers(std::slice::from_ref(&transfer))
            .await?
            .first()
            .copied()
            .ok_or_else(|| AppError::Internal("ledger answered no result".into()))?;
        let created = match result {
            R::Ok => true,
            R::Exists => false,
            r if r.as_str().starts_with("exists_with_different") => {
                return Err(AppError::Conflict(format!(
                    "reference `{reference}` was used for another refund to this organization"
                )))
            }
            r => {
                return Err(AppError::Conflict(format!(
                    "the ledger refused the refund: {r}"
                )))
            }
        };
        if created {
            tracing::info!(org = %org, amount_minor = refund.amount_minor, reference,
                actor = %ctx.actor, "credits refunded");
            if let Some(audit) = &self.audit {
                let ctx = AuditContext {
                    reason: Some(reason.to_owned()),
                    ..ctx.clone()
                };
                audit
                    .append_audit(
                        &ctx,
                        self.clock.now(),
                        AuditEvent {
                            org_id: Some(org),
                            action: "credits.refund".into(),
                            resource_type: "credits".into(),
                            resource_id: org.to_string(),
                            after: Some(serde_json::json!({
                                "transfer_id": id,
                                "amount_minor": refund.amount_minor,
                                "currency": card.currency.to_string(),
                                "reference": reference,
                            })),
                        },
                    )
                    .await?;
            }
        }
        self.credits_added(org).await?;
        Ok(RefundRecorded {
            transfer_id: id,
            org_id: org,
            amount_minor: refund.amount_minor,
            currency: card.currency.to_string(),
            created,
        })
    }
}
