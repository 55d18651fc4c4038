//! The worker's local copy of a run's journal.

use crate::definition::Workflow;
use hood_domain::lifecycle::StepState;
use hood_store::workflow::StepRecord;
use std::collections::BTreeMap;

/// The local copy of a run's journal, updated as this worker writes it.
pub(super) struct Journal {
    pub(super) steps: Vec<Option<StepRecord>>,
    /// Unconsumed signals the store last reported.
    pub(super) pending_signals: i64,
}

impl Journal {
    pub(super) fn first_unfinished(&self) -> usize {
        self.steps
            .iter()
            .position(|s| s.as_ref().is_none_or(|s| s.state != StepState::Succeeded))
            .unwrap_or(self.steps.len())
    }

    pub(super) fn outputs<C>(&self, def: &Workflow<C>) -> BTreeMap<String, serde_json::Value> {
        self.steps
            .iter()
            .zip(def.steps.iter())
            .filter_map(|(rec, step)| {
                let out = rec.as_ref()?.output.clone()?;
                Some((step.name.clone(), out))
            })
            .collect()
    }

    pub(super) fn set(&mut self, index: usize, f: impl FnOnce(&mut StepRecord)) {
        if let Some(Some(rec)) = self.steps.get_mut(index) {
            f(rec);
        }
    }
}
