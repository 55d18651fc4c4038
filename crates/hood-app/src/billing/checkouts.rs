//! Hosted checkouts that survive a payment provider's outage (seed 002
//! §7): each request is stored under its idempotency key before the
//! provider is asked; when the provider cannot take it (down, 5xx, 429)
//! it stays `pending` and the billing role sends it again with backoff
//! (the same key, so the provider never makes two sessions), until it is
//! `open` or the retry window ends.

use super::BillingService;
use crate::error::{AppError, AppResult};
use hood_domain::backoff::Backoff;
use hood_domain::{InvoiceId, OrgId};
use hood_payments::{CheckoutRequest, PaymentError};
use hood_store::billing::{Checkout, CheckoutState};
use std::time::Duration;

/// Waits between attempts while the provider is down.
pub const CHECKOUT_BACKOFF: Backoff =
    Backoff::doubling(Duration::from_secs(5), Duration::from_secs(600));

/// How long a pending checkout is retried before it is given up.
pub const CHECKOUT_RETRY_WINDOW_MS: i64 = 24 * 3_600_000;

impl BillingService {
    /// Stores `request` (or finds the earlier one under its key) and asks
    /// the provider for it unless it is open already.
    pub(crate) async fn open_checkout(
        &self,
        org: OrgId,
        invoice: Option<InvoiceId>,
        request: &CheckoutRequest,
    ) -> AppResult<Checkout> {
        if self.provider.is_none() {
            return Err(AppError::Unavailable(
                "no payment provider is configured (set HOOD_STRIPE_SECRET_KEY)".into(),
            ));
        }
        let now = self.clock.now();
        let json = serde_json::to_value(request)
            .map_err(|e| AppError::Internal(format!("encoding a checkout: {e}")))?;
        let stored = self
            .store()
            .create_checkout(&Checkout {
                idempotency_key: request.idempotency_key.clone(),
                org_id: org,
                invoice_id: invoice,
                request: json,
                state: CheckoutState::Pending,
                attempts: 0,
                next_attempt_at: Some(now),
                last_error: None,
                session_id: None,
                url: None,
                created_at: now,
                updated_at: now,
            })
            .await?;
        if stored.org_id != org {
            return Err(AppError::Conflict(
                "this request key belongs to another organization".into(),
            ));
        }
        match stored.state {
            CheckoutState::Pending => self.attempt_checkout(stored).await,
            CheckoutState::Open => Ok(stored),
            CheckoutState::Failed => Err(AppError::Conflict(format!(
                "the payment provider refused this checkout: {}",
                stored.last_error.as_deref().unwrap_or("no reason given")
            ))),
        }
    }

    /// A checkout as stored (the caller's organization's, or any for
    /// operators).
    pub async fn checkout_status(&self, org: Option<OrgId>, key: &str) -> AppResult<Checkout> {
        self.store()
            .get_checkout(key)
            .await?
            .filter(|c| org.is_none_or(|o| c.org_id == o))
            .ok_or(AppError::NotFound("checkout"))
    }

    /// Sends every pending checkout whose next attempt is due (the billing
    /// loop); returns how many opened.
    pub async fn retry_checkouts(&self, limit: i64) -> AppResult<usize> {
        let mut opened = 0;
        for c in self.store().due_checkouts(self.clock.now(), limit).await? {
            match self.attempt_checkout(c).await {
                Ok(c) if c.state == CheckoutState::Open => opened += 1,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "a queued checkout was refused"),
            }
        }
        Ok(opened)
    }

    /// One attempt: open, still pending (with the next attempt scheduled),
    /// or failed (the provider refused, or stayed down too long).
    async fn attempt_checkout(&self, mut c: Checkout) -> AppResult<Checkout> {
        let provider = self
            .provider
            .as_ref()
            .ok_or_else(|| AppError::Unavailable("no payment provider is configured".into()))?;
        let request: CheckoutRequest = serde_json::from_value(c.request.clone())
            .map_err(|e| AppError::Internal(format!("a stored checkout is unreadable: {e}")))?;
        let result = provider.create_checkout(&request).await;
        let now = self.clock.now();
        c.attempts = c.attempts.saturating_add(1);
        c.updated_at = now;
        match result {
            Ok(session) => {
                c.state = CheckoutState::Open;
                c.session_id = Some(session.id);
                c.url = Some(session.url);
                c.next_attempt_at = None;
                c.last_error = None;
                tracing::info!(key = %c.idempotency_key, attempts = c.attempts, "checkout opened");
            }
            Err(e @ PaymentError::Unavailable { .. })
                if c.created_at.plus_millis(CHECKOUT_RETRY_WINDOW_MS) > now =>
            {
                let wait = CHECKOUT_BACKOFF.delay(c.attempts);
                c.next_attempt_at =
                    Some(now.plus_millis(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)));
                c.last_error = Some(e.to_string());
                tracing::warn!(key = %c.idempotency_key, attempts = c.attempts, error = %e, "payment provider unavailable: checkout queued");
            }
            Err(e) => {
                c.state = CheckoutState::Failed;
                c.next_attempt_at = None;
                c.last_error = Some(e.to_string());
                self.store().update_checkout(&c).await?;
                return Err(super::provider_error(e));
            }
        }
        self.store().update_checkout(&c).await?;
        Ok(c)
    }
}
