//! Incidents (design §6; seed 001 `internal/incident/service.go`:
//! categorize, upsert, escalate, resolve).
//!
//! Decisions:
//! - Escalation is an attribute (an escalation level that rises while an
//!   incident stays unacknowledged), not a state: it can happen several times
//!   (tier 1, tier 2, ...) and a state cannot count.
//! - `resolved` is terminal. De-duplication by key matches only unresolved
//!   incidents, so a recurrence after resolution opens a new incident and
//!   each keeps its own time-to-resolve. Flapping is prevented before that,
//!   by the evaluator's hysteresis (resolve only after the condition has
//!   been clear for a while); that timing is not the machine's concern.
//! - `muted` is for per-node incidents under a chain-wide root incident (a
//!   chain halt): they stay recorded but do not notify.

use crate::machine::state_machine;

state_machine! {
    /// The state of one incident.
    pub enum IncidentState: "incident" {
        /// Raised and notifying (escalating while unacknowledged).
        Open = "open",
        /// An operator has taken it; escalation stops.
        Acknowledged = "acknowledged",
        /// Suppressed because a root incident covers it (e.g. chain halt).
        Muted = "muted",
        /// The condition cleared (with hysteresis) or an operator closed it.
        /// Terminal.
        Resolved = "resolved",
    }
    initial: [Open],
    terminal: [Resolved],
    transitions: {
        Open => [Acknowledged, Muted, Resolved],
        Acknowledged => [Muted, Resolved],
        // Unmuting (root resolved, this condition persists) returns to open,
        // or to acknowledged if it had been acknowledged before muting; the
        // service knows which from `acknowledged_at`.
        Muted => [Open, Acknowledged, Resolved],
        Resolved => [],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::StateMachine;

    #[test]
    fn resolved_is_final_and_reachable_from_everywhere() {
        assert!(IncidentState::Resolved.is_terminal());
        for &s in IncidentState::ALL {
            if s != IncidentState::Resolved {
                assert!(s.can_transition_to(IncidentState::Resolved), "{s}");
            }
        }
    }

    #[test]
    fn mute_and_unmute() {
        assert!(IncidentState::Open.can_transition_to(IncidentState::Muted));
        assert!(IncidentState::Muted.can_transition_to(IncidentState::Open));
        assert!(!IncidentState::Acknowledged.can_transition_to(IncidentState::Open));
    }
}
