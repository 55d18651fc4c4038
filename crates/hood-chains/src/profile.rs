//! `chains/{chain}/profile.yaml`: what a chain is and what it takes to run it
//! (node types and their resources, providers, pinned binaries, snapshots).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// SHA-256 of the empty file. Shipped profiles use it where the real checksum
/// of an operator-pushed artifact cannot be known in advance: no real binary
/// hashes to it, so verification fails closed until an operator replaces it.
pub const PLACEHOLDER_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The parsed `profile.yaml` of one chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Machine name; must equal the chain's directory name.
    pub name: String,
    /// Name shown to people (`Ethereum Mainnet`).
    pub display_name: String,
    /// Free-text description for operators and the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Protocol family; decides which wallet/RPC conventions apply.
    pub family: ChainFamily,
    /// Network within the family (`mainnet`, `devnet`, ...).
    pub network: String,
    /// Chain identifier where the protocol has one (`1`, `cosmoshub-4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<String>,
    /// Node type used when a create request names none.
    pub default_node_type: String,
    /// Node types (`full`, `archive`, `dev`, ...) keyed by name.
    pub node_types: BTreeMap<String, NodeType>,
    /// Host providers this chain may be placed on (`local`, `hetzner`, `ovh`).
    pub providers: Vec<String>,
    /// Binaries a node runs; several for multi-client chains (reth + lighthouse).
    pub binaries: Vec<Binary>,
    /// Where a new node bootstraps its state from, when not from genesis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
}

impl Profile {
    /// Looks a binary up by name.
    pub fn binary(&self, name: &str) -> Option<&Binary> {
        self.binaries.iter().find(|b| b.name == name)
    }
}

/// Protocol family of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainFamily {
    /// Ethereum and EVM-compatible chains (JSON-RPC `eth_*`).
    Evm,
    /// Solana (JSON-RPC `get*`).
    Solana,
    /// Cosmos SDK / CometBFT chains.
    Cosmos,
    /// Bitcoin Core and forks.
    Bitcoin,
}

impl ChainFamily {
    /// The lowercase name used in YAML and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainFamily::Evm => "evm",
            ChainFamily::Solana => "solana",
            ChainFamily::Cosmos => "cosmos",
            ChainFamily::Bitcoin => "bitcoin",
        }
    }
}

/// One kind of node a customer can order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeType {
    /// What this node type is for (shown in the API).
    pub description: String,
    /// Minimum host size; providers pick an instance at least this large.
    pub resources: Resources,
}

/// Host resources a node type needs. All must be greater than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// vCPUs.
    pub cpu: u32,
    /// Memory in GiB.
    pub memory_gb: u32,
    /// Disk in GB for the node's data directory.
    pub disk_gb: u32,
}

/// How an artifact's checksum is established.
///
/// The rule: `pinned` (the default) requires `sha256` to be set to 64
/// lowercase hex characters. `at_push` requires `sha256` to be null/absent
/// and a `source` to be given: the artifact push fetches it from that source,
/// verifies what the source itself publishes (npm `integrity`), and records
/// the SHA-256 in the artifact store, which hosts then verify against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verify {
    /// Checksum written in the catalog.
    #[default]
    Pinned,
    /// Checksum recorded when the artifact is pushed from its `source`.
    AtPush,
}

/// A binary a node runs, pulled from the control plane's artifact store by
/// `artifact` name, `version` and SHA-256 (so fleets work air-gapped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binary {
    /// Name processes and steps refer to (`reth`, `anvil`).
    pub name: String,
    /// Upstream version string (`1.9.3`).
    pub version: String,
    /// Artifact name in the store (`reth-x86_64-linux-gnu`).
    pub artifact: String,
    /// SHA-256 of the artifact; see [`Verify`] for when it may be null.
    #[serde(default)]
    pub sha256: Option<String>,
    /// How the checksum is established.
    #[serde(default)]
    pub verify: Verify,
    /// Executable's path inside the artifact when the artifact is an archive;
    /// absent when the artifact is the executable itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// Where the artifact comes from upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ArtifactSource>,
}

impl Binary {
    /// True when the checksum is the documented placeholder and an operator
    /// still has to put the real one in.
    pub fn has_placeholder_sha256(&self) -> bool {
        self.sha256.as_deref() == Some(PLACEHOLDER_SHA256)
    }
}

/// Upstream origin of an artifact. Written in YAML as a map with exactly one
/// of the keys `npm` or `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactSource {
    /// A package on the npm registry (how Foundry ships `anvil`).
    Npm(NpmSource),
    /// A release download (`https://…/reth-v1.9.3-….tar.gz`).
    Url(String),
}

/// An npm package holding the executable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpmSource {
    /// Package name (`@foundry-rs/anvil-linux-amd64`).
    pub package: String,
    /// Package version; must equal the binary's version.
    pub version: String,
    /// Path of the executable inside the package (`bin/anvil`).
    pub path: String,
    /// The registry's Subresource Integrity string for the tarball
    /// (`sha512-…`), checked by the push before it records a checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
}

const ONE_ORIGIN: &str = "source must set exactly one of `npm` or `url`";

// Hand-written so the "exactly one" error carries this value's own path.
impl Serialize for ArtifactSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            ArtifactSource::Npm(n) => m.serialize_entry("npm", n)?,
            ArtifactSource::Url(u) => m.serialize_entry("url", u)?,
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for ArtifactSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ArtifactSource;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map with exactly one of `npm` or `url`")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ArtifactSource, A::Error> {
                let mut found = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value = match key.as_str() {
                        "npm" => ArtifactSource::Npm(map.next_value()?),
                        "url" => ArtifactSource::Url(map.next_value()?),
                        other => {
                            return Err(serde::de::Error::unknown_field(other, &["npm", "url"]))
                        }
                    };
                    if found.replace(value).is_some() {
                        return Err(serde::de::Error::custom(ONE_ORIGIN));
                    }
                }
                found.ok_or_else(|| serde::de::Error::custom(ONE_ORIGIN))
            }
        }
        d.deserialize_map(V)
    }
}

/// Where a fresh node gets its initial state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Mechanism used.
    pub kind: SnapshotKind,
    /// Endpoint (https) serving the snapshot or checkpoint.
    pub url: String,
    /// Notes for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Snapshot mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// A data-directory archive downloaded and unpacked before first start.
    Archive,
    /// Beacon-chain checkpoint sync from a trusted beacon API.
    CheckpointSync,
    /// CometBFT state sync through trusted RPC servers.
    StateSync,
}
