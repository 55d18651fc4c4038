//! `hood incident …`, `hood channel …` and `hood node uptime`.

use super::client::{Client, ConnectOpts};
use super::output::{print, Format};
use anyhow::{bail, Result};
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

const INCIDENT_COLUMNS: &[&str] = &[
    "id",
    "category",
    "severity",
    "state",
    "node_id",
    "chain",
    "title",
    "escalation_level",
    "opened_at",
    "acknowledged_by",
    "resolved_at",
];
const DELIVERY_COLUMNS: &[&str] = &[
    "id",
    "channel_id",
    "event",
    "escalation_level",
    "state",
    "attempts",
    "last_error",
    "created_at",
    "delivered_at",
];
const CHANNEL_COLUMNS: &[&str] = &["id", "name", "kind", "enabled", "created_at"];
const UPTIME_BUCKET_COLUMNS: &[&str] = &[
    "hour_start_ms",
    "up_ms",
    "syncing_ms",
    "down_ms",
    "maintenance_ms",
];

#[derive(Debug, Subcommand)]
pub enum IncidentCmd {
    /// Incidents of your organization, newest first.
    List {
        /// Only unresolved incidents.
        #[arg(long)]
        active: bool,
        /// Only incidents of this node.
        #[arg(long)]
        node: Option<String>,
        /// open, acknowledged, muted or resolved.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
    },
    /// One incident and its notification log.
    Show { id: String },
    /// Acknowledges an incident (stops its escalation).
    Ack { id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChannelKind {
    Webhook,
    Slack,
    Telegram,
    Email,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmtpTlsArg {
    None,
    Opportunistic,
    Starttls,
    Implicit,
}

// Parsed once per process from the command line: the size difference
// between variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ChannelCmd {
    /// Adds a notification channel. Secrets are sealed on the server and
    /// never shown again.
    Create {
        name: String,
        #[arg(long, value_enum)]
        kind: ChannelKind,
        /// webhook: where to POST.
        #[arg(long)]
        url: Option<String>,
        /// webhook: the signing secret (at least 16 characters).
        #[arg(long, env = "HOOD_CHANNEL_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// slack: the incoming webhook URL.
        #[arg(long)]
        webhook_url: Option<String>,
        /// telegram: the bot token.
        #[arg(long, env = "HOOD_CHANNEL_BOT_TOKEN", hide_env_values = true)]
        bot_token: Option<String>,
        /// telegram: a numeric chat id or @channelusername.
        #[arg(long)]
        chat_id: Option<String>,
        /// telegram: another Bot API server.
        #[arg(long)]
        api_base: Option<String>,
        /// email: the SMTP server.
        #[arg(long)]
        smtp_host: Option<String>,
        #[arg(long)]
        smtp_port: Option<u16>,
        /// email: none (plain TCP), opportunistic (STARTTLS when offered),
        /// starttls (STARTTLS required, usually port 587) or implicit (TLS
        /// from the first byte, usually port 465).
        #[arg(long, value_enum)]
        smtp_tls: Option<SmtpTlsArg>,
        /// email: sender address.
        #[arg(long)]
        from: Option<String>,
        /// email: recipient (repeat or comma-separate).
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        /// email: SMTP user name.
        #[arg(long)]
        smtp_username: Option<String>,
        /// email: SMTP password.
        #[arg(long, env = "HOOD_SMTP_PASSWORD", hide_env_values = true)]
        smtp_password: Option<String>,
    },
    /// Notification channels of your organization.
    List,
    Show {
        id: String,
    },
    /// Removes a channel (its secrets are erased).
    Delete {
        id: String,
    },
    /// Sends a test notification on the channel now.
    Test {
        id: String,
    },
}

fn need(value: Option<String>, flag: &str, kind: &str) -> Result<String> {
    match value {
        Some(v) => Ok(v),
        None => bail!("--{flag} is required for a {kind} channel"),
    }
}

/// The `config` object of a create request, from the flags of its kind.
fn channel_config(cmd: ChannelCmd) -> Result<(String, Value)> {
    let ChannelCmd::Create {
        name,
        kind,
        url,
        secret,
        webhook_url,
        bot_token,
        chat_id,
        api_base,
        smtp_host,
        smtp_port,
        smtp_tls,
        from,
        to,
        smtp_username,
        smtp_password,
    } = cmd
    else {
        bail!("not a create command");
    };
    let config = match kind {
        ChannelKind::Webhook => json!({
            "kind": "webhook",
            "url": need(url, "url", "webhook")?,
            "secret": need(secret, "secret", "webhook")?,
        }),
        ChannelKind::Slack => json!({
            "kind": "slack",
            "webhook_url": need(webhook_url, "webhook-url", "slack")?,
        }),
        ChannelKind::Telegram => {
            let mut c = Map::new();
            c.insert("kind".into(), json!("telegram"));
            c.insert(
                "bot_token".into(),
                json!(need(bot_token, "bot-token", "telegram")?),
            );
            c.insert(
                "chat_id".into(),
                json!(need(chat_id, "chat-id", "telegram")?),
            );
            if let Some(b) = api_base {
                c.insert("api_base".into(), json!(b));
            }
            Value::Object(c)
        }
        ChannelKind::Email => {
            let Some(port) = smtp_port else {
                bail!("--smtp-port is required for an email channel");
            };
            if to.is_empty() {
                bail!("--to is required for an email channel");
            }
            let mut c = Map::new();
            c.insert("kind".into(), json!("email"));
            c.insert(
                "smtp_host".into(),
                json!(need(smtp_host, "smtp-host", "email")?),
            );
            c.insert("smtp_port".into(), json!(port));
            let tls = match smtp_tls {
                Some(SmtpTlsArg::Implicit) => "implicit",
                Some(SmtpTlsArg::Starttls) => "starttls",
                Some(SmtpTlsArg::Opportunistic) => "opportunistic",
                Some(SmtpTlsArg::None) | None => "none",
            };
            c.insert("tls".into(), json!(tls));
            c.insert("from".into(), json!(need(from, "from", "email")?));
            c.insert("to".into(), json!(to));
            if let Some(u) = smtp_username {
                c.insert("username".into(), json!(u));
            }
            if let Some(p) = smtp_password {
                c.insert("password".into(), json!(p));
            }
            Value::Object(c)
        }
    };
    Ok((name, config))
}

fn incident_query(
    active: bool,
    node: Option<String>,
    state: Option<String>,
    limit: Option<i64>,
) -> String {
    let mut parts = vec![];
    if active {
        parts.push("active=true".to_owned());
    }
    if let Some(n) = node {
        parts.push(format!("node_id={n}"));
    }
    if let Some(s) = state {
        parts.push(format!("state={s}"));
    }
    if let Some(l) = limit {
        parts.push(format!("limit={l}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub async fn incident(opts: &ConnectOpts, format: Format, cmd: IncidentCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        IncidentCmd::List {
            active,
            node,
            state,
            limit,
        } => {
            let v: Value = client
                .get(&format!(
                    "/api/v1/incidents{}",
                    incident_query(active, node, state, limit)
                ))
                .await?;
            print(format, &v, INCIDENT_COLUMNS);
        }
        IncidentCmd::Show { id } => {
            let v: Value = client.get(&format!("/api/v1/incidents/{id}")).await?;
            let deliveries: Value = client
                .get(&format!("/api/v1/incidents/{id}/deliveries"))
                .await?;
            match format {
                Format::Json => {
                    let mut out = v;
                    if let Some(o) = out.as_object_mut() {
                        o.insert(
                            "deliveries".into(),
                            deliveries.get("items").cloned().unwrap_or(json!([])),
                        );
                    }
                    print(format, &out, &[]);
                }
                Format::Table => {
                    print(format, &v, INCIDENT_COLUMNS);
                    if let Some(detail) = v.get("detail").and_then(Value::as_str) {
                        if !detail.is_empty() {
                            println!("\n{detail}");
                        }
                    }
                    let empty = deliveries
                        .get("items")
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty);
                    if !empty {
                        println!();
                        print(format, &deliveries, DELIVERY_COLUMNS);
                    }
                }
            }
        }
        IncidentCmd::Ack { id } => {
            let v: Value = client
                .post(&format!("/api/v1/incidents/{id}/ack"), &json!({}))
                .await?;
            print(format, &v, INCIDENT_COLUMNS);
        }
    }
    Ok(())
}

pub async fn channel(opts: &ConnectOpts, format: Format, cmd: ChannelCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        create @ ChannelCmd::Create { .. } => {
            let (name, config) = channel_config(create)?;
            let v: Value = client
                .post(
                    "/api/v1/notification-channels",
                    &json!({ "name": name, "config": config }),
                )
                .await?;
            print(format, &v, CHANNEL_COLUMNS);
        }
        ChannelCmd::List => {
            let v: Value = client.get("/api/v1/notification-channels").await?;
            print(format, &v, CHANNEL_COLUMNS);
        }
        ChannelCmd::Show { id } => {
            let v: Value = client
                .get(&format!("/api/v1/notification-channels/{id}"))
                .await?;
            match format {
                Format::Json => print(format, &v, &[]),
                Format::Table => {
                    print(format, &v, CHANNEL_COLUMNS);
                    if let Some(config) = v.get("config") {
                        println!(
                            "\n{}",
                            serde_json::to_string_pretty(config).unwrap_or_default()
                        );
                    }
                }
            }
        }
        ChannelCmd::Delete { id } => {
            client
                .delete(&format!("/api/v1/notification-channels/{id}"))
                .await?;
            match format {
                Format::Json => print(format, &json!({ "deleted": id }), &[]),
                Format::Table => println!("notification channel {id} deleted"),
            }
        }
        ChannelCmd::Test { id } => {
            let v: Value = client
                .post(
                    &format!("/api/v1/notification-channels/{id}/test"),
                    &json!({}),
                )
                .await?;
            match format {
                Format::Json => print(format, &v, &[]),
                Format::Table => println!("test notification delivered on channel {id}"),
            }
        }
    }
    Ok(())
}

/// `hood node uptime ID [--window 24h]`.
pub async fn node_uptime(
    opts: &ConnectOpts,
    format: Format,
    id: String,
    window: String,
) -> Result<()> {
    let mut client = Client::new(opts)?;
    let v: Value = client
        .get(&format!("/api/v1/nodes/{id}/uptime?window={window}"))
        .await?;
    match format {
        Format::Json => print(format, &v, &[]),
        Format::Table => {
            let percent = v.get("uptime_percent").and_then(Value::as_f64).map_or_else(
                || "n/a (nothing counted yet)".to_owned(),
                |p| format!("{p}%"),
            );
            println!("node {id}: uptime over {window}: {percent}");
            let ms = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
            println!(
                "up {} s, syncing {} s, down {} s, maintenance {} s (syncing counts as {}, maintenance {})",
                ms("up_ms") / 1000,
                ms("syncing_ms") / 1000,
                ms("down_ms") / 1000,
                ms("maintenance_ms") / 1000,
                v.get("syncing_counts_as").and_then(Value::as_str).unwrap_or("up"),
                v.get("maintenance").and_then(Value::as_str).unwrap_or("excluded"),
            );
            let buckets = v.get("buckets").cloned().unwrap_or(json!([]));
            if buckets.as_array().is_some_and(|b| !b.is_empty()) {
                println!();
                print(format, &json!({ "items": buckets }), UPTIME_BUCKET_COLUMNS);
            }
        }
    }
    Ok(())
}

/// `hood node …`: the node commands plus `uptime`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    #[command(flatten)]
    Base(super::node::NodeCmd),
    /// The node's uptime over a window ending now.
    Uptime {
        id: String,
        /// 24h, 7d or 30d.
        #[arg(long, default_value = "24h")]
        window: String,
    },
}

pub async fn node(opts: &ConnectOpts, format: Format, cmd: NodeCommand) -> Result<()> {
    match cmd {
        NodeCommand::Base(cmd) => super::node::run(opts, format, cmd).await,
        NodeCommand::Uptime { id, window } => node_uptime(opts, format, id, window).await,
    }
}
