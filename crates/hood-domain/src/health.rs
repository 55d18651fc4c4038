//! Health evaluation rules (design §6; seed 001 "How does a node get marked
//! as DOWN?", "How does uptime get computed?").
//!
//! Everything here is a pure function of what the health role read from the
//! store in one cycle: the role does the I/O, these functions decide. That
//! is what lets the edges (exactly three misses, a syncing node, a lagging
//! node, a recovered node) be tested exhaustively without a clock or a
//! database.

use crate::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
use serde::{Deserialize, Serialize};

/// Thresholds of the health machine. Every interval is configurable so
/// tests can run a cycle in a fraction of a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthRules {
    /// A node whose last heartbeat is older than this missed the cycle.
    pub heartbeat_timeout_ms: i64,
    /// Consecutive missed cycles that make a node `down` (seed: 3).
    pub misses_for_down: u32,
    /// Blocks a synced node may trail the best head before it is `lagging`.
    pub lag_tolerance: i64,
    /// Consecutive clear cycles before an incident resolves (hysteresis).
    pub clear_cycles_to_resolve: u32,
    /// A `down` node waits this long before migration (it may come back).
    pub migration_grace_ms: i64,
    /// Minimum time between two migrations of one node.
    pub migration_cooldown_ms: i64,
    /// An open, unacknowledged incident escalates after this long (and again
    /// after as long at each level).
    pub escalate_after_ms: i64,
    /// Highest escalation level.
    pub max_escalation: i64,
    /// The best head of a chain frozen this long (with at least
    /// `halt_min_nodes` nodes reporting) is a chain halt.
    pub chain_halt_after_ms: i64,
    pub halt_min_nodes: usize,
}

impl Default for HealthRules {
    /// The production defaults: 15 s heartbeats judged every 30 s.
    fn default() -> Self {
        Self {
            heartbeat_timeout_ms: 45_000,
            misses_for_down: 3,
            lag_tolerance: 10,
            clear_cycles_to_resolve: 3,
            migration_grace_ms: 120_000,
            migration_cooldown_ms: 30 * 60_000,
            escalate_after_ms: 15 * 60_000,
            max_escalation: 3,
            chain_halt_after_ms: 5 * 60_000,
            halt_min_nodes: 2,
        }
    }
}

/// What one cycle saw of a node's heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatInput {
    /// Last heartbeat of the node's host agent.
    pub last_seen_ms: Option<i64>,
    /// The agent reported the node's workload running in that heartbeat.
    pub workload_running: bool,
    pub now_ms: i64,
    /// Misses counted up to the previous cycle.
    pub previous_misses: u32,
}

/// The heartbeat judgement of one cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatVerdict {
    /// This cycle counts as a miss.
    pub missed: bool,
    /// Misses in a row including this cycle (0 when this one was fine).
    pub consecutive_misses: u32,
    /// The node is to be considered down.
    pub down: bool,
}

/// The seed's `EvaluateHeartbeat`: a fresh heartbeat with the workload
/// running resets the count; anything else adds a miss, and
/// `misses_for_down` misses in a row mean down.
pub fn evaluate_heartbeat(input: HeartbeatInput, rules: &HealthRules) -> HeartbeatVerdict {
    let fresh = input
        .last_seen_ms
        .is_some_and(|seen| input.now_ms.saturating_sub(seen) <= rules.heartbeat_timeout_ms);
    if fresh && input.workload_running {
        return HeartbeatVerdict {
            missed: false,
            consecutive_misses: 0,
            down: false,
        };
    }
    let misses = input.previous_misses.saturating_add(1);
    HeartbeatVerdict {
        missed: true,
        consecutive_misses: misses,
        down: misses >= rules.misses_for_down,
    }
}

/// The best head among a chain's reporting nodes, or the configured
/// reference when it is higher (a whole fleet can fall behind together).
pub fn best_head(heads: impl IntoIterator<Item = i64>, reference: Option<i64>) -> Option<i64> {
    heads.into_iter().chain(reference).max()
}

/// What the agent last observed of the node's sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncObservation {
    /// `eth_syncing` (or the chain's equivalent) said it is catching up.
    pub syncing: Option<bool>,
    pub head: Option<i64>,
    /// Since when the agent has seen this head (see
    /// [`crate::workload::SyncSample::head_since_ms`]).
    pub head_since_ms: Option<i64>,
}

impl SyncObservation {
    /// The agent's sync sample as an observation, with the peers it
    /// counted; a failed or missing sample observed nothing.
    pub fn of(sample: Option<&crate::workload::SyncSample>) -> (Self, Option<i64>) {
        match sample {
            Some(s) if s.error.is_none() => (
                Self {
                    syncing: s.syncing,
                    head: s.head,
                    head_since_ms: s.head_since_ms,
                },
                s.peers,
            ),
            _ => (Self::default(), None),
        }
    }
}

/// Sync status from an observation: catching up is `syncing`; a node
/// that says it is synced but trails the best head by more than the
/// tolerance is `lagging`; no observation is `unknown`.
pub fn evaluate_sync(obs: SyncObservation, best: Option<i64>, rules: &HealthRules) -> SyncStatus {
    match (obs.syncing, obs.head) {
        (Some(true), _) => SyncStatus::Syncing,
        (None, None) => SyncStatus::Unknown,
        (_, Some(head)) => match best {
            Some(best) if best.saturating_sub(head) > rules.lag_tolerance => SyncStatus::Lagging,
            _ => SyncStatus::Synced,
        },
        (Some(false), None) => SyncStatus::Synced,
    }
}

/// The node state the observations call for, or `None` to leave it.
///
/// Only states the health machine owns are judged: provisioning,
/// migrating, maintenance and terminating belong to a workflow. A node
/// that is neither synced nor syncing (lagging) serves as `syncing`; a
/// failing application check makes it `degraded`; neither is ever `down`.
/// A `down` node whose heartbeats are back is judged again from scratch.
pub fn next_node_state(
    current: NodeState,
    heartbeat: HeartbeatVerdict,
    sync: SyncStatus,
    app: ApplicationHealth,
) -> Option<NodeState> {
    let judged = current.is_heartbeat_evaluated();
    if !judged && current != NodeState::Down {
        return None;
    }
    if heartbeat.missed {
        return (judged && heartbeat.down).then_some(NodeState::Down);
    }
    let target = match (sync, app) {
        (_, ApplicationHealth::Critical | ApplicationHealth::Degraded) => NodeState::Degraded,
        (SyncStatus::Syncing | SyncStatus::Lagging, _) => NodeState::Syncing,
        (SyncStatus::Synced, _) => NodeState::Healthy,
        // Reachable but nothing observed yet: a recovering node is
        // catching up until it says otherwise; others keep their state.
        (SyncStatus::Unknown, _) if current == NodeState::Down => NodeState::Syncing,
        (SyncStatus::Unknown, _) => current,
    };
    (target != current).then_some(target)
}

/// A down node is migrated once it has been down past the grace period and
/// its last migration is older than the cooldown.
pub fn migration_due(
    down_since_ms: i64,
    last_migration_ms: Option<i64>,
    now_ms: i64,
    rules: &HealthRules,
) -> bool {
    let past_grace = now_ms.saturating_sub(down_since_ms) >= rules.migration_grace_ms;
    let out_of_cooldown =
        last_migration_ms.is_none_or(|t| now_ms.saturating_sub(t) >= rules.migration_cooldown_ms);
    past_grace && out_of_cooldown
}

/// Where a chain's best head stood and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHeadTrack {
    pub best_head: i64,
    /// When `best_head` last rose.
    pub advanced_at_ms: i64,
}

/// Advances the track with this cycle's best head (a lower head — a reorg
/// or a node replaced — keeps the record and its time).
pub fn track_chain_head(prev: Option<ChainHeadTrack>, best: i64, now_ms: i64) -> ChainHeadTrack {
    match prev {
        Some(p) if best <= p.best_head => p,
        _ => ChainHeadTrack {
            best_head: best,
            advanced_at_ms: now_ms,
        },
    }
}

/// A chain is halted when its best head has not moved for the halt period
/// while enough nodes report: one stuck node is that node's problem, every
/// node stuck at once is the chain's.
pub fn chain_halted(
    track: ChainHeadTrack,
    reporting_nodes: usize,
    now_ms: i64,
    rules: &HealthRules,
) -> bool {
    reporting_nodes >= rules.halt_min_nodes
        && now_ms.saturating_sub(track.advanced_at_ms) >= rules.chain_halt_after_ms
}

/// What incidents are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentCategory {
    NodeDown,
    NodeLagging,
    AppCritical,
    HostUnreachable,
    ChainHalted,
    /// Money: a subscription in grace or expired, prepaid credits low or
    /// exhausted. Raised and cleared by billing, never by health
    /// evaluation.
    Billing,
}

impl IncidentCategory {
    pub const ALL: &'static [Self] = &[
        Self::NodeDown,
        Self::NodeLagging,
        Self::AppCritical,
        Self::HostUnreachable,
        Self::ChainHalted,
        Self::Billing,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NodeDown => "node_down",
            Self::NodeLagging => "node_lagging",
            Self::AppCritical => "app_critical",
            Self::HostUnreachable => "host_unreachable",
            Self::ChainHalted => "chain_halted",
            Self::Billing => "billing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// Severity an incident of this category opens with.
    pub const fn severity(self) -> Severity {
        match self {
            Self::NodeDown | Self::ChainHalted | Self::AppCritical | Self::HostUnreachable => {
                Severity::Critical
            }
            Self::NodeLagging | Self::Billing => Severity::Warning,
        }
    }

    /// Whether health evaluation judges (opens, resolves) incidents of
    /// this category.
    pub const fn judged_by_health(self) -> bool {
        !matches!(self, Self::Billing)
    }

    /// Per-node categories that a chain-wide root incident mutes.
    pub const fn muted_by_chain_halt(self) -> bool {
        matches!(self, Self::NodeLagging | Self::AppCritical)
    }
}

/// Incident severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Info, Self::Warning, Self::Critical]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// The de-duplication key of an incident: one open incident per category
/// and subject (a node id, or `{org}:{chain}` for a chain halt).
pub fn incident_key(category: IncidentCategory, subject: &str) -> String {
    format!("{}:{subject}", category.as_str())
}

/// Hysteresis: the count of clear cycles after this one, and whether the
/// incident resolves now.
pub fn clear_cycle(
    previous_clear: u32,
    condition_present: bool,
    rules: &HealthRules,
) -> (u32, bool) {
    if condition_present {
        return (0, false);
    }
    let clear = previous_clear.saturating_add(1);
    (clear, clear >= rules.clear_cycles_to_resolve)
}

/// Whether an open, unacknowledged incident escalates now: each level waits
/// `escalate_after_ms` after the previous one (or the opening).
pub fn escalation_due(
    since_ms: i64,
    level: i64,
    acknowledged: bool,
    now_ms: i64,
    rules: &HealthRules,
) -> bool {
    !acknowledged
        && level < rules.max_escalation
        && now_ms.saturating_sub(since_ms) >= rules.escalate_after_ms
}

/// How a node state counts for uptime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UptimeClass {
    /// Serving: healthy or degraded.
    Up,
    /// Catching up: reachable and serving older data; counts as up, and is
    /// reported separately so the report says how syncing was counted.
    Syncing,
    /// Not serving: down, or being migrated off a dead host.
    Down,
    /// Deliberate: excluded from the ratio.
    Maintenance,
    /// Not in service yet or any more (provisioning, suspended for
    /// non-payment, terminating, gone).
    NotCounted,
}

pub const fn uptime_class(state: NodeState) -> UptimeClass {
    match state {
        NodeState::Healthy | NodeState::Degraded => UptimeClass::Up,
        NodeState::Syncing => UptimeClass::Syncing,
        NodeState::Down | NodeState::Migrating => UptimeClass::Down,
        NodeState::Maintenance => UptimeClass::Maintenance,
        NodeState::Provisioning
        | NodeState::Suspended
        | NodeState::Terminating
        | NodeState::Terminated
        | NodeState::Failed => UptimeClass::NotCounted,
    }
}

pub const HOUR_MS: i64 = 3_600_000;

/// Milliseconds a node spent in each uptime class during one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UptimeBucket {
    pub hour_start_ms: i64,
    pub up_ms: i64,
    pub syncing_ms: i64,
    pub down_ms: i64,
    pub maintenance_ms: i64,
}

impl UptimeBucket {
    fn add(&mut self, class: UptimeClass, ms: i64) {
        match class {
            UptimeClass::Up => self.up_ms += ms,
            UptimeClass::Syncing => self.syncing_ms += ms,
            UptimeClass::Down => self.down_ms += ms,
            UptimeClass::Maintenance => self.maintenance_ms += ms,
            UptimeClass::NotCounted => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.up_ms + self.syncing_ms + self.down_ms + self.maintenance_ms == 0
    }
}

/// Start of the hour containing `ms`.
pub const fn hour_floor(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// Splits `[from_ms, to_ms)` into hourly buckets from a node's state log.
/// `state_at_from` is the state in force at `from_ms`; `transitions` are
/// `(at_ms, new_state)` in time order (entries outside the range are
/// ignored). Hours in which nothing counted are omitted.
pub fn hourly_buckets(
    state_at_from: Option<NodeState>,
    transitions: &[(i64, NodeState)],
    from_ms: i64,
    to_ms: i64,
) -> Vec<UptimeBucket> {
    let mut out: Vec<UptimeBucket> = Vec::new();
    if to_ms <= from_ms {
        return out;
    }
    let mut state = state_at_from;
    let mut cursor = from_ms;
    let mut changes = transitions
        .iter()
        .filter(|(at, _)| *at > from_ms && *at < to_ms)
        .peekable();
    while cursor < to_ms {
        let hour_end = hour_floor(cursor) + HOUR_MS;
        let next_change = changes.peek().map(|(at, _)| *at);
        let span_end = next_change.unwrap_or(to_ms).min(hour_end).min(to_ms);
        if let Some(s) = state {
            let hour = hour_floor(cursor);
            if out.last().is_none_or(|b| b.hour_start_ms != hour) {
                out.push(UptimeBucket {
                    hour_start_ms: hour,
                    ..Default::default()
                });
            }
            if let Some(bucket) = out.last_mut() {
                bucket.add(uptime_class(s), span_end - cursor);
            }
        }
        cursor = span_end;
        if next_change == Some(span_end) {
            if let Some((_, s)) = changes.next() {
                state = Some(*s);
            }
        }
    }
    out.retain(|b| !b.is_empty());
    out
}

/// Uptime over a window: syncing counts as up, maintenance is excluded.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct UptimeSummary {
    pub up_ms: i64,
    pub syncing_ms: i64,
    pub down_ms: i64,
    pub maintenance_ms: i64,
    /// `(up + syncing) / (up + syncing + down)`; `None` when nothing counted.
    pub ratio: Option<f64>,
}

pub fn summarize_uptime<'a>(buckets: impl IntoIterator<Item = &'a UptimeBucket>) -> UptimeSummary {
    let mut s = UptimeSummary::default();
    for b in buckets {
        s.up_ms += b.up_ms;
        s.syncing_ms += b.syncing_ms;
        s.down_ms += b.down_ms;
        s.maintenance_ms += b.maintenance_ms;
    }
    let counted = s.up_ms + s.syncing_ms + s.down_ms;
    #[allow(clippy::cast_precision_loss)] // milliseconds over years fit f64 exactly enough
    {
        s.ratio = (counted > 0).then(|| (s.up_ms + s.syncing_ms) as f64 / counted as f64);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> HealthRules {
        HealthRules {
            heartbeat_timeout_ms: 1_000,
            ..HealthRules::default()
        }
    }

    fn beat(last_seen: Option<i64>, running: bool, now: i64, prev: u32) -> HeartbeatVerdict {
        evaluate_heartbeat(
            HeartbeatInput {
                last_seen_ms: last_seen,
                workload_running: running,
                now_ms: now,
                previous_misses: prev,
            },
            &rules(),
        )
    }

    #[test]
    fn exactly_three_misses_make_down() {
        let v1 = beat(Some(0), true, 5_000, 0);
        assert_eq!(
            (v1.missed, v1.consecutive_misses, v1.down),
            (true, 1, false)
        );
        let v2 = beat(Some(0), true, 6_000, v1.consecutive_misses);
        assert_eq!((v2.consecutive_misses, v2.down), (2, false));
        let v3 = beat(Some(0), true, 7_000, v2.consecutive_misses);
        assert_eq!((v3.consecutive_misses, v3.down), (3, true));
    }

    #[test]
    fn timeout_edge_is_inclusive() {
        assert!(!beat(Some(1_000), true, 2_000, 2).missed);
        assert!(beat(Some(1_000), true, 2_001, 0).missed);
    }

    #[test]
    fn a_fresh_heartbeat_resets_the_count() {
        let v = beat(Some(9_900), true, 10_000, 2);
        assert_eq!(
            v,
            HeartbeatVerdict {
                missed: false,
                consecutive_misses: 0,
                down: false
            }
        );
    }

    #[test]
    fn a_stopped_workload_on_a_live_host_is_a_miss() {
        assert!(beat(Some(9_900), false, 10_000, 0).missed);
        assert!(beat(None, true, 10_000, 0).missed);
    }

    #[test]
    fn syncing_node_is_syncing_never_down() {
        let sync = evaluate_sync(
            SyncObservation {
                syncing: Some(true),
                head: Some(5),
                head_since_ms: None,
            },
            Some(1_000),
            &rules(),
        );
        assert_eq!(sync, SyncStatus::Syncing);
        let fine = beat(Some(1), true, 2, 0);
        assert_eq!(
            next_node_state(NodeState::Healthy, fine, sync, ApplicationHealth::Ok),
            Some(NodeState::Syncing)
        );
    }

    #[test]
    fn lagging_is_beyond_tolerance_only() {
        let r = rules();
        let at = |head| {
            evaluate_sync(
                SyncObservation {
                    syncing: Some(false),
                    head: Some(head),
                    head_since_ms: None,
                },
                Some(100),
                &r,
            )
        };
        assert_eq!(at(100), SyncStatus::Synced);
        assert_eq!(at(100 - r.lag_tolerance), SyncStatus::Synced);
        assert_eq!(at(100 - r.lag_tolerance - 1), SyncStatus::Lagging);
        let fine = beat(Some(1), true, 2, 0);
        assert_eq!(
            next_node_state(
                NodeState::Healthy,
                fine,
                SyncStatus::Lagging,
                ApplicationHealth::Ok
            ),
            Some(NodeState::Syncing),
            "a lagging node serves as syncing, it is not down"
        );
    }

    #[test]
    fn no_observation_is_unknown_and_keeps_state() {
        let s = evaluate_sync(SyncObservation::default(), Some(10), &rules());
        assert_eq!(s, SyncStatus::Unknown);
        let fine = beat(Some(1), true, 2, 0);
        assert_eq!(
            next_node_state(NodeState::Healthy, fine, s, ApplicationHealth::Unknown),
            None
        );
    }

    #[test]
    fn recovered_node_is_judged_again() {
        let fine = beat(Some(1), true, 2, 0);
        assert_eq!(
            next_node_state(
                NodeState::Down,
                fine,
                SyncStatus::Synced,
                ApplicationHealth::Ok
            ),
            Some(NodeState::Healthy)
        );
        assert_eq!(
            next_node_state(
                NodeState::Down,
                fine,
                SyncStatus::Unknown,
                ApplicationHealth::Unknown
            ),
            Some(NodeState::Syncing)
        );
        let still_dead = beat(None, false, 2, 5);
        assert_eq!(
            next_node_state(
                NodeState::Down,
                still_dead,
                SyncStatus::Unknown,
                ApplicationHealth::Unknown
            ),
            None
        );
    }

    #[test]
    fn workflow_owned_states_are_left_alone() {
        let dead = beat(None, false, 10, 10);
        for s in [
            NodeState::Provisioning,
            NodeState::Migrating,
            NodeState::Maintenance,
            NodeState::Suspended,
            NodeState::Terminating,
        ] {
            assert_eq!(
                next_node_state(s, dead, SyncStatus::Unknown, ApplicationHealth::Unknown),
                None,
                "{s}"
            );
        }
    }

    #[test]
    fn critical_app_health_degrades() {
        let fine = beat(Some(1), true, 2, 0);
        assert_eq!(
            next_node_state(
                NodeState::Healthy,
                fine,
                SyncStatus::Synced,
                ApplicationHealth::Critical
            ),
            Some(NodeState::Degraded)
        );
    }

    #[test]
    fn every_target_is_an_allowed_transition() {
        use crate::machine::StateMachine;
        let verdicts = [
            beat(Some(1), true, 2, 0),
            beat(None, true, 2, 0),
            beat(None, true, 2, 5),
        ];
        for &s in NodeState::ALL {
            for v in verdicts {
                for &sync in SyncStatus::ALL {
                    for &app in ApplicationHealth::ALL {
                        if let Some(t) = next_node_state(s, v, sync, app) {
                            assert!(s.can_transition_to(t), "{s} -> {t}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn migration_waits_for_grace_and_cooldown() {
        let r = HealthRules {
            migration_grace_ms: 100,
            migration_cooldown_ms: 1_000,
            ..rules()
        };
        assert!(!migration_due(0, None, 99, &r));
        assert!(migration_due(0, None, 100, &r));
        assert!(!migration_due(0, Some(-500), 100, &r));
        assert!(migration_due(0, Some(-900), 100, &r));
    }

    #[test]
    fn chain_halt_needs_time_and_several_nodes() {
        let r = HealthRules {
            chain_halt_after_ms: 1_000,
            halt_min_nodes: 2,
            ..rules()
        };
        let t = track_chain_head(None, 10, 0);
        let t = track_chain_head(Some(t), 10, 900);
        assert_eq!(t.advanced_at_ms, 0);
        assert!(!chain_halted(t, 2, 999, &r));
        assert!(chain_halted(t, 2, 1_000, &r));
        assert!(
            !chain_halted(t, 1, 5_000, &r),
            "one stuck node is not the chain"
        );
        let t = track_chain_head(Some(t), 11, 1_200);
        assert!(!chain_halted(t, 3, 1_300, &r));
    }

    #[test]
    fn hysteresis_resolves_after_enough_clear_cycles() {
        let r = rules();
        let (c, done) = clear_cycle(0, false, &r);
        assert_eq!((c, done), (1, false));
        let (c, done) = clear_cycle(c, false, &r);
        assert_eq!((c, done), (2, false));
        let (c2, done) = clear_cycle(c, true, &r);
        assert_eq!((c2, done), (0, false), "a relapse starts over");
        let (c, done) = clear_cycle(c, false, &r);
        assert_eq!((c, done), (3, true));
    }

    #[test]
    fn escalation_steps() {
        let r = HealthRules {
            escalate_after_ms: 10,
            max_escalation: 2,
            ..rules()
        };
        assert!(!escalation_due(0, 0, false, 9, &r));
        assert!(escalation_due(0, 0, false, 10, &r));
        assert!(!escalation_due(0, 0, true, 100, &r));
        assert!(!escalation_due(0, 2, false, 100, &r));
    }

    #[test]
    fn buckets_split_on_hours_and_transitions() {
        let h = HOUR_MS;
        let log = [
            (h / 2, NodeState::Down),
            (h + h / 4, NodeState::Healthy),
            (2 * h, NodeState::Maintenance),
        ];
        let b = hourly_buckets(Some(NodeState::Healthy), &log, 0, 3 * h);
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].up_ms, b[0].down_ms), (h / 2, h / 2));
        assert_eq!((b[1].down_ms, b[1].up_ms), (h / 4, 3 * h / 4));
        assert_eq!(b[2].maintenance_ms, h);
        let s = summarize_uptime(&b);
        assert_eq!(s.down_ms, 3 * h / 4);
        assert_eq!(s.maintenance_ms, h);
        let ratio = s.ratio.unwrap_or_default();
        assert!((ratio - (1.25 / 2.0)).abs() < 1e-9, "{ratio}");
    }

    #[test]
    fn buckets_before_the_first_state_and_empty_ranges() {
        let b = hourly_buckets(None, &[(100, NodeState::Healthy)], 0, 200);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].up_ms, 100);
        assert!(hourly_buckets(Some(NodeState::Healthy), &[], 5, 5).is_empty());
        let provisioning = hourly_buckets(Some(NodeState::Provisioning), &[], 0, 100);
        assert!(provisioning.is_empty(), "provisioning does not count");
        assert_eq!(summarize_uptime(&provisioning).ratio, None);
    }

    #[test]
    fn syncing_counts_as_up_but_is_reported() {
        let b = hourly_buckets(Some(NodeState::Syncing), &[], 0, 1_000);
        let s = summarize_uptime(&b);
        assert_eq!((s.syncing_ms, s.ratio), (1_000, Some(1.0)));
    }
}
