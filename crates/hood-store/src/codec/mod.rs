//! Dialect-independent helpers for every datastore: turning column values
//! into domain values (anything unexpected is `Corrupt`, never a panic),
//! mapping constraint violations to [`StoreError`], and building outbox
//! events ([`events`]).

use crate::StoreError;
use hood_domain::identity::{Permission, Role};
use hood_domain::machine::{InvalidTransition, StateMachine};
use hood_domain::Timestamp;
use std::str::FromStr;

pub(crate) mod events;

/// Wall clock in Unix milliseconds, for bookkeeping columns the caller does
/// not supply (outbox `created_at`, `schema_migrations.applied_at`).
pub(crate) fn now_ms() -> i64 {
    hood_clock::now().millis()
}

pub(crate) fn opt_ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

/// Parses a typed id stored as text.
pub(crate) fn parse_id<T: FromStr>(column: &str, value: &str) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("{column}: `{value}` is not a UUID")))
}

/// [`parse_id`] of a nullable column.
pub(crate) fn parse_opt_id<T: FromStr>(
    column: &str,
    value: Option<&str>,
) -> Result<Option<T>, StoreError> {
    value.map(|v| parse_id(column, v)).transpose()
}

/// Parses a stored lifecycle state. An unknown name (garbage, or a newer
/// schema) is `Corrupt`, never a panic.
pub(crate) fn parse_state<M: StateMachine>(column: &str, value: &str) -> Result<M, StoreError> {
    M::parse(value).ok_or_else(|| {
        StoreError::Corrupt(format!("{column}: unknown {} state `{value}`", M::NAME))
    })
}

/// [`parse_state`] of a nullable column.
pub(crate) fn parse_opt_state<M: StateMachine>(
    column: &str,
    value: Option<&str>,
) -> Result<Option<M>, StoreError> {
    value.map(|v| parse_state(column, v)).transpose()
}

/// Refuses to create a record in a state its machine does not start in.
pub(crate) fn check_initial<M: StateMachine>(state: M) -> Result<(), StoreError> {
    if state.is_initial() {
        return Ok(());
    }
    Err(StoreError::InvalidTransition(InvalidTransition {
        machine: M::NAME,
        from: "(new)".into(),
        to: state.as_str().into(),
    }))
}

/// Parses a stored name with the type's own `parse` (`None`: unknown).
pub(crate) fn parse_name<T>(
    column: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(value).ok_or_else(|| StoreError::Corrupt(format!("{column}: unknown value `{value}`")))
}

pub(crate) fn parse_role(column: &str, value: &str) -> Result<Role, StoreError> {
    value
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// A calendar day as stored: `YYYY-MM-DD`.
pub(crate) fn format_date(day: time::Date) -> String {
    let (y, m, d) = (day.year(), u8::from(day.month()), day.day());
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses a `YYYY-MM-DD` column.
pub(crate) fn parse_date(column: &str, value: &str) -> Result<time::Date, StoreError> {
    time::Date::parse(
        value,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|e| StoreError::Corrupt(format!("{column}: `{value}` is not a date: {e}")))
}

/// Parses a JSON text column.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    column: &str,
    value: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(value).map_err(|e| StoreError::Corrupt(format!("{column}: not JSON: {e}")))
}

/// [`parse_json`] of a nullable column.
pub(crate) fn parse_opt_json<T: serde::de::DeserializeOwned>(
    column: &str,
    value: Option<&str>,
) -> Result<Option<T>, StoreError> {
    value.map(|v| parse_json(column, v)).transpose()
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

/// Unique constraints and what each one names in `Conflict`: PostgreSQL
/// reports the constraint name, SQLite the `table.column` list.
const UNIQUE_CONSTRAINTS: &[(&str, &str, &str)] = &[
    (
        "containers_org_id_name_key",
        "containers.org_id, containers.name",
        "container name",
    ),
    ("orgs_slug_key", "orgs.slug", "slug"),
    (
        "service_accounts_name_idx",
        "service_accounts.org_id, service_accounts.name",
        "service account",
    ),
    (
        "storage_namespaces_org_id_name_key",
        "storage_namespaces.org_id, storage_namespaces.name",
        "namespace",
    ),
    (
        "ssh_keys_user_id_fingerprint_key",
        "ssh_keys.user_id, ssh_keys.fingerprint",
        "ssh key",
    ),
    (
        "feed_items_user_id_event_id_key",
        "feed_items.user_id, feed_items.event_id",
        "feed item",
    ),
    ("orgs_pkey", "orgs.id", "id"),
    ("users_email_key", "users.email", "email"),
    ("users_pkey", "users.id", "id"),
    ("api_keys_prefix_key", "api_keys.prefix", "prefix"),
    ("api_keys_pkey", "api_keys.id", "id"),
    ("sessions_pkey", "sessions.id", "id"),
    ("refresh_tokens_pkey", "refresh_tokens.jti", "jti"),
    ("signing_keys_pkey", "signing_keys.kid", "kid"),
    ("outbox_id_key", "outbox.id", "id"),
    ("hosts_pkey", "hosts.id", "id"),
    (
        "enrollment_tokens_pkey",
        "enrollment_tokens.token_hash",
        "token",
    ),
    (
        "host_certificates_pkey",
        "host_certificates.serial",
        "serial",
    ),
    ("agent_commands_pkey", "agent_commands.id", "id"),
    (
        "agent_commands_host_key_key",
        "agent_commands.host_id, agent_commands.idempotency_key",
        "idempotency_key",
    ),
    ("nodes_org_name_key", "nodes.org_id, nodes.name", "name"),
    ("nodes_pkey", "nodes.id", "id"),
    ("node_keys_pkey", "node_keys.node_id", "node key material"),
    (
        "notification_channels_org_name_key",
        "notification_channels.org_id, notification_channels.name",
        "name",
    ),
    ("rpc_keys_prefix_key", "rpc_keys.prefix", "prefix"),
    ("rate_cards_pkey", "rate_cards.version", "rate card version"),
    (
        "credit_accounts_pkey",
        "credit_accounts.org_id",
        "credit account",
    ),
    (
        "subscriptions_live_org_idx",
        "subscriptions.org_id",
        "live subscription",
    ),
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
        return StoreError::from(err);
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

#[cfg(test)]
mod tests {
    use super::*;
    use hood_domain::lifecycle::NodeState;
    use hood_domain::OrgId;

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
    fn bad_ids_roles_states_and_json_are_corrupt() {
        assert!(matches!(
            parse_id::<OrgId>("orgs.id", "nope"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            parse_opt_id::<OrgId>("hosts.org_id", Some("nope")),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            parse_opt_id::<OrgId>("hosts.org_id", None),
            Ok(None)
        ));
        assert!(matches!(
            parse_role("users.role", "root"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(parse_role("users.role", "admin").ok(), Some(Role::Admin));
        assert!(matches!(
            parse_state::<NodeState>("nodes.state", "zombie"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(
            parse_opt_state::<NodeState>("nodes.state", Some("healthy")).ok(),
            Some(Some(NodeState::Healthy))
        );
        assert!(matches!(
            parse_json::<serde_json::Value>("t.c", "{"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            parse_name("t.c", "x", |_| None::<()>),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn non_database_errors_pass_through() {
        assert!(matches!(
            write_error(sqlx::Error::RowNotFound, "org"),
            StoreError::Database(sqlx::Error::RowNotFound)
        ));
    }
}
