//! `hood rollout …`: health-gated upgrades of a chain's nodes, with a live
//! progress display (`--watch`).

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{list, table, Format};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use hood_api::routes::rollouts::{CreateRolloutRequest, RolloutKindView, RolloutView};
use hood_api::views::Page;
use reqwest::Method;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum RolloutCmd {
    /// Plans a rollout (and with --start, starts it).
    Create(Box<CreateArgs>),
    /// Starts a planned rollout.
    Start(ActionArgs),
    /// Starts no new batch until resumed (the batch in flight finishes).
    Pause(ActionArgs),
    Resume(ActionArgs),
    /// Stops before the next batch; upgraded nodes stay upgraded.
    Abort(ActionArgs),
    /// Lets the next approval-gated batch start.
    Approve(ActionArgs),
    /// One rollout with every node's progress.
    Show(ActionArgs),
    /// Rollouts, newest first.
    List,
}

#[derive(Debug, Args)]
pub struct ActionArgs {
    pub id: Uuid,
    /// Follow the rollout until it ends, redrawing its progress.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Chain profile whose nodes are upgraded.
    #[arg(long)]
    pub chain: String,
    /// Apply the chain's current recipe to each target (`reconfigure-node`
    /// in batches) instead of another version.
    #[arg(long, conflicts_with_all = ["upgrade", "version", "binary", "forward_only"])]
    pub reconfigure: bool,
    /// Upgrade manifest (`chains/upgrades/{chain}/{id}.yaml`).
    #[arg(long, conflicts_with_all = ["version", "binary"])]
    pub upgrade: Option<String>,
    /// Without a manifest: the binary (default: the chain's first)…
    #[arg(long)]
    pub binary: Option<String>,
    /// …and the version to roll out.
    #[arg(long)]
    pub version: Option<String>,
    /// Without a manifest: data the new version writes may not open with
    /// the old one (a revert restores the snapshot taken before).
    #[arg(long)]
    pub forward_only: bool,
    #[arg(long)]
    pub node_type: Option<String>,
    /// Only these nodes (repeat the flag).
    #[arg(long = "node")]
    pub nodes: Vec<Uuid>,
    /// Only nodes whose labels match, e.g. `region=eu,tier!=canary`.
    #[arg(long, short = 'l')]
    pub selector: Option<String>,
    /// Nodes in the first batch (0: no canary).
    #[arg(long)]
    pub canary: Option<u32>,
    /// Nodes per batch after the canary.
    #[arg(long, conflicts_with = "batch_percent")]
    pub batch_size: Option<u32>,
    /// Batch size as a share of the targets (1–100).
    #[arg(long)]
    pub batch_percent: Option<u8>,
    #[arg(long)]
    pub max_unavailable: Option<u32>,
    /// Failed nodes tolerated before every upgraded node reverts.
    #[arg(long)]
    pub failure_budget: Option<u32>,
    /// Wait for `hood rollout approve` before each batch after the first.
    #[arg(long)]
    pub require_approval: bool,
    /// Seconds an upgraded node must stay healthy before it counts.
    #[arg(long)]
    pub soak: Option<u32>,
    /// Seconds a new version has to serve its old head.
    #[arg(long)]
    pub verify_timeout: Option<u32>,
    /// Start at once.
    #[arg(long)]
    pub start: bool,
    /// With --start: follow it until it ends.
    #[arg(long, requires = "start")]
    pub watch: bool,
}

pub async fn run(opts: &ConnectOpts, format: Format, cmd: RolloutCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    let (rollout, watch): (RolloutView, bool) = match cmd {
        RolloutCmd::List => {
            let page: Page<RolloutView> = client.get("/api/v1/rollouts").await?;
            return list(format, &page, columns::ROLLOUT);
        }
        RolloutCmd::Create(a) => {
            let watch = a.watch;
            let req = CreateRolloutRequest {
                chain: a.chain,
                kind: if a.reconfigure {
                    RolloutKindView::Reconfigure
                } else {
                    RolloutKindView::Upgrade
                },
                selector: a.selector,
                upgrade_id: a.upgrade,
                binary: a.binary,
                version: a.version,
                forward_only: a.forward_only,
                node_type: a.node_type,
                nodes: a.nodes,
                canary: a.canary,
                batch_size: a.batch_size,
                batch_percent: a.batch_percent,
                max_unavailable: a.max_unavailable,
                failure_budget: a.failure_budget,
                require_approval: a.require_approval.then_some(true),
                soak_s: a.soak,
                verify_timeout_s: a.verify_timeout,
                start: a.start,
            };
            (client.post("/api/v1/rollouts", &req).await?, watch)
        }
        RolloutCmd::Show(a) => (
            client.get(&format!("/api/v1/rollouts/{}", a.id)).await?,
            a.watch,
        ),
        RolloutCmd::Start(a) => (action(&mut client, a.id, "start").await?, a.watch),
        RolloutCmd::Pause(a) => (action(&mut client, a.id, "pause").await?, a.watch),
        RolloutCmd::Resume(a) => (action(&mut client, a.id, "resume").await?, a.watch),
        RolloutCmd::Abort(a) => (action(&mut client, a.id, "abort").await?, a.watch),
        RolloutCmd::Approve(a) => (action(&mut client, a.id, "approve").await?, a.watch),
    };
    if watch {
        return follow(&mut client, format, rollout).await;
    }
    print_rollout(format, &rollout)
}

async fn action(client: &mut Client, id: Uuid, verb: &str) -> Result<RolloutView> {
    client
        .call(
            Method::POST,
            &format!("/api/v1/rollouts/{id}/{verb}"),
            None::<&()>,
        )
        .await
}

fn print_rollout(format: Format, rollout: &RolloutView) -> Result<()> {
    match format {
        Format::Json => super::output::json(rollout),
        Format::Table => {
            print!("{}", rollout_text(rollout));
            Ok(())
        }
    }
}

/// Whether the rollout can still change by itself.
fn ended(state: &str) -> bool {
    matches!(state, "completed" | "reverted" | "aborted" | "failed")
}

/// Redraws the rollout every two seconds until it ends (a terminal shows
/// one screen; a pipe gets one block per change). Exits non-zero unless
/// it completed.
async fn follow(client: &mut Client, format: Format, mut rollout: RolloutView) -> Result<()> {
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal() && format == Format::Table;
    let mut last = String::new();
    loop {
        let text = match format {
            Format::Table => rollout_text(&rollout),
            Format::Json => serde_json::to_string(&rollout)? + "\n",
        };
        if text != last {
            if tty {
                // Clear the screen and home the cursor.
                print!("\x1b[2J\x1b[H");
            }
            print!("{text}");
            last = text;
        }
        if ended(&rollout.state) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        rollout = client
            .get(&format!("/api/v1/rollouts/{}", rollout.id))
            .await?;
    }
    if rollout.state != "completed" {
        bail!(
            "rollout {} ended {}: {}",
            rollout.id,
            rollout.state,
            rollout.error.as_deref().unwrap_or("no error recorded")
        );
    }
    Ok(())
}

/// The rollout's row, a progress bar, then one row per node.
fn rollout_text(r: &RolloutView) -> String {
    let mut out = table(std::slice::from_ref(r), columns::ROLLOUT);
    let p = &r.progress;
    let width = 30usize;
    let done = usize::try_from(p.upgraded + p.reverted + p.skipped).unwrap_or(0);
    let total = usize::try_from(p.total).unwrap_or(0).max(1);
    let filled = (done * width / total).min(width);
    out.push_str(&format!(
        "\n[{}{}] {done}/{total} · upgrading {} · soaking {} · failed {} · reverting {}\n",
        "#".repeat(filled),
        ".".repeat(width - filled),
        p.upgrading,
        p.soaking,
        p.failed,
        p.reverting
    ));
    if let Some(nodes) = &r.nodes {
        out.push('\n');
        out.push_str(&table(nodes, columns::ROLLOUT_NODE));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rollout_shows_a_bar_and_its_nodes() {
        let view: RolloutView = serde_json::from_value(json!({
            "id": "0190c0de-0000-7000-8000-000000000001", "kind": "upgrade",
            "upgrade_id": "anvil-1.5.1-to-1.7.1",
            "chain": "ethereum-anvil", "node_type": null, "binary": "anvil",
            "from_version": "1.5.1", "to_version": "1.7.1", "forward_only": false,
            "policy": {"canary": 1, "batch_size": 2, "max_unavailable": 2, "failure_budget": 0,
                "require_approval": false},
            "soak_s": 5, "verify_timeout_s": 60, "state": "running", "approved_through": 0,
            "error": null, "created_by": "user x", "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "progress": {"total": 4, "waiting": 2, "upgrading": 1, "soaking": 0, "upgraded": 1,
                "failed": 0, "reverting": 0, "reverted": 0, "skipped": 0},
            "nodes": [{"node_id": "0190c0de-0000-7000-8000-000000000002", "name": "a",
                "batch": 0, "state": "upgraded", "from_version": "1.5.1", "version": "1.7.1",
                "node_state": "healthy", "head_height": 42, "soak_until": null, "error": null}]
        }))
        .expect("a rollout view");
        let text = rollout_text(&view);
        assert!(text.contains("1/4"), "{text}");
        assert!(
            text.contains(&format!("[{}{}]", "#".repeat(7), ".".repeat(23))),
            "{text}"
        );
        assert!(text.contains("upgrading 1"), "{text}");
        let node_line = text.lines().last().unwrap_or_default();
        assert!(
            node_line.contains("1.7.1") && node_line.contains("42"),
            "{text}"
        );
        assert!(!ended("running") && ended("reverted"));
    }
}
