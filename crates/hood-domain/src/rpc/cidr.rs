//! IP networks for a key's client-address allow-list.

use super::RpcConfigError;
use std::fmt;
use std::net::IpAddr;

/// An IP network: an address and a prefix length. A plain address is a
/// network of one (`/32`, `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR` or `ADDR/PREFIX`. Host bits beyond the prefix are
    /// allowed (`10.1.2.3/8` means `10.0.0.0/8`).
    pub fn parse(s: &str) -> Result<Self, RpcConfigError> {
        let bad = |reason| RpcConfigError::InvalidCidr {
            value: s.to_owned(),
            reason,
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| bad("expected an IPv4 or IPv6 address"))?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("the prefix length must be a number"));
                }
                match p.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => {
                        return Err(if max == 32 {
                            bad("an IPv4 prefix length is 0-32")
                        } else {
                            bad("an IPv6 prefix length is 0-128")
                        })
                    }
                }
            }
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` lies in the network. IPv4-mapped IPv6 addresses are
    /// compared as IPv4 (on both sides).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (unmap(self.addr, self.prefix), unmap(ip, 128)) {
            ((IpAddr::V4(net), prefix), (IpAddr::V4(ip), _)) => prefix_eq(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                prefix,
            ),
            ((IpAddr::V6(net), prefix), (IpAddr::V6(ip), _)) => {
                prefix_eq(u128::from(net), u128::from(ip), prefix)
            }
            _ => false,
        }
    }
}

/// `::ffff:a.b.c.d/n` (n ≥ 96) is `a.b.c.d/(n-96)`; an IPv4-mapped address
/// is its IPv4 address. The prefix is returned adjusted.
fn unmap(ip: IpAddr, prefix: u8) -> (IpAddr, u8) {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
            _ => (IpAddr::V6(v6), prefix),
        },
        v4 @ IpAddr::V4(_) => (v4, prefix),
    }
}

/// Whether the top `prefix` bits of two 128-bit values agree.
fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = 128 - u32::from(prefix.min(128));
    (a >> shift) == (b >> shift)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn cidr_syntax() {
        for good in [
            "10.0.0.0/8",
            "10.1.2.3/8",
            "198.51.100.7",
            "0.0.0.0/0",
            "203.0.113.0/24",
            "255.255.255.255/32",
            "2001:db8::/32",
            "::1",
            "::/0",
            "fe80::1/128",
            "::ffff:203.0.113.0/120",
        ] {
            assert!(Cidr::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "10.0.0.256",
            "2001:db8::/129",
            "2001:db8::/0128",
            "2001:db8:::1",
            "localhost",
            " 10.0.0.1",
            "10.0.0.1 ",
            "[::1]",
        ] {
            let e = Cidr::parse(bad).unwrap_err();
            assert_eq!(e.field(), "ip_allow", "{bad}");
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
        assert_eq!(Cidr::parse("10.1.2.3/8").unwrap().to_string(), "10.1.2.3/8");
        assert_eq!(Cidr::parse("::1").unwrap().to_string(), "::1/128");
    }

    /// Reference: compare the first `prefix` bits one at a time.
    fn naive_contains(net: [u8; 16], prefix: u8, addr: [u8; 16]) -> bool {
        (0..usize::from(prefix)).all(|bit| {
            let mask = 0x80u8 >> (bit % 8);
            net[bit / 8] & mask == addr[bit / 8] & mask
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn v6_cidr_matches_bit_by_bit(net in any::<[u8; 16]>(), prefix in 0u8..=128, addr in any::<[u8; 16]>(), keep in 0u8..=128) {
            // Make matches likely: copy the first `keep` bits of the network.
            let mut a = addr;
            for bit in 0..usize::from(keep) {
                let mask = 0x80u8 >> (bit % 8);
                a[bit / 8] = (a[bit / 8] & !mask) | (net[bit / 8] & mask);
            }
            let net_ip = Ipv6Addr::from(net);
            let a_ip = Ipv6Addr::from(a);
            // Mapped addresses follow the IPv4 rule, tested separately.
            prop_assume!(net_ip.to_ipv4_mapped().is_none() && a_ip.to_ipv4_mapped().is_none());
            let cidr = Cidr::parse(&format!("{net_ip}/{prefix}")).unwrap();
            prop_assert_eq!(cidr.contains(IpAddr::V6(a_ip)), naive_contains(net, prefix, a));
        }

        #[test]
        fn v4_cidr_matches_bit_by_bit(net in any::<u32>(), prefix in 0u8..=32, addr in any::<u32>(), keep in 0u32..=32) {
            let mask = if keep == 0 { 0 } else { u32::MAX << (32 - keep) };
            let a = (addr & !mask) | (net & mask);
            let cidr = Cidr::parse(&format!("{}/{prefix}", Ipv4Addr::from(net))).unwrap();
            let mut n16 = [0u8; 16];
            n16[..4].copy_from_slice(&net.to_be_bytes());
            let mut a16 = [0u8; 16];
            a16[..4].copy_from_slice(&a.to_be_bytes());
            let expected = naive_contains(n16, prefix, a16);
            prop_assert_eq!(cidr.contains(IpAddr::V4(Ipv4Addr::from(a))), expected);
            // The same client seen through an IPv6 socket.
            prop_assert_eq!(cidr.contains(IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())), expected);
        }

        #[test]
        fn cidr_parse_never_panics(s in "\\PC{0,48}") {
            let _ = Cidr::parse(&s);
        }
    }
}
