//! `hood node …`: managed nodes.

use super::client::{Client, ConnectOpts};
use super::output::{print, Format};
use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

const NODE_COLUMNS: &[&str] = &[
    "id",
    "name",
    "chain",
    "node_type",
    "state",
    "sync_status",
    "rpc_endpoint",
    "created_at",
];
const EVENT_COLUMNS: &[&str] = &["seq", "at", "kind", "from_state", "to_state", "message"];

#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// Requests a node and, unless --no-wait, follows it until it is healthy or failed.
    Create {
        /// Chain profile, e.g. ethereum-anvil.
        #[arg(long)]
        chain: String,
        #[arg(long = "type")]
        node_type: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    List,
    Show {
        id: String,
    },
    /// The node's history.
    Events {
        id: String,
    },
    /// The tail of the node's process logs (from its agent).
    Logs {
        id: String,
        #[arg(long, default_value_t = 100)]
        lines: u32,
    },
    /// Terminates a node and, unless --no-wait, follows it until it is gone.
    Delete {
        id: String,
        #[arg(long)]
        no_wait: bool,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

pub async fn run(opts: &ConnectOpts, format: Format, cmd: NodeCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        NodeCmd::Create {
            chain,
            node_type,
            name,
            provider,
            region,
            no_wait,
            timeout,
        } => {
            let body = json!({"chain": chain, "node_type": node_type, "name": name, "provider": provider, "region": region});
            let accepted: Value = client.post("/api/v1/nodes", &body).await?;
            let id = accepted["node"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if no_wait {
                print(
                    format,
                    &accepted,
                    &["node.id", "node.name", "node.state", "workflow_id"],
                );
                return Ok(());
            }
            eprintln!(
                "node {id} requested (workflow {})",
                accepted["workflow_id"].as_str().unwrap_or("?")
            );
            let node = follow(
                &mut client,
                &id,
                0,
                &["healthy"],
                &["failed", "terminated"],
                timeout,
            )
            .await?;
            print(format, &node, NODE_COLUMNS);
            Ok(())
        }
        NodeCmd::List => {
            let v: Value = client.get("/api/v1/nodes").await?;
            print(format, &v, NODE_COLUMNS);
            Ok(())
        }
        NodeCmd::Show { id } => {
            let v: Value = client.get(&format!("/api/v1/nodes/{id}")).await?;
            print(format, &v, NODE_COLUMNS);
            Ok(())
        }
        NodeCmd::Logs { id, lines } => {
            let v: Value = client
                .get(&format!("/api/v1/nodes/{id}/logs?lines={lines}"))
                .await?;
            match format {
                Format::Json => print(format, &v, &[]),
                Format::Table => {
                    for (process, lines) in v.as_object().into_iter().flatten() {
                        for line in lines.as_array().into_iter().flatten() {
                            println!("{process} | {}", line.as_str().unwrap_or_default());
                        }
                    }
                }
            }
            Ok(())
        }
        NodeCmd::Events { id } => {
            let v: Value = client.get(&format!("/api/v1/nodes/{id}/events")).await?;
            print(format, &v, EVENT_COLUMNS);
            Ok(())
        }
        NodeCmd::Delete {
            id,
            no_wait,
            timeout,
        } => {
            // Follow only what happens from now on.
            let history: Value = client
                .get(&format!("/api/v1/nodes/{id}/events?limit=1000"))
                .await?;
            let seen = history["items"]
                .as_array()
                .and_then(|a| a.last())
                .and_then(|e| e["seq"].as_i64())
                .unwrap_or(0);
            let accepted: Value = client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/api/v1/nodes/{id}"),
                    None::<&()>,
                )
                .await?
                .unwrap_or_default();
            if no_wait {
                print(format, &accepted, &["node.id", "node.state", "workflow_id"]);
                return Ok(());
            }
            let node = follow(
                &mut client,
                &id,
                seen,
                &["terminated"],
                &["failed"],
                timeout,
            )
            .await?;
            print(format, &node, NODE_COLUMNS);
            Ok(())
        }
    }
}

/// Polls the node, printing each new history entry on stderr, until it
/// reaches one of `done` (success) or `fail` (error).
async fn follow(
    client: &mut Client,
    id: &str,
    mut after: i64,
    done: &[&str],
    fail: &[&str],
    timeout: u64,
) -> Result<Value> {
    let started = Instant::now();
    loop {
        let events: Value = client
            .get(&format!("/api/v1/nodes/{id}/events?after={after}"))
            .await?;
        for e in events["items"].as_array().into_iter().flatten() {
            after = after.max(e["seq"].as_i64().unwrap_or(after));
            let secs = started.elapsed().as_secs();
            let msg = e["message"].as_str().unwrap_or_default();
            match (e["from_state"].as_str(), e["to_state"].as_str()) {
                (Some(from), Some(to)) => eprintln!("[{secs:>3}s] {from} -> {to}  {msg}"),
                _ => eprintln!("[{secs:>3}s] {msg}"),
            }
        }
        let _ = std::io::stderr().flush();
        let node: Value = client.get(&format!("/api/v1/nodes/{id}")).await?;
        let state = node["state"].as_str().unwrap_or_default().to_owned();
        if done.contains(&state.as_str()) {
            return Ok(node);
        }
        if fail.contains(&state.as_str()) {
            let reason = node["failure_reason"]
                .as_str()
                .unwrap_or("no reason recorded");
            bail!("node {id} is {state}: {reason}");
        }
        if started.elapsed() > Duration::from_secs(timeout) {
            bail!("node {id} is still {state} after {timeout} s (it keeps going; check `hood node show {id}`)");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
