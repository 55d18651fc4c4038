//! The finality-aware cache rule.

/// Whether a response may be cached, by the request alone. The edge adds
/// the other half: a response is only cached if it is a success, and an
/// `IfFinalized(n)` response only once block `n` is final on that chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cacheability {
    Never,
    /// The answer never changes for a given chain (`eth_chainId`).
    Always,
    /// The answer is fixed once block `n` is final (a reorg cannot change it).
    IfFinalized(u64),
}

/// The finality-aware cache rule. Only requests that pin an explicit block
/// number can be cached, and only once that block is final: `latest`,
/// `pending`, `safe` and `finalized` move, a block hash may be reorged
/// away, and a missing block parameter means `latest`. `earliest` is block
/// 0. Numbers must be canonical JSON-RPC quantities (`0x0`, `0x1a`; no
/// leading zeros), as nodes refuse anything else.
pub fn cacheability(method: &str, params: &serde_json::Value) -> Cacheability {
    let at = |i: usize| params.as_array().and_then(|p| p.get(i));
    let pinned = |i: usize| {
        at(i)
            .and_then(block_param)
            .map_or(Cacheability::Never, Cacheability::IfFinalized)
    };
    match method {
        "eth_chainId" | "net_version" => Cacheability::Always,
        "eth_getBlockByNumber" => match at(0) {
            Some(serde_json::Value::String(s)) => {
                block_tag_or_number(s).map_or(Cacheability::Never, Cacheability::IfFinalized)
            }
            _ => Cacheability::Never,
        },
        "eth_getBalance" | "eth_getCode" | "eth_getTransactionCount" | "eth_call" => pinned(1),
        "eth_getStorageAt" => pinned(2),
        "eth_getLogs" => match at(0) {
            Some(serde_json::Value::Object(filter)) => {
                if filter.contains_key("blockHash") {
                    return Cacheability::Never;
                }
                let bound = |k: &str| match filter.get(k) {
                    Some(serde_json::Value::String(s)) => block_tag_or_number(s),
                    _ => None,
                };
                match (bound("fromBlock"), bound("toBlock")) {
                    (Some(from), Some(to)) if from <= to => Cacheability::IfFinalized(to),
                    _ => Cacheability::Never,
                }
            }
            _ => Cacheability::Never,
        },
        _ => Cacheability::Never,
    }
}

/// A block parameter: a quantity or tag string, or an EIP-1898 object with
/// `blockNumber` only. The block number if it is pinned.
fn block_param(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::String(s) => block_tag_or_number(s),
        serde_json::Value::Object(o) => {
            if o.contains_key("blockHash") {
                return None;
            }
            match o.get("blockNumber") {
                Some(serde_json::Value::String(s)) => block_tag_or_number(s),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `earliest` → 0, a canonical hex quantity → its value, anything else
/// (moving tags, malformed numbers) → `None`.
fn block_tag_or_number(s: &str) -> Option<u64> {
    if s == "earliest" {
        return Some(0);
    }
    parse_quantity(s)
}

/// A JSON-RPC QUANTITY: `0x` then 1–16 hex digits without leading zeros.
pub fn parse_quantity(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x")?;
    if digits.is_empty()
        || digits.len() > 16
        || (digits.len() > 1 && digits.starts_with('0'))
        || !digits.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

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
}
