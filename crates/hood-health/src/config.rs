//! Intervals and thresholds; every one configurable so tests run fast.

use hood_domain::backoff::Backoff;
use hood_domain::health::HealthRules;
use hood_domain::retention::RetentionPolicy;
use std::collections::BTreeMap;
use std::time::Duration;

/// Retry schedule of notification deliveries.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    pub max_attempts: i64,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How often the sender looks for due deliveries.
    pub poll: Duration,
    /// How long a claimed delivery is reserved for its sender.
    pub claim_lease: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(600),
            poll: Duration::from_secs(1),
            claim_lease: Duration::from_secs(60),
        }
    }
}

impl DeliveryPolicy {
    /// Backoff before attempt `attempt + 1` (attempts start at 1).
    pub fn backoff(&self, attempt: i64) -> Duration {
        let attempt = u32::try_from(attempt.max(1)).unwrap_or(u32::MAX);
        Backoff::doubling(self.initial_backoff, self.max_backoff).delay(attempt)
    }
}

/// Configuration of the health role.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub rules: HealthRules,
    /// Heartbeat evaluation period (default 30 s).
    pub evaluate_every: Duration,
    /// Uptime materialization period (default 5 min).
    pub uptime_every: Duration,
    /// Cleanup period (default 5 min).
    pub cleanup_every: Duration,
    /// A host no live node uses is reaped after this long.
    pub orphan_host_after: Duration,
    /// A node in maintenance longer than this is handed back to the health
    /// machine (its workflow is gone or forgot it).
    pub maintenance_max: Duration,
    /// What the cleanup loop deletes, and when.
    pub retention: RetentionPolicy,
    pub delivery: DeliveryPolicy,
    /// Per-chain JSON-RPC URL whose head is the lag reference.
    pub reference_rpc: BTreeMap<String, String>,
    /// This replica's identity in leader elections: `health-<pid>-<random>`,
    /// so an operator reading `leader_leases` can tell which process leads.
    pub replica: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            rules: HealthRules::default(),
            evaluate_every: Duration::from_secs(30),
            uptime_every: Duration::from_secs(300),
            cleanup_every: Duration::from_secs(300),
            orphan_host_after: Duration::from_secs(3600),
            maintenance_max: Duration::from_secs(24 * 3600),
            retention: RetentionPolicy::default(),
            delivery: DeliveryPolicy::default(),
            reference_rpc: BTreeMap::new(),
            replica: format!(
                "health-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        }
    }
}

impl HealthConfig {
    /// The leader lease outlives a renewal period several times, and a
    /// standby polls as often as the leader renews: a dead leader is
    /// replaced within one evaluation interval.
    pub fn lease_ttl(&self) -> Duration {
        (self.evaluate_every * 2 / 3).max(Duration::from_millis(300))
    }

    pub fn lease_renew_every(&self) -> Duration {
        self.lease_ttl() / 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = DeliveryPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            ..DeliveryPolicy::default()
        };
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(2), Duration::from_secs(2));
        assert_eq!(p.backoff(3), Duration::from_secs(4));
        assert_eq!(p.backoff(4), Duration::from_secs(5));
        assert_eq!(p.backoff(400), Duration::from_secs(5));
    }

    #[test]
    fn takeover_fits_in_one_interval() {
        let c = HealthConfig {
            evaluate_every: Duration::from_secs(30),
            ..HealthConfig::default()
        };
        assert!(c.lease_ttl() + c.lease_renew_every() <= c.evaluate_every);
    }
}
