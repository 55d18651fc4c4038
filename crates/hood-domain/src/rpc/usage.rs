//! Usage events, their outcome statuses and rollup buckets.

use super::UnknownVariant;
use crate::{OrgId, RpcKeyId, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The width of a usage rollup bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub const ALL: [Granularity; 2] = [Granularity::Hour, Granularity::Day];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// Length of one bucket in milliseconds.
    pub const fn millis(self) -> i64 {
        match self {
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }

    /// Start (Unix ms, UTC) of the bucket holding `ms`; floors, also before
    /// 1970.
    pub const fn bucket_start(self, ms: i64) -> i64 {
        ms.div_euclid(self.millis()) * self.millis()
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Granularity {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| UnknownVariant {
                kind: "granularity",
                value: s.to_owned(),
                expected: "hour, day",
            })
    }
}

/// How a served request ended, for metering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageStatus {
    /// Answered with a result.
    Ok,
    /// Answered with a JSON-RPC error from the node.
    RpcError,
    /// Refused by the plan's limit (429).
    RateLimited,
    /// Refused by the key's scope (chain, method, IP, origin).
    Denied,
    /// No upstream could answer (5xx).
    UpstreamError,
}

impl UsageStatus {
    pub const ALL: [UsageStatus; 5] = [
        UsageStatus::Ok,
        UsageStatus::RpcError,
        UsageStatus::RateLimited,
        UsageStatus::Denied,
        UsageStatus::UpstreamError,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::RpcError => "rpc_error",
            Self::RateLimited => "rate_limited",
            Self::Denied => "denied",
            Self::UpstreamError => "upstream_error",
        }
    }

    /// Counted in a rollup's `errors`: everything but `ok`.
    pub const fn is_error(self) -> bool {
        !matches!(self, Self::Ok)
    }
}

impl fmt::Display for UsageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UsageStatus {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVariant {
                kind: "usage status",
                value: s.to_owned(),
                expected: "ok, rpc_error, rate_limited, denied, upstream_error",
            })
    }
}

/// One served request, as the edge reports it for metering. The edge ships
/// these over the bus as JSON; `request_id` (a UUID v7) makes storing them
/// idempotent, so a redelivered event is never counted twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    pub request_id: String,
    pub org_id: OrgId,
    pub key_id: RpcKeyId,
    pub chain: String,
    /// The JSON-RPC method (one event per batch item).
    pub method: String,
    pub compute_units: u32,
    pub status: UsageStatus,
    pub http_status: u16,
    pub latency_us: u64,
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn buckets_floor_to_utc_hours_and_days() {
        const H: i64 = 3_600_000;
        const D: i64 = 24 * H;
        let t = 1_700_000_000_000; // 2023-11-14T22:13:20Z
        assert_eq!(Granularity::Hour.bucket_start(t), 1_699_999_200_000);
        assert_eq!(Granularity::Day.bucket_start(t), 1_699_920_000_000);
        for g in Granularity::ALL {
            let len = g.millis();
            assert_eq!(len, if g == Granularity::Hour { H } else { D });
            assert_eq!(g.bucket_start(0), 0);
            assert_eq!(g.bucket_start(len - 1), 0);
            assert_eq!(g.bucket_start(len), len);
            assert_eq!(g.bucket_start(-1), -len, "floors before 1970");
            assert_eq!(g.as_str().parse::<Granularity>(), Ok(g));
            assert_eq!(g.to_string(), g.as_str());
            assert_eq!(serde_json::to_value(g).unwrap(), json!(g.as_str()));
        }
        let e = "week".parse::<Granularity>().unwrap_err();
        assert!(e.to_string().contains("hour, day"), "{e}");
        assert!("Hour".parse::<Granularity>().is_err());
    }

    proptest! {
        #[test]
        fn bucket_start_is_the_floor(ms in -1_000_000_000_000_000i64..1_000_000_000_000_000i64) {
            for g in Granularity::ALL {
                let b = g.bucket_start(ms);
                prop_assert!(b <= ms && ms < b + g.millis());
                prop_assert_eq!(b.rem_euclid(g.millis()), 0);
                prop_assert_eq!(g.bucket_start(b), b);
            }
        }
    }

    #[test]
    fn usage_status_names_round_trip() {
        let names = [
            "ok",
            "rpc_error",
            "rate_limited",
            "denied",
            "upstream_error",
        ];
        for (s, name) in UsageStatus::ALL.into_iter().zip(names) {
            assert_eq!(s.as_str(), name);
            assert_eq!(name.parse::<UsageStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(name));
            assert_eq!(
                serde_json::from_value::<UsageStatus>(json!(name)).unwrap(),
                s
            );
            assert_eq!(s.is_error(), s != UsageStatus::Ok);
            assert_eq!(s.to_string(), name);
        }
        assert!("OK".parse::<UsageStatus>().is_err());
        assert!(serde_json::from_value::<UsageStatus>(json!("RateLimited")).is_err());
    }

    #[test]
    fn usage_events_travel_as_plain_json() {
        let ev = UsageEvent {
            request_id: "0190b6a0-0000-7000-8000-000000000001".into(),
            org_id: OrgId::from_uuid(uuid::Uuid::nil()),
            key_id: RpcKeyId::from_uuid(uuid::Uuid::max()),
            chain: "ethereum".into(),
            method: "eth_call".into(),
            compute_units: 26,
            status: UsageStatus::RateLimited,
            http_status: 429,
            latency_us: 1_234,
            at: Timestamp(1_700_000_000_000),
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(
            v,
            json!({
                "request_id": "0190b6a0-0000-7000-8000-000000000001",
                "org_id": "00000000-0000-0000-0000-000000000000",
                "key_id": "ffffffff-ffff-ffff-ffff-ffffffffffff",
                "chain": "ethereum",
                "method": "eth_call",
                "compute_units": 26,
                "status": "rate_limited",
                "http_status": 429,
                "latency_us": 1234,
                "at": 1_700_000_000_000i64,
            })
        );
        assert_eq!(serde_json::from_value::<UsageEvent>(v).unwrap(), ev);
    }
}
