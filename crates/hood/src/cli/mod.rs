//! The CLI subcommands that talk to a Hood server.

pub mod alloc;
pub mod artifact;
pub mod billing;
pub mod client;
pub mod columns;
pub mod container;
pub mod edge;
pub mod fleet;
pub mod health;
pub mod keys;
pub mod ledger;
pub mod node;
pub mod notification;
pub mod output;
pub mod rollout;
pub mod service_account;
pub mod ssh_key;
pub mod storage;
pub mod terminal;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use client::{Client, ConnectOpts};
use hood_api::routes::chains::ChainView;
use hood_api::views::{
    ApiKeyView, CreateApiKeyRequest, CreateOrgRequest, CreateUserRequest, CreatedApiKey,
    LoginRequest, MeView, OrgView, Page, TokenPair, UpdateUserRequest, UserView,
};
use output::{list, show, Format};
use std::io::BufRead;

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    /// Organizations you can see.
    List,
    /// Creates an organization (platform admins).
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// One organization by id.
    Show { id: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Users of an organization (default: yours).
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Adds a user to an organization.
    Create {
        email: String,
        #[arg(long, default_value = "viewer")]
        role: String,
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Read the new user's password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    Show {
        id: String,
        #[arg(long)]
        org: Option<String>,
    },
    /// Changes role, name or disabled flag.
    Update {
        id: String,
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        disabled: Option<bool>,
        /// Read a new password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    Delete {
        id: String,
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Your API keys (all of the org's with manage_keys).
    List,
    /// Creates an API key; prints its secret once.
    Create {
        name: String,
        #[arg(long)]
        role: Option<String>,
        /// Comma-separated: read,operate,read_billing,manage_billing,manage_users,manage_keys
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
    Show {
        id: String,
    },
    /// Revokes a key immediately.
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChainCmd {
    /// Chains the server can run.
    List,
    Show {
        name: String,
    },
    /// Validates a chains/ directory offline; exits non-zero on problems.
    Lint {
        #[arg(default_value = "chains")]
        dir: std::path::PathBuf,
    },
}

fn read_password_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        bail!("no password on standard input");
    }
    Ok(pw)
}

async fn my_org(client: &mut Client, org: Option<String>) -> Result<String> {
    match org {
        Some(o) => Ok(o),
        None => {
            let me: MeView = client.get("/api/v1/me").await?;
            Ok(me.org.id.to_string())
        }
    }
}

pub async fn login(opts: &ConnectOpts, email: String, password_stdin: bool) -> Result<()> {
    let password = match std::env::var("HOOD_PASSWORD") {
        Ok(p) if !password_stdin => p,
        _ => read_password_stdin()?,
    };
    let mut client = Client::without_credentials(opts)?;
    let request = LoginRequest {
        email: email.clone(),
        password,
    };
    let pair: TokenPair = client.post("/api/v1/auth/login", &request).await?;
    client.save_session(&pair)?;
    println!(
        "logged in to {} as {email}; session saved in {}",
        client.server,
        client.config_path().display()
    );
    Ok(())
}

pub async fn logout(opts: &ConnectOpts) -> Result<()> {
    let mut client = Client::new(opts)?;
    // The server-side revocation is best effort; the local session goes regardless.
    let revoked = client
        .send(reqwest::Method::POST, "/api/v1/auth/logout", None::<&()>)
        .await;
    let path = client.config_path().to_owned();
    if path.exists() {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    match revoked {
        Ok(_) => println!("logged out"),
        Err(e) => println!("local session removed (server said: {e})"),
    }
    Ok(())
}

pub async fn whoami(opts: &ConnectOpts, format: Format) -> Result<()> {
    let mut client = Client::new(opts)?;
    let me: MeView = client.get("/api/v1/me").await?;
    show(format, &me, columns::ME)
}

pub async fn org(opts: &ConnectOpts, format: Format, cmd: OrgCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        OrgCmd::List => {
            let orgs: Page<OrgView> = client.get("/api/v1/orgs").await?;
            list(format, &orgs, columns::ORG)
        }
        OrgCmd::Create { slug, name } => {
            let name = name.unwrap_or_else(|| slug.clone());
            let created: OrgView = client
                .post("/api/v1/orgs", &CreateOrgRequest { slug, name })
                .await?;
            show(format, &created, columns::ORG)
        }
        OrgCmd::Show { id } => {
            let org: OrgView = client.get(&format!("/api/v1/orgs/{id}")).await?;
            show(format, &org, columns::ORG)
        }
    }
}

pub async fn user(opts: &ConnectOpts, format: Format, cmd: UserCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    let user: UserView = match cmd {
        UserCmd::List { org } => {
            let org = my_org(&mut client, org).await?;
            let users: Page<UserView> = client.get(&format!("/api/v1/orgs/{org}/users")).await?;
            return list(format, &users, columns::USER);
        }
        UserCmd::Create {
            email,
            role,
            org,
            name,
            password_stdin,
        } => {
            let org = my_org(&mut client, org).await?;
            let password = if password_stdin {
                Some(read_password_stdin()?)
            } else {
                None
            };
            let request = CreateUserRequest {
                email,
                display_name: name,
                role,
                password,
            };
            client
                .post(&format!("/api/v1/orgs/{org}/users"), &request)
                .await?
        }
        UserCmd::Show { id, org } => {
            let org = my_org(&mut client, org).await?;
            client
                .get(&format!("/api/v1/orgs/{org}/users/{id}"))
                .await?
        }
        UserCmd::Update {
            id,
            org,
            role,
            name,
            disabled,
            password_stdin,
        } => {
            let org = my_org(&mut client, org).await?;
            let password = if password_stdin {
                Some(read_password_stdin()?)
            } else {
                None
            };
            let request = UpdateUserRequest {
                display_name: name,
                role,
                disabled,
                password,
            };
            client
                .patch(&format!("/api/v1/orgs/{org}/users/{id}"), &request)
                .await?
        }
        UserCmd::Delete { id, org } => {
            let org = my_org(&mut client, org).await?;
            client
                .delete(&format!("/api/v1/orgs/{org}/users/{id}"))
                .await?;
            println!("user {id} deleted");
            return Ok(());
        }
    };
    show(format, &user, columns::USER)
}

pub async fn key(opts: &ConnectOpts, format: Format, cmd: KeyCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        KeyCmd::List => {
            let keys: Page<ApiKeyView> = client.get("/api/v1/api-keys").await?;
            list(format, &keys, columns::API_KEY)?;
        }
        KeyCmd::Create {
            name,
            role,
            scopes,
            expires_in_days,
        } => {
            let request = CreateApiKeyRequest {
                name,
                role,
                scopes,
                expires_in_days,
            };
            let created: CreatedApiKey = client.post("/api/v1/api-keys", &request).await?;
            match format {
                Format::Json => output::json(&created)?,
                Format::Table => {
                    show(format, &created.key, columns::API_KEY)?;
                    println!("\nsecret (shown once, store it now):\n{}", created.token);
                }
            }
        }
        KeyCmd::Show { id } => {
            let key: ApiKeyView = client.get(&format!("/api/v1/api-keys/{id}")).await?;
            show(format, &key, columns::API_KEY)?;
        }
        KeyCmd::Revoke { id } => {
            client.delete(&format!("/api/v1/api-keys/{id}")).await?;
            println!("API key {id} revoked");
        }
    }
    Ok(())
}

pub async fn chain(opts: &ConnectOpts, format: Format, cmd: ChainCmd) -> Result<()> {
    match cmd {
        ChainCmd::Lint { dir } => {
            let report = hood_chains::ChainCatalog::lint_dir(&dir);
            if report.problems.is_empty() {
                println!("{}: all chain definitions are valid", dir.display());
                Ok(())
            } else {
                eprint!("{report}");
                if !report.to_string().ends_with('\n') {
                    eprintln!();
                }
                bail!("{} problem(s) in {}", report.problems.len(), dir.display())
            }
        }
        ChainCmd::List => {
            let mut client = Client::new(opts)?;
            let chains: Page<ChainView> = client.get("/api/v1/chains").await?;
            list(format, &chains, columns::CHAIN)
        }
        ChainCmd::Show { name } => {
            let mut client = Client::new(opts)?;
            let chain: ChainView = client.get(&format!("/api/v1/chains/{name}")).await?;
            // The whole profile is nested (node types, binaries): JSON
            // reads better than a table in both formats.
            output::json(&chain)
        }
    }
}
