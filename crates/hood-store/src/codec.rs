//! Dialect-independent helpers for both backends: turning columns into
//! domain values (anything unexpected is `Corrupt`, never a panic), mapping
//! constraint violations to [`StoreError`], and building outbox events.

use crate::StoreError;
use hood_domain::event::DomainEvent;
use hood_domain::identity::{ApiKey, Organization, Permission, Role, User};
use hood_domain::{ApiKeyId, OrgId, Timestamp, UserId};
use serde_json::json;
use std::str::FromStr;

/// Wall clock in Unix milliseconds, for bookkeeping columns the caller does
/// not supply (outbox `created_at`, `schema_migrations.applied_at`).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Column read failures: a value of the wrong type is corrupt data, anything
/// else is a database error.
pub(crate) fn decode_error(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::ColumnDecode { index, source } => {
            StoreError::Corrupt(format!("column {index}: {source}"))
        }
        sqlx::Error::Decode(source) => StoreError::Corrupt(source.to_string()),
        other => StoreError::Database(other),
    }
}

/// Parses a typed id stored as text.
pub(crate) fn parse_id<T: FromStr>(column: &str, value: &str) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("{column}: `{value}` is not a UUID")))
}

/// Parses a stored lifecycle state. An unknown name (garbage, or a newer
/// schema) is `Corrupt`, never a panic.
pub(crate) fn parse_state<M: hood_domain::machine::StateMachine>(
    column: &str,
    value: &str,
) -> Result<M, StoreError> {
    M::parse(value).ok_or_else(|| {
        StoreError::Corrupt(format!("{column}: unknown {} state `{value}`", M::NAME))
    })
}

pub(crate) fn parse_role(column: &str, value: &str) -> Result<Role, StoreError> {
    value
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// Scopes are stored as a JSON array of permission names.
pub(crate) fn encode_scopes(scopes: &[Permission]) -> String {
    let names: Vec<&str> = scopes.iter().map(|p| p.as_str()).collect();
    serde_json::Value::from(names).to_string()
}

pub(crate) fn decode_scopes(column: &str, value: &str) -> Result<Vec<Permission>, StoreError> {
    let names: Vec<String> = serde_json::from_str(value)
        .map_err(|e| StoreError::Corrupt(format!("{column}: not a JSON array of names: {e}")))?;
    names
        .iter()
        .map(|n| {
            n.parse()
                .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
        })
        .collect()
}

pub(crate) fn parse_payload(value: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(value)
        .map_err(|e| StoreError::Corrupt(format!("outbox.payload: not JSON: {e}")))
}

/// Unique constraints and what each one names in `Conflict`: PostgreSQL
/// reports the constraint name, SQLite the `table.column` list.
const UNIQUE_CONSTRAINTS: &[(&str, &str, &str)] = &[
    ("orgs_slug_key", "orgs.slug", "slug"),
    ("orgs_pkey", "orgs.id", "id"),
    ("users_email_key", "users.email", "email"),
    ("users_pkey", "users.id", "id"),
    ("api_keys_prefix_key", "api_keys.prefix", "prefix"),
    ("api_keys_pkey", "api_keys.id", "id"),
    ("sessions_pkey", "sessions.id", "id"),
    ("refresh_tokens_pkey", "refresh_tokens.jti", "jti"),
    ("signing_keys_pkey", "signing_keys.kid", "kid"),
    ("outbox_id_key", "outbox.id", "id"),
    ("nodes_org_name_key", "nodes.org_id, nodes.name", "name"),
    ("nodes_pkey", "nodes.id", "id"),
    ("node_keys_pkey", "node_keys.node_id", "node key material"),
    ("rpc_keys_prefix_key", "rpc_keys.prefix", "prefix"),
    ("rpc_keys_pkey", "rpc_keys.id", "id"),
];

/// PostgreSQL `unique_violation`.
const PG_UNIQUE: &str = "23505";
/// PostgreSQL `foreign_key_violation`.
const PG_FOREIGN_KEY: &str = "23503";
/// SQLite extended codes `SQLITE_CONSTRAINT_UNIQUE` and `_PRIMARYKEY`.
const SQLITE_UNIQUE: &[&str] = &["2067", "1555"];
/// SQLite extended code `SQLITE_CONSTRAINT_FOREIGNKEY`.
const SQLITE_FOREIGN_KEY: &str = "787";

/// Maps a failed write: unique violations become `Conflict(field)`, foreign
/// key violations `NotFound(missing_parent)` (the row referred to a parent
/// that does not exist), anything else stays a database error.
pub(crate) fn write_error(err: sqlx::Error, missing_parent: &'static str) -> StoreError {
    let Some(db) = err.as_database_error() else {
        return StoreError::Database(err);
    };
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    if code == PG_UNIQUE {
        let constraint = db.constraint().unwrap_or_default();
        let field = UNIQUE_CONSTRAINTS
            .iter()
            .find(|(name, _, _)| *name == constraint)
            .map_or(constraint, |(_, _, field)| field);
        return StoreError::Conflict(field.to_owned());
    }
    if SQLITE_UNIQUE.contains(&code.as_str()) {
        // "UNIQUE constraint failed: users.email" (or "t.a, t.b"): only the
        // column list after the colon is looked at.
        let columns = db.message().rsplit(": ").next().unwrap_or_default();
        let field = UNIQUE_CONSTRAINTS
            .iter()
            .find(|(_, cols, _)| *cols == columns)
            .map_or(columns, |(_, _, field)| field);
        return StoreError::Conflict(field.to_owned());
    }
    if code == PG_FOREIGN_KEY || code == SQLITE_FOREIGN_KEY {
        return StoreError::NotFound(missing_parent);
    }
    StoreError::Database(err)
}

// -- outbox events: ids and non-secret fields only, never a password or key
// hash --

pub(crate) fn org_created(org: &Organization) -> DomainEvent {
    DomainEvent {
        subject: "identity.org.created".into(),
        aggregate_type: "org".into(),
        aggregate_id: org.id.to_string(),
        payload: json!({
            "org_id": org.id,
            "slug": org.slug,
            "name": org.name,
            "created_at": org.created_at,
        }),
    }
}

/// `email` is the stored (lower-cased) address.
pub(crate) fn user_created(user: &User, email: &str) -> DomainEvent {
    DomainEvent {
        subject: "identity.user.created".into(),
        aggregate_type: "user".into(),
        aggregate_id: user.id.to_string(),
        payload: json!({
            "user_id": user.id,
            "org_id": user.org_id,
            "email": email,
            "display_name": user.display_name,
            "role": user.role,
            "platform_admin": user.platform_admin,
            "disabled": user.disabled,
            "created_at": user.created_at,
        }),
    }
}

pub(crate) fn user_updated(user: &User) -> DomainEvent {
    DomainEvent {
        subject: "identity.user.updated".into(),
        aggregate_type: "user".into(),
        aggregate_id: user.id.to_string(),
        payload: json!({
            "user_id": user.id,
            "org_id": user.org_id,
            "display_name": user.display_name,
            "role": user.role,
            "disabled": user.disabled,
        }),
    }
}

pub(crate) fn user_deleted(org: OrgId, id: UserId) -> DomainEvent {
    DomainEvent {
        subject: "identity.user.deleted".into(),
        aggregate_type: "user".into(),
        aggregate_id: id.to_string(),
        payload: json!({ "user_id": id, "org_id": org }),
    }
}

pub(crate) fn api_key_created(key: &ApiKey) -> DomainEvent {
    DomainEvent {
        subject: "identity.api_key.created".into(),
        aggregate_type: "api_key".into(),
        aggregate_id: key.id.to_string(),
        payload: json!({
            "api_key_id": key.id,
            "org_id": key.org_id,
            "user_id": key.user_id,
            "name": key.name,
            "prefix": key.prefix,
            "role": key.role,
            "scopes": key.scopes,
            "created_at": key.created_at,
            "expires_at": key.expires_at,
        }),
    }
}

pub(crate) fn api_key_revoked(org: OrgId, id: ApiKeyId, at: Timestamp) -> DomainEvent {
    DomainEvent {
        subject: "identity.api_key.revoked".into(),
        aggregate_type: "api_key".into(),
        aggregate_id: id.to_string(),
        payload: json!({ "api_key_id": id, "org_id": org, "revoked_at": at }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_garbage_is_corrupt() {
        let scopes = vec![Permission::Read, Permission::ManageKeys];
        let text = encode_scopes(&scopes);
        assert_eq!(text, r#"["read","manage_keys"]"#);
        assert_eq!(decode_scopes("c", &text).ok(), Some(scopes));
        assert_eq!(decode_scopes("c", "[]").ok(), Some(vec![]));
        assert!(matches!(
            decode_scopes("c", "read"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode_scopes("c", r#"["root"]"#),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn bad_ids_and_roles_are_corrupt() {
        assert!(matches!(
            parse_id::<OrgId>("orgs.id", "nope"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            parse_role("users.role", "root"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(parse_role("users.role", "admin").ok(), Some(Role::Admin));
    }

    #[test]
    fn non_database_errors_pass_through() {
        assert!(matches!(
            write_error(sqlx::Error::RowNotFound, "org"),
            StoreError::Database(sqlx::Error::RowNotFound)
        ));
    }
}
