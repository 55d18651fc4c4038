//! The shipped catalog: it loads without problems, the embedded copy equals
//! the directory, and each chain carries the real facts its nodes rely on.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hood_chains::{
    builtin_files, is_sha256, ArtifactSource, ChainCatalog, ChainFamily, KeyKind, Observation,
    Profile, Recipe, Runtime, RuntimeAdapter, Source, Upgrade, Verify, PLACEHOLDER_SHA256,
};

fn chains_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../chains")
}

fn builtin() -> ChainCatalog {
    match ChainCatalog::builtin() {
        Ok(c) => c,
        Err(report) => panic!("builtin catalog has problems:\n{report}"),
    }
}

fn yaml_files_on_disk(dir: &Path, rel: &str, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("read chains dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel_path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if entry.file_type().expect("file type").is_dir() {
            yaml_files_on_disk(&entry.path(), &rel_path, out);
        } else if name.ends_with(".yaml") {
            out.insert(
                rel_path,
                std::fs::read_to_string(entry.path()).expect("read yaml"),
            );
        }
    }
}

#[test]
fn builtin_loads_with_zero_problems_and_five_chains() {
    let report = ChainCatalog::lint_files(builtin_files().iter().copied());
    assert!(report.is_empty(), "{report}");
    let catalog = builtin();
    let names: Vec<&str> = catalog.names().collect();
    assert_eq!(
        names,
        [
            "bitcoin",
            "cosmoshub",
            "ethereum",
            "ethereum-anvil",
            "solana"
        ]
    );
    let iterated: Vec<&str> = catalog.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(iterated, names, "iter() is in name order");
    assert_eq!(catalog.len(), 5);
    assert!(catalog.get("ethereum").is_some());
    assert!(catalog.get("dogecoin").is_none());
}

#[test]
fn load_dir_of_the_repository_equals_builtin() {
    let from_disk = match ChainCatalog::load_dir(&chains_dir()) {
        Ok(c) => c,
        Err(report) => panic!("chains/ has problems:\n{report}"),
    };
    let embedded = builtin();
    assert_eq!(
        from_disk.names().collect::<Vec<_>>(),
        embedded.names().collect::<Vec<_>>()
    );
    assert_eq!(from_disk.summaries(), embedded.summaries());
    assert_eq!(from_disk, embedded);
    assert!(hood_chains::lint_dir(&chains_dir()).is_empty());
}

#[test]
fn embedded_table_lists_exactly_the_yaml_files_in_chains_dir() {
    let mut on_disk = BTreeMap::new();
    yaml_files_on_disk(&chains_dir(), "", &mut on_disk);
    let embedded: BTreeMap<String, String> = builtin_files()
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
    assert_eq!(
        on_disk.keys().collect::<Vec<_>>(),
        embedded.keys().collect::<Vec<_>>(),
        "add new chains/ files to crates/hood-chains/src/builtin.rs"
    );
    assert_eq!(on_disk, embedded);
}

#[test]
fn every_node_type_has_a_recipe_and_summaries_are_complete() {
    for chain in builtin().iter() {
        for nt in chain.profile.node_types.keys() {
            assert!(chain.recipe(nt).is_some(), "{}: {nt}", chain.name);
        }
        let s = chain.summary();
        assert_eq!(s.name, chain.name);
        assert!(s.rpc_port.is_some());
        assert!(!s.sync_method.is_empty());
        assert!(!s.binaries.is_empty());
        assert_eq!(s.node_types.len(), chain.profile.node_types.len());
        // The summary is the API payload: it must survive JSON both ways.
        let json = serde_json::to_string(&s).expect("serialize summary");
        let back: hood_chains::ChainSummary = serde_json::from_str(&json).expect("parse summary");
        assert_eq!(back, s);
    }
}

#[test]
fn models_round_trip_through_yaml() {
    // Serialize must produce what Deserialize accepts (the enums written as
    // one-key maps go through a representation type both ways).
    for chain in builtin().iter() {
        let y = serde_yaml::to_string(&chain.profile).expect("profile");
        assert_eq!(
            serde_yaml::from_str::<Profile>(&y).expect("profile back"),
            chain.profile
        );
        let y = serde_yaml::to_string(&chain.runtime).expect("runtime");
        assert_eq!(
            serde_yaml::from_str::<Runtime>(&y).expect("runtime back"),
            chain.runtime
        );
        let y = serde_yaml::to_string(&chain.observation).expect("observation");
        assert_eq!(
            serde_yaml::from_str::<Observation>(&y).expect("observation back"),
            chain.observation
        );
        for r in chain.recipes.values() {
            let y = serde_yaml::to_string(r).expect("recipe");
            assert_eq!(&serde_yaml::from_str::<Recipe>(&y).expect("recipe back"), r);
        }
        for u in chain.upgrades.values() {
            let y = serde_yaml::to_string(u).expect("upgrade");
            assert_eq!(
                &serde_yaml::from_str::<Upgrade>(&y).expect("upgrade back"),
                u
            );
        }
    }
}

fn ports(rt: &Runtime) -> Vec<u16> {
    let mut v: Vec<u16> = rt.ports.values().map(|p| p.port).collect();
    v.sort_unstable();
    v
}

fn jsonrpc_methods(probes: &BTreeMap<String, Source>) -> Vec<String> {
    probes
        .values()
        .filter_map(|s| match s {
            Source::JsonRpc(c) => Some(c.method.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn anvil_runs_the_real_npm_binary_as_a_process() {
    let catalog = builtin();
    let anvil = catalog.get("ethereum-anvil").expect("anvil");
    assert_eq!(anvil.profile.family, ChainFamily::Evm);
    assert_eq!(anvil.profile.providers, ["local"]);
    assert_eq!(anvil.profile.default_node_type, "dev");
    let bin = anvil.profile.binary("anvil").expect("anvil binary");
    assert_eq!(bin.version, "1.5.1");
    assert_eq!(bin.verify, Verify::AtPush);
    assert_eq!(bin.sha256, None);
    match &bin.source {
        Some(ArtifactSource::Npm(n)) => {
            assert_eq!(n.package, "@foundry-rs/anvil-linux-amd64");
            assert_eq!(n.version, "1.5.1");
            assert_eq!(n.path, "bin/anvil");
        }
        other => panic!("unexpected source {other:?}"),
    }
    assert_eq!(anvil.runtime.adapter, RuntimeAdapter::Process);
    assert_eq!(anvil.runtime.ports["rpc"].port, 8545);
    let args = &anvil.runtime.processes[0].args;
    let joined = args.join(" ");
    assert!(joined
        .contains("--host {{host_address}} --port {{rpc_port}} --block-time 1 --chain-id 31337"));
    let mut methods = jsonrpc_methods(&anvil.runtime.sync.probes);
    methods.sort();
    assert_eq!(methods, ["eth_blockNumber", "eth_syncing"]);

    let up = anvil
        .upgrade("anvil-1.5.1-to-1.7.1")
        .expect("anvil upgrade");
    assert_eq!(up.binary, "anvil");
    assert_eq!(up.from_version, "1.5.1");
    assert_eq!(up.to.version, "1.7.1");
    assert_eq!(up.to.verify, Verify::AtPush);
    assert_eq!(up.state, hood_chains::StateCompatibility::Compatible);
    assert!(!up.pre_checks.is_empty() && !up.post_checks.is_empty());
    // And back, data-aware: a snapshot before the first start.
    let down = anvil
        .upgrade("anvil-1.7.1-to-1.5.1")
        .expect("anvil downgrade");
    assert_eq!(
        (down.from_version.as_str(), down.to.version.as_str()),
        ("1.7.1", "1.5.1")
    );
    assert_eq!(down.state, hood_chains::StateCompatibility::ForwardOnly);
    let kinds: Vec<_> = down.actions.iter().map(|a| a.action).collect();
    let snapshot = kinds
        .iter()
        .position(|k| *k == hood_chains::ActionKind::SnapshotData)
        .expect("a snapshot");
    let start = kinds
        .iter()
        .position(|k| *k == hood_chains::ActionKind::Start)
        .expect("a start");
    assert!(snapshot < start);
    assert_eq!(
        anvil.summary().upgrades,
        ["anvil-1.5.1-to-1.7.1", "anvil-1.7.1-to-1.5.1"]
    );
}

#[test]
fn ethereum_is_reth_plus_lighthouse_with_a_jwt_secret() {
    let catalog = builtin();
    let eth = catalog.get("ethereum").expect("ethereum");
    let names: Vec<&str> = eth
        .profile
        .binaries
        .iter()
        .map(|b| b.name.as_str())
        .collect();
    assert_eq!(names, ["reth", "lighthouse"]);
    assert_eq!(
        eth.profile.node_types.keys().collect::<Vec<_>>(),
        ["archive", "full"]
    );
    let p = ports(&eth.runtime);
    for want in [8545, 8546, 30303, 8551, 9000, 5052] {
        assert!(p.contains(&want), "missing port {want}");
    }
    for nt in ["full", "archive"] {
        let r = eth.recipe(nt).expect("recipe");
        assert_eq!(r.key_material[0].kind, KeyKind::JwtSecret);
        assert_eq!(r.key_material[0].path, "{{secrets_dir}}/jwt.hex");
    }
    assert!(eth.recipe("full").expect("full").extra_args["reth"].contains(&"--full".to_string()));
    assert!(jsonrpc_methods(&eth.runtime.sync.probes).contains(&"eth_syncing".to_string()));
    assert!(eth.runtime.sync.reference.is_some());
    let up = eth.upgrade("reth-1.9.1-to-1.9.3").expect("reth upgrade");
    assert_eq!(
        up.to.version,
        eth.profile.binary("reth").expect("reth").version
    );
    // Shipped placeholders are the documented, fail-closed value.
    assert!(eth
        .profile
        .binaries
        .iter()
        .all(|b| b.has_placeholder_sha256()));
}

#[test]
fn solana_cosmos_and_bitcoin_use_their_own_sync_signals() {
    let catalog = builtin();

    let sol = catalog.get("solana").expect("solana");
    let p = ports(&sol.runtime);
    for want in [8899, 8900, 8001] {
        assert!(p.contains(&want), "solana port {want}");
    }
    assert!(jsonrpc_methods(&sol.runtime.sync.probes).contains(&"getHealth".to_string()));
    assert!(sol.runtime.processes[0]
        .args
        .contains(&"--no-voting".to_string()));
    assert_eq!(sol.runtime.sync.lag.lagging, 150);

    let atom = catalog.get("cosmoshub").expect("cosmoshub");
    let p = ports(&atom.runtime);
    for want in [26657, 1317, 9090, 26656] {
        assert!(p.contains(&want), "cosmos port {want}");
    }
    assert!(atom.runtime.sync.synced.contains("catching_up"));
    assert_eq!(atom.profile.chain_id.as_deref(), Some("cosmoshub-4"));

    let btc = catalog.get("bitcoin").expect("bitcoin");
    assert_eq!(ports(&btc.runtime), [8332, 8333]);
    assert!(btc.runtime.sync.synced.contains("initialblockdownload"));
    assert_eq!(
        btc.runtime.sync.target.as_deref(),
        Some("chain.result.headers")
    );
    let bitcoind = btc.profile.binary("bitcoind").expect("bitcoind");
    assert!(
        !bitcoind.has_placeholder_sha256(),
        "bitcoind pins the published checksum"
    );
    assert!(is_sha256(bitcoind.sha256.as_deref().unwrap_or_default()));
    assert!(is_sha256(PLACEHOLDER_SHA256));
}

#[test]
fn only_the_devnet_runs_a_network_of_its_own() {
    let catalog = builtin();
    for chain in catalog.iter() {
        let expected = if chain.profile.name == "ethereum-anvil" {
            hood_chains::SyncNetwork::Isolated
        } else {
            hood_chains::SyncNetwork::Shared
        };
        assert_eq!(
            chain.runtime.sync.network, expected,
            "{}",
            chain.profile.name
        );
    }
}
