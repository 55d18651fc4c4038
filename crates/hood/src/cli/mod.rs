//! The CLI subcommands that talk to a Hood server.

pub mod artifact;
pub mod client;
pub mod edge;
pub mod fleet;
pub mod health;
pub mod node;
pub mod output;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use client::{Client, ConnectOpts, TokenPair};
use output::{print, Format};
use serde_json::{json, Value};
use std::io::BufRead;

const ORG_COLUMNS: &[&str] = &["id", "slug", "name", "created_at"];
const USER_COLUMNS: &[&str] = &[
    "id",
    "email",
    "display_name",
    "role",
    "disabled",
    "created_at",
];
const KEY_COLUMNS: &[&str] = &[
    "id",
    "name",
    "prefix",
    "role",
    "scopes",
    "expires_at",
    "revoked_at",
    "last_used_at",
];
const CHAIN_COLUMNS: &[&str] = &["name", "display_name", "family", "network"];

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
            let me: Value = client.get("/api/v1/me").await?;
            me.pointer("/org/id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .context("server did not say which org you are in")
        }
    }
}

pub async fn login(opts: &ConnectOpts, email: String, password_stdin: bool) -> Result<()> {
    let password = match std::env::var("HOOD_PASSWORD") {
        Ok(p) if !password_stdin => p,
        _ => read_password_stdin()?,
    };
    let mut client = Client::without_credentials(opts)?;
    let pair: TokenPair = client
        .post(
            "/api/v1/auth/login",
            &json!({ "email": email, "password": password }),
        )
        .await?;
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
        .send::<()>(reqwest::Method::POST, "/api/v1/auth/logout", None)
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
    let me: Value = client.get("/api/v1/me").await?;
    print(
        format,
        &me,
        &[
            "user.email",
            "user.role",
            "org.slug",
            "credential",
            "permissions",
        ],
    );
    Ok(())
}

pub async fn org(opts: &ConnectOpts, format: Format, cmd: OrgCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    let v: Value = match cmd {
        OrgCmd::List => client.get("/api/v1/orgs").await?,
        OrgCmd::Create { slug, name } => {
            let name = name.unwrap_or_else(|| slug.clone());
            client
                .post("/api/v1/orgs", &json!({ "slug": slug, "name": name }))
                .await?
        }
        OrgCmd::Show { id } => client.get(&format!("/api/v1/orgs/{id}")).await?,
    };
    print(format, &v, ORG_COLUMNS);
    Ok(())
}

pub async fn user(opts: &ConnectOpts, format: Format, cmd: UserCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    let v: Value = match cmd {
        UserCmd::List { org } => {
            let org = my_org(&mut client, org).await?;
            client.get(&format!("/api/v1/orgs/{org}/users")).await?
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
            client
                .post(
                    &format!("/api/v1/orgs/{org}/users"),
                    &json!({ "email": email, "role": role, "display_name": name, "password": password }),
                )
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
            let mut body = serde_json::Map::new();
            if let Some(r) = role {
                body.insert("role".into(), json!(r));
            }
            if let Some(n) = name {
                body.insert("display_name".into(), json!(n));
            }
            if let Some(d) = disabled {
                body.insert("disabled".into(), json!(d));
            }
            if password_stdin {
                body.insert("password".into(), json!(read_password_stdin()?));
            }
            client
                .patch(
                    &format!("/api/v1/orgs/{org}/users/{id}"),
                    &Value::Object(body),
                )
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
    print(format, &v, USER_COLUMNS);
    Ok(())
}

pub async fn key(opts: &ConnectOpts, format: Format, cmd: KeyCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        KeyCmd::List => {
            let v: Value = client.get("/api/v1/api-keys").await?;
            print(format, &v, KEY_COLUMNS);
        }
        KeyCmd::Create {
            name,
            role,
            scopes,
            expires_in_days,
        } => {
            let v: Value = client
                .post(
                    "/api/v1/api-keys",
                    &json!({ "name": name, "role": role, "scopes": scopes, "expires_in_days": expires_in_days }),
                )
                .await?;
            match format {
                Format::Json => print(format, &v, &[]),
                Format::Table => {
                    print(format, v.get("key").unwrap_or(&Value::Null), KEY_COLUMNS);
                    let token = v.get("token").and_then(Value::as_str).unwrap_or_default();
                    println!("\nsecret (shown once, store it now):\n{token}");
                }
            }
        }
        KeyCmd::Show { id } => {
            let v: Value = client.get(&format!("/api/v1/api-keys/{id}")).await?;
            print(format, &v, KEY_COLUMNS);
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
            let v: Value = client.get("/api/v1/chains").await?;
            print(format, &v, CHAIN_COLUMNS);
            Ok(())
        }
        ChainCmd::Show { name } => {
            let mut client = Client::new(opts)?;
            let v: Value = client.get(&format!("/api/v1/chains/{name}")).await?;
            match format {
                Format::Json => print(format, &v, &[]),
                Format::Table => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())
                }
            }
            Ok(())
        }
    }
}
