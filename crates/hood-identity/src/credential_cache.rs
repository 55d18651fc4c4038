//! Credentials' standing, read from the store once and reused by every
//! role that checks tokens on its own (the API's keys, the S3 endpoint's
//! access keys): no request waits on the store for a token seen recently.
//!
//! Every change that takes power from a credential (a key revoked, grants
//! replaced, an account deleted, its owner's role changed or disabled) is
//! published on the bus in the transaction that makes it, naming the
//! organization; each replica then forgets that organization's entries
//! ([`CredentialEvictor::evict_org`], driven by
//! `hood_bus::follow_credential_events`). While changes are heard, a known
//! credential is re-read at the latest after [`WATCHED_TTL`] (a backstop
//! for a lost event); while they are not (no bus, or its watch broke),
//! after [`UNWATCHED_TTL`], which bounds how long a revocation takes. An
//! unknown credential is remembered for [`UNWATCHED_TTL`] only, so a flood
//! of bad tokens costs one read per token per second at most.

use hood_domain::OrgId;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a standing is reused when no bus tells of changes (and an
/// unknown credential's absence, always).
pub const UNWATCHED_TTL: Duration = Duration::from_secs(1);

/// How long a known credential's standing is reused while the bus is
/// followed.
pub const WATCHED_TTL: Duration = Duration::from_secs(30);

/// Entries remembered at most (a flood of unknown ids cannot grow it).
const MAX_ENTRIES: usize = 10_000;

/// A cached standing names the organization whose changes evict it.
pub trait OrgScoped {
    fn org_id(&self) -> OrgId;
}

/// What the bus follower asks of a cache, whatever it holds.
pub trait CredentialEvictor: Send + Sync {
    /// Forgets every entry of `org` (its credentials changed).
    fn evict_org(&self, org: OrgId);
    /// Forgets every entry, and says whether changes are heard from now on
    /// (a broken watch may have missed some).
    fn reset(&self, watching: bool);
}

/// A standing as last read (`None`: no such usable credential), and when.
type Entry<V> = (Instant, Option<Arc<V>>);

pub struct CredentialCache<V> {
    entries: RwLock<HashMap<String, Entry<V>>>,
    /// Whether credential changes arrive from the bus now.
    watching: AtomicBool,
    /// Bumped by every eviction: a standing read while one happened may
    /// predate the change, so it is used once but not kept.
    evictions: AtomicU64,
}

impl<V> std::fmt::Debug for CredentialCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("watching", &self.watching.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<V> Default for CredentialCache<V> {
    fn default() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            watching: AtomicBool::new(false),
            evictions: AtomicU64::new(0),
        }
    }
}

impl<V: OrgScoped> CredentialCache<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// How long an entry is good for.
    fn ttl(&self, found: &Option<Arc<V>>) -> Duration {
        if found.is_some() && self.watching.load(Ordering::Acquire) {
            WATCHED_TTL
        } else {
            UNWATCHED_TTL
        }
    }

    /// The standing of `id`: the cached one while it is fresh, else what
    /// `load` reads (`Ok(None)`: no such usable credential). A load's error
    /// is returned and nothing is remembered.
    pub async fn get_or_load<E, F, Fut>(&self, id: &str, load: F) -> Result<Option<Arc<V>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let now = Instant::now();
        {
            // A poisoned lock only means a panic elsewhere mid-insert; the
            // map itself is still a valid map.
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            if let Some((at, found)) = entries.get(id) {
                if now.duration_since(*at) < self.ttl(found) {
                    return Ok(found.clone());
                }
            }
        }
        let epoch = self.evictions.load(Ordering::Acquire);
        let found = load().await?.map(Arc::new);
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock an eviction also takes: an eviction either
        // finished before this (the epoch moved: not kept) or waits for it
        // (and removes what is inserted here).
        if self.evictions.load(Ordering::Acquire) != epoch {
            return Ok(found);
        }
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| now.duration_since(*at) < UNWATCHED_TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(id.to_owned(), (now, found.clone()));
        Ok(found)
    }

    /// Forgets one credential (this replica just changed it).
    pub fn evict(&self, id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.evictions.fetch_add(1, Ordering::AcqRel);
        entries.remove(id);
    }

    /// Whether changes are heard over the bus now.
    pub fn is_watching(&self) -> bool {
        self.watching.load(Ordering::Acquire)
    }
}

impl<V: OrgScoped + Send + Sync> CredentialEvictor for CredentialCache<V> {
    fn evict_org(&self, org: OrgId) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.evictions.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, (_, found)| found.as_ref().is_none_or(|v| v.org_id() != org));
    }

    fn reset(&self, watching: bool) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.watching.store(watching, Ordering::Release);
        self.evictions.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    #[derive(Debug, PartialEq)]
    struct Standing {
        org: OrgId,
        version: usize,
    }

    impl OrgScoped for Standing {
        fn org_id(&self) -> OrgId {
            self.org
        }
    }

    /// A loader counting its reads, answering the read's number.
    struct Source {
        org: OrgId,
        reads: AtomicUsize,
    }

    impl Source {
        fn new(org: OrgId) -> Self {
            Self {
                org,
                reads: AtomicUsize::new(0),
            }
        }

        async fn read(&self) -> Result<Option<Standing>, Infallible> {
            let version = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Some(Standing {
                org: self.org,
                version,
            }))
        }

        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    async fn get(cache: &CredentialCache<Standing>, id: &str, src: &Source) -> usize {
        cache
            .get_or_load(id, || src.read())
            .await
            .unwrap()
            .map(|s| s.version)
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn a_standing_is_read_once_and_reused() {
        let cache = CredentialCache::new();
        let src = Source::new(OrgId::from_uuid(uuid::Uuid::new_v4()));
        for _ in 0..100 {
            assert_eq!(get(&cache, "k", &src).await, 1);
        }
        assert_eq!(src.reads(), 1);
    }

    #[tokio::test]
    async fn an_organizations_change_evicts_its_entries_only() {
        let cache = CredentialCache::new();
        let (mine, theirs) = (
            Source::new(OrgId::from_uuid(uuid::Uuid::new_v4())),
            Source::new(OrgId::from_uuid(uuid::Uuid::new_v4())),
        );
        get(&cache, "mine", &mine).await;
        get(&cache, "theirs", &theirs).await;
        cache.evict_org(mine.org);
        assert_eq!(
            get(&cache, "mine", &mine).await,
            2,
            "re-read after its org's change"
        );
        assert_eq!(
            get(&cache, "theirs", &theirs).await,
            1,
            "another org's entry kept"
        );
        cache.evict("theirs");
        assert_eq!(get(&cache, "theirs", &theirs).await, 2);
        cache.reset(true);
        assert_eq!(get(&cache, "mine", &mine).await, 3);
        assert_eq!(get(&cache, "theirs", &theirs).await, 3);
    }

    #[tokio::test]
    async fn a_standing_read_across_an_eviction_is_used_once_not_kept() {
        let cache = CredentialCache::new();
        let src = Source::new(OrgId::from_uuid(uuid::Uuid::new_v4()));
        // The eviction lands while the read is in flight: what was read
        // may predate the change it announces.
        let first = cache
            .get_or_load("k", || async {
                cache.evict_org(src.org);
                src.read().await
            })
            .await
            .unwrap();
        assert_eq!(first.map(|s| s.version), Some(1));
        assert_eq!(get(&cache, "k", &src).await, 2, "read again, not reused");
        assert_eq!(get(&cache, "k", &src).await, 2, "kept once read cleanly");
    }

    #[tokio::test]
    async fn absence_is_remembered_briefly_and_errors_never() {
        let cache: CredentialCache<Standing> = CredentialCache::new();
        let misses = AtomicUsize::new(0);
        for _ in 0..10 {
            let found = cache
                .get_or_load("nobody", || async {
                    misses.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(None)
                })
                .await
                .unwrap();
            assert!(found.is_none());
        }
        assert_eq!(misses.load(Ordering::SeqCst), 1);
        for _ in 0..3 {
            let failed = cache
                .get_or_load("broken", || async { Err::<Option<Standing>, _>("down") })
                .await;
            assert_eq!(failed.unwrap_err(), "down");
        }
        let entries = cache.entries.read().unwrap();
        assert!(
            !entries.contains_key("broken"),
            "an error is not remembered"
        );
    }

    #[tokio::test]
    async fn watching_decides_how_long_a_known_standing_lives() {
        let cache: CredentialCache<Standing> = CredentialCache::new();
        let known = Some(Arc::new(Standing {
            org: OrgId::from_uuid(uuid::Uuid::new_v4()),
            version: 1,
        }));
        assert!(!cache.is_watching());
        assert_eq!(cache.ttl(&known), UNWATCHED_TTL);
        cache.reset(true);
        assert!(cache.is_watching());
        assert_eq!(cache.ttl(&known), WATCHED_TTL);
        assert_eq!(cache.ttl(&None), UNWATCHED_TTL, "absence stays brief");
        cache.reset(false);
        assert_eq!(cache.ttl(&known), UNWATCHED_TTL);
    }

    #[tokio::test]
    async fn the_cache_never_grows_past_its_bound() {
        let cache = CredentialCache::new();
        let src = Source::new(OrgId::from_uuid(uuid::Uuid::new_v4()));
        for i in 0..(MAX_ENTRIES + 10) {
            get(&cache, &format!("k{i}"), &src).await;
        }
        assert!(cache.entries.read().unwrap().len() <= MAX_ENTRIES);
    }
}
