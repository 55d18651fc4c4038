//! `hood rpc-key …` and `hood usage`.

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{list, show, table, Format};
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use hood_api::routes::edge::{
    CreateRpcKeyRequest, CreatedRpcKey, RpcKeyView, RpcPlanView, UpdateRpcKeyRequest, UsageView,
};
use hood_api::views::Page;

/// Scope flags shared by `create` and `update`. Lists are comma-separated
/// or repeated; on `update`, an empty value (`--chains ''`) lifts that
/// restriction.
#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Chains the key may call (default: all).
    #[arg(long, value_delimiter = ',')]
    pub chains: Option<Vec<String>>,
    /// Methods or prefix patterns (`eth_*`) the key may call (default: all).
    #[arg(long = "allow-methods", value_delimiter = ',')]
    pub allow_methods: Option<Vec<String>>,
    /// Methods or patterns refused even if allowed (`debug_*,trace_*`).
    #[arg(long = "deny-methods", value_delimiter = ',')]
    pub deny_methods: Option<Vec<String>>,
    /// Client addresses or CIDR blocks, IPv4 or IPv6 (default: any).
    #[arg(long = "ip-allow", value_delimiter = ',')]
    pub ip_allow: Option<Vec<String>>,
    /// Browser origins like https://app.example.com (default: any).
    #[arg(long = "origin-allow", value_delimiter = ',')]
    pub origin_allow: Option<Vec<String>>,
}

impl ScopeArgs {
    /// The same flags with each list's entries trimmed and empty entries
    /// dropped, so `--chains ''` is an empty list.
    fn cleaned(self) -> Self {
        let clean = |list: Option<Vec<String>>| {
            list.map(|l| {
                l.into_iter()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
        };
        Self {
            chains: clean(self.chains),
            allow_methods: clean(self.allow_methods),
            deny_methods: clean(self.deny_methods),
            ip_allow: clean(self.ip_allow),
            origin_allow: clean(self.origin_allow),
        }
    }
}

/// A create request: lists not given are empty (no restriction).
fn create_request(name: String, plan: String, scope: ScopeArgs) -> CreateRpcKeyRequest {
    let scope = scope.cleaned();
    CreateRpcKeyRequest {
        name,
        plan,
        chains: scope.chains.unwrap_or_default(),
        allowed_methods: scope.allow_methods.unwrap_or_default(),
        denied_methods: scope.deny_methods.unwrap_or_default(),
        ip_allow: scope.ip_allow.unwrap_or_default(),
        origin_allow: scope.origin_allow.unwrap_or_default(),
    }
}

/// An update request: only what is given changes.
fn update_request(
    name: Option<String>,
    plan: Option<String>,
    scope: ScopeArgs,
) -> UpdateRpcKeyRequest {
    let scope = scope.cleaned();
    UpdateRpcKeyRequest {
        name,
        plan,
        chains: scope.chains,
        allowed_methods: scope.allow_methods,
        denied_methods: scope.deny_methods,
        ip_allow: scope.ip_allow,
        origin_allow: scope.origin_allow,
    }
}

#[derive(Debug, Subcommand)]
pub enum RpcKeyCmd {
    /// Creates an RPC key; prints its secret once.
    Create {
        #[arg(long)]
        name: String,
        /// free, basic, pro, enterprise (see `hood rpc-key plans`).
        #[arg(long)]
        plan: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Your organization's RPC keys.
    List,
    /// One RPC key (never its secret).
    Show { id: String },
    /// Changes a key's name, plan or scope.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Revokes a key everywhere at once.
    Revoke { id: String },
    /// The plans keys can be on.
    Plans,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GranularityArg {
    Hour,
    Day,
}

impl GranularityArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

/// `hood usage` flags.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Only this RPC key.
    #[arg(long)]
    pub key: Option<String>,
    /// Only this chain.
    #[arg(long)]
    pub chain: Option<String>,
    /// RFC 3339 or Unix ms (default: 24 h before --to).
    #[arg(long)]
    pub from: Option<String>,
    /// RFC 3339 or Unix ms (default: now).
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long, value_enum, default_value = "hour")]
    pub granularity: GranularityArg,
}

/// Percent-encodes a query value (RFC 3339 offsets carry `+` and `:`).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn usage_path(args: &UsageArgs) -> String {
    let mut parts = vec![format!("granularity={}", args.granularity.as_str())];
    for (name, value) in [
        ("key", &args.key),
        ("chain", &args.chain),
        ("from", &args.from),
        ("to", &args.to),
    ] {
        if let Some(v) = value {
            parts.push(format!("{name}={}", encode(v)));
        }
    }
    format!("/api/v1/usage?{}", parts.join("&"))
}

pub async fn rpc_key(opts: &ConnectOpts, format: Format, cmd: RpcKeyCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        RpcKeyCmd::Create { name, plan, scope } => {
            let request = create_request(name, plan, scope);
            let created: CreatedRpcKey = client.post("/api/v1/rpc-keys", &request).await?;
            match format {
                Format::Json => super::output::json(&created)?,
                Format::Table => {
                    show(format, &created.view, columns::RPC_KEY)?;
                    println!("\nRPC key (shown once, store it now):\n{}", created.key);
                }
            }
        }
        RpcKeyCmd::List => {
            let keys: Page<RpcKeyView> = client.get("/api/v1/rpc-keys").await?;
            list(format, &keys, columns::RPC_KEY)?;
        }
        RpcKeyCmd::Show { id } => {
            let key: RpcKeyView = client.get(&format!("/api/v1/rpc-keys/{id}")).await?;
            show(format, &key, columns::RPC_KEY)?;
        }
        RpcKeyCmd::Update {
            id,
            name,
            plan,
            scope,
        } => {
            let request = update_request(name, plan, scope);
            if request.is_empty() {
                anyhow::bail!(
                    "nothing to change: give --name, --plan, --chains, --allow-methods, --deny-methods, --ip-allow or --origin-allow"
                );
            }
            let key: RpcKeyView = client
                .patch(&format!("/api/v1/rpc-keys/{id}"), &request)
                .await?;
            show(format, &key, columns::RPC_KEY)?;
        }
        RpcKeyCmd::Revoke { id } => {
            client.delete(&format!("/api/v1/rpc-keys/{id}")).await?;
            match format {
                Format::Json => super::output::json(&serde_json::json!({ "revoked": id }))?,
                Format::Table => println!("RPC key {id} revoked"),
            }
        }
        RpcKeyCmd::Plans => {
            let plans: Page<RpcPlanView> = client.get("/api/v1/rpc-plans").await?;
            list(format, &plans, columns::RPC_PLAN)?;
        }
    }
    Ok(())
}

pub async fn usage(opts: &ConnectOpts, format: Format, args: UsageArgs) -> Result<()> {
    let mut client = Client::new(opts)?;
    let usage: UsageView = client.get(&usage_path(&args)).await?;
    match format {
        Format::Json => super::output::json(&usage),
        Format::Table => {
            print!("{}", usage_table(&usage));
            Ok(())
        }
    }
}

/// `hood usage` as text: the window, the rows (if any), the totals.
fn usage_table(usage: &UsageView) -> String {
    let mut out = format!(
        "usage from {} to {} by {}\n",
        usage.from, usage.to, usage.granularity
    );
    if !usage.rows.is_empty() {
        out.push('\n');
        out.push_str(&table(&usage.rows, columns::USAGE_ROW));
    }
    out.push_str(&format!(
        "\ntotal: {} requests, {} compute units, {} errors\n",
        usage.totals.requests, usage.totals.compute_units, usage.totals.errors
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_query_is_encoded() {
        let args = UsageArgs {
            key: None,
            chain: Some("ethereum".into()),
            from: Some("2025-01-01T00:00:00+01:00".into()),
            to: None,
            granularity: GranularityArg::Day,
        };
        assert_eq!(
            usage_path(&args),
            "/api/v1/usage?granularity=day&chain=ethereum&from=2025-01-01T00%3A00%3A00%2B01%3A00"
        );
    }

    fn scope(chains: Option<Vec<&str>>, deny: Option<Vec<&str>>) -> ScopeArgs {
        let owned = |l: Option<Vec<&str>>| l.map(|l| l.into_iter().map(str::to_owned).collect());
        ScopeArgs {
            chains: owned(chains),
            allow_methods: None,
            deny_methods: owned(deny),
            ip_allow: None,
            origin_allow: None,
        }
    }

    #[test]
    fn scope_flags_become_lists_and_empty_clears() {
        let request = update_request(
            None,
            None,
            scope(Some(vec!["ethereum", " solana "]), Some(vec![""])),
        );
        assert_eq!(
            request.chains,
            Some(vec!["ethereum".to_owned(), "solana".to_owned()])
        );
        assert_eq!(request.denied_methods, Some(vec![]), "'' lifts the list");
        assert_eq!(request.allowed_methods, None, "not given: unchanged");
        assert!(!request.is_empty());
        assert!(update_request(None, None, scope(None, None)).is_empty());
    }

    #[test]
    fn a_create_request_leaves_lists_not_given_empty() {
        let request = create_request(
            "k".into(),
            "free".into(),
            scope(None, Some(vec!["debug_*", "trace_*"])),
        );
        let body = serde_json::to_value(&request).expect("serializable");
        assert_eq!(
            body,
            serde_json::json!({
                "name": "k", "plan": "free", "chains": [], "allowed_methods": [],
                "denied_methods": ["debug_*", "trace_*"], "ip_allow": [], "origin_allow": []
            })
        );
    }

    #[test]
    fn usage_table_shows_window_rows_and_totals() {
        let usage: UsageView = serde_json::from_value(serde_json::json!({
            "from": "2025-01-01T00:00:00Z", "to": "2025-01-02T00:00:00Z", "granularity": "day",
            "rows": [{
                "bucket_start": "2025-01-01T00:00:00Z", "key_id": "00000000-0000-0000-0000-000000000001",
                "chain": "ethereum", "method": "eth_call", "requests": 12, "compute_units": 312,
                "errors": 1, "avg_latency_us": 950
            }],
            "totals": {"requests": 12, "compute_units": 312, "errors": 1}
        }))
        .expect("a usage view");
        let text = usage_table(&usage);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "usage from 2025-01-01T00:00:00Z to 2025-01-02T00:00:00Z by day"
        );
        assert!(lines[2].starts_with("BUCKET_START"), "{text}");
        assert!(
            lines[3].contains("eth_call") && lines[3].contains("312"),
            "{text}"
        );
        assert_eq!(
            lines.last().copied(),
            Some("total: 12 requests, 312 compute units, 1 errors")
        );
        let empty = UsageView {
            rows: vec![],
            ..usage
        };
        assert!(!usage_table(&empty).contains("BUCKET_START"));
    }
}
