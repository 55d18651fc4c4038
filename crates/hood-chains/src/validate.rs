//! Semantic checks of parsed files, within a file and across a chain's files.
//! Every check reports and carries on, so one lint run lists everything.

use std::collections::{BTreeMap, BTreeSet};

use crate::cel;
use crate::lint::{index, join, FileLint};
use crate::observation::{HealthOutcome, Observation, Severity, RESERVED_POLICY_VARIABLES};
use crate::profile::{ArtifactSource, Profile, Verify};
use crate::recipe::{Recipe, StepAction};
use crate::runtime::{Port, Runtime, RuntimeAdapter, Source};
use crate::template::{self, TemplateVars, PATH_ROOTS};
use crate::upgrade::{ActionKind, Compensation, StateCompatibility, Upgrade};

/// DNS-label shape: chain names appear in `{chain}.{domain}` edge hosts.
pub(crate) fn is_chain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Names of node types, processes, binaries, providers, upgrade ids.
pub(crate) fn is_slug(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
}

/// Names that become CEL variables or template prefixes.
pub(crate) fn is_ident(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_uppercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// 64 lowercase hex characters.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

const SLUG_RULE: &str =
    "must be lowercase letters, digits, `-`, `_` or `.`, starting with a letter or digit";
const IDENT_RULE: &str =
    "must be a lowercase identifier (letters, digits, `_`; not starting with a digit)";

fn check_version(l: &mut FileLint, field: &str, v: &str) {
    if v.trim().is_empty() {
        l.problem(field, "version must not be empty");
    } else if v.chars().any(char::is_whitespace) {
        l.problem(field, format!("version `{v}` must not contain whitespace"));
    }
}

fn check_nonempty(l: &mut FileLint, field: &str, v: &str) {
    if v.trim().is_empty() {
        l.problem(field, "must not be empty");
    }
}

fn check_https(l: &mut FileLint, field: &str, url: &str) {
    if !url.starts_with("https://") || url.len() <= "https://".len() {
        l.problem(field, format!("`{url}` must be an https:// URL"));
    }
}

fn check_relative_path(l: &mut FileLint, field: &str, p: &str) {
    if p.is_empty() || p.starts_with('/') || p.split('/').any(|s| s == "..") {
        l.problem(
            field,
            format!("`{p}` must be a relative path without `..` segments"),
        );
    }
}

fn check_templates(l: &mut FileLint, field: &str, text: &str, vars: &TemplateVars) {
    for msg in template::check(text, vars) {
        l.problem(field, msg);
    }
}

/// Paths the agent writes must stay inside the node's directories.
fn check_node_path(l: &mut FileLint, field: &str, p: &str, vars: &TemplateVars) {
    check_templates(l, field, p, vars);
    if !PATH_ROOTS.iter().any(|root| p.starts_with(root)) {
        l.problem(
            field,
            format!(
                "path `{p}` must start with one of {}",
                PATH_ROOTS.join(", ")
            ),
        );
    }
    if p.split('/').any(|s| s == "..") {
        l.problem(field, format!("path `{p}` must not contain `..`"));
    }
}

/// Fields shared by profile binaries and upgrade targets.
pub(crate) struct ArtifactRef<'a> {
    pub(crate) version: &'a str,
    pub(crate) artifact: &'a str,
    pub(crate) sha256: Option<&'a str>,
    pub(crate) verify: Verify,
    pub(crate) entrypoint: Option<&'a str>,
    pub(crate) source: Option<&'a ArtifactSource>,
}

fn check_artifact(l: &mut FileLint, base: &str, a: &ArtifactRef) {
    check_version(l, &join(base, "version"), a.version);
    if a.artifact.trim().is_empty() || a.artifact.contains(['/', ' ']) {
        l.problem(
            join(base, "artifact"),
            "artifact name must be non-empty without `/` or spaces",
        );
    }
    let sha_field = join(base, "sha256");
    match (a.verify, a.sha256) {
        (Verify::Pinned, None) => l.problem(
            sha_field,
            "sha256 is required unless `verify: at_push` (checksum recorded when the artifact is pushed from its `source`)",
        ),
        (Verify::Pinned, Some(s)) if !is_sha256(s) => l.problem(
            sha_field,
            format!("sha256 `{s}` must be 64 lowercase hex characters"),
        ),
        (Verify::AtPush, Some(_)) => l.problem(
            sha_field,
            "sha256 must be null with `verify: at_push`; use `verify: pinned` to pin a known checksum",
        ),
        (Verify::AtPush, None) if a.source.is_none() => l.problem(
            join(base, "source"),
            "`verify: at_push` needs a `source` the push fetches the artifact from",
        ),
        _ => {}
    }
    if let Some(e) = a.entrypoint {
        check_relative_path(l, &join(base, "entrypoint"), e);
    }
    match a.source {
        Some(ArtifactSource::Npm(n)) => {
            let f = join(base, "source.npm");
            check_nonempty(l, &join(&f, "package"), &n.package);
            if n.version != a.version {
                l.problem(
                    join(&f, "version"),
                    format!(
                        "npm version `{}` differs from the artifact version `{}`",
                        n.version, a.version
                    ),
                );
            }
            check_relative_path(l, &join(&f, "path"), &n.path);
            if let Some(i) = &n.integrity {
                if !(i.starts_with("sha512-")
                    || i.starts_with("sha384-")
                    || i.starts_with("sha256-"))
                {
                    l.problem(
                        join(&f, "integrity"),
                        "integrity must be a Subresource Integrity string (`sha512-…`)",
                    );
                }
            }
        }
        Some(ArtifactSource::Url(u)) => check_https(l, &join(base, "source.url"), u),
        None => {}
    }
}

/// profile.yaml on its own (plus its directory name).
pub(crate) fn check_profile(l: &mut FileLint, p: &Profile, dir: &str) {
    if p.name != dir {
        l.problem(
            "name",
            format!(
                "profile name `{}` does not match its directory `{dir}`",
                p.name
            ),
        );
    }
    check_nonempty(l, "display_name", &p.display_name);
    if !is_slug(&p.network) {
        l.problem("network", format!("network `{}` {SLUG_RULE}", p.network));
    }
    if let Some(id) = &p.chain_id {
        check_nonempty(l, "chain_id", id);
    }
    if p.node_types.is_empty() {
        l.problem("node_types", "at least one node type is required");
    }
    for (name, nt) in &p.node_types {
        let base = join("node_types", name);
        if !is_slug(name) {
            l.problem(&base, format!("node type name `{name}` {SLUG_RULE}"));
        }
        check_nonempty(l, &join(&base, "description"), &nt.description);
        let r = &nt.resources;
        for (field, value) in [
            ("cpu", r.cpu),
            ("memory_gb", r.memory_gb),
            ("disk_gb", r.disk_gb),
        ] {
            if value == 0 {
                l.problem(
                    join(&join(&base, "resources"), field),
                    "must be greater than 0",
                );
            }
        }
    }
    if !p.node_types.contains_key(&p.default_node_type) {
        l.problem(
            "default_node_type",
            format!(
                "`{}` is not one of the declared node types",
                p.default_node_type
            ),
        );
    }
    if p.providers.is_empty() {
        l.problem("providers", "at least one provider is required");
    }
    let mut seen = BTreeSet::new();
    for (i, prov) in p.providers.iter().enumerate() {
        let f = index("providers", i);
        if !is_slug(prov) {
            l.problem(&f, format!("provider `{prov}` {SLUG_RULE}"));
        }
        if !seen.insert(prov) {
            l.problem(&f, format!("provider `{prov}` is listed twice"));
        }
    }
    if p.binaries.is_empty() {
        l.problem("binaries", "at least one binary is required");
    }
    let mut seen = BTreeSet::new();
    for (i, b) in p.binaries.iter().enumerate() {
        let base = index("binaries", i);
        if !is_slug(&b.name) {
            l.problem(
                join(&base, "name"),
                format!("binary name `{}` {SLUG_RULE}", b.name),
            );
        }
        if !seen.insert(&b.name) {
            l.problem(
                join(&base, "name"),
                format!("binary `{}` is declared twice", b.name),
            );
        }
        check_artifact(
            l,
            &base,
            &ArtifactRef {
                version: &b.version,
                artifact: &b.artifact,
                sha256: b.sha256.as_deref(),
                verify: b.verify,
                entrypoint: b.entrypoint.as_deref(),
                source: b.source.as_ref(),
            },
        );
    }
    if let Some(s) = &p.snapshot {
        check_https(l, "snapshot.url", &s.url);
    }
}

/// Where a source is queried from decides which fields it may have.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// A probe against the node itself: port required.
    Local,
    /// A probe against the operator's reference endpoint: no port.
    Reference,
}

fn check_source(
    l: &mut FileLint,
    field: &str,
    src: &Source,
    target: Target,
    ports: Option<&BTreeMap<String, Port>>,
    vars: &TemplateVars,
) {
    let (kind, port, path) = match src {
        Source::JsonRpc(c) => {
            check_nonempty(l, &join(field, "jsonrpc.method"), &c.method);
            if let Some(a) = &c.auth {
                check_templates(
                    l,
                    &join(field, "jsonrpc.auth.cookie_file"),
                    &a.cookie_file,
                    vars,
                );
            }
            ("jsonrpc", c.port.as_deref(), c.path.as_deref())
        }
        Source::Http(h) => ("http", h.port.as_deref(), Some(h.path.as_str())),
        Source::Prometheus(p) => ("prometheus", Some(p.port.as_str()), Some(p.path.as_str())),
        Source::System(_) => ("system", None, None),
    };
    let kf = join(field, kind);
    if let Some(path) = path {
        if !path.starts_with('/') {
            l.problem(
                join(&kf, "path"),
                format!("path `{path}` must start with `/`"),
            );
        }
    }
    match target {
        Target::Reference => {
            if matches!(src, Source::Prometheus(_) | Source::System(_)) {
                l.problem(
                    &kf,
                    "reference probes can only be `jsonrpc` or `http` calls",
                );
            } else if port.is_some() {
                l.problem(
                    join(&kf, "port"),
                    "reference probes name no port: the reference URL is operator configuration",
                );
            }
        }
        Target::Local => match (port, src) {
            (None, Source::System(_)) => {}
            (None, _) => l.problem(join(&kf, "port"), "a port name is required"),
            (Some(p), _) => {
                if let Some(ports) = ports {
                    if !ports.contains_key(p) {
                        l.problem(
                            join(&kf, "port"),
                            format!(
                                "port `{p}` is not declared in runtime.yaml (declared: {})",
                                names(ports.keys())
                            ),
                        );
                    }
                }
            }
        },
    }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

fn check_probes(
    l: &mut FileLint,
    field: &str,
    probes: &BTreeMap<String, Source>,
    target: Target,
    ports: Option<&BTreeMap<String, Port>>,
    vars: &TemplateVars,
) {
    if probes.is_empty() {
        l.problem(field, "at least one probe is required");
    }
    for (name, src) in probes {
        let f = join(field, name);
        if !is_ident(name) {
            l.problem(&f, format!("probe name `{name}` {IDENT_RULE}"));
        }
        check_source(l, &f, src, target, ports, vars);
    }
}

/// Checks a CEL expression and that its variables are among `known`.
fn check_expr(l: &mut FileLint, field: &str, expr: &str, known: &BTreeSet<String>, what: &str) {
    match cel::analyze(expr) {
        Err(msgs) => {
            for m in msgs {
                l.problem(field, format!("invalid CEL expression: {m}"));
            }
        }
        Ok(a) => {
            for v in a.variables.difference(known) {
                l.problem(
                    field,
                    format!(
                        "expression refers to unknown {what} `{v}` (known: {})",
                        names(known.iter())
                    ),
                );
            }
            for f in &a.functions {
                if !cel::KNOWN_FUNCTIONS.contains(&f.as_str()) {
                    l.problem(
                        field,
                        format!(
                            "expression calls unknown function `{f}` (known: {})",
                            cel::KNOWN_FUNCTIONS.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

/// Template variables a chain's files may use, from its runtime.
pub(crate) fn template_vars(runtime: Option<&Runtime>) -> TemplateVars {
    match runtime {
        Some(rt) => TemplateVars {
            ports: Some(rt.ports.keys().cloned().collect()),
            ranges: rt
                .ports
                .iter()
                .filter(|(_, p)| p.end.is_some())
                .map(|(n, _)| n.clone())
                .collect(),
        },
        None => TemplateVars {
            ports: None,
            ranges: BTreeSet::new(),
        },
    }
}

/// runtime.yaml, with the profile when it parsed.
pub(crate) fn check_runtime(l: &mut FileLint, rt: &Runtime, profile: Option<&Profile>) {
    let vars = template_vars(Some(rt));
    if !rt.ports.contains_key("rpc") {
        l.problem(
            "ports",
            "a port named `rpc` is required (health checks and the RPC edge use it)",
        );
    }
    for (name, p) in &rt.ports {
        let base = join("ports", name);
        if !is_ident(name) {
            l.problem(&base, format!("port name `{name}` {IDENT_RULE}"));
        }
        if p.port == 0 {
            l.problem(join(&base, "port"), "port 0 is out of range 1..=65535");
        }
        if let Some(end) = p.end {
            if end <= p.port {
                l.problem(
                    join(&base, "end"),
                    format!("range end {end} must be greater than port {}", p.port),
                );
            }
        }
    }
    let ports: Vec<(&String, &Port)> = rt.ports.iter().collect();
    for (i, (a_name, a)) in ports.iter().enumerate() {
        for (b_name, b) in &ports[i + 1..] {
            let overlap = a.port <= b.last() && b.port <= a.last();
            if overlap && a.protocol.overlaps(b.protocol) && a.port != 0 && b.port != 0 {
                l.problem(
                    join(&join("ports", b_name), "port"),
                    format!(
                        "port {} clashes with port `{a_name}` ({}) on the same protocol",
                        b.port, a.port
                    ),
                );
            }
        }
    }

    if rt.processes.is_empty() {
        l.problem("processes", "at least one process is required");
    }
    let mut seen = BTreeSet::new();
    for (i, pr) in rt.processes.iter().enumerate() {
        let base = index("processes", i);
        if !is_slug(&pr.name) {
            l.problem(
                join(&base, "name"),
                format!("process name `{}` {SLUG_RULE}", pr.name),
            );
        }
        if !seen.insert(&pr.name) {
            l.problem(
                join(&base, "name"),
                format!("process `{}` is declared twice", pr.name),
            );
        }
        if let Some(p) = profile {
            if p.binary(&pr.binary).is_none() {
                l.problem(
                    join(&base, "binary"),
                    format!(
                        "binary `{}` is not declared in profile.yaml (declared: {})",
                        pr.binary,
                        names(p.binaries.iter().map(|b| &b.name))
                    ),
                );
            }
        }
        match (rt.adapter, &pr.image) {
            (RuntimeAdapter::Docker, None) => {
                l.problem(join(&base, "image"), "the docker adapter needs an image")
            }
            (RuntimeAdapter::Process | RuntimeAdapter::Systemd, Some(_)) => l.problem(
                join(&base, "image"),
                "image is only used by the docker adapter",
            ),
            _ => {}
        }
        for (j, a) in pr.args.iter().enumerate() {
            check_templates(l, &index(&join(&base, "args"), j), a, &vars);
        }
        for (k, v) in &pr.env {
            let f = join(&join(&base, "env"), k);
            if !is_env_name(k) {
                l.problem(&f, format!("`{k}` is not an environment variable name"));
            }
            check_templates(l, &f, v, &vars);
        }
        if pr.stop_timeout_s == 0 {
            l.problem(join(&base, "stop_timeout_s"), "must be greater than 0");
        }
    }

    let h = &rt.health;
    if h.interval_s == 0 {
        l.problem("health.interval_s", "must be greater than 0");
    }
    if h.timeout_s == 0 || h.timeout_s >= h.interval_s {
        l.problem(
            "health.timeout_s",
            "must be greater than 0 and below interval_s",
        );
    }
    check_probes(
        l,
        "health.probes",
        &h.probes,
        Target::Local,
        Some(&rt.ports),
        &vars,
    );
    let known: BTreeSet<String> = h.probes.keys().cloned().collect();
    check_expr(l, "health.healthy", &h.healthy, &known, "probe");

    let s = &rt.sync;
    check_nonempty(l, "sync.description", &s.description);
    check_probes(
        l,
        "sync.probes",
        &s.probes,
        Target::Local,
        Some(&rt.ports),
        &vars,
    );
    let known: BTreeSet<String> = s.probes.keys().cloned().collect();
    check_expr(l, "sync.synced", &s.synced, &known, "probe");
    check_expr(l, "sync.head", &s.head, &known, "probe");
    if let Some(t) = &s.target {
        check_expr(l, "sync.target", t, &known, "probe");
    }
    if let Some(r) = &s.reference {
        check_probes(
            l,
            "sync.reference.probes",
            &r.probes,
            Target::Reference,
            None,
            &vars,
        );
        let known: BTreeSet<String> = r.probes.keys().cloned().collect();
        check_expr(l, "sync.reference.head", &r.head, &known, "reference probe");
    }
    if s.lag.lagging >= s.lag.critical {
        l.problem(
            "sync.lag.critical",
            format!(
                "critical ({}) must be greater than lagging ({})",
                s.lag.critical, s.lag.lagging
            ),
        );
    }
}

/// observation.yaml, with the runtime when it parsed.
pub(crate) fn check_observation(l: &mut FileLint, o: &Observation, runtime: Option<&Runtime>) {
    let vars = template_vars(runtime);
    let ports = runtime.map(|r| &r.ports);
    let mut seen = BTreeSet::new();
    for (i, c) in o.collectors.iter().enumerate() {
        let base = index("collectors", i);
        if !is_ident(&c.name) {
            l.problem(
                join(&base, "name"),
                format!("collector name `{}` {IDENT_RULE}", c.name),
            );
        }
        if RESERVED_POLICY_VARIABLES.contains(&c.name.as_str()) {
            l.problem(
                join(&base, "name"),
                format!("`{}` is a reserved policy variable", c.name),
            );
        }
        if !seen.insert(c.name.clone()) {
            l.problem(
                join(&base, "name"),
                format!("collector `{}` is declared twice", c.name),
            );
        }
        if c.interval_s == 0 {
            l.problem(join(&base, "interval_s"), "must be greater than 0");
        }
        if let Some(t) = c.timeout_s {
            if t == 0 || t >= c.interval_s {
                l.problem(
                    join(&base, "timeout_s"),
                    "must be greater than 0 and below interval_s",
                );
            }
        }
        check_source(
            l,
            &join(&base, "source"),
            &c.source,
            Target::Local,
            ports,
            &vars,
        );
    }
    let mut known = seen;
    known.extend(RESERVED_POLICY_VARIABLES.iter().map(|s| s.to_string()));
    let mut seen = BTreeSet::new();
    for (i, p) in o.policies.iter().enumerate() {
        let base = index("policies", i);
        if !is_ident(&p.name) {
            l.problem(
                join(&base, "name"),
                format!("policy name `{}` {IDENT_RULE}", p.name),
            );
        }
        if !seen.insert(&p.name) {
            l.problem(
                join(&base, "name"),
                format!("policy `{}` is declared twice", p.name),
            );
        }
        check_expr(
            l,
            &join(&base, "expression"),
            &p.expression,
            &known,
            "collector",
        );
        match (p.severity, p.application_health) {
            (Severity::Info, Some(_)) => l.problem(
                join(&base, "application_health"),
                "an `info` policy cannot change application health",
            ),
            (s, Some(HealthOutcome::Critical)) if s != Severity::Critical => l.problem(
                join(&base, "application_health"),
                "critical application health needs severity `critical`",
            ),
            _ => {}
        }
    }
}

/// A recipe, with the chain's profile and runtime when they parsed.
pub(crate) fn check_recipe(
    l: &mut FileLint,
    r: &Recipe,
    profile: Option<&Profile>,
    runtime: Option<&Runtime>,
) {
    let vars = template_vars(runtime);
    for (k, v) in &r.env {
        let f = join("env", k);
        if !is_env_name(k) {
            l.problem(&f, format!("`{k}` is not an environment variable name"));
        }
        check_templates(l, &f, v, &vars);
    }
    for (proc_name, args) in &r.extra_args {
        let f = join("extra_args", proc_name);
        if let Some(rt) = runtime {
            if rt.process(proc_name).is_none() {
                l.problem(
                    &f,
                    format!(
                        "process `{proc_name}` is not declared in runtime.yaml (declared: {})",
                        names(rt.processes.iter().map(|p| &p.name))
                    ),
                );
            }
        }
        for (j, a) in args.iter().enumerate() {
            check_templates(l, &index(&f, j), a, &vars);
        }
    }
    let mut seen_names = BTreeSet::new();
    let mut seen_paths = BTreeSet::new();
    for (i, k) in r.key_material.iter().enumerate() {
        let base = index("key_material", i);
        if !is_slug(&k.name) || !seen_names.insert(&k.name) {
            l.problem(
                join(&base, "name"),
                format!("key material name `{}` must be a unique slug", k.name),
            );
        }
        check_node_path(l, &join(&base, "path"), &k.path, &vars);
        if !seen_paths.insert(&k.path) {
            l.problem(
                join(&base, "path"),
                format!("`{}` is written twice", k.path),
            );
        }
    }
    for (i, f) in r.files.iter().enumerate() {
        let base = index("files", i);
        check_node_path(l, &join(&base, "path"), &f.path, &vars);
        if !seen_paths.insert(&f.path) {
            l.problem(
                join(&base, "path"),
                format!("`{}` is written twice", f.path),
            );
        }
        let mode_ok = f.mode.len() == 4
            && f.mode.starts_with('0')
            && f.mode.bytes().all(|b| (b'0'..=b'7').contains(&b));
        if !mode_ok {
            l.problem(
                join(&base, "mode"),
                format!("mode `{}` must be four octal digits like `0640`", f.mode),
            );
        }
        check_templates(l, &join(&base, "content"), &f.content, &vars);
    }
    let mut seen = BTreeSet::new();
    for (i, s) in r.steps.iter().enumerate() {
        let base = index("steps", i);
        if !is_slug(&s.name) || !seen.insert(&s.name) {
            l.problem(
                join(&base, "name"),
                format!("step name `{}` must be a unique slug", s.name),
            );
        }
        if let Some(c) = &s.creates {
            check_node_path(l, &join(&base, "creates"), c, &vars);
        }
        if s.timeout_s == Some(0) {
            l.problem(join(&base, "timeout_s"), "must be greater than 0");
        }
        match &s.action {
            StepAction::Run(run) => {
                if let Some(p) = profile {
                    if p.binary(&run.binary).is_none() {
                        l.problem(
                            join(&base, "run.binary"),
                            format!(
                                "binary `{}` is not declared in profile.yaml (declared: {})",
                                run.binary,
                                names(p.binaries.iter().map(|b| &b.name))
                            ),
                        );
                    }
                }
                for (j, a) in run.args.iter().enumerate() {
                    check_templates(l, &index(&join(&base, "run.args"), j), a, &vars);
                }
            }
            StepAction::Download(d) => {
                check_https(l, &join(&base, "download.url"), &d.url);
                if !is_sha256(&d.sha256) {
                    l.problem(
                        join(&base, "download.sha256"),
                        format!("sha256 `{}` must be 64 lowercase hex characters", d.sha256),
                    );
                }
                check_node_path(l, &join(&base, "download.dest"), &d.dest, &vars);
            }
            StepAction::TomlSet(t) => {
                check_node_path(l, &join(&base, "toml_set.file"), &t.file, &vars);
                if t.values.is_empty() {
                    l.problem(
                        join(&base, "toml_set.values"),
                        "at least one value is required",
                    );
                }
                for (k, v) in &t.values {
                    if let serde_json::Value::String(s) = v {
                        check_templates(l, &join(&join(&base, "toml_set.values"), k), s, &vars);
                    }
                }
            }
        }
    }
}

fn allowed_compensations(kind: ActionKind) -> &'static [Compensation] {
    match kind {
        ActionKind::DownloadBinary => &[Compensation::None, Compensation::DeleteDownload],
        ActionKind::Stop => &[Compensation::None, Compensation::Start],
        ActionKind::SwapBinary => &[Compensation::RestoreBinary],
        ActionKind::MigrateConfig => &[Compensation::RestoreConfig],
        ActionKind::Start => &[Compensation::None, Compensation::Stop],
        ActionKind::WaitHealthy | ActionKind::VerifyVersion => &[Compensation::None],
        ActionKind::SnapshotData => &[Compensation::RestoreSnapshot],
    }
}

fn kind_name(k: ActionKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{k:?}"))
}

fn comp_names(c: &[Compensation]) -> String {
    c.iter()
        .filter_map(|c| serde_json::to_value(c).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a CEL check over a node's observations may read: the chain's
/// collectors (when its observation.yaml parsed) and the reserved `sync`
/// and `node`.
fn observation_variables(observation: Option<&Observation>) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = RESERVED_POLICY_VARIABLES
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(o) = observation {
        known.extend(o.collectors.iter().map(|c| c.name.clone()));
    }
    known
}

/// An upgrade manifest, with the chain's profile, runtime and observation
/// when they parsed.
pub(crate) fn check_upgrade(
    l: &mut FileLint,
    u: &Upgrade,
    profile: Option<&Profile>,
    runtime: Option<&Runtime>,
    observation: Option<&Observation>,
) {
    check_nonempty(l, "description", &u.description);
    if let Some(p) = profile {
        if p.binary(&u.binary).is_none() {
            l.problem(
                "binary",
                format!(
                    "binary `{}` is not declared in profile.yaml (declared: {})",
                    u.binary,
                    names(p.binaries.iter().map(|b| &b.name))
                ),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, nt) in u.node_types.iter().enumerate() {
            if !p.node_types.contains_key(nt) {
                l.problem(
                    index("node_types", i),
                    format!(
                        "node type `{nt}` is not declared in profile.yaml (declared: {})",
                        names(p.node_types.keys())
                    ),
                );
            }
            if !seen.insert(nt) {
                l.problem(index("node_types", i), format!("`{nt}` is listed twice"));
            }
        }
    }
    check_version(l, "from_version", &u.from_version);
    let t = &u.to;
    check_artifact(
        l,
        "to",
        &ArtifactRef {
            version: &t.version,
            artifact: &t.artifact,
            sha256: t.sha256.as_deref(),
            verify: t.verify,
            entrypoint: t.entrypoint.as_deref(),
            source: t.source.as_ref(),
        },
    );
    if t.version == u.from_version {
        l.problem("to.version", "target version equals from_version");
    }

    if u.actions.is_empty() {
        l.problem("actions", "at least one action is required");
    }
    let vars = template_vars(runtime);
    let positions = |k: ActionKind| -> Vec<usize> {
        u.actions
            .iter()
            .enumerate()
            .filter(|(_, a)| a.action == k)
            .map(|(i, _)| i)
            .collect()
    };
    for (i, a) in u.actions.iter().enumerate() {
        let base = index("actions", i);
        if a.timeout_s == Some(0) {
            l.problem(join(&base, "timeout_s"), "must be greater than 0");
        }
        let allowed = allowed_compensations(a.action);
        match a.compensation {
            Some(c) if !allowed.contains(&c) => l.problem(
                join(&base, "compensation"),
                format!(
                    "`{}` can be compensated by: {}",
                    kind_name(a.action),
                    comp_names(allowed)
                ),
            ),
            None if !allowed.contains(&Compensation::None) => l.problem(
                join(&base, "compensation"),
                format!(
                    "`{}` needs compensation `{}`",
                    kind_name(a.action),
                    comp_names(allowed)
                ),
            ),
            _ => {}
        }
        if a.action == ActionKind::MigrateConfig {
            match &a.process {
                None => l.problem(join(&base, "process"), "migrate_config needs a process"),
                Some(p) => {
                    if let Some(rt) = runtime {
                        if rt.process(p).is_none() {
                            l.problem(
                                join(&base, "process"),
                                format!("process `{p}` is not declared in runtime.yaml"),
                            );
                        }
                    }
                }
            }
            if a.add_args.is_empty() && a.remove_args.is_empty() {
                l.problem(&base, "migrate_config needs add_args or remove_args");
            }
            for (j, arg) in a.add_args.iter().enumerate() {
                check_templates(l, &index(&join(&base, "add_args"), j), arg, &vars);
            }
        } else {
            if let Some(p) = &a.process {
                if !matches!(a.action, ActionKind::Stop | ActionKind::Start) {
                    l.problem(
                        join(&base, "process"),
                        "only valid for `stop`, `start` and `migrate_config`",
                    );
                } else if let Some(rt) = runtime {
                    if rt.process(p).is_none() {
                        l.problem(
                            join(&base, "process"),
                            format!("process `{p}` is not declared in runtime.yaml"),
                        );
                    }
                }
            }
            for (field, set) in [
                ("add_args", !a.add_args.is_empty()),
                ("remove_args", !a.remove_args.is_empty()),
            ] {
                if set {
                    l.problem(join(&base, field), "only valid for `migrate_config`");
                }
            }
        }
    }

    let swaps = positions(ActionKind::SwapBinary);
    let stops = positions(ActionKind::Stop);
    let starts = positions(ActionKind::Start);
    let waits = positions(ActionKind::WaitHealthy);
    if swaps.len() != 1 {
        l.problem("actions", "exactly one `swap_binary` action is required");
    }
    if let Some(&swap) = swaps.first() {
        if !stops.iter().any(|&s| s < swap) {
            l.problem(
                index("actions", swap),
                "`swap_binary` must come after a `stop`",
            );
        }
        if !starts.iter().any(|&s| s > swap) {
            l.problem("actions", "a `start` must follow `swap_binary`");
        }
    }
    if let Some(&last_start) = starts.last() {
        if !waits.iter().any(|&w| w > last_start) {
            l.problem("actions", "a `wait_healthy` must follow the last `start`");
        }
    }
    let first_stop = stops.first().copied();
    for i in positions(ActionKind::DownloadBinary) {
        if first_stop.is_some_and(|s| i > s) {
            l.problem(
                index("actions", i),
                "`download_binary` must come before `stop` so downloads do not add downtime",
            );
        }
    }
    for i in positions(ActionKind::MigrateConfig) {
        let after_stop = first_stop.is_some_and(|s| s < i);
        let before_start = starts.iter().any(|&s| s > i);
        if !(after_stop && before_start) {
            l.problem(
                index("actions", i),
                "`migrate_config` must run while the node is stopped (after `stop`, before `start`)",
            );
        }
    }
    for i in positions(ActionKind::VerifyVersion) {
        if !starts.iter().any(|&s| s < i) {
            l.problem(
                index("actions", i),
                "`verify_version` must come after a `start`",
            );
        }
    }
    let snapshots = positions(ActionKind::SnapshotData);
    for &i in &snapshots {
        let after_stop = first_stop.is_some_and(|s| s < i);
        let before_start = starts.first().is_some_and(|&s| s > i);
        if !(after_stop && before_start) {
            l.problem(
                index("actions", i),
                "`snapshot_data` must run while the node is stopped, before its first `start`",
            );
        }
    }
    if u.state == StateCompatibility::ForwardOnly && snapshots.is_empty() {
        l.problem(
            "state",
            "a `forward_only` upgrade needs a `snapshot_data` action before its first `start`: \
             a revert restores the data, not only the binary",
        );
    }
    if snapshots.len() > 1 {
        l.problem("actions", "at most one `snapshot_data` action");
    }
    let known = observation_variables(observation);
    for (group, checks) in [
        ("pre_checks", &u.pre_checks),
        ("post_checks", &u.post_checks),
    ] {
        let mut seen = BTreeSet::new();
        for (i, c) in checks.iter().enumerate() {
            let base = index(group, i);
            if !is_ident(&c.name) {
                l.problem(
                    join(&base, "name"),
                    format!("check name `{}` {IDENT_RULE}", c.name),
                );
            }
            if !seen.insert(&c.name) {
                l.problem(
                    join(&base, "name"),
                    format!("check `{}` is declared twice", c.name),
                );
            }
            check_expr(
                l,
                &join(&base, "expression"),
                &c.expression,
                &known,
                "collector",
            );
        }
    }

    let r = &u.rollout;
    if r.batch_size == 0 {
        l.problem("rollout.batch_size", "must be at least 1");
    }
    match r.canary {
        Some(0) => l.problem("rollout.canary", "must be at least 1 when set"),
        Some(c) if c > r.batch_size && r.batch_size > 0 => {
            l.problem("rollout.canary", "must not exceed batch_size")
        }
        None if r.require_approval => l.problem(
            "rollout.require_approval",
            "approval is requested after the canary batch, so a canary is required",
        ),
        _ => {}
    }
}
