//! `hood service-account …`: non-human identities whose keys reach only
//! what their grants name.

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{self, list, show, Format};
use anyhow::{anyhow, Result};
use clap::Subcommand;
use hood_api::routes::service_accounts::{
    CreateServiceAccountKeyRequest, CreateServiceAccountRequest, CreatedS3Key, GrantView,
    S3KeyView, ServiceAccountView, SetGrantsRequest,
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
    /// Replaces an account's grants (its keys see them within a second).
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
    /// S3 access keys acting as the account (for `aws`, boto3, rclone…).
    #[command(subcommand)]
    S3Key(S3KeyCmd),
}

#[derive(Debug, Subcommand)]
pub enum S3KeyCmd {
    /// Issues an access key id and secret (the secret shown once).
    Create { account: Uuid },
    /// The account's keys, revoked ones included.
    List { account: Uuid },
    /// Revokes a key: every S3 endpoint refuses it within a second.
    Revoke {
        account: Uuid,
        access_key_id: String,
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
        ServiceAccountCmd::S3Key(cmd) => s3_key(&mut client, format, cmd).await,
    }
}

async fn s3_key(client: &mut Client, format: Format, cmd: S3KeyCmd) -> Result<()> {
    match cmd {
        S3KeyCmd::Create { account } => {
            let created: CreatedS3Key = client
                .call::<(), _>(
                    Method::POST,
                    &format!("/api/v1/service-accounts/{account}/s3-keys"),
                    None,
                )
                .await?;
            match format {
                Format::Json => output::json(&created),
                Format::Table => {
                    show(format, &created.key, columns::S3_KEY)?;
                    println!(
                        "\nsecret access key (shown once, store it now):\n{}",
                        created.secret_access_key
                    );
                    Ok(())
                }
            }
        }
        S3KeyCmd::List { account } => {
            let page: Page<S3KeyView> = client
                .get(&format!("/api/v1/service-accounts/{account}/s3-keys"))
                .await?;
            list(format, &page, columns::S3_KEY)
        }
        S3KeyCmd::Revoke {
            account,
            access_key_id,
        } => {
            client
                .delete(&format!(
                    "/api/v1/service-accounts/{account}/s3-keys/{access_key_id}"
                ))
                .await?;
            println!("s3 key {access_key_id} revoked");
            Ok(())
        }
    }
}
