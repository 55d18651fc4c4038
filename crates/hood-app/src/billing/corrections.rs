//! Corrections of issued invoices (operators): an issued, unpaid invoice
//! may be voided (its number stays; its ledger transfer is reversed);
//! anything else is corrected by credit notes, numbered in their own
//! series, never more than the invoice in all. An issued invoice never
//! changes: what it said stays what it said.

use super::BillingService;
use crate::error::{AppError, AppResult};
use hood_domain::billing::posting::{
    account_id, credit_note_id, credit_note_transfer_id, transfer_code,
};
use hood_domain::billing::{amount_due, CreditNote, Invoice};
use hood_domain::ledger::AccountCode;
use hood_domain::{InvoiceId, OrgId};
use hood_store::billing::NewCreditNote;
use hood_store::StoreError;
use uuid::Uuid;

fn refused(e: StoreError) -> AppError {
    match e {
        StoreError::Correction(c) => AppError::Conflict(c.to_string()),
        other => other.into(),
    }
}

fn reason_of(reason: &str) -> AppResult<String> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(super::invalid("reason", "1 to 500 characters: say why"));
    }
    Ok(reason.to_owned())
}

impl BillingService {
    /// Voids an issued, unpaid invoice that has no credit notes, and posts
    /// the reversal of its ledger transfer.
    pub async fn void_invoice(&self, id: InvoiceId, reason: &str) -> AppResult<Invoice> {
        let reason = reason_of(reason)?;
        let inv = self
            .store()
            .void_invoice(id, &reason, self.clock.now())
            .await
            .map_err(refused)?;
        tracing::info!(invoice = %inv.id, number = inv.number.as_deref().unwrap_or(""), "invoice voided");
        // Posted now; the billing loop retries if the ledger is away.
        if let Err(e) = self.post_invoice(&inv).await {
            tracing::warn!(invoice = %inv.id, error = %e, "void reversal deferred");
        }
        self.invoice(None, id).await
    }

    /// Credits `amount_minor` of an issued or paid invoice. `request_key`
    /// (the caller's idempotency key) makes a retried request find the
    /// note it made instead of crediting twice.
    pub async fn credit_invoice(
        &self,
        id: InvoiceId,
        amount_minor: u64,
        reason: &str,
        request_key: Option<&str>,
    ) -> AppResult<CreditNote> {
        let reason = reason_of(reason)?;
        let note_id = match request_key.map(str::trim) {
            Some(k) if k.is_empty() || k.len() > 200 => {
                return Err(super::invalid("request_key", "1 to 200 characters"))
            }
            Some(k) => credit_note_id(id, k),
            None => credit_note_id(id, &Uuid::now_v7().to_string()),
        };
        let note = self
            .store()
            .issue_credit_note(&NewCreditNote {
                id: note_id,
                invoice_id: id,
                amount_minor,
                reason,
                created_at: self.clock.now(),
            })
            .await
            .map_err(refused)?;
        tracing::info!(invoice = %id, credit_note = %note.number, amount_minor, "credit note issued");
        if note.posted_at.is_some() {
            return Ok(note);
        }
        if let Err(e) = self.post_credit_note(&note).await {
            tracing::warn!(credit_note = %note.id, error = %e, "credit note posting deferred");
        }
        // As stored now (posted, unless the ledger was away).
        Ok(self
            .credit_notes(None, Some(id))
            .await?
            .into_iter()
            .find(|n| n.id == note.id)
            .unwrap_or(note))
    }

    /// Credit notes of an organization (or all), of an invoice (or all).
    pub async fn credit_notes(
        &self,
        org: Option<OrgId>,
        invoice: Option<InvoiceId>,
    ) -> AppResult<Vec<CreditNote>> {
        Ok(self.store().list_credit_notes(org, invoice).await?)
    }

    /// What is still owed on an invoice after its credit notes.
    pub async fn amount_due(&self, inv: &Invoice) -> AppResult<u64> {
        let credited: u64 = self
            .credit_notes(None, Some(inv.id))
            .await?
            .iter()
            .map(|n| n.amount_minor)
            .sum();
        Ok(amount_due(inv.total_minor, credited))
    }

    /// Posts a credit note (revenue → the customer's receivable), then
    /// marks it posted.
    pub(crate) async fn post_credit_note(&self, note: &CreditNote) -> AppResult<()> {
        let (ledger, amount) = self.units(note.amount_minor, &note.currency).await?;
        self.transfer(
            credit_note_transfer_id(note.id),
            account_id(AccountCode::Revenue, ledger, None),
            account_id(AccountCode::Receivable, ledger, Some(note.org_id)),
            amount,
            ledger,
            transfer_code::CREDIT_NOTE,
        )
        .await?;
        self.store()
            .mark_credit_note_posted(note.id, self.clock.now())
            .await?;
        Ok(())
    }
}
