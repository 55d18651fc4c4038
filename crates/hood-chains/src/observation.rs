//! `chains/{chain}/observation.yaml`: what the agent collects beyond the
//! runtime's health/sync probes, and CEL policies that turn the samples into
//! incidents and application-health outcomes.

use serde::{Deserialize, Serialize};

use crate::runtime::Source;

/// Variables every policy may use besides collector names: `sync` (status,
/// head, target, reference_head, lag, head_age_s) and `node` (node_type,
/// uptime_s). Collectors cannot take these names.
pub const RESERVED_POLICY_VARIABLES: &[&str] = &["sync", "node"];

/// The parsed `observation.yaml` of one chain. Missing file = empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    /// Samplers run by the agent.
    #[serde(default)]
    pub collectors: Vec<Collector>,
    /// Conditions evaluated over the latest samples.
    #[serde(default)]
    pub policies: Vec<Policy>,
}

/// A periodic sample; its latest value is the CEL variable `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collector {
    /// Unique name, usable as a CEL identifier.
    pub name: String,
    /// Seconds between samples.
    pub interval_s: u32,
    /// Per-sample timeout; must be below `interval_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// What to query.
    pub source: Source,
}

/// A CEL condition: when `expression` is true for `for_s` seconds, the
/// policy fires with `severity` and, if set, moves application health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Unique name; becomes the incident key suffix.
    pub name: String,
    /// What firing means, for people reading the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// CEL boolean over collectors, `sync` and `node`; true = firing.
    pub expression: String,
    /// Seconds the expression must hold before firing (hysteresis).
    #[serde(default)]
    pub for_s: u32,
    /// Incident severity.
    pub severity: Severity,
    /// Application health while firing; absent = informational only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_health: Option<HealthOutcome>,
}

/// Incident severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth recording.
    Info,
    /// Needs attention.
    Warning,
    /// Service affected.
    Critical,
}

/// Application-health outcome of a firing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthOutcome {
    /// `application_health = degraded`.
    Degraded,
    /// `application_health = critical`.
    Critical,
}
