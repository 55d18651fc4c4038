//! `hood notification …`: your notification feed.

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{list, Format};
use anyhow::{bail, Result};
use clap::Subcommand;
use hood_api::routes::notifications::{MarkReadRequest, MarkReadView, NotificationPageView};
use hood_api::views::Page;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum NotificationCmd {
    /// Your notifications, newest first.
    List {
        /// Only unread ones.
        #[arg(long)]
        unread: bool,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Marks notifications read: these ids, or `--all`.
    Read {
        ids: Vec<Uuid>,
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

pub async fn run(opts: &ConnectOpts, format: Format, cmd: NotificationCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        NotificationCmd::List { unread, limit } => {
            let page: NotificationPageView = client
                .get(&format!(
                    "/api/v1/notifications?unread={unread}&limit={limit}"
                ))
                .await?;
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(());
            }
            list(format, &Page { items: page.items }, columns::NOTIFICATION)?;
            println!("{} unread", page.unread);
            Ok(())
        }
        NotificationCmd::Read { ids, all } => {
            if ids.is_empty() && !all {
                bail!("name the notifications to mark read, or pass --all");
            }
            let body = MarkReadRequest {
                ids: (!all).then_some(ids),
                all: all.then_some(true),
            };
            let done: MarkReadView = client.post("/api/v1/notifications/read", &body).await?;
            println!("{} marked read, {} unread", done.marked, done.unread);
            Ok(())
        }
    }
}
