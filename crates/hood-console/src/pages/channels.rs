//! Notification channels: where incidents are sent (signed webhook, Slack,
//! Telegram, e-mail), and a test message on demand.

use super::{back_with_error, segment, FormData};
use crate::layout::{action_button, csrf_input, empty_row, page, sortable_head, when, Nav};
use crate::session::redirect_with;
use crate::viewer::{Flash, Session};
use crate::Console;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::routes::health::{ChannelTestResult, ChannelView};
use hood_api::views::Page;
use maud::{html, Markup};

const KINDS: [(&str, &str); 4] = [
    ("webhook", "Signed webhook"),
    ("slack", "Slack"),
    ("telegram", "Telegram"),
    ("email", "E-mail (SMTP)"),
];

fn field(kind: &str, name: &str, label: &str, input_type: &str, required: bool) -> Markup {
    let id = format!("ch-{kind}-{name}");
    html! {
        div {
            label for=(id) { (label) }
            input id=(id) type=(input_type) name=(format!("{kind}.{name}")) data-required=[required.then_some("true")];
        }
    }
}

pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let channels = match console
        .backend()
        .get::<Page<ChannelView>>(&session.caller, "/api/v1/notification-channels")
        .await
    {
        Ok(p) => p.items,
        Err(f) => return f.into_response(),
    };
    let content = html! {
        p.muted { "Incidents of your organization are sent to every enabled channel. Secrets are sealed at rest and never shown again." }
        table #channels.data data-sortable {
            (sortable_head(&["Name", "Kind", "Destination", "Enabled", "Created", ""]))
            tbody {
                @for c in &channels {
                    tr {
                        td { (c.name) }
                        td { (c.kind) }
                        td { code.small { (serde_json::to_string(&c.config).unwrap_or_default()) } }
                        td { (if c.enabled { "yes" } else { "no" }) }
                        td { (when(&c.created_at)) }
                        td {
                            @if session.can("operate") {
                                (action_button(&session, &format!("/console/channels/{}/test", c.id), "Send a test", None, false))
                            }
                        }
                    }
                }
                @if channels.is_empty() { (empty_row(6, "No channels yet.")) }
            }
        }
        @if session.can("operate") {
            section.card #create {
                h2 { "Add a channel" }
                form method="post" action="/console/channels" data-busy="Checking the destination…" data-kinds {
                    (csrf_input(&session))
                    div.fields {
                        div {
                            label for="ch-name" { "Name" }
                            input #ch-name name="name" required maxlength="200";
                        }
                        div {
                            label for="ch-kind" { "Kind" }
                            select #ch-kind name="kind" data-kind-select {
                                @for (k, label) in KINDS { option value=(k) { (label) } }
                            }
                        }
                    }
                    fieldset data-kind="webhook" {
                        legend { "Signed webhook" }
                        div.fields {
                            (field("webhook", "url", "URL", "url", true))
                            (field("webhook", "secret", "Signing secret", "password", true))
                        }
                    }
                    fieldset data-kind="slack" {
                        legend { "Slack" }
                        div.fields { (field("slack", "webhook_url", "Incoming webhook URL", "url", true)) }
                    }
                    fieldset data-kind="telegram" {
                        legend { "Telegram" }
                        div.fields {
                            (field("telegram", "bot_token", "Bot token", "password", true))
                            (field("telegram", "chat_id", "Chat id", "text", true))
                        }
                    }
                    fieldset data-kind="email" {
                        legend { "E-mail" }
                        div.fields {
                            (field("email", "smtp_host", "SMTP host", "text", true))
                            (field("email", "smtp_port", "SMTP port", "number", true))
                            div {
                                label for="ch-email-tls" { "TLS" }
                                select #ch-email-tls name="email.tls" {
                                    option value="starttls" { "STARTTLS (required)" }
                                    option value="opportunistic" { "STARTTLS when offered" }
                                    option value="none" { "none" }
                                }
                            }
                            (field("email", "from", "From", "email", true))
                            (field("email", "to", "To (comma-separated)", "text", true))
                            (field("email", "username", "Username", "text", false))
                            (field("email", "password", "Password", "password", false))
                        }
                    }
                    button.primary type="submit" { "Add channel" }
                }
            }
        }
    };
    page(
        &session,
        Nav::Channels,
        "Notification channels",
        None,
        content,
    )
}

/// The channel configuration of the selected kind, as the API takes it.
fn config_of(form: &FormData) -> Result<serde_json::Value, String> {
    let kind = form.get("kind").unwrap_or_default();
    let f = |name: &str| form.get(&format!("{kind}.{name}")).unwrap_or_default();
    Ok(match kind.as_str() {
        "webhook" => {
            serde_json::json!({ "kind": "webhook", "url": f("url"), "secret": f("secret") })
        }
        "slack" => serde_json::json!({ "kind": "slack", "webhook_url": f("webhook_url") }),
        "telegram" => {
            serde_json::json!({ "kind": "telegram", "bot_token": f("bot_token"), "chat_id": f("chat_id") })
        }
        "email" => {
            let port: u16 = f("smtp_port")
                .parse()
                .map_err(|_| "SMTP port must be a number between 1 and 65535.".to_owned())?;
            let mut c = serde_json::json!({
                "kind": "email",
                "smtp_host": f("smtp_host"),
                "smtp_port": port,
                "tls": form.get("email.tls").unwrap_or_else(|| "starttls".into()),
                "from": f("from"),
                "to": form.list("email.to"),
            });
            if let Some(u) = form.get("email.username") {
                c["username"] = u.into();
            }
            if let Some(p) = form.get("email.password") {
                c["password"] = p.into();
            }
            c
        }
        other => return Err(format!("Unknown channel kind `{other}`.")),
    })
}

pub(crate) async fn create(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let config = match config_of(&form) {
        Ok(c) => c,
        Err(message) => {
            return redirect_with(
                &console,
                &headers,
                "/console/channels#create",
                Flash {
                    message,
                    error: true,
                    ..Flash::default()
                },
            )
        }
    };
    let body =
        serde_json::json!({ "name": form.get("name").unwrap_or_default(), "config": config });
    match console
        .backend()
        .call::<_, ChannelView>(
            &session.caller,
            Method::POST,
            "/api/v1/notification-channels",
            &body,
        )
        .await
    {
        Ok(c) => redirect_with(
            &console,
            &headers,
            "/console/channels",
            Flash::info(format!("Channel {} added.", c.name)),
        ),
        Err(f) => back_with_error(&console, &headers, "/console/channels#create", &f),
    }
}

pub(crate) async fn test(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    match console
        .backend()
        .call::<_, ChannelTestResult>(
            &session.caller,
            Method::POST,
            &format!("/api/v1/notification-channels/{id}/test"),
            &serde_json::json!({}),
        )
        .await
    {
        Ok(r) if r.delivered => redirect_with(
            &console,
            &headers,
            "/console/channels",
            Flash::info("Test message delivered."),
        ),
        Ok(_) => redirect_with(
            &console,
            &headers,
            "/console/channels",
            Flash {
                message: "The test message was not delivered.".into(),
                error: true,
                ..Flash::default()
            },
        ),
        Err(f) => back_with_error(&console, &headers, "/console/channels", &f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_selected_kind_is_sent() {
        let form = FormData(vec![
            ("kind".into(), "slack".into()),
            ("slack.webhook_url".into(), "https://hooks.example/x".into()),
            ("webhook.url".into(), "https://other.example".into()),
        ]);
        assert_eq!(
            config_of(&form).unwrap(),
            serde_json::json!({"kind": "slack", "webhook_url": "https://hooks.example/x"})
        );
        let bad = FormData(vec![
            ("kind".into(), "email".into()),
            ("email.smtp_port".into(), "x".into()),
        ]);
        assert!(config_of(&bad).is_err());
    }
}
