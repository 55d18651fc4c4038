//! The in-process service API over agent commands, enrollment and sessions.

use crate::error::{GatewayError, GatewayResult};
use crate::{millis, now};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hood_domain::lifecycle::{CommandState, HostState};
use hood_domain::machine::StateMachine as _;
use hood_domain::{CommandId, HostId};
use hood_store::allocation::AllocationStore;
use hood_store::fleet::FleetStore;
use hood_store::fleet::{AgentCommand, EnrollmentToken};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Every enrollment token starts with this, so a leaked one is recognisable
/// (secret scanners, log scrubbing).
pub const ENROLLMENT_TOKEN_PREFIX: &str = "hood_enroll_";

/// How often [`Fleet::wait_command`] re-reads the row when nothing in this
/// process told it about a change (the agent may be on another replica).
const WAIT_POLL: Duration = Duration::from_millis(250);
/// Default: a host whose session row is older than this without a
/// heartbeat counts as disconnected (its gateway may have died).
const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(45);

/// How a command ended, or that it has not yet.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandOutcome {
    /// The agent reported success, with its output.
    Succeeded(serde_json::Value),
    /// The agent reported failure.
    Failed(String),
    /// The deadline passed first. `maybe_ran` is true when the agent had
    /// acknowledged it: the outcome is unknown, re-check before retrying.
    Expired { maybe_ran: bool },
    /// Still live when the wait ran out.
    Pending(CommandState),
}

fn outcome_of(cmd: &AgentCommand) -> Option<CommandOutcome> {
    match cmd.state {
        CommandState::Succeeded => Some(CommandOutcome::Succeeded(
            cmd.result.clone().unwrap_or(serde_json::Value::Null),
        )),
        CommandState::Failed => Some(CommandOutcome::Failed(
            cmd.error.clone().unwrap_or_default(),
        )),
        CommandState::Expired => Some(CommandOutcome::Expired {
            maybe_ran: cmd.acked_at.is_some(),
        }),
        CommandState::Queued | CommandState::Dispatched | CommandState::Acked => None,
    }
}

/// One open session in this process.
pub(crate) struct SessionSlot {
    pub id: String,
    /// Poked when a command for the host is enqueued.
    pub wake: Notify,
    /// Poked when a newer session replaces this one, or the host is revoked.
    pub kicked: Notify,
}

struct Inner {
    store: Arc<dyn FleetStore>,
    /// Where agents' capacity reports go, when allocations are served.
    capacity: Option<Arc<dyn AllocationStore>>,
    sessions: Mutex<HashMap<HostId, Arc<SessionSlot>>>,
    /// Poked (`notify_waiters`) whenever a command reaches an outcome here.
    command_changed: Notify,
}

/// Commands, enrollment tokens and connection state of the fleet. Cheap to
/// clone; clones share the session registry, so a [`Gateway`] built from a
/// `Fleet` delivers what that `Fleet` enqueues at once.
///
/// [`Gateway`]: crate::Gateway
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
    stale_after: Duration,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").finish_non_exhaustive()
    }
}

/// SHA-256 (hex) of an enrollment token: what the store keeps.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn validate_kind(kind: &str) -> GatewayResult<()> {
    let ok = !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(GatewayError::Invalid(
            "command kind (1-64 chars of a-z, 0-9, `_`, `.`)".into(),
        ))
    }
}

impl Fleet {
    pub fn new(store: Arc<dyn FleetStore>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                capacity: None,
                sessions: Mutex::new(HashMap::new()),
                command_changed: Notify::new(),
            }),
            stale_after: DEFAULT_STALE_AFTER,
        }
    }

    /// Records the capacity each agent reports in its `Hello` (without it,
    /// reports are ignored). Call before the fleet is shared.
    pub fn with_capacity_store(mut self, capacity: Arc<dyn AllocationStore>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.capacity = Some(capacity);
        }
        self
    }

    pub(crate) fn capacity_store(&self) -> Option<&Arc<dyn AllocationStore>> {
        self.inner.capacity.as_ref()
    }

    /// Overrides how long a session recorded by another process stays
    /// "connected" without a heartbeat (default 45 s, three heartbeats).
    pub fn with_stale_after(mut self, stale_after: Duration) -> Self {
        self.stale_after = stale_after;
        self
    }

    pub fn store(&self) -> &Arc<dyn FleetStore> {
        &self.inner.store
    }

    /// Creates a one-time enrollment token for `host`, valid for `ttl`.
    /// Returns the secret: this is the only time it exists outside the
    /// agent; the store keeps its SHA-256.
    pub async fn issue_enrollment_token(
        &self,
        host: HostId,
        ttl: Duration,
    ) -> GatewayResult<String> {
        let h = self
            .inner
            .store
            .get_host(host)
            .await?
            .ok_or(GatewayError::NotFound("host"))?;
        if h.state.is_terminal() {
            return Err(GatewayError::HostState {
                host,
                state: h.state,
            });
        }
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let token = format!(
            "{ENROLLMENT_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(secret)
        );
        let now = now();
        self.inner
            .store
            .insert_enrollment_token(&EnrollmentToken {
                token_hash: token_hash(&token),
                host_id: host,
                created_at: now,
                expires_at: now.plus_millis(millis(ttl)),
                used_at: None,
                key_sha256: None,
            })
            .await?;
        tracing::info!(host_id = %host, ttl_secs = ttl.as_secs(), "issued enrollment token");
        Ok(token)
    }

    /// Queues a command for a host's agent. Enqueuing the same
    /// `idempotency_key` for the host again returns the first command's id
    /// and queues nothing. The command expires after `ttl` if it has not
    /// finished by then. A connected agent receives it within a second.
    pub async fn enqueue_command(
        &self,
        host: HostId,
        kind: &str,
        payload: serde_json::Value,
        idempotency_key: Option<&str>,
        ttl: Duration,
    ) -> GatewayResult<CommandId> {
        validate_kind(kind)?;
        if ttl.is_zero() {
            return Err(GatewayError::Invalid("ttl (must be positive)".into()));
        }
        if idempotency_key.is_some_and(|k| k.is_empty() || k.len() > 200) {
            return Err(GatewayError::Invalid(
                "idempotency_key (1-200 chars)".into(),
            ));
        }
        let h = self
            .inner
            .store
            .get_host(host)
            .await?
            .ok_or(GatewayError::NotFound("host"))?;
        if matches!(
            h.state,
            HostState::Deleting | HostState::Deleted | HostState::Failed
        ) {
            return Err(GatewayError::HostState {
                host,
                state: h.state,
            });
        }
        let now = now();
        let cmd = AgentCommand::new(
            CommandId::from_uuid(uuid::Uuid::now_v7()),
            host,
            kind,
            payload,
            idempotency_key.map(str::to_owned),
            now,
            now.plus_millis(millis(ttl)),
        );
        let (stored, created) = self.inner.store.enqueue_agent_command(&cmd).await?;
        if created {
            tracing::info!(host_id = %host, command_id = %stored.id, kind, "enqueued agent command");
            self.wake(host);
        } else {
            tracing::debug!(host_id = %host, command_id = %stored.id, kind, "command already enqueued (idempotency key)");
        }
        Ok(stored.id)
    }

    /// Waits until the command has an outcome or `timeout` passes
    /// ([`CommandOutcome::Pending`] then).
    pub async fn wait_command(
        &self,
        id: CommandId,
        timeout: Duration,
    ) -> GatewayResult<CommandOutcome> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before reading, so a change between the read and
            // the wait is not missed.
            let notified = self.inner.command_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let cmd = self
                .inner
                .store
                .get_agent_command(id)
                .await?
                .ok_or(GatewayError::NotFound("command"))?;
            if let Some(outcome) = outcome_of(&cmd) {
                return Ok(outcome);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(CommandOutcome::Pending(cmd.state));
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(left.min(WAIT_POLL)) => {}
            }
        }
    }

    /// Whether the host's agent has an open session: on this process, or on
    /// another gateway that recorded it and has heard a heartbeat recently.
    pub async fn host_connected(&self, host: HostId) -> GatewayResult<bool> {
        if self.local_session(host).is_some() {
            return Ok(true);
        }
        let Some(h) = self.inner.store.get_host(host).await? else {
            return Ok(false);
        };
        let fresh_after = now().plus_millis(-millis(self.stale_after));
        Ok(h.connected_at.is_some() && h.last_seen_at.is_some_and(|t| t > fresh_after))
    }

    /// Revokes every certificate of a host and closes its session here
    /// (other gateways refuse it at its next heartbeat or call).
    pub async fn revoke_host(&self, host: HostId) -> GatewayResult<u64> {
        let revoked = self
            .inner
            .store
            .revoke_host_certificates(host, now())
            .await?;
        if let Some(slot) = self.local_session(host) {
            slot.kicked.notify_one();
        }
        tracing::info!(host_id = %host, revoked, "revoked host certificates");
        Ok(revoked)
    }

    // -- used by the server --

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<HostId, Arc<SessionSlot>>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (single insert/remove), so a poisoned lock is still usable.
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn local_session(&self, host: HostId) -> Option<Arc<SessionSlot>> {
        self.sessions().get(&host).cloned()
    }

    /// Pokes the host's session in this process, if it has one.
    pub(crate) fn wake(&self, host: HostId) {
        if let Some(slot) = self.local_session(host) {
            slot.wake.notify_one();
        }
    }

    /// Whether any session is open in this process.
    pub(crate) fn has_sessions(&self) -> bool {
        !self.sessions().is_empty()
    }

    /// Registers a new session of `host`, superseding (kicking) an older one.
    pub(crate) fn register_session(&self, host: HostId, id: &str) -> Arc<SessionSlot> {
        let slot = Arc::new(SessionSlot {
            id: id.to_owned(),
            wake: Notify::new(),
            kicked: Notify::new(),
        });
        if let Some(old) = self.sessions().insert(host, slot.clone()) {
            old.kicked.notify_one();
        }
        slot
    }

    /// Forgets the session unless a newer one has replaced it.
    pub(crate) fn unregister_session(&self, host: HostId, id: &str) {
        let mut sessions = self.sessions();
        if sessions.get(&host).is_some_and(|s| s.id == id) {
            sessions.remove(&host);
        }
    }

    /// Tells waiters in this process that some command changed.
    pub(crate) fn commands_changed(&self) {
        self.inner.command_changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_validated() {
        assert!(validate_kind("ping").is_ok());
        assert!(validate_kind("start_workload").is_ok());
        assert!(validate_kind("").is_err());
        assert!(validate_kind("Drop Table").is_err());
        assert!(validate_kind(&"a".repeat(65)).is_err());
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
