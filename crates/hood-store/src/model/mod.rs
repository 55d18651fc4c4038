//! Store-private row structs, one file per resource, and their conversion
//! into domain types.
//!
//! Each struct derives `sqlx::FromRow`, whose impl is generic over the row
//! type, so one struct decodes both `SqliteRow` and `PgRow` as long as its
//! fields are portable (`String`, `i64`, `bool`, `Vec<u8>`, `Option` of
//! those): ids are UUID text, timestamps Unix milliseconds, JSON text.
//! Turning a row into its domain type (`TryFrom`) is where a value that
//! does not parse becomes [`StoreError::Corrupt`] instead of a panic.
//!
//! The `*_COLUMNS` lists next to the structs are the select lists that
//! match them.

use crate::{StoreError, StoreResult};

pub(crate) mod artifact;
pub(crate) mod edge;
pub(crate) mod fleet;
pub(crate) mod health;
pub(crate) mod identity;
pub(crate) mod incident;
pub(crate) mod ledger;
pub(crate) mod node;
pub(crate) mod notification;
pub(crate) mod outbox;
pub(crate) mod uptime;
pub(crate) mod usage;
pub(crate) mod workflow;

/// Converts every row into its domain type.
pub(crate) fn all<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// Converts the row, if any, into its domain type.
pub(crate) fn one<R, T>(row: Option<R>) -> StoreResult<Option<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    row.map(T::try_from).transpose()
}

/// `a, b` → `p.a, p.b`: a column list qualified by a table alias, for joins.
pub(crate) fn qualified(prefix: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{prefix}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn qualifies_every_column() {
        assert_eq!(
            super::qualified("n", "id, org_id,\n name"),
            "n.id, n.org_id, n.name"
        );
    }
}
