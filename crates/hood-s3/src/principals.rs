//! Who an access key is: the service account behind it, its grants, its
//! owner's role. A key's standing is read from the store once and reused
//! through the shared credential cache (`hood_identity::credential_cache`:
//! evicted per organization on every credential change heard over the bus,
//! re-read within a second when no bus is followed), so no request waits
//! on the store for a key it has seen.

use hood_domain::identity::{Permission, Role};
use hood_domain::scope::{storage_namespace, Action, Grants};
use hood_domain::{OrgId, ServiceAccountId};
use hood_identity::credential_cache::{CredentialCache, CredentialEvictor, OrgScoped};
use hood_identity::master_key::MasterKey;
use hood_identity::s3_keys::{is_access_key_id, open_secret};
use hood_store::service_account::ServiceAccountStore;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};
use std::sync::Arc;

/// What a valid key acts as.
#[derive(Debug, Clone)]
pub struct Principal {
    pub access_key_id: String,
    pub org_id: OrgId,
    pub org_slug: String,
    pub account_id: ServiceAccountId,
    pub grants: Grants,
    pub owner_role: Role,
}

impl Principal {
    /// Whether the key may do `action` on the namespace `bucket` (needing
    /// `p` of its owner's role as well).
    pub fn may(&self, p: Permission, bucket: &str, action: Action) -> bool {
        self.owner_role.allows(p)
            && storage_namespace(&self.org_slug, bucket)
                .is_ok_and(|scope| self.grants.allows(&scope, action))
    }

    /// The actor of audit rows.
    pub fn actor(&self) -> String {
        format!("s3-key:{}", self.access_key_id)
    }
}

struct Resolved {
    principal: Principal,
    secret: String,
}

impl OrgScoped for Resolved {
    fn org_id(&self) -> OrgId {
        self.principal.org_id
    }
}

pub struct Principals {
    store: Arc<dyn ServiceAccountStore>,
    master: MasterKey,
    cache: Arc<CredentialCache<Resolved>>,
}

impl std::fmt::Debug for Principals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principals").finish_non_exhaustive()
    }
}

impl Principals {
    pub fn new(store: Arc<dyn ServiceAccountStore>, master: MasterKey) -> Self {
        Self {
            store,
            master,
            cache: Arc::new(CredentialCache::new()),
        }
    }

    /// The cache of key standings, for `hood_bus::follow_credential_events`.
    pub fn credential_cache(&self) -> Arc<dyn CredentialEvictor> {
        self.cache.clone()
    }

    /// The key's principal and secret while it is usable; `None` for an
    /// unknown, revoked or orphaned key.
    async fn resolve(&self, access_key_id: &str) -> S3Result<Option<Arc<Resolved>>> {
        if !is_access_key_id(access_key_id) {
            return Ok(None);
        }
        self.cache
            .get_or_load(access_key_id, || self.load(access_key_id))
            .await
    }

    async fn load(&self, access_key_id: &str) -> S3Result<Option<Resolved>> {
        let row = self.store.s3_principal(access_key_id).await.map_err(|e| {
            tracing::error!(error = %e, "could not read an S3 key");
            s3_error!(InternalError)
        })?;
        let Some(row) = row else { return Ok(None) };
        if row.key.revoked_at.is_some() || row.owner_disabled {
            return Ok(None);
        }
        let secret = match open_secret(&self.master, access_key_id, &row.sealed_secret) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(access_key_id, error = %e, "an S3 key's secret does not open under this master key");
                return Ok(None);
            }
        };
        Ok(Some(Resolved {
            principal: Principal {
                access_key_id: access_key_id.to_owned(),
                org_id: row.key.org_id,
                org_slug: row.org_slug,
                account_id: row.account.id,
                grants: row.account.grants,
                owner_role: row.owner_role,
            },
            secret,
        }))
    }

    /// The principal of a signed request's key (`AccessDenied` for an
    /// anonymous request, `InvalidAccessKeyId` for a key no longer valid).
    pub async fn principal(&self, access_key_id: Option<&str>) -> S3Result<Principal> {
        let Some(id) = access_key_id else {
            return Err(s3_error!(
                AccessDenied,
                "anonymous requests are not served: sign with an access key"
            ));
        };
        match self.resolve(id).await? {
            Some(r) => Ok(r.principal.clone()),
            None => Err(unknown_key()),
        }
    }
}

fn unknown_key() -> s3s::S3Error {
    s3_error!(
        InvalidAccessKeyId,
        "the access key id is not one Hood issued, or it was revoked"
    )
}

/// s3s's signature check asks for the secret of the key a request names.
pub(crate) struct Auth(pub(crate) Arc<Principals>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.resolve(access_key).await? {
            Some(r) => Ok(SecretKey::from(r.secret.as_str())),
            None => Err(unknown_key()),
        }
    }
}
