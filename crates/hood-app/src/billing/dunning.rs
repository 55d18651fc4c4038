//! Dunning: what happens when money does not arrive (seed 000: a
//! subscription ends in termination; design §8).
//!
//! - An issued invoice unpaid past the payment terms moves an active
//!   subscription into grace (a failed payment does so at once, see
//!   [`super::payments`]).
//! - A subscription waiting for its first payment longer than its grace
//!   expires.
//! - Grace running out expires the subscription and terminates every node
//!   of the organization through the `terminate-node` workflow, which
//!   wipes the node's key material on the host and in the store.

use super::BillingService;
use crate::error::AppResult;
use hood_domain::lifecycle::{InvoiceState, NodeState, SubscriptionState};
use hood_domain::machine::StateMachine;
use hood_store::billing::InvoiceQuery;

/// Days an issued invoice may stay unpaid before its subscription enters
/// grace, unless configured otherwise.
pub const DEFAULT_PAYMENT_TERMS_MS: i64 = 14 * 86_400_000;

/// What one dunning pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DunningReport {
    pub entered_grace: usize,
    pub expired: usize,
    pub nodes_terminated: usize,
}

impl BillingService {
    /// One pass over unpaid invoices and subscriptions in grace.
    pub async fn dunning(&self) -> AppResult<DunningReport> {
        let now = self.clock.now();
        let mut report = DunningReport::default();
        let overdue = self
            .store()
            .list_invoices(&InvoiceQuery {
                state: Some(InvoiceState::Issued),
                limit: 10_000,
                ..InvoiceQuery::default()
            })
            .await?
            .into_iter()
            .filter(|i| {
                i.issued_at
                    .is_some_and(|at| at.plus_millis(self.payment_terms_ms) <= now)
            });
        for inv in overdue {
            let sub = self.subscription(None, inv.subscription_id).await?;
            if sub.state == SubscriptionState::Active {
                let reason = format!(
                    "invoice {} is unpaid after its payment terms",
                    inv.number.as_deref().unwrap_or("")
                );
                self.move_subscription(sub.id, SubscriptionState::Grace, Some(reason))
                    .await?;
                report.entered_grace += 1;
            }
        }
        for sub in self.store().list_subscriptions(None).await? {
            let ran_out = match sub.state {
                SubscriptionState::Grace => sub.grace_until.is_some_and(|t| t <= now),
                SubscriptionState::PendingPayment => {
                    sub.state_since.plus_millis(sub.grace_ms) <= now
                }
                _ => false,
            };
            if !ran_out {
                continue;
            }
            self.move_subscription(
                sub.id,
                SubscriptionState::Expired,
                Some("grace ran out without payment".into()),
            )
            .await?;
            report.expired += 1;
            tracing::warn!(subscription = %sub.id, org = %sub.org_id, "subscription expired");
            report.nodes_terminated += self.terminate_nodes_of(sub.org_id).await?;
        }
        Ok(report)
    }

    /// Terminates the organization's live nodes (idempotent: a node whose
    /// termination is under way is asked again, which changes nothing).
    pub(super) async fn terminate_nodes_of(&self, org: hood_domain::OrgId) -> AppResult<usize> {
        let Some(nodes) = &self.node_service else {
            tracing::warn!(org = %org, "no node service here: nodes left running");
            return Ok(0);
        };
        let mut terminated = 0;
        for node in self.stores.nodes.list_nodes(Some(org)).await? {
            if node.state.is_terminal() || node.state == NodeState::Terminating {
                continue;
            }
            nodes.terminate(org, node.id).await?;
            terminated += 1;
        }
        Ok(terminated)
    }
}
