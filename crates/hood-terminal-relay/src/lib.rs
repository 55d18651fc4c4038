//! Terminal sessions across processes. A session lives in the hub of the
//! API replica a client opened it on; the host's agent dials whichever
//! agent gateway it is connected to. When that gateway runs in another
//! process, it asks over NATS (core subjects, outside the event stream):
//!
//! * `{root}.{session}.attach`: request `{"host_id"}`; only the replica
//!   holding the session answers (attached, or why not); no answer in
//!   time means no replica holds it;
//! * `{root}.{session}.up`: the host's output, its exit, heartbeats;
//! * `{root}.{session}.down`: what clients type, resizes, close,
//!   heartbeats.
//!
//! Each side subscribes before the other may send, numbers its frames
//! (a lost one ends the session rather than tearing the screen) and sends
//! a heartbeat every [`RelayConfig::ping_interval`]; silence for
//! [`RelayConfig::silence_limit`] ends the session on the API's side and
//! closes the shell on the host's.

mod frame;

pub use frame::FrameError;

use async_nats::{Client, Subscriber};
use async_trait::async_trait;
use frame::{Down, Expected, Up};
use futures::StreamExt;
use hood_terminal::{
    AgentEnd, AgentInput, AgentLink, AgentRendezvous, HubError, Session, TerminalHub,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::time::Instant;
use uuid::Uuid;

/// Timings of the relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// How long a gateway waits for the replica holding a session.
    pub attach_timeout: Duration,
    /// Each side sends a heartbeat this often.
    pub ping_interval: Duration,
    /// Nothing heard for this long: the other side is gone.
    pub silence_limit: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            attach_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(5),
            silence_limit: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("connecting to NATS for terminal relays: {0}")]
    Connect(String),
    #[error("subscribing to terminal relay requests: {0}")]
    Subscribe(String),
}

/// Output is cut into frames no larger than this (NATS's default maximum
/// payload is 1 MiB).
const MAX_CHUNK: usize = 64 * 1024;

/// The relay's subjects: `{prefix}_terminal.…`, beside (never inside) the
/// event stream's `{prefix}.>`, so terminal bytes are never stored.
#[derive(Debug, Clone)]
struct Subjects {
    root: String,
}

impl Subjects {
    fn attach(&self, session: Uuid) -> String {
        format!("{}.{session}.attach", self.root)
    }

    fn up(&self, session: Uuid) -> String {
        format!("{}.{session}.up", self.root)
    }

    fn down(&self, session: Uuid) -> String {
        format!("{}.{session}.down", self.root)
    }

    fn any_attach(&self) -> String {
        format!("{}.*.attach", self.root)
    }

    /// The session an attach subject names.
    fn session_of(&self, subject: &str) -> Option<Uuid> {
        subject
            .strip_prefix(&self.root)?
            .strip_prefix('.')?
            .strip_suffix(".attach")?
            .parse()
            .ok()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct AttachRequest {
    host_id: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
enum AttachAnswer {
    Attached,
    WrongHost,
    AlreadyAttached,
    Ended { reason: String },
    Unreachable { reason: String },
}

impl AttachAnswer {
    fn refusal(error: HubError) -> Self {
        match error {
            HubError::WrongHost(_) => Self::WrongHost,
            HubError::AlreadyAttached(_) => Self::AlreadyAttached,
            HubError::Ended { reason, .. } => Self::Ended { reason },
            HubError::NoSession(_) => Self::Unreachable {
                reason: "the session went".into(),
            },
            HubError::Unreachable { reason, .. } => Self::Unreachable { reason },
        }
    }

    fn into_result(self, session: Uuid) -> Result<(), HubError> {
        match self {
            Self::Attached => Ok(()),
            Self::WrongHost => Err(HubError::WrongHost(session)),
            Self::AlreadyAttached => Err(HubError::AlreadyAttached(session)),
            Self::Ended { reason } => Err(HubError::Ended { session, reason }),
            Self::Unreachable { reason } => Err(HubError::Unreachable { session, reason }),
        }
    }
}

/// Sends numbered frames to one subject, in order.
struct Sender {
    client: Client,
    subject: String,
    next: Mutex<u64>,
}

impl Sender {
    fn new(client: Client, subject: String) -> Self {
        Self {
            client,
            subject,
            next: Mutex::new(0),
        }
    }

    /// Publishes `encode(seq)`; the lock keeps numbers in publish order.
    async fn send(&self, encode: impl FnOnce(u64) -> Vec<u8>) -> Result<(), String> {
        let mut next = self.next.lock().await;
        let bytes = encode(*next);
        self.client
            .publish(self.subject.clone(), bytes.into())
            .await
            .map_err(|e| e.to_string())?;
        *next += 1;
        Ok(())
    }
}

/// A NATS connection for terminal relays.
#[derive(Clone)]
pub struct TerminalRelay {
    client: Client,
    subjects: Subjects,
    config: RelayConfig,
}

impl TerminalRelay {
    /// Connects to `url`; subjects are rooted at `{prefix}_terminal`.
    pub async fn connect(url: &str, prefix: &str, config: RelayConfig) -> Result<Self, RelayError> {
        let client = async_nats::ConnectOptions::new()
            .name("hood-terminal-relay")
            .connect(url)
            .await
            .map_err(|e| RelayError::Connect(e.to_string()))?;
        Ok(Self {
            client,
            subjects: Subjects {
                root: format!("{prefix}_terminal"),
            },
            config,
        })
    }

    /// Answers attach requests for `hub`'s sessions until the task is
    /// dropped or aborted (the API's side).
    pub async fn serve_sessions(
        &self,
        hub: Arc<TerminalHub>,
    ) -> Result<tokio::task::JoinHandle<()>, RelayError> {
        let requests = self
            .client
            .subscribe(self.subjects.any_attach())
            .await
            .map_err(|e| RelayError::Subscribe(e.to_string()))?;
        self.subscriptions_in_place().await?;
        let relay = self.clone();
        Ok(tokio::spawn(relay.answer_attaches(hub, requests)))
    }

    /// Returns once the server has registered every subscription this
    /// connection made so far. `subscribe` only queues the SUB, so without
    /// this a gateway asking at once may find no responder. The server
    /// handles one connection's messages in order: a message sent to
    /// ourselves after the SUBs coming back proves they are in place.
    async fn subscriptions_in_place(&self) -> Result<(), RelayError> {
        let probe = self.client.new_inbox();
        let mut echo = self
            .client
            .subscribe(probe.clone())
            .await
            .map_err(|e| RelayError::Subscribe(e.to_string()))?;
        self.client
            .publish(probe, Vec::new().into())
            .await
            .map_err(|e| RelayError::Subscribe(e.to_string()))?;
        let echoed = tokio::time::timeout(self.config.attach_timeout, echo.next()).await;
        let _ = echo.unsubscribe().await;
        match echoed {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(RelayError::Subscribe(
                "the connection closed before the subscription was confirmed".into(),
            )),
            Err(_) => Err(RelayError::Subscribe(format!(
                "the server did not confirm the subscription within {:?}",
                self.config.attach_timeout
            ))),
        }
    }

    async fn answer_attaches(self, hub: Arc<TerminalHub>, mut requests: Subscriber) {
        while let Some(message) = requests.next().await {
            let (Some(reply), Some(session_id)) = (
                message.reply.clone(),
                self.subjects.session_of(&message.subject),
            ) else {
                continue;
            };
            // Another replica's session: its holder answers.
            if hub.get(session_id).is_none() {
                continue;
            }
            let answer = match serde_json::from_slice::<AttachRequest>(&message.payload) {
                Ok(request) => self.attach(&hub, session_id, &request.host_id).await,
                Err(e) => AttachAnswer::Unreachable {
                    reason: format!("a malformed attach request: {e}"),
                },
            };
            let payload = serde_json::to_vec(&answer).unwrap_or_default();
            if let Err(e) = self.client.publish(reply, payload.into()).await {
                tracing::warn!(session = %session_id, error = %e, "could not answer a terminal attach");
            }
        }
    }

    /// Joins the relayed host to `session_id` in `hub`: subscribes to its
    /// output before answering, so none is lost.
    async fn attach(&self, hub: &TerminalHub, session_id: Uuid, host_id: &str) -> AttachAnswer {
        let (session, input) = match hub.attach_agent(session_id, host_id) {
            Ok(joined) => joined,
            Err(e) => {
                if matches!(e, HubError::WrongHost(_)) {
                    tracing::warn!(host_id, session = %session_id,
                        "refused a relayed terminal stream for another host's session");
                }
                return AttachAnswer::refusal(e);
            }
        };
        let up = match self.client.subscribe(self.subjects.up(session_id)).await {
            Ok(up) => up,
            Err(e) => {
                let reason = format!("the terminal relay could not subscribe: {e}");
                Session::finish(&session, None, &reason);
                return AttachAnswer::Unreachable { reason };
            }
        };
        let down = Arc::new(Sender::new(
            self.client.clone(),
            self.subjects.down(session_id),
        ));
        tokio::spawn(forward_input(input, down, self.config.ping_interval));
        tokio::spawn(receive_output(session, up, self.config.silence_limit));
        tracing::info!(host_id, session = %session_id, "terminal stream relayed from another gateway");
        AttachAnswer::Attached
    }

    /// The gateway's side: joins host streams to sessions in `local`
    /// first (when this process also serves the API), else to whichever
    /// replica holds them.
    pub fn rendezvous(&self, local: Option<Arc<TerminalHub>>) -> Arc<dyn AgentRendezvous> {
        Arc::new(RelayRendezvous {
            relay: self.clone(),
            local,
        })
    }
}

/// API side: what clients send, down to the relayed host, with heartbeats.
async fn forward_input(
    mut input: mpsc::UnboundedReceiver<AgentInput>,
    down: Arc<Sender>,
    ping_interval: Duration,
) {
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    loop {
        let frame = tokio::select! {
            message = input.recv() => Down::Input(message.unwrap_or(AgentInput::Close)),
            _ = ping.tick() => Down::Ping,
        };
        let close = matches!(frame, Down::Input(AgentInput::Close));
        if down.send(|seq| frame.encode(seq)).await.is_err() || close {
            return;
        }
    }
}

/// API side: the relayed host's output into its session, until it exits,
/// the session ends, or the gateway goes silent.
async fn receive_output(session: Arc<Session>, mut up: Subscriber, silence_limit: Duration) {
    let mut expected = Expected::default();
    let mut changes = session.subscribe();
    let mut deadline = Instant::now() + silence_limit;
    let reason = loop {
        let message = tokio::select! {
            m = up.next() => m,
            _ = tokio::time::sleep_until(deadline) => break Some((None, "the agent gateway went silent".to_owned())),
            changed = changes.changed() => {
                if changed.is_err() || session.ended().is_some() {
                    break None;
                }
                continue;
            }
        };
        let Some(message) = message else {
            break Some((None, "the terminal relay's subscription ended".into()));
        };
        deadline = Instant::now() + silence_limit;
        match Up::decode(&message.payload) {
            Ok((seq, _)) if !expected.accept(seq) => {
                break Some((None, "the terminal relay lost output".into()))
            }
            Ok((_, Up::Output(data))) => Session::output(&session, &data),
            Ok((_, Up::Exit { code, reason })) => break Some((code, reason)),
            Ok((_, Up::Ping)) => {}
            Err(e) => break Some((None, format!("the terminal relay sent garbage: {e}"))),
        }
    };
    if let Some((code, reason)) = reason {
        Session::finish(&session, code, &reason);
    }
    let _ = up.unsubscribe().await;
}

/// Joins host streams on a gateway to sessions held here or elsewhere.
struct RelayRendezvous {
    relay: TerminalRelay,
    local: Option<Arc<TerminalHub>>,
}

#[async_trait]
impl AgentRendezvous for RelayRendezvous {
    async fn attach_agent(&self, session: Uuid, host_id: &str) -> Result<AgentLink, HubError> {
        if let Some(hub) = &self.local {
            match AgentRendezvous::attach_agent(hub.as_ref(), session, host_id).await {
                Err(HubError::NoSession(_)) => {}
                held_here => return held_here,
            }
        }
        let relay = &self.relay;
        let unreachable = |reason: String| HubError::Unreachable { session, reason };
        // Listening before asking: the holder may type at once.
        let down = relay
            .client
            .subscribe(relay.subjects.down(session))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let request = serde_json::to_vec(&AttachRequest {
            host_id: host_id.to_owned(),
        })
        .map_err(|e| unreachable(e.to_string()))?;
        let asked = tokio::time::timeout(
            relay.config.attach_timeout,
            relay
                .client
                .request(relay.subjects.attach(session), request.into()),
        )
        .await;
        let answer = match asked {
            // No replica holds it (none answered, or none listens).
            Err(_) => return Err(HubError::NoSession(session)),
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    async_nats::RequestErrorKind::NoResponders
                        | async_nats::RequestErrorKind::TimedOut
                ) =>
            {
                return Err(HubError::NoSession(session))
            }
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Ok(Ok(reply)) => serde_json::from_slice::<AttachAnswer>(&reply.payload)
                .map_err(|e| unreachable(format!("a malformed attach answer: {e}")))?,
        };
        answer.into_result(session)?;
        let up = Arc::new(Sender::new(
            relay.client.clone(),
            relay.subjects.up(session),
        ));
        let (input_tx, input) = mpsc::unbounded_channel();
        let (done, done_rx) = watch::channel(false);
        tokio::spawn(relay_input(
            session,
            down,
            input_tx,
            up.clone(),
            relay.config.clone(),
            done_rx,
        ));
        Ok(AgentLink {
            end: Box::new(RelayedEnd { up, done }),
            input,
        })
    }
}

/// Gateway side: what the API sends, to the host; heartbeats up. A gap or
/// the API's silence closes the shell.
async fn relay_input(
    session: Uuid,
    mut down: Subscriber,
    input: mpsc::UnboundedSender<AgentInput>,
    up: Arc<Sender>,
    config: RelayConfig,
    mut done: watch::Receiver<bool>,
) {
    let mut expected = Expected::default();
    let mut deadline = Instant::now() + config.silence_limit;
    let mut ping =
        tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
    loop {
        tokio::select! {
            message = down.next() => {
                let Some(message) = message else { break };
                deadline = Instant::now() + config.silence_limit;
                match Down::decode(&message.payload) {
                    Ok((seq, _)) if !expected.accept(seq) => {
                        tracing::warn!(session = %session, "the terminal relay lost input; closing the shell");
                        break;
                    }
                    Ok((_, Down::Input(message))) => {
                        let close = message == AgentInput::Close;
                        if input.send(message).is_err() || close {
                            return;
                        }
                    }
                    Ok((_, Down::Ping)) => {}
                    Err(e) => {
                        tracing::warn!(session = %session, error = %e, "garbage on the terminal relay; closing the shell");
                        break;
                    }
                }
            }
            _ = ping.tick() => {
                if up.send(|seq| Up::Ping.encode(seq)).await.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(session = %session, "the API holding the terminal went silent; closing the shell");
                break;
            }
            _ = done.changed() => return,
        }
    }
    let _ = input.send(AgentInput::Close);
}

/// The host's end on a gateway apart from the session's holder.
struct RelayedEnd {
    up: Arc<Sender>,
    /// Stops the heartbeats once the host's end finished.
    done: watch::Sender<bool>,
}

#[async_trait]
impl AgentEnd for RelayedEnd {
    async fn output(&self, data: &[u8]) {
        for chunk in data.chunks(MAX_CHUNK) {
            if let Err(e) = self
                .up
                .send(|seq| Up::Output(chunk.to_vec()).encode(seq))
                .await
            {
                tracing::warn!(error = %e, "could not relay terminal output");
                return;
            }
        }
    }

    async fn finish(&self, code: Option<i32>, reason: &str) {
        let exit = Up::Exit {
            code,
            reason: reason.to_owned(),
        };
        if let Err(e) = self.up.send(|seq| exit.encode(seq)).await {
            tracing::warn!(error = %e, "could not relay a terminal's end");
        }
        let _ = self.done.send(true);
    }
}

impl Drop for RelayedEnd {
    fn drop(&mut self) {
        let _ = self.done.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_their_session() {
        let subjects = Subjects {
            root: "hood_terminal".into(),
        };
        let id = Uuid::now_v7();
        assert_eq!(subjects.session_of(&subjects.attach(id)), Some(id));
        assert_eq!(subjects.session_of(&subjects.up(id)), None);
        assert_eq!(subjects.session_of("hood_terminal.nope.attach"), None);
        assert_eq!(
            subjects.session_of(&format!("hood_terminalx.{id}.attach")),
            None
        );
        assert_eq!(subjects.any_attach(), "hood_terminal.*.attach");
    }

    #[test]
    fn answers_carry_refusals_across() {
        let id = Uuid::now_v7();
        for error in [
            HubError::WrongHost(id),
            HubError::AlreadyAttached(id),
            HubError::Ended {
                session: id,
                reason: "exited".into(),
            },
        ] {
            let wire = serde_json::to_vec(&AttachAnswer::refusal(error.clone())).unwrap();
            let answer: AttachAnswer = serde_json::from_slice(&wire).unwrap();
            assert_eq!(answer.into_result(id), Err(error));
        }
        assert_eq!(AttachAnswer::Attached.into_result(id), Ok(()));
    }
}
