//! Rows of the fleet tables: hosts, enrollment tokens, certificates, the
//! CA, agent commands, workload reports and agent events.

use crate::codec::{self, opt_ts};
use crate::StoreError;
use hood_domain::agent::{AgentCommand, AgentEventRecord, WorkloadReport};
use hood_domain::host::{CaRecord, EnrollmentToken, Host, HostCertificate};
use hood_domain::host_metrics::{HostCounters, HostSample};
use hood_domain::lifecycle::HostState;
use hood_domain::Timestamp;

pub(crate) const HOST_COLUMNS: &str = "id, org_id, provider, region, state, address, \
     provider_ref, hostname, agent_version, last_seen_at, connected_at, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct HostRow {
    id: String,
    org_id: Option<String>,
    provider: String,
    region: String,
    state: String,
    address: Option<String>,
    provider_ref: String,
    hostname: Option<String>,
    agent_version: Option<String>,
    last_seen_at: Option<i64>,
    connected_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<HostRow> for Host {
    type Error = StoreError;
    fn try_from(r: HostRow) -> Result<Self, StoreError> {
        Ok(Host {
            id: codec::parse_id("hosts.id", &r.id)?,
            org_id: codec::parse_opt_id("hosts.org_id", r.org_id.as_deref())?,
            provider: r.provider,
            region: r.region,
            state: codec::parse_state("hosts.state", &r.state)?,
            address: r.address,
            provider_ref: codec::parse_json("hosts.provider_ref", &r.provider_ref)?,
            hostname: r.hostname,
            agent_version: r.agent_version,
            last_seen_at: opt_ts(r.last_seen_at),
            connected_at: opt_ts(r.connected_at),
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

/// A host's state and org, read before a compare-and-set state change.
#[derive(sqlx::FromRow)]
pub(crate) struct HostStateRow {
    state: String,
    org_id: Option<String>,
}

impl HostStateRow {
    /// The state, and the org as stored (for the outbox event).
    pub(crate) fn into_parts(self) -> Result<(HostState, Option<String>), StoreError> {
        Ok((codec::parse_state("hosts.state", &self.state)?, self.org_id))
    }
}

pub(crate) const ENROLLMENT_TOKEN_COLUMNS: &str =
    "token_hash, host_id, created_at, expires_at, used_at, key_sha256";

#[derive(sqlx::FromRow)]
pub(crate) struct EnrollmentTokenRow {
    token_hash: String,
    host_id: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    key_sha256: Option<String>,
}

impl TryFrom<EnrollmentTokenRow> for EnrollmentToken {
    type Error = StoreError;
    fn try_from(r: EnrollmentTokenRow) -> Result<Self, StoreError> {
        Ok(EnrollmentToken {
            token_hash: r.token_hash,
            host_id: codec::parse_id("enrollment_tokens.host_id", &r.host_id)?,
            created_at: Timestamp(r.created_at),
            expires_at: Timestamp(r.expires_at),
            used_at: opt_ts(r.used_at),
            key_sha256: r.key_sha256,
        })
    }
}

pub(crate) const CERTIFICATE_COLUMNS: &str =
    "serial, host_id, not_before, not_after, issued_at, revoked_at";

#[derive(sqlx::FromRow)]
pub(crate) struct HostCertificateRow {
    serial: String,
    host_id: String,
    not_before: i64,
    not_after: i64,
    issued_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<HostCertificateRow> for HostCertificate {
    type Error = StoreError;
    fn try_from(r: HostCertificateRow) -> Result<Self, StoreError> {
        Ok(HostCertificate {
            serial: r.serial,
            host_id: codec::parse_id("host_certificates.host_id", &r.host_id)?,
            not_before: Timestamp(r.not_before),
            not_after: Timestamp(r.not_after),
            issued_at: Timestamp(r.issued_at),
            revoked_at: opt_ts(r.revoked_at),
        })
    }
}

pub(crate) const CA_COLUMNS: &str = "cert_pem, sealed_key, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct CaRow {
    cert_pem: String,
    sealed_key: Vec<u8>,
    created_at: i64,
}

impl TryFrom<CaRow> for CaRecord {
    type Error = StoreError;
    fn try_from(r: CaRow) -> Result<Self, StoreError> {
        Ok(CaRecord {
            cert_pem: r.cert_pem,
            sealed_key: r.sealed_key,
            created_at: Timestamp(r.created_at),
        })
    }
}

pub(crate) const COMMAND_COLUMNS: &str = "id, host_id, kind, payload, idempotency_key, state, \
     attempts, created_at, dispatched_at, acked_at, finished_at, expires_at, progress_percent, \
     progress_message, result, error";

#[derive(sqlx::FromRow)]
pub(crate) struct AgentCommandRow {
    id: String,
    host_id: String,
    kind: String,
    payload: String,
    idempotency_key: String,
    state: String,
    attempts: i64,
    created_at: i64,
    dispatched_at: Option<i64>,
    acked_at: Option<i64>,
    finished_at: Option<i64>,
    expires_at: i64,
    progress_percent: Option<i64>,
    progress_message: Option<String>,
    result: Option<String>,
    error: Option<String>,
}

impl TryFrom<AgentCommandRow> for AgentCommand {
    type Error = StoreError;
    fn try_from(r: AgentCommandRow) -> Result<Self, StoreError> {
        Ok(AgentCommand {
            id: codec::parse_id("agent_commands.id", &r.id)?,
            host_id: codec::parse_id("agent_commands.host_id", &r.host_id)?,
            kind: r.kind,
            payload: codec::parse_json("agent_commands.payload", &r.payload)?,
            idempotency_key: r.idempotency_key,
            state: codec::parse_state("agent_commands.state", &r.state)?,
            attempts: r.attempts,
            created_at: Timestamp(r.created_at),
            dispatched_at: opt_ts(r.dispatched_at),
            acked_at: opt_ts(r.acked_at),
            finished_at: opt_ts(r.finished_at),
            expires_at: Timestamp(r.expires_at),
            progress_percent: r.progress_percent,
            progress_message: r.progress_message,
            result: codec::parse_opt_json("agent_commands.result", r.result.as_deref())?,
            error: r.error,
        })
    }
}

/// What an expired command's outbox event names.
#[derive(sqlx::FromRow)]
pub(crate) struct ExpiredCommandRow {
    pub(crate) id: String,
    pub(crate) host_id: String,
    pub(crate) kind: String,
}

pub(crate) const WORKLOAD_COLUMNS: &str =
    "workload_id, state, pid, restarts, observation, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct WorkloadReportRow {
    workload_id: String,
    state: String,
    pid: Option<i64>,
    restarts: i64,
    observation: String,
    updated_at: i64,
}

impl TryFrom<WorkloadReportRow> for WorkloadReport {
    type Error = StoreError;
    fn try_from(r: WorkloadReportRow) -> Result<Self, StoreError> {
        Ok(WorkloadReport {
            workload_id: r.workload_id,
            state: r.state,
            pid: r.pid,
            restarts: r.restarts,
            observation: codec::parse_json("host_workloads.observation", &r.observation)?,
            updated_at: Timestamp(r.updated_at),
        })
    }
}

pub(crate) const AGENT_EVENT_COLUMNS: &str =
    "seq, host_id, kind, workload_id, message, payload, at";

#[derive(sqlx::FromRow)]
pub(crate) struct AgentEventRow {
    seq: i64,
    host_id: String,
    kind: String,
    workload_id: Option<String>,
    message: String,
    payload: String,
    at: i64,
}

impl TryFrom<AgentEventRow> for AgentEventRecord {
    type Error = StoreError;
    fn try_from(r: AgentEventRow) -> Result<Self, StoreError> {
        Ok(AgentEventRecord {
            seq: r.seq,
            host_id: codec::parse_id("agent_events.host_id", &r.host_id)?,
            kind: r.kind,
            workload_id: r.workload_id,
            message: r.message,
            payload: codec::parse_json("agent_events.payload", &r.payload)?,
            at: Timestamp(r.at),
        })
    }
}

pub(crate) const HOST_SAMPLE_COLUMNS: &str = "at, cpu_busy_ticks, cpu_total_ticks, \
     memory_total_bytes, memory_available_bytes, disk_total_bytes, disk_available_bytes, \
     net_rx_bytes, net_tx_bytes";

/// A row of `host_metrics`: counters are BIGINT, so a value past
/// `i64::MAX` (never met in practice) is stored clamped.
#[derive(sqlx::FromRow)]
pub(crate) struct HostSampleRow {
    at: i64,
    cpu_busy_ticks: i64,
    cpu_total_ticks: i64,
    memory_total_bytes: i64,
    memory_available_bytes: i64,
    disk_total_bytes: i64,
    disk_available_bytes: i64,
    net_rx_bytes: i64,
    net_tx_bytes: i64,
}

impl HostSampleRow {
    /// The counters as bound to an insert, in [`HOST_SAMPLE_COLUMNS`]'
    /// order after `at`.
    pub(crate) fn counters(c: &HostCounters) -> [i64; 8] {
        [
            c.cpu_busy_ticks,
            c.cpu_total_ticks,
            c.memory_total_bytes,
            c.memory_available_bytes,
            c.disk_total_bytes,
            c.disk_available_bytes,
            c.net_rx_bytes,
            c.net_tx_bytes,
        ]
        .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl TryFrom<HostSampleRow> for HostSample {
    type Error = StoreError;
    fn try_from(r: HostSampleRow) -> Result<Self, StoreError> {
        let n = |column: &str, v: i64| {
            u64::try_from(v)
                .map_err(|_| StoreError::Corrupt(format!("host_metrics.{column} is negative: {v}")))
        };
        Ok(HostSample {
            at: Timestamp(r.at),
            counters: HostCounters {
                cpu_busy_ticks: n("cpu_busy_ticks", r.cpu_busy_ticks)?,
                cpu_total_ticks: n("cpu_total_ticks", r.cpu_total_ticks)?,
                memory_total_bytes: n("memory_total_bytes", r.memory_total_bytes)?,
                memory_available_bytes: n("memory_available_bytes", r.memory_available_bytes)?,
                disk_total_bytes: n("disk_total_bytes", r.disk_total_bytes)?,
                disk_available_bytes: n("disk_available_bytes", r.disk_available_bytes)?,
                net_rx_bytes: n("net_rx_bytes", r.net_rx_bytes)?,
                net_tx_bytes: n("net_tx_bytes", r.net_tx_bytes)?,
            },
        })
    }
}
