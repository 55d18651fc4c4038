//! What an RPC key may be used for: chains, methods, client addresses and
//! browser origins.

use super::cidr::Cidr;
use super::method::{check_method_pattern, method_matches};
use super::origin::{Origin, OriginPattern};
use super::RpcConfigError;
use crate::validate;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Most entries any one list of a [`KeyScope`] may hold.
pub const MAX_SCOPE_ENTRIES: usize = 100;

/// What an RPC key may be used for. Every list left empty means "no
/// restriction" on that axis.
///
/// * `chains`: chain names (`ethereum`, `solana`, …) the key may call.
/// * `allowed_methods` / `denied_methods`: method names or prefix patterns
///   with one trailing `*` (`debug_*`). A denied match always wins over an
///   allowed one.
/// * `ip_allow`: client addresses or CIDR blocks, IPv4 or IPv6
///   (`203.0.113.0/24`, `2001:db8::/32`, `198.51.100.7`). An IPv4-mapped
///   IPv6 client (`::ffff:203.0.113.5`) is judged as its IPv4 address.
/// * `origin_allow`: browser origins (`https://app.example.com`, optionally
///   a port, or `https://*.example.com` for any subdomain). A request with a
///   non-matching `Origin` header is refused; a request **without** one is
///   allowed: browsers always send `Origin` on cross-origin calls, so the
///   list stops other web sites from spending a key exposed in a front end,
///   while server-side clients send none and a non-browser attacker could
///   forge any value anyway (use `ip_allow` against those).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyScope {
    pub chains: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub denied_methods: Vec<String>,
    pub ip_allow: Vec<String>,
    pub origin_allow: Vec<String>,
}

impl KeyScope {
    /// The first problem of [`Self::problems`], if any.
    pub fn validate(&self) -> Result<(), RpcConfigError> {
        match self.problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every problem of the scope (at most one per entry), in field order.
    pub fn problems(&self) -> Vec<RpcConfigError> {
        let mut out = Vec::new();
        let lists: [(&'static str, &Vec<String>); 5] = [
            ("chains", &self.chains),
            ("allowed_methods", &self.allowed_methods),
            ("denied_methods", &self.denied_methods),
            ("ip_allow", &self.ip_allow),
            ("origin_allow", &self.origin_allow),
        ];
        for (field, list) in lists {
            if list.len() > MAX_SCOPE_ENTRIES {
                out.push(RpcConfigError::TooMany {
                    field,
                    max: MAX_SCOPE_ENTRIES,
                });
                continue;
            }
            for value in list {
                let checked = match field {
                    "chains" => {
                        validate::slug("chains", value).map_err(|_| RpcConfigError::InvalidChain {
                            value: value.clone(),
                        })
                    }
                    "allowed_methods" | "denied_methods" => check_method_pattern(field, value),
                    "ip_allow" => Cidr::parse(value).map(|_| ()).map_err(Into::into),
                    _ => OriginPattern::parse(value).map(|_| ()),
                };
                if let Err(e) = checked {
                    out.push(e);
                }
            }
        }
        out
    }

    pub fn allows_chain(&self, chain: &str) -> bool {
        self.chains.is_empty() || self.chains.iter().any(|c| c == chain)
    }

    /// Deny wins; then an allow-list, when set, must match.
    pub fn allows_method(&self, method: &str) -> bool {
        if self
            .denied_methods
            .iter()
            .any(|p| method_matches(p, method))
        {
            return false;
        }
        self.allowed_methods.is_empty()
            || self
                .allowed_methods
                .iter()
                .any(|p| method_matches(p, method))
    }

    /// Whether a client at `ip` may use the key. Entries that do not parse
    /// (a scope stored before a rule changed) match nothing, so a broken
    /// allow-list refuses rather than admits.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.ip_allow.is_empty()
            || self
                .ip_allow
                .iter()
                .filter_map(|c| Cidr::parse(c).ok())
                .any(|c| c.contains(ip))
    }

    /// Whether a request with this `Origin` header (or none) may use the
    /// key; see the type's documentation for why a missing header passes.
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        if self.origin_allow.is_empty() {
            return true;
        }
        let Some(origin) = origin else {
            return true;
        };
        let Ok(origin) = Origin::parse(origin) else {
            return false;
        };
        self.origin_allow
            .iter()
            .filter_map(|p| OriginPattern::parse(p).ok())
            .any(|p| p.matches(&origin))
    }

    /// True when no axis is restricted.
    pub fn is_unrestricted(&self) -> bool {
        self.chains.is_empty()
            && self.allowed_methods.is_empty()
            && self.denied_methods.is_empty()
            && self.ip_allow.is_empty()
            && self.origin_allow.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::method_matches;
    use crate::rpc::test_support::strings;
    use serde_json::json;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

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
}
