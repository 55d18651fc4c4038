//! `hood service-account …`: non-human identities whose keys reach only
//! what their grants name.

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{self, list, show, Format};
use anyhow::{anyhow, Result};
use clap::Subcommand;
use hood_api::routes::service_accounts::{
    CreateServiceAccountKeyRequest, CreateServiceAccountRequest, GrantView, ServiceAccountView,
    SetGrantsRequest,
};
use hood_api::views::{CreatedApiKey, Page};
use reqwest::Method;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum ServiceAccountCmd {
    /// Creates a service account; its grants never exceed yours.
    Create {
        name: String,
        /// `SCOPE=ACTION[,ACTION…]`, e.g.
        /// `storage.acme.namespaces.logs=read` (repeat for more).
        #[arg(long = "grant", value_name = "SCOPE=ACTIONS")]
        grants: Vec<String>,
    },
    List,
    Show {
        id: Uuid,
    },
    /// Replaces an account's grants (its keys see them at once).
    Grants {
        id: Uuid,
        #[arg(long = "grant", value_name = "SCOPE=ACTIONS")]
        grants: Vec<String>,
    },
    /// Deletes an account and revokes every key of it.
    Delete {
        id: Uuid,
    },
    /// Issues an API key acting as the account (its secret shown once).
    Key {
        id: Uuid,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
}

/// `SCOPE=read,update` → a grant.
fn parse_grant(raw: &str) -> Result<GrantView> {
    let (scope, actions) = raw
        .split_once('=')
        .ok_or_else(|| anyhow!("a grant is SCOPE=ACTION[,ACTION…], not `{raw}`"))?;
    Ok(GrantView {
        scope: scope.trim().to_owned(),
        actions: actions
            .split(',')
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect(),
    })
}

fn parse_grants(raw: &[String]) -> Result<Vec<GrantView>> {
    raw.iter().map(|g| parse_grant(g)).collect()
}

pub async fn run(opts: &ConnectOpts, format: Format, cmd: ServiceAccountCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        ServiceAccountCmd::Create { name, grants } => {
            let body = CreateServiceAccountRequest {
                name,
                grants: parse_grants(&grants)?,
            };
            let made: ServiceAccountView = client.post("/api/v1/service-accounts", &body).await?;
            show(format, &made, columns::SERVICE_ACCOUNT)
        }
        ServiceAccountCmd::List => {
            let page: Page<ServiceAccountView> = client.get("/api/v1/service-accounts").await?;
            list(format, &page, columns::SERVICE_ACCOUNT)
        }
        ServiceAccountCmd::Show { id } => {
            let a: ServiceAccountView = client
                .get(&format!("/api/v1/service-accounts/{id}"))
                .await?;
            show(format, &a, columns::SERVICE_ACCOUNT)
        }
        ServiceAccountCmd::Grants { id, grants } => {
            let a: ServiceAccountView = client
                .call(
                    Method::PUT,
                    &format!("/api/v1/service-accounts/{id}"),
                    Some(&SetGrantsRequest {
                        grants: parse_grants(&grants)?,
                    }),
                )
                .await?;
            show(format, &a, columns::SERVICE_ACCOUNT)
        }
        ServiceAccountCmd::Delete { id } => {
            client
                .delete(&format!("/api/v1/service-accounts/{id}"))
                .await?;
            println!("service account {id} deleted, its keys revoked");
            Ok(())
        }
        ServiceAccountCmd::Key {
            id,
            name,
            expires_in_days,
        } => {
            let created: CreatedApiKey = client
                .post(
                    &format!("/api/v1/service-accounts/{id}/keys"),
                    &CreateServiceAccountKeyRequest {
                        name,
                        expires_in_days,
                    },
                )
                .await?;
            match format {
                Format::Json => output::json(&created),
                Format::Table => {
                    show(format, &created.key, columns::API_KEY)?;
                    println!("\nsecret (shown once, store it now):\n{}", created.token);
                    Ok(())
                }
            }
        }
    }
}
