//! `hood container …`: containers, a named image run as an allocation of a
//! SKU. A container is named by its id or its name.

use super::alloc::read_ssh_keys;
use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{list, show, Format};
use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use hood_api::routes::allocations::AllocationLogsView;
use hood_api::routes::containers::{ContainerView, CreateContainerRequest, RestartView};
use hood_api::views::Page;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    /// Creates a container and starts it (`hood alloc skus` lists SKUs).
    Create(Box<CreateArgs>),
    /// The organization's containers, newest first.
    List,
    Show {
        container: String,
    },
    /// Starts it on a new allocation (a running one is left alone).
    Start {
        container: String,
    },
    /// Stops it: its allocation is released, billing stops.
    Stop {
        container: String,
    },
    /// Stops it and starts it again on a new allocation.
    Restart {
        container: String,
    },
    /// Deletes it (stopping it first).
    Delete {
        container: String,
    },
    /// The last lines it wrote (stdout and stderr).
    Logs {
        container: String,
        #[arg(long, default_value_t = 100)]
        lines: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Restart {
    Never,
    OnFailure,
    UnlessStopped,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Unique in the organization: lowercase letters, digits and `-`.
    pub name: String,
    /// The image, from the hosts' image store.
    #[arg(long)]
    pub image: String,
    /// The SKU, e.g. `cpu.1c`.
    #[arg(long)]
    pub sku: String,
    /// An environment variable, `NAME=VALUE` (repeat for more).
    #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// A TCP port it serves (repeat for more).
    #[arg(long = "port", short = 'p', value_name = "PORT")]
    pub ports: Vec<u16>,
    /// An OpenSSH public key file allowed in (repeat for more).
    #[arg(long = "ssh-key", value_name = "FILE")]
    pub ssh_keys: Vec<PathBuf>,
    /// When its host restarts its command once it ends.
    #[arg(long, value_enum, default_value = "never")]
    pub restart: Restart,
    /// The command to run, after `--` (default: the image's own).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// `NAME=VALUE` pairs as a map; a pair without `=` is refused.
fn parse_env(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--env {pair:?}: expected NAME=VALUE");
        };
        env.insert(name.to_owned(), value.to_owned());
    }
    Ok(env)
}

pub async fn run(opts: &ConnectOpts, format: Format, cmd: ContainerCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    let path = |c: &str, action: &str| format!("/api/v1/containers/{c}{action}");
    let shown: ContainerView = match cmd {
        ContainerCmd::Create(args) => {
            let body = CreateContainerRequest {
                name: args.name,
                sku: args.sku,
                image: args.image,
                command: args.command,
                env: parse_env(&args.env)?,
                ports: args.ports,
                ssh_public_keys: read_ssh_keys(&args.ssh_keys)?,
                restart: Some(match args.restart {
                    Restart::Never => RestartView::Never,
                    Restart::OnFailure => RestartView::OnFailure,
                    Restart::UnlessStopped => RestartView::UnlessStopped,
                }),
            };
            client.post("/api/v1/containers", &body).await?
        }
        ContainerCmd::List => {
            let page: Page<ContainerView> = client.get("/api/v1/containers").await?;
            return list(format, &page, columns::CONTAINER);
        }
        ContainerCmd::Show { container } => client.get(&path(&container, "")).await?,
        ContainerCmd::Start { container } => {
            client
                .post(&path(&container, "/start"), &serde_json::json!({}))
                .await?
        }
        ContainerCmd::Stop { container } => {
            client
                .post(&path(&container, "/stop"), &serde_json::json!({}))
                .await?
        }
        ContainerCmd::Restart { container } => {
            client
                .post(&path(&container, "/restart"), &serde_json::json!({}))
                .await?
        }
        ContainerCmd::Logs { container, lines } => {
            let logs: AllocationLogsView = client
                .get(&path(&container, &format!("/logs?lines={lines}")))
                .await?;
            for line in logs.lines {
                println!("{line}");
            }
            return Ok(());
        }
        ContainerCmd::Delete { container } => {
            client.delete(&path(&container, "")).await?;
            println!("container {container} deleted");
            return Ok(());
        }
    };
    show(format, &shown, columns::CONTAINER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_pairs_split_at_the_first_equals_sign() {
        let env = parse_env(&["A=1".into(), "B=x=y".into(), "C=".into()]).unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "x=y");
        assert_eq!(env["C"], "");
        assert!(parse_env(&["NOPE".into()]).is_err());
    }
}
