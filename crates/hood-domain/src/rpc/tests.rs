use super::*;
use crate::gcra::{check, Decision};
use proptest::prelude::*;
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ------------------------------------------------------------------ plans --

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

// ---------------------------------------------------------------- pricing --

#[test]
fn default_prices_follow_the_market() {
    let p = CuPricing::defaults();
    let table = [
        ("eth_blockNumber", 10),
        ("eth_chainId", 1),
        ("net_version", 1),
        ("eth_getBalance", 19),
        ("eth_getTransactionCount", 26),
        ("eth_call", 26),
        ("eth_estimateGas", 87),
        ("eth_getBlockByNumber", 16),
        ("eth_getBlockByHash", 16),
        ("eth_getTransactionReceipt", 15),
        ("eth_getTransactionByHash", 17),
        ("eth_getLogs", 60),
        ("eth_sendRawTransaction", 250),
        ("eth_subscribe", 10),
        ("eth_unsubscribe", 10),
        ("eth_gasPrice", 19),
        ("eth_feeHistory", 10),
        ("eth_getCode", 19),
        ("eth_getStorageAt", 17),
        ("debug_traceTransaction", 500),
        ("debug_traceCall", 500),
        ("trace_block", 500),
        ("trace_", 500),
        ("eth_somethingNew", 500),
        ("", 500),
        ("ETH_BLOCKNUMBER", 500),
    ];
    for (method, price) in table {
        assert_eq!(p.price(method), price, "{method}");
    }
    assert_eq!(p.unknown_price(), 500);
    assert_eq!(CuPricing::default(), p);
    assert_eq!(SUBSCRIPTION_MESSAGE_CU, 10);
    assert_eq!(
        p.batch_price(["eth_blockNumber", "eth_call", "debug_x"]),
        10 + 26 + 500
    );
    assert_eq!(p.batch_price([]), 0);
}

#[test]
fn every_default_price_is_at_least_one() {
    let p = CuPricing::defaults();
    for (m, _) in DEFAULT_PRICES {
        assert!(p.price(m) >= 1, "{m}");
    }
    for (m, price) in DEFAULT_PREFIX_PRICES {
        assert!(*price >= 1, "{m}");
    }
    assert!(p.unknown_price() >= 1);
}

#[test]
fn price_overrides_replace_and_add_exact_prices() {
    let p = CuPricing::defaults()
        .with_overrides(BTreeMap::from([
            ("eth_call".to_owned(), 40),
            ("debug_traceTransaction".to_owned(), 300),
            ("getSlot".to_owned(), 5),
        ]))
        .unwrap();
    assert_eq!(p.price("eth_call"), 40);
    // The exact price beats the prefix rule; other debug_ methods keep it.
    assert_eq!(p.price("debug_traceTransaction"), 300);
    assert_eq!(p.price("debug_traceCall"), 500);
    assert_eq!(p.price("getSlot"), 5);
    assert_eq!(p.price("eth_blockNumber"), 10);

    let zero = CuPricing::defaults().with_overrides(BTreeMap::from([("eth_call".to_owned(), 0)]));
    assert_eq!(
        zero,
        Err(RpcConfigError::ZeroPrice {
            method: "eth_call".into()
        })
    );
    assert_eq!(zero.unwrap_err().field(), "pricing");
    for bad in ["debug_*", "", "1eth", "eth call", &"m".repeat(129)] {
        let e = CuPricing::defaults()
            .with_overrides(BTreeMap::from([(bad.to_owned(), 3)]))
            .unwrap_err();
        assert!(
            matches!(
                e,
                RpcConfigError::InvalidMethod {
                    field: "pricing",
                    ..
                }
            ),
            "{bad}: {e}"
        );
    }
}

// ----------------------------------------------------------------- scopes --

#[test]
fn empty_scope_restricts_nothing() {
    let s = KeyScope::default();
    assert!(s.is_unrestricted());
    assert_eq!(s.validate(), Ok(()));
    assert!(s.allows_chain("anything"));
    assert!(s.allows_method("debug_traceTransaction"));
    assert!(s.allows_ip(ip("203.0.113.9")));
    assert!(s.allows_ip(ip("2001:db8::1")));
    assert!(s.allows_origin(Some("https://evil.example")));
    assert!(s.allows_origin(None));
}

#[test]
fn scope_serde_defaults_missing_lists() {
    let s: KeyScope = serde_json::from_value(json!({"chains": ["ethereum"]})).unwrap();
    assert_eq!(s.chains, ["ethereum"]);
    assert!(s.allowed_methods.is_empty() && s.origin_allow.is_empty());
    let full = KeyScope {
        chains: strings(&["ethereum"]),
        allowed_methods: strings(&["eth_*"]),
        denied_methods: strings(&["eth_sendRawTransaction"]),
        ip_allow: strings(&["10.0.0.0/8"]),
        origin_allow: strings(&["https://app.example.com"]),
    };
    let text = serde_json::to_string(&full).unwrap();
    assert_eq!(serde_json::from_str::<KeyScope>(&text).unwrap(), full);
    assert!(!full.is_unrestricted());
}

#[test]
fn chains_are_an_allow_list() {
    let s = KeyScope {
        chains: strings(&["ethereum", "solana"]),
        ..KeyScope::default()
    };
    assert!(s.allows_chain("ethereum"));
    assert!(s.allows_chain("solana"));
    assert!(!s.allows_chain("bitcoin"));
    assert!(!s.allows_chain("Ethereum"));
    assert!(!s.allows_chain(""));
}

#[test]
fn methods_deny_wins_over_allow_and_patterns_are_prefixes() {
    let s = KeyScope {
        allowed_methods: strings(&["eth_*", "debug_traceTransaction", "net_version"]),
        denied_methods: strings(&["eth_sendRawTransaction", "debug_*"]),
        ..KeyScope::default()
    };
    assert_eq!(s.validate(), Ok(()));
    let table = [
        ("eth_blockNumber", true),
        ("eth_call", true),
        ("eth_", true),
        ("net_version", true),
        ("net_versions", false),
        ("eth_sendRawTransaction", false),
        // Allowed by name, denied by pattern: deny wins.
        ("debug_traceTransaction", false),
        ("debug_traceCall", false),
        ("trace_block", false),
        ("web3_clientVersion", false),
        ("ETH_CALL", false),
    ];
    for (method, allowed) in table {
        assert_eq!(s.allows_method(method), allowed, "{method}");
    }
    // Deny-list only: everything else passes.
    let s = KeyScope {
        denied_methods: strings(&["debug_*", "trace_*"]),
        ..KeyScope::default()
    };
    assert!(s.allows_method("eth_call"));
    assert!(!s.allows_method("trace_filter"));
    assert!(method_matches("eth_call", "eth_call"));
    assert!(!method_matches("eth_call", "eth_calls"));
    assert!(method_matches("eth_*", "eth_call"));
    assert!(!method_matches("eth_*", "et"));
}

#[test]
fn method_patterns_are_validated() {
    for good in [
        "eth_call",
        "debug_*",
        "e*",
        "getSlot",
        "suix_getCoins",
        "a.b-c",
    ] {
        let s = KeyScope {
            allowed_methods: strings(&[good]),
            denied_methods: strings(&[good]),
            ..KeyScope::default()
        };
        assert_eq!(s.validate(), Ok(()), "{good}");
    }
    for bad in [
        "",
        "*",
        "**",
        "deb*ug",
        "debug_**",
        "*_call",
        "1eth",
        "_eth",
        "eth call",
        "eth/call",
        "ëth_call",
        &"m".repeat(129),
    ] {
        let s = KeyScope {
            denied_methods: strings(&[bad]),
            ..KeyScope::default()
        };
        let e = s.validate().unwrap_err();
        assert_eq!(e.field(), "denied_methods", "{bad}");
        assert!(e.to_string().starts_with("denied_methods:"), "{e}");
        let s = KeyScope {
            allowed_methods: strings(&[bad]),
            ..KeyScope::default()
        };
        assert_eq!(
            s.validate().unwrap_err().field(),
            "allowed_methods",
            "{bad}"
        );
    }
}

#[test]
fn chain_names_are_validated() {
    let s = KeyScope {
        chains: strings(&["ethereum", "ethereum-anvil", "Bad", "x", "ok-2"]),
        ..KeyScope::default()
    };
    let problems = s.problems();
    assert_eq!(
        problems,
        vec![
            RpcConfigError::InvalidChain {
                value: "Bad".into()
            },
            RpcConfigError::InvalidChain { value: "x".into() },
        ]
    );
    assert_eq!(problems[0].field(), "chains");
}

#[test]
fn problems_lists_every_bad_entry_in_field_order() {
    let s = KeyScope {
        chains: strings(&["BAD"]),
        allowed_methods: strings(&["*"]),
        denied_methods: strings(&["ok_*"]),
        ip_allow: strings(&["10.0.0.0/33"]),
        origin_allow: strings(&["ftp://x.example"]),
    };
    let fields: Vec<&str> = s.problems().iter().map(RpcConfigError::field).collect();
    assert_eq!(
        fields,
        ["chains", "allowed_methods", "ip_allow", "origin_allow"]
    );
    assert_eq!(s.validate().unwrap_err().field(), "chains");
}

#[test]
fn lists_are_bounded() {
    let many: Vec<String> = (0..=MAX_SCOPE_ENTRIES).map(|i| format!("m{i}")).collect();
    let s = KeyScope {
        allowed_methods: many.clone(),
        ..KeyScope::default()
    };
    assert_eq!(
        s.problems(),
        vec![RpcConfigError::TooMany {
            field: "allowed_methods",
            max: MAX_SCOPE_ENTRIES
        }]
    );
    let s = KeyScope {
        allowed_methods: many[..MAX_SCOPE_ENTRIES].to_vec(),
        ..KeyScope::default()
    };
    assert_eq!(s.validate(), Ok(()));
}

// ------------------------------------------------------------------- CIDR --

#[test]
fn invalid_cidr_names_ip_allow_and_quotes_the_value() {
    let e = RpcConfigError::from(Cidr::parse("10.0.0.0/33").unwrap_err());
    assert_eq!(e.field(), "ip_allow");
    assert!(e.to_string().contains("`10.0.0.0/33`"), "{e}");
}

#[test]
fn ip_allow_matches_v4_v6_and_mapped_addresses() {
    let s = KeyScope {
        ip_allow: strings(&["203.0.113.0/24", "198.51.100.7", "2001:db8:abcd::/48"]),
        ..KeyScope::default()
    };
    let table = [
        ("203.0.113.0", true),
        ("203.0.113.255", true),
        ("203.0.114.0", false),
        ("198.51.100.7", true),
        ("198.51.100.8", false),
        ("2001:db8:abcd::1", true),
        ("2001:db8:abcd:ffff:ffff:ffff:ffff:ffff", true),
        ("2001:db8:abce::", false),
        // IPv4-mapped IPv6 clients are judged by their IPv4 address.
        ("::ffff:203.0.113.9", true),
        ("::ffff:203.0.114.9", false),
        // Not mapped: an IPv4-compatible address is just IPv6.
        ("::203.0.113.9", false),
        ("127.0.0.1", false),
        ("::1", false),
    ];
    for (addr, allowed) in table {
        assert_eq!(s.allows_ip(ip(addr)), allowed, "{addr}");
    }
    let mapped_rule = KeyScope {
        ip_allow: strings(&["::ffff:10.0.0.0/104"]),
        ..KeyScope::default()
    };
    assert!(mapped_rule.allows_ip(ip("10.9.8.7")));
    assert!(mapped_rule.allows_ip(ip("::ffff:10.9.8.7")));
    assert!(!mapped_rule.allows_ip(ip("11.0.0.1")));
    let everyone = KeyScope {
        ip_allow: strings(&["0.0.0.0/0"]),
        ..KeyScope::default()
    };
    assert!(everyone.allows_ip(ip("1.2.3.4")));
    assert!(everyone.allows_ip(ip("::ffff:1.2.3.4")));
    assert!(
        !everyone.allows_ip(ip("2001:db8::1")),
        "a v4 rule never admits v6"
    );
    let v6_everyone = KeyScope {
        ip_allow: strings(&["::/0"]),
        ..KeyScope::default()
    };
    assert!(v6_everyone.allows_ip(ip("2001:db8::1")));
    assert!(
        !v6_everyone.allows_ip(ip("1.2.3.4")),
        "a v6 rule never admits v4"
    );
}

#[test]
fn broken_stored_allow_lists_refuse() {
    let s = KeyScope {
        ip_allow: strings(&["not-an-ip"]),
        origin_allow: strings(&["nonsense"]),
        ..KeyScope::default()
    };
    assert!(!s.allows_ip(ip("1.2.3.4")));
    assert!(!s.allows_origin(Some("https://app.example.com")));
}

// ---------------------------------------------------------------- origins --

#[test]
fn origin_syntax() {
    for good in [
        "https://app.example.com",
        "http://localhost:3000",
        "https://APP.Example.com",
        "HTTPS://app.example.com",
        "https://*.example.com",
        "https://app.example.com:8443",
        "http://127.0.0.1:8080",
    ] {
        let s = KeyScope {
            origin_allow: strings(&[good]),
            ..KeyScope::default()
        };
        assert_eq!(s.validate(), Ok(()), "{good}");
    }
    for bad in [
        "",
        "app.example.com",
        "ftp://app.example.com",
        "https://",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://app.example.com?q=1",
        "https://user@app.example.com",
        "https://app.example.com:0",
        "https://app.example.com:65536",
        "https://app.example.com:080",
        "https://app.example.com:",
        "https://app..example.com",
        "https://-app.example.com",
        "https://app_x.example.com",
        "https://*.",
        "https://*",
        "https://a.*.example.com",
        "https://[::1]:8080",
        "*",
    ] {
        let s = KeyScope {
            origin_allow: strings(&[bad]),
            ..KeyScope::default()
        };
        let e = s.validate().unwrap_err();
        assert_eq!(e.field(), "origin_allow", "{bad}");
    }
}

#[test]
fn origins_match_exactly_by_scheme_host_and_port() {
    let s = KeyScope {
        origin_allow: strings(&[
            "https://app.example.com",
            "http://localhost:3000",
            "https://*.preview.example.com",
        ]),
        ..KeyScope::default()
    };
    let table = [
        (Some("https://app.example.com"), true),
        (Some("https://APP.example.com"), true),
        (Some("https://app.example.com:443"), true),
        (Some("http://app.example.com"), false),
        (Some("https://app.example.com:8443"), false),
        (Some("https://evil.example.com"), false),
        (Some("https://app.example.com.evil.test"), false),
        (Some("https://evilapp.example.com"), false),
        (Some("http://localhost:3000"), true),
        (Some("http://localhost"), false),
        (Some("https://pr-12.preview.example.com"), true),
        (Some("https://a.b.preview.example.com"), true),
        (Some("https://preview.example.com"), false),
        (Some("https://xpreview.example.com"), false),
        (Some("https://*.preview.example.com"), false),
        (Some("null"), false),
        (Some(""), false),
        (Some("https://app.example.com/"), false),
        // No Origin header: a server-side client, allowed.
        (None, true),
    ];
    for (origin, allowed) in table {
        assert_eq!(s.allows_origin(origin), allowed, "{origin:?}");
    }
}

// ------------------------------------------------------------------- keys --

#[test]
fn rpc_key_debug_redacts_the_hash() {
    let key = RpcKey {
        id: RpcKeyId::from_uuid(uuid::Uuid::nil()),
        org_id: OrgId::from_uuid(uuid::Uuid::nil()),
        name: "frontend".into(),
        prefix: "0123456789ab".into(),
        secret_hash: "deadbeefcafe".into(),
        plan: "free".into(),
        scope: KeyScope::default(),
        created_at: Timestamp(1),
        updated_at: Timestamp(2),
        revoked_at: None,
        version: 1,
    };
    let dbg = format!("{key:?}");
    assert!(!dbg.contains("deadbeefcafe"), "{dbg}");
    assert!(
        dbg.contains("<redacted>") && dbg.contains("0123456789ab"),
        "{dbg}"
    );
    assert!(!key.is_revoked());
    let revoked = RpcKey {
        revoked_at: Some(Timestamp(3)),
        ..key
    };
    assert!(revoked.is_revoked());
}

// ------------------------------------------------------------------ usage --

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

// ------------------------------------------------------------------ cache --

#[test]
fn cacheability_table() {
    use Cacheability::{Always, IfFinalized, Never};
    let addr = "0x00000000000000000000000000000000deadbeef";
    let hash = "0x88e96d4537bea4d9c05d12549907b32561d3bf31f45aae734cdc119f13406cb6";
    let table: Vec<(&str, serde_json::Value, Cacheability)> = vec![
        ("eth_chainId", json!([]), Always),
        ("net_version", json!(null), Always),
        ("eth_blockNumber", json!([]), Never),
        ("eth_gasPrice", json!([]), Never),
        ("eth_sendRawTransaction", json!(["0x00"]), Never),
        // Blocks by number.
        (
            "eth_getBlockByNumber",
            json!(["0x1b4", false]),
            IfFinalized(0x1b4),
        ),
        ("eth_getBlockByNumber", json!(["0x0", true]), IfFinalized(0)),
        (
            "eth_getBlockByNumber",
            json!(["earliest", false]),
            IfFinalized(0),
        ),
        ("eth_getBlockByNumber", json!(["latest", false]), Never),
        ("eth_getBlockByNumber", json!(["pending", false]), Never),
        ("eth_getBlockByNumber", json!(["safe", false]), Never),
        ("eth_getBlockByNumber", json!(["finalized", false]), Never),
        ("eth_getBlockByNumber", json!(["0x01b4", false]), Never),
        ("eth_getBlockByNumber", json!(["1b4", false]), Never),
        ("eth_getBlockByNumber", json!([436, false]), Never),
        (
            "eth_getBlockByNumber",
            json!([{"blockNumber": "0x1"}, false]),
            Never,
        ),
        ("eth_getBlockByNumber", json!([]), Never),
        ("eth_getBlockByNumber", json!({"block": "0x1"}), Never),
        ("eth_getBlockByHash", json!([hash, false]), Never),
        // State at a block.
        ("eth_getBalance", json!([addr, "0x10"]), IfFinalized(16)),
        ("eth_getBalance", json!([addr, "earliest"]), IfFinalized(0)),
        ("eth_getBalance", json!([addr, "latest"]), Never),
        ("eth_getBalance", json!([addr]), Never),
        (
            "eth_getBalance",
            json!([addr, {"blockNumber": "0x10"}]),
            IfFinalized(16),
        ),
        (
            "eth_getBalance",
            json!([addr, {"blockNumber": "latest"}]),
            Never,
        ),
        ("eth_getBalance", json!([addr, {"blockHash": hash}]), Never),
        (
            "eth_getBalance",
            json!([addr, {"blockHash": hash, "requireCanonical": true}]),
            Never,
        ),
        (
            "eth_getBalance",
            json!([addr, {"blockNumber": "0x10", "blockHash": hash}]),
            Never,
        ),
        ("eth_getBalance", json!([addr, {"blockNumber": 16}]), Never),
        ("eth_getBalance", json!([addr, hash]), Never),
        ("eth_getCode", json!([addr, "0xff"]), IfFinalized(255)),
        (
            "eth_getTransactionCount",
            json!([addr, "0xA"]),
            IfFinalized(10),
        ),
        ("eth_getTransactionCount", json!([addr, "pending"]), Never),
        (
            "eth_getStorageAt",
            json!([addr, "0x0", "0x2"]),
            IfFinalized(2),
        ),
        ("eth_getStorageAt", json!([addr, "0x0"]), Never),
        ("eth_getStorageAt", json!([addr, "0x0", "safe"]), Never),
        (
            "eth_call",
            json!([{"to": addr, "data": "0x"}, "0x5"]),
            IfFinalized(5),
        ),
        (
            "eth_call",
            json!([{"to": addr, "data": "0x"}, "finalized"]),
            Never,
        ),
        ("eth_call", json!([{"to": addr, "data": "0x"}]), Never),
        (
            "eth_call",
            json!([{"to": addr}, {"blockNumber": "0x5"}, {}]),
            IfFinalized(5),
        ),
        // Logs need both ends pinned.
        (
            "eth_getLogs",
            json!([{"fromBlock": "0x1", "toBlock": "0x10"}]),
            IfFinalized(16),
        ),
        (
            "eth_getLogs",
            json!([{"fromBlock": "earliest", "toBlock": "0x10", "address": addr}]),
            IfFinalized(16),
        ),
        (
            "eth_getLogs",
            json!([{"fromBlock": "earliest", "toBlock": "earliest"}]),
            IfFinalized(0),
        ),
        (
            "eth_getLogs",
            json!([{"fromBlock": "0x5", "toBlock": "0x5"}]),
            IfFinalized(5),
        ),
        (
            "eth_getLogs",
            json!([{"fromBlock": "0x10", "toBlock": "0x1"}]),
            Never,
        ),
        (
            "eth_getLogs",
            json!([{"fromBlock": "0x1", "toBlock": "latest"}]),
            Never,
        ),
        ("eth_getLogs", json!([{"fromBlock": "0x1"}]), Never),
        ("eth_getLogs", json!([{"toBlock": "0x1"}]), Never),
        ("eth_getLogs", json!([{}]), Never),
        ("eth_getLogs", json!([{"blockHash": hash}]), Never),
        (
            "eth_getLogs",
            json!([{"blockHash": hash, "fromBlock": "0x1", "toBlock": "0x2"}]),
            Never,
        ),
        ("eth_getLogs", json!([]), Never),
        ("eth_getLogs", json!(["0x1"]), Never),
        // Everything else.
        ("eth_getTransactionReceipt", json!([hash]), Never),
        ("debug_traceBlockByNumber", json!(["0x1"]), Never),
        ("web3_clientVersion", json!([]), Never),
    ];
    for (method, params, expected) in table {
        assert_eq!(cacheability(method, &params), expected, "{method} {params}");
    }
}

#[test]
fn quantities_are_canonical_hex() {
    assert_eq!(parse_quantity("0x0"), Some(0));
    assert_eq!(parse_quantity("0xff"), Some(255));
    assert_eq!(parse_quantity("0xFF"), Some(255));
    assert_eq!(parse_quantity("0xffffffffffffffff"), Some(u64::MAX));
    for bad in [
        "",
        "0x",
        "0X1",
        "1",
        "0x00",
        "0x01",
        "0x1g",
        "0x10000000000000000",
        "-0x1",
        " 0x1",
        "0x+1",
    ] {
        assert_eq!(parse_quantity(bad), None, "{bad}");
    }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "\\PC{0,20}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("latest"),
            Just("pending"),
            Just("safe"),
            Just("finalized"),
            Just("earliest"),
            Just("0x0"),
            Just("0x10")
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("blockNumber".to_owned()),
                    Just("blockHash".to_owned()),
                    Just("fromBlock".to_owned()),
                    Just("toBlock".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

const CACHE_METHODS: &[&str] = &[
    "eth_chainId",
    "net_version",
    "eth_getBlockByNumber",
    "eth_getBalance",
    "eth_getCode",
    "eth_getTransactionCount",
    "eth_getStorageAt",
    "eth_call",
    "eth_getLogs",
    "eth_blockNumber",
    "eth_sendRawTransaction",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any pinned number is cacheable once final, at exactly that number.
    #[test]
    fn explicit_numbers_are_cacheable_once_final(n in any::<u64>()) {
        let q = format!("{n:#x}");
        let addr = "0x00000000000000000000000000000000deadbeef";
        prop_assert_eq!(cacheability("eth_getBlockByNumber", &json!([q, false])), Cacheability::IfFinalized(n));
        prop_assert_eq!(cacheability("eth_getBalance", &json!([addr, q])), Cacheability::IfFinalized(n));
        prop_assert_eq!(cacheability("eth_getBalance", &json!([addr, {"blockNumber": q}])), Cacheability::IfFinalized(n));
        prop_assert_eq!(cacheability("eth_getStorageAt", &json!([addr, "0x0", q])), Cacheability::IfFinalized(n));
        prop_assert_eq!(cacheability("eth_getLogs", &json!([{"fromBlock": "0x0", "toBlock": q}])), Cacheability::IfFinalized(n));
        // With a leading zero it is not a quantity: never cached.
        let padded = format!("0x0{n:x}");
        prop_assert_eq!(cacheability("eth_getBlockByNumber", &json!([padded, false])), Cacheability::Never);
    }

    /// Moving tags never make anything cacheable, wherever they appear.
    #[test]
    fn moving_tags_are_never_cached(
        tag in prop_oneof![Just("latest"), Just("pending"), Just("safe"), Just("finalized")],
        method in prop::sample::select(CACHE_METHODS),
    ) {
        prop_assume!(method != "eth_chainId" && method != "net_version");
        let addr = "0x00000000000000000000000000000000deadbeef";
        // The tag at the method's block position, in every accepted shape.
        let shapes = match method {
            "eth_getBlockByNumber" => vec![json!([tag, false]), json!([tag])],
            "eth_getStorageAt" => vec![json!([addr, "0x0", tag]), json!([addr, "0x0", {"blockNumber": tag}])],
            "eth_getLogs" => vec![
                json!([{"fromBlock": "0x0", "toBlock": tag}]),
                json!([{"fromBlock": tag, "toBlock": "0x1"}]),
                json!([{"fromBlock": tag, "toBlock": tag}]),
            ],
            _ => vec![json!([addr, tag]), json!([addr, {"blockNumber": tag}]), json!([tag])],
        };
        for params in shapes {
            prop_assert_eq!(cacheability(method, &params), Cacheability::Never, "{} {}", method, params);
        }
    }

    /// Arbitrary input never panics, and a cacheable verdict only comes from
    /// the listed methods.
    #[test]
    fn arbitrary_params_never_panic(method in prop::sample::select(CACHE_METHODS), params in json_value(), other in "[a-z_]{0,12}") {
        let c = cacheability(method, &params);
        if matches!(method, "eth_chainId" | "net_version") {
            prop_assert_eq!(c, Cacheability::Always);
        } else if matches!(method, "eth_blockNumber" | "eth_sendRawTransaction") {
            prop_assert_eq!(c, Cacheability::Never);
        } else {
            prop_assert_ne!(c, Cacheability::Always);
        }
        prop_assume!(!CACHE_METHODS.contains(&other.as_str()));
        prop_assert_eq!(cacheability(&other, &params), Cacheability::Never);
    }
}
