//! The catalog: classifying files by path, parsing them, cross-checking a
//! chain's files, and the API summary. Everything here works on
//! `(relative path, contents)` pairs so the embedded catalog and an on-disk
//! directory go through exactly the same code.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::lint::{FileLint, LintReport};
use crate::observation::Observation;
use crate::parse::parse;
use crate::profile::{Binary, ChainFamily, Profile, Resources};
use crate::recipe::Recipe;
use crate::runtime::{Runtime, RuntimeAdapter};
use crate::upgrade::Upgrade;
use crate::validate;

/// One chain with all its files parsed and validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    /// Chain name (its directory).
    pub name: String,
    /// `{chain}/profile.yaml`.
    pub profile: Profile,
    /// `{chain}/runtime.yaml`.
    pub runtime: Runtime,
    /// `{chain}/observation.yaml`; empty when the file is absent.
    pub observation: Observation,
    /// `recipes/{chain}/{node_type}.yaml`, keyed by node type.
    pub recipes: BTreeMap<String, Recipe>,
    /// `upgrades/{chain}/{upgrade_id}.yaml`, keyed by upgrade id.
    pub upgrades: BTreeMap<String, Upgrade>,
}

/// A node type as listed by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTypeSummary {
    /// Node type name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Minimum host size.
    pub resources: Resources,
}

/// A binary as listed by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinarySummary {
    /// Binary name.
    pub name: String,
    /// Version new nodes get.
    pub version: String,
}

/// The flat view of a chain served by `GET /api/v1/chains`: what a customer
/// or operator needs to choose, without recipes' and probes' internals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSummary {
    /// Chain name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Protocol family.
    pub family: ChainFamily,
    /// Network (`mainnet`, `devnet`).
    pub network: String,
    /// Protocol chain id, where there is one.
    pub chain_id: Option<String>,
    /// Node type used when none is requested.
    pub default_node_type: String,
    /// Orderable node types, by name.
    pub node_types: Vec<NodeTypeSummary>,
    /// Providers the chain can be placed on.
    pub providers: Vec<String>,
    /// Binaries and their versions.
    pub binaries: Vec<BinarySummary>,
    /// Runtime adapter.
    pub runtime_adapter: RuntimeAdapter,
    /// The node's JSON-RPC port (the runtime port named `rpc`).
    pub rpc_port: Option<u16>,
    /// How sync is judged, in one line.
    pub sync_method: String,
    /// Available upgrade ids.
    pub upgrades: Vec<String>,
}

impl Chain {
    /// The API summary of this chain.
    pub fn summary(&self) -> ChainSummary {
        let p = &self.profile;
        ChainSummary {
            name: self.name.clone(),
            display_name: p.display_name.clone(),
            family: p.family,
            network: p.network.clone(),
            chain_id: p.chain_id.clone(),
            default_node_type: p.default_node_type.clone(),
            node_types: p
                .node_types
                .iter()
                .map(|(name, nt)| NodeTypeSummary {
                    name: name.clone(),
                    description: nt.description.clone(),
                    resources: nt.resources,
                })
                .collect(),
            providers: p.providers.clone(),
            binaries: p
                .binaries
                .iter()
                .map(|b| BinarySummary {
                    name: b.name.clone(),
                    version: b.version.clone(),
                })
                .collect(),
            runtime_adapter: self.runtime.adapter,
            rpc_port: self.runtime.ports.get("rpc").map(|p| p.port),
            sync_method: self.runtime.sync.description.clone(),
            upgrades: self.upgrades.keys().cloned().collect(),
        }
    }

    /// The recipe for a node type.
    pub fn recipe(&self, node_type: &str) -> Option<&Recipe> {
        self.recipes.get(node_type)
    }

    /// An upgrade by id.
    pub fn upgrade(&self, id: &str) -> Option<&Upgrade> {
        self.upgrades.get(id)
    }

    /// The binaries the chain's processes run, each once, by artifact name
    /// then version: what must be in the artifact store before a node of
    /// this chain can start.
    pub fn required_binaries(&self) -> Vec<&Binary> {
        let mut out: Vec<&Binary> = self
            .runtime
            .processes
            .iter()
            .filter_map(|p| self.profile.binaries.iter().find(|b| b.name == p.binary))
            .collect();
        out.sort_by(|a, b| (&a.artifact, &a.version).cmp(&(&b.artifact, &b.version)));
        out.dedup_by(|a, b| a.artifact == b.artifact && a.version == b.version);
        out
    }
}

/// All chains Hood knows how to run, keyed and iterated by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainCatalog {
    chains: BTreeMap<String, Chain>,
}

impl ChainCatalog {
    /// Parses and validates `(path, contents)` pairs, paths relative to the
    /// chains root with `/` separators. Pure: no I/O. Non-YAML files (such
    /// as `README.md`) are ignored.
    pub fn from_files<'a, I>(files: I) -> Result<ChainCatalog, LintReport>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let (catalog, report) = build(files, LintReport::default());
        if report.is_empty() {
            Ok(catalog)
        } else {
            Err(report)
        }
    }

    /// Like [`ChainCatalog::from_files`] but returns every problem, empty
    /// when the files are valid.
    pub fn lint_files<'a, I>(files: I) -> LintReport
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        build(files, LintReport::default()).1
    }

    /// Loads a chains directory from disk (`hood chain lint`, operator
    /// overrides of the built-in catalog).
    pub fn load_dir(root: &Path) -> Result<ChainCatalog, LintReport> {
        let (files, report) = crate::fs::read_tree(root);
        let pairs = files.iter().map(|(p, c)| (p.as_str(), c.as_str()));
        let (catalog, report) = build(pairs, report);
        if report.is_empty() {
            Ok(catalog)
        } else {
            Err(report)
        }
    }

    /// Every problem in a chains directory on disk.
    pub fn lint_dir(root: &Path) -> LintReport {
        let (files, report) = crate::fs::read_tree(root);
        build(files.iter().map(|(p, c)| (p.as_str(), c.as_str())), report).1
    }

    /// The catalog shipped in `chains/`, embedded at compile time so the
    /// binary works from any directory.
    pub fn builtin() -> Result<ChainCatalog, LintReport> {
        ChainCatalog::from_files(crate::builtin::FILES.iter().copied())
    }

    /// A chain by name.
    pub fn get(&self, name: &str) -> Option<&Chain> {
        self.chains.get(name)
    }

    /// Chains in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Chain> {
        self.chains.values()
    }

    /// Chain names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.chains.keys().map(String::as_str)
    }

    /// Summaries of all chains in name order (`GET /api/v1/chains`).
    pub fn summaries(&self) -> Vec<ChainSummary> {
        self.iter().map(Chain::summary).collect()
    }

    /// Number of chains.
    pub fn len(&self) -> usize {
        self.chains.len()
    }

    /// True when there are no chains.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }
}

const PROFILE: &str = "profile.yaml";
const RUNTIME: &str = "runtime.yaml";
const OBSERVATION: &str = "observation.yaml";
const LAYOUT: &str = "expected {chain}/profile.yaml, {chain}/runtime.yaml, {chain}/observation.yaml, recipes/{chain}/{node_type}.yaml or upgrades/{chain}/{upgrade_id}.yaml";

/// The files of one chain, still unparsed.
#[derive(Default)]
struct RawChain<'a> {
    /// Whether `{chain}/` exists (any of its three files was seen).
    has_dir: bool,
    profile: Option<&'a str>,
    runtime: Option<&'a str>,
    observation: Option<&'a str>,
    /// node type → (path, contents)
    recipes: BTreeMap<String, (String, &'a str)>,
    /// upgrade id → (path, contents)
    upgrades: BTreeMap<String, (String, &'a str)>,
}

fn build<'a, I>(files: I, mut report: LintReport) -> (ChainCatalog, LintReport)
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut files: Vec<(&str, &str)> = files.into_iter().collect();
    files.sort_by(|a, b| a.0.cmp(b.0));
    let mut raw: BTreeMap<String, RawChain> = BTreeMap::new();
    let mut prev: Option<&str> = None;
    for (path, contents) in files {
        if prev == Some(path) {
            report.push(path, "", "the same file is given twice");
            continue;
        }
        prev = Some(path);
        classify(path, contents, &mut raw, &mut report);
    }

    let mut chains = BTreeMap::new();
    for (name, rc) in &raw {
        if let Some(chain) = build_chain(name, rc, &mut report) {
            chains.insert(name.clone(), chain);
        }
    }
    (ChainCatalog { chains }, report)
}

fn classify<'a>(
    path: &str,
    contents: &'a str,
    raw: &mut BTreeMap<String, RawChain<'a>>,
    report: &mut LintReport,
) {
    if path.ends_with(".yml") {
        report.push(path, "", "use the `.yaml` extension");
        return;
    }
    let Some(stem_path) = path.strip_suffix(".yaml") else {
        return; // README.md and friends
    };
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [chain, file] if [PROFILE, RUNTIME, OBSERVATION].contains(file) => {
            if *chain == "recipes" || *chain == "upgrades" {
                report.push(path, "", format!("unexpected file; {LAYOUT}"));
                return;
            }
            if !validate::is_chain_name(chain) {
                report.push(
                    path,
                    "",
                    format!("chain directory `{chain}` must be a DNS label: lowercase letters, digits and `-`"),
                );
                return;
            }
            let rc = raw.entry((*chain).to_string()).or_default();
            rc.has_dir = true;
            match *file {
                PROFILE => rc.profile = Some(contents),
                RUNTIME => rc.runtime = Some(contents),
                _ => rc.observation = Some(contents),
            }
        }
        [group @ ("recipes" | "upgrades"), chain, _] => {
            let stem = stem_path.rsplit('/').next().unwrap_or_default();
            if !validate::is_slug(stem) {
                report.push(
                    path,
                    "",
                    format!(
                        "file name `{stem}` must be lowercase letters, digits, `-`, `_` or `.`"
                    ),
                );
                return;
            }
            let rc = raw.entry((*chain).to_string()).or_default();
            let entry = (path.to_string(), contents);
            if *group == "recipes" {
                rc.recipes.insert(stem.to_string(), entry);
            } else {
                rc.upgrades.insert(stem.to_string(), entry);
            }
        }
        _ => report.push(path, "", format!("unexpected file; {LAYOUT}")),
    }
}

fn build_chain(name: &str, rc: &RawChain, report: &mut LintReport) -> Option<Chain> {
    if !rc.has_dir {
        for (path, _) in rc.recipes.values().chain(rc.upgrades.values()) {
            report.push(
                path.as_str(),
                "",
                format!("chain `{name}` does not exist (no {name}/profile.yaml)"),
            );
        }
        return None;
    }
    let profile_path = format!("{name}/{PROFILE}");
    let runtime_path = format!("{name}/{RUNTIME}");
    let observation_path = format!("{name}/{OBSERVATION}");

    let profile: Option<Profile> = match rc.profile {
        Some(c) => parse(report, &profile_path, c),
        None => {
            report.push(profile_path.as_str(), "", "missing required file");
            None
        }
    };
    let runtime: Option<Runtime> = match rc.runtime {
        Some(c) => parse(report, &runtime_path, c),
        None => {
            report.push(runtime_path.as_str(), "", "missing required file");
            None
        }
    };
    let observation: Option<Observation> = match rc.observation {
        Some(c) => parse(report, &observation_path, c),
        None => Some(Observation::default()),
    };

    if let Some(p) = &profile {
        let mut l = FileLint {
            report,
            file: &profile_path,
        };
        validate::check_profile(&mut l, p, name);
        for nt in p.node_types.keys() {
            if !rc.recipes.contains_key(nt) {
                l.problem(
                    format!("node_types.{nt}"),
                    format!("node type `{nt}` has no recipe (expected recipes/{name}/{nt}.yaml)"),
                );
            }
        }
    }
    if let Some(rt) = &runtime {
        let mut l = FileLint {
            report,
            file: &runtime_path,
        };
        validate::check_runtime(&mut l, rt, profile.as_ref());
    }
    if let (Some(o), Some(_)) = (&observation, rc.observation) {
        let mut l = FileLint {
            report,
            file: &observation_path,
        };
        validate::check_observation(&mut l, o, runtime.as_ref());
        // Parse every policy with the evaluator's CEL parser, so lint
        // rejects what the health evaluator could not run.
        crate::policy::lint_policies(&mut l, o);
    }

    let mut recipes = BTreeMap::new();
    for (nt, (path, contents)) in &rc.recipes {
        let Some(r) = parse::<Recipe>(report, path, contents) else {
            continue;
        };
        let mut l = FileLint { report, file: path };
        if let Some(p) = &profile {
            if !p.node_types.contains_key(nt) {
                l.problem(
                    "",
                    format!(
                        "recipe for unknown node type `{nt}` (profile.yaml declares: {})",
                        p.node_types.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        validate::check_recipe(&mut l, &r, profile.as_ref(), runtime.as_ref());
        recipes.insert(nt.clone(), r);
    }

    let mut upgrades = BTreeMap::new();
    for (id, (path, contents)) in &rc.upgrades {
        let Some(u) = parse::<Upgrade>(report, path, contents) else {
            continue;
        };
        let mut l = FileLint { report, file: path };
        validate::check_upgrade(
            &mut l,
            &u,
            profile.as_ref(),
            runtime.as_ref(),
            observation.as_ref(),
        );
        upgrades.insert(id.clone(), u);
    }

    Some(Chain {
        name: name.to_string(),
        profile: profile?,
        runtime: runtime?,
        observation: observation?,
        recipes,
        upgrades,
    })
}
