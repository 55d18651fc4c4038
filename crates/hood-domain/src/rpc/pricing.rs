//! Compute-unit prices per JSON-RPC method.

use super::method::check_method_name;
use super::RpcConfigError;
use std::collections::BTreeMap;

/// CU charged for each message pushed to a WebSocket subscriber.
pub const SUBSCRIPTION_MESSAGE_CU: u32 = 10;

/// The CU price of each JSON-RPC method: exact prices, then prefix rules
/// (`debug_*`), then a price for every other method. Every price is at
/// least 1 CU, so nothing is free to hammer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CuPricing {
    exact: BTreeMap<String, u32>,
    /// `(prefix, price)`; the longest matching prefix wins.
    prefixes: Vec<(String, u32)>,
    unknown: u32,
}

/// Market prices (Alchemy's compute units), with `eth_chainId` raised from
/// 0 to the 1 CU minimum.
const DEFAULT_PRICES: &[(&str, u32)] = &[
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
];

/// Heavy namespaces: tracing and debugging replay transactions.
const DEFAULT_PREFIX_PRICES: &[(&str, u32)] = &[("debug_", 500), ("trace_", 500)];

/// Methods nobody priced are assumed expensive.
const DEFAULT_UNKNOWN_PRICE: u32 = 500;

impl CuPricing {
    pub fn defaults() -> Self {
        Self {
            exact: DEFAULT_PRICES
                .iter()
                .map(|(m, p)| ((*m).to_owned(), *p))
                .collect(),
            prefixes: DEFAULT_PREFIX_PRICES
                .iter()
                .map(|(m, p)| ((*m).to_owned(), *p))
                .collect(),
            unknown: DEFAULT_UNKNOWN_PRICE,
        }
    }

    /// The CU price of one call of `method`.
    pub fn price(&self, method: &str) -> u32 {
        if let Some(p) = self.exact.get(method) {
            return *p;
        }
        self.prefixes
            .iter()
            .filter(|(prefix, _)| method.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.unknown, |(_, p)| *p)
    }

    /// The price of a JSON-RPC batch: the sum of its items (saturating).
    pub fn batch_price<'a>(&self, methods: impl IntoIterator<Item = &'a str>) -> u64 {
        methods
            .into_iter()
            .fold(0u64, |sum, m| sum.saturating_add(u64::from(self.price(m))))
    }

    /// These prices with some exact method prices replaced or added. Each
    /// name must be a method name (no pattern) and each price at least 1.
    pub fn with_overrides(mut self, exact: BTreeMap<String, u32>) -> Result<Self, RpcConfigError> {
        for (method, price) in exact {
            check_method_name("pricing", &method)?;
            if price == 0 {
                return Err(RpcConfigError::ZeroPrice { method });
            }
            self.exact.insert(method, price);
        }
        Ok(self)
    }

    /// The price of methods that match no exact price and no prefix rule.
    pub fn unknown_price(&self) -> u32 {
        self.unknown
    }
}

impl Default for CuPricing {
    fn default() -> Self {
        Self::defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

        let zero =
            CuPricing::defaults().with_overrides(BTreeMap::from([("eth_call".to_owned(), 0)]));
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
}
