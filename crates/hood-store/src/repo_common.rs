// Repository code shared by both backends, written once.
//
// This file is not a module: `sqlite.rs` and `postgres.rs` each `include!` it
// after defining the dialect items it relies on:
//
// * `Db`, `DbPool`, `DbRow`, `DbConn`: the sqlx database and its types;
// * `StoreImpl`: the store struct, with a `pool: DbPool` field;
// * `BACKEND`, `MIGRATIONS`, `SCHEMA_TABLE_EXISTS_SQL`;
// * `begin_write(&DbPool)`: a transaction that is allowed to write (SQLite
//   takes the write lock up front so read-then-write cannot hit BUSY);
// * `migrate_locked(&DbPool)`: runs `apply_pending` under the dialect's
//   migration lock.
//
// So every query below is compiled (and type-checked) once per dialect, but
// its text exists once: it must stay portable (`$n` placeholders, BIGINT
// millisecond timestamps, UUID text, JSON text, `RETURNING`/`ON CONFLICT`,
// which both dialects support).

use crate::codec;
use crate::migrate::{self, AppliedMigration};
use crate::{
    Backend, IdentityStore, OutboxRecord, OutboxStore, RefreshOutcome, Store, StoreError,
    StoreResult,
};
use async_trait::async_trait;
use hood_domain::event::DomainEvent;
use hood_domain::identity::{ApiKey, Organization, RefreshToken, Session, SigningKey, User};
use hood_domain::{ApiKeyId, EventId, OrgId, SessionId, Timestamp, UserId};
use sqlx::{Executor as _, Row as _};

/// Reads one column; a value of the wrong type is `Corrupt`.
fn col<'r, T>(row: &'r DbRow, name: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    row.try_get(name).map_err(codec::decode_error)
}

fn opt_ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

// -- row decoding --

const ORG_COLUMNS: &str = "id, slug, name, created_at";

fn org_from_row(row: &DbRow) -> StoreResult<Organization> {
    Ok(Organization {
        id: codec::parse_id("orgs.id", &col::<String>(row, "id")?)?,
        slug: col(row, "slug")?,
        name: col(row, "name")?,
        created_at: Timestamp(col(row, "created_at")?),
    })
}

const USER_COLUMNS: &str =
    "id, org_id, email, display_name, role, platform_admin, password_hash, disabled, created_at";

fn user_from_row(row: &DbRow) -> StoreResult<User> {
    Ok(User {
        id: codec::parse_id("users.id", &col::<String>(row, "id")?)?,
        org_id: codec::parse_id("users.org_id", &col::<String>(row, "org_id")?)?,
        email: col(row, "email")?,
        display_name: col(row, "display_name")?,
        role: codec::parse_role("users.role", &col::<String>(row, "role")?)?,
        platform_admin: col(row, "platform_admin")?,
        password_hash: col(row, "password_hash")?,
        disabled: col(row, "disabled")?,
        created_at: Timestamp(col(row, "created_at")?),
    })
}

const API_KEY_COLUMNS: &str = "id, org_id, user_id, name, prefix, secret_hash, role, scopes, \
     created_at, expires_at, revoked_at, last_used_at";

fn api_key_from_row(row: &DbRow) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: codec::parse_id("api_keys.id", &col::<String>(row, "id")?)?,
        org_id: codec::parse_id("api_keys.org_id", &col::<String>(row, "org_id")?)?,
        user_id: codec::parse_id("api_keys.user_id", &col::<String>(row, "user_id")?)?,
        name: col(row, "name")?,
        prefix: col(row, "prefix")?,
        secret_hash: col(row, "secret_hash")?,
        role: codec::parse_role("api_keys.role", &col::<String>(row, "role")?)?,
        scopes: codec::decode_scopes("api_keys.scopes", &col::<String>(row, "scopes")?)?,
        created_at: Timestamp(col(row, "created_at")?),
        expires_at: opt_ts(col(row, "expires_at")?),
        revoked_at: opt_ts(col(row, "revoked_at")?),
        last_used_at: opt_ts(col(row, "last_used_at")?),
    })
}

const SESSION_COLUMNS: &str =
    "id, user_id, org_id, created_at, expires_at, revoked_at, revoked_reason";

fn session_from_row(row: &DbRow) -> StoreResult<Session> {
    Ok(Session {
        id: codec::parse_id("sessions.id", &col::<String>(row, "id")?)?,
        user_id: codec::parse_id("sessions.user_id", &col::<String>(row, "user_id")?)?,
        org_id: codec::parse_id("sessions.org_id", &col::<String>(row, "org_id")?)?,
        created_at: Timestamp(col(row, "created_at")?),
        expires_at: Timestamp(col(row, "expires_at")?),
        revoked_at: opt_ts(col(row, "revoked_at")?),
        revoked_reason: col(row, "revoked_reason")?,
    })
}

fn signing_key_from_row(row: &DbRow) -> StoreResult<SigningKey> {
    Ok(SigningKey {
        kid: col(row, "kid")?,
        sealed_private_key: col(row, "sealed_private_key")?,
        public_key_pem: col(row, "public_key_pem")?,
        created_at: Timestamp(col(row, "created_at")?),
        retired_at: opt_ts(col(row, "retired_at")?),
    })
}

fn outbox_from_row(row: &DbRow) -> StoreResult<OutboxRecord> {
    Ok(OutboxRecord {
        id: codec::parse_id("outbox.id", &col::<String>(row, "id")?)?,
        seq: col(row, "seq")?,
        event: DomainEvent {
            subject: col(row, "subject")?,
            aggregate_type: col(row, "aggregate_type")?,
            aggregate_id: col(row, "aggregate_id")?,
            payload: codec::parse_payload(&col::<String>(row, "payload")?)?,
        },
        created_at: Timestamp(col(row, "created_at")?),
        published_at: opt_ts(col(row, "published_at")?),
    })
}

// -- writes shared by single mutations and bootstrap (callers own the tx) --

/// Appends an event to the outbox on the caller's transaction.
async fn insert_event(conn: &mut DbConn, event: &DomainEvent) -> StoreResult<EventId> {
    let id = EventId::from_uuid(uuid::Uuid::now_v7());
    sqlx::query(
        "INSERT INTO outbox (id, subject, aggregate_type, aggregate_id, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.to_string())
    .bind(&event.subject)
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(event.payload.to_string())
    .bind(codec::now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

async fn insert_org(conn: &mut DbConn, org: &Organization) -> StoreResult<()> {
    sqlx::query("INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(org.id.to_string())
        .bind(&org.slug)
        .bind(&org.name)
        .bind(org.created_at.millis())
        .execute(&mut *conn)
        .await
        .map_err(|e| codec::write_error(e, "org"))?;
    insert_event(conn, &codec::org_created(org)).await?;
    Ok(())
}

async fn insert_user(conn: &mut DbConn, user: &User) -> StoreResult<()> {
    let email = user.email.to_lowercase();
    sqlx::query(
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
    .execute(&mut *conn)
    .await
    .map_err(|e| codec::write_error(e, "org"))?;
    insert_event(conn, &codec::user_created(user, &email)).await?;
    Ok(())
}

async fn insert_api_key(conn: &mut DbConn, key: &ApiKey) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, user_id, name, prefix, secret_hash, role, scopes, \
         created_at, expires_at, revoked_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
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
    .execute(&mut *conn)
    .await
    // The composite foreign key means "no such user in that org".
    .map_err(|e| codec::write_error(e, "user"))?;
    insert_event(conn, &codec::api_key_created(key)).await?;
    Ok(())
}

async fn insert_refresh_token(conn: &mut DbConn, token: &RefreshToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (jti, session_id, issued_at, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&token.jti)
    .bind(token.session_id.to_string())
    .bind(token.issued_at.millis())
    .bind(token.expires_at.millis())
    .bind(token.used_at.map(Timestamp::millis))
    .execute(&mut *conn)
    .await
    .map_err(|e| codec::write_error(e, "session"))?;
    Ok(())
}

async fn fetch_session(conn: &mut DbConn, id: &str) -> StoreResult<Option<Session>> {
    let row = sqlx::query(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(session_from_row).transpose()
}

// -- migrations --

async fn read_applied(conn: &mut DbConn) -> StoreResult<Vec<AppliedMigration>> {
    let rows =
        sqlx::query("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    rows.iter()
        .map(|row| {
            Ok(AppliedMigration {
                version: col(row, "version")?,
                name: col(row, "name")?,
                checksum: col(row, "checksum")?,
            })
        })
        .collect()
}

/// Applies the pending migrations on `conn`, which the caller has put inside
/// one transaction under its dialect's migration lock.
async fn apply_pending(conn: &mut DbConn) -> StoreResult<Vec<i64>> {
    // `Executor::execute` (boxed future) rather than `RawSql::execute`, whose
    // future trips the `Send` check of `async_trait` methods.
    (&mut *conn)
        .execute(sqlx::raw_sql(migrate::TRACKING_TABLE_DDL))
        .await?;
    let applied = read_applied(conn).await?;
    let pending = migrate::pending(MIGRATIONS, &applied)?;
    let mut versions = Vec::with_capacity(pending.len());
    for m in pending {
        (&mut *conn).execute(sqlx::raw_sql(m.sql)).await?;
        sqlx::query("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)")
            .bind(m.version)
            .bind(m.name)
            .bind(m.checksum())
            .bind(codec::now_ms())
            .execute(&mut *conn)
            .await?;
        tracing::info!(
            backend = BACKEND.as_str(),
            version = m.version,
            name = m.name,
            "applied migration"
        );
        versions.push(m.version);
    }
    Ok(versions)
}

#[async_trait]
impl IdentityStore for StoreImpl {
    async fn create_org(&self, org: &Organization) -> StoreResult<()> {
        let mut tx = begin_write(&self.pool).await?;
        insert_org(&mut tx, org).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_org(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    async fn list_orgs(&self) -> StoreResult<Vec<Organization>> {
        let rows = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(org_from_row).collect()
    }

    async fn create_user(&self, user: &User) -> StoreResult<()> {
        let mut tx = begin_write(&self.pool).await?;
        insert_user(&mut tx, user).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        ))
        .bind(email.to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self, org: OrgId) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 ORDER BY created_at, id"
        ))
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// E-mail, org and `platform_admin` are not changed here: only what the
    /// trait documents, so an update can never escalate to platform admin.
    async fn update_user(&self, user: &User) -> StoreResult<()> {
        let mut tx = begin_write(&self.pool).await?;
        let updated = sqlx::query(
            "UPDATE users SET display_name = $3, role = $4, disabled = $5, password_hash = $6 \
             WHERE id = $1 AND org_id = $2",
        )
        .bind(user.id.to_string())
        .bind(user.org_id.to_string())
        .bind(&user.display_name)
        .bind(user.role.as_str())
        .bind(user.disabled)
        .bind(user.password_hash.as_deref())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await?;
            return Err(StoreError::NotFound("user"));
        }
        insert_event(&mut tx, &codec::user_updated(user)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_user(&self, org: OrgId, id: UserId) -> StoreResult<bool> {
        let mut tx = begin_write(&self.pool).await?;
        // API keys, sessions and their refresh tokens go by ON DELETE CASCADE.
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_event(&mut tx, &codec::user_deleted(org, id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn count_users(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT count(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?;
        col(&row, "n")
    }

    async fn create_session(&self, session: &Session, first: &RefreshToken) -> StoreResult<()> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, org_id, created_at, expires_at, revoked_at, revoked_reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(session.org_id.to_string())
        .bind(session.created_at.millis())
        .bind(session.expires_at.millis())
        .bind(session.revoked_at.map(Timestamp::millis))
        .bind(session.revoked_reason.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|e| codec::write_error(e, "user"))?;
        insert_refresh_token(&mut tx, first).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        let mut conn = self.pool.acquire().await?;
        fetch_session(&mut conn, &id.to_string()).await
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
        let mut tx = begin_write(&self.pool).await?;
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $2 WHERE jti = $1 AND used_at IS NULL",
        )
        .bind(jti)
        .bind(now.millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();

        let token = sqlx::query("SELECT session_id, expires_at FROM refresh_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(token) = token else {
            tx.rollback().await?;
            return Ok(RefreshOutcome::Rejected {
                reason: "unknown refresh token",
            });
        };
        let session_id: String = col(&token, "session_id")?;

        if spent == 0 {
            // Already exchanged once: someone holds a copy. Revoke the family
            // (keeping an earlier revocation's reason).
            sqlx::query(
                "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(&session_id)
            .bind(now.millis())
            .bind("refresh_token_reuse")
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            let session_id: SessionId = codec::parse_id("refresh_tokens.session_id", &session_id)?;
            tracing::warn!(%session_id, "refresh token reuse detected; session revoked");
            return Ok(RefreshOutcome::ReuseDetected { session_id });
        }

        let token_expires_at = Timestamp(col(&token, "expires_at")?);
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
        sqlx::query("UPDATE sessions SET expires_at = $2 WHERE id = $1")
            .bind(&session_id)
            .bind(next.expires_at.millis())
            .execute(&mut *tx)
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
        let found = sqlx::query(
            "UPDATE sessions SET \
               revoked_reason = CASE WHEN revoked_at IS NULL THEN $3 ELSE revoked_reason END, \
               revoked_at = CASE WHEN revoked_at IS NULL THEN $2 ELSE revoked_at END \
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(now.millis())
        .bind(reason)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(found > 0)
    }

    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        let mut tx = begin_write(&self.pool).await?;
        insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_api_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE prefix = $1"
        ))
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn get_api_key(&self, org: OrgId, id: ApiKeyId) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1 AND org_id = $2"
        ))
        .bind(id.to_string())
        .bind(org.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn list_api_keys(&self, org: OrgId, user: Option<UserId>) -> StoreResult<Vec<ApiKey>> {
        let rows = match user {
            Some(user) => {
                sqlx::query(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE org_id = $1 AND user_id = $2 \
                     ORDER BY created_at DESC, id DESC"
                ))
                .bind(org.to_string())
                .bind(user.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
                ))
                .bind(org.to_string())
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(api_key_from_row).collect()
    }

    async fn revoke_api_key(&self, org: OrgId, id: ApiKeyId, now: Timestamp) -> StoreResult<bool> {
        let mut tx = begin_write(&self.pool).await?;
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND org_id = $2 AND revoked_at IS NULL",
        )
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(now.millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if revoked > 0 {
            insert_event(&mut tx, &codec::api_key_revoked(org, id, now)).await?;
            tx.commit().await?;
            return Ok(true);
        }
        // Nothing changed: either already revoked (keep the first time, no
        // second event) or not a key of this org.
        let exists = sqlx::query("SELECT id FROM api_keys WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        tx.rollback().await?;
        Ok(exists)
    }

    async fn touch_api_key(&self, id: ApiKeyId, now: Timestamp) -> StoreResult<()> {
        // Never moves the stamp backwards when requests race.
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
        )
        .bind(id.to_string())
        .bind(now.millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, sealed_private_key, public_key_pem, created_at, retired_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kid) DO NOTHING",
        )
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
        let rows = sqlx::query(
            "SELECT kid, sealed_private_key, public_key_pem, created_at, retired_at FROM signing_keys \
             ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(signing_key_from_row).collect()
    }

    /// The guard row upsert comes first: it takes a write lock (the row lock
    /// on PostgreSQL, the database write lock on SQLite) that a concurrent
    /// bootstrap must wait for, so the user count read after it is final.
    async fn bootstrap(&self, org: &Organization, admin: &User, key: &ApiKey) -> StoreResult<bool> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO bootstrap_guard (id, last_attempt_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET last_attempt_at = excluded.last_attempt_at",
        )
        .bind(codec::now_ms())
        .execute(&mut *tx)
        .await?;
        let users: i64 = col(
            &sqlx::query("SELECT count(*) AS n FROM users")
                .fetch_one(&mut *tx)
                .await?,
            "n",
        )?;
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

#[async_trait]
impl OutboxStore for StoreImpl {
    async fn outbox_pending(&self, limit: i64) -> StoreResult<Vec<OutboxRecord>> {
        let rows = sqlx::query(
            "SELECT seq, id, subject, aggregate_type, aggregate_id, payload, created_at, published_at \
             FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox_from_row).collect()
    }

    async fn outbox_mark_published(&self, ids: &[EventId], now: Timestamp) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // Chunked `IN` lists: far below both dialects' bind-parameter limits.
        const CHUNK: usize = 500;
        let mut tx = begin_write(&self.pool).await?;
        for chunk in ids.chunks(CHUNK) {
            let placeholders: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "UPDATE outbox SET published_at = $1 WHERE published_at IS NULL AND id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(now.millis());
            for id in chunk {
                query = query.bind(id.to_string());
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl Store for StoreImpl {
    fn backend(&self) -> Backend {
        BACKEND
    }

    async fn ping(&self) -> StoreResult<()> {
        (&self.pool).execute(sqlx::raw_sql("SELECT 1")).await?;
        Ok(())
    }

    async fn migrate(&self) -> StoreResult<Vec<i64>> {
        migrate_locked(&self.pool).await
    }

    async fn check_schema(&self) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        let tables: i64 = col(
            &sqlx::query(SCHEMA_TABLE_EXISTS_SQL)
                .fetch_one(&mut *conn)
                .await?,
            "n",
        )?;
        if tables == 0 {
            return Err(StoreError::SchemaOutOfDate {
                found: 0,
                expected: migrate::latest_version(MIGRATIONS),
            });
        }
        let applied = read_applied(&mut conn).await?;
        migrate::check(MIGRATIONS, &applied)
    }
}
