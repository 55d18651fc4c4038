//! IP networks for a key's client-address allow-list: the domain's one
//! CIDR rule (`crate::net`), with its error named as the key field it
//! checks.

use super::RpcConfigError;

pub use crate::net::Cidr;

impl From<crate::net::CidrError> for RpcConfigError {
    fn from(e: crate::net::CidrError) -> Self {
        Self::InvalidCidr {
            value: e.value,
            reason: e.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_cidr_names_ip_allow_and_quotes_the_value() {
        let e = RpcConfigError::from(Cidr::parse("10.0.0.0/33").unwrap_err());
        assert_eq!(e.field(), "ip_allow");
        assert!(e.to_string().contains("`10.0.0.0/33`"), "{e}");
    }
}
