//! The SSRF guard: notifications reach public internet addresses only,
//! unless the operator allows a network.
//!
//! A channel's URL or SMTP host is supplied by a tenant, so without a guard
//! a channel could make the control plane talk to its own loopback services,
//! the cloud metadata endpoint (169.254.169.254) or the private network.
//! The rule (which blocks are special) is the domain's
//! [`hood_domain::net::special_range`]; this module applies it:
//!
//! * at channel creation, to hosts written as IP literals and to
//!   `localhost` names ([`DestinationPolicy::check_channel`]);
//! * at send time, after DNS resolution ([`DestinationPolicy::resolve`]):
//!   every address a name resolves to is checked, one refused address
//!   refuses the name, and the connection goes to the checked addresses
//!   only — never to a second, possibly different, answer of the resolver
//!   (no DNS-rebinding window).

use crate::config::{ChannelConfig, ConfigError};
use hood_domain::net::{special_range, Cidr, CidrError, SpecialRange};
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Which destinations notifications may reach: public addresses, plus the
/// operator's allowed networks. The default allows no special network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    allowed: Arc<[Cidr]>,
}

/// A destination the policy refuses. `Display` names the host, the address
/// and the block it lies in, never a URL (whose path may be a credential).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RefusedDestination {
    /// The host as written (a name or an address).
    pub host: String,
    /// The address refused (the host itself, or one it resolved to).
    pub ip: IpAddr,
    pub range: SpecialRange,
}

impl std::fmt::Display for RefusedDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if ip_literal(&self.host) == Some(self.ip) {
            write!(f, "{} is", self.host)?;
        } else {
            write!(f, "{} resolves to {}, which is", self.host, self.ip)?;
        }
        write!(
            f,
            " in the {} block {}, which notifications may not reach unless the operator \
             allows that network",
            self.range.name, self.range.network
        )
    }
}

/// Why [`DestinationPolicy::resolve`] yields no address to connect to.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    /// The name does not resolve (now): possibly transient.
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        host: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Refused(#[from] RefusedDestination),
}

impl DestinationPolicy {
    /// A policy that also admits these networks (e.g. `127.0.0.0/8` for a
    /// relay on the same host, `10.0.0.0/8` for an internal webhook).
    pub fn allowing(networks: impl IntoIterator<Item = Cidr>) -> Self {
        Self {
            allowed: networks.into_iter().collect(),
        }
    }

    /// [`Self::allowing`] the networks of a comma-separated CIDR list
    /// (`127.0.0.0/8,10.0.0.0/8`; blanks and empty entries ignored).
    pub fn parse(list: &str) -> Result<Self, CidrError> {
        Ok(Self::allowing(Cidr::parse_list(list)?))
    }

    /// The operator's allowed networks.
    pub fn allowed_networks(&self) -> &[Cidr] {
        &self.allowed
    }

    /// Whether `ip` may be reached; `host` is only echoed in the refusal.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), RefusedDestination> {
        match special_range(ip) {
            Some(range) if !self.allowed.iter().any(|net| net.contains(ip)) => {
                Err(RefusedDestination {
                    host: host.to_owned(),
                    ip,
                    range,
                })
            }
            _ => Ok(()),
        }
    }

    /// What can be judged without DNS, for a 400 at channel creation: hosts
    /// written as IP literals (in any form the URL parser accepts, such as
    /// `http://2130706433/`) and `localhost` names (RFC 6761: always
    /// loopback). Other names are checked when a notification is sent. The
    /// error names the field.
    pub fn check_channel(&self, channel: &ChannelConfig) -> Result<(), ConfigError> {
        for (field, host) in destination_hosts(channel) {
            self.check_host_without_dns(&host)
                .map_err(|refused| ConfigError {
                    field: field.to_owned(),
                    message: refused.to_string(),
                })?;
        }
        Ok(())
    }

    fn check_host_without_dns(&self, host: &str) -> Result<(), RefusedDestination> {
        if let Some(ip) = ip_literal(host) {
            return self.check_ip(host, ip);
        }
        if is_localhost_name(host) {
            for ip in [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ] {
                self.check_ip(host, ip)?;
            }
        }
        Ok(())
    }

    /// The host of an `http(s)` URL, checked when it is an IP literal (a
    /// name is checked by the HTTP client's resolver, which never hands the
    /// connector an unchecked address).
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), RefusedDestination> {
        // The parser has normalized an IPv4 host to dotted form already.
        match url.host_str() {
            Some(host) => match ip_literal(host) {
                Some(ip) => self.check_ip(host, ip),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Resolves `host` (a name or an address literal) and checks every
    /// address: the addresses to connect to, all admitted, or why none may
    /// be used.
    pub(crate) async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((bare, port)).await {
            Ok(addrs) => addrs.collect(),
            Err(source) => {
                return Err(ResolveError::Lookup {
                    host: host.to_owned(),
                    source,
                })
            }
        };
        if addrs.is_empty() {
            return Err(ResolveError::Lookup {
                host: host.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
            });
        }
        for addr in &addrs {
            self.check_ip(host, addr.ip())?;
        }
        Ok(addrs)
    }
}

/// Each destination host of a channel with the field it comes from. A
/// Telegram channel without `api_base` goes to the installation's Bot API,
/// checked at send time.
fn destination_hosts(channel: &ChannelConfig) -> Vec<(&'static str, String)> {
    let url_host = |raw: &str| {
        Url::parse(raw)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
    };
    match channel {
        ChannelConfig::Webhook { url, .. } => {
            url_host(url).map(|h| ("url", h)).into_iter().collect()
        }
        ChannelConfig::Slack { webhook_url } => url_host(webhook_url)
            .map(|h| ("webhook_url", h))
            .into_iter()
            .collect(),
        ChannelConfig::Telegram { api_base, .. } => api_base
            .as_deref()
            .and_then(url_host)
            .map(|h| ("api_base", h))
            .into_iter()
            .collect(),
        ChannelConfig::Email { smtp_host, .. } => vec![("smtp_host", smtp_host.clone())],
    }
}

/// `host` as an IP address when it is a literal: dotted or bracketed as in
/// a URL, or in the other IPv4 forms URL parsers and `getaddrinfo` accept
/// (`2130706433`, `0x7f.1`), which the URL parser normalizes.
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(ip);
    }
    if bare.contains(':') {
        return None;
    }
    // The WHATWG host parser turns every IPv4 spelling into dotted form.
    let url = Url::parse(&format!("http://{bare}/")).ok()?;
    url.host_str()?.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// `localhost` and `*.localhost` (RFC 6761 §6.3), with or without the
/// trailing root dot, in any case.
fn is_localhost_name(host: &str) -> bool {
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::config::SmtpTls;

    fn strict() -> DestinationPolicy {
        DestinationPolicy::default()
    }

    fn loopback_allowed() -> DestinationPolicy {
        DestinationPolicy::parse("127.0.0.0/8, ::1").unwrap()
    }

    fn webhook(url: &str) -> ChannelConfig {
        ChannelConfig::Webhook {
            url: url.into(),
            secret: "0123456789abcdef".into(),
        }
    }

    fn email(host: &str) -> ChannelConfig {
        ChannelConfig::Email {
            smtp_host: host.into(),
            smtp_port: 25,
            tls: SmtpTls::None,
            from: "hood@example.com".into(),
            to: vec!["ops@example.com".into()],
            username: None,
            password: None,
        }
    }

    /// One address of every refused family, as a URL host and as an SMTP
    /// host: each is refused by default and names the block.
    #[test]
    fn each_refused_range_is_refused_at_creation() {
        let cases = [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("[::1]", "loopback"),
            ("169.254.169.254", "link-local"),
            ("[fe80::1]", "link-local"),
            ("10.0.0.5", "private"),
            ("172.16.3.4", "private"),
            ("192.168.0.10", "private"),
            ("[fc00::1]", "unique local"),
            ("[fd12:3456::1]", "unique local"),
            ("0.0.0.0", "unspecified"),
            ("[::]", "unspecified"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("[::ffff:127.0.0.1]", "loopback"),
            ("[::ffff:10.0.0.1]", "private"),
            ("[::ffff:169.254.169.254]", "link-local"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("192.0.2.10", "documentation"),
            // Other spellings of 127.0.0.1 that resolvers accept.
            ("2130706433", "loopback"),
            ("0x7f.1", "loopback"),
            ("localhost", "loopback"),
            ("api.LOCALHOST.", "loopback"),
        ];
        for (host, name) in cases {
            let e = strict()
                .check_channel(&webhook(&format!("http://{host}:8080/hook")))
                .unwrap_err();
            assert_eq!(e.field, "url", "{host}");
            assert!(e.message.contains(name), "{host}: {}", e.message);
            let smtp = host.trim_start_matches('[').trim_end_matches(']');
            let e = strict().check_channel(&email(smtp)).unwrap_err();
            assert_eq!(e.field, "smtp_host", "{host}");
            assert!(e.message.contains(name), "{host}: {}", e.message);
        }
    }

    #[test]
    fn every_url_field_is_checked() {
        let slack = ChannelConfig::Slack {
            webhook_url: "https://10.1.1.1/services/x".into(),
        };
        assert_eq!(
            strict().check_channel(&slack).unwrap_err().field,
            "webhook_url"
        );
        let telegram = |base: Option<&str>| ChannelConfig::Telegram {
            bot_token: "1:abc".into(),
            chat_id: "1".into(),
            api_base: base.map(Into::into),
        };
        assert_eq!(
            strict()
                .check_channel(&telegram(Some("http://192.168.1.1")))
                .unwrap_err()
                .field,
            "api_base"
        );
        strict().check_channel(&telegram(None)).unwrap();
    }

    #[test]
    fn public_hosts_and_names_pass_at_creation() {
        for url in [
            "https://hooks.example.com/hood",
            "https://93.184.216.34/x",
            "http://[2606:4700:4700::1111]/x",
            "https://localhost.example.com/x",
        ] {
            strict().check_channel(&webhook(url)).unwrap();
        }
        strict().check_channel(&email("smtp.example.com")).unwrap();
        strict().check_channel(&email("2001:4860::8888")).unwrap();
    }

    #[test]
    fn the_allow_list_admits_its_networks_only() {
        let policy = loopback_allowed();
        policy
            .check_channel(&webhook("http://127.0.0.1:9/hook"))
            .unwrap();
        policy.check_channel(&email("::1")).unwrap();
        policy.check_channel(&email("localhost")).unwrap();
        // The mapped form of an allowed address is allowed.
        policy
            .check_channel(&webhook("http://[::ffff:127.0.0.1]/x"))
            .unwrap();
        // Other special blocks stay refused.
        assert!(policy.check_channel(&webhook("http://10.0.0.1/x")).is_err());
        assert!(policy
            .check_channel(&webhook("http://169.254.169.254/x"))
            .is_err());
        // `localhost` needs both loopback families.
        let v4_only = DestinationPolicy::allowing([Cidr::parse("127.0.0.0/8").unwrap()]);
        assert!(v4_only.check_channel(&email("localhost")).is_err());
        assert_eq!(policy.allowed_networks().len(), 2);
        assert_eq!(
            DestinationPolicy::parse("127.0.0.0/8,nope")
                .unwrap_err()
                .value,
            "nope"
        );
        assert_eq!(DestinationPolicy::parse("").unwrap(), strict());
    }

    #[test]
    fn refusal_names_host_address_and_block() {
        let e = strict()
            .check_ip("db.internal", "10.2.3.4".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "db.internal resolves to 10.2.3.4, which is in the private block 10.0.0.0/8, \
             which notifications may not reach unless the operator allows that network"
        );
        let e = strict()
            .check_ip("[::1]", "::1".parse().unwrap())
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("[::1] is in the loopback block ::1/128,"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn resolution_checks_every_address() {
        // `localhost` resolves to loopback addresses only.
        match strict().resolve("localhost", 25).await {
            Err(ResolveError::Refused(e)) => {
                assert_eq!(e.host, "localhost");
                assert!(e.ip.is_loopback(), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let addrs = loopback_allowed().resolve("127.0.0.1", 2525).await.unwrap();
        assert_eq!(addrs, ["127.0.0.1:2525".parse().unwrap()]);
        let addrs = loopback_allowed().resolve("[::1]", 2525).await.unwrap();
        assert_eq!(addrs, ["[::1]:2525".parse().unwrap()]);
        assert!(matches!(
            strict().resolve("127.0.0.1", 25).await,
            Err(ResolveError::Refused(_))
        ));
        assert!(matches!(
            strict().resolve("no-such-host.invalid", 25).await,
            Err(ResolveError::Lookup { .. })
        ));
    }
}
