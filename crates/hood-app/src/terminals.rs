//! Terminal sessions into active allocations: open one (the hub's session,
//! the audit row, then the signed task that makes the allocation's agent
//! start a shell and dial in) and find one again to resume it.

use crate::allocations::AllocationService;
use crate::error::{AppError, AppResult};
use hood_domain::audit::AuditContext;
use hood_domain::lifecycle::AllocationState;
use hood_domain::validate::FieldError;
use hood_domain::workload::TerminalTask;
use hood_domain::{AllocationId, OrgId};
use hood_ports::AllocationOperations;
use hood_store::audit::{AuditEvent, AuditStore};
use hood_terminal::{Session, SessionInfo, TerminalHub};
use std::sync::Arc;

/// The terminal use cases.
#[derive(Clone)]
pub struct TerminalService {
    allocations: AllocationService,
    audit: Arc<dyn AuditStore>,
    hub: Arc<TerminalHub>,
    operations: Arc<dyn AllocationOperations>,
}

impl TerminalService {
    pub fn new(
        allocations: AllocationService,
        audit: Arc<dyn AuditStore>,
        hub: Arc<TerminalHub>,
        operations: Arc<dyn AllocationOperations>,
    ) -> Self {
        Self {
            allocations,
            audit,
            hub,
            operations,
        }
    }

    /// Opens a session into allocation `id` of `org` with a window of
    /// `cols`×`rows`; it is live once this returns.
    pub async fn open(
        &self,
        org: OrgId,
        id: AllocationId,
        cols: u16,
        rows: u16,
        ctx: &AuditContext,
    ) -> AppResult<Arc<Session>> {
        self.open_command(org, id, cols, rows, Vec::new(), ctx)
            .await
    }

    /// [`Self::open`] running `command` (argv) on the terminal instead of
    /// an interactive shell (an SSH client's `exec`).
    pub async fn open_command(
        &self,
        org: OrgId,
        id: AllocationId,
        cols: u16,
        rows: u16,
        command: Vec<String>,
        ctx: &AuditContext,
    ) -> AppResult<Arc<Session>> {
        if let Err(e) = hood_terminal::frame::valid_size(cols, rows) {
            return Err(AppError::Invalid(vec![FieldError::new(
                "cols",
                e.to_string(),
            )]));
        }
        let allocation = self.allocations.get(org, id).await?;
        if allocation.state != AllocationState::Active {
            return Err(AppError::Conflict(format!(
                "the allocation is {}: a terminal opens into an active allocation only",
                allocation.state.as_str()
            )));
        }
        let now = hood_clock::now();
        let session = self.hub.open(SessionInfo {
            id: uuid::Uuid::now_v7(),
            allocation_id: id.to_string(),
            host_id: allocation.host_id.to_string(),
            org_id: Some(org),
            actor: ctx.actor.clone(),
            request_id: ctx.request_id.clone(),
            opened_at_ms: now.millis(),
            cols,
            rows,
        });
        let session_id = session.info().id;
        // On the record before anything runs on the host.
        let audited = self
            .audit
            .append_audit(
                ctx,
                now,
                AuditEvent {
                    org_id: Some(org),
                    action: "allocation.terminal.open".into(),
                    resource_type: "allocation".into(),
                    resource_id: id.to_string(),
                    after: Some(serde_json::json!({
                        "session_id": session_id,
                        "host_id": allocation.host_id,
                        "cols": cols,
                        "rows": rows,
                        "command": command,
                        "via": ctx.reason,
                    })),
                },
            )
            .await;
        if let Err(e) = audited {
            session.finish(None, "could not be recorded in the audit log");
            return Err(e.into());
        }
        let task = TerminalTask {
            allocation_id: id,
            session_id,
            cores: allocation.reservation.cores.clone(),
            cols,
            rows,
            command,
        };
        if let Err(e) = self.operations.open_terminal(&allocation, &task).await {
            session.finish(None, &format!("the host could not open it: {e}"));
            return Err(e.into());
        }
        Ok(session)
    }

    /// Session `session` of allocation `id` of `org`, to resume it.
    pub fn find(
        &self,
        org: OrgId,
        id: AllocationId,
        session: uuid::Uuid,
    ) -> AppResult<Arc<Session>> {
        self.hub
            .get(session)
            .filter(|s| s.info().org_id == Some(org) && s.info().allocation_id == id.to_string())
            .ok_or(AppError::NotFound("terminal session"))
    }
}
