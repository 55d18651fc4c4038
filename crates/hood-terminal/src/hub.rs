//! The hub pairs the two ends of a terminal session: clients (a browser, the
//! CLI) on the API's WebSocket, and the agent's PTY on its `Terminal`
//! stream to the gateway. It numbers the output, keeps it for replay,
//! records it, and ends sessions that go idle or are left alone.
//!
//! A session outlives its client connections: a client that reconnects
//! with the offset it has resumes exactly there. It ends when the shell
//! exits, when nothing is typed or printed for the idle timeout, when no
//! client has been attached for the detached timeout, or when the host
//! never opens its end. Its recording is then archived.

use crate::frame::ClientFrame;
use crate::recording::Recording;
use crate::ring::{OutputRing, Replay};
use async_trait::async_trait;
use hood_domain::OrgId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use uuid::Uuid;

/// How sessions are kept.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Output kept for replay, per session.
    pub ring_bytes: usize,
    /// No input and no output for this long ends a session.
    pub idle_timeout: Duration,
    /// No client attached for this long ends a session.
    pub detached_timeout: Duration,
    /// The host must open its end within this.
    pub attach_timeout: Duration,
    /// An ended session still answers reconnects (with its exit) this long.
    pub linger: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            ring_bytes: 256 * 1024,
            idle_timeout: Duration::from_secs(15 * 60),
            detached_timeout: Duration::from_secs(5 * 60),
            attach_timeout: Duration::from_secs(30),
            linger: Duration::from_secs(120),
        }
    }
}

/// Who opened a session, into what, and its first window.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    pub id: Uuid,
    pub allocation_id: String,
    /// The only host whose agent may serve it.
    pub host_id: String,
    pub org_id: Option<OrgId>,
    pub actor: String,
    pub request_id: Option<String>,
    pub opened_at_ms: i64,
    pub cols: u16,
    pub rows: u16,
}

/// What the agent's end receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentInput {
    Data(Vec<u8>),
    Resize {
        cols: u16,
        rows: u16,
    },
    /// End the shell: the session ended on this side.
    Close,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The shell's exit code, when it exited.
    pub code: Option<i32>,
    pub reason: String,
}

/// A session that ended, for its archive.
#[derive(Debug, Clone)]
pub struct FinishedSession {
    pub info: SessionInfo,
    pub ended: Ended,
    pub ended_at_ms: i64,
    /// Output bytes over the whole session.
    pub output_bytes: u64,
    /// The asciicast v2 recording.
    pub cast: Vec<u8>,
    pub recording_truncated: bool,
}

/// Where finished sessions go (the object store and the audit log).
#[async_trait]
pub trait SessionArchive: Send + Sync {
    async fn archive(&self, finished: FinishedSession);
}

/// Refusals of the hub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    #[error("no terminal session {0}")]
    NoSession(Uuid),
    #[error("terminal session {0} belongs to another host")]
    WrongHost(Uuid),
    #[error("terminal session {0} is already served by its host")]
    AlreadyAttached(Uuid),
    #[error("terminal session {session} ended: {reason}")]
    Ended { session: Uuid, reason: String },
    /// The process holding the session could not be asked.
    #[error("terminal session {session} is out of reach: {reason}")]
    Unreachable { session: Uuid, reason: String },
}

/// What a client reads next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Replay(Replay),
    Ended(Ended),
}

struct State {
    ring: OutputRing,
    recording: Option<Recording>,
    to_agent: Option<mpsc::UnboundedSender<AgentInput>>,
    /// Input typed before the host opened its end.
    pending: Vec<AgentInput>,
    ended: Option<(Ended, Instant)>,
    last_activity: Instant,
    clients: usize,
    detached_since: Option<Instant>,
}

/// One terminal session.
pub struct Session {
    info: SessionInfo,
    opened: Instant,
    state: Mutex<State>,
    /// Bumped with every change a client may be waiting for.
    changed: watch::Sender<u64>,
    archive: Option<Arc<dyn SessionArchive>>,
}

/// Input waiting for the host is capped: a client that types into a
/// session whose host never comes is not buffered without end.
const MAX_PENDING: usize = 1024;

impl Session {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only bytes and counters:
        // nothing a later reader could misread.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes when there is something new to read.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The offset the next output byte will have.
    pub fn end_offset(&self) -> u64 {
        self.state().ring.end()
    }

    /// What a client that has everything before `offset` reads next:
    /// output (empty when it is up to date and the session goes on), the
    /// screen when its gap left the ring, or the end.
    pub fn read(&self, offset: u64) -> Read {
        let state = self.state();
        match state.ring.since(offset) {
            Replay::Bytes { data, .. } if data.is_empty() => match &state.ended {
                Some((ended, _)) => Read::Ended(ended.clone()),
                None => Read::Replay(Replay::Bytes {
                    offset,
                    data: Vec::new(),
                }),
            },
            replay => Read::Replay(replay),
        }
    }

    /// A client's frame: input and window changes go to the host.
    pub fn input(&self, frame: ClientFrame) -> Result<(), HubError> {
        let message = match frame {
            ClientFrame::Input(data) => AgentInput::Data(data),
            ClientFrame::Resize { cols, rows } => AgentInput::Resize { cols, rows },
            // Flow control is the connection's business.
            ClientFrame::Pause | ClientFrame::Resume => return Ok(()),
        };
        let mut state = self.state();
        if let Some((ended, _)) = &state.ended {
            return Err(HubError::Ended {
                session: self.info.id,
                reason: ended.reason.clone(),
            });
        }
        state.last_activity = Instant::now();
        if let AgentInput::Resize { cols, rows } = &message {
            state.ring.resize(*cols, *rows);
            let at = hood_clock::now().millis();
            if let Some(r) = state.recording.as_mut() {
                r.resize(at, *cols, *rows);
            }
        }
        match &state.to_agent {
            Some(tx) => {
                // A closed channel means the host's end is going away; its
                // end arrives through `finish`.
                let _ = tx.send(message);
            }
            None if state.pending.len() < MAX_PENDING => state.pending.push(message),
            None => {}
        }
        Ok(())
    }

    /// A client connection came.
    pub fn client_attached(&self) {
        let mut state = self.state();
        state.clients += 1;
        state.detached_since = None;
    }

    /// A client connection went.
    pub fn client_detached(&self) {
        let mut state = self.state();
        state.clients = state.clients.saturating_sub(1);
        if state.clients == 0 {
            state.detached_since = Some(Instant::now());
        }
    }

    /// Output from the host's PTY.
    pub fn output(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        {
            let mut state = self.state();
            if state.ended.is_some() {
                return;
            }
            state.ring.push(data);
            state.last_activity = Instant::now();
            let at = hood_clock::now().millis();
            if let Some(r) = state.recording.as_mut() {
                r.output(at, data);
            }
        }
        self.bump();
    }

    /// Ends the session (once; later calls do nothing): tells the host to
    /// close its end, wakes every client, and archives the recording.
    pub fn finish(&self, code: Option<i32>, reason: &str) {
        let finished = {
            let mut state = self.state();
            if state.ended.is_some() {
                return;
            }
            let ended = Ended {
                code,
                reason: reason.to_owned(),
            };
            state.ended = Some((ended.clone(), Instant::now()));
            if let Some(tx) = state.to_agent.take() {
                let _ = tx.send(AgentInput::Close);
            }
            state.pending.clear();
            let at = hood_clock::now().millis();
            state.recording.take().map(|r| {
                let truncated = r.truncated();
                FinishedSession {
                    info: self.info.clone(),
                    ended,
                    ended_at_ms: at,
                    output_bytes: state.ring.end(),
                    cast: r.finish(at),
                    recording_truncated: truncated,
                }
            })
        };
        tracing::info!(session = %self.info.id, allocation = %self.info.allocation_id,
            reason, code = ?code, "terminal session ended");
        self.bump();
        if let (Some(finished), Some(archive)) = (finished, self.archive.clone()) {
            tokio::spawn(async move { archive.archive(finished).await });
        }
    }

    /// Why it ended, if it did.
    pub fn ended(&self) -> Option<Ended> {
        self.state().ended.as_ref().map(|(e, _)| e.clone())
    }

    /// Whether it should end now, and why.
    fn due(&self, config: &HubConfig, now: Instant) -> Option<String> {
        let state = self.state();
        if state.ended.is_some() {
            return None;
        }
        if state.to_agent.is_none() && now.duration_since(self.opened) >= config.attach_timeout {
            return Some("the host did not open the terminal in time".into());
        }
        if now.duration_since(state.last_activity) >= config.idle_timeout {
            return Some(format!(
                "idle for {} s (no input and no output)",
                config.idle_timeout.as_secs()
            ));
        }
        match state.detached_since {
            Some(since) if now.duration_since(since) >= config.detached_timeout => Some(format!(
                "no client attached for {} s",
                config.detached_timeout.as_secs()
            )),
            _ => None,
        }
    }
}

/// Every live terminal session of this process.
pub struct TerminalHub {
    config: HubConfig,
    sessions: Mutex<HashMap<Uuid, Arc<Session>>>,
    archive: Option<Arc<dyn SessionArchive>>,
}

impl TerminalHub {
    pub fn new(config: HubConfig) -> Self {
        Self {
            config,
            sessions: Mutex::new(HashMap::new()),
            archive: None,
        }
    }

    /// Finished sessions are handed to `archive`.
    pub fn with_archive(mut self, archive: Arc<dyn SessionArchive>) -> Self {
        self.archive = Some(archive);
        self
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<Uuid, Arc<Session>>> {
        // Only a map of handles: consistent after any panic.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session; the host is asked to open its end separately.
    pub fn open(&self, info: SessionInfo) -> Arc<Session> {
        let now = Instant::now();
        let title = format!("allocation {}", info.allocation_id);
        let session = Arc::new(Session {
            opened: now,
            state: Mutex::new(State {
                ring: OutputRing::new(self.config.ring_bytes, info.cols, info.rows),
                recording: Some(Recording::new(
                    info.opened_at_ms,
                    info.cols,
                    info.rows,
                    &title,
                )),
                to_agent: None,
                pending: Vec::new(),
                ended: None,
                last_activity: now,
                clients: 0,
                detached_since: Some(now),
            }),
            changed: watch::channel(0).0,
            archive: self.archive.clone(),
            info,
        });
        self.sessions().insert(session.info.id, session.clone());
        session
    }

    pub fn get(&self, id: Uuid) -> Option<Arc<Session>> {
        self.sessions().get(&id).cloned()
    }

    /// The host `host_id` opens its end of session `id`: it gets what the
    /// clients send (input typed so far first).
    pub fn attach_agent(
        &self,
        id: Uuid,
        host_id: &str,
    ) -> Result<(Arc<Session>, mpsc::UnboundedReceiver<AgentInput>), HubError> {
        let session = self.get(id).ok_or(HubError::NoSession(id))?;
        if session.info.host_id != host_id {
            return Err(HubError::WrongHost(id));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut state = session.state();
            if let Some((ended, _)) = &state.ended {
                return Err(HubError::Ended {
                    session: id,
                    reason: ended.reason.clone(),
                });
            }
            if state.to_agent.is_some() {
                return Err(HubError::AlreadyAttached(id));
            }
            for message in state.pending.drain(..) {
                let _ = tx.send(message);
            }
            state.to_agent = Some(tx);
        }
        Ok((session, rx))
    }

    /// Ends what is due and forgets what ended long enough ago; returns how
    /// many sessions it ended.
    pub fn sweep(&self, now: Instant) -> usize {
        let sessions: Vec<Arc<Session>> = self.sessions().values().cloned().collect();
        let mut ended = 0;
        for session in &sessions {
            if let Some(reason) = session.due(&self.config, now) {
                session.finish(None, &reason);
                ended += 1;
            }
        }
        self.sessions().retain(|_, s| match &s.state().ended {
            Some((_, at)) => now.duration_since(*at) < self.config.linger,
            None => true,
        });
        ended
    }

    /// Sweeps every second until the hub is dropped by everyone else.
    pub fn spawn_sweeper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                hub.sweep(Instant::now());
            }
        })
    }

    /// Sessions not yet ended.
    pub fn live(&self) -> usize {
        self.sessions()
            .values()
            .filter(|s| s.ended().is_none())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(host: &str) -> SessionInfo {
        SessionInfo {
            id: Uuid::new_v4(),
            allocation_id: "a1".into(),
            host_id: host.into(),
            org_id: None,
            actor: "user:u1".into(),
            request_id: None,
            opened_at_ms: 0,
            cols: 80,
            rows: 24,
        }
    }

    struct Collect(mpsc::UnboundedSender<FinishedSession>);

    #[async_trait]
    impl SessionArchive for Collect {
        async fn archive(&self, finished: FinishedSession) {
            let _ = self.0.send(finished);
        }
    }

    #[tokio::test]
    async fn input_before_the_host_attaches_reaches_it_in_order() {
        let hub = TerminalHub::new(HubConfig::default());
        let s = hub.open(info("h1"));
        s.input(ClientFrame::Input(b"ls\r".to_vec())).unwrap();
        s.input(ClientFrame::Resize {
            cols: 100,
            rows: 40,
        })
        .unwrap();
        assert_eq!(
            hub.attach_agent(s.info().id, "h2").err(),
            Some(HubError::WrongHost(s.info().id))
        );
        let (_, mut rx) = hub.attach_agent(s.info().id, "h1").unwrap();
        assert!(matches!(
            hub.attach_agent(s.info().id, "h1"),
            Err(HubError::AlreadyAttached(_))
        ));
        assert_eq!(rx.recv().await, Some(AgentInput::Data(b"ls\r".to_vec())));
        assert_eq!(
            rx.recv().await,
            Some(AgentInput::Resize {
                cols: 100,
                rows: 40
            })
        );
        s.input(ClientFrame::Input(b"x".to_vec())).unwrap();
        assert_eq!(rx.recv().await, Some(AgentInput::Data(b"x".to_vec())));
    }

    #[tokio::test]
    async fn a_reader_gets_output_then_the_end_and_the_recording_is_archived() {
        let (tx, mut archived) = mpsc::unbounded_channel();
        let hub = TerminalHub::new(HubConfig::default()).with_archive(Arc::new(Collect(tx)));
        let s = hub.open(info("h1"));
        let (_, mut to_agent) = hub.attach_agent(s.info().id, "h1").unwrap();
        let mut changed = s.subscribe();
        s.output(b"hello\r\n");
        changed.changed().await.unwrap();
        assert_eq!(
            s.read(0),
            Read::Replay(Replay::Bytes {
                offset: 0,
                data: b"hello\r\n".to_vec()
            })
        );
        assert_eq!(
            s.read(7),
            Read::Replay(Replay::Bytes {
                offset: 7,
                data: vec![]
            })
        );
        s.finish(Some(0), "the shell exited");
        s.finish(Some(1), "twice");
        assert_eq!(to_agent.recv().await, Some(AgentInput::Close));
        // Output still unread comes before the end.
        assert!(matches!(
            s.read(3),
            Read::Replay(Replay::Bytes { offset: 3, .. })
        ));
        assert_eq!(
            s.read(7),
            Read::Ended(Ended {
                code: Some(0),
                reason: "the shell exited".into()
            })
        );
        assert!(s.input(ClientFrame::Input(b"x".to_vec())).is_err());
        let finished = archived.recv().await.unwrap();
        assert_eq!(finished.output_bytes, 7);
        assert_eq!(finished.ended.code, Some(0));
        let cast = String::from_utf8(finished.cast).unwrap();
        assert!(cast.lines().nth(1).unwrap().contains("hello"), "{cast}");
        // Only once.
        assert!(archived.try_recv().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_detached_and_unattended_sessions_end() {
        let config = HubConfig {
            idle_timeout: Duration::from_secs(60),
            detached_timeout: Duration::from_secs(30),
            attach_timeout: Duration::from_secs(10),
            linger: Duration::from_secs(5),
            ..HubConfig::default()
        };
        let hub = TerminalHub::new(config);
        // Never attached by its host.
        let orphan = hub.open(info("h1"));
        // Attached, a client stays, but nothing happens.
        let idle = hub.open(info("h1"));
        hub.attach_agent(idle.info().id, "h1").unwrap();
        idle.client_attached();
        // Attached, then its client leaves.
        let left = hub.open(info("h1"));
        hub.attach_agent(left.info().id, "h1").unwrap();
        left.client_attached();

        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(hub.sweep(Instant::now()), 1);
        assert!(orphan.ended().unwrap().reason.contains("did not open"));
        left.client_detached();
        tokio::time::advance(Duration::from_secs(25)).await;
        left.output(b"still printing");
        assert_eq!(hub.sweep(Instant::now()), 0);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(hub.sweep(Instant::now()), 1);
        assert!(left.ended().unwrap().reason.contains("no client"));
        // The orphan lingered 5 s and is forgotten.
        assert!(hub.get(orphan.info().id).is_none());
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(hub.sweep(Instant::now()), 1);
        assert!(idle.ended().unwrap().reason.contains("idle"));
        assert_eq!(hub.live(), 0);
    }
}
