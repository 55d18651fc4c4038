//! [`FleetStore`] for [`SqlStore`]: hosts, enrollment, certificates and the
//! CA, agent commands and events.
//!
//! State changes are compare-and-set on the state read: of two racing
//! callers only one sees its `UPDATE … WHERE state = $from` change a row;
//! the loser re-reads and re-judges (only PostgreSQL can lose such a race,
//! since SQLite writers are serialised by `BEGIN IMMEDIATE`).

use super::outbox::insert_event;
use super::SqlStore;
use crate::codec::{self, events};
use crate::db::{numbered_placeholders, query, query_as, query_scalar, Executor, Tx};
use crate::fleet::{
    AgentCommand, AgentEventRecord, CaRecord, CommandFinish, EnrollOutcome, EnrollmentToken,
    FleetStore, Host, HostCertificate, HostFilter, WorkloadReport,
};
use crate::model::fleet::{
    AgentCommandRow, AgentEventRow, CaRow, EnrollmentTokenRow, ExpiredCommandRow,
    HostCertificateRow, HostRow, HostSampleRow, HostStateRow, WorkloadReportRow,
    AGENT_EVENT_COLUMNS, CA_COLUMNS, CERTIFICATE_COLUMNS, COMMAND_COLUMNS,
    ENROLLMENT_TOKEN_COLUMNS, HOST_COLUMNS, HOST_SAMPLE_COLUMNS, WORKLOAD_COLUMNS,
};
use crate::model::{all, one};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::host_metrics::HostSample;
use hood_domain::lifecycle::{CommandState, HostState};
use hood_domain::machine::StateMachine as _;
use hood_domain::{CommandId, HostId, Timestamp};

/// How often a compare-and-set state change re-reads after losing a race
/// before reporting a conflict.
const CAS_RETRIES: usize = 8;

/// Reads a host's state (and org, for events) on the caller's transaction.
async fn read_host_state(
    tx: &mut Tx<'_>,
    id: HostId,
) -> StoreResult<Option<(HostState, Option<String>)>> {
    let row = query_as::<HostStateRow>("SELECT state, org_id FROM hosts WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(tx)
        .await?;
    row.map(HostStateRow::into_parts).transpose()
}

/// Compare-and-set host state change on the caller's transaction. With
/// `expect`, only moves a host currently in that state (`Ok(None)`
/// otherwise). Returns the state left.
async fn transition_host_on(
    tx: &mut Tx<'_>,
    id: HostId,
    expect: Option<HostState>,
    to: HostState,
    now: Timestamp,
) -> StoreResult<Option<HostState>> {
    for _ in 0..CAS_RETRIES {
        let Some((from, org)) = read_host_state(tx, id).await? else {
            return Err(StoreError::NotFound("host"));
        };
        if expect.is_some_and(|e| e != from) {
            return Ok(None);
        }
        if from == to {
            return Ok(Some(from));
        }
        from.transition(to)?;
        let moved =
            query("UPDATE hosts SET state = $3, updated_at = $4 WHERE id = $1 AND state = $2")
                .bind(id.to_string())
                .bind(from.as_str())
                .bind(to.as_str())
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
        if moved == 1 {
            insert_event(
                tx,
                &events::host_state_changed(id, org.as_deref(), from, to, now),
            )
            .await?;
            return Ok(Some(from));
        }
    }
    Err(StoreError::Conflict("host state".into()))
}

/// Spends a token on the caller's transaction; `host` restricts it to one
/// host.
async fn consume_token(
    tx: &mut Tx<'_>,
    token_hash: &str,
    host: Option<HostId>,
    now: Timestamp,
) -> StoreResult<Option<HostId>> {
    let host_id = query_scalar::<String>(
        "UPDATE enrollment_tokens SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
         AND ($3 = '' OR host_id = $3) RETURNING host_id",
    )
    .bind(token_hash)
    .bind(now.millis())
    .bind(host.map(|h| h.to_string()).unwrap_or_default())
    .fetch_optional(tx)
    .await?;
    codec::parse_opt_id("enrollment_tokens.host_id", host_id.as_deref())
}

async fn insert_certificate(tx: &mut Tx<'_>, cert: &HostCertificate) -> StoreResult<()> {
    query(format!(
        "INSERT INTO host_certificates ({CERTIFICATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(&cert.serial)
    .bind(cert.host_id.to_string())
    .bind(cert.not_before.millis())
    .bind(cert.not_after.millis())
    .bind(cert.issued_at.millis())
    .bind(cert.revoked_at.map(Timestamp::millis))
    .execute(tx)
    .await
    .map_err(|e| codec::write_error(e, "host"))?;
    Ok(())
}

/// Reads a command of `host` (any host with `None`).
async fn read_command<'e>(
    on: impl Into<Executor<'e>>,
    id: CommandId,
    host: Option<HostId>,
) -> StoreResult<Option<AgentCommand>> {
    let row = query_as::<AgentCommandRow>(format!(
        "SELECT {COMMAND_COLUMNS} FROM agent_commands \
         WHERE id = $1 AND ($2 = '' OR host_id = $2)"
    ))
    .bind(id.to_string())
    .bind(host.map(|h| h.to_string()).unwrap_or_default())
    .fetch_optional(on)
    .await?;
    one(row)
}

#[async_trait]
impl FleetStore for SqlStore {
    async fn create_host(&self, host: &Host) -> StoreResult<()> {
        codec::check_initial(host.state)?;
        let mut tx = self.pool.begin_write().await?;
        query(format!(
            "INSERT INTO hosts ({HOST_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(host.id.to_string())
        .bind(host.org_id.map(|o| o.to_string()))
        .bind(&host.provider)
        .bind(&host.region)
        .bind(host.state.as_str())
        .bind(host.address.as_deref())
        .bind(host.provider_ref.to_string())
        .bind(host.hostname.as_deref())
        .bind(host.agent_version.as_deref())
        .bind(host.last_seen_at.map(Timestamp::millis))
        .bind(host.connected_at.map(Timestamp::millis))
        .bind(host.created_at.millis())
        .bind(host.updated_at.millis())
        .execute(&mut tx)
        .await
        .map_err(|e| codec::write_error(e, "org"))?;
        insert_event(&mut tx, &events::host_created(host)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_host(&self, id: HostId) -> StoreResult<Option<Host>> {
        let row = query_as::<HostRow>(format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        one(row)
    }

    async fn list_hosts(&self, filter: &HostFilter) -> StoreResult<Vec<Host>> {
        let mut clauses = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        if let Some(org) = filter.org_id {
            binds.push(org.to_string());
            clauses.push(format!("org_id = ${}", binds.len()));
        }
        if let Some(state) = filter.state {
            binds.push(state.as_str().to_owned());
            clauses.push(format!("state = ${}", binds.len()));
        }
        if let Some(provider) = &filter.provider {
            binds.push(provider.clone());
            clauses.push(format!("provider = ${}", binds.len()));
        }
        let mut sql = format!("SELECT {HOST_COLUMNS} FROM hosts");
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(" ORDER BY created_at, id");
        let mut q = query_as::<HostRow>(sql);
        for b in binds {
            q = q.bind(b);
        }
        all(q.fetch_all(&self.pool).await?)
    }

    async fn transition_host(
        &self,
        id: HostId,
        to: HostState,
        now: Timestamp,
    ) -> StoreResult<HostState> {
        let mut tx = self.pool.begin_write().await?;
        let from = transition_host_on(&mut tx, id, None, to, now).await?;
        tx.commit().await?;
        from.ok_or(StoreError::NotFound("host"))
    }

    async fn transition_host_from(
        &self,
        id: HostId,
        from: HostState,
        to: HostState,
        now: Timestamp,
    ) -> StoreResult<bool> {
        // Checked up front so a refused move is an error even when the host
        // is not in `from` right now.
        from.transition(to)?;
        let mut tx = self.pool.begin_write().await?;
        let moved = transition_host_on(&mut tx, id, Some(from), to, now).await?;
        if moved.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn set_host_provider_info(
        &self,
        id: HostId,
        address: Option<&str>,
        provider_ref: &serde_json::Value,
        now: Timestamp,
    ) -> StoreResult<()> {
        let updated = query(
            "UPDATE hosts SET address = $2, provider_ref = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(address)
        .bind(provider_ref.to_string())
        .bind(now.millis())
        .execute(&self.pool)
        .await?;
        if updated == 0 {
            return Err(StoreError::NotFound("host"));
        }
        Ok(())
    }

    async fn host_session_started(
        &self,
        id: HostId,
        session: &str,
        agent_version: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let updated = query(
            "UPDATE hosts SET connected_at = $3, last_seen_at = $3, session_id = $2, \
             agent_version = $4, updated_at = $3 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(session)
        .bind(now.millis())
        .bind(agent_version)
        .execute(&self.pool)
        .await?;
        if updated == 0 {
            return Err(StoreError::NotFound("host"));
        }
        Ok(())
    }

    async fn host_session_ended(
        &self,
        id: HostId,
        session: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        query(
            "UPDATE hosts SET connected_at = NULL, session_id = NULL, updated_at = $3 \
             WHERE id = $1 AND session_id = $2",
        )
        .bind(id.to_string())
        .bind(session)
        .bind(now.millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_heartbeat(
        &self,
        id: HostId,
        workloads: &[WorkloadReport],
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        let updated = query("UPDATE hosts SET last_seen_at = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(now.millis())
            .execute(&mut tx)
            .await?;
        if updated == 0 {
            tx.rollback().await?;
            return Err(StoreError::NotFound("host"));
        }
        query("DELETE FROM host_workloads WHERE host_id = $1")
            .bind(id.to_string())
            .execute(&mut tx)
            .await?;
        for w in workloads {
            query(
                "INSERT INTO host_workloads (host_id, workload_id, state, pid, restarts, \
                 observation, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (host_id, workload_id) DO UPDATE SET state = excluded.state, \
                 pid = excluded.pid, restarts = excluded.restarts, \
                 observation = excluded.observation, updated_at = excluded.updated_at",
            )
            .bind(id.to_string())
            .bind(&w.workload_id)
            .bind(&w.state)
            .bind(w.pid)
            .bind(w.restarts)
            .bind(w.observation.to_string())
            .bind(w.updated_at.millis())
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_host_workloads(&self, id: HostId) -> StoreResult<Vec<WorkloadReport>> {
        let rows = query_as::<WorkloadReportRow>(format!(
            "SELECT {WORKLOAD_COLUMNS} FROM host_workloads WHERE host_id = $1 ORDER BY workload_id"
        ))
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn record_host_sample(&self, id: HostId, sample: &HostSample) -> StoreResult<()> {
        let mut q = query(format!(
            "INSERT INTO host_metrics (host_id, {HOST_SAMPLE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (host_id, at) DO UPDATE SET cpu_busy_ticks = excluded.cpu_busy_ticks, \
             cpu_total_ticks = excluded.cpu_total_ticks, \
             memory_total_bytes = excluded.memory_total_bytes, \
             memory_available_bytes = excluded.memory_available_bytes, \
             disk_total_bytes = excluded.disk_total_bytes, \
             disk_available_bytes = excluded.disk_available_bytes, \
             net_rx_bytes = excluded.net_rx_bytes, net_tx_bytes = excluded.net_tx_bytes"
        ))
        .bind(id.to_string())
        .bind(sample.at.millis());
        for v in HostSampleRow::counters(&sample.counters) {
            q = q.bind(v);
        }
        q.execute(&self.pool)
            .await
            .map_err(|e| codec::write_error(e, "host"))?;
        Ok(())
    }

    async fn host_samples(
        &self,
        id: HostId,
        since: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<HostSample>> {
        // The newest `limit`, then oldest first.
        let rows = query_as::<HostSampleRow>(format!(
            "SELECT {HOST_SAMPLE_COLUMNS} FROM host_metrics WHERE host_id = $1 AND at >= $2 \
             ORDER BY at DESC LIMIT $3"
        ))
        .bind(id.to_string())
        .bind(since.millis())
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        let mut samples: Vec<HostSample> = all(rows)?;
        samples.reverse();
        Ok(samples)
    }

    async fn insert_enrollment_token(&self, token: &EnrollmentToken) -> StoreResult<()> {
        query(
            "INSERT INTO enrollment_tokens (token_hash, host_id, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&token.token_hash)
        .bind(token.host_id.to_string())
        .bind(token.created_at.millis())
        .bind(token.expires_at.millis())
        .bind(token.used_at.map(Timestamp::millis))
        .execute(&self.pool)
        .await
        .map_err(|e| codec::write_error(e, "host"))?;
        Ok(())
    }

    async fn find_enrollment_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<EnrollmentToken>> {
        let row = query_as::<EnrollmentTokenRow>(format!(
            "SELECT {ENROLLMENT_TOKEN_COLUMNS} FROM enrollment_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        one(row)
    }

    async fn consume_enrollment_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<HostId>> {
        let mut tx = self.pool.begin_write().await?;
        let host = consume_token(&mut tx, token_hash, None, now).await?;
        tx.commit().await?;
        Ok(host)
    }

    async fn complete_enrollment(
        &self,
        token_hash: &str,
        key_sha256: &str,
        cert: &HostCertificate,
        hostname: &str,
        agent_version: &str,
        now: Timestamp,
    ) -> StoreResult<EnrollOutcome> {
        let mut tx = self.pool.begin_write().await?;
        // The conditional update is the arbiter: of concurrent enrollments
        // with one token, only one gets a row back.
        if consume_token(&mut tx, token_hash, Some(cert.host_id), now)
            .await?
            .is_none()
        {
            tx.rollback().await?;
            return Ok(EnrollOutcome::TokenRejected);
        }
        query("UPDATE enrollment_tokens SET key_sha256 = $2 WHERE token_hash = $1")
            .bind(token_hash)
            .bind(key_sha256)
            .execute(&mut tx)
            .await?;
        let moved = transition_host_on(
            &mut tx,
            cert.host_id,
            Some(HostState::Enrolling),
            HostState::Ready,
            now,
        )
        .await?;
        if moved.is_none() {
            let state = read_host_state(&mut tx, cert.host_id)
                .await?
                .map(|(s, _)| s)
                .ok_or(StoreError::NotFound("host"))?;
            tx.rollback().await?;
            return Ok(EnrollOutcome::HostNotEnrolling(state));
        }
        insert_certificate(&mut tx, cert).await?;
        query("UPDATE hosts SET hostname = $2, agent_version = $3, updated_at = $4 WHERE id = $1")
            .bind(cert.host_id.to_string())
            .bind(hostname)
            .bind(agent_version)
            .bind(now.millis())
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(EnrollOutcome::Enrolled)
    }

    async fn insert_host_certificate(&self, cert: &HostCertificate) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        insert_certificate(&mut tx, cert).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_host_certificate(&self, serial: &str) -> StoreResult<Option<HostCertificate>> {
        let row = query_as::<HostCertificateRow>(format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM host_certificates WHERE serial = $1"
        ))
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        one(row)
    }

    async fn revoke_host_certificates(&self, host: HostId, now: Timestamp) -> StoreResult<u64> {
        Ok(query(
            "UPDATE host_certificates SET revoked_at = $2 \
             WHERE host_id = $1 AND revoked_at IS NULL",
        )
        .bind(host.to_string())
        .bind(now.millis())
        .execute(&self.pool)
        .await?)
    }

    async fn revoke_host_certificate(&self, serial: &str, now: Timestamp) -> StoreResult<bool> {
        query(
            "UPDATE host_certificates SET revoked_at = $2 WHERE serial = $1 AND revoked_at IS NULL",
        )
        .bind(serial)
        .bind(now.millis())
        .execute(&self.pool)
        .await?;
        Ok(self.get_host_certificate(serial).await?.is_some())
    }

    async fn insert_ca_if_absent(&self, ca: &CaRecord) -> StoreResult<CaRecord> {
        // The single-row primary key arbitrates: a concurrent insert waits
        // for the first one's commit, then does nothing.
        query(format!(
            "INSERT INTO pki_ca (id, {CA_COLUMNS}) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO NOTHING"
        ))
        .bind(&ca.cert_pem)
        .bind(ca.sealed_key.as_slice())
        .bind(ca.created_at.millis())
        .execute(&self.pool)
        .await?;
        self.get_ca()
            .await?
            .ok_or_else(|| StoreError::Corrupt("pki_ca: row missing after insert".into()))
    }

    async fn get_ca(&self) -> StoreResult<Option<CaRecord>> {
        let row = query_as::<CaRow>(format!("SELECT {CA_COLUMNS} FROM pki_ca WHERE id = 1"))
            .fetch_optional(&self.pool)
            .await?;
        one(row)
    }

    async fn enqueue_agent_command(&self, cmd: &AgentCommand) -> StoreResult<(AgentCommand, bool)> {
        codec::check_initial(cmd.state)?;
        let mut tx = self.pool.begin_write().await?;
        let inserted = query(format!(
            "INSERT INTO agent_commands ({COMMAND_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (host_id, idempotency_key) DO NOTHING"
        ))
        .bind(cmd.id.to_string())
        .bind(cmd.host_id.to_string())
        .bind(&cmd.kind)
        .bind(cmd.payload.to_string())
        .bind(&cmd.idempotency_key)
        .bind(cmd.state.as_str())
        .bind(cmd.attempts)
        .bind(cmd.created_at.millis())
        .bind(cmd.dispatched_at.map(Timestamp::millis))
        .bind(cmd.acked_at.map(Timestamp::millis))
        .bind(cmd.finished_at.map(Timestamp::millis))
        .bind(cmd.expires_at.millis())
        .bind(cmd.progress_percent)
        .bind(cmd.progress_message.as_deref())
        .bind(cmd.result.as_ref().map(serde_json::Value::to_string))
        .bind(cmd.error.as_deref())
        .execute(&mut tx)
        .await
        .map_err(|e| codec::write_error(e, "host"))?;
        let row = query_as::<AgentCommandRow>(format!(
            "SELECT {COMMAND_COLUMNS} FROM agent_commands \
             WHERE host_id = $1 AND idempotency_key = $2"
        ))
        .bind(cmd.host_id.to_string())
        .bind(&cmd.idempotency_key)
        .fetch_one(&mut tx)
        .await?;
        let stored = AgentCommand::try_from(row)?;
        tx.commit().await?;
        Ok((stored, inserted == 1))
    }

    async fn get_agent_command(&self, id: CommandId) -> StoreResult<Option<AgentCommand>> {
        read_command(&self.pool, id, None).await
    }

    async fn list_agent_commands(
        &self,
        host: HostId,
        limit: i64,
    ) -> StoreResult<Vec<AgentCommand>> {
        let rows = query_as::<AgentCommandRow>(format!(
            "SELECT {COMMAND_COLUMNS} FROM agent_commands WHERE host_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(host.to_string())
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn agent_commands_to_dispatch(
        &self,
        host: HostId,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<AgentCommand>> {
        let rows = query_as::<AgentCommandRow>(format!(
            "SELECT {COMMAND_COLUMNS} FROM agent_commands \
             WHERE host_id = $1 AND state = $2 AND expires_at > $3 \
             ORDER BY created_at, id LIMIT $4"
        ))
        .bind(host.to_string())
        .bind(CommandState::Queued.as_str())
        .bind(now.millis())
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn hosts_with_queued_agent_commands(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<HostId>> {
        let hosts = query_scalar::<String>(
            "SELECT DISTINCT host_id FROM agent_commands \
             WHERE state = $1 AND expires_at > $2 LIMIT $3",
        )
        .bind(CommandState::Queued.as_str())
        .bind(now.millis())
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        hosts
            .iter()
            .map(|h| codec::parse_id("agent_commands.host_id", h))
            .collect()
    }

    async fn mark_agent_command_dispatched(
        &self,
        id: CommandId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (from, to) = (CommandState::Queued, CommandState::Dispatched);
        from.transition(to)?;
        let moved = query(
            "UPDATE agent_commands SET state = $3, dispatched_at = $4, attempts = attempts + 1 \
             WHERE id = $1 AND state = $2 AND expires_at > $4",
        )
        .bind(id.to_string())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(now.millis())
        .execute(&self.pool)
        .await?;
        Ok(moved == 1)
    }

    async fn ack_agent_command(
        &self,
        host: HostId,
        id: CommandId,
        now: Timestamp,
    ) -> StoreResult<CommandState> {
        let to = CommandState::Acked;
        let mut tx = self.pool.begin_write().await?;
        for _ in 0..CAS_RETRIES {
            let Some(cmd) = read_command(&mut tx, id, Some(host)).await? else {
                tx.rollback().await?;
                return Err(StoreError::NotFound("command"));
            };
            if cmd.state == to {
                tx.rollback().await?;
                return Ok(to);
            }
            cmd.state.transition(to)?;
            let moved = query(
                "UPDATE agent_commands SET state = $3, acked_at = $4 WHERE id = $1 AND state = $2",
            )
            .bind(id.to_string())
            .bind(cmd.state.as_str())
            .bind(to.as_str())
            .bind(now.millis())
            .execute(&mut tx)
            .await?;
            if moved == 1 {
                tx.commit().await?;
                return Ok(cmd.state);
            }
        }
        Err(StoreError::Conflict("command state".into()))
    }

    async fn record_agent_command_progress(
        &self,
        host: HostId,
        id: CommandId,
        percent: i64,
        message: &str,
        _now: Timestamp,
    ) -> StoreResult<bool> {
        let updated = query(
            "UPDATE agent_commands SET progress_percent = $3, progress_message = $4 \
             WHERE id = $1 AND host_id = $2 AND state IN ($5, $6)",
        )
        .bind(id.to_string())
        .bind(host.to_string())
        .bind(percent.clamp(0, 100))
        .bind(message)
        .bind(CommandState::Dispatched.as_str())
        .bind(CommandState::Acked.as_str())
        .execute(&self.pool)
        .await?;
        Ok(updated == 1)
    }

    async fn finish_agent_command(
        &self,
        host: HostId,
        id: CommandId,
        outcome: &CommandFinish,
        now: Timestamp,
    ) -> StoreResult<CommandState> {
        let (to, result, error) = match outcome {
            CommandFinish::Succeeded(output) => {
                (CommandState::Succeeded, Some(output.to_string()), None)
            }
            CommandFinish::Failed(error) => (CommandState::Failed, None, Some(error.as_str())),
        };
        let mut tx = self.pool.begin_write().await?;
        for _ in 0..CAS_RETRIES {
            let Some(cmd) = read_command(&mut tx, id, Some(host)).await? else {
                tx.rollback().await?;
                return Err(StoreError::NotFound("command"));
            };
            cmd.state.transition(to)?;
            let moved = query(
                "UPDATE agent_commands SET state = $3, finished_at = $4, result = $5, error = $6, \
                 acked_at = COALESCE(acked_at, $4) WHERE id = $1 AND state = $2",
            )
            .bind(id.to_string())
            .bind(cmd.state.as_str())
            .bind(to.as_str())
            .bind(now.millis())
            .bind(result.as_deref())
            .bind(error)
            .execute(&mut tx)
            .await?;
            if moved == 1 {
                insert_event(
                    &mut tx,
                    &events::command_finished(
                        &id.to_string(),
                        &host.to_string(),
                        &cmd.kind,
                        to,
                        now,
                    ),
                )
                .await?;
                tx.commit().await?;
                return Ok(cmd.state);
            }
        }
        Err(StoreError::Conflict("command state".into()))
    }

    async fn expire_overdue_agent_commands(&self, now: Timestamp) -> StoreResult<Vec<CommandId>> {
        let to = CommandState::Expired;
        // The machine decides which states may expire.
        let live: Vec<&str> = CommandState::ALL
            .iter()
            .filter(|s| s.can_transition_to(to))
            .map(|s| s.as_str())
            .collect();
        let sql = format!(
            "UPDATE agent_commands SET state = $1, finished_at = $2, \
             error = COALESCE(error, 'deadline passed before the command finished') \
             WHERE expires_at <= $2 AND state IN ({}) RETURNING id, host_id, kind",
            numbered_placeholders(3, live.len())
        );
        let mut tx = self.pool.begin_write().await?;
        let mut q = query_as::<ExpiredCommandRow>(sql)
            .bind(to.as_str())
            .bind(now.millis());
        for s in live {
            q = q.bind(s);
        }
        let rows = q.fetch_all(&mut tx).await?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            insert_event(
                &mut tx,
                &events::command_finished(&row.id, &row.host_id, &row.kind, to, now),
            )
            .await?;
            ids.push(codec::parse_id("agent_commands.id", &row.id)?);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn requeue_dispatched_agent_commands(
        &self,
        host: HostId,
        now: Timestamp,
    ) -> StoreResult<u64> {
        let (from, to) = (CommandState::Dispatched, CommandState::Queued);
        from.transition(to)?;
        Ok(query(
            "UPDATE agent_commands SET state = $3 \
             WHERE host_id = $1 AND state = $2 AND expires_at > $4",
        )
        .bind(host.to_string())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(now.millis())
        .execute(&self.pool)
        .await?)
    }

    async fn insert_agent_event(&self, event: &AgentEventRecord) -> StoreResult<i64> {
        let mut tx = self.pool.begin_write().await?;
        let seq = query_scalar::<i64>(
            "INSERT INTO agent_events (host_id, kind, workload_id, message, payload, at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
        )
        .bind(event.host_id.to_string())
        .bind(&event.kind)
        .bind(event.workload_id.as_deref())
        .bind(&event.message)
        .bind(event.payload.to_string())
        .bind(event.at.millis())
        .fetch_one(&mut tx)
        .await
        .map_err(|e| codec::write_error(e, "host"))?;
        insert_event(&mut tx, &events::agent_event(event, seq)).await?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn list_agent_events(
        &self,
        host: HostId,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AgentEventRecord>> {
        let rows = query_as::<AgentEventRow>(format!(
            "SELECT {AGENT_EVENT_COLUMNS} FROM agent_events \
             WHERE host_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(host.to_string())
        .bind(after_seq)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn delete_expired_enrollment_tokens(&self, before: Timestamp) -> StoreResult<u64> {
        Ok(
            query("DELETE FROM enrollment_tokens WHERE used_at IS NULL AND expires_at < $1")
                .bind(before.millis())
                .execute(&self.pool)
                .await?,
        )
    }
}
