//! Who an access key is: the service account behind it, its grants, its
//! owner's role. A key's standing is read from the store once and reused:
//! every change that takes power from a key (grants replaced, account or
//! key gone, owner's role changed or disabled) is published on the bus in
//! the transaction that makes it, and each replica evicts the
//! organization's keys at once ([`follow_credential_events`]). The bus
//! followed, a standing is re-read at the latest after [`WATCHED_TTL`] (a
//! backstop for a lost event); not followed (no bus, or its watch broke),
//! after [`PRINCIPAL_TTL`]. Either way no request waits on the store for a
//! key it has seen.

use hood_bus::EventBus;
use hood_domain::identity::{Permission, Role};
use hood_domain::scope::{storage_namespace, Action, Grants};
use hood_domain::{OrgId, ServiceAccountId};
use hood_identity::master_key::MasterKey;
use hood_identity::s3_keys::{is_access_key_id, open_secret};
use hood_store::service_account::{ServiceAccountStore, CREDENTIAL_EVENTS};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a key's standing is reused when no bus tells of changes (and
/// an unknown key's absence, always).
pub const PRINCIPAL_TTL: Duration = Duration::from_secs(1);

/// How long a key's standing is reused while the bus is followed.
pub const WATCHED_TTL: Duration = Duration::from_secs(30);

/// Keys remembered at most (a flood of unknown ids cannot grow the cache).
const MAX_CACHED: usize = 10_000;

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

/// A key's standing as last read, and when.
type CacheEntry = (Instant, Option<Arc<Resolved>>);

struct Resolved {
    principal: Principal,
    secret: String,
}

pub struct Principals {
    store: Arc<dyn ServiceAccountStore>,
    master: MasterKey,
    cache: Mutex<HashMap<String, CacheEntry>>,
    /// Whether credential changes arrive from the bus now.
    watching: AtomicBool,
    /// Bumped by every eviction: a standing read while one happened may
    /// predate the change, so it is used once but not kept.
    evictions: AtomicU64,
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
            cache: Mutex::new(HashMap::new()),
            watching: AtomicBool::new(false),
            evictions: AtomicU64::new(0),
        }
    }

    /// How long an entry is good for: a known key's while the bus is
    /// followed, [`PRINCIPAL_TTL`] otherwise.
    fn ttl(&self, found: &Option<Arc<Resolved>>) -> Duration {
        if found.is_some() && self.watching.load(Ordering::Acquire) {
            WATCHED_TTL
        } else {
            PRINCIPAL_TTL
        }
    }

    /// Forgets every key of `org` (its credentials changed).
    pub fn evict_org(&self, org: OrgId) {
        self.evictions.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, (_, found)| found.as_ref().is_none_or(|r| r.principal.org_id != org));
        }
    }

    /// Forgets every key, and says whether changes will be heard from now
    /// on (a broken watch may have missed some).
    fn reset(&self, watching: bool) {
        self.watching.store(watching, Ordering::Release);
        self.evictions.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    /// What one credential event asks: evict its organization's keys.
    fn apply(&self, payload: &serde_json::Value) {
        match payload
            .get("org_id")
            .and_then(|o| o.as_str())
            .and_then(|o| o.parse::<OrgId>().ok())
        {
            Some(org) => self.evict_org(org),
            // Not an event of the expected shape: forget everything.
            None => self.reset(true),
        }
    }

    /// The key's principal and secret while it is usable; `None` for an
    /// unknown, revoked or orphaned key.
    async fn resolve(&self, access_key_id: &str) -> S3Result<Option<Arc<Resolved>>> {
        if !is_access_key_id(access_key_id) {
            return Ok(None);
        }
        let now = Instant::now();
        if let Ok(cache) = self.cache.lock() {
            if let Some((at, found)) = cache.get(access_key_id) {
                if now.duration_since(*at) < self.ttl(found) {
                    return Ok(found.clone());
                }
            }
        }
        let epoch = self.evictions.load(Ordering::Acquire);
        let found = self.load(access_key_id).await?;
        if self.evictions.load(Ordering::Acquire) != epoch {
            return Ok(found);
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                cache.retain(|_, (at, _)| now.duration_since(*at) < PRINCIPAL_TTL);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            cache.insert(access_key_id.to_owned(), (now, found.clone()));
        }
        Ok(found)
    }

    async fn load(&self, access_key_id: &str) -> S3Result<Option<Arc<Resolved>>> {
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
        Ok(Some(Arc::new(Resolved {
            principal: Principal {
                access_key_id: access_key_id.to_owned(),
                org_id: row.key.org_id,
                org_slug: row.org_slug,
                account_id: row.account.id,
                grants: row.account.grants,
                owner_role: row.owner_role,
            },
            secret,
        })))
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

/// Follows credential changes on the bus for `principals` until the task
/// is dropped: each event evicts its organization's keys; while the watch
/// is down, standings are re-read every [`PRINCIPAL_TTL`] instead.
pub async fn follow_credential_events(principals: Arc<Principals>, bus: Arc<dyn EventBus>) {
    let subjects: Vec<String> = CREDENTIAL_EVENTS.iter().map(|s| (*s).to_owned()).collect();
    loop {
        match bus.watch(&subjects).await {
            Ok(mut watch) => {
                principals.reset(true);
                loop {
                    match watch.next().await {
                        Ok(event) => principals.apply(&event.payload),
                        Err(e) => {
                            // Events may have been missed: start over.
                            tracing::warn!(error = %e, "credential watch interrupted; forgetting cached S3 keys");
                            principals.reset(true);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch credential changes; re-reading S3 keys each second");
                principals.reset(false);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
