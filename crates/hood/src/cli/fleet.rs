//! `hood host …` and `hood workflow …`.

use super::client::{Client, ConnectOpts};
use super::output::{print, Format};
use anyhow::Result;
use clap::Subcommand;
use serde_json::{json, Value};

const HOST_COLUMNS: &[&str] = &[
    "id",
    "provider",
    "region",
    "state",
    "connected",
    "address",
    "last_seen_at",
];
const WORKFLOW_COLUMNS: &[&str] = &[
    "id",
    "name",
    "version",
    "state",
    "waiting_for",
    "error",
    "updated_at",
];
const STEP_COLUMNS: &[&str] = &["index", "name", "state", "attempt", "error", "undo_error"];

#[derive(Debug, Subcommand)]
pub enum HostCmd {
    List,
    Show { id: String },
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
    let mut client = Client::new(opts)?;
    let v: Value = match cmd {
        HostCmd::List => client.get("/api/v1/hosts").await?,
        HostCmd::Show { id } => client.get(&format!("/api/v1/hosts/{id}")).await?,
    };
    print(format, &v, HOST_COLUMNS);
    Ok(())
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
    let v: Value = match cmd {
        WorkflowCmd::List { state, name } => {
            client
                .get(&format!("/api/v1/workflows{}", query(state, name)))
                .await?
        }
        WorkflowCmd::Show { id } => client.get(&format!("/api/v1/workflows/{id}")).await?,
        WorkflowCmd::Retry { id } => {
            client
                .post(&format!("/api/v1/workflows/{id}/retry"), &json!({}))
                .await?
        }
        WorkflowCmd::Abandon { id, reason } => {
            client
                .post(
                    &format!("/api/v1/workflows/{id}/abandon"),
                    &json!({ "reason": reason }),
                )
                .await?
        }
    };
    print(format, &v, WORKFLOW_COLUMNS);
    if format == Format::Table {
        if let Some(steps) = v.get("steps") {
            println!();
            print(format, &json!({ "items": steps }), STEP_COLUMNS);
        }
    }
    Ok(())
}
