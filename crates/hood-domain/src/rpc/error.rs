//! Why an RPC edge configuration (plan, price list, key scope) or a name
//! cannot be accepted.

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

/// A name that is not one of a fixed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}` (expected one of: {expected})")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}
