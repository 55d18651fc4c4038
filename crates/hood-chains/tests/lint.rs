//! Broken catalogs: each mistake yields a problem naming the exact file and
//! field, and one lint run reports all of them.
//!
//! Every case starts from a copy of the shipped catalog written to a temp
//! directory, applies one edit, and lints the directory.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

use std::collections::BTreeMap;

use hood_chains::{builtin_files, ChainCatalog, LintProblem, LintReport};
use tempfile::TempDir;

type Files = BTreeMap<String, String>;

fn shipped() -> Files {
    builtin_files()
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect()
}

/// Replaces exactly one occurrence, so a test cannot silently edit nothing.
fn edit(files: &mut Files, file: &str, from: &str, to: &str) {
    let text = files
        .get_mut(file)
        .unwrap_or_else(|| panic!("no file {file}"));
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` must occur exactly once in {file}"
    );
    *text = text.replacen(from, to, 1);
}

fn write(files: &Files) -> TempDir {
    let dir = TempDir::new().expect("tempdir");
    for (path, contents) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, contents).expect("write");
    }
    // Non-YAML files are ignored, as the shipped README is.
    std::fs::write(dir.path().join("README.md"), "# notes\n").expect("readme");
    dir
}

fn lint(files: &Files) -> LintReport {
    let dir = write(files);
    ChainCatalog::lint_dir(dir.path())
}

fn find<'a>(report: &'a LintReport, file: &str, field: &str) -> &'a LintProblem {
    report
        .problems
        .iter()
        .find(|p| p.file == file && p.field == field)
        .unwrap_or_else(|| panic!("no problem for {file} / {field}; got:\n{report}"))
}

struct Case {
    name: &'static str,
    apply: fn(&mut Files),
    file: &'static str,
    field: &'static str,
    message: &'static str,
}

const ANVIL_PROFILE: &str = "ethereum-anvil/profile.yaml";
const ANVIL_RUNTIME: &str = "ethereum-anvil/runtime.yaml";
const ANVIL_OBS: &str = "ethereum-anvil/observation.yaml";
const ANVIL_UPGRADE: &str = "upgrades/ethereum-anvil/anvil-1.5.1-to-1.7.1.yaml";
const ANVIL_DOWNGRADE: &str = "upgrades/ethereum-anvil/anvil-1.7.1-to-1.5.1.yaml";
const ETH_PROFILE: &str = "ethereum/profile.yaml";
const PLACEHOLDER: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "unknown field is named",
            apply: |f| edit(f, ANVIL_PROFILE, "memory_gb: 1\n", "memory_gbb: 1\n"),
            file: ANVIL_PROFILE,
            field: "node_types.dev.resources.memory_gbb",
            message: "unknown field `memory_gbb`",
        },
        Case {
            name: "unknown top-level field",
            apply: |f| {
                edit(
                    f,
                    ANVIL_PROFILE,
                    "family: evm\n",
                    "family: evm\nfamilly: evm\n",
                )
            },
            file: ANVIL_PROFILE,
            field: "familly",
            message: "unknown field",
        },
        Case {
            name: "bad sha256 (uppercase)",
            apply: |f| {
                let upper = PLACEHOLDER.to_uppercase();
                let text = f.get_mut(ETH_PROFILE).unwrap();
                *text = text.replacen(PLACEHOLDER, &upper, 1);
            },
            file: ETH_PROFILE,
            field: "binaries[0].sha256",
            message: "64 lowercase hex",
        },
        Case {
            name: "bad sha256 (short)",
            apply: |f| {
                edit(
                    f,
                    "bitcoin/profile.yaml",
                    "sha256: 6aa7bb4feb699c4c6262dd23e4004191f6df7f373b5d5978b5bcdd4bb72f75d8",
                    "sha256: 6aa7bb4f",
                )
            },
            file: "bitcoin/profile.yaml",
            field: "binaries[0].sha256",
            message: "64 lowercase hex",
        },
        Case {
            name: "pinned binary without sha256",
            apply: |f| {
                edit(
                    f,
                    "bitcoin/profile.yaml",
                    "    sha256: 6aa7bb4feb699c4c6262dd23e4004191f6df7f373b5d5978b5bcdd4bb72f75d8\n",
                    "",
                )
            },
            file: "bitcoin/profile.yaml",
            field: "binaries[0].sha256",
            message: "required unless `verify: at_push`",
        },
        Case {
            name: "at_push with a checksum",
            apply: |f| {
                edit(
                    f,
                    ANVIL_PROFILE,
                    "sha256: null",
                    "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                )
            },
            file: ANVIL_PROFILE,
            field: "binaries[0].sha256",
            message: "must be null",
        },
        Case {
            name: "at_push without a source",
            apply: |f| {
                let text = f.get_mut(ANVIL_PROFILE).unwrap();
                let cut = text.find("    source:").expect("source");
                text.truncate(cut);
            },
            file: ANVIL_PROFILE,
            field: "binaries[0].source",
            message: "needs a `source`",
        },
        Case {
            name: "npm version differs from the binary version",
            apply: |f| {
                edit(
                    f,
                    ANVIL_PROFILE,
                    "        version: \"1.5.1\"",
                    "        version: \"1.4.4\"",
                )
            },
            file: ANVIL_PROFILE,
            field: "binaries[0].source.npm.version",
            message: "differs",
        },
        Case {
            name: "empty version",
            apply: |f| edit(f, ETH_PROFILE, "version: \"8.0.1\"", "version: \"\""),
            file: ETH_PROFILE,
            field: "binaries[1].version",
            message: "must not be empty",
        },
        Case {
            name: "zero resources",
            apply: |f| edit(f, ETH_PROFILE, "cpu: 16", "cpu: 0"),
            file: ETH_PROFILE,
            field: "node_types.archive.resources.cpu",
            message: "greater than 0",
        },
        Case {
            name: "missing node type recipe",
            apply: |f| {
                f.remove("recipes/ethereum/archive.yaml");
            },
            file: ETH_PROFILE,
            field: "node_types.archive",
            message: "has no recipe",
        },
        Case {
            name: "recipe for an unknown node type",
            apply: |f| {
                let r = f["recipes/ethereum/full.yaml"].clone();
                f.insert("recipes/ethereum/validator.yaml".into(), r);
            },
            file: "recipes/ethereum/validator.yaml",
            field: "",
            message: "unknown node type `validator`",
        },
        Case {
            name: "port 0",
            apply: |f| edit(f, ANVIL_RUNTIME, "port: 8545", "port: 0"),
            file: ANVIL_RUNTIME,
            field: "ports.rpc.port",
            message: "out of range",
        },
        Case {
            name: "port above 65535",
            apply: |f| edit(f, ANVIL_RUNTIME, "port: 8545", "port: 70000"),
            file: ANVIL_RUNTIME,
            field: "ports.rpc.port",
            message: "port 70000 is out of range 1..=65535",
        },
        Case {
            name: "duplicate port",
            apply: |f| edit(f, "solana/runtime.yaml", "port: 8900", "port: 8899"),
            file: "solana/runtime.yaml",
            field: "ports.ws.port",
            message: "clashes with port `rpc`",
        },
        Case {
            name: "port inside another port's range",
            apply: |f| edit(f, "solana/runtime.yaml", "port: 8001", "port: 8010"),
            file: "solana/runtime.yaml",
            field: "ports.gossip.port",
            message: "clashes with port `dynamic`",
        },
        Case {
            name: "profile name does not match its directory",
            apply: |f| edit(f, "bitcoin/profile.yaml", "name: bitcoin\n", "name: btc\n"),
            file: "bitcoin/profile.yaml",
            field: "name",
            message: "does not match its directory `bitcoin`",
        },
        Case {
            name: "template names an undeclared port",
            apply: |f| edit(f, ANVIL_RUNTIME, "\"{{rpc_port}}\"", "\"{{rcp_port}}\""),
            file: ANVIL_RUNTIME,
            field: "processes[0].args[3]",
            message: "{{rcp_port}}",
        },
        Case {
            name: "probe on an undeclared port",
            apply: |f| {
                edit(
                    f,
                    ANVIL_RUNTIME,
                    "client_version:\n      jsonrpc: { port: rpc,",
                    "client_version:\n      jsonrpc: { port: http,",
                )
            },
            file: ANVIL_RUNTIME,
            field: "health.probes.client_version.jsonrpc.port",
            message: "port `http` is not declared",
        },
        Case {
            name: "health expression uses an unknown probe",
            apply: |f| {
                edit(
                    f,
                    ANVIL_RUNTIME,
                    "healthy: has(client_version.result)",
                    "healthy: has(version.result)",
                )
            },
            file: ANVIL_RUNTIME,
            field: "health.healthy",
            message: "unknown probe `version`",
        },
        Case {
            name: "policy refers to an unknown collector",
            apply: |f| {
                edit(
                    f,
                    ANVIL_OBS,
                    "expression: system.disk_free_percent",
                    "expression: sys.disk_free_percent",
                )
            },
            file: ANVIL_OBS,
            field: "policies[3].expression",
            message: "unknown collector `sys`",
        },
        Case {
            name: "policy calls an unknown function",
            apply: |f| {
                edit(
                    f,
                    ANVIL_OBS,
                    "hex_to_int(chain_id.result)",
                    "hexToInt(chain_id.result)",
                )
            },
            file: ANVIL_OBS,
            field: "policies[1].expression",
            message: "unknown function `hexToInt`",
        },
        Case {
            name: "empty policy expression",
            apply: |f| {
                edit(
                    f,
                    ANVIL_OBS,
                    "expression: sync.head_age_s > 60",
                    "expression: \"\"",
                )
            },
            file: ANVIL_OBS,
            field: "policies[0].expression",
            message: "empty",
        },
        Case {
            name: "upgrade for an unknown binary",
            apply: |f| edit(f, ANVIL_UPGRADE, "binary: anvil", "binary: forge"),
            file: ANVIL_UPGRADE,
            field: "binary",
            message: "`forge` is not declared",
        },
        Case {
            name: "upgrade for an unknown chain",
            apply: |f| {
                let u = f[ANVIL_UPGRADE].clone();
                f.insert("upgrades/polygon/v1.yaml".into(), u);
            },
            file: "upgrades/polygon/v1.yaml",
            field: "",
            message: "chain `polygon` does not exist",
        },
        Case {
            name: "swap_binary without its compensation",
            apply: |f| {
                edit(
                    f,
                    ANVIL_UPGRADE,
                    "  - action: swap_binary\n    compensation: restore_binary\n",
                    "  - action: swap_binary\n",
                )
            },
            file: ANVIL_UPGRADE,
            field: "actions[2].compensation",
            message: "needs compensation `restore_binary`",
        },
        Case {
            name: "start before swap_binary",
            apply: |f| {
                edit(
                    f,
                    ANVIL_UPGRADE,
                    "  - action: stop\n    timeout_s: 30\n    compensation: start\n",
                    "",
                )
            },
            file: ANVIL_UPGRADE,
            field: "actions[1]",
            message: "must come after a `stop`",
        },
        Case {
            name: "missing required file",
            apply: |f| {
                f.remove("bitcoin/runtime.yaml");
            },
            file: "bitcoin/runtime.yaml",
            field: "",
            message: "missing required file",
        },
        Case {
            name: "YAML syntax error carries line and column",
            apply: |f| {
                edit(
                    f,
                    "cosmoshub/runtime.yaml",
                    "adapter: systemd\n",
                    "adapter: systemd: x\n",
                )
            },
            file: "cosmoshub/runtime.yaml",
            field: "",
            message: "line 1 column",
        },
        Case {
            name: "duplicate mapping key",
            apply: |f| {
                edit(
                    f,
                    "bitcoin/runtime.yaml",
                    "  p2p:\n    port: 8333\n",
                    "  p2p:\n    port: 8333\n  p2p:\n    port: 18333\n",
                )
            },
            file: "bitcoin/runtime.yaml",
            field: "ports.p2p",
            message: "duplicate entry",
        },
        Case {
            name: "wrong scalar type names the field",
            apply: |f| edit(f, ANVIL_RUNTIME, "interval_s: 10", "interval_s: often"),
            file: ANVIL_RUNTIME,
            field: "health.interval_s",
            message: "invalid type",
        },
        Case {
            name: "source with two kinds",
            apply: |f| {
                edit(
                    f,
                    ANVIL_OBS,
                    "      system: {}\n",
                    "      system: {}\n      prometheus: { port: rpc }\n",
                )
            },
            file: ANVIL_OBS,
            field: "collectors[3].source",
            message: "exactly one of",
        },
        Case {
            name: "recipe writes outside the node directories",
            apply: |f| {
                edit(
                    f,
                    "recipes/bitcoin/full.yaml",
                    "path: \"{{config_dir}}/bitcoin.conf\"",
                    "path: /etc/bitcoin/bitcoin.conf",
                )
            },
            file: "recipes/bitcoin/full.yaml",
            field: "files[0].path",
            message: "must start with one of",
        },
        Case {
            name: "recipe extra args for an unknown process",
            apply: |f| edit(f, "recipes/ethereum/full.yaml", "  reth:\n", "  geth:\n"),
            file: "recipes/ethereum/full.yaml",
            field: "extra_args.geth",
            message: "process `geth` is not declared",
        },
        Case {
            name: "step with two actions",
            apply: |f| {
                edit(
                    f,
                    "recipes/cosmoshub/full.yaml",
                    "  - name: metrics\n",
                    "  - name: metrics\n    run: { binary: gaiad }\n",
                )
            },
            file: "recipes/cosmoshub/full.yaml",
            field: "steps[2]",
            message: "exactly one of `run`, `download` or `toml_set`",
        },
        Case {
            name: "step runs an undeclared binary",
            apply: |f| {
                edit(
                    f,
                    "recipes/cosmoshub/full.yaml",
                    "binary: gaiad",
                    "binary: cosmovisor",
                )
            },
            file: "recipes/cosmoshub/full.yaml",
            field: "steps[0].run.binary",
            message: "`cosmovisor` is not declared",
        },
        Case {
            name: "reference probe names a port",
            apply: |f| {
                edit(
                    f,
                    "ethereum/runtime.yaml",
                    "jsonrpc: { method: eth_blockNumber }",
                    "jsonrpc: { port: rpc, method: eth_blockNumber }",
                )
            },
            file: "ethereum/runtime.yaml",
            field: "sync.reference.probes.ref_head.jsonrpc.port",
            message: "reference probes name no port",
        },
        Case {
            name: "lag thresholds out of order",
            apply: |f| edit(f, "bitcoin/runtime.yaml", "critical: 6", "critical: 2"),
            file: "bitcoin/runtime.yaml",
            field: "sync.lag.critical",
            message: "must be greater than lagging",
        },
        Case {
            name: "process on an action that does not take one",
            apply: |f| {
                edit(
                    f,
                    "upgrades/ethereum/reth-1.9.1-to-1.9.3.yaml",
                    "  - action: wait_healthy\n",
                    "  - action: wait_healthy\n    process: reth\n",
                )
            },
            file: "upgrades/ethereum/reth-1.9.1-to-1.9.3.yaml",
            field: "actions[4].process",
            message: "only valid for `stop`, `start` and `migrate_config`",
        },
        Case {
            name: "approval without a canary",
            apply: |f| {
                edit(
                    f,
                    "upgrades/ethereum/reth-1.9.1-to-1.9.3.yaml",
                    "  canary: 1\n",
                    "",
                )
            },
            file: "upgrades/ethereum/reth-1.9.1-to-1.9.3.yaml",
            field: "rollout.require_approval",
            message: "a canary is required",
        },
        Case {
            name: "upgrade to the same version",
            apply: |f| {
                edit(
                    f,
                    ANVIL_UPGRADE,
                    "from_version: \"1.5.1\"",
                    "from_version: \"1.7.1\"",
                )
            },
            file: ANVIL_UPGRADE,
            field: "to.version",
            message: "equals from_version",
        },
        Case {
            name: "forward_only without a snapshot",
            apply: |f| {
                edit(
                    f,
                    ANVIL_DOWNGRADE,
                    "  - action: snapshot_data\n    timeout_s: 120\n    compensation: restore_snapshot\n",
                    "",
                )
            },
            file: ANVIL_DOWNGRADE,
            field: "state",
            message: "needs a `snapshot_data` action",
        },
        Case {
            name: "snapshot after the start",
            apply: |f| {
                edit(
                    f,
                    ANVIL_DOWNGRADE,
                    "  - action: wait_healthy\n",
                    "  - action: snapshot_data\n    compensation: restore_snapshot\n  - action: wait_healthy\n",
                )
            },
            file: ANVIL_DOWNGRADE,
            field: "actions[5]",
            message: "before its first `start`",
        },
        Case {
            name: "snapshot without its compensation",
            apply: |f| {
                edit(
                    f,
                    ANVIL_DOWNGRADE,
                    "    compensation: restore_snapshot\n",
                    "",
                )
            },
            file: ANVIL_DOWNGRADE,
            field: "actions[2].compensation",
            message: "needs compensation `restore_snapshot`",
        },
        Case {
            name: "state compatibility misspelled",
            apply: |f| edit(f, ANVIL_UPGRADE, "state: compatible", "state: backwards"),
            file: ANVIL_UPGRADE,
            field: "state",
            message: "unknown variant `backwards`",
        },
        Case {
            name: "post-check over an unknown collector",
            apply: |f| {
                edit(
                    f,
                    ANVIL_UPGRADE,
                    "expression: hex_to_int(chain_id.result) == 31337",
                    "expression: hex_to_int(net_version.result) == 31337",
                )
            },
            file: ANVIL_UPGRADE,
            field: "post_checks[0].expression",
            message: "unknown collector `net_version`",
        },
        Case {
            name: "pre-check that does not parse",
            apply: |f| {
                edit(
                    f,
                    ANVIL_UPGRADE,
                    "expression: has(block_number.result)",
                    "expression: has(block_number.result",
                )
            },
            file: ANVIL_UPGRADE,
            field: "pre_checks[0].expression",
            message: "invalid CEL expression",
        },
        Case {
            name: "a check declared twice",
            apply: |f| {
                edit(
                    f,
                    ANVIL_UPGRADE,
                    "  - name: right_chain\n",
                    "  - name: mining\n",
                )
            },
            file: ANVIL_UPGRADE,
            field: "post_checks[1].name",
            message: "declared twice",
        },
        Case {
            name: "info policy changing application health",
            apply: |f| {
                edit(
                    f,
                    "bitcoin/observation.yaml",
                    "    severity: info\n",
                    "    severity: info\n    application_health: degraded\n",
                )
            },
            file: "bitcoin/observation.yaml",
            field: "policies[3].application_health",
            message: "`info` policy cannot change",
        },
        Case {
            name: "unknown enum variant",
            apply: |f| edit(f, ANVIL_RUNTIME, "adapter: process", "adapter: kubernetes"),
            file: ANVIL_RUNTIME,
            field: "adapter",
            message: "unknown variant `kubernetes`",
        },
        Case {
            name: "collector takes a reserved name",
            apply: |f| edit(f, ANVIL_OBS, "- name: gas_price", "- name: sync"),
            file: ANVIL_OBS,
            field: "collectors[2].name",
            message: "reserved",
        },
        Case {
            name: "yml extension",
            apply: |f| {
                let r = f.remove("recipes/bitcoin/full.yaml").unwrap();
                f.insert("recipes/bitcoin/full.yml".into(), r);
            },
            file: "recipes/bitcoin/full.yml",
            field: "",
            message: ".yaml",
        },
    ]
}

#[test]
fn each_broken_catalog_names_the_file_and_field() {
    let mut failures = Vec::new();
    for case in cases() {
        let mut files = shipped();
        (case.apply)(&mut files);
        let report = lint(&files);
        match report
            .problems
            .iter()
            .find(|p| p.file == case.file && p.field == case.field)
        {
            Some(p) if p.message.contains(case.message) => {}
            Some(p) => failures.push(format!(
                "{}: message `{}` lacks `{}`",
                case.name, p.message, case.message
            )),
            None => failures.push(format!(
                "{}: no problem at {} / {}; got:\n{report}",
                case.name, case.file, case.field
            )),
        }
        // A broken catalog never loads.
        let dir = write(&files);
        assert!(ChainCatalog::load_dir(dir.path()).is_err(), "{}", case.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn lint_collects_every_problem_in_one_run() {
    let mut files = shipped();
    edit(
        &mut files,
        ANVIL_PROFILE,
        "memory_gb: 1\n",
        "memory_gbb: 1\n",
    );
    edit(&mut files, ANVIL_RUNTIME, "port: 8545", "port: 0");
    edit(
        &mut files,
        "bitcoin/profile.yaml",
        "name: bitcoin\n",
        "name: btc\n",
    );
    edit(&mut files, ETH_PROFILE, "cpu: 16", "cpu: 0");
    edit(&mut files, ETH_PROFILE, "disk_gb: 2000", "disk_gb: 0");
    files.remove("recipes/solana/rpc.yaml");
    edit(
        &mut files,
        "cosmoshub/runtime.yaml",
        "adapter: systemd\n",
        "adapter: systemd: x\n",
    );
    let report = lint(&files);

    find(
        &report,
        ANVIL_PROFILE,
        "node_types.dev.resources.memory_gbb",
    );
    find(&report, ANVIL_RUNTIME, "ports.rpc.port");
    find(&report, "bitcoin/profile.yaml", "name");
    find(&report, ETH_PROFILE, "node_types.archive.resources.cpu");
    find(&report, ETH_PROFILE, "node_types.full.resources.disk_gb");
    find(&report, "solana/profile.yaml", "node_types.rpc");
    find(&report, "cosmoshub/runtime.yaml", "");
    assert!(report.len() >= 7, "{report}");

    // Display: one `file: field: message` line per problem.
    let text = report.to_string();
    assert_eq!(text.lines().count(), report.len());
    assert!(text.contains(
        "ethereum/profile.yaml: node_types.archive.resources.cpu: must be greater than 0"
    ));
    let err: &dyn std::error::Error = &report;
    assert!(!err.to_string().is_empty());
}

#[test]
fn from_files_is_pure_and_rejects_stray_files() {
    let files = shipped();
    let mut pairs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let catalog = ChainCatalog::from_files(pairs.iter().copied()).expect("shipped files load");
    assert_eq!(catalog.len(), 5);

    pairs.push(("ethereum/notes.yaml", "a: 1\n"));
    pairs.push(("Ethereum/profile.yaml", "name: x\n"));
    pairs.push(("README.md", "ignored"));
    let report = ChainCatalog::from_files(pairs.iter().copied()).expect_err("stray files");
    find(&report, "ethereum/notes.yaml", "");
    find(&report, "Ethereum/profile.yaml", "");
    assert_eq!(report.len(), 2, "{report}");
}

#[test]
fn missing_directory_is_a_problem_not_a_panic() {
    let dir = TempDir::new().expect("tempdir");
    let report = ChainCatalog::lint_dir(&dir.path().join("nope"));
    assert_eq!(report.len(), 1);
    assert!(report.problems[0]
        .message
        .contains("cannot read chains directory"));
    let empty = ChainCatalog::load_dir(dir.path()).expect("an empty directory is an empty catalog");
    assert!(empty.is_empty());
}

#[test]
fn problem_display_omits_an_empty_field() {
    let p = LintProblem::new("a/profile.yaml", "", "file is empty");
    assert_eq!(p.to_string(), "a/profile.yaml: file is empty");
    let p = LintProblem::new("a/profile.yaml", "name", "bad");
    assert_eq!(p.to_string(), "a/profile.yaml: name: bad");
}
