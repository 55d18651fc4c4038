//! Keeping a claimed run's lease alive while it is worked on.

use super::timing::after;
use hood_clock::Clock;
use hood_store::workflow::WorkflowStore;
use hood_store::workflow::{is_lease_lost, Fence};
use std::sync::Arc;
use std::time::Duration;

/// Renews the lease every third of its length; returns when it is lost
/// (generation moved on) or could not be renewed before it expired.
pub(super) async fn renew_until_lost(
    store: Arc<dyn WorkflowStore>,
    clock: &dyn Clock,
    fence: &Fence,
    ttl: Duration,
) {
    let interval = (ttl / 3).max(Duration::from_millis(10));
    let mut valid_until = tokio::time::Instant::now() + ttl;
    loop {
        tokio::time::sleep(interval).await;
        let expires = after(clock.now(), ttl);
        let sent = tokio::time::Instant::now();
        match store.renew_lease(fence, expires).await {
            Ok(()) => valid_until = sent + ttl,
            Err(e) if is_lease_lost(&e) => return,
            Err(e) => {
                tracing::warn!(error = %e, "lease renewal failed");
                if tokio::time::Instant::now() + interval >= valid_until {
                    return;
                }
            }
        }
    }
}
