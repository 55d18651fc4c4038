// Included into `sqlite.rs` and `postgres.rs` (see `repo_common.rs`): the
// `FleetStore` implementation, written once for both dialects.

mod fleet_repo_impl {
    // Own module so these imports cannot collide with the other `*_repo.rs`
    // files included next to this one.
    use super::*;
    use crate::fleet::{
        AgentCommand, AgentEventRecord, CaRecord, CommandFinish, EnrollOutcome, EnrollmentToken,
        FleetStore, Host, HostCertificate, HostFilter, WorkloadReport,
    };
    use hood_domain::lifecycle::{CommandState, HostState};
    use hood_domain::machine::{InvalidTransition, StateMachine as _};
    use hood_domain::{CommandId, HostId};

    /// How often a compare-and-set state change re-reads after losing a race
    /// before reporting a conflict (only PostgreSQL can lose one: SQLite writers
    /// are serialised by `BEGIN IMMEDIATE`).
    const FLEET_CAS_RETRIES: usize = 8;

    const FLEET_HOST_COLUMNS: &str = "id, org_id, provider, region, state, address, provider_ref, \
     hostname, agent_version, last_seen_at, connected_at, created_at, updated_at";

    const FLEET_COMMAND_COLUMNS: &str = "id, host_id, kind, payload, idempotency_key, state, \
     attempts, created_at, dispatched_at, acked_at, finished_at, expires_at, progress_percent, \
     progress_message, result, error";

    const FLEET_CERT_COLUMNS: &str =
        "serial, host_id, not_before, not_after, issued_at, revoked_at";

    /// Unique constraints of the fleet tables and the field each one names in
    /// `Conflict` (PostgreSQL reports the constraint, SQLite the column list).
    const FLEET_UNIQUE: &[(&str, &str, &str)] = &[
        ("hosts_pkey", "hosts.id", "id"),
        (
            "enrollment_tokens_pkey",
            "enrollment_tokens.token_hash",
            "token",
        ),
        (
            "host_certificates_pkey",
            "host_certificates.serial",
            "serial",
        ),
        ("agent_commands_pkey", "agent_commands.id", "id"),
        (
            "agent_commands_host_key_key",
            "agent_commands.host_id, agent_commands.idempotency_key",
            "idempotency_key",
        ),
    ];

    /// `codec::write_error`, with the fleet tables' constraint names mapped to
    /// the field they protect.
    fn fleet_write_error(err: sqlx::Error, missing_parent: &'static str) -> StoreError {
        match codec::write_error(err, missing_parent) {
            StoreError::Conflict(name) => {
                let field = FLEET_UNIQUE
                    .iter()
                    .find(|(constraint, columns, _)| *constraint == name || *columns == name)
                    .map_or(name.clone(), |(_, _, field)| (*field).to_owned());
                StoreError::Conflict(field)
            }
            other => other,
        }
    }

    fn fleet_json(column: &str, value: &str) -> StoreResult<serde_json::Value> {
        serde_json::from_str(value)
            .map_err(|e| StoreError::Corrupt(format!("{column}: not JSON: {e}")))
    }

    fn fleet_host_from_row(row: &DbRow) -> StoreResult<Host> {
        let org: Option<String> = col(row, "org_id")?;
        Ok(Host {
            id: codec::parse_id("hosts.id", &col::<String>(row, "id")?)?,
            org_id: org
                .as_deref()
                .map(|o| codec::parse_id("hosts.org_id", o))
                .transpose()?,
            provider: col(row, "provider")?,
            region: col(row, "region")?,
            state: codec::parse_state::<HostState>("hosts.state", &col::<String>(row, "state")?)?,
            address: col(row, "address")?,
            provider_ref: fleet_json("hosts.provider_ref", &col::<String>(row, "provider_ref")?)?,
            hostname: col(row, "hostname")?,
            agent_version: col(row, "agent_version")?,
            last_seen_at: opt_ts(col(row, "last_seen_at")?),
            connected_at: opt_ts(col(row, "connected_at")?),
            created_at: Timestamp(col(row, "created_at")?),
            updated_at: Timestamp(col(row, "updated_at")?),
        })
    }

    fn fleet_command_from_row(row: &DbRow) -> StoreResult<AgentCommand> {
        let result: Option<String> = col(row, "result")?;
        Ok(AgentCommand {
            id: codec::parse_id("agent_commands.id", &col::<String>(row, "id")?)?,
            host_id: codec::parse_id("agent_commands.host_id", &col::<String>(row, "host_id")?)?,
            kind: col(row, "kind")?,
            payload: fleet_json("agent_commands.payload", &col::<String>(row, "payload")?)?,
            idempotency_key: col(row, "idempotency_key")?,
            state: codec::parse_state::<CommandState>("agent_commands.state", &col::<String>(row, "state")?)?,
            attempts: col(row, "attempts")?,
            created_at: Timestamp(col(row, "created_at")?),
            dispatched_at: opt_ts(col(row, "dispatched_at")?),
            acked_at: opt_ts(col(row, "acked_at")?),
            finished_at: opt_ts(col(row, "finished_at")?),
            expires_at: Timestamp(col(row, "expires_at")?),
            progress_percent: col(row, "progress_percent")?,
            progress_message: col(row, "progress_message")?,
            result: result
                .as_deref()
                .map(|r| fleet_json("agent_commands.result", r))
                .transpose()?,
            error: col(row, "error")?,
        })
    }

    fn fleet_cert_from_row(row: &DbRow) -> StoreResult<HostCertificate> {
        Ok(HostCertificate {
            serial: col(row, "serial")?,
            host_id: codec::parse_id("host_certificates.host_id", &col::<String>(row, "host_id")?)?,
            not_before: Timestamp(col(row, "not_before")?),
            not_after: Timestamp(col(row, "not_after")?),
            issued_at: Timestamp(col(row, "issued_at")?),
            revoked_at: opt_ts(col(row, "revoked_at")?),
        })
    }

    fn fleet_token_from_row(row: &DbRow) -> StoreResult<EnrollmentToken> {
        Ok(EnrollmentToken {
            token_hash: col(row, "token_hash")?,
            host_id: codec::parse_id("enrollment_tokens.host_id", &col::<String>(row, "host_id")?)?,
            created_at: Timestamp(col(row, "created_at")?),
            expires_at: Timestamp(col(row, "expires_at")?),
            used_at: opt_ts(col(row, "used_at")?),
            key_sha256: col(row, "key_sha256")?,
        })
    }

    fn fleet_workload_from_row(row: &DbRow) -> StoreResult<WorkloadReport> {
        Ok(WorkloadReport {
            workload_id: col(row, "workload_id")?,
            state: col(row, "state")?,
            pid: col(row, "pid")?,
            restarts: col(row, "restarts")?,
            observation: fleet_json(
                "host_workloads.observation",
                &col::<String>(row, "observation")?,
            )?,
            updated_at: Timestamp(col(row, "updated_at")?),
        })
    }

    fn fleet_event_from_row(row: &DbRow) -> StoreResult<AgentEventRecord> {
        Ok(AgentEventRecord {
            seq: col(row, "seq")?,
            host_id: codec::parse_id("agent_events.host_id", &col::<String>(row, "host_id")?)?,
            kind: col(row, "kind")?,
            workload_id: col(row, "workload_id")?,
            message: col(row, "message")?,
            payload: fleet_json("agent_events.payload", &col::<String>(row, "payload")?)?,
            at: Timestamp(col(row, "at")?),
        })
    }

    fn fleet_ca_from_row(row: &DbRow) -> StoreResult<CaRecord> {
        Ok(CaRecord {
            cert_pem: col(row, "cert_pem")?,
            sealed_key: col(row, "sealed_key")?,
            created_at: Timestamp(col(row, "created_at")?),
        })
    }

    // -- outbox events: ids and states only --

    fn fleet_host_created_event(host: &Host) -> DomainEvent {
        DomainEvent {
            subject: "fleet.host.created".into(),
            aggregate_type: "host".into(),
            aggregate_id: host.id.to_string(),
            payload: serde_json::json!({
                "host_id": host.id,
                "org_id": host.org_id,
                "provider": host.provider,
                "region": host.region,
                "state": host.state,
                "created_at": host.created_at,
            }),
        }
    }

    fn fleet_host_state_event(
        id: HostId,
        org: Option<&str>,
        from: HostState,
        to: HostState,
        at: Timestamp,
    ) -> DomainEvent {
        DomainEvent {
            subject: "fleet.host.state_changed".into(),
            aggregate_type: "host".into(),
            aggregate_id: id.to_string(),
            payload: serde_json::json!({
                "host_id": id,
                "org_id": org,
                "from": from,
                "to": to,
                "at": at,
            }),
        }
    }

    fn fleet_command_finished_event(
        id: &str,
        host: &str,
        kind: &str,
        state: CommandState,
        at: Timestamp,
    ) -> DomainEvent {
        DomainEvent {
            subject: "fleet.command.finished".into(),
            aggregate_type: "agent_command".into(),
            aggregate_id: id.to_owned(),
            payload: serde_json::json!({
                "command_id": id,
                "host_id": host,
                "kind": kind,
                "state": state,
                "at": at,
            }),
        }
    }

    /// Reads a host's state on the caller's transaction.
    async fn fleet_read_host_state(
        conn: &mut DbConn,
        id: HostId,
    ) -> StoreResult<Option<(HostState, Option<String>)>> {
        let row = sqlx::query("SELECT state, org_id FROM hosts WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some((
                codec::parse_state::<HostState>("hosts.state", &col::<String>(&row, "state")?)?,
                col(&row, "org_id")?,
            ))),
        }
    }

    /// Compare-and-set host state change on the caller's transaction. With
    /// `expect`, only moves a host currently in that state (`Ok(None)`
    /// otherwise). Returns the state left.
    async fn fleet_transition_host_tx(
        conn: &mut DbConn,
        id: HostId,
        expect: Option<HostState>,
        to: HostState,
        now: Timestamp,
    ) -> StoreResult<Option<HostState>> {
        for _ in 0..FLEET_CAS_RETRIES {
            let Some((from, org)) = fleet_read_host_state(conn, id).await? else {
                return Err(StoreError::NotFound("host"));
            };
            if expect.is_some_and(|e| e != from) {
                return Ok(None);
            }
            if from == to {
                return Ok(Some(from));
            }
            from.transition(to)?;
            let moved = sqlx::query(
                "UPDATE hosts SET state = $3, updated_at = $4 WHERE id = $1 AND state = $2",
            )
            .bind(id.to_string())
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(now.millis())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if moved == 1 {
                insert_event(
                    conn,
                    &fleet_host_state_event(id, org.as_deref(), from, to, now),
                )
                .await?;
                return Ok(Some(from));
            }
        }
        Err(StoreError::Conflict("host state".into()))
    }

    /// Spends a token on the caller's connection; `host` restricts it to one host.
    async fn fleet_consume_token(
        conn: &mut DbConn,
        token_hash: &str,
        host: Option<HostId>,
        now: Timestamp,
    ) -> StoreResult<Option<HostId>> {
        let row = sqlx::query(
            "UPDATE enrollment_tokens SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
         AND ($3 = '' OR host_id = $3) RETURNING host_id",
        )
        .bind(token_hash)
        .bind(now.millis())
        .bind(host.map(|h| h.to_string()).unwrap_or_default())
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|r| codec::parse_id("enrollment_tokens.host_id", &col::<String>(&r, "host_id")?))
            .transpose()
    }

    async fn fleet_insert_cert(conn: &mut DbConn, cert: &HostCertificate) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO host_certificates ({FLEET_CERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&cert.serial)
        .bind(cert.host_id.to_string())
        .bind(cert.not_before.millis())
        .bind(cert.not_after.millis())
        .bind(cert.issued_at.millis())
        .bind(cert.revoked_at.map(Timestamp::millis))
        .execute(&mut *conn)
        .await
        .map_err(|e| fleet_write_error(e, "host"))?;
        Ok(())
    }

    /// Reads a command of `host` (any host with `None`) on the caller's
    /// transaction.
    async fn fleet_read_command(
        conn: &mut DbConn,
        id: CommandId,
        host: Option<HostId>,
    ) -> StoreResult<Option<AgentCommand>> {
        let row = sqlx::query(&format!(
            "SELECT {FLEET_COMMAND_COLUMNS} FROM agent_commands \
         WHERE id = $1 AND ($2 = '' OR host_id = $2)"
        ))
        .bind(id.to_string())
        .bind(host.map(|h| h.to_string()).unwrap_or_default())
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(fleet_command_from_row).transpose()
    }

    /// `$first, $first+1, …` for an `IN` list of `n` values.
    fn fleet_placeholders(first: usize, n: usize) -> String {
        (first..first + n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[async_trait]
    impl FleetStore for StoreImpl {
        async fn create_host(&self, host: &Host) -> StoreResult<()> {
            if !host.state.is_initial() {
                return Err(StoreError::InvalidTransition(InvalidTransition {
                    machine: HostState::NAME,
                    from: "(new)".into(),
                    to: host.state.as_str().into(),
                }));
            }
            let mut tx = begin_write(&self.pool).await?;
            sqlx::query(&format!(
                "INSERT INTO hosts ({FLEET_HOST_COLUMNS}) \
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
            .execute(&mut *tx)
            .await
            .map_err(|e| fleet_write_error(e, "org"))?;
            insert_event(&mut tx, &fleet_host_created_event(host)).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn get_host(&self, id: HostId) -> StoreResult<Option<Host>> {
            let row = sqlx::query(&format!(
                "SELECT {FLEET_HOST_COLUMNS} FROM hosts WHERE id = $1"
            ))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(fleet_host_from_row).transpose()
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
            let mut sql = format!("SELECT {FLEET_HOST_COLUMNS} FROM hosts");
            if !clauses.is_empty() {
                sql.push_str(" WHERE ");
                sql.push_str(&clauses.join(" AND "));
            }
            sql.push_str(" ORDER BY created_at, id");
            let mut query = sqlx::query(&sql);
            for b in &binds {
                query = query.bind(b);
            }
            let rows = query.fetch_all(&self.pool).await?;
            rows.iter().map(fleet_host_from_row).collect()
        }

        async fn transition_host(
            &self,
            id: HostId,
            to: HostState,
            now: Timestamp,
        ) -> StoreResult<HostState> {
            let mut tx = begin_write(&self.pool).await?;
            let from = fleet_transition_host_tx(&mut tx, id, None, to, now).await?;
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
            let mut tx = begin_write(&self.pool).await?;
            let moved = fleet_transition_host_tx(&mut tx, id, Some(from), to, now).await?;
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
            let updated = sqlx::query(
                "UPDATE hosts SET address = $2, provider_ref = $3, updated_at = $4 WHERE id = $1",
            )
            .bind(id.to_string())
            .bind(address)
            .bind(provider_ref.to_string())
            .bind(now.millis())
            .execute(&self.pool)
            .await?
            .rows_affected();
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
            let updated = sqlx::query(
                "UPDATE hosts SET connected_at = $3, last_seen_at = $3, session_id = $2, \
             agent_version = $4, updated_at = $3 WHERE id = $1",
            )
            .bind(id.to_string())
            .bind(session)
            .bind(now.millis())
            .bind(agent_version)
            .execute(&self.pool)
            .await?
            .rows_affected();
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
            sqlx::query(
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
            let mut tx = begin_write(&self.pool).await?;
            let updated = sqlx::query("UPDATE hosts SET last_seen_at = $2 WHERE id = $1")
                .bind(id.to_string())
                .bind(now.millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated == 0 {
                tx.rollback().await?;
                return Err(StoreError::NotFound("host"));
            }
            sqlx::query("DELETE FROM host_workloads WHERE host_id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            for w in workloads {
                sqlx::query(
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
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        }

        async fn list_host_workloads(&self, id: HostId) -> StoreResult<Vec<WorkloadReport>> {
            let rows = sqlx::query(
                "SELECT workload_id, state, pid, restarts, observation, updated_at \
             FROM host_workloads WHERE host_id = $1 ORDER BY workload_id",
            )
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(fleet_workload_from_row).collect()
        }

        async fn insert_enrollment_token(&self, token: &EnrollmentToken) -> StoreResult<()> {
            sqlx::query(
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
        .map_err(|e| fleet_write_error(e, "host"))?;
            Ok(())
        }

        async fn find_enrollment_token(
            &self,
            token_hash: &str,
        ) -> StoreResult<Option<EnrollmentToken>> {
            let row = sqlx::query(
                "SELECT token_hash, host_id, created_at, expires_at, used_at, key_sha256 \
             FROM enrollment_tokens WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(fleet_token_from_row).transpose()
        }

        async fn consume_enrollment_token(
            &self,
            token_hash: &str,
            now: Timestamp,
        ) -> StoreResult<Option<HostId>> {
            let mut tx = begin_write(&self.pool).await?;
            let host = fleet_consume_token(&mut tx, token_hash, None, now).await?;
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
            let mut tx = begin_write(&self.pool).await?;
            // The conditional update is the arbiter: of concurrent enrollments
            // with one token, only one gets a row back.
            if fleet_consume_token(&mut tx, token_hash, Some(cert.host_id), now)
                .await?
                .is_none()
            {
                tx.rollback().await?;
                return Ok(EnrollOutcome::TokenRejected);
            }
            sqlx::query("UPDATE enrollment_tokens SET key_sha256 = $2 WHERE token_hash = $1")
                .bind(token_hash)
                .bind(key_sha256)
                .execute(&mut *tx)
                .await?;
            let moved = fleet_transition_host_tx(
                &mut tx,
                cert.host_id,
                Some(HostState::Enrolling),
                HostState::Ready,
                now,
            )
            .await?;
            if moved.is_none() {
                let state = fleet_read_host_state(&mut tx, cert.host_id)
                    .await?
                    .map(|(s, _)| s)
                    .ok_or(StoreError::NotFound("host"))?;
                tx.rollback().await?;
                return Ok(EnrollOutcome::HostNotEnrolling(state));
            }
            fleet_insert_cert(&mut tx, cert).await?;
            sqlx::query(
                "UPDATE hosts SET hostname = $2, agent_version = $3, updated_at = $4 WHERE id = $1",
            )
            .bind(cert.host_id.to_string())
            .bind(hostname)
            .bind(agent_version)
            .bind(now.millis())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(EnrollOutcome::Enrolled)
        }

        async fn insert_host_certificate(&self, cert: &HostCertificate) -> StoreResult<()> {
            let mut tx = begin_write(&self.pool).await?;
            fleet_insert_cert(&mut tx, cert).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn get_host_certificate(&self, serial: &str) -> StoreResult<Option<HostCertificate>> {
            let row = sqlx::query(&format!(
                "SELECT {FLEET_CERT_COLUMNS} FROM host_certificates WHERE serial = $1"
            ))
            .bind(serial)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(fleet_cert_from_row).transpose()
        }

        async fn revoke_host_certificates(&self, host: HostId, now: Timestamp) -> StoreResult<u64> {
            let revoked = sqlx::query(
            "UPDATE host_certificates SET revoked_at = $2 WHERE host_id = $1 AND revoked_at IS NULL",
        )
        .bind(host.to_string())
        .bind(now.millis())
        .execute(&self.pool)
        .await?
        .rows_affected();
            Ok(revoked)
        }

        async fn revoke_host_certificate(&self, serial: &str, now: Timestamp) -> StoreResult<bool> {
            sqlx::query(
            "UPDATE host_certificates SET revoked_at = $2 WHERE serial = $1 AND revoked_at IS NULL",
        )
        .bind(serial)
        .bind(now.millis())
        .execute(&self.pool)
        .await?;
            Ok(self.get_host_certificate(serial).await?.is_some())
        }

        async fn insert_ca_if_absent(&self, ca: &CaRecord) -> StoreResult<CaRecord> {
            // The single-row primary key arbitrates: a concurrent insert waits for
            // the first one's commit, then does nothing.
            sqlx::query(
                "INSERT INTO pki_ca (id, cert_pem, sealed_key, created_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
            )
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
            let row =
                sqlx::query("SELECT cert_pem, sealed_key, created_at FROM pki_ca WHERE id = 1")
                    .fetch_optional(&self.pool)
                    .await?;
            row.as_ref().map(fleet_ca_from_row).transpose()
        }

        async fn enqueue_agent_command(
            &self,
            cmd: &AgentCommand,
        ) -> StoreResult<(AgentCommand, bool)> {
            if !cmd.state.is_initial() {
                return Err(StoreError::InvalidTransition(InvalidTransition {
                    machine: CommandState::NAME,
                    from: "(new)".into(),
                    to: cmd.state.as_str().into(),
                }));
            }
            let mut tx = begin_write(&self.pool).await?;
            let inserted = sqlx::query(&format!(
                "INSERT INTO agent_commands ({FLEET_COMMAND_COLUMNS}) VALUES \
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
            .execute(&mut *tx)
            .await
            .map_err(|e| fleet_write_error(e, "host"))?
            .rows_affected();
            let row = sqlx::query(&format!(
                "SELECT {FLEET_COMMAND_COLUMNS} FROM agent_commands \
             WHERE host_id = $1 AND idempotency_key = $2"
            ))
            .bind(cmd.host_id.to_string())
            .bind(&cmd.idempotency_key)
            .fetch_one(&mut *tx)
            .await?;
            let stored = fleet_command_from_row(&row)?;
            tx.commit().await?;
            Ok((stored, inserted == 1))
        }

        async fn get_agent_command(&self, id: CommandId) -> StoreResult<Option<AgentCommand>> {
            let mut conn = self.pool.acquire().await?;
            fleet_read_command(&mut conn, id, None).await
        }

        async fn list_agent_commands(
            &self,
            host: HostId,
            limit: i64,
        ) -> StoreResult<Vec<AgentCommand>> {
            let rows = sqlx::query(&format!(
                "SELECT {FLEET_COMMAND_COLUMNS} FROM agent_commands WHERE host_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
            ))
            .bind(host.to_string())
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(fleet_command_from_row).collect()
        }

        async fn agent_commands_to_dispatch(
            &self,
            host: HostId,
            now: Timestamp,
            limit: i64,
        ) -> StoreResult<Vec<AgentCommand>> {
            let rows = sqlx::query(&format!(
                "SELECT {FLEET_COMMAND_COLUMNS} FROM agent_commands \
             WHERE host_id = $1 AND state = $2 AND expires_at > $3 \
             ORDER BY created_at, id LIMIT $4"
            ))
            .bind(host.to_string())
            .bind(CommandState::Queued.as_str())
            .bind(now.millis())
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(fleet_command_from_row).collect()
        }

        async fn hosts_with_queued_agent_commands(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<HostId>> {
        let rows = sqlx::query(
            "SELECT DISTINCT host_id FROM agent_commands \
             WHERE state = $1 AND expires_at > $2 LIMIT $3",
        )
        .bind(CommandState::Queued.as_str())
        .bind(now.millis())
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| codec::parse_id("agent_commands.host_id", &col::<String>(r, "host_id")?))
            .collect()
    }

    async fn mark_agent_command_dispatched(
            &self,
            id: CommandId,
            now: Timestamp,
        ) -> StoreResult<bool> {
            let (from, to) = (CommandState::Queued, CommandState::Dispatched);
            from.transition(to)?;
            let moved = sqlx::query(
            "UPDATE agent_commands SET state = $3, dispatched_at = $4, attempts = attempts + 1 \
             WHERE id = $1 AND state = $2 AND expires_at > $4",
        )
        .bind(id.to_string())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(now.millis())
        .execute(&self.pool)
        .await?
        .rows_affected();
            Ok(moved == 1)
        }

        async fn ack_agent_command(
            &self,
            host: HostId,
            id: CommandId,
            now: Timestamp,
        ) -> StoreResult<CommandState> {
            let to = CommandState::Acked;
            let mut tx = begin_write(&self.pool).await?;
            for _ in 0..FLEET_CAS_RETRIES {
                let Some(cmd) = fleet_read_command(&mut tx, id, Some(host)).await? else {
                    tx.rollback().await?;
                    return Err(StoreError::NotFound("command"));
                };
                if cmd.state == to {
                    tx.rollback().await?;
                    return Ok(to);
                }
                cmd.state.transition(to)?;
                let moved = sqlx::query(
                "UPDATE agent_commands SET state = $3, acked_at = $4 WHERE id = $1 AND state = $2",
            )
            .bind(id.to_string())
            .bind(cmd.state.as_str())
            .bind(to.as_str())
            .bind(now.millis())
            .execute(&mut *tx)
            .await?
            .rows_affected();
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
            let updated = sqlx::query(
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
            .await?
            .rows_affected();
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
            let mut tx = begin_write(&self.pool).await?;
            for _ in 0..FLEET_CAS_RETRIES {
                let Some(cmd) = fleet_read_command(&mut tx, id, Some(host)).await? else {
                    tx.rollback().await?;
                    return Err(StoreError::NotFound("command"));
                };
                cmd.state.transition(to)?;
                let moved = sqlx::query(
                "UPDATE agent_commands SET state = $3, finished_at = $4, result = $5, error = $6, \
                 acked_at = COALESCE(acked_at, $4) WHERE id = $1 AND state = $2",
            )
            .bind(id.to_string())
            .bind(cmd.state.as_str())
            .bind(to.as_str())
            .bind(now.millis())
            .bind(result.as_deref())
            .bind(error)
            .execute(&mut *tx)
            .await?
            .rows_affected();
                if moved == 1 {
                    insert_event(
                        &mut tx,
                        &fleet_command_finished_event(
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

        async fn expire_overdue_agent_commands(
            &self,
            now: Timestamp,
        ) -> StoreResult<Vec<CommandId>> {
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
                fleet_placeholders(3, live.len())
            );
            let mut tx = begin_write(&self.pool).await?;
            let mut query = sqlx::query(&sql).bind(to.as_str()).bind(now.millis());
            for s in &live {
                query = query.bind(*s);
            }
            let rows = query.fetch_all(&mut *tx).await?;
            let mut ids = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: String = col(row, "id")?;
                let host: String = col(row, "host_id")?;
                let kind: String = col(row, "kind")?;
                insert_event(
                    &mut tx,
                    &fleet_command_finished_event(&id, &host, &kind, to, now),
                )
                .await?;
                ids.push(codec::parse_id("agent_commands.id", &id)?);
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
            let moved = sqlx::query(
                "UPDATE agent_commands SET state = $3 \
             WHERE host_id = $1 AND state = $2 AND expires_at > $4",
            )
            .bind(host.to_string())
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(now.millis())
            .execute(&self.pool)
            .await?
            .rows_affected();
            Ok(moved)
        }

        async fn insert_agent_event(&self, event: &AgentEventRecord) -> StoreResult<i64> {
            let mut tx = begin_write(&self.pool).await?;
            let row = sqlx::query(
                "INSERT INTO agent_events (host_id, kind, workload_id, message, payload, at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
            )
            .bind(event.host_id.to_string())
            .bind(&event.kind)
            .bind(event.workload_id.as_deref())
            .bind(&event.message)
            .bind(event.payload.to_string())
            .bind(event.at.millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| fleet_write_error(e, "host"))?;
            let seq: i64 = col(&row, "seq")?;
            insert_event(
                &mut tx,
                &DomainEvent {
                    subject: "fleet.agent.event".into(),
                    aggregate_type: "host".into(),
                    aggregate_id: event.host_id.to_string(),
                    payload: serde_json::json!({
                        "seq": seq,
                        "host_id": event.host_id,
                        "kind": event.kind,
                        "workload_id": event.workload_id,
                        "message": event.message,
                        "at": event.at,
                    }),
                },
            )
            .await?;
            tx.commit().await?;
            Ok(seq)
        }

        async fn list_agent_events(
            &self,
            host: HostId,
            after_seq: i64,
            limit: i64,
        ) -> StoreResult<Vec<AgentEventRecord>> {
            let rows = sqlx::query(
                "SELECT seq, host_id, kind, workload_id, message, payload, at FROM agent_events \
             WHERE host_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(host.to_string())
            .bind(after_seq)
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(fleet_event_from_row).collect()
        }
    }
}
