//! `hood node …`: managed nodes.

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{list, show, Format};
use anyhow::{bail, Result};
use clap::Subcommand;
use hood_api::routes::fleet::WorkflowView;
use hood_api::routes::keys::{KeyExportRequest, KeyExportView};
use hood_api::routes::nodes::{
    CreateNodeRequest, NodeAccepted, NodeEventView, NodeLabels, NodeLogsView, NodeView,
    SnapshotSeedRequest,
};
use hood_api::routes::snapshots::{
    RestoreRequest, SnapshotAccepted, SnapshotView, TakeSnapshotRequest,
};
use hood_api::views::Page;
use reqwest::Method;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

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
        /// Start from another node's complete snapshot: NODE_ID/SNAPSHOT.
        #[arg(long)]
        from_snapshot: Option<String>,
        /// A label, KEY=VALUE (repeat the flag).
        #[arg(long = "label")]
        labels: Vec<String>,
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    List {
        /// Only nodes whose labels match, e.g. `region=eu,tier!=canary`.
        #[arg(long, short = 'l')]
        selector: Option<String>,
    },
    Show {
        id: String,
    },
    /// Shows the node's labels, or changes them: `KEY=VALUE` sets a label,
    /// `KEY-` removes one; the others stay.
    Label {
        id: String,
        changes: Vec<String>,
    },
    /// The node's history.
    Events {
        id: String,
    },
    /// Exports the node's key material sealed to your X25519 public key
    /// (organization admins; recorded in the node's events). Open it with
    /// `hood keys open`.
    ExportKeys {
        id: String,
        /// Your public key: a file with its base64 (`hood keys generate`).
        #[arg(long)]
        public_key: std::path::PathBuf,
    },
    /// The tail of the node's process logs (from its agent).
    Logs {
        id: String,
        #[arg(long, default_value_t = 100)]
        lines: u32,
        /// Keep printing new lines as they are written, until the node
        /// stops running on a host (or Ctrl-C).
        #[arg(long, short)]
        follow: bool,
    },
    /// Restarts the node's processes from its chain's current recipe
    /// (arguments, environment, files) and, unless --no-wait, follows it
    /// until it serves again.
    Reconfigure {
        id: String,
        #[arg(long)]
        no_wait: bool,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Takes a snapshot of the node's data into the object store (the node
    /// stops while it is packed) and, unless --no-wait, follows the upload.
    Snapshot {
        id: String,
        /// Unique per node; default `manual-{unix ms}`.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        no_wait: bool,
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
    },
    /// The node's snapshots, newest first, with their upload progress.
    Snapshots {
        id: String,
    },
    /// Replaces the node's data directory with one of its snapshots and,
    /// unless --no-wait, follows it until the node serves again.
    Restore {
        id: String,
        snapshot: String,
        #[arg(long)]
        no_wait: bool,
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
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
            from_snapshot,
            labels,
            no_wait,
            timeout,
        } => {
            let labels = apply_label_changes(BTreeMap::new(), &labels)?;
            let from_snapshot = match from_snapshot {
                Some(s) => {
                    let (node, snapshot) = s.split_once('/').ok_or_else(|| {
                        anyhow::anyhow!("--from-snapshot takes NODE_ID/SNAPSHOT, not `{s}`")
                    })?;
                    Some(SnapshotSeedRequest {
                        node_id: node
                            .parse()
                            .map_err(|_| anyhow::anyhow!("`{node}` is not a node id"))?,
                        snapshot: snapshot.to_owned(),
                    })
                }
                None => None,
            };
            let request = CreateNodeRequest {
                chain,
                node_type,
                name,
                provider,
                region,
                from_snapshot,
                labels,
            };
            let accepted: NodeAccepted = client.post("/api/v1/nodes", &request).await?;
            if no_wait {
                return show(format, &accepted, columns::NODE_ACCEPTED);
            }
            let id = accepted.node.id.to_string();
            eprintln!("node {id} requested (workflow {})", accepted.workflow_id);
            let node = follow(
                &mut client,
                &id,
                0,
                &["healthy"],
                &["failed", "terminated"],
                timeout,
            )
            .await?;
            show(format, &node, columns::NODE)
        }
        NodeCmd::List { selector } => {
            let path = match selector {
                Some(s) => format!(
                    "/api/v1/nodes?selector={}",
                    form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                ),
                None => "/api/v1/nodes".to_owned(),
            };
            let nodes: Page<NodeView> = client.get(&path).await?;
            list(format, &nodes, columns::NODE)
        }
        NodeCmd::Label { id, changes } => {
            let path = format!("/api/v1/nodes/{id}/labels");
            let mut now: NodeLabels = client.get(&path).await?;
            if !changes.is_empty() {
                let labels = apply_label_changes(now.labels, &changes)?;
                now = client
                    .call(Method::PUT, &path, Some(&NodeLabels { labels }))
                    .await?;
            }
            match format {
                Format::Json => super::output::json(&now),
                Format::Table => {
                    for (k, v) in &now.labels {
                        println!("{k}={v}");
                    }
                    Ok(())
                }
            }
        }
        NodeCmd::Show { id } => {
            let node: NodeView = client.get(&format!("/api/v1/nodes/{id}")).await?;
            show(format, &node, columns::NODE)
        }
        NodeCmd::ExportKeys { id, public_key } => {
            let public_key = super::keys::read_key_file(&public_key)?;
            let export: KeyExportView = client
                .post(
                    &format!("/api/v1/nodes/{id}/key-export"),
                    &KeyExportRequest { public_key },
                )
                .await?;
            show(format, &export, columns::KEY_EXPORT)
        }
        NodeCmd::Logs {
            id,
            lines,
            follow: true,
        } => {
            client
                .follow_log_lines(
                    &format!("/api/v1/nodes/{id}/logs/follow?lines={lines}"),
                    |data| match serde_json::from_str::<hood_api::routes::nodes::NodeLogLine>(data)
                    {
                        Ok(l) => format!("{} | {}", l.process, l.line),
                        Err(_) => data.to_owned(),
                    },
                )
                .await
        }
        NodeCmd::Logs { id, lines, .. } => {
            let logs: NodeLogsView = client
                .get(&format!("/api/v1/nodes/{id}/logs?lines={lines}"))
                .await?;
            match format {
                Format::Json => super::output::json(&logs)?,
                Format::Table => {
                    for (process, lines) in &logs {
                        for line in lines {
                            println!("{process} | {line}");
                        }
                    }
                }
            }
            Ok(())
        }
        NodeCmd::Events { id } => {
            let events: Page<NodeEventView> =
                client.get(&format!("/api/v1/nodes/{id}/events")).await?;
            list(format, &events, columns::NODE_EVENT)
        }
        NodeCmd::Reconfigure {
            id,
            no_wait,
            timeout,
        } => {
            let seen = last_event(&mut client, &id).await?;
            let accepted: NodeAccepted = client
                .call(
                    Method::POST,
                    &format!("/api/v1/nodes/{id}/reconfigure"),
                    None::<&()>,
                )
                .await?;
            if no_wait {
                return show(format, &accepted, columns::NODE_ACCEPTED);
            }
            follow_run(
                &mut client,
                &id,
                &accepted.workflow_id,
                seen,
                timeout,
                "reconfiguring",
            )
            .await?;
            let node: NodeView = client.get(&format!("/api/v1/nodes/{id}")).await?;
            show(format, &node, columns::NODE)
        }
        NodeCmd::Snapshot {
            id,
            name,
            no_wait,
            timeout,
        } => {
            let seen = last_event(&mut client, &id).await?;
            let accepted: SnapshotAccepted = client
                .call(
                    Method::POST,
                    &format!("/api/v1/nodes/{id}/snapshots"),
                    Some(&TakeSnapshotRequest { name }),
                )
                .await?;
            if no_wait {
                return show(format, &accepted, columns::SNAPSHOT_ACCEPTED);
            }
            follow_run(
                &mut client,
                &id,
                &accepted.workflow_id,
                seen,
                timeout,
                "snapshotting",
            )
            .await?;
            let all: Page<SnapshotView> =
                client.get(&format!("/api/v1/nodes/{id}/snapshots")).await?;
            match all.items.into_iter().find(|s| s.name == accepted.name) {
                Some(s) => show(format, &s, columns::SNAPSHOT),
                None => bail!("snapshot {} is gone", accepted.name),
            }
        }
        NodeCmd::Snapshots { id } => {
            let all: Page<SnapshotView> =
                client.get(&format!("/api/v1/nodes/{id}/snapshots")).await?;
            list(format, &all, columns::SNAPSHOT)
        }
        NodeCmd::Restore {
            id,
            snapshot,
            no_wait,
            timeout,
        } => {
            let seen = last_event(&mut client, &id).await?;
            let accepted: NodeAccepted = client
                .call(
                    Method::POST,
                    &format!("/api/v1/nodes/{id}/restore"),
                    Some(&RestoreRequest { snapshot }),
                )
                .await?;
            if no_wait {
                return show(format, &accepted, columns::NODE_ACCEPTED);
            }
            follow_run(
                &mut client,
                &id,
                &accepted.workflow_id,
                seen,
                timeout,
                "restoring",
            )
            .await?;
            let node: NodeView = client.get(&format!("/api/v1/nodes/{id}")).await?;
            show(format, &node, columns::NODE)
        }
        NodeCmd::Delete {
            id,
            no_wait,
            timeout,
        } => {
            // Follow only what happens from now on.
            let history: Page<NodeEventView> = client
                .get(&format!("/api/v1/nodes/{id}/events?limit=1000"))
                .await?;
            let seen = history.items.last().map_or(0, |e| e.seq);
            let accepted: NodeAccepted = client
                .call(Method::DELETE, &format!("/api/v1/nodes/{id}"), None::<&()>)
                .await?;
            if no_wait {
                return show(format, &accepted, columns::NODE_ACCEPTED);
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
            show(format, &node, columns::NODE)
        }
    }
}

/// `KEY=VALUE` sets a label, `KEY-` removes one (the server validates
/// keys and values).
fn apply_label_changes(
    mut labels: BTreeMap<String, String>,
    changes: &[String],
) -> Result<BTreeMap<String, String>> {
    for c in changes {
        if let Some((k, v)) = c.split_once('=') {
            labels.insert(k.to_owned(), v.to_owned());
        } else if let Some(k) = c.strip_suffix('-') {
            labels.remove(k);
        } else {
            bail!("`{c}` is neither KEY=VALUE (set a label) nor KEY- (remove one)");
        }
    }
    Ok(labels)
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
) -> Result<NodeView> {
    let started = Instant::now();
    loop {
        let events: Page<NodeEventView> = client
            .get(&format!("/api/v1/nodes/{id}/events?after={after}"))
            .await?;
        for e in &events.items {
            after = after.max(e.seq);
            let secs = started.elapsed().as_secs();
            match (&e.from_state, &e.to_state) {
                (Some(from), Some(to)) => eprintln!("[{secs:>3}s] {from} -> {to}  {}", e.message),
                _ => eprintln!("[{secs:>3}s] {}", e.message),
            }
        }
        let _ = std::io::stderr().flush();
        let node: NodeView = client.get(&format!("/api/v1/nodes/{id}")).await?;
        if done.contains(&node.state.as_str()) {
            return Ok(node);
        }
        if fail.contains(&node.state.as_str()) {
            let reason = node
                .failure_reason
                .as_deref()
                .unwrap_or("no reason recorded");
            bail!("node {id} is {}: {reason}", node.state);
        }
        if started.elapsed() > Duration::from_secs(timeout) {
            bail!(
                "node {id} is still {} after {timeout} s (it keeps going; check `hood node show {id}`)",
                node.state
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The sequence number of the node's latest event: what to follow after.
async fn last_event(client: &mut Client, id: &str) -> Result<i64> {
    let history: Page<NodeEventView> = client
        .get(&format!("/api/v1/nodes/{id}/events?limit=1000"))
        .await?;
    Ok(history.items.last().map_or(0, |e| e.seq))
}

/// Prints the node's events as its workflow runs, until the run ends:
/// `Ok` when it completed, the run's error otherwise.
async fn follow_run(
    client: &mut Client,
    id: &str,
    workflow_id: &str,
    mut seen: i64,
    timeout: u64,
    doing: &str,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let events: Page<NodeEventView> = client
            .get(&format!("/api/v1/nodes/{id}/events?after={seen}"))
            .await?;
        for e in &events.items {
            seen = seen.max(e.seq);
            eprintln!("[{:>3}s] {}", started.elapsed().as_secs(), e.message);
        }
        let run: WorkflowView = client
            .get(&format!("/api/v1/workflows/{workflow_id}"))
            .await?;
        match run.state.as_str() {
            "completed" => return Ok(()),
            "failed" | "stuck" | "abandoned" => bail!(
                "{doing} node {id} {}: {}",
                run.state,
                run.error.as_deref().unwrap_or("no error recorded")
            ),
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(timeout) {
            bail!("{doing} node {id} did not end within {timeout} s (workflow {workflow_id})");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
