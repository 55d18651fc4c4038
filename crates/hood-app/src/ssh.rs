//! SSH access to containers (Edd Cloud's SSH flow): a user's uploaded
//! public key opens a terminal session in a running container of their
//! organization, named as the SSH user (`ssh {container}@hood -p 2222`).
//! The session is the terminal machinery's: audited as
//! `allocation.terminal.open` with the user as actor, recorded, and
//! carried by the allocation's agent over its own outbound stream.

use crate::containers::ContainerService;
use crate::error::{AppError, AppResult};
use crate::terminals::TerminalService;
use hood_domain::audit::AuditContext;
use hood_domain::{AllocationId, ContainerId, OrgId, UserId};
use hood_store::ssh_key::SshKeyStore;
use hood_terminal::Session;
use std::sync::Arc;

/// Whom a key lets in, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub org_id: OrgId,
    pub user_id: UserId,
    pub container_id: ContainerId,
    pub allocation_id: AllocationId,
}

/// The SSH gateway's use cases.
#[derive(Clone)]
pub struct SshAccess {
    keys: Arc<dyn SshKeyStore>,
    containers: ContainerService,
    terminals: TerminalService,
}

impl SshAccess {
    pub fn new(
        keys: Arc<dyn SshKeyStore>,
        containers: ContainerService,
        terminals: TerminalService,
    ) -> Self {
        Self {
            keys,
            containers,
            terminals,
        }
    }

    /// The running container `container` (its name or id) of the
    /// organization of a user holding the key `fingerprint` (`SHA256:…`);
    /// `None` when no such user has such a container running.
    pub async fn authorize(
        &self,
        container: &str,
        fingerprint: &str,
    ) -> AppResult<Option<SshTarget>> {
        for key in self.keys.ssh_keys_with_fingerprint(fingerprint).await? {
            let found = match self.containers.get(key.org_id, container).await {
                Ok(found) => found,
                Err(AppError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            if let (Some(allocation), "running") = (&found.allocation, found.status()) {
                return Ok(Some(SshTarget {
                    org_id: key.org_id,
                    user_id: key.user_id,
                    container_id: found.container.id,
                    allocation_id: allocation.id,
                }));
            }
        }
        Ok(None)
    }

    /// A terminal session in the target's container: a shell, or
    /// `command` (argv) when the client asked to run one.
    pub async fn open(
        &self,
        target: &SshTarget,
        cols: u16,
        rows: u16,
        command: Vec<String>,
    ) -> AppResult<Arc<Session>> {
        let ctx = AuditContext {
            actor: format!("user:{}", target.user_id),
            request_id: None,
            reason: Some("ssh".into()),
        };
        self.terminals
            .open_command(
                target.org_id,
                target.allocation_id,
                cols,
                rows,
                command,
                &ctx,
            )
            .await
    }
}
