//! How billing's money reaches the ledger: which accounts, which transfer
//! ids, and amounts converted from a currency's minor units to the
//! ledger's scale.
//!
//! Ids are derived, never random: the transfer that posts an invoice is a
//! function of the invoice's id, so posting it twice (a retry after a
//! crash, two billing replicas) is the ledger's idempotent `exists`, never
//! a second charge. Account ids are a function of (code, ledger, owner),
//! so every replica finds the same accounts without a lookup table.

use crate::ledger::AccountCode;
use crate::{AccountId, CreditNoteId, InvoiceId, OrgId, PaymentId, TransferId};
use uuid::Uuid;

use super::price::Currency;

/// The namespace of billing's derived ids (UUIDv5).
const NAMESPACE: Uuid = Uuid::from_u128(0x6869_6c6c_696e_672d_6964_732d_7631_0001);

/// Transfer codes billing writes (the ledger's `code` field: why money
/// moved).
pub mod transfer_code {
    /// An issued invoice: the customer's receivable ← revenue.
    pub const INVOICE: u16 = 101;
    /// A payment received: cash ← the customer's receivable.
    pub const PAYMENT: u16 = 102;
    /// A payment refunded: the customer's receivable ← cash.
    pub const REFUND: u16 = 103;
    /// A voided invoice: revenue ← the customer's receivable.
    pub const VOID: u16 = 104;
    /// A credit top-up: cash ← the customer's prepaid credits.
    pub const CREDIT_TOP_UP: u16 = 105;
    /// Usage paid from prepaid credits (holds, their settlement, excess):
    /// the customer's prepaid credits ← revenue.
    pub const CREDIT_USAGE: u16 = 106;
    /// A credit note: revenue ← the customer's receivable (part of an
    /// invoice taken back).
    pub const CREDIT_NOTE: u16 = 107;
    /// An operator's refund to prepaid credits: revenue ← the customer's
    /// prepaid credits (money spent given back, with a reason).
    pub const CREDIT_REFUND: u16 = 108;
}

fn derive(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&NAMESPACE, parts.join("/").as_bytes())
}

/// The billing account of `code` on `ledger`: an organization's
/// (`Some(org)`: receivable, prepaid credits) or the platform's (`None`:
/// cash, revenue).
pub fn account_id(code: AccountCode, ledger: u32, org: Option<OrgId>) -> AccountId {
    let owner = org.map_or_else(|| "platform".to_owned(), |o| o.to_string());
    AccountId::from_uuid(derive(&[
        "account",
        &(code as u16).to_string(),
        &ledger.to_string(),
        &owner,
    ]))
}

/// The transfer that posts an issued invoice.
pub fn invoice_transfer_id(invoice: InvoiceId) -> TransferId {
    TransferId::from_uuid(derive(&["invoice", &invoice.to_string()]))
}

/// The transfer that reverses a voided invoice.
pub fn void_transfer_id(invoice: InvoiceId) -> TransferId {
    TransferId::from_uuid(derive(&["void", &invoice.to_string()]))
}

/// The transfer of a credit note.
pub fn credit_note_transfer_id(note: CreditNoteId) -> TransferId {
    TransferId::from_uuid(derive(&["credit-note", &note.to_string()]))
}

/// The credit note a request for `invoice` under the caller's `key` makes:
/// the same request again finds it.
pub fn credit_note_id(invoice: InvoiceId, key: &str) -> CreditNoteId {
    CreditNoteId::from_uuid(derive(&["credit-note-request", &invoice.to_string(), key]))
}

/// The transfer of a received payment.
pub fn payment_transfer_id(payment: PaymentId) -> TransferId {
    TransferId::from_uuid(derive(&["payment", &payment.to_string()]))
}

/// The transfer of a refund of a payment.
pub fn refund_transfer_id(payment: PaymentId) -> TransferId {
    TransferId::from_uuid(derive(&["refund", &payment.to_string()]))
}

/// The transfer of an operator's refund of credits to `org` under
/// `reference`: the same reference is the same refund.
pub fn credit_refund_transfer_id(org: OrgId, reference: &str) -> TransferId {
    TransferId::from_uuid(derive(&["credit-refund", &org.to_string(), reference]))
}

/// The payment id of a provider's payment reference: the same reference
/// (a webhook delivered twice) is the same payment.
pub fn payment_id(provider: &str, reference: &str) -> PaymentId {
    PaymentId::from_uuid(derive(&["payment-ref", provider, reference]))
}

/// Digits after the decimal point of a currency's minor unit (ISO 4217):
/// 0 for the yen and won, 3 for the Gulf dinars, else 2.
pub fn minor_exponent(currency: &Currency) -> u8 {
    match currency.as_str() {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}

/// `amount_minor` of `currency` in the units of a ledger of `scale`
/// (micro-dollars for USD at scale 6: one cent is 10,000). `None` when the
/// ledger's scale is coarser than the currency's minor unit (an amount
/// would have to be rounded) or the result does not fit.
pub fn ledger_amount(amount_minor: u64, currency: &Currency, scale: u8) -> Option<u64> {
    let exponent = minor_exponent(currency);
    let shift = scale.checked_sub(exponent)?;
    10u64
        .checked_pow(u32::from(shift))
        .and_then(|factor| amount_minor.checked_mul(factor))
        .filter(|v| *v <= crate::ledger::AMOUNT_MAX)
}

/// An issued invoice's number: the year, then its place in that year,
/// without gaps (`2026-000042`).
pub fn invoice_number(year: i32, seq: u64) -> String {
    format!("{year}-{seq:06}")
}

/// A credit note's number: `CN-YYYY-NNNNNN`, its own series without gaps
/// per year (never confused with an invoice's).
pub fn credit_note_number(year: i32, seq: u64) -> String {
    format!("CN-{year}-{seq:06}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        "USD".parse().unwrap()
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let org = OrgId::from_uuid(Uuid::from_u128(7));
        let a = account_id(AccountCode::Receivable, 1, Some(org));
        assert_eq!(a, account_id(AccountCode::Receivable, 1, Some(org)));
        assert_ne!(a, account_id(AccountCode::Receivable, 1, None));
        assert_ne!(a, account_id(AccountCode::PrepaidCredits, 1, Some(org)));
        assert_ne!(a, account_id(AccountCode::Receivable, 2, Some(org)));
        let inv = InvoiceId::from_uuid(Uuid::from_u128(9));
        assert_eq!(invoice_transfer_id(inv), invoice_transfer_id(inv));
        assert_ne!(invoice_transfer_id(inv), void_transfer_id(inv));
        let note = credit_note_id(inv, "k1");
        assert_eq!(note, credit_note_id(inv, "k1"));
        assert_ne!(note, credit_note_id(inv, "k2"));
        assert_ne!(
            note,
            credit_note_id(InvoiceId::from_uuid(Uuid::from_u128(10)), "k1")
        );
        assert_ne!(
            credit_note_transfer_id(note).as_uuid(),
            invoice_transfer_id(inv).as_uuid()
        );
        assert_eq!(payment_id("stripe", "cs_1"), payment_id("stripe", "cs_1"));
        assert_ne!(payment_id("stripe", "cs_1"), payment_id("local", "cs_1"));
    }

    #[test]
    fn minor_units_scale_to_the_ledger() {
        assert_eq!(
            ledger_amount(1, &usd(), 6),
            Some(10_000),
            "a cent in micro-dollars"
        );
        assert_eq!(ledger_amount(123, &"JPY".parse().unwrap(), 0), Some(123));
        assert_eq!(
            ledger_amount(1, &usd(), 1),
            None,
            "coarser ledger would round"
        );
        assert_eq!(ledger_amount(u64::MAX / 100, &usd(), 6), None, "overflow");
    }

    #[test]
    fn numbers_sort_within_a_year() {
        assert_eq!(invoice_number(2026, 42), "2026-000042");
        assert_eq!(credit_note_number(2026, 42), "CN-2026-000042");
        assert!(invoice_number(2026, 9) < invoice_number(2026, 10));
    }
}
