//! Corrections of issued invoices for [`SqlStore`]: voids and credit
//! notes (the `BillingStore` methods delegate here).

use super::billing::{parse_currency, parse_id, to_i64, to_u64, InvoiceRow, INVOICE_COLUMNS};
use super::SqlStore;
use crate::billing::NewCreditNote;
use crate::codec::write_error;
use crate::db::{query, query_as, Tx};
use crate::{StoreError, StoreResult};
use hood_domain::billing::posting::credit_note_number;
use hood_domain::billing::{check_credit, check_void, CreditNote, Invoice};
use hood_domain::lifecycle::InvoiceState;
use hood_domain::machine::StateMachine;
use hood_domain::{CreditNoteId, InvoiceId, OrgId, Timestamp};

const CREDIT_NOTE_COLUMNS: &str =
    "id, invoice_id, org_id, number, currency, amount_minor, reason, created_at, posted_at";

#[derive(sqlx::FromRow)]
struct CreditNoteRow {
    id: String,
    invoice_id: String,
    org_id: String,
    number: String,
    currency: String,
    amount_minor: i64,
    reason: String,
    created_at: i64,
    posted_at: Option<i64>,
}

impl TryFrom<CreditNoteRow> for CreditNote {
    type Error = StoreError;
    fn try_from(r: CreditNoteRow) -> StoreResult<Self> {
        Ok(CreditNote {
            id: parse_id("id", &r.id)?,
            invoice_id: parse_id("invoice_id", &r.invoice_id)?,
            org_id: parse_id("org_id", &r.org_id)?,
            number: r.number,
            currency: parse_currency(&r.currency)?,
            amount_minor: to_u64("amount_minor", r.amount_minor)?,
            reason: r.reason,
            created_at: Timestamp::from_millis(r.created_at),
            posted_at: r.posted_at.map(Timestamp::from_millis),
        })
    }
}

/// The invoice, row-locked for the rest of the transaction (PostgreSQL;
/// SQLite's write transaction holds the whole database): two corrections
/// of one invoice happen one after the other.
async fn lock_invoice(tx: &mut Tx<'_>, id: InvoiceId) -> StoreResult<Invoice> {
    query("UPDATE invoices SET id = id WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    query_as::<InvoiceRow>(format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound("invoice"))?
    .try_into()
}

async fn credited(tx: &mut Tx<'_>, invoice: InvoiceId) -> StoreResult<u64> {
    let (sum,): (i64,) = query_as(
        "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM credit_notes \
         WHERE invoice_id = $1",
    )
    .bind(invoice.to_string())
    .fetch_one(&mut *tx)
    .await?;
    to_u64("credited", sum)
}

async fn next_credit_note_number(tx: &mut Tx<'_>, year: i32) -> StoreResult<String> {
    query(
        "INSERT INTO credit_note_numbers (year, last) VALUES ($1, 0) \
         ON CONFLICT (year) DO NOTHING",
    )
    .bind(i64::from(year))
    .execute(&mut *tx)
    .await?;
    query("UPDATE credit_note_numbers SET last = last + 1 WHERE year = $1")
        .bind(i64::from(year))
        .execute(&mut *tx)
        .await?;
    let (last,): (i64,) = query_as("SELECT last FROM credit_note_numbers WHERE year = $1")
        .bind(i64::from(year))
        .fetch_one(&mut *tx)
        .await?;
    Ok(credit_note_number(
        year,
        to_u64("credit note number", last)?,
    ))
}

async fn credit_note(tx: &mut Tx<'_>, id: CreditNoteId) -> StoreResult<Option<CreditNote>> {
    query_as::<CreditNoteRow>(format!(
        "SELECT {CREDIT_NOTE_COLUMNS} FROM credit_notes WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *tx)
    .await?
    .map(CreditNote::try_from)
    .transpose()
}

impl SqlStore {
    pub(super) async fn void_invoice_impl(
        &self,
        id: InvoiceId,
        reason: &str,
        now: Timestamp,
    ) -> StoreResult<Invoice> {
        let mut tx = self.pool.begin_write().await?;
        let mut inv = lock_invoice(&mut tx, id).await?;
        let credited = credited(&mut tx, id).await?;
        // Refused: roll back now (a dropped transaction would hold the
        // invoice's row lock until its connection is next used).
        if let Err(e) = check_void(inv.state, credited) {
            tx.rollback().await?;
            return Err(e.into());
        }
        inv.state = inv.state.transition(InvoiceState::Void)?;
        inv.voided_at = Some(now);
        inv.void_reason = Some(reason.to_owned());
        // Un-posted: the poster writes the reversal (the invoice's own
        // transfer is found as it was, by its derived id).
        inv.posted_at = None;
        query(
            "UPDATE invoices SET state = $1, voided_at = $2, void_reason = $3, posted_at = NULL \
             WHERE id = $4",
        )
        .bind(inv.state.as_str())
        .bind(now.millis())
        .bind(reason)
        .bind(id.to_string())
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(inv)
    }

    pub(super) async fn issue_credit_note_impl(
        &self,
        note: &NewCreditNote,
    ) -> StoreResult<CreditNote> {
        let mut tx = self.pool.begin_write().await?;
        let inv = lock_invoice(&mut tx, note.invoice_id).await?;
        if let Some(existing) = credit_note(&mut tx, note.id).await? {
            tx.rollback().await?;
            return Ok(existing);
        }
        let credited = credited(&mut tx, inv.id).await?;
        if let Err(e) = check_credit(inv.state, inv.total_minor, credited, note.amount_minor) {
            tx.rollback().await?;
            return Err(e.into());
        }
        let year = time::OffsetDateTime::from_unix_timestamp(note.created_at.secs())
            .map_err(|e| StoreError::Corrupt(format!("created_at: {e}")))?
            .year();
        let stored = CreditNote {
            id: note.id,
            invoice_id: inv.id,
            org_id: inv.org_id,
            number: next_credit_note_number(&mut tx, year).await?,
            currency: inv.currency.clone(),
            amount_minor: note.amount_minor,
            reason: note.reason.clone(),
            created_at: note.created_at,
            posted_at: None,
        };
        query(format!(
            "INSERT INTO credit_notes ({CREDIT_NOTE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(stored.id.to_string())
        .bind(stored.invoice_id.to_string())
        .bind(stored.org_id.to_string())
        .bind(stored.number.as_str())
        .bind(stored.currency.as_str())
        .bind(to_i64("amount_minor", stored.amount_minor)?)
        .bind(stored.reason.as_str())
        .bind(stored.created_at.millis())
        .bind(None::<i64>)
        .execute(&mut tx)
        .await
        .map_err(|e| write_error(e, "credit note"))?;
        // Nothing left to pay: an issued invoice is settled by its notes.
        if inv.state == InvoiceState::Issued && credited + note.amount_minor == inv.total_minor {
            query("UPDATE invoices SET state = 'paid', paid_at = $1 WHERE id = $2")
                .bind(note.created_at.millis())
                .bind(inv.id.to_string())
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn list_credit_notes_impl(
        &self,
        org: Option<OrgId>,
        invoice: Option<InvoiceId>,
    ) -> StoreResult<Vec<CreditNote>> {
        query_as::<CreditNoteRow>(format!(
            "SELECT {CREDIT_NOTE_COLUMNS} FROM credit_notes \
             WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR invoice_id = $2) \
             ORDER BY created_at DESC, number DESC"
        ))
        .bind(org.map(|o| o.to_string()))
        .bind(invoice.map(|i| i.to_string()))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(CreditNote::try_from)
        .collect()
    }

    pub(super) async fn credit_notes_to_post_impl(
        &self,
        limit: i64,
    ) -> StoreResult<Vec<CreditNote>> {
        query_as::<CreditNoteRow>(format!(
            "SELECT {CREDIT_NOTE_COLUMNS} FROM credit_notes WHERE posted_at IS NULL \
             ORDER BY created_at, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(CreditNote::try_from)
        .collect()
    }

    pub(super) async fn mark_credit_note_posted_impl(
        &self,
        id: CreditNoteId,
        at: Timestamp,
    ) -> StoreResult<()> {
        query("UPDATE credit_notes SET posted_at = $1 WHERE id = $2 AND posted_at IS NULL")
            .bind(at.millis())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
