//! Allocations: rented slices of hosts (design §11). The record; its
//! lifecycle is [`crate::lifecycle::AllocationState`], where it lands is
//! [`crate::placement`], what it costs is [`crate::sku`].

use crate::billing::Currency;
use crate::lifecycle::AllocationState;
use crate::placement::{HostCapacity, Reservation};
use crate::validate::FieldError;
use crate::workload::ContainerRestart;
use crate::{AllocationId, HostId, OrgId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One allocation and the placement it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub id: AllocationId,
    pub org_id: OrgId,
    pub host_id: HostId,
    pub sku: String,
    /// The SKU's price when it was made: what each active minute costs
    /// for its whole life, whatever the catalog says later.
    pub price_per_minute_minor: u64,
    pub currency: Currency,
    /// What runs in the allocation and its limits, as asked.
    pub spec: AllocationSpec,
    pub state: AllocationState,
    pub reservation: Reservation,
    /// The creating request's idempotency key: a retry finds this
    /// allocation instead of placing a second one.
    pub idempotency_key: Option<String>,
    /// When the maximum duration runs out: released then, whatever it is
    /// doing.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// Why it ended other than by request: the sandbox's command exited,
    /// or it could not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it became `active` (billing starts)…
    #[serde(default)]
    pub active_since: Option<Timestamp>,
    /// …and when it left `active` (billing stops).
    #[serde(default)]
    pub active_until: Option<Timestamp>,
    /// Since when it has been under its idle policy's utilization floor
    /// (`None`: busy, or no policy): released once that lasts the
    /// policy's minutes.
    #[serde(default)]
    pub idle_since: Option<Timestamp>,
    /// An image's published ports on its host (container port → host
    /// port), as its agent reported them when it started.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<u16, u16>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where a host's capacity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacitySource {
    /// The agent measured it (NVML for GPUs).
    Reported,
    /// An operator declared it (hosts where NVML is unavailable). A
    /// declared capacity is not overwritten by reports.
    Declared,
}

impl CapacitySource {
    pub fn as_str(self) -> &'static str {
        match self {
            CapacitySource::Reported => "reported",
            CapacitySource::Declared => "declared",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reported" => Some(CapacitySource::Reported),
            "declared" => Some(CapacitySource::Declared),
            _ => None,
        }
    }
}

/// A host's capacity and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInventory {
    pub host_id: HostId,
    pub source: CapacitySource,
    pub capacity: HostCapacity,
    pub updated_at: Timestamp,
}

/// What a customer asks to run in an allocation, and its limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationSpec {
    /// An image (from the host's image store or an OCI archive in the
    /// artifact store); absent for a bare sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The command run in the sandbox (argv); empty for the image's own, or
    /// an idle shell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// OpenSSH public keys allowed into the allocation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_public_keys: Vec<String>,
    /// Released after this many minutes, whatever it is doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_minutes: Option<u32>,
    /// Released when it idles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdlePolicy>,
    /// An image's environment (only with `image`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// An image's TCP ports to publish on its host (only with `image`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// When the host's engine restarts an image's command that ended.
    #[serde(default, skip_serializing_if = "is_never")]
    pub restart: ContainerRestart,
    /// The container this allocation runs, when a container made it: its
    /// transitions are that container's `started` and `stopped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<crate::ContainerId>,
}

fn is_never(r: &ContainerRestart) -> bool {
    *r == ContainerRestart::Never
}

/// Release after `minutes` in a row under `utilization_floor_percent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdlePolicy {
    pub minutes: u32,
    pub utilization_floor_percent: u8,
}

impl IdlePolicy {
    /// Since when the allocation has been under the floor, given the last
    /// `since` and a fresh measurement of `cores_used` (CPU seconds per
    /// second) on its `cores`: kept while under, started when it falls
    /// under, gone when it is busy again. Without a measurement nothing
    /// changes.
    pub fn under_floor_since(
        &self,
        since: Option<Timestamp>,
        cores_used: Option<f64>,
        cores: usize,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let Some(used) = cores_used else {
            return since;
        };
        let percent = used / cores.max(1) as f64 * 100.0;
        if percent < f64::from(self.utilization_floor_percent) {
            Some(since.unwrap_or(now))
        } else {
            None
        }
    }

    /// Whether it has idled long enough to be released.
    pub fn ran_out(&self, since: Option<Timestamp>, now: Timestamp) -> bool {
        since.is_some_and(|s| now.millis() - s.millis() >= i64::from(self.minutes) * 60_000)
    }
}

/// Longest maximum duration accepted: 90 days.
pub const MAX_DURATION_MINUTES: u32 = 90 * 24 * 60;
const MAX_SSH_KEYS: usize = 32;
const MAX_COMMAND_ARGS: usize = 256;
const MAX_TEXT: usize = 4096;

impl AllocationSpec {
    /// Every problem with the spec, one per field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = vec![];
        if let Some(image) = &self.image {
            if image.is_empty()
                || image.len() > 512
                || image.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                errors.push(FieldError::new(
                    "image",
                    "must be a non-empty image reference of at most 512 characters, without spaces",
                ));
            }
        }
        if self.command.len() > MAX_COMMAND_ARGS
            || self
                .command
                .iter()
                .any(|a| a.len() > MAX_TEXT || a.contains('\0'))
        {
            errors.push(FieldError::new(
                "command",
                format!(
                    "at most {MAX_COMMAND_ARGS} arguments of at most {MAX_TEXT} bytes, without NUL"
                ),
            ));
        }
        if self.command.first().is_some_and(|a| a.is_empty()) {
            errors.push(FieldError::new("command", "the program name is empty"));
        }
        if self.ssh_public_keys.len() > MAX_SSH_KEYS {
            errors.push(FieldError::new(
                "ssh_public_keys",
                format!("at most {MAX_SSH_KEYS} keys"),
            ));
        }
        for key in &self.ssh_public_keys {
            if let Err(why) = ssh_public_key(key) {
                errors.push(FieldError::new("ssh_public_keys", why));
                break;
            }
        }
        if let Some(m) = self.max_duration_minutes {
            if m == 0 || m > MAX_DURATION_MINUTES {
                errors.push(FieldError::new(
                    "max_duration_minutes",
                    format!("must be between 1 and {MAX_DURATION_MINUTES}"),
                ));
            }
        }
        if let Some(idle) = self.idle {
            if idle.minutes == 0 || idle.minutes > MAX_DURATION_MINUTES {
                errors.push(FieldError::new(
                    "idle.minutes",
                    format!("must be between 1 and {MAX_DURATION_MINUTES}"),
                ));
            }
            if idle.utilization_floor_percent == 0 || idle.utilization_floor_percent > 100 {
                errors.push(FieldError::new(
                    "idle.utilization_floor_percent",
                    "must be between 1 and 100",
                ));
            }
        }
        if self.image.is_none() && (!self.env.is_empty() || !self.ports.is_empty()) {
            errors.push(FieldError::new(
                "image",
                "environment and ports are an image's: name the image",
            ));
        }
        if self.env.len() > MAX_ENV
            || self.env.iter().any(|(k, v)| {
                k.is_empty()
                    || k.len() > 256
                    || v.len() > MAX_TEXT
                    || !k
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
                    || v.contains('\0')
            })
        {
            errors.push(FieldError::new(
                "env",
                format!(
                    "at most {MAX_ENV} variables, names of letters, digits, `_`, `.` and `-`, \
                     values of at most {MAX_TEXT} bytes without NUL"
                ),
            ));
        }
        let mut ports = self.ports.clone();
        ports.sort_unstable();
        ports.dedup();
        if self.ports.len() > MAX_PORTS
            || ports.len() != self.ports.len()
            || ports.first() == Some(&0)
        {
            errors.push(FieldError::new(
                "ports",
                format!("at most {MAX_PORTS} distinct ports between 1 and 65535"),
            ));
        }
        errors
    }
}

const MAX_ENV: usize = 128;
const MAX_PORTS: usize = 16;

/// An `authorized_keys` line of one key, as users' keys are checked.
fn ssh_public_key(line: &str) -> Result<(), String> {
    if line.len() > 16 * 1024 || line.contains(['\n', '\r', '\0']) {
        return Err("each key is one line of at most 16 KiB".into());
    }
    crate::ssh_key::parse_public_key(line)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn idling_under_the_floor_for_the_policy_s_minutes_runs_out() {
        let policy = IdlePolicy {
            minutes: 2,
            utilization_floor_percent: 10,
        };
        let t = |s: i64| Timestamp(s * 1000);
        // Two cores, 0.1 of a core used: 5 %, under 10 %.
        let since = policy.under_floor_since(None, Some(0.1), 2, t(0));
        assert_eq!(since, Some(t(0)));
        // Still under: the first instant is kept; no measurement keeps it.
        let since = policy.under_floor_since(since, Some(0.0), 2, t(60));
        let since = policy.under_floor_since(since, None, 2, t(90));
        assert_eq!(since, Some(t(0)));
        assert!(!policy.ran_out(since, t(119)));
        assert!(policy.ran_out(since, t(120)));
        // Busy (a whole core of two: 50 %) resets it.
        assert_eq!(policy.under_floor_since(since, Some(1.0), 2, t(100)), None);
        assert!(!policy.ran_out(None, t(10_000)));
    }

    // ssh-keygen -t ed25519 (a throwaway key).
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDhMBy6aRhW6WcTlFF/g+0CCY3uXYvcHl3QazywjUuJX alice@laptop";

    #[test]
    fn an_empty_spec_is_valid() {
        assert!(AllocationSpec::default().validate().is_empty());
    }

    #[test]
    fn an_image_is_one_reference_without_spaces() {
        let with = |image: &str| AllocationSpec {
            image: Some(image.into()),
            ..Default::default()
        };
        assert!(with("registry:5000/hood/app:1").validate().is_empty());
        for bad in ["", "a b", " app", "app\n", &"x".repeat(513)] {
            let errors = with(bad).validate();
            assert_eq!(errors.len(), 1, "{bad:?}");
            assert_eq!(errors[0].field, "image");
        }
    }

    #[test]
    fn openssh_keys_are_checked_by_their_wire_format() {
        let ok = AllocationSpec {
            ssh_public_keys: vec![ED25519.into()],
            ..Default::default()
        };
        assert_eq!(ok.validate(), vec![]);
        for bad in [
            "ssh-ed25519",
            "ssh-dss AAAAB3NzaC1kc3M= x",
            "ssh-ed25519 not*base64",
            // An RSA body under an ed25519 label.
            "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\nssh-rsa AAAA",
        ] {
            let spec = AllocationSpec {
                ssh_public_keys: vec![bad.into()],
                ..Default::default()
            };
            let errors = spec.validate();
            assert_eq!(errors.len(), 1, "{bad}");
            assert_eq!(errors[0].field, "ssh_public_keys");
        }
    }

    #[test]
    fn limits_are_bounded() {
        let spec = AllocationSpec {
            command: vec![String::new()],
            max_duration_minutes: Some(0),
            idle: Some(IdlePolicy {
                minutes: 10,
                utilization_floor_percent: 101,
            }),
            ..Default::default()
        };
        let fields: Vec<_> = spec.validate().iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "command",
                "max_duration_minutes",
                "idle.utilization_floor_percent"
            ]
        );
    }
}

/// An organization's monthly cap on what its allocations cost (design:
/// "budgets per organization"): once the calendar month's (UTC) charges
/// reach it, new allocations are refused and running ones released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationBudget {
    pub org_id: OrgId,
    pub monthly_limit_minor: u64,
    /// Only allocations priced in this currency count against it.
    pub currency: Currency,
    pub updated_at: Timestamp,
}

/// What the budget says about spending `next_minor` more now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetVerdict {
    Within { left_minor: u64 },
    Exhausted { spent_minor: u64 },
}

impl AllocationBudget {
    /// Whether `spent_minor` so far this month leaves room for
    /// `next_minor` more (`0`: is anything left at all).
    pub fn verdict(&self, spent_minor: u64, next_minor: u64) -> BudgetVerdict {
        match self.monthly_limit_minor.checked_sub(spent_minor) {
            Some(left) if left > 0 && left >= next_minor => {
                BudgetVerdict::Within { left_minor: left }
            }
            _ => BudgetVerdict::Exhausted { spent_minor },
        }
    }
}

/// Midnight UTC of the first day of `at`'s month: where a monthly budget
/// starts counting.
pub fn month_start(at: Timestamp) -> Timestamp {
    let nanos = i128::from(at.0) * 1_000_000;
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return at;
    };
    let first = t
        .date()
        .replace_day(1)
        .map(|d| d.midnight().assume_utc())
        .unwrap_or(t);
    Timestamp(i64::try_from(first.unix_timestamp_nanos() / 1_000_000).unwrap_or(at.0))
}

/// What allocations' active spans cost in `[from, to)`, in `currency`'s
/// minor units (rounded once, half up).
pub fn spent_minor(
    spans: &[crate::billing::credits::ActiveSpan],
    from: Timestamp,
    to: Timestamp,
    currency: &Currency,
) -> Result<u64, crate::billing::RatingError> {
    let e = crate::billing::posting::minor_exponent(currency);
    crate::billing::credits::allocation_charge(spans, from, to, e, e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod budget_tests {
    use super::*;
    use crate::billing::credits::ActiveSpan;

    #[test]
    fn the_month_starts_at_utc_midnight_of_its_first_day() {
        // 2026-03-17T13:45:00.250Z → 2026-03-01T00:00:00Z.
        assert_eq!(
            month_start(Timestamp(1_773_755_100_250)),
            Timestamp(1_772_323_200_000)
        );
        assert_eq!(
            month_start(Timestamp(1_772_323_200_000)),
            Timestamp(1_772_323_200_000)
        );
    }

    #[test]
    fn a_budget_refuses_what_it_cannot_cover() {
        let b = AllocationBudget {
            org_id: OrgId::from_uuid(uuid::Uuid::nil()),
            monthly_limit_minor: 100,
            currency: "USD".parse().unwrap(),
            updated_at: Timestamp(0),
        };
        assert_eq!(b.verdict(40, 60), BudgetVerdict::Within { left_minor: 60 });
        assert_eq!(
            b.verdict(41, 60),
            BudgetVerdict::Exhausted { spent_minor: 41 }
        );
        assert_eq!(
            b.verdict(100, 0),
            BudgetVerdict::Exhausted { spent_minor: 100 }
        );
        assert_eq!(
            b.verdict(250, 0),
            BudgetVerdict::Exhausted { spent_minor: 250 }
        );
        // Two allocations at 3 and 7 cents a minute, 90 s and 30 s of the
        // window: 4.5 + 3.5 = 8 cents.
        let spans = [
            ActiveSpan {
                price_per_minute_minor: 3,
                from: Timestamp(0),
                until: None,
            },
            ActiveSpan {
                price_per_minute_minor: 7,
                from: Timestamp(60_000),
                until: Some(Timestamp(90_000)),
            },
        ];
        assert_eq!(
            spent_minor(&spans, Timestamp(0), Timestamp(90_000), &b.currency),
            Ok(8)
        );
    }
}
