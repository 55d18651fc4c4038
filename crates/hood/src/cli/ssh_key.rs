//! `hood ssh-key …`: your SSH public keys, which let you in through Hood's
//! SSH gateway.

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{list, show, Format};
use anyhow::{Context, Result};
use clap::Subcommand;
use hood_api::routes::ssh_keys::{AddSshKeyRequest, SshKeyView};
use hood_api::views::Page;
use std::io::Read;
use std::path::PathBuf;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum SshKeyCmd {
    /// Adds a public key (`~/.ssh/id_ed25519.pub`; `-` reads standard input).
    Add {
        file: PathBuf,
        /// Its name (default: the key's comment, else its fingerprint).
        #[arg(long)]
        name: Option<String>,
    },
    /// Your keys, oldest first.
    List,
    /// Removes a key: it lets no one in any more.
    Remove { id: Uuid },
}

pub async fn run(opts: &ConnectOpts, format: Format, cmd: SshKeyCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        SshKeyCmd::Add { file, name } => {
            let public_key = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading the key from standard input")?;
                text
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let added: SshKeyView = client
                .post("/api/v1/ssh-keys", &AddSshKeyRequest { public_key, name })
                .await?;
            show(format, &added, columns::SSH_KEY)
        }
        SshKeyCmd::List => {
            let page: Page<SshKeyView> = client.get("/api/v1/ssh-keys").await?;
            list(format, &page, columns::SSH_KEY)
        }
        SshKeyCmd::Remove { id } => {
            client.delete(&format!("/api/v1/ssh-keys/{id}")).await?;
            println!("ssh key {id} removed");
            Ok(())
        }
    }
}
