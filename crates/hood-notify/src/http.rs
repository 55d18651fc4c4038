//! The HTTP channels: signed webhook, Slack incoming webhook, Telegram Bot
//! API.

use crate::error::{from_reqwest, scrub};
use crate::guard::{DestinationPolicy, ResolveError};
use crate::render::render_text;
use crate::signature::sign_webhook;
use crate::{Notification, SendError};
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Client, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// The HTTP client's resolver: resolves with the system resolver and hands
/// the connector only addresses the [`DestinationPolicy`] admits — or, when
/// any address of the name is refused, a [`crate::RefusedDestination`]
/// error that [`from_reqwest`] turns into a permanent
/// [`SendError::Destination`].
pub(crate) struct GuardedResolver {
    policy: DestinationPolicy,
}

impl GuardedResolver {
    pub(crate) fn new(policy: DestinationPolicy) -> Self {
        Self { policy }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            // The connector sets the port; 0 is a placeholder.
            match policy.resolve(name.as_str(), 0).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(ResolveError::Refused(refused)) => Err(refused.into()),
                Err(lookup @ ResolveError::Lookup { .. }) => Err(lookup.into()),
            }
        })
    }
}

/// How much of a response body is read (enough for any error message).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Telegram's limit on a message's text, in characters.
const TELEGRAM_MAX_TEXT: usize = 4096;
/// Slack truncates beyond this; stay well inside it.
const SLACK_MAX_TEXT: usize = 35_000;

pub(crate) async fn send_webhook(
    client: &Client,
    url: &str,
    secret: &str,
    n: &Notification,
    secrets: &[String],
) -> Result<(), SendError> {
    const CHANNEL: &str = "webhook";
    let body = serde_json::to_vec(n).map_err(|e| SendError::Refused {
        channel: CHANNEL,
        message: format!("cannot serialize the notification: {e}"),
    })?;
    let header = |name: &str, value: &str| {
        HeaderValue::from_str(value).map_err(|_| SendError::Refused {
            channel: CHANNEL,
            message: format!("{name} is not a valid HTTP header value"),
        })
    };
    let delivery = header("delivery_id", &n.delivery_id)?;
    let event = header("event", &n.event)?;
    let signature = header(
        "signature",
        &sign_webhook(secret, hood_clock::now().secs(), &body),
    )?;
    let result = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("Hood-Delivery", delivery)
        .header("Hood-Event", event)
        .header("Hood-Signature", signature)
        .body(body)
        .send()
        .await;
    let response = result.map_err(|e| from_reqwest(CHANNEL, e, secrets))?;
    expect_success(CHANNEL, response, secrets).await.map(drop)
}

pub(crate) async fn send_slack(
    client: &Client,
    webhook_url: &str,
    n: &Notification,
    secrets: &[String],
) -> Result<(), SendError> {
    const CHANNEL: &str = "slack";
    let text = truncate_chars(&slack_escape(&render_text(n)), SLACK_MAX_TEXT);
    let result = client
        .post(webhook_url)
        .json(&json!({ "text": text }))
        .send()
        .await;
    let response = result.map_err(|e| from_reqwest(CHANNEL, e, secrets))?;
    expect_success(CHANNEL, response, secrets).await.map(drop)
}

/// The documented Bot API answer: `{"ok":true,"result":...}` or
/// `{"ok":false,"error_code":...,"description":...,"parameters":{...}}`.
#[derive(Deserialize)]
struct TelegramReply {
    ok: bool,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<TelegramParameters>,
}

#[derive(Deserialize)]
struct TelegramParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

pub(crate) async fn send_telegram(
    client: &Client,
    api_base: &str,
    bot_token: &str,
    chat_id: &str,
    n: &Notification,
    secrets: &[String],
) -> Result<(), SendError> {
    const CHANNEL: &str = "telegram";
    let url = format!(
        "{}/bot{bot_token}/sendMessage",
        api_base.trim_end_matches('/')
    );
    let text = truncate_chars(&render_text(n), TELEGRAM_MAX_TEXT);
    let result = client
        .post(&url)
        .json(&json!({
            "chat_id": chat_id,
            "text": text,
            "disable_web_page_preview": true,
        }))
        .send()
        .await;
    let mut response = result.map_err(|e| from_reqwest(CHANNEL, e, secrets))?;
    let status = response.status();
    let retry_after_header = retry_after(&response);
    let body = read_limited(&mut response)
        .await
        .map_err(|e| from_reqwest(CHANNEL, e, secrets))?;
    // Telegram puts the verdict in the body, whatever the status says.
    match serde_json::from_slice::<TelegramReply>(&body) {
        Ok(reply) if reply.ok => Ok(()),
        Ok(reply) => Err(SendError::Telegram {
            error_code: reply.error_code.unwrap_or(i64::from(status.as_u16())),
            description: scrub(
                reply.description.as_deref().unwrap_or("(no description)"),
                secrets,
            ),
            retry_after: reply
                .parameters
                .and_then(|p| p.retry_after)
                .map(Duration::from_secs)
                .or(retry_after_header),
        }),
        Err(_) if status.is_success() => Err(SendError::InvalidResponse {
            channel: CHANNEL,
            message: format!(
                "HTTP {} without a Bot API JSON answer: {}",
                status.as_u16(),
                quote_body(&body, secrets)
            ),
        }),
        Err(_) => Err(http_error(
            CHANNEL,
            status,
            &body,
            retry_after_header,
            secrets,
        )),
    }
}

/// Success for any 2xx; redirects are not followed, so a 3xx is an error
/// (permanent) like any 4xx other than 408/429.
async fn expect_success(
    channel: &'static str,
    mut response: Response,
    secrets: &[String],
) -> Result<Vec<u8>, SendError> {
    let status = response.status();
    let retry_after = retry_after(&response);
    let body = read_limited(&mut response).await;
    if status.is_success() {
        // A 2xx whose body breaks off still counts: the receiver accepted it.
        return Ok(body.unwrap_or_default());
    }
    let body = body.unwrap_or_default();
    Err(http_error(channel, status, &body, retry_after, secrets))
}

fn http_error(
    channel: &'static str,
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
    secrets: &[String],
) -> SendError {
    SendError::Http {
        channel,
        status: status.as_u16(),
        body: quote_body(body, secrets),
        retry_after,
    }
}

fn quote_body(body: &[u8], secrets: &[String]) -> String {
    let text = scrub(&String::from_utf8_lossy(body), secrets);
    if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        text
    }
}

/// `Retry-After` in delta-seconds (the HTTP-date form is ignored).
fn retry_after(response: &Response) -> Option<Duration> {
    response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

async fn read_limited(response: &mut Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_RESPONSE_BYTES.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    Ok(out)
}

/// Slack's text format gives `&`, `<` and `>` meaning; the documented
/// escapes keep a title such as `<!channel>` from pinging anyone.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max.saturating_sub(1)).collect::<String>() + "…"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn slack_escaping() {
        assert_eq!(
            slack_escape("<!channel> a & b > c"),
            "&lt;!channel&gt; a &amp; b &gt; c"
        );
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate_chars("héllo", 10), "héllo");
        assert_eq!(truncate_chars("héllo", 3), "hé…");
        assert_eq!(
            truncate_chars(&"é".repeat(5000), TELEGRAM_MAX_TEXT)
                .chars()
                .count(),
            TELEGRAM_MAX_TEXT
        );
    }
}
