//! Namespaces: creation, lookup, deletion (finished by the sweeper).

use crate::{NewNamespace, Storage, StorageError, StorageResult};
use hood_domain::audit::AuditContext;
use hood_domain::storage::{Namespace, NamespaceName, NamespaceState, Usage, Visibility};
use hood_domain::{NamespaceId, OrgId};
use hood_store::StoreError;

impl Storage {
    pub async fn create_namespace(
        &self,
        org: OrgId,
        req: NewNamespace,
        audit: &AuditContext,
    ) -> StorageResult<Namespace> {
        let name = NamespaceName::parse(&req.name)?;
        let ns = Namespace {
            id: NamespaceId::from_uuid(uuid::Uuid::now_v7()),
            org_id: org,
            name,
            visibility: req.visibility,
            quota: req.quota.unwrap_or(self.inner.config.default_quota),
            usage: Usage::default(),
            state: NamespaceState::Active,
            created_at: self.now(),
        };
        match self.inner.store.create_namespace(&ns, audit).await {
            Ok(()) => Ok(ns),
            Err(StoreError::Conflict(_)) => Err(StorageError::Conflict(format!(
                "the organization already has a namespace named `{}`",
                ns.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_namespaces(&self, org: OrgId) -> StorageResult<Vec<Namespace>> {
        Ok(self.inner.store.list_namespaces(org).await?)
    }

    /// The organization's namespace, in any state (a name that is not a
    /// namespace name is simply not found).
    pub async fn namespace(&self, org: OrgId, name: &str) -> StorageResult<Namespace> {
        let name = NamespaceName::parse(name).map_err(|_| StorageError::NotFound("namespace"))?;
        self.inner
            .store
            .namespace_by_name(org, &name)
            .await?
            .ok_or(StorageError::NotFound("namespace"))
    }

    /// The organization's namespace, only while it is active.
    pub async fn active_namespace(&self, org: OrgId, name: &str) -> StorageResult<Namespace> {
        let ns = self.namespace(org, name).await?;
        if ns.state != NamespaceState::Active {
            return Err(StorageError::NotFound("namespace"));
        }
        Ok(ns)
    }

    /// Starts deleting a namespace: it stops serving at once; the sweeper
    /// removes its objects and then the namespace (resumable after a
    /// crash: the state is in the row).
    pub async fn delete_namespace(
        &self,
        org: OrgId,
        name: &str,
        audit: &AuditContext,
    ) -> StorageResult<Namespace> {
        let name = NamespaceName::parse(name).map_err(|_| StorageError::NotFound("namespace"))?;
        match self
            .inner
            .store
            .begin_namespace_deletion(org, &name, self.now(), audit)
            .await
        {
            Ok(ns) => Ok(ns),
            Err(StoreError::NotFound(_)) => Err(StorageError::NotFound("namespace")),
            Err(e) => Err(e.into()),
        }
    }

    /// A public namespace, for anonymous reads (a private one is not found,
    /// so anonymous callers cannot tell it exists).
    pub async fn public_namespace(&self, org: OrgId, name: &str) -> StorageResult<Namespace> {
        let ns = self.active_namespace(org, name).await?;
        Self::only_public(ns)
    }

    /// Like [`public_namespace`](Self::public_namespace), the organization
    /// named by its slug (S3's anonymous bucket `{org_slug}.{name}`).
    pub async fn public_namespace_of(
        &self,
        org_slug: &str,
        name: &str,
    ) -> StorageResult<Namespace> {
        let name = NamespaceName::parse(name).map_err(|_| StorageError::NotFound("namespace"))?;
        let ns = self
            .inner
            .store
            .namespace_by_org_slug(org_slug, &name)
            .await?
            .ok_or(StorageError::NotFound("namespace"))?;
        if ns.state != NamespaceState::Active {
            return Err(StorageError::NotFound("namespace"));
        }
        Self::only_public(ns)
    }

    fn only_public(ns: Namespace) -> StorageResult<Namespace> {
        if ns.visibility != Visibility::Public {
            return Err(StorageError::NotFound("namespace"));
        }
        Ok(ns)
    }
}
