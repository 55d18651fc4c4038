//! IP networks: CIDR blocks ([`Cidr`]) and the special-purpose address
//! ranges that are not on the public internet ([`special_range`]).
//!
//! The RPC edge matches client addresses against a key's CIDR allow-list;
//! notifications refuse to reach special-purpose addresses (an SSRF guard)
//! unless the operator allows a network. Both ask these rules.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A string that is not an IP address or CIDR block. The message quotes the
/// value (an address, never a secret) and says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not an IP address or CIDR block: {reason}")]
pub struct CidrError {
    pub value: String,
    pub reason: &'static str,
}

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
    pub fn parse(s: &str) -> Result<Self, CidrError> {
        let bad = |reason| CidrError {
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

    /// A comma-separated list of blocks (`127.0.0.0/8, ::1`); blanks around
    /// entries and empty entries are ignored.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, CidrError> {
        s.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(Self::parse)
            .collect()
    }

    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        Self {
            addr: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Self {
        let [a, b, c, d, e, f, g, h] = segments;
        Self {
            addr: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
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

/// A special-purpose address block (IANA's IPv4 and IPv6 special-purpose
/// registries, RFC 6890): an address in it is not a public internet host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialRange {
    pub network: Cidr,
    /// What the block is for: `loopback`, `private`, `link-local`, …
    pub name: &'static str,
}

impl fmt::Display for SpecialRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.network)
    }
}

const fn range(network: Cidr, name: &'static str) -> SpecialRange {
    SpecialRange { network, name }
}

/// Every IPv4 block that is not globally reachable, plus multicast and the
/// documentation blocks (never a real destination).
const SPECIAL_V4: [SpecialRange; 15] = [
    range(Cidr::v4(0, 0, 0, 0, 8), "unspecified (\"this network\")"),
    range(Cidr::v4(10, 0, 0, 0, 8), "private"),
    range(Cidr::v4(100, 64, 0, 0, 10), "carrier-grade NAT"),
    range(Cidr::v4(127, 0, 0, 0, 8), "loopback"),
    range(Cidr::v4(169, 254, 0, 0, 16), "link-local"),
    range(Cidr::v4(172, 16, 0, 0, 12), "private"),
    range(Cidr::v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    range(Cidr::v4(192, 0, 2, 0, 24), "documentation"),
    range(Cidr::v4(192, 88, 99, 0, 24), "6to4 relay anycast"),
    range(Cidr::v4(192, 168, 0, 0, 16), "private"),
    range(Cidr::v4(198, 18, 0, 0, 15), "benchmarking"),
    range(Cidr::v4(198, 51, 100, 0, 24), "documentation"),
    range(Cidr::v4(203, 0, 113, 0, 24), "documentation"),
    range(Cidr::v4(224, 0, 0, 0, 4), "multicast"),
    // 255.255.255.255 (broadcast) lies in here too.
    range(Cidr::v4(240, 0, 0, 0, 4), "reserved"),
];

/// The IPv6 counterparts. IPv4-mapped (`::ffff:0:0/96`) and NAT64
/// (`64:ff9b::/96`) addresses are judged by the IPv4 address they carry.
const SPECIAL_V6: [SpecialRange; 12] = [
    range(Cidr::v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    range(Cidr::v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    // Deprecated IPv4-compatible addresses (`::a.b.c.d`).
    range(Cidr::v6([0, 0, 0, 0, 0, 0, 0, 0], 96), "IPv4-compatible"),
    range(
        Cidr::v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "local-use NAT64",
    ),
    range(Cidr::v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only"),
    range(
        Cidr::v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "IETF protocol assignments",
    ),
    range(
        Cidr::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "documentation",
    ),
    range(Cidr::v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "documentation"),
    range(Cidr::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "unique local"),
    range(Cidr::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    range(Cidr::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local"),
    range(Cidr::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

/// The special-purpose block `ip` lies in, or `None` for a public address.
///
/// An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) or a NAT64 one
/// (`64:ff9b::7f00:1`) is judged by the IPv4 address it carries, since
/// that is where a connection to it ends up.
pub fn special_range(ip: IpAddr) -> Option<SpecialRange> {
    let v6 = match ip {
        IpAddr::V4(v4) => return special_v4(v4),
        IpAddr::V6(v6) => v6,
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return special_v4(v4);
    }
    const NAT64: Cidr = Cidr::v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
    if NAT64.contains(ip) {
        let [.., a, b, c, d] = v6.octets();
        return special_v4(Ipv4Addr::new(a, b, c, d));
    }
    SPECIAL_V6.iter().find(|r| r.network.contains(ip)).copied()
}

fn special_v4(ip: Ipv4Addr) -> Option<SpecialRange> {
    SPECIAL_V4
        .iter()
        .find(|r| r.network.contains(IpAddr::V4(ip)))
        .copied()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

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
            assert_eq!(e.value, bad);
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
        assert_eq!(Cidr::parse("10.1.2.3/8").unwrap().to_string(), "10.1.2.3/8");
        assert_eq!(Cidr::parse("::1").unwrap().to_string(), "::1/128");
    }

    #[test]
    fn cidr_lists() {
        let list = Cidr::parse_list(" 127.0.0.0/8, ::1 ,,10.0.0.0/8").unwrap();
        let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]);
        assert!(Cidr::parse_list("").unwrap().is_empty());
        let e = Cidr::parse_list("127.0.0.0/8,localhost").unwrap_err();
        assert_eq!(e.value, "localhost");
    }

    /// One address inside each refused block, the block's name, and an
    /// address just outside it where one exists.
    #[test]
    fn every_special_block_is_recognised() {
        let cases: [(&str, &str, Option<&str>); 40] = [
            ("0.0.0.0", "unspecified", Some("1.0.0.0")),
            ("0.255.255.255", "unspecified", None),
            ("10.0.0.1", "private", Some("11.0.0.0")),
            ("10.255.255.255", "private", Some("9.255.255.255")),
            ("100.64.0.1", "carrier-grade NAT", Some("100.63.255.255")),
            ("100.127.255.255", "carrier-grade NAT", Some("100.128.0.0")),
            ("127.0.0.1", "loopback", Some("128.0.0.0")),
            ("127.255.255.254", "loopback", Some("126.255.255.255")),
            ("169.254.169.254", "link-local", Some("169.255.0.0")),
            ("172.16.0.1", "private", Some("172.15.255.255")),
            ("172.31.255.255", "private", Some("172.32.0.0")),
            ("192.0.0.8", "IETF protocol assignments", Some("192.0.1.0")),
            ("192.0.2.1", "documentation", Some("192.0.3.0")),
            ("192.88.99.1", "6to4 relay anycast", None),
            ("192.168.1.1", "private", Some("192.169.0.0")),
            ("198.18.0.1", "benchmarking", Some("198.20.0.0")),
            ("198.51.100.1", "documentation", None),
            ("203.0.113.1", "documentation", None),
            ("224.0.0.1", "multicast", Some("223.255.255.255")),
            ("239.255.255.250", "multicast", None),
            ("240.0.0.1", "reserved", None),
            ("255.255.255.255", "reserved", None),
            ("::", "unspecified", None),
            ("::1", "loopback", Some("::2:0:0")),
            ("::127.0.0.1", "IPv4-compatible", None),
            ("::ffff:127.0.0.1", "loopback", Some("::ffff:8.8.8.8")),
            ("::ffff:10.1.2.3", "private", None),
            ("::ffff:169.254.169.254", "link-local", None),
            ("::ffff:100.64.0.1", "carrier-grade NAT", None),
            ("::ffff:0.0.0.0", "unspecified", None),
            ("64:ff9b::7f00:1", "loopback", Some("64:ff9b::808:808")),
            ("64:ff9b:1::1", "local-use NAT64", None),
            ("100::1", "discard-only", None),
            ("2001::1", "IETF protocol assignments", None),
            ("2001:db8::1", "documentation", Some("2001:db9::1")),
            ("3fff::1", "documentation", None),
            ("fc00::1", "unique local", Some("fbff:ffff::1")),
            ("fdff:ffff::1", "unique local", Some("fe00::1")),
            ("fe80::1", "link-local", Some("fe7f::1")),
            ("ff02::1", "multicast", None),
        ];
        for (inside, name, outside) in cases {
            let found = special_range(ip(inside)).unwrap_or_else(|| panic!("{inside}"));
            assert!(
                found.name.starts_with(name),
                "{inside}: {found} is not {name}"
            );
            // A NAT64 address is judged by (and reported as) its IPv4 block.
            if !inside.starts_with("64:ff9b::") {
                assert!(found.network.contains(ip(inside)), "{inside} in {found}");
            }
            if let Some(outside) = outside {
                assert_eq!(special_range(ip(outside)), None, "{outside}");
            }
        }
        assert_eq!(special_range(ip("fec0::1")).unwrap().name, "site-local");
    }

    #[test]
    fn public_addresses_are_not_special() {
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.217.0.1",
            "192.0.1.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:1.1.1.1",
        ] {
            assert_eq!(special_range(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn special_range_names_the_block() {
        let r = special_range(ip("10.1.2.3")).unwrap();
        assert_eq!(r.to_string(), "private (10.0.0.0/8)");
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

        /// The mapped form of any IPv4 address is judged like the address.
        #[test]
        fn mapped_addresses_follow_their_ipv4(v4 in any::<u32>()) {
            let v4 = Ipv4Addr::from(v4);
            prop_assert_eq!(
                special_range(IpAddr::V6(v4.to_ipv6_mapped())),
                special_range(IpAddr::V4(v4))
            );
        }
    }
}
