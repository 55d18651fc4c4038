//! Plans: a sustained allowance of compute units per minute plus a burst.

use super::RpcConfigError;
use crate::gcra::Quota;
use crate::validate;
use serde::{Deserialize, Serialize};

/// The CU price of a cheap call (`eth_blockNumber`): the unit in which
/// HoodRun's per-request plan limits are converted to CU.
pub const BASELINE_CU: u64 = 10;

/// A plan: a sustained allowance of compute units per minute plus a burst
/// (the GCRA bucket size), applied per key × chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    pub cu_per_minute: u64,
    pub burst_cu: u64,
}

impl Plan {
    /// The GCRA quota of this plan: `cu_per_minute` per 60 s, bucket
    /// `burst_cu`. A plan with a zero rate or burst yields an invalid quota,
    /// which [`crate::gcra::check`] refuses (fails closed); catalogs built
    /// with [`PlanCatalog::from_plans`] never hold one.
    pub fn quota(&self) -> Quota {
        Quota::per_minute(self.cu_per_minute).with_burst(self.burst_cu)
    }
}

/// The plans an installation sells, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanCatalog {
    /// In the order given (the defaults: cheapest first).
    plans: Vec<Plan>,
}

impl PlanCatalog {
    /// HoodRun's plans converted to CU at [`BASELINE_CU`]: free 100 req/min
    /// → 1,000 CU/min, basic 1,000 → 10,000, pro 10,000 → 100,000,
    /// enterprise 100,000 → 1,000,000; each may burst one minute's worth.
    pub fn defaults() -> Self {
        let plan = |name: &str, requests_per_minute: u64| {
            let cu = requests_per_minute * BASELINE_CU;
            Plan {
                name: name.to_owned(),
                cu_per_minute: cu,
                burst_cu: cu,
            }
        };
        Self {
            plans: vec![
                plan("free", 100),
                plan("basic", 1_000),
                plan("pro", 10_000),
                plan("enterprise", 100_000),
            ],
        }
    }

    /// A catalog of the given plans: at least one, names are slugs and
    /// unique, rates and bursts positive.
    pub fn from_plans(plans: Vec<Plan>) -> Result<Self, RpcConfigError> {
        if plans.is_empty() {
            return Err(RpcConfigError::NoPlans);
        }
        for (i, p) in plans.iter().enumerate() {
            if validate::slug("plan", &p.name).is_err() {
                return Err(RpcConfigError::InvalidPlanName {
                    name: p.name.clone(),
                });
            }
            if plans[..i].iter().any(|q| q.name == p.name) {
                return Err(RpcConfigError::DuplicatePlan(p.name.clone()));
            }
            if p.cu_per_minute == 0 {
                return Err(RpcConfigError::ZeroRate {
                    plan: p.name.clone(),
                });
            }
            if p.burst_cu == 0 {
                return Err(RpcConfigError::ZeroBurst {
                    plan: p.name.clone(),
                });
            }
        }
        Ok(Self { plans })
    }

    pub fn get(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }

    /// Plan names in catalog order.
    pub fn names(&self) -> Vec<&str> {
        self.plans.iter().map(|p| p.name.as_str()).collect()
    }

    /// Every plan, in catalog order.
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }
}

impl Default for PlanCatalog {
    fn default() -> Self {
        Self::defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcra::{check, Decision};
    use crate::rpc::CuPricing;

    #[test]
    fn default_plans_are_hoodrun_plans_in_cu() {
        let c = PlanCatalog::defaults();
        assert_eq!(c.names(), ["free", "basic", "pro", "enterprise"]);
        let expect = [
            ("free", 1_000),
            ("basic", 10_000),
            ("pro", 100_000),
            ("enterprise", 1_000_000),
        ];
        for (name, cu) in expect {
            let p = c.get(name).unwrap();
            assert_eq!(p.cu_per_minute, cu, "{name}");
            assert_eq!(p.burst_cu, cu, "{name}: burst is one minute's worth");
            let q = p.quota();
            assert_eq!((q.per_period, q.period_ms, q.burst), (cu, 60_000, cu));
            assert!(q.is_valid());
        }
        assert!(c.get("gold").is_none());
        assert_eq!(PlanCatalog::default(), c);
        assert_eq!(c.plans().len(), 4);
        // Re-validating the defaults passes.
        assert_eq!(PlanCatalog::from_plans(c.plans().to_vec()), Ok(c));
    }

    #[test]
    fn free_plan_admits_100_block_numbers_a_minute() {
        let q = PlanCatalog::defaults().get("free").unwrap().quota();
        let cost = u64::from(CuPricing::defaults().price("eth_blockNumber"));
        assert_eq!(cost, BASELINE_CU);
        let now = 1_700_000_000_000;
        let mut tat = None;
        for i in 0..100 {
            match check(&q, tat, now, cost) {
                Decision::Allow { tat_ns, .. } => tat = Some(tat_ns),
                other => panic!("request {i} refused: {other:?}"),
            }
        }
        // 1,000 CU/min: 10 CU free up every 600 ms.
        assert_eq!(
            check(&q, tat, now, cost),
            Decision::Deny {
                retry_after_ms: 600
            }
        );
        assert!(check(&q, tat, now + 600, cost).is_allowed());
        // A call dearer than the whole bucket can never pass on this plan.
        assert_eq!(check(&q, None, now, 1_001), Decision::TooLarge);
    }

    #[test]
    fn plan_catalogs_refuse_bad_plans() {
        let p = |name: &str, rate: u64, burst: u64| Plan {
            name: name.into(),
            cu_per_minute: rate,
            burst_cu: burst,
        };
        assert_eq!(
            PlanCatalog::from_plans(vec![]),
            Err(RpcConfigError::NoPlans)
        );
        assert_eq!(
            PlanCatalog::from_plans(vec![p("a", 1, 1), p("bb", 1, 1)]),
            Err(RpcConfigError::InvalidPlanName { name: "a".into() })
        );
        for bad in ["", "Gold", "gold plan", "-x", "x-", "1x"] {
            assert!(
                matches!(
                    PlanCatalog::from_plans(vec![p(bad, 1, 1)]),
                    Err(RpcConfigError::InvalidPlanName { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            PlanCatalog::from_plans(vec![p("gold", 1, 1), p("silver", 1, 1), p("gold", 2, 2)]),
            Err(RpcConfigError::DuplicatePlan("gold".into()))
        );
        assert_eq!(
            PlanCatalog::from_plans(vec![p("gold", 0, 1)]),
            Err(RpcConfigError::ZeroRate {
                plan: "gold".into()
            })
        );
        assert_eq!(
            PlanCatalog::from_plans(vec![p("gold", 1, 0)]),
            Err(RpcConfigError::ZeroBurst {
                plan: "gold".into()
            })
        );
        let c = PlanCatalog::from_plans(vec![p("gold", 600, 60), p("lead", 1, 1)]).unwrap();
        assert_eq!(c.names(), ["gold", "lead"]);
        assert_eq!(c.get("gold").unwrap().quota().burst, 60);
        for e in [
            RpcConfigError::NoPlans,
            RpcConfigError::DuplicatePlan("x".into()),
            RpcConfigError::ZeroRate { plan: "x".into() },
        ] {
            assert_eq!(e.field(), "plan");
        }
        // Messages name the plan.
        assert!(RpcConfigError::ZeroBurst {
            plan: "gold".into()
        }
        .to_string()
        .contains("`gold`"));
    }
}
