//! Reconciliation (seed 002 §10): invoices and provider payments against
//! the ledger. Every record whose three sides agree is *matched*; every
//! difference becomes an item with its reason, so all money is either
//! matched or explained by an item.
//!
//! Checks, per invoice of the range and per payment of those invoices (and
//! every top-up made in the range):
//! - its ledger transfer exists (`not_posted` while billing has not posted
//!   it yet, `missing_transfer` if billing thinks it did) with the right
//!   amount and accounts (`transfer_differs`);
//! - so do a void invoice's reversal, each credit note's transfer and each
//!   refund's reversal;
//! - a paid invoice's succeeded payments add up to what is due (its total
//!   less its credit notes: `underpaid`, `overpaid`); a payment for a void
//!   invoice is `paid_void_invoice`;
//! - a billing transfer of the ledger that no invoice or payment explains
//!   (`orphan_transfer`).

use super::BillingService;
use crate::error::AppResult;
use crate::ledger::Viewer;
use hood_domain::billing::posting::{
    account_id, credit_note_transfer_id, invoice_transfer_id, payment_transfer_id,
    refund_transfer_id, transfer_code, void_transfer_id,
};
use hood_domain::billing::{amount_due, Invoice, Payment, PaymentState};
use hood_domain::ledger::{AccountCode, Transfer};
use hood_domain::lifecycle::InvoiceState;
use hood_domain::{AccountId, OrgId, TransferId};
use hood_store::billing::InvoiceQuery;
use std::collections::{BTreeMap, BTreeSet};
use time::Date;

/// One difference, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciliationItem {
    pub kind: &'static str,
    /// The invoice, payment or transfer it concerns.
    pub reference: String,
    pub org_id: Option<OrgId>,
    /// Minor units the difference is about.
    pub amount_minor: u64,
    pub reason: String,
}

/// A reconciliation of a range of periods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub invoices: usize,
    pub payments: usize,
    /// Minor units invoiced, credited back by credit notes, and paid
    /// through providers.
    pub invoiced_minor: u64,
    pub credited_minor: u64,
    pub paid_minor: u64,
    /// Minor units whose invoice, payment and ledger agree.
    pub matched_minor: u64,
    /// Minor units some item explains.
    pub itemized_minor: u64,
    pub items: Vec<ReconciliationItem>,
}

impl BillingService {
    /// Reconciles the invoices whose period starts in `[from, to)` (all when
    /// unbounded), their payments, and the ledger's billing transfers.
    pub async fn reconcile(
        &self,
        from: Option<Date>,
        to: Option<Date>,
    ) -> AppResult<Reconciliation> {
        let in_range = |i: &Invoice| {
            from.is_none_or(|f| i.period.start >= f) && to.is_none_or(|t| i.period.start < t)
        };
        let invoices: Vec<Invoice> = self
            .store()
            .list_invoices(&InvoiceQuery {
                limit: i64::MAX,
                ..InvoiceQuery::default()
            })
            .await?
            .into_iter()
            .filter(|i| i.state != InvoiceState::Draft && in_range(i))
            .collect();
        let ledger_transfers = self.billing_transfers().await?;
        let mut seen: BTreeSet<TransferId> = BTreeSet::new();
        let mut r = Reconciliation::default();
        for inv in &invoices {
            r.invoices += 1;
            r.invoiced_minor += inv.total_minor;
            let (ledger, amount) = self.units(inv.total_minor, &inv.currency).await?;
            let id = invoice_transfer_id(inv.id);
            seen.insert(id);
            let ok = self.check_transfer(
                &mut r,
                &ledger_transfers,
                id,
                inv.posted_at.is_some(),
                (
                    account_id(AccountCode::Receivable, ledger, Some(inv.org_id)),
                    account_id(AccountCode::Revenue, ledger, None),
                    amount,
                ),
                (
                    format!("invoice {}", inv.number.as_deref().unwrap_or("")),
                    inv.org_id,
                    inv.total_minor,
                ),
            );
            let receivable = account_id(AccountCode::Receivable, ledger, Some(inv.org_id));
            let revenue = account_id(AccountCode::Revenue, ledger, None);
            let mut ok = ok;
            if inv.state == InvoiceState::Void {
                let id = void_transfer_id(inv.id);
                seen.insert(id);
                ok &= self.check_transfer(
                    &mut r,
                    &ledger_transfers,
                    id,
                    inv.posted_at.is_some(),
                    (revenue, receivable, amount),
                    (
                        format!("void of invoice {}", inv.number.as_deref().unwrap_or("")),
                        inv.org_id,
                        inv.total_minor,
                    ),
                );
            }
            let mut credited = 0u64;
            for note in self.store().list_credit_notes(None, Some(inv.id)).await? {
                credited += note.amount_minor;
                let (_, note_amount) = self.units(note.amount_minor, &note.currency).await?;
                let id = credit_note_transfer_id(note.id);
                seen.insert(id);
                ok &= self.check_transfer(
                    &mut r,
                    &ledger_transfers,
                    id,
                    note.posted_at.is_some(),
                    (revenue, receivable, note_amount),
                    (
                        format!("credit note {}", note.number),
                        inv.org_id,
                        note.amount_minor,
                    ),
                );
            }
            r.credited_minor += credited;
            let due = amount_due(inv.total_minor, credited);
            let payments = self.store().list_payments(None, Some(inv.id)).await?;
            let paid: u64 = payments
                .iter()
                .filter(|p| p.state == PaymentState::Succeeded)
                .map(|p| p.amount_minor)
                .sum();
            for p in &payments {
                self.check_payment(&mut r, &ledger_transfers, &mut seen, p)
                    .await?;
            }
            let number = inv.number.clone().unwrap_or_default();
            match inv.state {
                InvoiceState::Paid if paid < due => r.items.push(ReconciliationItem {
                    kind: "underpaid",
                    reference: format!("invoice {number}"),
                    org_id: Some(inv.org_id),
                    amount_minor: due - paid,
                    reason: format!("marked paid, but payments add up to {paid} of the {due} due"),
                }),
                InvoiceState::Paid | InvoiceState::Issued if paid > due => {
                    r.items.push(ReconciliationItem {
                        kind: "overpaid",
                        reference: format!("invoice {number}"),
                        org_id: Some(inv.org_id),
                        amount_minor: paid - due,
                        reason: format!("payments add up to {paid}, {due} is due (after credit notes): refund the difference"),
                    });
                }
                InvoiceState::Void if paid > 0 => r.items.push(ReconciliationItem {
                    kind: "paid_void_invoice",
                    reference: format!("invoice {number}"),
                    org_id: Some(inv.org_id),
                    amount_minor: paid,
                    reason: "payments arrived for a void invoice: refund them".into(),
                }),
                _ => {}
            }
            let consistent = match inv.state {
                InvoiceState::Paid => paid == due,
                InvoiceState::Issued => paid <= due,
                InvoiceState::Void => paid == 0,
                InvoiceState::Draft => true,
            };
            if ok && consistent {
                r.matched_minor += inv.total_minor;
            }
        }
        // Top-ups (payments without an invoice) made in the range.
        for p in self.store().list_payments(None, None).await? {
            if p.invoice_id.is_none() {
                self.check_payment(&mut r, &ledger_transfers, &mut seen, &p)
                    .await?;
            }
        }
        // What the ledger holds that nothing here explains.
        for t in ledger_transfers.values() {
            // Credit usage (holds and their settlement) is the accrual's,
            // explained by the credits account, not by a record here.
            let billing_code = t.code != transfer_code::CREDIT_USAGE;
            if billing_code && !seen.contains(&t.id) && from.is_none() && to.is_none() {
                r.items.push(ReconciliationItem {
                    kind: "orphan_transfer",
                    reference: format!("transfer {}", t.id),
                    org_id: None,
                    amount_minor: 0,
                    reason: format!(
                        "a billing transfer (code {}) of {} ledger units that no invoice or payment explains",
                        t.code, t.amount
                    ),
                });
            }
        }
        r.itemized_minor = r.items.iter().map(|i| i.amount_minor).sum();
        Ok(r)
    }

    async fn check_payment(
        &self,
        r: &mut Reconciliation,
        transfers: &BTreeMap<TransferId, Transfer>,
        seen: &mut BTreeSet<TransferId>,
        p: &Payment,
    ) -> AppResult<()> {
        if p.state == PaymentState::Failed {
            return Ok(());
        }
        r.payments += 1;
        r.paid_minor += p.amount_minor;
        let (ledger, amount) = self.units(p.amount_minor, &p.currency).await?;
        let paid = match p.invoice_id {
            Some(_) => account_id(AccountCode::Receivable, ledger, Some(p.org_id)),
            None => account_id(AccountCode::PrepaidCredits, ledger, Some(p.org_id)),
        };
        let id = payment_transfer_id(p.id);
        seen.insert(id);
        let ok = self.check_transfer(
            r,
            transfers,
            id,
            p.posted_at.is_some(),
            (account_id(AccountCode::Cash, ledger, None), paid, amount),
            (
                format!("payment {} {}", p.provider, p.reference),
                p.org_id,
                p.amount_minor,
            ),
        );
        let mut ok = ok;
        if p.state == PaymentState::Refunded {
            let id = refund_transfer_id(p.id);
            seen.insert(id);
            ok &= self.check_transfer(
                r,
                transfers,
                id,
                p.posted_at.is_some(),
                (paid, account_id(AccountCode::Cash, ledger, None), amount),
                (
                    format!("refund of payment {} {}", p.provider, p.reference),
                    p.org_id,
                    p.amount_minor,
                ),
            );
        }
        if ok && p.invoice_id.is_none() {
            r.matched_minor += p.amount_minor;
        }
        Ok(())
    }

    /// Checks one expected transfer; `true` when it is in the ledger as
    /// expected.
    fn check_transfer(
        &self,
        r: &mut Reconciliation,
        transfers: &BTreeMap<TransferId, Transfer>,
        id: TransferId,
        posted: bool,
        (debit, credit, amount): (AccountId, AccountId, u64),
        (reference, org, minor): (String, OrgId, u64),
    ) -> bool {
        let item = |kind: &'static str, reason: String| ReconciliationItem {
            kind,
            reference: reference.clone(),
            org_id: Some(org),
            amount_minor: minor,
            reason,
        };
        match transfers.get(&id) {
            None if !posted => {
                r.items.push(item(
                    "not_posted",
                    "billing has not posted it to the ledger yet (its loop retries)".into(),
                ));
                false
            }
            None => {
                r.items.push(item(
                    "missing_transfer",
                    format!("marked posted, but the ledger has no transfer {id}"),
                ));
                false
            }
            Some(t)
                if t.amount != amount
                    || t.debit_account_id != debit
                    || t.credit_account_id != credit =>
            {
                r.items.push(item(
                    "transfer_differs",
                    format!(
                        "the ledger's transfer {id} moves {} units from {} to {}; expected {amount} from {debit} to {credit}",
                        t.amount, t.debit_account_id, t.credit_account_id
                    ),
                ));
                false
            }
            Some(_) => true,
        }
    }

    /// Every transfer of the ledger with a billing code, by id.
    async fn billing_transfers(&self) -> AppResult<BTreeMap<TransferId, Transfer>> {
        let mut out = BTreeMap::new();
        let mut after = None;
        loop {
            let page = self
                .ledger
                .list_transfers(Viewer::Platform, None, after, crate::ledger::MAX_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.timestamp);
            let full = page.len() as i64 == crate::ledger::MAX_PAGE;
            for t in page {
                if (transfer_code::INVOICE..=transfer_code::CREDIT_NOTE).contains(&t.code) {
                    out.insert(t.id, t);
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }
}
