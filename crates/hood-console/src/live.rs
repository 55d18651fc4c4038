//! Live updates over Server-Sent Events (`/console/live`).
//!
//! The event bus wakes the stream: a `node.*` or `incident.*` event of the
//! viewer's organization makes it re-read what changed through the API
//! (so the viewer's rights still decide what is sent) and push the
//! difference. The bus carries no block heads (at fleet scale they would
//! flood it), so a node's page also samples that node once a second, and
//! its log tail every few seconds; both reads happen on the server, not
//! as a page polling the API. Without a bus the stream falls back to
//! sampling everything every few seconds and says so.
//!
//! Events: `hello` (`{"bus": bool}`), `node` (state, sync, recorded head
//! and the state's badge), `head` (the page's node's head from its latest
//! heartbeat), `transition` (a state change for the node's timeline), `incident` (its row, rendered as on the page), `logs` (the
//! tail as text), `notification` (a new item of the user's feed, with its
//! row), `unread` (the user's unread count), `reauth` (the session's token
//! ended: reload). Every page follows the user's notifications; a page
//! without nodes or incidents on it follows only them (`feed=only`).

use crate::backend::Failure;
use crate::layout::state_badge;
use crate::pages::incidents::incident_row;
use crate::pages::nodes::transition_item;
use crate::pages::notifications::row as notification_row;
use crate::pages::segment;
use crate::viewer::Session;
use crate::Console;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::routes::health::IncidentView;
use hood_api::routes::nodes::{NodeEventView, NodeSyncView, NodeView};
use hood_api::routes::notifications::NotificationPageView;
use hood_api::views::Page;
use hood_domain::feed::FEED_SUBJECTS;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

/// A node's page samples its head this often.
const HEAD_EVERY: Duration = Duration::from_secs(1);
/// … and its log tail this often.
const LOGS_EVERY: Duration = Duration::from_secs(3);
/// A log tail that takes longer is skipped (the agent may be gone).
const LOGS_WAIT: Duration = Duration::from_secs(2);
/// With a bus, everything is re-read this often anyway (a watch may miss
/// events across a reconnect); without one, this is the only trigger.
const RESYNC_WITH_BUS: Duration = Duration::from_secs(30);
const RESYNC_WITHOUT_BUS: Duration = Duration::from_secs(3);
/// Events close together are read once.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// The user's notifications are read this often (and when the bus wakes
/// the stream): the feed is fanned out from the bus by another consumer,
/// so its rows land a moment after the event.
const FEED_EVERY: Duration = Duration::from_secs(2);
/// Notifications read per look.
const FEED_BATCH: u32 = 20;

#[derive(Debug, Deserialize)]
pub(crate) struct LiveQuery {
    node: Option<String>,
    /// When the page was rendered (ms): what changed since then is sent
    /// at once, so nothing between the render and the stream (or a
    /// reconnect) is lost.
    since: Option<i64>,
    /// The node's last history entry the page shows.
    after: Option<i64>,
    /// `only`: the page follows the user's notifications and nothing else.
    feed: Option<String>,
}

pub(crate) async fn stream(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Query(q): Query<LiveQuery>,
) -> Response {
    let node = match q.node.as_deref().filter(|n| !n.is_empty()) {
        None => None,
        Some(id) => {
            let id = match segment(id) {
                Ok(id) => id.to_owned(),
                Err(r) => return r.into_response(),
            };
            // Another organization's node is a 404 here as everywhere.
            if let Err(f) = console
                .backend()
                .get::<NodeView>(&session.caller, &format!("/api/v1/nodes/{id}"))
                .await
            {
                return (f.status, f.title).into_response();
            }
            Some(id)
        }
    };
    let (tx, rx) = mpsc::channel::<Event>(64);
    let since = q.since.unwrap_or_else(|| hood_clock::now().millis());
    let after = q.after.unwrap_or(0);
    let feed_only = q.feed.as_deref() == Some("only");
    tokio::spawn(run(console, session, node, feed_only, since, after, tx));
    Sse::new(ReceiverStream::new(rx).map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// What the viewer last saw: nodes by id, incidents by id.
#[derive(Default)]
struct Seen {
    /// Each node's fields as last sent.
    nodes: HashMap<String, serde_json::Value>,
    incidents: HashMap<String, (String, Option<String>)>,
    /// The live head of the page's node.
    head: Option<i64>,
    /// The page's node's last history entry sent (its sequence number).
    events_after: i64,
    logs: String,
    /// Notifications already sent (or older than the page), and the
    /// unread count last sent.
    notifications: HashSet<String>,
    unread: Option<i64>,
}

enum Stop {
    /// The browser went away.
    Gone,
    /// The token ended: the page must reload (and so rotate it).
    Reauth,
}

fn event(name: &str, data: serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

async fn send(tx: &mpsc::Sender<Event>, e: Event) -> Result<(), Stop> {
    tx.send(e).await.map_err(|_| Stop::Gone)
}

/// A failed read either ends the stream (the token ended: the page must
/// reload) or skips this round (the next one reads again).
fn skip_or_stop<T>(read: Result<T, Failure>) -> Result<Option<T>, Stop> {
    match read {
        Ok(v) => Ok(Some(v)),
        Err(f) if f.status == StatusCode::UNAUTHORIZED => Err(Stop::Reauth),
        Err(f) => {
            tracing::debug!(status = %f.status, "console live update skipped a round");
            Ok(None)
        }
    }
}

/// A log line without its terminal colour codes (`ESC [ … letter`), which
/// a page would show as noise.
fn without_terminal_codes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates, then one final letter.
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Milliseconds of an RFC 3339 instant the API wrote.
fn ms(rfc3339: Option<&str>) -> i64 {
    rfc3339
        .and_then(hood_api::clock::parse_rfc3339)
        .map(|t| t.millis())
        .unwrap_or(i64::MIN)
}

async fn push_node(tx: &mpsc::Sender<Event>, seen: &mut Seen, n: &NodeView) -> Result<(), Stop> {
    let now = serde_json::json!({
        "id": n.id,
        "state": n.state,
        "sync_status": n.sync_status,
        "app_health": n.app_health,
        "head_height": n.head_height,
        "host_id": n.host_id,
        "rpc_endpoint": n.rpc_endpoint,
        "binary_version": n.binary_version,
    });
    if seen.nodes.get(&n.id.to_string()) == Some(&now) {
        return Ok(());
    }
    seen.nodes.insert(n.id.to_string(), now.clone());
    let mut data = now;
    data["state_html"] = state_badge(&n.state).into_string().into();
    send(tx, event("node", data)).await
}

/// Re-reads what the stream covers and pushes what changed. The first
/// round (`since`: when the page was rendered) sends every node's state
/// (idempotent on the page) and the incidents that changed since then.
async fn resync(
    console: &Console,
    session: &Session,
    node: Option<&str>,
    seen: &mut Seen,
    tx: &mpsc::Sender<Event>,
    since: Option<i64>,
) -> Result<(), Stop> {
    let api = console.backend();
    let who = &session.caller;
    let nodes: Option<Vec<NodeView>> = match node {
        Some(id) => skip_or_stop(
            api.get::<NodeView>(who, &format!("/api/v1/nodes/{id}"))
                .await,
        )?
        .map(|n| vec![n]),
        None => {
            skip_or_stop(api.get::<Page<NodeView>>(who, "/api/v1/nodes").await)?.map(|p| p.items)
        }
    };
    let Some(nodes) = nodes else { return Ok(()) };
    let incidents_path = match node {
        Some(id) => format!("/api/v1/incidents?node_id={id}&limit=100"),
        None => "/api/v1/incidents?limit=100".to_owned(),
    };
    let Some(incidents) = skip_or_stop(api.get::<Page<IncidentView>>(who, &incidents_path).await)?
    else {
        return Ok(());
    };
    let incidents = incidents.items;
    for n in &nodes {
        push_node(tx, seen, n).await?;
    }
    if let Some(id) = node {
        transitions(console, session, id, seen, tx).await?;
    }
    for i in &incidents {
        let now = (i.state.clone(), i.acknowledged_at.clone());
        let id = i.id.to_string();
        let known = seen.incidents.get(&id);
        if known == Some(&now) {
            continue;
        }
        let opened = ms(Some(&i.opened_at));
        let is_new = match since {
            Some(t) => opened > t,
            None => known.is_none(),
        };
        seen.incidents.insert(id, now);
        if let Some(t) = since {
            let changed = [
                Some(i.opened_at.as_str()),
                i.acknowledged_at.as_deref(),
                i.resolved_at.as_deref(),
            ]
            .into_iter()
            .any(|at| ms(at) > t);
            if !changed {
                continue;
            }
        }
        send(
            tx,
            event(
                "incident",
                serde_json::json!({
                    "id": i.id,
                    "new": is_new,
                    "state": i.state,
                    "title": i.title,
                    "node_id": i.node_id,
                    "row_html": incident_row(session, i).into_string(),
                }),
            ),
        )
        .await?;
    }
    Ok(())
}

/// The page's node's state changes after the last one it shows, for its
/// timeline: a node that passes through a state between two reads still
/// shows it.
async fn transitions(
    console: &Console,
    session: &Session,
    id: &str,
    seen: &mut Seen,
    tx: &mpsc::Sender<Event>,
) -> Result<(), Stop> {
    let path = format!(
        "/api/v1/nodes/{id}/events?after={}&limit=1000",
        seen.events_after
    );
    let Some(page) = skip_or_stop(
        console
            .backend()
            .get::<Page<NodeEventView>>(&session.caller, &path)
            .await,
    )?
    else {
        return Ok(());
    };
    for e in &page.items {
        seen.events_after = seen.events_after.max(e.seq);
        let Some(to) = &e.to_state else { continue };
        send(
            tx,
            event(
                "transition",
                serde_json::json!({
                    "seq": e.seq,
                    "to": to,
                    "html": transition_item(e).into_string(),
                }),
            ),
        )
        .await?;
    }
    Ok(())
}

async fn head(
    console: &Console,
    session: &Session,
    id: &str,
    seen: &mut Seen,
    tx: &mpsc::Sender<Event>,
) -> Result<(), Stop> {
    let read = console
        .backend()
        .get::<NodeSyncView>(&session.caller, &format!("/api/v1/nodes/{id}/sync"))
        .await;
    let Some(sync) = skip_or_stop(read)? else {
        return Ok(());
    };
    let Some(height) = sync.head_height else {
        return Ok(());
    };
    if seen.head == Some(height) {
        return Ok(());
    }
    seen.head = Some(height);
    send(
        tx,
        event(
            "head",
            serde_json::json!({ "id": id, "head_height": height, "syncing": sync.syncing }),
        ),
    )
    .await
}

async fn logs(
    console: &Console,
    session: &Session,
    id: &str,
    seen: &mut Seen,
    tx: &mpsc::Sender<Event>,
) -> Result<(), Stop> {
    let read = tokio::time::timeout(
        LOGS_WAIT,
        console
            .backend()
            .get::<serde_json::Map<String, serde_json::Value>>(
                &session.caller,
                &format!("/api/v1/nodes/{id}/logs?lines=40"),
            ),
    )
    .await;
    let Ok(read) = read else {
        // The agent is slow or gone; the state updates must not wait.
        return Ok(());
    };
    let text = match read {
        Ok(by_process) => {
            let mut text = String::new();
            for (process, lines) in by_process {
                for line in lines.as_array().into_iter().flatten() {
                    text.push_str(&process);
                    text.push_str(" | ");
                    text.push_str(&without_terminal_codes(line.as_str().unwrap_or_default()));
                    text.push('\n');
                }
            }
            text
        }
        Err(f) if f.status == StatusCode::UNAUTHORIZED => return Err(Stop::Reauth),
        // No host, or the agent is away: say so in the tail.
        Err(f) => format!("({})", f.message()),
    };
    if text != seen.logs {
        seen.logs.clone_from(&text);
        send(tx, event("logs", serde_json::json!({ "text": text }))).await?;
    }
    Ok(())
}

/// The user's newest notifications: those not sent yet and newer than the
/// page (`since`) go as `notification` events, oldest first; the unread
/// count as `unread` when it changed.
async fn feed(
    console: &Console,
    session: &Session,
    seen: &mut Seen,
    tx: &mpsc::Sender<Event>,
    since: i64,
) -> Result<(), Stop> {
    let read = console
        .backend()
        .get::<NotificationPageView>(
            &session.caller,
            &format!("/api/v1/notifications?limit={FEED_BATCH}"),
        )
        .await;
    let Some(page) = skip_or_stop(read)? else {
        return Ok(());
    };
    for n in page.items.iter().rev() {
        if !seen.notifications.insert(n.id.to_string()) || ms(Some(&n.created_at)) <= since {
            continue;
        }
        send(
            tx,
            event(
                "notification",
                serde_json::json!({
                    "id": n.id,
                    "subject": n.subject,
                    "title": n.title,
                    "row_html": notification_row(n).into_string(),
                }),
            ),
        )
        .await?;
    }
    if seen.unread != Some(page.unread) {
        seen.unread = Some(page.unread);
        send(
            tx,
            event("unread", serde_json::json!({ "count": page.unread })),
        )
        .await?;
    }
    Ok(())
}

async fn run(
    console: Console,
    session: Session,
    node: Option<String>,
    feed_only: bool,
    since: i64,
    after: i64,
    tx: mpsc::Sender<Event>,
) {
    let outcome = drive(
        &console,
        &session,
        node.as_deref(),
        feed_only,
        since,
        after,
        &tx,
    )
    .await;
    if let Err(Stop::Reauth) = outcome {
        let _ = tx.send(event("reauth", serde_json::json!({}))).await;
    }
}

async fn drive(
    console: &Console,
    session: &Session,
    node: Option<&str>,
    feed_only: bool,
    since: i64,
    after: i64,
    tx: &mpsc::Sender<Event>,
) -> Result<(), Stop> {
    let org = session.me.org.id.to_string();
    let subjects: Vec<String> = if feed_only {
        FEED_SUBJECTS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        let mut s: Vec<String> = FEED_SUBJECTS.iter().map(|s| (*s).to_owned()).collect();
        s.extend(["node.>".to_owned(), "incident.>".to_owned()]);
        s.sort();
        s.dedup();
        s
    };
    let mut watch = match console.bus() {
        Some(bus) => match bus.watch(&subjects).await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "console live updates: watching the bus failed; sampling instead");
                None
            }
        },
        None => None,
    };
    send(
        tx,
        event("hello", serde_json::json!({ "bus": watch.is_some() })),
    )
    .await?;
    let mut seen = Seen {
        events_after: after,
        ..Seen::default()
    };
    if !feed_only {
        resync(console, session, node, &mut seen, tx, Some(since)).await?;
    }
    feed(console, session, &mut seen, tx, since).await?;
    if let Some(id) = node {
        logs(console, session, id, &mut seen, tx).await?;
    }
    let resync_every = if watch.is_some() {
        RESYNC_WITH_BUS
    } else {
        RESYNC_WITHOUT_BUS
    };
    let mut resync_tick = tokio::time::interval(resync_every);
    let mut head_tick = tokio::time::interval(HEAD_EVERY);
    let mut logs_tick = tokio::time::interval(LOGS_EVERY);
    let mut feed_tick = tokio::time::interval(FEED_EVERY);
    for t in [
        &mut resync_tick,
        &mut head_tick,
        &mut logs_tick,
        &mut feed_tick,
    ] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t.reset();
    }
    loop {
        if tx.is_closed() {
            return Err(Stop::Gone);
        }
        tokio::select! {
            woken = async {
                match watch.as_mut() {
                    Some(w) => w.next().await,
                    None => std::future::pending().await,
                }
            } => {
                let relevant = match &woken {
                    Ok(e) => e.payload.get("org_id").and_then(|v| v.as_str()) == Some(org.as_str()),
                    // Fell behind: re-read to be safe.
                    Err(_) => true,
                };
                if relevant {
                    tokio::time::sleep(DEBOUNCE).await;
                    if !feed_only {
                        resync(console, session, node, &mut seen, tx, None).await?;
                    }
                    feed(console, session, &mut seen, tx, since).await?;
                }
            }
            _ = resync_tick.tick(), if !feed_only => resync(console, session, node, &mut seen, tx, None).await?,
            _ = feed_tick.tick() => feed(console, session, &mut seen, tx, since).await?,
            _ = head_tick.tick(), if node.is_some() => {
                if let Some(id) = node { head(console, session, id, &mut seen, tx).await?; }
            }
            _ = logs_tick.tick(), if node.is_some() => {
                if let Some(id) = node { logs(console, session, id, &mut seen, tx).await?; }
            }
            _ = tx.closed() => return Err(Stop::Gone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_codes_are_removed() {
        assert_eq!(
            without_terminal_codes("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m eth_call"),
            "2026  INFO eth_call"
        );
        assert_eq!(without_terminal_codes("plain"), "plain");
    }

    #[test]
    fn instants_in_milliseconds() {
        assert_eq!(ms(Some("1970-01-01T00:00:01Z")), 1000);
        assert_eq!(ms(None), i64::MIN);
        assert_eq!(ms(Some("garbage")), i64::MIN);
    }
}
