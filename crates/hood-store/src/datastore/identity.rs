//! [`IdentityStore`] for [`SqlStore`].

use super::outbox::insert_event;
use super::SqlStore;
use crate::codec::{self, events};
use crate::db::{query, query_as, query_scalar, Executor, Tx};
use crate::model::identity::{
    ApiKeyRow, OrgRow, RefreshTokenRow, SessionRow, SigningKeyRow, UserRow, API_KEY_COLUMNS,
    ORG_COLUMNS, SESSION_COLUMNS, SIGNING_KEY_COLUMNS, USER_COLUMNS,
};
use crate::model::{all, one};
use crate::{IdentityStore, RefreshOutcome, StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::identity::{ApiKey, Organization, RefreshToken, Session, SigningKey, User};
use hood_domain::{ApiKeyId, OrgId, SessionId, Timestamp, UserId};

// -- writes shared by single mutations and bootstrap (callers own the tx) --

async fn insert_org(tx: &mut Tx<'_>, org: &Organization) -> StoreResult<()> {
    query("INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(org.id.to_string())
        .bind(&org.slug)
        .bind(&org.name)
        .bind(org.created_at.millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| codec::write_error(e, "org"))?;
    insert_event(tx, &events::org_created(org)).await?;
    Ok(())
}

async fn insert_user(tx: &mut Tx<'_>, user: &User) -> StoreResult<()> {
    let email = user.email.to_lowercase();
    query(
        "INSERT INTO users (id, org_id, email, display_name, role, platform_admin, password_hash, \
         disabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(user.id.to_string())
    .bind(user.org_id.to_string())
    .bind(&email)
    .bind(&user.display_name)
    .bind(user.role.as_str())
    .bind(user.platform_admin)
    .bind(user.password_hash.as_deref())
    .bind(user.disabled)
    .bind(user.created_at.millis())
    .execute(&mut *tx)
    .await
    .map_err(|e| codec::write_error(e, "org"))?;
    insert_event(tx, &events::user_created(user, &email)).await?;
    Ok(())
}

pub(super) async fn insert_api_key(tx: &mut Tx<'_>, key: &ApiKey) -> StoreResult<()> {
    query(format!(
        "INSERT INTO api_keys ({API_KEY_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(key.id.to_string())
    .bind(key.org_id.to_string())
    .bind(key.user_id.to_string())
    .bind(&key.name)
    .bind(&key.prefix)
    .bind(&key.secret_hash)
    .bind(key.role.as_str())
    .bind(codec::encode_scopes(&key.scopes))
    .bind(key.created_at.millis())
    .bind(key.expires_at.map(Timestamp::millis))
    .bind(key.revoked_at.map(Timestamp::millis))
    .bind(key.last_used_at.map(Timestamp::millis))
    .execute(&mut *tx)
    .await
    // The composite foreign key means "no such user in that org".
    .map_err(|e| codec::write_error(e, "user"))?;
    insert_event(tx, &events::api_key_created(key)).await?;
    Ok(())
}

async fn insert_refresh_token(tx: &mut Tx<'_>, token: &RefreshToken) -> StoreResult<()> {
    query(
        "INSERT INTO refresh_tokens (jti, session_id, issued_at, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&token.jti)
    .bind(token.session_id.to_string())
    .bind(token.issued_at.millis())
    .bind(token.expires_at.millis())
    .bind(token.used_at.map(Timestamp::millis))
    .execute(tx)
    .await
    .map_err(|e| codec::write_error(e, "session"))?;
    Ok(())
}

async fn fetch_session<'e>(on: impl Into<Executor<'e>>, id: &str) -> StoreResult<Option<Session>> {
    let row = query_as::<SessionRow>(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(on)
    .await?;
    one(row)
}

#[async_trait]
impl IdentityStore for SqlStore {
    async fn create_org(&self, org: &Organization) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        insert_org(&mut tx, org).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_org(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        let row = query_as::<OrgRow>(format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        one(row)
    }

    async fn list_orgs(&self) -> StoreResult<Vec<Organization>> {
        let rows = query_as::<OrgRow>(format!(
            "SELECT {ORG_COLUMNS} FROM orgs ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn create_user(&self, user: &User) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        insert_user(&mut tx, user).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        let row = query_as::<UserRow>(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        one(row)
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = query_as::<UserRow>(format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"))
            .bind(email.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        one(row)
    }

    async fn list_users(&self, org: OrgId) -> StoreResult<Vec<User>> {
        let rows = query_as::<UserRow>(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 ORDER BY created_at, id"
        ))
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    /// E-mail, org and `platform_admin` are not changed here: only what the
    /// trait documents, so an update can never escalate to platform admin.
    async fn update_user(&self, user: &User) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        let updated = query(
            "UPDATE users SET display_name = $3, role = $4, disabled = $5, password_hash = $6 \
             WHERE id = $1 AND org_id = $2",
        )
        .bind(user.id.to_string())
        .bind(user.org_id.to_string())
        .bind(&user.display_name)
        .bind(user.role.as_str())
        .bind(user.disabled)
        .bind(user.password_hash.as_deref())
        .execute(&mut tx)
        .await?;
        if updated == 0 {
            tx.rollback().await?;
            return Err(StoreError::NotFound("user"));
        }
        insert_event(&mut tx, &events::user_updated(user)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_user(&self, org: OrgId, id: UserId) -> StoreResult<bool> {
        let mut tx = self.pool.begin_write().await?;
        // API keys, sessions and their refresh tokens go by ON DELETE CASCADE.
        let deleted = query("DELETE FROM users WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .execute(&mut tx)
            .await?;
        if deleted == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_event(&mut tx, &events::user_deleted(org, id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn count_users(&self) -> StoreResult<i64> {
        Ok(query_scalar::<i64>("SELECT count(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn create_session(&self, session: &Session, first: &RefreshToken) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        query(format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(session.org_id.to_string())
        .bind(session.created_at.millis())
        .bind(session.expires_at.millis())
        .bind(session.revoked_at.map(Timestamp::millis))
        .bind(session.revoked_reason.as_deref())
        .execute(&mut tx)
        .await
        .map_err(|e| codec::write_error(e, "user"))?;
        insert_refresh_token(&mut tx, first).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        fetch_session(&self.pool, &id.to_string()).await
    }

    /// The conditional `UPDATE … WHERE used_at IS NULL` is the arbiter: it
    /// takes the row's write lock, so of several concurrent exchanges of one
    /// `jti` exactly one sees a row change; the others then find the token
    /// spent and treat it as reuse.
    async fn rotate_refresh_token(
        &self,
        jti: &str,
        next: &RefreshToken,
        now: Timestamp,
    ) -> StoreResult<RefreshOutcome> {
        let mut tx = self.pool.begin_write().await?;
        let spent =
            query("UPDATE refresh_tokens SET used_at = $2 WHERE jti = $1 AND used_at IS NULL")
                .bind(jti)
                .bind(now.millis())
                .execute(&mut tx)
                .await?;

        let token = query_as::<RefreshTokenRow>(
            "SELECT session_id, expires_at FROM refresh_tokens WHERE jti = $1",
        )
        .bind(jti)
        .fetch_optional(&mut tx)
        .await?;
        let Some(token) = token else {
            tx.rollback().await?;
            return Ok(RefreshOutcome::Rejected {
                reason: "unknown refresh token",
            });
        };
        let session_id = token.session_id;

        if spent == 0 {
            // Already exchanged once: someone holds a copy. Revoke the family
            // (keeping an earlier revocation's reason).
            query(
                "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
                 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(&session_id)
            .bind(now.millis())
            .bind("refresh_token_reuse")
            .execute(&mut tx)
            .await?;
            tx.commit().await?;
            let session_id: SessionId = codec::parse_id("refresh_tokens.session_id", &session_id)?;
            tracing::warn!(%session_id, "refresh token reuse detected; session revoked");
            return Ok(RefreshOutcome::ReuseDetected { session_id });
        }

        let token_expires_at = Timestamp(token.expires_at);
        let Some(mut session) = fetch_session(&mut tx, &session_id).await? else {
            return Err(StoreError::Corrupt(format!(
                "refresh token refers to missing session {session_id}"
            )));
        };
        let rejected = if token_expires_at <= now {
            Some("refresh token expired")
        } else if session.revoked_at.is_some() {
            Some("session revoked")
        } else if session.expires_at <= now {
            Some("session expired")
        } else if next.session_id != session.id {
            Some("refresh token does not belong to this session")
        } else {
            None
        };
        if let Some(reason) = rejected {
            // Roll back: a rejected exchange spends nothing.
            tx.rollback().await?;
            return Ok(RefreshOutcome::Rejected { reason });
        }

        insert_refresh_token(&mut tx, next).await?;
        query("UPDATE sessions SET expires_at = $2 WHERE id = $1")
            .bind(&session_id)
            .bind(next.expires_at.millis())
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        session.expires_at = next.expires_at;
        Ok(RefreshOutcome::Rotated { session })
    }

    async fn revoke_session(
        &self,
        id: SessionId,
        reason: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        // One statement, idempotent: an already revoked session keeps its
        // first time and reason, and still counts as found.
        let found = query(
            "UPDATE sessions SET \
               revoked_reason = CASE WHEN revoked_at IS NULL THEN $3 ELSE revoked_reason END, \
               revoked_at = CASE WHEN revoked_at IS NULL THEN $2 ELSE revoked_at END \
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(now.millis())
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(found > 0)
    }

    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_api_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<ApiKey>> {
        let row = query_as::<ApiKeyRow>(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE prefix = $1"
        ))
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?;
        one(row)
    }

    async fn get_api_key(&self, org: OrgId, id: ApiKeyId) -> StoreResult<Option<ApiKey>> {
        let row = query_as::<ApiKeyRow>(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1 AND org_id = $2"
        ))
        .bind(id.to_string())
        .bind(org.to_string())
        .fetch_optional(&self.pool)
        .await?;
        one(row)
    }

    async fn list_api_keys(&self, org: OrgId, user: Option<UserId>) -> StoreResult<Vec<ApiKey>> {
        let rows = match user {
            Some(user) => {
                query_as::<ApiKeyRow>(format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE org_id = $1 AND user_id = $2 \
                     ORDER BY created_at DESC, id DESC"
                ))
                .bind(org.to_string())
                .bind(user.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                query_as::<ApiKeyRow>(format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE org_id = $1 \
                     ORDER BY created_at DESC, id DESC"
                ))
                .bind(org.to_string())
                .fetch_all(&self.pool)
                .await?
            }
        };
        all(rows)
    }

    async fn revoke_api_key(&self, org: OrgId, id: ApiKeyId, now: Timestamp) -> StoreResult<bool> {
        let mut tx = self.pool.begin_write().await?;
        let revoked = query(
            "UPDATE api_keys SET revoked_at = $3 \
             WHERE id = $1 AND org_id = $2 AND revoked_at IS NULL",
        )
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(now.millis())
        .execute(&mut tx)
        .await?;
        if revoked > 0 {
            insert_event(&mut tx, &events::api_key_revoked(org, id, now)).await?;
            tx.commit().await?;
            return Ok(true);
        }
        // Nothing changed: either already revoked (keep the first time, no
        // second event) or not a key of this org.
        let exists =
            query_scalar::<String>("SELECT id FROM api_keys WHERE id = $1 AND org_id = $2")
                .bind(id.to_string())
                .bind(org.to_string())
                .fetch_optional(&mut tx)
                .await?
                .is_some();
        tx.rollback().await?;
        Ok(exists)
    }

    async fn touch_api_key(&self, id: ApiKeyId, now: Timestamp) -> StoreResult<()> {
        // Never moves the stamp backwards when requests race.
        query(
            "UPDATE api_keys SET last_used_at = $2 \
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
        )
        .bind(id.to_string())
        .bind(now.millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()> {
        query(format!(
            "INSERT INTO signing_keys ({SIGNING_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (kid) DO NOTHING"
        ))
        .bind(&key.kid)
        .bind(key.sealed_private_key.as_slice())
        .bind(&key.public_key_pem)
        .bind(key.created_at.millis())
        .bind(key.retired_at.map(Timestamp::millis))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        let rows = query_as::<SigningKeyRow>(format!(
            "SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys ORDER BY created_at DESC, kid DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    /// The guard row upsert comes first: it takes a write lock (the row lock
    /// on PostgreSQL, the database write lock on SQLite) that a concurrent
    /// bootstrap must wait for, so the user count read after it is final.
    async fn bootstrap(&self, org: &Organization, admin: &User, key: &ApiKey) -> StoreResult<bool> {
        let mut tx = self.pool.begin_write().await?;
        query(
            "INSERT INTO bootstrap_guard (id, last_attempt_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET last_attempt_at = excluded.last_attempt_at",
        )
        .bind(codec::now_ms())
        .execute(&mut tx)
        .await?;
        let users = query_scalar::<i64>("SELECT count(*) AS n FROM users")
            .fetch_one(&mut tx)
            .await?;
        if users > 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_org(&mut tx, org).await?;
        insert_user(&mut tx, admin).await?;
        insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(true)
    }
}
