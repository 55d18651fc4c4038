//! `hood incident …`, `hood channel …` and `hood node uptime`.

use super::client::{Client, ConnectOpts};
use super::columns;
use super::output::{list, show, table, Format};
use anyhow::{bail, Result};
use clap::{Subcommand, ValueEnum};
use hood_api::routes::health::{
    ChannelTestResult, ChannelView, CreateChannelRequest, DeliveryView, IncidentView, UptimeView,
};
use hood_api::views::Page;
use hood_notify::{ChannelConfig, SmtpTls};
use reqwest::Method;
use serde::Serialize;

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

impl From<SmtpTlsArg> for SmtpTls {
    fn from(arg: SmtpTlsArg) -> Self {
        match arg {
            SmtpTlsArg::None => SmtpTls::None,
            SmtpTlsArg::Opportunistic => SmtpTls::Opportunistic,
            SmtpTlsArg::Starttls => SmtpTls::Starttls,
            SmtpTlsArg::Implicit => SmtpTls::Implicit,
        }
    }
}

/// The create request, from the flags of the channel's kind.
fn channel_request(cmd: ChannelCmd) -> Result<CreateChannelRequest> {
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
        ChannelKind::Webhook => ChannelConfig::Webhook {
            url: need(url, "url", "webhook")?,
            secret: need(secret, "secret", "webhook")?,
        },
        ChannelKind::Slack => ChannelConfig::Slack {
            webhook_url: need(webhook_url, "webhook-url", "slack")?,
        },
        ChannelKind::Telegram => ChannelConfig::Telegram {
            bot_token: need(bot_token, "bot-token", "telegram")?,
            chat_id: need(chat_id, "chat-id", "telegram")?,
            api_base,
        },
        ChannelKind::Email => {
            let Some(smtp_port) = smtp_port else {
                bail!("--smtp-port is required for an email channel");
            };
            if to.is_empty() {
                bail!("--to is required for an email channel");
            }
            ChannelConfig::Email {
                smtp_host: need(smtp_host, "smtp-host", "email")?,
                smtp_port,
                tls: smtp_tls.map_or(SmtpTls::None, SmtpTls::from),
                from: need(from, "from", "email")?,
                to,
                username: smtp_username,
                password: smtp_password,
            }
        }
    };
    Ok(CreateChannelRequest { name, config })
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

/// `hood incident show -o json`: the incident with its notification log.
#[derive(Serialize)]
struct IncidentWithDeliveries {
    #[serde(flatten)]
    incident: IncidentView,
    deliveries: Vec<DeliveryView>,
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
            let incidents: Page<IncidentView> = client
                .get(&format!(
                    "/api/v1/incidents{}",
                    incident_query(active, node, state, limit)
                ))
                .await?;
            list(format, &incidents, columns::INCIDENT)
        }
        IncidentCmd::Show { id } => {
            let incident: IncidentView = client.get(&format!("/api/v1/incidents/{id}")).await?;
            let deliveries: Page<DeliveryView> = client
                .get(&format!("/api/v1/incidents/{id}/deliveries"))
                .await?;
            match format {
                Format::Json => super::output::json(&IncidentWithDeliveries {
                    incident,
                    deliveries: deliveries.items,
                }),
                Format::Table => {
                    show(format, &incident, columns::INCIDENT)?;
                    if !incident.detail.is_empty() {
                        println!("\n{}", incident.detail);
                    }
                    if !deliveries.items.is_empty() {
                        println!();
                        list(format, &deliveries, columns::DELIVERY)?;
                    }
                    Ok(())
                }
            }
        }
        IncidentCmd::Ack { id } => {
            let incident: IncidentView = client
                .call(
                    Method::POST,
                    &format!("/api/v1/incidents/{id}/ack"),
                    None::<&()>,
                )
                .await?;
            show(format, &incident, columns::INCIDENT)
        }
    }
}

pub async fn channel(opts: &ConnectOpts, format: Format, cmd: ChannelCmd) -> Result<()> {
    let mut client = Client::new(opts)?;
    match cmd {
        create @ ChannelCmd::Create { .. } => {
            let request = channel_request(create)?;
            let channel: ChannelView = client
                .post("/api/v1/notification-channels", &request)
                .await?;
            show(format, &channel, columns::CHANNEL)
        }
        ChannelCmd::List => {
            let channels: Page<ChannelView> = client.get("/api/v1/notification-channels").await?;
            list(format, &channels, columns::CHANNEL)
        }
        ChannelCmd::Show { id } => {
            let channel: ChannelView = client
                .get(&format!("/api/v1/notification-channels/{id}"))
                .await?;
            match format {
                Format::Json => super::output::json(&channel),
                Format::Table => {
                    show(format, &channel, columns::CHANNEL)?;
                    // The redacted configuration: its shape depends on the kind.
                    println!();
                    super::output::json(&channel.config)
                }
            }
        }
        ChannelCmd::Delete { id } => {
            client
                .delete(&format!("/api/v1/notification-channels/{id}"))
                .await?;
            match format {
                Format::Json => super::output::json(&serde_json::json!({ "deleted": id })),
                Format::Table => {
                    println!("notification channel {id} deleted");
                    Ok(())
                }
            }
        }
        ChannelCmd::Test { id } => {
            let result: ChannelTestResult = client
                .call(
                    Method::POST,
                    &format!("/api/v1/notification-channels/{id}/test"),
                    None::<&()>,
                )
                .await?;
            match format {
                Format::Json => super::output::json(&result),
                Format::Table => {
                    println!("test notification delivered on channel {id}");
                    Ok(())
                }
            }
        }
    }
}

/// `hood node uptime ID [--window 24h]`.
pub async fn node_uptime(
    opts: &ConnectOpts,
    format: Format,
    id: String,
    window: String,
) -> Result<()> {
    let mut client = Client::new(opts)?;
    let uptime: UptimeView = client
        .get(&format!("/api/v1/nodes/{id}/uptime?window={window}"))
        .await?;
    match format {
        Format::Json => super::output::json(&uptime),
        Format::Table => {
            print!("{}", uptime_text(&id, &window, &uptime));
            Ok(())
        }
    }
}

/// `hood node uptime` as text: the percentage, the time per class, and
/// the hours.
fn uptime_text(id: &str, window: &str, uptime: &UptimeView) -> String {
    let percent = uptime.uptime_percent.map_or_else(
        || "n/a (nothing counted yet)".to_owned(),
        |p| format!("{p}%"),
    );
    let mut out = format!("node {id}: uptime over {window}: {percent}\n");
    out.push_str(&format!(
        "up {} s, syncing {} s, down {} s, maintenance {} s (syncing counts as {}, maintenance {})\n",
        uptime.up_ms / 1000,
        uptime.syncing_ms / 1000,
        uptime.down_ms / 1000,
        uptime.maintenance_ms / 1000,
        uptime.syncing_counts_as,
        uptime.maintenance,
    ));
    if !uptime.buckets.is_empty() {
        out.push('\n');
        out.push_str(&table(&uptime.buckets, columns::UPTIME_BUCKET));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(kind: ChannelKind) -> ChannelCmd {
        ChannelCmd::Create {
            name: "ops".into(),
            kind,
            url: None,
            secret: None,
            webhook_url: None,
            bot_token: None,
            chat_id: None,
            api_base: None,
            smtp_host: None,
            smtp_port: None,
            smtp_tls: None,
            from: None,
            to: vec![],
            smtp_username: None,
            smtp_password: None,
        }
    }

    fn body(cmd: ChannelCmd) -> serde_json::Value {
        serde_json::to_value(channel_request(cmd).expect("a request")).expect("serializable")
    }

    #[test]
    fn channel_flags_become_the_typed_config_of_their_kind() {
        let mut webhook = create(ChannelKind::Webhook);
        if let ChannelCmd::Create { url, secret, .. } = &mut webhook {
            *url = Some("https://hooks.example.com/x".into());
            *secret = Some("a-signing-secret-of-length".into());
        }
        assert_eq!(
            body(webhook),
            json!({"name": "ops", "config": {"kind": "webhook",
                "url": "https://hooks.example.com/x", "secret": "a-signing-secret-of-length"}})
        );

        let mut email = create(ChannelKind::Email);
        if let ChannelCmd::Create {
            smtp_host,
            smtp_port,
            smtp_tls,
            from,
            to,
            ..
        } = &mut email
        {
            *smtp_host = Some("smtp.example.com".into());
            *smtp_port = Some(587);
            *smtp_tls = Some(SmtpTlsArg::Starttls);
            *from = Some("hood@example.com".into());
            *to = vec!["ops@example.com".into()];
        }
        assert_eq!(
            body(email),
            json!({"name": "ops", "config": {"kind": "email", "smtp_host": "smtp.example.com",
                "smtp_port": 587, "tls": "starttls", "from": "hood@example.com",
                "to": ["ops@example.com"]}})
        );

        let mut telegram = create(ChannelKind::Telegram);
        if let ChannelCmd::Create {
            bot_token, chat_id, ..
        } = &mut telegram
        {
            *bot_token = Some("123:abc".into());
            *chat_id = Some("@ops".into());
        }
        assert_eq!(
            body(telegram),
            json!({"name": "ops", "config": {"kind": "telegram", "bot_token": "123:abc",
                "chat_id": "@ops"}})
        );
    }

    #[test]
    fn a_missing_flag_of_the_kind_is_named() {
        let err = channel_request(create(ChannelKind::Slack)).expect_err("no url");
        assert_eq!(
            err.to_string(),
            "--webhook-url is required for a slack channel"
        );
        let err = channel_request(create(ChannelKind::Email)).expect_err("no port");
        assert_eq!(
            err.to_string(),
            "--smtp-port is required for an email channel"
        );
    }

    #[test]
    fn uptime_text_shows_percent_classes_and_hours() {
        let uptime: UptimeView = serde_json::from_value(json!({
            "node_id": "n", "from_ms": 0, "to_ms": 3_600_000, "up_ms": 3_000_000,
            "syncing_ms": 600_000, "down_ms": 0, "maintenance_ms": 0, "ratio": 1.0,
            "uptime_percent": 100.0, "syncing_counts_as": "up", "maintenance": "excluded",
            "buckets": [{"hour_start_ms": 0, "up_ms": 3_000_000, "syncing_ms": 600_000,
                "down_ms": 0, "maintenance_ms": 0}]
        }))
        .expect("an uptime view");
        let text = uptime_text("n", "24h", &uptime);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "node n: uptime over 24h: 100%");
        assert_eq!(
            lines[1],
            "up 3000 s, syncing 600 s, down 0 s, maintenance 0 s (syncing counts as up, maintenance excluded)"
        );
        assert!(lines[3].starts_with("HOUR_START_MS"), "{text}");
        assert_eq!(lines.len(), 5, "{text}");

        let nothing = UptimeView {
            uptime_percent: None,
            buckets: vec![],
            ..uptime
        };
        let text = uptime_text("n", "7d", &nothing);
        assert!(text.starts_with("node n: uptime over 7d: n/a (nothing counted yet)\n"));
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn incident_json_carries_its_deliveries() {
        let incident: IncidentView = serde_json::from_value(json!({
            "id": "0190a8a2-0000-7000-8000-000000000001", "category": "node_down",
            "severity": "critical", "state": "open", "node_id": null, "chain": null,
            "title": "down", "detail": "", "root_id": null, "escalation_level": 0,
            "opened_at": "2025-01-01T00:00:00Z", "acknowledged_at": null,
            "acknowledged_by": null, "resolved_at": null
        }))
        .expect("an incident view");
        let out = serde_json::to_value(IncidentWithDeliveries {
            incident,
            deliveries: vec![],
        })
        .expect("serializable");
        assert_eq!(
            out["title"], "down",
            "the incident's fields stay at the top"
        );
        assert_eq!(out["deliveries"], json!([]));
    }
}
