//! Hosted checkouts for [`SqlStore`] (the `BillingStore` methods delegate
//! here).

use super::billing::parse_id;
use super::SqlStore;
use crate::billing::{Checkout, CheckoutState};
use crate::codec::write_error;
use crate::db::{query, query_as};
use crate::{StoreError, StoreResult};
use hood_domain::Timestamp;

const CHECKOUT_COLUMNS: &str = "idempotency_key, org_id, invoice_id, request, state, attempts, \
     next_attempt_at, last_error, session_id, url, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct CheckoutRow {
    idempotency_key: String,
    org_id: String,
    invoice_id: Option<String>,
    request: String,
    state: String,
    attempts: i64,
    next_attempt_at: Option<i64>,
    last_error: Option<String>,
    session_id: Option<String>,
    url: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<CheckoutRow> for Checkout {
    type Error = StoreError;
    fn try_from(r: CheckoutRow) -> StoreResult<Self> {
        Ok(Checkout {
            idempotency_key: r.idempotency_key,
            org_id: parse_id("org_id", &r.org_id)?,
            invoice_id: r
                .invoice_id
                .map(|i| parse_id("invoice_id", &i))
                .transpose()?,
            request: serde_json::from_str(&r.request)
                .map_err(|e| StoreError::Corrupt(format!("checkout request: {e}")))?,
            state: CheckoutState::parse(&r.state)
                .ok_or_else(|| StoreError::Corrupt(format!("checkout state `{}`", r.state)))?,
            attempts: u32::try_from(r.attempts)
                .map_err(|_| StoreError::Corrupt("checkout attempts".into()))?,
            next_attempt_at: r.next_attempt_at.map(Timestamp::from_millis),
            last_error: r.last_error,
            session_id: r.session_id,
            url: r.url,
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
        })
    }
}

impl SqlStore {
    pub(super) async fn create_checkout_impl(&self, c: &Checkout) -> StoreResult<Checkout> {
        query(format!(
            "INSERT INTO checkouts ({CHECKOUT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (idempotency_key) DO NOTHING"
        ))
        .bind(c.idempotency_key.as_str())
        .bind(c.org_id.to_string())
        .bind(c.invoice_id.map(|i| i.to_string()))
        .bind(c.request.to_string())
        .bind(c.state.as_str())
        .bind(i64::from(c.attempts))
        .bind(c.next_attempt_at.map(Timestamp::millis))
        .bind(c.last_error.clone())
        .bind(c.session_id.clone())
        .bind(c.url.clone())
        .bind(c.created_at.millis())
        .bind(c.updated_at.millis())
        .execute(&self.pool)
        .await
        .map_err(|e| write_error(e, "organization or invoice"))?;
        self.get_checkout_impl(&c.idempotency_key)
            .await?
            .ok_or(StoreError::NotFound("checkout"))
    }

    pub(super) async fn update_checkout_impl(&self, c: &Checkout) -> StoreResult<()> {
        query(
            "UPDATE checkouts SET state = $1, attempts = $2, next_attempt_at = $3, \
             last_error = $4, session_id = $5, url = $6, updated_at = $7 \
             WHERE idempotency_key = $8",
        )
        .bind(c.state.as_str())
        .bind(i64::from(c.attempts))
        .bind(c.next_attempt_at.map(Timestamp::millis))
        .bind(c.last_error.clone())
        .bind(c.session_id.clone())
        .bind(c.url.clone())
        .bind(c.updated_at.millis())
        .bind(c.idempotency_key.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn get_checkout_impl(&self, key: &str) -> StoreResult<Option<Checkout>> {
        query_as::<CheckoutRow>(format!(
            "SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE idempotency_key = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .map(Checkout::try_from)
        .transpose()
    }

    pub(super) async fn due_checkouts_impl(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<Checkout>> {
        query_as::<CheckoutRow>(format!(
            "SELECT {CHECKOUT_COLUMNS} FROM checkouts \
             WHERE state = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, idempotency_key LIMIT $2"
        ))
        .bind(now.millis())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Checkout::try_from)
        .collect()
    }
}
