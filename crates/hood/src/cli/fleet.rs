//! `hood host …` and `hood workflow …`.

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{json, list, show, table, Format};
use anyhow::Result;
use clap::Subcommand;
use hood_api::routes::fleet::{AbandonRequest, HostMetricsView, HostView, WorkflowView};
use hood_api::views::Page;
use reqwest::Method;

#[derive(Debug, Subcommand)]
pub enum HostCmd {
    List,
    Show {
        id: String,
    },
    /// A host's capacity, reservations and what is free; with --cores,
    /// declares its capacity (platform administrators).
    Capacity(super::alloc::CapacityArgs),
    /// The cluster monitor: a host's CPU, memory, disk and network, one
    /// row per heartbeat, oldest first.
    Metrics {
        id: String,
        /// Minutes back from now (1 to 10080).
        #[arg(long, default_value_t = 60)]
        minutes: i64,
        /// At most this many rows, the newest.
        #[arg(long)]
        limit: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCmd {
    /// Durable workflows, newest first.
    List {
        /// pending, running, waiting, paused, compensating, completed, failed, stuck, abandoned
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// One workflow and its step journal.
    Show { id: String },
    /// Re-runs the compensation of a stuck workflow.
    Retry { id: String },
    /// Gives up on a stuck workflow.
    Abandon {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

pub async fn host(opts: &ConnectOpts, format: Format, cmd: HostCmd) -> Result<()> {
    match cmd {
        HostCmd::Capacity(args) => super::alloc::capacity(opts, format, args).await,
        HostCmd::List => {
            let mut client = Client::new(opts)?;
            let hosts: Page<HostView> = client.get("/api/v1/hosts").await?;
            list(format, &hosts, columns::HOST)
        }
        HostCmd::Metrics { id, minutes, limit } => {
            let mut client = Client::new(opts)?;
            let mut path = format!("/api/v1/hosts/{id}/metrics?minutes={minutes}");
            if let Some(limit) = limit {
                path.push_str(&format!("&limit={limit}"));
            }
            let metrics: HostMetricsView = client.get(&path).await?;
            match format {
                Format::Json => json(&metrics),
                Format::Table => {
                    print!("{}", table(&metrics.points, columns::HOST_METRIC));
                    Ok(())
                }
            }
        }
        HostCmd::Show { id } => {
            let mut client = Client::new(opts)?;
            let host: HostView = client.get(&format!("/api/v1/hosts/{id}")).await?;
            show(format, &host, columns::HOST)
        }
    }
}

fn query(state: Option<String>, name: Option<String>) -> String {
    let mut parts = vec![];
    if let Some(s) = state {
        parts.push(format!("state={s}"));
    }
    if let Some(n) = name {
        parts.push(format!("name={n}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub async fn workflow(opts: &ConnectOpts, format: Format, cmd: WorkflowCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    let workflow: WorkflowView = match cmd {
        WorkflowCmd::List { state, name } => {
            let workflows: Page<WorkflowView> = client
                .get(&format!("/api/v1/workflows{}", query(state, name)))
                .await?;
            return list(format, &workflows, columns::WORKFLOW);
        }
        WorkflowCmd::Show { id } => client.get(&format!("/api/v1/workflows/{id}")).await?,
        WorkflowCmd::Retry { id } => {
            client
                .call(
                    Method::POST,
                    &format!("/api/v1/workflows/{id}/retry"),
                    None::<&()>,
                )
                .await?
        }
        WorkflowCmd::Abandon { id, reason } => {
            client
                .post(
                    &format!("/api/v1/workflows/{id}/abandon"),
                    &AbandonRequest { reason },
                )
                .await?
        }
    };
    match format {
        Format::Json => super::output::json(&workflow),
        Format::Table => {
            print!("{}", workflow_text(&workflow));
            Ok(())
        }
    }
}

/// One workflow as text: its row, then its step journal when present.
fn workflow_text(workflow: &WorkflowView) -> String {
    let mut out = table(std::slice::from_ref(workflow), columns::WORKFLOW);
    if let Some(steps) = &workflow.steps {
        out.push('\n');
        out.push_str(&table(steps, columns::STEP));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workflow(steps: Option<serde_json::Value>) -> WorkflowView {
        let mut answer = json!({"id": "provision-node-x", "name": "provision-node", "version": 1,
            "state": "stuck", "error": "undo failed", "waiting_for": null, "parent_id": null,
            "attempts": 2, "input": {}, "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z"});
        if let Some(steps) = steps {
            answer["steps"] = steps;
        }
        serde_json::from_value(answer).expect("a workflow view")
    }

    #[test]
    fn a_workflow_shows_its_steps_when_it_has_them() {
        let text = workflow_text(&workflow(Some(json!([{"index": 0, "name": "create_host",
            "state": "undo_failed", "attempt": 1, "error": null, "undo_error": "host busy",
            "started_at": null, "finished_at": null}]))));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("ID") && lines[1].contains("stuck"),
            "{text}"
        );
        assert_eq!(lines[2], "");
        assert!(lines[3].starts_with("INDEX"), "{text}");
        assert!(
            lines[4].contains("create_host") && lines[4].contains("host busy"),
            "{text}"
        );

        let text = workflow_text(&workflow(None));
        assert_eq!(text.lines().count(), 2, "no steps, no step table: {text}");
    }
}
