//! ARCHITECTURE.md is checked, not just read:
//!
//! * its code map lists every crate of the workspace, lowest layer first,
//!   and no crate depends (normally or at build time) on a crate listed
//!   after it — the layer order is whatever the document says, so the
//!   document and the code cannot drift apart;
//! * the crate of tests only is never a normal dependency;
//! * the on-host agent carries no database code (`sqlx`);
//! * no crate has an import cycle between its modules: sibling modules
//!   (at every level of the module tree) import each other one way only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/hood is two levels below the workspace root")
        .to_path_buf()
}

/// The triple this machine builds for: metadata of other platforms'
/// dependencies is not needed (nor downloaded).
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("running rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(host_triple())
        .current_dir(workspace_root())
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// The code map's crates, in the document's order, with their layer.
fn documented_layers() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).unwrap();
    doc.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("| `crates/")?;
            let (name, rest) = rest.split_once("` | ")?;
            let (layer, _) = rest.split_once(" |")?;
            Some((name.to_owned(), layer.trim().to_owned()))
        })
        .collect()
}

struct Workspace {
    /// Member name → (dependency name, kind) for dependencies on members.
    member_deps: BTreeMap<String, Vec<(String, String)>>,
    /// Every package name → its normal and build dependencies (resolved).
    resolved: BTreeMap<String, BTreeSet<String>>,
}

fn workspace() -> Workspace {
    let meta = metadata();
    let members: BTreeSet<String> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    let mut names = BTreeMap::new();
    let mut member_names = BTreeSet::new();
    for p in meta["packages"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap().to_owned();
        let name = p["name"].as_str().unwrap().to_owned();
        if members.contains(&id) {
            member_names.insert(name.clone());
        }
        names.insert(id, name);
    }
    let mut member_deps = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        if !member_names.contains(name) {
            continue;
        }
        let deps: Vec<(String, String)> = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| member_names.contains(d["name"].as_str().unwrap()))
            .map(|d| {
                (
                    d["name"].as_str().unwrap().to_owned(),
                    d["kind"].as_str().unwrap_or("normal").to_owned(),
                )
            })
            .collect();
        member_deps.insert(name.to_owned(), deps);
    }
    let mut resolved: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let name = names[node["id"].as_str().unwrap()].clone();
        let entry = resolved.entry(name).or_default();
        for dep in node["deps"].as_array().unwrap() {
            let runtime = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if runtime {
                entry.insert(names[dep["pkg"].as_str().unwrap()].clone());
            }
        }
    }
    Workspace {
        member_deps,
        resolved,
    }
}

#[test]
fn the_code_map_lists_every_crate_and_no_crate_depends_upward() {
    let layers = documented_layers();
    let ws = workspace();
    let order: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.as_str(), i))
        .collect();
    let documented: BTreeSet<&str> = order.keys().copied().collect();
    let actual: BTreeSet<&str> = ws.member_deps.keys().map(String::as_str).collect();
    assert_eq!(
        documented, actual,
        "ARCHITECTURE.md's code map and the workspace's crates differ"
    );
    let tests_only: BTreeSet<&str> = layers
        .iter()
        .filter(|(_, layer)| layer == "tests only")
        .map(|(name, _)| name.as_str())
        .collect();
    let mut problems = Vec::new();
    for (krate, deps) in &ws.member_deps {
        for (dep, kind) in deps {
            if kind == "dev" {
                continue;
            }
            if tests_only.contains(dep.as_str()) {
                problems.push(format!("{krate} depends on the tests-only crate {dep}"));
            } else if order[dep.as_str()] >= order[krate.as_str()] {
                problems.push(format!(
                    "{krate} (layer {}) depends on {dep}, which ARCHITECTURE.md lists after it",
                    layers[order[krate.as_str()]].1
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "upward dependencies:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_agent_carries_no_database_code() {
    let ws = workspace();
    let mut seen = BTreeSet::new();
    let mut stack = vec!["hood-agent".to_owned()];
    while let Some(p) = stack.pop() {
        if seen.insert(p.clone()) {
            stack.extend(ws.resolved.get(&p).into_iter().flatten().cloned());
        }
    }
    let database: Vec<&String> = seen
        .iter()
        .filter(|p| p.starts_with("sqlx") || p.starts_with("libsqlite3"))
        .collect();
    assert!(database.is_empty(), "hood-agent depends on {database:?}");
    assert!(seen.contains("hood-pki"), "the closure was computed");
}

// -- module cycles --

/// A module of a crate, as a path below the crate root (`[]` is the root).
type ModPath = Vec<String>;

/// Every `.rs` file of a crate's `src/` with its module path.
fn modules(src: &Path) -> Vec<(ModPath, PathBuf)> {
    fn walk(dir: &Path, prefix: &ModPath, out: &mut Vec<(ModPath, PathBuf)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                let mut p = prefix.clone();
                p.push(name);
                walk(&path, &p, out);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                let root_file = prefix.is_empty() && matches!(stem, "lib" | "main");
                let mut p = prefix.clone();
                if !root_file && stem != "mod" {
                    p.push(stem.to_owned());
                }
                out.push((p, path));
            }
        }
    }
    let mut out = Vec::new();
    walk(src, &Vec::new(), &mut out);
    out
}

/// Source without `//` comments (doc comments mention paths freely) and
/// without its test module (tests may cross-check a sibling's rule; that
/// is not a dependency of the code).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths a file refers to through `crate::` and `super::`, resolved to
/// absolute paths below the crate root (`use` groups expanded).
fn references(module: &ModPath, text: &str) -> Vec<ModPath> {
    let mut out = Vec::new();
    // `use` items (at the start of a line, possibly `pub`): expand braces.
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let t = ["pub(crate) ", "pub(super) ", "pub "]
            .iter()
            .find_map(|p| t.strip_prefix(p))
            .unwrap_or(t);
        let Some(first) = t.strip_prefix("use ") else {
            continue;
        };
        let mut item = first.to_owned();
        let mut next = i + 1;
        while !item.contains(';') && next < lines.len() {
            item.push_str(lines[next]);
            next += 1;
        }
        let tree: String = item
            .split(';')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        expand(&tree, &[], &mut out);
    }
    // Inline paths: `crate::a::b` and `super::a`.
    for start in ["crate::", "super::"] {
        let mut rest = text;
        while let Some(i) = rest.find(start) {
            let before = rest[..i].chars().last();
            let tail = &rest[i..];
            rest = &rest[i + start.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = tail
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path.split("::").map(str::to_owned).collect());
        }
    }
    out.into_iter()
        .filter_map(|segments| resolve(module, &segments))
        .collect()
}

fn expand(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    if let (Some(open), Some(close)) = (tree.find('{'), tree.rfind('}')) {
        if close < open {
            return;
        }
        let head = &tree[..open];
        let inner = &tree[open + 1..close];
        let mut base = prefix.to_vec();
        base.extend(
            head.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        let mut depth = 0;
        let mut part = String::new();
        for c in inner.chars().chain(std::iter::once(',')) {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if c == ',' && depth == 0 {
                if !part.is_empty() {
                    expand(&part, &base, out);
                }
                part.clear();
            } else {
                part.push(c);
            }
        }
    } else {
        let mut path = prefix.to_vec();
        let tree = tree.split(" as ").next().unwrap_or(tree);
        path.extend(
            tree.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        out.push(path);
    }
}

fn resolve(module: &ModPath, segments: &[String]) -> Option<ModPath> {
    let first = segments.first()?;
    let rest = &segments[1..];
    match first.as_str() {
        "crate" => Some(rest.to_vec()),
        "super" => {
            let mut base = module.clone();
            base.pop()?;
            let mut rest = rest;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            Some(base)
        }
        _ => None,
    }
}

/// The longest known module that `path` lies in.
fn owner(path: &ModPath, known: &BTreeSet<ModPath>) -> ModPath {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
        .unwrap_or_default()
}

/// Cycles among the children of each module: an edge A → B between two
/// siblings when anything in A's subtree refers into B's subtree.
fn sibling_cycles(edges: &BTreeSet<(ModPath, ModPath)>) -> Vec<String> {
    let mut graphs: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, to) in edges {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        // An edge to an ancestor or a descendant is parent ↔ child, not a cycle between siblings.
        if common == from.len() || common == to.len() {
            continue;
        }
        graphs
            .entry(from[..common].to_vec())
            .or_default()
            .entry(from[common].clone())
            .or_default()
            .insert(to[common].clone());
    }
    let mut cycles = Vec::new();
    for (parent, graph) in graphs {
        for component in strongly_connected(&graph) {
            let edges: Vec<String> = component
                .iter()
                .flat_map(|f| {
                    graph[*f]
                        .iter()
                        .filter(|t| component.contains(t))
                        .map(move |t| format!("{f} → {t}"))
                })
                .collect();
            let parent = if parent.is_empty() {
                "crate".to_owned()
            } else {
                parent.join("::")
            };
            cycles.push(format!("in `{parent}`: {}", edges.join(", ")));
        }
    }
    cycles
}

/// The components of more than one module (Tarjan's algorithm).
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<&String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a String, usize>,
        low: BTreeMap<&'a String, usize>,
        stack: Vec<&'a String>,
        on_stack: BTreeSet<&'a String>,
        out: Vec<BTreeSet<&'a String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a String) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn module_cycles(src: &Path) -> Vec<String> {
    let files = modules(src);
    let known: BTreeSet<ModPath> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut edges = BTreeSet::new();
    for (module, path) in &files {
        for target in references(module, &code(path)) {
            let target = owner(&target, &known);
            if &target != module {
                edges.insert((module.clone(), target));
            }
        }
    }
    sibling_cycles(&edges)
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let crates = workspace_root().join("crates");
    let mut problems = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&crates).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let src = e.path().join("src");
        if src.is_dir() {
            for c in module_cycles(&src) {
                problems.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "module import cycles:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_cycle_check_finds_a_cycle_between_siblings_and_ignores_parent_and_child() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("worker")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "mod server; mod ws; mod worker; pub use server::S;",
    )
    .unwrap();
    std::fs::write(
        src.join("server.rs"),
        "use crate::ws::{self, Frame};\npub struct S;",
    )
    .unwrap();
    std::fs::write(
        src.join("ws.rs"),
        "// crate::server in a comment is not a reference\npub struct Frame;",
    )
    .unwrap();
    std::fs::write(
        src.join("worker/mod.rs"),
        "mod claim; mod run; pub use claim::Lease;",
    )
    .unwrap();
    std::fs::write(
        src.join("worker/claim.rs"),
        "use super::run::step; pub struct Lease;",
    )
    .unwrap();
    std::fs::write(
        src.join("worker/run.rs"),
        "pub fn step() { let _ = super::Lease; }",
    )
    .unwrap();
    assert!(module_cycles(src).is_empty(), "{:?}", module_cycles(src));

    // ws now refers back to server (inline path), and run back to claim.
    std::fs::write(src.join("ws.rs"), "pub struct Frame(crate::server::S);").unwrap();
    std::fs::write(
        src.join("worker/run.rs"),
        "use super::{claim::Lease};\npub fn step() {}",
    )
    .unwrap();
    let cycles = module_cycles(src);
    assert_eq!(cycles.len(), 2, "{cycles:?}");
    assert!(
        cycles[0].contains("server → ws") && cycles[0].contains("ws → server"),
        "{cycles:?}"
    );
    assert!(cycles[1].starts_with("in `worker`"), "{cycles:?}");
}
