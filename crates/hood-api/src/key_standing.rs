//! An API key's standing as the store last told it, as the replica's
//! credential cache keeps it ([`crate::state::AppState::api_keys`]). What
//! depends on the clock (expiry) and on the presented secret is judged by
//! `auth` at every request, never cached.

use hood_domain::identity::{ApiKey, User};
use hood_domain::scope::ServiceAccount;
use hood_domain::OrgId;
use hood_identity::credential_cache::OrgScoped;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one replica stamps a key's `last_used_at` (a write per
/// request would cost more than the request).
pub const KEY_USE_STAMP_INTERVAL: Duration = Duration::from_secs(60);

pub struct ApiKeyStanding {
    pub(crate) key: ApiKey,
    /// `None`: the user was deleted.
    pub(crate) user: Option<User>,
    /// The service account the key acts as, and its organization's slug.
    pub(crate) account: Option<(ServiceAccount, String)>,
    /// When this replica last stamped the key's `last_used_at`.
    touched: Mutex<Option<Instant>>,
}

impl OrgScoped for ApiKeyStanding {
    fn org_id(&self) -> OrgId {
        self.key.org_id
    }
}

impl ApiKeyStanding {
    pub(crate) fn new(
        key: ApiKey,
        user: Option<User>,
        account: Option<(ServiceAccount, String)>,
    ) -> Self {
        Self {
            key,
            user,
            account,
            touched: Mutex::new(None),
        }
    }

    /// Whether this use should be stamped: the first on this replica since
    /// the standing was read, then one per [`KEY_USE_STAMP_INTERVAL`].
    pub(crate) fn stamp_due(&self, now: Instant) -> bool {
        let Ok(mut touched) = self.touched.lock() else {
            return true;
        };
        match *touched {
            Some(at) if now.duration_since(at) < KEY_USE_STAMP_INTERVAL => false,
            _ => {
                *touched = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_stamped_once_per_interval() {
        use hood_domain::identity::Role;
        use hood_domain::{ApiKeyId, Timestamp, UserId};
        let nil = uuid::Uuid::nil();
        let key = ApiKey {
            id: ApiKeyId::from_uuid(nil),
            org_id: OrgId::from_uuid(nil),
            user_id: UserId::from_uuid(nil),
            name: "k".into(),
            prefix: "p".into(),
            secret_hash: "h".into(),
            role: Role::Viewer,
            scopes: vec![],
            created_at: Timestamp(0),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        };
        let standing = ApiKeyStanding::new(key, None, None);
        let t0 = Instant::now();
        assert!(standing.stamp_due(t0), "the first use is stamped");
        assert!(!standing.stamp_due(t0 + Duration::from_secs(1)));
        assert!(!standing.stamp_due(t0 + KEY_USE_STAMP_INTERVAL - Duration::from_millis(1)));
        assert!(standing.stamp_due(t0 + KEY_USE_STAMP_INTERVAL));
        assert!(!standing.stamp_due(t0 + KEY_USE_STAMP_INTERVAL + Duration::from_secs(1)));
    }
}
