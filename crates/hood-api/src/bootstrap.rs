//! First-start work shared by every role: signing keys and the initial
//! administrator.

use crate::clock::now;
use hood_domain::identity::{ApiKey, Organization, Role, SigningKey, User};
use hood_domain::{ApiKeyId, OrgId, UserId};
use hood_identity::api_keys::generate_api_key;
use hood_identity::master_key::MasterKey;
use hood_identity::password::hash_password;
use hood_identity::tokens::generate_signing_key;
use hood_store::{Store, StoreError};
use std::path::{Path, PathBuf};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("identity: {0}")]
    Identity(#[from] hood_identity::IdentityError),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Returns the installation's signing keys, creating the first one if none
/// is usable. Safe when several replicas start at once: each may insert a
/// key, all then sign with the newest.
pub async fn ensure_signing_keys(
    store: &dyn Store,
    master: &MasterKey,
) -> Result<Vec<SigningKey>, BootstrapError> {
    let keys = store.list_signing_keys().await?;
    if keys.iter().any(|k| k.retired_at.is_none()) {
        return Ok(keys);
    }
    let key = generate_signing_key(master, now())?;
    tracing::info!(kid = %key.kid, "generated a session signing key");
    store.insert_signing_key(&key).await?;
    Ok(store.list_signing_keys().await?)
}

/// The first administrator, as created by [`bootstrap_admin`].
#[derive(Debug, Clone)]
pub struct BootstrapReport {
    pub email: String,
    pub org_slug: String,
    /// Where the admin API key was written (mode 0600).
    pub key_file: PathBuf,
}

/// Name of the admin key file inside `$HOOD_HOME`.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// On an installation without users, creates the `hood` operators org, the
/// platform administrator `admin@hood.local` (password from
/// `admin_password` if given) and an admin API key written to
/// `home/admin.key`. Returns `None` when the installation already has users
/// (or another replica won the race).
///
/// Crash safety: the key file is written before the database commit, so a
/// crash in between leaves no users and the next start bootstraps again.
pub async fn bootstrap_admin(
    store: &dyn Store,
    home: &Path,
    admin_password: Option<&str>,
) -> Result<Option<BootstrapReport>, BootstrapError> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let now = now();
    let org = Organization {
        id: OrgId::from_uuid(Uuid::now_v7()),
        slug: "hood".into(),
        name: "Hood operators".into(),
        created_at: now,
    };
    let password_hash = admin_password.map(hash_password).transpose()?;
    let admin = User {
        id: UserId::from_uuid(Uuid::now_v7()),
        org_id: org.id,
        email: "admin@hood.local".into(),
        display_name: "Administrator".into(),
        role: Role::Admin,
        platform_admin: true,
        password_hash,
        disabled: false,
        created_at: now,
    };
    let generated = generate_api_key();
    let key = ApiKey {
        id: ApiKeyId::from_uuid(Uuid::now_v7()),
        org_id: org.id,
        user_id: admin.id,
        name: "bootstrap admin key".into(),
        prefix: generated.prefix.clone(),
        secret_hash: generated.secret_hash.clone(),
        role: Role::Admin,
        scopes: vec![],
        created_at: now,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    let key_file = home.join(ADMIN_KEY_FILE);
    hood_files::write_private(&key_file, format!("{}\n", generated.token).as_bytes()).map_err(
        |source| BootstrapError::Io {
            path: key_file.clone(),
            source,
        },
    )?;
    if !store.bootstrap(&org, &admin, &key).await? {
        // Another replica bootstrapped first; our key was never stored.
        let _ = std::fs::remove_file(&key_file);
        return Ok(None);
    }
    tracing::info!(email = %admin.email, key_file = %key_file.display(), "bootstrapped the first administrator");
    Ok(Some(BootstrapReport {
        email: admin.email,
        org_slug: org.slug,
        key_file,
    }))
}
