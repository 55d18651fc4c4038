//! Browser origins and the patterns of a key's origin allow-list.

use super::RpcConfigError;

/// A parsed `Origin` value: scheme, host (lower-cased) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin {
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
    pub(super) fn parse(s: &str) -> Result<Self, &'static str> {
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
pub(super) struct OriginPattern(Origin);

impl OriginPattern {
    pub(super) fn parse(s: &str) -> Result<Self, RpcConfigError> {
        Origin::parse(s)
            .map(OriginPattern)
            .map_err(|reason| RpcConfigError::InvalidOrigin {
                value: s.to_owned(),
                reason,
            })
    }

    pub(super) fn matches(&self, o: &Origin) -> bool {
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

#[cfg(test)]
mod tests {
    use crate::rpc::test_support::strings;
    use crate::rpc::KeyScope;

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
}
