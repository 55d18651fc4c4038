//! First-start work shared by every role: signing keys and the initial
//! administrator.

use crate::clock::now;
use hood_domain::identity::{ApiKey, Organization, Role, SigningKey, User};
use hood_domain::{ApiKeyId, OrgId, UserId};
use hood_identity::api_keys::generate_api_key;
use hood_identity::master_key::MasterKey;
use hood_identity::password::{generate_password, hash_password};
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
    /// Where the generated console password was written (mode 0600), when
    /// none was given.
    pub password_file: Option<PathBuf>,
}

/// Name of the admin key file inside `$HOOD_HOME`.
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// Name of the file holding the first administrator's generated password
/// (for the console) inside `$HOOD_HOME`.
pub const ADMIN_PASSWORD_FILE: &str = "admin.password";

/// On an installation without users, creates the `hood` operators org, the
/// platform administrator `admin@hood.local` (password from
/// `admin_password` if given, else generated and written to
/// `home/admin.password`) and an admin API key written to
/// `home/admin.key`. Returns `None` when the installation already has users
/// (or another replica won the race).
///
/// Crash safety: the key is written to a file of its own before the
/// database commit and moved to `admin.key` after it, so a crash in between
/// leaves the key in `admin.key.*.pending` (or no users, and the next start
/// bootstraps again), and replicas sharing a home that start at once never
/// overwrite or delete the key that won.
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
    let generated_password = admin_password.is_none().then(generate_password);
    let password = admin_password.or(generated_password.as_deref());
    let password_hash = password.map(hash_password).transpose()?;
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
    let pending = home.join(format!("{ADMIN_KEY_FILE}.{}.pending", Uuid::now_v7()));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BootstrapError::Io { path, source }
    };
    hood_files::write_private(&pending, format!("{}\n", generated.token).as_bytes())
        .map_err(io(&pending))?;
    let password_file = home.join(ADMIN_PASSWORD_FILE);
    let pending_password = home.join(format!("{ADMIN_PASSWORD_FILE}.{}.pending", Uuid::now_v7()));
    if let Some(p) = &generated_password {
        hood_files::write_private(&pending_password, format!("{p}\n").as_bytes())
            .map_err(io(&pending_password))?;
    }
    let forget = || {
        let _ = hood_files::wipe(&pending);
        let _ = hood_files::wipe(&pending_password);
    };
    match store.bootstrap(&org, &admin, &key).await {
        Ok(true) => {
            hood_files::move_into_place(&pending, &key_file).map_err(io(&key_file))?;
            if generated_password.is_some() {
                hood_files::move_into_place(&pending_password, &password_file)
                    .map_err(io(&password_file))?;
            }
        }
        Ok(false) => {
            // Another replica bootstrapped first; our secrets were never stored.
            forget();
            return Ok(None);
        }
        Err(e) => {
            forget();
            return Err(e.into());
        }
    }
    tracing::info!(email = %admin.email, key_file = %key_file.display(), "bootstrapped the first administrator");
    Ok(Some(BootstrapReport {
        email: admin.email,
        org_slug: org.slug,
        key_file,
        password_file: generated_password.map(|_| password_file),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn replicas_sharing_a_home_keep_the_key_that_won() {
        let dir = tempfile::tempdir().unwrap();
        let store: std::sync::Arc<dyn Store> = hood_store::connect(&hood_testkit::sqlite_url(&dir))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let home = dir.path().join("home");
        let run = || bootstrap_admin(store.as_ref(), &home, None);
        let (a, b, c, d) = tokio::join!(run(), run(), run(), run());
        let won: Vec<_> = [a, b, c, d]
            .into_iter()
            .filter_map(Result::unwrap)
            .collect();
        assert_eq!(won.len(), 1, "exactly one replica bootstraps");
        assert_eq!(won[0].key_file, home.join(ADMIN_KEY_FILE));

        // The file holds the key that was stored, and nothing is left aside.
        let token = std::fs::read_to_string(home.join(ADMIN_KEY_FILE)).unwrap();
        let (prefix, secret) = hood_identity::api_keys::parse_api_key(token.trim()).unwrap();
        let stored = store.find_api_key_by_prefix(prefix).await.unwrap().unwrap();
        assert!(hood_identity::api_keys::verify_secret(
            secret,
            &stored.secret_hash
        ));
        // So does the password file: the generated password is the stored
        // administrator's.
        assert_eq!(
            won[0].password_file.as_deref(),
            Some(home.join(ADMIN_PASSWORD_FILE).as_path())
        );
        let password = std::fs::read_to_string(home.join(ADMIN_PASSWORD_FILE)).unwrap();
        let admin = store
            .find_user_by_email("admin@hood.local")
            .await
            .unwrap()
            .unwrap();
        assert!(hood_identity::password::verify_password(
            password.trim(),
            admin.password_hash.as_deref().unwrap()
        ));
        let mut names: Vec<String> = std::fs::read_dir(&home)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![ADMIN_KEY_FILE.to_owned(), ADMIN_PASSWORD_FILE.to_owned()]
        );
        assert!(bootstrap_admin(store.as_ref(), &home, None)
            .await
            .unwrap()
            .is_none());
    }
}
