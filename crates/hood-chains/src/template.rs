//! `{{variable}}` templates in args, env, file paths and file contents.
//!
//! The agent expands them at apply time; here we only check that every
//! variable exists, so a typo (`{{rcp_port}}`) fails lint rather than
//! starting a node with a literal `{{rcp_port}}` argument.

use std::collections::BTreeSet;

/// Variables the agent always provides.
///
/// - `data_dir`: the node's persistent data directory,
/// - `config_dir`: where recipe files are rendered,
/// - `secrets_dir`: key material (mode 0700, never backed up as plain text),
/// - `node_id`, `node_name`: the node's id and human name (moniker),
/// - `public_ip`: the host's public address (P2P advertisement),
/// - `host_address`: the host's own address, where private ports (RPC,
///   gRPC, REST) listen; the agent's probes and the edge reach them there.
///   Never `0.0.0.0`: a node's RPC is not exposed on every interface.
///
/// Plus `<port>_port` for every runtime port and `<port>_port_end` for port
/// ranges.
pub const BUILTIN_VARIABLES: &[&str] = &[
    "data_dir",
    "config_dir",
    "secrets_dir",
    "node_id",
    "node_name",
    "public_ip",
    "host_address",
];

/// Directory variables a written path must start with, so recipes cannot
/// write outside the node's sandbox.
pub const PATH_ROOTS: &[&str] = &["{{data_dir}}", "{{config_dir}}", "{{secrets_dir}}"];

/// What templates may refer to in one chain.
#[derive(Debug, Clone)]
pub(crate) struct TemplateVars {
    /// Runtime port names, or `None` when runtime.yaml did not parse (port
    /// variables are then not checked, to avoid cascading noise).
    pub(crate) ports: Option<BTreeSet<String>>,
    /// Port names that are ranges.
    pub(crate) ranges: BTreeSet<String>,
}

impl TemplateVars {
    fn knows(&self, var: &str) -> bool {
        if BUILTIN_VARIABLES.contains(&var) {
            return true;
        }
        let Some(ports) = &self.ports else {
            return var.ends_with("_port") || var.ends_with("_port_end");
        };
        if let Some(name) = var.strip_suffix("_port_end") {
            return self.ranges.contains(name);
        }
        if let Some(name) = var.strip_suffix("_port") {
            return ports.contains(name);
        }
        false
    }
}

/// Returns the variable names used in `text`, or an error for an
/// unterminated `{{`.
pub(crate) fn variables(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("unterminated `{{` in template".to_string());
        };
        out.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Expands every `{{name}}` in `text` from `vars`. An unknown variable or an
/// unterminated `{{` is an error naming it, never a literal left in place.
pub fn render(
    text: &str,
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("unterminated `{{` in template".to_string());
        };
        let name = after[..end].trim();
        let value = vars
            .get(name)
            .ok_or_else(|| format!("template variable `{{{{{name}}}}}` has no value"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks one template string; returns one message per problem.
pub(crate) fn check(text: &str, vars: &TemplateVars) -> Vec<String> {
    match variables(text) {
        Err(e) => vec![e],
        Ok(used) => used
            .into_iter()
            .filter(|v| !vars.knows(v))
            .map(|v| {
                if v.ends_with("_port") || v.ends_with("_port_end") {
                    format!("template variable `{{{{{v}}}}}` names a port that runtime.yaml does not declare")
                } else {
                    format!(
                        "unknown template variable `{{{{{v}}}}}` (known: {}, <port>_port, <port>_port_end)",
                        BUILTIN_VARIABLES.join(", ")
                    )
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars {
        TemplateVars {
            ports: Some(["rpc".to_string(), "dyn".to_string()].into()),
            ranges: ["dyn".to_string()].into(),
        }
    }

    #[test]
    fn render_expands_and_refuses_unknown_variables() {
        let vars: std::collections::BTreeMap<String, String> = [
            ("rpc_port".to_string(), "8545".to_string()),
            ("data_dir".to_string(), "/d".to_string()),
        ]
        .into();
        assert_eq!(
            render("--port {{rpc_port}} --state {{ data_dir }}/s.json", &vars).as_deref(),
            Ok("--port 8545 --state /d/s.json")
        );
        assert_eq!(render("plain", &vars).as_deref(), Ok("plain"));
        assert!(render("{{nope}}", &vars).unwrap_err().contains("nope"));
        assert!(render("{{rpc_port", &vars).is_err());
    }

    #[test]
    fn known_and_unknown_variables() {
        assert!(check("--port {{rpc_port}} --dir {{ data_dir }}", &vars()).is_empty());
        assert!(check("{{dyn_port}}-{{dyn_port_end}}", &vars()).is_empty());
        assert_eq!(check("{{rpc_port_end}}", &vars()).len(), 1);
        assert_eq!(check("{{rcp_port}}", &vars()).len(), 1);
        assert_eq!(check("{{datadir}}", &vars()).len(), 1);
        assert_eq!(check("{{data_dir", &vars()).len(), 1);
        assert!(check("no templates", &vars()).is_empty());
    }
}
