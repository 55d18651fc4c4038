//! Verified RPC keys, cached in memory. A key change reaches every replica
//! through the bus (`edge.rpc_key.*`, watched, not consumed), which evicts
//! the key so the next request reads it again; a periodic resync from the
//! store repairs anything a replica missed. Unknown prefixes are remembered
//! briefly, so a flood of bad keys does not become a flood of queries.

use hood_domain::rpc::RpcKey;
use hood_domain::Timestamp;
use hood_store::edge::RpcKeyStore;
use hood_store::StoreError;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Subjects of key changes.
pub const KEY_EVENTS: &str = "edge.rpc_key.*";

/// What a presented token turned out to be.
#[derive(Debug, Clone)]
pub enum KeyCheck {
    Valid(Arc<RpcKey>),
    /// Not a key of ours, or the secret does not match.
    Unknown,
    Revoked,
}

enum Entry {
    /// The key as read from the store, and when it was read.
    Known(Arc<RpcKey>, Instant),
    /// No such prefix when last asked.
    Missing(Instant),
}

pub struct KeyCache {
    store: Arc<dyn RpcKeyStore>,
    entries: RwLock<HashMap<String, Entry>>,
    negative_ttl: Duration,
}

impl KeyCache {
    pub fn new(store: Arc<dyn RpcKeyStore>, negative_ttl: Duration) -> Self {
        Self {
            store,
            entries: RwLock::new(HashMap::new()),
            negative_ttl,
        }
    }

    /// Verifies a token. The token is never logged or kept: only its prefix
    /// indexes the cache and only a hash of its secret is compared.
    pub async fn verify(&self, token: &str) -> Result<KeyCheck, StoreError> {
        self.verify_within(token, None).await
    }

    /// Like [`verify`](Self::verify), but re-reads the key from the store
    /// when the cached copy is older than `max_age`. Long-lived connections
    /// re-check their key with this, so a revocation cuts them off within
    /// `max_age` even when the change event never arrived; connections of
    /// the same key share one read per `max_age`.
    pub async fn verify_fresh(
        &self,
        token: &str,
        max_age: Duration,
    ) -> Result<KeyCheck, StoreError> {
        self.verify_within(token, Some(max_age)).await
    }

    async fn verify_within(
        &self,
        token: &str,
        max_age: Option<Duration>,
    ) -> Result<KeyCheck, StoreError> {
        let Some((prefix, secret)) = hood_identity::api_keys::parse_rpc_key(token) else {
            return Ok(KeyCheck::Unknown);
        };
        let cached = {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            match entries.get(prefix) {
                Some(Entry::Known(key, read_at))
                    if max_age.is_none_or(|max| read_at.elapsed() < max) =>
                {
                    Some(Some(key.clone()))
                }
                Some(Entry::Missing(at)) if at.elapsed() < self.negative_ttl => Some(None),
                _ => None,
            }
        };
        let key = match cached {
            Some(key) => key,
            None => {
                let loaded = self.store.find_rpc_key_by_prefix(prefix).await?;
                let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
                match &loaded {
                    Some(key) => {
                        let key = Arc::new(key.clone());
                        entries
                            .insert(prefix.to_owned(), Entry::Known(key.clone(), Instant::now()));
                        Some(key)
                    }
                    None => {
                        entries.insert(prefix.to_owned(), Entry::Missing(Instant::now()));
                        None
                    }
                }
            }
        };
        let Some(key) = key else {
            return Ok(KeyCheck::Unknown);
        };
        if !hood_identity::api_keys::verify_secret(secret, &key.secret_hash) {
            return Ok(KeyCheck::Unknown);
        }
        if key.revoked_at.is_some() {
            return Ok(KeyCheck::Revoked);
        }
        Ok(KeyCheck::Valid(key))
    }

    /// Forgets a prefix (a change event arrived): the next request reads it.
    pub fn evict(&self, prefix: &str) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(prefix);
    }

    /// Applies a key-change event's payload (`{"prefix": …}`).
    pub fn apply_event(&self, payload: &serde_json::Value) {
        if let Some(prefix) = payload.get("prefix").and_then(|p| p.as_str()) {
            self.evict(prefix);
        }
    }

    /// Refreshes every key changed since `since` from the store.
    pub async fn resync(&self, since: Timestamp) -> Result<usize, StoreError> {
        let changed = self.store.rpc_keys_changed_since(since).await?;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        for key in &changed {
            entries.insert(
                key.prefix.clone(),
                Entry::Known(Arc::new(key.clone()), Instant::now()),
            );
        }
        Ok(changed.len())
    }

    /// Drops everything (after the bus connection was lost for a while).
    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
