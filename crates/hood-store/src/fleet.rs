//! Hosts, enrollment tokens, host certificates, the internal CA, durable
//! agent commands, workload reports and agent events.
//!
//! Every state change goes through the domain machines
//! ([`HostState`], [`CommandState`]): a move the table refuses is
//! [`StoreError::InvalidTransition`](crate::StoreError::InvalidTransition),
//! and writes are compare-and-set on the state read, so two racing callers
//! cannot both win. Host state changes and command outcomes are announced
//! in the outbox (`fleet.host.*`, `fleet.command.finished`).
//!
//! The records are domain types (`hood_domain::host`, `hood_domain::agent`),
//! re-exported here.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::host_metrics::HostSample;
use hood_domain::lifecycle::{CommandState, HostState};
use hood_domain::{CommandId, HostId, OrgId, Timestamp};

pub use hood_domain::agent::{AgentCommand, AgentEventRecord, CommandFinish, WorkloadReport};
pub use hood_domain::host::{CaRecord, EnrollmentToken, Host, HostCertificate};

/// Which hosts [`FleetStore::list_hosts`] returns; `None` fields match all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFilter {
    pub org_id: Option<OrgId>,
    pub state: Option<HostState>,
    pub provider: Option<String>,
}

/// What happened to an enrollment attempt ([`FleetStore::complete_enrollment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// Token consumed, certificate recorded, host moved to `ready`.
    Enrolled,
    /// Unknown, already used, expired, or issued for another host.
    TokenRejected,
    /// The host is not waiting for its agent; nothing was written.
    HostNotEnrolling(HostState),
}

/// Hosts and everything the agent gateway keeps about them: enrollment,
/// certificates and the CA, durable agent commands, workload reports and
/// agent events.
#[async_trait]
pub trait FleetStore: Send + Sync {
    // -- hosts --
    /// Inserts a host in an initial state (outbox: `fleet.host.created`).
    /// `Conflict("id")` when the id exists; a non-initial state is
    /// `InvalidTransition`.
    async fn create_host(&self, host: &Host) -> StoreResult<()>;
    async fn get_host(&self, id: HostId) -> StoreResult<Option<Host>>;
    /// Hosts matching `filter`, oldest first.
    async fn list_hosts(&self, filter: &HostFilter) -> StoreResult<Vec<Host>>;
    /// Moves a host to `to` through the host machine; returns the state it
    /// left. Moving to the current state is a no-op (no event). Refused
    /// moves are `InvalidTransition`; `NotFound("host")` when missing.
    /// Outbox: `fleet.host.state_changed`.
    async fn transition_host(
        &self,
        id: HostId,
        to: HostState,
        now: Timestamp,
    ) -> StoreResult<HostState>;
    /// Like [`transition_host`](Self::transition_host) but only if the host
    /// is currently in `from`: returns false (and writes nothing) otherwise.
    async fn transition_host_from(
        &self,
        id: HostId,
        from: HostState,
        to: HostState,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Records where the provider put the host (address, provider handle).
    async fn set_host_provider_info(
        &self,
        id: HostId,
        address: Option<&str>,
        provider_ref: &serde_json::Value,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Marks the start of an agent session (`connected_at`, `last_seen_at`,
    /// agent version). `session` identifies it for [`host_session_ended`].
    ///
    /// [`host_session_ended`]: Self::host_session_ended
    async fn host_session_started(
        &self,
        id: HostId,
        session: &str,
        agent_version: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Clears `connected_at` if `session` is still the host's current one (a
    /// newer session on another gateway is left alone).
    async fn host_session_ended(
        &self,
        id: HostId,
        session: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// A heartbeat: stamps `last_seen_at` and replaces the host's workload
    /// reports with `workloads` (the agent reports the complete set).
    async fn record_heartbeat(
        &self,
        id: HostId,
        workloads: &[WorkloadReport],
        now: Timestamp,
    ) -> StoreResult<()>;
    /// The host's latest workload reports, by workload id.
    async fn list_host_workloads(&self, id: HostId) -> StoreResult<Vec<WorkloadReport>>;
    /// Keeps one sample of the host's counters (the cluster monitor); a
    /// second sample at the same instant replaces the first.
    async fn record_host_sample(&self, id: HostId, sample: &HostSample) -> StoreResult<()>;
    /// The host's samples taken at or after `since`, oldest first: the
    /// newest `limit` of them.
    async fn host_samples(
        &self,
        id: HostId,
        since: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<HostSample>>;

    // -- enrollment --
    /// Stores a token (hash only). `NotFound("host")` when the host is missing.
    async fn insert_enrollment_token(&self, token: &EnrollmentToken) -> StoreResult<()>;
    async fn find_enrollment_token(&self, token_hash: &str)
        -> StoreResult<Option<EnrollmentToken>>;
    /// Atomically spends an unused, unexpired token; returns its host. Of
    /// concurrent callers with the same token exactly one gets `Some`.
    async fn consume_enrollment_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<HostId>>;
    /// The whole enrollment in one transaction: spends the token (which must
    /// belong to `cert.host_id`), requires the host to be `enrolling`,
    /// records the certificate, host name and agent version, and moves the
    /// host to `ready`. Nothing is written unless the outcome is `Enrolled`.
    async fn complete_enrollment(
        &self,
        token_hash: &str,
        key_sha256: &str,
        cert: &HostCertificate,
        hostname: &str,
        agent_version: &str,
        now: Timestamp,
    ) -> StoreResult<EnrollOutcome>;

    // -- certificates and the CA --
    /// `Conflict("serial")` on a duplicate serial, `NotFound("host")`.
    async fn insert_host_certificate(&self, cert: &HostCertificate) -> StoreResult<()>;
    async fn get_host_certificate(&self, serial: &str) -> StoreResult<Option<HostCertificate>>;
    /// Revokes every live certificate of a host; returns how many.
    async fn revoke_host_certificates(&self, host: HostId, now: Timestamp) -> StoreResult<u64>;
    /// Revokes one certificate (idempotent: the first time is kept).
    /// Returns false when the serial is unknown.
    async fn revoke_host_certificate(&self, serial: &str, now: Timestamp) -> StoreResult<bool>;
    /// Stores `ca` unless a CA exists; returns the CA that is stored now
    /// (the caller's, or the one a concurrent process stored first).
    async fn insert_ca_if_absent(&self, ca: &CaRecord) -> StoreResult<CaRecord>;
    async fn get_ca(&self) -> StoreResult<Option<CaRecord>>;

    // -- agent commands --
    /// Inserts a `queued` command unless the host already has one with the
    /// same idempotency key; returns the stored command and whether it was
    /// created now. `NotFound("host")` when the host is missing.
    async fn enqueue_agent_command(&self, cmd: &AgentCommand) -> StoreResult<(AgentCommand, bool)>;
    async fn get_agent_command(&self, id: CommandId) -> StoreResult<Option<AgentCommand>>;
    /// A host's commands, newest first, at most `limit`.
    async fn list_agent_commands(&self, host: HostId, limit: i64)
        -> StoreResult<Vec<AgentCommand>>;
    /// `queued`, unexpired commands of a host, oldest first.
    async fn agent_commands_to_dispatch(
        &self,
        host: HostId,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<AgentCommand>>;
    /// Hosts that have `queued`, unexpired commands (at most `limit`): what
    /// a gateway polls to notice commands enqueued by another process.
    async fn hosts_with_queued_agent_commands(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<HostId>>;
    /// `queued → dispatched`, counting an attempt. Returns false when the
    /// command is no longer queued (another gateway took it, or it expired).
    async fn mark_agent_command_dispatched(
        &self,
        id: CommandId,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// `dispatched → acked` for a command of `host`; returns the state it
    /// left. Acking an acked command is a no-op. `NotFound("command")` when
    /// it is not a command of that host.
    async fn ack_agent_command(
        &self,
        host: HostId,
        id: CommandId,
        now: Timestamp,
    ) -> StoreResult<CommandState>;
    /// Stores the latest progress of a live command of `host` (no state
    /// change). Returns false when the command is unknown or finished.
    async fn record_agent_command_progress(
        &self,
        host: HostId,
        id: CommandId,
        percent: i64,
        message: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// `dispatched | acked → succeeded | failed` with the outcome (outbox:
    /// `fleet.command.finished`); returns the state it left.
    async fn finish_agent_command(
        &self,
        host: HostId,
        id: CommandId,
        outcome: &CommandFinish,
        now: Timestamp,
    ) -> StoreResult<CommandState>;
    /// Moves every live command whose deadline has passed to `expired`;
    /// returns their ids.
    async fn expire_overdue_agent_commands(&self, now: Timestamp) -> StoreResult<Vec<CommandId>>;
    /// `dispatched → queued` for every unacknowledged command of a host (its
    /// stream died before the ack); returns how many.
    async fn requeue_dispatched_agent_commands(
        &self,
        host: HostId,
        now: Timestamp,
    ) -> StoreResult<u64>;

    // -- agent events --
    /// Stores an event; returns its sequence number.
    async fn insert_agent_event(&self, event: &AgentEventRecord) -> StoreResult<i64>;
    /// A host's events after `after_seq`, oldest first, at most `limit`.
    async fn list_agent_events(
        &self,
        host: HostId,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AgentEventRecord>>;

    // -- cleanup --
    /// Deletes enrollment tokens that expired unused before `before`.
    async fn delete_expired_enrollment_tokens(&self, before: Timestamp) -> StoreResult<u64>;
}
