//! The declarative chains catalog (`chains/` in HoodCloud's layout).
//!
//! ```text
//! chains/{chain}/profile.yaml        node types, resources, providers, binaries, snapshot
//! chains/{chain}/runtime.yaml        adapter, ports, processes, health and sync (CEL)
//! chains/{chain}/observation.yaml    collectors and CEL policies (optional)
//! chains/recipes/{chain}/{node_type}.yaml
//! chains/upgrades/{chain}/{upgrade_id}.yaml
//! ```
//!
//! Chains are data, not code: adding one should not need a Rust change.
//! Loading is strict (`deny_unknown_fields` everywhere) and linting collects
//! every problem with the file and dotted field it concerns, because catalog
//! mistakes otherwise surface late, on a customer's node.
//!
//! Parsing is a pure function over `(path, contents)` pairs
//! ([`ChainCatalog::from_files`]); [`ChainCatalog::load_dir`] reads a
//! directory and [`ChainCatalog::builtin`] uses the copy of the repository's
//! `chains/` embedded at compile time, so both share every check.

mod builtin;
mod catalog;
mod cel;
mod fs;
mod lint;
mod observation;
mod parse;
pub mod policy;
mod profile;
mod recipe;
mod runtime;
mod template;
mod upgrade;
mod validate;

use std::path::Path;

pub use catalog::{BinarySummary, Chain, ChainCatalog, ChainSummary, NodeTypeSummary};
pub use cel::KNOWN_FUNCTIONS;
pub use lint::{LintProblem, LintReport};
pub use observation::{
    Collector, HealthOutcome, Observation, Policy, Severity, RESERVED_POLICY_VARIABLES,
};
pub use profile::{
    ArtifactSource, Binary, ChainFamily, NodeType, NpmSource, Profile, Resources, Snapshot,
    SnapshotKind, Verify, PLACEHOLDER_SHA256,
};
pub use recipe::{
    Decompress, DownloadStep, FileTemplate, KeyKind, KeyMaterial, Recipe, RunStep, Step,
    StepAction, TomlSetStep,
};
pub use runtime::{
    Exposure, Health, HttpGet, JsonRpcCall, LagThresholds, Port, Process, PrometheusScrape,
    Protocol, Reference, RpcAuth, Runtime, RuntimeAdapter, Source, StopSignal, SyncNetwork,
    SyncSpec, SyncUnit, SystemStats,
};
pub use template::{render, BUILTIN_VARIABLES, PATH_ROOTS};
pub use upgrade::{
    ActionKind, Compensation, RolloutPolicy, StateCompatibility, Upgrade, UpgradeAction,
    UpgradeCheck, UpgradeTarget,
};
pub use validate::is_sha256;

/// Shorthand for [`ChainCatalog::lint_dir`].
pub fn lint_dir(root: &Path) -> LintReport {
    ChainCatalog::lint_dir(root)
}

/// Shorthand for [`ChainCatalog::load_dir`].
pub fn load_dir(root: &Path) -> Result<ChainCatalog, LintReport> {
    ChainCatalog::load_dir(root)
}

/// Shorthand for [`ChainCatalog::builtin`].
pub fn builtin() -> Result<ChainCatalog, LintReport> {
    ChainCatalog::builtin()
}

/// Relative paths of the embedded catalog files, for tooling that wants to
/// write the shipped catalog out (`hood chain export`).
pub fn builtin_files() -> &'static [(&'static str, &'static str)] {
    builtin::FILES
}
