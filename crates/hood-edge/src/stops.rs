//! Organizations whose spending is stopped (billing's decision, read from
//! the store every few seconds): prepaid credits exhausted, or a monthly
//! budget reached under a hard cap. Their keys answer 402 until a top-up,
//! a raised budget or the next period lifts the stop. Polling keeps the edge free of billing's events;
//! the cut-off promise (within a minute of the balance running out) has
//! room for a refresh every couple of seconds.

use hood_domain::OrgId;
use hood_store::credits::CreditStore;
use hood_store::StoreError;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Default)]
pub struct SpendingStops {
    stops: RwLock<HashMap<OrgId, Arc<str>>>,
}

impl SpendingStops {
    /// Why `org` is cut off, if it is.
    pub fn reason(&self, org: OrgId) -> Option<Arc<str>> {
        self.stops
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&org)
            .cloned()
    }

    /// Replaces the set with the store's.
    pub async fn refresh(&self, store: &dyn CreditStore) -> Result<usize, StoreError> {
        let fresh: HashMap<OrgId, Arc<str>> = store
            .spending_stops()
            .await?
            .into_iter()
            .map(|(org, reason)| (org, Arc::from(reason)))
            .collect();
        let n = fresh.len();
        *self.stops.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(n)
    }
}
