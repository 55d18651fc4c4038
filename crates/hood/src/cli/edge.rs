//! `hood rpc-key …` and `hood usage`.

use super::client::{Client, ConnectOpts};
use super::output::{print, Format};
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

const RPC_KEY_COLUMNS: &[&str] = &[
    "id",
    "name",
    "prefix",
    "plan",
    "chains",
    "allowed_methods",
    "denied_methods",
    "ip_allow",
    "origin_allow",
    "revoked_at",
];
const PLAN_COLUMNS: &[&str] = &["name", "cu_per_minute", "burst_cu"];
const USAGE_COLUMNS: &[&str] = &[
    "bucket_start",
    "key_id",
    "chain",
    "method",
    "requests",
    "compute_units",
    "errors",
    "avg_latency_us",
];

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
    /// The given lists as request fields, empty entries dropped.
    fn into_fields(self, body: &mut Map<String, Value>) {
        let lists = [
            ("chains", self.chains),
            ("allowed_methods", self.allow_methods),
            ("denied_methods", self.deny_methods),
            ("ip_allow", self.ip_allow),
            ("origin_allow", self.origin_allow),
        ];
        for (field, list) in lists {
            if let Some(list) = list {
                let list: Vec<String> = list
                    .into_iter()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                body.insert(field.into(), json!(list));
            }
        }
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
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("plan".into(), json!(plan));
            scope.into_fields(&mut body);
            let v: Value = client
                .post("/api/v1/rpc-keys", &Value::Object(body))
                .await?;
            match format {
                Format::Json => print(format, &v, &[]),
                Format::Table => {
                    print(format, &v, RPC_KEY_COLUMNS);
                    let key = v.get("key").and_then(Value::as_str).unwrap_or_default();
                    println!("\nRPC key (shown once, store it now):\n{key}");
                }
            }
        }
        RpcKeyCmd::List => {
            let v: Value = client.get("/api/v1/rpc-keys").await?;
            print(format, &v, RPC_KEY_COLUMNS);
        }
        RpcKeyCmd::Show { id } => {
            let v: Value = client.get(&format!("/api/v1/rpc-keys/{id}")).await?;
            print(format, &v, RPC_KEY_COLUMNS);
        }
        RpcKeyCmd::Update {
            id,
            name,
            plan,
            scope,
        } => {
            let mut body = Map::new();
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            if let Some(p) = plan {
                body.insert("plan".into(), json!(p));
            }
            scope.into_fields(&mut body);
            if body.is_empty() {
                anyhow::bail!(
                    "nothing to change: give --name, --plan, --chains, --allow-methods, --deny-methods, --ip-allow or --origin-allow"
                );
            }
            let v: Value = client
                .patch(&format!("/api/v1/rpc-keys/{id}"), &Value::Object(body))
                .await?;
            print(format, &v, RPC_KEY_COLUMNS);
        }
        RpcKeyCmd::Revoke { id } => {
            client.delete(&format!("/api/v1/rpc-keys/{id}")).await?;
            match format {
                Format::Json => print(format, &json!({ "revoked": id }), &[]),
                Format::Table => println!("RPC key {id} revoked"),
            }
        }
        RpcKeyCmd::Plans => {
            let v: Value = client.get("/api/v1/rpc-plans").await?;
            print(format, &v, PLAN_COLUMNS);
        }
    }
    Ok(())
}

pub async fn usage(opts: &ConnectOpts, format: Format, args: UsageArgs) -> Result<()> {
    let mut client = Client::new(opts)?;
    let v: Value = client.get(&usage_path(&args)).await?;
    match format {
        Format::Json => print(format, &v, &[]),
        Format::Table => {
            let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
            println!(
                "usage from {} to {} by {}",
                text("from"),
                text("to"),
                text("granularity")
            );
            let rows = v.get("rows").cloned().unwrap_or(json!([]));
            if rows.as_array().is_some_and(|r| !r.is_empty()) {
                println!();
                print(format, &json!({ "items": rows }), USAGE_COLUMNS);
            }
            let total = |k: &str| {
                v.pointer(&format!("/totals/{k}"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            };
            println!(
                "\ntotal: {} requests, {} compute units, {} errors",
                total("requests"),
                total("compute_units"),
                total("errors")
            );
        }
    }
    Ok(())
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

    #[test]
    fn scope_flags_become_lists_and_empty_clears() {
        let scope = ScopeArgs {
            chains: Some(vec!["ethereum".into(), " solana ".into()]),
            allow_methods: None,
            deny_methods: Some(vec![String::new()]),
            ip_allow: None,
            origin_allow: None,
        };
        let mut body = Map::new();
        scope.into_fields(&mut body);
        assert_eq!(
            Value::Object(body),
            json!({"chains": ["ethereum", "solana"], "denied_methods": []})
        );
    }
}
