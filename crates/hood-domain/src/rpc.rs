//! The RPC edge's rules (design §7; seed 002 "HoodRun"): plans priced in
//! compute units, per-method CU prices, RPC key scopes (chains, methods,
//! client IPs, browser origins), usage events and their rollup buckets, and
//! the finality-aware cache rule.
//!
//! Everything is a pure function of its inputs: the edge does the I/O
//! (secrets, counters, sockets, the cache itself) and asks these rules.
//!
//! # Compute units
//!
//! A request costs the CU price of its method ([`CuPricing`]); a JSON-RPC
//! batch costs the sum of its items; each message pushed on a WebSocket
//! subscription costs [`SUBSCRIPTION_MESSAGE_CU`]. A plan ([`Plan`]) allows a
//! sustained number of CU per minute with a burst, enforced by GCRA
//! ([`crate::gcra`]) with the request's CU as its cost. HoodRun sold plans
//! in requests per minute; they are expressed here in CU at
//! [`BASELINE_CU`], the price of a cheap call such as `eth_blockNumber`.

use crate::gcra::Quota;
use crate::validate;
use crate::{OrgId, RpcKeyId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The CU price of a cheap call (`eth_blockNumber`): the unit in which
/// HoodRun's per-request plan limits are converted to CU.
pub const BASELINE_CU: u64 = 10;

/// CU charged for each message pushed to a WebSocket subscriber.
pub const SUBSCRIPTION_MESSAGE_CU: u32 = 10;

/// Most entries any one list of a [`KeyScope`] may hold.
pub const MAX_SCOPE_ENTRIES: usize = 100;

/// Longest method name (or pattern) accepted in a scope or a price list.
pub const MAX_METHOD_LEN: usize = 128;

// ------------------------------------------------------------------ errors --

/// An RPC edge configuration (plan, price list, key scope) that cannot work.
/// Messages name the offending value and say what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcConfigError {
    #[error("a plan catalog needs at least one plan")]
    NoPlans,
    #[error("plan name `{name}`: must be 2-63 characters of a-z, 0-9 and '-', start with a letter and not end with '-'")]
    InvalidPlanName { name: String },
    #[error("plan `{0}` is defined twice")]
    DuplicatePlan(String),
    #[error("plan `{plan}`: cu_per_minute must be positive")]
    ZeroRate { plan: String },
    #[error("plan `{plan}`: burst_cu must be positive")]
    ZeroBurst { plan: String },
    #[error("price of `{method}` must be at least 1 CU")]
    ZeroPrice { method: String },
    /// A method name or pattern that is not one. `field` names the list.
    #[error("{field}: `{value}` is not a method name or pattern: {reason}")]
    InvalidMethod {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("chains: `{value}` is not a chain name (2-63 characters of a-z, 0-9 and '-', starting with a letter)")]
    InvalidChain { value: String },
    #[error("ip_allow: `{value}` is not an IP address or CIDR block: {reason}")]
    InvalidCidr { value: String, reason: &'static str },
    #[error("origin_allow: `{value}` is not an origin like https://app.example.com: {reason}")]
    InvalidOrigin { value: String, reason: &'static str },
    #[error("{field}: at most {max} entries")]
    TooMany { field: &'static str, max: usize },
}

impl RpcConfigError {
    /// The request field the problem is about (`plan`, `chains`,
    /// `allowed_methods`, `denied_methods`, `ip_allow`, `origin_allow`,
    /// `pricing`), for a 400 that names it.
    pub fn field(&self) -> &'static str {
        match self {
            Self::NoPlans
            | Self::InvalidPlanName { .. }
            | Self::DuplicatePlan(_)
            | Self::ZeroRate { .. }
            | Self::ZeroBurst { .. } => "plan",
            Self::ZeroPrice { .. } => "pricing",
            Self::InvalidMethod { field, .. } | Self::TooMany { field, .. } => field,
            Self::InvalidChain { .. } => "chains",
            Self::InvalidCidr { .. } => "ip_allow",
            Self::InvalidOrigin { .. } => "origin_allow",
        }
    }
}

// ------------------------------------------------------------------- plans --

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

// ----------------------------------------------------------------- pricing --

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

// ------------------------------------------------------------------ scopes --

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

fn is_method_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// A method name: 1–128 characters of `A-Z a-z 0-9 _ . -`, starting with a
/// letter.
fn check_method_name(field: &'static str, s: &str) -> Result<(), RpcConfigError> {
    let bad = |reason| RpcConfigError::InvalidMethod {
        field,
        value: s.to_owned(),
        reason,
    };
    if s.is_empty() || s.len() > MAX_METHOD_LEN {
        return Err(bad("must be 1-128 characters"));
    }
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(bad("must start with a letter"));
    }
    if !s.bytes().all(is_method_char) {
        return Err(bad("may hold only letters, digits, '_', '.' and '-'"));
    }
    Ok(())
}

/// A method name, or a prefix followed by one trailing `*` (`debug_*`).
fn check_method_pattern(field: &'static str, s: &str) -> Result<(), RpcConfigError> {
    match s.strip_suffix('*') {
        Some(prefix) => {
            if prefix.contains('*') {
                return Err(RpcConfigError::InvalidMethod {
                    field,
                    value: s.to_owned(),
                    reason: "only one trailing '*' is allowed",
                });
            }
            if prefix.is_empty() {
                return Err(RpcConfigError::InvalidMethod {
                    field,
                    value: s.to_owned(),
                    reason: "a pattern needs a prefix, like debug_* (leave the list empty for every method)",
                });
            }
            check_method_name(field, prefix).map_err(|e| match e {
                RpcConfigError::InvalidMethod { reason, .. } => RpcConfigError::InvalidMethod {
                    field,
                    value: s.to_owned(),
                    reason,
                },
                other => other,
            })
        }
        None => check_method_name(field, s),
    }
}

/// Whether `method` matches a scope pattern (exact, or prefix with `*`).
pub fn method_matches(pattern: &str, method: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => method.starts_with(prefix),
        None => pattern == method,
    }
}

// -------------------------------------------------------------------- CIDR --

pub use crate::net::Cidr;

impl From<crate::net::CidrError> for RpcConfigError {
    fn from(e: crate::net::CidrError) -> Self {
        Self::InvalidCidr {
            value: e.value,
            reason: e.reason,
        }
    }
}

// ----------------------------------------------------------------- origins --

/// A parsed `Origin` value: scheme, host (lower-cased) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    /// Explicit or the scheme's default.
    port: u16,
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

fn is_host_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

impl Origin {
    /// `scheme://host[:port]`, scheme `http` or `https`, nothing after.
    fn parse(s: &str) -> Result<Self, &'static str> {
        let (scheme, rest) = s.split_once("://").ok_or("expected scheme://host[:port]")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err("the scheme must be http or https");
        }
        if rest.contains(['/', '?', '#', '@']) {
            return Err("an origin has no path, query, fragment or user");
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => {
                let canonical = !p.is_empty()
                    && p.len() <= 5
                    && !p.starts_with('0')
                    && p.bytes().all(|b| b.is_ascii_digit());
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|_| canonical)
                    .ok_or("the port must be a number 1-65535")?;
                (h, port)
            }
            None => (rest, default_port(&scheme)),
        };
        let host = host.to_ascii_lowercase();
        let wildcard_free = host.strip_prefix("*.").unwrap_or(&host);
        if host.len() > 253
            || wildcard_free.is_empty()
            || !wildcard_free.split('.').all(is_host_label)
        {
            return Err("the host must be a DNS name or IPv4 address");
        }
        Ok(Self { scheme, host, port })
    }
}

/// An entry of `origin_allow`: an origin whose host may start with `*.`
/// (any subdomain, not the bare domain).
#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginPattern(Origin);

impl OriginPattern {
    fn parse(s: &str) -> Result<Self, RpcConfigError> {
        Origin::parse(s)
            .map(OriginPattern)
            .map_err(|reason| RpcConfigError::InvalidOrigin {
                value: s.to_owned(),
                reason,
            })
    }

    fn matches(&self, o: &Origin) -> bool {
        let p = &self.0;
        if p.scheme != o.scheme || p.port != o.port || o.host.starts_with("*.") {
            return false;
        }
        match p.host.strip_prefix("*.") {
            Some(domain) => o
                .host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => p.host == o.host,
        }
    }
}

// -------------------------------------------------------------------- keys --

/// An RPC key's stored record. The secret is never stored: only its hash,
/// plus the public prefix the edge looks the record up by.
#[derive(Clone, PartialEq, Eq)]
pub struct RpcKey {
    pub id: RpcKeyId,
    pub org_id: OrgId,
    pub name: String,
    /// Public, unique lookup prefix embedded in the token.
    pub prefix: String,
    /// Hex SHA-256 of the secret part. Never logged: `Debug` redacts it.
    pub secret_hash: String,
    /// Name of a plan of the installation's [`PlanCatalog`].
    pub plan: String,
    pub scope: KeyScope,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// Rises at every change; the edge ignores news older than what it holds.
    pub version: i64,
}

impl RpcKey {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

impl fmt::Debug for RpcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcKey")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("secret_hash", &"<redacted>")
            .field("plan", &self.plan)
            .field("scope", &self.scope)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("revoked_at", &self.revoked_at)
            .field("version", &self.version)
            .finish()
    }
}

// ------------------------------------------------------------------- usage --

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

/// A name that is not one of a fixed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}` (expected one of: {expected})")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
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

// ------------------------------------------------------------------- cache --

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
mod tests;
