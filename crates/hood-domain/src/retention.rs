//! How long Hood keeps what grows without bound: raw usage events (their
//! hourly and daily rollups are kept for ever), finished workflows with
//! their journal, step execution logs, agent events, published outbox
//! rows, finished agent commands, users' notifications and host samples. A retention of
//! `None` keeps everything.

use crate::Timestamp;

const DAY_MS: i64 = 24 * 3_600_000;

/// Retention per kind of record, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Raw usage events. Metering de-duplicates a redelivered event by its
    /// request id only while the event is kept, so this must stay far
    /// longer than any redelivery (minutes) and than the billing period.
    pub usage_events_days: Option<u32>,
    /// Workflows that completed, failed or were abandoned (stuck ones are
    /// kept: they wait for an operator), with steps, signals and logs.
    pub finished_workflows_days: Option<u32>,
    /// Step execution logs (start and end of every action and undo).
    pub step_executions_days: Option<u32>,
    /// Events agents reported (workload starts, exits, restarts).
    pub agent_events_days: Option<u32>,
    /// Outbox rows already published to the bus.
    pub published_outbox_days: Option<u32>,
    /// Agent commands that finished (succeeded, failed or expired), counted
    /// from their deadline: lease renewals and log reads add one per
    /// minute or second, and nothing reads them once settled.
    pub finished_agent_commands_days: Option<u32>,
    /// Users' notifications, read or not: one row per user per event.
    pub feed_items_days: Option<u32>,
    /// The cluster monitor's host samples: one per host per heartbeat.
    pub host_metrics_days: Option<u32>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            usage_events_days: Some(90),
            finished_workflows_days: Some(30),
            step_executions_days: Some(14),
            agent_events_days: Some(14),
            published_outbox_days: Some(7),
            finished_agent_commands_days: Some(7),
            feed_items_days: Some(30),
            host_metrics_days: Some(7),
        }
    }
}

/// The instants before which each kind of record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionCutoffs {
    pub usage_events_before: Option<Timestamp>,
    pub finished_workflows_before: Option<Timestamp>,
    pub step_executions_before: Option<Timestamp>,
    pub agent_events_before: Option<Timestamp>,
    pub published_outbox_before: Option<Timestamp>,
    pub finished_agent_commands_before: Option<Timestamp>,
    pub feed_items_before: Option<Timestamp>,
    pub host_metrics_before: Option<Timestamp>,
}

impl RetentionPolicy {
    /// Keeps everything.
    pub const KEEP_ALL: Self = Self {
        usage_events_days: None,
        finished_workflows_days: None,
        step_executions_days: None,
        agent_events_days: None,
        published_outbox_days: None,
        finished_agent_commands_days: None,
        feed_items_days: None,
        host_metrics_days: None,
    };

    /// The cutoffs at `now`.
    pub fn cutoffs(&self, now: Timestamp) -> RetentionCutoffs {
        let before =
            |days: Option<u32>| days.map(|d| now.plus_millis(-i64::from(d).saturating_mul(DAY_MS)));
        RetentionCutoffs {
            usage_events_before: before(self.usage_events_days),
            finished_workflows_before: before(self.finished_workflows_days),
            step_executions_before: before(self.step_executions_days),
            agent_events_before: before(self.agent_events_days),
            published_outbox_before: before(self.published_outbox_days),
            finished_agent_commands_before: before(self.finished_agent_commands_days),
            feed_items_before: before(self.feed_items_days),
            host_metrics_before: before(self.host_metrics_days),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_are_now_minus_the_retention_and_none_keeps_all() {
        let now = Timestamp(100 * DAY_MS);
        let c = RetentionPolicy::default().cutoffs(now);
        assert_eq!(c.usage_events_before, Some(Timestamp(10 * DAY_MS)));
        assert_eq!(c.finished_workflows_before, Some(Timestamp(70 * DAY_MS)));
        assert_eq!(c.step_executions_before, Some(Timestamp(86 * DAY_MS)));
        assert_eq!(c.agent_events_before, Some(Timestamp(86 * DAY_MS)));
        assert_eq!(c.published_outbox_before, Some(Timestamp(93 * DAY_MS)));
        assert_eq!(
            c.finished_agent_commands_before,
            Some(Timestamp(93 * DAY_MS))
        );
        assert_eq!(c.host_metrics_before, Some(Timestamp(93 * DAY_MS)));
        assert_eq!(
            RetentionPolicy::KEEP_ALL.cutoffs(now),
            RetentionCutoffs::default()
        );
        let zero = RetentionPolicy {
            agent_events_days: Some(0),
            ..RetentionPolicy::KEEP_ALL
        };
        assert_eq!(zero.cutoffs(now).agent_events_before, Some(now));
    }
}
