//! Per-host network namespaces for the `local` provider (root only).
//!
//! Each host gets a namespace `hood-{12 hex of the host id}` joined to the
//! root namespace by a veth pair on a private /30: `.1` on the root side
//! (`hv…`), `.2` inside (`hn…`). The namespace has no default route, so an
//! agent can reach the root-side address (where the gateway listens) and
//! nothing else: no host traffic can leave the machine. An `unreachable`
//! route for the whole base range keeps packets for a down link from falling
//! through to the default route. `partition` sets the inner end down.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use hood_domain::HostId;
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::{ProviderError, Result};

/// Network namespace settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsConfig {
    /// A /16 carved into per-host /30s. It must not overlap any route of the
    /// machine; this is checked at start.
    pub base: Ipv4Addr,
    /// Replace a loopback host in the gateway URL (`127.0.0.1`,
    /// `localhost`, `[::1]`) by the host's root-side address, because the
    /// namespace has its own loopback. The gateway must then listen on that
    /// address or on `0.0.0.0`, and its certificate must be valid for the
    /// address the agent dials (an IP SAN, or a name the agent verifies).
    pub rewrite_loopback_gateway: bool,
}

impl Default for NetnsConfig {
    /// `10.213.0.0/16`, rewriting loopback gateway URLs.
    fn default() -> Self {
        Self {
            base: Ipv4Addr::new(10, 213, 0, 0),
            rewrite_loopback_gateway: true,
        }
    }
}

pub(crate) const PREFIX_LEN: u8 = 16;
const SLOTS: u32 = 1 << (32 - PREFIX_LEN - 2);

/// A host's namespace, as recorded in its `host.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NetnsRecord {
    pub name: String,
    pub veth_host: String,
    pub veth_ns: String,
    pub host_addr: Ipv4Addr,
    pub ns_addr: Ipv4Addr,
    pub slot: u32,
}

impl NetnsRecord {
    pub(crate) fn plan(base: Ipv4Addr, host_id: HostId, slot: u32) -> Self {
        let short: String = host_id
            .as_uuid()
            .simple()
            .to_string()
            .chars()
            .take(12)
            .collect();
        let net = u32::from(base) + slot * 4;
        Self {
            name: format!("hood-{short}"),
            veth_host: format!("hv{short}"),
            veth_ns: format!("hn{short}"),
            host_addr: Ipv4Addr::from(net + 1),
            ns_addr: Ipv4Addr::from(net + 2),
            slot,
        }
    }
}

/// Finds `ip`, checks we are root and the base range is free, and installs
/// the guard route.
pub(crate) async fn init(cfg: &NetnsConfig) -> Result<PathBuf> {
    let unsupported = |why: &str| ProviderError::InvalidRequest {
        field: "netns".into(),
        reason: why.into(),
    };
    if !nix::unistd::geteuid().is_root() {
        return Err(unsupported("network namespaces need root"));
    }
    if u32::from(cfg.base) & 0xffff != 0 {
        return Err(unsupported("base must be the start of a /16"));
    }
    let ip =
        find_ip().ok_or_else(|| unsupported("the `ip` command (iproute2) is not installed"))?;
    run(&ip, &["netns", "list"]).await?;
    let routes = run(&ip, &["-4", "route", "show", "table", "all"]).await?;
    if let Some(r) = overlapping_route(&routes, cfg.base) {
        return Err(unsupported(&format!(
            "base {}/{PREFIX_LEN} overlaps an existing route: {r}",
            cfg.base
        )));
    }
    let guard = format!("{}/{PREFIX_LEN}", cfg.base);
    if let Err(e) = run(&ip, &["route", "add", "unreachable", &guard]).await {
        if !e.to_string().contains("File exists") {
            return Err(e);
        }
    }
    Ok(ip)
}

fn find_ip() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join("ip"))
        .find(|p| p.is_file())
}

/// A route (other than default, ours, and the guard) whose prefix overlaps
/// `base/16`.
fn overlapping_route(routes: &str, base: Ipv4Addr) -> Option<String> {
    let ours = |line: &str| {
        line.contains(" dev hv")
            || (line.starts_with("unreachable ") && line.contains(&format!("{base}/{PREFIX_LEN}")))
    };
    let b = u32::from(base);
    for line in routes.lines() {
        let line = line.trim();
        if line.is_empty() || ours(line) {
            continue;
        }
        let Some(prefix) = line
            .split_whitespace()
            .find(|t| t.chars().next().is_some_and(|c| c.is_ascii_digit()) || *t == "default")
        else {
            continue;
        };
        if prefix == "default" {
            continue;
        }
        let (addr, len) = match prefix.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().unwrap_or(32)),
            None => (prefix, 32),
        };
        let Ok(addr) = addr.parse::<Ipv4Addr>() else {
            continue;
        };
        let len = len.min(32);
        let common = len.min(PREFIX_LEN);
        let mask = if common == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(common))
        };
        if u32::from(addr) & mask == b & mask {
            return Some(line.to_owned());
        }
    }
    None
}

/// Creates the namespace and its link. Idempotent: leftovers of an
/// interrupted attempt are removed first.
pub(crate) async fn setup(ip: &Path, rec: &NetnsRecord) -> Result<()> {
    teardown(ip, rec).await;
    let host = format!("{}/30", rec.host_addr);
    let ns = format!("{}/30", rec.ns_addr);
    run(ip, &["netns", "add", &rec.name]).await?;
    run(
        ip,
        &[
            "link",
            "add",
            &rec.veth_host,
            "type",
            "veth",
            "peer",
            "name",
            &rec.veth_ns,
            "netns",
            &rec.name,
        ],
    )
    .await?;
    run(ip, &["addr", "add", &host, "dev", &rec.veth_host]).await?;
    run(ip, &["link", "set", &rec.veth_host, "up"]).await?;
    run(
        ip,
        &["-n", &rec.name, "addr", "add", &ns, "dev", &rec.veth_ns],
    )
    .await?;
    run(ip, &["-n", &rec.name, "link", "set", &rec.veth_ns, "up"]).await?;
    run(ip, &["-n", &rec.name, "link", "set", "lo", "up"]).await?;
    Ok(())
}

/// Removes the link and the namespace; missing ones are fine.
pub(crate) async fn teardown(ip: &Path, rec: &NetnsRecord) {
    let _ = run(ip, &["link", "del", &rec.veth_host]).await;
    let _ = run(ip, &["netns", "del", &rec.name]).await;
}

/// Sets the namespace end of the link down (`up = false`) or up.
pub(crate) async fn set_link(ip: &Path, rec: &NetnsRecord, up: bool) -> Result<()> {
    let state = if up { "up" } else { "down" };
    run(ip, &["-n", &rec.name, "link", "set", &rec.veth_ns, state]).await?;
    Ok(())
}

/// Live pids whose network namespace is `rec`'s: everything running "on"
/// the host, however it was started.
pub(crate) fn members(rec: &NetnsRecord) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(ns) = fs::metadata(Path::new("/run/netns").join(&rec.name)) else {
        return Vec::new();
    };
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    hood_runtime::proc::all_pids()
        .into_iter()
        .filter(|&p| p != me)
        .filter(|&p| {
            fs::metadata(format!("/proc/{p}/ns/net"))
                .is_ok_and(|m| m.ino() == ns.ino() && m.dev() == ns.dev())
        })
        .filter(|&p| hood_runtime::proc::read_stat(p).is_some_and(|s| s.is_live()))
        .collect()
}

/// First slot neither recorded by a host of this provider (`used`) nor
/// routed by the kernel (a host of another provider root on the same base).
pub(crate) async fn free_slot(ip: &Path, base: Ipv4Addr, used: &[u32]) -> Result<Option<u32>> {
    let routes = run(ip, &["-4", "route", "show", "table", "all"]).await?;
    let b = u32::from(base);
    let mut taken: Vec<u32> = used.to_vec();
    for line in routes.lines() {
        for tok in line.split_whitespace() {
            let addr = tok.split('/').next().unwrap_or(tok);
            if let Ok(a) = addr.parse::<Ipv4Addr>() {
                let a = u32::from(a);
                if a & 0xffff_0000 == b && tok != format!("{base}/{PREFIX_LEN}") {
                    taken.push((a - b) / 4);
                }
            }
        }
    }
    Ok((0..SLOTS).find(|s| !taken.contains(s)))
}

/// Rewrites a loopback host in `url` to `addr`.
pub(crate) fn rewrite_gateway(url: &str, addr: Ipv4Addr) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
        match stripped.split_once(']') {
            Some((h, p)) => (h, p),
            None => return url.to_owned(),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, _)) => (h, &authority[h.len()..]),
            None => (authority, ""),
        }
    };
    if matches!(host, "127.0.0.1" | "localhost" | "::1") {
        format!("{scheme}://{addr}{port}{path}")
    } else {
        url.to_owned()
    }
}

/// Runs `ip` with `args`; a non-zero exit is an error carrying stderr.
async fn run(ip: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(ip)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| ProviderError::Io {
            context: format!("running {}", ip.display()),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ProviderError::Command {
            command: format!("ip {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn plans_names_and_addresses() {
        let id =
            HostId::from_uuid(uuid::Uuid::parse_str("0123456789ab4def8123456789abcdef").unwrap());
        let r = NetnsRecord::plan(Ipv4Addr::new(10, 213, 0, 0), id, 3);
        assert_eq!(r.name, "hood-0123456789ab");
        assert!(r.veth_host.len() <= 15 && r.veth_ns.len() <= 15);
        assert_eq!(r.host_addr, Ipv4Addr::new(10, 213, 0, 13));
        assert_eq!(r.ns_addr, Ipv4Addr::new(10, 213, 0, 14));
        let last = NetnsRecord::plan(Ipv4Addr::new(10, 213, 0, 0), id, SLOTS - 1);
        assert_eq!(last.ns_addr, Ipv4Addr::new(10, 213, 255, 254));
    }

    #[test]
    fn detects_overlapping_routes() {
        let base = Ipv4Addr::new(10, 213, 0, 0);
        let routes = "default via 192.0.2.1 dev eth0\n192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\nunreachable 10.213.0.0/16\n10.213.0.0/30 dev hv0123 proto kernel\nlocal 127.0.0.1 dev lo table local\n";
        assert_eq!(overlapping_route(routes, base), None);
        assert!(overlapping_route("10.0.0.0/8 dev eth1\n", base).is_some());
        assert!(overlapping_route("10.213.7.0/24 dev eth1\n", base).is_some());
        assert!(
            overlapping_route("broadcast 10.213.255.255 dev eth1 table local\n", base).is_some()
        );
        assert_eq!(overlapping_route("10.214.0.0/16 dev eth1\n", base), None);
    }

    #[test]
    fn rewrites_only_loopback_gateways() {
        let a = Ipv4Addr::new(10, 213, 0, 1);
        assert_eq!(
            rewrite_gateway("https://127.0.0.1:9090", a),
            "https://10.213.0.1:9090"
        );
        assert_eq!(
            rewrite_gateway("https://localhost:9090/x", a),
            "https://10.213.0.1:9090/x"
        );
        assert_eq!(
            rewrite_gateway("https://[::1]:9090", a),
            "https://10.213.0.1:9090"
        );
        assert_eq!(
            rewrite_gateway("https://localhost", a),
            "https://10.213.0.1"
        );
        assert_eq!(
            rewrite_gateway("https://gw.example:9090", a),
            "https://gw.example:9090"
        );
    }
}
