//! `chains/{chain}/runtime.yaml`: how the agent runs a chain's processes and
//! how it tells whether they are alive and in sync.
//!
//! Health and sync logic is written as CEL expressions over named probes, so
//! chain-specific knowledge (eth_syncing, getHealth, catching_up,
//! initialblockdownload) lives in YAML rather than in agent code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The parsed `runtime.yaml` of one chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    /// Runtime adapter the agent uses to run the processes.
    pub adapter: RuntimeAdapter,
    /// Ports keyed by name; `{{<name>_port}}` in templates expands to them.
    /// A port named `rpc` is required (health checks and the RPC edge use it).
    pub ports: BTreeMap<String, Port>,
    /// Processes started in list order and stopped in reverse order.
    pub processes: Vec<Process>,
    /// Liveness: is the node software up and answering?
    pub health: Health,
    /// Sync: is the node at the chain head, and how far behind is it?
    pub sync: SyncSpec,
}

impl Runtime {
    /// Looks a process up by name.
    pub fn process(&self, name: &str) -> Option<&Process> {
        self.processes.iter().find(|p| p.name == name)
    }
}

/// How the agent supervises the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeAdapter {
    /// A supervised child process of the agent; works everywhere.
    Process,
    /// A systemd unit per process.
    Systemd,
    /// A container per process; each process then names an `image`.
    Docker,
}

/// A network port (or an inclusive port range) a node listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Port number (1..=65535); the first of the range when `end` is set.
    #[serde(deserialize_with = "de_port")]
    pub port: u16,
    /// Last port of an inclusive range (`{{<name>_port_end}}` in templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<u16>,
    /// Transport protocol(s).
    #[serde(default)]
    pub protocol: Protocol,
    /// Who may reach the port; drives host firewall rules.
    pub exposure: Exposure,
    /// What the port serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Reads a port number, naming the valid range when it is exceeded (plain
/// `u16` would only say "expected u16"). Port 0 is accepted here and
/// reported by lint together with the other semantic checks.
fn de_port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = u16;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a port number in 1..=65535")
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u16, E> {
            u16::try_from(v).map_err(|_| E::custom(format!("port {v} is out of range 1..=65535")))
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u16, E> {
            u16::try_from(v).map_err(|_| E::custom(format!("port {v} is out of range 1..=65535")))
        }
    }
    d.deserialize_u64(V)
}

impl Port {
    /// Last port of the range (the port itself when not a range).
    pub fn last(&self) -> u16 {
        self.end.unwrap_or(self.port)
    }
}

/// Transport protocol(s) of a port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP only.
    #[default]
    Tcp,
    /// UDP only.
    Udp,
    /// Both TCP and UDP on the same number (devp2p, libp2p, gossip).
    TcpUdp,
}

impl Protocol {
    /// Whether two protocol sets share a transport (and so can clash).
    pub fn overlaps(self, other: Protocol) -> bool {
        !matches!(
            (self, other),
            (Protocol::Tcp, Protocol::Udp) | (Protocol::Udp, Protocol::Tcp)
        )
    }
}

/// Reachability of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exposure {
    /// Open to the internet (peer-to-peer).
    Public,
    /// Reachable from the control plane and RPC edge only.
    Private,
    /// Loopback only (engine API, metrics scraped by the local agent).
    Local,
}

/// One process of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Process name; recipes' `extra_args` and upgrades refer to it.
    pub name: String,
    /// Binary (from the profile) that this process executes.
    pub binary: String,
    /// Container image; required with the docker adapter, forbidden otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Argument templates (`{{rpc_port}}`, `{{data_dir}}`, ...).
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment templates.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Signal sent to stop the process gracefully.
    #[serde(default)]
    pub stop_signal: StopSignal,
    /// Seconds to wait after `stop_signal` before killing.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_s: u32,
}

fn default_stop_timeout() -> u32 {
    30
}

/// Graceful stop signals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StopSignal {
    /// SIGTERM.
    #[default]
    Sigterm,
    /// SIGINT.
    Sigint,
    /// SIGQUIT.
    Sigquit,
}

/// Liveness check: probes run every `interval_s`; `healthy` decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Seconds between checks.
    pub interval_s: u32,
    /// Per-probe timeout in seconds; must be below `interval_s`.
    pub timeout_s: u32,
    /// Seconds after start during which failures do not count.
    #[serde(default)]
    pub startup_grace_s: u32,
    /// Named probes; each name is a variable in `healthy`.
    pub probes: BTreeMap<String, Source>,
    /// CEL boolean over the probes; true means the software is up.
    pub healthy: String,
}

/// Unit in which head height and lag are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncUnit {
    /// Blocks (EVM, Cosmos, Bitcoin).
    Blocks,
    /// Slots (Solana).
    Slots,
}

/// Sync evaluation.
///
/// `synced` is the node's own claim, `head` its height, `target` the network
/// height it has heard of from peers, and `reference.head` the height reported
/// by an operator-configured reference endpoint. Lag is
/// `max(target, reference.head) - head`; above `lag.lagging` a synced node is
/// `lagging`, above `lag.critical` its application health is critical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSpec {
    /// One-line description of the method, shown in the API.
    pub description: String,
    /// Unit of heights and lag.
    pub unit: SyncUnit,
    /// Named probes against the node itself.
    pub probes: BTreeMap<String, Source>,
    /// CEL boolean over `probes`.
    pub synced: String,
    /// CEL integer over `probes`: the local head height.
    pub head: String,
    /// CEL integer over `probes`: the network head as seen by the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Probes against a reference endpoint and how to read its head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// Lag thresholds in `unit`s.
    pub lag: LagThresholds,
    /// Whether the chain's nodes follow one network (their heads are
    /// compared: the best is every node's target) or each runs a chain of
    /// its own (a devnet: a node restored from an older snapshot is not
    /// behind anyone).
    #[serde(default)]
    pub network: SyncNetwork,
}

/// See [`SyncSpec::network`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncNetwork {
    #[default]
    Shared,
    Isolated,
}

/// Reference endpoint probes (the URL is operator configuration, so these
/// probes name no port).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// Named probes against the reference endpoint.
    pub probes: BTreeMap<String, Source>,
    /// CEL integer over the reference probes.
    pub head: String,
}

/// Lag thresholds; `lagging` must be below `critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LagThresholds {
    /// Lag above which a synced node counts as lagging.
    pub lagging: u64,
    /// Lag above which application health is critical.
    pub critical: u64,
}

/// Something the agent can query: a probe or an observation collector.
///
/// Written in YAML as a map with exactly one of the keys `jsonrpc`, `http`,
/// `prometheus` or `system`. In CEL, a `jsonrpc` source is bound to the
/// JSON-RPC response object (`x.result` / `x.error`), an `http` source to
/// `{status: int, body: <json>}`, a `prometheus` source to a map of metric
/// name to value (summed over label sets), and `system` to host statistics
/// (`cpu_percent`, `memory_used_percent`, `disk_free_percent`,
/// `disk_free_bytes`) of the data directory's filesystem.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A JSON-RPC call over HTTP POST.
    JsonRpc(JsonRpcCall),
    /// An HTTP GET returning JSON (or an empty body).
    Http(HttpGet),
    /// A Prometheus text-format scrape.
    Prometheus(PrometheusScrape),
    /// Host statistics gathered by the agent itself.
    System(SystemStats),
}

impl Source {
    /// The named port the source targets, if any.
    pub fn port(&self) -> Option<&str> {
        match self {
            Source::JsonRpc(c) => c.port.as_deref(),
            Source::Http(h) => h.port.as_deref(),
            Source::Prometheus(p) => Some(p.port.as_str()),
            Source::System(_) => None,
        }
    }

    /// Short description (`jsonrpc eth_syncing`) for summaries and logs.
    pub fn describe(&self) -> String {
        match self {
            Source::JsonRpc(c) => format!("jsonrpc {}", c.method),
            Source::Http(h) => format!("http GET {}", h.path),
            Source::Prometheus(p) => format!("prometheus {}", p.path),
            Source::System(_) => "system".to_string(),
        }
    }
}

/// A JSON-RPC request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRpcCall {
    /// Named port; required for local probes, absent for reference probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// URL path; `/` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Method name (`eth_syncing`).
    pub method: String,
    /// Positional parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<serde_json::Value>,
    /// Authentication, for nodes that require it (bitcoind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<RpcAuth>,
}

/// RPC authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcAuth {
    /// HTTP basic auth read from a `user:password` cookie file (template).
    pub cookie_file: String,
}

/// An HTTP GET.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGet {
    /// Named port; required for local probes, absent for reference probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// URL path starting with `/`.
    pub path: String,
}

/// A Prometheus scrape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusScrape {
    /// Named port.
    pub port: String,
    /// URL path; `/metrics` by default.
    #[serde(default = "default_metrics_path")]
    pub path: String,
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}

/// Host statistics; no parameters (`system: {}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemStats {}

const SOURCE_KINDS: &[&str] = &["jsonrpc", "http", "prometheus", "system"];

// Hand-written (de)serialisation: the "exactly one kind" check runs inside
// the map visitor, so serde_yaml reports it at this value's own path
// (`collectors[3].source`), not at the parent's.
impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Source::JsonRpc(c) => m.serialize_entry("jsonrpc", c)?,
            Source::Http(h) => m.serialize_entry("http", h)?,
            Source::Prometheus(p) => m.serialize_entry("prometheus", p)?,
            Source::System(x) => m.serialize_entry("system", x)?,
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Source;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map with exactly one of `jsonrpc`, `http`, `prometheus` or `system`")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Source, A::Error> {
                let mut found = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value = match key.as_str() {
                        "jsonrpc" => Source::JsonRpc(map.next_value()?),
                        "http" => Source::Http(map.next_value()?),
                        "prometheus" => Source::Prometheus(map.next_value()?),
                        "system" => Source::System(map.next_value()?),
                        other => return Err(serde::de::Error::unknown_field(other, SOURCE_KINDS)),
                    };
                    if found.replace(value).is_some() {
                        return Err(serde::de::Error::custom(ONE_SOURCE));
                    }
                }
                found.ok_or_else(|| serde::de::Error::custom(ONE_SOURCE))
            }
        }
        d.deserialize_map(V)
    }
}

const ONE_SOURCE: &str = "set exactly one of `jsonrpc`, `http`, `prometheus` or `system`";
